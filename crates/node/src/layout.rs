//! Where a node agent keeps each pod, and what it names the pod's network namespace: the
//! kubelet's `/var/lib/kubelet/pods/<uid>/` layout, for tools that find a pod from outside the
//! agent (`svcnet exec POD`, `svcnet down`).
//!
//! ```text
//! <node data dir>/ipam.json                         the node's pod addresses, by pod uid
//! <node data dir>/pods/<uid>/                       one pod: `started`, `sandbox.json`
//! <node data dir>/pods/<uid>/files/                 resolv.conf, hosts, hostname (bound over /etc/...)
//! <node data dir>/pods/<uid>/containers/<name>/     one container: `meta.json` (the agent's),
//!                                                   `pid`, `exit.json` (its shim's), <restart>.log
//! ```
//!
//! Modes: every directory is 0700 and every file 0600 (root's alone: pods' logs, their
//! environment in `meta.json`, the node's addresses), except the pod's `/etc` files, 0644 as the
//! kubelet writes `etc-hosts`, since a container's processes may run as any user and read them
//! through their bind mounts (which do not traverse the 0700 directory). The kubelet makes its
//! root, pods and each pod's directory 0750 (`setupDataDirs`, `makePodDataDirs`); containerd
//! writes logs 0640. The agent creates them so ([`create_dir`], [`write_file`], [`open_log`])
//! and, at start, takes back what an older agent left open ([`prepare_node_dir`]): every
//! directory under `pods/`, and `ipam.json`; a file under `pods/` written then keeps its mode
//! but is out of reach behind its directory.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The pod's `/etc/resolv.conf`.
pub const RESOLV_CONF: &str = "resolv.conf";
/// The pod's `/etc/hosts`.
pub const HOSTS: &str = "hosts";
/// The pod's `/etc/hostname`.
pub const HOSTNAME: &str = "hostname";
/// The files the agent writes for each pod and binds over `/etc/<file>` in its containers.
pub const POD_FILES: [&str; 3] = [RESOLV_CONF, HOSTS, HOSTNAME];

/// The data dir of node `node` when several nodes share `data_dir` (`svcnet up`).
pub fn node_dir(data_dir: &Path, node: &str) -> PathBuf {
    data_dir.join("nodes").join(node)
}

/// The node's pod-address allocations.
pub fn ipam_file(node_dir: &Path) -> PathBuf {
    node_dir.join("ipam.json")
}

/// Every pod's directory lives here.
pub fn pods_dir(node_dir: &Path) -> PathBuf {
    node_dir.join("pods")
}

/// The pod `uid`'s directory.
pub fn pod_dir(node_dir: &Path, uid: &str) -> PathBuf {
    pods_dir(node_dir).join(uid)
}

/// When the agent first started the pod (its `status.startTime`, kept across agent restarts).
pub fn pod_started_file(pod_dir: &Path) -> PathBuf {
    pod_dir.join("started")
}

/// The pod's sandbox as it was made, for a restarted agent to adopt or remove.
pub fn pod_sandbox_file(pod_dir: &Path) -> PathBuf {
    pod_dir.join("sandbox.json")
}

/// Every container of the pod has its directory here.
pub fn containers_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("containers")
}

/// The directory of the pod's container `name`.
pub fn container_dir(pod_dir: &Path, name: &str) -> PathBuf {
    containers_dir(pod_dir).join(name)
}

/// What the agent keeps of a container across its own restarts (restart count, last exit).
pub fn container_meta_file(container_dir: &Path) -> PathBuf {
    container_dir.join("meta.json")
}

/// The container process's pid, written by its shim.
pub fn container_pid_file(container_dir: &Path) -> PathBuf {
    container_dir.join("pid")
}

/// The container's exit, written by its shim when it ended.
pub fn container_exit_file(container_dir: &Path) -> PathBuf {
    container_dir.join("exit.json")
}

/// The CRI log of the container's instance `restart` (0 for the first, then one per restart).
pub fn container_log(container_dir: &Path, restart: i32) -> PathBuf {
    container_dir.join(format!("{restart}.log"))
}

/// Where the pod's `/etc` files are written ([`POD_FILES`]).
pub fn pod_files_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("files")
}

/// The pod's network namespace: `<prefix>pod-<first 13 characters of its uid>` (short enough
/// for the kernel's 15-character interface names derived from it, unique enough per node).
pub fn pod_netns(prefix: &str, uid: &str) -> String {
    format!("{prefix}pod-{}", &uid[..uid.len().min(13)])
}

/// The binds `(file, /etc/<name>)` of every pod file in `files_dir`: what each container of the
/// pod gets.
pub fn etc_binds(files_dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    POD_FILES
        .iter()
        .map(|f| (files_dir.join(f), PathBuf::from("/etc").join(f)))
        .collect()
}

/// The binds of the pod files that exist, `(file, /etc/<name>)`, for a process entering the pod.
pub fn pod_file_binds(pod_dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    etc_binds(&pod_files_dir(pod_dir))
        .into_iter()
        .filter(|(s, _)| s.exists())
        .collect()
}

/// The mode of every directory under the node's data dir.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file the agent and its shims write, but [`POD_FILES`].
pub const FILE_MODE: u32 = 0o600;
/// The mode of [`POD_FILES`] (the kubelet's `etc-hosts`).
pub const POD_FILE_MODE: u32 = 0o644;

/// Create `dir` and its missing parents [`DIR_MODE`]; an existing `dir` is set to it.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
}

/// Write `bytes` to `path` atomically (a temporary file renamed over it) with `mode`.
pub fn write_file_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    // A temporary file left by a crash keeps its old mode otherwise.
    f.set_permissions(Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    drop(f);
    std::fs::rename(tmp, path)
}

/// [`write_file_mode`] with [`FILE_MODE`].
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file_mode(path, bytes, FILE_MODE)
}

/// Open a container's log to append to, created [`FILE_MODE`].
pub fn open_log(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// Make the node's data dir ready: created [`DIR_MODE`] if missing (an existing one keeps the
/// mode its owner gave it: it may be shared), then what the agent owns in it taken back from an
/// older agent — `pods/` and every directory under it set to [`DIR_MODE`] (symbolic links not
/// followed), the IPAM file to [`FILE_MODE`].
pub fn prepare_node_dir(node_dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(node_dir)?;
    let pods = pods_dir(node_dir);
    create_dir(&pods)?;
    let mut dirs = vec![pods];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                let path = entry.path();
                std::fs::set_permissions(&path, Permissions::from_mode(DIR_MODE))?;
                dirs.push(path);
            }
        }
    }
    match std::fs::set_permissions(ipam_file(node_dir), Permissions::from_mode(FILE_MODE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn modes_of_what_the_agent_writes() {
        let tmp = tempfile::tempdir().unwrap();
        // A new data dir, and its parents, are created 0700.
        let fresh = tmp.path().join("new").join("n");
        prepare_node_dir(&fresh).unwrap();
        for d in [&fresh, fresh.parent().unwrap(), &pods_dir(&fresh)] {
            assert_eq!(mode(d), DIR_MODE, "{}", d.display());
        }
        // An older agent's tree, world-readable, in a data dir its owner made 0755.
        let node = tmp.path().join("nodes").join("n");
        let old = container_dir(&pod_dir(&node, "u1"), "c");
        std::fs::create_dir_all(&old).unwrap();
        for d in [&node, &pods_dir(&node), &pod_dir(&node, "u1"), &old] {
            std::fs::set_permissions(d, Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(ipam_file(&node), "{}").unwrap();
        std::fs::set_permissions(ipam_file(&node), Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink("/tmp", pods_dir(&node).join("link")).unwrap();
        prepare_node_dir(&node).unwrap();
        assert_eq!(mode(&node), 0o755, "the data dir itself is its owner's");
        for d in [&pods_dir(&node), &pod_dir(&node, "u1"), &old] {
            assert_eq!(mode(d), DIR_MODE, "{}", d.display());
        }
        assert_eq!(mode(&ipam_file(&node)), FILE_MODE);
        assert_eq!(mode(Path::new("/tmp")) & 0o777, 0o777, "links not followed");

        let c = container_dir(&pod_dir(&node, "u2"), "c");
        create_dir(&c).unwrap();
        assert_eq!(mode(&c), DIR_MODE);
        assert_eq!(mode(&containers_dir(&pod_dir(&node, "u2"))), DIR_MODE);
        write_file(&container_meta_file(&c), b"{}").unwrap();
        assert_eq!(mode(&container_meta_file(&c)), FILE_MODE);
        // Over a stale world-readable temporary file.
        let pid = container_pid_file(&c);
        std::fs::write(pid.with_extension("tmp"), "x").unwrap();
        std::fs::set_permissions(pid.with_extension("tmp"), Permissions::from_mode(0o666)).unwrap();
        write_file(&pid, b"42").unwrap();
        assert_eq!(mode(&pid), FILE_MODE);
        assert_eq!(std::fs::read_to_string(&pid).unwrap(), "42");
        let log = container_log(&c, 0);
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, Permissions::from_mode(0o644)).unwrap();
        drop(open_log(&log).unwrap());
        assert_eq!(mode(&log), FILE_MODE);
    }

    #[test]
    fn layout_of_a_pod() {
        let node = node_dir(Path::new("/d"), "node-1");
        assert_eq!(node, Path::new("/d/nodes/node-1"));
        let pod = pod_dir(&node, "0123456789abcdef");
        assert_eq!(pod, Path::new("/d/nodes/node-1/pods/0123456789abcdef"));
        assert_eq!(
            pod_files_dir(&pod),
            Path::new("/d/nodes/node-1/pods/0123456789abcdef/files")
        );
        assert_eq!(
            pod_netns("svcnet-abc-", "0123456789abcdef"),
            "svcnet-abc-pod-0123456789abc"
        );
        assert_eq!(pod_netns("p-", "short"), "p-pod-short");
        let c = container_dir(&pod, "web");
        assert_eq!(
            container_log(&c, 2),
            Path::new("/d/nodes/node-1/pods/0123456789abcdef/containers/web/2.log")
        );
        assert_eq!(
            etc_binds(Path::new("/f"))[0],
            ("/f/resolv.conf".into(), "/etc/resolv.conf".into())
        );
    }
}
