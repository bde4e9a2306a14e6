//! The userspace proxy mode (kube-proxy's old `userspace` mode, done well): for every Service
//! port the proxy opens a listener on the node (0.0.0.0, an ephemeral port or one from a fixed
//! range) and its own nftables table ([`FAMILY_TABLE`]) redirects the Service's ClusterIPs,
//! external / load-balancer IPs and NodePort to that listener. Connections are proxied in user
//! space (tokio) to an endpoint chosen by an [`Algorithm`]; when connecting to the chosen
//! endpoint fails (refused, or no answer within [`CONNECT_TIMEOUT`]) the next one is tried, up to
//! every endpoint once, so a dead backend does not fail the client — what kernel NAT cannot do.
//!
//! - TCP: each accepted connection is copied both ways (`copy_bidirectional`) to the endpoint.
//! - UDP: one session per client address (a socket towards the endpoint, ended after
//!   [`UDP_IDLE`] without traffic or when the endpoint refuses); replies leave from the
//!   listener socket, so conntrack turns them back into the ClusterIP's.
//! - `sessionAffinity: ClientIP`: the client IP's endpoint is remembered for the timeout.
//! - No endpoints: no redirect is installed; the table's filter chains REJECT the Service's
//!   traffic instead (ICMP port unreachable: a TCP client sees "connection refused" at once).
//!   The listener is kept so the Service port keeps its listener port. When every endpoint
//!   fails, the client's TCP connection is reset.
//! - Traffic policies and topology hints are not applied (as in kube-proxy's userspace mode):
//!   every usable endpoint of [`categorize`]'s cluster set is a candidate. IPv4 only; SCTP
//!   Service ports are not proxied.
//!
//! Sockets towards endpoints are made inside the node's namespace by one long-lived thread
//! ([`Dialer`]), so the tokio workers never change namespace. Listeners of unchanged Service
//! ports are kept across syncs (established connections survive); their endpoint lists are
//! updated in place.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use svcnet_netns::NetNs;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::model::{categorize, Protocol, ServicePort, ServicePortName, State};
use crate::nftables;

/// The table's name.
pub const TABLE: &str = "svcnet-userspace";
/// The table with its family, as nft commands name it.
pub const FAMILY_TABLE: &str = "ip svcnet-userspace";
/// How long connecting to one endpoint may take before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// A UDP session without traffic this long is ended.
pub const UDP_IDLE: Duration = Duration::from_secs(30);

/// `--userspace-algorithm`: how an endpoint is chosen for a new connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    #[default]
    RoundRobin,
    LeastConnections,
    Random,
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "round-robin" | "roundrobin" | "rr" | "" => Ok(Algorithm::RoundRobin),
            "least-connections" | "leastconn" | "lc" => Ok(Algorithm::LeastConnections),
            "random" => Ok(Algorithm::Random),
            other => Err(format!(
                "unknown userspace algorithm {other:?}: use round-robin, least-connections or random"
            )),
        }
    }
}

/// One Service port's load balancer: its endpoints, the algorithm's state, the connections open
/// per endpoint and the ClientIP affinity table.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    endpoints: Vec<SocketAddr>,
    next: usize,
    rng: u64,
    active: HashMap<SocketAddr, usize>,
    affinity: Option<Duration>,
    sticky: HashMap<IpAddr, (SocketAddr, Instant)>,
}

impl Balancer {
    pub fn new(algorithm: Algorithm) -> Balancer {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Balancer {
            algorithm,
            endpoints: Vec::new(),
            next: 0,
            rng: seed | 1,
            active: HashMap::new(),
            affinity: None,
            sticky: HashMap::new(),
        }
    }

    /// Replace the endpoints (in place: open connections and affinities to endpoints that stay
    /// are kept) and the affinity timeout (None: no affinity).
    pub fn set_endpoints(&mut self, endpoints: Vec<SocketAddr>, affinity: Option<Duration>) {
        if affinity.is_none() {
            self.sticky.clear();
        }
        self.sticky.retain(|_, (ep, _)| endpoints.contains(ep));
        self.endpoints = endpoints;
        self.affinity = affinity;
    }

    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// Connections open to `ep` (through this balancer).
    pub fn active(&self, ep: SocketAddr) -> usize {
        self.active.get(&ep).copied().unwrap_or(0)
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The endpoints to try for a new connection from `client`, in order: the chosen one (the
    /// affinity's, else the algorithm's) first, then the others (the retries), each once.
    pub fn order(&mut self, client: IpAddr, now: Instant) -> Vec<SocketAddr> {
        let n = self.endpoints.len();
        if n == 0 {
            return Vec::new();
        }
        let mut start = None;
        if let Some(timeout) = self.affinity {
            if self.sticky.len() > 4096 {
                self.sticky
                    .retain(|_, (_, t)| now.saturating_duration_since(*t) < timeout);
            }
            if let Some((ep, t)) = self.sticky.get(&client) {
                if now.saturating_duration_since(*t) < timeout {
                    start = self.endpoints.iter().position(|e| e == ep);
                }
            }
        }
        let start = match start {
            Some(s) => s,
            None => match self.algorithm {
                Algorithm::RoundRobin => {
                    let s = self.next % n;
                    self.next = s + 1;
                    s
                }
                Algorithm::LeastConnections => {
                    // The fewest open connections; ties rotate (round robin among the idlest).
                    let from = self.next % n;
                    let s = (0..n)
                        .map(|k| (from + k) % n)
                        .min_by_key(|&i| self.active(self.endpoints[i]))
                        .unwrap_or(from);
                    self.next = s + 1;
                    s
                }
                Algorithm::Random => (self.random() % n as u64) as usize,
            },
        };
        (0..n).map(|k| self.endpoints[(start + k) % n]).collect()
    }

    /// A connection from `client` to `ep` was established: count it and (with affinity)
    /// remember the endpoint for the client.
    pub fn connected(&mut self, client: IpAddr, ep: SocketAddr, now: Instant) {
        *self.active.entry(ep).or_default() += 1;
        if self.affinity.is_some() {
            self.sticky.insert(client, (ep, now));
        }
    }

    /// A connection to `ep` ended.
    pub fn released(&mut self, ep: SocketAddr) {
        if let Some(c) = self.active.get_mut(&ep) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.active.remove(&ep);
            }
        }
    }
}

type Shared = Arc<Mutex<Balancer>>;

/// Counts a connection as open while alive.
struct Active {
    bal: Shared,
    ep: SocketAddr,
}

impl Active {
    fn new(bal: &Shared, client: IpAddr, ep: SocketAddr) -> Active {
        lock(bal).connected(client, ep, Instant::now());
        Active {
            bal: bal.clone(),
            ep,
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        lock(&self.bal).released(self.ep);
    }
}

fn lock(b: &Shared) -> std::sync::MutexGuard<'_, Balancer> {
    b.lock().unwrap_or_else(|e| e.into_inner())
}

enum Req {
    Tcp(bool, tokio::sync::oneshot::Sender<io::Result<TcpSocket>>),
    Udp(
        bool,
        tokio::sync::oneshot::Sender<io::Result<std::net::UdpSocket>>,
    ),
}

fn make(req: Req) {
    match req {
        Req::Tcp(v6, tx) => {
            let _ = tx.send(if v6 {
                TcpSocket::new_v6()
            } else {
                TcpSocket::new_v4()
            });
        }
        Req::Udp(v6, tx) => {
            let any: SocketAddr = if v6 {
                "[::]:0".parse().expect("address")
            } else {
                "0.0.0.0:0".parse().expect("address")
            };
            let _ = tx.send(std::net::UdpSocket::bind(any).and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            }));
        }
    }
}

/// Makes the sockets towards endpoints inside the node's namespace (one thread living there),
/// or in this process's namespace.
#[derive(Clone)]
struct Dialer {
    tx: Option<std::sync::mpsc::Sender<Req>>,
}

impl Dialer {
    fn new(netns: Option<&str>) -> Dialer {
        let Some(name) = netns else {
            return Dialer { tx: None };
        };
        let (tx, rx) = std::sync::mpsc::channel::<Req>();
        let name = name.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("userspace-{name}"))
            .spawn(move || {
                let r = NetNs::open(&name).and_then(|ns| {
                    ns.run(move || {
                        while let Ok(req) = rx.recv() {
                            make(req);
                        }
                    })
                });
                if let Err(e) = r {
                    tracing::warn!(netns = %name, error = %e, "userspace proxy dialer");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "starting the userspace proxy dialer");
        }
        Dialer { tx: Some(tx) }
    }

    async fn socket<T>(
        &self,
        req: impl FnOnce(tokio::sync::oneshot::Sender<io::Result<T>>) -> Req,
    ) -> io::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match &self.tx {
            None => make(req(tx)),
            Some(s) => s
                .send(req(tx))
                .map_err(|_| io::Error::other("userspace proxy dialer gone"))?,
        }
        rx.await
            .map_err(|_| io::Error::other("userspace proxy dialer gone"))?
    }

    async fn tcp(&self, ep: SocketAddr) -> io::Result<TcpStream> {
        let sock = self.socket(|tx| Req::Tcp(ep.is_ipv6(), tx)).await?;
        let s = tokio::time::timeout(CONNECT_TIMEOUT, sock.connect(ep))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    async fn udp(&self, ep: SocketAddr) -> io::Result<UdpSocket> {
        let std = self.socket(|tx| Req::Udp(ep.is_ipv6(), tx)).await?;
        let s = UdpSocket::from_std(std)?;
        s.connect(ep).await?;
        Ok(s)
    }
}

async fn serve_tcp(l: TcpListener, bal: Shared, dialer: Dialer) {
    loop {
        match l.accept().await {
            Ok((client, peer)) => {
                tokio::spawn(proxy_tcp(client, peer, bal.clone(), dialer.clone()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "userspace proxy accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn proxy_tcp(mut client: TcpStream, peer: SocketAddr, bal: Shared, dialer: Dialer) {
    let order = lock(&bal).order(peer.ip(), Instant::now());
    for ep in order {
        match dialer.tcp(ep).await {
            Ok(mut up) => {
                let _active = Active::new(&bal, peer.ip(), ep);
                let _ = client.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                return;
            }
            Err(e) => {
                tracing::debug!(endpoint = %ep, error = %e, "endpoint failed; trying the next")
            }
        }
    }
    // No endpoint (left): reset the client's connection. (A zero linger never blocks on drop:
    // the connection is aborted with an RST at once, which is what this wants.)
    #[allow(deprecated)]
    let _ = client.set_linger(Some(Duration::ZERO));
}

struct Session {
    sock: Arc<UdpSocket>,
    last: Mutex<Instant>,
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, Arc<Session>>>>;

async fn serve_udp(l: Arc<UdpSocket>, bal: Shared, dialer: Dialer) {
    let sessions: Sessions = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = match l.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "userspace proxy recv");
                continue;
            }
        };
        let existing = sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .cloned();
        let session = match existing {
            Some(s) => s,
            None => {
                let order = lock(&bal).order(peer.ip(), Instant::now());
                let mut made = None;
                for ep in order {
                    match dialer.udp(ep).await {
                        Ok(s) => {
                            made = Some((ep, s));
                            break;
                        }
                        Err(e) => tracing::debug!(endpoint = %ep, error = %e, "udp endpoint"),
                    }
                }
                let Some((ep, sock)) = made else { continue };
                let s = Arc::new(Session {
                    sock: Arc::new(sock),
                    last: Mutex::new(Instant::now()),
                });
                sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(peer, s.clone());
                let active = Active::new(&bal, peer.ip(), ep);
                tokio::spawn(udp_replies(
                    l.clone(),
                    s.clone(),
                    peer,
                    sessions.clone(),
                    active,
                ));
                s
            }
        };
        *session.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        if let Err(e) = session.sock.send(&buf[..n]).await {
            tracing::debug!(error = %e, "udp to endpoint");
        }
    }
}

/// Copies an endpoint's replies to the client until the session is idle or the endpoint fails.
async fn udp_replies(
    l: Arc<UdpSocket>,
    s: Arc<Session>,
    peer: SocketAddr,
    sessions: Sessions,
    _active: Active,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let idle_for = s.last.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
        if idle_for >= UDP_IDLE {
            break;
        }
        match tokio::time::timeout(UDP_IDLE - idle_for, s.sock.recv(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(n)) => {
                let _ = l.send_to(&buf[..n], peer).await;
            }
            // E.g. refused (ICMP port unreachable): end it; the next datagram picks anew.
            Ok(Err(_)) => break,
        }
    }
    let mut m = sessions.lock().unwrap_or_else(|e| e.into_inner());
    if m.get(&peer).is_some_and(|x| Arc::ptr_eq(x, &s)) {
        m.remove(&peer);
    }
}

struct Listener {
    port: u16,
    balancer: Shared,
    task: JoinHandle<()>,
}

/// One Service port's rules input: where its traffic goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub service: ServicePort,
    /// The listener's port (None: no endpoints — the traffic is rejected).
    pub listener: Option<u16>,
}

fn v4s(ips: &[IpAddr]) -> impl Iterator<Item = Ipv4Addr> + '_ {
    ips.iter().filter_map(|ip| match ip {
        IpAddr::V4(v) => Some(*v),
        IpAddr::V6(_) => None,
    })
}

fn push_elements(out: &mut String, decl: &str, name: &str, elems: &[String]) {
    out.push_str(&format!("\t{decl} {name} {{\n"));
    out.push_str(&format!(
        "\t\ttype {};\n",
        match name {
            "redirects" => "ipv4_addr . inet_proto . inet_service : inet_service",
            "nodeport-redirects" => "inet_proto . inet_service : inet_service",
            "no-endpoints" => "ipv4_addr . inet_proto . inet_service",
            "no-endpoint-nodeports" => "inet_proto . inet_service",
            "firewall-ips" => "ipv4_addr . inet_proto . inet_service : verdict",
            _ => "ipv4_addr",
        }
    ));
    if !elems.is_empty() {
        out.push_str(&format!("\t\telements = {{ {} }}\n", elems.join(", ")));
    }
    out.push_str("\t}\n");
}

/// The whole table (one transaction replacing the previous one).
pub fn render(redirects: &[Redirect], node_ips: &[IpAddr]) -> String {
    let (mut cluster, mut nodeports, mut rejects, mut np_rejects) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // loadBalancerSourceRanges, as the nftables backend enforces them: `firewall-ips` sends
    // traffic to a load-balancer IP to the Service port's `fw-N` before any redirect.
    let (mut firewall, mut fw_chains, mut fw_count) = (Vec::new(), String::new(), 0);
    for r in redirects {
        let sp = &r.service;
        if sp.protocol == Protocol::Sctp {
            continue;
        }
        let proto = sp.protocol.lower();
        if let Some(rule) = nftables::source_ranges_rule(sp, node_ips) {
            let chain = format!("fw-{fw_count}");
            fw_count += 1;
            fw_chains.push_str(&format!("\tchain {chain} {{\n\t\t{rule}\n\t}}\n"));
            for ip in v4s(&sp.load_balancer_ips) {
                firewall.push(format!("{ip} . {proto} . {} : goto {chain}", sp.port));
            }
        }
        let ips: Vec<Ipv4Addr> = v4s(&sp.cluster_ips)
            .chain(v4s(&sp.external_ips))
            .chain(v4s(&sp.load_balancer_ips))
            .collect();
        for ip in ips {
            match r.listener {
                Some(l) => cluster.push(format!("{ip} . {proto} . {} : {l}", sp.port)),
                None => rejects.push(format!("{ip} . {proto} . {}", sp.port)),
            }
        }
        if sp.node_port != 0 {
            match r.listener {
                Some(l) => nodeports.push(format!("{proto} . {} : {l}", sp.node_port)),
                None => np_rejects.push(format!("{proto} . {}", sp.node_port)),
            }
        }
    }
    for v in [&mut cluster, &mut nodeports, &mut rejects, &mut np_rejects] {
        v.sort();
        v.dedup();
    }
    let node_v4: Vec<String> = v4s(node_ips).map(|i| i.to_string()).collect();
    let local = if node_v4.is_empty() {
        "fib daddr type local".to_string()
    } else {
        "ip daddr @nodeport-ips".to_string()
    };
    // Traffic arriving from pods comes in on address-less veths, where `redirect` has no
    // address to redirect to: DNAT it to the node's own address instead (kube-proxy's
    // userspace mode did the same); the node's own traffic is redirected to loopback.
    let pre = match node_v4.first() {
        Some(n) => format!(
            "meta l4proto {{ tcp, udp }} dnat ip to {n} : ip daddr . meta l4proto . th dport map @redirects\n\t\t{local} meta l4proto {{ tcp, udp }} dnat ip to {n} : meta l4proto . th dport map @nodeport-redirects"
        ),
        None => "jump services".to_string(),
    };
    let mut out = format!("table {FAMILY_TABLE} {{}}\ndelete table {FAMILY_TABLE}\n");
    out.push_str(&format!("table {FAMILY_TABLE} {{\n"));
    push_elements(&mut out, "set", "nodeport-ips", &node_v4);
    push_elements(&mut out, "map", "redirects", &cluster);
    push_elements(&mut out, "map", "nodeport-redirects", &nodeports);
    push_elements(&mut out, "set", "no-endpoints", &rejects);
    push_elements(&mut out, "set", "no-endpoint-nodeports", &np_rejects);
    push_elements(&mut out, "map", "firewall-ips", &firewall);
    out.push_str(&fw_chains);
    out.push_str(&format!(
        "\tchain services {{\n\
         \t\tmeta l4proto {{ tcp, udp }} redirect to :ip daddr . meta l4proto . th dport map @redirects\n\
         \t\t{local} meta l4proto {{ tcp, udp }} redirect to :meta l4proto . th dport map @nodeport-redirects\n\
         \t}}\n\
         \tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\t{pre}\n\t}}\n\
         \tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}}\n\
         \tchain filter-forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tip daddr . meta l4proto . th dport @no-endpoints reject\n\t}}\n\
         \tchain filter-output {{\n\t\ttype filter hook output priority filter; policy accept;\n\
         \t\tip daddr . meta l4proto . th dport @no-endpoints reject\n\
         \t\t{local} meta l4proto . th dport @no-endpoint-nodeports reject\n\t}}\n\
         \tchain filter-input {{\n\t\ttype filter hook input priority filter; policy accept;\n\
         \t\t{local} meta l4proto . th dport @no-endpoint-nodeports reject\n\t}}\n\
         \tchain firewall-prerouting {{\n\t\ttype filter hook prerouting priority -110; policy accept;\n\
         \t\tip daddr . meta l4proto . th dport vmap @firewall-ips\n\t}}\n\
         \tchain firewall-output {{\n\t\ttype filter hook output priority -110; policy accept;\n\
         \t\tip daddr . meta l4proto . th dport vmap @firewall-ips\n\t}}\n\
         }}\n"
    ));
    out
}

/// Delete the userspace table if present (also used when switching to another mode).
pub fn cleanup(netns: Option<&str>) -> Result<(), nftables::Error> {
    nftables::apply(
        netns,
        &format!("table {FAMILY_TABLE} {{}}\ndelete table {FAMILY_TABLE}\n"),
    )
}

/// The userspace proxy backend.
pub struct Userspace {
    netns: Option<String>,
    node_ips: Vec<IpAddr>,
    algorithm: Algorithm,
    port_range: Option<RangeInclusive<u16>>,
    dialer: Option<Dialer>,
    listeners: BTreeMap<ServicePortName, Listener>,
}

impl Userspace {
    pub fn new(netns: Option<String>, node_ips: Vec<IpAddr>, algorithm: Algorithm) -> Userspace {
        Userspace {
            netns,
            node_ips,
            algorithm,
            port_range: None,
            dialer: None,
            listeners: BTreeMap::new(),
        }
    }

    /// Listen on ports from `range` instead of ephemeral ones.
    pub fn with_port_range(mut self, range: RangeInclusive<u16>) -> Userspace {
        self.port_range = Some(range);
        self
    }

    /// The listener port of a Service port, if it has one.
    pub fn listener_port(&self, id: &ServicePortName) -> Option<u16> {
        self.listeners.get(id).map(|l| l.port)
    }

    fn bind_tcp(&self, port: u16) -> io::Result<std::net::TcpListener> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        match &self.netns {
            Some(ns) => NetNs::open(ns)
                .and_then(|n| n.tcp_listen(addr))
                .map_err(|e| io::Error::other(e.to_string())),
            None => {
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok(l)
            }
        }
    }

    fn bind_udp(&self, port: u16) -> io::Result<std::net::UdpSocket> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        match &self.netns {
            Some(ns) => NetNs::open(ns)
                .and_then(|n| n.udp_bind(addr))
                .map_err(|e| io::Error::other(e.to_string())),
            None => {
                let s = std::net::UdpSocket::bind(addr)?;
                s.set_nonblocking(true)?;
                Ok(s)
            }
        }
    }

    /// A new listener for `sp` (on the first free port of the range, or an ephemeral one).
    fn open(
        &mut self,
        sp: &ServicePort,
        handle: &tokio::runtime::Handle,
    ) -> Result<Listener, String> {
        let dialer = self
            .dialer
            .get_or_insert_with(|| Dialer::new(self.netns.as_deref()))
            .clone();
        let ports: Vec<u16> = match &self.port_range {
            Some(r) => {
                let used: Vec<u16> = self.listeners.values().map(|l| l.port).collect();
                r.clone().filter(|p| !used.contains(p)).collect()
            }
            None => vec![0],
        };
        let balancer: Shared = Arc::new(Mutex::new(Balancer::new(self.algorithm)));
        let mut last_err = String::from("no free port in the userspace port range");
        for port in ports {
            let _enter = handle.enter();
            let r = match sp.protocol {
                Protocol::Tcp => self.bind_tcp(port).and_then(|l| {
                    let l = TcpListener::from_std(l)?;
                    let port = l.local_addr()?.port();
                    let task = handle.spawn(serve_tcp(l, balancer.clone(), dialer.clone()));
                    Ok((port, task))
                }),
                Protocol::Udp => self.bind_udp(port).and_then(|s| {
                    let s = UdpSocket::from_std(s)?;
                    let port = s.local_addr()?.port();
                    let task =
                        handle.spawn(serve_udp(Arc::new(s), balancer.clone(), dialer.clone()));
                    Ok((port, task))
                }),
                Protocol::Sctp => return Err("SCTP is not proxied in userspace mode".into()),
            };
            match r {
                Ok((port, task)) => {
                    return Ok(Listener {
                        port,
                        balancer,
                        task,
                    })
                }
                Err(e) => last_err = format!("listening for {}: {e}", sp.id),
            }
        }
        Err(last_err)
    }
}

impl Drop for Userspace {
    fn drop(&mut self) {
        for l in self.listeners.values() {
            l.task.abort();
        }
    }
}

impl Backend for Userspace {
    fn name(&self) -> &'static str {
        "userspace"
    }

    fn full(&mut self, state: &State) -> Result<(), String> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| format!("the userspace proxy needs a tokio runtime: {e}"))?;
        let wanted = |sp: &ServicePort| {
            sp.protocol != Protocol::Sctp && v4s(&sp.cluster_ips).next().is_some()
        };
        self.listeners.retain(|id, l| {
            let keep = state.services.get(id).is_some_and(wanted);
            if !keep {
                l.task.abort();
            }
            keep
        });
        let mut redirects = Vec::new();
        let mut errors = Vec::new();
        for (id, sp) in &state.services {
            if !wanted(sp) {
                continue;
            }
            if !self.listeners.contains_key(id) {
                match self.open(sp, &handle) {
                    Ok(l) => {
                        self.listeners.insert(id.clone(), l);
                    }
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
            }
            let l = &self.listeners[id];
            let eps = state.endpoints.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let (cluster, _) = categorize(sp, eps, "", None);
            let addrs: Vec<SocketAddr> = cluster
                .iter()
                .map(|e| SocketAddr::new(e.ip, e.port))
                .collect();
            let has = !addrs.is_empty();
            lock(&l.balancer).set_endpoints(
                addrs,
                sp.affinity_timeout
                    .map(|s| Duration::from_secs(u64::from(s))),
            );
            redirects.push(Redirect {
                service: sp.clone(),
                listener: has.then_some(l.port),
            });
        }
        nftables::apply(self.netns.as_deref(), &render(&redirects, &self.node_ips))
            .map_err(|e| e.to_string())?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn cleanup(&mut self) -> Result<(), String> {
        for l in self.listeners.values() {
            l.task.abort();
        }
        self.listeners.clear();
        cleanup(self.netns.as_deref()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(n: u8) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| SocketAddr::from(([10, 244, 0, i], 8080)))
            .collect()
    }

    fn client(i: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, i])
    }

    #[test]
    fn round_robin_order_and_retries() {
        let mut b = Balancer::new(Algorithm::RoundRobin);
        b.set_endpoints(eps(3), None);
        let now = Instant::now();
        let e = eps(3);
        // Each new connection starts at the next endpoint; the rest follow as retries.
        assert_eq!(b.order(client(2), now), vec![e[0], e[1], e[2]]);
        assert_eq!(b.order(client(2), now), vec![e[1], e[2], e[0]]);
        assert_eq!(b.order(client(3), now), vec![e[2], e[0], e[1]]);
        assert_eq!(b.order(client(2), now)[0], e[0]);
        // Endpoints updated in place: the rotation continues over the new list.
        b.set_endpoints(eps(2), None);
        let firsts: Vec<_> = (0..4).map(|_| b.order(client(2), now)[0]).collect();
        assert!(firsts.contains(&e[0]) && firsts.contains(&e[1]));
        b.set_endpoints(vec![], None);
        assert!(b.order(client(2), now).is_empty());
    }

    #[test]
    fn least_connections_prefers_the_idle_one() {
        let mut b = Balancer::new(Algorithm::LeastConnections);
        b.set_endpoints(eps(3), None);
        let e = eps(3);
        let now = Instant::now();
        b.connected(client(2), e[0], now);
        b.connected(client(2), e[0], now);
        b.connected(client(2), e[2], now);
        for _ in 0..3 {
            let o = b.order(client(2), now);
            assert_eq!(o[0], e[1]);
            assert_eq!(o.len(), 3);
        }
        b.connected(client(2), e[1], now);
        b.connected(client(2), e[1], now);
        assert_eq!(b.order(client(2), now)[0], e[2]);
        b.released(e[0]);
        b.released(e[0]);
        assert_eq!(b.order(client(2), now)[0], e[0]);
        assert_eq!(b.active(e[0]), 0);
        assert_eq!(b.active(e[1]), 2);
    }

    #[test]
    fn random_spreads() {
        let mut b = Balancer::new(Algorithm::Random);
        b.set_endpoints(eps(4), None);
        let mut counts: HashMap<SocketAddr, usize> = HashMap::new();
        let now = Instant::now();
        for _ in 0..4000 {
            let o = b.order(client(2), now);
            assert_eq!(o.len(), 4);
            *counts.entry(o[0]).or_default() += 1;
        }
        assert_eq!(counts.len(), 4);
        for (ep, c) in counts {
            assert!((700..1300).contains(&c), "{ep}: {c}");
        }
    }

    #[test]
    fn affinity_sticks_until_timeout_and_retries_rebind() {
        let mut b = Balancer::new(Algorithm::RoundRobin);
        b.set_endpoints(eps(3), Some(Duration::from_secs(10)));
        let e = eps(3);
        let t0 = Instant::now();
        let first = b.order(client(2), t0)[0];
        b.connected(client(2), first, t0);
        for s in 1..5 {
            assert_eq!(b.order(client(2), t0 + Duration::from_secs(s))[0], first);
        }
        // The chosen endpoint failed, the retry connected elsewhere: that one sticks now.
        let o = b.order(client(2), t0);
        b.connected(client(2), o[1], t0);
        assert_eq!(b.order(client(2), t0)[0], o[1]);
        // Expired: the algorithm chooses again.
        let later = t0 + Duration::from_secs(11);
        let firsts: Vec<_> = (0..3).map(|_| b.order(client(2), later)[0]).collect();
        assert_eq!(firsts.len(), 3);
        assert!(e.iter().all(|x| firsts.contains(x)));
        // The sticky endpoint went away: chosen anew.
        b.connected(client(3), e[2], t0);
        b.set_endpoints(eps(2), Some(Duration::from_secs(10)));
        assert_ne!(b.order(client(3), t0)[0], e[2]);
    }

    #[test]
    fn algorithm_parses() {
        assert_eq!("random".parse::<Algorithm>(), Ok(Algorithm::Random));
        assert_eq!(
            "least-connections".parse::<Algorithm>(),
            Ok(Algorithm::LeastConnections)
        );
        assert_eq!("".parse::<Algorithm>(), Ok(Algorithm::RoundRobin));
        assert!("wrr".parse::<Algorithm>().is_err());
    }

    #[test]
    fn renders_redirects_and_rejects() {
        let sp = |name: &str, ip: &str, protocol: Protocol, node_port: u16| ServicePort {
            id: ServicePortName {
                namespace: "d".into(),
                name: name.into(),
                port: String::new(),
                protocol,
            },
            cluster_ips: vec![ip.parse().unwrap()],
            port: 80,
            protocol,
            node_port,
            external_ips: vec![],
            load_balancer_ips: vec![],
            load_balancer_source_ranges: vec![],
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            health_check_node_port: 0,
        };
        let out = render(
            &[
                Redirect {
                    service: sp("a", "10.97.1.1", Protocol::Tcp, 30080),
                    listener: Some(40001),
                },
                Redirect {
                    service: sp("b", "10.97.1.2", Protocol::Udp, 0),
                    listener: Some(40002),
                },
                Redirect {
                    service: sp("c", "10.97.1.3", Protocol::Tcp, 30081),
                    listener: None,
                },
            ],
            &["198.51.100.1".parse().unwrap()],
        );
        assert!(out.starts_with("table ip svcnet-userspace {}\ndelete table ip svcnet-userspace\n"));
        assert!(out
            .contains("elements = { 10.97.1.1 . tcp . 80 : 40001, 10.97.1.2 . udp . 80 : 40002 }"));
        assert!(out.contains("elements = { tcp . 30080 : 40001 }"));
        assert!(out.contains("elements = { 10.97.1.3 . tcp . 80 }"));
        assert!(out.contains("elements = { tcp . 30081 }"));
        assert!(out.contains("elements = { 198.51.100.1 }"));
        assert!(out.contains("ip daddr @nodeport-ips meta l4proto { tcp, udp } redirect"));
        assert!(!out.contains("fw-0"), "no source ranges, no firewall chain");

        // loadBalancerSourceRanges: a chain per Service port, reached through `firewall-ips`.
        let mut lb = sp("lb", "10.97.1.4", Protocol::Tcp, 30082);
        lb.load_balancer_ips = vec!["172.28.0.200".parse().unwrap()];
        lb.load_balancer_source_ranges = vec!["10.0.0.0/8".parse().unwrap()];
        let out = render(
            &[Redirect {
                service: lb,
                listener: Some(40003),
            }],
            &["198.51.100.1".parse().unwrap()],
        );
        assert!(out.contains("elements = { 172.28.0.200 . tcp . 80 : goto fw-0 }"));
        assert!(out.contains("chain fw-0 {\n\t\tip saddr != { 10.0.0.0/8 } drop\n\t}"));
        assert!(out.contains("type filter hook prerouting priority -110"));
    }

    /// The rendered table loads, firewall and all.
    #[test]
    fn nft_accepts_the_table() {
        let Some(scratch) = crate::nftables::tests::Scratch::new("userspace") else {
            return;
        };
        let mut lb = ServicePort::new(
            ServicePortName {
                namespace: "d".into(),
                name: "lb".into(),
                port: String::new(),
                protocol: Protocol::Tcp,
            },
            "10.97.1.4".parse().unwrap(),
            80,
        );
        lb.load_balancer_ips = vec!["172.28.0.200".parse().unwrap()];
        lb.load_balancer_source_ranges = vec!["198.51.100.0/24".parse().unwrap()];
        let out = render(
            &[Redirect {
                service: lb,
                listener: Some(40003),
            }],
            &["198.51.100.1".parse().unwrap()],
        );
        nftables::check(Some(&scratch.0), &out).unwrap();
        assert!(out.contains("ip saddr != { 172.28.0.200, 198.51.100.0/24 } drop"));
    }
}
