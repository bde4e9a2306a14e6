//! Cluster DNS benchmark (issue 6): the real `svcnet dns` process, following the real API server
//! with 10k ClusterIP + 1k headless Services and 50k endpoints, under Debian's `dnsperf` (qps,
//! latency percentiles, peak RSS), next to NSD serving the same records from a zone file, same
//! run, same query file. Everything listens on 127.0.0.1 only. Details: bench/README.md.
//!
//! ```sh
//! apt-get install -y dnsperf nsd
//! cargo build --release -p svcnet -p svcnet-bench
//! ./target/release/dns-bench [--services 10000] [--headless 1000] [--endpoints 50000] [--seconds 15]
//! ```

use std::fmt::Write as _;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use svcnet_bench::cluster::{svcnet_exe, ApiServer};
use svcnet_bench::proc::Proc;
use svcnet_bench::report;

#[derive(Parser)]
struct Args {
    /// ClusterIP Services (`svc-N.bench`), each with a named port `http` and an EndpointSlice.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Headless Services (`hl-N.bench`), each with `--headless-endpoints` ready endpoints.
    #[arg(long, default_value_t = 1_000)]
    headless: usize,
    #[arg(long, default_value_t = 10)]
    headless_endpoints: usize,
    /// Endpoints in all EndpointSlices together (the ClusterIP Services share what the headless
    /// ones do not use).
    #[arg(long, default_value_t = 50_000)]
    endpoints: usize,
    /// Concurrent API writes while loading the objects.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Length of each saturating dnsperf run, seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// dnsperf clients (`-c`), threads (`-T`) and outstanding queries (`-q`).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 500)]
    outstanding: usize,
    /// The fixed rate (qps) of the latency-percentile runs, and their length in seconds.
    #[arg(long, default_value_t = 20_000)]
    latency_qps: u64,
    #[arg(long, default_value_t = 5)]
    latency_seconds: u64,
    /// Lines in the query file (dnsperf cycles through it).
    #[arg(long, default_value_t = 200_000)]
    queries: usize,
    /// Skip the NSD reference (e.g. when `nsd` is not installed).
    #[arg(long)]
    no_peer: bool,
    /// The binary run as `<it> dns ...` (default: `svcnet` next to this one); for comparing
    /// builds.
    #[arg(long)]
    svcnet: Option<std::path::PathBuf>,
}

/// A port free on 127.0.0.1 for both UDP and TCP.
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let u = UdpSocket::bind("127.0.0.1:0")?;
        let port = u.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port")
}

/// One UDP query; the response's rcode and answer count (None: no answer within 500 ms).
fn ask(port: u16, name: &str, t: RecordType) -> Option<(ResponseCode, usize)> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).ok()?, t));
    s.send_to(&m.to_vec().ok()?, ("127.0.0.1", port)).ok()?;
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).ok()?;
    let r = Message::from_vec(&buf[..n]).ok()?;
    Some((r.metadata.response_code, r.answers.len()))
}

fn wait_answers(
    port: u16,
    name: &str,
    t: RecordType,
    want: usize,
    limit: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Some((ResponseCode::NoError, n)) = ask(port, name, t) {
            if n == want {
                return Ok(());
            }
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "{name} {t} never answered with {want} records on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `svc-N` ClusterIP Services and `hl-N` headless ones as created, with their endpoints.
struct Objects {
    /// (name, clusterIP)
    services: Vec<(String, Ipv4Addr)>,
    /// (name, endpoint IPs)
    headless: Vec<(String, Vec<Ipv4Addr>)>,
}

fn endpoint_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 1)) + i as u32)
}

fn slice_json(name: &str, svc: &str, ips: &[Ipv4Addr]) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "bench", "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": ips.iter().map(|ip| serde_json::json!({"addresses": [ip.to_string()], "conditions": {"ready": true}})).collect::<Vec<_>>(),
    })
}

async fn load(client: &kube::Client, a: &Args) -> anyhow::Result<Objects> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "bench"}}))?;
    nss.create(&PostParams::default(), &ns).await?;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "bench");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "bench");
    let headless_eps = a.headless * a.headless_endpoints;
    let per_svc = a
        .endpoints
        .saturating_sub(headless_eps)
        .checked_div(a.services)
        .unwrap_or(0);
    let headless: Vec<(String, Vec<Ipv4Addr>)> = (0..a.headless)
        .map(|h| {
            let ips = (0..a.headless_endpoints)
                .map(|e| endpoint_ip(h * a.headless_endpoints + e))
                .collect();
            (format!("hl-{h}"), ips)
        })
        .collect();
    let started = Instant::now();
    // Headless first, then ClusterIP: the last ClusterIP Service answering means all are in.
    let jobs = headless
        .iter()
        .map(|(n, ips)| (n.clone(), true, ips.clone()))
        .chain((0..a.services).map(|i| {
            let ips = (0..per_svc)
                .map(|e| endpoint_ip(headless_eps + i * per_svc + e))
                .collect();
            (format!("svc-{i}"), false, ips)
        }))
        .collect::<Vec<_>>();
    let n_objects = jobs.len();
    futures::stream::iter(jobs)
        .map(|(name, is_headless, ips)| {
            let (svcs, slices) = (svcs.clone(), slices.clone());
            async move {
                let mut spec = serde_json::json!({"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]});
                if is_headless {
                    spec["clusterIP"] = "None".into();
                }
                let s: Service = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name, "namespace": "bench"}, "spec": spec}))?;
                svcs.create(&PostParams::default(), &s).await?;
                if !ips.is_empty() {
                    let sl: EndpointSlice = serde_json::from_value(slice_json(&format!("{name}-1"), &name, &ips))?;
                    slices.create(&PostParams::default(), &sl).await?;
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(a.concurrency.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    eprintln!(
        "created {n_objects} Services and their EndpointSlices ({} endpoints) in {:.1} s",
        headless_eps + per_svc * a.services,
        started.elapsed().as_secs_f64()
    );
    let mut services = Vec::with_capacity(a.services);
    for s in svcs.list(&ListParams::default()).await? {
        let name = s.metadata.name.clone().unwrap_or_default();
        if !name.starts_with("svc-") {
            continue;
        }
        let ip = s
            .spec
            .as_ref()
            .and_then(|sp| sp.cluster_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| anyhow::anyhow!("{name} has no IPv4 clusterIP"))?;
        services.push((name, ip));
    }
    services.sort_by_key(|(n, _)| n[4..].parse::<usize>().unwrap_or(0));
    anyhow::ensure!(
        services.len() == a.services,
        "listed {} of {} Services",
        services.len(),
        a.services
    );
    Ok(Objects { services, headless })
}

fn reverse(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
}

fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

/// The records `svcnet dns` serves for `o`, as zone files for the peer: `cluster.local` and
/// `10.in-addr.arpa` (every clusterIP and headless endpoint is in 10/8).
fn zone_files(o: &Objects) -> (String, String) {
    let d = "cluster.local.";
    let mut z = String::new();
    let soa = "ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5";
    let _ = writeln!(
        z,
        "$TTL 5\n{d} IN SOA {soa}\n{d} IN NS ns.dns.{d}\nns.dns.{d} IN A 10.96.0.10"
    );
    let _ = writeln!(z, "dns-version.{d} IN TXT \"1.1.0\"");
    let mut r = String::new();
    let _ = writeln!(
        r,
        "$TTL 5\n10.in-addr.arpa. IN SOA {soa}\n10.in-addr.arpa. IN NS ns.dns.{d}"
    );
    for (name, ip) in &o.services {
        let fq = format!("{name}.bench.svc.{d}");
        let _ = writeln!(z, "{fq} IN A {ip}\n{fq} IN SRV 0 100 80 {fq}");
        let _ = writeln!(
            z,
            "_http._tcp.{fq} IN A {ip}\n_http._tcp.{fq} IN SRV 0 100 80 {fq}"
        );
        let _ = writeln!(r, "{} IN PTR {fq}", reverse(*ip));
    }
    for (name, ips) in &o.headless {
        let fq = format!("{name}.bench.svc.{d}");
        let w = (100.0 / ips.len().max(1) as f64).round() as u16;
        for ip in ips {
            let host = format!("{}.{fq}", dashed(*ip));
            let _ = writeln!(z, "{fq} IN A {ip}\n{fq} IN SRV 0 {w} 8080 {host}");
            let _ = writeln!(
                z,
                "_http._tcp.{fq} IN A {ip}\n_http._tcp.{fq} IN SRV 0 {w} 8080 {host}"
            );
            let _ = writeln!(z, "{host} IN A {ip}");
            let _ = writeln!(r, "{} IN PTR {host}", reverse(*ip));
        }
    }
    (z, r)
}

/// A deterministic query mix over the objects (dnsperf's `name type` lines): 55% A of a
/// ClusterIP Service, 10% SRV of its named port, 10% A of a headless Service (all endpoints),
/// 5% A of one headless endpoint's name, 5% PTR of a clusterIP, 5% SRV of a headless port,
/// 5% AAAA (NODATA), 5% a missing Service (NXDOMAIN).
fn query_file(o: &Objects, lines: usize) -> String {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = String::with_capacity(lines * 48);
    for _ in 0..lines {
        let pick = next() % 100;
        let s = &o.services[(next() % o.services.len() as u64) as usize];
        let h = (!o.headless.is_empty())
            .then(|| &o.headless[(next() % o.headless.len() as u64) as usize]);
        let _ = match (pick, h) {
            (55..=64, _) => writeln!(out, "_http._tcp.{}.bench.svc.cluster.local SRV", s.0),
            (65..=74, Some(h)) => writeln!(out, "{}.bench.svc.cluster.local A", h.0),
            (75..=79, Some(h)) => {
                let ip = h.1[(next() % h.1.len() as u64) as usize];
                writeln!(out, "{}.{}.bench.svc.cluster.local A", dashed(ip), h.0)
            }
            (80..=84, _) => writeln!(out, "{} PTR", reverse(s.1)),
            (85..=89, Some(h)) => writeln!(out, "_http._tcp.{}.bench.svc.cluster.local SRV", h.0),
            (90..=94, _) => writeln!(out, "{}.bench.svc.cluster.local AAAA", s.0),
            (95..=99, _) => writeln!(
                out,
                "missing-{}.bench.svc.cluster.local A",
                next() % 100_000
            ),
            _ => writeln!(out, "{}.bench.svc.cluster.local A", s.0),
        };
    }
    out
}

#[derive(Default, Clone)]
struct Perf {
    qps: f64,
    avg_ms: f64,
    sent: u64,
    lost: u64,
    rcodes: String,
}

fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(str::trim)
}

fn num(s: Option<&str>) -> f64 {
    s.and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A saturating dnsperf run against `port`.
fn dnsperf(a: &Args, port: u16, file: &Path) -> anyhow::Result<Perf> {
    let out = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(file)
        .args(["-l", &a.seconds.to_string(), "-c", &a.clients.to_string()])
        .args([
            "-T",
            &a.threads.to_string(),
            "-q",
            &a.outstanding.to_string(),
        ])
        .args(["-t", "2", "-b", "4096"])
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success(),
        "dnsperf failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Perf {
        qps: num(field(&text, "Queries per second:")),
        avg_ms: num(field(&text, "Average Latency (s):")) * 1000.0,
        sent: num(field(&text, "Queries sent:")) as u64,
        lost: num(field(&text, "Queries lost:")) as u64,
        rcodes: field(&text, "Response codes:").unwrap_or("").to_string(),
    })
}

/// Per-query latencies (ms, sorted) of a dnsperf run at a fixed rate, from `-v` output
/// (`> NOERROR name type 0.000123` per response).
fn dnsperf_latencies(a: &Args, port: u16, file: &Path) -> anyhow::Result<Vec<f64>> {
    let out = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(file)
        .args([
            "-l",
            &a.latency_seconds.to_string(),
            "-Q",
            &a.latency_qps.to_string(),
        ])
        .args(["-c", "4", "-T", "1", "-t", "2", "-v"])
        .stdin(Stdio::null())
        .output()?;
    anyhow::ensure!(out.status.success(), "dnsperf -v failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .map(|s| s * 1000.0)
        .collect();
    v.sort_by(f64::total_cmp);
    Ok(v)
}

fn pct(v: &[f64], p: f64) -> f64 {
    report::at(v, p).unwrap_or(f64::NAN)
}

fn start_nsd(dir: &Path, port: u16, zone: &str, rev: &str) -> anyhow::Result<Proc> {
    std::fs::write(dir.join("cluster.local.zone"), zone)?;
    std::fs::write(dir.join("10.in-addr.arpa.zone"), rev)?;
    let d = dir.display();
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  do-ip6: no\n  server-count: 2\n  reuseport: yes\n\
         \x20 username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n\
         \x20 pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n\
         \x20 verbosity: 0\n  hide-version: yes\n  logfile: \"{d}/nsd.log\"\n\
         \x20 rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n\
         remote-control:\n  control-enable: no\n\
         zone:\n  name: cluster.local\n  zonefile: cluster.local.zone\n\
         zone:\n  name: 10.in-addr.arpa\n  zonefile: 10.in-addr.arpa.zone\n"
    );
    let conf_path = dir.join("nsd.conf");
    std::fs::write(&conf_path, conf)?;
    Ok(Proc::spawn(
        Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )?)
}

/// NSD forks server processes; kill its whole process group on drop.
struct Nsd(Proc);

impl Drop for Nsd {
    fn drop(&mut self) {
        // `nsd -d` stays the parent of its servers; SIGTERM makes it stop them and exit.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0 .0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// svcnet / NSD; `—` without a reference in this run (`--no-peer`).
fn ratio(x: f64, y: f64) -> String {
    report::ratio(x, y, 2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(a.services > 0, "--services must be > 0");
    let exe = match &a.svcnet {
        Some(p) => p.clone(),
        None => svcnet_exe()?,
    };
    report::header();
    let dir = tempfile::tempdir()?;
    let api = ApiServer::start(None).await?;
    let objects = load(&api.client, &a).await?;

    let dns_port = free_port()?;
    let metrics_port = free_port()?;
    let dns = Proc::spawn(
        Command::new(&exe)
            .args(["dns", "--listen", &format!("127.0.0.1:{dns_port}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(["--upstream", "127.0.0.1:9", "--kubeconfig"])
            .arg(api.kubeconfig())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )?;
    let started = Instant::now();
    let last = &objects.services[objects.services.len() - 1].0;
    let (_, hl_ips) = objects.headless.last().cloned().unwrap_or_default();
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        wait_answers(
            dns_port,
            &format!("{last}.bench.svc.cluster.local."),
            RecordType::A,
            1,
            Duration::from_secs(300),
        )?;
        if let Some((h, _)) = objects.headless.last() {
            wait_answers(
                dns_port,
                &format!("{h}.bench.svc.cluster.local."),
                RecordType::A,
                hl_ips.len(),
                Duration::from_secs(60),
            )?;
        }
        Ok(())
    })?;
    let synced = started.elapsed();
    let rss_synced = dns.rss_mib();

    let qfile = dir.path().join("queries.txt");
    std::fs::write(&qfile, query_file(&objects, a.queries))?;

    let peer = if a.no_peer {
        None
    } else {
        let nsd_dir = dir.path().join("nsd");
        std::fs::create_dir_all(&nsd_dir)?;
        let port = free_port()?;
        let (z, r) = zone_files(&objects);
        let nsd = Nsd(start_nsd(&nsd_dir, port, &z, &r)?);
        tokio::task::block_in_place(|| {
            wait_answers(
                port,
                &format!("{last}.bench.svc.cluster.local."),
                RecordType::A,
                1,
                Duration::from_secs(60),
            )
        })?;
        Some((nsd, port))
    };

    // Alternate the servers so drift in the machine's load hits both alike.
    let (s_perf, p_perf, s_lat, p_lat) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let s1 = dnsperf(&a, dns_port, &qfile)?;
        let p1 = peer
            .as_ref()
            .map(|(_, p)| dnsperf(&a, *p, &qfile))
            .transpose()?;
        let s_lat = dnsperf_latencies(&a, dns_port, &qfile)?;
        let p_lat = peer
            .as_ref()
            .map(|(_, p)| dnsperf_latencies(&a, *p, &qfile))
            .transpose()?;
        Ok((s1, p1, s_lat, p_lat))
    })?;
    let peak = dns.peak_rss_mib();
    let nsd_rss = peer.as_ref().map(|(n, _)| n.0.peak_rss_mib());

    let total_eps = objects.headless.iter().map(|h| h.1.len()).sum::<usize>()
        + (a.endpoints
            .saturating_sub(a.headless * a.headless_endpoints)
            / a.services)
            * a.services;
    println!(
        "## Cluster DNS: {} ClusterIP + {} headless Services, {} endpoints; dnsperf -c {} -T {} -q {} -l {}\n",
        a.services, a.headless, total_eps, a.clients, a.threads, a.outstanding, a.seconds
    );
    println!(
        "(`{} dns` answered the whole zone {:.1} s after start.)\n",
        exe.display(),
        synced.as_secs_f64()
    );
    let p = p_perf.clone().unwrap_or_default();
    let pl = p_lat.clone().unwrap_or_default();
    println!(
        "| measure | svcnet dns | reference: NSD {} | svcnet / NSD |",
        nsd_version()
    );
    println!("|---|---|---|---|");
    println!(
        "| queries per second | {:.0} | {:.0} | {} |",
        s_perf.qps,
        p.qps,
        ratio(s_perf.qps, p.qps)
    );
    println!(
        "| average latency (saturated) | {:.3} ms | {:.3} ms | {} |",
        s_perf.avg_ms,
        p.avg_ms,
        ratio(s_perf.avg_ms, p.avg_ms)
    );
    println!(
        "| queries sent / lost | {} / {} | {} / {} | |",
        s_perf.sent, s_perf.lost, p.sent, p.lost
    );
    for (l, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
        println!(
            "| latency {l} at {} qps | {:.3} ms | {:.3} ms | {} |",
            a.latency_qps,
            pct(&s_lat, q),
            pct(&pl, q),
            ratio(pct(&s_lat, q), pct(&pl, q))
        );
    }
    match nsd_rss {
        Some(n) => println!("| peak RSS (VmHWM) | {peak:.0} MiB (after sync: {rss_synced:.0} MiB) | {n:.0} MiB (main process) | |"),
        None => println!("| peak RSS (VmHWM) | {peak:.0} MiB (after sync: {rss_synced:.0} MiB) | | |"),
    }
    println!(
        "\nResponse codes: svcnet: {}; NSD: {}",
        s_perf.rcodes, p.rcodes
    );
    drop(peer);
    drop(dns);
    Ok(())
}

fn nsd_version() -> String {
    Command::new("nsd")
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            let t = String::from_utf8_lossy(&o.stderr).to_string()
                + &String::from_utf8_lossy(&o.stdout);
            t.lines()
                .next()
                .map(|l| l.trim_start_matches("NSD version ").to_string())
        })
        .unwrap_or_default()
}
