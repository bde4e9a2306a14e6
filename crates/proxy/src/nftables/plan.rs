//! Per-Service-port plans (kube-proxy's `syncProxyRules` loop body, one Service port at a
//! time): which shared elements a Service port contributes, or which chains and maps of its own
//! it needs, and the [`Numbering`] that names it on the shared dispatch path. Pure: a model in,
//! a [`Plan`] out; [`super::render`] writes plans as scripts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::model::{categorize, Endpoint, NodeInfo, ServicePort, ServicePortName, State};

use super::elements::{push_comment, Comment, Commented, Dest, Elem, NodePort, Verdict};
use super::names::*;

/// Proxy settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The cluster's pod CIDR: traffic from outside it to a ClusterIP is masqueraded (always,
    /// when None).
    pub cluster_cidr: Option<ipnet::IpNet>,
    /// `numgen random` instead of round-robin `numgen inc`.
    pub random: bool,
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

pub(super) fn v4(ip: &IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    }
}

pub(super) fn v4_cidr(cfg: &Config) -> Option<ipnet::Ipv4Net> {
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
    pub(super) ids: BTreeMap<ServicePortName, u32>,
    pub(super) free: Vec<u32>,
    pub(super) next: u32,
    pub(super) dispatch: BTreeSet<usize>,
    /// Per shared element ([`element_id`]), how many Service ports put it there.
    pub(super) refs: HashMap<u128, u32, foldhash::fast::RandomState>,
}

impl Numbering {
    #[cfg(test)]
    pub(super) fn get(&self, id: &ServicePortName) -> Option<u32> {
        self.ids.get(id).copied()
    }

    pub(super) fn assign(&mut self, id: &ServicePortName) -> u32 {
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

    pub(super) fn release(&mut self, id: &ServicePortName) {
        if let Some(n) = self.ids.remove(id) {
            self.free.push(n);
        }
    }
}

/// Whether `sp` uses the shared dispatch path (else it has chains and maps of its own).
pub(super) fn shared_dispatch(sp: &ServicePort) -> bool {
    sp.affinity_timeout.is_none() && !sp.internal_local && !sp.external_local
}

/// Elements one Service port contributes to the shared maps and sets.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) service_ips: Vec<Elem>,
    pub(super) service_ids: Vec<Elem>,
    pub(super) service_nodeports: Vec<Elem>,
    pub(super) nodeport_ids: Vec<Elem>,
    pub(super) no_endpoint_services: Vec<Elem>,
    pub(super) no_endpoint_nodeports: Vec<Elem>,
    pub(super) firewall_ips: Vec<Elem>,
    pub(super) cluster_ips: Vec<Elem>,
    pub(super) hairpin: Vec<Elem>,
    pub(super) endpoints: Vec<Elem>,
    /// The Service port's `namespace/name:port`, written on its elements.
    pub(super) comment: Comment,
}

impl Shared {
    /// The comment of this Service port's elements of `set`: none in `cluster-ips` and
    /// `hairpin`, whose elements several Service ports share (kube-proxy leaves its
    /// `cluster-ips` elements uncommented too).
    pub(super) fn comment_for(&self, set: &str) -> Option<&Arc<str>> {
        self.comment.as_ref().filter(|_| commented(set))
    }

    /// The elements that another Service port may also contribute (all but `endpoints`, whose
    /// keys are unique), de-duplicated within this Service port.
    pub(super) fn counted(&self) -> [(&'static str, Vec<&Elem>); 9] {
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

    /// `(name, elements)` of the maps and sets, as the Service port made them.
    fn into_lists(self) -> [(&'static str, Vec<Elem>); 10] {
        [
            (ENDPOINTS, self.endpoints),
            (SERVICE_IDS, self.service_ids),
            (SERVICE_IPS, self.service_ips),
            (NODEPORT_IDS, self.nodeport_ids),
            (SERVICE_NODEPORTS, self.service_nodeports),
            (NO_ENDPOINT_SERVICES, self.no_endpoint_services),
            (NO_ENDPOINT_NODEPORTS, self.no_endpoint_nodeports),
            (FIREWALL_IPS, self.firewall_ips),
            (CLUSTER_IPS, self.cluster_ips),
            (HAIRPIN, self.hairpin),
        ]
    }
}

/// Every Service port's shared elements, by map or set with their comments (every shared map
/// and set named, even when empty): sorted, each element once, with the comment of the first
/// Service port in `all` that has it.
pub(super) fn merge(all: Vec<Shared>) -> Vec<(&'static str, Vec<Commented>)> {
    let mut out: Vec<(&'static str, Vec<Commented>)> = Shared::default()
        .into_lists()
        .into_iter()
        .map(|(name, _)| (name, Vec::new()))
        .collect();
    for s in all {
        let comment = s.comment.clone();
        for (i, (name, list)) in s.into_lists().into_iter().enumerate() {
            let c = if commented(name) {
                comment.clone()
            } else {
                None
            };
            out[i].1.extend(list.into_iter().map(|e| (e, c.clone())));
        }
    }
    for (name, v) in &mut out {
        // `endpoints` keys are unique already.
        if *name != ENDPOINTS {
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v.dedup_by(|a, b| a.0 == b.0);
        }
    }
    out
}

/// Whether a Service port's elements of `set` carry its comment (see [`Shared::comment_for`]).
fn commented(set: &str) -> bool {
    set != CLUSTER_IPS && set != HAIRPIN
}

/// What one Service port renders to.
pub(super) struct Plan {
    /// Its own maps: `(name, declaration, elements)`.
    pub(super) maps: Vec<(String, &'static str, Vec<String>)>,
    /// Its own chains: `(name, rules)`, in an order where a chain is defined before chains that
    /// jump to it.
    pub(super) chains: Vec<(String, Vec<String>)>,
    /// The endpoint count of its shared dispatch (its `pick-N` chains must exist).
    pub(super) dispatch: Option<usize>,
    pub(super) shared: Shared,
}

/// Rules picking one of `eps` (non-empty, IPv4) through maps of the Service port's own,
/// recording those maps in `maps`.
pub(super) fn dispatch(
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
    let mut comment = String::new();
    push_comment(&mut comment, &sp.id.to_string());
    let elems = |fmt_key: &dyn Fn(usize) -> String| -> Vec<String> {
        eps.iter()
            .enumerate()
            .map(|(i, e)| format!("{}{comment} : {} . {}", fmt_key(i), e.ip, e.port))
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

pub(super) fn numgen(cfg: &Config) -> &'static str {
    if cfg.random {
        "random"
    } else {
        "inc"
    }
}

/// The masquerade rule of ClusterIP traffic: unless it comes from the cluster CIDR.
pub(super) fn masquerade_unless_pods(cfg: &Config) -> String {
    match v4_cidr(cfg) {
        Some(c) => format!("ip saddr != {c} jump {MARK_FOR_MASQUERADE}"),
        None => format!("jump {MARK_FOR_MASQUERADE}"),
    }
}

/// The shared dispatch chains for endpoint count `n`: `(name, rules)`, `pick-N` first.
pub(super) fn dispatch_chains(n: usize, cfg: &Config) -> Vec<(String, Vec<String>)> {
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
pub(super) type Target = (Verdict, Option<u32>);

/// How the elements of a key kind are made: `(key : verdict, key : number)`.
pub(super) type ElemOf<K> = (fn(K, Verdict) -> Elem, fn(K, u32) -> Elem);

/// The elements of destination key `k` (a ClusterIP / external IP port, or a node port, whose
/// elements `verdict` and `number` make): `[verdicts, numbers, no-endpoint verdicts]` of its
/// kind get `k : verdict` and `k : number`, or, without a target, `k : no_endpoints`.
pub(super) fn route<K: Copy>(
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
pub(super) fn plan(
    sp: &ServicePort,
    eps: &[Endpoint],
    node: &NodeInfo,
    cfg: &Config,
    number: Option<u32>,
) -> Plan {
    let key = service_key(&sp.id);
    let port = sp.port;
    let (cluster, local) = categorize(sp, eps, &node.name, node.zone.as_deref());
    pub(super) fn only_v4(v: Vec<&Endpoint>) -> Vec<&Endpoint> {
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
    // Every rule of its own chains and every element it contributes name the Service port, as
    // kube-proxy's comments do, so `nft list ruleset | grep NAME` finds them.
    let name: Arc<str> = Arc::from(sp.id.to_string());
    for (_, rules) in &mut chains {
        for r in rules.iter_mut() {
            push_comment(r, &name);
        }
    }
    shared.comment = Some(name);
    Plan {
        maps,
        chains,
        dispatch: used_dispatch,
        shared,
    }
}

/// The plan of the Service port `id` of `state` (None when `state` does not have it), numbering
/// it in `num` when it uses the shared dispatch.
pub(super) fn plan_in(
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

/// What [`plans_of`] finds: `endpoints` elements, per other shared element how many of the
/// Service ports contribute it, their plans, and the comments of their shared elements.
pub(super) type Plans = (
    BTreeSet<Elem>,
    BTreeMap<(&'static str, Elem), i64>,
    BTreeMap<ServicePortName, Plan>,
    HashMap<(&'static str, Elem), Arc<str>>,
);

/// The plans of the Service ports `ids` in `state`, their `endpoints` elements, and how many
/// of them contribute each other shared element.
pub(super) fn plans_of(
    state: &State,
    ids: &BTreeSet<&ServicePortName>,
    node: &NodeInfo,
    cfg: &Config,
    num: &mut Numbering,
) -> Plans {
    let mut endpoints = BTreeSet::new();
    let mut counts = BTreeMap::new();
    let mut plans = BTreeMap::new();
    let mut comments = HashMap::new();
    for id in ids {
        let Some(mut p) = plan_in(state, id, node, cfg, num) else {
            continue;
        };
        for (name, list) in p.shared.counted() {
            let c = p.shared.comment_for(name);
            for e in list {
                *counts.entry((name, e.clone())).or_default() += 1;
                if let Some(c) = c {
                    comments
                        .entry((name, e.clone()))
                        .or_insert_with(|| c.clone());
                }
            }
        }
        let eps = std::mem::take(&mut p.shared.endpoints);
        if let Some(c) = p.shared.comment_for(ENDPOINTS) {
            comments.extend(eps.iter().map(|e| ((ENDPOINTS, e.clone()), c.clone())));
        }
        endpoints.extend(eps);
        plans.insert((*id).clone(), p);
    }
    (endpoints, counts, plans, comments)
}
