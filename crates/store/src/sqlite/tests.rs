use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use super::*;

fn open_tmp() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    (dir, Arc::new(store))
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.to_string(),
        value: Bytes::from(value.to_string()),
    }
}

fn del(key: &str) -> Op {
    Op::Delete {
        key: key.to_string(),
    }
}

async fn must_txn(store: &SqliteStore, compares: Vec<Compare>, ops: Vec<Op>) -> Revision {
    let r = store.txn(compares, ops).await.unwrap();
    assert!(r.succeeded, "txn failed: {r:?}");
    r.revision
}

async fn range_all(store: &SqliteStore, prefix: &str, revision: Option<Revision>) -> RangeResult {
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
async fn range_paged(
    store: &SqliteStore,
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
async fn collect_until(
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

fn event_revisions(items: &[WatchResponse]) -> Vec<Revision> {
    items
        .iter()
        .filter_map(|r| match r {
            WatchResponse::Events { revision, .. } => Some(*revision),
            WatchResponse::Progress { .. } => None,
        })
        .collect()
}

#[tokio::test]
async fn empty_store_starts_at_zero() {
    let (_dir, store) = open_tmp();
    assert_eq!(store.current_revision().await.unwrap(), 0);
    assert_eq!(store.compacted_revision().await.unwrap(), 0);
    let (kv, rev) = store.get("/a").await.unwrap();
    assert!(kv.is_none());
    assert_eq!(rev, 0);
    let r = range_all(&store, "", None).await;
    assert!(r.kvs.is_empty());
    assert_eq!(r.revision, 0);
}

#[tokio::test]
async fn txn_compares_and_revisions() {
    let (_dir, store) = open_tmp();

    // Absent holds on a new key: first write gets revision 1.
    let r1 = must_txn(
        &store,
        vec![Compare::Absent("/a".into())],
        vec![put("/a", "1")],
    )
    .await;
    assert_eq!(r1, 1);
    let (kv, rev) = store.get("/a").await.unwrap();
    let kv = kv.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, rev), (1, 1, 1));
    assert_eq!(kv.value, Bytes::from("1"));

    // Absent fails on an existing key, writes nothing, reports the current revision.
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
            revision: 1,
            failed_compare: Some(1)
        }
    );
    assert_eq!(store.get("/a").await.unwrap().0.unwrap().value, "1");
    assert_eq!(store.current_revision().await.unwrap(), 1);

    // ModRevision: stale revision fails, the right one succeeds.
    let r = store
        .txn(
            vec![Compare::ModRevision("/a".into(), 7)],
            vec![put("/a", "x")],
        )
        .await
        .unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.failed_compare, Some(0));
    let r2 = must_txn(
        &store,
        vec![Compare::ModRevision("/a".into(), 1)],
        vec![put("/a", "2")],
    )
    .await;
    assert_eq!(r2, 2);
    let kv = store.get("/a").await.unwrap().0.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (1, 2));

    // Exists fails on a missing key; ModRevision too.
    let r = store
        .txn(
            vec![Compare::Exists("/nope".into())],
            vec![put("/nope", "x")],
        )
        .await
        .unwrap();
    assert!(!r.succeeded);
    let r = store
        .txn(
            vec![Compare::ModRevision("/nope".into(), 0)],
            vec![put("/nope", "x")],
        )
        .await
        .unwrap();
    assert!(!r.succeeded);
    assert!(store.get("/nope").await.unwrap().0.is_none());

    // All ops of one txn share one revision.
    let r3 = must_txn(
        &store,
        vec![],
        vec![put("/b", "b"), put("/c", "c"), del("/a")],
    )
    .await;
    assert_eq!(r3, 3);
    let all = range_all(&store, "/", None).await;
    assert_eq!(
        all.kvs
            .iter()
            .map(|kv| (kv.key.as_str(), kv.create_revision, kv.mod_revision))
            .collect::<Vec<_>>(),
        vec![("/b", 3, 3), ("/c", 3, 3)]
    );

    // Re-create after delete resets create_revision.
    let r4 = must_txn(
        &store,
        vec![Compare::Absent("/a".into())],
        vec![put("/a", "new")],
    )
    .await;
    let kv = store.get("/a").await.unwrap().0.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r4, r4));

    // A successful txn without effective changes still gets its own revision.
    let r5 = must_txn(&store, vec![], vec![del("/never-existed")]).await;
    assert_eq!(r5, r4 + 1);
}

#[tokio::test]
async fn concurrent_creates_of_one_key_exactly_one_wins() {
    let (_dir, store) = open_tmp();
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
    assert_eq!(store.current_revision().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_txns_get_distinct_increasing_revisions() {
    let (_dir, store) = open_tmp();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            must_txn(&store, vec![], vec![put(&format!("/k/{i:04}"), "v")]).await
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs.sort();
    assert_eq!(revs, (1..=300).collect::<Vec<_>>());
    assert_eq!(store.current_revision().await.unwrap(), 300);

    // Sequential writes from one task see strictly increasing revisions.
    let mut last = 300;
    for i in 0..20 {
        let r = must_txn(&store, vec![], vec![put("/seq", &i.to_string())]).await;
        assert!(r > last);
        last = r;
    }
}

#[tokio::test]
async fn range_prefix_paging_and_order() {
    let (_dir, store) = open_tmp();
    for k in ["/a/2", "/a/10", "/a/1", "/ab", "/b/1", "/a/é", "/a/Z"] {
        must_txn(&store, vec![], vec![put(k, k)]).await;
    }
    let all = range_all(&store, "/a/", None).await;
    let keys: Vec<&str> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    // Ascending by bytes: "1" < "10" < "2" < "Z" < "é".
    assert_eq!(keys, vec!["/a/1", "/a/10", "/a/2", "/a/Z", "/a/é"]);
    assert!(!all.more);
    assert_eq!(all.revision, 7);

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
    assert_eq!(range_all(&store, "", None).await.kvs.len(), 7);
    // Paged reads return the same keys as a single read.
    assert_eq!(
        range_paged(&store, "", 7, 2).await,
        range_all(&store, "", None).await.kvs
    );
}

#[tokio::test]
async fn range_at_past_revision() {
    let (_dir, store) = open_tmp();
    must_txn(&store, vec![], vec![put("/r/a", "a1"), put("/r/b", "b1")]).await; // 1
    must_txn(&store, vec![], vec![put("/r/c", "c1")]).await; // 2
    let at = 2;
    let before = range_all(&store, "/r/", None).await.kvs;
    must_txn(&store, vec![], vec![put("/r/a", "a2")]).await; // 3: update
    must_txn(&store, vec![], vec![del("/r/b")]).await; // 4: delete
    must_txn(&store, vec![], vec![put("/r/d", "d1")]).await; // 5: create
    must_txn(&store, vec![], vec![del("/r/c"), put("/r/c", "c2")]).await; // 6: re-create
    must_txn(&store, vec![], vec![put("/r/a", "a3")]).await; // 7: second update

    let past = range_all(&store, "/r/", Some(at)).await;
    assert_eq!(past.revision, at);
    assert_eq!(past.kvs, before);
    for limit in 1..4 {
        assert_eq!(range_paged(&store, "/r/", at, limit).await, before);
    }
    let at4 = range_all(&store, "/r/", Some(4)).await;
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
            ("/r/a", b"a2".as_slice(), 1, 3),
            ("/r/c", b"c1".as_slice(), 2, 2)
        ]
    );
    let now = range_all(&store, "/r/", None).await;
    let c = now.kvs.iter().find(|kv| kv.key == "/r/c").unwrap();
    assert_eq!((c.create_revision, c.mod_revision), (6, 6));

    let err = store
        .range(RangeRequest {
            prefix: "/r/".into(),
            revision: Some(8),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::FutureRevision {
            requested: 8,
            current: 7
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn range_paging_at_past_revision_while_writes_continue() {
    let (_dir, store) = open_tmp();
    for i in 0..200 {
        must_txn(
            &store,
            vec![],
            vec![put(&format!("/p/{i:03}"), &format!("v0-{i}"))],
        )
        .await;
    }
    let snapshot = range_all(&store, "/p/", None).await;
    let at = snapshot.revision;

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 1..=5 {
                for i in (0..200).step_by(3) {
                    let key = format!("/p/{i:03}");
                    if (i + round) % 4 == 0 {
                        must_txn(&store, vec![], vec![del(&key)]).await;
                    } else {
                        must_txn(&store, vec![], vec![put(&key, &format!("v{round}-{i}"))]).await;
                    }
                }
                must_txn(&store, vec![], vec![put(&format!("/p/new-{round}"), "n")]).await;
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 3 {
        let paged = range_paged(&store, "/p/", at, 17).await;
        assert_eq!(paged, snapshot.kvs);
        reads += 1;
    }
    writer.await.unwrap();
    assert_eq!(range_paged(&store, "/p/", at, 50).await, snapshot.kvs);
    assert!(store.current_revision().await.unwrap() > at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_replays_history_then_follows_live_without_gap() {
    let (_dir, store) = open_tmp();
    for i in 1..=50 {
        must_txn(
            &store,
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
                    &store,
                    vec![],
                    vec![put(&format!("/w/{}", i % 7), &i.to_string())],
                )
                .await;
            }
        })
    };
    let mut stream = store.watch("/w/", 10).await.unwrap();
    let items = collect_until(&mut stream, 400).await;
    writer.await.unwrap();
    assert_eq!(event_revisions(&items), (10..=400).collect::<Vec<_>>());
    for item in &items {
        if let WatchResponse::Events { revision, events } = item {
            assert_eq!(events.len(), 1);
            let ev = &events[0];
            assert_eq!(ev.kind, EventKind::Put);
            assert_eq!(ev.kv.mod_revision, *revision);
            assert_eq!(ev.kv.value, Bytes::from(revision.to_string()));
            assert_eq!(ev.kv.key, format!("/w/{}", revision % 7));
            if *revision > 7 {
                assert_eq!(ev.prev_value, Some(Bytes::from((revision - 7).to_string())));
            }
        }
    }
}

#[tokio::test]
async fn watch_filters_by_prefix_and_reports_progress() {
    let (_dir, store) = open_tmp();
    let mut stream = store.watch("/x/", 1).await.unwrap();
    must_txn(&store, vec![], vec![put("/y/1", "y")]).await; // 1: not ours
    must_txn(&store, vec![], vec![put("/x/1", "a"), put("/y/2", "y")]).await; // 2
    must_txn(&store, vec![], vec![del("/x/1")]).await; // 3
    must_txn(&store, vec![], vec![put("/y/3", "y")]).await; // 4: not ours

    let items = collect_until(&mut stream, 4).await;
    let events: Vec<&WatchResponse> = items
        .iter()
        .filter(|r| matches!(r, WatchResponse::Events { .. }))
        .collect();
    assert_eq!(events.len(), 2);
    match events[0] {
        WatchResponse::Events { revision, events } => {
            assert_eq!(*revision, 2);
            assert_eq!(events.len(), 1, "only the event under the prefix");
            assert_eq!(events[0].kv.key, "/x/1");
            assert_eq!(events[0].prev_value, None);
        }
        _ => unreachable!(),
    }
    match events[1] {
        WatchResponse::Events { revision, events } => {
            assert_eq!(*revision, 3);
            let ev = &events[0];
            assert_eq!(ev.kind, EventKind::Delete);
            assert_eq!(ev.kv.mod_revision, 3);
            assert!(ev.kv.value.is_empty());
            assert_eq!(ev.prev_value, Some(Bytes::from("a")));
        }
        _ => unreachable!(),
    }
    assert_eq!(
        items.last(),
        Some(&WatchResponse::Progress { revision: 4 }),
        "the trailing write outside the prefix is reported as progress"
    );
}

#[tokio::test]
async fn slow_watcher_catches_up_from_history() {
    let (_dir, store) = open_tmp();
    let mut stream = store.watch("/s/", 1).await.unwrap();
    // Far more commits than the live feed buffers, while the watcher does not read.
    let n = (FEED_CAPACITY * 2 + 100) as Revision;
    let mut batch = Vec::new();
    for i in 1..=n {
        let store = store.clone();
        batch.push(tokio::spawn(async move {
            must_txn(&store, vec![], vec![put(&format!("/s/{}", i % 13), "v")]).await
        }));
    }
    for t in batch {
        t.await.unwrap();
    }
    let items = collect_until(&mut stream, n).await;
    assert_eq!(event_revisions(&items), (1..=n).collect::<Vec<_>>());
    // And it is live afterwards.
    let r = must_txn(&store, vec![], vec![put("/s/live", "v")]).await;
    let items = collect_until(&mut stream, r).await;
    assert_eq!(event_revisions(&items), vec![r]);
}

#[tokio::test]
async fn compaction_limits_reads_and_watches() {
    let (dir, store) = open_tmp();
    for i in 1..=10 {
        must_txn(&store, vec![], vec![put("/c/k", &i.to_string())]).await;
    }
    store.compact(6).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), 6);

    let err = store
        .range(RangeRequest {
            prefix: "/c/".into(),
            revision: Some(5),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Compacted {
            requested: 5,
            compacted: 6
        }
    ));
    let at6 = range_all(&store, "/c/", Some(6)).await;
    assert_eq!(at6.kvs[0].value, Bytes::from("6"));

    match store.watch("/c/", 5).await {
        Err(StoreError::Compacted {
            requested: 5,
            compacted: 6,
        }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("watch from a compacted revision must fail"),
    }
    let mut stream = store.watch("/c/", 6).await.unwrap();
    let items = collect_until(&mut stream, 10).await;
    assert_eq!(event_revisions(&items), vec![6, 7, 8, 9, 10]);

    // Compacting backwards is a no-op; into the future is an error.
    store.compact(3).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), 6);
    assert!(matches!(
        store.compact(11).await,
        Err(StoreError::FutureRevision { .. })
    ));

    // The compacted revision survives a restart.
    drop(stream);
    drop(store);
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), 6);
    assert!(store.watch("/c/", 5).await.is_err());
}

#[tokio::test]
async fn durable_across_reopen_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        must_txn(&store, vec![], vec![put("/d/a", "1")]).await;
        must_txn(&store, vec![], vec![put("/d/b", "2")]).await;
        must_txn(&store, vec![], vec![put("/d/a", "3")]).await;
        must_txn(&store, vec![], vec![del("/d/b")]).await;
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), 4);
    let kv = store.get("/d/a").await.unwrap().0.unwrap();
    assert_eq!(
        (kv.value.as_ref(), kv.create_revision, kv.mod_revision),
        (b"3".as_slice(), 1, 3)
    );
    assert!(store.get("/d/b").await.unwrap().0.is_none());
    // Revision continues.
    assert_eq!(must_txn(&store, vec![], vec![put("/d/c", "5")]).await, 5);
    // History is kept: past reads and watch replay.
    let at2 = range_all(&store, "/d/", Some(2)).await;
    assert_eq!(at2.kvs.len(), 2);
    let mut stream = store.watch("/d/", 1).await.unwrap();
    let items = collect_until(&mut stream, 5).await;
    assert_eq!(event_revisions(&items), vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn close_ends_watches_and_rejects_calls() {
    let (_dir, store) = open_tmp();
    must_txn(&store, vec![], vec![put("/z", "1")]).await;
    let mut stream = store.watch("/", 2).await.unwrap();
    store.close();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    assert!(end.is_none(), "stream ends when the store closes: {end:?}");
    assert!(matches!(
        store.txn(vec![], vec![put("/z", "2")]).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.get("/z").await, Err(StoreError::Closed)));
}

#[test]
fn open_fails_cleanly_on_a_bad_path() {
    let err = SqliteStore::open(Path::new("/nonexistent-dir/for/sure/state.db"))
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::OpenFailed(_)));
}

/// Rough numbers for the report: `cargo test --release -p svcnet-store -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_store() {
    let (_dir, store) = open_tmp();
    let value = Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc", "namespace": "default", "uid": "0b7f8a3e-1c7e-4d3c-9d1e-3f6c2f5b9a10",
                         "labels": {"app": "web", "tier": "frontend"}, "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                     "selector": {"app": "web"}, "sessionAffinity": "None", "ipFamilies": ["IPv4"],
                     "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"},
            "status": {"loadBalancer": {}}
        }))
        .unwrap(),
    );
    let n = 10_000;
    let t = Instant::now();
    for i in 0..n {
        let key = format!("/registry/services/specs/default/svc-{i:05}");
        let r = store
            .txn(
                vec![Compare::Absent(key.clone())],
                vec![Op::Put {
                    key,
                    value: value.clone(),
                }],
            )
            .await
            .unwrap();
        assert!(r.succeeded);
    }
    let seq = t.elapsed();
    println!("sequential creates: {n} in {seq:?} ({:?}/txn)", seq / n);

    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n / 32 {
                let key = format!("/registry/services/specs/ns{w}/svc-{i:05}");
                let r = store
                    .txn(
                        vec![Compare::Absent(key.clone())],
                        vec![Op::Put {
                            key,
                            value: value.clone(),
                        }],
                    )
                    .await
                    .unwrap();
                assert!(r.succeeded);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let conc = t.elapsed();
    println!(
        "32 concurrent writers: {} creates in {conc:?}",
        (n / 32) * 32
    );

    let t = Instant::now();
    let all = range_all(&store, "/registry/services/specs/default/", None).await;
    println!("store range of {} keys: {:?}", all.kvs.len(), t.elapsed());
    let t = Instant::now();
    let page = store
        .range(RangeRequest {
            prefix: "/registry/services/specs/default/".into(),
            limit: 500,
            revision: Some(n as Revision),
            ..Default::default()
        })
        .await
        .unwrap();
    println!(
        "store range at a past revision (10k writes since), limit 500: {:?} ({} keys)",
        t.elapsed(),
        page.kvs.len()
    );
    let t = Instant::now();
    let mut stream = store.watch("/registry/services/", 1).await.unwrap();
    let mut seen = 0;
    while seen < 2 * n as usize - (n as usize % 32) {
        if let Some(Ok(WatchResponse::Events { events, .. })) = stream.next().await {
            seen += events.len();
        }
    }
    println!("watch replay of {seen} events: {:?}", t.elapsed());
}

/// Child half of `acknowledged_writes_survive_kill_9`: writes until killed, printing each
/// acknowledged revision. Does nothing unless started by that test.
#[tokio::test]
#[ignore]
async fn kill9_child() {
    use std::io::Write;
    let Ok(path) = std::env::var("SVCNET_STORE_KILL9_DB") else {
        return;
    };
    let store = SqliteStore::open(Path::new(&path)).unwrap();
    let mut out = std::io::stdout();
    for i in 0.. {
        let rev = must_txn(
            &store,
            vec![],
            vec![put(&format!("/k9/{i:06}"), &i.to_string())],
        )
        .await;
        writeln!(out, "acked {i} {rev}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "sqlite::tests::kill9_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SVCNET_STORE_KILL9_DB", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked: Vec<(i64, Revision)> = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("acked ") else {
            continue;
        };
        let mut it = rest.split(' ');
        let i: i64 = it.next().unwrap().parse().unwrap();
        let rev: Revision = it.next().unwrap().parse().unwrap();
        acked.push((i, rev));
        if acked.len() >= 300 {
            child.kill().unwrap(); // SIGKILL, mid-stream
            break;
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 300, "child did not write");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&path).unwrap();
        let current = store.current_revision().await.unwrap();
        let (_, last_rev) = *acked.last().unwrap();
        assert!(
            current >= last_rev,
            "lost acknowledged writes: {current} < {last_rev}"
        );
        for (i, rev) in &acked {
            let kv = store.get(&format!("/k9/{i:06}")).await.unwrap().0.unwrap();
            assert_eq!(kv.mod_revision, *rev);
        }
        // The store keeps working after the crash.
        let r = must_txn(&store, vec![], vec![put("/k9/after", "x")]).await;
        assert_eq!(r, current + 1);
    });
}
