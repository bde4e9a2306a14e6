//! The iptables mode's flows (kube-proxy's `pkg/proxy/iptables/proxier_test.go`): the same
//! flow table through `iptables-restore` input, every branch of the statistic rules, `-m
//! recent` affinity, and re-renders that must route as fresh ones do.

use std::collections::BTreeSet;

use crate::model::{Endpoint, Protocol, State};
use crate::nftables::render_full;
use crate::testing::fixtures::{extended, ipt_cfg, nft_cfg as cfg, node};
use crate::testing::flows::*;
use crate::testing::{add, ep, id, sp};
use crate::trace::ipt::IptTracer;
use crate::trace::Tracer;

#[test]
fn iptables_every_feature() {
    for (name, p, want) in cases() {
        let want = ipt_want(name, want);
        // Every branch of the statistic rules, each in a fresh tracer (no affinity yet).
        let mut seen = BTreeSet::new();
        for pick in 0..4 {
            let mut t = ipt_tracer(&extended());
            t.pick = pick;
            seen.insert(ipt_check(&mut t, name, p, &want).dnat);
        }
        if let Want::To(eps, _) = want {
            assert_eq!(seen.len(), eps.len(), "iptables {name}: {seen:?}");
        }
    }
}

#[test]
fn iptables_paths_and_probabilities() {
    let mut t = ipt_tracer(&extended());
    let tr = t.trace(tcp(OUTSIDE, "10.97.1.1", 80));
    let hooks: Vec<&String> = tr.chains.iter().filter(|c| c.contains('/')).collect();
    assert_eq!(
        hooks,
        ["nat/PREROUTING", "filter/FORWARD", "nat/POSTROUTING"],
        "{tr}"
    );
    assert!(tr.random, "{tr}");
    // Uniform: the i-th of n endpoints is taken with probability 1/(n-i).
    let probs = t.probabilities();
    assert!(probs.len() > 5, "{probs:?}");
    for (chain, (ps, n)) in probs {
        assert_eq!(ps.len(), n - 1, "{chain}");
        for (i, p) in ps.iter().enumerate() {
            let want = 1.0 / (n - i) as f64;
            assert!((p - want).abs() < 1e-9, "{chain}: rule {i}: {p} != {want}");
        }
    }
}

#[test]
fn iptables_affinity_sticks() {
    let mut t = ipt_tracer(&extended());
    t.pick = 1;
    let first = t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap();
    let mut others = BTreeSet::new();
    for pick in 0..2 {
        t.pick = pick;
        let other = format!("203.0.113.{}", 100 + pick);
        others.insert(t.trace(tcp(&other, "10.97.1.4", 80)).dnat.unwrap());
        assert_eq!(t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap(), first);
    }
    assert_eq!(others.len(), 2, "{others:?}");
    t.advance(299);
    assert_eq!(t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap(), first);
    // Past the timeout (300 s) since the last connection: picked afresh.
    t.advance(301);
    t.pick = 0;
    assert_ne!(t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap(), first);
    // The ClusterIP and the NodePort share the recent lists of the endpoints.
    t.pick = 1;
    let via_ip = t.trace(tcp(OUTSIDE, "10.97.1.12", 80)).dnat.unwrap();
    t.pick = 0;
    assert_eq!(t.trace(tcp(OUTSIDE, NODE, 30091)).dnat.unwrap(), via_ip);
}

#[test]
fn iptables_changes_route_like_full_renders() {
    for (name, old, new, _) in every_change() {
        for (from, to) in [(&old, &new), (&new, &old)] {
            let (first, chains) =
                crate::iptables::render_with(&BTreeSet::new(), from, &node(), &ipt_cfg());
            let mut t = IptTracer::from_restore(&first, &local_ips());
            let (second, _) = crate::iptables::render_with(&chains, to, &node(), &ipt_cfg());
            t.rules
                .restore(&second)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{second}"));
            let mut fresh = ipt_tracer(to);
            for p in probes(&[from, to]) {
                for pick in 0..3 {
                    t.pick = pick;
                    fresh.pick = pick;
                    let (x, y) = (t.trace(p), fresh.trace(p));
                    assert_eq!(
                        (x.verdict, x.dnat, x.masqueraded),
                        (y.verdict, y.dnat, y.masqueraded),
                        "{name}: {p}\n  incremental: {x}\n  full: {y}"
                    );
                }
            }
            // No chain of `from` left behind that `to` does not have.
            let fresh_chains: BTreeSet<&String> = fresh.rules.tables["nat"].keys().collect();
            let kept: BTreeSet<&String> = t.rules.tables["nat"].keys().collect();
            assert_eq!(kept, fresh_chains, "{name}");
        }
    }
}

#[test]
fn iptables_as_kube_proxy_where_nft_diverges() {
    for (name, p, want) in nft_divergences() {
        for pick in 0..2 {
            let mut t = ipt_tracer(&extended());
            t.pick = pick;
            ipt_check(&mut t, name, p, &want);
        }
    }
}

#[test]
fn topology_hints() {
    // Hints are honoured when every endpoint has them and some are for this node's zone.
    let mut st = State::default();
    let hinted = |ip: &str, zone: &str| Endpoint {
        hint_zones: Some(vec![zone.to_string()]),
        ..ep(ip, 8080, "node-x")
    };
    add(
        &mut st,
        sp(&id("hints", "", Protocol::Tcp), "10.97.3.1", 80),
        vec![hinted("10.244.5.1", "a"), hinted("10.244.5.2", "b")],
    );
    let mut partial = vec![hinted("10.244.6.1", "a")];
    partial.push(ep("10.244.6.2", 8080, "node-x"));
    add(
        &mut st,
        sp(&id("some-hints", "", Protocol::Tcp), "10.97.3.2", 80),
        partial,
    );
    let zoned = crate::model::NodeInfo {
        zone: Some("a".into()),
        ..node()
    };
    let mut t = Tracer::from_script(&render_full(&st, &zoned, &cfg()), &local_ips());
    let mut ipt = IptTracer::from_restore(
        &crate::iptables::render(&st, &zoned, &ipt_cfg()),
        &local_ips(),
    );
    let cases = [
        (
            tcp(POD, "10.97.3.1", 80),
            Want::To(&["10.244.5.1:8080"], false),
        ),
        (
            tcp(POD, "10.97.3.2", 80),
            Want::To(&["10.244.6.1:8080", "10.244.6.2:8080"], false),
        ),
    ];
    for (p, want) in &cases {
        for pick in 0..2 {
            check(&mut t, "hints", *p, want);
            ipt.pick = pick;
            ipt_check(&mut ipt, "hints", *p, want);
        }
    }
}
