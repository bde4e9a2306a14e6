//! The host's loopback into the cluster: NodePorts on 127.0.0.1 and LoadBalancer addresses
//! a.b.c.d on 127.b.c.d, each relayed through the outside client's namespace, so `curl` on the
//! host reaches Services as an external client would (nothing is added to the host's network).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use kube::api::ListParams;
use kube::{Api, Client};
use svcnet_netns::NetNs;

use super::layout::Layout;

/// One forward: a listener on the host's loopback and the cluster address it relays to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Forward {
    listen: SocketAddr,
    target: SocketAddr,
}

/// Start both forwarders, as `tasks`.
pub fn start_forwarders(tasks: &mut tokio::task::JoinSet<()>, client: &Client, l: &Layout) {
    tasks.spawn(forward_services(
        client.clone(),
        l.outside(),
        "NodePort",
        nodeport_forwards,
    ));
    tasks.spawn(forward_services(
        client.clone(),
        l.outside(),
        "LoadBalancer",
        loadbalancer_forwards,
    ));
}

/// NodePorts: 127.0.0.1:<nodePort> on the host to node 1's NodePort (TCP), for every NodePort
/// Service, so `curl 127.0.0.1:30002` works as `curl node:30002` does in the seeds.
fn nodeport_forwards(services: &[Service]) -> Vec<Forward> {
    services
        .iter()
        .flat_map(tcp_ports)
        .filter_map(|p| p.node_port.map(|n| n as u16))
        .map(|port| Forward {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            target: SocketAddr::from((Layout::node_ip(1), port)),
        })
        .collect()
}

/// LoadBalancers: 127.b.c.d:port on the host to a.b.c.d:port, for every LoadBalancer ingress
/// address and TCP port, so `curl 127.28.0.200` reaches 172.28.0.200 as an external client would.
fn loadbalancer_forwards(services: &[Service]) -> Vec<Forward> {
    services
        .iter()
        .flat_map(|s| {
            let ports: Vec<u16> = tcp_ports(s).map(|p| p.port as u16).collect();
            svcnet_speaker::ingress_ipv4(s)
                .into_iter()
                .flat_map(move |ip| {
                    ports.clone().into_iter().map(move |port| Forward {
                        listen: SocketAddr::from((loopback_for(ip), port)),
                        target: SocketAddr::from((ip, port)),
                    })
                })
        })
        .collect()
}

/// A Service's TCP ports (the forwarders relay TCP only).
fn tcp_ports(s: &Service) -> impl Iterator<Item = &ServicePort> {
    s.spec
        .iter()
        .flat_map(|sp| sp.ports.iter().flatten())
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
}

/// The host's loopback stand-in for a LoadBalancer address a.b.c.d: 127.b.c.d (all of
/// 127.0.0.0/8 is local on Linux, so nothing is added to the host).
fn loopback_for(ip: Ipv4Addr) -> Ipv4Addr {
    let [_, b, c, d] = ip.octets();
    Ipv4Addr::new(127, b, c, d)
}

/// The forwarder loop: every second, list Services, compute the forwards `wanted` from them,
/// close those no longer wanted and open the new ones (a listen address that cannot be bound
/// is skipped, said once, and tried again next round). `kind` names the forwards in the logs.
async fn forward_services(
    client: Client,
    outside: String,
    kind: &'static str,
    wanted: fn(&[Service]) -> Vec<Forward>,
) {
    let mut open: HashMap<Forward, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut warned = HashSet::new();
    let api: Api<Service> = Api::all(client);
    loop {
        if let Ok(list) = api.list(&ListParams::default()).await {
            let want = wanted(&list.items);
            open.retain(|f, h| {
                let keep = want.contains(f);
                if !keep {
                    h.abort();
                }
                keep
            });
            for f in want {
                if open.contains_key(&f) {
                    continue;
                }
                let listener = match tokio::net::TcpListener::bind(f.listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        if warned.insert(f.listen) {
                            tracing::warn!(error = %e, "cannot forward {} to {kind} {}", f.listen, f.target);
                        }
                        continue;
                    }
                };
                tracing::info!("forwarding {} on the host to {kind} {}", f.listen, f.target);
                open.insert(f, tokio::spawn(relay(listener, outside.clone(), f.target)));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Accept on `listener` (on the host) and relay every connection to `target`, dialled from
/// the outside client's namespace `outside`.
async fn relay(listener: tokio::net::TcpListener, outside: String, target: SocketAddr) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        let outside = outside.clone();
        tokio::spawn(async move {
            let Ok(ns) = NetNs::open(&outside) else {
                return;
            };
            if let Ok(mut out) = ns.tcp_connect(target, Duration::from_secs(5)).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn nodeports_forward_from_host_loopback_to_node_1_tcp_only() {
        let s = service(serde_json::json!({
            "metadata": {"name": "np"},
            "spec": {"type": "NodePort", "ports": [
                {"port": 80, "nodePort": 31777},
                {"port": 53, "protocol": "UDP", "nodePort": 31053},
                {"port": 81}]}
        }));
        assert_eq!(
            nodeport_forwards(&[s]),
            [Forward {
                listen: "127.0.0.1:31777".parse().unwrap(),
                target: SocketAddr::from((Layout::node_ip(1), 31777)),
            }]
        );
    }

    #[test]
    fn loadbalancers_forward_127_b_c_d_to_a_b_c_d_per_tcp_port() {
        let s = service(serde_json::json!({
            "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "ports": [
                {"port": 80}, {"port": 443, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.28.0.200"}]}}
        }));
        assert_eq!(
            loadbalancer_forwards(&[s]),
            [
                Forward {
                    listen: "127.28.0.200:80".parse().unwrap(),
                    target: "172.28.0.200:80".parse().unwrap(),
                },
                Forward {
                    listen: "127.28.0.200:443".parse().unwrap(),
                    target: "172.28.0.200:443".parse().unwrap(),
                },
            ]
        );
    }
}
