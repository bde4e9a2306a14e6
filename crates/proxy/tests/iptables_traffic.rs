//! The iptables backend against the kernel, in namespaces of our own (never the host's):
//! `iptables-restore` accepts what we render and saves it back unchanged; jumps are
//! idempotent; stale chains go; cleanup leaves nothing; and real connections from a client
//! through a node namespace reach the backends as a Service should.

use std::collections::{BTreeMap, BTreeSet};

use svcnet_netns::testing::{ask, can_run, unique_name, NetnsGuard, ScratchNetns};
use svcnet_netns::NetNs;
use svcnet_proxy::iptables::{self, NodeInfo};
use svcnet_proxy::model::{Endpoint, Protocol, ServicePort, State};
use svcnet_proxy::testing::{ep, ipt_cfg, service};
use tokio::io::AsyncWriteExt;

/// A Service port `name` (TCP) on `ip`.
fn tcp_service(name: &str, ip: &str, port: u16) -> ServicePort {
    service(name, ip, port, Protocol::Tcp)
}

/// web 10.97.1.1:80 (NodePort 30080), sticky 10.97.1.2:80 (ClientIP affinity), both on the
/// three backends' :8080; empty 10.97.1.3:80 without endpoints; lb 10.97.1.4 with an
/// external IP, a load-balancer IP and source ranges, ETP Local.
fn state() -> State {
    let backends: Vec<Endpoint> = (1..=3)
        .map(|i| ep(&format!("10.244.{i}.2"), 8080, "node-1"))
        .collect();
    let mut st = State::default();
    let mut web = tcp_service("web", "10.97.1.1", 80);
    web.node_port = 30080;
    let mut sticky = tcp_service("sticky", "10.97.1.2", 80);
    sticky.affinity_timeout = Some(600);
    let empty = tcp_service("empty", "10.97.1.3", 80);
    let mut lb = tcp_service("lb", "10.97.1.4", 80);
    lb.external_ips = vec!["198.51.100.200".parse().unwrap()];
    lb.load_balancer_ips = vec!["198.51.100.201".parse().unwrap()];
    lb.load_balancer_source_ranges = vec!["198.51.100.0/24".parse().unwrap()];
    lb.node_port = 30081;
    lb.external_local = true;
    lb.health_check_node_port = 30500;
    for (sp, eps) in [
        (web, backends.clone()),
        (sticky, backends.clone()),
        (empty, vec![]),
        (lb, backends),
    ] {
        st.endpoints.insert(sp.id.clone(), eps);
        st.services.insert(sp.id.clone(), sp);
    }
    st
}

fn node() -> NodeInfo {
    NodeInfo {
        name: "node-1".into(),
        node_ips: vec!["198.51.100.1".parse().unwrap()],
        zone: None,
    }
}

/// The `-A` lines of the filter and nat tables, MARK spelled as we render it.
fn saved_rules(ns: &str) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["filter", "nat"] {
        let text = iptables::save(Some(ns), table).unwrap();
        out.extend(text.lines().filter(|l| l.starts_with("-A ")).map(|l| {
            l.replace("--set-xmark 0x4000/0x4000", "--or-mark 0x4000")
                .replace("--set-xmark 0x4000/0x0", "--xor-mark 0x4000")
        }));
    }
    out
}

fn kube_chains(ns: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for table in ["filter", "nat"] {
        for l in iptables::save(Some(ns), table).unwrap().lines() {
            if let Some(c) = l.strip_prefix(":KUBE-") {
                out.insert(format!("{table}:KUBE-{}", c.split(' ').next().unwrap()));
            }
        }
    }
    out
}

#[test]
fn restore_accepts_render_save_matches_jumps_stale_cleanup() {
    if !can_run(&["iptables-restore"]) {
        return;
    }
    let scratch = ScratchNetns::new("ipt").unwrap();
    let name = scratch.name().to_string();
    let ns = Some(name.as_str());

    let (text, chains) = iptables::render_with(&BTreeSet::new(), &state(), &node(), &ipt_cfg());
    iptables::test_input(ns, &text).unwrap();
    iptables::ensure_jumps(ns).unwrap();
    iptables::ensure_jumps(ns).unwrap();
    iptables::apply(ns, &text).unwrap();

    // What iptables-save prints back is what we rendered (our rules; the jumps are extra).
    let mut rendered: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_string)
        .collect();
    let mut saved: Vec<String> = saved_rules(&name)
        .into_iter()
        .filter(|l| l.starts_with("-A KUBE-"))
        .collect();
    rendered.sort();
    saved.sort();
    pretty_assertions::assert_eq!(rendered, saved);

    // Each jump once, however often ensure_jumps ran; comments as kube-proxy's.
    let jumps: Vec<String> = saved_rules(&name)
        .into_iter()
        .filter(|l| !l.starts_with("-A KUBE-"))
        .collect();
    assert_eq!(jumps.len(), 12, "{jumps:#?}");
    assert!(jumps.contains(
        &"-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
            .to_string()
    ));
    assert!(jumps.contains(
        &"-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"
            .to_string()
    ));

    // Applying the same again is fine (declared chains are flushed and refilled).
    iptables::apply(ns, &text).unwrap();
    assert_eq!(saved_rules(&name).len(), rendered.len() + 12);

    // A Service goes: its chains go.
    let mut st = state();
    st.services.retain(|id, _| id.name != "sticky");
    let (text2, chains2) = iptables::render_with(&chains, &st, &node(), &ipt_cfg());
    iptables::apply(ns, &text2).unwrap();
    let gone: BTreeSet<&String> = chains.difference(&chains2).collect();
    assert!(!gone.is_empty());
    let present = kube_chains(&name);
    for c in &gone {
        assert!(!present.contains(&format!("nat:{c}")), "{c} still there");
    }
    for c in &chains2 {
        assert!(present.contains(&format!("nat:{c}")), "{c} missing");
    }
    assert_eq!(iptables::existing_chains(ns).unwrap(), chains2);

    // Cleanup leaves no chain and no jump of ours.
    iptables::cleanup(ns).unwrap();
    assert!(kube_chains(&name).is_empty(), "{:?}", kube_chains(&name));
    assert!(saved_rules(&name).is_empty(), "{:?}", saved_rules(&name));
    // And is idempotent.
    iptables::cleanup(ns).unwrap();
}

/// A tiny server in `ns` answering "<name> <peer ip>" on every connection.
fn serve(ns: &NetNs, name: &str) {
    let l = ns.tcp_listen("0.0.0.0:8080".parse().unwrap()).unwrap();
    let l = tokio::net::TcpListener::from_std(l).unwrap();
    let name = name.to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, peer)) = l.accept().await else {
                return;
            };
            let msg = format!("{name} {}", peer.ip());
            tokio::spawn(async move {
                let _ = s.write_all(msg.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
}

/// Answers of `n` connections to `addr`, counted by answer.
async fn ask_many(client: &NetNs, addr: &str, n: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let a = ask(client, addr)
            .await
            .unwrap_or_else(|e| panic!("{addr}: {e}"));
        *out.entry(a).or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_through_the_node() {
    if !can_run(&["iptables-restore"]) {
        return;
    }
    let names: Vec<String> = ["c", "n", "b1", "b2", "b3"]
        .iter()
        .map(|t| unique_name(&format!("ipt-{t}")))
        .collect();
    let _g = NetnsGuard(names.clone());
    let client = NetNs::create(&names[0]).unwrap();
    let node_ns = NetNs::create(&names[1]).unwrap();
    let backends: Vec<NetNs> = names[2..]
        .iter()
        .map(|n| NetNs::create(n).unwrap())
        .collect();

    // client 198.51.100.2 -- 198.51.100.1 node; node 10.244.i.1 -- 10.244.i.2 backend i.
    let mut plumb = format!(
        "link add n-c type veth peer name c0 netns {}\nlink set n-c up\naddr add 198.51.100.1/24 dev n-c\n",
        names[0]
    );
    for (i, b) in backends.iter().enumerate() {
        let i = i + 1;
        plumb.push_str(&format!(
            "link add n-b{i} type veth peer name eth0 netns {}\nlink set n-b{i} up\naddr add 10.244.{i}.1/24 dev n-b{i}\n",
            b.name()
        ));
    }
    // Where no-endpoint ClusterIP traffic would be routed (it is rejected before that).
    plumb.push_str("route add 10.97.0.0/16 dev n-b1\n");
    node_ns.ip_batch(&plumb).unwrap();
    node_ns
        .sysctls(&[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
        ])
        .unwrap();
    client
        .ip_batch(
            // The external and load-balancer IPs (198.51.100.200, .201) are on the client's
            // subnet: route them through the node, as a real load balancer would deliver them.
            "link set c0 up\naddr add 198.51.100.2/24 dev c0\nroute add default via 198.51.100.1\n\
             route add 198.51.100.200/31 via 198.51.100.1\n",
        )
        .unwrap();
    for (i, b) in backends.iter().enumerate() {
        let i = i + 1;
        b.ip_batch(&format!(
            "link set eth0 up\naddr add 10.244.{i}.2/24 dev eth0\nroute add default via 10.244.{i}.1\n"
        ))
        .unwrap();
        serve(b, &format!("b{i}"));
    }

    let node_name = node_ns.name().to_string();
    iptables::ensure_jumps(Some(&node_name)).unwrap();
    let (text, _) = iptables::render_with(&BTreeSet::new(), &state(), &node(), &ipt_cfg());
    iptables::apply(Some(&node_name), &text).unwrap();

    // ClusterIP: random over the three backends; the client is outside the cluster CIDR,
    // so it is masqueraded to the node's address on the backend's link.
    let answers = ask_many(&client, "10.97.1.1:80", 30).await;
    let expected: BTreeSet<String> = (1..=3).map(|i| format!("b{i} 10.244.{i}.1")).collect();
    assert_eq!(
        answers.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{answers:?}"
    );

    // No endpoints: rejected.
    match ask(&client, "10.97.1.3:80").await {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => panic!("expected connection refused, got {other:?}"),
    }

    // NodePort on the node's address.
    let answers = ask_many(&client, "198.51.100.1:30080", 15).await;
    assert!(
        answers.keys().all(|a| expected.contains(a)) && answers.len() >= 2,
        "{answers:?}"
    );

    // Session affinity: one client, one backend.
    let answers = ask_many(&client, "10.97.1.2:80", 15).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(expected.contains(answers.keys().next().unwrap()));

    // externalTrafficPolicy Local, through an external IP allowed by nothing but the
    // Service: all backends are local to node-1, and the client's address is kept.
    let answers = ask_many(&client, "198.51.100.200:80", 15).await;
    assert!(
        answers
            .keys()
            .all(|a| a.ends_with(" 198.51.100.2") && a.starts_with('b')),
        "{answers:?}"
    );
    // Through the load-balancer IP: the client is inside the source ranges.
    let answers = ask_many(&client, "198.51.100.201:80", 5).await;
    assert!(
        answers.keys().all(|a| a.ends_with(" 198.51.100.2")),
        "{answers:?}"
    );

    iptables::cleanup(Some(&node_name)).unwrap();
    // Without rules the ClusterIP is routed towards b1, which does not have it: no answer.
    assert!(ask(&client, "10.97.1.1:80").await.is_err());
}
