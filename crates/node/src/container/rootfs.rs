//! A container's root filesystem: overlayfs with the image's layers (as the store unpacked
//! them) below and the container's own writable layer above, as containerd's overlay
//! snapshotter makes it.
//!
//! The writable layer (`upper`, with overlayfs' `work`) lives in the container's directory: it
//! survives restarts of the container and is removed with the pod. (Issue 17 asks for this; a
//! kubelet with containerd creates a new container, so a fresh layer, at each restart — a
//! deliberate deviation.)
//!
//! Deviation from containerd, for cleanup's sake: the overlay is mounted by the container's
//! shim in a mount namespace of its own (slave to the host's, so nothing propagates back), not
//! in the host's. When the shim ends — however it ends — the kernel unmounts it; nothing is
//! ever left mounted on the host, and `svcnet down` has no mounts to find.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// An overlay root filesystem.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    /// Image layers, bottom → top.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where it is mounted (the OCI bundle's `root.path`).
    pub target: PathBuf,
}

impl Overlay {
    /// The overlay of `layers` for the container whose directory is `dir`.
    pub fn for_container(dir: &Path, layers: &[PathBuf]) -> Self {
        Overlay {
            lower: layers.to_vec(),
            upper: dir.join("fs/upper"),
            work: dir.join("fs/work"),
            target: dir.join("rootfs"),
        }
    }

    /// overlayfs' mount data: `lowerdir` is top first. An image of one layer gets an empty
    /// upper layer of its own too.
    pub fn options(&self) -> String {
        let lower: Vec<String> = self
            .lower
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper.display(),
            self.work.display()
        )
    }

    /// Makes the directories (idempotent: the upper layer is kept across restarts).
    pub fn prepare(&self) -> std::io::Result<()> {
        for d in [&self.upper, &self.work, &self.target] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }

    /// In the calling process (the shim, single-threaded, before it starts anything): a mount
    /// namespace of its own, slave to the host's, with the overlay mounted at `target`.
    pub fn mount_in_private_namespace(&self) -> std::io::Result<()> {
        use nix::mount::{mount, MsFlags};
        self.prepare()?;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )?;
        mount(
            Some("overlay"),
            &self.target,
            Some("overlay"),
            MsFlags::empty(),
            Some(self.options().as_str()),
        )
        .map_err(|e| {
            std::io::Error::other(format!("mount overlay on {}: {e}", self.target.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_is_top_first() {
        let o = Overlay::for_container(
            Path::new("/c"),
            &[PathBuf::from("/l/bottom"), PathBuf::from("/l/top")],
        );
        assert_eq!(
            o.options(),
            "lowerdir=/l/top:/l/bottom,upperdir=/c/fs/upper,workdir=/c/fs/work"
        );
        assert_eq!(o.target, Path::new("/c/rootfs"));
    }
}
