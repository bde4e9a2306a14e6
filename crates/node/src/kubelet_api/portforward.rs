//! `portForward` over SPDY/3.1 (the kubelet's `pkg/kubelet/cri/streaming/portforward`
//! `httpstream.go`, with the runtime's part — containerd's `portForward`: dial localhost inside
//! the sandbox's network namespace, copy both ways — done here).
//!
//! `/portForward/{ns}/{pod}` upgrades to SPDY/3.1 after negotiating `X-Stream-Protocol-Version:
//! portforward.k8s.io`. The client opens two streams per forwarded connection, with headers
//! `streamType` (`error` or `data`), `port` and `requestID`; once both of a request are there
//! (within [`STREAM_CREATION_TIMEOUT`]), the data stream is spliced to `localhost:<port>` in the
//! pod's network namespace (IPv4 first, then IPv6, as containerd), and what goes wrong is
//! written, as text, on the error stream — which kubectl prints as `an error occurred
//! forwarding L -> R: <text>`. One session carries any number of connections.
//!
//! kubectl 1.31+ first tries SPDY tunneled through a WebSocket
//! (`SPDY/3.1+portforward.k8s.io`); kube-apiserver (and svcnet's, `proxy::forward_tunneled`)
//! unwraps that and comes here with plain SPDY, as for older kubectls. A plain WebSocket
//! request (channel pairs per `?port=`) goes to [`super::portforward_ws`].

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path as UrlPath, Request, State};
use axum::response::{IntoResponse, Response};
use futures::future::{select, Either};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use hyper_util::rt::TokioIo;
use svcnet_netns::{NetNs, NetnsError};
use svcnet_spdy::{Connection, PendingStream, Role, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::httpstream::{handshake, has_token, http_error, STREAM_CREATION_TIMEOUT};
use super::AppState;

/// The port-forward protocol (`portforward.PortForwardProtocolV1Name`), the only one the
/// kubelet accepts.
pub const PROTOCOL_V1: &str = "portforward.k8s.io";

/// A session with no frame for this long is closed (the kubelet's
/// `--streaming-connection-idle-timeout`, default 4h).
pub const STREAMING_CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// After one direction of a forwarded connection ends, how long the other may still run
/// (containerd's `portForward`: "give a chance to terminate gracefully or timeout after 1s").
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Bound on a connect inside the pod's namespace. containerd dials without a deadline, so the
/// kernel's SYN retries bound it (`net.ipv4.tcp_syn_retries` = 6: about 127 s); loopback answers
/// at once either way.
const DIAL_TIMEOUT: Duration = Duration::from_secs(127);

/// What `portForward` needs of a pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodSandbox {
    /// The pod's network namespace (its name under `/run/netns`); it also names the sandbox in
    /// error messages, as containerd's sandbox id does.
    pub netns: String,
    /// Whether one of the pod's containers runs.
    pub running: bool,
}

/// Go's `%#v` of an `http.Header` (canonical names, sorted), for the kubelet's message about
/// missing upgrade headers.
fn go_header_dump(headers: &HeaderMap) -> String {
    let mut names: Vec<String> = headers.keys().map(|k| canonical(k.as_str())).collect();
    names.sort();
    names.dedup();
    let entries: Vec<String> = names
        .iter()
        .map(|n| {
            let vs: Vec<String> = headers
                .get_all(n.as_str())
                .iter()
                .map(|v| format!("{:?}", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            format!("{n:?}:[]string{{{}}}", vs.join(", "))
        })
        .collect();
    format!("http.Header{{{}}}", entries.join(", "))
}

fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// `GET|POST /portForward/{ns}/{pod}` (the kubelet's `getPortForward`, `ServePortForward`,
/// `httpstream.Handshake` and the SPDY `UpgradeResponse`, with their answers).
pub(super) async fn get_port_forward(
    State(st): State<Arc<AppState>>,
    UrlPath((ns, pod)): UrlPath<(String, String)>,
    mut req: Request,
) -> Response {
    let Some(sandbox) = st.runtime.sandbox(&ns, &pod) else {
        return http_error(StatusCode::NOT_FOUND, "pod does not exist");
    };
    if !sandbox.running {
        return http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("pod not found (\"{pod}_{ns}\")"),
        );
    }
    if has_token(req.headers(), header::UPGRADE, "websocket") {
        let query = req.uri().query().map(str::to_string);
        let (mut parts, _) = req.into_parts();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => super::portforward_ws::upgrade(ws, &parts.headers, query.as_deref(), sandbox),
            Err(rejection) => rejection.into_response(),
        };
    }
    let headers = req.headers();
    if let Err(refused) = handshake(headers, &[PROTOCOL_V1]) {
        return *refused;
    }
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "spdy/3.1")
    {
        return http_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "unable to upgrade: missing upgrade headers in request: {}",
                go_header_dump(headers)
            ),
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded), sandbox).await,
            Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(PROTOCOL_V1),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::UPGRADE,
        HeaderValue::from_static(svcnet_spdy::HEADER_SPDY31),
    );
    resp
}

/// The two streams of one forwarded connection (`httpStreamPair`).
#[derive(Default)]
struct Pair {
    data: Option<Stream>,
    error: Option<Stream>,
}

/// Why a stream is refused (`httpStreamReceived`).
fn check_stream(p: &PendingStream) -> Result<(), String> {
    let h = p.headers();
    let port = h.get("port").unwrap_or_default();
    if port.is_empty() {
        return Err("\"port\" header is required".into());
    }
    match port.parse::<u16>() {
        Err(e) => return Err(format!("unable to parse {port:?} as a port: {e}")),
        Ok(0) => return Err(format!("port {port:?} must be > 0")),
        Ok(_) => {}
    }
    match h.get("streamType").unwrap_or_default() {
        "" => Err("\"streamType\" header is required".into()),
        "error" | "data" => Ok(()),
        other => Err(format!("invalid stream type {other:?}")),
    }
}

/// The request a stream belongs to: its `requestID`, or for clients too old to send one, a
/// guess from the stream id (the error stream's id; the data stream's minus 2).
fn request_id(s: &Stream) -> String {
    match s.headers().get("requestID") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ if s.headers().get("streamType") == Some("error") => s.id().to_string(),
        _ => s.id().saturating_sub(2).to_string(),
    }
}

/// Write `msg` on an error stream and end it (FIN after the text, so it is read whole).
async fn print_error(mut error: Stream, msg: &str) {
    let _ = error.write_all(msg.as_bytes()).await;
    let _ = error.shutdown().await;
}

/// One SPDY session (`httpStreamHandler.run`): pair streams by request, forward complete pairs.
async fn serve<T>(io: T, sandbox: PodSandbox)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (conn, mut incoming) = Connection::new(io, Role::Server);
    conn.set_idle_timeout(STREAMING_CONNECTION_IDLE_TIMEOUT);
    let sandbox = Arc::new(sandbox);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let (expired_tx, mut expired) = mpsc::unbounded_channel::<String>();
    let mut conns = 0u64;
    loop {
        let pending = tokio::select! {
            _ = conn.closed() => break,
            Some(id) = expired.recv() => {
                if let Some(pair) = pairs.remove(&id) {
                    let msg = format!("(conn={conns}, request={id}) timed out waiting for streams");
                    tracing::warn!("{msg}");
                    if let Some(e) = pair.error {
                        tokio::spawn(async move { print_error(e, &msg).await });
                    }
                }
                continue;
            }
            p = incoming.next() => match p {
                Some(p) => p,
                None => break,
            },
        };
        if let Err(e) = check_stream(&pending) {
            tracing::warn!(error = %e, "port-forward stream rejected");
            pending.reject();
            continue;
        }
        let Ok(stream) = pending.accept().await else {
            break;
        };
        let id = request_id(&stream);
        let pair = pairs.entry(id.clone()).or_insert_with(|| {
            let tx = expired_tx.clone();
            let id = id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(STREAM_CREATION_TIMEOUT).await;
                let _ = tx.send(id);
            });
            Pair::default()
        });
        let slot = if stream.headers().get("streamType") == Some("error") {
            &mut pair.error
        } else {
            &mut pair.data
        };
        if slot.is_some() {
            let kind = stream.headers().get("streamType").unwrap_or_default();
            let msg =
                format!("error processing stream for request {id}: {kind} stream already assigned");
            tracing::warn!("{msg}");
            if let Some(e) = pair.error.take() {
                tokio::spawn(async move { print_error(e, &msg).await });
            }
            continue;
        }
        *slot = Some(stream);
        if let Pair {
            data: Some(_),
            error: Some(_),
        } = pair
        {
            let Pair { data, error } = pairs.remove(&id).expect("the pair just filled");
            conns += 1;
            tokio::spawn(forward(
                sandbox.clone(),
                data.expect("complete"),
                error.expect("complete"),
            ));
        }
    }
    conn.close();
}

/// One forwarded connection (`httpStreamHandler.portForward`).
async fn forward(sandbox: Arc<PodSandbox>, mut data: Stream, mut error: Stream) {
    error.close_read();
    let port: u16 = data
        .headers()
        .get("port")
        .and_then(|p| p.parse().ok())
        .unwrap_or_default();
    if let Err(e) = port_forward(&sandbox, port, &mut data).await {
        let msg = format!(
            "error forwarding port {port} to pod {}, uid : {e}",
            sandbox.netns
        );
        tracing::warn!("{msg}");
        let _ = error.write_all(msg.as_bytes()).await;
    }
    let _ = data.shutdown().await;
    let _ = error.shutdown().await;
}

/// What went wrong forwarding one connection (containerd's messages).
#[derive(Debug, thiserror::Error)]
pub(super) enum ForwardError {
    #[error("failed to execute portforward in network namespace \"{path}\": failed to connect to localhost:{port} inside namespace \"{id}\", IPv4: {v4} IPv6 {v6} ")]
    Connect {
        path: String,
        id: String,
        port: u16,
        v4: String,
        v6: String,
    },
    #[error("failed to execute portforward in network namespace \"{path}\": {source}")]
    Namespace { path: String, source: NetnsError },
    #[error("failed to execute portforward in network namespace \"{path}\": {detail}")]
    Copy { path: String, detail: String },
}

/// An errno as Go prints it (`connection refused`, not `Connection refused (os error 111)`).
fn go_errno(e: &io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Go's `net.Dial` error: `dial tcp4 127.0.0.1:8080: connect: connection refused`.
fn dial_error(net: &str, addr: SocketAddr, e: NetnsError) -> Result<String, NetnsError> {
    match e {
        NetnsError::Io(io) => Ok(format!("dial {net} {addr}: connect: {}", go_errno(&io))),
        other => Err(other),
    }
}

/// containerd's `portForward`: connect to localhost:`port` inside the pod's namespace and copy
/// both ways until one direction ends, then give the other [`CLOSE_GRACE`].
pub(super) async fn port_forward<S>(
    sb: &PodSandbox,
    port: u16,
    stream: &mut S,
) -> Result<(), ForwardError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ns = NetNs::open(&sb.netns).map_err(|source| ForwardError::Namespace {
        path: format!("{}/{}", svcnet_netns::NETNS_DIR, sb.netns),
        source,
    })?;
    let path = ns.path().display().to_string();
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let namespace = |source| ForwardError::Namespace {
        path: path.clone(),
        source,
    };
    let conn = match ns.tcp_connect(v4, DIAL_TIMEOUT).await {
        Ok(c) => c,
        Err(e4) => match ns.tcp_connect(v6, DIAL_TIMEOUT).await {
            Ok(c) => c,
            Err(e6) => {
                return Err(ForwardError::Connect {
                    path: path.clone(),
                    id: sb.netns.clone(),
                    port,
                    v4: dial_error("tcp4", v4, e4).map_err(namespace)?,
                    v6: dial_error("tcp6", v6, e6).map_err(namespace)?,
                })
            }
        },
    };
    let (mut pod_r, mut pod_w) = conn.into_split();
    let (mut s_r, mut s_w) = tokio::io::split(stream);
    let to_pod = Box::pin(pump(&mut s_r, &mut pod_w, Towards::Pod));
    let from_pod = Box::pin(pump(&mut pod_r, &mut s_w, Towards::Stream));
    let first = match select(to_pod, from_pod).await {
        Either::Left((r, other)) => {
            let _ = tokio::time::timeout(CLOSE_GRACE, other).await;
            r
        }
        Either::Right((r, other)) => {
            let _ = tokio::time::timeout(CLOSE_GRACE, other).await;
            r
        }
    };
    match first {
        // The pod's socket failing is reported; the stream failing means the client reset it
        // or left, which ends the connection without an error (spdystream's writes do not fail
        // on a reset stream either).
        Err(Failed::Pod(op, e)) => Err(ForwardError::Copy {
            path,
            detail: format!("{op} tcp {v4}: {}", go_errno(&e)),
        }),
        Err(Failed::Stream) | Ok(()) => Ok(()),
    }
}

/// Which way a copy runs.
#[derive(Clone, Copy)]
enum Towards {
    Pod,
    Stream,
}

/// Where a copy failed.
enum Failed {
    /// The pod's socket, on a `read` or `write`.
    Pod(&'static str, io::Error),
    Stream,
}

/// Copy `from` to `to` until EOF, 32 KiB at a time as Go's `io.Copy`.
async fn pump<R, W>(from: &mut R, to: &mut W, towards: Towards) -> Result<(), Failed>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match (from.read(&mut buf).await, towards) {
            (Ok(0), _) => return Ok(()),
            (Ok(n), _) => n,
            (Err(_), Towards::Pod) => return Err(Failed::Stream),
            (Err(e), Towards::Stream) => return Err(Failed::Pod("read", e)),
        };
        if let Err(e) = to.write_all(&buf[..n]).await {
            return Err(match towards {
                Towards::Pod => Failed::Pod("write", e),
                Towards::Stream => Failed::Stream,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use svcnet_netns::testing::{can_run, ScratchNetns};
    use svcnet_spdy::Headers;
    use tokio::net::TcpStream;
    use tokio::time::timeout;

    use super::super::{router, Authenticator, ContainerHandle, PodRuntime};
    use super::*;

    const T: Duration = Duration::from_secs(10);

    /// One pod, `default/p`, in `netns`.
    struct Fake {
        netns: String,
        running: AtomicBool,
    }

    impl PodRuntime for Fake {
        fn container(&self, _: &str, _: &str, _: &str) -> Option<ContainerHandle> {
            None
        }
        fn sandbox(&self, ns: &str, pod: &str) -> Option<PodSandbox> {
            ((ns, pod) == ("default", "p")).then(|| PodSandbox {
                netns: self.netns.clone(),
                running: self.running.load(Ordering::SeqCst),
            })
        }
    }

    /// The kubelet API on a loopback port.
    async fn kubelet(netns: &str, running: bool) -> SocketAddr {
        let fake = Arc::new(Fake {
            netns: netns.to_string(),
            running: AtomicBool::new(running),
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let auth = Authenticator::bearer_token("sekret").unwrap();
        tokio::spawn(async move { axum::serve(l, router(auth, fake)).await });
        addr
    }

    /// Send a request with `headers`; the status line and header block of the answer, and the
    /// connection.
    async fn request(addr: SocketAddr, path: &str, headers: &str) -> (String, TcpStream) {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let auth = "Authorization: Bearer sekret\r\n";
        c.write_all(format!("POST {path} HTTP/1.1\r\nHost: k\r\n{auth}{headers}\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            timeout(T, c.read_exact(&mut b)).await.unwrap().unwrap();
            head.push(b[0]);
        }
        (String::from_utf8(head).unwrap(), c)
    }

    const UPGRADE: &str =
        "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n";

    #[tokio::test]
    async fn refuses_as_the_kubelet_does() {
        let addr = kubelet("nowhere", true).await;
        let (head, _) = request(addr, "/portForward/default/other", UPGRADE).await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let (head, _) = request(
            addr,
            "/portForward/default/p",
            "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v9.k8s.io\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("x-accepted-stream-protocol-versions: portforward.k8s.io"));
        let (head, _) = request(
            addr,
            "/portForward/default/p",
            "X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
        let addr = kubelet("nowhere", false).await;
        let (head, _) = request(addr, "/portForward/default/p", UPGRADE).await;
        assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    }

    #[test]
    fn go_renderings() {
        let mut h = HeaderMap::new();
        h.insert("user-agent", HeaderValue::from_static("kubectl"));
        h.insert("x-stream-protocol-version", HeaderValue::from_static("a"));
        assert_eq!(
            go_header_dump(&h),
            r#"http.Header{"User-Agent":[]string{"kubectl"}, "X-Stream-Protocol-Version":[]string{"a"}}"#
        );
        let refused = io::Error::from_raw_os_error(111);
        assert_eq!(go_errno(&refused), "connection refused");
    }

    /// Open the error and data streams of request `id` to `port`, as kubectl's
    /// `handleConnection` does (the error stream first, closed for writing at once).
    async fn open_pair(conn: &Connection, id: u32, port: u16) -> (Stream, Stream) {
        let mut h = Headers::new();
        h.add("streamType", "error")
            .add("port", &port.to_string())
            .add("requestID", &id.to_string());
        let mut error = conn.open(h).await.unwrap();
        error.shutdown().await.unwrap();
        let mut h = Headers::new();
        h.add("streamType", "data")
            .add("port", &port.to_string())
            .add("requestID", &id.to_string());
        (conn.open(h).await.unwrap(), error)
    }

    /// A session through the kubelet API to a server inside a scratch namespace: two
    /// connections forwarded, then a port nothing listens on reported on the error stream.
    #[tokio::test]
    async fn forwards_connections_into_the_pods_namespace() {
        if !can_run(&["ip"]) {
            return;
        }
        let ns = ScratchNetns::new("pf").unwrap();
        let l = ns
            .tcp_listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .unwrap();
        let port = l.local_addr().unwrap().port();
        let l = tokio::net::TcpListener::from_std(l).unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 5];
                    s.read_exact(&mut b).await.unwrap();
                    s.write_all(&[b"echo:", &b[..]].concat()).await.unwrap();
                });
            }
        });
        let addr = kubelet(ns.name(), true).await;
        let (head, io) = request(addr, "/portForward/default/p", UPGRADE).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("x-stream-protocol-version: portforward.k8s.io"));
        let (conn, _) = Connection::new(io, Role::Client);

        for (id, msg) in [(0, b"first"), (1, b"again")] {
            let (mut data, mut error) = open_pair(&conn, id, port).await;
            data.write_all(msg).await.unwrap();
            let mut got = Vec::new();
            timeout(T, data.read_to_end(&mut got))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, [&b"echo:"[..], msg].concat());
            let mut e = Vec::new();
            timeout(T, error.read_to_end(&mut e))
                .await
                .unwrap()
                .unwrap();
            assert!(e.is_empty(), "{}", String::from_utf8_lossy(&e));
        }

        let closed = port.wrapping_add(1).max(1);
        let (_data, mut error) = open_pair(&conn, 2, closed).await;
        let mut e = Vec::new();
        timeout(T, error.read_to_end(&mut e))
            .await
            .unwrap()
            .unwrap();
        let e = String::from_utf8(e).unwrap();
        let path = format!("/run/netns/{}", ns.name());
        assert_eq!(
            e,
            format!(
                "error forwarding port {closed} to pod {n}, uid : failed to execute portforward in \
                 network namespace \"{path}\": failed to connect to localhost:{closed} inside \
                 namespace \"{n}\", IPv4: dial tcp4 127.0.0.1:{closed}: connect: connection \
                 refused IPv6 dial tcp6 [::1]:{closed}: connect: connection refused ",
                n = ns.name()
            )
        );
    }
}
