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

#[cfg(test)]
mod tests {
    use super::*;

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
