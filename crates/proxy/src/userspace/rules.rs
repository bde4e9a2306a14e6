//! The userspace mode's own table (pure rendering, and its removal): ClusterIP, external and
//! load-balancer IPs and NodePorts redirected to the listeners, rejects for Service ports without
//! endpoints, and loadBalancerSourceRanges by the nftables mode's rule.

use std::net::{IpAddr, Ipv4Addr};

use crate::model::{Protocol, ServicePort};
use crate::nftables;

/// The table's name.
pub const TABLE: &str = "svcnet-userspace";
/// The table with its family, as nft commands name it.
pub const FAMILY_TABLE: &str = "ip svcnet-userspace";

/// One Service port's rules input: where its traffic goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub service: ServicePort,
    /// The listener's port (None: no endpoints — the traffic is rejected).
    pub listener: Option<u16>,
}

pub(super) fn v4s(ips: &[IpAddr]) -> impl Iterator<Item = Ipv4Addr> + '_ {
    ips.iter().filter_map(|ip| match ip {
        IpAddr::V4(v) => Some(*v),
        IpAddr::V6(_) => None,
    })
}

pub(super) fn push_elements(out: &mut String, decl: &str, name: &str, elems: &[String]) {
    out.push_str(&format!("\t{decl} {name} {{\n"));
    out.push_str(&format!(
        "\t\ttype {};\n",
        match name {
            "redirects" => "ipv4_addr . inet_proto . inet_service : inet_service",
            "nodeport-redirects" => "inet_proto . inet_service : inet_service",
            "no-endpoints" => "ipv4_addr . inet_proto . inet_service",
            "no-endpoint-nodeports" => "inet_proto . inet_service",
            "firewall-ips" => "ipv4_addr . inet_proto . inet_service : verdict",
            _ => "ipv4_addr",
        }
    ));
    if !elems.is_empty() {
        out.push_str(&format!("\t\telements = {{ {} }}\n", elems.join(", ")));
    }
    out.push_str("\t}\n");
}

/// The whole table (one transaction replacing the previous one).
pub fn render(redirects: &[Redirect], node_ips: &[IpAddr]) -> String {
    let (mut cluster, mut nodeports, mut rejects, mut np_rejects) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // loadBalancerSourceRanges, as the nftables backend enforces them: `firewall-ips` sends
    // traffic to a load-balancer IP to the Service port's `fw-N` before any redirect.
    let (mut firewall, mut fw_chains, mut fw_count) = (Vec::new(), String::new(), 0);
    for r in redirects {
        let sp = &r.service;
        if sp.protocol == Protocol::Sctp {
            continue;
        }
        let proto = sp.protocol.lower();
        if let Some(rule) = nftables::source_ranges_rule(sp, node_ips) {
            let chain = format!("fw-{fw_count}");
            fw_count += 1;
            fw_chains.push_str(&format!("\tchain {chain} {{\n\t\t{rule}\n\t}}\n"));
            for ip in v4s(&sp.load_balancer_ips) {
                firewall.push(format!("{ip} . {proto} . {} : goto {chain}", sp.port));
            }
        }
        let ips: Vec<Ipv4Addr> = v4s(&sp.cluster_ips)
            .chain(v4s(&sp.external_ips))
            .chain(v4s(&sp.load_balancer_ips))
            .collect();
        for ip in ips {
            match r.listener {
                Some(l) => cluster.push(format!("{ip} . {proto} . {} : {l}", sp.port)),
                None => rejects.push(format!("{ip} . {proto} . {}", sp.port)),
            }
        }
        if sp.node_port != 0 {
            match r.listener {
                Some(l) => nodeports.push(format!("{proto} . {} : {l}", sp.node_port)),
                None => np_rejects.push(format!("{proto} . {}", sp.node_port)),
            }
        }
    }
    for v in [&mut cluster, &mut nodeports, &mut rejects, &mut np_rejects] {
        v.sort();
        v.dedup();
    }
    let node_v4: Vec<String> = v4s(node_ips).map(|i| i.to_string()).collect();
    let local = if node_v4.is_empty() {
        "fib daddr type local".to_string()
    } else {
        "ip daddr @nodeport-ips".to_string()
    };
    // Traffic arriving from pods comes in on address-less veths, where `redirect` has no
    // address to redirect to: DNAT it to the node's own address instead (kube-proxy's
    // userspace mode did the same); the node's own traffic is redirected to loopback.
    let pre = match node_v4.first() {
        Some(n) => format!(
            "meta l4proto {{ tcp, udp }} dnat ip to {n} : ip daddr . meta l4proto . th dport map @redirects\n\t\t{local} meta l4proto {{ tcp, udp }} dnat ip to {n} : meta l4proto . th dport map @nodeport-redirects"
        ),
        None => "jump services".to_string(),
    };
    let mut out = format!("table {FAMILY_TABLE} {{}}\ndelete table {FAMILY_TABLE}\n");
    out.push_str(&format!("table {FAMILY_TABLE} {{\n"));
    push_elements(&mut out, "set", "nodeport-ips", &node_v4);
    push_elements(&mut out, "map", "redirects", &cluster);
    push_elements(&mut out, "map", "nodeport-redirects", &nodeports);
    push_elements(&mut out, "set", "no-endpoints", &rejects);
    push_elements(&mut out, "set", "no-endpoint-nodeports", &np_rejects);
    push_elements(&mut out, "map", "firewall-ips", &firewall);
    out.push_str(&fw_chains);
    out.push_str(&format!(
        "\tchain services {{\n\
         \t\tmeta l4proto {{ tcp, udp }} redirect to :ip daddr . meta l4proto . th dport map @redirects\n\
         \t\t{local} meta l4proto {{ tcp, udp }} redirect to :meta l4proto . th dport map @nodeport-redirects\n\
         \t}}\n\
         \tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\t{pre}\n\t}}\n\
         \tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}}\n\
         \tchain filter-forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tip daddr . meta l4proto . th dport @no-endpoints reject\n\t}}\n\
         \tchain filter-output {{\n\t\ttype filter hook output priority filter; policy accept;\n\
         \t\tip daddr . meta l4proto . th dport @no-endpoints reject\n\
         \t\t{local} meta l4proto . th dport @no-endpoint-nodeports reject\n\t}}\n\
         \tchain filter-input {{\n\t\ttype filter hook input priority filter; policy accept;\n\
         \t\t{local} meta l4proto . th dport @no-endpoint-nodeports reject\n\t}}\n\
         \tchain firewall-prerouting {{\n\t\ttype filter hook prerouting priority -110; policy accept;\n\
         \t\tip daddr . meta l4proto . th dport vmap @firewall-ips\n\t}}\n\
         \tchain firewall-output {{\n\t\ttype filter hook output priority -110; policy accept;\n\
         \t\tip daddr . meta l4proto . th dport vmap @firewall-ips\n\t}}\n\
         }}\n"
    ));
    out
}

/// Delete the userspace table if present (also used when switching to another mode).
pub fn cleanup(netns: Option<&str>) -> Result<(), nftables::Error> {
    nftables::apply(
        netns,
        &format!("table {FAMILY_TABLE} {{}}\ndelete table {FAMILY_TABLE}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use crate::testing;

    #[test]
    fn renders_redirects_and_rejects() {
        let sp = |name: &str, ip: &str, protocol: Protocol, node_port: u16| ServicePort {
            node_port,
            ..testing::sp(&testing::id_in("d", name, "", protocol), ip, 80)
        };
        let out = render(
            &[
                Redirect {
                    service: sp("a", "10.97.1.1", Protocol::Tcp, 30080),
                    listener: Some(40001),
                },
                Redirect {
                    service: sp("b", "10.97.1.2", Protocol::Udp, 0),
                    listener: Some(40002),
                },
                Redirect {
                    service: sp("c", "10.97.1.3", Protocol::Tcp, 30081),
                    listener: None,
                },
            ],
            &["198.51.100.1".parse().unwrap()],
        );
        assert!(out.starts_with("table ip svcnet-userspace {}\ndelete table ip svcnet-userspace\n"));
        assert!(out
            .contains("elements = { 10.97.1.1 . tcp . 80 : 40001, 10.97.1.2 . udp . 80 : 40002 }"));
        assert!(out.contains("elements = { tcp . 30080 : 40001 }"));
        assert!(out.contains("elements = { 10.97.1.3 . tcp . 80 }"));
        assert!(out.contains("elements = { tcp . 30081 }"));
        assert!(out.contains("elements = { 198.51.100.1 }"));
        assert!(out.contains("ip daddr @nodeport-ips meta l4proto { tcp, udp } redirect"));
        assert!(!out.contains("fw-0"), "no source ranges, no firewall chain");

        // loadBalancerSourceRanges: a chain per Service port, reached through `firewall-ips`.
        let mut lb = sp("lb", "10.97.1.4", Protocol::Tcp, 30082);
        lb.load_balancer_ips = vec!["172.28.0.200".parse().unwrap()];
        lb.load_balancer_source_ranges = vec!["10.0.0.0/8".parse().unwrap()];
        let out = render(
            &[Redirect {
                service: lb,
                listener: Some(40003),
            }],
            &["198.51.100.1".parse().unwrap()],
        );
        assert!(out.contains("elements = { 172.28.0.200 . tcp . 80 : goto fw-0 }"));
        assert!(out.contains("chain fw-0 {\n\t\tip saddr != { 10.0.0.0/8 } drop\n\t}"));
        assert!(out.contains("type filter hook prerouting priority -110"));
    }

    /// The rendered table loads, firewall and all.
    #[test]
    fn nft_accepts_the_table() {
        let Some(scratch) = testing::nft_netns("userspace") else {
            return;
        };
        let mut lb = testing::sp(
            &testing::id_in("d", "lb", "", Protocol::Tcp),
            "10.97.1.4",
            80,
        );
        lb.load_balancer_ips = vec!["172.28.0.200".parse().unwrap()];
        lb.load_balancer_source_ranges = vec!["198.51.100.0/24".parse().unwrap()];
        let out = render(
            &[Redirect {
                service: lb,
                listener: Some(40003),
            }],
            &["198.51.100.1".parse().unwrap()],
        );
        nftables::check(Some(scratch.name()), &out).unwrap();
        assert!(out.contains("ip saddr != { 172.28.0.200, 198.51.100.0/24 } drop"));
    }
}
