//! The pod's holder of its shared namespaces — the pause container's job in Kubernetes: one
//! process per pod from images (`svcnet pause`), in the pod's network namespace, with the pod's
//! own UTS namespace (its hostname) and IPC namespace, that sleeps until the pod is removed.
//! Every container of the pod joins its UTS and IPC namespaces (`/proc/<pid>/ns/uts`, `ipc`),
//! so they share hostname and System V IPC / POSIX message queues, and a container that
//! restarts rejoins them.
//!
//! It is started in its own session (it outlives a restarted agent, which finds it again by
//! `<pod dir>/pause.pid`), and killed with the pod — or with the pod's network namespace by
//! `svcnet down`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `svcnet pause`'s main: the new UTS and IPC namespaces, the hostname, then sleep forever.
pub fn main(hostname: &str) -> std::io::Result<()> {
    use nix::sched::{unshare, CloneFlags};
    unshare(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)?;
    nix::unistd::sethostname(hostname)?;
    loop {
        nix::unistd::pause();
    }
}

fn pid_file(pod_dir: &Path) -> PathBuf {
    pod_dir.join("pause.pid")
}

/// The pod's pause process, if it runs.
pub fn running(pod_dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(pod_dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // The pid could have been reused: it must be a pause of this pod.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let needle = pod_dir.to_string_lossy();
    String::from_utf8_lossy(&cmdline)
        .contains(needle.as_ref())
        .then_some(pid)
}

/// Starts the pod's pause process in `netns` (`exe` is the svcnet binary).
pub fn start(exe: &Path, netns: &str, hostname: &str, pod_dir: &Path) -> std::io::Result<i32> {
    if let Some(pid) = running(pod_dir) {
        return Ok(pid);
    }
    let mut cmd = Command::new(exe);
    cmd.arg("pause")
        .arg("--hostname")
        .arg(hostname)
        .arg("--pod-dir")
        .arg(pod_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let ns = svcnet_netns::NetNs::open(netns).map_err(std::io::Error::other)?;
    svcnet_netns::enter_on_exec(&mut cmd, &ns, None, &[]).map_err(std::io::Error::other)?;
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    std::fs::write(pid_file(pod_dir), pid.to_string())?;
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    // Its namespaces exist once it has unshared them: wait until they differ from ours.
    let ours = std::fs::read_link("/proc/self/ns/ipc").ok();
    for _ in 0..200 {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/ipc")).ok();
        if theirs.is_some() && theirs != ours {
            return Ok(pid);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Err(std::io::Error::other(
        "the pod's pause process did not start",
    ))
}

/// Stops the pod's pause process.
pub fn stop(pod_dir: &Path) {
    if let Some(pid) = running(pod_dir) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file(pod_dir));
}

/// The namespace files containers join.
pub fn namespace_path(pid: i32, kind: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{kind}"))
}
