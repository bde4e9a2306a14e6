//! Removing images no container uses, as `crictl rmi --prune` (the kubelet's image GC minus
//! the disk thresholds): the caller names the images in use; every other image loses its
//! names and record, then every layer directory, blob and lock no remaining image refers to
//! is removed. Layers shared with a kept image stay. Runs under the store's exclusive lock, so
//! no pull or import is half-way meanwhile.

use std::collections::BTreeSet;
use std::fs;

use crate::error::StoreError;
use crate::store::Store;

/// What a collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Image IDs removed.
    pub images: Vec<String>,
    /// Layer directories removed.
    pub layers: usize,
    /// Blobs removed.
    pub blobs: usize,
}

impl Store {
    /// Removes every image not named in `in_use` (IDs, repo tags or repo digests, short or
    /// qualified). Blocks while pulls hold the store.
    pub fn gc(&self, in_use: &[&str]) -> Result<GcReport, StoreError> {
        let _lock = self.lock_exclusive()?;
        let keep: BTreeSet<String> = in_use.iter().filter_map(|s| self.resolve(s)).collect();
        let remove: Vec<String> = self
            .record_ids()
            .into_iter()
            .filter(|id| !keep.contains(id))
            .collect();
        self.remove_and_sweep(&remove)
    }

    /// Removes the images `remove` (names and records), then every layer directory, blob and
    /// lock no remaining image refers to. The caller holds the store exclusively.
    pub(crate) fn remove_and_sweep(&self, remove: &[String]) -> Result<GcReport, StoreError> {
        let remove: BTreeSet<&String> = remove.iter().collect();
        let mut report = GcReport::default();
        for (path, id) in self.name_records() {
            if remove.contains(&id) {
                let _ = fs::remove_file(path);
            }
        }
        let (mut layers, mut blobs) = (BTreeSet::new(), BTreeSet::new());
        for id in self.record_ids() {
            if !remove.contains(&id) {
                if let Some(rec) = self.read_record(&id)? {
                    layers.extend(rec.diff_ids.iter().map(|d| hex(d)));
                    blobs.extend(rec.layer_blobs.iter().map(|d| hex(d)));
                    blobs.extend(rec.manifests.iter().map(|d| hex(d)));
                    blobs.insert(hex(&rec.id));
                }
                continue;
            }
            let path = self
                .root()
                .join("images")
                .join(format!("{}.json", hex(&id)));
            fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
            report.images.push(id);
        }
        for entry in read_dir(&self.root().join("layers/sha256")) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !layers.contains(&name) {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(StoreError::io("remove", &path))?;
                report.layers += 1;
            }
        }
        for entry in read_dir(&self.root().join("blobs/sha256")) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !blobs.contains(&name) {
                let path = entry.path();
                fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
                report.blobs += 1;
            }
        }
        // Per-digest locks of what is gone: nobody holds one while we hold the store.
        for entry in read_dir(&self.root().join("locks")) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && !layers.contains(&name) && !blobs.contains(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(report)
    }
}

pub(crate) fn hex(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap_or(digest).to_string()
}

pub(crate) fn read_dir(dir: &std::path::Path) -> Vec<fs::DirEntry> {
    fs::read_dir(dir)
        .map(|e| e.flatten().collect())
        .unwrap_or_default()
}
