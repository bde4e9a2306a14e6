//! The service proxy (kube-proxy's role): Services and EndpointSlices in, kernel rules out.
//!
//! - [`model`]: the proxy's view of the cluster — one [`model::ServicePort`] per Service port
//!   with its endpoints — built purely from Services and EndpointSlices, as kube-proxy's
//!   `ServicePortMap` / `EndpointsMap`; and which endpoints a given traffic class may use
//!   (`CategorizeEndpoints`: ready vs terminating fallback, traffic policies, topology).
//! - Renderers (pure: model in, ruleset text out, golden-tested) per mode: [`nftables`],
//!   [`iptables`]; [`runtime`] is the sync loop over them, [`proxier`] a whole node's proxy,
//!   [`metrics`] and [`healthcheck`] its HTTP endpoints.

pub mod backend;
pub mod change_tracker;
pub mod conntrack;
pub mod healthcheck;
pub mod iptables;
pub mod ipvs;
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
