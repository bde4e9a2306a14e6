//! `exec` over WebSocket (the kubelet's `pkg/kubelet/cri/streaming/remotecommand`, with the
//! runtime's part — starting the command in the container's namespaces — done here too): the
//! command with pipes or a pseudo-terminal, and the exit as a `Status` on the error channel. The
//! channel protocols and the session loop are [`super::stream`]'s.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::Response;
use futures::FutureExt;
use http::{HeaderMap, StatusCode};
use svcnet_netns::NetNs;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy_streams::{self, SpdyUpgrade};
use super::stream::{self, StreamOptions, StreamProtocol, Streams, CH_STDERR, CH_STDOUT};
use super::{not_found, query_pairs, text_response, AppState, ContainerHandle, ParamError};

/// The options of an exec request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub fn from_query(query: Option<&str>) -> Result<ExecOptions, ParamError> {
        let streams = StreamOptions::from_query(query)?;
        let command: Vec<String> = query_pairs(query)
            .into_iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v)
            .collect();
        if command.is_empty() {
            return Err(ParamError::NoCommand);
        }
        Ok(ExecOptions {
            command,
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
            tty: streams.tty,
        })
    }
}

pub(super) async fn get_exec(
    State(st): State<Arc<AppState>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    spdy: SpdyUpgrade,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let opts = match ExecOptions::from_query(query.as_deref()) {
        Ok(o) => o,
        Err(e) => return text_response(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Some(handle) = st.runtime.container(&ns, &pod, &container) else {
        return not_found(&ns, &pod, &container);
    };
    if !handle.running {
        return text_response(
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod \"{ns}/{pod}\" is not running"),
        );
    }
    if spdy.requested() {
        let streams = StreamOptions {
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
            tty: opts.tty,
        };
        return spdy.upgrade(&headers, move |session, protocol| async move {
            let out = exec_streams(protocol, opts, &handle);
            spdy_streams::serve(session, protocol, streams, out).await
        });
    }
    stream::upgrade(ws, &headers, "exec", move |socket, protocol| async move {
        let streams = exec_streams(protocol, opts, &handle);
        stream::serve(socket, protocol, streams).await
    })
}

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A started exec process and its plumbing.
struct Spawned {
    child: tokio::process::Child,
    stdin: Option<BoxWrite>,
    outputs: Vec<(u8, BoxRead)>,
    /// The pty master, for resizes.
    pty: Option<OwnedFd>,
}

/// How `execve` failures read (as runc says them; also `svcnet exec`'s).
pub fn start_error(program: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound if !program.contains('/') => {
            format!("exec: {program:?}: executable file not found in $PATH")
        }
        io::ErrorKind::NotFound => {
            format!("exec: {program:?}: stat {program}: no such file or directory")
        }
        io::ErrorKind::PermissionDenied => format!("exec: {program:?}: permission denied"),
        _ => format!("exec: {program:?}: {e}"),
    }
}

fn set_fd_flags(fd: &OwnedFd, nonblocking: bool) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    if nonblocking {
        let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
        fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    }
    Ok(())
}

fn set_winsize(fd: &OwnedFd, width: u16, height: u16) {
    use std::os::fd::AsFd;
    let _ = svcnet_netns::set_window_size(fd.as_fd(), width, height);
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Start `opts.command` in the container's namespaces. `Err` is the message for the client.
fn spawn_exec(handle: &ContainerHandle, opts: &ExecOptions) -> Result<Spawned, String> {
    let (program, args) = opts.command.split_first().expect("validated: a command");
    let mut cmd = match &handle.oci {
        // The runtime gives the process the container's environment and working directory.
        // With a terminal, runc makes one in the container and relays it to ours.
        Some(oci) => oci.exec_command(
            if opts.tty { &["TERM=xterm"] } else { &[] },
            opts.tty,
            &opts.command,
        ),
        None => {
            let mut cmd = std::process::Command::new(program);
            cmd.args(args)
                .env_clear()
                .envs(handle.env.iter().map(|(k, v)| (k, v)));
            if !handle.env.iter().any(|(k, _)| k == "PATH") {
                cmd.env("PATH", DEFAULT_PATH);
            }
            if let Some(wd) = &handle.workdir {
                cmd.current_dir(wd);
            }
            let ns = NetNs::open(&handle.netns).map_err(|e| e.to_string())?;
            svcnet_netns::enter_on_exec(&mut cmd, &ns, handle.hostname.as_deref(), &handle.binds)
                .map_err(|e| e.to_string())?;
            cmd
        }
    };

    let mut pty_master = None;
    if opts.tty {
        let pty = nix::pty::openpty(None, None).map_err(|e| format!("allocating a tty: {e}"))?;
        let io_err = |e: io::Error| format!("allocating a tty: {e}");
        set_fd_flags(&pty.master, true).map_err(io_err)?;
        set_fd_flags(&pty.slave, false).map_err(io_err)?;
        let slave = pty.slave;
        cmd.stdin(Stdio::from(slave.try_clone().map_err(io_err)?))
            .stdout(Stdio::from(slave.try_clone().map_err(io_err)?))
            .stderr(Stdio::from(slave));
        if !handle.env.iter().any(|(k, _)| k == "TERM") {
            cmd.env("TERM", "xterm");
        }
        // After enter_on_exec's hook: hooks run in the order they were added.
        svcnet_netns::controlling_tty_on_exec(&mut cmd);
        pty_master = Some(pty.master);
    } else {
        let pipe_or_null = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        cmd.stdin(pipe_or_null(opts.stdin))
            .stdout(pipe_or_null(opts.stdout))
            .stderr(pipe_or_null(opts.stderr))
            .process_group(0);
    }

    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let spawned = cmd.spawn();
    // The parent's copies of the pty slave go with the command.
    drop(cmd);
    let mut child = spawned.map_err(|e| start_error(program, &e))?;

    let mut stdin: Option<BoxWrite> = None;
    let mut outputs: Vec<(u8, BoxRead)> = Vec::new();
    if let Some(master) = &pty_master {
        let io_err = |e: io::Error| format!("using the tty: {e}");
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(
            master.try_clone().map_err(io_err)?,
        )
        .map_err(io_err)?;
        outputs.push((CH_STDOUT, Box::new(PtyReader(reader))));
        if opts.stdin {
            let writer = tokio::net::unix::pipe::Sender::from_owned_fd_unchecked(
                master.try_clone().map_err(io_err)?,
            )
            .map_err(io_err)?;
            stdin = Some(Box::new(writer));
        }
    } else {
        stdin = child.stdin.take().map(|s| Box::new(s) as BoxWrite);
        if let Some(s) = child.stdout.take() {
            outputs.push((CH_STDOUT, Box::new(s)));
        }
        if let Some(s) = child.stderr.take() {
            outputs.push((CH_STDERR, Box::new(s)));
        }
    }
    Ok(Spawned {
        child,
        stdin,
        outputs,
        pty: pty_master,
    })
}

/// A pty master's read side: `EIO` (every slave closed) is the end of the output.
struct PtyReader(tokio::net::unix::pipe::Receiver);

impl AsyncRead for PtyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// How the command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Exited(i32),
    StartFailed(String),
}

/// What goes on the error channel when the command ended (`None`: nothing).
fn status_message(protocol: StreamProtocol, argv: &[String], outcome: &Outcome) -> Option<Vec<u8>> {
    let message = match outcome {
        Outcome::Exited(0) => None,
        Outcome::Exited(code) => Some(format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            argv.join(" ")
        )),
        Outcome::StartFailed(msg) => Some(msg.clone()),
    };
    if protocol < StreamProtocol::V4 {
        return message.map(String::into_bytes);
    }
    let status = match (outcome, message) {
        (_, None) => return stream::success_status(protocol),
        (Outcome::Exited(code), Some(message)) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        (Outcome::StartFailed(_), Some(message)) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "code": 500,
        }),
    };
    Some(serde_json::to_vec(&status).expect("serializable"))
}

/// The command started for an exec session, as [`Streams`]; `Err`: the error channel's
/// message (it could not be started).
fn exec_streams(
    protocol: StreamProtocol,
    opts: ExecOptions,
    handle: &ContainerHandle,
) -> Result<Streams, Vec<u8>> {
    let failed = |msg: String| {
        status_message(protocol, &opts.command, &Outcome::StartFailed(msg)).unwrap_or_default()
    };
    let Spawned {
        mut child,
        stdin,
        outputs,
        pty,
    } = spawn_exec(handle, &opts).map_err(failed)?;
    let pid = child.id();
    let mut stdin_task = None;
    let stdin = stdin.map(|mut w| {
        let (tx, mut rx) = mpsc::channel::<Bytes>(32);
        stdin_task = Some(tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
                    break;
                }
            }
            // EOF (the pty keeps its master: a terminal has no EOF).
            let _ = w.shutdown().await;
        }));
        tx
    });
    let (out_tx, output) = mpsc::channel::<(u8, Bytes)>(32);
    for (channel, mut r) in outputs {
        let tx = out_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .send((channel, Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
    }
    let argv = opts.command.clone();
    let done = async move {
        let outcome = match child.wait().await {
            Ok(s) => Outcome::Exited(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))),
            Err(e) => Outcome::StartFailed(format!("waiting for the command: {e}")),
        };
        if let Some(t) = stdin_task {
            t.abort();
        }
        status_message(protocol, &argv, &outcome)
    };
    Ok(Streams {
        stdin,
        resize: pty.map(|fd| {
            Box::new(move |w: u16, h: u16| set_winsize(&fd, w, h))
                as Box<dyn Fn(u16, u16) + Send + Sync>
        }),
        output,
        done: done.boxed(),
        // The client is gone: so is the command (its whole process group).
        on_client_gone: Box::new(move || {
            if let Some(pid) = pid {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_options() {
        let o = ExecOptions::from_query(Some(
            "command=sh&command=-c&command=echo+a%3Db&stdin=true&stdout=1&stderr=true&tty=true",
        ))
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo a=b"]);
        assert!(o.stdin && o.stdout && o.tty && !o.stderr);
        assert!(ExecOptions::from_query(Some("stdout=true")).is_err());
        assert!(ExecOptions::from_query(Some("command=ls")).is_err());
    }

    #[test]
    fn statuses() {
        let argv = ["sh".to_string(), "-c".into(), "exit 3".into()];
        let v5 = StreamProtocol::V5;
        let ok: serde_json::Value =
            serde_json::from_slice(&status_message(v5, &argv, &Outcome::Exited(0)).unwrap())
                .unwrap();
        assert_eq!(ok, serde_json::json!({"metadata": {}, "status": "Success"}));
        let failed: serde_json::Value =
            serde_json::from_slice(&status_message(v5, &argv, &Outcome::Exited(3)).unwrap())
                .unwrap();
        assert_eq!(
            failed,
            serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            })
        );
        let e = io::Error::from(io::ErrorKind::NotFound);
        let not_found = Outcome::StartFailed(start_error("nosuch", &e));
        let v: serde_json::Value =
            serde_json::from_slice(&status_message(v5, &argv, &not_found).unwrap()).unwrap();
        assert_eq!(
            v["message"],
            "exec: \"nosuch\": executable file not found in $PATH"
        );
        assert!(v.get("details").is_none());
        // Before v4 the error channel is plain text, and says nothing on success.
        assert_eq!(
            status_message(StreamProtocol::V2, &argv, &Outcome::Exited(0)),
            None
        );
    }
}
