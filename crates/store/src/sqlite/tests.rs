use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use super::*;
use crate::conformance::{collect_until, create, del, event_revisions, must_txn, put, range_all};

fn open_tmp() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    (dir, Arc::new(store))
}

#[tokio::test]
async fn empty_store_starts_at_zero() {
    let (_dir, store) = open_tmp();
    assert_eq!(store.current_revision().await.unwrap(), 0);
    assert_eq!(store.compacted_revision().await.unwrap(), 0);
    let (kv, rev) = store.get("/a").await.unwrap();
    assert!(kv.is_none());
    assert_eq!(rev, 0);
    let r = range_all(&*store, "", None).await;
    assert!(r.kvs.is_empty());
    assert_eq!(r.revision, 0);
}

async fn open_dyn() -> (tempfile::TempDir, Arc<dyn Store>) {
    let (dir, store) = open_tmp();
    (dir, store)
}

// Far more commits than the live feed buffers, while the watcher does not read.
crate::conformance::conformance_tests!(open_dyn, (FEED_CAPACITY * 2 + 100) as Revision);

/// The database and its WAL and shared-memory files are the owner's alone: from the start, and
/// after files an older version left world-readable are found at open.
#[tokio::test]
async fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let files = ["state.db", "state.db-wal", "state.db-shm"];
    let modes = || {
        files.map(|f| {
            std::fs::metadata(dir.path().join(f))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or_else(|e| panic!("{f}: {e}"))
        })
    };
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    must_txn(&store, vec![], vec![put("/a", "1")]).await;
    assert_eq!(modes(), [0o600; 3]);

    let old = tempfile::tempdir().unwrap();
    for f in files {
        let p = old.path().join(f);
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    restrict_files(&old.path().join("state.db")).unwrap();
    for f in files {
        let m = std::fs::metadata(old.path().join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
    }
}

#[tokio::test]
async fn compacted_revision_survives_reopen() {
    let (dir, store) = open_tmp();
    for i in 1..=10 {
        must_txn(&*store, vec![], vec![put("/c/k", &i.to_string())]).await;
    }
    store.compact(6).await.unwrap();
    // Into the future is an error with the current revision.
    assert!(matches!(
        store.compact(11).await,
        Err(StoreError::FutureRevision { .. })
    ));
    drop(store);
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), 6);
    assert!(store.watch("/c/", 5).await.is_err());
}

#[tokio::test]
async fn noop_txn_gets_its_own_revision() {
    let (_dir, store) = open_tmp();
    let r = must_txn(&*store, vec![], vec![put("/a", "1")]).await;
    let r2 = must_txn(&*store, vec![], vec![del("/never-existed")]).await;
    assert_eq!(r2, r + 1);
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
    must_txn(&*store, vec![], vec![put("/z", "1")]).await;
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
        create(&*store, key, value.clone()).await;
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
                create(&*store, key, value.clone()).await;
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
    let all = range_all(&*store, "/registry/services/specs/default/", None).await;
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
