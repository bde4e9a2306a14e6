use std::collections::BTreeMap;

use super::elements::*;
use super::kernel::*;
use super::names::*;
use super::plan::*;
use super::render::*;
use super::*;
use crate::model::{Protocol, ServicePortName, State};
use crate::testing::fixtures::{changes, fixture, nft_cfg as cfg, node};
use crate::testing::{add, ep, golden, id, nft_netns, sp, with_changes};
use pretty_assertions::assert_eq;

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
    let Some(scratch) = nft_netns("changes") else {
        return;
    };
    let ns = Some(scratch.name());
    for (name, old, new, ids) in changes() {
        for (from, to) in [(&old, &new), (&new, &old)] {
            let mut num = Numbering::default();
            apply(ns, &render_full_with(from, &node(), &cfg(), &mut num)).unwrap();
            let script = changes_script(from, to, &ids, &mut num);
            apply(ns, &script).unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
            let incremental = listing(scratch.name());
            apply(ns, &render_full_with(to, &node(), &cfg(), &mut num.clone())).unwrap();
            assert_eq!(listing(scratch.name()), incremental, "{name}\n{script}");
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
    let incremental = listing(scratch.name());
    apply(
        ns,
        &render_full_with(&cur, &node(), &cfg(), &mut num.clone()),
    )
    .unwrap();
    assert_eq!(listing(scratch.name()), incremental);
    cleanup(ns).unwrap();
}

/// A full sync through [`Session::apply_full_sync`] (structure by nft, shared elements by
/// netlink) leaves exactly the table the one-script full sync does: from nothing, over the
/// table of another state (in place: stale chains go, own maps are re-created), over a table
/// that cannot be updated in place, and with partial syncs after it.
#[test]
fn netlink_full_sync_equals_script() {
    let Some(scratch) = nft_netns("netlink") else {
        return;
    };
    let ns = Some(scratch.name());
    let mut session = Session::open(ns);
    let expect = |st: &State, num: &Numbering| -> Vec<String> {
        apply(ns, &render_full_with(st, &node(), &cfg(), &mut num.clone())).unwrap();
        listing(scratch.name())
    };
    let mut num = Numbering::default();
    let before = num.clone();
    let kind = session
        .apply_full_sync(render_full_sync(&fixture(), &node(), &cfg(), &mut num))
        .unwrap();
    assert_eq!(kind, FullSyncKind::Replaced, "no table yet");
    let loaded = listing(scratch.name());
    assert!(
        loaded
            .iter()
            .any(|l| l.contains("\"name\":\"endpoints\"") && l.contains("10.244.1.4")),
        "the shared endpoints map is filled"
    );
    // The netlink batch's comments are nft's: `nft list` prints them as for a script's.
    let text = svcnet_netns::NetNs::open(scratch.name())
        .unwrap()
        .exec(&["nft", "list", "map", "ip", TABLE, ENDPOINTS])
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("comment \"default/web:http\" : 10.244.0.2 . 8080"),
        "{text}"
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
            let in_place = listing(scratch.name());
            assert_eq!(in_place, expect(to, &before), "{name}: in place");
            // A partial sync back, on top of the table the netlink sync left.
            session
                .apply_full_sync(render_full_sync(to, &node(), &cfg(), &mut num))
                .unwrap();
            let script = changes_script(to, from, &ids, &mut num);
            session
                .apply(&script)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
            let partial = listing(scratch.name());
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
    let listed = svcnet_netns::NetNs::open(scratch.name())
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
    let replaced = listing(scratch.name());
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
    let Some(scratch) = nft_netns("drift") else {
        return;
    };
    let ns = Some(scratch.name());
    let mut session = Session::open(ns);
    let mut num = Numbering::default();
    session
        .apply_full_sync(render_full_sync(&fixture(), &node(), &cfg(), &mut num))
        .unwrap();
    let want = listing(scratch.name());
    let full = render_full_sync(&fixture(), &node(), &cfg(), &mut num.clone());
    let first = |set: &str, pick: fn(&Elem) -> bool| -> Elem {
        let (_, elems) = full.shared.iter().find(|(n, _)| *n == set).unwrap();
        elems.iter().find(|(e, _)| pick(e)).unwrap().0.clone()
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
    assert_ne!(listing(scratch.name()), want, "tampered");
    let kind = session
        .apply_full_sync(render_full_sync(&fixture(), &node(), &cfg(), &mut num))
        .unwrap();
    assert_eq!(kind, FullSyncKind::InPlace);
    assert_eq!(listing(scratch.name()), want);
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

#[test]
fn nft_accepts_every_script() {
    let Some(scratch) = nft_netns("check") else {
        return;
    };
    let ns = Some(scratch.name());
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
    let listed = svcnet_netns::NetNs::open(scratch.name())
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

/// The seeds' `iptables -t nat -L -n -v | grep shield` in nftables mode: every rule and map
/// element of a Service names it, as kube-proxy's comments do, in the kernel's table after the
/// proxy's own full sync (shared elements over netlink) and after a partial sync (nft).
#[test]
fn seed_service_names_are_greppable() {
    let Some(scratch) = nft_netns("grep") else {
        return;
    };
    let ns = Some(scratch.name());
    // shield/the-bus from shield-app.yml (NodePort 31112, the walkthrough's addresses), and
    // service-clusterip with sessionAffinity (chains and maps of its own).
    let bus = crate::testing::id_in("shield", "the-bus", "", Protocol::Tcp);
    let mut the_bus = sp(&bus, "10.96.69.229", 8080);
    the_bus.node_port = 31112;
    let clusterip = id("service-clusterip", "", Protocol::Tcp);
    let mut sticky = sp(&clusterip, "10.97.1.1", 80);
    sticky.affinity_timeout = Some(10800);
    let mut st = State::default();
    add(&mut st, the_bus, vec![ep("10.85.0.55", 8080, "node-1")]);
    add(
        &mut st,
        sticky,
        vec![
            ep("10.244.1.2", 80, "node-1"),
            ep("10.244.2.3", 80, "node-2"),
        ],
    );
    let mut session = Session::open(ns);
    let mut num = Numbering::default();
    session
        .apply_full_sync(render_full_sync(&st, &node(), &cfg(), &mut num))
        .unwrap();
    let grep = |word: &str| -> Vec<String> {
        let out = svcnet_netns::NetNs::open(scratch.name())
            .unwrap()
            .exec(&["nft", "list", "ruleset"])
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(word))
            .map(|l| l.trim().trim_end_matches(',').to_string())
            .collect()
    };
    // (nft lists marks in hex.)
    let n = format!("0x{:08x}", num.ids[&bus]);
    let c = "comment \"shield/the-bus\"";
    let mut want = vec![
        format!("{n} . 0 {c} : 10.85.0.55 . 8080"),
        format!("10.96.69.229 . tcp . 8080 {c} : {n}"),
        format!("10.96.69.229 . tcp . 8080 {c} : goto cluster-1"),
        format!("tcp . 31112 {c} : {n}"),
        format!("tcp . 31112 {c} : goto external-1"),
    ];
    let found = grep("shield");
    for w in &want {
        assert!(
            found.iter().any(|l| l.contains(w.as_str())),
            "{w:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), want.len(), "{found:#?}");
    // A Service port with chains of its own: each rule says whose it is.
    let rules = grep("comment \"default/service-clusterip\"");
    assert!(
        rules
            .iter()
            .any(|l| l.starts_with("meta l4proto tcp dnat ip to ct mark map @epa-")),
        "{rules:#?}"
    );
    assert!(rules
        .iter()
        .any(|l| l.contains(": goto svc-default/service-clusterip/tcp")));

    // A partial sync (nft) comments what it adds.
    let old = st.clone();
    st.endpoints
        .get_mut(&bus)
        .unwrap()
        .push(ep("10.85.0.56", 8080, "node-2"));
    let script = render_changes(&old, &st, [&bus], &node(), &cfg(), &mut num);
    session.apply(&script).unwrap();
    let found = grep("shield");
    want.retain(|w| !w.contains("goto"));
    for w in want.iter().chain(&[
        format!("{n} . 1 {c} : 10.85.0.56 . 8080"),
        format!("10.96.69.229 . tcp . 8080 {c} : goto cluster-2"),
    ]) {
        assert!(
            found.iter().any(|l| l.contains(w.as_str())),
            "{w:?} in {found:#?}"
        );
    }
}
