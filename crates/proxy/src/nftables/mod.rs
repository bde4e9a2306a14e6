//! The nftables backend: the [`State`](crate::model::State) rendered as an `nft -f` script (kube-proxy's nftables
//! mode, IPv4), applied in one transaction inside a network namespace.
//!
//! Layout (one table, `ip svcnet`), chosen for load and change speed (see NOTES.md and
//! bench/RESULTS.md: the kernel pays per named set, per rule bound to a set for every element
//! added to it, and nft reads every chain back before each transaction, so the common case has
//! no per-Service objects at all):
//!
//! - nat `prerouting`/`output` (priority -100) jump to `services`, which sets the conntrack mark
//!   to the Service port's number (`service-ids` / `nodeport-ids`) and then looks the
//!   destination up in the verdict maps `service-ips` (ClusterIPs, external IPs, load-balancer
//!   IPs) and, for packets to the node's own addresses, `service-nodeports`.
//! - Shared dispatch (a Service port without sessionAffinity or Local traffic policies): the
//!   verdict is `goto cluster-N` (masquerade mark unless from the cluster CIDR) or `goto
//!   external-N` (masquerade mark), both continuing to `pick-N`, which DNATs with
//!   `ct mark . numgen inc mod N map @endpoints` — one shared map from (Service port number,
//!   index) to endpoint address . port, bound by three rules per endpoint count N in use. A
//!   change of endpoints is a change of elements only. The numbers are kept in a [`Numbering`]
//!   between syncs.
//! - Own dispatch (sessionAffinity, or a Local traffic policy) per Service port `X` (names derived
//!   from its [`ServicePortName`](crate::model::ServicePortName)): chain `svc-X` (ClusterIP traffic), chain `ext-X` (NodePort /
//!   external / LB traffic, by externalTrafficPolicy), and named maps of endpoints: `eps-X`
//!   (`numgen` index → address . port), or with sessionAffinity `epa-X` + `aff-X` (client →
//!   endpoint index, dynamic with per-element timeout; the index is carried in the conntrack
//!   mark while the endpoint is picked). `lep-X`, `lepa-X`, `laff-X` are the same for the
//!   node-local endpoints (traffic policy Local).
//! - `fw-X` (loadBalancerSourceRanges) per Service port that has them.
//! - filter (priority -110, before DNAT): `no-endpoint-services` / `no-endpoint-nodeports` reject
//!   (tcp reset / icmp port-unreachable) or drop traffic to Services without usable endpoints;
//!   `firewall-ips` enforces source ranges; `cluster-ips` rejects ClusterIP ports that are not
//!   Service ports.
//! - nat `postrouting` (priority 100): masquerade what was marked `0x4000`, and hairpin
//!   connections (an endpoint on this node reaching itself through its Service; `hairpin` holds
//!   `E . E` per such endpoint).
//!
//! Files: `names.rs` (the objects' names), `plan.rs` (what each Service port contributes, and
//! the [`Numbering`]), `render.rs` (plans written as scripts, pure), `elements.rs` (the shared
//! elements, typed), `kernel.rs` (nft, libnftables and netlink: the only file that does I/O),
//! `proxier.rs` (the mode's [`Proxier`]).

mod elements;
mod kernel;
mod names;
mod plan;
mod proxier;
mod render;
#[cfg(test)]
mod tests;

pub use crate::model::NodeInfo;
pub use kernel::{apply, check, cleanup, Error, FullSyncKind, Session};
pub use names::*;
pub(crate) use plan::source_ranges_rule;
pub use plan::{service_key, Config, Numbering};
pub use proxier::Proxier;
pub use render::{render_changes, render_full, render_full_sync, render_full_with, FullSync};
