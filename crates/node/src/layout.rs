//! Where a node agent keeps each pod, and what it names the pod's network namespace: the
//! kubelet's `/var/lib/kubelet/pods/<uid>/` layout, for tools that find a pod from outside the
//! agent (`svcnet exec POD`, `svcnet down`).
//!
//! ```text
//! <node data dir>/pods/<uid>/           one pod: `started`, `sandbox.json`, containers/
//! <node data dir>/pods/<uid>/files/     resolv.conf, hosts, hostname (bound over /etc/...)
//! ```

use std::path::{Path, PathBuf};

/// The files the agent writes for each pod and binds over `/etc/<file>` in its containers.
pub const POD_FILES: [&str; 3] = ["resolv.conf", "hosts", "hostname"];

/// The data dir of node `node` when several nodes share `data_dir` (`svcnet up`).
pub fn node_dir(data_dir: &Path, node: &str) -> PathBuf {
    data_dir.join("nodes").join(node)
}

/// Every pod's directory lives here.
pub fn pods_dir(node_dir: &Path) -> PathBuf {
    node_dir.join("pods")
}

/// The pod `uid`'s directory.
pub fn pod_dir(node_dir: &Path, uid: &str) -> PathBuf {
    pods_dir(node_dir).join(uid)
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

/// The binds of the pod files that exist, `(file, /etc/<name>)`, for a process entering the pod.
pub fn pod_file_binds(pod_dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let files = pod_files_dir(pod_dir);
    POD_FILES
        .iter()
        .map(|f| (files.join(f), PathBuf::from("/etc").join(f)))
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
    }
}
