//! The nftables backend: the [`State`] rendered as an `nft -f` script (kube-proxy's nftables
//! mode, IPv4), applied in one transaction inside a network namespace.
//!
//! Layout (one table, `ip svcnet`), chosen for load and change speed (see NOTES.md and
//! bench/RESULTS.md: the kernel pays per named set, per rule bound to a set for every element
//! added to it, and nft reads every chain back before each transaction, so the common case has
//! no per-Service objects at all):
//!
//! - nat `prerouting`/`output` (priority -100) jump to `services`, which sets the conntrack mark
//!   to the Service port's number (`service-ids` / `nodeport-ids`) and then looks the
//!   destination up in the verdict maps `service-ips` (ClusterIPs, external IPs, load-balancer
//!   IPs) and, for packets to the node's own addresses, `service-nodeports`.
//! - Shared dispatch (a Service port without sessionAffinity or Local traffic policies): the
//!   verdict is `goto cluster-N` (masquerade mark unless from the cluster CIDR) or `goto
//!   external-N` (masquerade mark), both continuing to `pick-N`, which DNATs with
//!   `ct mark . numgen inc mod N map @endpoints` — one shared map from (Service port number,
//!   index) to endpoint address . port, bound by three rules per endpoint count N in use. A
//!   change of endpoints is a change of elements only. The numbers are kept in a [`Numbering`]
//!   between syncs.
//! - Own dispatch (sessionAffinity, or a Local traffic policy) per Service port `X` (names derived
//!   from its [`ServicePortName`]): chain `svc-X` (ClusterIP traffic), chain `ext-X` (NodePort /
//!   external / LB traffic, by externalTrafficPolicy), and named maps of endpoints: `eps-X`
//!   (`numgen` index → address . port), or with sessionAffinity `epa-X` + `aff-X` (client →
//!   endpoint index, dynamic with per-element timeout; the index is carried in the conntrack
//!   mark while the endpoint is picked). `lep-X`, `lepa-X`, `laff-X` are the same for the
//!   node-local endpoints (traffic policy Local).
//! - `fw-X` (loadBalancerSourceRanges) per Service port that has them.
//! - filter (priority -110, before DNAT): `no-endpoint-services` / `no-endpoint-nodeports` reject
//!   (tcp reset / icmp port-unreachable) or drop traffic to Services without usable endpoints;
//!   `firewall-ips` enforces source ranges; `cluster-ips` rejects ClusterIP ports that are not
//!   Service ports.
//! - nat `postrouting` (priority 100): masquerade what was marked `0x4000`, and hairpin
//!   connections (an endpoint on this node reaching itself through its Service; `hairpin` holds
//!   `E . E` per such endpoint).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use crate::model::{categorize, Endpoint, ServicePort, ServicePortName, State};

mod elements;

use elements::{element_id, Dest, Elem, NodePort, Verdict};

pub const TABLE: &str = "svcnet";
/// The table's family and name, as nft commands spell it.
pub const FAMILY_TABLE: &str = "ip svcnet";
/// The packet-mark bit asking `masquerading` to masquerade.
pub const MASQ_MARK: &str = "0x4000";

// Shared sets and maps.
pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub const FIREWALL_IPS: &str = "firewall-ips";
pub const CLUSTER_IPS: &str = "cluster-ips";
pub const NODEPORT_IPS: &str = "nodeport-ips";
pub const HAIRPIN: &str = "hairpin";
pub const ENDPOINTS: &str = "endpoints";
pub const SERVICE_IDS: &str = "service-ids";
pub const NODEPORT_IDS: &str = "nodeport-ids";

// Chains.
pub const NAT_PREROUTING: &str = "nat-prerouting";
pub const NAT_OUTPUT: &str = "nat-output";
pub const NAT_POSTROUTING: &str = "nat-postrouting";
pub const FILTER_PREROUTING: &str = "filter-prerouting";
pub const FILTER_INPUT: &str = "filter-input";
pub const FILTER_FORWARD: &str = "filter-forward";
pub const FILTER_OUTPUT: &str = "filter-output";
pub const FILTER_OUTPUT_POST_DNAT: &str = "filter-output-post-dnat";
pub const SERVICES: &str = "services";
pub const MASQUERADING: &str = "masquerading";
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
pub const REJECT_CHAIN: &str = "reject-chain";
pub const FIREWALL_CHECK: &str = "firewall-check";
pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
pub const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";

// Shared dispatch chains, one of each per endpoint count N in use (`pick-3`, ...).
pub const CLUSTER_DISPATCH: &str = "cluster-";
pub const EXTERNAL_DISPATCH: &str = "external-";
pub const PICK: &str = "pick-";

// Per-Service-port object name prefixes.
pub const SVC_CHAIN: &str = "svc-";
pub const EXT_CHAIN: &str = "ext-";
pub const FW_CHAIN: &str = "fw-";
pub const EPS_MAP: &str = "eps-";
pub const EPA_MAP: &str = "epa-";
pub const AFF_MAP: &str = "aff-";
pub const LOCAL_EPS_MAP: &str = "lep-";
pub const LOCAL_EPA_MAP: &str = "lepa-";
pub const LOCAL_AFF_MAP: &str = "laff-";

const EPS_DECL: &str = "typeof numgen inc mod 1 : ip daddr . th dport;";
const EPA_DECL: &str = "type mark : ipv4_addr . inet_service;";
const AFF_DECL: &str = "type ipv4_addr : mark; flags dynamic,timeout;";
const VERDICT_KEY3: &str = "type ipv4_addr . inet_proto . inet_service : verdict;";
const VERDICT_KEY2: &str = "type inet_proto . inet_service : verdict;";
/// (`tcp dport` rather than `th dport`: nft, reading a `th` map back, refuses it in a `tcp`
/// rule; the data is the same two bytes for every protocol.)
const ENDPOINTS_DECL: &str = "typeof ct mark . numgen inc mod 1 : ip daddr . tcp dport;";
const IDS_KEY3: &str = "type ipv4_addr . inet_proto . inet_service : mark;";
const IDS_KEY2: &str = "type inet_proto . inet_service : mark;";
/// Shared sets with at least this many elements are declared with a `size` (4x, a power of two).
const SIZED_FROM: usize = 4096;

pub use crate::model::NodeInfo;

/// Proxy settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The cluster's pod CIDR: traffic from outside it to a ClusterIP is masqueraded (always,
    /// when None).
    pub cluster_cidr: Option<ipnet::IpNet>,
    /// `numgen random` instead of round-robin `numgen inc`.
    pub random: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nft -f failed{}: {stderr}", netns.as_deref().map(|n| format!(" in netns {n}")).unwrap_or_default())]
    Nft {
        netns: Option<String>,
        stderr: String,
    },
    #[error("running nft: {0}")]
    Io(#[from] std::io::Error),
    #[error("loading elements{}: {error}", netns.as_deref().map(|n| format!(" in netns {n}")).unwrap_or_default())]
    Netlink {
        netns: Option<String>,
        error: String,
    },
}

/// Where a backend's scripts go: a libnftables context kept open inside the node's namespace
/// (about 0.3 ms for a small change), or `nft -f` (about 20 ms: a process, a fresh read of the
/// ruleset, a socket close that waits for RCU) when the library cannot be loaded; and a netlink
/// socket for the shared elements of full syncs.
pub struct Session {
    netns: Option<String>,
    lib: Option<svcnet_libnftables::Nft>,
    netlink: Option<svcnet_nfnetlink::Socket>,
}

impl Session {
    pub fn open(netns: Option<&str>) -> Session {
        let lib = match svcnet_libnftables::Nft::open(netns) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::info!(error = %e, "using the nft command");
                None
            }
        };
        Session {
            netns: netns.map(str::to_string),
            lib,
            netlink: None,
        }
    }

    /// Apply `script` in one transaction (as [`apply`]).
    pub fn apply(&self, script: &str) -> Result<(), Error> {
        match &self.lib {
            Some(lib) => lib.run(script).map_err(|e| Error::Nft {
                netns: self.netns.clone(),
                stderr: e.to_string(),
            }),
            None => apply(self.netns.as_deref(), script),
        }
    }

    fn netlink_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Netlink {
            netns: self.netns.clone(),
            error: e.to_string(),
        }
    }

    /// The netlink socket, opened inside the namespace on first use.
    fn netlink(&mut self) -> Result<&mut svcnet_nfnetlink::Socket, Error> {
        if self.netlink.is_none() {
            let socket = match &self.netns {
                Some(ns) => svcnet_netns::NetNs::open(ns)
                    .and_then(|ns| ns.run(svcnet_nfnetlink::Socket::open))
                    .map_err(|e| self.netlink_error(e))?,
                None => svcnet_nfnetlink::Socket::open(),
            };
            self.netlink = Some(socket.map_err(|e| self.netlink_error(e))?);
        }
        Ok(self.netlink.as_mut().expect("opened above"))
    }

    /// Apply a full sync as three transactions, so that nft parses only the structure and the
    /// shared elements (nearly all of a large table) go to the kernel already encoded:
    ///
    /// 1. the structure (nft): when the table exists, its chains are emptied and refilled and
    ///    the Service ports' own maps re-created, all in one transaction, while the shared maps
    ///    keep serving their elements; otherwise the table is created (replaced if it cannot be
    ///    updated in place: a set of another type, say);
    /// 2. the shared maps and sets (netlink): each flushed and refilled, in one transaction
    ///    (encoded from the typed elements, nothing parsed);
    /// 3. chains no longer used are deleted (nft), now that no element names them.
    ///
    /// Between 1 and 2 the old elements meet the new chains; a Service port whose own chain
    /// went away in 1 (deleted, or moved to the shared dispatch) has no DNAT for that moment.
    /// With the table unchanged, every step rewrites what was there and nothing is missed.
    pub fn apply_full_sync(&mut self, full: FullSync) -> Result<FullSyncKind, Error> {
        let objects = self
            .netlink()?
            .objects(svcnet_nfnetlink::FAMILY_IPV4, TABLE)
            .map_err(|e| self.netlink_error(e))?;
        if !objects.chains.is_empty() || !objects.sets.is_empty() {
            match self.full_sync_steps(&full, Some(&objects)) {
                Ok(()) => return Ok(FullSyncKind::InPlace),
                Err(e) => {
                    tracing::info!(error = %e, "updating the table in place failed; replacing it")
                }
            }
        }
        self.full_sync_steps(&full, None)?;
        Ok(FullSyncKind::Replaced)
    }

    /// The steps of [`Session::apply_full_sync`] on the table `existing` lists (None: replace
    /// the table).
    fn full_sync_steps(
        &mut self,
        full: &FullSync,
        existing: Option<&svcnet_nfnetlink::Objects>,
    ) -> Result<(), Error> {
        let mut script = String::new();
        let mut stale = Vec::new();
        match existing {
            None => {
                let _ = writeln!(script, "table {FAMILY_TABLE} {{}}");
                let _ = writeln!(script, "delete table {FAMILY_TABLE}");
            }
            Some(o) => {
                let _ = writeln!(script, "add table {FAMILY_TABLE}");
                for c in &o.chains {
                    let used = full.chains.contains(c);
                    // Stale shared dispatch chains keep their rules until no element names them.
                    let dispatch = [CLUSTER_DISPATCH, EXTERNAL_DISPATCH, PICK].iter().any(|p| {
                        c.strip_prefix(p)
                            .is_some_and(|n| n.parse::<usize>().is_ok())
                    });
                    if used || !dispatch {
                        let _ = writeln!(script, "flush chain {FAMILY_TABLE} {c}");
                    }
                    if !used {
                        stale.push(c.as_str());
                    }
                }
                for set in &o.sets {
                    let anonymous = set.flags & svcnet_nfnetlink::SET_ANONYMOUS != 0;
                    if anonymous {
                        continue;
                    }
                    if set.name == NODEPORT_IPS {
                        let _ = writeln!(script, "flush set {FAMILY_TABLE} {NODEPORT_IPS}");
                    } else if full.affinity.contains(&set.name) {
                        // Clients keep their endpoints across resyncs, as with kube-proxy.
                    } else if !SHARED_SETS.contains(&set.name.as_str()) {
                        // A Service port's own map: re-created (or gone).
                        let _ = writeln!(script, "delete map {FAMILY_TABLE} {}", set.name);
                    }
                }
            }
        }
        script.push_str(&full.structure);
        if script.len() > IN_PROCESS_LIMIT {
            // Many Service ports with chains of their own: nft's parse of them (hundreds of MiB
            // for tens of thousands of chains) happens in a child and leaves this heap alone.
            apply(self.netns.as_deref(), &script)?;
        } else {
            self.apply(&script)?;
        }
        drop(script);

        let batch = shared_batch(&full.shared);
        self.netlink()?
            .commit(&batch)
            .map_err(|e| self.netlink_error(e))?;

        if !stale.is_empty() {
            let mut script = String::new();
            for c in &stale {
                let _ = writeln!(script, "flush chain {FAMILY_TABLE} {c}");
            }
            for c in &stale {
                let _ = writeln!(script, "delete chain {FAMILY_TABLE} {c}");
            }
            self.apply(&script)?;
        }
        Ok(())
    }
}

/// A batch that flushes every shared set and fills it with its elements of `shared`. (Sending
/// only the differences from what the kernel lists was measured slower: the kernel resumes a
/// set's dump from its first element for every 32 KiB message, so at 10k Services × 10
/// endpoints listing the 100k-element `endpoints` map alone took 0.87 s and the whole resync
/// 1.56 s, against 0.88 s to flush and refill all 230k shared elements.)
fn shared_batch(shared: &[(&'static str, Vec<Elem>)]) -> svcnet_nfnetlink::Finished {
    let mut batch = svcnet_nfnetlink::Batch::new(svcnet_nfnetlink::FAMILY_IPV4, TABLE);
    let (mut key, mut data) = (Vec::with_capacity(16), Vec::with_capacity(16));
    for (name, elems) in shared {
        // (A no-op on a set just created.)
        batch.flush_set(name);
        for e in elems {
            let d = e.encode(&mut key, &mut data);
            batch.add_element(name, &key, d);
        }
    }
    batch.finish()
}

/// How [`Session::apply_full_sync`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullSyncKind {
    /// The table was there and was updated in place.
    InPlace,
    /// The table was created, or replaced.
    Replaced,
}

/// Structure scripts longer than this go to `nft -f` in a child rather than to the library.
const IN_PROCESS_LIMIT: usize = 1 << 20;

/// The shared maps and sets: filled by [`Session::apply_full_sync`] over netlink, kept (with
/// their elements) when the table is updated in place.
const SHARED_SETS: [&str; 10] = [
    ENDPOINTS,
    SERVICE_IDS,
    SERVICE_IPS,
    NODEPORT_IDS,
    SERVICE_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    NO_ENDPOINT_NODEPORTS,
    FIREWALL_IPS,
    CLUSTER_IPS,
    HAIRPIN,
];

/// The part of per-service object names that identifies the Service port: `ns/name/proto[/port]`
/// (characters nft identifiers allow; a hash when too long).
pub fn service_key(id: &ServicePortName) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut key = format!(
        "{}/{}/{}",
        clean(&id.namespace),
        clean(&id.name),
        id.protocol.lower()
    );
    if !id.port.is_empty() {
        key.push('/');
        key.push_str(&clean(&id.port));
    }
    if key.len() > 200 {
        // FNV-1a of the full identity keeps long names unique and within nft's 256 bytes.
        let h = const_fnv1a_hash::fnv1a_hash_str_64(&format!(
            "{}/{}/{}/{}",
            id.namespace,
            id.name,
            id.protocol.lower(),
            id.port
        ));
        key = format!("{}/{:016x}", &key[..180], h);
    }
    key
}

fn v4(ip: &IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    }
}

fn v4_cidr(cfg: &Config) -> Option<ipnet::Ipv4Net> {
    match cfg.cluster_cidr {
        Some(ipnet::IpNet::V4(n)) => Some(n),
        _ => None,
    }
}

/// What the table holds beyond the [`State`] it was rendered from: the number each Service port
/// on the shared dispatch path is known by (its part of the `endpoints` key, carried in the
/// conntrack mark), the endpoint counts whose `pick-N` chains exist, and how many Service ports
/// put each shared element there (a ClusterIP of a multi-port Service, an endpoint's `hairpin`
/// entry), so that a partial sync touches only the changed Service ports. The backend keeps it
/// between syncs; a full sync keeps the numbers of the Service ports it still has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Numbering {
    ids: BTreeMap<ServicePortName, u32>,
    free: Vec<u32>,
    next: u32,
    dispatch: BTreeSet<usize>,
    /// Per shared element ([`element_id`]), how many Service ports put it there.
    refs: HashMap<u128, u32, foldhash::fast::RandomState>,
}

impl Numbering {
    #[cfg(test)]
    fn get(&self, id: &ServicePortName) -> Option<u32> {
        self.ids.get(id).copied()
    }

    fn assign(&mut self, id: &ServicePortName) -> u32 {
        if let Some(n) = self.ids.get(id) {
            return *n;
        }
        let n = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next
        });
        self.ids.insert(id.clone(), n);
        n
    }

    fn release(&mut self, id: &ServicePortName) {
        if let Some(n) = self.ids.remove(id) {
            self.free.push(n);
        }
    }
}

/// Whether `sp` uses the shared dispatch path (else it has chains and maps of its own).
fn shared_dispatch(sp: &ServicePort) -> bool {
    sp.affinity_timeout.is_none() && !sp.internal_local && !sp.external_local
}

/// Elements one Service port contributes to the shared maps and sets.
#[derive(Default)]
struct Shared {
    service_ips: Vec<Elem>,
    service_ids: Vec<Elem>,
    service_nodeports: Vec<Elem>,
    nodeport_ids: Vec<Elem>,
    no_endpoint_services: Vec<Elem>,
    no_endpoint_nodeports: Vec<Elem>,
    firewall_ips: Vec<Elem>,
    cluster_ips: Vec<Elem>,
    hairpin: Vec<Elem>,
    endpoints: Vec<Elem>,
}

impl Shared {
    fn extend(&mut self, o: Shared) {
        self.service_ips.extend(o.service_ips);
        self.service_ids.extend(o.service_ids);
        self.service_nodeports.extend(o.service_nodeports);
        self.nodeport_ids.extend(o.nodeport_ids);
        self.no_endpoint_services.extend(o.no_endpoint_services);
        self.no_endpoint_nodeports.extend(o.no_endpoint_nodeports);
        self.firewall_ips.extend(o.firewall_ips);
        self.cluster_ips.extend(o.cluster_ips);
        self.hairpin.extend(o.hairpin);
        self.endpoints.extend(o.endpoints);
    }

    /// The elements that another Service port may also contribute (all but `endpoints`, whose
    /// keys are unique), de-duplicated within this Service port.
    fn counted(&self) -> [(&'static str, Vec<&Elem>); 9] {
        fn set(v: &[Elem]) -> Vec<&Elem> {
            let mut v: Vec<&Elem> = v.iter().collect();
            v.sort_unstable();
            v.dedup();
            v
        }
        [
            (SERVICE_IDS, set(&self.service_ids)),
            (SERVICE_IPS, set(&self.service_ips)),
            (NODEPORT_IDS, set(&self.nodeport_ids)),
            (SERVICE_NODEPORTS, set(&self.service_nodeports)),
            (NO_ENDPOINT_SERVICES, set(&self.no_endpoint_services)),
            (NO_ENDPOINT_NODEPORTS, set(&self.no_endpoint_nodeports)),
            (FIREWALL_IPS, set(&self.firewall_ips)),
            (CLUSTER_IPS, set(&self.cluster_ips)),
            (HAIRPIN, set(&self.hairpin)),
        ]
    }

    /// `(name, elements)` of the maps and sets, elements sorted and de-duplicated.
    fn lists(self) -> Vec<(&'static str, Vec<Elem>)> {
        let sort = |mut v: Vec<Elem>| -> Vec<Elem> {
            v.sort_unstable();
            v.dedup();
            v
        };
        vec![
            // Unique keys already.
            (ENDPOINTS, self.endpoints),
            (SERVICE_IDS, sort(self.service_ids)),
            (SERVICE_IPS, sort(self.service_ips)),
            (NODEPORT_IDS, sort(self.nodeport_ids)),
            (SERVICE_NODEPORTS, sort(self.service_nodeports)),
            (NO_ENDPOINT_SERVICES, sort(self.no_endpoint_services)),
            (NO_ENDPOINT_NODEPORTS, sort(self.no_endpoint_nodeports)),
            (FIREWALL_IPS, sort(self.firewall_ips)),
            (CLUSTER_IPS, sort(self.cluster_ips)),
            (HAIRPIN, sort(self.hairpin)),
        ]
    }
}

/// What one Service port renders to.
struct Plan {
    /// Its own maps: `(name, declaration, elements)`.
    maps: Vec<(String, &'static str, Vec<String>)>,
    /// Its own chains: `(name, rules)`, in an order where a chain is defined before chains that
    /// jump to it.
    chains: Vec<(String, Vec<String>)>,
    /// The endpoint count of its shared dispatch (its `pick-N` chains must exist).
    dispatch: Option<usize>,
    shared: Shared,
}

/// Rules picking one of `eps` (non-empty, IPv4) through maps of the Service port's own,
/// recording those maps in `maps`.
fn dispatch(
    sp: &ServicePort,
    eps: &[&Endpoint],
    local: bool,
    key: &str,
    cfg: &Config,
    maps: &mut Vec<(String, &'static str, Vec<String>)>,
) -> Vec<String> {
    let proto = sp.protocol.lower();
    let n = eps.len();
    let gen = numgen(cfg);
    let elems = |fmt_key: &dyn Fn(usize) -> String| -> Vec<String> {
        eps.iter()
            .enumerate()
            .map(|(i, e)| format!("{} : {} . {}", fmt_key(i), e.ip, e.port))
            .collect()
    };
    match sp.affinity_timeout {
        None => {
            let m = format!("{}{key}", if local { LOCAL_EPS_MAP } else { EPS_MAP });
            let rule = format!("meta l4proto {proto} dnat ip to numgen {gen} mod {n} map @{m}");
            maps.push((m, EPS_DECL, elems(&|i| i.to_string())));
            vec![rule]
        }
        Some(timeout) => {
            let m = format!("{}{key}", if local { LOCAL_EPA_MAP } else { EPA_MAP });
            let aff = format!("{}{key}", if local { LOCAL_AFF_MAP } else { AFF_MAP });
            let mut rules = vec![
                format!("ct mark set numgen {gen} mod {n}"),
                format!("ct mark set ip saddr map @{aff}"),
            ];
            for i in 0..n {
                rules.push(format!(
                    "ct mark {i} update @{aff} {{ ip saddr timeout {timeout}s : {i} }}"
                ));
            }
            rules.push(format!("meta l4proto {proto} dnat ip to ct mark map @{m}"));
            maps.push((m, EPA_DECL, elems(&|i| i.to_string())));
            maps.push((aff, AFF_DECL, Vec::new()));
            rules
        }
    }
}

fn numgen(cfg: &Config) -> &'static str {
    if cfg.random {
        "random"
    } else {
        "inc"
    }
}

/// The masquerade rule of ClusterIP traffic: unless it comes from the cluster CIDR.
fn masquerade_unless_pods(cfg: &Config) -> String {
    match v4_cidr(cfg) {
        Some(c) => format!("ip saddr != {c} jump {MARK_FOR_MASQUERADE}"),
        None => format!("jump {MARK_FOR_MASQUERADE}"),
    }
}

/// The shared dispatch chains for endpoint count `n`: `(name, rules)`, `pick-N` first.
fn dispatch_chains(n: usize, cfg: &Config) -> Vec<(String, Vec<String>)> {
    let gen = numgen(cfg);
    let pick = format!("{PICK}{n}");
    let dnat = ["tcp", "udp", "sctp"]
        .iter()
        .map(|p| {
            format!("meta l4proto {p} dnat ip to ct mark . numgen {gen} mod {n} map @{ENDPOINTS}")
        })
        .collect();
    vec![
        (
            format!("{CLUSTER_DISPATCH}{n}"),
            vec![masquerade_unless_pods(cfg), format!("goto {pick}")],
        ),
        (
            format!("{EXTERNAL_DISPATCH}{n}"),
            vec![
                format!("jump {MARK_FOR_MASQUERADE}"),
                format!("goto {pick}"),
            ],
        ),
        (pick, dnat),
    ]
}

/// Where one destination of a Service port goes: a verdict, and its [`Numbering`] number on the
/// shared dispatch path.
type Target = (Verdict, Option<u32>);

/// How the elements of a key kind are made: `(key : verdict, key : number)`.
type ElemOf<K> = (fn(K, Verdict) -> Elem, fn(K, u32) -> Elem);

/// The elements of destination key `k` (a ClusterIP / external IP port, or a node port, whose
/// elements `verdict` and `number` make): `[verdicts, numbers, no-endpoint verdicts]` of its
/// kind get `k : verdict` and `k : number`, or, without a target, `k : no_endpoints`.
fn route<K: Copy>(
    k: K,
    (verdict, number): ElemOf<K>,
    target: Option<&Target>,
    no_endpoints: &Verdict,
    [verdicts, numbers, none]: [&mut Vec<Elem>; 3],
) {
    match target {
        Some((v, n)) => {
            verdicts.push(verdict(k, v.clone()));
            if let Some(n) = n {
                numbers.push(number(k, *n));
            }
        }
        None => none.push(verdict(k, no_endpoints.clone())),
    }
}

/// The rule that enforces `sp`'s loadBalancerSourceRanges on traffic to its load-balancer IPs
/// (None when it has neither): drop unless the source is in a range, or is one of the
/// load-balancer IPs while a range allows one of `node_ips` — the node reaching its own
/// load-balancer IP has that IP as source (kube-proxy's rule).
pub(crate) fn source_ranges_rule(sp: &ServicePort, node_ips: &[IpAddr]) -> Option<String> {
    let lb_ips: Vec<Ipv4Addr> = sp.load_balancer_ips.iter().filter_map(v4).collect();
    if lb_ips.is_empty() || sp.load_balancer_source_ranges.is_empty() {
        return None;
    }
    let v4_ranges: Vec<ipnet::Ipv4Net> = sp
        .load_balancer_source_ranges
        .iter()
        .filter_map(|r| match r {
            ipnet::IpNet::V4(n) => Some(n.trunc()),
            ipnet::IpNet::V6(_) => None,
        })
        .collect();
    let mut ranges: BTreeSet<String> = v4_ranges.iter().map(|n| n.to_string()).collect();
    if node_ips
        .iter()
        .filter_map(v4)
        .any(|ip| v4_ranges.iter().any(|n| n.contains(&ip)))
    {
        ranges.extend(lb_ips.iter().map(Ipv4Addr::to_string));
    }
    let ranges: Vec<String> = ranges.into_iter().collect();
    Some(if ranges.is_empty() {
        "drop".to_string()
    } else {
        format!("ip saddr != {{ {} }} drop", ranges.join(", "))
    })
}

/// The plan of `sp`; `number` is its [`Numbering`] number when it uses the shared dispatch.
fn plan(
    sp: &ServicePort,
    eps: &[Endpoint],
    node: &NodeInfo,
    cfg: &Config,
    number: Option<u32>,
) -> Plan {
    let key = service_key(&sp.id);
    let port = sp.port;
    let (cluster, local) = categorize(sp, eps, &node.name, node.zone.as_deref());
    fn only_v4(v: Vec<&Endpoint>) -> Vec<&Endpoint> {
        v.into_iter().filter(|e| e.ip.is_ipv4()).collect()
    }
    let (cluster, local) = (only_v4(cluster), only_v4(local));
    let internal = if sp.internal_local { &local } else { &cluster };
    let external = if sp.external_local { &local } else { &cluster };
    let no_endpoints = if cluster.is_empty() {
        Verdict::goto(REJECT_CHAIN)
    } else {
        Verdict::Drop
    };

    let svc = format!("{SVC_CHAIN}{key}");
    let ext = format!("{EXT_CHAIN}{key}");
    let fw = format!("{FW_CHAIN}{key}");
    let mut maps = Vec::new();
    let mut chains = Vec::new();
    let mut shared = Shared::default();
    let mut used_dispatch = None;
    // The shared path: `number` names this Service port in `endpoints` (cluster endpoints,
    // as both traffic policies are Cluster).
    let mut shared_path = |dispatch_prefix: &str, shared: &mut Shared| -> Target {
        let number = number.expect("a number for a Service port on the shared dispatch path");
        let n = cluster.len();
        if used_dispatch.is_none() {
            used_dispatch = Some(n);
            // (`cluster` holds IPv4 endpoints only.)
            let v4s = cluster.iter().filter_map(|e| Some((v4(&e.ip)?, e.port)));
            for (i, (ip, port)) in v4s.enumerate() {
                shared.endpoints.push(Elem::Endpoint {
                    number,
                    index: i as u32,
                    ip,
                    port,
                });
            }
        }
        (Verdict::goto(format!("{dispatch_prefix}{n}")), Some(number))
    };

    let cluster_ips: Vec<Ipv4Addr> = sp.cluster_ips.iter().filter_map(v4).collect();
    let external_ips: Vec<Ipv4Addr> = sp
        .external_ips
        .iter()
        .chain(&sp.load_balancer_ips)
        .filter_map(v4)
        .collect();
    let lb_ips: Vec<Ipv4Addr> = sp.load_balancer_ips.iter().filter_map(v4).collect();
    let has_external = !external_ips.is_empty() || sp.node_port != 0;

    // Internal (ClusterIP) traffic.
    let has_svc = !internal.is_empty() && !cluster_ips.is_empty();
    let mut svc_target = None;
    if has_svc {
        if number.is_some() {
            svc_target = Some(shared_path(CLUSTER_DISPATCH, &mut shared));
        } else {
            let mut rules = vec![masquerade_unless_pods(cfg)];
            rules.extend(dispatch(
                sp,
                internal,
                sp.internal_local,
                &key,
                cfg,
                &mut maps,
            ));
            chains.push((svc.clone(), rules));
            svc_target = Some((Verdict::goto(svc.as_str()), None));
        }
    }
    let dest = |ip: Ipv4Addr| Dest {
        ip,
        proto: sp.protocol,
        port,
    };
    let by_dest: ElemOf<Dest> = (Elem::DestVerdict, Elem::DestNumber);
    for ip in &cluster_ips {
        shared.cluster_ips.push(Elem::Ip(*ip));
        route(
            dest(*ip),
            by_dest,
            svc_target.as_ref(),
            &no_endpoints,
            [
                &mut shared.service_ips,
                &mut shared.service_ids,
                &mut shared.no_endpoint_services,
            ],
        );
    }

    // External (NodePort, external IP, load-balancer IP) traffic.
    if has_external {
        // With externalTrafficPolicy Local and no endpoint here, pods and the node still reach
        // the Service through the external chain's shortcuts (as kube-proxy does); others are
        // dropped.
        let shortcuts_only = external.is_empty() && sp.external_local && has_svc;
        let target = if external.is_empty() && !shortcuts_only {
            None
        } else if number.is_some() {
            Some(shared_path(EXTERNAL_DISPATCH, &mut shared))
        } else {
            let mut rules = Vec::new();
            if sp.external_local {
                if has_svc {
                    // Pods and the node itself reach the Service as internal traffic.
                    if let Some(c) = v4_cidr(cfg) {
                        rules.push(format!("ip saddr {c} goto {svc}"));
                    }
                    rules.push(format!("fib saddr type local jump {MARK_FOR_MASQUERADE}"));
                    rules.push(format!("fib saddr type local goto {svc}"));
                }
            } else {
                rules.push(format!("jump {MARK_FOR_MASQUERADE}"));
            }
            if shortcuts_only {
                rules.push("drop".to_string());
            } else {
                // The same endpoints as the internal dispatch share its maps.
                let same = sp.external_local == sp.internal_local && has_svc;
                let mut scratch = Vec::new();
                let target = if same { &mut scratch } else { &mut maps };
                rules.extend(dispatch(sp, external, sp.external_local, &key, cfg, target));
            }
            chains.push((ext.clone(), rules));
            Some((Verdict::goto(ext.as_str()), None))
        };
        for ip in &external_ips {
            route(
                dest(*ip),
                by_dest,
                target.as_ref(),
                &no_endpoints,
                [
                    &mut shared.service_ips,
                    &mut shared.service_ids,
                    &mut shared.no_endpoint_services,
                ],
            );
        }
        if sp.node_port != 0 {
            let k = NodePort {
                proto: sp.protocol,
                port: sp.node_port,
            };
            route(
                k,
                (Elem::PortVerdict, Elem::PortNumber),
                target.as_ref(),
                &no_endpoints,
                [
                    &mut shared.service_nodeports,
                    &mut shared.nodeport_ids,
                    &mut shared.no_endpoint_nodeports,
                ],
            );
        }
    }

    // loadBalancerSourceRanges.
    if let Some(rule) = source_ranges_rule(sp, &node.node_ips) {
        chains.push((fw.clone(), vec![rule]));
        for ip in &lb_ips {
            shared
                .firewall_ips
                .push(Elem::DestVerdict(dest(*ip), Verdict::goto(fw.as_str())));
        }
    }

    // Hairpin: only an endpoint on this node can reach itself through this node's rules.
    let used: BTreeSet<Ipv4Addr> = internal
        .iter()
        .chain(external.iter())
        .filter(|e| e.node_name.as_deref().is_none_or(|n| n == node.name))
        .filter_map(|e| v4(&e.ip))
        .collect();
    shared
        .hairpin
        .extend(used.iter().map(|ip| Elem::IpPair(*ip, *ip)));
    maps.sort();
    maps.dedup_by(|a, b| a.0 == b.0);
    Plan {
        maps,
        chains,
        dispatch: used_dispatch,
        shared,
    }
}

/// The plan of the Service port `id` of `state` (None when `state` does not have it), numbering
/// it in `num` when it uses the shared dispatch.
fn plan_in(
    state: &State,
    id: &ServicePortName,
    node: &NodeInfo,
    cfg: &Config,
    num: &mut Numbering,
) -> Option<Plan> {
    let sp = state.services.get(id)?;
    let eps = state.endpoints.get(id).map(Vec::as_slice).unwrap_or(&[]);
    let number = shared_dispatch(sp).then(|| num.assign(id));
    Some(plan(sp, eps, node, cfg, number))
}

fn push_elements(out: &mut String, name: &str, elems: &[String]) {
    if elems.is_empty() {
        return;
    }
    let _ = writeln!(out, "add element {FAMILY_TABLE} {name} {{");
    for e in elems {
        let _ = writeln!(out, "\t{e},");
    }
    out.push_str("}\n");
}

fn push_chain(out: &mut String, name: &str, rules: &[String]) {
    let _ = writeln!(out, "\tchain {name} {{");
    for r in rules {
        let _ = writeln!(out, "\t\t{r}");
    }
    out.push_str("\t}\n");
}

/// The per-service maps and chains of `p` inside a `table ip svcnet { ... }` block.
fn push_objects(out: &mut String, p: &Plan) {
    for (name, decl, _) in &p.maps {
        let _ = writeln!(out, "\tmap {name} {{\n\t\t{decl}\n\t}}");
    }
    for (name, rules) in &p.chains {
        push_chain(out, name, rules);
    }
}

fn push_map_elements(out: &mut String, p: &Plan) {
    for (name, _, elems) in &p.maps {
        push_elements(out, name, elems);
    }
}

/// A complete `nft -f` script for `state`: the table replaced in one transaction, Service ports
/// numbered afresh.
pub fn render_full(state: &State, node: &NodeInfo, cfg: &Config) -> String {
    render_full_with(state, node, cfg, &mut Numbering::default())
}

/// [`render_full`], keeping the numbers `num` has for the Service ports still on the shared
/// dispatch path, and leaving `num` describing the new table.
pub fn render_full_with(
    state: &State,
    node: &NodeInfo,
    cfg: &Config,
    num: &mut Numbering,
) -> String {
    let full = render_full_sync(state, node, cfg, num);
    let mut out = String::with_capacity(full.structure.len() + 64);
    let _ = writeln!(out, "table {FAMILY_TABLE} {{}}");
    let _ = writeln!(out, "delete table {FAMILY_TABLE}");
    out.push_str(&full.structure);
    for (name, elems) in &full.shared {
        let mut text: Vec<String> = elems.iter().map(Elem::text).collect();
        text.sort_unstable();
        push_elements(&mut out, name, &text);
    }
    out
}

/// A full sync in two parts, so that the bulk of it — the shared maps' and sets' elements —
/// can go to the kernel without nft parsing it ([`Session::apply_full_sync`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FullSync {
    /// The `table ip svcnet { ... }` block (set declarations, every chain with its rules) and
    /// the elements of the Service ports' own maps.
    pub structure: String,
    /// The shared maps' and sets' elements (each once).
    pub(crate) shared: Vec<(&'static str, Vec<Elem>)>,
    /// The names of the chains `structure` declares.
    pub chains: BTreeSet<String>,
    /// The sessionAffinity maps `structure` declares (client → endpoint, filled by traffic).
    pub affinity: BTreeSet<String>,
}

/// [`render_full_with`] as a [`FullSync`].
pub fn render_full_sync(
    state: &State,
    node: &NodeInfo,
    cfg: &Config,
    num: &mut Numbering,
) -> FullSync {
    let gone: Vec<ServicePortName> = num
        .ids
        .keys()
        .filter(|id| !state.services.get(*id).is_some_and(shared_dispatch))
        .cloned()
        .collect();
    for id in &gone {
        num.release(id);
    }
    let all: Vec<Plan> = state
        .services
        .keys()
        .filter_map(|id| plan_in(state, id, node, cfg, num))
        .collect();
    num.dispatch = all.iter().filter_map(|p| p.dispatch).collect();
    let mut out = String::new();
    let mut chains = BTreeSet::new();
    let _ = writeln!(out, "table {FAMILY_TABLE} {{");
    // The shared elements (and how many Service ports have each).
    let mut all = all;
    let mut shared = Shared::default();
    num.refs.clear();
    for p in &mut all {
        let mine = std::mem::take(&mut p.shared);
        for (name, list) in mine.counted() {
            for e in list {
                *num.refs.entry(element_id(name, e)).or_default() += 1;
            }
        }
        shared.extend(mine);
    }
    let lists = shared.lists();
    // Shared sets and maps, sized for their elements: a hash table that grows while it is
    // filled costs the kernel a third more (NOTES.md). `size` is also a limit: a partial sync
    // that outgrows it fails, and the full sync that follows sizes the set anew.
    let decls: [(&str, &str, &str); 10] = [
        ("map", ENDPOINTS, ENDPOINTS_DECL),
        ("map", SERVICE_IDS, IDS_KEY3),
        ("map", SERVICE_IPS, VERDICT_KEY3),
        ("map", NODEPORT_IDS, IDS_KEY2),
        ("map", SERVICE_NODEPORTS, VERDICT_KEY2),
        ("map", NO_ENDPOINT_SERVICES, VERDICT_KEY3),
        ("map", NO_ENDPOINT_NODEPORTS, VERDICT_KEY2),
        ("map", FIREWALL_IPS, VERDICT_KEY3),
        ("set", CLUSTER_IPS, "type ipv4_addr;"),
        ("set", HAIRPIN, "type ipv4_addr . ipv4_addr;"),
    ];
    for (kind, name, decl) in decls {
        let count = lists
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, l)| l.len());
        let size = if count >= SIZED_FROM {
            format!(" size {};", (count * 4).next_power_of_two())
        } else {
            String::new()
        };
        let _ = writeln!(out, "	{kind} {name} {{\n\t\t{decl}{size}\n\t}}");
    }
    let node_ips: BTreeSet<Ipv4Addr> = node.node_ips.iter().filter_map(v4).collect();
    if !node_ips.is_empty() {
        let list: Vec<String> = node_ips.iter().map(Ipv4Addr::to_string).collect();
        let _ = writeln!(
            out,
            "\tset {NODEPORT_IPS} {{\n\t\ttype ipv4_addr;\n\t\telements = {{ {} }}\n\t}}",
            list.join(", ")
        );
    }
    // Fixed chains.
    let nodeport_dest = if node_ips.is_empty() {
        "fib daddr type local ip daddr != 127.0.0.0/8".to_string()
    } else {
        format!("ip daddr @{NODEPORT_IPS}")
    };
    let mut chain =
        |out: &mut String, name: &str, hook: Option<(&str, &str, i32)>, rules: &[String]| {
            chains.insert(name.to_string());
            let _ = writeln!(out, "\tchain {name} {{");
            if let Some((ty, hook, prio)) = hook {
                let _ = writeln!(
                    out,
                    "\t\ttype {ty} hook {hook} priority {prio}; policy accept;"
                );
            }
            for r in rules {
                let _ = writeln!(out, "\t\t{r}");
            }
            out.push_str("\t}\n");
        };
    chain(
        &mut out,
        MARK_FOR_MASQUERADE,
        None,
        &[format!("meta mark set meta mark | {MASQ_MARK}")],
    );
    chain(
        &mut out,
        MASQUERADING,
        None,
        &[
            format!("ip saddr . ip daddr @{HAIRPIN} jump {MARK_FOR_MASQUERADE}"),
            format!("meta mark & {MASQ_MARK} == 0 return"),
            format!("meta mark set meta mark ^ {MASQ_MARK}"),
            "masquerade fully-random".to_string(),
        ],
    );
    chain(
        &mut out,
        REJECT_CHAIN,
        None,
        &[
            "meta l4proto tcp reject with tcp reset".to_string(),
            "reject".to_string(),
        ],
    );
    chain(
        &mut out,
        FIREWALL_CHECK,
        None,
        &[format!(
            "ip daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}"
        )],
    );
    chain(
        &mut out,
        SERVICE_ENDPOINTS_CHECK,
        None,
        &[format!(
            "ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"
        )],
    );
    chain(
        &mut out,
        NODEPORT_ENDPOINTS_CHECK,
        None,
        &[format!(
            "{nodeport_dest} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"
        )],
    );
    chain(
        &mut out,
        CLUSTER_IPS_CHECK,
        None,
        &[format!("ip daddr @{CLUSTER_IPS} goto {REJECT_CHAIN}")],
    );
    let new = "ct state new jump";
    chain(
        &mut out,
        FILTER_PREROUTING,
        Some(("filter", "prerouting", -110)),
        &[format!("{new} {FIREWALL_CHECK}")],
    );
    chain(
        &mut out,
        FILTER_INPUT,
        Some(("filter", "input", -110)),
        &[
            format!("{new} {NODEPORT_ENDPOINTS_CHECK}"),
            format!("{new} {SERVICE_ENDPOINTS_CHECK}"),
        ],
    );
    chain(
        &mut out,
        FILTER_FORWARD,
        Some(("filter", "forward", -110)),
        &[
            format!("{new} {SERVICE_ENDPOINTS_CHECK}"),
            format!("{new} {CLUSTER_IPS_CHECK}"),
        ],
    );
    chain(
        &mut out,
        FILTER_OUTPUT,
        Some(("filter", "output", -110)),
        &[
            format!("{new} {SERVICE_ENDPOINTS_CHECK}"),
            format!("{new} {FIREWALL_CHECK}"),
        ],
    );
    chain(
        &mut out,
        FILTER_OUTPUT_POST_DNAT,
        Some(("filter", "output", -90)),
        &[format!("{new} {CLUSTER_IPS_CHECK}")],
    );
    for n in &num.dispatch {
        for (name, rules) in dispatch_chains(*n, cfg) {
            chain(&mut out, &name, None, &rules);
        }
    }
    chain(
        &mut out,
        SERVICES,
        None,
        &[
            format!("ct mark set ip daddr . meta l4proto . th dport map @{SERVICE_IDS}"),
            format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
            format!("{nodeport_dest} ct mark set meta l4proto . th dport map @{NODEPORT_IDS}"),
            format!("{nodeport_dest} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
        ],
    );
    chain(
        &mut out,
        NAT_PREROUTING,
        Some(("nat", "prerouting", -100)),
        &[format!("jump {SERVICES}")],
    );
    chain(
        &mut out,
        NAT_OUTPUT,
        Some(("nat", "output", -100)),
        &[format!("jump {SERVICES}")],
    );
    chain(
        &mut out,
        NAT_POSTROUTING,
        Some(("nat", "postrouting", 100)),
        &[format!("jump {MASQUERADING}")],
    );
    // Per-service maps and chains.
    for p in &all {
        push_objects(&mut out, p);
        chains.extend(p.chains.iter().map(|(name, _)| name.clone()));
    }
    out.push_str("}\n");
    // Their maps' elements.
    for p in &all {
        push_map_elements(&mut out, p);
    }
    let affinity = all
        .iter()
        .flat_map(|p| &p.maps)
        .filter(|(_, decl, _)| *decl == AFF_DECL)
        .map(|(name, _, _)| name.clone())
        .collect();
    FullSync {
        structure: out,
        shared: lists,
        chains,
        affinity,
    }
}

/// What [`plans_of`] finds: `endpoints` elements, per other shared element how many of the
/// Service ports contribute it, and their plans.
type Plans = (
    BTreeSet<Elem>,
    BTreeMap<(&'static str, Elem), i64>,
    BTreeMap<ServicePortName, Plan>,
);

/// The plans of the Service ports `ids` in `state`, their `endpoints` elements, and how many
/// of them contribute each other shared element.
fn plans_of(
    state: &State,
    ids: &BTreeSet<&ServicePortName>,
    node: &NodeInfo,
    cfg: &Config,
    num: &mut Numbering,
) -> Plans {
    let mut endpoints = BTreeSet::new();
    let mut counts = BTreeMap::new();
    let mut plans = BTreeMap::new();
    for id in ids {
        let Some(mut p) = plan_in(state, id, node, cfg, num) else {
            continue;
        };
        for (name, list) in p.shared.counted() {
            for e in list {
                *counts.entry((name, e.clone())).or_default() += 1;
            }
        }
        endpoints.extend(std::mem::take(&mut p.shared.endpoints));
        plans.insert((*id).clone(), p);
    }
    (endpoints, counts, plans)
}

/// An incremental sync from `old` (what the table holds, as [`render_full_with`] of `old` or
/// earlier partial syncs left it, with `num` describing it) to `new`, for the Service ports
/// `ids` (the ones that differ; others must be equal in both states). One transaction that:
///
/// - deletes from the shared maps and sets exactly the elements the `old` Service ports put
///   there and that nothing in `new` still needs (an element shared with another Service port,
///   such as a ClusterIP of a multi-port Service or an endpoint's `hairpin` entry, stays),
/// - empties the Service ports' own chains and replaces their own maps, deleting what `new` no
///   longer uses,
/// - creates the `pick-N` chains of endpoint counts not in use before,
/// - adds the shared elements `new` has and `old` had not.
///
/// For a Service port on the shared dispatch path in both states, that is elements only. Its
/// cost depends on the changed Service ports, not on the size of the table. Not idempotent:
/// apply it once, against the table `old` describes; `num` then describes the new table.
/// sessionAffinity state of these Service ports restarts.
pub fn render_changes<'a>(
    old: &State,
    new: &State,
    ids: impl IntoIterator<Item = &'a ServicePortName>,
    node: &NodeInfo,
    cfg: &Config,
    num: &mut Numbering,
) -> String {
    let ids: BTreeSet<&ServicePortName> = ids.into_iter().collect();
    let (old_eps, old_counts, theirs) = plans_of(old, &ids, node, cfg, num);
    // Numbers of Service ports leaving the shared path are released after this transaction, so
    // no number is both deleted and added in it.
    let leaving: Vec<&ServicePortName> = ids
        .iter()
        .filter(|id| !new.services.get(**id).is_some_and(shared_dispatch))
        .copied()
        .collect();
    let (new_eps, new_counts, mine) = plans_of(new, &ids, node, cfg, num);

    // A shared element goes when no Service port has it any more, and comes when the first one
    // does; `endpoints` elements belong to one Service port each.
    let mut delta: BTreeMap<(&'static str, Elem), i64> = new_counts;
    for (k, c) in old_counts {
        *delta.entry(k).or_default() -= c;
    }
    let mut gone: BTreeSet<(&'static str, Elem)> = BTreeSet::new();
    let mut come: BTreeSet<(&'static str, Elem)> = BTreeSet::new();
    for (k, d) in delta {
        if d == 0 {
            continue;
        }
        let id = element_id(k.0, &k.1);
        let before = i64::from(num.refs.get(&id).copied().unwrap_or(0));
        let after = (before + d).max(0);
        match (before > 0, after > 0) {
            (true, false) => gone.insert(k.clone()),
            (false, true) => come.insert(k.clone()),
            _ => false,
        };
        if after == 0 {
            num.refs.remove(&id);
        } else {
            num.refs
                .insert(id, u32::try_from(after).unwrap_or(u32::MAX));
        }
    }
    gone.extend(old_eps.difference(&new_eps).map(|e| (ENDPOINTS, e.clone())));
    come.extend(new_eps.difference(&old_eps).map(|e| (ENDPOINTS, e.clone())));

    // By map, as nft writes them (keys only for deletes), sorted by that text.
    let group = |set: BTreeSet<(&'static str, Elem)>, text: fn(&Elem) -> String| {
        let mut by_map: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for (name, e) in set {
            by_map.entry(name).or_default().push(text(&e));
        }
        for v in by_map.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        by_map
    };
    let deletes = group(gone, Elem::key_text);
    let adds = group(come, Elem::text);

    let mut out = String::new();
    // 1. Shared elements that go (they may reference chains deleted below).
    for (name, keys) in &deletes {
        let _ = writeln!(out, "delete element {FAMILY_TABLE} {name} {{");
        for k in keys {
            let _ = writeln!(out, "\t{k},");
        }
        out.push_str("}\n");
    }
    // 2. Empty the Service ports' own chains (they may jump to each other), then delete the ones
    // `new` does not use and the old maps (replaced rather than flushed: nft, reading a `typeof`
    // map back from the kernel, refuses a `tcp` rule on it).
    let has_chain =
        |p: Option<&Plan>, c: &str| p.is_some_and(|p| p.chains.iter().any(|(n, _)| n == c));
    for p in theirs.values() {
        for (c, _) in &p.chains {
            let _ = writeln!(out, "flush chain {FAMILY_TABLE} {c}");
        }
    }
    for (id, p) in &theirs {
        for (c, _) in &p.chains {
            if !has_chain(mine.get(id), c) {
                let _ = writeln!(out, "delete chain {FAMILY_TABLE} {c}");
            }
        }
        for (m, _, _) in &p.maps {
            let _ = writeln!(out, "delete map {FAMILY_TABLE} {m}");
        }
    }
    // 3. New dispatch chains, the Service ports' chains' rules and their maps' elements.
    let fresh: Vec<usize> = mine
        .values()
        .filter_map(|p| p.dispatch)
        .filter(|n| !num.dispatch.contains(n))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !fresh.is_empty()
        || mine
            .values()
            .any(|p| !p.chains.is_empty() || !p.maps.is_empty())
    {
        let _ = writeln!(out, "table {FAMILY_TABLE} {{");
        for n in fresh {
            for (name, rules) in dispatch_chains(n, cfg) {
                push_chain(&mut out, &name, &rules);
            }
            num.dispatch.insert(n);
        }
        for p in mine.values() {
            push_objects(&mut out, p);
        }
        out.push_str("}\n");
    }
    for p in mine.values() {
        push_map_elements(&mut out, p);
    }
    // 4. Shared elements that come.
    for (name, elems) in &adds {
        push_elements(&mut out, name, elems);
    }
    for id in leaving {
        num.release(id);
    }
    out
}

fn nft(netns: Option<&str>, args: &[&str], script: &str) -> Result<(), Error> {
    let mut cmd = Command::new("nft");
    if let Some(ns) = netns {
        // setns in the child rather than `ip netns exec`, which costs ~10 ms per run.
        let ns = svcnet_netns::NetNs::open(ns).map_err(|e| std::io::Error::other(e.to_string()))?;
        svcnet_netns::enter_on_exec(&mut cmd, &ns, None, &[])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Write from another thread: nft may report errors before it has read all of a big script.
    let script = script.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(Error::Nft {
            netns: netns.map(str::to_string),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// `nft -f -` with `script` (one transaction), inside `netns` when given.
pub fn apply(netns: Option<&str>, script: &str) -> Result<(), Error> {
    nft(netns, &["-f", "-"], script)
}

/// `nft -c -f -`: whether nft (and the kernel) would accept `script`, changing nothing.
pub fn check(netns: Option<&str>, script: &str) -> Result<(), Error> {
    nft(netns, &["-c", "-f", "-"], script)
}

/// Delete our table if present.
pub fn cleanup(netns: Option<&str>) -> Result<(), Error> {
    apply(
        netns,
        &format!("table {FAMILY_TABLE} {{}}\ndelete table {FAMILY_TABLE}\n"),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol, ServicePort, ServicePortName, State};
    use pretty_assertions::assert_eq;

    pub(crate) fn id(name: &str, port: &str, protocol: Protocol) -> ServicePortName {
        ServicePortName {
            namespace: "default".into(),
            name: name.into(),
            port: port.into(),
            protocol,
        }
    }

    pub(crate) fn sp(id: &ServicePortName, cluster_ip: &str, port: u16) -> ServicePort {
        ServicePort::new(id.clone(), cluster_ip.parse().unwrap(), port)
    }

    pub(crate) fn ep(ip: &str, port: u16, node: &str) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some(node.into()),
            zone: None,
            hint_zones: None,
        }
    }

    pub(crate) fn add(st: &mut State, s: ServicePort, eps: Vec<Endpoint>) {
        st.endpoints.insert(s.id.clone(), eps);
        st.services.insert(s.id.clone(), s);
    }

    /// ClusterIP TCP+UDP, NodePort, no endpoints, affinity, ETP Local (with and without local
    /// endpoints), LoadBalancer with source ranges, and an IPv6 ClusterIP (skipped).
    pub(crate) fn fixture() -> State {
        let mut st = State::default();
        let web = [
            ep("10.244.0.2", 8080, "node-1"),
            ep("10.244.0.3", 8080, "node-1"),
            ep("10.244.1.4", 8080, "node-2"),
        ];
        add(
            &mut st,
            sp(&id("web", "http", Protocol::Tcp), "10.97.1.1", 80),
            web.to_vec(),
        );
        add(
            &mut st,
            sp(&id("web", "dns", Protocol::Udp), "10.97.1.1", 53),
            vec![ep("10.244.0.2", 5353, "node-1")],
        );
        let mut np = sp(&id("np", "", Protocol::Tcp), "10.97.1.2", 80);
        np.node_port = 30080;
        add(&mut st, np, vec![ep("10.244.0.2", 8080, "node-1")]);
        add(
            &mut st,
            sp(&id("empty", "", Protocol::Tcp), "10.97.1.3", 80),
            vec![],
        );
        let mut sticky = sp(&id("sticky", "", Protocol::Tcp), "10.97.1.4", 80);
        sticky.affinity_timeout = Some(300);
        add(&mut st, sticky, web[..2].to_vec());
        let mut local = sp(&id("local", "", Protocol::Tcp), "10.97.1.5", 80);
        local.node_port = 30081;
        local.external_ips = vec!["198.51.100.50".parse().unwrap()];
        local.external_local = true;
        add(&mut st, local, vec![web[0].clone(), web[2].clone()]);
        let mut remote = sp(&id("remote", "", Protocol::Tcp), "10.97.1.7", 80);
        remote.node_port = 30083;
        remote.external_local = true;
        add(&mut st, remote, vec![web[2].clone()]);
        let mut lb = sp(&id("lb", "", Protocol::Tcp), "10.97.1.6", 443);
        lb.node_port = 30082;
        lb.load_balancer_ips = vec!["198.51.100.100".parse().unwrap()];
        lb.load_balancer_source_ranges = vec!["198.51.100.0/28".parse().unwrap()];
        add(&mut st, lb, vec![ep("10.244.0.3", 8443, "node-1")]);
        add(
            &mut st,
            sp(&id("v6", "", Protocol::Tcp), "fd00::1", 80),
            vec![ep("fd00:244::2", 80, "node-1")],
        );
        st
    }

    pub(crate) fn node() -> NodeInfo {
        NodeInfo {
            name: "node-1".into(),
            node_ips: vec!["198.51.100.1".parse().unwrap()],
            zone: None,
        }
    }

    pub(crate) fn cfg() -> Config {
        Config {
            cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
            random: false,
        }
    }

    fn golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(expected, actual, "{name}");
    }

    /// Incremental changes the golden and nft tests exercise: `(golden name, old, new, ids)`.
    pub(crate) fn changes() -> Vec<(&'static str, State, State, Vec<ServicePortName>)> {
        let st = fixture();
        let web = id("web", "http", Protocol::Tcp);
        // An endpoint's address changed (its old address stays in `hairpin`: `local` uses it).
        let mut moved = st.clone();
        moved.endpoints.get_mut(&web).unwrap()[2].ip = "10.244.1.9".parse().unwrap();
        // A Service with affinity, a NodePort and an endpoint of its own.
        let extra = id("extra", "", Protocol::Tcp);
        let mut added = st.clone();
        let mut s = sp(&extra, "10.97.1.9", 8080);
        s.node_port = 30090;
        s.affinity_timeout = Some(60);
        add(
            &mut added,
            s,
            vec![
                ep("10.244.2.2", 80, "node-1"),
                ep("10.244.0.2", 80, "node-1"),
            ],
        );
        // One port of a two-port Service removed (its ClusterIP stays in `cluster-ips`).
        let dns = id("web", "dns", Protocol::Udp);
        let mut port_removed = st.clone();
        port_removed.services.remove(&dns);
        port_removed.endpoints.remove(&dns);
        // Two at once: a LoadBalancer loses its endpoints, a NodePort moves.
        let (lb, np) = (id("lb", "", Protocol::Tcp), id("np", "", Protocol::Tcp));
        let mut two = st.clone();
        two.endpoints.insert(lb.clone(), Vec::new());
        two.services.get_mut(&np).unwrap().node_port = 30085;
        vec![
            (
                "nftables-changes-endpoint.nft",
                st.clone(),
                moved,
                vec![web],
            ),
            (
                "nftables-changes-added.nft",
                st.clone(),
                added.clone(),
                vec![extra.clone()],
            ),
            (
                "nftables-changes-removed.nft",
                added,
                st.clone(),
                vec![extra],
            ),
            (
                "nftables-changes-port-removed.nft",
                st.clone(),
                port_removed,
                vec![dns],
            ),
            ("nftables-changes-two.nft", st, two, vec![lb, np]),
        ]
    }

    /// `cur` with the Service ports `ids` as `new` has them (added, changed or removed).
    pub(crate) fn with_changes(cur: &State, new: &State, ids: &[ServicePortName]) -> State {
        let mut next = cur.clone();
        for id in ids {
            next.services.remove(id);
            next.endpoints.remove(id);
            if let Some(s) = new.services.get(id) {
                next.services.insert(id.clone(), s.clone());
            }
            if let Some(e) = new.endpoints.get(id) {
                next.endpoints.insert(id.clone(), e.clone());
            }
        }
        next
    }

    /// `render_changes` from `old` (as a full sync of `old` numbered it) to `new`, and the
    /// numbering after it.
    fn changes_script(
        old: &State,
        new: &State,
        ids: &[ServicePortName],
        num: &mut Numbering,
    ) -> String {
        render_changes(old, new, ids, &node(), &cfg(), num)
    }

    #[test]
    fn golden_changes() {
        for (name, old, new, ids) in changes() {
            let mut num = Numbering::default();
            render_full_with(&old, &node(), &cfg(), &mut num);
            let mut num2 = num.clone();
            let out = changes_script(&old, &new, &ids, &mut num);
            let rev: Vec<ServicePortName> = ids.iter().rev().cloned().collect();
            assert_eq!(out, changes_script(&old, &new, &rev, &mut num2));
            assert_eq!(num, num2);
            golden(name, &out);
        }
        // Nothing changed: nothing to do.
        let st = fixture();
        let web = id("web", "http", Protocol::Tcp);
        let mut num = Numbering::default();
        render_full_with(&st, &node(), &cfg(), &mut num);
        let out = changes_script(&st, &st, &[web], &mut num);
        assert_eq!(out, "");
    }

    #[test]
    fn numbering_is_kept_and_reused() {
        let st = fixture();
        let web = id("web", "http", Protocol::Tcp);
        let mut num = Numbering::default();
        render_full_with(&st, &node(), &cfg(), &mut num);
        let n = num.get(&web).unwrap();
        // sessionAffinity takes the Service port off the shared path: its number is released
        // after the change, and reused by the next Service port that needs one.
        let mut sticky = st.clone();
        sticky.services.get_mut(&web).unwrap().affinity_timeout = Some(10);
        let out = changes_script(&st, &sticky, std::slice::from_ref(&web), &mut num);
        assert!(
            out.contains(&format!(
                "delete element ip svcnet endpoints {{\n\t{n} . 0,"
            )),
            "{out}"
        );
        assert!(out.contains("chain svc-default/web/tcp/http"), "{out}");
        assert_eq!(num.get(&web), None);
        let extra = id("extra", "", Protocol::Tcp);
        let mut more = sticky.clone();
        add(
            &mut more,
            sp(&extra, "10.97.1.9", 80),
            vec![ep("10.244.2.2", 80, "node-1")],
        );
        changes_script(&sticky, &more, std::slice::from_ref(&extra), &mut num);
        assert_eq!(num.get(&extra), Some(n));
        // A full sync keeps the numbers it can (and keeps only the dispatch chains in use).
        let before = num.ids.clone();
        render_full_with(&more, &node(), &cfg(), &mut num);
        assert_eq!(num.ids, before);
        assert!(!num.dispatch.contains(&3), "{:?}", num.dispatch);
    }

    /// `nft -j list table ip svcnet`, without handles, in an order independent of how the table
    /// was built: objects sorted, set elements sorted, rules in their chain's order.
    fn listing(ns: &str) -> Vec<String> {
        let out = svcnet_netns::NetNs::open(ns)
            .unwrap()
            .exec(&["nft", "-j", "list", "table", "ip", TABLE])
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        fn strip(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    m.remove("handle");
                    m.values_mut().for_each(strip);
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut items = Vec::new();
        let mut rule_no: BTreeMap<String, usize> = BTreeMap::new();
        for mut item in v["nftables"].as_array().unwrap().clone() {
            strip(&mut item);
            let obj = item.as_object_mut().unwrap();
            if obj.contains_key("metainfo") {
                continue;
            }
            for kind in ["set", "map"] {
                if let Some(elem) = obj
                    .get_mut(kind)
                    .and_then(|s| s.get_mut("elem"))
                    .and_then(|e| e.as_array_mut())
                {
                    elem.sort_by_key(|e| e.to_string());
                }
            }
            if let Some(rule) = obj.get("rule") {
                let chain = rule["chain"].as_str().unwrap().to_string();
                let n = rule_no.entry(chain.clone()).or_default();
                *n += 1;
                items.push(format!("rule {chain} #{n:04} {item}"));
            } else {
                items.push(item.to_string());
            }
        }
        items.sort();
        items
    }

    #[test]
    fn nft_changes_equal_full() {
        let Some(scratch) = Scratch::new("changes") else {
            return;
        };
        let ns = Some(scratch.0.as_str());
        for (name, old, new, ids) in changes() {
            for (from, to) in [(&old, &new), (&new, &old)] {
                let mut num = Numbering::default();
                apply(ns, &render_full_with(from, &node(), &cfg(), &mut num)).unwrap();
                let script = changes_script(from, to, &ids, &mut num);
                apply(ns, &script).unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
                let incremental = listing(&scratch.0);
                apply(ns, &render_full_with(to, &node(), &cfg(), &mut num.clone())).unwrap();
                assert_eq!(listing(&scratch.0), incremental, "{name}\n{script}");
            }
        }
        // A chain of changes from a full load, each against the previous state.
        let mut cur = fixture();
        let mut num = Numbering::default();
        apply(ns, &render_full_with(&cur, &node(), &cfg(), &mut num)).unwrap();
        for (name, _, new, ids) in changes() {
            // This case's change to these Service ports, on top of the previous ones.
            let next = with_changes(&cur, &new, &ids);
            let script = changes_script(&cur, &next, &ids, &mut num);
            apply(ns, &script).unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
            cur = next;
        }
        assert!(!cur.services.contains_key(&id("web", "dns", Protocol::Udp)));
        let incremental = listing(&scratch.0);
        apply(
            ns,
            &render_full_with(&cur, &node(), &cfg(), &mut num.clone()),
        )
        .unwrap();
        assert_eq!(listing(&scratch.0), incremental);
        cleanup(ns).unwrap();
    }

    /// A full sync through [`Session::apply_full_sync`] (structure by nft, shared elements by
    /// netlink) leaves exactly the table the one-script full sync does: from nothing, over the
    /// table of another state (in place: stale chains go, own maps are re-created), over a table
    /// that cannot be updated in place, and with partial syncs after it.
    #[test]
    fn netlink_full_sync_equals_script() {
        let Some(scratch) = Scratch::new("netlink") else {
            return;
        };
        let ns = Some(scratch.0.as_str());
        let mut session = Session::open(ns);
        let expect = |st: &State, num: &Numbering| -> Vec<String> {
            apply(ns, &render_full_with(st, &node(), &cfg(), &mut num.clone())).unwrap();
            listing(&scratch.0)
        };
        let mut num = Numbering::default();
        let before = num.clone();
        let kind = session
            .apply_full_sync(render_full_sync(&fixture(), &node(), &cfg(), &mut num))
            .unwrap();
        assert_eq!(kind, FullSyncKind::Replaced, "no table yet");
        let loaded = listing(&scratch.0);
        assert!(
            loaded
                .iter()
                .any(|l| l.contains("\"name\":\"endpoints\"") && l.contains("10.244.1.4")),
            "the shared endpoints map is filled"
        );
        assert_eq!(loaded, expect(&fixture(), &before));
        for (name, old, new, ids) in changes() {
            for (from, to) in [(&old, &new), (&new, &old)] {
                let mut num = Numbering::default();
                session
                    .apply_full_sync(render_full_sync(from, &node(), &cfg(), &mut num))
                    .unwrap();
                let before = num.clone();
                let kind = session
                    .apply_full_sync(render_full_sync(to, &node(), &cfg(), &mut num))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(kind, FullSyncKind::InPlace, "{name}");
                let in_place = listing(&scratch.0);
                assert_eq!(in_place, expect(to, &before), "{name}: in place");
                // A partial sync back, on top of the table the netlink sync left.
                session
                    .apply_full_sync(render_full_sync(to, &node(), &cfg(), &mut num))
                    .unwrap();
                let script = changes_script(to, from, &ids, &mut num);
                session
                    .apply(&script)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
                let partial = listing(&scratch.0);
                assert_eq!(partial, expect(from, &num), "{name}: partial after");
            }
        }
        // sessionAffinity state survives a resync in place.
        let mut num = Numbering::default();
        session
            .apply_full_sync(render_full_sync(&fixture(), &node(), &cfg(), &mut num))
            .unwrap();
        let aff = format!("{AFF_MAP}default/sticky/tcp");
        apply(
            ns,
            &format!("add element {FAMILY_TABLE} {aff} {{ 10.244.9.9 timeout 5m : 1 }}\n"),
        )
        .unwrap();
        let kind = session
            .apply_full_sync(render_full_sync(&fixture(), &node(), &cfg(), &mut num))
            .unwrap();
        assert_eq!(kind, FullSyncKind::InPlace);
        let listed = svcnet_netns::NetNs::open(&scratch.0)
            .unwrap()
            .exec(&["nft", "list", "map", "ip", TABLE, &aff])
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.contains("10.244.9.9"), "{listed}");
        // A table whose shared map has another type cannot be updated in place: replaced.
        cleanup(ns).unwrap();
        apply(
            ns,
            "table ip svcnet {\n\tmap endpoints {\n\t\ttype ipv4_addr : mark;\n\t}\n\tchain old {\n\t}\n}\n",
        )
        .unwrap();
        let mut num = Numbering::default();
        let before = num.clone();
        let kind = session
            .apply_full_sync(render_full_sync(&fixture(), &node(), &cfg(), &mut num))
            .unwrap();
        assert_eq!(kind, FullSyncKind::Replaced);
        let replaced = listing(&scratch.0);
        assert!(
            !replaced.iter().any(|l| l.contains("\"old\"")),
            "{replaced:?}"
        );
        assert_eq!(replaced, expect(&fixture(), &before));
        cleanup(ns).unwrap();
    }

    /// A resync in place repairs shared elements changed behind the proxy's back (deleted,
    /// added, given another verdict or value).
    #[test]
    fn in_place_full_sync_repairs_drift() {
        let Some(scratch) = Scratch::new("drift") else {
            return;
        };
        let ns = Some(scratch.0.as_str());
        let mut session = Session::open(ns);
        let mut num = Numbering::default();
        session
            .apply_full_sync(render_full_sync(&fixture(), &node(), &cfg(), &mut num))
            .unwrap();
        let want = listing(&scratch.0);
        let full = render_full_sync(&fixture(), &node(), &cfg(), &mut num.clone());
        let first = |set: &str, pick: fn(&Elem) -> bool| -> Elem {
            let (_, elems) = full.shared.iter().find(|(n, _)| *n == set).unwrap();
            elems.iter().find(|e| pick(e)).unwrap().clone()
        };
        let verdict = first(SERVICE_IPS, |e| matches!(e, Elem::DestVerdict(..)));
        let endpoint = first(ENDPOINTS, |_| true);
        let cluster_ip = first(CLUSTER_IPS, |_| true);
        let Elem::Endpoint { number, index, .. } = endpoint else {
            unreachable!()
        };
        let tamper = format!(
            "delete element {FAMILY_TABLE} {CLUSTER_IPS} {{ {} }}\n\
             add element {FAMILY_TABLE} {CLUSTER_IPS} {{ 10.96.250.250 }}\n\
             add element {FAMILY_TABLE} {HAIRPIN} {{ 10.244.250.1 . 10.244.250.1 }}\n\
             delete element {FAMILY_TABLE} {SERVICE_IPS} {{ {} }}\n\
             add element {FAMILY_TABLE} {SERVICE_IPS} {{ {} : drop }}\n\
             delete element {FAMILY_TABLE} {ENDPOINTS} {{ {number} . {index} }}\n\
             add element {FAMILY_TABLE} {ENDPOINTS} {{ {number} . {index} : 10.9.9.9 . 9 }}\n",
            cluster_ip.key_text(),
            verdict.key_text(),
            verdict.key_text(),
        );
        apply(ns, &tamper).unwrap();
        assert_ne!(listing(&scratch.0), want, "tampered");
        let kind = session
            .apply_full_sync(render_full_sync(&fixture(), &node(), &cfg(), &mut num))
            .unwrap();
        assert_eq!(kind, FullSyncKind::InPlace);
        assert_eq!(listing(&scratch.0), want);
        cleanup(ns).unwrap();
    }

    #[test]
    fn golden_full() {
        golden(
            "nftables-full.nft",
            &render_full(&fixture(), &node(), &cfg()),
        );
    }

    #[test]
    fn deterministic_and_options() {
        let st = fixture();
        assert_eq!(
            render_full(&st, &node(), &cfg()),
            render_full(&st.clone(), &node(), &cfg())
        );
        let out = render_full(
            &st,
            &NodeInfo {
                node_ips: vec![],
                ..node()
            },
            &Config {
                cluster_cidr: None,
                random: true,
            },
        );
        assert!(out.contains("numgen random mod 3"), "{out}");
        assert!(out.contains("fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto"));
        assert!(!out.contains("ip saddr != 10.244.0.0/16"));
        assert!(!out.contains("fd00"), "IPv6 is skipped");
    }

    /// `services` ClusterIP Service ports with `endpoints` endpoints each.
    fn many(services: u32, endpoints: u32) -> State {
        let mut st = State::default();
        for i in 0..services {
            let s = sp(
                &id(&format!("s{i}"), "", Protocol::Tcp),
                &std::net::Ipv4Addr::from(0x0a60_0000 + i).to_string(),
                80,
            );
            let eps = (0..endpoints)
                .map(|e| {
                    let ip = std::net::Ipv4Addr::from(0x0af4_0000 + i * endpoints + e);
                    ep(&ip.to_string(), 8080, "node-1")
                })
                .collect();
            add(&mut st, s, eps);
        }
        st
    }

    #[test]
    fn long_names_stay_valid() {
        let long = ServicePortName {
            namespace: "n".repeat(63),
            name: "s".repeat(63),
            port: "p".repeat(200),
            protocol: Protocol::Sctp,
        };
        let k = service_key(&long);
        assert!(k.len() <= 200 && k.len() + LOCAL_EPA_MAP.len() < 256, "{k}");
        let mut other = long.clone();
        other.port.push('q');
        assert_ne!(k, service_key(&other));
        assert_eq!(
            service_key(&id("web", "http", Protocol::Udp)),
            "default/web/udp/http"
        );
    }

    /// A scratch namespace, deleted however the test ends.
    pub(crate) struct Scratch(pub String);
    impl Scratch {
        pub(crate) fn new(tag: &str) -> Option<Scratch> {
            if svcnet_netns::check_privileges().is_err() || svcnet_netns::which("nft").is_none() {
                eprintln!("skipped: needs root and nft");
                return None;
            }
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let name = format!("svcnet-nft-{}-{nanos}-{tag}", std::process::id());
            svcnet_netns::NetNs::create(&name).unwrap();
            Some(Scratch(name))
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = svcnet_netns::NetNs::delete(&self.0);
        }
    }

    #[test]
    fn nft_accepts_every_script() {
        let Some(scratch) = Scratch::new("check") else {
            return;
        };
        let ns = Some(scratch.0.as_str());
        let full = render_full(&fixture(), &node(), &cfg());
        check(ns, &full).unwrap();
        let no_cidr = Config {
            cluster_cidr: None,
            random: true,
        };
        let bare = NodeInfo {
            node_ips: vec![],
            ..node()
        };
        check(ns, &render_full(&fixture(), &bare, &no_cidr)).unwrap();
        check(ns, &render_full(&State::default(), &node(), &cfg())).unwrap();
        // Large enough for sized sets.
        let big = many(1100, 4);
        let script = render_full(&big, &node(), &cfg());
        assert!(
            script.contains("map endpoints {\n\t\ttypeof ct mark . numgen inc mod 1 : ip daddr . tcp dport; size 32768;"),
            "4400 endpoints: size 4x, a power of two"
        );
        apply(ns, &script).unwrap();
        // Every Service port removed by one partial sync, then added back by another.
        apply(ns, &full).unwrap();
        let st = fixture();
        let mut num = Numbering::default();
        apply(ns, &render_full_with(&st, &node(), &cfg(), &mut num)).unwrap();
        let ids: Vec<ServicePortName> = st.services.keys().cloned().collect();
        let empty = State::default();
        apply(ns, &changes_script(&st, &empty, &ids, &mut num)).unwrap();
        let listed = svcnet_netns::NetNs::open(&scratch.0)
            .unwrap()
            .exec(&["nft", "list", "table", "ip", TABLE])
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(!listed.contains("svc-"), "{listed}");
        assert!(!listed.contains("10.97.1."), "{listed}");
        assert!(!listed.contains("10.244.0.2"), "{listed}");
        let script = changes_script(&empty, &st, &ids, &mut num);
        check(ns, &script).unwrap();
        apply(ns, &script).unwrap();
        let err = apply(ns, "add rule ip svcnet nope accept\n").unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        cleanup(ns).unwrap();
        cleanup(ns).unwrap();
    }
}
