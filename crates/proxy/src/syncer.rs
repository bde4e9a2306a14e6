//! The sync loop (kube-proxy's `syncRunner`, a `BoundedFrequencyRunner` calling the proxier's
//! `syncProxyRules`): Services and EndpointSlices are watched (kube-rs watchers, so this runs
//! against any API server), each event is converted on arrival and applied to the
//! [`ChangeTracker`] (which keeps the [`State`] and the Service ports it touched); every change
//! wakes the [`Syncer`], which compares the touched Service ports with what it last programmed,
//! and asks the backend for a full sync (at start, after a failure, every `full_sync_period`)
//! or a partial one naming only the Service ports that changed.

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

use crate::backend::{self, Backend};
use crate::change_tracker::{ChangeTracker, Update};
use crate::healthcheck::HealthServers;
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

/// What one pass of the [`Syncer`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synced {
    Full,
    Partial,
    /// Nothing differed from what is programmed.
    Nothing,
}

/// The decisions of the sync loop: when a sync is full or partial, which Service ports a
/// partial one names, and how long the loop waits (kube-proxy's syncRunner). Each pass is
/// [`Syncer::sync`], given the time, so the decisions are tested without a clock.
pub struct Syncer {
    backend: Box<dyn Backend>,
    settings: SyncSettings,
    metrics: Arc<Metrics>,
    health: Option<HealthServers>,
    cleanup: Option<Cleanup>,
    /// Since the last successful sync (kept across failures): the Service ports touched, and
    /// what they were then — all partial syncs and conntrack cleanup compare with (the other
    /// ports are as programmed, so no copy of the whole state is kept).
    pending: BTreeSet<ServicePortName>,
    old: State,
    synced_once: bool,
    /// The kernel holds the state as of the last successful sync (false after a failure: a full
    /// sync follows).
    programmed: bool,
    last_full: Option<Instant>,
    /// When the last pass started (`--min-sync-period` counts from there).
    last_start: Option<Instant>,
    /// When a watch event woke the loop: the start of network programming latency.
    woken: Option<Instant>,
}

impl Syncer {
    pub fn new(backend: Box<dyn Backend>, settings: SyncSettings, metrics: Arc<Metrics>) -> Syncer {
        Syncer {
            backend,
            settings,
            metrics,
            health: None,
            cleanup: None,
            pending: BTreeSet::new(),
            old: State::default(),
            synced_once: false,
            programmed: false,
            last_full: None,
            last_start: None,
            woken: None,
        }
    }

    /// The health-check servers of `externalTrafficPolicy: Local` Services, updated after each
    /// successful sync.
    pub fn with_health(mut self, health: Option<HealthServers>) -> Syncer {
        self.health = health;
        self
    }

    /// Flush stale conntrack entries after each successful sync.
    pub fn with_cleanup(mut self, cleanup: Option<Cleanup>) -> Syncer {
        self.cleanup = cleanup;
        self
    }

    fn since_full(&self, now: Instant) -> Duration {
        self.last_full
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// One pass at time `now`: the Service ports `tracker` touched join the pending ones; a full
    /// sync when due, else a partial one of those that differ from what is programmed.
    pub fn sync(
        &mut self,
        tracker: &mut ChangeTracker,
        now: Instant,
    ) -> Result<Synced, backend::Error> {
        let clock = Instant::now();
        self.last_start = Some(now);
        let (touched, mut was) = tracker.take_touched();
        for id in touched {
            if self.pending.contains(&id) {
                continue;
            }
            if let Some(sp) = was.services.remove(&id) {
                self.old.services.insert(id.clone(), sp);
            }
            if let Some(e) = was.endpoints.remove(&id) {
                self.old.endpoints.insert(id.clone(), e);
            }
            self.pending.insert(id);
        }
        let state = tracker.state();
        // What differs from what is programmed (touched and changed back is not).
        let diff: BTreeSet<ServicePortName> = self
            .pending
            .iter()
            .filter(|id| differs(&self.old, state, id))
            .cloned()
            .collect();
        let full_due = self
            .settings
            .full_due(self.programmed, self.since_full(now));
        let result = if full_due {
            self.backend.full(state).map(|_| Synced::Full)
        } else if diff.is_empty() {
            Ok(Synced::Nothing)
        } else {
            self.backend
                .partial(&self.old, state, &diff)
                .map(|_| Synced::Partial)
        };
        let synced = match result {
            Ok(s) => s,
            Err(e) => {
                self.metrics.sync_failures.inc();
                self.programmed = false;
                return Err(e);
            }
        };
        let took = clock.elapsed();
        let full = synced == Synced::Full;
        if full {
            self.last_full = Some(now + took);
        }
        self.metrics.record(full, took);
        if let Some(t) = self.woken.take() {
            self.metrics
                .network_programming
                .observe(t.elapsed().as_secs_f64());
        }
        tracing::debug!(
            backend = self.backend.name(),
            full,
            ?took,
            "synced proxy rules"
        );
        if let Some(h) = self.health.as_mut() {
            h.sync(state);
        }
        if let (Some(c), true) = (&self.cleanup, self.synced_once) {
            // Only changed Service ports can have stale entries.
            let stale = crate::conntrack::stale_entries(
                &only(&self.old, &diff),
                &only(state, &diff),
                &c.node,
            );
            if let Err(e) = crate::conntrack::flush(c.netns.as_deref(), &stale) {
                tracing::warn!(error = %e, "flushing stale conntrack entries");
            }
        }
        self.pending.clear();
        self.old = State::default();
        self.synced_once = true;
        self.programmed = true;
        Ok(synced)
    }

    /// How long the loop may sleep at `now` when no event comes: at most `sync_period`, and
    /// not past the next full sync.
    pub fn idle_wait(&self, now: Instant) -> Duration {
        self.settings.idle_wait(self.since_full(now))
    }

    /// How long to wait at `now` before the next pass may start (`--min-sync-period`).
    pub fn min_sync_wait(&self, now: Instant) -> Duration {
        match self.last_start {
            Some(t) => self
                .settings
                .min_sync_period
                .saturating_sub(now.saturating_duration_since(t)),
            None => Duration::ZERO,
        }
    }

    /// Wait for the first lists, then sync on every change (and every `sync_period`) until
    /// `updates` closes.
    pub async fn run(mut self, mut updates: mpsc::UnboundedReceiver<Update>) {
        let mut tracker = ChangeTracker::default();
        while !tracker.synced() {
            match updates.recv().await {
                Some(u) => tracker.apply(u),
                None => return,
            }
        }
        loop {
            while let Ok(u) = updates.try_recv() {
                tracker.apply(u);
            }
            if let Err(e) = self.sync(&mut tracker, Instant::now()) {
                tracing::warn!(backend = self.backend.name(), error = %e, "sync failed; a full sync follows");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            tokio::select! {
                u = updates.recv() => match u {
                    Some(u) => {
                        tracker.apply(u);
                        self.woken = Some(Instant::now());
                    }
                    None => return,
                },
                _ = tokio::time::sleep(self.idle_wait(Instant::now())) => {}
            }
            tokio::time::sleep(self.min_sync_wait(Instant::now())).await;
        }
    }
}

/// Run the proxy until the process ends: the watchers feed a [`Syncer`].
pub async fn run(client: Client, syncer: Syncer) {
    let (tx, rx) = mpsc::unbounded_channel();
    spawn_watcher(
        Api::<Service>::all(client.clone()),
        tx.clone(),
        Update::service,
    );
    let mut places = Interner::default();
    spawn_watcher(Api::<EndpointSlice>::all(client), tx, move |ev| {
        Update::slice(ev, &mut places)
    });
    syncer.run(rx).await;
}

#[cfg(test)]
mod tests;
