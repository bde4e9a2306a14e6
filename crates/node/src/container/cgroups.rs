//! A container's `resources.limits` on cgroup v1 (this host's controllers sit under
//! `/sys/fs/cgroup/<controller>`), in cgroups svcnet owns: `<own cgroup>/svcnet/<id>` per
//! controller, made by the shim before it starts runc, removed by the shim when the container
//! has ended. runc puts the container in `svcnet/<id>/ctr` below it (and removes that one).
//!
//! The limits sit on the parent rather than in the runtime configuration so that the OOM
//! notification (cgroup v1's `cgroup.event_control` eventfd on `memory.oom_control`, what
//! containerd listens to) is registered on a cgroup the shim owns and outlives runc's: an
//! OOM in the container (whose limit is the parent's) signals the eventfd, and the shim reads
//! it when the container has ended — the exit becomes `OOMKilled`, as containerd reports it.
//!
//! Values as the kubelet computes them: memory `limit_in_bytes` = the limit; cpu
//! `cfs_quota_us` = millicores × 100 ms / 1000 (`milliCPUToQuota`, at least 1 ms) with
//! `cfs_period_us` = 100 ms.

use std::path::PathBuf;

use super::spec::Limits;
use super::CGROUP_PARENT;

/// The leaf runc makes below the container's cgroup.
pub const RUNTIME_LEAF: &str = "ctr";

/// `(hierarchy directory under /sys/fs/cgroup, path of the calling process's cgroup in it)`,
/// from `/proc/self/cgroup`: each v1 controller, named hierarchies (`name=systemd` →
/// `systemd`, where runc makes cgroups too) and the v2 one (`unified`).
fn own_cgroups() -> Vec<(String, String)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let path = path.trim_start_matches('/').to_string();
            Some(if ctrls.is_empty() {
                vec![("unified".to_string(), path)]
            } else {
                ctrls
                    .split(',')
                    .map(|c| (c.trim_start_matches("name=").to_string(), path.clone()))
                    .collect::<Vec<_>>()
            })
        })
        .flatten()
        .collect()
}

fn dir_of(controller: &str, own: &str, id: &str) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(own)
        .join(CGROUP_PARENT)
        .join(id)
}

/// The container's cgroup (`svcnet/<id>` below the caller's own in each controller).
pub struct ContainerCgroup {
    id: String,
    /// Signalled by the kernel when the memory cgroup is out of memory.
    oom: Option<nix::sys::eventfd::EventFd>,
    /// The memory cgroup with the limit.
    memory_dir: Option<PathBuf>,
}

/// Registers an eventfd for OOM notifications of the memory cgroup `dir`.
fn oom_eventfd(dir: &std::path::Path) -> std::io::Result<nix::sys::eventfd::EventFd> {
    use nix::sys::eventfd::{EfdFlags, EventFd};
    use std::os::fd::AsRawFd;
    let control = std::fs::File::open(dir.join("memory.oom_control"))?;
    let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
    std::fs::write(
        dir.join("cgroup.event_control"),
        format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
    )?;
    Ok(efd)
}

impl ContainerCgroup {
    /// Makes the cgroups `limits` need and writes the limits.
    pub fn create(id: &str, limits: &Limits) -> std::io::Result<Self> {
        let own = own_cgroups();
        let path = |c: &str| {
            own.iter()
                .find(|(ctrl, _)| ctrl == c)
                .map(|(ctrl, p)| dir_of(ctrl, p, id))
        };
        let mut writes: Vec<(PathBuf, &str, String)> = Vec::new();
        let mut memory_dir = None;
        if let (Some(bytes), Some(dir)) = (limits.memory_bytes, path("memory")) {
            memory_dir = Some(dir.clone());
            writes.push((dir, "memory.limit_in_bytes", bytes.to_string()));
        }
        if let (Some(quota), Some(dir)) = (limits.cpu_quota, path("cpu")) {
            writes.push((dir.clone(), "cpu.cfs_period_us", "100000".to_string()));
            writes.push((dir, "cpu.cfs_quota_us", quota.to_string()));
        }
        for (dir, file, value) in writes {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(file), value).map_err(|e| {
                std::io::Error::other(format!("writing {}: {e}", dir.join(file).display()))
            })?;
        }
        let oom = match &memory_dir {
            Some(dir) => Some(oom_eventfd(dir)?),
            None => None,
        };
        Ok(ContainerCgroup {
            id: id.to_string(),
            oom,
            memory_dir,
        })
    }

    /// The runtime configuration's `cgroupsPath` (relative: below runc's own cgroup, which is
    /// the shim's).
    pub fn runtime_path(id: &str) -> String {
        format!("{CGROUP_PARENT}/{id}/{RUNTIME_LEAF}")
    }

    /// Whether the container ran out of memory (and the kernel killed a process of it): the
    /// OOM eventfd was signalled. Call before [`ContainerCgroup::remove`] (removing the cgroup
    /// signals it too).
    pub fn oom_killed(&self) -> bool {
        self.oom
            .as_ref()
            .is_some_and(|e| e.read().is_ok_and(|n| n > 0))
    }

    /// Whether the container's memory use ever reached its limit (`memory.failcnt`): with an
    /// exit by SIGKILL, an OOM kill whose notification was missed (the kernel notifies only
    /// the OOM killer that takes the cgroup's OOM lock).
    pub fn hit_memory_limit(&self) -> bool {
        self.memory_dir.as_ref().is_some_and(|d| {
            std::fs::read_to_string(d.join("memory.failcnt"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    }

    /// Removes the container's cgroups in every controller (the runtime's leaf first, if a
    /// killed runc left it).
    pub fn remove(&self) {
        remove(&self.id);
    }
}

/// Removes `svcnet/<id>` (and its leaf) in every controller; empty ones only.
pub fn remove(id: &str) {
    for (c, p) in own_cgroups() {
        let dir = dir_of(&c, &p, id);
        let _ = std::fs::remove_dir(dir.join(RUNTIME_LEAF));
        let _ = std::fs::remove_dir(&dir);
    }
}

/// Removes the `svcnet` parents in every hierarchy when empty (`rmdir` fails on a cgroup that
/// still has children, e.g. another cluster's on the same host).
pub fn remove_parents() {
    for (c, p) in own_cgroups() {
        let _ = std::fs::remove_dir(
            PathBuf::from("/sys/fs/cgroup")
                .join(c)
                .join(p)
                .join(CGROUP_PARENT),
        );
    }
}
