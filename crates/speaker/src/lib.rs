//! LoadBalancer address announcement, as MetalLB's layer-2 mode: for every IPv4 address in a
//! LoadBalancer Service's `status.loadBalancer.ingress`, one node is elected ([`elect`]) among
//! the nodes that can serve it ([`candidates`]); that node's speaker puts the address on its
//! interface as a /32 and sends unsolicited ARP, so the node network sends traffic for the
//! address to that node, where the service proxy's rules take it.
//!
//! Liveness: a node's Ready condition changes only after 40 s, too slow for failover, so every
//! speaker renews a coordination.k8s.io Lease of its own every second — `svcnet-speaker-<node>`
//! in [`LEASE_NAMESPACE`], labelled [`LEASE_LABEL`], held by the node, valid
//! `leaseDurationSeconds` (3) — as kubelets renew theirs in `kube-node-lease`. A speaker renews
//! only while its interface is up.
//!
//! What lives where:
//! - this file: who announces what — [`plan`], [`elect`], [`candidates`], the Lease liveness
//!   judgement ([`speaker_alive`]); pure, unit-tested in `tests.rs`;
//! - `speaker.rs`: the speaker itself ([`run`], MetalLB's `speaker/main.go` with its layer-2
//!   controller): reflectors from [`svcnet_informer`] wake a loop that applies [`plan`]; a
//!   second task renews this node's Lease ([`svcnet_informer::lease::LeaseHolder`]);
//! - `announce.rs`: the node side ([`Announcer`]: the /32 on the interface and gratuitous ARP,
//!   MetalLB's `internal/layer2`).
//!
//! Like every client of the API, the speaker reaches it only through kube-rs: it never imports
//! the API server or the store.

mod announce;
mod speaker;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use svcnet_informer::conditions::node_ready;

pub use announce::{parse_range, Announcer, IpRange};
pub use speaker::{release, run, SpeakerConfig};

/// The `spec.loadBalancerClass` svcnet serves (unset is ours too).
pub const CLASS: &str = "svcnet.io/loadbalancer";
/// Where the speakers' Leases live.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// A speaker's Lease is this followed by its node's name.
pub const LEASE_PREFIX: &str = "svcnet-speaker-";
/// The label (`key=value`) every speaker Lease carries, which the speakers watch.
pub const LEASE_LABEL: (&str, &str) = ("app.kubernetes.io/name", "svcnet-speaker");
/// Nodes with this label never announce (as MetalLB and the cloud providers).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// SHA-256 of `node#ip`, MetalLB's election key (a stable hash whose every bit depends on
/// every input byte: with FNV-1a the node name, which comes first, decides the order alone).
fn election_key(node: &str, ip: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(format!("{node}#{ip}").as_bytes()).into()
}

/// The node that announces `ip`: candidates ordered by SHA-256 of `node#ip` (MetalLB's
/// order), the first wins. Deterministic, so every speaker agrees given the same candidates;
/// different addresses land on different nodes; removing the winner leaves the others'
/// order unchanged (only its addresses move).
pub fn elect(ip: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .min_by_key(|n| (election_key(n, ip), n.as_str()))
        .cloned()
}

/// Is this Service's LoadBalancer ours to announce?
pub fn is_ours(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && matches!(spec.load_balancer_class.as_deref(), None | Some(CLASS))
}

/// The IPv4 ingress addresses of a LoadBalancer Service of ours.
pub fn ingress_ipv4(svc: &Service) -> Vec<Ipv4Addr> {
    if !is_ours(svc) {
        return Vec::new();
    }
    svc.status
        .iter()
        .flat_map(|s| s.load_balancer.iter())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// The Lease that says `node`'s speaker is alive, as its speaker writes it.
pub fn lease_holder(node: &str, duration_seconds: i64) -> svcnet_informer::lease::LeaseHolder {
    svcnet_informer::lease::LeaseHolder {
        name: format!("{LEASE_PREFIX}{node}"),
        holder: node.to_string(),
        labels: [(LEASE_LABEL.0.to_string(), LEASE_LABEL.1.to_string())].into(),
        duration_seconds,
    }
}

/// A speaker Lease's node (its holder), last renewal and duration in seconds.
fn renewal(lease: &Lease) -> Option<(&str, jiff::Timestamp, i64)> {
    if !lease.metadata.name.as_deref()?.starts_with(LEASE_PREFIX) {
        return None;
    }
    let spec = lease.spec.as_ref()?;
    let node = spec.holder_identity.as_deref()?;
    let at = spec.renew_time.as_ref()?.0;
    Some((node, at, i64::from(spec.lease_duration_seconds?)))
}

/// The time leases are judged against: now, or the newest renewal seen if that is older.
/// When no speaker's renewal gets through (the API server is down, the watch stalls), every
/// lease ages alike and none expires; a node falls out only when it stops renewing while
/// others go on.
pub fn lease_reference(leases: &[&Lease], now: jiff::Timestamp) -> jiff::Timestamp {
    leases
        .iter()
        .filter_map(|l| renewal(l).map(|(_, t, _)| t))
        .max()
        .map_or(now, |newest| newest.min(now))
}

/// Has `node`'s speaker renewed its Lease within its duration (of `reference`)?
pub fn speaker_alive(node: &str, leases: &[&Lease], reference: jiff::Timestamp) -> bool {
    leases
        .iter()
        .filter_map(|l| renewal(l))
        .any(|(n, at, secs)| {
            n == node && reference.duration_since(at) <= jiff::SignedDuration::from_secs(secs)
        })
}

/// Nodes that may announce an address of `services`: Ready, speaker alive, not excluded, and,
/// for each Service with `externalTrafficPolicy: Local`, holding a ready endpoint of it.
pub fn candidates(
    services: &[&Service],
    slices: &[&EndpointSlice],
    nodes: &[&Node],
    leases: &[&Lease],
    now: jiff::Timestamp,
) -> Vec<String> {
    let reference = lease_reference(leases, now);
    let mut out: Vec<String> = nodes
        .iter()
        .filter(|n| {
            node_ready(n)
                && speaker_alive(n.metadata.name.as_deref().unwrap_or(""), leases, reference)
        })
        .filter(|n| {
            !n.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(EXCLUDE_LABEL))
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    for svc in services {
        let local = svc
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local");
        if local {
            let with_endpoints = ready_endpoint_nodes(svc, slices);
            out.retain(|n| with_endpoints.contains(n));
        }
    }
    out
}

/// Nodes with an endpoint of `svc` whose `ready` condition is not false.
fn ready_endpoint_nodes(svc: &Service, slices: &[&EndpointSlice]) -> BTreeSet<String> {
    let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    slices
        .iter()
        .filter(|s| s.metadata.namespace.as_deref().unwrap_or("default") == ns)
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .is_some_and(|n| n == name)
        })
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .filter_map(|e| e.node_name.clone())
        .collect()
}

/// The addresses `node` wins, each with the Services (`namespace/name`) that use it.
pub fn plan(
    node: &str,
    services: &[&Service],
    slices: &[&EndpointSlice],
    nodes: &[&Node],
    leases: &[&Lease],
    now: jiff::Timestamp,
) -> BTreeMap<Ipv4Addr, Vec<String>> {
    let mut by_ip: BTreeMap<Ipv4Addr, Vec<&Service>> = BTreeMap::new();
    for svc in services {
        for ip in ingress_ipv4(svc) {
            by_ip.entry(ip).or_default().push(svc);
        }
    }
    by_ip
        .into_iter()
        .filter(|(ip, svcs)| {
            let c = candidates(svcs, slices, nodes, leases, now);
            elect(&ip.to_string(), &c).as_deref() == Some(node)
        })
        .map(|(ip, svcs)| {
            let names = svcs
                .iter()
                .map(|s| {
                    format!(
                        "{}/{}",
                        s.metadata.namespace.as_deref().unwrap_or("default"),
                        s.metadata.name.as_deref().unwrap_or_default()
                    )
                })
                .collect();
            (ip, names)
        })
        .collect()
}

#[cfg(test)]
mod tests;
