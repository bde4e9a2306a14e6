//! Stale conntrack cleanup for connectionless Service traffic (kube-proxy's
//! `pkg/proxy/conntrack/cleanup.go`).
//!
//! UDP (and SCTP) "connections" live on in conntrack after the rules that DNATed them changed:
//! a client that keeps sending from the same source port keeps reaching the endpoint it was
//! first sent to, even after that endpoint is gone, and traffic to a Service that had no
//! endpoints keeps being black-holed by the cached entry after endpoints appear. So after each
//! sync the proxy deletes:
//!
//! - (a) entries DNATed to an endpoint that was usable before and is gone or no longer serving
//!   now (a terminating endpoint that still serves keeps its flows: graceful termination);
//! - (b) entries to a Service port's ClusterIPs / external IPs / load-balancer IPs and
//!   NodePort, when it had no usable endpoint before and has some now.
//!
//! [`stale_entries`] computes that (pure); [`flush`] runs the `conntrack` tool.
//!
//! [`list`] reads the table back (`conntrack -L`, parsed by [`parse_entries`]): the live
//! connections `svcnet proxy --list` counts per real server, as `ipvsadm -Ln` does.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use crate::model::{self, Protocol, ServicePort, ServicePortName, State};

/// One `conntrack -D` to run.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flush {
    /// Entries to a Service IP and port that were DNATed to `dst_nat` (kube-proxy's
    /// `ClearEntriesForNAT`).
    Endpoint {
        proto: Protocol,
        orig_dst: IpAddr,
        port: u16,
        dst_nat: IpAddr,
    },
    /// Entries to a NodePort that were DNATed to `dst_nat` (`ClearEntriesForPortNAT`).
    NodePortEndpoint {
        proto: Protocol,
        port: u16,
        dst_nat: IpAddr,
    },
    /// All entries to a Service IP and port (`ClearEntriesForIP`).
    ServiceIp {
        proto: Protocol,
        orig_dst: IpAddr,
        port: u16,
    },
    /// All entries to a NodePort, IPv4 and IPv6 (`ClearEntriesForPort`).
    NodePort { proto: Protocol, port: u16 },
}

impl Flush {
    /// The `conntrack` argument lists (several for [`Flush::NodePort`]: one per family).
    pub fn args(&self) -> Vec<Vec<String>> {
        // `-D -p <proto> [-f <family>] [--orig-dst <ip>] --orig-port-dst <port> [--dst-nat <ip>]`.
        let args = |proto: Protocol,
                    family: Option<&str>,
                    orig_dst: Option<IpAddr>,
                    port: u16,
                    dst_nat: Option<IpAddr>| {
            let mut a = vec!["-D".to_string(), "-p".into(), proto.lower().into()];
            if let Some(f) = family {
                a.extend(["-f".into(), f.to_string()]);
            }
            if let Some(ip) = orig_dst {
                a.extend(["--orig-dst".into(), ip.to_string()]);
            }
            a.extend(["--orig-port-dst".into(), port.to_string()]);
            if let Some(ip) = dst_nat {
                a.extend(["--dst-nat".into(), ip.to_string()]);
            }
            a
        };
        match *self {
            Flush::Endpoint {
                proto,
                orig_dst,
                port,
                dst_nat,
            } => vec![args(proto, None, Some(orig_dst), port, Some(dst_nat))],
            Flush::NodePortEndpoint {
                proto,
                port,
                dst_nat,
            } => vec![args(proto, None, None, port, Some(dst_nat))],
            Flush::ServiceIp {
                proto,
                orig_dst,
                port,
            } => vec![args(proto, None, Some(orig_dst), port, None)],
            Flush::NodePort { proto, port } => ["ipv4", "ipv6"]
                .iter()
                .map(|fam| args(proto, Some(fam), None, port, None))
                .collect(),
        }
    }
}

/// Why flushing conntrack entries failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// conntrack ran and failed.
    #[error("conntrack {args} failed{}: {stderr}", netns.as_deref().map(|n| format!(" in netns {n}")).unwrap_or_default())]
    FlushFailed {
        netns: Option<String>,
        args: String,
        stderr: String,
    },
    /// `conntrack -L` ran and failed.
    #[error("conntrack -L failed{}: {stderr}", netns.as_deref().map(|n| format!(" in netns {n}")).unwrap_or_default())]
    ListFailed {
        netns: Option<String>,
        stderr: String,
    },
    /// conntrack could not be run.
    #[error("running conntrack: {0}")]
    RunFailed(#[from] std::io::Error),
}

/// Whether conntrack state can outlive the rules for this protocol.
fn connectionless(p: Protocol) -> bool {
    matches!(p, Protocol::Udp | Protocol::Sctp)
}

/// The addresses traffic of `sp` arrives on (besides NodePorts).
fn service_ips(sp: &ServicePort) -> impl Iterator<Item = IpAddr> + '_ {
    sp.cluster_ips
        .iter()
        .chain(&sp.external_ips)
        .chain(&sp.load_balancer_ips)
        .copied()
}

/// The endpoints the rules of `id` send traffic to on `node` (cluster- and node-local policy).
fn usable(st: &State, id: &ServicePortName, node: &str) -> BTreeSet<(IpAddr, u16)> {
    let (Some(sp), Some(eps)) = (st.services.get(id), st.endpoints.get(id)) else {
        return BTreeSet::new();
    };
    let (cluster, local) = model::categorize(sp, eps, node, None);
    cluster
        .into_iter()
        .chain(local)
        .map(|e| (e.ip, e.port))
        .collect()
}

/// The conntrack entries made stale by going from `old` to `new` on `node` (see the module
/// docs), de-duplicated and sorted.
pub fn stale_entries(old: &State, new: &State, node: &str) -> Vec<Flush> {
    let mut out = BTreeSet::new();
    // (a) Endpoints that were used and are gone or no longer serving.
    for (id, old_sp) in &old.services {
        if !connectionless(old_sp.protocol) {
            continue;
        }
        // Flush for the addresses the entries were made with: the old Service's, and the new
        // one's if it changed (entries to either could still be DNATed to the endpoint).
        let new_sp = new.services.get(id);
        let new_eps = new.endpoints.get(id).map(Vec::as_slice).unwrap_or(&[]);
        for (ip, port) in usable(old, id, node) {
            let still = new_eps
                .iter()
                .any(|e| e.ip == ip && e.port == port && (e.ready || e.serving));
            if still && new_sp.is_some() {
                continue;
            }
            for sp in std::iter::once(old_sp).chain(new_sp) {
                for orig_dst in service_ips(sp) {
                    out.insert(Flush::Endpoint {
                        proto: sp.protocol,
                        orig_dst,
                        port: sp.port,
                        dst_nat: ip,
                    });
                }
                if sp.node_port != 0 {
                    out.insert(Flush::NodePortEndpoint {
                        proto: sp.protocol,
                        port: sp.node_port,
                        dst_nat: ip,
                    });
                }
            }
        }
    }
    // (b) Service ports that had no usable endpoint (or did not exist) and now have some.
    for (id, sp) in &new.services {
        if !connectionless(sp.protocol)
            || !usable(old, id, node).is_empty()
            || usable(new, id, node).is_empty()
        {
            continue;
        }
        for orig_dst in service_ips(sp) {
            out.insert(Flush::ServiceIp {
                proto: sp.protocol,
                orig_dst,
                port: sp.port,
            });
        }
        if sp.node_port != 0 {
            out.insert(Flush::NodePort {
                proto: sp.protocol,
                port: sp.node_port,
            });
        }
    }
    out.into_iter().collect()
}

/// Run `conntrack` for each of `f`, inside `netns` when given (`ip netns exec`). Deleting
/// nothing is not an error. Every flush is attempted; the first failure is returned.
pub fn flush(netns: Option<&str>, f: &[Flush]) -> Result<(), Error> {
    let mut first = None;
    for args in f.iter().flat_map(Flush::args) {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "conntrack"]);
                c
            }
            None => Command::new("conntrack"),
        };
        let out = match cmd.args(&args).output() {
            Ok(o) => o,
            Err(e) => {
                first.get_or_insert(Error::RunFailed(e));
                continue;
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || stderr.contains("0 flow entries have been deleted") {
            tracing::debug!(args = %args.join(" "), result = %stderr.trim(), "conntrack flush");
            continue;
        }
        first.get_or_insert(Error::FlushFailed {
            netns: netns.map(str::to_string),
            args: args.join(" "),
            stderr: stderr.trim().to_string(),
        });
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One connection of the conntrack table (`conntrack -L`): where it was sent and who answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub protocol: Protocol,
    /// The protocol's state (`ESTABLISHED`, `TIME_WAIT`, ...); None for UDP.
    pub state: Option<String>,
    /// The original direction's destination: the Service address (or NodePort) the client used.
    pub orig_dst: (IpAddr, u16),
    /// The reply direction's source: the endpoint the connection was DNATed to.
    pub reply_src: (IpAddr, u16),
}

impl Entry {
    /// Whether IPVS would count it in ActiveConn (an established TCP or SCTP connection) rather
    /// than InActConn (every other state, and UDP).
    pub fn active(&self) -> bool {
        self.state.as_deref() == Some("ESTABLISHED")
    }
}

/// The TCP, UDP and SCTP entries of `conntrack -L` output (its default format:
/// `tcp 6 431999 ESTABLISHED src=A dst=B sport=P dport=Q src=… dst=… sport=… dport=… [ASSURED]
/// mark=0 use=1`, the first `src`/`dst`/ports the original direction, the second the reply);
/// other lines are skipped.
pub fn parse_entries(text: &str) -> Vec<Entry> {
    text.lines().filter_map(parse_entry).collect()
}

fn parse_entry(line: &str) -> Option<Entry> {
    let mut words = line.split_whitespace();
    let protocol = match words.next()? {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return None,
    };
    let (mut state, mut fields) = (None, Vec::new());
    for w in words.skip(2) {
        match w.split_once('=') {
            Some((k @ ("src" | "dst" | "sport" | "dport"), v)) => fields.push((k, v)),
            Some(_) => {}
            None if fields.is_empty() && !w.starts_with('[') => state = Some(w.to_string()),
            None => {}
        }
    }
    let field = |n: usize, key: &str| -> Option<&str> {
        fields
            .iter()
            .filter(|(k, _)| *k == key)
            .nth(n)
            .map(|(_, v)| *v)
    };
    let addr = |n: usize, ip: &str, port: &str| -> Option<(IpAddr, u16)> {
        Some((field(n, ip)?.parse().ok()?, field(n, port)?.parse().ok()?))
    };
    Some(Entry {
        protocol,
        state,
        orig_dst: addr(0, "dst", "dport")?,
        reply_src: addr(1, "src", "sport")?,
    })
}

/// The conntrack table of `netns` (this process's namespace when None), IPv4 and IPv6.
pub fn list(netns: Option<&str>) -> Result<Vec<Entry>, Error> {
    let mut out = Vec::new();
    for family in ["ipv4", "ipv6"] {
        let argv = ["conntrack", "-L", "-f", family];
        let run = match netns {
            Some(ns) => svcnet_netns::NetNs::open(ns)
                .and_then(|ns| ns.exec(&argv))
                .map_err(|e| std::io::Error::other(e.to_string())),
            None => Command::new(argv[0]).args(&argv[1..]).output(),
        };
        let o = run.map_err(Error::RunFailed)?;
        if !o.status.success() {
            return Err(Error::ListFailed {
                netns: netns.map(str::to_string),
                stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
            });
        }
        out.extend(parse_entries(&String::from_utf8_lossy(&o.stdout)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Endpoint;
    use crate::testing::{self, ip, state};

    /// Port 53 of Service `name` in namespace `d`.
    fn sp(name: &str, protocol: Protocol, cluster_ip: &str, node_port: u16) -> ServicePort {
        ServicePort {
            node_port,
            ..testing::sp(&testing::id_in("d", name, "", protocol), cluster_ip, 53)
        }
    }

    /// A ready endpoint on node `n1`, port 5353.
    fn ep(addr: &str) -> Endpoint {
        testing::ep(addr, 5353, "n1")
    }

    #[test]
    fn removed_endpoint_is_flushed() {
        let mut dns = sp("dns", Protocol::Udp, "10.97.1.1", 30053);
        dns.external_ips = vec![ip("198.51.100.9")];
        let old = state(&[(dns.clone(), vec![ep("10.244.0.5"), ep("10.244.0.6")])]);
        let new = state(&[(dns.clone(), vec![ep("10.244.0.6")])]);
        let udp = Protocol::Udp;
        assert_eq!(
            stale_entries(&old, &new, "n1"),
            vec![
                Flush::Endpoint {
                    proto: udp,
                    orig_dst: ip("10.97.1.1"),
                    port: 53,
                    dst_nat: ip("10.244.0.5")
                },
                Flush::Endpoint {
                    proto: udp,
                    orig_dst: ip("198.51.100.9"),
                    port: 53,
                    dst_nat: ip("10.244.0.5")
                },
                Flush::NodePortEndpoint {
                    proto: udp,
                    port: 30053,
                    dst_nat: ip("10.244.0.5")
                },
            ]
        );
        // No longer serving counts as gone; terminating but serving keeps its flows.
        let mut not_serving = ep("10.244.0.6");
        (not_serving.ready, not_serving.serving) = (false, false);
        let gone = state(&[(dns.clone(), vec![ep("10.244.0.5"), not_serving])]);
        assert_eq!(stale_entries(&old, &gone, "n1").len(), 3);
        let mut terminating = ep("10.244.0.6");
        (terminating.ready, terminating.terminating) = (false, true);
        let graceful = state(&[(dns.clone(), vec![ep("10.244.0.5"), terminating])]);
        assert!(stale_entries(&old, &graceful, "n1").is_empty());
        // The whole Service removed: its endpoints' entries go.
        assert_eq!(stale_entries(&old, &State::default(), "n1").len(), 6);
        assert!(stale_entries(&old, &old, "n1").is_empty());
    }

    #[test]
    fn first_endpoint_flushes_service_ips() {
        let mut dns = sp("dns", Protocol::Udp, "10.97.1.1", 30053);
        dns.load_balancer_ips = vec![ip("198.51.100.20")];
        let old = state(&[(dns.clone(), vec![])]);
        let new = state(&[(dns.clone(), vec![ep("10.244.0.5")])]);
        assert_eq!(
            stale_entries(&old, &new, "n1"),
            vec![
                Flush::ServiceIp {
                    proto: Protocol::Udp,
                    orig_dst: ip("10.97.1.1"),
                    port: 53
                },
                Flush::ServiceIp {
                    proto: Protocol::Udp,
                    orig_dst: ip("198.51.100.20"),
                    port: 53
                },
                Flush::NodePort {
                    proto: Protocol::Udp,
                    port: 30053
                },
            ]
        );
        // A new Service with endpoints too; a second endpoint is nothing to flush.
        assert_eq!(stale_entries(&State::default(), &new, "n1").len(), 3);
        let more = state(&[(dns, vec![ep("10.244.0.5"), ep("10.244.0.6")])]);
        assert!(stale_entries(&new, &more, "n1").is_empty());
    }

    #[test]
    fn tcp_is_ignored_sctp_is_not() {
        let web = sp("web", Protocol::Tcp, "10.97.1.2", 30080);
        let old = state(&[(web.clone(), vec![ep("10.244.0.5")])]);
        let new = state(&[(web, vec![ep("10.244.0.6")])]);
        assert!(stale_entries(&old, &new, "n1").is_empty());
        let s = sp("s", Protocol::Sctp, "10.97.1.3", 0);
        let old = state(&[(s.clone(), vec![ep("10.244.0.5")])]);
        let new = state(&[(s, vec![ep("10.244.0.6")])]);
        assert_eq!(
            stale_entries(&old, &new, "n1"),
            vec![Flush::Endpoint {
                proto: Protocol::Sctp,
                orig_dst: ip("10.97.1.3"),
                port: 53,
                dst_nat: ip("10.244.0.5")
            }]
        );
    }

    #[test]
    fn entries_as_conntrack_lists_them() {
        let text = "\
tcp      6 431999 ESTABLISHED src=198.51.100.2 dst=10.97.1.1 sport=40312 dport=80 src=10.244.0.2 dst=198.51.100.2 sport=8080 dport=40312 [ASSURED] mark=5 use=1
tcp      6 119 TIME_WAIT src=198.51.100.2 dst=198.51.100.1 sport=40314 dport=30080 src=10.244.0.3 dst=198.51.100.1 sport=8080 dport=40314 [ASSURED] mark=0 use=1
udp      17 29 src=10.244.0.5 dst=10.96.0.10 sport=5353 dport=53 [UNREPLIED] src=10.244.0.9 dst=10.244.0.5 sport=53 dport=5353 mark=0 use=1
icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1 mark=0 use=1
";
        let e = parse_entries(text);
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(
            e[0],
            Entry {
                protocol: Protocol::Tcp,
                state: Some("ESTABLISHED".into()),
                orig_dst: (ip("10.97.1.1"), 80),
                reply_src: (ip("10.244.0.2"), 8080),
            }
        );
        assert!(e[0].active());
        assert!(!e[1].active(), "TIME_WAIT is InActConn");
        assert_eq!(e[1].orig_dst, (ip("198.51.100.1"), 30080));
        assert_eq!(e[2].state, None);
        assert_eq!(e[2].reply_src, (ip("10.244.0.9"), 53));
        assert!(!e[2].active(), "UDP is InActConn");
    }

    #[test]
    fn conntrack_arguments() {
        let f = Flush::Endpoint {
            proto: Protocol::Udp,
            orig_dst: ip("10.97.1.1"),
            port: 53,
            dst_nat: ip("10.244.0.5"),
        };
        assert_eq!(
            f.args()[0].join(" "),
            "-D -p udp --orig-dst 10.97.1.1 --orig-port-dst 53 --dst-nat 10.244.0.5"
        );
        let np = Flush::NodePort {
            proto: Protocol::Udp,
            port: 30053,
        };
        assert_eq!(
            np.args().iter().map(|a| a.join(" ")).collect::<Vec<_>>(),
            [
                "-D -p udp -f ipv4 --orig-port-dst 30053",
                "-D -p udp -f ipv6 --orig-port-dst 30053"
            ]
        );
    }
}
