//! `iptables-restore --noflush` input for a state (pure, golden-tested): kube-proxy's
//! `syncProxyRules` writing its nat and filter tables, with its chain names, comments and
//! `iptables-save` spelling.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use sha2::{Digest, Sha256};

use crate::model::{categorize, Endpoint, NodeInfo, ServicePort, State};

use super::names::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Traffic to a ClusterIP from outside this range is masqueraded (kube-proxy's
    /// `--cluster-cidr`); None: no such rule.
    pub cluster_cidr: Option<ipnet::IpNet>,
    /// The firewall-mark bit that asks for masquerading (kube-proxy's default is 14).
    pub masquerade_bit: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster_cidr: None,
            masquerade_bit: 14,
        }
    }
}

/// kube-proxy's `portProtoHash`: the first 16 characters of base32(sha256(s)).
pub(super) fn hash16(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    data_encoding::BASE32.encode(&digest)[..16].to_string()
}

/// The hash naming a Service port's chains (`KUBE-SVC-<hash>` etc.).
pub fn service_hash(sp: &ServicePort) -> String {
    hash16(&format!("{}{}", sp.id, sp.protocol.lower()))
}

/// The chain of one endpoint of a Service port (`KUBE-SEP-<hash>`).
pub fn endpoint_chain(sp: &ServicePort, ep: &Endpoint) -> String {
    format!(
        "KUBE-SEP-{}",
        hash16(&format!(
            "{}{}{}",
            sp.id,
            sp.protocol.lower(),
            ep_string(ep)
        ))
    )
}

pub(super) fn ep_string(ep: &Endpoint) -> String {
    std::net::SocketAddr::new(ep.ip, ep.port).to_string()
}

/// A `--comment` argument as `iptables-save` prints it (quoted unless plain).
pub(super) fn comment(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("-m comment --comment {s}")
    } else {
        format!("-m comment --comment \"{}\"", s.replace('"', "'"))
    }
}

/// `1/n` as the statistic match stores it (in units of 2^-31) and `iptables-save` prints it.
pub(super) fn probability(n: usize) -> String {
    let scale = f64::from(0x8000_0000u32);
    let units = (scale / n as f64).round();
    format!("{:.11}", units / scale)
}

pub(super) fn v4(ips: &[IpAddr]) -> Vec<Ipv4Addr> {
    ips.iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect()
}

pub(super) fn net(n: &ipnet::IpNet) -> Option<String> {
    match n {
        ipnet::IpNet::V4(n) => Some(n.trunc().to_string()),
        ipnet::IpNet::V6(_) => None,
    }
}

/// The rules for `state` (see [`render_with`]), without deleting chains of earlier renders.
pub fn render(state: &State, node: &NodeInfo, cfg: &Config) -> String {
    render_with(&BTreeSet::new(), state, node, cfg).0
}

/// `iptables-restore --noflush` input for `state`, and the per-Service chains it declares.
///
/// Our fixed chains are declared (which flushes them) and refilled; the per-Service chains
/// too; chains in `prev_chains` (what the previous render returned, or
/// [`existing_chains`](super::existing_chains) after a restart) that this render no longer has are flushed and
/// deleted.
pub fn render_with(
    prev_chains: &BTreeSet<String>,
    state: &State,
    node: &NodeInfo,
    cfg: &Config,
) -> (String, BTreeSet<String>) {
    let mark = format!("0x{:x}", 1u32 << cfg.masquerade_bit.min(31));
    let cluster_cidr = cfg.cluster_cidr.as_ref().and_then(net);
    let node_ips = v4(&node.node_ips);

    let mut nat_chains: Vec<String> = Vec::new();
    let mut nat_services = String::new();
    let mut nat_nodeports = String::new();
    let mut nat_rules = String::new();
    let mut f_services = String::new();
    let mut f_external = String::new();
    let mut f_nodeports = String::new();
    let mut f_firewall = String::new();

    for (id, sp) in &state.services {
        let cluster_ips = v4(&sp.cluster_ips);
        if cluster_ips.is_empty() {
            continue;
        }
        let spn = id.to_string();
        let proto = sp.protocol.lower();
        let eps = state.endpoints.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let (cluster_eps, local_eps) = categorize(sp, eps, &node.name, node.zone.as_deref());
        // kube-proxy's `hasEndpoints`: usable endpoints on any node, whatever the traffic
        // policies (`categorize` always fills `cluster_eps`: ready endpoints, else serving
        // terminating ones). Without any: REJECT; with some but none for a Local policy: DROP.
        let has_endpoints = !cluster_eps.is_empty();

        let external_ips = v4(&sp.external_ips);
        let lb_ips = v4(&sp.load_balancer_ips);
        let externally_accessible =
            sp.node_port != 0 || !external_ips.is_empty() || !lb_ips.is_empty();
        let external_local = sp.external_local && externally_accessible;
        let uses_cluster = !sp.internal_local || externally_accessible;
        let uses_local = sp.internal_local || external_local;
        let cluster_eps: Vec<&Endpoint> = if uses_cluster {
            cluster_eps
        } else {
            Vec::new()
        };
        let local_eps: Vec<&Endpoint> = if uses_local { local_eps } else { Vec::new() };
        // Every endpoint some chain of ours may jump to, in order, without duplicates.
        let mut reachable: Vec<&Endpoint> = cluster_eps.clone();
        for e in &local_eps {
            if !reachable.iter().any(|r| r.ip == e.ip && r.port == e.port) {
                reachable.push(e);
            }
        }
        reachable.sort();
        let has_internal = if sp.internal_local {
            !local_eps.is_empty()
        } else {
            !cluster_eps.is_empty()
        };
        let has_external = if external_local {
            !local_eps.is_empty()
        } else {
            !cluster_eps.is_empty()
        };

        let hash = service_hash(sp);
        let svc_chain = format!("KUBE-SVC-{hash}");
        let svl_chain = format!("KUBE-SVL-{hash}");
        let ext_chain = format!("KUBE-EXT-{hash}");
        let fw_chain = format!("KUBE-FW-{hash}");
        let uses_svc = !cluster_eps.is_empty();
        let uses_svl = !local_eps.is_empty();
        let uses_ext = has_endpoints && externally_accessible;
        let uses_fw =
            has_endpoints && !lb_ips.is_empty() && !sp.load_balancer_source_ranges.is_empty();
        let internal_chain = if sp.internal_local {
            &svl_chain
        } else {
            &svc_chain
        };
        let external_chain = if external_local {
            &svl_chain
        } else {
            &svc_chain
        };
        let lb_chain = if uses_fw { &fw_chain } else { &ext_chain };

        let (internal_filter, external_filter) = if !has_endpoints {
            let c = format!("{spn} has no endpoints");
            let t = "REJECT --reject-with icmp-port-unreachable";
            (Some((c.clone(), t)), Some((c, t)))
        } else {
            let c = format!("{spn} has no local endpoints");
            (
                (!has_internal).then(|| (c.clone(), "DROP")),
                (!has_external).then_some((c, "DROP")),
            )
        };

        // `-A chain [-d ip/32] -p proto <comment> -m proto --dport port -j target`, the shape of
        // every per-destination rule below (`dest`: `-d ip/32 ` or "").
        let rule = |out: &mut String, chain: &str, dest: &str, c: &str, port: u16, target: &str| {
            let _ = writeln!(
                out,
                "-A {chain} {dest}-p {proto} {} -m {proto} --dport {port} -j {target}",
                comment(c)
            );
        };
        // The same at the Service port (`-d ip/32`).
        let at_port = |out: &mut String, chain: &str, ip: &Ipv4Addr, c: &str, target: &str| {
            rule(out, chain, &format!("-d {ip}/32 "), c, sp.port, target);
        };
        // ClusterIPs.
        for ip in &cluster_ips {
            if has_internal {
                let c = format!("{spn} cluster IP");
                at_port(&mut nat_services, KUBE_SERVICES, ip, &c, internal_chain);
            } else if let Some((c, t)) = &internal_filter {
                at_port(&mut f_services, KUBE_SERVICES, ip, c, t);
            }
        }
        // External IPs, then load-balancer IPs (which pass the source ranges' firewall).
        let external = [
            (&external_ips, "external IP", &ext_chain, false),
            (&lb_ips, "loadbalancer IP", lb_chain, uses_fw),
        ];
        for (ips, kind, target, firewalled) in external {
            for ip in ips {
                if has_endpoints {
                    let c = format!("{spn} {kind}");
                    at_port(&mut nat_services, KUBE_SERVICES, ip, &c, target);
                }
                if firewalled {
                    let c = format!("{spn} traffic not accepted by {fw_chain}");
                    at_port(&mut f_firewall, KUBE_PROXY_FIREWALL, ip, &c, "DROP");
                }
                if let Some((c, t)) = &external_filter {
                    at_port(&mut f_external, KUBE_EXTERNAL_SERVICES, ip, c, t);
                }
            }
        }
        // Node port.
        if sp.node_port != 0 {
            if has_endpoints {
                rule(
                    &mut nat_nodeports,
                    KUBE_NODEPORTS,
                    "",
                    &spn,
                    sp.node_port,
                    &ext_chain,
                );
            }
            if let Some((c, t)) = &external_filter {
                let _ = writeln!(
                    f_external,
                    "-A {KUBE_EXTERNAL_SERVICES} -p {proto} {} -m addrtype --dst-type LOCAL -m {proto} --dport {} -j {t}",
                    comment(c),
                    sp.node_port
                );
            }
        }
        // Health-check node port (externalTrafficPolicy: Local).
        if sp.health_check_node_port != 0 {
            let _ = writeln!(
                f_nodeports,
                "-A {KUBE_NODEPORTS} -p tcp {} -m tcp --dport {} -j ACCEPT",
                comment(&format!("{spn} health check node port")),
                sp.health_check_node_port
            );
        }

        if !has_endpoints {
            continue;
        }

        // Off-cluster sources of internal traffic are masqueraded (the node forwards them to a
        // Service IP routed to it): first rule of the internal traffic chain, KUBE-SVC- or
        // KUBE-SVL- (kube-proxy's `internalTrafficChain`).
        let internal_masquerade = |chain: &str, out: &mut String| {
            let Some(cidr) = &cluster_cidr else { return };
            if chain == internal_chain.as_str() && has_internal {
                for ip in &cluster_ips {
                    let d = format!("! -s {cidr} -d {ip}/32 ");
                    let c = format!("{spn} cluster IP");
                    rule(out, chain, &d, &c, sp.port, KUBE_MARK_MASQ);
                }
            }
        };

        if uses_svc {
            nat_chains.push(svc_chain.clone());
            internal_masquerade(&svc_chain, &mut nat_rules);
            service_to_endpoints(&mut nat_rules, &svc_chain, &spn, sp, &cluster_eps);
        }

        if uses_ext {
            nat_chains.push(ext_chain.clone());
            if !external_local {
                let _ = writeln!(
                    nat_rules,
                    "-A {ext_chain} {} -j {KUBE_MARK_MASQ}",
                    comment(&format!(
                        "masquerade traffic for {spn} external destinations"
                    ))
                );
            } else if uses_svc {
                if let Some(cidr) = &cluster_cidr {
                    let _ = writeln!(
                        nat_rules,
                        "-A {ext_chain} -s {cidr} {} -j {svc_chain}",
                        comment(&format!("pod traffic for {spn} external destinations"))
                    );
                }
                let _ = writeln!(
                    nat_rules,
                    "-A {ext_chain} {} -m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}",
                    comment(&format!(
                        "masquerade LOCAL traffic for {spn} external destinations"
                    ))
                );
                let _ = writeln!(
                    nat_rules,
                    "-A {ext_chain} {} -m addrtype --src-type LOCAL -j {svc_chain}",
                    comment(&format!(
                        "route LOCAL traffic for {spn} external destinations"
                    ))
                );
            }
            if has_external {
                let _ = writeln!(nat_rules, "-A {ext_chain} -j {external_chain}");
            }
        }

        if uses_fw {
            nat_chains.push(fw_chain.clone());
            let c = comment(&format!("{spn} loadbalancer IP"));
            let mut allow_from_node = false;
            for range in &sp.load_balancer_source_ranges {
                let Some(r) = net(range) else { continue };
                let _ = writeln!(nat_rules, "-A {fw_chain} -s {r} {c} -j {ext_chain}");
                if node_ips.iter().any(|ip| range.contains(&IpAddr::V4(*ip))) {
                    allow_from_node = true;
                }
            }
            if allow_from_node {
                for ip in &lb_ips {
                    let _ = writeln!(nat_rules, "-A {fw_chain} -s {ip}/32 {c} -j {ext_chain}");
                }
            }
            let _ = writeln!(
                nat_rules,
                "-A {fw_chain} {}",
                comment(&format!(
                    "other traffic to {spn} will be dropped by KUBE-PROXY-FIREWALL"
                ))
            );
        }

        if uses_svl {
            nat_chains.push(svl_chain.clone());
            internal_masquerade(&svl_chain, &mut nat_rules);
            service_to_endpoints(&mut nat_rules, &svl_chain, &spn, sp, &local_eps);
        }

        for ep in &reachable {
            let sep = endpoint_chain(sp, ep);
            nat_chains.push(sep.clone());
            let c = comment(&spn);
            if let IpAddr::V4(ip) = ep.ip {
                let _ = writeln!(nat_rules, "-A {sep} -s {ip}/32 {c} -j {KUBE_MARK_MASQ}");
            }
            let recent = if sp.affinity_timeout.is_some() {
                format!(" -m recent --set --name {sep} --mask 255.255.255.255 --rsource")
            } else {
                String::new()
            };
            let _ = writeln!(
                nat_rules,
                "-A {sep} -p {proto} {c}{recent} -m {proto} -j DNAT --to-destination {}",
                ep_string(ep)
            );
        }
    }

    let current: BTreeSet<String> = nat_chains.iter().cloned().collect();
    let stale: Vec<&String> = prev_chains.difference(&current).collect();

    let mut out = String::new();
    out.push_str("*filter\n");
    for c in FILTER_CHAINS {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    out.push_str(&f_nodeports);
    out.push_str(&f_services);
    out.push_str(&f_external);
    let _ = writeln!(
        out,
        "-A {KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP"
    );
    let _ = writeln!(
        out,
        "-A {KUBE_FORWARD} {} -m mark --mark {mark}/{mark} -j ACCEPT",
        comment("kubernetes forwarding rules")
    );
    let _ = writeln!(
        out,
        "-A {KUBE_FORWARD} {} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        comment("kubernetes forwarding conntrack rule")
    );
    out.push_str(&f_firewall);
    out.push_str("COMMIT\n*nat\n");
    for c in NAT_CHAINS {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for c in &nat_chains {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for c in &stale {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    out.push_str(&nat_services);
    let _ = writeln!(
        out,
        "-A {KUBE_SERVICES} {} -m addrtype --dst-type LOCAL -j {KUBE_NODEPORTS}",
        comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
    );
    out.push_str(&nat_nodeports);
    let _ = writeln!(
        out,
        "-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN"
    );
    let _ = writeln!(out, "-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}");
    let _ = writeln!(
        out,
        "-A {KUBE_POSTROUTING} {} -j MASQUERADE --random-fully",
        comment("kubernetes service traffic requiring SNAT")
    );
    let _ = writeln!(out, "-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}");
    out.push_str(&nat_rules);
    for c in &stale {
        let _ = writeln!(out, "-X {c}");
    }
    out.push_str("COMMIT\n");
    (out, current)
}

/// The rules of a `KUBE-SVC-`/`KUBE-SVL-` chain leading to `eps`.
pub(super) fn service_to_endpoints(
    out: &mut String,
    chain: &str,
    spn: &str,
    sp: &ServicePort,
    eps: &[&Endpoint],
) {
    if let Some(timeout) = sp.affinity_timeout {
        for ep in eps {
            let sep = endpoint_chain(sp, ep);
            let _ = writeln!(
                out,
                "-A {chain} {} -m recent --rcheck --seconds {timeout} --reap --name {sep} --mask 255.255.255.255 --rsource -j {sep}",
                comment(&format!("{spn} -> {}", ep_string(ep)))
            );
        }
    }
    let n = eps.len();
    for (i, ep) in eps.iter().enumerate() {
        let sep = endpoint_chain(sp, ep);
        let c = comment(&format!("{spn} -> {}", ep_string(ep)));
        if i + 1 < n {
            let _ = writeln!(
                out,
                "-A {chain} {c} -m statistic --mode random --probability {} -j {sep}",
                probability(n - i)
            );
        } else {
            let _ = writeln!(out, "-A {chain} {c} -j {sep}");
        }
    }
}
