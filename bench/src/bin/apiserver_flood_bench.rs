//! API server under a connection flood (issue 16, item 1): N idle TCP connections that never
//! start their TLS handshake (each reopened when the server closes it, as an attacker would),
//! while a client measures /healthz latency with the admin token on one keep-alive connection
//! and on new connections; the reference is the same measured with no flood, in the same run.
//! Target: /healthz p99 ≤ 50 ms during a flood of 20,000. Details: bench/README.md.
//!
//! `cargo build --release -p svcnet -p svcnet-bench && target/release/apiserver-flood-bench
//! [--connections 20000] [--seconds 20]`

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use svcnet_bench::cluster::svcnet_exe;
use svcnet_bench::proc::Proc;
use svcnet_bench::report::{self, percentile};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

#[derive(Parser)]
struct Args {
    /// Idle connections held open during the flood.
    #[arg(long, default_value_t = 20_000)]
    connections: usize,
    /// How long each phase measures.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Pause between two /healthz on the keep-alive connection, ms.
    #[arg(long, default_value_t = 10)]
    keepalive_interval_ms: u64,
    /// Pause between two new connections, ms.
    #[arg(long, default_value_t = 50)]
    new_interval_ms: u64,
}

/// The flood comes from several loopback addresses, so 20,000 connections (and their
/// reconnections) do not run out of one address's ephemeral ports.
const FLOOD_SOURCES: u8 = 4;

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

struct Target {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    token: String,
}

impl Target {
    async fn connect(&self) -> anyhow::Result<Sender> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
        let tls = self.tls.connect(name, tcp).await?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(send)
    }

    async fn healthz(&self, send: &mut Sender) -> anyhow::Result<()> {
        send.ready().await?;
        let req = Request::get("/healthz")
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {}", self.token))
            .body(Empty::new())?;
        let resp = send.send_request(req).await?;
        anyhow::ensure!(resp.status() == StatusCode::OK, "{}", resp.status());
        resp.into_body().collect().await?;
        Ok(())
    }
}

/// Latencies of one phase, and how many requests failed (each failure counts as the phase's
/// duration: a client that got no answer waited at least that long).
#[derive(Default)]
struct Samples {
    keepalive: Vec<Duration>,
    new_conn: Vec<Duration>,
    failed: usize,
}

async fn measure(target: Arc<Target>, args: &Args) -> anyhow::Result<Samples> {
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let mut send = target.connect().await?;
    let keepalive = {
        let target = target.clone();
        let every = Duration::from_millis(args.keepalive_interval_ms);
        tokio::spawn(async move {
            let (mut lat, mut failed) = (Vec::new(), 0);
            while Instant::now() < until {
                let t = Instant::now();
                match tokio::time::timeout(Duration::from_secs(10), target.healthz(&mut send)).await
                {
                    Ok(Ok(())) => lat.push(t.elapsed()),
                    _ => failed += 1,
                }
                tokio::time::sleep(every).await;
            }
            (lat, failed)
        })
    };
    let every = Duration::from_millis(args.new_interval_ms);
    let (mut new_conn, mut failed) = (Vec::new(), 0);
    while Instant::now() < until {
        let t = Instant::now();
        let once = async {
            let mut send = target.connect().await?;
            target.healthz(&mut send).await
        };
        match tokio::time::timeout(Duration::from_secs(10), once).await {
            Ok(Ok(())) => new_conn.push(t.elapsed()),
            _ => failed += 1,
        }
        tokio::time::sleep(every).await;
    }
    let (keepalive, f) = keepalive.await?;
    Ok(Samples {
        keepalive,
        new_conn,
        failed: failed + f,
    })
}

/// Counters of the flood.
#[derive(Default)]
struct Flood {
    open: AtomicUsize,
    reconnects: AtomicU64,
    connect_errors: AtomicU64,
}

/// Hold `n` idle connections to `addr`, reopening each one the server closes.
fn flood(addr: SocketAddr, n: usize, stats: Arc<Flood>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let stats = stats.clone();
            let source = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                2 + (i % FLOOD_SOURCES as usize) as u8,
            ));
            tokio::spawn(async move {
                let mut first = true;
                loop {
                    let conn = async {
                        let s = TcpSocket::new_v4()?;
                        s.bind(SocketAddr::new(source, 0))?;
                        s.connect(addr).await
                    };
                    let mut tcp = match conn.await {
                        Ok(t) => t,
                        Err(_) => {
                            stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    if !first {
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    first = false;
                    stats.open.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 64];
                    while let Ok(n) = tcp.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

/// Raise this process's open-file limit to `want` (soft and hard; root may raise the hard
/// limit). The server started from here inherits it.
fn raise_open_file_limit(want: u64) -> anyhow::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= want {
        return Ok(soft);
    }
    // Raising the hard limit needs CAP_SYS_RESOURCE; without it the hard limit is the most.
    setrlimit(Resource::RLIMIT_NOFILE, want, hard.max(want))
        .or_else(|_| setrlimit(Resource::RLIMIT_NOFILE, hard.min(want), hard))?;
    Ok(getrlimit(Resource::RLIMIT_NOFILE)?.0)
}

fn tls_connector(ca: &Path) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let pem = std::fs::read(ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn row(what: &str, flood: &[Duration], quiet: &[Duration]) {
    let (mut f, mut q) = (flood.to_vec(), quiet.to_vec());
    f.sort();
    q.sort();
    let ms = |d: Duration| report::ms(d, 2);
    println!(
        "| {what} | {} | {} | {} | {} | {} | {} | {} | {} |",
        q.len(),
        ms(percentile(&q, 0.5)),
        ms(percentile(&q, 0.99)),
        f.len(),
        ms(percentile(&f, 0.5)),
        ms(percentile(&f, 0.99)),
        ms(percentile(&f, 1.0)),
        report::ratio(
            percentile(&f, 0.99).as_secs_f64(),
            percentile(&q, 0.99).as_secs_f64(),
            2
        ),
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    report::header();
    // The flood's sockets, ours, and the server's own files, with room for its cap (the limit
    // less a tenth) to stay above the flood.
    let want = (args.connections as u64 * 5 / 4 + 4096).max(65_536);
    let limit = raise_open_file_limit(want)?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let log_path = dir.path().join("apiserver.log");
    let log = std::fs::File::create(&log_path)?;
    let mut server = Proc::spawn(
        Command::new(svcnet_exe()?)
            .args(["apiserver", "--secure-port", "0", "--data-dir"])
            .arg(&data)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log),
    )?;
    let kubeconfig = data.join("kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        if let Ok(kc) = std::fs::read_to_string(&kubeconfig) {
            if let Some(l) = kc.lines().find(|l| l.trim_start().starts_with("server:")) {
                break l.trim().trim_start_matches("server:").trim().to_string();
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "the API server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cap = std::fs::read_to_string(&log_path)?
        .split("max_connections")
        .nth(1)
        .and_then(|r| {
            r.trim_start_matches(|c: char| !c.is_ascii_digit())
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default();
    println!(
        "Open-file limit {limit} (bench and server); the server's connection cap {cap}. \
         {} idle connections from {FLOOD_SOURCES} loopback addresses, reopened when closed; \
         each phase {} s: /healthz on one keep-alive connection every {} ms and on a new \
         connection (TCP + TLS + request) every {} ms.\n",
        args.connections, args.seconds, args.keepalive_interval_ms, args.new_interval_ms
    );
    let target = Arc::new(Target {
        addr: url.trim_start_matches("https://").parse()?,
        tls: tls_connector(&data.join("ca.crt"))?,
        token: std::fs::read_to_string(data.join("admin.token"))?
            .trim()
            .to_string(),
    });

    let quiet = measure(target.clone(), &args).await?;

    let stats = Arc::new(Flood::default());
    let (cpu0, _) = server.usage();
    let lines0 = std::fs::read_to_string(&log_path)?.lines().count();
    let started = Instant::now();
    let tasks = flood(target.addr, args.connections, stats.clone());
    while stats.open.load(Ordering::Relaxed) < args.connections {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "only {} of {} flood connections open after 120 s",
            stats.open.load(Ordering::Relaxed),
            args.connections
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened_in = started.elapsed();
    let rss_flood = server.rss_mib();
    let flooded = measure(target.clone(), &args).await?;
    let (cpu1, peak) = server.usage();
    let lines = std::fs::read_to_string(&log_path)?.lines().count() - lines0;
    let open_at_end = stats.open.load(Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }

    println!(
        "Flood: {} connections open after {:.1} s; {} reopened after the server closed them \
         (TLS handshake timeout), {} connect errors; {} open at the end. Server during the \
         flood: {:.1} s CPU over {:.0} s, RSS {:.0} MiB with the flood open (peak {:.0} MiB), \
         {} log lines.\n",
        args.connections,
        opened_in.as_secs_f64(),
        stats.reconnects.load(Ordering::Relaxed),
        stats.connect_errors.load(Ordering::Relaxed),
        open_at_end,
        cpu1 - cpu0,
        (Instant::now() - started).as_secs_f64(),
        rss_flood,
        peak,
        lines,
    );
    println!(
        "| /healthz | quiet n | quiet p50 | quiet p99 | flood n | flood p50 | flood p99 | flood max | p99 flood / quiet |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    row(
        "keep-alive connection",
        &flooded.keepalive,
        &quiet.keepalive,
    );
    row("new connection", &flooded.new_conn, &quiet.new_conn);
    println!(
        "\nFailed or timed out (10 s): {} quiet, {} during the flood. Target: p99 ≤ 50 ms during \
         the flood.",
        quiet.failed, flooded.failed
    );
    server.stop();
    Ok(())
}
