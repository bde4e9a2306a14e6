//! Services, EndpointSlices and Namespaces (and Pods for `pods verified`) through kube-rs
//! reflectors — so this runs against any API server — and a loop that updates the
//! [`ClusterZone`] on every change ([`ZoneBuilder`]: only the Services whose object or slices
//! changed are rebuilt) and swaps it in. Queries read the current zone through
//! [`ZoneHandle`] (an `Arc` behind a lock held only to clone it), so a rebuild never blocks
//! them and a query sees one whole zone, old or new.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::{Api, Client};
use svcnet_informer::reflector;
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::zone::{ClusterZone, PodMode, ZoneBuilder, ZoneConfig};

/// The zone queries are answered from; swapped whole on every change. Every swap increments
/// a generation, published with the zone, which the packet cache ([`crate::packet_cache`]) stores
/// with each response so that no response computed from an older zone is served once a new
/// one is in.
#[derive(Clone)]
pub struct ZoneHandle(Arc<Current>);

struct Current {
    /// The zone and its generation.
    zone: RwLock<(Arc<ClusterZone>, u64)>,
    /// The generation of the current zone, readable without the lock (set under it).
    generation: AtomicU64,
}

impl ZoneHandle {
    pub fn new(zone: ClusterZone) -> Self {
        ZoneHandle(Arc::new(Current {
            zone: RwLock::new((Arc::new(zone), 1)),
            generation: AtomicU64::new(1),
        }))
    }

    /// The current zone and its generation (one consistent pair).
    pub fn current_with_generation(&self) -> (Arc<ClusterZone>, u64) {
        match self.0.zone.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The current zone's generation.
    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    pub fn swap(&self, zone: ClusterZone) {
        let z = Arc::new(zone);
        let mut g = match self.0.zone.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let generation = g.1 + 1;
        *g = (z, generation);
        // Before the lock is released: whoever reads the new zone also sees its generation.
        self.0.generation.store(generation, Ordering::Release);
    }
}

fn serial_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Watch the cluster and keep `handle` current until the process ends; `metrics.ready` turns
/// true after the first complete build (before it, cluster names get SERVFAIL).
pub async fn run(client: Client, cfg: ZoneConfig, handle: ZoneHandle, metrics: Arc<Metrics>) {
    let wake = Arc::new(Notify::new());
    let all = watcher::Config::default;
    let w = || wake.clone();
    let services = reflector::spawn_waking(Api::<Service>::all(client.clone()), all(), w(), "dns");
    let slices =
        reflector::spawn_waking(Api::<EndpointSlice>::all(client.clone()), all(), w(), "dns");
    let namespaces =
        reflector::spawn_waking(Api::<Namespace>::all(client.clone()), all(), w(), "dns");
    let pods = (cfg.pods == PodMode::Verified)
        .then(|| reflector::spawn_waking(Api::<Pod>::all(client), all(), w(), "dns"));
    let _ = services.wait_until_ready().await;
    let _ = slices.wait_until_ready().await;
    let _ = namespaces.wait_until_ready().await;
    if let Some(p) = &pods {
        let _ = p.wait_until_ready().await;
    }
    let mut builder = ZoneBuilder::new(cfg);
    loop {
        let started = Instant::now();
        let svcs = services.state();
        let sls = slices.state();
        let nss = namespaces.state();
        let ps = pods.as_ref().map(|p| p.state()).unwrap_or_default();
        let zone = builder.update(
            serial_now(),
            &svcs.iter().map(|s| &**s).collect::<Vec<_>>(),
            &sls.iter().map(|s| &**s).collect::<Vec<_>>(),
            &nss.iter().map(|s| &**s).collect::<Vec<_>>(),
            &ps.iter().map(|s| &**s).collect::<Vec<_>>(),
        );
        metrics.zone_names.set(zone.len() as i64);
        handle.swap(zone);
        if !metrics.ready.swap(true, Ordering::AcqRel) {
            tracing::info!(services = svcs.len(), took = ?started.elapsed(), "cluster zone synced");
        } else {
            tracing::debug!(services = svcs.len(), took = ?started.elapsed(), "cluster zone rebuilt");
        }
        wake.notified().await;
    }
}
