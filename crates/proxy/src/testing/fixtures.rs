//! The fixture states of the proxy's unit tests: what the renderers' golden tests, the flows
//! and the change tests are built on, with the node and settings they render for.

use crate::model::{Endpoint, NodeInfo, Protocol, ServicePort, ServicePortName, State};

use super::{add, ep, id, id_in, sp};
pub(crate) use super::{ipt_cfg, nft_cfg};

pub(crate) fn node() -> NodeInfo {
    NodeInfo {
        name: "node-1".into(),
        node_ips: vec!["198.51.100.1".parse().unwrap()],
        zone: None,
    }
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

/// Incremental changes the golden and nft tests exercise: `(golden name, old, new, ids)`.
pub(crate) fn changes() -> Vec<(&'static str, State, State, Vec<ServicePortName>)> {
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

/// The fixture plus an external IP under the Cluster policy, internalTrafficPolicy Local
/// (with and without a local endpoint), sessionAffinity with a NodePort, and two Service
/// ports with two endpoints each.
pub(crate) fn extended() -> State {
    let mut st = fixture();
    let mut ext = sp(&id("ext", "", Protocol::Tcp), "10.97.1.11", 80);
    ext.external_ips = vec!["203.0.113.50".parse().unwrap()];
    add(&mut st, ext, vec![ep("10.244.1.4", 8080, "node-2")]);
    let mut itp = sp(&id("itp", "", Protocol::Tcp), "10.97.1.8", 80);
    itp.internal_local = true;
    let both = vec![
        ep("10.244.0.3", 8080, "node-1"),
        ep("10.244.1.4", 8080, "node-2"),
    ];
    add(&mut st, itp, both);
    let mut itp_remote = sp(&id("itp-remote", "", Protocol::Tcp), "10.97.1.10", 80);
    itp_remote.internal_local = true;
    add(&mut st, itp_remote, vec![ep("10.244.1.4", 8080, "node-2")]);
    let mut sticky = sp(&id("sticky-np", "", Protocol::Tcp), "10.97.1.12", 80);
    sticky.node_port = 30091;
    sticky.affinity_timeout = Some(60);
    let both = vec![
        ep("10.244.2.2", 80, "node-3"),
        ep("10.244.0.2", 80, "node-1"),
    ];
    add(&mut st, sticky, both);
    // Terminating endpoints: used only when no endpoint is ready, and only if serving.
    let terminating = |ip: &str, serving: bool| Endpoint {
        ready: false,
        serving,
        terminating: true,
        ..ep(ip, 8080, "node-1")
    };
    add(
        &mut st,
        sp(&id("term", "", Protocol::Tcp), "10.97.1.13", 80),
        vec![
            ep("10.244.0.2", 8080, "node-1"),
            terminating("10.244.0.3", true),
        ],
    );
    add(
        &mut st,
        sp(&id("term-only", "", Protocol::Tcp), "10.97.1.14", 80),
        vec![terminating("10.244.0.3", true)],
    );
    add(
        &mut st,
        sp(&id("term-gone", "", Protocol::Tcp), "10.97.1.16", 80),
        vec![terminating("10.244.0.3", false)],
    );
    add(
        &mut st,
        sp(&id("sctp", "", Protocol::Sctp), "10.97.1.15", 9999),
        vec![ep("10.244.0.2", 9999, "node-1")],
    );
    for (name, ip) in [("two-a", "10.97.2.1"), ("two-b", "10.97.2.2")] {
        add(
            &mut st,
            sp(&id(name, "", Protocol::Tcp), ip, 80),
            vec![
                ep("10.244.0.2", 80, "node-1"),
                ep("10.244.1.4", 80, "node-2"),
            ],
        );
    }
    st
}

/// The State of the golden test: ClusterIP with two ports, a NodePort, one without
/// endpoints, one with affinity, one with externalTrafficPolicy Local.
pub(crate) fn ipt_sample() -> State {
    let mut st = State::default();
    let mut add = |s: ServicePort, eps: Vec<Endpoint>| add(&mut st, s, eps);
    let two = vec![
        ep("10.244.1.2", 8080, "node-1"),
        ep("10.244.2.2", 8080, "node-2"),
    ];
    add(
        sp(&id("web", "http", Protocol::Tcp), "10.97.1.1", 80),
        two.clone(),
    );
    add(
        sp(&id("web", "metrics", Protocol::Tcp), "10.97.1.1", 9090),
        vec![ep("10.244.1.2", 9090, "node-1")],
    );
    let mut np = sp(&id("np", "", Protocol::Tcp), "10.97.1.2", 80);
    np.node_port = 30080;
    add(np, two.clone());
    add(sp(&id("empty", "", Protocol::Tcp), "10.97.1.3", 80), vec![]);
    let mut sticky = sp(&id("sticky", "", Protocol::Tcp), "10.97.1.4", 80);
    sticky.affinity_timeout = Some(10800);
    add(sticky, two.clone());
    let mut local = sp(&id("local", "", Protocol::Tcp), "10.97.1.5", 80);
    local.node_port = 30081;
    local.external_local = true;
    local.health_check_node_port = 30500;
    add(local, two);
    st
}

pub(crate) fn ipvs_node() -> NodeInfo {
    NodeInfo {
        name: "node-1".into(),
        node_ips: vec![
            "192.168.1.10".parse().unwrap(),
            "172.18.0.10".parse().unwrap(),
        ],
        zone: None,
    }
}

/// ClusterIP TCP with two ports and three endpoints, a UDP Service (one endpoint not
/// ready), a NodePort, externalTrafficPolicy Local (node port, external and LB IP), session
/// affinity, and a Service without endpoints.
pub(crate) fn ipvs_sample() -> State {
    let mut st = State::default();
    let three = |p: u16| {
        vec![
            ep("10.244.0.2", p, "node-1"),
            ep("10.244.1.2", p, "node-2"),
            ep("10.244.10.2", p, "node-3"),
        ]
    };
    let tcp = Protocol::Tcp;
    add(
        &mut st,
        sp(&id_in("default", "web", "http", tcp), "10.97.1.1", 80),
        three(8080),
    );
    add(
        &mut st,
        sp(&id_in("default", "web", "metrics", tcp), "10.97.1.1", 9090),
        three(9090),
    );
    let mut not_ready = ep("10.244.2.5", 53, "node-3");
    not_ready.ready = false;
    not_ready.serving = false;
    add(
        &mut st,
        sp(
            &id_in("kube-system", "dns", "dns", Protocol::Udp),
            "10.97.0.10",
            53,
        ),
        vec![ep("10.244.0.5", 53, "node-1"), not_ready],
    );
    let mut np = sp(&id_in("default", "np", "", tcp), "10.97.1.2", 80);
    np.node_port = 30080;
    add(&mut st, np, three(8080));
    add(
        &mut st,
        sp(&id_in("default", "empty", "", tcp), "10.97.1.3", 80),
        vec![],
    );
    let mut sticky = sp(&id_in("default", "sticky", "", tcp), "10.97.1.4", 80);
    sticky.affinity_timeout = Some(10800);
    add(&mut st, sticky, three(8080));
    let mut local = sp(&id_in("default", "local", "", tcp), "10.97.1.5", 80);
    local.node_port = 30081;
    local.external_local = true;
    local.external_ips = vec!["203.0.113.10".parse().unwrap()];
    local.load_balancer_ips = vec!["198.51.100.20".parse().unwrap()];
    local.health_check_node_port = 30500;
    add(&mut st, local, three(8080));
    st
}
