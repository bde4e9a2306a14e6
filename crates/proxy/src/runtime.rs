//! The proxy's control loop (kube-proxy's `SyncRunner` + change trackers): Services and
//! EndpointSlices are watched (kube-rs reflectors, so this runs against any API server), every
//! change wakes the sync loop, which rebuilds the [`State`], compares it with what it last
//! programmed, and asks the backend for a full sync (at start, after a failure, every
//! `sync_period`) or a partial one naming only the Service ports that changed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::model::{self, ServicePortName, State};

/// A way of programming the kernel (nftables, iptables, ...).
pub trait Backend: Send {
    fn name(&self) -> &'static str;
    /// Program everything from scratch (one transaction).
    fn full(&mut self, state: &State) -> Result<(), String>;
    /// Program only what `changed` needs (their Services' rules), given the state `old` that
    /// is programmed now (after a full sync, or the last partial one).
    fn partial(
        &mut self,
        old: &State,
        state: &State,
        changed: &BTreeSet<ServicePortName>,
    ) -> Result<(), String> {
        let _ = (old, changed);
        self.full(state)
    }
    /// Remove everything this backend programmed.
    fn cleanup(&mut self) -> Result<(), String>;
}

/// Loop settings (kube-proxy's flags).
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// `--min-sync-period`: at most one sync per this interval (0 = sync as soon as a change arrives).
    pub min_sync_period: Duration,
    /// `--sync-period`: a full resync this often.
    pub sync_period: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            min_sync_period: Duration::ZERO,
            sync_period: Duration::from_secs(30),
        }
    }
}

/// What changed between two states: Service ports added, removed or with other settings or
/// endpoints (the union of kube-proxy's two change trackers' results).
pub fn changed(old: &State, new: &State) -> BTreeSet<ServicePortName> {
    let mut out = BTreeSet::new();
    for (id, sp) in &new.services {
        if old.services.get(id) != Some(sp) || old.endpoints.get(id) != new.endpoints.get(id) {
            out.insert(id.clone());
        }
    }
    for id in old.services.keys() {
        if !new.services.contains_key(id) {
            out.insert(id.clone());
        }
    }
    out
}

fn spawn_reflector<K>(api: Api<K>, wake: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    // The proxy reads specs, endpoints and labels only: what kubectl and the API server keep in
    // metadata (managed fields, last-applied annotations) would be most of the cache's memory.
    let objects = watcher(api, watcher::Config::default()).modify(|o| {
        o.managed_fields_mut().clear();
        o.annotations_mut().clear();
    });
    let stream = reflector::reflector(writer, objects)
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::debug!(error = %e, "proxy watch");
            }
            wake.notify_one();
        }
    });
    store
}

/// Where and for which node stale UDP / SCTP conntrack entries are flushed after each sync
/// ([`crate::conntrack`]).
#[derive(Clone, Debug)]
pub struct Cleanup {
    pub netns: Option<String>,
    pub node: String,
}

/// Run the proxy until the process ends.
pub async fn run(
    client: Client,
    mut backend: Box<dyn Backend>,
    settings: SyncSettings,
    metrics: Arc<Metrics>,
    mut health: Option<crate::healthcheck::HealthServers>,
    cleanup: Option<Cleanup>,
) {
    let wake = Arc::new(Notify::new());
    let services = spawn_reflector(Api::<Service>::all(client.clone()), wake.clone());
    let slices = spawn_reflector(Api::<EndpointSlice>::all(client), wake.clone());
    let _ = services.wait_until_ready().await;
    let _ = slices.wait_until_ready().await;
    let mut programmed: Option<Arc<State>> = None;
    // The last state programmed successfully (kept across failures), for conntrack cleanup.
    let mut last_ok: Option<Arc<State>> = None;
    let mut last_full = Instant::now();
    // When a watch event woke the loop: the start of network programming latency.
    let mut woken: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let svcs = services.state();
        let sls = slices.state();
        let state = model::build(
            &svcs.iter().map(|s| &**s).collect::<Vec<_>>(),
            &sls.iter().map(|s| &**s).collect::<Vec<_>>(),
        );
        let full_due = programmed.is_none() || last_full.elapsed() >= settings.sync_period;
        let result = match (&programmed, full_due) {
            (Some(prev), false) => {
                let diff = changed(prev, &state);
                if diff.is_empty() {
                    Ok(false)
                } else {
                    backend.partial(prev, &state, &diff).map(|_| false)
                }
            }
            _ => backend.full(&state).map(|_| true),
        };
        match result {
            Ok(full) => {
                if full {
                    last_full = Instant::now();
                }
                metrics.record(full, started.elapsed());
                if let Some(t) = woken.take() {
                    metrics
                        .network_programming
                        .observe(t.elapsed().as_secs_f64());
                }
                tracing::debug!(backend = backend.name(), full, took = ?started.elapsed(), "synced proxy rules");
                if let Some(h) = health.as_mut() {
                    h.sync(&state);
                }
                if let (Some(c), Some(prev)) = (&cleanup, &last_ok) {
                    let stale = crate::conntrack::stale_entries(prev, &state, &c.node);
                    if let Err(e) = crate::conntrack::flush(c.netns.as_deref(), &stale) {
                        tracing::warn!(error = %e, "flushing stale conntrack entries");
                    }
                }
                let state = Arc::new(state);
                last_ok = Some(state.clone());
                programmed = Some(state);
            }
            Err(e) => {
                metrics.sync_failures.inc();
                tracing::warn!(backend = backend.name(), error = %e, "sync failed; a full sync follows");
                programmed = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let wait = settings.sync_period.saturating_sub(last_full.elapsed());
        tokio::select! {
            _ = wake.notified() => woken = Some(Instant::now()),
            _ = tokio::time::sleep(wait) => {}
        }
        if !settings.min_sync_period.is_zero() {
            let since = started.elapsed();
            if since < settings.min_sync_period {
                tokio::time::sleep(settings.min_sync_period - since).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol, ServicePort};

    fn sp(name: &str) -> ServicePort {
        ServicePort::new(
            ServicePortName {
                namespace: "d".into(),
                name: name.into(),
                port: String::new(),
                protocol: Protocol::Tcp,
            },
            "10.96.0.9".parse().unwrap(),
            80,
        )
    }

    #[test]
    fn changes_name_only_what_moved() {
        let mut a = State::default();
        for n in ["x", "y", "z"] {
            let s = sp(n);
            a.endpoints.insert(s.id.clone(), vec![]);
            a.services.insert(s.id.clone(), s);
        }
        let mut b = a.clone();
        assert!(changed(&a, &b).is_empty());
        let y = sp("y").id;
        b.endpoints.insert(
            y.clone(),
            vec![Endpoint {
                ip: "10.244.0.2".parse().unwrap(),
                port: 80,
                ready: true,
                serving: true,
                terminating: false,
                node_name: None,
                zone: None,
                hint_zones: None,
            }],
        );
        let z = sp("z").id;
        b.services.remove(&z);
        b.endpoints.remove(&z);
        assert_eq!(changed(&a, &b), [y, z].into_iter().collect());
    }
}
