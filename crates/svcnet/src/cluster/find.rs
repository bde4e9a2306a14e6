//! Which cluster `svcnet exec` means when no `--data-dir` says it, as kubectl finds its
//! cluster from `$KUBECONFIG` and kind's commands find the only cluster there is: the
//! directory of `$KUBECONFIG` when it is a data dir of `svcnet up`, else `./.svcnet` when a
//! cluster runs there, else the only cluster running on this machine.
//!
//! A running cluster is a `svcnet up` process holding its data dir's `up.lock` (the lock it
//! takes for as long as it runs) whose `up.pid` names it: found in /proc, as `fuser` finds
//! who holds a file, so a crashed `up` (lock released) is not running.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// What `up` writes in every data dir it runs on (`up.rs`): how a kubeconfig's directory is
/// known to be one.
const DATA_DIR_MARK: &str = "netns-prefix";

/// The data dir of the cluster a command means: `given`, else as the module says.
pub fn data_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d.to_path_buf());
    }
    if let Some(d) = kubeconfig_data_dir() {
        return Ok(d);
    }
    let running = running_clusters();
    let here = Path::new("./.svcnet").canonicalize().ok();
    if let Some(here) = here.filter(|h| running.contains(h)) {
        return Ok(here);
    }
    match running.as_slice() {
        [only] => Ok(only.clone()),
        [] => bail!(
            "no running cluster found: no --data-dir, $KUBECONFIG is not in a data dir of \
             `svcnet up`, ./.svcnet runs none and no `svcnet up` runs on this machine"
        ),
        several => bail!(
            "{} clusters are running ({}): say which with --data-dir",
            several.len(),
            several
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The directory of the first `$KUBECONFIG` entry that is in a data dir of `svcnet up`.
fn kubeconfig_data_dir() -> Option<PathBuf> {
    let paths = std::env::var_os("KUBECONFIG")?;
    std::env::split_paths(&paths)
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .map(|d| {
            if d.as_os_str().is_empty() {
                ".".into()
            } else {
                d
            }
        })
        .find(|d| d.join(DATA_DIR_MARK).is_file())
}

/// The data dirs (canonical, sorted) of every `svcnet up` running on this machine.
pub fn running_clusters() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| is_up(*pid))
        .filter_map(held_data_dir)
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Whether process `pid` is a `svcnet up` (its first argument is `up`).
fn is_up(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline.split(|b| *b == 0).nth(1) == Some(b"up".as_slice())
}

/// The data dir whose `up.lock` process `pid` holds open, if its `up.pid` names `pid`.
fn held_data_dir(pid: u32) -> Option<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.file_name().is_some_and(|n| n == "up.lock"))
        .filter_map(|target| target.parent().map(Path::to_path_buf))
        .find(|dir| {
            std::fs::read_to_string(dir.join("up.pid"))
                .is_ok_and(|p| p.trim().parse::<u32>().ok() == Some(pid))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test process is no `svcnet up`: the scan finds none of it, and a given data dir
    /// wins over everything.
    #[test]
    fn given_wins_and_a_plain_process_is_no_cluster() {
        assert!(!is_up(std::process::id()));
        assert_eq!(held_data_dir(std::process::id()), None);
        assert_eq!(
            data_dir(Some(Path::new("/x/y"))).unwrap(),
            PathBuf::from("/x/y")
        );
    }
}
