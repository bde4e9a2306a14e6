//! `svcnet up`, `svcnet down` and `svcnet exec`: a whole cluster on one machine, inside network
//! namespaces only.
//!
//! ```text
//!   host (untouched but for loopback listeners: the API server, NodePort forwarders,
//!         LoadBalancer forwarders on 127.b.c.d for a.b.c.d)
//!   svcnet-<id>-net       the bridge br0 linking everything below (172.28.0.0/24)
//!   svcnet-<id>-cp        the control plane's address 172.28.0.2 (API server for pods, proxy dialer)
//!   svcnet-<id>-node-N    node N at 172.28.0.(10+N); its pods' veths; its kubelet API;
//!                         the LoadBalancer addresses (172.28.0.200-249) it is elected for, as /32s
//!   svcnet-<id>-outside   an external client at 172.28.0.254 (`svcnet exec --outside`)
//!   svcnet-<id>-pod-<uid> one per pod
//! ```
//! `<id>` comes from the data directory, so `svcnet down` finds everything `up` made, also after
//! a crash.
//!
//! The rooms: `layout` names and addresses one cluster's namespaces; `up` starts the pieces in
//! order (API server, controllers, nodes, cluster DNS, forwarders); `dns` is the kube-dns
//! Service in front of the nodes' DNS servers; `forward` relays the host's loopback into the
//! cluster; `etcd` is `up --store etcd`; `down` removes what `up` made; `exec` runs a command
//! inside a pod, a node or the outside client; `find` finds the cluster `exec` means; `deps`
//! checks the programs `up` runs before it starts.

pub mod down;
pub mod exec;
pub mod find;
pub mod layout;
pub mod up;

mod deps;
mod dns;
mod etcd;
mod forward;
