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
