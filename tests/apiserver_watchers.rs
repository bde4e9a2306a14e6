//! Watchers that stop reading (issue 16), against the real `svcnet apiserver`: open watch
//! connections whose socket is never read (a 4 KiB receive buffer) during creates of 10 KB
//! objects. The server's memory stays bounded (it held an encoded copy of every event per
//! watcher: +620 MB for 200 watchers × 2,000 events), the stalled watchers are closed as
//! kube-apiserver closes them ("Forcing ... watcher close due to unresponsiveness") and their
//! sockets see the end, a watcher reading beside them gets every event in order, and memory
//! falls back once they are gone. Scaled down: 100 stalled watchers × 1,000 events. The
//! query-parameter rules of watches and lists (timeoutSeconds=0, resourceVersionMatch) are
//! checked with curl and kubectl.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use support::ApiServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

const STALLED: usize = 100;
const CREATES: usize = 1000;
const CREATORS: usize = 4;
const OBJECT_BYTES: usize = 10 * 1024;

/// A `/proc/<pid>/status` field (`VmRSS:`, `VmHWM:`) in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

fn tls_config(s: &ApiServer) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(s.data_dir().join("ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// An HTTP/1.1 watch on `path` over a socket with a 4 KiB receive buffer, of which nothing is
/// read after the TLS handshake.
async fn stalled_watch(
    s: &ApiServer,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
) -> TlsStream<TcpStream> {
    let addr: std::net::SocketAddr = s.url.trim_start_matches("https://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\n\r\n",
        s.token()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// Read what the server sent until the connection ends (EOF or reset); false if it is still
/// open after `within`.
async fn ends_within(mut stream: TlsStream<TcpStream>, within: Duration) -> bool {
    tokio::time::timeout(within, async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .is_ok()
}

fn lease(i: usize) -> Lease {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("big-{i:05}"),
            "labels": {"app": "watchers"},
            "annotations": {"payload": "x".repeat(OBJECT_BYTES)},
        },
        "spec": {"holderIdentity": format!("holder-{i}")},
    }))
    .unwrap()
}

/// A watcher that reads as a client should, re-watching from its last resourceVersion when a
/// watch ends: the names it saw ADDED, in order, once it has `want` of them.
async fn read_all(api: Api<Lease>, from: String, want: usize) -> (Vec<String>, usize) {
    let mut rv = from;
    let mut names = Vec::new();
    let mut watches = 0;
    while names.len() < want {
        watches += 1;
        let wp = WatchParams::default().labels("app=watchers").timeout(290);
        let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
        while let Ok(Some(ev)) = stream.try_next().await {
            if let WatchEvent::Added(l) = ev {
                rv = l.metadata.resource_version.clone().unwrap();
                names.push(l.metadata.name.unwrap());
                if names.len() == want {
                    break;
                }
            }
        }
    }
    (names, watches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_watchers_are_closed_and_their_memory_returns() {
    let s = ApiServer::start();
    let pid = s.pid().unwrap();
    let client = s.client().await;
    let api: Api<Lease> = Api::namespaced(client, "default");
    // Warm up the paths the burst takes, then measure from there.
    for i in 0..20 {
        let mut l = lease(i);
        l.metadata.name = Some(format!("warm-{i}"));
        l.metadata.labels = None;
        api.create(&PostParams::default(), &l).await.unwrap();
    }
    let rv = api
        .list_metadata(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let reader = tokio::spawn(read_all(api.clone(), rv.clone(), CREATES));
    let tls = tls_config(&s);
    let path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/default/leases?watch=1&resourceVersion={rv}"
    );
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        stalled.push(stalled_watch(&s, &tls, &path).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = status_mib(pid, "VmRSS:");

    let started = Instant::now();
    let mut creators = Vec::new();
    for c in 0..CREATORS {
        let api = api.clone();
        creators.push(tokio::spawn(async move {
            for i in (c..CREATES).step_by(CREATORS) {
                api.create(&PostParams::default(), &lease(i)).await.unwrap();
            }
        }));
    }
    for c in creators {
        c.await.unwrap();
    }
    let peak = status_mib(pid, "VmHWM:");
    eprintln!(
        "{CREATES} creates of {OBJECT_BYTES} B with {STALLED} stalled watchers in {:?}: RSS {before:.0} MiB before, peak {peak:.0} MiB",
        started.elapsed()
    );

    // The reader beside them got every event, in resourceVersion order.
    let (names, watches) = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the reading watcher fell behind")
        .unwrap();
    let mut expected: Vec<String> = (0..CREATES).map(|i| format!("big-{i:05}")).collect();
    let mut seen = names.clone();
    seen.sort();
    expected.sort();
    assert_eq!(
        seen, expected,
        "the reading watcher missed or repeated events"
    );
    eprintln!("the reading watcher needed {watches} watch(es)");

    // The stalled ones were closed: each socket ends (after what the kernel had buffered).
    let ends = futures::future::join_all(
        stalled
            .into_iter()
            .map(|w| ends_within(w, Duration::from_secs(60))),
    )
    .await;
    let open = ends.iter().filter(|ended| !**ended).count();
    let log = s.log();
    let forced = log.matches("watcher close due to unresponsiveness").count();
    assert_eq!(
        open, 0,
        "{open} stalled watch connections still open ({forced} forced closes logged)"
    );
    assert!(
        forced >= STALLED,
        "{forced} forced closes logged for {STALLED} stalled watchers"
    );
    assert!(log.contains("Forcing leases.coordination.k8s.io watcher close due to unresponsiveness: key: \"/registry/leases/default/\""));

    // Memory: the peak is far below a copy per watcher (100 × 1,000 × 10 KB would be 1 GB; the
    // old server grew by ~2.5 MB per stalled watcher here), and it falls back once the stalled
    // watchers are gone, to what the cache holds for the 1,000 objects.
    let grew = peak - before;
    assert!(grew < 150.0, "RSS grew by {grew:.0} MiB");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = status_mib(pid, "VmRSS:");
    eprintln!("RSS {after:.0} MiB after the stalled watchers went");
    assert!(
        after - before < 100.0,
        "RSS stayed {:.0} MiB above where it was",
        after - before
    );
}

#[test]
fn timeout_seconds_zero_means_the_server_default() {
    // kube-apiserver: `timeoutSeconds` unset or 0 → --min-request-timeout × [1, 2).
    let s = ApiServer::start_with(&["--min-request-timeout", "2"]);
    let path = "/apis/coordination.k8s.io/v1/namespaces/default/leases?watch=1&timeoutSeconds=0";
    let started = Instant::now();
    let (code, _) = s.curl_auth(&["--max-time", "30"], path);
    let took = started.elapsed();
    assert_eq!(code, 200);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "a watch with timeoutSeconds=0 lasted {took:?}"
    );
    // A watch with a timeout still ends on it.
    let started = Instant::now();
    let path = "/apis/coordination.k8s.io/v1/namespaces/default/leases?watch=1&timeoutSeconds=1";
    let (code, _) = s.curl_auth(&["--max-time", "30"], path);
    assert_eq!(code, 200);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn resource_version_match_rules_are_kubernetes() {
    let s = ApiServer::start();
    let status = |path: &str| -> (u16, serde_json::Value) {
        let (code, body) = s.curl_auth(&[], path);
        (code, serde_json::from_str(&body).unwrap())
    };
    let invalid = |detail: &str| {
        format!(
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: {detail}"
        )
    };
    let (code, st) = status("/api/v1/services?resourceVersionMatch=Exact&resourceVersion=0");
    assert_eq!(
        (code, st["reason"].as_str()),
        (422, Some("Invalid")),
        "{st}"
    );
    assert_eq!(
        st["message"],
        invalid(r#"resourceVersionMatch "exact" is forbidden for resourceVersion "0""#)
    );
    assert_eq!(st["details"]["kind"], "ListOptions");
    assert_eq!(st["details"]["causes"][0]["field"], "resourceVersionMatch");
    let (code, st) = status("/api/v1/services?resourceVersionMatch=Exact");
    assert_eq!(code, 422);
    assert_eq!(
        st["message"],
        invalid("resourceVersionMatch is forbidden unless resourceVersion is provided")
    );
    let (code, st) = status("/api/v1/services?watch=1&resourceVersionMatch=NotOlderThan");
    assert_eq!(code, 422);
    assert_eq!(
        st["message"],
        invalid("resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")
    );
    let (code, st) = status("/api/v1/services?watch=1&sendInitialEvents=true");
    assert_eq!(code, 422);
    assert_eq!(
        st["message"],
        invalid("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")
    );
    // Valid combinations still answer.
    let (code, _) = s.curl_auth(
        &[],
        "/api/v1/services?resourceVersionMatch=NotOlderThan&resourceVersion=0",
    );
    assert_eq!(code, 200);
    let (_, list) = s.curl_auth(&[], "/api/v1/services");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap();
    let (code, body) = s.curl_auth(
        &[],
        &format!("/api/v1/services?resourceVersionMatch=Exact&resourceVersion={rv}"),
    );
    assert_eq!(code, 200, "{body}");
    // kubectl shows kube-apiserver's error.
    let err = s.kubectl_err(&[
        "get",
        "--raw",
        "/api/v1/services?resourceVersionMatch=Exact&resourceVersion=0",
    ]);
    assert!(
        err.contains(r#"resourceVersionMatch "exact" is forbidden for resourceVersion "0""#),
        "{err}"
    );
}
