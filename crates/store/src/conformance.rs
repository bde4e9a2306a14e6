//! Backend-independent tests of the [`Store`] contract, run against every backend
//! (`conformance_tests!` in `sqlite/tests.rs` and `etcd/tests.rs`).
//!
//! Revisions are asserted relative to the store's revision when a test starts (`base`): a fresh
//! SQLite store is at 0, a fresh etcd at 1.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::*;

pub type DynStore = Arc<dyn Store>;

pub fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.to_string(),
        value: Bytes::from(value.to_string()),
    }
}

pub fn del(key: &str) -> Op {
    Op::Delete {
        key: key.to_string(),
    }
}

pub async fn must_txn(store: &dyn Store, compares: Vec<Compare>, ops: Vec<Op>) -> Revision {
    let r = store.txn(compares, ops).await.unwrap();
    assert!(r.succeeded, "txn failed: {r:?}");
    r.revision
}

/// Creates `key` as the API server does (the put guarded by `Compare::Absent`) and asserts that
/// it was created.
pub async fn create(store: &dyn Store, key: String, value: Bytes) -> Revision {
    must_txn(
        store,
        vec![Compare::Absent(key.clone())],
        vec![Op::Put { key, value }],
    )
    .await
}

pub async fn range_all(store: &dyn Store, prefix: &str, revision: Option<Revision>) -> RangeResult {
    store
        .range(RangeRequest {
            prefix: prefix.to_string(),
            revision,
            ..Default::default()
        })
        .await
        .unwrap()
}

/// Page through `prefix` at `revision` with `limit` keys per page.
pub async fn range_paged(
    store: &dyn Store,
    prefix: &str,
    revision: Revision,
    limit: usize,
) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let mut start_after = None;
    loop {
        let page = store
            .range(RangeRequest {
                prefix: prefix.to_string(),
                start_after: start_after.clone(),
                limit,
                revision: Some(revision),
            })
            .await
            .unwrap();
        assert_eq!(page.revision, revision);
        assert!(page.kvs.len() <= limit);
        start_after = page.kvs.last().map(|kv| kv.key.clone());
        out.extend(page.kvs);
        if !page.more {
            return out;
        }
    }
}

/// Collect watch responses until one at or past `until` arrives (with a timeout).
pub async fn collect_until(
    stream: &mut BoxStream<'static, Result<WatchResponse>>,
    until: Revision,
) -> Vec<WatchResponse> {
    let mut out = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("watch stalled")
            .expect("watch ended")
            .unwrap();
        let rev = match &item {
            WatchResponse::Events { revision, .. } | WatchResponse::Progress { revision } => {
                *revision
            }
        };
        out.push(item);
        if rev >= until {
            return out;
        }
    }
}

pub fn event_revisions(items: &[WatchResponse]) -> Vec<Revision> {
    items
        .iter()
        .filter_map(|r| match r {
            WatchResponse::Events { revision, .. } => Some(*revision),
            WatchResponse::Progress { .. } => None,
        })
        .collect()
}

pub async fn empty_store(store: DynStore) {
    let base = store.current_revision().await.unwrap();
    assert!(
        base <= 1,
        "a fresh store is at revision 0 (sqlite) or 1 (etcd): {base}"
    );
    assert_eq!(store.compacted_revision().await.unwrap(), 0);
    let (kv, rev) = store.get("/a").await.unwrap();
    assert!(kv.is_none());
    assert_eq!(rev, base);
    let r = range_all(store.as_ref(), "", None).await;
    assert!(r.kvs.is_empty());
    assert_eq!(r.revision, base);
}

pub async fn txn_compares_and_revisions(store: DynStore) {
    let store = store.as_ref();
    let b = store.current_revision().await.unwrap();

    // Absent holds on a new key: the write gets the next revision.
    let r1 = must_txn(
        store,
        vec![Compare::Absent("/a".into())],
        vec![put("/a", "1")],
    )
    .await;
    assert_eq!(r1, b + 1);
    let (kv, rev) = store.get("/a").await.unwrap();
    let kv = kv.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, rev), (r1, r1, r1));
    assert_eq!(kv.value, Bytes::from("1"));

    // Absent fails on an existing key, writes nothing, reports the current revision and
    // which compare failed.
    let r = store
        .txn(
            vec![Compare::Exists("/a".into()), Compare::Absent("/a".into())],
            vec![put("/a", "2")],
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        TxnResult {
            succeeded: false,
            revision: r1,
            failed_compare: Some(1)
        }
    );
    assert_eq!(store.get("/a").await.unwrap().0.unwrap().value, "1");
    assert_eq!(store.current_revision().await.unwrap(), r1);

    // ModRevision: stale revision fails, the right one succeeds.
    let r = store
        .txn(
            vec![Compare::ModRevision("/a".into(), r1 + 6)],
            vec![put("/a", "x")],
        )
        .await
        .unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.failed_compare, Some(0));
    let r2 = must_txn(
        store,
        vec![Compare::ModRevision("/a".into(), r1)],
        vec![put("/a", "2")],
    )
    .await;
    assert_eq!(r2, r1 + 1);
    let kv = store.get("/a").await.unwrap().0.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r2));

    // Exists fails on a missing key; ModRevision too (also with revision 0).
    let r = store
        .txn(
            vec![Compare::Exists("/nope".into())],
            vec![put("/nope", "x")],
        )
        .await
        .unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.failed_compare, Some(0));
    let r = store
        .txn(
            vec![Compare::ModRevision("/nope".into(), 0)],
            vec![put("/nope", "x")],
        )
        .await
        .unwrap();
    assert!(!r.succeeded);
    assert!(store.get("/nope").await.unwrap().0.is_none());

    // The first failing compare is reported when several fail.
    let r = store
        .txn(
            vec![
                Compare::Exists("/a".into()),
                Compare::ModRevision("/a".into(), r2),
                Compare::Absent("/a".into()),
                Compare::Exists("/nope".into()),
            ],
            vec![put("/x", "x")],
        )
        .await
        .unwrap();
    assert_eq!(r.failed_compare, Some(2));

    // All ops of one txn share one revision.
    let r3 = must_txn(
        store,
        vec![],
        vec![put("/b", "b"), put("/c", "c"), del("/a")],
    )
    .await;
    assert_eq!(r3, r2 + 1);
    let all = range_all(store, "/", None).await;
    assert_eq!(
        all.kvs
            .iter()
            .map(|kv| (kv.key.as_str(), kv.create_revision, kv.mod_revision))
            .collect::<Vec<_>>(),
        vec![("/b", r3, r3), ("/c", r3, r3)]
    );

    // Re-create after delete resets create_revision.
    let r4 = must_txn(
        store,
        vec![Compare::Absent("/a".into())],
        vec![put("/a", "new")],
    )
    .await;
    let kv = store.get("/a").await.unwrap().0.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r4, r4));

    // A successful txn without effective changes does not go backwards (SQLite gives it a
    // revision of its own, etcd does not).
    let r5 = must_txn(store, vec![], vec![del("/never-existed")]).await;
    assert!(r5 >= r4);
}

pub async fn concurrent_creates_of_one_key_exactly_one_wins(store: DynStore) {
    let base = store.current_revision().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .txn(
                    vec![Compare::Absent("/registry/x".into())],
                    vec![put("/registry/x", &format!("writer-{i}"))],
                )
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        if r.succeeded {
            winners.push((i, r.revision));
        } else {
            assert_eq!(r.failed_compare, Some(0));
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let (i, rev) = winners[0];
    let kv = store.get("/registry/x").await.unwrap().0.unwrap();
    assert_eq!(kv.value, Bytes::from(format!("writer-{i}")));
    assert_eq!(kv.mod_revision, rev);
    assert_eq!(store.current_revision().await.unwrap(), base + 1);
}

pub async fn concurrent_txns_get_distinct_increasing_revisions(store: DynStore) {
    let base = store.current_revision().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            must_txn(
                store.as_ref(),
                vec![],
                vec![put(&format!("/k/{i:04}"), "v")],
            )
            .await
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs.sort();
    assert_eq!(revs, (base + 1..=base + 300).collect::<Vec<_>>());
    assert_eq!(store.current_revision().await.unwrap(), base + 300);

    // Sequential writes from one task see strictly increasing revisions.
    let mut last = base + 300;
    for i in 0..20 {
        let r = must_txn(store.as_ref(), vec![], vec![put("/seq", &i.to_string())]).await;
        assert!(r > last);
        last = r;
    }
}

pub async fn range_prefix_paging_and_order(store: DynStore) {
    let store = store.as_ref();
    let base = store.current_revision().await.unwrap();
    for k in ["/a/2", "/a/10", "/a/1", "/ab", "/b/1", "/a/é", "/a/Z"] {
        must_txn(store, vec![], vec![put(k, k)]).await;
    }
    let all = range_all(store, "/a/", None).await;
    let keys: Vec<&str> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    // Ascending by bytes: "1" < "10" < "2" < "Z" < "é".
    assert_eq!(keys, vec!["/a/1", "/a/10", "/a/2", "/a/Z", "/a/é"]);
    assert!(!all.more);
    assert_eq!(all.revision, base + 7);

    let page = store
        .range(RangeRequest {
            prefix: "/a/".into(),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.kvs.len(), 2);
    assert!(page.more);
    let page2 = store
        .range(RangeRequest {
            prefix: "/a/".into(),
            start_after: Some("/a/10".into()),
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<&str> = page2.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, vec!["/a/2", "/a/Z", "/a/é"]);
    assert!(!page2.more, "exactly `limit` keys left: no more");

    // start_after before the prefix is just the prefix.
    let r = store
        .range(RangeRequest {
            prefix: "/b/".into(),
            start_after: Some("/a".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.kvs.len(), 1);

    // Empty prefix: everything.
    assert_eq!(range_all(store, "", None).await.kvs.len(), 7);
    // Paged reads return the same keys as a single read.
    assert_eq!(
        range_paged(store, "", base + 7, 2).await,
        range_all(store, "", None).await.kvs
    );
}

pub async fn range_at_past_revision(store: DynStore) {
    let store = store.as_ref();
    let b = store.current_revision().await.unwrap();
    must_txn(store, vec![], vec![put("/r/a", "a1"), put("/r/b", "b1")]).await; // b+1
    must_txn(store, vec![], vec![put("/r/c", "c1")]).await; // b+2
    let at = b + 2;
    let before = range_all(store, "/r/", None).await.kvs;
    must_txn(store, vec![], vec![put("/r/a", "a2")]).await; // b+3: update
    must_txn(store, vec![], vec![del("/r/b")]).await; // b+4: delete
    must_txn(store, vec![], vec![put("/r/d", "d1")]).await; // b+5: create
    must_txn(store, vec![], vec![del("/r/c")]).await; // b+6: delete ...
    must_txn(store, vec![], vec![put("/r/c", "c2")]).await; // b+7: ... and re-create
    must_txn(store, vec![], vec![put("/r/a", "a3")]).await; // b+8: second update

    let past = range_all(store, "/r/", Some(at)).await;
    assert_eq!(past.revision, at);
    assert_eq!(past.kvs, before);
    for limit in 1..4 {
        assert_eq!(range_paged(store, "/r/", at, limit).await, before);
    }
    let at4 = range_all(store, "/r/", Some(b + 4)).await;
    let got: Vec<(&str, &[u8], Revision, Revision)> = at4
        .kvs
        .iter()
        .map(|kv| {
            (
                kv.key.as_str(),
                kv.value.as_ref(),
                kv.create_revision,
                kv.mod_revision,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("/r/a", b"a2".as_slice(), b + 1, b + 3),
            ("/r/c", b"c1".as_slice(), b + 2, b + 2)
        ]
    );
    let now = range_all(store, "/r/", None).await;
    let c = now.kvs.iter().find(|kv| kv.key == "/r/c").unwrap();
    assert_eq!((c.create_revision, c.mod_revision), (b + 7, b + 7));

    let err = store
        .range(RangeRequest {
            prefix: "/r/".into(),
            revision: Some(b + 9),
            ..Default::default()
        })
        .await
        .unwrap_err();
    match err {
        StoreError::FutureRevision { requested, current } => {
            assert_eq!((requested, current), (b + 9, b + 8))
        }
        e => panic!("expected FutureRevision, got {e:?}"),
    }
}

pub async fn range_paging_at_past_revision_while_writes_continue(store: DynStore) {
    for i in 0..200 {
        must_txn(
            store.as_ref(),
            vec![],
            vec![put(&format!("/p/{i:03}"), &format!("v0-{i}"))],
        )
        .await;
    }
    let snapshot = range_all(store.as_ref(), "/p/", None).await;
    let at = snapshot.revision;

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let store = store.as_ref();
            for round in 1..=5 {
                for i in (0..200).step_by(3) {
                    let key = format!("/p/{i:03}");
                    if (i + round) % 4 == 0 {
                        must_txn(store, vec![], vec![del(&key)]).await;
                    } else {
                        must_txn(store, vec![], vec![put(&key, &format!("v{round}-{i}"))]).await;
                    }
                }
                must_txn(store, vec![], vec![put(&format!("/p/new-{round}"), "n")]).await;
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 3 {
        let paged = range_paged(store.as_ref(), "/p/", at, 17).await;
        assert_eq!(paged, snapshot.kvs);
        reads += 1;
    }
    writer.await.unwrap();
    assert_eq!(
        range_paged(store.as_ref(), "/p/", at, 50).await,
        snapshot.kvs
    );
    assert!(store.current_revision().await.unwrap() > at);
}

pub async fn watch_replays_history_then_follows_live_without_gap(store: DynStore) {
    let b = store.current_revision().await.unwrap();
    // Values are the revision offset from `b`; key i%7 → consecutive writes to a key are 7 apart.
    for i in 1..=50 {
        must_txn(
            store.as_ref(),
            vec![],
            vec![put(&format!("/w/{}", i % 7), &i.to_string())],
        )
        .await;
    }
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 51..=400 {
                must_txn(
                    store.as_ref(),
                    vec![],
                    vec![put(&format!("/w/{}", i % 7), &i.to_string())],
                )
                .await;
            }
        })
    };
    let mut stream = store.watch("/w/", b + 10).await.unwrap();
    let items = collect_until(&mut stream, b + 400).await;
    writer.await.unwrap();
    assert_eq!(
        event_revisions(&items),
        (b + 10..=b + 400).collect::<Vec<_>>()
    );
    for item in &items {
        if let WatchResponse::Events { revision, events } = item {
            let i = revision - b;
            assert_eq!(events.len(), 1);
            let ev = &events[0];
            assert_eq!(ev.kind, EventKind::Put);
            assert_eq!(ev.kv.mod_revision, *revision);
            assert_eq!(ev.kv.value, Bytes::from(i.to_string()));
            assert_eq!(ev.kv.key, format!("/w/{}", i % 7));
            if i > 7 {
                assert_eq!(ev.prev_value, Some(Bytes::from((i - 7).to_string())));
            }
        }
    }
}

pub async fn watch_filters_by_prefix_and_reports_progress(store: DynStore) {
    let b = store.current_revision().await.unwrap();
    let mut stream = store.watch("/x/", b + 1).await.unwrap();
    let s = store.as_ref();
    must_txn(s, vec![], vec![put("/y/1", "y")]).await; // b+1: not ours
    must_txn(s, vec![], vec![put("/x/1", "a"), put("/y/2", "y")]).await; // b+2
    must_txn(s, vec![], vec![del("/x/1")]).await; // b+3
    must_txn(s, vec![], vec![put("/y/3", "y")]).await; // b+4: not ours

    let items = collect_until(&mut stream, b + 4).await;
    let events: Vec<&WatchResponse> = items
        .iter()
        .filter(|r| matches!(r, WatchResponse::Events { .. }))
        .collect();
    assert_eq!(events.len(), 2);
    match events[0] {
        WatchResponse::Events { revision, events } => {
            assert_eq!(*revision, b + 2);
            assert_eq!(events.len(), 1, "only the event under the prefix");
            assert_eq!(events[0].kv.key, "/x/1");
            assert_eq!(events[0].prev_value, None);
        }
        _ => unreachable!(),
    }
    match events[1] {
        WatchResponse::Events { revision, events } => {
            assert_eq!(*revision, b + 3);
            let ev = &events[0];
            assert_eq!(ev.kind, EventKind::Delete);
            assert_eq!(ev.kv.mod_revision, b + 3);
            assert!(ev.kv.value.is_empty());
            assert_eq!(ev.prev_value, Some(Bytes::from("a")));
        }
        _ => unreachable!(),
    }
    assert_eq!(
        items.last(),
        Some(&WatchResponse::Progress { revision: b + 4 }),
        "the trailing write outside the prefix is reported as progress"
    );
}

/// A watcher that does not read while `n` commits happen gets all of them, then follows live.
pub async fn slow_watcher_catches_up_from_history(store: DynStore, n: Revision) {
    let b = store.current_revision().await.unwrap();
    let mut stream = store.watch("/s/", b + 1).await.unwrap();
    let mut batch = Vec::new();
    for i in 1..=n {
        let store = store.clone();
        batch.push(tokio::spawn(async move {
            must_txn(
                store.as_ref(),
                vec![],
                vec![put(&format!("/s/{}", i % 13), "v")],
            )
            .await
        }));
    }
    for t in batch {
        t.await.unwrap();
    }
    let items = collect_until(&mut stream, b + n).await;
    assert_eq!(event_revisions(&items), (b + 1..=b + n).collect::<Vec<_>>());
    // And it is live afterwards.
    let r = must_txn(store.as_ref(), vec![], vec![put("/s/live", "v")]).await;
    let items = collect_until(&mut stream, r).await;
    assert_eq!(event_revisions(&items), vec![r]);
}

pub async fn compaction_limits_reads_and_watches(store: DynStore) {
    let b = store.current_revision().await.unwrap();
    for i in 1..=10 {
        must_txn(store.as_ref(), vec![], vec![put("/c/k", &i.to_string())]).await;
    }
    store.compact(b + 6).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), b + 6);

    let err = store
        .range(RangeRequest {
            prefix: "/c/".into(),
            revision: Some(b + 5),
            ..Default::default()
        })
        .await
        .unwrap_err();
    match err {
        StoreError::Compacted {
            requested,
            compacted,
        } => assert_eq!((requested, compacted), (b + 5, b + 6)),
        e => panic!("expected Compacted, got {e:?}"),
    }
    let at6 = range_all(store.as_ref(), "/c/", Some(b + 6)).await;
    assert_eq!(at6.kvs[0].value, Bytes::from("6"));

    match store.watch("/c/", b + 5).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (b + 5, b + 6)),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("watch from a compacted revision must fail"),
    }
    let mut stream = store.watch("/c/", b + 6).await.unwrap();
    let items = collect_until(&mut stream, b + 10).await;
    assert_eq!(
        event_revisions(&items),
        (b + 6..=b + 10).collect::<Vec<_>>()
    );

    // Compacting backwards is a no-op; into the future is an error.
    store.compact(b + 3).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), b + 6);
    let current = store.current_revision().await.unwrap();
    assert!(matches!(
        store.compact(current + 1).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

/// One `#[tokio::test]` per conformance test; `$open` is an async fn returning
/// `(guard, Arc<dyn Store>)` (the guard keeps the backend alive).
macro_rules! conformance_tests {
    ($open:path, $slow_n:expr) => {
        mod conformance {
            use super::*;
            use crate::conformance as c;

            #[tokio::test]
            async fn empty_store() {
                let (_g, s) = $open().await;
                c::empty_store(s).await
            }
            #[tokio::test]
            async fn txn_compares_and_revisions() {
                let (_g, s) = $open().await;
                c::txn_compares_and_revisions(s).await
            }
            #[tokio::test]
            async fn concurrent_creates_of_one_key_exactly_one_wins() {
                let (_g, s) = $open().await;
                c::concurrent_creates_of_one_key_exactly_one_wins(s).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_txns_get_distinct_increasing_revisions() {
                let (_g, s) = $open().await;
                c::concurrent_txns_get_distinct_increasing_revisions(s).await
            }
            #[tokio::test]
            async fn range_prefix_paging_and_order() {
                let (_g, s) = $open().await;
                c::range_prefix_paging_and_order(s).await
            }
            #[tokio::test]
            async fn range_at_past_revision() {
                let (_g, s) = $open().await;
                c::range_at_past_revision(s).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn range_paging_at_past_revision_while_writes_continue() {
                let (_g, s) = $open().await;
                c::range_paging_at_past_revision_while_writes_continue(s).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn watch_replays_history_then_follows_live_without_gap() {
                let (_g, s) = $open().await;
                c::watch_replays_history_then_follows_live_without_gap(s).await
            }
            #[tokio::test]
            async fn watch_filters_by_prefix_and_reports_progress() {
                let (_g, s) = $open().await;
                c::watch_filters_by_prefix_and_reports_progress(s).await
            }
            #[tokio::test]
            async fn slow_watcher_catches_up_from_history() {
                let (_g, s) = $open().await;
                c::slow_watcher_catches_up_from_history(s, $slow_n).await
            }
            #[tokio::test]
            async fn compaction_limits_reads_and_watches() {
                let (_g, s) = $open().await;
                c::compaction_limits_reads_and_watches(s).await
            }
        }
    };
}
pub(crate) use conformance_tests;
