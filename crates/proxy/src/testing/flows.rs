//! The flow table (kube-proxy's `pkg/proxy/*/proxier_test.go` flows): every feature of the
//! Service proxy as packets, with what must happen to each, and the tracers' helpers both
//! modes' flow tests use (`nftables/proxier/tests.rs`, `iptables/proxier/tests.rs`).

use std::net::{IpAddr, Ipv4Addr};

use crate::model::{Protocol, ServicePortName, State};
use crate::nftables::render_full;
use crate::trace::ipt::IptTracer;
use crate::trace::{Packet, Trace, Tracer, Verdict};

use super::fixtures::{changes, fixture, ipt_cfg, nft_cfg as cfg, node};
use super::id;

/// A pod on this node (in the cluster CIDR) that is no endpoint.
pub(crate) const POD: &str = "10.244.0.9";
/// A pod on another node.
pub(crate) const REMOTE_POD: &str = "10.244.1.20";
pub(crate) const OUTSIDE: &str = "203.0.113.7";
/// The node's address.
pub(crate) const NODE: &str = "198.51.100.1";
/// Inside the load balancer's source ranges.
pub(crate) const LB_CLIENT: &str = "198.51.100.5";

pub(crate) const WEB: &[&str] = &["10.244.0.2:8080", "10.244.0.3:8080", "10.244.1.4:8080"];
pub(crate) const LOCAL_BOTH: &[&str] = &["10.244.0.2:8080", "10.244.1.4:8080"];
pub(crate) const E02: &[&str] = &["10.244.0.2:8080"];
pub(crate) const REMOTE: &[&str] = &["10.244.1.4:8080"];
pub(crate) const LB_EP: &[&str] = &["10.244.0.3:8443"];

pub(crate) fn v4s(ips: &[IpAddr]) -> Vec<Ipv4Addr> {
    ips.iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect()
}

pub(crate) fn local_ips() -> Vec<Ipv4Addr> {
    v4s(&node().node_ips)
}

pub(crate) fn tracer(st: &State) -> Tracer {
    Tracer::from_script(&render_full(st, &node(), &cfg()), &local_ips())
}

#[derive(Debug)]
pub(crate) enum Want {
    /// Accepted, DNATed to one of these, masqueraded or not.
    To(&'static [&'static str], bool),
    Reject {
        tcp_reset: bool,
    },
    Drop,
    /// Accepted untouched.
    Pass,
}

pub(crate) fn check(t: &mut Tracer, name: &str, p: Packet, want: &Want) -> Trace {
    let tr = t.trace(p);
    let ctx = format!("{name}: {p}\n  got {tr}\n  want {want:?}");
    assert_trace(&tr, want, &ctx);
    tr
}

/// That `tr` is what `want` says (for either tracer).
pub(crate) fn assert_trace(tr: &Trace, want: &Want, ctx: &str) {
    match want {
        Want::To(eps, masq) => {
            assert_eq!(tr.verdict, Verdict::Accept, "{ctx}");
            let (ip, port) = tr.dnat.unwrap_or_else(|| panic!("no DNAT: {ctx}"));
            assert!(eps.contains(&format!("{ip}:{port}").as_str()), "{ctx}");
            assert_eq!(tr.masqueraded, *masq, "masquerade: {ctx}");
        }
        Want::Reject { tcp_reset } => {
            assert_eq!(
                tr.verdict,
                Verdict::Reject {
                    tcp_reset: *tcp_reset
                },
                "{ctx}"
            );
            assert_eq!(tr.dnat, None, "{ctx}");
        }
        Want::Drop => assert_eq!(tr.verdict, Verdict::Drop, "{ctx}"),
        Want::Pass => {
            assert_eq!(tr.verdict, Verdict::Accept, "{ctx}");
            assert_eq!((tr.dnat, tr.masqueraded), (None, false), "{ctx}");
        }
    }
}

pub(crate) fn tcp(src: &str, dst: &str, port: u16) -> Packet {
    Packet::tcp(src, dst, port)
}

pub(crate) fn udp(src: &str, dst: &str, port: u16) -> Packet {
    Packet::udp(src, dst, port)
}

/// Every feature of the service proxy, one packet each.
#[rustfmt::skip]
pub(crate) fn cases() -> Vec<(&'static str, Packet, Want)> {
    use Want::*;
    let node = |p: Packet| p.sent_by_node();
    vec![
        // ClusterIP, TCP and UDP, from pods (not masqueraded), outside and the node.
        ("clusterip tcp from a pod", tcp(POD, "10.97.1.1", 80), To(WEB, false)),
        ("clusterip tcp from another node's pod", tcp(REMOTE_POD, "10.97.1.1", 80), To(WEB, false)),
        ("clusterip tcp from outside", tcp(OUTSIDE, "10.97.1.1", 80), To(WEB, true)),
        ("clusterip tcp from the node", node(tcp(NODE, "10.97.1.1", 80)), To(WEB, true)),
        ("clusterip udp from a pod", udp(POD, "10.97.1.1", 53), To(&["10.244.0.2:5353"], false)),
        ("clusterip udp from outside", udp(OUTSIDE, "10.97.1.1", 53), To(&["10.244.0.2:5353"], true)),
        ("clusterip udp from the node", node(udp(NODE, "10.97.1.1", 53)), To(&["10.244.0.2:5353"], true)),
        // Unknown port of a ClusterIP: rejected.
        ("unknown tcp port", tcp(POD, "10.97.1.1", 81), Reject { tcp_reset: true }),
        ("unknown udp port", udp(POD, "10.97.1.1", 80), Reject { tcp_reset: false }),
        ("unknown port from outside", tcp(OUTSIDE, "10.97.1.2", 8080), Reject { tcp_reset: true }),
        ("unknown port from the node", node(tcp(NODE, "10.97.1.1", 81)), Reject { tcp_reset: true }),
        // No endpoints: rejected with a TCP reset.
        ("no endpoints from a pod", tcp(POD, "10.97.1.3", 80), Reject { tcp_reset: true }),
        ("no endpoints from outside", tcp(OUTSIDE, "10.97.1.3", 80), Reject { tcp_reset: true }),
        ("no endpoints from the node", node(tcp(NODE, "10.97.1.3", 80)), Reject { tcp_reset: true }),
        // NodePort (Cluster policy): masqueraded whoever sends.
        ("nodeport from outside", tcp(OUTSIDE, NODE, 30080), To(E02, true)),
        ("nodeport from a pod", tcp(POD, NODE, 30080), To(E02, true)),
        ("nodeport from the node", node(tcp(NODE, NODE, 30080)), To(E02, true)),
        ("nodeport's clusterip", tcp(POD, "10.97.1.2", 80), To(E02, false)),
        ("not a nodeport", tcp(OUTSIDE, NODE, 30099), Pass),
        ("nodeport port on a non-node address", tcp(OUTSIDE, "198.51.100.2", 30080), Pass),
        ("nodeport over udp", udp(OUTSIDE, NODE, 30080), Pass),
        // externalTrafficPolicy Local: local endpoints only, source kept.
        ("etp local nodeport from outside", tcp(OUTSIDE, NODE, 30081), To(E02, false)),
        ("etp local external ip from outside", tcp(OUTSIDE, "198.51.100.50", 80), To(E02, false)),
        ("etp local external ip from a pod", tcp(POD, "198.51.100.50", 80), To(LOCAL_BOTH, false)),
        ("etp local nodeport from the node", node(tcp(NODE, NODE, 30081)), To(LOCAL_BOTH, true)),
        ("etp local clusterip from outside", tcp(OUTSIDE, "10.97.1.5", 80), To(LOCAL_BOTH, true)),
        ("etp local clusterip from a pod", tcp(POD, "10.97.1.5", 80), To(LOCAL_BOTH, false)),
        ("etp local without local endpoints: nodeport", tcp(OUTSIDE, NODE, 30083), Drop),
        ("etp local without local endpoints: clusterip", tcp(POD, "10.97.1.7", 80), To(REMOTE, false)),
        // LoadBalancer with source ranges.
        ("lb from an allowed source", tcp(LB_CLIENT, "198.51.100.100", 443), To(LB_EP, true)),
        ("lb from another source", tcp(OUTSIDE, "198.51.100.100", 443), Drop),
        ("lb from a pod outside the ranges", tcp(POD, "198.51.100.100", 443), Drop),
        ("lb from the node (inside the ranges)", node(tcp(NODE, "198.51.100.100", 443)), To(LB_EP, true)),
        ("lb's other port", tcp(LB_CLIENT, "198.51.100.100", 444), Pass),
        ("lb's clusterip ignores the ranges", tcp(POD, "10.97.1.6", 443), To(LB_EP, false)),
        ("lb's nodeport ignores the ranges", tcp(OUTSIDE, NODE, 30082), To(LB_EP, true)),
        // External IPs (Cluster policy).
        ("external ip from outside", tcp(OUTSIDE, "203.0.113.50", 80), To(REMOTE, true)),
        ("external ip from a pod", tcp(POD, "203.0.113.50", 80), To(REMOTE, true)),
        ("external ip from the node", node(tcp(NODE, "203.0.113.50", 80)), To(REMOTE, true)),
        ("external ip's other port", tcp(OUTSIDE, "203.0.113.50", 81), Pass),
        // sessionAffinity (the picks themselves: `affinity_sticks`).
        ("affinity clusterip from a pod", tcp(POD, "10.97.1.4", 80), To(&["10.244.0.2:8080", "10.244.0.3:8080"], false)),
        ("affinity nodeport from outside", tcp(OUTSIDE, NODE, 30091), To(&["10.244.2.2:80", "10.244.0.2:80"], true)),
        // Hairpin: an endpoint reaching itself through its Service is masqueraded.
        ("hairpin", tcp("10.244.0.2", "10.97.1.2", 80), To(E02, true)),
        ("hairpin udp", udp("10.244.0.2", "10.97.1.1", 53), To(&["10.244.0.2:5353"], true)),
        ("no hairpin from another pod", tcp("10.244.0.3", "10.97.1.2", 80), To(E02, false)),
        // internalTrafficPolicy Local.
        ("itp local from a pod", tcp(POD, "10.97.1.8", 80), To(&["10.244.0.3:8080"], false)),
        ("itp local from outside", tcp(OUTSIDE, "10.97.1.8", 80), To(&["10.244.0.3:8080"], true)),
        ("itp local from the node", node(tcp(NODE, "10.97.1.8", 80)), To(&["10.244.0.3:8080"], true)),
        ("itp local without local endpoints", tcp(POD, "10.97.1.10", 80), Drop),
        ("itp local without local endpoints from the node", node(tcp(NODE, "10.97.1.10", 80)), Drop),
        // Terminating endpoints, SCTP.
        ("terminating endpoint not used while one is ready", tcp(POD, "10.97.1.13", 80), To(E02, false)),
        ("terminating serving endpoint used when none is ready", tcp(POD, "10.97.1.14", 80), To(&["10.244.0.3:8080"], false)),
        ("no endpoints: terminating and not serving", tcp(POD, "10.97.1.16", 80), Reject { tcp_reset: true }),
        ("sctp clusterip from a pod", Packet::new(Protocol::Sctp, POD, "10.97.1.15", 9999), To(&["10.244.0.2:9999"], false)),
        ("sctp clusterip from the node", Packet::new(Protocol::Sctp, NODE, "10.97.1.15", 9999).sent_by_node(), To(&["10.244.0.2:9999"], true)),
        ("unknown sctp port", Packet::new(Protocol::Sctp, POD, "10.97.1.15", 9998), Reject { tcp_reset: false }),
        // Traffic that is not for a Service, and established connections.
        ("pod to pod", tcp(POD, "10.244.1.4", 8080), Pass),
        ("outside to the node", tcp(OUTSIDE, NODE, 22), Pass),
        ("established clusterip", tcp(POD, "10.97.1.1", 80).established(), Pass),
        ("established no endpoints", tcp(POD, "10.97.1.3", 80).established(), Pass),
        ("established lb from another source", tcp(OUTSIDE, "198.51.100.100", 443).established(), Pass),
    ]
}

/// Incremental changes: nftables' golden ones, and more: `(name, old, new, ids)`.
pub(crate) fn every_change() -> Vec<(&'static str, State, State, Vec<ServicePortName>)> {
    let st = fixture();
    let web = id("web", "http", Protocol::Tcp);
    let np = id("np", "", Protocol::Tcp);
    // Off the shared path and back (sessionAffinity), and endpoints all gone.
    let mut sticky = st.clone();
    sticky.services.get_mut(&web).unwrap().affinity_timeout = Some(10);
    let mut drained = st.clone();
    drained.endpoints.insert(web.clone(), Vec::new());
    let local = id("local", "", Protocol::Tcp);
    let mut policy = st.clone();
    policy.services.get_mut(&local).unwrap().external_local = false;
    policy.services.get_mut(&np).unwrap().external_local = true;
    let everything: Vec<ServicePortName> = st.services.keys().cloned().collect();
    let mut out = changes();
    out.extend([
        ("affinity", st.clone(), sticky, vec![web.clone()]),
        ("drained", st.clone(), drained, vec![web]),
        ("policy", st.clone(), policy, vec![local, np]),
        ("everything", st, State::default(), everything),
    ]);
    out
}

/// Packets probing every address and port of `states`' Service ports.
pub(crate) fn probes(states: &[&State]) -> Vec<Packet> {
    let mut out = Vec::new();
    for st in states {
        for s in st.services.values() {
            let p = |src: &str, dst: Ipv4Addr, port: u16| {
                Packet::new(s.protocol, src, &dst.to_string(), port)
            };
            let node: Ipv4Addr = NODE.parse().unwrap();
            for ip in v4s(&s.cluster_ips) {
                for src in [POD, OUTSIDE, "10.244.0.2"] {
                    out.push(p(src, ip, s.port));
                }
                out.push(p(NODE, ip, s.port).sent_by_node());
                out.push(p(POD, ip, s.port + 1));
            }
            for ip in v4s(&s.external_ips)
                .into_iter()
                .chain(v4s(&s.load_balancer_ips))
            {
                for src in [POD, OUTSIDE, LB_CLIENT] {
                    out.push(p(src, ip, s.port));
                }
                out.push(p(NODE, ip, s.port).sent_by_node());
            }
            if s.node_port != 0 {
                for src in [POD, OUTSIDE] {
                    out.push(p(src, node, s.node_port));
                }
                out.push(p(NODE, node, s.node_port).sent_by_node());
            }
        }
    }
    out.sort_by_key(|p| format!("{p}"));
    out.dedup();
    out
}

pub(crate) fn ipt_tracer(st: &State) -> IptTracer {
    IptTracer::from_restore(
        &crate::iptables::render(st, &node(), &ipt_cfg()),
        &local_ips(),
    )
}

/// Where iptables mode is meant to differ from nftables mode (kube-proxy's iptables mode
/// differs there too).
pub(crate) fn ipt_want(name: &str, want: Want) -> Want {
    match name {
        // As kube-proxy's iptables mode: no rule for ports that are not Service ports.
        n if n.starts_with("unknown") => Want::Pass,
        // REJECT --reject-with icmp-port-unreachable, for TCP too (as kube-proxy).
        n if n.starts_with("no endpoints") => Want::Reject { tcp_reset: false },
        _ => want,
    }
}

pub(crate) fn ipt_check(t: &mut IptTracer, name: &str, p: Packet, want: &Want) -> Trace {
    let tr = t.trace(p);
    let ctx = format!(
        "iptables {name}: {p} (pick {})\n  got {tr}\n  want {want:?}",
        t.pick
    );
    assert_trace(&tr, want, &ctx);
    tr
}

/// Where the nftables mode once differed from kube-proxy (and from our iptables mode), found
/// with these tracers and fixed; the expectations are kube-proxy's.
#[rustfmt::skip]
pub(crate) fn nft_divergences() -> Vec<(&'static str, Packet, Want)> {
    use Want::*;
    vec![
        // externalTrafficPolicy Local without local endpoints: pods and the node itself
        // still reach the Service through its external addresses (kube-proxy keeps the
        // EXT chain's short-circuit rules whenever the Service has endpoints anywhere);
        // nftables has no `ext-X` chain then, and `no-endpoint-nodeports` drops.
        ("etp local without local endpoints: nodeport from a pod", tcp(POD, NODE, 30083), To(REMOTE, false)),
        ("etp local without local endpoints: nodeport from the node", tcp(NODE, NODE, 30083).sent_by_node(), To(REMOTE, true)),
        // loadBalancerSourceRanges containing the node's IP also allow the load-balancer
        // IPs themselves as sources (a node reaching a VIP bound locally has the VIP as
        // its source); `fw-X` lists only the ranges.
        ("lb from its own IP (node inside the ranges)", tcp("198.51.100.100", "198.51.100.100", 443).sent_by_node(), To(LB_EP, true)),
    ]
}
