//! The node agent's kubelet API: what the API server reaches for `pods/{name}/log` and
//! `pods/{name}/exec`, over plain HTTP on the node's InternalIP (the API server authenticates
//! with a bearer token, `<apiserver data dir>/kubelet-client.token`).
//!
//! - `GET /healthz`: `ok` (no token needed).
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow&tailLines&timestamps&sinceSeconds&
//!   sinceTime&limitBytes&previous&stream`: the container's CRI log file (as [`crate::shim`]
//!   writes it: `<RFC3339Nano> <stdout|stderr> <P|F> <text>`) as plain text.
//! - `/exec/{ns}/{pod}/{container}?command=..&stdin&stdout&stderr&tty`: a WebSocket speaking the
//!   Kubernetes channel protocols (`v5.channel.k8s.io` .. `channel.k8s.io`); the command runs in
//!   the container's namespaces, with pipes or (`tty`) a pseudo-terminal.
//! - `/attach/...`: not supported (400).
//!
//! Which containers exist, and where their logs and namespaces are, the agent says through
//! [`PodRuntime`].

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, RawQuery, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use jiff::Timestamp;
use svcnet_netns::NetNs;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// What the server needs to know about one container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerHandle {
    /// The current CRI log file.
    pub log_path: PathBuf,
    /// The log of the previous instance of the container (after a restart), if any.
    pub previous_log_path: Option<PathBuf>,
    /// The pod's network namespace (its name under `/run/netns`).
    pub netns: String,
    /// The pod's hostname (a private UTS namespace), if it has one.
    pub hostname: Option<String>,
    /// Bind mounts `(source, target)` of the container (its `/etc/resolv.conf`, ...).
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// The container's environment (exec'd commands get it too).
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    /// Whether the container's process is running (a followed log ends when it is not).
    pub running: bool,
}

/// The node agent's view of its containers.
pub trait PodRuntime: Send + Sync + 'static {
    fn container(&self, namespace: &str, pod: &str, container: &str) -> Option<ContainerHandle>;
}

struct AppState {
    token: Option<String>,
    runtime: Arc<dyn PodRuntime>,
}

/// Serve the kubelet API on `listener` until the listener fails. With `token`, every request
/// but `/healthz` must carry `Authorization: Bearer <token>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    token: Option<String>,
    runtime: Arc<dyn PodRuntime>,
) -> io::Result<()> {
    axum::serve(listener, router(token, runtime)).await
}

/// The kubelet API as a router (what [`serve`] serves).
pub fn router(token: Option<String>, runtime: Arc<dyn PodRuntime>) -> Router {
    let state = Arc::new(AppState { token, runtime });
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/exec/{ns}/{pod}/{container}", any(exec))
        .route("/attach/{ns}/{pod}/{container}", any(attach))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let wants_json = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    let resp = match &st.token {
        Some(token) if req.uri().path() != "/healthz" && !bearer_matches(req.headers(), token) => {
            text_response(StatusCode::UNAUTHORIZED, "Unauthorized")
        }
        _ => next.run(req).await,
    };
    if wants_json && (resp.status().is_client_error() || resp.status().is_server_error()) {
        as_status(resp).await
    } else {
        resp
    }
}

/// An error answer as a `Status` object (for Kubernetes clients, which show its message; the
/// kubelet answers in text and kube-apiserver converts, but ours passes answers through).
async fn as_status(resp: Response) -> Response {
    use http_body_util::BodyExt;
    let (mut parts, body) = resp.into_parts();
    let message = match http_body_util::Limited::new(body, 64 * 1024)
        .collect()
        .await
    {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let code = parts.status.as_u16();
    let reason = match parts.status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        _ if parts.status.is_server_error() => "InternalError",
        _ => "",
    };
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&status).expect("serializable")),
    )
}

fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    // Constant time for equal lengths.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn text_response(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.into(),
    )
        .into_response()
}

fn not_found(ns: &str, pod: &str, container: &str) -> Response {
    text_response(
        StatusCode::NOT_FOUND,
        format!("container {container:?} in pod \"{ns}/{pod}\" not found"),
    )
}

/// Go's `strconv.ParseBool`, as the kubelet reads its boolean parameters.
fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
        _ => Err(format!("invalid value {v:?} for {name}: not a boolean")),
    }
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Logs

/// Which output stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// The options of a log request (`PodLogOptions` as query parameters).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last N lines (of those the other filters keep).
    pub tail_lines: Option<usize>,
    /// Prefix each line with its RFC3339Nano timestamp and a space.
    pub timestamps: bool,
    /// Only lines logged at or after this time (`sinceSeconds` or `sinceTime`).
    pub since: Option<Timestamp>,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<usize>,
    /// The previous instance's log.
    pub previous: bool,
    /// Only this stream (`stream=Stdout|Stderr`; all by default).
    pub stream: Option<LogStream>,
}

impl LogOptions {
    /// Parse the query string of a `containerLogs` request.
    pub fn from_query(query: Option<&str>) -> Result<LogOptions, String> {
        let mut o = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "follow" => o.follow = parse_bool(&k, &v)?,
                "timestamps" => o.timestamps = parse_bool(&k, &v)?,
                "previous" => o.previous = parse_bool(&k, &v)?,
                "tailLines" => {
                    let n: i64 = v
                        .parse()
                        .map_err(|_| format!("invalid value {v:?} for tailLines"))?;
                    o.tail_lines = (n >= 0).then_some(n as usize);
                }
                "limitBytes" => {
                    let n: i64 = v
                        .parse()
                        .map_err(|_| format!("invalid value {v:?} for limitBytes"))?;
                    if n < 1 {
                        return Err("limitBytes: must be greater than 0".into());
                    }
                    o.limit_bytes = Some(n as usize);
                }
                "sinceSeconds" => {
                    let n: i64 = v
                        .parse()
                        .map_err(|_| format!("invalid value {v:?} for sinceSeconds"))?;
                    if n < 1 {
                        return Err("sinceSeconds: must be greater than 0".into());
                    }
                    since_seconds = Some(n);
                }
                "sinceTime" => {
                    since_time = Some(
                        v.parse::<Timestamp>()
                            .map_err(|e| format!("invalid value {v:?} for sinceTime: {e}"))?,
                    );
                }
                "stream" => {
                    o.stream = match v.as_str() {
                        "Stdout" => Some(LogStream::Stdout),
                        "Stderr" => Some(LogStream::Stderr),
                        "All" | "" => None,
                        _ => return Err(format!("invalid value {v:?} for stream")),
                    }
                }
                _ => {}
            }
        }
        o.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err("at most one of sinceTime or sinceSeconds may be specified".into())
            }
            (Some(s), None) => Some(
                Timestamp::now()
                    .checked_sub(jiff::SignedDuration::from_secs(s))
                    .unwrap_or(Timestamp::MIN),
            ),
            (None, t) => t,
        };
        Ok(o)
    }
}

/// One logical log line: a full CRI line, or partial ones joined.
#[derive(Clone, Debug, PartialEq)]
struct LogLine {
    /// The timestamp as written (of the first part of the line).
    timestamp: String,
    stream: LogStream,
    /// The text, with its newline when the line is complete.
    text: Vec<u8>,
}

impl LogLine {
    fn time(&self) -> Option<Timestamp> {
        self.timestamp.parse().ok()
    }

    fn keep(&self, opts: &LogOptions) -> bool {
        opts.stream.is_none_or(|s| s == self.stream)
            && opts
                .since
                .is_none_or(|since| self.time().is_none_or(|t| t >= since))
    }

    fn render(&self, timestamps: bool, out: &mut Vec<u8>) {
        if timestamps {
            out.extend_from_slice(self.timestamp.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&self.text);
    }
}

/// An incremental parser of CRI log files.
#[derive(Debug, Default)]
struct CriParser {
    /// Bytes of a line not yet terminated by a newline.
    raw: Vec<u8>,
    /// A partial (`P`) line per stream, waiting for its continuation.
    pending: [Option<LogLine>; 2],
}

impl CriParser {
    /// Parse `bytes` (the next bytes of the file); complete logical lines go to `out`.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<LogLine>) {
        self.raw.extend_from_slice(bytes);
        let raw = std::mem::take(&mut self.raw);
        let mut start = 0;
        while let Some(i) = raw[start..].iter().position(|b| *b == b'\n') {
            self.line(&raw[start..start + i], out);
            start += i + 1;
        }
        self.raw = raw[start..].to_vec();
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<LogLine>) {
        let mut parts = line.splitn(4, |b| *b == b' ');
        let (Some(ts), Some(stream), Some(tags)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let text = parts.next().unwrap_or_default();
        let stream = match stream {
            b"stdout" => LogStream::Stdout,
            b"stderr" => LogStream::Stderr,
            _ => return,
        };
        let partial = tags.split(|b| *b == b':').next() == Some(b"P");
        let slot = &mut self.pending[stream as usize];
        let mut l = slot.take().unwrap_or_else(|| LogLine {
            timestamp: String::from_utf8_lossy(ts).into_owned(),
            stream,
            text: Vec::new(),
        });
        l.text.extend_from_slice(text);
        if partial {
            *slot = Some(l);
        } else {
            l.text.push(b'\n');
            out.push(l);
        }
    }

    /// The partial lines left (the writer stopped mid-line), without their newline.
    fn flush(&mut self, out: &mut Vec<LogLine>) {
        // An unterminated last line (the writer stopped mid-write) is taken as it is.
        let raw = std::mem::take(&mut self.raw);
        if !raw.is_empty() {
            self.line(&raw, out);
        }
        let mut rest: Vec<LogLine> = self.pending.iter_mut().filter_map(Option::take).collect();
        rest.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        out.extend(rest);
    }
}

/// Render `lines` (already filtered) with `opts`' tail, timestamps and remaining byte budget.
fn render_lines(lines: &[LogLine], opts: &LogOptions, budget: &mut Option<usize>) -> Vec<u8> {
    let skip = opts
        .tail_lines
        .map(|n| lines.len().saturating_sub(n))
        .unwrap_or(0);
    let mut out = Vec::new();
    for l in &lines[skip..] {
        l.render(opts.timestamps, &mut out);
    }
    if let Some(b) = budget {
        out.truncate(*b);
        *b -= out.len();
    }
    out
}

/// The log in `path` with `opts` (all but `follow`): what `kubectl logs` prints. A missing file
/// is an empty log.
pub fn read_log(path: &Path, opts: &LogOptions) -> io::Result<Vec<u8>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut parser = CriParser::default();
    let mut lines = Vec::new();
    parser.feed(&bytes, &mut lines);
    parser.flush(&mut lines);
    lines.retain(|l| l.keep(opts));
    Ok(render_lines(&lines, opts, &mut opts.limit_bytes.clone()))
}

async fn container_logs(
    State(st): State<Arc<AppState>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let opts = match LogOptions::from_query(query.as_deref()) {
        Ok(o) => o,
        Err(e) => return text_response(StatusCode::BAD_REQUEST, e),
    };
    let Some(handle) = st.runtime.container(&ns, &pod, &container) else {
        return not_found(&ns, &pod, &container);
    };
    let path = if opts.previous {
        match handle.previous_log_path.clone() {
            Some(p) if p.exists() => p,
            _ => {
                return text_response(
                    StatusCode::BAD_REQUEST,
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                )
            }
        }
    } else {
        handle.log_path.clone()
    };
    let plain = [(header::CONTENT_TYPE, "text/plain")];
    // A previous container's log is complete: nothing to follow.
    if !opts.follow || opts.previous {
        let path2 = path.clone();
        let opts2 = opts.clone();
        return match tokio::task::spawn_blocking(move || read_log(&path2, &opts2)).await {
            Ok(Ok(bytes)) => (plain, bytes).into_response(),
            Ok(Err(e)) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading log {}: {e}", path.display()),
            ),
            Err(e) => text_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let runtime = st.runtime.clone();
    tokio::spawn(async move {
        let running = move || {
            runtime
                .container(&ns, &pod, &container)
                .is_some_and(|h| h.running)
        };
        if let Err(e) = follow_log(&path, &opts, running, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    (plain, body).into_response()
}

/// How often a followed log is polled.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Stream the log at `path` to `tx`, then what is appended to it, until `running()` says the
/// container stopped and everything it wrote was sent, the byte limit is reached, or the
/// receiver is gone.
async fn follow_log(
    path: &Path,
    opts: &LogOptions,
    running: impl Fn() -> bool,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let mut budget = opts.limit_bytes;
    let mut parser = CriParser::default();
    let mut file: Option<tokio::fs::File> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = true;
    loop {
        // Checked before reading: once the container is not running, its log is complete.
        let alive = running();
        if file.is_none() {
            match tokio::fs::File::open(path).await {
                Ok(f) => file = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut lines = Vec::new();
        if let Some(f) = file.as_mut() {
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                parser.feed(&buf[..n], &mut lines);
            }
        }
        if !alive {
            parser.flush(&mut lines);
        }
        lines.retain(|l| l.keep(opts));
        // The tail applies to what was there when the request came; later lines all stream.
        let tail_opts = LogOptions {
            tail_lines: if first { opts.tail_lines } else { None },
            ..opts.clone()
        };
        first = false;
        let out = render_lines(&lines, &tail_opts, &mut budget);
        if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
            return Ok(());
        }
        if !alive || budget == Some(0) {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tx.closed() => return Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exec

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
    pub fn from_query(query: Option<&str>) -> Result<ExecOptions, String> {
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
            return Err("you must specify at least 1 command".into());
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err("you must specify at least one of stdin, stdout, stderr".into());
        }
        if o.tty {
            // A terminal has one output: stderr goes to it too.
            o.stderr = false;
        }
        Ok(o)
    }
}

async fn attach() -> Response {
    text_response(StatusCode::BAD_REQUEST, "attach is not supported")
}

async fn exec(
    State(st): State<Arc<AppState>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let opts = match ExecOptions::from_query(query.as_deref()) {
        Ok(o) => o,
        Err(e) => return text_response(StatusCode::BAD_REQUEST, e),
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
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::ServiceExt;

    const LOG: &str = "\
2026-01-02T03:04:05.000000001Z stdout F first line
2026-01-02T03:04:06.000000002Z stderr F an error
2026-01-02T03:04:07.000000003Z stdout P par
2026-01-02T03:04:07.500000000Z stdout P tial
2026-01-02T03:04:08.000000004Z stdout F  line
2026-01-02T03:04:09.000000005Z stdout F last
";

    fn log_of(text: &str, query: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, text).unwrap();
        let opts = LogOptions::from_query(Some(query)).unwrap();
        String::from_utf8(read_log(&path, &opts).unwrap()).unwrap()
    }

    #[test]
    fn cri_logs_are_parsed_joined_and_cut() {
        assert_eq!(
            log_of(LOG, ""),
            "first line\nan error\npartial line\nlast\n"
        );
        assert_eq!(
            log_of(LOG, "timestamps=true&tailLines=2"),
            "2026-01-02T03:04:07.000000003Z partial line\n2026-01-02T03:04:09.000000005Z last\n"
        );
        assert_eq!(log_of(LOG, "tailLines=0"), "");
        assert_eq!(log_of(LOG, "tailLines=100").lines().count(), 4);
        assert_eq!(log_of(LOG, "limitBytes=13"), "first line\nan");
        assert_eq!(log_of(LOG, "tailLines=1&limitBytes=2"), "la");
        assert_eq!(
            log_of(LOG, "sinceTime=2026-01-02T03:04:07Z"),
            "partial line\nlast\n"
        );
        assert_eq!(log_of(LOG, "stream=Stderr"), "an error\n");
        // A line still partial when the writer stopped: its text, without a newline.
        assert_eq!(
            log_of("2026-01-02T03:04:05Z stdout P no newline\n", ""),
            "no newline"
        );
        // An empty full line, and garbage, which is skipped.
        assert_eq!(
            log_of(
                "2026-01-02T03:04:05Z stdout F \ngarbage\n2026-01-02T03:04:05Z stdout F\n",
                ""
            ),
            "\n\n"
        );
        // A missing log is empty.
        let opts = LogOptions::default();
        assert!(read_log(Path::new("/nonexistent/0.log"), &opts)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn cri_parser_takes_lines_split_across_reads() {
        let mut p = CriParser::default();
        let mut out = Vec::new();
        let (a, b) = LOG.split_at(57);
        p.feed(a.as_bytes(), &mut out);
        assert_eq!(out.len(), 1);
        p.feed(b.as_bytes(), &mut out);
        let texts: Vec<String> = out
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect();
        assert_eq!(
            texts,
            ["first line\n", "an error\n", "partial line\n", "last\n"]
        );
        assert_eq!(out[2].timestamp, "2026-01-02T03:04:07.000000003Z");
        assert_eq!(out[1].stream, LogStream::Stderr);
    }

    #[test]
    fn log_and_exec_options() {
        assert_eq!(
            LogOptions::from_query(Some("follow=1&previous=false&tailLines=-1")).unwrap(),
            LogOptions {
                follow: true,
                ..Default::default()
            }
        );
        assert!(LogOptions::from_query(Some("limitBytes=0")).is_err());
        assert!(LogOptions::from_query(Some("follow=maybe")).is_err());
        assert!(
            LogOptions::from_query(Some("sinceSeconds=5&sinceTime=2026-01-02T03:04:05Z")).is_err()
        );
        let since = LogOptions::from_query(Some("sinceSeconds=60"))
            .unwrap()
            .since
            .unwrap();
        assert!(
            since < Timestamp::now()
                && since > Timestamp::now() - jiff::SignedDuration::from_secs(70)
        );

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

    /// One container, `default/p/c`, with a log in a temp dir.
    struct Fake {
        log: PathBuf,
        previous: Option<PathBuf>,
        running: AtomicBool,
    }

    impl PodRuntime for Fake {
        fn container(&self, ns: &str, pod: &str, c: &str) -> Option<ContainerHandle> {
            ((ns, pod, c) == ("default", "p", "c")).then(|| ContainerHandle {
                log_path: self.log.clone(),
                previous_log_path: self.previous.clone(),
                running: self.running.load(Ordering::SeqCst),
                ..Default::default()
            })
        }
    }

    async fn get(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, String, String) {
        let mut req = http::Request::get(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
            .await
            .expect("body in time")
            .unwrap()
            .to_bytes();
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn serves_logs_with_auth_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, LOG).unwrap();
        let fake = Arc::new(Fake {
            log: log.clone(),
            previous: None,
            running: AtomicBool::new(false),
        });
        let app = router(Some("sekret".into()), fake.clone());
        let t = Some("sekret");

        assert_eq!(get(&app, "/healthz", None).await.2, "ok");
        let (status, _, _) = get(&app, "/containerLogs/default/p/c", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = get(&app, "/containerLogs/default/p/c", Some("wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = get(&app, "/exec/default/p/c?command=ls&stdout=1", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let (status, ctype, body) = get(&app, "/containerLogs/default/p/c?tailLines=1", t).await;
        assert_eq!(
            (status, ctype.as_str(), body.as_str()),
            (StatusCode::OK, "text/plain", "last\n")
        );

        let (status, _, body) = get(&app, "/containerLogs/default/p/c?previous=true", t).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            "previous terminated container \"c\" in pod \"p\" not found"
        );

        let (status, _, body) = get(&app, "/containerLogs/default/p/nope", t).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("\"nope\""), "{body}");

        let (status, _, body) = get(&app, "/containerLogs/default/p/c?limitBytes=x", t).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

        // exec without a WebSocket upgrade, and attach.
        let (status, _, _) = get(&app, "/exec/default/p/c?command=ls&stdout=1", t).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, body) = get(&app, "/attach/default/p/c?stdout=1", t).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_REQUEST, "attach is not supported")
        );

        // Kubernetes clients (asking for JSON) get errors as a Status.
        let req = http::Request::get("/containerLogs/default/p/c?previous=true")
            .header(header::ACCEPT, "application/json, */*")
            .header(header::AUTHORIZATION, "Bearer sekret")
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["reason"].as_str(), v["code"].as_u64()),
            (Some("Status"), Some("BadRequest"), Some(400))
        );
        assert_eq!(
            v["message"],
            "previous terminated container \"c\" in pod \"p\" not found"
        );

        // Without a token configured, no credentials are needed.
        let open = router(None, fake);
        assert_eq!(
            get(&open, "/containerLogs/default/p/c?tailLines=1", None)
                .await
                .2,
            "last\n"
        );
    }

    #[tokio::test]
    async fn previous_log_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let prev = dir.path().join("0.log");
        std::fs::write(&prev, "2026-01-02T03:04:05Z stdout F before the restart\n").unwrap();
        let fake = Arc::new(Fake {
            log: dir.path().join("1.log"),
            previous: Some(prev),
            running: AtomicBool::new(true),
        });
        let app = router(None, fake);
        let (status, _, body) =
            get(&app, "/containerLogs/default/p/c?previous=1&follow=1", None).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "before the restart\n")
        );
    }

    #[tokio::test]
    async fn follows_until_the_container_stops() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, LOG).unwrap();
        let fake = Arc::new(Fake {
            log: log.clone(),
            previous: None,
            running: AtomicBool::new(true),
        });
        let app = router(None, fake.clone());
        let writer = tokio::spawn(async move {
            use std::io::Write;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            // A line written in two pieces, as a reader may see it.
            f.write_all(b"2026-01-02T03:05:00Z stdout F la").unwrap();
            f.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
            f.write_all(b"ter\n2026-01-02T03:05:01Z stderr P end")
                .unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
            fake.running.store(false, Ordering::SeqCst);
        });
        let (status, _, body) = get(
            &app,
            "/containerLogs/default/p/c?follow=true&tailLines=1&timestamps=1",
            None,
        )
        .await;
        writer.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            "2026-01-02T03:04:09.000000005Z last\n2026-01-02T03:05:00Z later\n2026-01-02T03:05:01Z end"
        );
    }

    #[tokio::test]
    async fn follow_stops_at_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, LOG).unwrap();
        let fake = Arc::new(Fake {
            log,
            previous: None,
            running: AtomicBool::new(true),
        });
        let app = router(None, fake);
        let (_, _, body) = get(
            &app,
            "/containerLogs/default/p/c?follow=true&limitBytes=5",
            None,
        )
        .await;
        assert_eq!(body, "first");
    }
}
