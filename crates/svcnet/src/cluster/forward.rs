//! The host's loopback into the cluster: NodePorts on 127.0.0.1 and LoadBalancer addresses
//! a.b.c.d on 127.b.c.d, each relayed through the outside client's namespace, so `curl` on the
//! host reaches Services as an external client would (nothing is added to the host's network).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::{Api, Client};
use svcnet_netns::NetNs;

use super::layout::Layout;

/// Start both forwarders; they run until the process ends.
pub fn start_forwarders(client: &Client, l: &Layout) {
    tokio::spawn(nodeport_forwarders(client.clone(), l.outside()));
    tokio::spawn(loadbalancer_forwarders(client.clone(), l.outside()));
}

/// Forward 127.0.0.1:<nodePort> on the host to node 1's NodePort (TCP), for every NodePort
/// Service, so `curl 127.0.0.1:30002` works as `curl node:30002` does in the seeds.
async fn nodeport_forwarders(client: Client, outside: String) {
    use std::collections::HashMap;
    let mut open: HashMap<u16, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let api: Api<Service> = Api::all(client.clone());
        if let Ok(list) = api.list(&ListParams::default()).await {
            let want: Vec<u16> = list
                .items
                .iter()
                .flat_map(|s| s.spec.iter().flat_map(|sp| sp.ports.iter().flatten()))
                .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                .filter_map(|p| p.node_port.map(|n| n as u16))
                .collect();
            open.retain(|port, h| {
                let keep = want.contains(port);
                if !keep {
                    h.abort();
                }
                keep
            });
            for port in want {
                if open.contains_key(&port) {
                    continue;
                }
                let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else {
                    continue;
                };
                let target = SocketAddr::from((Layout::node_ip(1), port));
                open.insert(
                    port,
                    tokio::spawn(forward(listener, outside.clone(), target)),
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Accept on `listener` (on the host) and relay every connection to `target`, dialled from
/// the outside client's namespace `outside`.
async fn forward(listener: tokio::net::TcpListener, outside: String, target: SocketAddr) {
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

/// The host's loopback stand-in for a LoadBalancer address a.b.c.d: 127.b.c.d (all of
/// 127.0.0.0/8 is local on Linux, so nothing is added to the host).
pub fn loopback_for(ip: Ipv4Addr) -> Ipv4Addr {
    let [_, b, c, d] = ip.octets();
    Ipv4Addr::new(127, b, c, d)
}

/// Forward 127.b.c.d:port on the host to a.b.c.d:port through the outside namespace, for every
/// LoadBalancer ingress address and TCP port, so `curl 127.28.0.200` reaches 172.28.0.200
/// as an external client would.
async fn loadbalancer_forwarders(client: Client, outside: String) {
    use std::collections::HashMap;
    let mut open: HashMap<SocketAddr, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut warned = std::collections::HashSet::new();
    loop {
        let api: Api<Service> = Api::all(client.clone());
        if let Ok(list) = api.list(&ListParams::default()).await {
            let want: Vec<SocketAddr> = list
                .items
                .iter()
                .flat_map(|s| {
                    let ports: Vec<u16> = s
                        .spec
                        .iter()
                        .flat_map(|sp| sp.ports.iter().flatten())
                        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                        .map(|p| p.port as u16)
                        .collect();
                    svcnet_speaker::ingress_ipv4(s)
                        .into_iter()
                        .flat_map(move |ip| {
                            ports
                                .clone()
                                .into_iter()
                                .map(move |p| SocketAddr::from((ip, p)))
                        })
                })
                .collect();
            open.retain(|target, h| {
                let keep = want.contains(target);
                if !keep {
                    h.abort();
                }
                keep
            });
            for target in want {
                if open.contains_key(&target) {
                    continue;
                }
                let SocketAddr::V4(t) = target else { continue };
                let local = SocketAddr::from((loopback_for(*t.ip()), t.port()));
                let listener = match tokio::net::TcpListener::bind(local).await {
                    Ok(l) => l,
                    Err(e) => {
                        if warned.insert(local) {
                            tracing::warn!(error = %e, "cannot forward {local} to LoadBalancer {target}");
                        }
                        continue;
                    }
                };
                tracing::info!("forwarding {local} on the host to LoadBalancer {target}");
                open.insert(
                    target,
                    tokio::spawn(forward(listener, outside.clone(), target)),
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
