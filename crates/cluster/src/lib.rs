//! Cluster facts in one place, as k3s keeps them in `pkg/daemons/config` (`Control` /
//! `Agent`): the Service ClusterIP range, the pods' range and its per-node blocks, the cluster
//! domain and DNS address, the NodePort range, the LoadBalancer pools and the well-known ports.
//! `svcnet up` (or a component's flags) builds one [`ClusterNetwork`] and hands it to every
//! component it starts, so no component writes a fact of its own that could drift from the
//! others'. The defaults are kubeadm's.
//!
//! Pure data: must never import anything of svcnet's.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;

/// Defaults as flag text (for clap's `default_value`), the same values [`ClusterNetwork::default`]
/// holds.
pub mod defaults {
    /// kube-apiserver `--service-cluster-ip-range` (kubeadm's `networking.serviceSubnet`).
    pub const SERVICE_CIDR: &str = "10.96.0.0/12";
    /// kube-controller-manager `--cluster-cidr` (the pods' addresses; flannel's and kind's default).
    pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
    /// kube-controller-manager `--node-cidr-mask-size`.
    pub const NODE_CIDR_MASK_SIZE: u8 = 24;
    /// kubelet `--cluster-domain`.
    pub const CLUSTER_DOMAIN: &str = "cluster.local";
    /// kubelet `--cluster-dns`: the kube-dns Service's ClusterIP (the 10th address of the range).
    pub const CLUSTER_DNS: &str = "10.96.0.10";
    /// kube-apiserver `--service-node-port-range`.
    pub const NODE_PORT_RANGE: &str = "30000-32767";
}

/// Well-known ports (kubeadm's, and the components' defaults).
pub mod ports {
    /// The API server's secure port.
    pub const APISERVER: u16 = 6443;
    /// The kubelet API.
    pub const KUBELET: u16 = 10250;
    /// kube-proxy's `/metrics` (`--metrics-bind-address`).
    pub const PROXY_METRICS: u16 = 10249;
    /// DNS.
    pub const DNS: u16 = 53;
    /// CoreDNS's `/metrics` (the kube-dns Service's `metrics` port).
    pub const DNS_METRICS: u16 = 9153;
}

/// The built-in RuntimeClass (node.k8s.io/v1) whose pods run their containers as host
/// processes in the pod's network namespace (svcnet's own components, the fastest tests): the
/// API server creates it at bootstrap, the node agent runs pods naming it without images.
pub mod runtime_class {
    /// `runtimeClassName: svcnet-process`.
    pub const PROCESS: &str = "svcnet-process";
    /// Its `handler`.
    pub const PROCESS_HANDLER: &str = "process";
}

/// Every network fact more than one component needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNetwork {
    /// Service ClusterIPs are allocated from here (the API server); nodes route it to their
    /// proxy.
    pub service_cidr: Ipv4Net,
    /// The pods' addresses (the node IPAM controller splits it; the proxy masquerades traffic
    /// to ClusterIPs from outside it).
    pub cluster_cidr: Ipv4Net,
    /// The size of each node's block of `cluster_cidr`.
    pub node_cidr_mask_size: u8,
    /// The DNS domain of Services and pods.
    pub cluster_domain: String,
    /// The nameserver of pods with `dnsPolicy: ClusterFirst` (kube-dns's ClusterIP).
    pub cluster_dns: Ipv4Addr,
    /// NodePorts are allocated from here.
    pub node_port_range: RangeInclusive<u16>,
    /// Addresses for LoadBalancer Services (`a.b.c.d-e.f.g.h`, a CIDR or one address); none:
    /// LoadBalancer Services stay pending.
    pub loadbalancer_ip_ranges: Vec<String>,
}

impl Default for ClusterNetwork {
    fn default() -> Self {
        ClusterNetwork {
            service_cidr: defaults::SERVICE_CIDR.parse().expect("valid default"),
            cluster_cidr: defaults::CLUSTER_CIDR.parse().expect("valid default"),
            node_cidr_mask_size: defaults::NODE_CIDR_MASK_SIZE,
            cluster_domain: defaults::CLUSTER_DOMAIN.to_string(),
            cluster_dns: defaults::CLUSTER_DNS.parse().expect("valid default"),
            node_port_range: 30000..=32767,
            loadbalancer_ip_ranges: Vec::new(),
        }
    }
}

impl ClusterNetwork {
    /// The route a node needs for its own connections to ClusterIPs (route lookup happens
    /// before the proxy's NAT rewrites them), as `ip route` arguments.
    pub fn service_route(&self, dev: &str) -> String {
        format!("{} dev {dev}", self.service_cidr)
    }

    /// The search path of a pod in `namespace` (the kubelet's resolv.conf for ClusterFirst).
    pub fn dns_search(&self, namespace: &str) -> Vec<String> {
        let d = &self.cluster_domain;
        vec![
            format!("{namespace}.svc.{d}"),
            format!("svc.{d}"),
            d.clone(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kubeadms_and_agree_with_their_flag_text() {
        let n = ClusterNetwork::default();
        assert_eq!(n.service_cidr.to_string(), defaults::SERVICE_CIDR);
        assert_eq!(n.cluster_cidr.to_string(), defaults::CLUSTER_CIDR);
        assert_eq!(n.cluster_dns.to_string(), defaults::CLUSTER_DNS);
        assert_eq!(
            format!("{}-{}", n.node_port_range.start(), n.node_port_range.end()),
            defaults::NODE_PORT_RANGE
        );
        assert!(n.service_cidr.contains(&n.cluster_dns));
        assert_eq!(n.service_route("eth0"), "10.96.0.0/12 dev eth0");
        assert_eq!(
            n.dns_search("default"),
            [
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
    }
}
