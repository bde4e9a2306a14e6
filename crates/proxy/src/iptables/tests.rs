use std::collections::BTreeSet;

use super::render::*;
use crate::model::{Protocol, State};
use crate::testing::fixtures::{ipt_cfg as cfg, ipt_sample as sample, node};
use crate::testing::{ep, id, sp};

#[test]
fn probabilities_as_iptables_save_prints_them() {
    assert_eq!(probability(2), "0.50000000000");
    assert_eq!(probability(3), "0.33333333349");
    assert_eq!(probability(4), "0.25000000000");
}

#[test]
fn chain_names_as_kube_proxy() {
    let st = sample();
    let sp = st.services.values().next().unwrap();
    let h = service_hash(sp);
    assert_eq!(h.len(), 16);
    assert!(h
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    // kube-proxy's own test vector (pkg/proxy/iptables): "ns1/svc1:p80" + "tcp".
    assert_eq!(hash16("ns1/svc1:p80tcp"), "XPGD46QRK7WJZT7O");
}

#[test]
fn golden() {
    let (text, chains) = render_with(&BTreeSet::new(), &sample(), &node(), &cfg());
    crate::testing::golden("iptables-full.txt", &text);
    assert!(chains
        .iter()
        .all(|c| text.contains(&format!(":{c} - [0:0]"))));
    // Deterministic.
    assert_eq!(render(&sample(), &node(), &cfg()), text);
}

/// internalTrafficPolicy Local, as kube-proxy: DROP (not REJECT) when the endpoints are all
/// on other nodes; off-cluster sources masqueraded in KUBE-SVL- (the internal chain).
#[test]
fn internal_traffic_policy_local() {
    let mut st = State::default();
    let mut remote = sp(&id("remote", "", Protocol::Tcp), "10.97.2.1", 80);
    remote.internal_local = true;
    st.endpoints
        .insert(remote.id.clone(), vec![ep("10.244.2.2", 8080, "node-2")]);
    st.services.insert(remote.id.clone(), remote);
    let mut local = sp(&id("local", "", Protocol::Tcp), "10.97.2.2", 80);
    local.internal_local = true;
    local.node_port = 30090;
    st.endpoints.insert(
        local.id.clone(),
        vec![
            ep("10.244.1.2", 8080, "node-1"),
            ep("10.244.2.2", 8080, "node-2"),
        ],
    );
    let h = service_hash(&local);
    st.services.insert(local.id.clone(), local);
    let text = render(&st, &node(), &cfg());
    let lines: Vec<&str> = text.lines().collect();
    let has = |l: &str| lines.contains(&l);

    assert!(has("-A KUBE-SERVICES -d 10.97.2.1/32 -p tcp -m comment --comment \"default/remote has no local endpoints\" -m tcp --dport 80 -j DROP"), "{text}");
    assert!(!text.contains("default/remote has no endpoints"), "{text}");
    // No chains for it in nat (nothing reaches them).
    assert!(!text.contains("default/remote ->"), "{text}");

    let masq = format!("-A KUBE-SVL-{h} ! -s 10.244.0.0/16 -d 10.97.2.2/32 -p tcp -m comment --comment \"default/local cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ");
    let svl: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("-A KUBE-SVL-{h} ")))
        .collect();
    assert_eq!(svl.first().map(|l| **l), Some(masq.as_str()), "{text}");
    assert!(has(&format!("-A KUBE-SERVICES -d 10.97.2.2/32 -p tcp -m comment --comment \"default/local cluster IP\" -m tcp --dport 80 -j KUBE-SVL-{h}")), "{text}");
    // KUBE-SVC- only takes external traffic here: no cluster IP rule.
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with(&format!("-A KUBE-SVC-{h} ")) && l.contains("cluster IP")),
        "{text}"
    );
}

#[test]
fn stale_chains_are_deleted() {
    let (_, before) = render_with(&BTreeSet::new(), &sample(), &node(), &cfg());
    let mut st = sample();
    st.services.retain(|id, _| id.name != "sticky");
    let (text, after) = render_with(&before, &st, &node(), &cfg());
    let gone: Vec<&String> = before.difference(&after).collect();
    assert!(!gone.is_empty());
    for c in gone {
        assert!(text.contains(&format!(":{c} - [0:0]\n")));
        assert!(text.contains(&format!("-X {c}\n")));
    }
    for c in &after {
        assert!(!text.contains(&format!("-X {c}\n")));
    }
}
