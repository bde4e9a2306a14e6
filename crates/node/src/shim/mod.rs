//! The container shim (containerd-shim's role): one process per container, started by the agent
//! in its own session. It starts the container process inside the pod's namespaces, writes its
//! output to a log file in the CRI format ([`crate::cri_log`]), and records its exit
//! — so a restarted agent finds containers still running, their logs intact, and the exit code
//! of those that ended while it was away.
//!
//! Files of a container (all written atomically):
//! - `<dir>/pid`: the container process's pid (also its process group); for a container
//!   under the OCI runtime, the shim's own;
//! - `<dir>/exit.json`: `{"exitCode":N,"signal":S,"startedAt":..,"finishedAt":..}` once it ended;
//! - the log file given (appended to across restarts of the container);
//! - `<dir>/attach.sock`: where `kubectl attach` reaches the container's stdio while it runs
//!   ([`stdio`], [`wire`]).

pub mod stdio;
pub mod wire;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use svcnet_netns::NetNs;

use crate::cri_log::{self, now_rfc3339_nano, LogStream};
use crate::layout;
use stdio::HeldStdio;

/// What the shim runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ShimSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    pub netns: String,
    pub hostname: Option<String>,
    /// Bind mounts `(source, target)` in the container's private mount namespace.
    pub binds: Vec<(PathBuf, PathBuf)>,
    pub log: PathBuf,
    /// Where `pid` and `exit.json` go.
    pub dir: PathBuf,
    /// A container from an image: run under the OCI runtime (`argv`, `env`, `netns`, `binds`
    /// are then in its bundle, not used here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<crate::container::OciRun>,
    /// The container's `stdin`, `stdinOnce` and `tty` ([`stdio`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_once: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub started_at: String,
    pub finished_at: String,
    /// Set when the process could not be started at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_error: Option<String>,
    /// The kernel killed it for exceeding its memory limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

/// Copy the container's output on `stream` to the attached sessions as it comes, and to the
/// shared log as CRI lines of `tag` (a last line without a newline as a partial one).
fn pump(mut stream: impl Read, tag: LogStream, log: Arc<Mutex<std::fs::File>>, io: &HeldStdio) {
    let channel = match tag {
        LogStream::Stdout => wire::STDOUT,
        LogStream::Stderr => wire::STDERR,
    };
    let mut buf = vec![0u8; wire::MAX_FRAME];
    let mut line = Vec::new();
    let write = |body: &[u8], full: bool| {
        let out = cri_log::encode_line(&now_rfc3339_nano(), tag, full, body);
        if let Ok(mut f) = log.lock() {
            let _ = f.write_all(&out);
        }
    };
    loop {
        // A terminal's master reads EIO once the last slave is closed: the end, as EOF.
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        io.broadcast(channel, &buf[..n]);
        line.extend_from_slice(&buf[..n]);
        while let Some(i) = line.iter().position(|b| *b == b'\n') {
            write(&line[..i], true);
            line.drain(..=i);
        }
    }
    if !line.is_empty() {
        write(&line, false);
    }
}

/// The shim's main: run the container to completion. Returns the container's exit code.
pub fn run(spec: &ShimSpec) -> std::io::Result<i32> {
    layout::create_dir(&spec.dir)?;
    if let Some(parent) = spec.log.parent() {
        layout::create_dir(parent)?;
    }
    let log = Arc::new(Mutex::new(layout::open_log(&spec.log)?));
    let started_at = now_rfc3339_nano();
    let record_failure = |msg: String| {
        let _ = std::fs::remove_file(wire::socket_file(&spec.dir));
        let rec = ExitRecord {
            exit_code: 128,
            signal: None,
            started_at: started_at.clone(),
            finished_at: now_rfc3339_nano(),
            start_error: Some(msg),
            oom_killed: false,
        };
        let _ = layout::write_file(
            &layout::container_exit_file(&spec.dir),
            &serde_json::to_vec(&rec).expect("serializable"),
        );
    };
    let attach_socket = HeldStdio::bind(&spec.dir);
    let mut cgroup = None;
    let (mut cmd, program) = match &spec.oci {
        Some(oci) => {
            match crate::container::cgroups::ContainerCgroup::create(&oci.handle.id, &oci.limits) {
                Ok(c) => cgroup = Some(c),
                Err(e) => {
                    record_failure(format!(
                        "failed to set the container's resource limits: {e}"
                    ));
                    return Ok(128);
                }
            }
            // The overlay lives in the shim's own mount namespace: it goes when the shim does.
            if let Err(e) = oci.rootfs.mount_in_private_namespace() {
                record_failure(format!(
                    "failed to mount the container's root filesystem: {e}"
                ));
                return Ok(128);
            }
            // What an earlier run of the container (a killed shim) left in the runtime's state.
            oci.handle.delete();
            let _ = std::fs::remove_file(crate::container::init_pid_file(&spec.dir));
            let _ = std::fs::remove_file(crate::container::runtime_log_file(&spec.dir));
            (
                oci.handle.run_command(&oci.bundle, &spec.dir),
                oci.handle.runtime.display().to_string(),
            )
        }
        None => {
            let Some((program, args)) = spec.argv.split_first() else {
                record_failure("no command to run".into());
                return Ok(128);
            };
            let mut cmd = Command::new(program);
            cmd.args(args)
                .env_clear()
                .envs(spec.env.iter().map(|(k, v)| (k, v)));
            if let Some(wd) = &spec.workdir {
                cmd.current_dir(wd);
            }
            let ns = NetNs::open(&spec.netns).map_err(std::io::Error::other)?;
            svcnet_netns::enter_on_exec(&mut cmd, &ns, spec.hostname.as_deref(), &spec.binds)
                .map_err(std::io::Error::other)?;
            (cmd, program.clone())
        }
    };
    // The container's stdio: a terminal (runc relays the container's own terminal to it), or
    // pipes; stdin held open for attach when the container has `stdin`.
    let mut pty_master = None;
    if spec.tty {
        let pty = match open_pty() {
            Ok(p) => p,
            Err(e) => {
                record_failure(format!("failed to allocate a terminal: {e}"));
                return Ok(128);
            }
        };
        cmd.stdin(Stdio::from(pty.slave.try_clone()?))
            .stdout(Stdio::from(pty.slave.try_clone()?))
            .stderr(Stdio::from(pty.slave));
        // A session of its own with the terminal as its controlling one (for job control,
        // and for runc: SIGWINCH on a resize).
        svcnet_netns::controlling_tty_on_exec(&mut cmd);
        pty_master = Some(pty.master);
    } else {
        cmd.stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    }
    let spawned = cmd.spawn();
    // The parent's copies of the terminal's slave go with the command.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            // Kubernetes shows this as StartError with the runtime's message.
            let msg = format!("failed to start container process {program:?}: {e}");
            let line =
                cri_log::encode_line(&now_rfc3339_nano(), LogStream::Stderr, true, msg.as_bytes());
            let _ = log.lock().expect("log lock").write_all(&line);
            record_failure(msg);
            return Ok(128);
        }
    };
    // A process container: its process (group). A container under the OCI runtime: the shim
    // itself, which lives until the exit is recorded (after runc's cleanup) — the agent takes a
    // dead pid without an exit record for a container that disappeared; signals go through
    // `runc kill`.
    let pid = match &spec.oci {
        Some(_) => std::process::id(),
        None => child.id(),
    };
    let (outputs, io) = match pty_master {
        Some(master) => {
            let stdin = match spec.stdin {
                true => Some(std::fs::File::from(master.try_clone()?)),
                false => None,
            };
            let out = std::fs::File::from(master.try_clone()?);
            let io = HeldStdio::new(stdin, Some(master), spec.stdin_once);
            (
                vec![(Box::new(out) as Box<dyn Read + Send>, LogStream::Stdout)],
                io,
            )
        }
        None => {
            let stdin = child
                .stdin
                .take()
                .map(|s| std::fs::File::from(OwnedFd::from(s)));
            let out = child.stdout.take().expect("piped");
            let err = child.stderr.take().expect("piped");
            (
                vec![
                    (Box::new(out) as Box<dyn Read + Send>, LogStream::Stdout),
                    (Box::new(err) as Box<dyn Read + Send>, LogStream::Stderr),
                ],
                HeldStdio::new(stdin, None, spec.stdin_once),
            )
        }
    };
    match attach_socket {
        Ok(listener) => io.serve_on(listener, &spec.dir),
        Err(e) => {
            tracing::warn!(error = %e, dir = %spec.dir.display(), "the container's attach socket")
        }
    }
    layout::write_file(
        &layout::container_pid_file(&spec.dir),
        pid.to_string().as_bytes(),
    )?;
    let pumps: Vec<_> = outputs
        .into_iter()
        .map(|(r, tag)| {
            let (log, io) = (log.clone(), io.clone());
            std::thread::spawn(move || pump(r, tag, log, &io))
        })
        .collect();
    let status = child.wait()?;
    for p in pumps {
        let _ = p.join();
    }
    io.end();
    let (code, signal) = match (status.code(), status.signal()) {
        (Some(c), _) => (c, None),
        (None, Some(s)) => (128 + s, Some(s)),
        _ => (255, None),
    };
    let mut oom_killed = false;
    if let Some(oci) = &spec.oci {
        oom_killed = cgroup
            .as_ref()
            .is_some_and(|c| c.oom_killed() || (code == 137 && c.hit_memory_limit()));
        oci.handle.delete();
        if let Some(c) = &cgroup {
            c.remove();
        }
        // runc exits 1 when it could not start the container at all: a StartError.
        if let Some(msg) = crate::container::start_error(&spec.dir) {
            record_failure(msg);
            return Ok(128);
        }
    }
    let rec = ExitRecord {
        exit_code: code,
        signal,
        started_at,
        finished_at: now_rfc3339_nano(),
        start_error: None,
        oom_killed,
    };
    layout::write_file(
        &layout::container_exit_file(&spec.dir),
        &serde_json::to_vec(&rec).expect("serializable"),
    )?;
    Ok(code)
}

/// A pseudo-terminal for a container with `tty`: the master non-inheritable (the shim's), the
/// slave for the container (runc's stdio).
fn open_pty() -> std::io::Result<nix::pty::OpenptyResult> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
    fcntl(&pty.master, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(std::io::Error::from)?;
    Ok(pty)
}

/// Start a shim for `spec` as a child of the current process, detached into its own session.
/// `exe` is the svcnet binary; the spec travels as JSON in an argument.
pub fn spawn(exe: &Path, spec: &ShimSpec) -> std::io::Result<std::process::Child> {
    let _ = std::fs::remove_file(layout::container_exit_file(&spec.dir));
    let _ = std::fs::remove_file(layout::container_pid_file(&spec.dir));
    layout::create_dir(&spec.dir)?;
    let mut cmd = Command::new(exe);
    cmd.arg("shim")
        .arg(serde_json::to_string(spec).expect("serializable"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd.spawn()
}

pub fn read_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(layout::container_pid_file(dir))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn read_exit(dir: &Path) -> Option<ExitRecord> {
    serde_json::from_slice(&std::fs::read(layout::container_exit_file(dir)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_a_container_in_a_pod_namespace() {
        if !svcnet_netns::testing::can_run(&[]) {
            return;
        }
        let pod = svcnet_netns::testing::ScratchNetns::new("shim").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("resolv.conf"), "nameserver 10.96.0.10\n").unwrap();
        let spec = ShimSpec {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo out $GREETING; hostname; cat /etc/resolv.conf; echo err >&2; exit 3".into(),
            ],
            env: vec![
                ("GREETING".into(), "hi".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            workdir: Some("/tmp".into()),
            netns: pod.name().to_string(),
            hostname: Some("pod-1".into()),
            binds: vec![(dir.path().join("resolv.conf"), "/etc/resolv.conf".into())],
            log: dir.path().join("logs/c/0.log"),
            dir: dir.path().join("c"),
            oci: None,
            ..Default::default()
        };
        assert_eq!(run(&spec).unwrap(), 3);
        let log = std::fs::read_to_string(&spec.log).unwrap();
        let lines: Vec<(&str, &str)> = log
            .lines()
            .map(|l| {
                let mut p = l.splitn(4, ' ');
                let _ts = p.next();
                let stream = p.next().unwrap();
                let _tag = p.next();
                (stream, p.next().unwrap_or(""))
            })
            .collect();
        assert!(lines.contains(&("stdout", "out hi")), "{log}");
        assert!(lines.contains(&("stdout", "pod-1")), "{log}");
        assert!(
            lines.contains(&("stdout", "nameserver 10.96.0.10")),
            "{log}"
        );
        assert!(lines.contains(&("stderr", "err")), "{log}");
        let exit = read_exit(&spec.dir).unwrap();
        assert_eq!((exit.exit_code, exit.signal), (3, None));
        assert!(read_pid(&spec.dir).is_some());

        // A command that does not exist: recorded as a start error, not a crash of the shim.
        let bad = ShimSpec {
            argv: vec!["/nonexistent/nginx".into()],
            dir: dir.path().join("bad"),
            ..spec.clone()
        };
        assert_eq!(run(&bad).unwrap(), 128);
        assert!(read_exit(&bad.dir)
            .unwrap()
            .start_error
            .unwrap()
            .contains("/nonexistent/nginx"));
    }
}
