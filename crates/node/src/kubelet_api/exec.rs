//! `exec` over WebSocket (the kubelet's `pkg/kubelet/cri/streaming/remotecommand`, with the
//! runtime's part — starting the command in the container's namespaces — done here too): the
//! channel protocols `channel.k8s.io` .. `v5.channel.k8s.io` (a frame is one channel byte and
//! its data: 0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize, 255 close), the command with
//! pipes or a pseudo-terminal, and the exit as a `Status` on the error channel.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use svcnet_netns::NetNs;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{
    not_found, parse_bool, query_pairs, text_response, AppState, ContainerHandle, ParamError,
};

/// The stream protocols of exec over WebSocket, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamProtocol {
    /// `channel.k8s.io`: error channel as text.
    V1,
    /// `v2.channel.k8s.io`.
    V2,
    /// `v3.channel.k8s.io`: adds the resize channel.
    V3,
    /// `v4.channel.k8s.io`: error channel carries a JSON `Status` with the exit code.
    V4,
    /// `v5.channel.k8s.io`: adds the close channel (255) to close stdin.
    V5,
}

impl StreamProtocol {
    pub const ALL: [StreamProtocol; 5] = [
        StreamProtocol::V5,
        StreamProtocol::V4,
        StreamProtocol::V3,
        StreamProtocol::V2,
        StreamProtocol::V1,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StreamProtocol::V1 => "channel.k8s.io",
            StreamProtocol::V2 => "v2.channel.k8s.io",
            StreamProtocol::V3 => "v3.channel.k8s.io",
            StreamProtocol::V4 => "v4.channel.k8s.io",
            StreamProtocol::V5 => "v5.channel.k8s.io",
        }
    }

    /// The first protocol the client offers (in `Sec-WebSocket-Protocol`) that we support.
    /// `Ok(None)` when it offers none (the default channel protocol applies), `Err` with the
    /// offered list when none is supported.
    pub fn negotiate(headers: &HeaderMap) -> Result<Option<StreamProtocol>, String> {
        let offered: Vec<String> = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if offered.is_empty() {
            return Ok(None);
        }
        offered
            .iter()
            .find_map(|p| Self::ALL.into_iter().find(|s| s.name() == p))
            .map(Some)
            .ok_or_else(|| offered.join(", "))
    }
}

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
        let mut o = ExecOptions::default();
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "command" => o.command.push(v),
                "stdin" | "input" => o.stdin = parse_bool(&k, &v)?,
                "stdout" | "output" => o.stdout = parse_bool(&k, &v)?,
                "stderr" => o.stderr = parse_bool(&k, &v)?,
                "tty" => o.tty = parse_bool(&k, &v)?,
                _ => {}
            }
        }
        if o.command.is_empty() {
            return Err(ParamError::NoCommand);
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(ParamError::NoStream);
        }
        if o.tty {
            // A terminal has one output: stderr goes to it too.
            o.stderr = false;
        }
        Ok(o)
    }
}

pub(super) async fn get_attach() -> Response {
    text_response(StatusCode::BAD_REQUEST, "attach is not supported")
}

pub(super) async fn get_exec(
    State(st): State<Arc<AppState>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
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
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return text_response(
                StatusCode::BAD_REQUEST,
                "exec needs a WebSocket upgrade (v5.channel.k8s.io); SPDY is not supported",
            )
        }
    };
    let protocol = match StreamProtocol::negotiate(&headers) {
        Ok(p) => p,
        Err(offered) => {
            return text_response(
                StatusCode::BAD_REQUEST,
                format!("none of the requested subprotocols are supported: {offered}"),
            )
        }
    };
    if let Some(p) = protocol {
        ws.set_selected_protocol(HeaderValue::from_static(p.name()));
    }
    let protocol = protocol.unwrap_or(StreamProtocol::V1);
    ws.on_upgrade(move |socket| exec_session(socket, protocol, opts, handle))
}

/// The channels of the stream protocols.
const CH_STDIN: u8 = 0;
const CH_STDOUT: u8 = 1;
const CH_STDERR: u8 = 2;
const CH_ERROR: u8 = 3;
const CH_RESIZE: u8 = 4;
const CH_CLOSE: u8 = 255;

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

/// How `execve` failures read (as runc says them).
fn start_error(program: &str, e: &io::Error) -> String {
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

/// A frame on `channel`.
fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
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
        (_, None) => serde_json::json!({"metadata": {}, "status": "Success"}),
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

/// How long the end of a session (the last frames, the close handshake) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

async fn exec_session(
    socket: WebSocket,
    protocol: StreamProtocol,
    opts: ExecOptions,
    handle: ContainerHandle,
) {
    let (mut sink, mut stream) = socket.split();
    // One writer owns the socket's sending half; everything else queues frames for it.
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.flush().await;
    });

    let spawned = match spawn_exec(&handle, &opts) {
        Ok(s) => Ok(s),
        Err(msg) => Err(Outcome::StartFailed(msg)),
    };
    let (outcome, reader) = match spawned {
        Err(outcome) => (Some(outcome), None),
        Ok(Spawned {
            mut child,
            stdin,
            outputs,
            pty,
        }) => {
            let pid = child.id();
            // Client → process: stdin through a queue (so a process that does not read does
            // not stop us from reading the socket), resizes applied directly.
            let (in_tx, mut in_rx) = mpsc::channel::<Bytes>(32);
            let stdin_task = stdin.map(|mut w| {
                tokio::spawn(async move {
                    while let Some(data) = in_rx.recv().await {
                        if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
                            break;
                        }
                    }
                    let _ = w.shutdown().await;
                })
            });
            let mut in_tx = stdin_task.is_some().then_some(in_tx);
            let mut reader = tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let data = match msg {
                        Message::Binary(d) => d,
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    match (data.first().copied(), &data[1..]) {
                        (Some(CH_STDIN), payload) if !payload.is_empty() => {
                            if let Some(tx) = &in_tx {
                                if tx.send(Bytes::copy_from_slice(payload)).await.is_err() {
                                    in_tx = None;
                                }
                            }
                        }
                        (Some(CH_RESIZE), payload) => {
                            #[derive(serde::Deserialize)]
                            #[serde(rename_all = "PascalCase")]
                            struct Size {
                                width: u16,
                                height: u16,
                            }
                            if let (Some(fd), Ok(size)) =
                                (&pty, serde_json::from_slice::<Size>(payload))
                            {
                                set_winsize(fd, size.width, size.height);
                            }
                        }
                        (Some(CH_CLOSE), [CH_STDIN, ..]) if protocol >= StreamProtocol::V5 => {
                            // EOF on stdin (the pty keeps its writer: a terminal has no EOF).
                            in_tx = None;
                        }
                        _ => {}
                    }
                }
                // The client went away (or closed the connection).
            });
            // Process → client.
            let pumps: Vec<_> = outputs
                .into_iter()
                .map(|(channel, mut r)| {
                    let tx = out_tx.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 32 * 1024];
                        loop {
                            match r.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if tx.send(frame(channel, &buf[..n])).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            let finished = async {
                let status = child.wait().await;
                for p in pumps {
                    let _ = p.await;
                }
                status
            };
            let mut client_gone = false;
            let outcome = tokio::select! {
                status = finished => Some(match status {
                    Ok(s) => Outcome::Exited(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))),
                    Err(e) => Outcome::StartFailed(format!("waiting for the command: {e}")),
                }),
                _ = &mut reader => {
                    client_gone = true;
                    // The client is gone: so is the command (its whole process group).
                    if let Some(pid) = pid {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    None
                }
            };
            if let Some(t) = stdin_task {
                t.abort();
            }
            (outcome, (!client_gone).then_some(reader))
        }
    };
    if let Some(outcome) = outcome {
        if let Some(msg) = status_message(protocol, &opts.command, &outcome) {
            let _ = out_tx.send(frame(CH_ERROR, &msg)).await;
        }
        let _ = out_tx
            .send(Message::Close(Some(CloseFrame {
                code: close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
    }
    drop(out_tx);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer).await;
    // Let the client answer the close before the connection goes (unread data would make
    // the close a reset, which can lose what was sent last).
    if let Some(mut reader) = reader {
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    }
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
    fn subprotocols_and_statuses() {
        let mut h = HeaderMap::new();
        assert_eq!(StreamProtocol::negotiate(&h), Ok(None));
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("base64.channel.k8s.io, v4.channel.k8s.io"),
        );
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io"),
        );
        assert_eq!(StreamProtocol::negotiate(&h), Ok(Some(StreamProtocol::V4)));
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("SPDY/3.1"),
        );
        assert!(StreamProtocol::negotiate(&h).is_err());

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
