//! Containers from images under a real OCI runtime: what containerd's CRI runtime service and
//! its runc shim are to a kubelet.
//!
//! - [`spec`]: the OCI runtime configuration (`config.json`, written with oci-spec) — process
//!   arguments, environment, user, namespaces, mounts, capabilities, limits — pure;
//! - [`rootfs`]: the overlayfs root filesystem over the image's layers;
//! - [`cgroups`]: `resources.limits` on cgroups of svcnet's own, and OOM kills;
//! - [`pause`]: the process holding a pod's shared UTS and IPC namespaces;
//! - this file: [`OciHandle`], one container under runc — `runc run` in the foreground (the
//!   shim, [`crate::shim`], runs it, so the container's stdout/stderr are the shim's pipes and
//!   its exit code is runc's), `runc exec` for `kubectl exec` and exec probes, `runc kill`,
//!   `runc delete`, and [`cleanup_node`] for `svcnet down`.
//!
//! The runtime is runc (Debian's `runc`), containerd's default: crun 1.8 refuses a host whose
//! cgroup v1 controllers sit beside a cgroup2 mount ("cgroups in hybrid mode not supported"),
//! which runc handles. Each container's cgroup is `svcnet/<id>/ctr` below runc's own (made and
//! removed by runc, its `svcnet/<id>` parent by the shim, [`cgroups`]); the state of the node's containers is under `<node data>/runc` (runc's
//! `--root`), not `/run/runc`.

pub mod cgroups;
pub mod pause;
pub mod rootfs;
pub mod spec;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// The OCI runtime (containerd's default, `io.containerd.runc.v2` → runc).
pub const RUNC: &str = "/usr/bin/runc";

/// The parent of every container cgroup svcnet creates (relative to runc's own cgroup).
pub const CGROUP_PARENT: &str = "svcnet";

/// One container under the OCI runtime; kept in `<container dir>/oci.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciHandle {
    pub runtime: PathBuf,
    /// runc's `--root` (the node's).
    pub root: PathBuf,
    /// The container ID: `<pod uid>-<container name>`.
    pub id: String,
}

/// Everything the shim needs to run a container under the OCI runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciRun {
    pub handle: OciHandle,
    /// The bundle directory (`config.json`).
    pub bundle: PathBuf,
    pub rootfs: rootfs::Overlay,
    /// `resources.limits`, put on the container's cgroup by the shim ([`cgroups`]).
    #[serde(default)]
    pub limits: spec::Limits,
}

fn oci_file(dir: &Path) -> PathBuf {
    dir.join("oci.json")
}

/// Where runc writes the container's init pid once it is created (absent: it never started).
pub fn init_pid_file(dir: &Path) -> PathBuf {
    dir.join("init.pid")
}

/// runc's own log (JSON lines; its errors, e.g. why a container could not start).
pub fn runtime_log_file(dir: &Path) -> PathBuf {
    dir.join("runc.log")
}

impl OciHandle {
    pub fn new(node_dir: &Path, pod_uid: &str, container: &str) -> Self {
        OciHandle {
            runtime: PathBuf::from(RUNC),
            root: runtime_root(node_dir),
            id: format!("{pod_uid}-{container}"),
        }
    }

    /// The handle saved in a container's directory (`None`: a process container).
    pub fn load(dir: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(oci_file(dir)).ok()?).ok()
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            oci_file(dir),
            serde_json::to_vec(self).expect("serializable"),
        )
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root").arg(&self.root);
        c
    }

    /// `runc run` in the foreground: the container's stdio are this command's.
    pub fn run_command(&self, bundle: &Path, dir: &Path) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(runtime_log_file(dir))
            .arg("--log-format")
            .arg("json")
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(init_pid_file(dir))
            .arg(&self.id);
        c
    }

    /// `runc exec`: `argv` in the container's namespaces, root and cgroup, with its
    /// environment (plus `env`, `NAME=value`), user and working directory; with `tty`, on a
    /// terminal runc makes in the container and copies to and from its own stdio (which should
    /// be a terminal too: runc passes on its size and resizes).
    pub fn exec_command(&self, env: &[&str], tty: bool, argv: &[String]) -> Command {
        let mut c = self.command();
        c.arg("exec");
        if tty {
            c.arg("--tty");
        }
        for e in env {
            c.arg("--env").arg(e);
        }
        c.arg(&self.id).args(argv);
        c
    }

    /// `runc kill` (`all`: every process of the container, as containerd's `KillAll` on stop).
    pub fn kill(&self, sig: Signal, all: bool) -> bool {
        let mut c = self.command();
        c.arg("kill");
        if all {
            c.arg("--all");
        }
        quiet(c.arg(&self.id).arg(sig.as_str().trim_start_matches("SIG")))
    }

    /// `runc delete --force`: stops what runs and removes the state and the cgroup.
    pub fn delete(&self) -> bool {
        quiet(self.command().arg("delete").arg("--force").arg(&self.id))
    }
}

fn quiet(c: &mut Command) -> bool {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// runc's `--root` for the containers of the node whose data directory is `node_dir`.
pub fn runtime_root(node_dir: &Path) -> PathBuf {
    node_dir.join("runc")
}

/// Whether the OCI runtime is installed.
pub fn available() -> bool {
    Path::new(RUNC).is_file()
}

/// Signals the container whose directory is `dir`, if it runs under the OCI runtime
/// (`false`: it is a process container, the caller signals its process group).
pub fn signal(dir: &Path, sig: Signal) -> bool {
    let Some(h) = OciHandle::load(dir) else {
        return false;
    };
    h.kill(sig, sig == Signal::SIGKILL);
    true
}

/// Removes every container the node's runtime root still knows (`svcnet down`, a pod removed
/// while the agent was away): `runc delete --force` each, which also removes its cgroup.
pub fn cleanup_node(node_dir: &Path) {
    let root = runtime_root(node_dir);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    for e in entries.flatten() {
        let h = OciHandle {
            runtime: PathBuf::from(RUNC),
            root: root.clone(),
            id: e.file_name().to_string_lossy().into_owned(),
        };
        h.delete();
        cgroups::remove(&h.id);
    }
    cgroups::remove_parents();
}

/// Why the container under `dir` did not start, when it did not: runc's last error, in the
/// words containerd wraps it in (`StartError` in the container's status).
pub fn start_error(dir: &Path) -> Option<String> {
    if init_pid_file(dir).exists() {
        return None;
    }
    let log = std::fs::read_to_string(runtime_log_file(dir)).unwrap_or_default();
    let msg = log
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
        .unwrap_or_else(|| "the OCI runtime did not start the container".to_string());
    let msg = msg.strip_prefix("runc run failed: ").unwrap_or(&msg);
    Some(format!(
        "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: {msg}: unknown"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_error_reads_runc_log() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            runtime_log_file(dir.path()),
            "{\"level\":\"error\",\"msg\":\"runc run failed: unable to start container process: exec: \\\"nosuch\\\": executable file not found in $PATH\"}\n",
        )
        .unwrap();
        assert_eq!(
            start_error(dir.path()).unwrap(),
            "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH: unknown"
        );
        std::fs::write(init_pid_file(dir.path()), "1").unwrap();
        assert_eq!(start_error(dir.path()), None);
        let h = OciHandle::new(Path::new("/d/nodes/n1"), "uid", "web");
        assert_eq!(h.id, "uid-web");
        assert_eq!(h.root, Path::new("/d/nodes/n1/runc"));
    }
}
