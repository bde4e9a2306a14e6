//! Exec probes' commands (the kubelet's `pkg/probe/exec`, and the runtime's `ExecSync` that
//! runs them in the container): an [`ExecRunner`] runs a command with a deadline and returns
//! its exit code and the first 10 KiB of its combined output.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::AsyncReadExt;

use super::dial::netns_io;

/// How much of an exec probe's output is read (`pkg/probe/exec`'s `maxReadLength`).
const MAX_READ: usize = 10 * 1024;

/// Runs the commands of exec probes.
pub trait ExecRunner: Send + Sync {
    /// Runs `argv` and returns its exit code (128 + signal when killed by one) and its stdout
    /// and stderr combined (the first 10 KiB). After `timeout` the command's process group is
    /// killed and the result is an error of kind [`io::ErrorKind::TimedOut`].
    fn run(
        &self,
        argv: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, io::Result<(i32, Vec<u8>)>>;
}

/// Runs the command as a plain child process of the agent (inheriting its environment).
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExec;

impl ExecRunner for LocalExec {
    fn run(
        &self,
        argv: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, io::Result<(i32, Vec<u8>)>> {
        Box::pin(async move {
            let (program, args) = argv.split_first().ok_or_else(no_command)?;
            let mut cmd = std::process::Command::new(program);
            cmd.args(args);
            run_command(cmd, timeout).await
        })
    }
}

/// Runs the command inside a pod, the way its containers run: in the pod's network namespace,
/// with its hostname and bind mounts (see [`svcnet_netns::enter_on_exec`]), with exactly `env`
/// as environment and `workdir` as working directory.
#[derive(Clone, Debug, Default)]
pub struct PodExec {
    pub netns: String,
    pub hostname: Option<String>,
    pub binds: Vec<(PathBuf, PathBuf)>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    /// A container from an image: the command runs through the OCI runtime (`runc exec`).
    pub oci: Option<crate::container::OciHandle>,
}

impl ExecRunner for PodExec {
    fn run(
        &self,
        argv: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, io::Result<(i32, Vec<u8>)>> {
        let this = self.clone();
        Box::pin(async move {
            let (program, args) = argv.split_first().ok_or_else(no_command)?;
            if let Some(oci) = &this.oci {
                return run_command(oci.exec_command(&[], false, &argv), timeout).await;
            }
            let mut cmd = std::process::Command::new(program);
            cmd.args(args)
                .env_clear()
                .envs(this.env.iter().map(|(k, v)| (k, v)));
            if let Some(wd) = &this.workdir {
                cmd.current_dir(wd);
            }
            let ns = svcnet_netns::NetNs::open(&this.netns).map_err(netns_io)?;
            svcnet_netns::enter_on_exec(&mut cmd, &ns, this.hostname.as_deref(), &this.binds)
                .map_err(netns_io)?;
            run_command(cmd, timeout).await
        })
    }
}

fn no_command() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "no command given")
}

/// Kills a process group when dropped, unless disarmed.
struct GroupKiller(Option<i32>);

impl GroupKiller {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` in its own process group with stdout and stderr on one pipe, for `timeout`.
async fn run_command(
    mut cmd: std::process::Command,
    timeout: Duration,
) -> io::Result<(i32, Vec<u8>)> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    let deadline = tokio::time::Instant::now() + timeout;
    let (r, w): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let w2 = w.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2))
        .process_group(0);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let spawned = cmd.spawn();
    // The command holds our copies of the write end: close them so the pipe ends with the child.
    drop(cmd);
    let mut child = spawned?;
    // Killed if this future is dropped (the worker aborted) before the child is reaped.
    let mut group = GroupKiller(child.id().map(|p| p as i32));
    let mut reader = tokio::net::unix::pipe::Receiver::from_owned_fd(r)?;

    let mut out = Vec::new();
    let mut status = None;
    let mut output_open = false;
    {
        let read_all = async {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = MAX_READ.saturating_sub(out.len());
                        out.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        };
        let wait = child.wait();
        tokio::pin!(read_all, wait);
        let mut eof = false;
        while status.is_none() || !eof {
            tokio::select! {
                st = &mut wait, if status.is_none() => status = Some(st?),
                _ = &mut read_all, if !eof => eof = true,
                _ = tokio::time::sleep_until(deadline) => {
                    output_open = !eof;
                    break;
                }
            }
        }
    }
    match status {
        Some(st) => {
            if output_open {
                // The command ended but left processes holding its output open past the
                // deadline: they are killed with its group (only then are they surely there).
                group.kill();
            } else {
                group.0 = None;
            }
            let code = st.code().or(st.signal().map(|s| 128 + s)).unwrap_or(255);
            Ok((code, out))
        }
        None => {
            group.kill();
            let _ = child.wait().await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("command timed out after {timeout:?}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use super::*;
    use crate::probe::{Connector, NetnsConnector};

    #[tokio::test]
    async fn netns_connector_without_namespace() {
        let c = NetnsConnector {
            netns: format!("svcnet-test-absent-{}", std::process::id()),
        };
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(c.connect(addr).await.is_err());
        let e = PodExec {
            netns: c.netns.clone(),
            ..Default::default()
        };
        assert!(e
            .run(vec!["true".into()], Duration::from_secs(1))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn local_exec_output_and_strays() {
        let (code, out) = LocalExec
            .run(
                vec![
                    "sh".into(),
                    "-c".into(),
                    "echo a; echo b >&2; kill -9 $$".into(),
                ],
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        assert_eq!((code, out.as_slice()), (137, &b"a\nb\n"[..]));
        // Output capped at 10 KiB.
        let (code, out) = LocalExec
            .run(
                vec!["sh".into(), "-c".into(), "head -c 100000 /dev/zero".into()],
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        assert_eq!((code, out.len()), (0, MAX_READ));
        // A background process keeping the output open is killed at the deadline.
        let start = Instant::now();
        let (code, _) = LocalExec
            .run(
                vec!["sh".into(), "-c".into(), "sleep 30 & exit 0".into()],
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert_eq!(code, 0);
        assert!(start.elapsed() < Duration::from_secs(3));
        let err = LocalExec
            .run(vec!["sleep".into(), "5".into()], Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
