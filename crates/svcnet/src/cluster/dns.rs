//! Cluster DNS in `svcnet up`: a DNS server (svcnet-dns) on every node's address, behind the
//! `kube-system/kube-dns` Service, as CoreDNS pods behind it in a real cluster.

use std::net::SocketAddr;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use svcnet_cluster::{ports, ClusterNetwork};

use super::layout::Layout;

/// Cluster DNS: a DNS server (svcnet-dns) on port 53 of every node's address, behind the
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
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": net.cluster_dns.to_string(), "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}
    }))?;
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    match services.create(&PostParams::default(), &svc).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("creating kube-system/kube-dns"),
    }
    let addresses: Vec<serde_json::Value> = (1..=nodes)
        .map(|i| {
            serde_json::json!({"ip": Layout::node_ip(i).to_string(),
                               "nodeName": Layout::node_name(i)})
        })
        .collect();
    let eps = serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns"}},
        "subsets": [{"addresses": addresses, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "metrics", "port": 9153, "protocol": "TCP"}]}]
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
