//! The embedded default backend: SQLite (bundled), in WAL mode with `synchronous=FULL`, so every
//! acknowledged write survives `kill -9` (and power loss).
//!
//! Layout:
//! - `kv`: the current value of every live key (`create_rev`, `mod_rev`, `value`).
//! - `history`: one row per change (put or delete) with the new value and the previous state of
//!   the key, written in the same SQLite transaction as `kv`. It serves watch replay and reads at
//!   a past revision: a read at `R` is `kv` with every key touched after `R` replaced by the
//!   previous state recorded in its first history row after `R` (cheap, because continue pages
//!   of a list follow soon after the first one). [`Store::compact`] drops history rows.
//! - `meta`: the current and the compacted revision (both survive restarts).
//!
//! The database file and its `-wal` and `-shm` files are mode 0600.
//!
//! Writes go through one writer thread that owns the only writing connection. It drains every
//! queued transaction into one SQLite transaction (group commit: one fsync for many writes under
//! load), gives each successful store transaction its own revision, and acknowledges only after
//! the commit. Reads use a small pool of reader connections on the blocking thread pool, so no
//! SQLite call ever runs on a tokio worker thread.
//!
//! Watches subscribe to a live feed of commits *before* reading history, and skip what they have
//! already replayed, so there is no gap and no duplicate. A watcher that falls behind the live
//! feed does not slow writers down: it catches up from the history table and continues.
//! When a revision brings nothing under a watcher's prefix, the watcher gets a (coalesced)
//! [`WatchResponse::Progress`], so a consumer always knows how far it has seen.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{broadcast, oneshot};

use crate::{
    Compare, EventKind, KeyValue, Op, RangeRequest, RangeResult, Result, Revision, Store,
    StoreError, TxnResult, WatchEvent, WatchResponse,
};

/// How many commits the live feed buffers; a watcher further behind catches up from history.
const FEED_CAPACITY: usize = 4096;
/// At most this many queued commands are applied in one SQLite transaction.
const MAX_BATCH: usize = 512;
/// History rows read per page while a watch replays or catches up.
const HISTORY_PAGE_ROWS: usize = 1000;
/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// How long a connection waits for a lock held by another connection (e.g. a checkpoint).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const KIND_PUT: i64 = 0;
const KIND_DELETE: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    revision INTEGER NOT NULL,
    compacted INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (id, revision, compacted) VALUES (0, 0, 0);
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    revision INTEGER NOT NULL,
    key BLOB NOT NULL,
    kind INTEGER NOT NULL,
    value BLOB,
    create_rev INTEGER NOT NULL,
    prev_value BLOB,
    prev_create INTEGER,
    prev_mod INTEGER
);
CREATE INDEX IF NOT EXISTS history_revision ON history (revision);
";

/// One committed store transaction, as the live feed carries it (all events, unfiltered).
#[derive(Debug)]
struct Commit {
    revision: Revision,
    events: Vec<WatchEvent>,
}

enum WriteCmd {
    Txn {
        compares: Vec<Compare>,
        ops: Vec<Op>,
        reply: oneshot::Sender<Result<TxnResult>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// State shared by the store handle, its watch streams and the writer thread.
struct Shared {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    /// Latest committed revision (updated by the writer after each commit, before acking).
    current: AtomicI64,
    compacted: AtomicI64,
    closed: AtomicBool,
}

/// See the module docs.
pub struct SqliteStore {
    shared: Arc<Shared>,
    writer: Mutex<Option<mpsc::Sender<WriteCmd>>>,
    /// Kept only to subscribe new watchers; the writer thread holds the sending clone.
    feed: Mutex<Option<broadcast::Sender<Arc<Commit>>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The exclusive upper bound of keys under `prefix`. Keys are UTF-8, which never contains the
/// byte 0xff, so `[0xff]` bounds the whole keyspace.
fn range_end(prefix: &str) -> Vec<u8> {
    if prefix.is_empty() {
        vec![0xff]
    } else {
        crate::prefix_end(prefix)
    }
}

fn key_string(raw: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(raw).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// The database and its `-wal` and `-shm` files hold every object, Secrets included: mode
/// 0600 (as etcd keeps its data files). The database file is created so before SQLite opens it,
/// and SQLite creates the WAL and shared-memory files with the database file's mode; files an
/// older version left readable are tightened.
fn restrict_files(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => r?,
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let open_failed =
            |e: rusqlite::Error| StoreError::OpenFailed(format!("{}: {e}", path.display()));
        restrict_files(path)
            .map_err(|e| StoreError::OpenFailed(format!("{}: {e}", path.display())))?;
        let conn = open_connection(path).map_err(open_failed)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(open_failed)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::OpenFailed(format!(
                "{}: cannot switch to WAL mode (got {mode})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_failed)?;
        conn.execute_batch(SCHEMA).map_err(open_failed)?;
        let (current, compacted): (Revision, Revision) = conn
            .query_row(
                "SELECT revision, compacted FROM meta WHERE id = 0",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(open_failed)?;
        tracing::info!(path = %path.display(), current, compacted, "opened sqlite store");

        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
            current: AtomicI64::new(current),
            compacted: AtomicI64::new(compacted),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel();
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let writer = Writer {
            conn,
            feed: feed.clone(),
            shared: shared.clone(),
        };
        thread::Builder::new()
            .name("svcnet-sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::OpenFailed(format!("spawning the writer thread: {e}")))?;
        Ok(SqliteStore {
            shared,
            writer: Mutex::new(Some(tx)),
            feed: Mutex::new(Some(feed)),
        })
    }

    /// Stop accepting requests: writes already queued still commit, later calls get `Closed`,
    /// and watch streams end once they have delivered what was committed. Also done on drop.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        lock(&self.writer).take();
        lock(&self.feed).take();
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::SeqCst) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    fn send(&self, cmd: WriteCmd) -> Result<()> {
        let guard = lock(&self.writer);
        let tx = guard.as_ref().ok_or(StoreError::Closed)?;
        tx.send(cmd).map_err(|_| StoreError::Closed)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    /// Run `f` on a pooled reader connection, on the blocking thread pool.
    async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let shared = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&shared.readers).pop();
            let mut conn = match pooled {
                Some(c) => c,
                None => {
                    let c = open_connection(&shared.path).map_err(backend)?;
                    c.pragma_update(None, "query_only", true).map_err(backend)?;
                    c
                }
            };
            let out = f(&mut conn);
            let mut pool = lock(&shared.readers);
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| backend(format!("read task failed: {e}")))?
    }
}

fn read_meta(conn: &Connection) -> Result<(Revision, Revision)> {
    conn.prepare_cached("SELECT revision, compacted FROM meta WHERE id = 0")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(backend)
}

fn read_get(conn: &mut Connection, key: &str) -> Result<(Option<KeyValue>, Revision)> {
    let tx = conn.transaction().map_err(backend)?;
    let (current, _) = read_meta(&tx)?;
    let kv = tx
        .prepare_cached("SELECT create_rev, mod_rev, value FROM kv WHERE key = ?1")
        .and_then(|mut s| {
            s.query_row([key.as_bytes()], |r| {
                Ok(KeyValue {
                    key: key.to_string(),
                    create_revision: r.get(0)?,
                    mod_revision: r.get(1)?,
                    value: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                })
            })
            .optional()
        })
        .map_err(backend)?;
    tx.finish().map_err(backend)?;
    Ok((kv, current))
}

fn read_range(conn: &mut Connection, req: &RangeRequest) -> Result<RangeResult> {
    let tx = conn.transaction().map_err(backend)?;
    let (current, compacted) = read_meta(&tx)?;
    let at = match req.revision {
        Some(r) if r > 0 => r,
        _ => current,
    };
    if at > current {
        return Err(StoreError::FutureRevision {
            requested: at,
            current,
        });
    }
    if at < compacted {
        return Err(StoreError::Compacted {
            requested: at,
            compacted,
        });
    }
    let hi = range_end(&req.prefix);
    // Lower bound: the prefix (inclusive) or start_after (exclusive), whichever is higher.
    let (lo, lo_inclusive): (&[u8], bool) = match &req.start_after {
        Some(after) if after.as_str() >= req.prefix.as_str() => (after.as_bytes(), false),
        _ => (req.prefix.as_bytes(), true),
    };
    let after_lo = |key: &[u8]| if lo_inclusive { key >= lo } else { key > lo };

    // Keys changed after `at`: their state at `at` is the previous state of their first change.
    let mut overrides: BTreeMap<Vec<u8>, Option<KeyValue>> = BTreeMap::new();
    if at < current {
        let mut stmt = tx
            .prepare_cached(
                "SELECT key, prev_value, prev_create, prev_mod FROM history \
                 WHERE revision > ?1 AND key >= ?2 AND key < ?3 ORDER BY revision, id",
            )
            .map_err(backend)?;
        let mut rows = stmt
            .query(params![at, req.prefix.as_bytes(), hi])
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let key: Vec<u8> = row.get(0).map_err(backend)?;
            if !after_lo(&key) || overrides.contains_key(&key) {
                continue;
            }
            let prev_mod: Option<Revision> = row.get(3).map_err(backend)?;
            let prev = match prev_mod {
                None => None,
                Some(mod_revision) => Some(KeyValue {
                    key: key_string(key.clone()).map_err(backend)?,
                    value: Bytes::from(
                        row.get::<_, Option<Vec<u8>>>(1)
                            .map_err(backend)?
                            .unwrap_or_default(),
                    ),
                    create_revision: row
                        .get::<_, Option<Revision>>(2)
                        .map_err(backend)?
                        .unwrap_or(0),
                    mod_revision,
                }),
            };
            overrides.insert(key, prev);
        }
    }

    let want = if req.limit == 0 {
        usize::MAX
    } else {
        req.limit + 1
    };
    let sql_limit: i64 = if req.limit == 0 {
        -1
    } else {
        i64::try_from(req.limit + 1 + overrides.len()).unwrap_or(i64::MAX)
    };
    let sql = if lo_inclusive {
        "SELECT key, create_rev, mod_rev, value FROM kv \
         WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3"
    } else {
        "SELECT key, create_rev, mod_rev, value FROM kv \
         WHERE key > ?1 AND key < ?2 ORDER BY key LIMIT ?3"
    };
    let mut stmt = tx.prepare_cached(sql).map_err(backend)?;
    let mut rows = stmt.query(params![lo, hi, sql_limit]).map_err(backend)?;
    let mut kvs: Vec<KeyValue> = Vec::new();
    let mut extra = overrides.into_values().flatten().peekable();
    while kvs.len() < want {
        let row = rows.next().map_err(backend)?;
        let Some(row) = row else { break };
        let key: Vec<u8> = row.get(0).map_err(backend)?;
        // Emit the past-state keys that sort before this one.
        while kvs.len() < want {
            match extra.peek() {
                Some(kv) if kv.key.as_bytes() < key.as_slice() => {
                    kvs.extend(extra.next());
                }
                _ => break,
            }
        }
        if kvs.len() >= want {
            break;
        }
        match extra.peek() {
            Some(kv) if kv.key.as_bytes() == key.as_slice() => {
                kvs.extend(extra.next());
                continue;
            }
            _ => {}
        }
        if at < current {
            // A key changed after `at` but absent from `extra` did not exist at `at`; a key in
            // `extra` was handled above. Any other current key is unchanged since `at`.
            let mod_rev: Revision = row.get(2).map_err(backend)?;
            if mod_rev > at {
                continue;
            }
        }
        kvs.push(KeyValue {
            key: key_string(key).map_err(backend)?,
            create_revision: row.get(1).map_err(backend)?,
            mod_revision: row.get(2).map_err(backend)?,
            value: Bytes::from(row.get::<_, Vec<u8>>(3).map_err(backend)?),
        });
    }
    while kvs.len() < want {
        match extra.next() {
            Some(kv) => kvs.push(kv),
            None => break,
        }
    }
    drop(rows);
    drop(stmt);
    tx.finish().map_err(backend)?;
    let more = req.limit != 0 && kvs.len() > req.limit;
    if more {
        kvs.truncate(req.limit);
    }
    Ok(RangeResult {
        kvs,
        revision: at,
        more,
    })
}

/// A page of history for a watch.
struct HistoryPage {
    /// Complete revisions (all their events under the prefix), ascending.
    revisions: Vec<(Revision, Vec<WatchEvent>)>,
    /// Where the next page starts; when `complete`, one past the snapshot's current revision.
    next: Revision,
    /// Whether the page reaches the current revision of its snapshot.
    complete: bool,
}

fn history_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Revision, WatchEvent)> {
    let revision: Revision = row.get(0)?;
    let key = key_string(row.get(1)?)?;
    let kind: i64 = row.get(2)?;
    let value: Option<Vec<u8>> = row.get(3)?;
    let create_revision: Revision = row.get(4)?;
    let prev_value: Option<Vec<u8>> = row.get(5)?;
    let kind = if kind == KIND_DELETE {
        EventKind::Delete
    } else {
        EventKind::Put
    };
    Ok((
        revision,
        WatchEvent {
            kind,
            kv: KeyValue {
                key,
                value: value.map(Bytes::from).unwrap_or_default(),
                create_revision,
                mod_revision: revision,
            },
            prev_value: prev_value.map(Bytes::from),
        },
    ))
}

fn read_history(
    conn: &mut Connection,
    prefix: &str,
    from: Revision,
    max_rows: usize,
) -> Result<HistoryPage> {
    let tx = conn.transaction().map_err(backend)?;
    let (current, compacted) = read_meta(&tx)?;
    if from < compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compacted,
        });
    }
    let hi = range_end(prefix);
    let mut rows: Vec<(Revision, WatchEvent)> = Vec::new();
    if from <= current {
        let mut stmt = tx
            .prepare_cached(
                "SELECT revision, key, kind, value, create_rev, prev_value FROM history \
                 WHERE revision >= ?1 AND key >= ?2 AND key < ?3 ORDER BY revision, id LIMIT ?4",
            )
            .map_err(backend)?;
        let limit = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let it = stmt
            .query_map(params![from, prefix.as_bytes(), hi, limit], history_event)
            .map_err(backend)?;
        for r in it {
            rows.push(r.map_err(backend)?);
        }
    }
    let mut complete = rows.len() < max_rows;
    if !complete {
        // The last revision may be cut short: drop it, or read it whole if it is the only one.
        let last = rows.last().map(|(r, _)| *r).unwrap_or(from);
        let first = rows.first().map(|(r, _)| *r).unwrap_or(from);
        if first == last {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT revision, key, kind, value, create_rev, prev_value FROM history \
                     WHERE revision = ?1 AND key >= ?2 AND key < ?3 ORDER BY id",
                )
                .map_err(backend)?;
            let it = stmt
                .query_map(params![last, prefix.as_bytes(), hi], history_event)
                .map_err(backend)?;
            rows.clear();
            for r in it {
                rows.push(r.map_err(backend)?);
            }
            complete = last == current;
        } else {
            rows.retain(|(r, _)| *r != last);
        }
    }
    tx.finish().map_err(backend)?;
    let mut revisions: Vec<(Revision, Vec<WatchEvent>)> = Vec::new();
    for (rev, ev) in rows {
        match revisions.last_mut() {
            Some((r, evs)) if *r == rev => evs.push(ev),
            _ => revisions.push((rev, vec![ev])),
        }
    }
    let next = if complete {
        from.max(current + 1)
    } else {
        revisions.last().map(|(r, _)| r + 1).unwrap_or(from)
    };
    Ok(HistoryPage {
        revisions,
        next,
        complete,
    })
}

/// The single writer: owns the writing connection and publishes commits to the live feed.
struct Writer {
    conn: Connection,
    feed: broadcast::Sender<Arc<Commit>>,
    shared: Arc<Shared>,
}

struct PendingTxn {
    compares: Vec<Compare>,
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<TxnResult>>,
}

struct Applied {
    results: Vec<TxnResult>,
    commits: Vec<Arc<Commit>>,
    revision: Revision,
}

/// The state of a key as the writer reads it.
struct Prev {
    create_rev: Revision,
    mod_rev: Revision,
    value: Vec<u8>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<WriteCmd>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            let mut txns: Vec<PendingTxn> = Vec::new();
            for cmd in batch {
                match cmd {
                    WriteCmd::Txn {
                        compares,
                        ops,
                        reply,
                    } => txns.push(PendingTxn {
                        compares,
                        ops,
                        reply,
                    }),
                    WriteCmd::Compact { revision, reply } => {
                        // Keep the order of commands: flush the txns queued before it first.
                        self.commit_txns(std::mem::take(&mut txns));
                        let _ = reply.send(self.compact(revision));
                    }
                }
            }
            self.commit_txns(txns);
        }
        tracing::debug!("sqlite writer stopped");
    }

    /// Apply `txns` in one SQLite transaction; on a backend error, retry them one by one so one
    /// bad transaction cannot fail the others.
    fn commit_txns(&mut self, txns: Vec<PendingTxn>) {
        if txns.is_empty() {
            return;
        }
        match self.apply(&txns) {
            Ok(applied) => self.finish(txns, applied),
            Err(e) if txns.len() == 1 => {
                tracing::warn!(error = %e, "store transaction failed");
                for t in txns {
                    let _ = t.reply.send(Err(backend(&e)));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, n = txns.len(), "batched commit failed; retrying one by one");
                for t in txns {
                    self.commit_txns(vec![t]);
                }
            }
        }
    }

    fn finish(&mut self, txns: Vec<PendingTxn>, applied: Applied) {
        self.shared
            .current
            .store(applied.revision, Ordering::SeqCst);
        for commit in applied.commits {
            // No receivers is fine: nobody is watching.
            let _ = self.feed.send(commit);
        }
        for (t, r) in txns.into_iter().zip(applied.results) {
            let _ = t.reply.send(Ok(r));
        }
    }

    fn apply(&mut self, txns: &[PendingTxn]) -> rusqlite::Result<Applied> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut rev: Revision = tx
            .prepare_cached("SELECT revision FROM meta WHERE id = 0")?
            .query_row([], |r| r.get(0))?;
        let start = rev;
        let mut results = Vec::with_capacity(txns.len());
        let mut commits = Vec::new();
        for t in txns {
            let mut failed = None;
            for (i, c) in t.compares.iter().enumerate() {
                let holds = match c {
                    Compare::Absent(k) => lookup_mod(&tx, k)?.is_none(),
                    Compare::Exists(k) => lookup_mod(&tx, k)?.is_some(),
                    Compare::ModRevision(k, r) => lookup_mod(&tx, k)? == Some(*r),
                };
                if !holds {
                    failed = Some(i);
                    break;
                }
            }
            if failed.is_some() {
                results.push(TxnResult {
                    succeeded: false,
                    revision: rev,
                    failed_compare: failed,
                });
                continue;
            }
            rev += 1;
            let mut events = Vec::with_capacity(t.ops.len());
            for op in &t.ops {
                match op {
                    Op::Put { key, value } => {
                        let prev = lookup(&tx, key)?;
                        let create_rev = prev.as_ref().map(|p| p.create_rev).unwrap_or(rev);
                        tx.prepare_cached(
                            "INSERT INTO kv (key, create_rev, mod_rev, value) VALUES (?1, ?2, ?3, ?4) \
                             ON CONFLICT (key) DO UPDATE SET mod_rev = excluded.mod_rev, value = excluded.value",
                        )?
                        .execute(params![key.as_bytes(), create_rev, rev, &value[..]])?;
                        tx.prepare_cached(
                            "INSERT INTO history (revision, key, kind, value, create_rev, prev_value, prev_create, prev_mod) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        )?
                        .execute(params![
                            rev,
                            key.as_bytes(),
                            KIND_PUT,
                            &value[..],
                            create_rev,
                            prev.as_ref().map(|p| p.value.as_slice()),
                            prev.as_ref().map(|p| p.create_rev),
                            prev.as_ref().map(|p| p.mod_rev),
                        ])?;
                        events.push(WatchEvent {
                            kind: EventKind::Put,
                            kv: KeyValue {
                                key: key.clone(),
                                value: value.clone(),
                                create_revision: create_rev,
                                mod_revision: rev,
                            },
                            prev_value: prev.map(|p| Bytes::from(p.value)),
                        });
                    }
                    Op::Delete { key } => {
                        let Some(prev) = lookup(&tx, key)? else {
                            continue;
                        };
                        tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                            .execute([key.as_bytes()])?;
                        tx.prepare_cached(
                            "INSERT INTO history (revision, key, kind, value, create_rev, prev_value, prev_create, prev_mod) \
                             VALUES (?1, ?2, ?3, NULL, 0, ?4, ?5, ?6)",
                        )?
                        .execute(params![
                            rev,
                            key.as_bytes(),
                            KIND_DELETE,
                            prev.value.as_slice(),
                            prev.create_rev,
                            prev.mod_rev,
                        ])?;
                        events.push(WatchEvent {
                            kind: EventKind::Delete,
                            kv: KeyValue {
                                key: key.clone(),
                                value: Bytes::new(),
                                create_revision: 0,
                                mod_revision: rev,
                            },
                            prev_value: Some(Bytes::from(prev.value)),
                        });
                    }
                }
            }
            results.push(TxnResult {
                succeeded: true,
                revision: rev,
                failed_compare: None,
            });
            commits.push(Arc::new(Commit {
                revision: rev,
                events,
            }));
        }
        if rev != start {
            tx.prepare_cached("UPDATE meta SET revision = ?1 WHERE id = 0")?
                .execute([rev])?;
        }
        tx.commit()?;
        Ok(Applied {
            results,
            commits,
            revision: rev,
        })
    }

    fn compact(&mut self, revision: Revision) -> Result<()> {
        let run = |conn: &mut Connection| -> Result<Option<Revision>> {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let (current, compacted) = read_meta(&tx)?;
            if revision > current {
                return Err(StoreError::FutureRevision {
                    requested: revision,
                    current,
                });
            }
            if revision <= compacted {
                return Ok(None);
            }
            let dropped = tx
                .prepare_cached("DELETE FROM history WHERE revision < ?1")
                .and_then(|mut s| s.execute([revision]))
                .map_err(backend)?;
            tx.prepare_cached("UPDATE meta SET compacted = ?1 WHERE id = 0")
                .and_then(|mut s| s.execute([revision]))
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            tracing::info!(revision, dropped, "compacted store history");
            Ok(Some(revision))
        };
        if let Some(rev) = run(&mut self.conn)? {
            self.shared.compacted.store(rev, Ordering::SeqCst);
        }
        Ok(())
    }
}

fn lookup_mod(conn: &Connection, key: &str) -> rusqlite::Result<Option<Revision>> {
    conn.prepare_cached("SELECT mod_rev FROM kv WHERE key = ?1")?
        .query_row([key.as_bytes()], |r| r.get(0))
        .optional()
}

fn lookup(conn: &Connection, key: &str) -> rusqlite::Result<Option<Prev>> {
    conn.prepare_cached("SELECT create_rev, mod_rev, value FROM kv WHERE key = ?1")?
        .query_row([key.as_bytes()], |r| {
            Ok(Prev {
                create_rev: r.get(0)?,
                mod_rev: r.get(1)?,
                value: r.get(2)?,
            })
        })
        .optional()
}

/// The state of one watch stream: replaying/catching up from history, or following the feed.
struct WatchState {
    shared: Arc<Shared>,
    prefix: String,
    /// Every revision below this has been delivered (or had nothing under the prefix).
    next: Revision,
    /// The highest revision reported to the consumer (by events or progress).
    reported: Revision,
    rx: broadcast::Receiver<Arc<Commit>>,
    pending: VecDeque<WatchResponse>,
    catching_up: bool,
    done: bool,
}

impl WatchState {
    /// Read one page of history from `next` into `pending`.
    async fn read_page(&mut self) -> Result<()> {
        let (prefix, from) = (self.prefix.clone(), self.next);
        let page = self
            .shared
            .read(move |c| read_history(c, &prefix, from, HISTORY_PAGE_ROWS))
            .await?;
        for (revision, events) in page.revisions {
            self.reported = revision;
            self.pending
                .push_back(WatchResponse::Events { revision, events });
        }
        self.next = self.next.max(page.next);
        if page.complete {
            self.catching_up = false;
            if self.next - 1 > self.reported {
                self.reported = self.next - 1;
                self.pending.push_back(WatchResponse::Progress {
                    revision: self.reported,
                });
            }
        }
        Ok(())
    }

    /// Account for a live commit; the events under the prefix, if any.
    fn take(&mut self, commit: &Commit) -> Option<WatchResponse> {
        if commit.revision < self.next {
            return None; // already replayed from history
        }
        self.next = commit.revision + 1;
        let events: Vec<WatchEvent> = commit
            .events
            .iter()
            .filter(|e| e.kv.key.starts_with(&self.prefix))
            .cloned()
            .collect();
        if events.is_empty() {
            return None;
        }
        self.reported = commit.revision;
        Some(WatchResponse::Events {
            revision: commit.revision,
            events,
        })
    }

    fn progress(&mut self) -> Option<WatchResponse> {
        if self.next - 1 > self.reported {
            self.reported = self.next - 1;
            Some(WatchResponse::Progress {
                revision: self.reported,
            })
        } else {
            None
        }
    }

    async fn next_item(&mut self) -> Option<Result<WatchResponse>> {
        use broadcast::error::{RecvError, TryRecvError};
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            if self.catching_up {
                if let Err(e) = self.read_page().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(commit) => {
                    if let Some(r) = self.take(&commit) {
                        return Some(Ok(r));
                    }
                    // Coalesce a run of commits with nothing for us into one progress report.
                    loop {
                        match self.rx.try_recv() {
                            Ok(c) => {
                                if let Some(r) = self.take(&c) {
                                    return Some(Ok(r));
                                }
                            }
                            Err(TryRecvError::Lagged(_)) => {
                                self.catching_up = true;
                                break;
                            }
                            Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
                        }
                    }
                    if let Some(p) = self.progress() {
                        return Some(Ok(p));
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(prefix = %self.prefix, skipped = n, "watch behind the live feed; catching up from history");
                    self.catching_up = true;
                }
                Err(RecvError::Closed) => {
                    self.done = true;
                }
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<(Option<crate::KeyValue>, Revision)> {
        self.check_open()?;
        let key = key.to_string();
        self.shared.read(move |c| read_get(c, &key)).await
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResult> {
        self.check_open()?;
        self.shared.read(move |c| read_range(c, &req)).await
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult> {
        self.check_open()?;
        let (reply, rx) = oneshot::channel();
        self.send(WriteCmd::Txn {
            compares,
            ops,
            reply,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.check_open()?;
        Ok(self.shared.current.load(Ordering::SeqCst))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.check_open()?;
        Ok(self.shared.compacted.load(Ordering::SeqCst))
    }

    async fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> Result<BoxStream<'static, Result<WatchResponse>>> {
        self.check_open()?;
        // Subscribe before reading history: whatever commits after the history snapshot is in
        // the feed, and what is in both is skipped by revision.
        let rx = lock(&self.feed)
            .as_ref()
            .ok_or(StoreError::Closed)?
            .subscribe();
        let mut state = WatchState {
            shared: self.shared.clone(),
            prefix: prefix.to_string(),
            next: from,
            reported: from - 1,
            rx,
            pending: VecDeque::new(),
            catching_up: true,
            done: false,
        };
        // Read the first page now, so a compacted `from` fails the call itself.
        state.read_page().await?;
        let stream = futures::stream::unfold(state, |mut st| async move {
            let item = st.next_item().await?;
            Some((item, st))
        });
        Ok(stream.boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.check_open()?;
        let (reply, rx) = oneshot::channel();
        self.send(WriteCmd::Compact { revision, reply })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

#[cfg(test)]
mod tests;
