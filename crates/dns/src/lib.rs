//! Cluster DNS, as CoreDNS's `kubernetes` plugin serves it (kubernetes/dns
//! docs/specification.md, schema 1.1.0): the `cluster.local` zone built from Service,
//! EndpointSlice and Namespace watches, and everything else forwarded to upstream resolvers
//! behind a cache. hickory-proto does the wire format; the zone logic is ours.
//!
//! Start with [`zone`] (the records, pure), then [`handler`] (the query path), [`watch`] (how
//! the zone follows the cluster) and [`forward`] (upstreams and cache). [`run`] wires them.

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
    listeners.serve(handler)?;
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
