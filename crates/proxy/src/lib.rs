//! The service proxy (kube-proxy's role): Services and EndpointSlices in, kernel rules out.
//!
//! How a node's proxy is put together, in kube-proxy's words:
//!
//! - [`server`]: the node's `ProxyServer` — `Options`, the mode's proxier, metrics and health
//!   servers, [`server::run`].
//! - [`syncer`]: the sync loop (`syncRunner`): watchers feed the [`change_tracker`], and the
//!   [`syncer::Syncer`] asks the [`backend::Backend`] for full or partial syncs.
//! - [`change_tracker`]: `servicechangetracker.go` / `endpointschangetracker.go` — objects converted
//!   on arrival into the [`model`], touched Service ports remembered.
//! - [`model`]: one [`model::ServicePort`] per Service port with its endpoints, and
//!   [`model::categorize`], which endpoints a traffic class may use.
//! - [`backend`]: the trait every mode's `Proxier` implements. One folder per mode, each with a
//!   `proxier.rs`: [`nftables`] (`names`, `plan` per Service port, pure `render`, `kernel` for
//!   nft / libnftables / netlink), [`iptables`] (`names`, pure `render`, `restore`),
//!   [`userspace`] (`balancer`, `listener`, `rules`); [`ipvs`] is rendered only (no IPVS in this
//!   kernel, so no proxier; `ipvs::kernel` says why `--proxy-mode ipvs` is refused).
//! - [`list`]: `svcnet proxy --list`, the node's virtual servers as `ipvsadm -Ln` prints them,
//!   with connection counts from [`conntrack`].
//!
//! Where each Service feature lives:
//!
//! | feature | where |
//! |---|---|
//! | ClusterIP | `model::service_ports`; nftables `plan.rs` (`service-ips`, shared `cluster-N` → `pick-N`), iptables `render.rs` (`KUBE-SERVICES` → `KUBE-SVC-`), userspace `rules.rs` + `listener.rs`, `ipvs` |
//! | NodePort | nftables `plan.rs` (`service-nodeports`) and `render.rs` (`nodeport-ips`, `services` chain), iptables `KUBE-NODEPORTS`, userspace `rules.rs` |
//! | externalIPs, load-balancer IPs | nftables `plan.rs` (external routes, `ext-X`), iptables `render.rs` (`KUBE-EXT-`) |
//! | loadBalancerSourceRanges | nftables `plan.rs` (`source_ranges_rule`, `fw-X`, `firewall-ips`; userspace reuses the rule), iptables `KUBE-FW-` / `KUBE-PROXY-FIREWALL` |
//! | sessionAffinity | nftables `plan.rs` (`dispatch`: `epa-X` + `aff-X`), iptables `-m recent`, userspace `balancer.rs` |
//! | traffic policies (internal / external Local) | `model::categorize`; nftables `plan.rs` (own chains, `lep-X`), iptables `KUBE-SVL-` |
//! | terminating fallback, topology hints | `model::categorize` |
//! | hairpin | nftables `plan.rs` (`hairpin` set) and `render.rs` (`masquerading`), iptables `KUBE-SEP-` |
//! | rejects for Services without endpoints | nftables `no-endpoint-*` maps, iptables filter `KUBE-SERVICES` |
//! | conntrack cleanup (UDP / SCTP) | [`conntrack`], called by the [`syncer`] |
//! | health checks (`healthCheckNodePort`) | [`healthcheck`] |
//! | metrics and `/healthz` | [`metrics`] |
//!
//! Tests: `testing` holds the builders, fixture states and the flow table (feature `testing`
//! gives tests/ the builders); `trace` is the packet tracer (kube-proxy's `helpers_test.go`),
//! and each mode's flows are in `<mode>/proxier/tests.rs` (`proxier_test.go`).

pub mod backend;
pub mod change_tracker;
pub mod conntrack;
pub mod healthcheck;
pub mod iptables;
pub mod ipvs;
pub mod list;
pub mod metrics;
pub mod model;
pub mod nftables;
pub mod server;
pub mod syncer;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
pub(crate) mod trace;
pub mod userspace;
