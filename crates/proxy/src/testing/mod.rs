//! What the proxy's tests share (its unit tests, and with feature `testing` its tests in
//! `tests/`): the builders every test repeats (a Service port, an endpoint, a state), and the
//! one convention for golden files ([`golden`]). For unit tests also the fixture states
//! ([`fixtures`]) and the flow table every mode must route ([`flows`], over [`crate::trace`]).

use std::net::IpAddr;

use crate::model::{Endpoint, NodeInfo, Protocol, ServicePort, ServicePortName, State};
use crate::server::{Mode, Options};
use crate::{iptables, nftables};

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
pub(crate) mod flows;

/// The Service port `name`/`port` in `namespace`.
pub fn id_in(namespace: &str, name: &str, port: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName {
        namespace: namespace.into(),
        name: name.into(),
        port: port.into(),
        protocol,
    }
}

/// The Service port `name`/`port` in namespace `default`.
pub fn id(name: &str, port: &str, protocol: Protocol) -> ServicePortName {
    id_in("default", name, port, protocol)
}

/// A plain ClusterIP Service port ([`ServicePort::new`]).
pub fn sp(id: &ServicePortName, cluster_ip: &str, port: u16) -> ServicePort {
    ServicePort::new(id.clone(), ip(cluster_ip), port)
}

/// A plain ClusterIP Service port of the unnamed port of Service `name` in `default`.
pub fn service(name: &str, cluster_ip: &str, port: u16, protocol: Protocol) -> ServicePort {
    sp(&id(name, "", protocol), cluster_ip, port)
}

/// A ready endpoint on `node`.
pub fn ep(ip_: &str, port: u16, node: &str) -> Endpoint {
    Endpoint {
        ip: ip(ip_),
        port,
        ready: true,
        serving: true,
        terminating: false,
        node_name: Some(node.into()),
        zone: None,
        hint_zones: None,
    }
}

/// Ready endpoints 10.244.0.`<id>`:`port` on node `node` (the backends of
/// `svcnet_netns::testing::Topology`).
pub fn backends(ids: &[u8], port: u16) -> Vec<Endpoint> {
    ids.iter()
        .map(|i| ep(&format!("10.244.0.{i}"), port, "node"))
        .collect()
}

/// The nftables settings tests render with: pods in 10.244.0.0/16, round-robin.
pub fn nft_cfg() -> nftables::Config {
    nftables::Config {
        cluster_cidr: Some("10.244.0.0/16".parse().expect("a CIDR")),
        random: false,
    }
}

/// The iptables settings tests render with: pods in 10.244.0.0/16, kube-proxy's mark bit.
pub fn ipt_cfg() -> iptables::Config {
    iptables::Config {
        cluster_cidr: Some("10.244.0.0/16".parse().expect("a CIDR")),
        masquerade_bit: 14,
    }
}

/// The node of `svcnet_netns::testing::Topology`: `node`, 198.51.100.1.
pub fn topology_node() -> NodeInfo {
    NodeInfo {
        name: "node".into(),
        node_ips: vec![ip("198.51.100.1")],
        zone: None,
    }
}

/// The proxy of the Topology's node (namespace `netns`) in `mode`, as `svcnet proxy` would run
/// it there: no metrics or health servers, default sync settings.
pub fn topology_options(mode: Mode, netns: &str) -> Options {
    let node = topology_node();
    Options {
        mode,
        netns: Some(netns.to_string()),
        node_name: node.name,
        node_ips: node.node_ips,
        cluster_cidr: nft_cfg().cluster_cidr,
        metrics_addr: None,
        health_bind: None,
        settings: Default::default(),
        userspace_algorithm: Default::default(),
    }
}

/// The Services the real-traffic tests start from, on the Topology's backends b2..b4 (:8080):
/// `web` 10.97.1.1:80, `np` 10.97.1.2:80 with NodePort 30080, `empty` 10.97.1.3:80 without
/// endpoints, and `sticky` 10.97.1.4:80 with ClientIP affinity (300 s).
pub fn topology_services() -> State {
    let mut st = State::default();
    let all = || backends(&[2, 3, 4], 8080);
    add(
        &mut st,
        service("web", "10.97.1.1", 80, Protocol::Tcp),
        all(),
    );
    let mut np = service("np", "10.97.1.2", 80, Protocol::Tcp);
    np.node_port = 30080;
    add(&mut st, np, all());
    add(
        &mut st,
        service("empty", "10.97.1.3", 80, Protocol::Tcp),
        vec![],
    );
    let mut sticky = service("sticky", "10.97.1.4", 80, Protocol::Tcp);
    sticky.affinity_timeout = Some(300);
    add(&mut st, sticky, all());
    st
}

/// `s` with its endpoints into `st`.
pub fn add(st: &mut State, s: ServicePort, eps: Vec<Endpoint>) {
    st.endpoints.insert(s.id.clone(), eps);
    st.services.insert(s.id.clone(), s);
}

/// A state of these Service ports with their endpoints.
pub fn state<'a>(sps: impl IntoIterator<Item = &'a (ServicePort, Vec<Endpoint>)>) -> State {
    let mut st = State::default();
    for (s, eps) in sps {
        add(&mut st, s.clone(), eps.clone());
    }
    st
}

/// `cur` with the Service ports `ids` as `new` has them (added, changed or removed).
pub fn with_changes(cur: &State, new: &State, ids: &[ServicePortName]) -> State {
    let mut next = cur.clone();
    for id in ids {
        next.services.remove(id);
        next.endpoints.remove(id);
        if let Some(s) = new.services.get(id) {
            next.services.insert(id.clone(), s.clone());
        }
        if let Some(e) = new.endpoints.get(id) {
            next.endpoints.insert(id.clone(), e.clone());
        }
    }
    next
}

/// An address (tests spell them as text).
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP address")
}

/// A scratch network namespace for a test that needs root and nft (None: the test is skipped,
/// and says so).
#[cfg(test)]
pub fn nft_netns(tag: &str) -> Option<svcnet_netns::testing::ScratchNetns> {
    if !svcnet_netns::testing::can_run(&["nft"]) {
        return None;
    }
    Some(svcnet_netns::testing::ScratchNetns::new(tag).expect("a scratch namespace"))
}

/// The golden file `name` (in `crates/proxy/tests/golden/`) must hold `actual`; with
/// `UPDATE_GOLDEN=1` it is written first. Every rendered ruleset's golden test goes through
/// here.
#[cfg(test)]
pub fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("create the folder");
        std::fs::write(&path, actual).expect("write the golden file");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    pretty_assertions::assert_eq!(expected, actual, "{name}");
}
