//! The pod's holder of its shared namespaces — the pause container's job in Kubernetes: one
//! process per pod from images (`svcnet pause`), in the pod's network namespace, with the pod's
//! own UTS namespace (its hostname) and IPC namespace, that sleeps until the pod is removed.
//! Every container of the pod joins its UTS and IPC namespaces (`/proc/<pid>/ns/uts`, `ipc`),
//! so they share hostname and System V IPC / POSIX message queues, and a container that
//! restarts rejoins them.
//!
//! With `shareProcessNamespace: true` it also holds the pod's PID namespace, as the pause
//! container does under containerd: it unshares one and starts its first process
//! (`svcnet pause --pid-ns-init`), PID 1 there, which reaps the orphans of the pod's
//! containers (pause.c's `sigreap`); every container joins that namespace
//! (`/proc/<pid>/ns/pid_for_children` of the holder), so each sees the others' processes.
//! The init dies with the holder (parent-death signal), and the kernel kills whatever is left
//! in the namespace with it.
//!
//! It is started in its own session (it outlives a restarted agent, which finds it again by
//! `<pod dir>/pause.pid`), and killed with the pod — or with the pod's network namespace by
//! `svcnet down`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `svcnet pause`'s main, in the UTS (with the pod's hostname) and IPC namespaces [`start`]
/// made before its exec: with `share_pid` a new PID namespace and its init, then sleep forever
/// (or until the init ends).
pub fn main(hostname: &str, share_pid: bool) -> std::io::Result<()> {
    use nix::sched::{unshare, CloneFlags};
    // The UTS (with the hostname) and IPC namespaces were made before exec ([`start`]).
    if share_pid {
        unshare(CloneFlags::CLONE_NEWPID)?;
        // The first child is the namespace's PID 1.
        let mut init = Command::new(std::env::current_exe()?)
            .args([
                "pause",
                "--pid-ns-init",
                "--hostname",
                hostname,
                "--pod-dir",
            ])
            .arg(pod_dir_arg())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let _ = init.wait();
        return Err(std::io::Error::other("the pod's PID namespace init ended"));
    }
    loop {
        nix::unistd::pause();
    }
}

/// This process's `--pod-dir` (names the init too, for `svcnet down`).
fn pod_dir_arg() -> std::ffi::OsString {
    let mut args = std::env::args_os().skip_while(|a| a != "--pod-dir");
    args.nth(1).unwrap_or_default()
}

/// PID 1 of a pod's shared PID namespace: dies with the holder, reaps every child reparented
/// to it (pause.c's `sigreap`), sleeps otherwise.
pub fn pid_ns_init() -> std::io::Result<()> {
    use nix::sys::signal::{SigSet, SigmaskHow};
    use nix::sys::wait::{waitpid, WaitPidFlag};
    // (Should the holder die before this line, `stop` kills its init by pid too.)
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), None)?;
    loop {
        // Reap every child that has ended, then wait for the next SIGCHLD (blocked, so one
        // that arrives in between stays pending).
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if status == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
        chld.wait()?;
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

/// Starts the pod's pause process in `netns` (`exe` is the svcnet binary); with `share_pid`
/// it holds the pod's PID namespace too (`shareProcessNamespace`).
pub fn start(
    exe: &Path,
    netns: &str,
    hostname: &str,
    pod_dir: &Path,
    share_pid: bool,
) -> std::io::Result<i32> {
    if let Some(pid) = running(pod_dir) {
        return Ok(pid);
    }
    let mut cmd = Command::new(exe);
    cmd.arg("pause");
    if share_pid {
        cmd.arg("--share-pid");
    }
    cmd.arg("--hostname")
        .arg(hostname)
        .arg("--pod-dir")
        .arg(pod_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let ns = svcnet_netns::NetNs::open(netns).map_err(std::io::Error::other)?;
    // Its UTS and IPC namespaces are made before exec: they exist once `spawn` returns.
    svcnet_netns::enter_pod_on_exec(&mut cmd, &ns, hostname).map_err(std::io::Error::other)?;
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    std::fs::write(pid_file(pod_dir), pid.to_string())?;
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    if !share_pid {
        return Ok(pid);
    }
    // The PID namespace exists once it has unshared it and its init runs: wait for that.
    let our_pid_ns = std::fs::read_link("/proc/self/ns/pid").ok();
    for _ in 0..400 {
        let ns = std::fs::read_link(namespace_path(pid, PID_NS)).ok();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
        if ns.is_some() && ns != our_pid_ns && children.is_ok_and(|c| !c.trim().is_empty()) {
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
        // The init of a shared PID namespace first (its death ends what is left there).
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
        for child in children.unwrap_or_default().split_whitespace() {
            if let Ok(child) = child.parse() {
                let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
            }
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file(pod_dir));
}

/// The shared PID namespace's file (of the holder's children: its init and the containers).
pub const PID_NS: &str = "pid_for_children";

/// The namespace files containers join (`uts`, `ipc`, [`PID_NS`]).
pub fn namespace_path(pid: i32, kind: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{kind}"))
}
