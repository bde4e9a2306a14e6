//! Cluster DNS in `svcnet up`: a DNS server (svcnet-dns) on every node's address, behind the
//! `kube-system/kube-dns` Service, as CoreDNS pods behind it in a real cluster.

use std::net::SocketAddr;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use svcnet_cluster::{ports, ClusterNetwork};

use super::layout::Layout;

/// The kube-dns Service's ports as CoreDNS's manifest names them (name, protocol, port); each
/// targets the same port on the nodes' DNS servers.
const KUBE_DNS_PORTS: [(&str, &str, u16); 3] = [
    ("dns", "UDP", ports::DNS),
    ("dns-tcp", "TCP", ports::DNS),
    ("metrics", "TCP", ports::DNS_METRICS),
];

/// Cluster DNS: a DNS server (svcnet-dns) on the DNS port of every node's address, behind the
/// `kube-system/kube-dns` Service at `--cluster-dns` (the nameserver of the pods' resolv.conf).
/// The Service has no selector: its Endpoints list the nodes (the controllers mirror them into
/// an EndpointSlice), so the proxies balance pods' queries over the nodes' servers. Names outside
/// the cluster are forwarded only to what a node's namespace can reach (no route leaves the
/// cluster's namespaces: `--upstream` of `svcnet dns` is for real networks).
pub async fn start_cluster_dns(
    client: &Client,
    l: &Layout,
    nodes: usize,
    net: &ClusterNetwork,
) -> anyhow::Result<()> {
    for i in 1..=nodes {
        let cfg = svcnet_dns::Config {
            listen: SocketAddr::from((Layout::node_ip(i), ports::DNS)),
            metrics_addr: Some(SocketAddr::from((Layout::node_ip(i), ports::DNS_METRICS))),
            netns: Some(l.node_ns(i)),
            cluster_domain: net.cluster_domain.clone(),
            ..Default::default()
        };
        svcnet_dns::start(client.clone(), cfg)
            .await
            .with_context(|| format!("starting cluster DNS on {}", Layout::node_name(i)))?;
    }
    create_kube_dns_service(client, net).await?;
    write_kube_dns_endpoints(client, nodes).await
}

/// `kube-system/kube-dns` at the cluster's DNS address, without a selector (kept if it exists).
async fn create_kube_dns_service(client: &Client, net: &ClusterNetwork) -> anyhow::Result<()> {
    let service_ports: Vec<serde_json::Value> = KUBE_DNS_PORTS
        .iter()
        .map(|(name, protocol, port)| {
            serde_json::json!({"name": name, "port": port, "protocol": protocol, "targetPort": port})
        })
        .collect();
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": net.cluster_dns.to_string(), "ports": service_ports}
    }))?;
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    match services.create(&PostParams::default(), &svc).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).context("creating kube-system/kube-dns"),
    }
}

/// kube-dns's Endpoints: every node's address (created, or merged over what a previous `up`
/// wrote).
async fn write_kube_dns_endpoints(client: &Client, nodes: usize) -> anyhow::Result<()> {
    let addresses: Vec<serde_json::Value> = (1..=nodes)
        .map(|i| {
            serde_json::json!({"ip": Layout::node_ip(i).to_string(),
                               "nodeName": Layout::node_name(i)})
        })
        .collect();
    let endpoint_ports: Vec<serde_json::Value> = KUBE_DNS_PORTS
        .iter()
        .map(|(name, protocol, port)| serde_json::json!({"name": name, "port": port, "protocol": protocol}))
        .collect();
    let eps = serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns"}},
        "subsets": [{"addresses": addresses, "ports": endpoint_ports}]
    });
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "kube-system");
    let written = match endpoints
        .create(
            &PostParams::default(),
            &serde_json::from_value(eps.clone())?,
        )
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 409 => endpoints
            .patch("kube-dns", &PatchParams::default(), &Patch::Merge(eps))
            .await
            .map(|_| ()),
        other => other.map(|_| ()),
    };
    written.context("writing kube-system/kube-dns Endpoints")
}
