//! A backend for tests and walkthroughs, like Kubernetes' `agnhost netexec`: real traffic needs
//! real servers, and pods in svcnet run host processes, so this ships with the project.
//!
//! HTTP (`--http-port`):
//! - `/` — the IP address the request arrived at (the pod IP, also behind a Service), as the
//!   seeds' nginx pages show after `echo <podIP> > index.html`; `--body TEXT` replaces it;
//! - `/hostname` — the hostname (the pod name); `/clientip` — the client's `ip:port`;
//! - `/echo?msg=X` — X; `/healthz`, `/readyz` — `ok` (`/readyz` answers 503 after
//!   `/fail-readiness`, to drive readiness probes); `/exit?code=N` — exits.
//!
//! UDP (`--udp-port`): `hostname` → hostname, `clientip` → client ip:port, `echo X` → X,
//! anything else echoed back. TCP (`--tcp-port`): every line echoed back, `hostname` answered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub http_port: Option<u16>,
    pub udp_port: Option<u16>,
    pub tcp_port: Option<u16>,
    /// Fixed body for `/` instead of the local IP.
    pub body: Option<String>,
}

struct Shared {
    hostname: String,
    body: Option<String>,
    unready: AtomicBool,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Run the servers asked for, until the process ends.
pub async fn run(opts: Options) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        hostname: hostname(),
        body: opts.body.clone(),
        unready: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    if let Some(port) = opts.http_port {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
        tasks.push(tokio::spawn(serve_http(listener, shared.clone())));
    }
    if let Some(port) = opts.udp_port {
        let sock = tokio::net::UdpSocket::bind(("0.0.0.0", port)).await?;
        tasks.push(tokio::spawn(serve_udp(sock, shared.clone())));
    }
    if let Some(port) = opts.tcp_port {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
        tasks.push(tokio::spawn(serve_tcp(listener, shared.clone())));
    }
    if tasks.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "give at least one of --http-port, --udp-port, --tcp-port",
        ));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// The address a connection arrived at, attached to each request.
#[derive(Clone, Copy)]
struct LocalAddr(SocketAddr);

async fn serve_http(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let app = Router::new()
        .route("/", get(root))
        .route(
            "/hostname",
            get(|State(s): State<Arc<Shared>>| async move { s.hostname.clone() }),
        )
        .route(
            "/hostName",
            get(|State(s): State<Arc<Shared>>| async move { s.hostname.clone() }),
        )
        .route(
            "/clientip",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/echo",
            get(
                |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    q.get("msg").cloned().unwrap_or_default()
                },
            ),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<Arc<Shared>>| async move {
                if s.unready.load(Ordering::Relaxed) {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
                } else {
                    "ok".into_response()
                }
            }),
        )
        .route(
            "/fail-readiness",
            get(|State(s): State<Arc<Shared>>| async move {
                s.unready.store(true, Ordering::Relaxed);
                "readiness will fail"
            }),
        )
        .route(
            "/restore-readiness",
            get(|State(s): State<Arc<Shared>>| async move {
                s.unready.store(false, Ordering::Relaxed);
                "readiness restored"
            }),
        )
        .route(
            "/exit",
            get(
                |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    let code = q.get("code").and_then(|c| c.parse().ok()).unwrap_or(0);
                    std::process::exit(code);
                    #[allow(unreachable_code)]
                    ""
                },
            ),
        )
        .with_state(shared);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let local = stream.local_addr().unwrap_or(peer);
        let app = app
            .clone()
            .layer(axum::Extension(LocalAddr(local)))
            .layer(axum::Extension(ConnectInfo(peer)));
        tokio::spawn(async move {
            let svc = hyper_service(app);
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(io, svc)
                    .await;
        });
    }
}

fn hyper_service(app: Router) -> hyper_util::service::TowerToHyperService<Router> {
    hyper_util::service::TowerToHyperService::new(app)
}

async fn root(
    State(s): State<Arc<Shared>>,
    axum::Extension(LocalAddr(local)): axum::Extension<LocalAddr>,
) -> String {
    match &s.body {
        Some(b) => format!("{b}\n"),
        None => format!("{}\n", local.ip()),
    }
}

fn udp_reply(msg: &str, peer: SocketAddr, shared: &Shared) -> String {
    let msg = msg.trim_end_matches(['\n', '\r']);
    match msg {
        "hostname" => shared.hostname.clone(),
        "clientip" => peer.to_string(),
        m => m.strip_prefix("echo ").unwrap_or(m).to_string(),
    }
}

async fn serve_udp(sock: tokio::net::UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let reply = udp_reply(&String::from_utf8_lossy(&buf[..n]), peer, &shared);
        let _ = sock.send_to(reply.as_bytes(), peer).await;
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = udp_reply(&line, peer, &shared);
                if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn http_udp_tcp_answer() {
        let shared = Arc::new(Shared {
            hostname: "pod-a".into(),
            body: None,
            unready: AtomicBool::new(false),
        });
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http.local_addr().unwrap();
        tokio::spawn(serve_http(http, shared.clone()));
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let udp_addr = udp.local_addr().unwrap();
        tokio::spawn(serve_udp(udp, shared.clone()));
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp_addr = tcp.local_addr().unwrap();
        tokio::spawn(serve_tcp(tcp, shared.clone()));

        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(http_addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/").await.ends_with("\r\n\r\n127.0.0.1\n"));
        assert!(get("/hostname").await.ends_with("pod-a"));
        assert!(get("/echo?msg=hi").await.ends_with("hi"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        get("/fail-readiness").await;
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));

        let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.send_to(b"hostname", udp_addr).await.unwrap();
        let mut buf = [0u8; 100];
        let (n, _) = c.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pod-a");
        c.send_to(b"echo abc", udp_addr).await.unwrap();
        let (n, _) = c.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"abc");

        let mut t = tokio::net::TcpStream::connect(tcp_addr).await.unwrap();
        t.write_all(b"hello\nhostname\n").await.unwrap();
        let mut got = vec![0u8; 12];
        t.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"hello\npod-a\n");
    }
}
