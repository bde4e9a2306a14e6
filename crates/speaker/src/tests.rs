use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::*;

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn now() -> jiff::Timestamp {
    "2026-01-01T00:00:10Z".parse().unwrap()
}

/// A node and, when `renewed`, its speaker's Lease (renewed then, valid 3 s).
fn node(name: &str, ready: bool, renewed: Option<&str>) -> (Node, Option<Lease>) {
    let node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
    .unwrap();
    let lease = renewed.map(|t| {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{LEASE_PREFIX}{name}"), "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 3, "renewTime": t},
        }))
        .unwrap()
    });
    (node, lease)
}

fn live(name: &str) -> (Node, Option<Lease>) {
    node(name, true, Some("2026-01-01T00:00:09.500000Z"))
}

/// The nodes and Leases of `members`, as the functions under test take them.
fn split(members: &[(Node, Option<Lease>)]) -> (Vec<&Node>, Vec<&Lease>) {
    (
        members.iter().map(|(n, _)| n).collect(),
        members.iter().filter_map(|(_, l)| l.as_ref()).collect(),
    )
}

fn lb(name: &str, ip: &str, policy: &str) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy,
                 "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }))
    .unwrap()
}

fn slice(svc: &str, eps: &[(&str, bool)]) -> EndpointSlice {
    let endpoints: Vec<_> = eps
        .iter()
        .enumerate()
        .map(|(i, (node, ready))| {
            serde_json::json!({"addresses": [format!("10.244.0.{}", i + 1)],
                "conditions": {"ready": ready}, "nodeName": node})
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{svc}-abc"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": endpoints,
    }))
    .unwrap()
}

#[test]
fn election_is_deterministic_and_order_independent() {
    let a = names(&["node-1", "node-2", "node-3"]);
    let b = names(&["node-3", "node-1", "node-2"]);
    for i in 0..50 {
        let ip = format!("172.28.0.{}", 200 + i);
        assert_eq!(elect(&ip, &a), elect(&ip, &b));
        assert_eq!(elect(&ip, &a), elect(&ip, &a));
    }
    assert_eq!(elect("172.28.0.200", &[]), None);
    assert_eq!(
        elect("172.28.0.200", &names(&["only"])).as_deref(),
        Some("only")
    );
}

#[test]
fn election_spreads_over_nodes() {
    let c = names(&["node-1", "node-2", "node-3"]);
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..30 {
        *count
            .entry(elect(&format!("172.28.0.{}", 200 + i), &c).unwrap())
            .or_default() += 1;
    }
    assert_eq!(
        count.len(),
        3,
        "every node wins some of 30 addresses: {count:?}"
    );
    assert!(count.values().all(|n| *n >= 4), "{count:?}");
}

#[test]
fn failover_moves_only_the_winners_addresses() {
    let all = names(&["node-1", "node-2", "node-3"]);
    for i in 0..30 {
        let ip = format!("172.28.0.{}", 200 + i);
        let winner = elect(&ip, &all).unwrap();
        let rest: Vec<String> = all.iter().filter(|n| **n != winner).cloned().collect();
        let next = elect(&ip, &rest).unwrap();
        assert_ne!(next, winner);
        // Removing a node that did not win leaves the winner in place.
        let loser = rest[0].clone();
        let without_loser: Vec<String> = all.iter().filter(|n| **n != loser).cloned().collect();
        assert_eq!(elect(&ip, &without_loser).unwrap(), winner);
    }
}

#[test]
fn candidates_need_ready_and_a_live_lease() {
    let members = [
        live("node-1"),
        node("node-2", false, Some("2026-01-01T00:00:09.500000Z")), // NotReady
        node("node-3", true, Some("2026-01-01T00:00:05Z")),         // lease expired
        node("node-4", true, None),                                 // no speaker
    ];
    let (nodes, leases) = split(&members);
    let svc = lb("web", "172.28.0.200", "Cluster");
    let c = candidates(&[&svc], &[], &nodes, &leases, now());
    assert_eq!(c, names(&["node-1"]));
    // A Lease that is not a speaker's (by name) counts for nothing.
    let mut foreign = members[0].1.clone().unwrap();
    foreign.metadata.name = Some("node-4".into());
    foreign.spec.as_mut().unwrap().holder_identity = Some("node-4".into());
    let mut with_foreign = leases.clone();
    with_foreign.push(&foreign);
    assert_eq!(
        candidates(&[&svc], &[], &nodes, &with_foreign, now()),
        names(&["node-1"])
    );
}

#[test]
fn leases_do_not_expire_when_every_renewal_stalls() {
    // The API server was unreachable for a while: nobody's renewal got through, all are old.
    let members = [
        node("node-1", true, Some("2026-01-01T00:00:01Z")),
        node("node-2", true, Some("2026-01-01T00:00:00.500000Z")),
    ];
    let (nodes, leases) = split(&members);
    let svc = lb("web", "172.28.0.200", "Cluster");
    let c = candidates(&[&svc], &[], &nodes, &leases, now());
    assert_eq!(c, names(&["node-1", "node-2"]));
}

#[test]
fn local_policy_needs_a_ready_local_endpoint() {
    let members = [live("node-1"), live("node-2"), live("node-3")];
    let (nodes, leases) = split(&members);
    let svc = lb("web", "172.28.0.200", "Local");
    let sl = slice("web", &[("node-2", true), ("node-3", false)]);
    let other = slice("other", &[("node-1", true)]);
    assert_eq!(
        candidates(&[&svc], &[&sl, &other], &nodes, &leases, now()),
        names(&["node-2"])
    );
    // Cluster policy: every live node.
    let svc = lb("web", "172.28.0.200", "Cluster");
    assert_eq!(candidates(&[&svc], &[&sl], &nodes, &leases, now()).len(), 3);
    // Local with no ready endpoint: nobody announces.
    let svc = lb("web", "172.28.0.200", "Local");
    let sl = slice("web", &[("node-3", false)]);
    assert!(candidates(&[&svc], &[&sl], &nodes, &leases, now()).is_empty());
}

#[test]
fn plan_splits_addresses_between_nodes_and_skips_foreign_classes() {
    let members = [live("node-1"), live("node-2"), live("node-3")];
    let (nodes, leases) = split(&members);
    let svcs: Vec<Service> = (0..12)
        .map(|i| {
            lb(
                &format!("s{i}"),
                &format!("172.28.0.{}", 200 + i),
                "Cluster",
            )
        })
        .collect();
    let refs: Vec<&Service> = svcs.iter().collect();
    let mut total = 0;
    for n in ["node-1", "node-2", "node-3"] {
        let p = plan(n, &refs, &[], &nodes, &leases, now());
        for (ip, owners) in &p {
            assert_eq!(owners.len(), 1);
            assert_eq!(
                elect(&ip.to_string(), &names(&["node-1", "node-2", "node-3"])).as_deref(),
                Some(n)
            );
        }
        total += p.len();
    }
    assert_eq!(total, 12, "each address announced by exactly one node");

    let mut foreign = lb("f", "172.28.0.250", "Cluster");
    foreign.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
    let mut ours = lb("o", "172.28.0.251", "Cluster");
    ours.spec.as_mut().unwrap().load_balancer_class = Some(CLASS.into());
    let mut cluster_ip = lb("c", "172.28.0.252", "Cluster");
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let all: Vec<_> = ["node-1", "node-2", "node-3"]
        .iter()
        .flat_map(|n| {
            plan(
                n,
                &[&foreign, &ours, &cluster_ip],
                &[],
                &nodes,
                &leases,
                now(),
            )
            .into_keys()
        })
        .collect();
    assert_eq!(
        all,
        vec!["172.28.0.251".parse::<std::net::Ipv4Addr>().unwrap()]
    );
}

#[test]
fn ranges() {
    let r = parse_range("172.28.0.200-172.28.0.249").unwrap();
    assert!(r.contains("172.28.0.200".parse().unwrap()));
    assert!(r.contains("172.28.0.249".parse().unwrap()));
    assert!(!r.contains("172.28.0.250".parse().unwrap()));
    let r = parse_range("10.0.0.0/30").unwrap();
    assert_eq!(r.last, "10.0.0.3".parse::<std::net::Ipv4Addr>().unwrap());
    assert!(parse_range("10.0.0.5-10.0.0.1").is_err());
}
