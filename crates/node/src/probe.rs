//! Readiness, liveness and startup probes, run as the kubelet runs them (`pkg/kubelet/prober`,
//! `pkg/probe/{http,tcp,exec}`): one attempt with [`run_once`], the success/failure thresholds
//! with [`ProbeState`], and a periodic worker with [`spawn_worker`].
//!
//! HTTP and TCP probes connect from the node (as the kubelet's do) through a [`Connector`]:
//! [`DirectConnector`] from the agent's own namespace, [`NetnsConnector`] from a named one (the
//! node's, when the node itself is a namespace). Exec probes run through an [`ExecRunner`]:
//! [`PodExec`] inside the pod's namespaces, [`LocalExec`] as a plain process.
//!
//! Differences from the kubelet: HTTPS and gRPC probes are not supported (they report
//! [`ProbeResult::Unknown`], which counts as a failure); exec probe commands are run as given
//! (the kubelet expands `$(VAR)` references to the container's static `env` first: see
//! [`crate::envvars::expand`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// The `User-Agent` of HTTP probes, unless the probe sets one.
pub const USER_AGENT: &str = "kube-probe/1.32";
/// How much of an HTTP response body or of an exec probe's output is read.
const MAX_READ: usize = 10 * 1024;
/// How many requests an HTTP probe makes following same-host redirects.
const MAX_REQUESTS: usize = 10;
/// The connect timeout inside a namespace (the probe's own timeout applies on top; this only
/// bounds the helper thread a blocking connect occupies).
const NETNS_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The outcome of one probe attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    /// The probe ran and failed, with the kubelet's message.
    Failure(String),
    /// The probe could not run (unsupported handler, unknown named port, command that could not
    /// be started); counted as a failure.
    Unknown(String),
}

impl ProbeResult {
    pub fn is_success(&self) -> bool {
        matches!(self, ProbeResult::Success)
    }

    /// The failure message (empty for a success).
    pub fn message(&self) -> &str {
        match self {
            ProbeResult::Success => "",
            ProbeResult::Failure(m) | ProbeResult::Unknown(m) => m,
        }
    }
}

/// Opens the TCP connections of HTTP and TCP probes.
pub trait Connector: Send + Sync {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>>;
}

/// Connects from the agent's own network namespace.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectConnector;

impl Connector for DirectConnector {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> {
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            let _ = s.set_nodelay(true);
            Ok(s)
        })
    }
}

/// Connects from inside the named network namespace (`/run/netns/<netns>`).
#[derive(Clone, Debug)]
pub struct NetnsConnector {
    pub netns: String,
}

impl Connector for NetnsConnector {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> {
        let name = self.netns.clone();
        Box::pin(async move {
            let ns = svcnet_netns::NetNs::open(&name).map_err(netns_io)?;
            ns.tcp_connect(addr, NETNS_CONNECT_TIMEOUT)
                .await
                .map_err(netns_io)
        })
    }
}

fn netns_io(e: svcnet_netns::NetnsError) -> io::Error {
    match e {
        svcnet_netns::NetnsError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

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

/// What a probe needs besides its spec.
#[derive(Clone)]
pub struct ProbeContext {
    /// The pod's IP: the host of HTTP and TCP probes that do not name one.
    pub pod_ip: IpAddr,
    /// The container's ports, to resolve named probe ports.
    pub ports: Vec<ContainerPort>,
    pub connector: Arc<dyn Connector>,
    pub exec: Arc<dyn ExecRunner>,
}

/// `timeoutSeconds` (default 1, at least 1).
fn probe_timeout(probe: &Probe) -> Duration {
    Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64)
}

/// Runs `probe` once, within its `timeoutSeconds`.
pub async fn run_once(probe: &Probe, ctx: &ProbeContext) -> ProbeResult {
    let timeout = probe_timeout(probe);
    if let Some(exec) = &probe.exec {
        exec_probe(exec.command.clone().unwrap_or_default(), ctx, timeout).await
    } else if let Some(http) = &probe.http_get {
        http_probe(http, ctx, timeout).await
    } else if let Some(tcp) = &probe.tcp_socket {
        tcp_probe(tcp, ctx, timeout).await
    } else if probe.grpc.is_some() {
        ProbeResult::Unknown("grpc probes are not supported".into())
    } else {
        ProbeResult::Unknown("missing probe handler".into())
    }
}

/// `probe.ResolveContainerPort`: a number, or the name of one of the container's ports (or a
/// number written as a string).
fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => match ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
        {
            Some(p) => i64::from(p.container_port),
            None => name
                .parse::<i64>()
                .map_err(|_| format!("strconv.Atoi: parsing {name:?}: invalid syntax"))?,
        },
    };
    if n > 0 && n < 65536 {
        Ok(n as u16)
    } else {
        Err(format!("invalid port number: {n}"))
    }
}

/// `host:port`, bracketing IPv6 addresses (`net.JoinHostPort`).
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The address to dial for `host` (an IP, or a name resolved by the node's resolver). The
/// error is Go's `dial tcp ...` message.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    match tokio::net::lookup_host((bare, port)).await {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("dial tcp: lookup {bare}: no such host")),
        Err(e) => Err(format!("dial tcp: lookup {bare}: {e}")),
    }
}

/// The tail of Go's dial error for a connect error: `connect: connection refused`.
fn dial_error(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        return "i/o timeout".into();
    }
    match e.raw_os_error() {
        Some(n) => {
            let desc = nix::errno::Errno::from_raw(n).desc();
            let mut chars = desc.chars();
            let lower: String = match chars.next() {
                Some(c) => c.to_lowercase().chain(chars).collect(),
                None => String::new(),
            };
            format!("connect: {lower}")
        }
        None => e.to_string(),
    }
}

async fn tcp_probe(action: &TCPSocketAction, ctx: &ProbeContext, timeout: Duration) -> ProbeResult {
    let port = match resolve_port(&action.port, &ctx.ports) {
        Ok(p) => p,
        Err(e) => return ProbeResult::Unknown(e),
    };
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_string(),
        None => ctx.pod_ip.to_string(),
    };
    let attempt = async {
        let addr = resolve(&host, port).await.map_err(ProbeResult::Failure)?;
        match ctx.connector.connect(addr).await {
            Ok(_stream) => Ok(()),
            Err(e) => Err(ProbeResult::Failure(format!(
                "dial tcp {addr}: {}",
                dial_error(&e)
            ))),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => ProbeResult::Success,
        Ok(Err(r)) => r,
        Err(_) => ProbeResult::Failure(format!(
            "dial tcp {}: i/o timeout",
            join_host_port(&host, port)
        )),
    }
}

async fn exec_probe(argv: Vec<String>, ctx: &ProbeContext, timeout: Duration) -> ProbeResult {
    if argv.is_empty() {
        return ProbeResult::Unknown("exec probe has no command".into());
    }
    let line = argv.join(" ");
    // The runner enforces the timeout; the outer one only guards against a runner that does not.
    let run = ctx.exec.run(argv, timeout);
    match tokio::time::timeout(timeout + Duration::from_secs(5), run).await {
        Ok(Ok((0, _))) => ProbeResult::Success,
        Ok(Ok((code, out))) => {
            let out = String::from_utf8_lossy(&out).into_owned();
            if out.trim().is_empty() {
                ProbeResult::Failure(format!("command {line:?} exited with {code}"))
            } else {
                ProbeResult::Failure(out)
            }
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
            ProbeResult::Failure(format!("command {line:?} timed out"))
        }
        Err(_) => ProbeResult::Failure(format!("command {line:?} timed out")),
        Ok(Err(e)) => ProbeResult::Unknown(format!("failed to exec {line:?}: {e}")),
    }
}

/// Where an HTTP probe is, for the timeout message.
struct HttpProgress {
    url: String,
    reading_body: bool,
}

async fn http_probe(action: &HTTPGetAction, ctx: &ProbeContext, timeout: Duration) -> ProbeResult {
    let scheme = action
        .scheme
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("HTTP")
        .to_lowercase();
    let port = match resolve_port(&action.port, &ctx.ports) {
        Ok(p) => p,
        Err(e) => return ProbeResult::Unknown(e),
    };
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_string(),
        None => ctx.pod_ip.to_string(),
    };
    let mut path = action.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let display = format!("{scheme}://{}{path}", join_host_port(&host, port));
    match scheme.as_str() {
        "http" => {}
        "https" => return ProbeResult::Unknown("HTTPS probes are not supported".into()),
        other => {
            return ProbeResult::Unknown(format!(
                "Get {display:?}: unsupported protocol scheme {other:?}"
            ))
        }
    }
    let url = match url::Url::parse(&display) {
        Ok(u) => u,
        Err(e) => return ProbeResult::Unknown(format!("parse {display:?}: {e}")),
    };
    let headers: Vec<(String, String)> = action
        .http_headers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let mut progress = HttpProgress {
        url: display.clone(),
        reading_body: false,
    };
    let result = tokio::time::timeout(
        timeout,
        http_get(url, display, &headers, ctx, &mut progress),
    )
    .await;
    match result {
        Ok(r) => r,
        Err(_) if progress.reading_body => ProbeResult::Failure(
            "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
                .into(),
        ),
        Err(_) => ProbeResult::Failure(format!(
            "Get {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            progress.url
        )),
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The host and port a URL dials, and its `Host` header.
fn url_authority(url: &url::Url) -> Option<(String, u16, String)> {
    let host = url.host_str()?.to_string();
    let port = url.port_or_known_default()?;
    let header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    Some((host, port, header))
}

/// The kubelet's HTTP GET: keep-alives off, same-host redirects followed (10 requests at
/// most), a redirect elsewhere taken as the answer, 10 KiB of body read.
async fn http_get(
    first: url::Url,
    display: String,
    headers: &[(String, String)],
    ctx: &ProbeContext,
    progress: &mut HttpProgress,
) -> ProbeResult {
    let mut url = first.clone();
    // The Host header of the first request is the URL's authority as written (Go keeps `:80`).
    let mut host_header = display
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    let mut referer: Option<String> = None;
    let mut requests = 0;
    loop {
        requests += 1;
        let Some((host, port, _)) = url_authority(&url) else {
            return ProbeResult::Failure(format!("Get {:?}: no Host in request URL", progress.url));
        };
        let addr = match resolve(&host, port).await {
            Ok(a) => a,
            Err(e) => return ProbeResult::Failure(format!("Get {:?}: {e}", progress.url)),
        };
        let stream = match ctx.connector.connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                return ProbeResult::Failure(format!(
                    "Get {:?}: dial tcp {addr}: {}",
                    progress.url,
                    dial_error(&e)
                ))
            }
        };
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(x) => x,
                Err(e) => return ProbeResult::Failure(format!("Get {:?}: {e}", progress.url)),
            };
        let _conn = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));

        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let mut req = hyper::Request::get(target);
        let mut has_ua = false;
        let mut has_accept = false;
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("host") {
                host_header = value.clone();
                continue;
            }
            if name.eq_ignore_ascii_case("user-agent") {
                has_ua = true;
            } else if name.eq_ignore_ascii_case("accept") {
                has_accept = true;
            }
            // Go sends no User-Agent or Accept set to "".
            if value.is_empty()
                && (name.eq_ignore_ascii_case("user-agent") || name.eq_ignore_ascii_case("accept"))
            {
                continue;
            }
            req = req.header(name.as_str(), value.as_str());
        }
        if !has_ua {
            req = req.header(hyper::header::USER_AGENT, USER_AGENT);
        }
        if !has_accept {
            req = req.header(hyper::header::ACCEPT, "*/*");
        }
        if let Some(r) = &referer {
            req = req.header(hyper::header::REFERER, r.as_str());
        }
        req = req
            .header(hyper::header::HOST, host_header.as_str())
            .header(hyper::header::CONNECTION, "close");
        let req = match req.body(Empty::<Bytes>::new()) {
            Ok(r) => r,
            Err(e) => return ProbeResult::Unknown(format!("Get {:?}: {e}", progress.url)),
        };
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                let msg = if e.is_incomplete_message() {
                    "EOF".to_string()
                } else {
                    e.to_string()
                };
                return ProbeResult::Failure(format!("Get {:?}: {msg}", progress.url));
            }
        };
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .filter(|l| !l.is_empty())
            .map(str::to_string);
        if let (true, Some(loc)) = (
            matches!(status, 301 | 302 | 303 | 307 | 308),
            location.as_deref(),
        ) {
            let next = match url.join(loc) {
                Ok(n) => n,
                Err(e) => {
                    return ProbeResult::Failure(format!(
                        "Get {:?}: failed to parse Location header {loc:?}: {e}",
                        progress.url
                    ))
                }
            };
            if next.host_str() != first.host_str() {
                // http.ErrUseLastResponse: the redirect itself is the answer (a success).
                return ProbeResult::Success;
            }
            if requests >= MAX_REQUESTS {
                return ProbeResult::Failure(format!("Get {loc:?}: stopped after 10 redirects"));
            }
            match next.scheme() {
                "http" => {}
                "https" => {
                    return ProbeResult::Unknown("HTTPS probes are not supported".into());
                }
                other => {
                    return ProbeResult::Failure(format!(
                        "Get {loc:?}: unsupported protocol scheme {other:?}"
                    ))
                }
            }
            referer = Some(url.to_string());
            host_header = url_authority(&next).map(|a| a.2).unwrap_or_default();
            progress.url = next.to_string();
            url = next;
            continue;
        }

        progress.reading_body = true;
        let mut body = resp.into_body();
        let mut read = 0;
        while read < MAX_READ {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        read += data.len();
                    }
                }
                Some(Err(e)) => return ProbeResult::Failure(e.to_string()),
            }
        }
        return if (200..400).contains(&status) {
            ProbeResult::Success
        } else {
            ProbeResult::Failure(format!("HTTP probe failed with statuscode: {status}"))
        };
    }
}

/// Which probe a result is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Readiness,
    Liveness,
    Startup,
}

/// The thresholds of a probe (the kubelet's `worker.doProbe` bookkeeping): the result only
/// changes after `successThreshold` (default 1) successes or `failureThreshold` (default 3)
/// failures in a row.
#[derive(Clone, Debug)]
pub struct ProbeState {
    kind: ProbeKind,
    result: bool,
    determined: bool,
    last: Option<bool>,
    run: i32,
}

impl ProbeState {
    /// Starts at the kubelet's initial value: not ready, live, not started.
    pub fn new(kind: ProbeKind) -> ProbeState {
        ProbeState {
            kind,
            result: kind == ProbeKind::Liveness,
            determined: false,
            last: None,
            run: 0,
        }
    }

    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The current result.
    pub fn result(&self) -> bool {
        self.result
    }

    /// Whether a threshold has been reached yet.
    pub fn determined(&self) -> bool {
        self.determined
    }

    /// Records one attempt; returns the new result when it changes — including, for readiness
    /// and startup, the first time a threshold is reached (the first failure verdict does not
    /// change the initial `false`, but it is news: the probe has run). After a liveness or
    /// startup failure the run restarts, as the kubelet's worker holds until the container is
    /// restarted.
    pub fn record(&mut self, r: &ProbeResult, probe: &Probe) -> Option<bool> {
        let ok = r.is_success();
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
        if (ok && self.run < success_threshold) || (!ok && self.run < failure_threshold) {
            return None;
        }
        let changed = self.result != ok || (!self.determined && self.kind != ProbeKind::Liveness);
        self.result = ok;
        self.determined = true;
        if !ok && self.kind != ProbeKind::Readiness {
            self.run = 0;
        }
        changed.then_some(ok)
    }
}

/// A change of a probe's result, from [`spawn_worker`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeUpdate {
    pub kind: ProbeKind,
    pub result: bool,
    /// The failure message of the attempt that made the result false (empty when true).
    pub message: String,
}

/// Probes periodically, for one container (instance): waits `initialDelaySeconds` (default
/// 0), then runs the probe every `periodSeconds` (default 10) and sends a [`ProbeUpdate`]
/// whenever [`ProbeState::record`] reports a change.
///
/// The worker ends when the handle is aborted or the receiver dropped, and by itself after a
/// startup success (startup probes stop once the container has started) or after reporting a
/// liveness or startup failure (the container is to be killed; the kubelet's worker holds until
/// it is restarted — start a new worker for the new container).
pub fn spawn_worker(
    probe: Probe,
    kind: ProbeKind,
    ctx: ProbeContext,
    tx: UnboundedSender<ProbeUpdate>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let work = async {
            let delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
            tokio::time::sleep(Duration::from_secs(delay)).await;
            let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut state = ProbeState::new(kind);
            loop {
                ticker.tick().await;
                let r = run_once(&probe, &ctx).await;
                let Some(result) = state.record(&r, &probe) else {
                    continue;
                };
                let update = ProbeUpdate {
                    kind,
                    result,
                    message: r.message().to_string(),
                };
                if tx.send(update).is_err() {
                    return;
                }
                match (kind, result) {
                    (ProbeKind::Startup, true) => return,
                    (ProbeKind::Liveness | ProbeKind::Startup, false) => return,
                    _ => {}
                }
            }
        };
        tokio::select! {
            _ = work => {}
            _ = tx.closed() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ExecAction, GRPCAction, HTTPHeader};
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::time::Instant;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn ctx(ports: Vec<ContainerPort>) -> ProbeContext {
        ProbeContext {
            pod_ip: LOCALHOST,
            ports,
            connector: Arc::new(DirectConnector),
            exec: Arc::new(LocalExec),
        }
    }

    /// A tiny HTTP server on 127.0.0.1: `/ok` 200, `/fail` 503, `/status` the code in `status`,
    /// `/redirect` 302 to `/ok`, `/redirect-fail` 302 to `/fail`, `/loop` 302 to itself,
    /// `/away` 302 to another host, `/big` a 1 MiB body, `/hang` no answer, `/headers` 200 when
    /// the probe's headers are as expected, `/slow-body` headers then a stalled body.
    async fn server(status: Arc<AtomicU16>) -> u16 {
        let l = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let status = status.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let req = String::from_utf8_lossy(&buf).to_string();
                    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let lower = req.to_lowercase();
                    let (code, extra, body): (u16, String, Vec<u8>) = match path.as_str() {
                        "/ok" => (200, String::new(), b"ok".to_vec()),
                        "/fail" => (503, String::new(), b"down".to_vec()),
                        "/status" => (status.load(Ordering::SeqCst), String::new(), vec![]),
                        "/redirect" => (302, "Location: /ok\r\n".into(), vec![]),
                        "/redirect-fail" => (302, "Location: /fail\r\n".into(), vec![]),
                        "/loop" => (302, "Location: /loop\r\n".into(), vec![]),
                        "/away" => (
                            302,
                            "Location: http://elsewhere.invalid/x\r\n".into(),
                            vec![],
                        ),
                        "/big" => (200, String::new(), vec![b'x'; 1 << 20]),
                        "/hang" => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        "/slow-body" => {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
                                .await;
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        "/headers" => {
                            let good = lower.contains("\r\nuser-agent: kube-probe/1.32\r\n")
                                && lower.contains("\r\naccept: */*\r\n")
                                && lower.contains("\r\nx-test: yes\r\n")
                                && lower.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n"));
                            (if good { 200 } else { 400 }, String::new(), vec![])
                        }
                        "/custom-headers" => {
                            let good = lower.contains("\r\nuser-agent: mine\r\n")
                                && !lower.contains("\r\naccept:")
                                && lower.contains("\r\nhost: example.test\r\n");
                            (if good { 200 } else { 400 }, String::new(), vec![])
                        }
                        _ => (404, String::new(), vec![]),
                    };
                    let head = format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        port
    }

    fn http_probe_spec(port: IntOrString, path: &str) -> Probe {
        Probe {
            http_get: Some(HTTPGetAction {
                port,
                path: Some(path.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A port nothing listens on.
    async fn closed_port() -> u16 {
        let l = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn http_statuses_and_redirects() {
        let port = server(Arc::new(AtomicU16::new(200))).await;
        let c = ctx(vec![]);
        let p = |path: &str| http_probe_spec(IntOrString::Int(port.into()), path);
        assert_eq!(run_once(&p("/ok"), &c).await, ProbeResult::Success);
        assert_eq!(
            run_once(&p("/fail"), &c).await,
            ProbeResult::Failure("HTTP probe failed with statuscode: 503".into())
        );
        assert_eq!(
            run_once(&p("/nope"), &c).await,
            ProbeResult::Failure("HTTP probe failed with statuscode: 404".into())
        );
        assert_eq!(run_once(&p("/redirect"), &c).await, ProbeResult::Success);
        assert_eq!(
            run_once(&p("/redirect-fail"), &c).await,
            ProbeResult::Failure("HTTP probe failed with statuscode: 503".into())
        );
        assert_eq!(run_once(&p("/away"), &c).await, ProbeResult::Success);
        assert_eq!(
            run_once(&p("/loop"), &c).await,
            ProbeResult::Failure("Get \"/loop\": stopped after 10 redirects".into())
        );
        assert_eq!(run_once(&p("/big"), &c).await, ProbeResult::Success);
        // No leading slash, as the kubelet's URL formatting allows.
        assert_eq!(run_once(&p("ok"), &c).await, ProbeResult::Success);
    }

    #[tokio::test]
    async fn http_headers_named_ports_and_schemes() {
        let port = server(Arc::new(AtomicU16::new(200))).await;
        let c = ctx(vec![ContainerPort {
            name: Some("http".into()),
            container_port: port.into(),
            ..Default::default()
        }]);
        let mut p = http_probe_spec(IntOrString::String("http".into()), "/headers");
        p.http_get.as_mut().unwrap().http_headers = Some(vec![HTTPHeader {
            name: "X-Test".into(),
            value: "yes".into(),
        }]);
        assert_eq!(run_once(&p, &c).await, ProbeResult::Success);

        let mut p = http_probe_spec(IntOrString::String(port.to_string()), "/custom-headers");
        p.http_get.as_mut().unwrap().http_headers = Some(vec![
            HTTPHeader {
                name: "user-agent".into(),
                value: "mine".into(),
            },
            HTTPHeader {
                name: "Accept".into(),
                value: "".into(),
            },
            HTTPHeader {
                name: "Host".into(),
                value: "example.test".into(),
            },
        ]);
        assert_eq!(run_once(&p, &c).await, ProbeResult::Success);

        let p = http_probe_spec(IntOrString::String("metrics".into()), "/ok");
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Unknown("strconv.Atoi: parsing \"metrics\": invalid syntax".into())
        );
        let p = http_probe_spec(IntOrString::Int(0), "/ok");
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Unknown("invalid port number: 0".into())
        );
        let mut p = http_probe_spec(IntOrString::Int(port.into()), "/ok");
        p.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Unknown("HTTPS probes are not supported".into())
        );
        // An explicit host.
        let mut p = http_probe_spec(IntOrString::Int(port.into()), "/ok");
        p.http_get.as_mut().unwrap().host = Some("127.0.0.1".into());
        let other = ProbeContext {
            pod_ip: "192.0.2.1".parse().unwrap(),
            ..c.clone()
        };
        assert_eq!(run_once(&p, &other).await, ProbeResult::Success);
    }

    #[tokio::test]
    async fn http_refused_and_timeouts() {
        let c = ctx(vec![]);
        let port = closed_port().await;
        let p = http_probe_spec(IntOrString::Int(port.into()), "/healthz");
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Failure(format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );

        // A listener that accepts (in the kernel) but never answers.
        let silent = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        let sport = silent.local_addr().unwrap().port();
        let p = http_probe_spec(IntOrString::Int(sport.into()), "/healthz");
        let start = Instant::now();
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Failure(format!(
                "Get \"http://127.0.0.1:{sport}/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3));

        let port = server(Arc::new(AtomicU16::new(200))).await;
        let p = http_probe_spec(IntOrString::Int(port.into()), "/slow-body");
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Failure(
                "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
                    .into()
            )
        );
        drop(silent);
    }

    /// Never connects.
    struct Blackhole;
    impl Connector for Blackhole {
        fn connect(&self, _: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> {
            Box::pin(futures::future::pending())
        }
    }

    fn tcp_probe_spec(port: i32) -> Probe {
        Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(port),
                host: None,
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn tcp() {
        let c = ctx(vec![]);
        let l = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            run_once(&tcp_probe_spec(port.into()), &c).await,
            ProbeResult::Success
        );
        drop(l);
        let port = closed_port().await;
        assert_eq!(
            run_once(&tcp_probe_spec(port.into()), &c).await,
            ProbeResult::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
        let hole = ProbeContext {
            connector: Arc::new(Blackhole),
            pod_ip: "10.244.1.5".parse().unwrap(),
            ..c
        };
        assert_eq!(
            run_once(&tcp_probe_spec(80), &hole).await,
            ProbeResult::Failure("dial tcp 10.244.1.5:80: i/o timeout".into())
        );
    }

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

    fn exec_spec(argv: &[&str], timeout: i32) -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: Some(argv.iter().map(|s| s.to_string()).collect()),
            }),
            timeout_seconds: Some(timeout),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn exec() {
        let c = ctx(vec![]);
        assert_eq!(
            run_once(&exec_spec(&["true"], 1), &c).await,
            ProbeResult::Success
        );
        assert_eq!(
            run_once(&exec_spec(&["sh", "-c", "exit 3"], 1), &c).await,
            ProbeResult::Failure("command \"sh -c exit 3\" exited with 3".into())
        );
        assert_eq!(
            run_once(
                &exec_spec(&["sh", "-c", "echo out; echo err >&2; exit 1"], 1),
                &c
            )
            .await,
            ProbeResult::Failure("out\nerr\n".into())
        );
        let start = Instant::now();
        assert_eq!(
            run_once(&exec_spec(&["sleep", "5"], 1), &c).await,
            ProbeResult::Failure("command \"sleep 5\" timed out".into())
        );
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(matches!(
            run_once(&exec_spec(&["/nonexistent/svcnet-probe"], 1), &c).await,
            ProbeResult::Unknown(_)
        ));
        assert!(matches!(
            run_once(&exec_spec(&[], 1), &c).await,
            ProbeResult::Unknown(_)
        ));
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

    #[tokio::test]
    async fn grpc_and_missing_handler() {
        let c = ctx(vec![]);
        let p = Probe {
            grpc: Some(GRPCAction {
                port: 9000,
                service: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Unknown("grpc probes are not supported".into())
        );
        assert!(matches!(
            run_once(&Probe::default(), &c).await,
            ProbeResult::Unknown(_)
        ));
    }

    fn fail() -> ProbeResult {
        ProbeResult::Failure("x".into())
    }

    #[test]
    fn thresholds() {
        let probe = Probe::default();
        // Readiness: starts false; the first verdict is reported even when it is false.
        let mut s = ProbeState::new(ProbeKind::Readiness);
        assert!(!s.result());
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&fail(), &probe), Some(false));
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), Some(true));
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(
            s.record(&ProbeResult::Unknown("grpc".into()), &probe),
            Some(false)
        );

        // successThreshold 2.
        let probe = Probe {
            success_threshold: Some(2),
            failure_threshold: Some(1),
            ..Default::default()
        };
        let mut s = ProbeState::new(ProbeKind::Readiness);
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), Some(true));
        assert_eq!(s.record(&fail(), &probe), Some(false));
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), Some(true));

        // Liveness: starts true, a success is no news; three failures are.
        let probe = Probe::default();
        let mut s = ProbeState::new(ProbeKind::Liveness);
        assert!(s.result());
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert!(s.determined());
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&fail(), &probe), Some(false));
        assert!(!s.result());

        // Startup: starts false; the first success is reported.
        let mut s = ProbeState::new(ProbeKind::Startup);
        assert!(!s.result());
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), Some(true));
    }

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<ProbeUpdate>) -> ProbeUpdate {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an update")
            .expect("the worker runs")
    }

    #[tokio::test]
    async fn worker_reports_changes() {
        let status = Arc::new(AtomicU16::new(200));
        let port = server(status.clone()).await;
        let mut probe = http_probe_spec(IntOrString::Int(port.into()), "/status");
        probe.period_seconds = Some(1);
        probe.failure_threshold = Some(1);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = spawn_worker(probe.clone(), ProbeKind::Readiness, ctx(vec![]), tx);
        let u = next(&mut rx).await;
        assert_eq!(
            u,
            ProbeUpdate {
                kind: ProbeKind::Readiness,
                result: true,
                message: String::new()
            }
        );
        status.store(503, Ordering::SeqCst);
        let u = next(&mut rx).await;
        assert!(!u.result);
        assert_eq!(u.message, "HTTP probe failed with statuscode: 503");
        status.store(200, Ordering::SeqCst);
        assert!(next(&mut rx).await.result);
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
        assert!(rx.recv().await.is_none());

        // Liveness: no news while live; a failure is reported, then the worker ends.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = spawn_worker(probe, ProbeKind::Liveness, ctx(vec![]), tx);
        assert!(tokio::time::timeout(Duration::from_millis(1500), rx.recv())
            .await
            .is_err());
        status.store(500, Ordering::SeqCst);
        let u = next(&mut rx).await;
        assert_eq!((u.kind, u.result), (ProbeKind::Liveness, false));
        assert!(rx.recv().await.is_none());
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn worker_stops_when_receiver_dropped() {
        let mut probe = tcp_probe_spec(closed_port().await.into());
        probe.period_seconds = Some(1);
        probe.failure_threshold = Some(2);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = spawn_worker(probe, ProbeKind::Readiness, ctx(vec![]), tx);
        // The first verdict (false, after two failures) is reported.
        let u = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(!u.result);
        assert!(u.message.ends_with("connect: connection refused"));
        drop(rx);
        tokio::time::timeout(Duration::from_secs(2), handle)
            .await
            .expect("the worker ends")
            .unwrap();
    }
}
