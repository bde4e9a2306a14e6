//! An in-memory watch cache over a [`Store`] (kube-apiserver's "cacher").
//!
//! Holds the current value of every key under a prefix and a bounded window of recent events,
//! fed by one store watch. Lists, gets and watches of the API server are served from here:
//! lists are consistent snapshots, watches replay the window and then follow live changes, and a
//! watch from a revision older than the window fails with [`CacheError::Expired`] (HTTP 410).
//!
//! Values are Kubernetes objects as JSON; the cache sets `metadata.resourceVersion` to the key's
//! `mod_revision` (the store keeps objects without it, as Kubernetes does on etcd). Values that are
//! not JSON objects with a `metadata` object are kept as they are: other JSON is kept as parsed,
//! and bytes that are not JSON at all become a JSON string (lossy UTF-8) so `json` is always valid
//! JSON.
//!
//! How it works: one background task follows the store watch and applies each store revision
//! under a write lock: it updates the key map, appends the events to the window (a ring of the
//! last `capacity` events), and appends each event to the queue of every watcher whose prefix
//! matches (`queue.rs`: the event is shared, a queue holds a reference). Lists and watch
//! registrations take the same lock, which is what makes [`WatchCache::list_and_watch`] and
//! window replay free of gaps and duplicates. Store progress notifications advance
//! [`WatchCache::revision`] without events, which is what [`WatchCache::wait_consistent`] relies
//! on when the latest write was outside the prefix.
//!
//! Slow watchers, as kube-apiserver's cacher treats them (`cacher.go` `dispatchEvent`,
//! `cache_watcher.go` `add`): a watcher's queue is bounded by a count (upstream's
//! `suggestedWatchChannelSize`) and by bytes. The dispatcher never waits under the lock; after
//! it, it waits for the watchers it left over their limits, all at once, for at most what the
//! time budget holds (upstream's `dispatchTimeoutBudget`: 50 ms a second, at most 100 ms), and
//! closes those still full: their events are dropped, kube-apiserver's "Forcing ... watcher close
//! due to unresponsiveness" is logged, their reader gets [`CacheError::Lagged`] and the client
//! re-watches. Every other watcher already has the event. A watch dropped by its reader leaves
//! the dispatcher's list at once, with its queue.
//!
//! If the store watch fails, the task re-watches from where it was; if the store has compacted
//! past it, the task re-lists and emits the difference between the cached and the listed state
//! as events at the list revision. Dropping the [`WatchCache`] stops the task and ends every
//! watch (`next()` returns `None`); so does the store closing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;

mod queue;

pub use queue::{event_bytes, suggested_watch_chan_size, WatcherLabel};
use queue::{Closed, Popped, Pushed, TimeBudget, WatcherQueue};

use crate::{
    EventKind, KeyValue, RangeRequest, Revision, Store, StoreError, WatchEvent, WatchResponse,
};

/// Page size of the (re-)list that loads the cache.
const LIST_PAGE: usize = 5000;
/// How long `watch` waits for a `from` ahead of the cache.
const WATCH_AHEAD_WAIT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One object as cached.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    pub create_revision: Revision,
    /// The object's resourceVersion. For the object of a `Deleted` event: the deletion revision.
    pub mod_revision: Revision,
    /// The object, with `metadata.resourceVersion` set to `mod_revision`.
    pub value: serde_json::Value,
    /// `value` serialized (compact JSON in Kubernetes' key order, [`crate::encode`]), ready to
    /// be written to a response.
    pub json: Bytes,
}

impl CachedObject {
    /// Build the cached form of a stored value (see the module docs for non-object values).
    pub fn from_stored(
        key: String,
        create_revision: Revision,
        mod_revision: Revision,
        raw: &[u8],
    ) -> Self {
        let value = match serde_json::from_slice::<serde_json::Value>(raw) {
            Ok(v) => v,
            Err(_) => serde_json::Value::String(String::from_utf8_lossy(raw).into_owned()),
        };
        Self::from_value(key, create_revision, mod_revision, value)
    }

    fn from_value(
        key: String,
        create_revision: Revision,
        mod_revision: Revision,
        mut value: serde_json::Value,
    ) -> Self {
        if let Some(serde_json::Value::Object(meta)) = value.get_mut("metadata") {
            meta.insert(
                "resourceVersion".to_string(),
                serde_json::Value::String(mod_revision.to_string()),
            );
        }
        // Kubernetes' key order (`kind`, `apiVersion`, `metadata`, ...): these bytes are what
        // gets, lists and every watcher write.
        let json = Bytes::from(crate::encode::to_vec(&value));
        CachedObject {
            key,
            create_revision,
            mod_revision,
            value,
            json,
        }
    }

    fn from_kv(kv: &KeyValue) -> Self {
        Self::from_stored(
            kv.key.clone(),
            kv.create_revision,
            kv.mod_revision,
            &kv.value,
        )
    }

    /// The object of a `Deleted` event: this state with the deletion revision as resourceVersion.
    fn deleted_at(&self, revision: Revision) -> Self {
        Self::from_value(
            self.key.clone(),
            self.create_revision,
            revision,
            self.value.clone(),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheEventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as a watch delivers it.
#[derive(Debug)]
pub struct CacheEvent {
    pub revision: Revision,
    pub kind: CacheEventType,
    /// The new state; for `Deleted`, the last state with `mod_revision` (and resourceVersion) set to
    /// the deletion revision, as Kubernetes sends it.
    pub object: Arc<CachedObject>,
    /// The state before this change (`None` for `Added`).
    pub prev: Option<Arc<CachedObject>>,
}

/// Bytes of objects a watcher may have queued by default. kube-apiserver bounds a watcher's
/// channel by count only; objects reach 1.5 MiB (etcd's `--max-request-bytes`), so a count alone
/// lets a watcher hold 100 × 1.5 MiB. This is room for two of the largest.
pub const DEFAULT_WATCHER_BYTES: usize = 4 << 20;

#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// How many events the window keeps (older watches get `Expired`).
    pub capacity: usize,
    /// Events a watcher may have queued before the dispatcher waits for it. `None`:
    /// kube-apiserver's suggested size for `capacity` ([`suggested_watch_chan_size`], 10 to 100).
    pub watcher_buffer: Option<usize>,
    /// Bytes of objects ([`event_bytes`]) a watcher may have queued before the dispatcher waits
    /// for it; one event is always taken, whatever its size.
    pub watcher_bytes: usize,
    /// The dispatch time budget's refill per second (kube-apiserver's `refreshPerSecond`, 50 ms).
    pub dispatch_budget_refresh: Duration,
    /// The most the dispatch time budget holds (kube-apiserver's `maxBudget`, 100 ms).
    pub dispatch_budget_max: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 100_000,
            watcher_buffer: None,
            watcher_bytes: DEFAULT_WATCHER_BYTES,
            dispatch_budget_refresh: Duration::from_millis(50),
            dispatch_budget_max: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The requested revision is older than the cache's window (HTTP 410 Gone / Expired).
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        requested: Revision,
        oldest: Revision,
    },
    /// The cache did not reach the requested revision in time (HTTP 504, "Too large resource version").
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        requested: Revision,
        current: Revision,
    },
    /// The watcher's queue stayed full past the dispatch time budget and was closed; the client
    /// should re-watch.
    #[error("watcher fell behind and was closed")]
    Lagged,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A registered watcher, as the dispatcher sees it.
struct WatcherSlot {
    id: u64,
    prefix: String,
    queue: Arc<WatcherQueue>,
}

struct CacheState {
    objects: BTreeMap<String, Arc<CachedObject>>,
    /// The store revision everything here reflects.
    revision: Revision,
    /// Watches may start from this revision or later (the window holds every event after it).
    oldest: Revision,
    window: VecDeque<Arc<CacheEvent>>,
    watchers: Vec<WatcherSlot>,
    closed: bool,
}

#[derive(Clone, Copy, Debug)]
struct Progress {
    revision: Revision,
    closed: bool,
}

/// What the cache handle, its task and its watches share.
struct Shared {
    prefix: String,
    config: CacheConfig,
    /// Events a watcher may have queued (resolved from the config).
    watcher_buffer: usize,
    next_watcher_id: AtomicU64,
    state: RwLock<CacheState>,
    /// Wakes `wait_for_revision` callers.
    progress: watch::Sender<Progress>,
}

/// See the module docs.
pub struct WatchCache {
    shared: Arc<Shared>,
    store: Arc<dyn Store>,
    task: tokio::task::JoinHandle<()>,
}

/// A live watch on the cache: events under one prefix after a revision, in revision order.
/// Dropping it unregisters it and lets go of what it had queued.
pub struct CacheWatch {
    shared: Arc<Shared>,
    id: u64,
    /// Events replayed from the window, delivered before the live queue.
    backlog: VecDeque<Arc<CacheEvent>>,
    queue: Arc<WatcherQueue>,
    /// Every revision up to here is known to be fully consumed.
    floor: Revision,
    done: bool,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, CacheState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_progress(&self, revision: Revision, closed: bool) {
        self.progress.send_replace(Progress { revision, closed });
    }
}

/// Watchers left over their limits by a dispatch, for the dispatcher to wait for after the lock.
type Blocked = Vec<Arc<WatcherQueue>>;

impl CacheState {
    /// Append one event to the window and to the queue of each matching watcher; those left
    /// over their limits go to `blocked` (once).
    fn push_event(&mut self, event: Arc<CacheEvent>, capacity: usize, blocked: &mut Blocked) {
        self.watchers.retain(|w| {
            if !event.object.key.starts_with(&w.prefix) {
                return true;
            }
            match w.queue.push(&event) {
                Pushed::Queued => true,
                Pushed::Full => {
                    if !blocked.iter().any(|b| Arc::ptr_eq(b, &w.queue)) {
                        blocked.push(w.queue.clone());
                    }
                    true
                }
                Pushed::Closed => false,
            }
        });
        self.window.push_back(event);
        while self.window.len() > capacity {
            if let Some(old) = self.window.pop_front() {
                self.oldest = self.oldest.max(old.revision);
            }
        }
    }
}

/// Register a watcher (under the caller's write lock) and build its handle.
fn attach(
    shared: &Arc<Shared>,
    st: &mut CacheState,
    prefix: &str,
    start: Revision,
    backlog: VecDeque<Arc<CacheEvent>>,
) -> CacheWatch {
    let queue = Arc::new(WatcherQueue::new(
        shared.watcher_buffer,
        shared.config.watcher_bytes,
    ));
    let id = shared.next_watcher_id.fetch_add(1, Ordering::Relaxed);
    if st.closed {
        queue.close(Closed::CacheStopped);
    } else {
        st.watchers.push(WatcherSlot {
            id,
            prefix: prefix.to_string(),
            queue: queue.clone(),
        });
    }
    CacheWatch {
        shared: shared.clone(),
        id,
        backlog,
        queue,
        floor: start,
        done: false,
    }
}

fn list_prefix(st: &CacheState, prefix: &str) -> Vec<Arc<CachedObject>> {
    st.objects
        .range::<str, _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Read every key under `prefix` at one revision, page by page.
async fn list_all(
    store: &dyn Store,
    prefix: &str,
) -> Result<(Vec<KeyValue>, Revision), StoreError> {
    let mut kvs = Vec::new();
    let mut req = RangeRequest {
        prefix: prefix.to_string(),
        start_after: None,
        limit: LIST_PAGE,
        revision: None,
    };
    loop {
        let page = store.range(req.clone()).await?;
        req.revision = Some(page.revision);
        req.start_after = page.kvs.last().map(|kv| kv.key.clone());
        kvs.extend(page.kvs);
        if !page.more {
            return Ok((kvs, page.revision));
        }
    }
}

impl WatchCache {
    /// List `prefix` from the store, then follow it with one store watch (re-listing on
    /// compaction or watch failure). Returns once the initial list is loaded.
    pub async fn start(
        store: Arc<dyn Store>,
        prefix: &str,
        config: CacheConfig,
    ) -> Result<Arc<Self>, CacheError> {
        let (kvs, revision) = list_all(store.as_ref(), prefix).await?;
        let objects: BTreeMap<String, Arc<CachedObject>> = kvs
            .iter()
            .map(|kv| (kv.key.clone(), Arc::new(CachedObject::from_kv(kv))))
            .collect();
        tracing::debug!(
            prefix,
            revision,
            objects = objects.len(),
            "watch cache loaded"
        );
        let (progress, _) = watch::channel(Progress {
            revision,
            closed: false,
        });
        let watcher_buffer = config
            .watcher_buffer
            .unwrap_or_else(|| suggested_watch_chan_size(config.capacity));
        let shared = Arc::new(Shared {
            prefix: prefix.to_string(),
            config,
            watcher_buffer,
            next_watcher_id: AtomicU64::new(0),
            state: RwLock::new(CacheState {
                objects,
                revision,
                oldest: revision,
                window: VecDeque::new(),
                watchers: Vec::new(),
                closed: false,
            }),
            progress,
        });
        let task = tokio::spawn(follow(shared.clone(), store.clone()));
        Ok(Arc::new(WatchCache {
            shared,
            store,
            task,
        }))
    }

    /// The revision the cache has caught up to.
    pub fn revision(&self) -> Revision {
        self.shared.read().revision
    }

    /// Wait until the cache has seen `rev`; `TooLargeResourceVersion` after `timeout`.
    pub async fn wait_for_revision(
        &self,
        rev: Revision,
        timeout: Duration,
    ) -> Result<(), CacheError> {
        let mut rx = self.shared.progress.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            rx.wait_for(|p| p.revision >= rev || p.closed)
                .await
                .map(|p| *p)
        })
        .await;
        match waited {
            Ok(Ok(p)) if p.revision >= rev => Ok(()),
            Ok(_) => Err(CacheError::Store(StoreError::Closed)),
            Err(_) => Err(CacheError::TooLargeResourceVersion {
                requested: rev,
                current: self.revision(),
            }),
        }
    }

    /// Ask the store for its current revision and wait until the cache has it: after this, a
    /// read from the cache sees every write acknowledged before the call (read-your-writes).
    /// Returns that store revision.
    pub async fn wait_consistent(&self, timeout: Duration) -> Result<Revision, CacheError> {
        let rev = self.store.current_revision().await?;
        self.wait_for_revision(rev, timeout).await?;
        Ok(rev)
    }

    /// One key at the cache's revision.
    pub fn get(&self, key: &str) -> (Option<Arc<CachedObject>>, Revision) {
        let st = self.shared.read();
        (st.objects.get(key).cloned(), st.revision)
    }

    /// Every key under `prefix` (ascending key order), at the cache's revision.
    pub fn list(&self, prefix: &str) -> (Vec<Arc<CachedObject>>, Revision) {
        let st = self.shared.read();
        (list_prefix(&st, prefix), st.revision)
    }

    /// A consistent snapshot of `prefix` and a watch of everything after it, with no gap.
    pub fn list_and_watch(&self, prefix: &str) -> (Vec<Arc<CachedObject>>, Revision, CacheWatch) {
        let mut st = self.shared.write();
        let objects = list_prefix(&st, prefix);
        let revision = st.revision;
        let w = attach(&self.shared, &mut st, prefix, revision, VecDeque::new());
        (objects, revision, w)
    }

    /// Watch `prefix` for changes with revision > `from`. `Expired` when `from` is older than the
    /// window; when `from` is ahead of the cache, waits up to 3 s for it
    /// (`TooLargeResourceVersion` after).
    pub async fn watch(&self, prefix: &str, from: Revision) -> Result<CacheWatch, CacheError> {
        let mut waited = false;
        loop {
            {
                let mut st = self.shared.write();
                if st.closed {
                    return Err(CacheError::Store(StoreError::Closed));
                }
                if from < st.oldest {
                    return Err(CacheError::Expired {
                        requested: from,
                        oldest: st.oldest,
                    });
                }
                if from <= st.revision {
                    let start = st.window.partition_point(|e| e.revision <= from);
                    let backlog: VecDeque<Arc<CacheEvent>> = st
                        .window
                        .range(start..)
                        .filter(|e| e.object.key.starts_with(prefix))
                        .cloned()
                        .collect();
                    return Ok(attach(&self.shared, &mut st, prefix, from, backlog));
                }
            }
            if waited {
                // Reached by wait_for_revision but raced with a close; report what we have.
                return Err(CacheError::TooLargeResourceVersion {
                    requested: from,
                    current: self.revision(),
                });
            }
            self.wait_for_revision(from, WATCH_AHEAD_WAIT).await?;
            waited = true;
        }
    }

    /// The oldest revision a watch can start from.
    pub fn oldest_revision(&self) -> Revision {
        self.shared.read().oldest
    }

    /// The prefix this cache holds.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// How many watches are registered.
    pub fn watcher_count(&self) -> usize {
        self.shared.read().watchers.len()
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.shared.read().objects.len()
    }

    /// Whether the cache holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stop following the store and end every watch (also done on drop).
    pub fn shutdown(&self) {
        self.task.abort();
        close(&self.shared);
    }
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Mark the cache closed: watchers end (after what they have queued), waiters wake up.
fn close(shared: &Shared) {
    let revision = {
        let mut st = shared.write();
        st.closed = true;
        for w in st.watchers.drain(..) {
            w.queue.close(Closed::CacheStopped);
        }
        st.revision
    };
    shared.publish_progress(revision, true);
}

/// Wait for the watchers a dispatch left over their limits, within the time budget, and close
/// those still full (kube-apiserver's `dispatchEvent` after its non-blocking pass). Every other
/// watcher already has the event; the next revision is dispatched after this.
async fn wait_for_blocked(shared: &Shared, budget: &mut TimeBudget, blocked: Blocked) {
    if blocked.is_empty() {
        return;
    }
    let started = tokio::time::Instant::now();
    let timeout = budget.take_available();
    let deadline = started + timeout;
    let roomy = futures::future::join_all(blocked.iter().map(|q| q.wait_for_room(deadline))).await;
    let mut closed = false;
    for (q, has_room) in blocked.iter().zip(roomy) {
        if !has_room {
            q.force_close(&shared.prefix);
            closed = true;
        }
    }
    budget.return_unused(timeout.saturating_sub(started.elapsed()));
    if closed {
        shared.write().watchers.retain(|w| !w.queue.is_closed());
    }
}

/// Apply one store revision (events under the prefix); returns the watchers left full.
fn apply_events(shared: &Shared, revision: Revision, events: Vec<WatchEvent>) -> Blocked {
    // Parse outside the lock: only this task changes the state.
    let parsed: Vec<(WatchEvent, Option<Arc<CachedObject>>)> = events
        .into_iter()
        .map(|ev| {
            let obj = match ev.kind {
                EventKind::Put => Some(Arc::new(CachedObject::from_kv(&ev.kv))),
                EventKind::Delete => None,
            };
            (ev, obj)
        })
        .collect();
    let mut st = shared.write();
    let mut blocked = Blocked::new();
    if revision <= st.revision {
        return blocked; // already applied (e.g. by a re-list)
    }
    let capacity = shared.config.capacity;
    for (ev, obj) in parsed {
        let key = ev.kv.key;
        let event = match obj {
            Some(obj) => {
                let prev = st.objects.insert(key, obj.clone());
                CacheEvent {
                    revision,
                    kind: if prev.is_some() {
                        CacheEventType::Modified
                    } else {
                        CacheEventType::Added
                    },
                    object: obj,
                    prev,
                }
            }
            None => {
                let prev = match st.objects.remove(&key) {
                    Some(p) => p,
                    None => match ev.prev_value {
                        // Not cached (should not happen): use the store's previous value.
                        Some(v) => Arc::new(CachedObject::from_stored(key, 0, revision, &v)),
                        None => continue,
                    },
                };
                CacheEvent {
                    revision,
                    kind: CacheEventType::Deleted,
                    object: Arc::new(prev.deleted_at(revision)),
                    prev: Some(prev),
                }
            }
        };
        st.push_event(Arc::new(event), capacity, &mut blocked);
    }
    st.revision = revision;
    drop(st);
    shared.publish_progress(revision, false);
    blocked
}

fn apply_progress(shared: &Shared, revision: Revision) {
    let mut st = shared.write();
    if revision <= st.revision {
        return;
    }
    st.revision = revision;
    drop(st);
    shared.publish_progress(revision, false);
}

/// Replace the state with a fresh list, emitting the difference as events at `revision`.
/// `None` when the list is older than the cache; else the watchers left full.
fn apply_relist(shared: &Shared, kvs: Vec<KeyValue>, revision: Revision) -> Option<Blocked> {
    let mut fresh: BTreeMap<String, Arc<CachedObject>> = BTreeMap::new();
    {
        let st = shared.read();
        if revision < st.revision {
            return None;
        }
        for kv in &kvs {
            let obj = match st.objects.get(&kv.key) {
                Some(o)
                    if o.mod_revision == kv.mod_revision
                        && o.create_revision == kv.create_revision =>
                {
                    o.clone()
                }
                _ => Arc::new(CachedObject::from_kv(kv)),
            };
            fresh.insert(kv.key.clone(), obj);
        }
    }
    let mut st = shared.write();
    let capacity = shared.config.capacity;
    let old = std::mem::take(&mut st.objects);
    let mut events = Vec::new();
    for (key, prev) in &old {
        match fresh.get(key) {
            None => events.push(CacheEvent {
                revision,
                kind: CacheEventType::Deleted,
                object: Arc::new(prev.deleted_at(revision)),
                prev: Some(prev.clone()),
            }),
            Some(now) if !Arc::ptr_eq(now, prev) => events.push(CacheEvent {
                revision,
                // A delete and re-create since the last event is reported as a change.
                kind: CacheEventType::Modified,
                object: now.clone(),
                prev: Some(prev.clone()),
            }),
            Some(_) => {}
        }
    }
    for (key, now) in &fresh {
        if !old.contains_key(key) {
            events.push(CacheEvent {
                revision,
                kind: CacheEventType::Added,
                object: now.clone(),
                prev: None,
            });
        }
    }
    events.sort_by(|a, b| a.object.key.cmp(&b.object.key));
    tracing::info!(
        prefix = %shared.prefix,
        revision,
        changes = events.len(),
        "watch cache re-listed"
    );
    st.objects = fresh;
    let mut blocked = Blocked::new();
    for e in events {
        st.push_event(Arc::new(e), capacity, &mut blocked);
    }
    st.revision = revision;
    drop(st);
    shared.publish_progress(revision, false);
    Some(blocked)
}

/// The cache's task: follow the store watch; re-watch on errors, re-list on compaction.
async fn follow(shared: Arc<Shared>, store: Arc<dyn Store>) {
    let prefix = shared.prefix.clone();
    let mut budget = TimeBudget::new(
        shared.config.dispatch_budget_refresh,
        shared.config.dispatch_budget_max,
    );
    let mut backoff = BACKOFF_MIN;
    let mut relist = false;
    loop {
        if relist {
            match list_all(store.as_ref(), &prefix).await {
                Ok((kvs, rev)) => match apply_relist(&shared, kvs, rev) {
                    Some(blocked) => {
                        relist = false;
                        backoff = BACKOFF_MIN;
                        wait_for_blocked(&shared, &mut budget, blocked).await;
                    }
                    None => tokio::time::sleep(backoff).await,
                },
                Err(StoreError::Closed) => break,
                Err(e) => {
                    tracing::warn!(%prefix, error = %e, "watch cache re-list failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            continue;
        }
        let from = shared.read().revision + 1;
        let mut stream = match store.watch(&prefix, from).await {
            Ok(s) => s,
            Err(StoreError::Compacted { .. }) => {
                tracing::info!(%prefix, from, "watch cache fell behind store compaction; re-listing");
                relist = true;
                continue;
            }
            Err(StoreError::Closed) => break,
            Err(e) => {
                tracing::warn!(%prefix, error = %e, "watch cache could not start its store watch; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let mut ended = true;
        while let Some(item) = stream.next().await {
            match item {
                Ok(WatchResponse::Events { revision, events }) => {
                    let blocked = apply_events(&shared, revision, events);
                    backoff = BACKOFF_MIN;
                    wait_for_blocked(&shared, &mut budget, blocked).await;
                }
                Ok(WatchResponse::Progress { revision }) => apply_progress(&shared, revision),
                Err(StoreError::Compacted { .. }) => {
                    tracing::info!(%prefix, "store watch compacted under the cache; re-listing");
                    relist = true;
                    ended = false;
                    break;
                }
                Err(StoreError::Closed) => break,
                Err(e) => {
                    tracing::warn!(%prefix, error = %e, "store watch failed; re-watching");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    ended = false;
                    break;
                }
            }
        }
        if ended {
            break; // the store closed
        }
    }
    tracing::debug!(%prefix, "watch cache stopped following the store");
    close(&shared);
}

impl CacheWatch {
    /// The next event under the prefix. `None` when the cache shuts down; `Err(Lagged)` when
    /// this watcher was closed for falling behind (what it had queued is gone).
    pub async fn next(&mut self) -> Option<Result<Arc<CacheEvent>, CacheError>> {
        loop {
            if let Some(next) = self.try_next() {
                return next;
            }
            self.queue.readable().await;
        }
    }

    /// [`next`](Self::next) if it is ready without waiting; `None` when nothing is queued.
    pub fn try_next(&mut self) -> Option<Option<Result<Arc<CacheEvent>, CacheError>>> {
        if self.done {
            return Some(None);
        }
        if self.queue.closed() == Some(Closed::Unresponsive) {
            return Some(self.end(Some(CacheError::Lagged)));
        }
        let event = match self.backlog.pop_front() {
            Some(e) => e,
            None => match self.queue.pop() {
                Popped::Event(e) => e,
                Popped::Closed(Closed::Unresponsive) => {
                    return Some(self.end(Some(CacheError::Lagged)))
                }
                Popped::Closed(_) => return Some(self.end(None)),
                Popped::Empty => return None,
            },
        };
        // Events of one revision may still follow; everything before it is consumed.
        self.floor = self.floor.max(event.revision - 1);
        Some(Some(Ok(event)))
    }

    fn end(&mut self, error: Option<CacheError>) -> Option<Result<Arc<CacheEvent>, CacheError>> {
        self.done = true;
        self.backlog = VecDeque::new();
        error.map(Err)
    }

    /// The highest revision this watch has fully consumed (including events outside its
    /// prefix): a BOOKMARK at this revision is truthful.
    pub fn progress_revision(&self) -> Revision {
        if let Some(front) = self.backlog.front() {
            return self.floor.max(front.revision - 1);
        }
        // The dispatcher queues a revision's events and raises the revision under one write
        // lock, so an empty queue seen under the read lock means everything is consumed.
        let st = self.shared.read();
        match self.queue.front_revision() {
            Ok(None) => self.floor.max(st.revision),
            Ok(Some(front)) => self.floor.max(front - 1),
            Err(_) => self.floor,
        }
    }

    /// Name this watch in the log line of a forced close (kube-apiserver logs the group
    /// resource and the watch's key and selectors).
    pub fn set_label(&self, resource: impl Into<String>, identifier: impl Into<String>) {
        self.queue.set_label(WatcherLabel {
            resource: resource.into(),
            identifier: identifier.into(),
        });
    }

    /// Run `hook` (once, from the cache's task) when the dispatcher closes this watch for
    /// falling behind: its reader may not be polling [`next`](Self::next) (e.g. a client that
    /// stopped reading leaves its response body unpolled), and may need telling.
    pub fn on_forced_close(&self, hook: impl FnOnce() + Send + 'static) {
        self.queue.set_on_forced_close(Box::new(hook));
    }

    /// (events, bytes of objects) queued for this watch now.
    pub fn queued(&self) -> (usize, usize) {
        self.queue.len_and_bytes()
    }
}

impl Drop for CacheWatch {
    fn drop(&mut self) {
        self.queue.close(Closed::Dropped);
        let id = self.id;
        self.shared.write().watchers.retain(|w| w.id != id);
    }
}

#[cfg(test)]
mod tests;
