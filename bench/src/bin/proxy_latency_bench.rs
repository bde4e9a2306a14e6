//! First-packet latency through a ClusterIP (issue 5 (a)): the time of a TCP `connect()` (SYN
//! → SYN-ACK) from a client namespace, through a node namespace holding the proxy's rules, to
//! a server namespace, with 10 / 1k / 10k / 30k Services present (each with 10 endpoints),
//! in nftables and iptables modes. Per round, five connects alternate, connect by connect, so
//! the machine's drift hits them alike and every ratio is taken within one measurement:
//! - ClusterIP from a pod: from the client's second address 10.244.200.2, inside the cluster
//!   CIDR the proxy is given (10.244.0.0/16), so DNAT without masquerade, as for the common
//!   client of a ClusterIP. The source is chosen by the kernel, as for the other connects: the
//!   connect thread switches its fsuid (outside the timed window) so that the socket's owner
//!   uid matches a uid-range policy rule in the client namespace, whose table's default route
//!   prefers that address; the connect itself is the same `TcpStream::connect_timeout`. The
//!   node routes 10.244.200.0/24 back to the client link. The server counts what it accepts
//!   from the pod address (a warning if fewer than the pod's ClusterIP connects), and before
//!   any rule the pod address is checked to reach the pods through the node (routing,
//!   rp_filter; the run stops with the node's rp_filter and route if not);
//! - ClusterIP from the off-cluster client address (198.51.100.2): DNAT and masquerade;
//! - a pod IP through the same node (where the rules do not match);
//! - the pod through a "conntrack-only node": a second node namespace that forwards like the
//!   router below but has connection tracking on and no rule on the packets' path — a table
//!   (`svcnet-bench-ct`) of the proxy's three nat hooks at its priorities, all empty, plus one
//!   chain that no hook and no rule jumps to, holding `ct state established accept`: loading a
//!   rule that uses conntrack is what turns connection tracking on in a namespace (an empty
//!   nat chain alone does not, on 6.18), as the proxy's DNAT/masquerade rules do on every
//!   Kubernetes node. The table is loaded there before the first measurement and kept for
//!   the whole run;
//! - the pod through a router namespace holding no rule at all (no conntrack): "direct pod
//!   IP", the reference.
//!
//! The three pod-IP connects are made from the off-cluster addresses. ClusterIP (from either
//! client) is compared with three baselines: the rule-free router ("direct pod IP"), the pod
//! IP through the same node with the proxy's rules, and the pod through the conntrack-only
//! node. Before any of the proxy's rules, the same rounds (without ClusterIP) are measured with
//! nothing in the node, then with a table of empty nat chains only in the node (the ct table
//! without its `ct` rule: one extra measurement, to show that it leaves conntrack off; deleted,
//! and checked gone, before the proxy's rules are loaded, also when a measurement fails). The
//! conntrack entry counts of the node, the conntrack-only node and the router are printed
//! after each measurement (the conntrack-only node tracks; the router does not).
//!
//! `--ablate` (a measurement aid, default off): at the first nftables point (10 Services by
//! default), after measuring it, the node's loaded table is edited and the rounds measured
//! again, one edit at a time, the full rules being restored in between by a full sync through
//! the same backend (the table's listing is checked to be what it was): (a) the five filter
//! base chains (`filter-prerouting`, `filter-input`, `filter-forward`, `filter-output`,
//! `filter-output-post-dnat`) flushed; (b) `nat-postrouting` flushed; (c) `nat-prerouting` and
//! `nat-output` flushed; (d) all eight flushed (the table still holds its other chains, maps
//! and sets). With (c) and (d) ClusterIP no longer works: those rounds leave it out. Chains
//! are flushed with `nft flush chain ip svcnet <chain>` inside the node namespace.
//!
//! Topology (all namespaces made here, deleted on exit, also on panic or Ctrl-C):
//! client 198.51.100.2 and 10.244.200.2 ("a pod") → node (198.51.100.1 | 10.244.0.1, the
//! rules; route 10.244.200.0/24 via 198.51.100.2) → server 10.244.0.2-11
//! (one listener on :8080, ten addresses: the measured Service's ten endpoints); client
//! 198.51.102.2 → conntrack-only node (198.51.102.1 | 10.246.0.1) → server 10.246.0.2; client
//! 198.51.101.2 → router (198.51.101.1 | 10.245.0.1, no rules) → server 10.245.0.2 (the same
//! listener on all). The other Services' endpoints are addresses nothing answers on; they are
//! never connected to. The measured Service sorts last (`bench/zz-measured`), iptables' worst
//! case.
//!
//! Rules are loaded with the proxy's own backends (`server::backend(..).full(..)`), each load
//! bounded by `--load-timeout`; a load that does not finish in time is killed and that mode's
//! larger sizes are skipped. Each connect is closed with SO_LINGER 0 (a reset: no TIME_WAIT on
//! the client; source ports are the kernel's ephemeral ones).
//!
//! `cargo build --release -p svcnet-bench --bin proxy-latency-bench &&
//!  ./target/release/proxy-latency-bench [--sizes 10,1000,10000,30000] [--connects 2000]
//!  [--max-iptables 10000] [--ablate]`

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use svcnet_netns::NetNs;
use svcnet_proxy::model::{Endpoint, Protocol, ServicePort, ServicePortName, State};
use svcnet_proxy::server::{self, Mode, Options};
use svcnet_proxy::backend::Backend;

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
    /// At the first nftables point, also measure with parts of the node's table flushed
    /// (see the doc comment).
    #[arg(long)]
    ablate: bool,
}

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 5);
const PORT: u16 = 8080;
/// The server's address on the reference path (through the rule-free router).
const REFERENCE: Ipv4Addr = Ipv4Addr::new(10, 245, 0, 2);
/// The server's address on the path through the conntrack-only node.
const CT_REFERENCE: Ipv4Addr = Ipv4Addr::new(10, 246, 0, 2);
/// The reference table: the proxy's nat hooks, empty (and, for "conntrack only", a chain
/// nothing jumps to whose one rule uses conntrack, which turns it on). Loaded into the
/// conntrack-only node for the whole run; without its `ct` rule, into the node for one
/// measurement before the proxy's rules.
const CT_TABLE: &str = "svcnet-bench-ct";
/// The cluster CIDR the proxy is configured with (`Options::cluster_cidr`).
const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The client's second address, "a pod": inside [`CLUSTER_CIDR`], outside the server's
/// 10.244.0.0/24 (the measured endpoints) and every other range used here. On the client's
/// link to the node (as a /32); the node routes [`POD_CLIENT_NET`] back to the client.
const POD_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 200, 2);
const POD_CLIENT_NET: &str = "10.244.200.0/24";
/// The off-cluster client address (masqueraded on its way to a ClusterIP).
const OFF_CLUSTER_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The node's address on the server link: the source the server sees for masqueraded
/// connects.
const NODE_SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

/// What the server accepted on the node's link (10.244.0.2-11), by source: the pod address
/// (so the ClusterIP connect from the pod was DNATed, not masqueraded), the node's address
/// (masqueraded ClusterIP connects), the off-cluster client (pod-IP connects through the node).
static SEEN_POD: AtomicUsize = AtomicUsize::new(0);
static SEEN_MASQ: AtomicUsize = AtomicUsize::new(0);
static SEEN_OFF_CLUSTER: AtomicUsize = AtomicUsize::new(0);

/// The accept counters: (pod source, masqueraded, off-cluster source).
fn seen() -> (usize, usize, usize) {
    (
        SEEN_POD.load(Ordering::SeqCst),
        SEEN_MASQ.load(Ordering::SeqCst),
        SEEN_OFF_CLUSTER.load(Ordering::SeqCst),
    )
}

/// The fsuid the client's connect thread takes (outside the timed window) for a ClusterIP
/// connect "from a pod": a uid-range policy rule in the client namespace sends its sockets'
/// route lookups to a table whose default route has the pod address as its preferred
/// source. So the kernel picks the pod address at `connect()` as it picks the off-cluster one
/// for the other connects, and every connect is the same `TcpStream::connect_timeout` (a
/// `bind()` before `connect()` would add syscalls to the pod connects' timed window only).
const POD_UID: u32 = 64_200;
/// The client namespace's routing table for [`POD_UID`].
const POD_TABLE: u32 = 200;

/// Set this thread's fsuid (sockets created after take it as their owner uid); checked.
fn set_fsuid(uid: u32) -> std::io::Result<()> {
    use nix::unistd::{setfsuid, Uid};
    setfsuid(Uid::from_raw(uid));
    // An invalid uid changes nothing and returns the current one.
    let now = setfsuid(Uid::from_raw(u32::MAX)).as_raw();
    if now != uid {
        return Err(std::io::Error::other(format!(
            "setfsuid({uid}) left fsuid {now}"
        )));
    }
    Ok(())
}

/// `nft -f -` with `script` inside `ns` (the proxy's own `nftables::apply`).
fn nft(ns: &NetNs, script: &str) -> anyhow::Result<()> {
    Ok(svcnet_proxy::nftables::apply(Some(ns.name()), script)?)
}

/// The reference table, loaded into a namespace; deleted on drop (early returns, panics).
struct CtOnly<'a> {
    node: &'a NetNs,
    loaded: bool,
}

impl<'a> CtOnly<'a> {
    fn load(node: &'a NetNs, conntrack: bool) -> anyhow::Result<Self> {
        // (`nft -f` is atomic; the guard exists first all the same.)
        let g = CtOnly { node, loaded: true };
        // Never jumped to: no packet sees its rule; its loading turns conntrack on.
        let ct_on = if conntrack {
            "\tchain ct-on { ct state established accept; }\n"
        } else {
            ""
        };
        nft(
            node,
            &format!(
                "table ip {CT_TABLE} {{\n\
                 \tchain nat-prerouting {{ type nat hook prerouting priority -100; policy accept; }}\n\
                 \tchain nat-output {{ type nat hook output priority -100; policy accept; }}\n\
                 \tchain nat-postrouting {{ type nat hook postrouting priority 100; policy accept; }}\n\
                 {ct_on}}}\n"
            ),
        )?;
        Ok(g)
    }

    /// Delete the table, and check it is gone.
    fn delete(mut self) -> anyhow::Result<()> {
        nft(
            self.node,
            &format!("table ip {CT_TABLE} {{}}\ndelete table ip {CT_TABLE}\n"),
        )?;
        self.loaded = false;
        let listed = self
            .node
            .command("nft")
            .args(["list", "table", "ip", CT_TABLE])
            .output()?;
        anyhow::ensure!(
            !listed.status.success(),
            "table {CT_TABLE} still in {}",
            self.node.name()
        );
        Ok(())
    }
}

impl Drop for CtOnly<'_> {
    fn drop(&mut self) {
        if self.loaded {
            let _ = nft(
                self.node,
                &format!("table ip {CT_TABLE} {{}}\ndelete table ip {CT_TABLE}\n"),
            );
        }
    }
}

/// A namespace's conntrack entry count (`net.netfilter.nf_conntrack_count`), if any.
fn ct_count(node: &NetNs) -> String {
    node.run(|| std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count"))
        .ok()
        .and_then(|r| r.ok())
        .map_or_else(|| "n/a".to_string(), |s| s.trim().to_string())
}

/// The scratch namespaces (by name); deleted on drop.
struct Guard {
    names: Vec<String>,
}

struct Scratch {
    client: NetNs,
    node: NetNs,
    /// Forwards like `router`, with conntrack on (once its table is loaded) and no rule.
    ct_node: NetNs,
    router: NetNs,
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

/// Path `n` (1, 2) from the client to the server through `via`, which only forwards: links
/// `cl<n>` / `eth<n>`, client side 198.51.(100+n).0/24, server side 10.(244+n).0.0/24 (the
/// server answers on 10.(244+n).0.2). `names`: the client's and the server's namespaces.
fn side_path(
    client: &NetNs,
    via: &NetNs,
    server: &NetNs,
    names: (&str, &str),
    n: u8,
) -> anyhow::Result<()> {
    let (c, s) = (100 + n, 244 + n);
    via.ip_batch(&format!(
        "link add cl{n} type veth peer name eth{n} netns {}\n\
         link set cl{n} up\n\
         addr add 198.51.{c}.1/24 dev cl{n}\n\
         link add sv{n} type veth peer name eth{n} netns {}\n\
         link set sv{n} up\n\
         addr add 10.{s}.0.1/24 dev sv{n}\n",
        names.0, names.1
    ))?;
    via.sysctls(&[("net.ipv4.ip_forward", "1")])?;
    client.ip_batch(&format!(
        "link set eth{n} up\naddr add 198.51.{c}.2/24 dev eth{n}\nroute add 10.{s}.0.0/24 via 198.51.{c}.1\n"
    ))?;
    server.ip_batch(&format!(
        "link set eth{n} up\naddr add 10.{s}.0.2/24 dev eth{n}\nroute add 198.51.{c}.0/24 via 10.{s}.0.1\n"
    ))?;
    Ok(())
}

fn scratch(endpoints: usize) -> anyhow::Result<Scratch> {
    let tag = format!("svcnet-plb-{}", std::process::id());
    let names: Vec<String> = ["c", "n", "s", "r", "t"]
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
    let ct_node = NetNs::create(&names[4])?;
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
    // "A pod": a second client address inside the cluster CIDR, on the same link, the source
    // of the sockets made under POD_UID (by routing: the default route of their table prefers
    // it); the node routes it back there.
    client.ip_batch(&format!(
        "addr add {POD_CLIENT}/32 dev eth0\n\
         route add default via 198.51.100.1 dev eth0 src {POD_CLIENT} table {POD_TABLE}\n\
         rule add uidrange {POD_UID}-{POD_UID} lookup {POD_TABLE} priority 100\n"
    ))?;
    node.ip_batch(&format!(
        "route add {POD_CLIENT_NET} via {OFF_CLUSTER_CLIENT} dev cl0\n"
    ))?;
    let mut cmds = String::from("link set eth0 up\n");
    for i in 0..endpoints {
        cmds.push_str(&format!("addr add {}/24 dev eth0\n", endpoint_ip(i)));
    }
    cmds.push_str("route add default via 10.244.0.1\n");
    server.ip_batch(&cmds)?;
    // The reference path: client → a router namespace without any rule → the same server
    // (the same listener) on 10.245.0.2; and the conntrack-only path, wired alike, on
    // 10.246.0.2.
    side_path(&client, &router, &server, (&names[0], &names[2]), 1)?;
    side_path(&client, &ct_node, &server, (&names[0], &names[2]), 2)?;
    let l = server.tcp_listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT))?;
    l.set_nonblocking(false)?;
    std::thread::spawn(move || {
        // Accept and close at once; the client resets anyway. Count by source what came
        // in on the node's link.
        while let Ok((c, peer)) = l.accept() {
            let on_node_link = matches!(
                c.local_addr().map(|a| a.ip()),
                Ok(IpAddr::V4(ip)) if ip.octets()[..3] == [10, 244, 0]
            );
            if on_node_link {
                match peer.ip() {
                    IpAddr::V4(ip) if ip == POD_CLIENT => {
                        SEEN_POD.fetch_add(1, Ordering::SeqCst);
                    }
                    IpAddr::V4(ip) if ip == NODE_SERVER_SIDE => {
                        SEEN_MASQ.fetch_add(1, Ordering::SeqCst);
                    }
                    IpAddr::V4(ip) if ip == OFF_CLUSTER_CLIENT => {
                        SEEN_OFF_CLUSTER.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
            drop(c);
        }
    });
    Ok(Scratch {
        client,
        node,
        ct_node,
        router,
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
        cluster_cidr: Some(CLUSTER_CIDR.parse().unwrap()),
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
        let r = backend.full(&state).map(|_| t.elapsed()).map_err(|e| e.to_string());
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

/// A connect target: whether from the pod address (the socket made under [`POD_UID`], so the
/// client's routing picks [`POD_CLIENT`] as its source), and the destination.
type Target = (bool, SocketAddr);

/// Connects from inside `client`, alternating over `targets` (one connect each in turn,
/// so any disturbance of the machine hits every target alike), until each target has `n`
/// or `limit` has passed; the connect times per target.
fn connects(
    client: &NetNs,
    targets: Vec<Target>,
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
            for (k, (pod, addr)) in targets.iter().enumerate() {
                if *pod {
                    set_fsuid(POD_UID)?;
                }
                let t = Instant::now();
                let s = TcpStream::connect_timeout(addr, Duration::from_secs(2));
                let d = t.elapsed();
                if *pod {
                    set_fsuid(0)?;
                }
                let s = s?;
                if *pod {
                    // The source the kernel chose must be the pod address.
                    let src = s.local_addr()?.ip();
                    if src != IpAddr::V4(POD_CLIENT) {
                        return Err(std::io::Error::other(format!(
                            "a connect from the pod got source {src}, not {POD_CLIENT}"
                        )));
                    }
                }
                out[k].push(d);
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

/// Connect times of one measurement.
#[derive(Default)]
struct Samples {
    /// To the ClusterIP from the pod address (inside the cluster CIDR: not masqueraded),
    /// through the node's rules.
    pod_cluster: Vec<Duration>,
    /// To the ClusterIP from the off-cluster address (masqueraded), through the node's rules.
    cluster: Vec<Duration>,
    /// To the pod IPs, through the node (its rules do not match).
    via_node: Vec<Duration>,
    /// To the pod, through the conntrack-only node (conntrack on, no rule on the path).
    via_ct: Vec<Duration>,
    /// To the pod, through a router namespace without any rule: "direct pod IP".
    reference: Vec<Duration>,
    /// Conntrack entries afterwards: node, conntrack-only node, router.
    entries: [String; 3],
    /// What the server accepted on the node's link during the measurement (warm-up
    /// included), against what was sent: (from the pod address, ClusterIP connects from
    /// it), (masqueraded, ClusterIP connects from the off-cluster address).
    seen_pod: (usize, usize),
    seen_masq: (usize, usize),
}

/// Rounds of (ClusterIP from the pod address, ClusterIP from the off-cluster address, pod IP
/// k through the node, pod through the conntrack-only node, pod through the rule-free
/// router) for k over the ten pod IPs, until `n` of each (or `limit`); without `vip`, no
/// ClusterIP (from either address).
fn measure(
    s: &Scratch,
    endpoints: usize,
    n: usize,
    limit: Duration,
    vip: bool,
) -> anyhow::Result<Samples> {
    let cluster = SocketAddr::new(IpAddr::V4(VIP), 80);
    let via_ct = SocketAddr::new(IpAddr::V4(CT_REFERENCE), PORT);
    let reference = SocketAddr::new(IpAddr::V4(REFERENCE), PORT);
    let mut targets: Vec<Target> = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..endpoints {
        if vip {
            targets.push((true, cluster));
            kinds.push(4);
            targets.push((false, cluster));
            kinds.push(0);
        }
        targets.push((false, SocketAddr::new(IpAddr::V4(endpoint_ip(i)), PORT)));
        kinds.push(1);
        targets.push((false, via_ct));
        kinds.push(2);
        targets.push((false, reference));
        kinds.push(3);
    }
    let before = seen();
    let mut sent = (0usize, 0usize);
    if vip {
        // The pod's ClusterIP connect must work before anything is measured.
        connects(&s.client, vec![(true, cluster)], 1, limit).map_err(|e| {
            anyhow::anyhow!(
                "ClusterIP {cluster} from the pod address {POD_CLIENT} (in the node: {}): {e}",
                node_routing(&s.node)
            )
        })?;
        sent.0 += 1;
    }
    // Warm up (ARP, routes, caches).
    let warm = connects(&s.client, targets.clone(), 5, limit)?;
    let rounds = n.div_ceil(endpoints);
    let got = connects(&s.client, targets, rounds, limit)?;
    let mut out = Samples::default();
    for (k, (w, v)) in kinds.into_iter().zip(warm.into_iter().zip(got)) {
        match k {
            4 => sent.0 += w.len() + v.len(),
            0 => sent.1 += w.len() + v.len(),
            _ => {}
        }
        match k {
            4 => out.pod_cluster.extend(v),
            0 => out.cluster.extend(v),
            1 => out.via_node.extend(v),
            2 => out.via_ct.extend(v),
            _ => out.reference.extend(v),
        }
    }
    out.entries = [ct_count(&s.node), ct_count(&s.ct_node), ct_count(&s.router)];
    // The server's accept loop may lag behind the client a little.
    let t = Instant::now();
    let mut now = seen();
    while (now.0 - before.0 < sent.0 || now.1 - before.1 < sent.1)
        && t.elapsed() < Duration::from_secs(2)
    {
        std::thread::sleep(Duration::from_millis(20));
        now = seen();
    }
    out.seen_pod = (now.0 - before.0, sent.0);
    out.seen_masq = (now.1 - before.1, sent.1);
    if vip && out.seen_pod.0 < sent.0 {
        eprintln!(
            "WARNING: the server saw {} connects from the pod address {POD_CLIENT} for {} ClusterIP connects from it: not all went through the node's DNAT unmasqueraded",
            out.seen_pod.0, sent.0
        );
    }
    if vip && out.seen_masq.0 < sent.1 {
        eprintln!(
            "WARNING: the server saw {} masqueraded connects (from {NODE_SERVER_SIDE}) for {} ClusterIP connects from the off-cluster address",
            out.seen_masq.0, sent.1
        );
    }
    Ok(out)
}

/// The node's rp_filter settings and its route to the pod address, for error messages.
fn node_routing(node: &NetNs) -> String {
    let rp = |dev: &str| {
        let path = format!("/proc/sys/net/ipv4/conf/{dev}/rp_filter");
        node.run(move || std::fs::read_to_string(path))
            .ok()
            .and_then(|r| r.ok())
            .map_or_else(|| "?".to_string(), |s| s.trim().to_string())
    };
    let route = node
        .command("ip")
        .args(["route", "get", &POD_CLIENT.to_string()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "rp_filter all {} cl0 {}; route to the pod address: {route}",
        rp("all"),
        rp("cl0")
    )
}

/// Before any rule: the pod address must reach a pod IP through the node and back (routing,
/// rp_filter), and the server must see it as the source. Then interleaved connects to the pod
/// IPs through the node from the pod address and from the off-cluster address, with no rule
/// and conntrack off in the node: their p50 ratio is what the pod source costs by itself
/// (the uid switch is outside the timed window; expected 1.00x).
fn pod_source_check(s: &Scratch, endpoints: usize, limit: Duration) -> anyhow::Result<f64> {
    let before = seen();
    let first = SocketAddr::new(IpAddr::V4(endpoint_ip(0)), PORT);
    connects(&s.client, vec![(true, first)], 1, limit).map_err(|e| {
        anyhow::anyhow!(
            "the pod address {POD_CLIENT} does not reach the pod {first} through the node ({}): {e}",
            node_routing(&s.node)
        )
    })?;
    let mut targets: Vec<Target> = Vec::new();
    for i in 0..endpoints {
        let to = SocketAddr::new(IpAddr::V4(endpoint_ip(i)), PORT);
        targets.push((true, to));
        targets.push((false, to));
    }
    connects(&s.client, targets.clone(), 5, limit)?;
    let got = connects(&s.client, targets, 100, limit)?;
    let (mut pod, mut off) = (Vec::new(), Vec::new());
    for (k, v) in got.into_iter().enumerate() {
        if k % 2 == 0 {
            pod.extend(v);
        } else {
            off.extend(v);
        }
    }
    let sent = 1 + 5 * endpoints + pod.len();
    let t = Instant::now();
    while seen().0 - before.0 < sent && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = seen().0 - before.0;
    anyhow::ensure!(
        got >= sent,
        "the server saw {got} connects from the pod address {POD_CLIENT} for {sent} sent"
    );
    Ok(r50(&pod, &off))
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

fn p50(v: &[Duration]) -> f64 {
    pct(v, 0.5).as_secs_f64()
}

/// p50(a) / p50(b).
fn r50(a: &[Duration], b: &[Duration]) -> f64 {
    p50(a) / p50(b)
}

/// One measurement, for stderr.
fn describe(x: &Samples) -> String {
    let vip = if x.cluster.is_empty() {
        String::new()
    } else {
        format!(
            "ClusterIP from a pod p50 {} p99 {} (server saw the pod source {}/{}) | ClusterIP p50 {} p99 {} (masqueraded {}/{}) | ",
            us(pct(&x.pod_cluster, 0.5)),
            us(pct(&x.pod_cluster, 0.99)),
            x.seen_pod.0,
            x.seen_pod.1,
            us(pct(&x.cluster, 0.5)),
            us(pct(&x.cluster, 0.99)),
            x.seen_masq.0,
            x.seen_masq.1
        )
    };
    format!(
        "{vip}pod IP via the node p50 {} | via the conntrack-only node p50 {} | via the router p50 {} ({} connects each; conntrack entries: node {}, conntrack-only node {}, router {})",
        us(pct(&x.via_node, 0.5)),
        us(pct(&x.via_ct, 0.5)),
        us(pct(&x.reference, 0.5)),
        x.reference.len(),
        x.entries[0],
        x.entries[1],
        x.entries[2]
    )
}

/// The pod-IP paths of a measurement without ClusterIP, for the report.
fn paths(x: &Samples) -> String {
    format!(
        "pod IP through the node p50 {}, through the conntrack-only node p50 {}, through the rule-free router p50 {} (node / router {:.2}x, conntrack-only node / router {:.2}x, node / conntrack-only node {:.2}x); conntrack entries afterwards: node {}, conntrack-only node {}, router {}",
        us(pct(&x.via_node, 0.5)),
        us(pct(&x.via_ct, 0.5)),
        us(pct(&x.reference, 0.5)),
        r50(&x.via_node, &x.reference),
        r50(&x.via_ct, &x.reference),
        r50(&x.via_node, &x.via_ct),
        x.entries[0],
        x.entries[1],
        x.entries[2]
    )
}

/// `nft list table ip svcnet` in `ns`.
fn listing(ns: &NetNs) -> anyhow::Result<String> {
    let out = ns
        .command("nft")
        .args(["list", "table", "ip", svcnet_proxy::nftables::TABLE])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "nft list table in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `--ablate` edits: a label, the chains of `ip svcnet` flushed, whether ClusterIP still
/// works (and is measured).
const ABLATIONS: [(&str, &[&str], bool); 4] = {
    use svcnet_proxy::nftables::*;
    [
        (
            "(a) filter base chains flushed (filter-prerouting, -input, -forward, -output, -output-post-dnat)",
            &[FILTER_PREROUTING, FILTER_INPUT, FILTER_FORWARD, FILTER_OUTPUT, FILTER_OUTPUT_POST_DNAT],
            true,
        ),
        ("(b) nat-postrouting flushed", &[NAT_POSTROUTING], true),
        ("(c) nat-prerouting and nat-output flushed (no ClusterIP)", &[NAT_PREROUTING, NAT_OUTPUT], false),
        (
            "(d) all eight base chains flushed (no ClusterIP)",
            &[
                FILTER_PREROUTING,
                FILTER_INPUT,
                FILTER_FORWARD,
                FILTER_OUTPUT,
                FILTER_OUTPUT_POST_DNAT,
                NAT_POSTROUTING,
                NAT_PREROUTING,
                NAT_OUTPUT,
            ],
            false,
        ),
    ]
};

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
    let load_timeout = Duration::from_secs(a.load_timeout);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    eprintln!(
        "kernel {}, {} connects per point, namespaces {:?}",
        kernel.trim(),
        a.connects,
        s.names
    );

    let src_cost = pod_source_check(&s, a.endpoints, limit)?;
    eprintln!(
        "pod address {POD_CLIENT} reaches the pods through the node (no rule in it); pod IP through the node from the pod address / from the off-cluster address, p50: {src_cost:.2}x"
    );
    // Conntrack on in the conntrack-only node, for the whole run.
    let ct_table = CtOnly::load(&s.ct_node, true)?;
    let calib = measure(&s, a.endpoints, a.connects, limit, false)?;
    eprintln!("no rules in the node: {}", describe(&calib));
    let check = |x: &Samples| {
        if x.entries[1] == "0" {
            eprintln!("WARNING: no conntrack entry in the conntrack-only node: its table did not turn conntrack on");
        }
        if x.entries[2] != "0" && x.entries[2] != "n/a" {
            eprintln!("WARNING: conntrack entries in the router: it is not rule-free");
        }
    };
    check(&calib);
    // Empty nat chains only in the node; the table is deleted before the proxy's rules come.
    let nat_only = CtOnly::load(&s.node, false)?;
    let nat = measure(&s, a.endpoints, a.connects, limit, false)?;
    nat_only.delete()?;
    eprintln!(
        "empty nat chains only in the node (table {CT_TABLE}): {}; table deleted",
        describe(&nat)
    );
    check(&nat);

    let mut points: Vec<Point> = Vec::new();
    let mut ablations: Vec<(&str, usize, Samples)> = Vec::new();
    let mut restore_mismatch = Vec::new();
    let mut skipped = Vec::new();
    for (mode, mname) in [(Mode::Nftables, "nftables"), (Mode::Iptables, "iptables")] {
        let mut backend = Some(server::backend(&options(mode, &s.node)));
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
            let (b, loaded) = load(backend.take().unwrap(), st, &s.node, load_timeout);
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
            let samples = measure(&s, a.endpoints, a.connects, limit, true)?;
            eprintln!("{mname} {size}: {}", describe(&samples));
            check(&samples);
            points.push(Point {
                mode: mname,
                services: size,
                again,
                load: loaded,
                samples,
            });
            if a.ablate && mode == Mode::Nftables && measured == 0 && !again {
                let full = listing(&s.node)?;
                for (label, chains, vip) in ABLATIONS {
                    let script: String = chains
                        .iter()
                        .map(|c| {
                            format!("flush chain {} {c}\n", svcnet_proxy::nftables::FAMILY_TABLE)
                        })
                        .collect();
                    nft(&s.node, &script)?;
                    let x = measure(&s, a.endpoints, a.connects, limit, vip)?;
                    eprintln!("{mname} {size}, ablation {label}: {}", describe(&x));
                    check(&x);
                    ablations.push((label, size, x));
                    // The full rules back, by the same call that loaded the point.
                    let b = backend
                        .take()
                        .ok_or_else(|| anyhow::anyhow!("no backend to restore the rules"))?;
                    let (b, r) = load(b, state(size, a.endpoints), &s.node, load_timeout);
                    backend = b;
                    r.map_err(|e| anyhow::anyhow!("restoring the rules after {label}: {e}"))?;
                    if listing(&s.node)? != full {
                        eprintln!("WARNING: after {label}, the restored table differs from the one measured");
                        restore_mismatch.push(label);
                    }
                }
            }
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
    println!(
        "First-packet (TCP connect) latency: client ns → node ns (the rules) → server ns; {} endpoints per Service; {} connects per point. Each round: a ClusterIP connect from a pod address ({POD_CLIENT}, inside the cluster CIDR {CLUSTER_CIDR}: DNAT, no masquerade; the kernel picks it as the source by the client's policy routing for that socket's owner uid, so the connect is the same call as the others), a ClusterIP connect from the off-cluster client address ({OFF_CLUSTER_CLIENT}: DNAT and masquerade), then from the off-cluster address a connect to a pod IP through the same node (its rules do not match), one to the pod through a conntrack-only node (conntrack on, no rule on the path) and one through a router namespace without any rule (\"direct pod IP\", the reference), so machine noise hits all five alike.\n",
        a.endpoints, a.connects
    );
    println!(
        "The pod source by itself (before any rule, conntrack off in the node; pod IP through the node from the pod address / from the off-cluster address, interleaved, p50): {src_cost:.2}x.\n"
    );
    println!(
        "Before any rule was loaded in the node (conntrack-only node's table loaded): {}.\n",
        paths(&calib)
    );
    println!(
        "Empty nat chains only in the node (a table of empty nat chains — prerouting and output at -100, postrouting at 100 — and nothing else; deleted before the proxy's rules were loaded): {}.\n",
        paths(&nat)
    );
    println!("| mode | Services | rules load | ClusterIP p50 | p90 | p99 | direct pod IP p50 | p99 | ClusterIP / direct (p50) | pod IP through the node p50 | pod IP through a conntrack-only node p50 | ClusterIP / conntrack-only node (p50) | pod IP through the node / conntrack-only node (p50) | ClusterIP from a pod p50 | ClusterIP from a pod / direct (router) (p50) | ClusterIP from a pod / conntrack-only node (p50) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &points {
        let x = &p.samples;
        println!(
            "| {} | {} | {:.1} s | {} | {} | {} | {} | {} | {:.2}x | {} | {} | {:.2}x | {:.2}x | {} | {:.2}x | {:.2}x |",
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
            r50(&x.cluster, &x.reference),
            us(pct(&x.via_node, 0.5)),
            us(pct(&x.via_ct, 0.5)),
            r50(&x.cluster, &x.via_ct),
            r50(&x.via_node, &x.via_ct),
            us(pct(&x.pod_cluster, 0.5)),
            r50(&x.pod_cluster, &x.reference),
            r50(&x.pod_cluster, &x.via_ct),
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
        let rel = |p: &Point| r50(&p.samples.cluster, &p.samples.reference);
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
                .map(|p| r50(&p.samples.cluster, &p.samples.via_node))
                .fold(0.0f64, f64::max);
            println!(
                "- {mode}: worst p50 ClusterIP / direct pod IP {:.2}x{}; ClusterIP / pod IP through the same node (conntrack on in both) {:.2}x",
                worst,
                target("1.2x"),
                worst_node
            );
            let range = |f: &dyn Fn(&Samples) -> f64| {
                let v: Vec<f64> = mine.iter().map(|p| f(&p.samples)).collect();
                (
                    v.iter().copied().fold(f64::INFINITY, f64::min),
                    v.iter().copied().fold(0.0f64, f64::max),
                )
            };
            let (ct_lo, ct_hi) = range(&|x| r50(&x.cluster, &x.via_ct));
            let (node_lo, node_hi) = range(&|x| r50(&x.via_node, &x.via_ct));
            let (ctr_lo, ctr_hi) = range(&|x| r50(&x.via_ct, &x.reference));
            println!(
                "- {mode}: worst p50 ClusterIP / pod IP through a conntrack-only node (conntrack on, no rule on the path; interleaved, within each point) {ct_hi:.2}x (per point {ct_lo:.2}–{ct_hi:.2}x); pod IP through the node / through the conntrack-only node {node_lo:.2}–{node_hi:.2}x; conntrack-only node / router {ctr_lo:.2}–{ctr_hi:.2}x"
            );
            let (pr_lo, pr_hi) = range(&|x| r50(&x.pod_cluster, &x.reference));
            let (pc_lo, pc_hi) = range(&|x| r50(&x.pod_cluster, &x.via_ct));
            let (pn_lo, pn_hi) = range(&|x| r50(&x.pod_cluster, &x.via_node));
            let (pm_lo, pm_hi) = range(&|x| r50(&x.pod_cluster, &x.cluster));
            println!(
                "- {mode}: ClusterIP from a pod (source {POD_CLIENT}, in the cluster CIDR: not masqueraded): worst p50 / direct pod IP (router) {pr_hi:.2}x (per point {pr_lo:.2}–{pr_hi:.2}x){}; worst p50 / pod IP through a conntrack-only node {pc_hi:.2}x (per point {pc_lo:.2}–{pc_hi:.2}x); / pod IP through the same node {pn_lo:.2}–{pn_hi:.2}x; / ClusterIP from the off-cluster address (masqueraded) {pm_lo:.2}–{pm_hi:.2}x",
                target("1.2x")
            );
            if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
                if first.services != last.services {
                    let prel = |p: &Point| r50(&p.samples.pod_cluster, &p.samples.reference);
                    println!(
                        "- {mode}: ClusterIP from a pod with {} Services / with {}: p50 {:.2}x; normalised by the direct connects of the same point: {:.2}x{}",
                        last.services,
                        first.services,
                        p50(&last.samples.pod_cluster) / p50(&first.samples.pod_cluster),
                        prel(last) / prel(first),
                        target("1.1x")
                    );
                }
            }
            let unseen: usize = mine
                .iter()
                .chain(again.iter())
                .map(|p| p.samples.seen_pod.1.saturating_sub(p.samples.seen_pod.0))
                .sum();
            let (seen_n, sent_n) = mine.iter().chain(again.iter()).fold((0, 0), |(a, b), p| {
                (a + p.samples.seen_pod.0, b + p.samples.seen_pod.1)
            });
            println!(
                "- {mode}: the server saw the pod source address on {seen_n} connects for {sent_n} ClusterIP connects from the pod (DNATed, not masqueraded){}",
                if unseen == 0 { "" } else { " — WARNING: some were not" }
            );
        }
    }
    for s in &skipped {
        println!("- {s}");
    }
    if !ablations.is_empty() {
        let size = ablations[0].1;
        println!(
            "\nAblation (--ablate), nftables {size} Services: the node's table edited, one edit at a time (full rules restored by a full sync in between{}); rounds as above (without ClusterIP where it no longer works).\n",
            if restore_mismatch.is_empty() {
                ", the table's listing checked identical".to_string()
            } else {
                format!(", BUT the restored listing differed after {restore_mismatch:?}")
            }
        );
        println!("| node's table | ClusterIP p50 | pod IP through the node p50 | conntrack-only node p50 | router p50 | node / conntrack-only node | node / router | conntrack-only node / router | ClusterIP / conntrack-only node | ClusterIP / router | ClusterIP from a pod p50 | ClusterIP from a pod / conntrack-only node | ClusterIP from a pod / router |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let full = points
            .iter()
            .find(|p| p.mode == "nftables" && p.services == size && !p.again)
            .map(|p| ("full rules (the point above)", &p.samples));
        for (label, x) in full
            .into_iter()
            .chain(ablations.iter().map(|(l, _, x)| (*l, x)))
        {
            let (vip, vct, vr) = if x.cluster.is_empty() {
                ("—".to_string(), "—".to_string(), "—".to_string())
            } else {
                (
                    us(pct(&x.cluster, 0.5)),
                    format!("{:.2}x", r50(&x.cluster, &x.via_ct)),
                    format!("{:.2}x", r50(&x.cluster, &x.reference)),
                )
            };
            let (pvip, pvct, pvr) = if x.pod_cluster.is_empty() {
                ("—".to_string(), "—".to_string(), "—".to_string())
            } else {
                (
                    us(pct(&x.pod_cluster, 0.5)),
                    format!("{:.2}x", r50(&x.pod_cluster, &x.via_ct)),
                    format!("{:.2}x", r50(&x.pod_cluster, &x.reference)),
                )
            };
            println!(
                "| {label} | {vip} | {} | {} | {} | {:.2}x | {:.2}x | {:.2}x | {vct} | {vr} | {pvip} | {pvct} | {pvr} |",
                us(pct(&x.via_node, 0.5)),
                us(pct(&x.via_ct, 0.5)),
                us(pct(&x.reference, 0.5)),
                r50(&x.via_node, &x.via_ct),
                r50(&x.via_node, &x.reference),
                r50(&x.via_ct, &x.reference),
            );
        }
    }
    drop(ct_table);
    drop(s);
    Ok(())
}
