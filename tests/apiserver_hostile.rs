//! Hostile and broken clients against the real `svcnet apiserver` (issue 16, items 1 and 5):
//! connections that never finish the handshake or their headers, idle connections, a flood past
//! the open-file limit, too many requests in flight, and HTTP/2 requests answered before their
//! body. Timeouts are scaled down through the server's test-only flags; the bounds asserted are
//! ten times looser than the timeouts.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{commands::cpu_time, wait_for, ApiServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The scaled-down timeouts of the first test.
const SHORT: &[&str] = &[
    "--tls-handshake-timeout-ms",
    "1000",
    "--read-header-timeout-ms",
    "1000",
    "--idle-timeout-ms",
    "2000",
];
/// Every connection of a test must be closed by then.
const CLOSED_WITHIN: Duration = Duration::from_secs(30);

fn addr(s: &ApiServer) -> SocketAddr {
    s.url.trim_start_matches("https://").parse().unwrap()
}

fn tls_config(s: &ApiServer, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(s.data_dir().join("ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

async fn tls(s: &ApiServer, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr(s)).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr(s).ip().into());
    tokio_rustls::TlsConnector::from(tls_config(s, alpn))
        .connect(name, tcp)
        .await
}

type Http1 = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// An HTTP/1.1 keep-alive connection; the task ends when the server closes it.
async fn http1(s: &ApiServer) -> std::io::Result<(Http1, tokio::task::JoinHandle<()>)> {
    let io = TokioIo::new(tls(s, b"http/1.1").await?);
    let (send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(std::io::Error::other)?;
    Ok((send, tokio::spawn(async move { drop(conn.await) })))
}

fn get(path: &str, token: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap()
}

/// GET `path` on a keep-alive connection: the status and body.
async fn fetch(send: &mut Http1, path: &str, token: &str) -> Result<(StatusCode, String), String> {
    let resp = tokio::time::timeout(Duration::from_secs(10), async {
        send.ready().await?;
        let resp = send.send_request(get(path, token)).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, String::from_utf8_lossy(&body).into_owned()))
    })
    .await
    .map_err(|_| "timed out".to_string())?;
    resp.map_err(|e| e.to_string())
}

/// GET /healthz with the admin token on a new connection.
async fn healthz_new_connection(s: &ApiServer) -> Result<(), String> {
    let (mut send, _conn) = tokio::time::timeout(Duration::from_secs(10), http1(s))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    match fetch(&mut send, "/healthz", &s.token()).await? {
        (StatusCode::OK, _) => Ok(()),
        (code, body) => Err(format!("{code}: {body}")),
    }
}

/// Wait until the server closes `stream` (end of stream or an error); false past `deadline`.
async fn closed_by<S: tokio::io::AsyncRead + Unpin>(mut stream: S, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout_at(deadline.into(), wait).await.is_ok()
}

fn log_lines(s: &ApiServer) -> usize {
    s.log().lines().count()
}

/// Hundreds of connections that stop before or inside the TLS handshake, in the middle of their
/// headers, or idle after a request (HTTP/1.1 and HTTP/2) are all closed on time; a watch that
/// sees no event for longer than every timeout stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_idle_connections_are_closed_on_time() {
    let s = ApiServer::start_with(SHORT);
    let token = s.token();

    // A watch: in flight, so no deadline applies to its connection.
    let (mut watch, _watch_conn) = http1(&s).await.unwrap();
    watch.ready().await.unwrap();
    let resp = watch
        .send_request(get(
            "/api/v1/namespaces/default/services?watch=true",
            &token,
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut events = resp.into_body();

    let mut waiting = Vec::new();
    // 300 TCP connections that never start the TLS handshake.
    for _ in 0..300 {
        let tcp = TcpStream::connect(addr(&s)).await.unwrap();
        waiting.push(("silent TCP", tokio::spawn(closed_within(tcp))));
    }
    // 50 that stop inside it: a TLS record header announcing a ClientHello that never comes.
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
        tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .unwrap();
        waiting.push(("half a ClientHello", tokio::spawn(closed_within(tcp))));
    }
    // 50 that finish the handshake and send half of their headers.
    for _ in 0..50 {
        let mut t = tls(&s, b"http/1.1").await.unwrap();
        t.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        t.flush().await.unwrap();
        waiting.push(("half-sent headers", tokio::spawn(closed_within(t))));
    }
    // 50 HTTP/1.1 keep-alive connections idle after one request.
    for _ in 0..50 {
        let (mut send, conn) = http1(&s).await.unwrap();
        assert_eq!(
            fetch(&mut send, "/healthz", &token).await.unwrap().0,
            StatusCode::OK
        );
        waiting.push((
            "idle HTTP/1.1",
            tokio::spawn(async move {
                let _send = send;
                tokio::time::timeout(CLOSED_WITHIN, conn).await.is_ok()
            }),
        ));
    }
    // 20 HTTP/2 connections idle after one request.
    for _ in 0..20 {
        let io = TokioIo::new(tls(&s, b"h2").await.unwrap());
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let resp = send.send_request(get("/healthz", &token)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.into_body().collect().await.unwrap();
        waiting.push((
            "idle HTTP/2",
            tokio::spawn(async move {
                let _send = send;
                tokio::time::timeout(CLOSED_WITHIN, conn).await.is_ok()
            }),
        ));
    }

    let started = Instant::now();
    let mut open = std::collections::BTreeMap::<&str, usize>::new();
    for (what, task) in waiting {
        if !task.await.unwrap() {
            *open.entry(what).or_default() += 1;
        }
    }
    assert!(
        open.is_empty(),
        "still open after {CLOSED_WITHIN:?}: {open:?}\n{}",
        s.log()
    );
    eprintln!(
        "all closed {:?} after the last was opened",
        started.elapsed()
    );

    // The watch outlived every timeout: an event still arrives on it.
    s.kubectl_ok(&["create", "service", "clusterip", "late", "--tcp=80"]);
    // An event may come in several frames (the shared object between its own prefix and
    // suffix): read lines.
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        let mut received = Vec::new();
        while let Some(frame) = events.frame().await {
            let frame = frame.expect("the watch still open");
            received.extend_from_slice(frame.data_ref().unwrap());
            let text = String::from_utf8_lossy(&received);
            if text
                .lines()
                .any(|l| l.contains("\"ADDED\"") && l.contains("\"late\""))
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "the event for \"late\" on the watch");
}

async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: S) -> bool {
    closed_by(stream, Instant::now() + CLOSED_WITHIN).await
}

/// A flood of idle connections under a lowered open-file limit: what the issue saw at 21,000
/// connections, scaled down to 600 against a limit of 256.
async fn flood(s: &ApiServer, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(TcpStream::connect(addr(s)).await.unwrap());
    }
    conns
}

/// With the open-file limit at 256 and 600 idle connections (the default connection cap: the
/// limit less what the server keeps for itself), /healthz answers throughout on a keep-alive
/// connection and on new ones (a new connection takes the place of the oldest silent one), the
/// server does not spin, and its log stays short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_file_limit_leaves_the_server_answering() {
    let s = ApiServer::start_with_open_file_limit(256, &[]);
    assert!(s.log().contains("max_connections"), "{}", s.log());
    let token = s.token();
    let (mut keepalive, _conn) = http1(&s).await.unwrap();
    assert_eq!(
        fetch(&mut keepalive, "/healthz", &token).await.unwrap().0,
        StatusCode::OK
    );
    let (cpu_before, lines_before) = (cpu_time(s.pid().expect("running")), log_lines(&s));

    let held = flood(&s, 600).await;
    let (mut answered, mut new_answered) = (0, 0);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let (code, body) = fetch(&mut keepalive, "/healthz", &token).await.unwrap();
        assert_eq!((code, body.as_str()), (StatusCode::OK, "ok"));
        answered += 1;
        if answered % 5 == 0 {
            healthz_new_connection(&s).await.unwrap();
            new_answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = cpu_time(s.pid().expect("running")) - cpu_before;
    let lines = log_lines(&s) - lines_before;
    eprintln!(
        "{answered} /healthz on the keep-alive connection, {new_answered} on new ones; \
         server CPU {cpu:?}, {lines} log lines during the flood"
    );
    assert!(cpu < Duration::from_millis(2500), "server CPU {cpu:?}");
    assert!(lines < 50, "{lines} log lines:\n{}", s.log());
    drop(held);
}

/// The issue's failure itself: no connection cap (a test-only flag lifts it), so the server
/// reaches its open-file limit and accept fails with EMFILE. The accept loop backs off instead
/// of spinning, logs at most a line a second, /healthz answers on the keep-alive connection, and
/// new connections are served again once the flood leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_failures_back_off() {
    let s = ApiServer::start_with_open_file_limit(256, &["--max-connections", "100000"]);
    let token = s.token();
    let (mut keepalive, _conn) = http1(&s).await.unwrap();
    let (cpu_before, lines_before) = (cpu_time(s.pid().expect("running")), log_lines(&s));

    let held = flood(&s, 600).await;
    wait_for(Duration::from_secs(30), "accept to fail", || async {
        s.log().contains("accept failed").then_some(())
    })
    .await;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let (code, _) = fetch(&mut keepalive, "/healthz", &token).await.unwrap();
        assert_eq!(code, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = cpu_time(s.pid().expect("running")) - cpu_before;
    let lines = log_lines(&s) - lines_before;
    let log = s.log();
    eprintln!("server CPU {cpu:?}, {lines} log lines during the flood");
    assert!(log.contains("Too many open files"), "{log}");
    assert!(cpu < Duration::from_millis(2500), "server CPU {cpu:?}");
    assert!(lines < 50, "{lines} log lines:\n{log}");

    drop(held);
    wait_for(
        Duration::from_secs(30),
        "a new connection to be served",
        || async { healthz_new_connection(&s).await.ok() },
    )
    .await;
}

/// Raw HTTP/1.1 over TLS: send `head` and as much of the body as `sent`, then hold.
async fn hold_request(s: &ApiServer, head: &str, sent: &[u8]) -> TlsStream<TcpStream> {
    let mut t = tls(s, b"http/1.1").await.unwrap();
    t.write_all(head.as_bytes()).await.unwrap();
    t.write_all(sent).await.unwrap();
    t.flush().await.unwrap();
    t
}

/// `apiserver_current_inflight_requests` of a kind (not `readOnly`: reading /metrics is itself
/// a read in flight).
fn inflight_metric(s: &ApiServer, kind: &str) -> Option<i64> {
    let (_, metrics) = s.curl_auth(&[], "/metrics");
    let prefix = format!("apiserver_current_inflight_requests{{request_kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// `--max-requests-inflight 1 --max-mutating-requests-inflight 1`: a user's second request of a
/// kind gets 429 with `Retry-After: 1` and kube-apiserver's message; watches, /healthz, the
/// other kind and system:masters are not limited; the slot comes back when the request ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inflight_limit_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.csv");
    std::fs::write(&users, "bob-token,bob,1001,\"developers\"\n").unwrap();
    let s = ApiServer::start_with(&[
        "--max-requests-inflight",
        "1",
        "--max-mutating-requests-inflight",
        "1",
        "--token-auth-file",
        users.to_str().unwrap(),
    ]);
    let bob = ["-H", "Authorization: Bearer bob-token"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = bob.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let svc = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}"#;
    let services = "/api/v1/namespaces/default/services";

    // A create whose body is still arriving holds the one mutating slot.
    let head = format!(
        "POST {services} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer bob-token\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        svc.len()
    );
    let slow = hold_request(&s, &head, &svc.as_bytes()[..10]).await;
    wait_for(
        Duration::from_secs(30),
        "the slow create in flight",
        || async { (inflight_metric(&s, "mutating") == Some(1)).then_some(()) },
    )
    .await;
    let (code, body) = s.curl(
        &with(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            svc,
            "-D",
            "-",
        ]),
        services,
    );
    assert_eq!(code, 429, "{body}");
    assert!(
        body.to_ascii_lowercase().contains("retry-after: 1"),
        "{body}"
    );
    let status: serde_json::Value =
        serde_json::from_str(body.rsplit("\r\n\r\n").next().unwrap()).unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Too many requests, please try again later."
    );
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    // Reads have their own slots; system:masters is never turned away.
    assert_eq!(s.curl(&bob, services).0, 200);
    let admin_create = s.curl_auth(
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            svc,
        ],
        services,
    );
    assert_eq!(admin_create.0, 201, "{}", admin_create.1);
    // The slot comes back when the slow request goes.
    drop(slow);
    wait_for(
        Duration::from_secs(30),
        "the mutating slot back",
        || async {
            let (code, _) = s.curl(&with(&["-X", "DELETE"]), &format!("{services}/web"));
            (code == 200).then_some(())
        },
    )
    .await;

    // A read waiting for a resourceVersion the store has not reached holds the read slot for
    // 3 s; bob's lists meanwhile get 429, while his watch and /healthz do not. The window is
    // tried again if the waiting read lost the race for the slot to one of bob's lists.
    let mut saw_429 = false;
    for _ in 0..5 {
        let waiting = tokio::spawn({
            let (url, ca) = (s.url.clone(), s.data_dir().join("ca.crt"));
            async move {
                tokio::process::Command::new("curl")
                    .args([
                        "-sS",
                        "-o",
                        "/dev/null",
                        "-H",
                        "Authorization: Bearer bob-token",
                    ])
                    .arg("--cacert")
                    .arg(ca)
                    .arg(format!("{url}{services}?resourceVersion=999999999"))
                    .status()
                    .await
            }
        });
        while !waiting.is_finished() {
            let (code, body) = s.curl(&bob, services);
            if code == 429 {
                assert!(body.contains("TooManyRequests"), "{body}");
                saw_429 = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if saw_429 {
            // curl -m ends the watch after 1 s: it was answered 200 and streaming.
            let watch = s.curl(&with(&["-m", "1"]), &format!("{services}?watch=true"));
            assert_eq!(watch.0, 200, "{}", watch.1);
            assert_eq!(s.curl(&[], "/healthz"), (200, "ok".to_string()));
        }
        waiting.await.unwrap().unwrap();
        if saw_429 {
            break;
        }
    }
    assert!(saw_429, "no 429 while the read slot was held:\n{}", s.log());
    let metrics = s.curl_auth(&[], "/metrics").1;
    for kind in ["readOnly", "mutating"] {
        let line = format!("apiserver_dropped_requests_total{{request_kind=\"{kind}\"}} ");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

/// Over HTTP/2, a request answered before its body was read (404, 401, 413) gets its Status,
/// not a stream reset; a 60 KB query string is served over HTTP/2 and HTTP/1.1.
#[test]
fn http2_answers_before_reading_the_body() {
    let s = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, size: usize| {
        let p = dir.path().join(name);
        std::fs::write(&p, vec![b'x'; size]).unwrap();
        format!("@{}", p.display())
    };
    let mb: &'static str = file("1m", 1 << 20).leak();
    let five_mb: &'static str = file("5m", 5 << 20).leak();
    let post = |body: &'static str| -> Vec<&'static str> {
        vec![
            "--http2",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]
    };
    let status = |(code, body): (u16, String)| -> (u16, serde_json::Value) {
        let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{code} {body:?}: {e}"));
        (code, v)
    };
    let services = "/api/v1/namespaces/default/services";

    let (code, v) = status(s.curl_auth(&post(mb), "/api/v1/bogus"));
    assert_eq!((code, v["reason"].as_str()), (404, Some("NotFound")));
    let (code, v) = status(s.curl(&post(mb), services));
    assert_eq!((code, v["reason"].as_str()), (401, Some("Unauthorized")));
    let (code, v) = status(s.curl_auth(&post(five_mb), services));
    assert_eq!(
        (code, v["message"].as_str()),
        (413, Some("Request entity too large: limit is 3145728"))
    );

    // Go's MaxHeaderBytes (1 MiB) as HTTP/2's header list size; 60 KB is what `http::Uri`
    // takes (65,534 bytes at most, see crates/apiserver/src/serving/mod.rs).
    let query = format!("{services}?labelSelector=app%3D{}", "a".repeat(60_000));
    for version in ["--http2", "--http1.1"] {
        let (code, body) = s.curl_auth(&[version], &query);
        assert_eq!(code, 400, "{version}: {body}");
        assert!(body.contains("\"kind\":\"Status\""), "{version}: {body}");
    }
    let query = format!("{services}?x={}", "a".repeat(60_000));
    for version in ["--http2", "--http1.1"] {
        let (code, body) = s.curl_auth(&[version], &query);
        assert_eq!(code, 200, "{version}: {body}");
    }
}
