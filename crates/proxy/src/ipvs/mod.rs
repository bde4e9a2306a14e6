//! kube-proxy's IPVS mode, rendered from the model: the virtual servers it programs, as
//! `ipvsadm-restore` input ([`render`]), the addresses it binds to the `kube-ipvs0` dummy
//! interface ([`render_dummy_addresses`]), and an `ipvsadm -Ln` style listing ([`list`]) of
//! what IPVS mode would program — for any proxy mode, to show a node's Services the way an
//! operator used to IPVS reads them.
//!
//! **Rendered and unit-tested only**: the kernel svcnet runs on has no IPVS (`ip_vs`), so
//! nothing here is ever loaded; there is no `apply`. [`kernel`] says whether a kernel has it,
//! for `--proxy-mode ipvs`'s refusal.
//!
//! What kube-proxy's IPVS mode programs, and what of it is rendered here:
//!
//! - IPVS virtual servers ([`render`], [`virtual_servers`]): one per ClusterIP:port, per
//!   external IP:port, per load-balancer ingress IP:port and per node IP:nodePort, each with the
//!   configured scheduler ([`Scheduler`], `rr` by default) and, with `sessionAffinity:
//!   ClientIP`, the persistent flag and the affinity timeout (`-p <seconds>`, netmask /32 or
//!   /128). Real servers are the endpoints [`categorize`] picks: for the ClusterIP the Cluster
//!   or Local set by `internalTrafficPolicy`, for the external kinds by
//!   `externalTrafficPolicy`; all masqueraded (`-m`), weight 1. A Service port without usable
//!   endpoints still gets its virtual servers, with no real servers.
//! - The `kube-ipvs0` dummy interface ([`render_dummy_addresses`]): every ClusterIP, external IP
//!   and load-balancer IP bound as a /32 (/128), so that packets to them are delivered locally
//!   and reach IPVS at `INPUT`. Node IPs are not bound (they are the node's already).
//! - Not rendered here (listed for whoever wires IPVS mode up; kube-proxy builds them from the
//!   same model): the ipsets `KUBE-CLUSTER-IP` (`hash:ip,port`: every `ClusterIP,proto:port`),
//!   `KUBE-LOOP-BACK` (`hash:ip,port,ip`: `endpoint,proto:port,endpoint`, for hairpin
//!   masquerading), `KUBE-EXTERNAL-IP` / `KUBE-EXTERNAL-IP-LOCAL`, `KUBE-LOAD-BALANCER` /
//!   `-LOCAL` / `-FW` / `-SOURCE-IP` / `-SOURCE-CIDR` (`loadBalancerSourceRanges`),
//!   `KUBE-NODE-PORT-TCP` / `-UDP` and their `-LOCAL-` variants (`bitmap:port`),
//!   `KUBE-NODE-PORT-SCTP-HASH` / `-LOCAL-SCTP-HASH`, `KUBE-HEALTH-CHECK-NODE-PORT`, and
//!   (recent releases) `KUBE-IPVS-IPS`; and the iptables rules matching them: nat
//!   `KUBE-SERVICES` (`-m set --match-set KUBE-CLUSTER-IP dst,dst` → `KUBE-MARK-MASQ` for
//!   sources outside the cluster CIDR, then `ACCEPT`), `KUBE-NODE-PORT`, `KUBE-LOAD-BALANCER`,
//!   `KUBE-FIREWALL`, `KUBE-POSTROUTING` (masquerade by mark and `KUBE-LOOP-BACK`),
//!   `KUBE-MARK-MASQ`; filter `KUBE-FORWARD`, `KUBE-NODE-PORT`, `KUBE-PROXY-FIREWALL`,
//!   `KUBE-IPVS-FILTER`. Plus the sysctls `net.ipv4.vs.conntrack=1`,
//!   `net.ipv4.vs.expire_nodest_conn=1`, `net.ipv4.vs.expire_quiescent_template=1` and
//!   `net.ipv4.ip_forward=1`.
//!
//! Order: virtual servers and real servers come in the order `ipvsadm -Ln` / `ipvsadm-save -n`
//! print them (libipvs's `ipvs_cmp_services` / `ipvs_cmp_dests` under glibc's merge-sort
//! `qsort`): address family, protocol (TCP, UDP, SCTP by protocol number), address, port. The
//! address is compared as libipvs does, `(int)(ntohl(a) - ntohl(b))`, i.e. modulo 2³², which is
//! why real listings put `172.17.0.1:30080` and `192.168.1.10:30080` *before* `10.96.0.1:443`
//! (`0xC0A8… - 0x0A60…` is negative as an `int`). When a set of addresses spans more than half
//! the address space that comparison is not an order at all and ipvsadm's output depends on the
//! kernel's hash-table order; we then print the (deterministic) result of the same merge sort
//! over the addresses in numeric order.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::conntrack;
use crate::model::{categorize, Endpoint, Protocol, ServicePort, State};

pub mod kernel;

/// The IPVS schedulers kube-proxy accepts for `--ipvs-scheduler`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheduler {
    /// `rr` (kube-proxy's default).
    #[default]
    RoundRobin,
    /// `wrr`.
    WeightedRoundRobin,
    /// `lc`.
    LeastConnection,
    /// `wlc`.
    WeightedLeastConnection,
    /// `lblc`.
    LocalityBasedLeastConnection,
    /// `lblcr`.
    LocalityBasedLeastConnectionWithReplication,
    /// `sh`.
    SourceHashing,
    /// `dh`.
    DestinationHashing,
    /// `sed`.
    ShortestExpectedDelay,
    /// `nq`.
    NeverQueue,
    /// `mh`.
    MaglevHashing,
}

impl Scheduler {
    pub const ALL: [Scheduler; 11] = [
        Scheduler::RoundRobin,
        Scheduler::WeightedRoundRobin,
        Scheduler::LeastConnection,
        Scheduler::WeightedLeastConnection,
        Scheduler::LocalityBasedLeastConnection,
        Scheduler::LocalityBasedLeastConnectionWithReplication,
        Scheduler::SourceHashing,
        Scheduler::DestinationHashing,
        Scheduler::ShortestExpectedDelay,
        Scheduler::NeverQueue,
        Scheduler::MaglevHashing,
    ];

    /// The name ipvsadm and the kernel use (`-s rr`).
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::RoundRobin => "rr",
            Scheduler::WeightedRoundRobin => "wrr",
            Scheduler::LeastConnection => "lc",
            Scheduler::WeightedLeastConnection => "wlc",
            Scheduler::LocalityBasedLeastConnection => "lblc",
            Scheduler::LocalityBasedLeastConnectionWithReplication => "lblcr",
            Scheduler::SourceHashing => "sh",
            Scheduler::DestinationHashing => "dh",
            Scheduler::ShortestExpectedDelay => "sed",
            Scheduler::NeverQueue => "nq",
            Scheduler::MaglevHashing => "mh",
        }
    }
}

impl std::fmt::Display for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown IPVS scheduler `{0}`")]
pub struct UnknownScheduler(pub String);

impl std::str::FromStr for Scheduler {
    type Err = UnknownScheduler;

    /// By ipvsadm's name; "" is kube-proxy's default, `rr`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(Scheduler::default());
        }
        Scheduler::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| UnknownScheduler(s.to_string()))
    }
}

pub use crate::model::NodeInfo;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub scheduler: Scheduler,
}

/// The dummy interface kube-proxy binds Service addresses to.
pub const DUMMY_INTERFACE: &str = "kube-ipvs0";

/// One IPVS virtual server and its real servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServer {
    pub protocol: Protocol,
    pub address: IpAddr,
    pub port: u16,
    /// Session-affinity timeout in seconds (IPVS persistence), if any.
    pub persistent: Option<u32>,
    /// Endpoint address and port; forwarding is always masquerading, weight 1.
    pub real_servers: Vec<(IpAddr, u16)>,
}

/// The virtual servers kube-proxy's IPVS mode programs for `state` on `node`, in ipvsadm's
/// listing order (see the module doc); duplicates (the same protocol, address and port
/// claimed twice) are kept once, first Service port (in the model's order) first.
pub fn virtual_servers(state: &State, node: &NodeInfo) -> Vec<VirtualServer> {
    let mut out: Vec<VirtualServer> = Vec::new();
    let mut seen: BTreeSet<(Protocol, IpAddr, u16)> = BTreeSet::new();
    for (id, sp) in &state.services {
        if sp.cluster_ips.is_empty() {
            continue;
        }
        let eps = state.endpoints.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let (cluster, local) = categorize(sp, eps, &node.name, node.zone.as_deref());
        let internal = if sp.internal_local { &local } else { &cluster };
        let external = if sp.external_local { &local } else { &cluster };
        // A family's proxier only sees a Service with a ClusterIP of its family.
        let family_ok = |ip: &&IpAddr| sp.cluster_ips.iter().any(|c| c.is_ipv4() == ip.is_ipv4());
        let mut add = |address: IpAddr, port: u16, eps: &[&Endpoint]| {
            if seen.insert((sp.protocol, address, port)) {
                out.push(virtual_server(sp, address, port, eps));
            }
        };
        for ip in &sp.cluster_ips {
            add(*ip, sp.port, internal);
        }
        for ip in sp
            .external_ips
            .iter()
            .chain(&sp.load_balancer_ips)
            .filter(family_ok)
        {
            add(*ip, sp.port, external);
        }
        if sp.node_port != 0 {
            for ip in node.node_ips.iter().filter(family_ok) {
                add(*ip, sp.node_port, external);
            }
        }
    }
    out.sort_by(|a, b| {
        (a.address.is_ipv6(), a.protocol, a.address, a.port).cmp(&(
            b.address.is_ipv6(),
            b.protocol,
            b.address,
            b.port,
        ))
    });
    glibc_msort(&mut out, &cmp_services);
    out
}

fn virtual_server(
    sp: &ServicePort,
    address: IpAddr,
    port: u16,
    eps: &[&Endpoint],
) -> VirtualServer {
    let mut real_servers: Vec<(IpAddr, u16)> = Vec::new();
    for e in eps {
        if e.ip.is_ipv4() == address.is_ipv4() && !real_servers.contains(&(e.ip, e.port)) {
            real_servers.push((e.ip, e.port));
        }
    }
    real_servers.sort();
    glibc_msort(&mut real_servers, &cmp_dests);
    VirtualServer {
        protocol: sp.protocol,
        address,
        port,
        persistent: sp.affinity_timeout,
        real_servers,
    }
}

/// `addr:port`, `[addr]:port` for IPv6, as ipvsadm spells them.
fn addr_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// `AF_INET` / `AF_INET6` as Linux numbers them.
fn af(ip: &IpAddr) -> i32 {
    if ip.is_ipv4() {
        2
    } else {
        10
    }
}

/// `IPPROTO_*`.
fn proto_number(p: Protocol) -> i32 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

/// libipvs's address comparison: `(int)(ntohl(a) - ntohl(b))`, word by word for IPv6.
fn cmp_addr(a: &IpAddr, b: &IpAddr) -> i32 {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(*a).wrapping_sub(u32::from(*b)) as i32,
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let (a, b) = (a.octets(), b.octets());
            for i in 0..4 {
                let w = |o: &[u8; 16]| {
                    u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
                };
                let r = w(&a).wrapping_sub(w(&b)) as i32;
                if r != 0 {
                    return r;
                }
            }
            0
        }
        _ => af(a) - af(b),
    }
}

/// libipvs's `ipvs_cmp_services` (no firewall-mark services here).
fn cmp_services(a: &VirtualServer, b: &VirtualServer) -> i32 {
    let r = af(&a.address) - af(&b.address);
    if r != 0 {
        return r;
    }
    let r = proto_number(a.protocol) - proto_number(b.protocol);
    if r != 0 {
        return r;
    }
    let r = cmp_addr(&a.address, &b.address);
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

/// libipvs's `ipvs_cmp_dests`.
fn cmp_dests(a: &(IpAddr, u16), b: &(IpAddr, u16)) -> i32 {
    let r = cmp_addr(&a.0, &b.0);
    if r != 0 {
        return r;
    }
    i32::from(a.1) - i32::from(b.1)
}

/// glibc's `qsort` (`msort_with_tmp`): top-down merge sort, the left run winning ties. Used
/// instead of `sort_by` because libipvs's comparison is not always a total order.
fn glibc_msort<T: Clone>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    glibc_msort(&mut v[..n1], cmp);
    glibc_msort(&mut v[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i].clone());
            i += 1;
        } else {
            merged.push(v[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    merged.extend_from_slice(&v[j..]);
    v.clone_from_slice(&merged);
}

/// `ipvsadm-restore` input for kube-proxy's IPVS mode on `node`: per virtual server
/// `-A -t|-u|--sctp-service ADDR:PORT -s SCHED [-p TIMEOUT]`, then per real server
/// `-a … -r ADDR:PORT -m -w 1` — in `ipvsadm-save -n`'s spelling and order, so a table loaded
/// from it saves back identically. It adds only: loading it over existing virtual servers
/// needs `ipvsadm -C` (or a diff) first.
pub fn render(state: &State, node: &NodeInfo, cfg: &Config) -> String {
    let sched = cfg.scheduler.name();
    let mut out = String::new();
    for vs in virtual_servers(state, node) {
        let flag = match vs.protocol {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Sctp => "--sctp-service",
        };
        let svc = format!("{flag} {}", addr_port(vs.address, vs.port));
        let _ = write!(out, "-A {svc} -s {sched}");
        if let Some(t) = vs.persistent {
            let _ = write!(out, " -p {t}");
        }
        out.push('\n');
        for (ip, port) in &vs.real_servers {
            let _ = writeln!(out, "-a {svc} -r {} -m -w 1", addr_port(*ip, *port));
        }
    }
    out
}

/// The `ip addr add <vip>/32 dev kube-ipvs0` (`/128` for IPv6) lines for every address
/// kube-proxy's IPVS mode binds to its dummy interface: ClusterIPs, external IPs and
/// load-balancer IPs, once each, in address order.
pub fn render_dummy_addresses(state: &State) -> Vec<String> {
    let mut ips: BTreeSet<IpAddr> = BTreeSet::new();
    for sp in state.services.values() {
        let family_ok = |ip: &&IpAddr| sp.cluster_ips.iter().any(|c| c.is_ipv4() == ip.is_ipv4());
        ips.extend(sp.cluster_ips.iter());
        ips.extend(
            sp.external_ips
                .iter()
                .chain(&sp.load_balancer_ips)
                .filter(family_ok),
        );
    }
    ips.into_iter()
        .map(|ip| {
            let len = if ip.is_ipv4() { 32 } else { 128 };
            format!("ip addr add {ip}/{len} dev {DUMMY_INTERFACE}")
        })
        .collect()
}

/// A virtual server's connections per real server, as IPVS counts them in `ipvsadm -Ln`'s
/// ActiveConn (established TCP and SCTP connections) and InActConn (every other state, and UDP)
/// columns — here from the conntrack table, which every proxy mode's DNAT goes through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connections(HashMap<Pair, (u32, u32)>);

/// A connection's protocol, virtual server (address, port) and real server (address, port).
type Pair = (Protocol, (IpAddr, u16), (IpAddr, u16));

impl Connections {
    /// The counts of `entries`: a connection belongs to the virtual server it was sent to
    /// (original destination) and the real server that answers it (reply source).
    pub fn from_conntrack(entries: &[conntrack::Entry]) -> Connections {
        let mut m: HashMap<_, (u32, u32)> = HashMap::new();
        for e in entries {
            let c = m.entry((e.protocol, e.orig_dst, e.reply_src)).or_default();
            if e.active() {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
        Connections(m)
    }

    /// (ActiveConn, InActConn) of real server `rs` of `vs`.
    pub fn of(&self, vs: &VirtualServer, rs: (IpAddr, u16)) -> (u32, u32) {
        self.0
            .get(&(vs.protocol, (vs.address, vs.port), rs))
            .copied()
            .unwrap_or_default()
    }
}

/// What `ipvsadm -Ln` would print on `node` had kube-proxy's IPVS mode programmed `state` with
/// scheduler `scheduler` (e.g. "rr") — usable whatever mode actually carries the traffic, with
/// each real server's live connections from `conns`.
///
/// The layout is ipvsadm's (`%s  %s %s` per virtual server, `  -> %-28s %-7s %-6d %-10u
/// %-10u` per real server, ` persistent N` for session affinity), except that trailing
/// blanks are trimmed from each line (ipvsadm pads the last column, `InActConn`, to 10).
pub fn list(state: &State, node: &NodeInfo, scheduler: &str, conns: &Connections) -> String {
    let mut out = String::from(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    );
    for vs in virtual_servers(state, node) {
        let prot = match vs.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        };
        let _ = write!(
            out,
            "{prot}  {} {scheduler}",
            addr_port(vs.address, vs.port)
        );
        if let Some(t) = vs.persistent {
            let _ = write!(out, " persistent {t}");
        }
        out.push('\n');
        for (ip, port) in &vs.real_servers {
            let (active, inactive) = conns.of(&vs, (*ip, *port));
            let line = format!(
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                addr_port(*ip, *port),
                "Masq",
                1,
                active,
                inactive
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

#[cfg(test)]
mod tests;
