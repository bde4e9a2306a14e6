//! Cluster DNS, as CoreDNS's `kubernetes` plugin serves it (kubernetes/dns
//! docs/specification.md, schema 1.1.0): the `cluster.local` zone built from Service,
//! EndpointSlice and Namespace watches, and everything else forwarded to upstream resolvers
//! behind a cache. hickory-proto does the wire format; the zone logic is ours.
//!
//! # Where each part of the specification is answered
//!
//! The records are indexed by [`zone`] (pure: objects in, answers out) and the rest of a reply
//! is the [`handler`]'s; the zone's unit tests (`zone/tests.rs`) are grouped by the same
//! sections, and `tests/dns_conformance.rs` asks them of the real binary with `dig`.
//!
//! - 2.2 schema version, `dns-version.<zone>` TXT; the zone apex's SOA and NS, `ns.dns.<zone>`:
//!   the fixed names of [`zone::ZoneBuilder::new`], answered by [`zone::ClusterZone::answer`].
//! - 2.3 ClusterIP Services — 2.3.1 A/AAAA, 2.3.2 SRV for each named port, 2.3.3 PTR — and
//!   2.4 headless Services — 2.4.1 A/AAAA of each ready endpoint (every one with
//!   `publishNotReadyAddresses`) and of each endpoint by hostname or dashed IP, 2.4.2 SRV,
//!   2.4.3 PTR: one Service's names are computed in `Contribution::add_service` ([`zone`]),
//!   once per change of the Service or its slices ([`zone::ZoneBuilder::update`]).
//! - 2.5.1 ExternalName, a CNAME: followed inside the zone by the zone itself; a target outside
//!   is resolved by [`handler::Handler::complete`] through the [`forward`]er.
//! - `<ns>.svc.<zone>` exists iff the Namespace does (as CoreDNS): [`zone::ZoneBuilder::update`].
//! - Pod records (CoreDNS's `pods insecure|verified`, `<a-b-c-d>.<ns>.pod.<zone>`): computed from
//!   the name at query time, `ClusterZone::answer_pod` ([`zone`]).
//! - What the specification leaves to CoreDNS — NXDOMAIN vs NODATA with its SOA, SRV weights,
//!   case-insensitive names: [`zone::ClusterZone::answer`]; the question's case echoed, FORMERR,
//!   NOTIMP, BADVERS, SERVFAIL until the watches have synced, and truncation to the client's
//!   EDNS0 size over UDP (miekg/dns's `Truncate`): [`handler`].
//! - Names outside the zone: [`forward`] (CoreDNS's `forward` and `cache`).
//! - Metrics with CoreDNS's names, `/health` and `/ready`: [`metrics`].
//!
//! # The parts, and what each may import
//!
//! - [`zone`]: the records (pure, no I/O). Imports nothing of the crate.
//! - [`metrics`]: metric names and label tables (CoreDNS's `plugin/metrics/vars`), the HTTP
//!   endpoints. Imports nothing of the crate.
//! - [`watch`]: kube-rs reflectors (`svcnet_informer::reflector::spawn_waking`) and the loop that
//!   rebuilds the zone and swaps it into the [`watch::ZoneHandle`]. Imports `zone`, `metrics`.
//! - [`packet_cache`]: encoded answers to repeated plain queries. Imports `metrics`.
//! - [`forward`]: upstream resolvers and their TTL cache. Imports `metrics` and `bind`.
//! - [`handler`]: the request handler, what to answer (hickory's `request_handler.rs`).
//!   Imports `watch::ZoneHandle` (the current zone), `forward`, `packet_cache`, `metrics` —
//!   never a socket, never `transport`.
//! - [`transport`]: the UDP and TCP listeners (hickory's `server/transport/`); only hands
//!   bytes to the handler. Imports `handler`, `metrics`, `bind`.
//! - `bind`: a UDP socket in the node's network namespace, for `transport` and `forward`.
//! - [`testing`]: the fixture zone and the query check of the fuzz target (`crates/dns/fuzz`).
//! - This file: [`Config`], and [`start`] / [`run`], which bind, build and wire the parts.
//!
//! Like every client of the API, this crate reaches it only through kube-rs: it never imports
//! the API server or the store.

mod bind;
pub mod forward;
pub mod handler;
pub mod metrics;
pub mod packet_cache;
pub mod testing;
pub mod transport;
pub mod watch;
pub mod zone;

use std::net::SocketAddr;
use std::sync::Arc;

use kube::Client;

pub use zone::{ClusterZone, PodMode, ZoneConfig};

/// The crate's errors, named after the failed operation.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("binding {addr}: {source}")]
    BindFailed {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no upstream resolver configured")]
    NoUpstream,
    #[error("upstream {upstream}: {reason}")]
    UpstreamFailed {
        upstream: SocketAddr,
        reason: String,
    },
}

impl DnsError {
    /// [`DnsError::UpstreamFailed`]: `upstream` did not answer, for `reason`.
    fn upstream_failed(upstream: SocketAddr, reason: impl std::fmt::Display) -> Self {
        DnsError::UpstreamFailed {
            upstream,
            reason: reason.to_string(),
        }
    }
}

/// `svcnet dns`'s settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where DNS is served, UDP and TCP (`0.0.0.0:53`).
    pub listen: SocketAddr,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// TTL of the cluster records, seconds.
    pub ttl: u32,
    pub pods: PodMode,
    /// Upstream resolvers; empty: the nameservers of the namespace's resolv.conf.
    pub upstreams: Vec<SocketAddr>,
    /// Entries of the forwarding cache.
    pub cache_size: usize,
    /// `/metrics`, `/health`, `/ready` (None: not served).
    pub metrics_addr: Option<SocketAddr>,
    /// A named network namespace to serve (and forward) from; None: this process's.
    pub netns: Option<String>,
    /// DNS over TCP's timeouts and connection cap (CoreDNS's defaults).
    pub tcp: transport::TcpConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:53".parse().expect("valid"),
            cluster_domain: svcnet_cluster::defaults::CLUSTER_DOMAIN.into(),
            ttl: 5,
            pods: PodMode::Disabled,
            upstreams: vec![],
            cache_size: 10_000,
            metrics_addr: None,
            netns: None,
            tcp: transport::TcpConfig::default(),
        }
    }
}

/// A started server: its bound addresses (useful with port 0).
pub struct Running {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub metrics: Option<SocketAddr>,
}

/// Bind the listeners and start serving in the background (tasks on the current runtime);
/// returns once the sockets are bound. The zone follows the cluster through `client`.
///
/// For a node of `svcnet up`: pass `netns: Some("svcnet-<cluster>-<node>")` and
/// `listen: 10.96.0.10:53` only if that address is local in the node's namespace — otherwise
/// listen on `0.0.0.0:53` inside the namespace and let the proxy's rules for the `kube-dns`
/// Service bring 10.96.0.10:53 there. Sockets are created inside the namespace
/// (`svcnet_netns::NetNs::udp_bind` / `tokio_listener`), including the forwarder's, so
/// forwarded queries leave from the node.
pub async fn start(client: Client, cfg: Config) -> Result<Running, DnsError> {
    let metrics = Arc::new(metrics::Metrics::default());
    let ns = cfg.netns.as_deref();
    let bind_err = |addr, e: std::io::Error| DnsError::BindFailed { addr, source: e };
    let listeners = transport::Listeners::bind(cfg.listen, ns)?;
    let (udp_addr, tcp_addr) = (listeners.udp_addr(), listeners.tcp_addr());
    let metrics_addr = match cfg.metrics_addr {
        Some(a) => {
            let l = svcnet_netns::tokio_listener(ns, a).map_err(|e| bind_err(a, e))?;
            let bound = l.local_addr().map_err(|e| bind_err(a, e))?;
            tokio::spawn(metrics::serve(l, metrics.clone()));
            Some(bound)
        }
        None => None,
    };
    let upstreams = if cfg.upstreams.is_empty() {
        forward::default_upstreams(ns)
    } else {
        cfg.upstreams.clone()
    };
    let zone_cfg = ZoneConfig {
        domain: cfg.cluster_domain.clone(),
        ttl: cfg.ttl,
        pods: cfg.pods,
        serial: 0,
    };
    let handle = watch::ZoneHandle::new(ClusterZone::build(zone_cfg.clone(), &[], &[], &[], &[]));
    let forwarder = forward::Forwarder::new(
        upstreams.clone(),
        cfg.netns.clone(),
        cfg.cache_size,
        metrics.clone(),
    )?;
    let handler = Arc::new(handler::Handler {
        zone: handle.clone(),
        forwarder,
        metrics: metrics.clone(),
        packet_cache: packet_cache::PacketCache::default(),
    });
    listeners.serve(handler, cfg.tcp)?;
    tokio::spawn(watch::run(client, zone_cfg, handle, metrics));
    tracing::info!(udp = %udp_addr, tcp = %tcp_addr, upstreams = ?upstreams, domain = %cfg.cluster_domain, "serving DNS");
    Ok(Running {
        udp: udp_addr,
        tcp: tcp_addr,
        metrics: metrics_addr,
    })
}

/// [`start`], then serve until the process ends.
pub async fn run(client: Client, cfg: Config) -> Result<(), DnsError> {
    start(client, cfg).await?;
    std::future::pending::<()>().await;
    Ok(())
}
