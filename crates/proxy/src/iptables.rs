//! The iptables backend, in kube-proxy's layout and with its chain names and comments, so
//! `iptables -t nat -L -n -v` reads like a Kubernetes node's.
//!
//! [`render_with`] turns the model into `iptables-restore --noflush` input (pure, golden
//! tested); [`apply`] loads it; [`ensure_jumps`] hooks our chains into the built-in ones;
//! [`cleanup`] removes everything again.
//!
//! The rules are written in `iptables-save`'s canonical spelling (match order, `/32`
//! suffixes, quoting, `--probability` rounded as the kernel stores it), so what we render
//! is what `iptables-save` prints back — except the two MARK rules, kept in kube-proxy's
//! `--or-mark` / `--xor-mark` spelling (saved as `--set-xmark M/M` and `--set-xmark M/0x0`). IPv4 only: IPv6 addresses in the model are skipped
//! (they belong to `ip6tables`).
//!
//! nat:
//! - `KUBE-SERVICES`: per Service IP (cluster, external, load-balancer) and port a jump to
//!   the Service's chain; last, node-local destinations go to `KUBE-NODEPORTS`.
//! - `KUBE-NODEPORTS`: per node port a jump to `KUBE-EXT-<hash>`.
//! - `KUBE-SVC-<hash>` (Cluster policy) / `KUBE-SVL-<hash>` (Local policy): the one taking
//!   internal traffic first masquerades off-cluster sources; then one `KUBE-SEP-<hash>` per
//!   endpoint chosen with `-m statistic --mode random` (session affinity: `-m recent
//!   --rcheck` first).
//! - `KUBE-EXT-<hash>`: external traffic; masquerades unless `externalTrafficPolicy: Local`.
//! - `KUBE-FW-<hash>`: `loadBalancerSourceRanges`.
//! - `KUBE-SEP-<hash>`: hairpin masquerade and the DNAT.
//! - `KUBE-MARK-MASQ`, `KUBE-POSTROUTING`: masquerade by firewall mark.
//!
//! filter: `KUBE-SERVICES` (REJECT for Services without endpoints; DROP for
//! `internalTrafficPolicy: Local` ones whose endpoints are all on other nodes),
//! `KUBE-EXTERNAL-SERVICES` (the same for external IPs and node ports), `KUBE-NODEPORTS`
//! (health-check node ports), `KUBE-FORWARD`, `KUBE-PROXY-FIREWALL` (source ranges).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::model::{categorize, Endpoint, ServicePort, State};

pub use crate::model::NodeInfo;

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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("running `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
}

pub const KUBE_SERVICES: &str = "KUBE-SERVICES";
pub const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
pub const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
pub const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
pub const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
pub const KUBE_FORWARD: &str = "KUBE-FORWARD";
pub const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";

/// The fixed chains of the nat table, as declared.
const NAT_CHAINS: [&str; 4] = [
    KUBE_SERVICES,
    KUBE_NODEPORTS,
    KUBE_POSTROUTING,
    KUBE_MARK_MASQ,
];
/// The fixed chains of the filter table, as declared.
const FILTER_CHAINS: [&str; 5] = [
    KUBE_SERVICES,
    KUBE_EXTERNAL_SERVICES,
    KUBE_NODEPORTS,
    KUBE_FORWARD,
    KUBE_PROXY_FIREWALL,
];

/// Prefixes of the per-Service / per-endpoint chains (all in nat).
const SERVICE_CHAIN_PREFIXES: [&str; 5] = [
    "KUBE-SVC-",
    "KUBE-SVL-",
    "KUBE-EXT-",
    "KUBE-FW-",
    "KUBE-SEP-",
];

/// The jumps from built-in chains: (table, built-in chain, extra matches, comment, our chain),
/// as kube-proxy's `iptablesJumpChains`.
const JUMPS: [(&str, &str, &[&str], &str, &str); 12] = [
    (
        "filter",
        "INPUT",
        &["-m", "conntrack", "--ctstate", "NEW"],
        "kubernetes externally-visible service portals",
        KUBE_EXTERNAL_SERVICES,
    ),
    (
        "filter",
        "FORWARD",
        &["-m", "conntrack", "--ctstate", "NEW"],
        "kubernetes externally-visible service portals",
        KUBE_EXTERNAL_SERVICES,
    ),
    (
        "filter",
        "INPUT",
        &[],
        "kubernetes health check service ports",
        KUBE_NODEPORTS,
    ),
    (
        "filter",
        "FORWARD",
        &["-m", "conntrack", "--ctstate", "NEW"],
        "kubernetes service portals",
        KUBE_SERVICES,
    ),
    (
        "filter",
        "OUTPUT",
        &["-m", "conntrack", "--ctstate", "NEW"],
        "kubernetes service portals",
        KUBE_SERVICES,
    ),
    (
        "filter",
        "FORWARD",
        &[],
        "kubernetes forwarding rules",
        KUBE_FORWARD,
    ),
    (
        "filter",
        "INPUT",
        &["-m", "conntrack", "--ctstate", "NEW"],
        "kubernetes load balancer firewall",
        KUBE_PROXY_FIREWALL,
    ),
    (
        "filter",
        "OUTPUT",
        &["-m", "conntrack", "--ctstate", "NEW"],
        "kubernetes load balancer firewall",
        KUBE_PROXY_FIREWALL,
    ),
    (
        "filter",
        "FORWARD",
        &["-m", "conntrack", "--ctstate", "NEW"],
        "kubernetes load balancer firewall",
        KUBE_PROXY_FIREWALL,
    ),
    (
        "nat",
        "OUTPUT",
        &[],
        "kubernetes service portals",
        KUBE_SERVICES,
    ),
    (
        "nat",
        "PREROUTING",
        &[],
        "kubernetes service portals",
        KUBE_SERVICES,
    ),
    (
        "nat",
        "POSTROUTING",
        &[],
        "kubernetes postrouting rules",
        KUBE_POSTROUTING,
    ),
];

/// kube-proxy's `portProtoHash`: the first 16 characters of base32(sha256(s)).
fn hash16(s: &str) -> String {
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

fn ep_string(ep: &Endpoint) -> String {
    std::net::SocketAddr::new(ep.ip, ep.port).to_string()
}

/// A `--comment` argument as `iptables-save` prints it (quoted unless plain).
fn comment(s: &str) -> String {
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
fn probability(n: usize) -> String {
    let scale = f64::from(0x8000_0000u32);
    let units = (scale / n as f64).round();
    format!("{:.11}", units / scale)
}

fn v4(ips: &[IpAddr]) -> Vec<Ipv4Addr> {
    ips.iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect()
}

fn net(n: &ipnet::IpNet) -> Option<String> {
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
/// [`existing_chains`] after a restart) that this render no longer has are flushed and
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
        // ClusterIPs.
        for ip in &cluster_ips {
            let d = format!("-d {ip}/32 ");
            if has_internal {
                let c = format!("{spn} cluster IP");
                rule(
                    &mut nat_services,
                    KUBE_SERVICES,
                    &d,
                    &c,
                    sp.port,
                    internal_chain,
                );
            } else if let Some((c, t)) = &internal_filter {
                rule(&mut f_services, KUBE_SERVICES, &d, c, sp.port, t);
            }
        }
        // External IPs.
        for ip in &external_ips {
            let d = format!("-d {ip}/32 ");
            if has_endpoints {
                let c = format!("{spn} external IP");
                rule(
                    &mut nat_services,
                    KUBE_SERVICES,
                    &d,
                    &c,
                    sp.port,
                    &ext_chain,
                );
            }
            if let Some((c, t)) = &external_filter {
                rule(&mut f_external, KUBE_EXTERNAL_SERVICES, &d, c, sp.port, t);
            }
        }
        // Load-balancer IPs.
        for ip in &lb_ips {
            let d = format!("-d {ip}/32 ");
            if has_endpoints {
                let c = format!("{spn} loadbalancer IP");
                rule(&mut nat_services, KUBE_SERVICES, &d, &c, sp.port, lb_chain);
            }
            if uses_fw {
                let c = format!("{spn} traffic not accepted by {fw_chain}");
                rule(
                    &mut f_firewall,
                    KUBE_PROXY_FIREWALL,
                    &d,
                    &c,
                    sp.port,
                    "DROP",
                );
            }
            if let Some((c, t)) = &external_filter {
                rule(&mut f_external, KUBE_EXTERNAL_SERVICES, &d, c, sp.port, t);
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
fn service_to_endpoints(
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

/// `iptables-nft-<suffix>` when installed, else `iptables-<suffix>` (suffix "" for plain).
fn binary(suffix: &str) -> String {
    let nft = format!("iptables-nft{suffix}");
    if svcnet_netns::which(&nft).is_some() {
        nft
    } else {
        format!("iptables{suffix}")
    }
}

fn command(netns: Option<&str>, program: &str, args: &[&str]) -> Command {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    };
    c.args(args);
    c
}

/// Run a command, with `stdin` as its input; its stdout on success.
fn run(mut cmd: Command, stdin: Option<&str>) -> Result<String, Error> {
    let desc = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let spawn_err = |source| Error::Spawn {
        command: desc.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(Error::Failed {
            command: desc,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Load `input` with `iptables-restore --noflush` (the nft variant when installed), inside
/// the network namespace `netns` (None: our own).
pub fn apply(netns: Option<&str>, input: &str) -> Result<(), Error> {
    run(
        command(netns, &binary("-restore"), &["-w", "--noflush"]),
        Some(input),
    )
    .map(|_| ())
}

/// Check `input` with `iptables-restore --test --noflush` without loading it.
pub fn test_input(netns: Option<&str>, input: &str) -> Result<(), Error> {
    run(
        command(netns, &binary("-restore"), &["-w", "--noflush", "--test"]),
        Some(input),
    )
    .map(|_| ())
}

/// `iptables-save` of one table.
pub fn save(netns: Option<&str>, table: &str) -> Result<String, Error> {
    run(command(netns, &binary("-save"), &["-t", table]), None)
}

/// The per-Service chains (`KUBE-SVC-`, `KUBE-SEP-`, ...) present in the nat table: what to
/// pass to [`render_with`] as `prev_chains` after a restart.
pub fn existing_chains(netns: Option<&str>) -> Result<BTreeSet<String>, Error> {
    Ok(chains_in(&save(netns, "nat")?)
        .into_iter()
        .filter(|c| SERVICE_CHAIN_PREFIXES.iter().any(|p| c.starts_with(p)))
        .collect())
}

fn chains_in(saved: &str) -> Vec<String> {
    saved
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn jump_args<'a>(extra: &[&'a str], comment: &'a str, target: &'a str) -> Vec<&'a str> {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["-m", "comment", "--comment", comment, "-j", target]);
    args
}

/// Create our fixed chains (when missing) and insert the jumps to them from the built-in
/// chains (when missing), as kube-proxy: `-C`, then `-I`. Idempotent.
pub fn ensure_jumps(netns: Option<&str>) -> Result<(), Error> {
    let ipt = binary("");
    for (table, chains) in [("nat", &NAT_CHAINS[..]), ("filter", &FILTER_CHAINS[..])] {
        for chain in chains {
            if let Err(e) = run(
                command(netns, &ipt, &["-w", "-t", table, "-N", chain]),
                None,
            ) {
                match &e {
                    Error::Failed { stderr, .. } if stderr.contains("exists") => {}
                    _ => return Err(e),
                }
            }
        }
    }
    for (table, builtin, extra, comment, target) in JUMPS {
        let rule = jump_args(extra, comment, target);
        let mut check = vec!["-w", "-t", table, "-C", builtin];
        check.extend(&rule);
        if run(command(netns, &ipt, &check), None).is_ok() {
            continue;
        }
        let mut insert = vec!["-w", "-t", table, "-I", builtin];
        insert.extend(&rule);
        run(command(netns, &ipt, &insert), None)?;
    }
    Ok(())
}

/// Remove our jumps from the built-in chains, then flush and delete all our chains.
pub fn cleanup(netns: Option<&str>) -> Result<(), Error> {
    let ipt = binary("");
    for (table, builtin, extra, comment, target) in JUMPS {
        let rule = jump_args(extra, comment, target);
        let mut del = vec!["-w", "-t", table, "-D", builtin];
        del.extend(&rule);
        // Delete every copy; stop when none is left (or the chain is gone).
        for _ in 0..16 {
            if run(command(netns, &ipt, &del), None).is_err() {
                break;
            }
        }
    }
    let mut input = String::new();
    for (table, fixed) in [("filter", &FILTER_CHAINS[..]), ("nat", &NAT_CHAINS[..])] {
        let present = chains_in(&save(netns, table)?);
        let ours: Vec<&String> = present
            .iter()
            .filter(|c| {
                fixed.contains(&c.as_str())
                    || SERVICE_CHAIN_PREFIXES.iter().any(|p| c.starts_with(p))
            })
            .collect();
        if ours.is_empty() {
            continue;
        }
        let _ = writeln!(input, "*{table}");
        for c in &ours {
            let _ = writeln!(input, ":{c} - [0:0]");
        }
        for c in &ours {
            let _ = writeln!(input, "-X {c}");
        }
        input.push_str("COMMIT\n");
    }
    if input.is_empty() {
        return Ok(());
    }
    apply(netns, &input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Protocol, ServicePortName};

    fn spn(ns: &str, name: &str, port: &str) -> ServicePortName {
        ServicePortName {
            namespace: ns.into(),
            name: name.into(),
            port: port.into(),
            protocol: Protocol::Tcp,
        }
    }

    fn port(id: ServicePortName, ip: &str, port: u16) -> ServicePort {
        ServicePort::new(id, ip.parse().unwrap(), port)
    }

    fn ep(ip: &str, port: u16, node: &str) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some(node.into()),
            zone: None,
            hint_zones: None,
        }
    }

    /// The State of the golden test: ClusterIP with two ports, a NodePort, one without
    /// endpoints, one with affinity, one with externalTrafficPolicy Local.
    pub(crate) fn sample() -> State {
        let mut st = State::default();
        let mut add = |sp: ServicePort, eps: Vec<Endpoint>| {
            st.endpoints.insert(sp.id.clone(), eps);
            st.services.insert(sp.id.clone(), sp);
        };
        let two = vec![
            ep("10.244.1.2", 8080, "node-1"),
            ep("10.244.2.2", 8080, "node-2"),
        ];
        add(
            port(spn("default", "web", "http"), "10.97.1.1", 80),
            two.clone(),
        );
        add(
            port(spn("default", "web", "metrics"), "10.97.1.1", 9090),
            vec![ep("10.244.1.2", 9090, "node-1")],
        );
        let mut np = port(spn("default", "np", ""), "10.97.1.2", 80);
        np.node_port = 30080;
        add(np, two.clone());
        add(port(spn("default", "empty", ""), "10.97.1.3", 80), vec![]);
        let mut sticky = port(spn("default", "sticky", ""), "10.97.1.4", 80);
        sticky.affinity_timeout = Some(10800);
        add(sticky, two.clone());
        let mut local = port(spn("default", "local", ""), "10.97.1.5", 80);
        local.node_port = 30081;
        local.external_local = true;
        local.health_check_node_port = 30500;
        add(local, two);
        st
    }

    pub(crate) fn node() -> NodeInfo {
        NodeInfo {
            name: "node-1".into(),
            node_ips: vec!["198.51.100.1".parse().unwrap()],
            zone: None,
        }
    }

    pub(crate) fn cfg() -> Config {
        Config {
            cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
            masquerade_bit: 14,
        }
    }

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
        let mut remote = port(spn("default", "remote", ""), "10.97.2.1", 80);
        remote.internal_local = true;
        st.endpoints
            .insert(remote.id.clone(), vec![ep("10.244.2.2", 8080, "node-2")]);
        st.services.insert(remote.id.clone(), remote);
        let mut local = port(spn("default", "local", ""), "10.97.2.2", 80);
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
}
