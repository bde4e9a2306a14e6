//! The node agent: what the kubelet plus a container runtime plus a CNI plugin do, for pods
//! whose containers are host processes. What lives where (and the upstream counterpart):
//!
//! - [`agent`]: the agent proper (`pkg/kubelet/kubelet.go`): [`agent::node`] registers the Node,
//!   heartbeats and routes to other nodes' pod CIDRs; [`agent::pods`] is one worker per pod
//!   (`pod_workers.go`: sandbox, containers, restarts with back-off, probes, termination);
//!   [`agent::status`] computes the pod status (`generateAPIPodStatus`), pure;
//! - [`sandbox`]: a pod's network namespace, its veth into the node, its IP (routed, proxy-ARP:
//!   every packet crosses the node's stack, so the service proxy sees it), and its files
//!   (`resolv.conf`, `hosts`, `hostname`) — a CNI plugin's and the runtime's sandbox job;
//! - [`container`]: containers from images under an OCI runtime (runc): the runtime
//!   configuration, the overlayfs root filesystem, run/exec/kill/delete — containerd's CRI
//!   runtime service;
//! - [`shim`]: one process per container (containerd-shim): runs it in the pod's namespaces,
//!   writes its log in the [`cri_log`] format, records its exit, holds its stdin and terminal
//!   for attach;
//! - [`cri_log`]: the CRI log line format, written by the shim, read by the kubelet API;
//! - [`kubelet_api`]: the kubelet's HTTP API (`pkg/kubelet/server`): container logs and exec
//!   and attach over WebSocket, port forwarding, behind the API server;
//! - [`probe`]: readiness, liveness and startup probes (`pkg/kubelet/prober`, `pkg/probe`);
//! - [`envvars`]: a container's environment (`makeEnvironmentVariables`, Service variables,
//!   downward API, `$(VAR)` expansion);
//! - [`layout`]: where a pod lives on disk and what its namespace is called — for the agent and
//!   for tools that find a pod from outside (`svcnet exec`, `svcnet down`).
//!
//! Like every client of the API, the agent reaches it only through kube-rs: it never imports the
//! API server or the store (it runs unchanged against a real cluster's API server).

pub mod agent;
pub mod atomic_writer;
pub mod container;
pub mod cri_log;
pub mod envvars;
pub mod kubelet_api;
pub mod layout;
pub mod objects;
pub mod probe;
pub mod sandbox;
pub mod shim;
