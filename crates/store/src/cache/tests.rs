use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::*;
use crate::sqlite::SqliteStore;
use crate::{Compare, Op, RangeResult, TxnResult};

const WAIT: Duration = Duration::from_secs(10);

fn open_tmp() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    (dir, Arc::new(store))
}

fn obj(name: &str, data: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"v": data},
        }))
        .unwrap(),
    )
}

async fn put(store: &dyn Store, key: &str, data: &str) -> Revision {
    let name = key.rsplit('/').next().unwrap();
    let r = store
        .txn(
            vec![],
            vec![Op::Put {
                key: key.to_string(),
                value: obj(name, data),
            }],
        )
        .await
        .unwrap();
    assert!(r.succeeded);
    r.revision
}

async fn del(store: &dyn Store, key: &str) -> Revision {
    let r = store
        .txn(
            vec![Compare::Exists(key.to_string())],
            vec![Op::Delete {
                key: key.to_string(),
            }],
        )
        .await
        .unwrap();
    assert!(r.succeeded);
    r.revision
}

async fn next_event(w: &mut CacheWatch) -> Arc<CacheEvent> {
    tokio::time::timeout(WAIT, w.next())
        .await
        .expect("watch stalled")
        .expect("watch ended")
        .expect("watch failed")
}

fn rv(o: &CachedObject) -> &str {
    o.value["metadata"]["resourceVersion"].as_str().unwrap()
}

fn data(o: &CachedObject) -> &str {
    o.value["data"]["v"].as_str().unwrap()
}

#[tokio::test]
async fn list_and_get_set_resource_version() {
    let (_dir, store) = open_tmp();
    put(store.as_ref(), "/c/ns1/a", "1").await;
    put(store.as_ref(), "/c/ns1/b", "1").await;
    put(store.as_ref(), "/c/ns2/a", "1").await;
    put(store.as_ref(), "/other/x", "1").await;
    store
        .txn(
            vec![],
            vec![
                Op::Put {
                    key: "/c/raw/text".into(),
                    value: Bytes::from("not json"),
                },
                Op::Put {
                    key: "/c/raw/num".into(),
                    value: Bytes::from("42"),
                },
            ],
        )
        .await
        .unwrap();
    let rev = put(store.as_ref(), "/c/ns1/a", "2").await;

    let cache = WatchCache::start(store.clone(), "/c/", CacheConfig::default())
        .await
        .unwrap();
    assert_eq!(cache.revision(), rev);
    assert_eq!(cache.oldest_revision(), rev);
    assert_eq!(cache.len(), 5, "keys outside the prefix are not cached");

    let (a, r) = cache.get("/c/ns1/a");
    let a = a.unwrap();
    assert_eq!(r, rev);
    assert_eq!((a.create_revision, a.mod_revision), (1, rev));
    assert_eq!(rv(&a), rev.to_string());
    assert_eq!(data(&a), "2");
    let parsed: serde_json::Value = serde_json::from_slice(&a.json).unwrap();
    assert_eq!(parsed, a.value);
    assert!(cache.get("/c/ns1/zzz").0.is_none());

    let (items, r) = cache.list("/c/ns1/");
    assert_eq!(r, rev);
    let keys: Vec<&str> = items.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, vec!["/c/ns1/a", "/c/ns1/b"]);
    assert_eq!(cache.list("/c/").0.len(), 5);

    // Values that are not objects with metadata are kept as they are.
    let text = cache.get("/c/raw/text").0.unwrap();
    assert_eq!(text.value, serde_json::json!("not json"));
    assert_eq!(&text.json[..], b"\"not json\"");
    assert_eq!(
        cache.get("/c/raw/num").0.unwrap().value,
        serde_json::json!(42)
    );
}

#[tokio::test]
async fn events_kinds_and_deleted_resource_version() {
    let (_dir, store) = open_tmp();
    let cache = WatchCache::start(store.clone(), "/e/", CacheConfig::default())
        .await
        .unwrap();
    let (items, rev, mut w) = cache.list_and_watch("/e/");
    assert!(items.is_empty());
    assert_eq!(rev, 0);

    let r1 = put(store.as_ref(), "/e/a", "1").await;
    let r2 = put(store.as_ref(), "/e/a", "2").await;
    let r3 = del(store.as_ref(), "/e/a").await;

    let added = next_event(&mut w).await;
    assert_eq!(added.kind, CacheEventType::Added);
    assert_eq!(added.revision, r1);
    assert!(added.prev.is_none());
    assert_eq!(rv(&added.object), r1.to_string());

    let modified = next_event(&mut w).await;
    assert_eq!(modified.kind, CacheEventType::Modified);
    assert_eq!(modified.revision, r2);
    assert_eq!(data(&modified.object), "2");
    assert_eq!(data(modified.prev.as_ref().unwrap()), "1");

    let deleted = next_event(&mut w).await;
    assert_eq!(deleted.kind, CacheEventType::Deleted);
    assert_eq!(deleted.revision, r3);
    assert_eq!(deleted.object.mod_revision, r3);
    assert_eq!(rv(&deleted.object), r3.to_string());
    assert_eq!(data(&deleted.object), "2", "last state of the object");
    let prev = deleted.prev.as_ref().unwrap();
    assert_eq!(prev.mod_revision, r2);
    assert_eq!(rv(prev), r2.to_string());
    assert!(cache.get("/e/a").0.is_none());
    assert_eq!(w.progress_revision(), r3);
}

/// Replays `events` on `state` (key → data), checking order and revision bounds.
fn apply(state: &mut BTreeMap<String, String>, after: Revision, events: &[Arc<CacheEvent>]) {
    let mut last = after;
    let mut seen = std::collections::HashSet::new();
    for e in events {
        assert!(e.revision > after, "event {} not after {after}", e.revision);
        assert!(e.revision >= last, "out of order");
        assert!(
            seen.insert((e.object.key.clone(), e.revision)),
            "duplicate event {} @{}",
            e.object.key,
            e.revision
        );
        last = e.revision;
        match e.kind {
            CacheEventType::Added => {
                assert!(!state.contains_key(&e.object.key), "Added for a known key");
                state.insert(e.object.key.clone(), data(&e.object).to_string());
            }
            CacheEventType::Modified => {
                assert!(
                    state.contains_key(&e.object.key),
                    "Modified for an unknown key"
                );
                state.insert(e.object.key.clone(), data(&e.object).to_string());
            }
            CacheEventType::Deleted => {
                assert!(
                    state.remove(&e.object.key).is_some(),
                    "Deleted for an unknown key"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_and_watch_is_atomic_under_concurrent_writes() {
    let (_dir, store) = open_tmp();
    // The watches are read only at the end: their queues must hold every event.
    let config = CacheConfig {
        watcher_buffer: Some(100_000),
        watcher_bytes: usize::MAX,
        ..Default::default()
    };
    let cache = WatchCache::start(store.clone(), "/l/", config)
        .await
        .unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..600u32 {
                let key = format!("/l/{}", i % 37);
                let exists = store.get(&key).await.unwrap().0.is_some();
                if exists && i % 5 == 0 {
                    del(store.as_ref(), &key).await;
                } else {
                    put(store.as_ref(), &key, &i.to_string()).await;
                }
                // Writes outside the prefix interleave too.
                if i % 7 == 0 {
                    put(store.as_ref(), &format!("/m/{i}"), "x").await;
                }
            }
        })
    };
    let mut watches = Vec::new();
    while !writer.is_finished() {
        let (items, rev, w) = cache.list_and_watch("/l/");
        let state: BTreeMap<String, String> = items
            .iter()
            .map(|o| {
                assert!(o.mod_revision <= rev);
                (o.key.clone(), data(o).to_string())
            })
            .collect();
        watches.push((state, rev, w));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    writer.await.unwrap();
    let final_rev = cache.wait_consistent(WAIT).await.unwrap();
    let (final_items, _) = cache.list("/l/");
    let expected: BTreeMap<String, String> = final_items
        .iter()
        .map(|o| (o.key.clone(), data(o).to_string()))
        .collect();
    // The cache agrees with the store.
    let stored = store
        .range(RangeRequest {
            prefix: "/l/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.kvs.len(), expected.len());
    assert!(watches.len() > 3, "too few list_and_watch samples");
    for (mut state, rev, mut w) in watches {
        let mut events = Vec::new();
        while w.progress_revision() < final_rev {
            events.push(next_event(&mut w).await);
        }
        apply(&mut state, rev, &events);
        assert_eq!(state, expected, "list at {rev} + events != final state");
    }
}

#[tokio::test]
async fn watch_replays_the_window_then_follows() {
    let (_dir, store) = open_tmp();
    let cache = WatchCache::start(store.clone(), "/w/", CacheConfig::default())
        .await
        .unwrap();
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(put(store.as_ref(), &format!("/w/{}", i % 3), &i.to_string()).await);
        put(store.as_ref(), "/x/outside", "x").await;
    }
    cache.wait_consistent(WAIT).await.unwrap();
    let mut w = cache.watch("/w/", revs[4]).await.unwrap();
    let live = put(store.as_ref(), "/w/live", "x").await;
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(next_event(&mut w).await.revision);
    }
    let mut want = revs[5..].to_vec();
    want.push(live);
    assert_eq!(got, want);

    // A narrower prefix only gets its own keys.
    let mut w1 = cache.watch("/w/1", 0).await.unwrap();
    let e = next_event(&mut w1).await;
    assert_eq!(e.object.key, "/w/1");
    assert_eq!(e.revision, revs[1]);
}

#[tokio::test]
async fn expired_after_the_window_evicts() {
    let (_dir, store) = open_tmp();
    put(store.as_ref(), "/x/seed", "0").await;
    let cache = WatchCache::start(
        store.clone(),
        "/x/",
        CacheConfig {
            capacity: 5,
            watcher_buffer: Some(100),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let start = cache.revision();
    assert_eq!(cache.oldest_revision(), start);
    // Before the cache's start: expired.
    assert!(matches!(
        cache.watch("/x/", start - 1).await,
        Err(CacheError::Expired { .. })
    ));
    let mut revs = Vec::new();
    for i in 0..12 {
        revs.push(put(store.as_ref(), &format!("/x/{i}"), "v").await);
    }
    cache.wait_for_revision(revs[11], WAIT).await.unwrap();
    // 12 events, 5 kept: the window starts at the 7th event's revision.
    assert_eq!(cache.oldest_revision(), revs[6]);
    match cache.watch("/x/", start).await {
        Err(CacheError::Expired { requested, oldest }) => {
            assert_eq!((requested, oldest), (start, revs[6]));
        }
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("expected Expired"),
    }
    let mut w = cache.watch("/x/", revs[6]).await.unwrap();
    for r in &revs[7..] {
        assert_eq!(next_event(&mut w).await.revision, *r);
    }
}

#[tokio::test]
async fn wait_consistent_reads_your_writes() {
    let (_dir, store) = open_tmp();
    let cache = WatchCache::start(store.clone(), "/r/", CacheConfig::default())
        .await
        .unwrap();
    for i in 0..50 {
        let key = format!("/r/{i}");
        let rev = put(store.as_ref(), &key, "v").await;
        let seen = cache.wait_consistent(WAIT).await.unwrap();
        assert!(seen >= rev);
        let (o, at) = cache.get(&key);
        assert!(at >= rev);
        assert_eq!(o.unwrap().mod_revision, rev);
    }
    // The last write is outside the prefix: progress notifications still get us there.
    let (_, _, w) = cache.list_and_watch("/r/");
    let outside = put(store.as_ref(), "/s/1", "v").await;
    assert_eq!(cache.wait_consistent(WAIT).await.unwrap(), outside);
    assert_eq!(cache.revision(), outside);
    assert_eq!(w.progress_revision(), outside);
}

#[tokio::test]
async fn watch_ahead_waits_or_fails() {
    let (_dir, store) = open_tmp();
    let cache = WatchCache::start(store.clone(), "/a/", CacheConfig::default())
        .await
        .unwrap();
    assert!(matches!(
        cache.wait_for_revision(5, Duration::from_millis(50)).await,
        Err(CacheError::TooLargeResourceVersion {
            requested: 5,
            current: 0
        })
    ));
    let watching = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.watch("/a/", 2).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    put(store.as_ref(), "/a/1", "v").await;
    let r2 = put(store.as_ref(), "/a/2", "v").await;
    let r3 = put(store.as_ref(), "/a/3", "v").await;
    assert_eq!(r2, 2);
    let mut w = watching.await.unwrap().unwrap();
    assert_eq!(next_event(&mut w).await.revision, r3);
}

#[tokio::test]
async fn lagging_watcher_is_dropped_others_continue() {
    let (_dir, store) = open_tmp();
    let cache = WatchCache::start(
        store.clone(),
        "/g/",
        CacheConfig {
            capacity: 1000,
            watcher_buffer: Some(4),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (_, _, mut slow) = cache.list_and_watch("/g/");
    let (_, _, fast) = cache.list_and_watch("/g/");
    let n = 40;
    let reader = tokio::spawn(async move {
        let mut fast = fast;
        let mut got = Vec::new();
        while got.len() < n {
            got.push(next_event(&mut fast).await.revision);
        }
        got
    });
    let mut revs = Vec::new();
    for i in 0..n {
        revs.push(put(store.as_ref(), &format!("/g/{i}"), "v").await);
        // Let the fast reader keep up.
        cache
            .wait_for_revision(*revs.last().unwrap(), WAIT)
            .await
            .unwrap();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(reader.await.unwrap(), revs);
    match tokio::time::timeout(WAIT, slow.next()).await.unwrap() {
        Some(Err(CacheError::Lagged)) => {}
        other => panic!("expected Lagged, got {other:?}"),
    }
    assert!(slow.next().await.is_none());
}

/// A cache whose dispatcher may wait up to `budget` for a full queue (refilled at once).
async fn cache_with_limits(
    store: Arc<SqliteStore>,
    events: usize,
    bytes: usize,
    budget: Duration,
) -> Arc<WatchCache> {
    let cache = WatchCache::start(
        store,
        "/q/",
        CacheConfig {
            capacity: 1000,
            watcher_buffer: Some(events),
            watcher_bytes: bytes,
            dispatch_budget_refresh: budget * 1000,
            dispatch_budget_max: budget,
        },
    )
    .await
    .unwrap();
    // The budget starts empty, as kube-apiserver's; let it fill.
    tokio::time::sleep(Duration::from_millis(20)).await;
    cache
}

async fn put_and_wait(cache: &WatchCache, store: &dyn Store, key: &str, data: &str) -> Revision {
    let r = put(store, key, data).await;
    cache.wait_for_revision(r, WAIT).await.unwrap();
    r
}

#[tokio::test]
async fn byte_budget_closes_a_watcher_that_stopped_reading() {
    let (_dir, store) = open_tmp();
    let kb = "x".repeat(1000);
    let one = obj("k0", &kb).len();
    // Room for 3 such objects by bytes; the count would allow 1,000.
    let cache = cache_with_limits(store.clone(), 1000, 3 * one + 100, Duration::ZERO).await;
    let (_, _, mut stalled) = cache.list_and_watch("/q/");
    let (_, _, mut reader) = cache.list_and_watch("/q/");
    let mut revs = Vec::new();
    for i in 0..3 {
        revs.push(put_and_wait(&cache, store.as_ref(), &format!("/q/k{i}"), &kb).await);
        assert_eq!(next_event(&mut reader).await.revision, revs[i]);
    }
    let (n, bytes) = stalled.queued();
    assert_eq!(n, 3);
    assert!(bytes <= 3 * one + 100, "{bytes} bytes queued");
    // The fourth object is one too many: closed at once (no budget), its queue emptied.
    revs.push(put_and_wait(&cache, store.as_ref(), "/q/k3", &kb).await);
    assert_eq!(next_event(&mut reader).await.revision, revs[3]);
    let deadline = Instant::now() + WAIT;
    while stalled.queued() != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "never closed: {:?}",
            stalled.queued()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(
        stalled.next().await,
        Some(Err(CacheError::Lagged))
    ));
    assert!(stalled.next().await.is_none());
    assert_eq!(cache.watcher_count(), 1);
    // One object larger than the whole budget still reaches a reader with an empty queue.
    let big = "y".repeat(10 * one);
    let r = put_and_wait(&cache, store.as_ref(), "/q/big", &big).await;
    let e = next_event(&mut reader).await;
    assert_eq!((e.revision, data(&e.object).len()), (r, big.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_briefly_slow_watcher_keeps_up_within_the_time_budget() {
    let (_dir, store) = open_tmp();
    let cache = cache_with_limits(store.clone(), 2, usize::MAX, Duration::from_secs(5)).await;
    let (_, _, mut slow) = cache.list_and_watch("/q/");
    let n = 8;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < n {
            // Slower than the writer: its queue fills and the dispatcher waits for it.
            tokio::time::sleep(Duration::from_millis(30)).await;
            got.push(next_event(&mut slow).await.revision);
        }
        got
    });
    let mut revs = Vec::new();
    for i in 0..n {
        revs.push(put(store.as_ref(), &format!("/q/k{i}"), "v").await);
    }
    assert_eq!(reader.await.unwrap(), revs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_is_closed_after_the_budget_and_others_get_everything() {
    let (_dir, store) = open_tmp();
    let budget = Duration::from_millis(200);
    let cache = cache_with_limits(store.clone(), 2, usize::MAX, budget).await;
    let (_, _, mut stalled) = cache.list_and_watch("/q/");
    stalled.set_label("configmaps", "key: \"/q/\"");
    let hooks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hooks.clone();
    stalled.on_forced_close(move || {
        h.fetch_add(1, Ordering::SeqCst);
    });
    let (_, _, fast) = cache.list_and_watch("/q/");
    let n = 20;
    let reader = tokio::spawn(async move {
        let mut fast = fast;
        let mut got = Vec::new();
        while got.len() < n {
            got.push(next_event(&mut fast).await.revision);
        }
        (got, fast)
    });
    let started = Instant::now();
    let mut revs = Vec::new();
    for i in 0..n {
        revs.push(put(store.as_ref(), &format!("/q/k{i}"), "v").await);
    }
    let (got, _fast) = reader.await.unwrap();
    assert_eq!(got, revs);
    // The stalled watcher cost the others one budget at most (bound 10x looser).
    assert!(started.elapsed() < budget * 10, "{:?}", started.elapsed());
    assert!(matches!(
        stalled.next().await,
        Some(Err(CacheError::Lagged))
    ));
    assert_eq!(hooks.load(Ordering::SeqCst), 1);
    assert_eq!(cache.watcher_count(), 1);
}

#[tokio::test]
async fn dropping_a_watch_unregisters_it_and_frees_what_it_queued() {
    let (_dir, store) = open_tmp();
    let cache = WatchCache::start(store.clone(), "/q/", CacheConfig::default())
        .await
        .unwrap();
    let (_, _, mut a) = cache.list_and_watch("/q/");
    let (_, _, b) = cache.list_and_watch("/q/");
    assert_eq!(cache.watcher_count(), 2);
    put_and_wait(&cache, store.as_ref(), "/q/k", "v").await;
    let e = next_event(&mut a).await;
    // The window, `e`, and b's queue: one event, shared.
    assert_eq!(Arc::strong_count(&e), 3);
    assert_eq!(b.queued().0, 1);
    drop(b);
    assert_eq!(Arc::strong_count(&e), 2);
    assert_eq!(cache.watcher_count(), 1);
}

#[tokio::test]
async fn suggested_queue_sizes_are_kube_apiservers() {
    assert_eq!(suggested_watch_chan_size(100), 10);
    assert_eq!(suggested_watch_chan_size(1500), 20);
    assert_eq!(suggested_watch_chan_size(100_000), 100);
    let mut b = queue::TimeBudget::new(Duration::from_millis(50), Duration::from_millis(100));
    assert!(b.take_available() < Duration::from_millis(1));
    b.return_unused(Duration::from_secs(1));
    assert_eq!(b.take_available(), Duration::from_millis(100));
}

#[tokio::test]
async fn dropping_the_cache_ends_watches() {
    let (_dir, store) = open_tmp();
    let cache = WatchCache::start(store.clone(), "/d/", CacheConfig::default())
        .await
        .unwrap();
    let (_, _, mut w) = cache.list_and_watch("/d/");
    let r = put(store.as_ref(), "/d/1", "v").await;
    cache.wait_for_revision(r, WAIT).await.unwrap();
    drop(cache);
    // What was delivered before the shutdown is still readable, then the watch ends.
    assert_eq!(next_event(&mut w).await.revision, r);
    assert!(tokio::time::timeout(WAIT, w.next())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn store_close_ends_the_cache() {
    let (_dir, store) = open_tmp();
    let cache = WatchCache::start(store.clone(), "/d/", CacheConfig::default())
        .await
        .unwrap();
    let (_, _, mut w) = cache.list_and_watch("/d/");
    store.close();
    assert!(tokio::time::timeout(WAIT, w.next())
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        cache.watch("/d/", 0).await,
        Err(CacheError::Store(StoreError::Closed))
    ));
}

/// A store whose watches can be cut and held back, to drive the cache's recovery paths.
struct FlakyStore {
    inner: Arc<SqliteStore>,
    /// Sending on it ends the current watch stream with an error.
    cut: Mutex<Option<tokio::sync::oneshot::Sender<StoreError>>>,
    /// New watches wait while this is false.
    open: watch::Sender<bool>,
    /// Calls to `watch`, counted before they wait for `open`.
    attempts: std::sync::atomic::AtomicUsize,
    /// Watches actually started.
    watches: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Store for FlakyStore {
    async fn get(&self, key: &str) -> crate::Result<(Option<KeyValue>, Revision)> {
        self.inner.get(key).await
    }
    async fn range(&self, req: RangeRequest) -> crate::Result<RangeResult> {
        self.inner.range(req).await
    }
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> crate::Result<TxnResult> {
        self.inner.txn(compares, ops).await
    }
    async fn current_revision(&self) -> crate::Result<Revision> {
        self.inner.current_revision().await
    }
    async fn compacted_revision(&self) -> crate::Result<Revision> {
        self.inner.compacted_revision().await
    }
    async fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> crate::Result<BoxStream<'static, crate::Result<WatchResponse>>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|o| *o).await;
        self.watches.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.watch(prefix, from).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        *self.cut.lock().unwrap() = Some(tx);
        let failure = futures::stream::once(rx).filter_map(|r| async move { r.ok().map(Err) });
        Ok(futures::stream::select(inner, failure)
            .take_while({
                let mut failed = false;
                move |item| {
                    let go = !failed;
                    failed |= item.is_err();
                    async move { go }
                }
            })
            .boxed())
    }
    async fn compact(&self, revision: Revision) -> crate::Result<()> {
        self.inner.compact(revision).await
    }
}

fn flaky(inner: Arc<SqliteStore>) -> Arc<FlakyStore> {
    Arc::new(FlakyStore {
        inner,
        cut: Mutex::new(None),
        open: watch::Sender::new(true),
        attempts: Default::default(),
        watches: Default::default(),
    })
}

#[tokio::test]
async fn relists_after_compaction_and_emits_the_difference() {
    let (_dir, sqlite) = open_tmp();
    let store = flaky(sqlite.clone());
    put(store.as_ref(), "/f/gone", "1").await;
    put(store.as_ref(), "/f/changed", "1").await;
    put(store.as_ref(), "/f/same", "1").await;
    let cache = WatchCache::start(store.clone(), "/f/", CacheConfig::default())
        .await
        .unwrap();
    let (_, list_rev, mut w) = cache.list_and_watch("/f/");
    tokio::time::timeout(WAIT, async {
        while store.cut.lock().unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();

    // Cut the cache off, change things behind its back, and compact them away.
    store.open.send_replace(false);
    let cut = store.cut.lock().unwrap().take().unwrap();
    cut.send(StoreError::Backend("connection reset".into()))
        .unwrap();
    // Wait until the cache has noticed and is trying to watch again.
    tokio::time::timeout(WAIT, async {
        while store.attempts.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    del(store.as_ref(), "/f/gone").await;
    put(store.as_ref(), "/f/changed", "2").await;
    put(store.as_ref(), "/f/new", "1").await;
    let rev = put(store.as_ref(), "/other/x", "1").await;
    store.compact(rev).await.unwrap();
    assert_eq!(cache.revision(), list_rev, "the cache is cut off");
    store.open.send_replace(true);

    cache.wait_for_revision(rev, WAIT).await.unwrap();
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(next_event(&mut w).await);
    }
    let got: Vec<(&str, CacheEventType, Revision)> = events
        .iter()
        .map(|e| (e.object.key.as_str(), e.kind, e.revision))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/f/changed", CacheEventType::Modified, rev),
            ("/f/gone", CacheEventType::Deleted, rev),
            ("/f/new", CacheEventType::Added, rev),
        ]
    );
    assert_eq!(rv(&events[1].object), rev.to_string());
    assert_eq!(data(&events[0].object), "2");
    let keys: Vec<String> = cache.list("/f/").0.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys, vec!["/f/changed", "/f/new", "/f/same"]);

    // And it follows live changes again.
    let r = put(store.as_ref(), "/f/same", "2").await;
    let e = next_event(&mut w).await;
    assert_eq!((e.object.key.as_str(), e.revision), ("/f/same", r));
    assert!(store.watches.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn rewatches_after_a_watch_error_without_losing_events() {
    let (_dir, sqlite) = open_tmp();
    let store = flaky(sqlite.clone());
    let cache = WatchCache::start(store.clone(), "/f/", CacheConfig::default())
        .await
        .unwrap();
    let (_, _, mut w) = cache.list_and_watch("/f/");
    let r1 = put(store.as_ref(), "/f/a", "1").await;
    cache.wait_for_revision(r1, WAIT).await.unwrap();
    store.open.send_replace(false);
    let cut = store.cut.lock().unwrap().take().unwrap();
    cut.send(StoreError::Backend("boom".into())).unwrap();
    let r2 = put(store.as_ref(), "/f/b", "1").await;
    store.open.send_replace(true);
    assert_eq!(next_event(&mut w).await.revision, r1);
    let e = next_event(&mut w).await;
    assert_eq!((e.revision, e.kind), (r2, CacheEventType::Added));
}

/// Rough numbers for the report: `cargo test --release -p svcnet-store -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_cache() {
    let (_dir, store) = open_tmp();
    let cache = WatchCache::start(store.clone(), "/registry/services/", CacheConfig::default())
        .await
        .unwrap();
    let n = 10_000;
    let t = Instant::now();
    let mut last = 0;
    for i in 0..n {
        let key = format!("/registry/services/specs/default/svc-{i:05}");
        let value = Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{i:05}"), "namespace": "default",
                             "uid": "0b7f8a3e-1c7e-4d3c-9d1e-3f6c2f5b9a10",
                             "labels": {"app": "web"}, "creationTimestamp": "2025-01-01T00:00:00Z"},
                "spec": {"type": "ClusterIP", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                         "selector": {"app": "web"}, "sessionAffinity": "None"},
                "status": {"loadBalancer": {}}
            }))
            .unwrap(),
        );
        let r = store
            .txn(
                vec![Compare::Absent(key.clone())],
                vec![Op::Put { key, value }],
            )
            .await
            .unwrap();
        last = r.revision;
    }
    let create = t.elapsed();
    cache.wait_for_revision(last, WAIT).await.unwrap();
    println!(
        "created {n} services through the store in {create:?}; cache caught up {:?} after start",
        t.elapsed()
    );
    for _ in 0..3 {
        let t = Instant::now();
        let (items, _) = cache.list("/registry/services/specs/");
        let listed = t.elapsed();
        let bytes: usize = items.iter().map(|o| o.json.len()).sum();
        println!(
            "cache list of {} objects: {listed:?} ({bytes} bytes of JSON)",
            items.len()
        );
    }
    let t = Instant::now();
    let (items, _) = cache.list("/registry/services/specs/default/");
    let mut body = Vec::with_capacity(items.iter().map(|o| o.json.len() + 1).sum::<usize>() + 64);
    body.extend_from_slice(b"{\"items\":[");
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&o.json);
    }
    body.extend_from_slice(b"]}");
    println!(
        "cache list + concatenating a response body of {} bytes: {:?}",
        body.len(),
        t.elapsed()
    );
}
