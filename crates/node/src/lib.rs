//! The node agent: what the kubelet plus a container runtime plus a CNI plugin do, for pods
//! whose containers are host processes.
//!
//! - [`sandbox`]: a pod's network namespace, its veth into the node, its IP (routed, proxy-ARP:
//!   every packet crosses the node's stack, so the service proxy sees it), and its files
//!   (`resolv.conf`, `hosts`, `hostname`).

pub mod agent;
pub mod cri_log;
pub mod envvars;
pub mod kubelet_api;
pub mod layout;
pub mod probe;
pub mod sandbox;
pub mod shim;
