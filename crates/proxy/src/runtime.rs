//! The proxy's control loop (kube-proxy's `SyncRunner`): Services and EndpointSlices are watched
//! (kube-rs watchers, so this runs against any API server), each event is converted on arrival
//! and applied to the [`ChangeTracker`] (which keeps the [`State`] and the Service ports it touched);
//! every change wakes the sync loop, which compares the touched Service ports with what it last
//! programmed, and asks the backend for a full sync (at start, after a failure, every
//! `full_sync_period`) or a partial one naming only the Service ports that changed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::ops::ControlFlow;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::{Api, Client};
use svcnet_informer::watch::{self, Watched};
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::change_tracker::{ChangeTracker, Update};
use crate::metrics::Metrics;
use crate::model::{Interner, ServicePortName, State};

/// Loop settings (kube-proxy's flags).
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// `--min-sync-period`: at most one sync per this interval (0 = sync as soon as a change arrives).
    pub min_sync_period: Duration,
    /// `--sync-period`: the loop runs at least this often (with nothing changed it does
    /// nothing, unless a full sync is due).
    pub sync_period: Duration,
    /// A full sync this often, to repair whatever else changed the kernel's rules: kube-proxy's
    /// `FullSyncPeriod` (one hour; not a kube-proxy flag, `svcnet proxy --full-sync-period` here).
    pub full_sync_period: Duration,
}

impl SyncSettings {
    /// Whether the next sync is a full one: nothing is programmed (start, or after a failure),
    /// or the last full sync was `full_sync_period` ago.
    fn full_due(&self, programmed: bool, since_full: Duration) -> bool {
        !programmed || since_full >= self.full_sync_period
    }

    /// How long the loop sleeps when no event comes: at most `sync_period`, and not past the
    /// next full sync.
    fn idle_wait(&self, since_full: Duration) -> Duration {
        self.sync_period
            .min(self.full_sync_period.saturating_sub(since_full))
    }
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            min_sync_period: Duration::ZERO,
            sync_period: Duration::from_secs(30),
            full_sync_period: Duration::from_secs(3600),
        }
    }
}

/// What changed between two states: Service ports added, removed or with other settings or
/// endpoints (the union of kube-proxy's two change trackers' results). The loop needs no
/// whole-state comparison (the tracker names what it touched); tests check the tracker with it.
#[cfg(test)]
pub(crate) fn changed(old: &State, new: &State) -> BTreeSet<ServicePortName> {
    let ids = new.services.keys().chain(old.services.keys());
    ids.filter(|id| differs(old, new, id)).cloned().collect()
}

/// Whether the Service port `id` differs between the states.
fn differs(old: &State, new: &State, id: &ServicePortName) -> bool {
    old.services.get(id) != new.services.get(id) || old.endpoints.get(id) != new.endpoints.get(id)
}

/// Only the Service ports `ids` of `st` (for comparisons that need no others).
pub(crate) fn only(st: &State, ids: &BTreeSet<ServicePortName>) -> State {
    let mut out = State::default();
    for id in ids {
        if let Some(sp) = st.services.get(id) {
            out.services.insert(id.clone(), sp.clone());
        }
        if let Some(e) = st.endpoints.get(id) {
            out.endpoints.insert(id.clone(), e.clone());
        }
    }
    out
}

/// Watch `api`, converting each event's object on arrival (`convert`): only the converted form
/// reaches the tracker. Errors are retried with kube-rs' default backoff; a re-list after one
/// arrives as `Init` ... `InitDone`.
fn spawn_watcher<K: Watched>(
    api: Api<K>,
    tx: mpsc::UnboundedSender<Update>,
    mut convert: impl FnMut(watcher::Event<K>) -> Update + Send + 'static,
) {
    watch::spawn(api, watcher::Config::default(), move |ev| {
        match ev {
            Ok(ev) => {
                if tx.send(convert(ev)).is_err() {
                    return ControlFlow::Break(());
                }
            }
            Err(e) => tracing::debug!(error = %e, "proxy watch"),
        }
        ControlFlow::Continue(())
    });
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
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_watcher(
        Api::<Service>::all(client.clone()),
        tx.clone(),
        Update::service,
    );
    let mut places = Interner::default();
    spawn_watcher(Api::<EndpointSlice>::all(client), tx, move |ev| {
        Update::slice(ev, &mut places)
    });
    let mut tracker = ChangeTracker::default();
    while !tracker.synced() {
        match rx.recv().await {
            Some(u) => tracker.apply(u),
            None => return,
        }
    }
    // Since the last successful sync (kept across failures): the Service ports touched, and what
    // they were then — all partial syncs and conntrack cleanup compare with (the other ports
    // are as programmed, so no copy of the whole state is kept).
    let mut pending: BTreeSet<ServicePortName> = BTreeSet::new();
    let mut old = State::default();
    let mut synced_once = false;
    // The kernel holds the state as of the last successful sync (false after a failure: a full
    // sync follows).
    let mut programmed = false;
    let mut last_full = Instant::now();
    // When a watch event woke the loop: the start of network programming latency.
    let mut woken: Option<Instant> = None;
    loop {
        while let Ok(u) = rx.try_recv() {
            tracker.apply(u);
        }
        let started = Instant::now();
        let (touched, mut was) = tracker.take_touched();
        for id in touched {
            if pending.contains(&id) {
                continue;
            }
            if let Some(sp) = was.services.remove(&id) {
                old.services.insert(id.clone(), sp);
            }
            if let Some(e) = was.endpoints.remove(&id) {
                old.endpoints.insert(id.clone(), e);
            }
            pending.insert(id);
        }
        let state = tracker.state();
        // What differs from what is programmed (touched and changed back is not).
        let diff: BTreeSet<ServicePortName> = pending
            .iter()
            .filter(|id| differs(&old, state, id))
            .cloned()
            .collect();
        let full_due = settings.full_due(programmed, last_full.elapsed());
        let result = if full_due {
            backend.full(state).map(|_| true)
        } else if diff.is_empty() {
            Ok(false)
        } else {
            backend.partial(&old, state, &diff).map(|_| false)
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
                    h.sync(state);
                }
                if let (Some(c), true) = (&cleanup, synced_once) {
                    // Only changed Service ports can have stale entries.
                    let stale = crate::conntrack::stale_entries(
                        &only(&old, &diff),
                        &only(state, &diff),
                        &c.node,
                    );
                    if let Err(e) = crate::conntrack::flush(c.netns.as_deref(), &stale) {
                        tracing::warn!(error = %e, "flushing stale conntrack entries");
                    }
                }
                pending.clear();
                old = State::default();
                synced_once = true;
                programmed = true;
            }
            Err(e) => {
                metrics.sync_failures.inc();
                tracing::warn!(backend = backend.name(), error = %e, "sync failed; a full sync follows");
                programmed = false;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let wait = settings.idle_wait(last_full.elapsed());
        tokio::select! {
            u = rx.recv() => match u {
                Some(u) => {
                    tracker.apply(u);
                    woken = Some(Instant::now());
                }
                None => return,
            },
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
    fn full_syncs_hourly_not_every_sync_period() {
        let s = SyncSettings::default();
        let secs = Duration::from_secs;
        assert!(s.full_due(false, secs(0)), "nothing programmed yet");
        assert!(
            !s.full_due(true, secs(31)),
            "a sync period is not a full sync"
        );
        assert!(!s.full_due(true, secs(3599)));
        assert!(s.full_due(true, secs(3600)));
        assert_eq!(s.idle_wait(secs(10)), secs(30));
        assert_eq!(s.idle_wait(secs(3590)), secs(10), "wakes for the full sync");
        assert_eq!(s.idle_wait(secs(4000)), secs(0));
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
