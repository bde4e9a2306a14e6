//! First-packet latency through a ClusterIP (issue 5 (a)): the time of a TCP `connect()` (SYN
//! → SYN-ACK) from a client namespace, through a node namespace holding the proxy's rules, to
//! a server namespace, with 10 / 1k / 10k / 30k Services present (each with 10 endpoints),
//! in nftables and iptables modes. The reference ("direct pod IP") is a connect to the same
//! server through a router namespace holding no rule at all; a connect to the pod IPs through
//! the node (where the rules do not match) is measured too. The three alternate connect by
//! connect, so the machine's drift hits them alike; ratios are taken within a point.
//!
//! Topology (all namespaces made here, deleted on exit, also on panic or Ctrl-C):
//! client 198.51.100.2 → node (198.51.100.1 | 10.244.0.1, the rules) → server 10.244.0.2-11
//! (one listener on :8080, ten addresses: the measured Service's ten endpoints); client
//! 198.51.101.2 → router (no rules) → server 10.245.0.2. The other Services' endpoints are
//! addresses nothing answers on; they are never connected to. The measured Service sorts last
//! (`bench/zz-measured`), iptables' worst case.
//!
//! Rules are loaded with the proxy's own backends (`proxier::backend(..).full(..)`), each load
//! bounded by `--load-timeout`; a load that does not finish in time is killed and that mode's
//! larger sizes are skipped. Each connect is closed with SO_LINGER 0 (a reset: no TIME_WAIT on
//! the client; source ports are the kernel's ephemeral ones).
//!
//! `cargo build --release -p svcnet-bench --bin proxy-latency-bench &&
//!  ./target/release/proxy-latency-bench [--sizes 10,1000,10000,30000] [--connects 2000]
//!  [--max-iptables 10000]`

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use svcnet_netns::NetNs;
use svcnet_proxy::model::{Endpoint, Protocol, ServicePort, ServicePortName, State};
use svcnet_proxy::proxier::{self, Mode, Options};
use svcnet_proxy::runtime::Backend;

#[derive(Parser)]
struct Args {
    /// Numbers of Services present (the measured one included).
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000,30000")]
    sizes: Vec<usize>,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Connects measured per point (and as many to the pod IP, interleaved).
    #[arg(long, default_value_t = 2000)]
    connects: usize,
    /// Skip iptables points with more Services than this.
    #[arg(long, default_value_t = 10_000)]
    max_iptables: usize,
    /// Give up a rule load after this many seconds (that mode's larger sizes are skipped).
    #[arg(long, default_value_t = 600)]
    load_timeout: u64,
    /// Stop measuring one point after this many seconds (fewer connects are reported).
    #[arg(long, default_value_t = 60)]
    point_timeout: u64,
}

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 5);
const PORT: u16 = 8080;
/// The server's address on the reference path.
const REFERENCE: Ipv4Addr = Ipv4Addr::new(10, 245, 0, 2);

/// The scratch namespaces (by name); deleted on drop.
struct Guard {
    names: Vec<String>,
}

struct Scratch {
    client: NetNs,
    node: NetNs,
    names: Vec<String>,
    _guard: Guard,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = NetNs::delete(n);
        }
    }
}

fn endpoint_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 0, 2 + i as u8)
}

fn scratch(endpoints: usize) -> anyhow::Result<Scratch> {
    let tag = format!("svcnet-plb-{}", std::process::id());
    let names: Vec<String> = ["c", "n", "s", "r"]
        .iter()
        .map(|n| format!("{tag}-{n}"))
        .collect();
    // The guard exists before the first namespace does.
    let guard = Guard {
        names: names.clone(),
    };
    let client = NetNs::create(&names[0])?;
    let node = NetNs::create(&names[1])?;
    let server = NetNs::create(&names[2])?;
    let router = NetNs::create(&names[3])?;
    node.ip_batch(&format!(
        "link add cl0 type veth peer name eth0 netns {}\n\
         link set cl0 up\n\
         addr add 198.51.100.1/24 dev cl0\n\
         link add sv0 type veth peer name eth0 netns {}\n\
         link set sv0 up\n\
         addr add 10.244.0.1/24 dev sv0\n",
        names[0], names[2]
    ))?;
    node.sysctls(&[("net.ipv4.ip_forward", "1")])?;
    client.ip_batch(
        "link set eth0 up\naddr add 198.51.100.2/24 dev eth0\nroute add default via 198.51.100.1\n",
    )?;
    let mut cmds = String::from("link set eth0 up\n");
    for i in 0..endpoints {
        cmds.push_str(&format!("addr add {}/24 dev eth0\n", endpoint_ip(i)));
    }
    cmds.push_str("route add default via 10.244.0.1\n");
    server.ip_batch(&cmds)?;
    // The reference path: client → a router namespace without any rule → the same server
    // (the same listener) on 10.245.0.2.
    router.ip_batch(&format!(
        "link add cl1 type veth peer name eth1 netns {}\n\
         link set cl1 up\n\
         addr add 198.51.101.1/24 dev cl1\n\
         link add sv1 type veth peer name eth1 netns {}\n\
         link set sv1 up\n\
         addr add 10.245.0.1/24 dev sv1\n",
        names[0], names[2]
    ))?;
    router.sysctls(&[("net.ipv4.ip_forward", "1")])?;
    client.ip_batch(
        "link set eth1 up\naddr add 198.51.101.2/24 dev eth1\nroute add 10.245.0.0/24 via 198.51.101.1\n",
    )?;
    server.ip_batch(
        "link set eth1 up\naddr add 10.245.0.2/24 dev eth1\nroute add 198.51.101.0/24 via 10.245.0.1\n",
    )?;
    let l = server.tcp_listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT))?;
    l.set_nonblocking(false)?;
    std::thread::spawn(move || {
        // Accept and close at once; the client resets anyway.
        while let Ok((c, _)) = l.accept() {
            drop(c);
        }
    });
    Ok(Scratch {
        client,
        node,
        names,
        _guard: guard,
    })
}

fn service(ns: &str, name: &str, ip: Ipv4Addr, eps: Vec<Ipv4Addr>) -> (ServicePort, Vec<Endpoint>) {
    let id = ServicePortName {
        namespace: ns.into(),
        name: name.into(),
        port: String::new(),
        protocol: Protocol::Tcp,
    };
    let sp = ServicePort::new(id, IpAddr::V4(ip), 80);
    let eps = eps
        .into_iter()
        .map(|ip| Endpoint {
            ip: IpAddr::V4(ip),
            port: PORT,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some("node".into()),
            zone: None,
            hint_zones: None,
        })
        .collect();
    (sp, eps)
}

/// `services` Services × `endpoints` endpoints; the last (by name) is the measured one.
fn state(services: usize, endpoints: usize) -> State {
    let mut st = State::default();
    let mut put = |(sp, eps): (ServicePort, Vec<Endpoint>)| {
        st.endpoints.insert(sp.id.clone(), eps);
        st.services.insert(sp.id.clone(), sp);
    };
    put(service(
        "bench",
        "zz-measured",
        VIP,
        (0..endpoints).map(endpoint_ip).collect(),
    ));
    for i in 0..services.saturating_sub(1) {
        let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 10)) + i as u32);
        let eps = (0..endpoints)
            .map(|e| {
                Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + (i * endpoints + e) as u32)
            })
            .collect();
        put(service("bench", &format!("svc-{i:05}"), vip, eps));
    }
    st
}

fn options(mode: Mode, node: &NetNs) -> Options {
    Options {
        mode,
        netns: Some(node.name().to_string()),
        node_name: "node".into(),
        node_ips: vec!["198.51.100.1".parse().unwrap()],
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        metrics_addr: None,
        health_bind: None,
        settings: Default::default(),
        userspace_algorithm: Default::default(),
    }
}

/// `backend.full(state)` on a thread, bounded: on timeout the loader processes in the node
/// namespace are killed and None is returned (the backend is lost with its thread).
fn load(
    mut backend: Box<dyn Backend>,
    state: State,
    node: &NetNs,
    timeout: Duration,
) -> (Option<Box<dyn Backend>>, Result<Duration, String>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = backend.full(&state).map(|_| t.elapsed());
        let _ = tx.send((backend, r));
    });
    match rx.recv_timeout(timeout) {
        Ok((b, r)) => (Some(b), r),
        Err(_) => {
            for pid in NetNs::pids(node.name()) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
            // Let the thread see its child die.
            let _ = rx.recv_timeout(Duration::from_secs(30));
            (
                None,
                Err(format!("load took more than {} s", timeout.as_secs())),
            )
        }
    }
}

/// Connects from inside `client`, alternating over `targets` (one connect each in turn,
/// so any disturbance of the machine hits every target alike), until each target has `n`
/// or `limit` has passed; the connect times per target.
fn connects(
    client: &NetNs,
    targets: Vec<SocketAddr>,
    n: usize,
    limit: Duration,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let out = client.run(move || -> std::io::Result<Vec<Vec<Duration>>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let _enter = rt.enter();
        let mut out = vec![Vec::with_capacity(n); targets.len()];
        let start = Instant::now();
        for _ in 0..n {
            if start.elapsed() > limit {
                break;
            }
            for (k, addr) in targets.iter().enumerate() {
                let t = Instant::now();
                let s = TcpStream::connect_timeout(addr, Duration::from_secs(2))?;
                out[k].push(t.elapsed());
                // Close with a reset: no TIME_WAIT, nothing left to skew the next connect.
                s.set_nonblocking(true)?;
                let s = tokio::net::TcpStream::from_std(s)?;
                s.set_zero_linger()?;
                drop(s);
            }
        }
        Ok(out)
    })??;
    Ok(out)
}

/// Connect times of one point.
#[derive(Default)]
struct Samples {
    /// To the ClusterIP, through the node's rules.
    cluster: Vec<Duration>,
    /// To the pod IPs, through the node (its rules do not match).
    via_node: Vec<Duration>,
    /// To the pod, through a router namespace without any rule: "direct pod IP".
    reference: Vec<Duration>,
}

/// Rounds of (ClusterIP, pod IP k through the node, pod through the rule-free router) for
/// k over the ten pod IPs, until `n` of each (or `limit`); without `vip`, no ClusterIP.
fn measure(
    client: &NetNs,
    endpoints: usize,
    n: usize,
    limit: Duration,
    vip: bool,
) -> anyhow::Result<Samples> {
    let cluster = SocketAddr::new(IpAddr::V4(VIP), 80);
    let reference = SocketAddr::new(IpAddr::V4(REFERENCE), PORT);
    let mut targets = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..endpoints {
        if vip {
            targets.push(cluster);
            kinds.push(0);
        }
        targets.push(SocketAddr::new(IpAddr::V4(endpoint_ip(i)), PORT));
        kinds.push(1);
        targets.push(reference);
        kinds.push(2);
    }
    // Warm up (ARP, routes, caches).
    connects(client, targets.clone(), 5, limit)?;
    let rounds = n.div_ceil(endpoints);
    let got = connects(client, targets, rounds, limit)?;
    let mut out = Samples::default();
    for (k, v) in kinds.into_iter().zip(got) {
        match k {
            0 => out.cluster.extend(v),
            1 => out.via_node.extend(v),
            _ => out.reference.extend(v),
        }
    }
    Ok(out)
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

struct Point {
    mode: &'static str,
    services: usize,
    /// The smallest size measured again after the largest (drift check).
    again: bool,
    load: Result<Duration, String>,
    samples: Samples,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    svcnet_netns::check_privileges().map_err(anyhow::Error::msg)?;
    let s = scratch(a.endpoints)?;
    // Ctrl-C: the namespaces go too.
    let names = s.names.clone();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            for n in &names {
                let _ = NetNs::delete(n);
            }
            std::process::exit(130);
        }
    });
    let limit = Duration::from_secs(a.point_timeout);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    eprintln!(
        "kernel {}, {} connects per point, namespaces {:?}",
        kernel.trim(),
        a.connects,
        s.names
    );

    let calib = measure(&s.client, a.endpoints, a.connects, limit, false)?;
    eprintln!(
        "no rules: pod IP through the node p50 {}, through the router p50 {}",
        us(pct(&calib.via_node, 0.5)),
        us(pct(&calib.reference, 0.5))
    );

    let mut points: Vec<Point> = Vec::new();
    let mut skipped = Vec::new();
    for (mode, mname) in [(Mode::Nftables, "nftables"), (Mode::Iptables, "iptables")] {
        let mut backend = Some(proxier::backend(&options(mode, &s.node)));
        let mut dead = false;
        let mut sizes: Vec<(usize, bool)> = a.sizes.iter().map(|&n| (n, false)).collect();
        if let Some(&first) = a.sizes.first() {
            sizes.push((first, true));
        }
        for (size, again) in sizes {
            let measured = points.iter().filter(|p| p.mode == mname).count();
            if again && (dead || measured < 2) {
                continue;
            }
            if dead {
                skipped.push(format!("{mname} {size}: skipped after a load timeout"));
                continue;
            }
            if mode == Mode::Iptables && size > a.max_iptables {
                skipped.push(format!(
                    "{mname} {size}: skipped (--max-iptables {})",
                    a.max_iptables
                ));
                continue;
            }
            eprintln!(
                "{mname}: loading {size} Services × {} endpoints ...",
                a.endpoints
            );
            let st = state(size, a.endpoints);
            let (b, loaded) = load(
                backend.take().unwrap(),
                st,
                &s.node,
                Duration::from_secs(a.load_timeout),
            );
            backend = b;
            match &loaded {
                Ok(d) => eprintln!("{mname}: loaded {size} in {:.1} s", d.as_secs_f64()),
                Err(e) => eprintln!("{mname}: {size}: {e}"),
            }
            if let Err(e) = &loaded {
                skipped.push(format!("{mname} {size}: {e}"));
                dead = true;
                backend = None;
                continue;
            }
            let samples = measure(&s.client, a.endpoints, a.connects, limit, true)?;
            eprintln!(
                "{mname} {size}: ClusterIP p50 {} p99 {} | pod IP via the node p50 {} | via the router p50 {} ({} connects)",
                us(pct(&samples.cluster, 0.5)),
                us(pct(&samples.cluster, 0.99)),
                us(pct(&samples.via_node, 0.5)),
                us(pct(&samples.reference, 0.5)),
                samples.cluster.len()
            );
            points.push(Point {
                mode: mname,
                services: size,
                again,
                load: loaded,
                samples,
            });
        }
        // Leave nothing for the next mode (its backend removes this mode's rules anyway).
        match backend {
            Some(mut b) => {
                let _ = b.cleanup();
            }
            None => {
                let _ = svcnet_proxy::nftables::cleanup(Some(s.node.name()));
                let _ = svcnet_proxy::iptables::cleanup(Some(s.node.name()));
            }
        }
    }

    // Report.
    let p50 = |v: &[Duration]| pct(v, 0.5).as_secs_f64();
    println!(
        "First-packet (TCP connect) latency: client ns → node ns (the rules) → server ns; {} endpoints per Service; {} connects per point. Each ClusterIP connect is followed by a connect to a pod IP through the same node (its rules do not match) and one to the pod through a router namespace without any rule (\"direct pod IP\", the reference), so machine noise hits all three alike.\n",
        a.endpoints, a.connects
    );
    println!(
        "Before any rule was loaded: pod IP through the node p50 {}, through the rule-free router p50 {} ({:.2}x).\n",
        us(pct(&calib.via_node, 0.5)),
        us(pct(&calib.reference, 0.5)),
        p50(&calib.via_node) / p50(&calib.reference)
    );
    println!("| mode | Services | rules load | ClusterIP p50 | p90 | p99 | direct pod IP p50 | p99 | ClusterIP / direct (p50) | pod IP through the node p50 |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for p in &points {
        let x = &p.samples;
        println!(
            "| {} | {} | {:.1} s | {} | {} | {} | {} | {} | {:.2}x | {} |",
            p.mode,
            if p.again {
                format!("{} (again, last)", p.services)
            } else {
                p.services.to_string()
            },
            p.load.as_ref().map(|d| d.as_secs_f64()).unwrap_or(f64::NAN),
            us(pct(&x.cluster, 0.5)),
            us(pct(&x.cluster, 0.9)),
            us(pct(&x.cluster, 0.99)),
            us(pct(&x.reference, 0.5)),
            us(pct(&x.reference, 0.99)),
            p50(&x.cluster) / p50(&x.reference),
            us(pct(&x.via_node, 0.5)),
        );
    }
    println!();
    for mode in ["nftables", "iptables"] {
        let mine: Vec<&Point> = points
            .iter()
            .filter(|p| p.mode == mode && !p.again)
            .collect();
        let again = points.iter().find(|p| p.mode == mode && p.again);
        let target = |t: &str| {
            if mode == "nftables" {
                format!(" (target ≤ {t})")
            } else {
                String::new()
            }
        };
        let rel = |p: &Point| p50(&p.samples.cluster) / p50(&p.samples.reference);
        if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
            if first.services != last.services {
                let r = |q| {
                    pct(&last.samples.cluster, q).as_secs_f64()
                        / pct(&first.samples.cluster, q).as_secs_f64()
                };
                println!(
                    "- {mode}: ClusterIP with {} Services / with {}: p50 {:.2}x, p99 {:.2}x; normalised by the direct connects of the same point (machine drift removed): {:.2}x{}",
                    last.services,
                    first.services,
                    r(0.5),
                    r(0.99),
                    rel(last) / rel(first),
                    target("1.1x")
                );
                if let Some(ag) = again {
                    println!(
                        "- {mode}: the same against the {}-Service point measured again at the end: p50 {:.2}x; normalised {:.2}x",
                        ag.services,
                        p50(&last.samples.cluster) / p50(&ag.samples.cluster),
                        rel(last) / rel(ag)
                    );
                }
            }
            let worst = mine.iter().map(|p| rel(p)).fold(0.0f64, f64::max);
            let worst_node = mine
                .iter()
                .map(|p| p50(&p.samples.cluster) / p50(&p.samples.via_node))
                .fold(0.0f64, f64::max);
            println!(
                "- {mode}: worst p50 ClusterIP / direct pod IP {:.2}x{}; ClusterIP / pod IP through the same node (conntrack on in both) {:.2}x",
                worst,
                target("1.2x"),
                worst_node
            );
        }
    }
    for s in &skipped {
        println!("- {s}");
    }
    drop(s);
    Ok(())
}
