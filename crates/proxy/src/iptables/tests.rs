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

const GOLDEN: &str = r#"*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/local health check node port" -m tcp --dport 30500 -j ACCEPT
-A KUBE-SERVICES -d 10.97.1.3/32 -p tcp -m comment --comment "default/empty has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-NEXWZWH5PGMW4KIO - [0:0]
:KUBE-EXT-NEXWZWH5PGMW4KIO - [0:0]
:KUBE-SVL-NEXWZWH5PGMW4KIO - [0:0]
:KUBE-SEP-RRIP2IYJ55HSUSLQ - [0:0]
:KUBE-SEP-5IKIAQ5HWSI6JIXU - [0:0]
:KUBE-SVC-LDATH6LIB7VCFHLW - [0:0]
:KUBE-EXT-LDATH6LIB7VCFHLW - [0:0]
:KUBE-SEP-452MO6KHCX4VOXDH - [0:0]
:KUBE-SEP-CZKVABC4VEAJWKI3 - [0:0]
:KUBE-SVC-BJWR5DPVIKTHVKZU - [0:0]
:KUBE-SEP-RENCVIZFL3OZ7QBA - [0:0]
:KUBE-SEP-6VSJZUSQZX2522B5 - [0:0]
:KUBE-SVC-CDGGSHYLG3RE2FKL - [0:0]
:KUBE-SEP-UIQK3OSOSTRHRPBX - [0:0]
:KUBE-SEP-4EX2N4PG4ASNZOBF - [0:0]
:KUBE-SVC-I6PCZM52FOLORXOW - [0:0]
:KUBE-SEP-4U5FKYP2IRSP3I5P - [0:0]
-A KUBE-SERVICES -d 10.97.1.5/32 -p tcp -m comment --comment "default/local cluster IP" -m tcp --dport 80 -j KUBE-SVC-NEXWZWH5PGMW4KIO
-A KUBE-SERVICES -d 10.97.1.2/32 -p tcp -m comment --comment "default/np cluster IP" -m tcp --dport 80 -j KUBE-SVC-LDATH6LIB7VCFHLW
-A KUBE-SERVICES -d 10.97.1.4/32 -p tcp -m comment --comment "default/sticky cluster IP" -m tcp --dport 80 -j KUBE-SVC-BJWR5DPVIKTHVKZU
-A KUBE-SERVICES -d 10.97.1.1/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-SERVICES -d 10.97.1.1/32 -p tcp -m comment --comment "default/web:metrics cluster IP" -m tcp --dport 9090 -j KUBE-SVC-I6PCZM52FOLORXOW
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/local" -m tcp --dport 30081 -j KUBE-EXT-NEXWZWH5PGMW4KIO
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/np" -m tcp --dport 30080 -j KUBE-EXT-LDATH6LIB7VCFHLW
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SVC-NEXWZWH5PGMW4KIO ! -s 10.244.0.0/16 -d 10.97.1.5/32 -p tcp -m comment --comment "default/local cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-NEXWZWH5PGMW4KIO -m comment --comment "default/local -> 10.244.1.2:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-RRIP2IYJ55HSUSLQ
-A KUBE-SVC-NEXWZWH5PGMW4KIO -m comment --comment "default/local -> 10.244.2.2:8080" -j KUBE-SEP-5IKIAQ5HWSI6JIXU
-A KUBE-EXT-NEXWZWH5PGMW4KIO -s 10.244.0.0/16 -m comment --comment "pod traffic for default/local external destinations" -j KUBE-SVC-NEXWZWH5PGMW4KIO
-A KUBE-EXT-NEXWZWH5PGMW4KIO -m comment --comment "masquerade LOCAL traffic for default/local external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-NEXWZWH5PGMW4KIO -m comment --comment "route LOCAL traffic for default/local external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-NEXWZWH5PGMW4KIO
-A KUBE-EXT-NEXWZWH5PGMW4KIO -j KUBE-SVL-NEXWZWH5PGMW4KIO
-A KUBE-SVL-NEXWZWH5PGMW4KIO -m comment --comment "default/local -> 10.244.1.2:8080" -j KUBE-SEP-RRIP2IYJ55HSUSLQ
-A KUBE-SEP-RRIP2IYJ55HSUSLQ -s 10.244.1.2/32 -m comment --comment "default/local" -j KUBE-MARK-MASQ
-A KUBE-SEP-RRIP2IYJ55HSUSLQ -p tcp -m comment --comment "default/local" -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-5IKIAQ5HWSI6JIXU -s 10.244.2.2/32 -m comment --comment "default/local" -j KUBE-MARK-MASQ
-A KUBE-SEP-5IKIAQ5HWSI6JIXU -p tcp -m comment --comment "default/local" -m tcp -j DNAT --to-destination 10.244.2.2:8080
-A KUBE-SVC-LDATH6LIB7VCFHLW ! -s 10.244.0.0/16 -d 10.97.1.2/32 -p tcp -m comment --comment "default/np cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-LDATH6LIB7VCFHLW -m comment --comment "default/np -> 10.244.1.2:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-452MO6KHCX4VOXDH
-A KUBE-SVC-LDATH6LIB7VCFHLW -m comment --comment "default/np -> 10.244.2.2:8080" -j KUBE-SEP-CZKVABC4VEAJWKI3
-A KUBE-EXT-LDATH6LIB7VCFHLW -m comment --comment "masquerade traffic for default/np external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-LDATH6LIB7VCFHLW -j KUBE-SVC-LDATH6LIB7VCFHLW
-A KUBE-SEP-452MO6KHCX4VOXDH -s 10.244.1.2/32 -m comment --comment "default/np" -j KUBE-MARK-MASQ
-A KUBE-SEP-452MO6KHCX4VOXDH -p tcp -m comment --comment "default/np" -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-CZKVABC4VEAJWKI3 -s 10.244.2.2/32 -m comment --comment "default/np" -j KUBE-MARK-MASQ
-A KUBE-SEP-CZKVABC4VEAJWKI3 -p tcp -m comment --comment "default/np" -m tcp -j DNAT --to-destination 10.244.2.2:8080
-A KUBE-SVC-BJWR5DPVIKTHVKZU ! -s 10.244.0.0/16 -d 10.97.1.4/32 -p tcp -m comment --comment "default/sticky cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.1.2:8080" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-RENCVIZFL3OZ7QBA --mask 255.255.255.255 --rsource -j KUBE-SEP-RENCVIZFL3OZ7QBA
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.2.2:8080" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-6VSJZUSQZX2522B5 --mask 255.255.255.255 --rsource -j KUBE-SEP-6VSJZUSQZX2522B5
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.1.2:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-RENCVIZFL3OZ7QBA
-A KUBE-SVC-BJWR5DPVIKTHVKZU -m comment --comment "default/sticky -> 10.244.2.2:8080" -j KUBE-SEP-6VSJZUSQZX2522B5
-A KUBE-SEP-RENCVIZFL3OZ7QBA -s 10.244.1.2/32 -m comment --comment "default/sticky" -j KUBE-MARK-MASQ
-A KUBE-SEP-RENCVIZFL3OZ7QBA -p tcp -m comment --comment "default/sticky" -m recent --set --name KUBE-SEP-RENCVIZFL3OZ7QBA --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-6VSJZUSQZX2522B5 -s 10.244.2.2/32 -m comment --comment "default/sticky" -j KUBE-MARK-MASQ
-A KUBE-SEP-6VSJZUSQZX2522B5 -p tcp -m comment --comment "default/sticky" -m recent --set --name KUBE-SEP-6VSJZUSQZX2522B5 --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.2.2:8080
-A KUBE-SVC-CDGGSHYLG3RE2FKL ! -s 10.244.0.0/16 -d 10.97.1.1/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.2:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-UIQK3OSOSTRHRPBX
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.2.2:8080" -j KUBE-SEP-4EX2N4PG4ASNZOBF
-A KUBE-SEP-UIQK3OSOSTRHRPBX -s 10.244.1.2/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-UIQK3OSOSTRHRPBX -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-4EX2N4PG4ASNZOBF -s 10.244.2.2/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-4EX2N4PG4ASNZOBF -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.2.2:8080
-A KUBE-SVC-I6PCZM52FOLORXOW ! -s 10.244.0.0/16 -d 10.97.1.1/32 -p tcp -m comment --comment "default/web:metrics cluster IP" -m tcp --dport 9090 -j KUBE-MARK-MASQ
-A KUBE-SVC-I6PCZM52FOLORXOW -m comment --comment "default/web:metrics -> 10.244.1.2:9090" -j KUBE-SEP-4U5FKYP2IRSP3I5P
-A KUBE-SEP-4U5FKYP2IRSP3I5P -s 10.244.1.2/32 -m comment --comment "default/web:metrics" -j KUBE-MARK-MASQ
-A KUBE-SEP-4U5FKYP2IRSP3I5P -p tcp -m comment --comment "default/web:metrics" -m tcp -j DNAT --to-destination 10.244.1.2:9090
COMMIT
"#;

#[test]
fn golden() {
    let (text, chains) = render_with(&BTreeSet::new(), &sample(), &node(), &cfg());
    if std::env::var_os("PRINT_GOLDEN").is_some() {
        println!("{text}");
    }
    pretty_assertions::assert_eq!(text, GOLDEN);
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
