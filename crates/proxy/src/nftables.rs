//! The nftables backend: the [`State`] rendered as an `nft -f` script (kube-proxy's nftables
//! mode, IPv4), applied in one transaction inside a network namespace.
//!
//! Layout (one table, `ip svcnet`), chosen for load speed (see NOTES.md: named per-service maps,
//! few chains, no anonymous sets on the per-service path):
//!
//! - nat `prerouting`/`output` (priority -100) jump to `services`, which looks the destination
//!   up in the verdict maps `service-ips` (ClusterIPs, external IPs, load-balancer IPs) and, for
//!   packets to the node's own addresses, `service-nodeports`.
//! - Per Service port `X` (names derived from its [`ServicePortName`] only, so a partial sync can
//!   remove them without knowing what was programmed before): chain `svc-X` (ClusterIP traffic:
//!   masquerade mark unless from the cluster CIDR, then pick an endpoint), chain `ext-X`
//!   (NodePort / external / LB traffic, by externalTrafficPolicy), chain `fw-X`
//!   (loadBalancerSourceRanges), and named maps of endpoints: `eps-X` (`numgen` index → address
//!   . port, used as `dnat ip to numgen inc mod N map @eps-X`), or with sessionAffinity
//!   `epa-X` + `aff-X` (client → endpoint index, dynamic with per-element timeout; the index is
//!   carried in the conntrack mark while the endpoint is picked). `lep-X`, `lepa-X`, `laff-X`
//!   are the same for the node-local endpoints (traffic policy Local).
//! - filter (priority -110, before DNAT): `no-endpoint-services` / `no-endpoint-nodeports` reject
//!   (tcp reset / icmp port-unreachable) or drop traffic to Services without usable endpoints;
//!   `firewall-ips` enforces source ranges; `cluster-ips` rejects ClusterIP ports that are not
//!   Service ports.
//! - nat `postrouting` (priority 100): masquerade what was marked `0x4000`, and hairpin
//!   connections (an endpoint reaching itself through its Service; `hairpin` holds `E . E` per
//!   endpoint).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use crate::model::{categorize, Endpoint, Protocol, ServicePort, ServicePortName, State};

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
}

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
        let mut h: u64 = 0xcbf29ce484222325;
        for b in format!(
            "{}/{}/{}/{}",
            id.namespace,
            id.name,
            id.protocol.lower(),
            id.port
        )
        .bytes()
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
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

/// Elements one Service port contributes to the shared maps and sets.
#[derive(Default)]
struct Shared {
    service_ips: Vec<String>,
    service_nodeports: Vec<String>,
    no_endpoint_services: Vec<String>,
    no_endpoint_nodeports: Vec<String>,
    firewall_ips: Vec<String>,
    cluster_ips: Vec<String>,
    hairpin: Vec<String>,
}

impl Shared {
    fn extend(&mut self, o: Shared) {
        self.service_ips.extend(o.service_ips);
        self.service_nodeports.extend(o.service_nodeports);
        self.no_endpoint_services.extend(o.no_endpoint_services);
        self.no_endpoint_nodeports.extend(o.no_endpoint_nodeports);
        self.firewall_ips.extend(o.firewall_ips);
        self.cluster_ips.extend(o.cluster_ips);
        self.hairpin.extend(o.hairpin);
    }

    /// `(name, elements)` of the maps and sets, elements sorted and de-duplicated.
    fn lists(self) -> Vec<(&'static str, Vec<String>)> {
        let sort = |v: Vec<String>| -> Vec<String> {
            v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
        };
        vec![
            (SERVICE_IPS, sort(self.service_ips)),
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
    /// `(name, declaration, elements)`.
    maps: Vec<(String, &'static str, Vec<String>)>,
    /// `(name, rules)`, in an order where a chain is defined before chains that jump to it.
    chains: Vec<(String, Vec<String>)>,
    shared: Shared,
}

/// Names and declarations of every per-service map (for removal).
fn all_maps(key: &str) -> Vec<(String, &'static str)> {
    vec![
        (format!("{EPS_MAP}{key}"), EPS_DECL),
        (format!("{EPA_MAP}{key}"), EPA_DECL),
        (format!("{AFF_MAP}{key}"), AFF_DECL),
        (format!("{LOCAL_EPS_MAP}{key}"), EPS_DECL),
        (format!("{LOCAL_EPA_MAP}{key}"), EPA_DECL),
        (format!("{LOCAL_AFF_MAP}{key}"), AFF_DECL),
    ]
}

fn all_chains(key: &str) -> Vec<String> {
    vec![
        format!("{SVC_CHAIN}{key}"),
        format!("{EXT_CHAIN}{key}"),
        format!("{FW_CHAIN}{key}"),
    ]
}

/// Rules picking one of `eps` (non-empty, IPv4), recording the maps they use in `plan`.
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
    let gen = if cfg.random { "random" } else { "inc" };
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

fn plan(sp: &ServicePort, eps: &[Endpoint], node: &NodeInfo, cfg: &Config) -> Plan {
    let key = service_key(&sp.id);
    let proto = sp.protocol.lower();
    let port = sp.port;
    let (cluster, local) = categorize(sp, eps, &node.name, node.zone.as_deref());
    fn only_v4(v: Vec<&Endpoint>) -> Vec<&Endpoint> {
        v.into_iter().filter(|e| e.ip.is_ipv4()).collect()
    }
    let (cluster, local) = (only_v4(cluster), only_v4(local));
    let internal = if sp.internal_local { &local } else { &cluster };
    let external = if sp.external_local { &local } else { &cluster };
    let no_endpoints = if cluster.is_empty() {
        format!("goto {REJECT_CHAIN}")
    } else {
        "drop".to_string()
    };

    let svc = format!("{SVC_CHAIN}{key}");
    let ext = format!("{EXT_CHAIN}{key}");
    let fw = format!("{FW_CHAIN}{key}");
    let mut maps = Vec::new();
    let mut chains = Vec::new();
    let mut shared = Shared::default();

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
    if has_svc {
        let mut rules = vec![match v4_cidr(cfg) {
            Some(c) => format!("ip saddr != {c} jump {MARK_FOR_MASQUERADE}"),
            None => format!("jump {MARK_FOR_MASQUERADE}"),
        }];
        rules.extend(dispatch(
            sp,
            internal,
            sp.internal_local,
            &key,
            cfg,
            &mut maps,
        ));
        chains.push((svc.clone(), rules));
    }
    for ip in &cluster_ips {
        shared.cluster_ips.push(ip.to_string());
        let k = format!("{ip} . {proto} . {port}");
        if has_svc {
            shared.service_ips.push(format!("{k} : goto {svc}"));
        } else {
            shared
                .no_endpoint_services
                .push(format!("{k} : {no_endpoints}"));
        }
    }

    // External (NodePort, external IP, load-balancer IP) traffic.
    if has_external {
        if !external.is_empty() {
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
            // The same endpoints as the internal dispatch share its maps.
            let same = sp.external_local == sp.internal_local && has_svc;
            let mut scratch = Vec::new();
            let target = if same { &mut scratch } else { &mut maps };
            rules.extend(dispatch(sp, external, sp.external_local, &key, cfg, target));
            chains.push((ext.clone(), rules));
        }
        let verdict = if external.is_empty() {
            no_endpoints.clone()
        } else {
            format!("goto {ext}")
        };
        for ip in &external_ips {
            let k = format!("{ip} . {proto} . {port}");
            if external.is_empty() {
                shared.no_endpoint_services.push(format!("{k} : {verdict}"));
            } else {
                shared.service_ips.push(format!("{k} : {verdict}"));
            }
        }
        if sp.node_port != 0 {
            let k = format!("{proto} . {}", sp.node_port);
            if external.is_empty() {
                shared
                    .no_endpoint_nodeports
                    .push(format!("{k} : {verdict}"));
            } else {
                shared.service_nodeports.push(format!("{k} : {verdict}"));
            }
        }
    }

    // loadBalancerSourceRanges.
    if !lb_ips.is_empty() && !sp.load_balancer_source_ranges.is_empty() {
        let ranges: Vec<String> = sp
            .load_balancer_source_ranges
            .iter()
            .filter_map(|r| match r {
                ipnet::IpNet::V4(n) => Some(n.trunc().to_string()),
                ipnet::IpNet::V6(_) => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let rule = if ranges.is_empty() {
            "drop".to_string()
        } else {
            format!("ip saddr != {{ {} }} drop", ranges.join(", "))
        };
        chains.push((fw.clone(), vec![rule]));
        for ip in &lb_ips {
            shared
                .firewall_ips
                .push(format!("{ip} . {proto} . {port} : goto {fw}"));
        }
    }

    let used: BTreeSet<Ipv4Addr> = internal
        .iter()
        .chain(external.iter())
        .filter_map(|e| v4(&e.ip))
        .collect();
    shared
        .hairpin
        .extend(used.iter().map(|ip| format!("{ip} . {ip}")));
    maps.sort();
    maps.dedup_by(|a, b| a.0 == b.0);
    Plan {
        maps,
        chains,
        shared,
    }
}

fn plans<'a>(
    state: &'a State,
    node: &NodeInfo,
    cfg: &Config,
) -> impl Iterator<Item = (&'a ServicePortName, Plan)> {
    let node = node.clone();
    let cfg = cfg.clone();
    state.services.iter().map(move |(id, sp)| {
        let eps = state.endpoints.get(id).map(Vec::as_slice).unwrap_or(&[]);
        (id, plan(sp, eps, &node, &cfg))
    })
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

/// The per-service maps and chains of `p` inside a `table ip svcnet { ... }` block.
fn push_objects(out: &mut String, p: &Plan) {
    for (name, decl, _) in &p.maps {
        let _ = writeln!(out, "\tmap {name} {{\n\t\t{decl}\n\t}}");
    }
    for (name, rules) in &p.chains {
        let _ = writeln!(out, "\tchain {name} {{");
        for r in rules {
            let _ = writeln!(out, "\t\t{r}");
        }
        out.push_str("\t}\n");
    }
}

fn push_map_elements(out: &mut String, p: &Plan) {
    for (name, _, elems) in &p.maps {
        push_elements(out, name, elems);
    }
}

/// A complete `nft -f` script for `state`: the table replaced in one transaction.
pub fn render_full(state: &State, node: &NodeInfo, cfg: &Config) -> String {
    let all: Vec<(&ServicePortName, Plan)> = plans(state, node, cfg).collect();
    let mut out = String::new();
    let _ = writeln!(out, "table {FAMILY_TABLE} {{}}");
    let _ = writeln!(out, "delete table {FAMILY_TABLE}");
    let _ = writeln!(out, "table {FAMILY_TABLE} {{");
    // Shared sets and maps.
    let _ = writeln!(out, "\tmap {SERVICE_IPS} {{\n\t\t{VERDICT_KEY3}\n\t}}");
    let _ = writeln!(
        out,
        "\tmap {SERVICE_NODEPORTS} {{\n\t\t{VERDICT_KEY2}\n\t}}"
    );
    let _ = writeln!(
        out,
        "\tmap {NO_ENDPOINT_SERVICES} {{\n\t\t{VERDICT_KEY3}\n\t}}"
    );
    let _ = writeln!(
        out,
        "\tmap {NO_ENDPOINT_NODEPORTS} {{\n\t\t{VERDICT_KEY2}\n\t}}"
    );
    let _ = writeln!(out, "\tmap {FIREWALL_IPS} {{\n\t\t{VERDICT_KEY3}\n\t}}");
    let _ = writeln!(out, "\tset {CLUSTER_IPS} {{\n\t\ttype ipv4_addr;\n\t}}");
    let _ = writeln!(
        out,
        "\tset {HAIRPIN} {{\n\t\ttype ipv4_addr . ipv4_addr;\n\t}}"
    );
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
    let chain =
        |out: &mut String, name: &str, hook: Option<(&str, &str, i32)>, rules: &[String]| {
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
    chain(
        &mut out,
        SERVICES,
        None,
        &[
            format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
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
    for (_, p) in &all {
        push_objects(&mut out, p);
    }
    out.push_str("}\n");
    // Elements.
    let mut shared = Shared::default();
    for (_, p) in all {
        push_map_elements(&mut out, &p);
        shared.extend(p.shared);
    }
    for (name, elems) in shared.lists() {
        push_elements(&mut out, name, &elems);
    }
    out
}

/// A partial sync of one Service port; see [`render_services`].
pub fn render_service(
    state: &State,
    id: &ServicePortName,
    node: &NodeInfo,
    cfg: &Config,
) -> String {
    render_services(state, std::iter::once(id), node, cfg)
}

/// A partial sync of the Service ports `ids` (present in `state` or removed from it), assuming
/// the table exists from [`render_full`]: their chains and maps are removed and defined anew,
/// and the shared verdict maps and `cluster-ips` are refilled from `state` in the same
/// transaction (their previous keys — a removed Service's ClusterIP, a changed node port — are
/// not known here, so they are replaced as a whole; that costs one element per Service port, not
/// a rule). `hairpin` only grows (a stale `E . E` is harmless); [`render_full`] trims it.
/// sessionAffinity state of these Service ports restarts.
pub fn render_services<'a>(
    state: &State,
    ids: impl IntoIterator<Item = &'a ServicePortName>,
    node: &NodeInfo,
    cfg: &Config,
) -> String {
    let ids: BTreeSet<&ServicePortName> = ids.into_iter().collect();
    let mut out = String::new();
    let flushes = [
        ("map", SERVICE_IPS),
        ("map", SERVICE_NODEPORTS),
        ("map", NO_ENDPOINT_SERVICES),
        ("map", NO_ENDPOINT_NODEPORTS),
        ("map", FIREWALL_IPS),
        ("set", CLUSTER_IPS),
    ];
    for (kind, name) in flushes {
        let _ = writeln!(out, "flush {kind} {FAMILY_TABLE} {name}");
    }
    // Remove the Service ports' objects (creating them first makes this idempotent).
    for id in &ids {
        let key = service_key(id);
        for c in all_chains(&key) {
            let _ = writeln!(out, "add chain {FAMILY_TABLE} {c}");
            let _ = writeln!(out, "flush chain {FAMILY_TABLE} {c}");
        }
    }
    for id in &ids {
        let key = service_key(id);
        for c in all_chains(&key) {
            let _ = writeln!(out, "delete chain {FAMILY_TABLE} {c}");
        }
        for (m, decl) in all_maps(&key) {
            let _ = writeln!(out, "add map {FAMILY_TABLE} {m} {{ {decl} }}");
            let _ = writeln!(out, "delete map {FAMILY_TABLE} {m}");
        }
    }
    // Define them anew, then refill the shared maps.
    let mut mine = Vec::new();
    let mut shared = Shared::default();
    for (id, p) in plans(state, node, cfg) {
        if ids.contains(id) {
            mine.push(p);
        } else {
            shared.extend(p.shared);
        }
    }
    if mine
        .iter()
        .any(|p| !p.maps.is_empty() || !p.chains.is_empty())
    {
        let _ = writeln!(out, "table {FAMILY_TABLE} {{");
        for p in &mine {
            push_objects(&mut out, p);
        }
        out.push_str("}\n");
    }
    let mut hairpin = Vec::new();
    for p in mine {
        push_map_elements(&mut out, &p);
        hairpin.extend(p.shared.hairpin.iter().cloned());
        shared.extend(p.shared);
    }
    shared.hairpin = hairpin;
    for (name, elems) in shared.lists() {
        push_elements(&mut out, name, &elems);
    }
    out
}

/// Whether `sp` (with `eps`) could contribute an element with one of these addresses or node
/// ports to a shared map or set.
fn touches(
    sp: &ServicePort,
    eps: &[Endpoint],
    ips: &BTreeSet<IpAddr>,
    ports: &BTreeSet<(Protocol, u16)>,
) -> bool {
    sp.cluster_ips
        .iter()
        .chain(&sp.external_ips)
        .chain(&sp.load_balancer_ips)
        .chain(eps.iter().map(|e| &e.ip))
        .any(|ip| ips.contains(ip))
        || (sp.node_port != 0 && ports.contains(&(sp.protocol, sp.node_port)))
}

/// Addresses and node ports that appear in the shared elements of `sp`.
fn keys_of(
    sp: &ServicePort,
    eps: &[Endpoint],
    ips: &mut BTreeSet<IpAddr>,
    ports: &mut BTreeSet<(Protocol, u16)>,
) {
    ips.extend(
        sp.cluster_ips
            .iter()
            .chain(&sp.external_ips)
            .chain(&sp.load_balancer_ips),
    );
    ips.extend(eps.iter().map(|e| e.ip));
    if sp.node_port != 0 {
        ports.insert((sp.protocol, sp.node_port));
    }
}

/// The shared elements of the Service ports `ids` in `state`, as `(map, element)`.
fn shared_of(
    state: &State,
    ids: &BTreeSet<&ServicePortName>,
    node: &NodeInfo,
    cfg: &Config,
) -> (
    BTreeSet<(&'static str, String)>,
    BTreeMap<ServicePortName, Plan>,
) {
    let mut elems = BTreeSet::new();
    let mut plans = BTreeMap::new();
    for id in ids {
        let Some(sp) = state.services.get(*id) else {
            continue;
        };
        let eps = state.endpoints.get(*id).map(Vec::as_slice).unwrap_or(&[]);
        let mut p = plan(sp, eps, node, cfg);
        for (name, list) in std::mem::take(&mut p.shared).lists() {
            elems.extend(list.into_iter().map(|e| (name, e)));
        }
        plans.insert((*id).clone(), p);
    }
    (elems, plans)
}

/// The key of a map element `key : value` (a set element is all key).
fn element_key(e: &str) -> &str {
    e.split_once(" : ").map_or(e, |(k, _)| k)
}

/// An incremental sync from `old` (what the table holds, as [`render_full`] of `old` or earlier
/// partial syncs left it) to `new`, for the Service ports `ids` (the ones that differ; others
/// must be equal in both states). One transaction that:
///
/// - deletes from the shared maps and sets exactly the elements the `old` Service ports put
///   there and that nothing in `new` still needs (an element shared with another Service port,
///   such as a ClusterIP of a multi-port Service or an endpoint's `hairpin` entry, stays),
/// - flushes and refills the per-service chains and maps of the Service ports still present, and
///   deletes those no longer used (or all of them for a removed Service port),
/// - adds the shared elements `new` has and `old` had not.
///
/// Its cost depends on the changed Service ports, not on the size of the table (unlike
/// [`render_services`], which refills the shared maps from the whole state). Not idempotent:
/// apply it once, against the table `old` describes. sessionAffinity state of these Service
/// ports restarts.
pub fn render_changes<'a>(
    old: &State,
    new: &State,
    ids: impl IntoIterator<Item = &'a ServicePortName>,
    node: &NodeInfo,
    cfg: &Config,
) -> String {
    let ids: BTreeSet<&ServicePortName> = ids.into_iter().collect();
    let (old_elems, _) = shared_of(old, &ids, node, cfg);
    let (new_elems, mine) = shared_of(new, &ids, node, cfg);

    // Elements the unchanged Service ports contribute, restricted to the few Service ports that
    // could share one with the changed ones (same address or node port).
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for st in [old, new] {
        for id in &ids {
            if let Some(sp) = st.services.get(*id) {
                let eps = st.endpoints.get(*id).map(Vec::as_slice).unwrap_or(&[]);
                keys_of(sp, eps, &mut ips, &mut ports);
            }
        }
    }
    let mut others: BTreeSet<(&'static str, String)> = BTreeSet::new();
    for (id, sp) in &new.services {
        if ids.contains(id) {
            continue;
        }
        let eps = new.endpoints.get(id).map(Vec::as_slice).unwrap_or(&[]);
        if !touches(sp, eps, &ips, &ports) {
            continue;
        }
        for (name, list) in plan(sp, eps, node, cfg).shared.lists() {
            others.extend(list.into_iter().map(|e| (name, e)));
        }
    }

    let group = |set: BTreeSet<&(&'static str, String)>| {
        let mut by_map: Vec<(&'static str, Vec<String>)> = Vec::new();
        for (name, e) in set {
            match by_map.last_mut() {
                Some((n, v)) if n == name => v.push(e.clone()),
                _ => by_map.push((name, vec![e.clone()])),
            }
        }
        by_map
    };
    let deletes = group(
        old_elems
            .iter()
            .filter(|e| !new_elems.contains(*e) && !others.contains(*e))
            .collect(),
    );
    let adds = group(
        new_elems
            .iter()
            .filter(|e| !old_elems.contains(*e) && !others.contains(*e))
            .collect(),
    );

    let mut out = String::new();
    // 1. Shared elements that go (they may reference chains deleted below).
    for (name, elems) in &deletes {
        let _ = writeln!(out, "delete element {FAMILY_TABLE} {name} {{");
        let keys: BTreeSet<&str> = elems.iter().map(|e| element_key(e)).collect();
        for k in keys {
            let _ = writeln!(out, "\t{k},");
        }
        out.push_str("}\n");
    }
    // 2. Empty every chain of the Service ports (creating them first makes this robust), then
    // remove the chains `new` does not use, and replace the maps.
    for id in &ids {
        for c in all_chains(&service_key(id)) {
            let _ = writeln!(out, "add chain {FAMILY_TABLE} {c}");
            let _ = writeln!(out, "flush chain {FAMILY_TABLE} {c}");
        }
    }
    for id in &ids {
        let key = service_key(id);
        let p = mine.get(*id);
        let has_chain = |c: &str| p.is_some_and(|p| p.chains.iter().any(|(n, _)| n == c));
        for c in all_chains(&key) {
            if !has_chain(&c) {
                let _ = writeln!(out, "delete chain {FAMILY_TABLE} {c}");
            }
        }
        for (m, decl) in all_maps(&key) {
            let _ = writeln!(out, "add map {FAMILY_TABLE} {m} {{ {decl} }}");
            // Replaced rather than flushed: nft, reading a `typeof` map back from the kernel,
            // refuses a `tcp` rule on it.
            let _ = writeln!(out, "delete map {FAMILY_TABLE} {m}");
        }
    }
    // 3. Their chains' rules and their maps' elements.
    if mine
        .values()
        .any(|p| !p.chains.is_empty() || !p.maps.is_empty())
    {
        let _ = writeln!(out, "table {FAMILY_TABLE} {{");
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
    out
}

fn nft(netns: Option<&str>, args: &[&str], script: &str) -> Result<(), Error> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => Command::new("nft"),
    };
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
mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol, ServicePort, ServicePortName, State};
    use pretty_assertions::assert_eq;

    fn id(name: &str, port: &str, protocol: Protocol) -> ServicePortName {
        ServicePortName {
            namespace: "default".into(),
            name: name.into(),
            port: port.into(),
            protocol,
        }
    }

    fn sp(id: &ServicePortName, cluster_ip: &str, port: u16) -> ServicePort {
        ServicePort::new(id.clone(), cluster_ip.parse().unwrap(), port)
    }

    fn ep(ip: &str, port: u16, node: &str) -> Endpoint {
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

    fn add(st: &mut State, s: ServicePort, eps: Vec<Endpoint>) {
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

    /// The partial syncs the golden and nft tests exercise: `(golden name, state, id)`.
    fn partials() -> Vec<(&'static str, State, ServicePortName)> {
        let st = fixture();
        let mut scaled = st.clone();
        scaled
            .endpoints
            .get_mut(&id("web", "http", Protocol::Tcp))
            .unwrap()
            .truncate(1);
        let mut removed = st.clone();
        removed.services.remove(&id("sticky", "", Protocol::Tcp));
        removed.endpoints.remove(&id("sticky", "", Protocol::Tcp));
        let mut emptied = st.clone();
        emptied
            .endpoints
            .insert(id("lb", "", Protocol::Tcp), Vec::new());
        vec![
            (
                "nftables-service-web-scaled.nft",
                scaled,
                id("web", "http", Protocol::Tcp),
            ),
            (
                "nftables-service-sticky-removed.nft",
                removed,
                id("sticky", "", Protocol::Tcp),
            ),
            (
                "nftables-service-lb-emptied.nft",
                emptied,
                id("lb", "", Protocol::Tcp),
            ),
        ]
    }

    /// Incremental changes the golden and nft tests exercise: `(golden name, old, new, ids)`.
    fn changes() -> Vec<(&'static str, State, State, Vec<ServicePortName>)> {
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

    #[test]
    fn golden_changes() {
        for (name, old, new, ids) in changes() {
            let out = render_changes(&old, &new, &ids, &node(), &cfg());
            assert_eq!(
                out,
                render_changes(
                    &old.clone(),
                    &new.clone(),
                    ids.iter().rev(),
                    &node(),
                    &cfg()
                )
            );
            golden(name, &out);
        }
        // Nothing changed: nothing to do beyond rewriting the Service port's own objects.
        let st = fixture();
        let web = id("web", "http", Protocol::Tcp);
        let out = render_changes(&st, &st, [&web], &node(), &cfg());
        assert!(!out.contains("element ip svcnet service-ips"), "{out}");
        assert!(!out.contains("delete element"), "{out}");
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
                apply(ns, &render_full(from, &node(), &cfg())).unwrap();
                let script = render_changes(from, to, &ids, &node(), &cfg());
                apply(ns, &script).unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
                let incremental = listing(&scratch.0);
                apply(ns, &render_full(to, &node(), &cfg())).unwrap();
                assert_eq!(listing(&scratch.0), incremental, "{name}\n{script}");
            }
        }
        // A chain of changes from a full load, each against the previous state.
        let mut cur = fixture();
        apply(ns, &render_full(&cur, &node(), &cfg())).unwrap();
        for (name, _, new, ids) in changes() {
            // This case's change to these Service ports, on top of the previous ones.
            let mut next = cur.clone();
            for id in &ids {
                next.services.remove(id);
                next.endpoints.remove(id);
                if let Some(s) = new.services.get(id) {
                    next.services.insert(id.clone(), s.clone());
                }
                if let Some(e) = new.endpoints.get(id) {
                    next.endpoints.insert(id.clone(), e.clone());
                }
            }
            let script = render_changes(&cur, &next, &ids, &node(), &cfg());
            apply(ns, &script).unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
            cur = next;
        }
        assert!(!cur.services.contains_key(&id("web", "dns", Protocol::Udp)));
        let incremental = listing(&scratch.0);
        apply(ns, &render_full(&cur, &node(), &cfg())).unwrap();
        assert_eq!(listing(&scratch.0), incremental);
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
    fn golden_partial() {
        for (name, st, id) in partials() {
            golden(name, &render_service(&st, &id, &node(), &cfg()));
        }
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
        // Partial scripts need the table: load it for real, then check and apply each.
        apply(ns, &full).unwrap();
        apply(ns, &full).unwrap();
        for (name, st, id) in partials() {
            let script = render_service(&st, &id, &node(), &cfg());
            check(ns, &script).unwrap_or_else(|e| panic!("{name}: {e}"));
            apply(ns, &script).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Applying it again changes nothing and still works.
            apply(ns, &script).unwrap_or_else(|e| panic!("{name} again: {e}"));
            // A new Service added by a partial sync.
            apply(ns, &render_service(&fixture(), &id, &node(), &cfg())).unwrap();
        }
        // All Service ports at once, then everything removed.
        let st = fixture();
        apply(
            ns,
            &render_services(&st, st.services.keys(), &node(), &cfg()),
        )
        .unwrap();
        apply(
            ns,
            &render_services(&State::default(), st.services.keys(), &node(), &cfg()),
        )
        .unwrap();
        let listed = svcnet_netns::NetNs::open(&scratch.0)
            .unwrap()
            .exec(&["nft", "list", "table", "ip", TABLE])
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(!listed.contains("svc-"), "{listed}");
        assert!(!listed.contains("10.97.1."), "{listed}");
        let err = apply(ns, "add rule ip svcnet nope accept\n").unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        cleanup(ns).unwrap();
        cleanup(ns).unwrap();
    }
}
