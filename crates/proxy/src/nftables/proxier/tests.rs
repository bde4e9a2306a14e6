//! The nftables mode's flows (kube-proxy's `pkg/proxy/nftables/proxier_test.go`): the flow
//! table traced through full syncs, round-robin and affinity between packets, and partial syncs
//! that must route as full ones do.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::nftables::{render_changes, render_full, render_full_with, Config, Numbering};
use crate::testing::fixtures::{extended, fixture, nft_cfg as cfg, node};
use crate::testing::flows::*;
use crate::testing::with_changes;
use crate::trace::{Data, Packet, Ruleset, Trace, Tracer, Verdict};

#[test]
fn every_feature() {
    let mut t = tracer(&extended());
    for (name, p, want) in cases() {
        // Several times: every pick of a round-robin must satisfy the case.
        for _ in 0..4 {
            check(&mut t, name, p, &want);
        }
    }
}

#[test]
fn every_feature_in_a_fresh_tracer() {
    // Each case alone, as the first packet the ruleset sees.
    for (name, p, want) in cases() {
        let mut t = tracer(&extended());
        let tr = check(&mut t, name, p, &want);
        assert!(!tr.random, "{name}");
    }
}

#[test]
fn paths_through_the_hooks() {
    let mut t = tracer(&fixture());
    let tr = t.trace(tcp(OUTSIDE, "10.97.1.1", 80));
    assert!(!tr.delivered_locally);
    assert_eq!(
        tr.chains,
        [
            "prerouting:filter-prerouting",
            "firewall-check",
            "prerouting:nat-prerouting",
            "services",
            "cluster-3",
            "mark-for-masquerade",
            "pick-3",
            "forward:filter-forward",
            "service-endpoints-check",
            "cluster-ips-check",
            "postrouting:nat-postrouting",
            "masquerading",
        ],
        "{tr}"
    );
    // ETP Local without a local endpoint: external clients are dropped in the external
    // chain (which keeps the pods' and the node's shortcuts).
    let tr = t.trace(tcp(OUTSIDE, NODE, 30083));
    assert_eq!(tr.verdict, Verdict::Drop, "{tr}");
    assert!(
        tr.chains.contains(&"ext-default/remote/tcp".to_string()),
        "{tr}"
    );
    let tr = t.trace(tcp(NODE, "10.97.1.1", 81).sent_by_node());
    assert_eq!(
        tr.chains
            .iter()
            .filter(|c| c.contains(':'))
            .collect::<Vec<_>>(),
        [
            "output:filter-output",
            "output:nat-output",
            "output:filter-output-post-dnat"
        ],
        "{tr}"
    );
}

#[test]
fn round_robin() {
    let mut t = tracer(&extended());
    for (src, masq) in [(POD, false), (OUTSIDE, true)] {
        let picks: Vec<Trace> = (0..3).map(|_| t.trace(tcp(src, "10.97.1.1", 80))).collect();
        let eps: BTreeSet<_> = picks.iter().map(|tr| tr.dnat.unwrap()).collect();
        assert_eq!(eps.len(), 3, "{picks:#?}");
        assert!(picks.iter().all(|tr| tr.masqueraded == masq));
    }
    // Six more: each endpoint twice.
    let mut count: BTreeMap<(Ipv4Addr, u16), usize> = BTreeMap::new();
    for _ in 0..6 {
        *count
            .entry(t.trace(tcp(POD, "10.97.1.1", 80)).dnat.unwrap())
            .or_default() += 1;
    }
    assert!(
        count.len() == 3 && count.values().all(|n| *n == 2),
        "{count:?}"
    );
    // A Service port with chains of its own (ETP Local's ClusterIP) cycles too.
    let eps: BTreeSet<_> = (0..2)
        .map(|_| t.trace(tcp(POD, "10.97.1.5", 80)).dnat.unwrap())
        .collect();
    assert_eq!(eps.len(), 2, "{eps:?}");
    // And a Service port of two endpoints on the shared path.
    let eps: BTreeSet<_> = (0..2)
        .map(|_| t.trace(tcp(POD, "10.97.2.1", 80)).dnat.unwrap())
        .collect();
    assert_eq!(eps.len(), 2, "{eps:?}");
}

#[test]
fn affinity_sticks() {
    let mut t = tracer(&extended());
    let aff = "aff-default/sticky/tcp";
    let first = t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap();
    // Other clients move the counter; the first one keeps its endpoint.
    let mut others = BTreeSet::new();
    for i in 1..=6 {
        let other = format!("203.0.113.{}", 100 + i);
        others.insert(t.trace(tcp(&other, "10.97.1.4", 80)).dnat.unwrap());
    }
    assert_eq!(others.len(), 2, "other clients spread: {others:?}");
    for _ in 0..3 {
        assert_eq!(t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap(), first);
    }
    assert_eq!(t.ruleset.maps[aff].keys(t.now).len(), 7);
    // Still within the timeout (300 s), refreshed by every connection.
    t.advance(299);
    assert_eq!(t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap(), first);
    t.advance(2);
    assert_eq!(t.ruleset.maps[aff].keys(t.now), [OUTSIDE]);
    // After the timeout the client is picked afresh (the counter's next value).
    t.advance(300);
    assert!(t.ruleset.maps[aff].keys(t.now).is_empty());
    let fresh: BTreeSet<_> = (0..2)
        .map(|_| {
            t.advance(301);
            t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap()
        })
        .collect();
    assert_eq!(fresh.len(), 2, "{fresh:?}");
    // One affinity map per Service port: the ClusterIP and the NodePort share it.
    let via_ip = t.trace(tcp(OUTSIDE, "10.97.1.12", 80)).dnat.unwrap();
    for _ in 0..3 {
        assert_eq!(t.trace(tcp(OUTSIDE, NODE, 30091)).dnat.unwrap(), via_ip);
    }
}

#[test]
fn random_and_no_node_ips_or_cidr() {
    let st = fixture();
    let bare = crate::model::NodeInfo {
        node_ips: vec![],
        ..node()
    };
    let cfg = Config {
        cluster_cidr: None,
        random: true,
    };
    let mut t = Tracer::from_script(&render_full(&st, &bare, &cfg), &local_ips());
    let tr = check(
        &mut t,
        "random",
        tcp(POD, "10.97.1.1", 80),
        &Want::To(WEB, true),
    );
    assert!(tr.random, "{tr}");
    assert_eq!(tr.dnat, Some(("10.244.0.2".parse().unwrap(), 8080)));
    t.random_pick = 2;
    let tr = t.trace(tcp(POD, "10.97.1.1", 80));
    assert_eq!(tr.dnat, Some(("10.244.1.4".parse().unwrap(), 8080)), "{tr}");
    // NodePorts on every local address but loopback (`fib daddr type local`).
    check(
        &mut t,
        "nodeport",
        tcp(OUTSIDE, NODE, 30080),
        &Want::To(E02, true),
    );
    check(
        &mut t,
        "loopback",
        tcp("127.0.0.1", "127.0.0.1", 30080).sent_by_node(),
        &Want::Pass,
    );
    check(&mut t, "etp drop", tcp(OUTSIDE, NODE, 30083), &Want::Drop);
    let tr = check(
        &mut t,
        "affinity",
        tcp(OUTSIDE, "10.97.1.4", 80),
        &Want::To(&["10.244.0.2:8080", "10.244.0.3:8080"], true),
    );
    assert!(tr.random);
}

#[test]
fn ipv6_is_skipped() {
    let t = tracer(&fixture());
    let all = t.ruleset.canonical();
    assert!(!all.contains("fd00"), "{all}");
    assert!(!all.contains("v6"), "{all}");
}

/// Both tracers treat every probe alike, several connections each.
fn same_routes(name: &str, a: &mut Tracer, b: &mut Tracer, probes: &[Packet]) {
    for p in probes {
        for _ in 0..3 {
            let (x, y) = (a.trace(*p), b.trace(*p));
            assert_eq!(
                (x.verdict, x.dnat, x.masqueraded),
                (y.verdict, y.dnat, y.masqueraded),
                "{name}: {p}\n  partial: {x}\n  full:    {y}"
            );
        }
    }
}

#[test]
fn partial_syncs_route_like_full_ones() {
    for (name, old, new, ids) in every_change() {
        for (from, to) in [(&old, &new), (&new, &old)] {
            let mut num = Numbering::default();
            let full = render_full_with(from, &node(), &cfg(), &mut num);
            let mut partial = Tracer::from_script(&full, &local_ips());
            let script = render_changes(from, to, &ids, &node(), &cfg(), &mut num);
            partial
                .ruleset
                .apply(&script)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
            let mut fresh = Tracer::from_script(
                &render_full_with(to, &node(), &cfg(), &mut num.clone()),
                &local_ips(),
            );
            same_routes(name, &mut partial, &mut fresh, &probes(&[from, to]));
        }
    }
}

#[test]
fn partial_syncs_build_the_full_table() {
    // Unused `pick-N` chains may stay after a partial sync; everything else is the same.
    let strip = |rs: &Ruleset| {
        let mut rs = rs.clone();
        loop {
            let used: BTreeSet<String> = rs
                .chains
                .values()
                .flat_map(|c| c.rules.iter().flat_map(|r| r.chains().map(str::to_string)))
                .chain(rs.maps.values().flat_map(|m| {
                    m.elems.values().filter_map(|(d, _)| match d {
                        Data::Verdict(j) => j.target().map(str::to_string),
                        _ => None,
                    })
                }))
                .collect();
            let before = rs.chains.len();
            rs.chains.retain(|n, _| {
                used.contains(n)
                    || !["cluster-", "external-", "pick-"]
                        .iter()
                        .any(|p| n.starts_with(p))
            });
            if rs.chains.len() == before {
                break;
            }
        }
        rs.canonical()
    };
    for (name, old, new, ids) in every_change() {
        for (from, to) in [(&old, &new), (&new, &old)] {
            let mut num = Numbering::default();
            let mut rs =
                Ruleset::parse(&render_full_with(from, &node(), &cfg(), &mut num)).unwrap();
            let script = render_changes(from, to, &ids, &node(), &cfg(), &mut num);
            rs.apply(&script)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
            let full =
                Ruleset::parse(&render_full_with(to, &node(), &cfg(), &mut num.clone())).unwrap();
            pretty_assertions::assert_eq!(strip(&rs), strip(&full), "{name}\n{script}");
        }
    }
}

#[test]
fn a_chain_of_partial_syncs() {
    // Each change on top of the previous ones, against one ruleset kept all along (with
    // its counters and affinity state), then compared with a full render.
    let mut cur = fixture();
    let mut num = Numbering::default();
    let mut t = Tracer::from_script(
        &render_full_with(&cur, &node(), &cfg(), &mut num),
        &local_ips(),
    );
    for (name, _, new, ids) in every_change() {
        if name == "everything" {
            continue;
        }
        let next = with_changes(&cur, &new, &ids);
        let script = render_changes(&cur, &next, &ids, &node(), &cfg(), &mut num);
        t.ruleset
            .apply(&script)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
        // Traffic in between, as on a live node.
        for p in probes(&[&next]) {
            t.trace(p);
        }
        cur = next;
    }
    // Last: web drained, its UDP port gone, lb drained, np back on 30080 with ETP Local,
    // local with ETP Cluster.
    let c = &mut t;
    check(
        c,
        "web drained",
        tcp(OUTSIDE, "10.97.1.1", 80),
        &Want::Reject { tcp_reset: true },
    );
    check(
        c,
        "port removed",
        udp(POD, "10.97.1.1", 53),
        &Want::Reject { tcp_reset: false },
    );
    check(
        c,
        "drained lb",
        tcp(LB_CLIENT, "198.51.100.100", 443),
        &Want::Reject { tcp_reset: true },
    );
    check(
        c,
        "np local",
        tcp(OUTSIDE, NODE, 30080),
        &Want::To(E02, false),
    );
    check(c, "np's other port", tcp(OUTSIDE, NODE, 30085), &Want::Pass);
    check(
        c,
        "local cluster",
        tcp(OUTSIDE, NODE, 30081),
        &Want::To(LOCAL_BOTH, true),
    );
    let mut fresh = Tracer::from_script(
        &render_full_with(&cur, &node(), &cfg(), &mut num.clone()),
        &local_ips(),
    );
    // Fresh counters and affinity on both sides before comparing.
    let mut again = Tracer::new(t.ruleset.clone(), &local_ips());
    for m in again.ruleset.maps.values_mut() {
        if m.dynamic {
            m.elems.clear();
        }
    }
    same_routes(
        "chain",
        &mut again,
        &mut fresh,
        &probes(&[&cur, &fixture()]),
    );
}

#[test]
fn nft_as_kube_proxy_where_it_once_diverged() {
    let mut failed = Vec::new();
    for (name, p, want) in nft_divergences() {
        let mut t = tracer(&extended());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&mut t, name, p, &want);
        }));
        if r.is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn partial_sync_comparison_has_teeth() {
    // A partial script missing its last block of element adds routes differently, and the
    // comparison says so.
    for (name, old, new, ids) in every_change() {
        if name == "drained" {
            // Its last block is the `no-endpoint-services` reject of web's ClusterIP port,
            // which `cluster-ips-check` rejects alike without it.
            continue;
        }
        let mut num = Numbering::default();
        let full = render_full_with(&old, &node(), &cfg(), &mut num);
        let script = render_changes(&old, &new, &ids, &node(), &cfg(), &mut num);
        let Some(cut) = script.rfind("add element ") else {
            continue;
        };
        let mut partial = Tracer::from_script(&full, &local_ips());
        partial.ruleset.apply(&script[..cut]).unwrap();
        let mut fresh = Tracer::from_script(
            &render_full_with(&new, &node(), &cfg(), &mut num.clone()),
            &local_ips(),
        );
        let probes = probes(&[&old, &new]);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            same_routes(name, &mut partial, &mut fresh, &probes)
        }));
        assert!(r.is_err(), "{name}: no probe noticed\n{}", &script[cut..]);
    }
}
