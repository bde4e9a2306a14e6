//! Watch fan-out benchmark (issue 16), against the `svcnet apiserver` binary as a child process
//! so its memory and CPU are its own:
//!
//! 1. Stalled watchers: `--stalled` watch connections that never read (4 KiB receive buffer)
//!    while `--events` Leases of `--object-bytes` are created; the server's peak RSS growth
//!    (sampled every 10 ms) against the same creates with no watcher in a fresh server (the
//!    reference), the RSS once the stalled watchers are gone, and how many were closed for
//!    unresponsiveness (`apiserver_terminated_watchers_total`).
//! 2. Fan-out CPU: the server's CPU time (utime + stime) per created event with `--many`
//!    reading watchers against `--few`, each watcher its own HTTP/1.1 connection.
//!
//! `cargo build --release -p svcnet -p svcnet-bench && ./target/release/watch-bench`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use svcnet_bench::cluster::{client, svcnet_exe};
use svcnet_bench::proc::{status_kib, write_syscalls, Proc};
use svcnet_bench::report;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

#[derive(Parser)]
struct Args {
    /// Watchers that stop reading.
    #[arg(long, default_value_t = 200)]
    stalled: usize,
    /// Objects created while they are stalled.
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// Size of each object's payload annotation.
    #[arg(long, default_value_t = 10 * 1024)]
    object_bytes: usize,
    /// Reading watchers of the fan-out measurement, and its reference.
    #[arg(long, default_value_t = 1000)]
    many: usize,
    #[arg(long, default_value_t = 10)]
    few: usize,
    /// Objects created for the fan-out measurement (small: the fixed cost of an event).
    #[arg(long, default_value_t = 500)]
    fanout_events: usize,
    /// `--watch-coalescing-per-watcher-us` of the server in the fan-out runs (default: the
    /// server's).
    #[arg(long)]
    coalescing_us: Option<u64>,
    /// Only the fan-out measurement.
    #[arg(long)]
    fanout_only: bool,
}

/// `svcnet apiserver` in a temporary directory, killed when dropped.
struct Server {
    proc: Proc,
    data: PathBuf,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// `svcnet apiserver` with `extra` flags.
    fn start(extra: &[&str]) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let proc = Proc::spawn(
            Command::new(svcnet_exe()?)
                .args(["apiserver", "--secure-port", "0", "--data-dir"])
                .arg(&data)
                .args(extra)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let kc = std::fs::read_to_string(data.join("kubeconfig")).unwrap_or_default();
            if let Some(line) = kc.lines().find(|l| l.trim_start().starts_with("server:")) {
                let url = line.trim().trim_start_matches("server:").trim().to_string();
                return Ok(Server {
                    proc,
                    data,
                    url,
                    _dir: dir,
                });
            }
            anyhow::ensure!(Instant::now() < deadline, "svcnet apiserver did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn api(&self) -> anyhow::Result<Api<Lease>> {
        Ok(Api::namespaced(
            client(&self.data.join("kubeconfig")).await?,
            "default",
        ))
    }

    fn rss_mib(&self) -> f64 {
        status_kib(self.proc.id(), "VmRSS:") / 1024.0
    }

    fn cpu_seconds(&self) -> f64 {
        self.proc.usage().0
    }
}

fn lease(name: String, payload: usize) -> Lease {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "annotations": {"payload": "x".repeat(payload)},
        },
        "spec": {"holderIdentity": "bench"},
    }))
    .expect("a valid Lease")
}

/// Create `n` Leases named `<prefix>-<i>` with 4 concurrent creators.
async fn create(api: &Api<Lease>, prefix: &str, n: usize, payload: usize) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for c in 0..4 {
        let (api, prefix) = (api.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            for i in (c..n).step_by(4) {
                api.create(
                    &PostParams::default(),
                    &lease(format!("{prefix}-{i}"), payload),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// The highest RSS sampled every 10 ms until `stop`.
fn sample_peak(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<f64> {
    std::thread::spawn(move || {
        let mut peak: f64 = 0.0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(status_kib(pid, "VmRSS:") / 1024.0);
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    })
}

fn tls_config(data: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(data.join("ca.crt"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// A watch of Leases over a socket with a 4 KiB receive buffer that is never read.
async fn stalled_watch(
    s: &Server,
    tls: &Arc<rustls::ClientConfig>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let addr: std::net::SocketAddr = s.url.trim_start_matches("https://").parse()?;
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = socket.connect(addr).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await?;
    let token = std::fs::read_to_string(s.data.join("admin.token"))?;
    let request = format!(
        "GET /apis/coordination.k8s.io/v1/namespaces/default/leases?watch=1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\n\r\n",
        token.trim()
    );
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    Ok(stream)
}

/// Peak RSS growth (MiB) over the creates with `stalled` non-reading watchers, the RSS growth
/// 2 s after they went, and how many the server closed for unresponsiveness.
async fn stalled_run(args: &Args, stalled: usize) -> anyhow::Result<(f64, f64, u64)> {
    let s = Server::start(&[])?;
    let api = s.api().await?;
    create(&api, "warm", 20, args.object_bytes).await?;
    let tls = tls_config(&s.data)?;
    let mut watches = Vec::new();
    for _ in 0..stalled {
        watches.push(stalled_watch(&s, &tls).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = s.rss_mib();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_peak(s.proc.id(), stop.clone());
    create(&api, "big", args.events, args.object_bytes).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    drop(watches);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = s.rss_mib();
    let metrics = api
        .clone()
        .into_client()
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    let closed = metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_terminated_watchers_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    Ok((peak - before, after - before, closed))
}

/// Server CPU seconds per event with `watchers` reading watchers, and the server's write
/// system calls per event and watcher (1: every event its own write; less: events coalesced).
async fn fanout_run(args: &Args, watchers: usize, extra: &[&str]) -> anyhow::Result<(f64, f64)> {
    let s = Server::start(extra)?;
    let api = s.api().await?;
    create(&api, "warm", 20, 0).await?;
    let received = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        // Each its own client, so its own connection, as separate processes would have.
        let api = s.api().await?;
        let received = received.clone();
        let want = args.fanout_events;
        tasks.push(tokio::spawn(async move {
            let wp = WatchParams::default().timeout(600);
            let mut stream = api.watch(&wp, "0").await?.boxed();
            let mut seen = 0;
            while let Some(ev) = stream.try_next().await? {
                if let WatchEvent::Added(l) = ev {
                    if l.metadata.name.is_some_and(|n| n.starts_with("ev-")) {
                        seen += 1;
                        received.fetch_add(1, Ordering::Relaxed);
                        if seen == want {
                            break;
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, writes0) = (s.cpu_seconds(), write_syscalls(s.proc.id()));
    create(&api, "ev", args.fanout_events, 0).await?;
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(300), t).await???;
    }
    let cpu = s.cpu_seconds() - cpu0;
    let writes = write_syscalls(s.proc.id()) - writes0;
    anyhow::ensure!(received.load(Ordering::Relaxed) == watchers * args.fanout_events);
    let events = args.fanout_events as f64;
    Ok((cpu / events, writes as f64 / events / watchers as f64))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    report::header();
    if !args.fanout_only {
        stalled(&args).await?;
    }
    let coalescing = args.coalescing_us.map(|us| us.to_string());
    let server: Vec<&str> = match &coalescing {
        Some(us) => vec!["--watch-coalescing-per-watcher-us", us],
        None => vec![],
    };
    let (few, few_writes) = fanout_run(&args, args.few, &server).await?;
    let (many, many_writes) = fanout_run(&args, args.many, &server).await?;
    let no_coalescing = ["--watch-coalescing-per-watcher-us", "0"];
    let (plain, plain_writes) = fanout_run(&args, args.many, &no_coalescing).await?;
    println!(
        "Fan-out: {} creates of small Leases, API server CPU per event, and its write system \
         calls per event and watcher:\n",
        args.fanout_events
    );
    println!(
        "| watchers | CPU per event | ratio to {} watchers | writes per event and watcher |",
        args.few
    );
    println!("|---|---|---|---|");
    for (label, cpu, writes) in [
        (
            format!("{} {}", args.many, server.join(" ")),
            many,
            many_writes,
        ),
        (
            format!(
                "{}, writes not coalesced (`{}`)",
                args.many,
                no_coalescing.join(" ")
            ),
            plain,
            plain_writes,
        ),
        (format!("reference: {}", args.few), few, few_writes),
    ] {
        println!(
            "| {label} | {:.3} ms | {} | {writes:.2} |",
            cpu * 1e3,
            report::ratio(cpu, few, 2)
        );
    }
    Ok(())
}

/// Stalled watchers: the server's memory with them against none, in one run.
async fn stalled(args: &Args) -> anyhow::Result<()> {
    let (ref_peak, ref_after, _) = stalled_run(args, 0).await?;
    let (peak, after, closed) = stalled_run(args, args.stalled).await?;
    println!(
        "{} creates of {} B objects, RSS growth of the API server:\n",
        args.events, args.object_bytes
    );
    println!(
        "| measure | {} stalled watchers | reference: no watcher | difference |",
        args.stalled
    );
    println!("|---|---|---|---|");
    println!(
        "| peak RSS growth | {peak:.1} MiB | {ref_peak:.1} MiB | {:+.1} MiB |",
        peak - ref_peak
    );
    println!(
        "| RSS growth 2 s after the watchers went | {after:.1} MiB | {ref_after:.1} MiB | {:+.1} MiB |",
        after - ref_after
    );
    println!(
        "| watchers closed for unresponsiveness | {closed} of {} | | |\n",
        args.stalled
    );
    Ok(())
}
