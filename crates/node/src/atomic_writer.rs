//! The kubelet's `AtomicWriter` (`pkg/volume/util/atomic_writer.go`), which writes the files
//! of configMap, secret, downwardAPI and projected volumes so a reader never sees half an
//! update: the files go into a fresh hidden directory `..<timestamp>`, the `..data` symlink is
//! swapped to it with one `rename`, and each visible name is a symlink through `..data`
//! (`key -> ..data/key`). A payload equal to what `..data` holds writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Relative path (`key`, `dir/key`) → (content, mode).
pub type Payload = BTreeMap<String, (Vec<u8>, u32)>;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Write `payload` into `dir`; whether anything changed.
pub fn write(dir: &Path, payload: &Payload) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let old = std::fs::read_link(dir.join(DATA)).ok();
    if let Some(old) = &old {
        if holds(&dir.join(old), payload) {
            return Ok(false);
        }
    }
    let now = jiff::Timestamp::now();
    let ts = format!(
        "..{}.{}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        now.subsec_nanosecond()
    );
    let ts_dir = dir.join(&ts);
    std::fs::create_dir(&ts_dir)?;
    std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755))?;
    for (path, (bytes, mode)) in payload {
        let file = ts_dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, bytes)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))?;
    }
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA))?;
    // The visible names: the first component of every path, through `..data`.
    let top: BTreeSet<&str> = payload
        .keys()
        .map(|p| p.split('/').next().unwrap_or(p))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA).join(name), &link)?;
        }
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !top.contains(name.as_str()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// Whether `ts_dir` holds exactly `payload`.
fn holds(ts_dir: &Path, payload: &Payload) -> bool {
    fn files(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                files(&e.path(), &format!("{name}/"), out);
            } else {
                out.insert(name);
            }
        }
    }
    let mut present = BTreeSet::new();
    files(ts_dir, "", &mut present);
    present.iter().eq(payload.keys())
        && payload.iter().all(|(p, (bytes, mode))| {
            let f = ts_dir.join(p);
            std::fs::metadata(&f).is_ok_and(|m| m.permissions().mode() & 0o7777 == *mode)
                && std::fs::read(&f).is_ok_and(|b| &b == bytes)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(entries: &[(&str, &str, u32)]) -> Payload {
        entries
            .iter()
            .map(|(p, c, m)| (p.to_string(), (c.as_bytes().to_vec(), *m)))
            .collect()
    }

    #[test]
    fn swaps_data_and_keeps_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        assert!(write(&dir, &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o400)])).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        let first = std::fs::read_link(dir.join(DATA)).unwrap();
        let mode = std::fs::metadata(dir.join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);

        // Unchanged: nothing written.
        assert!(!write(&dir, &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o400)])).unwrap());
        assert_eq!(std::fs::read_link(dir.join(DATA)).unwrap(), first);

        // Changed: a new directory, the old one and the dropped name gone.
        assert!(write(&dir, &payload(&[("a", "3", 0o644), ("c", "4", 0o644)])).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert_eq!(std::fs::read_to_string(dir.join("c")).unwrap(), "4");
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err());
        assert!(!dir.join(&first).exists());
    }
}
