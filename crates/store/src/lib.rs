//! The storage layer of the API server.
//!
//! [`Store`] is an etcd v3-shaped key-value interface: every write gets a strictly increasing
//! global *revision*, every key remembers its `create_revision` and `mod_revision`, writes are
//! multi-key transactions guarded by revision compares, reads can be served at a past revision
//! until it is compacted, and watches replay history from a revision. The Kubernetes
//! `resourceVersion` of an object is the `mod_revision` of its key, exactly as in Kubernetes on
//! etcd, so an etcd backend (issue 7) is a thin layer over the same trait.
//!
//! Backends:
//! - [`sqlite::SqliteStore`]: the embedded default; every acknowledged write is durable.
//! - [`etcd::EtcdStore`]: etcd v3 (several API servers on one etcd cluster);
//!   [`etcd::local::LocalEtcd`] starts etcd on loopback for `svcnet up --store etcd` and tests.
//!
//! On top of a backend, [`cache::WatchCache`] keeps the current objects and a window of recent
//! events in memory (as kube-apiserver's cacher does): lists and watches are served from it.
//! [`encode`] writes objects as kube-apiserver does (its key order).
//!
//! Start at [`Store`].

pub mod cache;
#[cfg(test)]
mod conformance;
pub mod encode;
pub mod etcd;
pub mod sqlite;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// A store revision. Strictly increasing across all keys; the first write gets 1 (0 = empty store).
pub type Revision = i64;

/// One key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to this key: the object's resourceVersion.
    pub mod_revision: Revision,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value", &String::from_utf8_lossy(&self.value))
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// A guard of a transaction. All compares of a transaction must hold for its ops to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Absent(String),
    /// The key exists and was last written at exactly this revision.
    ModRevision(String, Revision),
    /// The key exists (any revision).
    Exists(String),
}

/// A write in a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create or replace the key's value.
    Put { key: String, value: Bytes },
    /// Remove the key (no-op when absent).
    Delete { key: String },
}

/// Outcome of [`Store::txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether every compare held and the ops were applied.
    pub succeeded: bool,
    /// The revision of the write when `succeeded` (all ops of one transaction share it);
    /// otherwise the store's current revision.
    pub revision: Revision,
    /// For a failed transaction: the index of the first compare that did not hold.
    pub failed_compare: Option<usize>,
}

/// Outcome of [`Store::range`].
#[derive(Clone, Debug)]
pub struct RangeResult {
    /// Keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
    /// True when more keys match beyond `limit`.
    pub more: bool,
}

/// A range read: keys starting with `prefix`, strictly after `start_after`, at `revision`.
#[derive(Clone, Debug, Default)]
pub struct RangeRequest {
    pub prefix: String,
    /// Continue after this key (exclusive), for paging.
    pub start_after: Option<String>,
    /// At most this many keys; 0 = no limit.
    pub limit: usize,
    /// Read as of this revision; `None` = current. Older than the compacted revision → `Compacted`.
    pub revision: Option<Revision>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch. For `Delete`, `kv.value` is empty and `kv.mod_revision` is the
/// revision of the deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The value before this change (present for updates and deletes).
    pub prev_value: Option<Bytes>,
}

/// What a watch stream yields: a batch of events of one revision, or a progress notification
/// that the watch has seen everything up to `revision` (etcd's progress notify).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchResponse {
    Events {
        revision: Revision,
        events: Vec<WatchEvent>,
    },
    Progress {
        revision: Revision,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested revision is older than the oldest one kept.
    #[error("required revision {requested} has been compacted (oldest kept: {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is newer than the store's current one.
    #[error("required revision {requested} is a future revision (current: {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("opening the store failed: {0}")]
    OpenFailed(String),
    #[error("store backend error: {0}")]
    Backend(String),
    #[error("the store is closed")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An etcd v3-shaped versioned key-value store. See the crate docs.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Read one key at the current revision. Returns the current revision too.
    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision)>;

    /// Read a consistent snapshot of a key range.
    async fn range(&self, req: RangeRequest) -> Result<RangeResult>;

    /// Apply `ops` atomically, at one new revision, iff every compare holds.
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult>;

    /// The current (latest committed) revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// The oldest revision that can still be read or watched from.
    async fn compacted_revision(&self) -> Result<Revision>;

    /// Watch every key under `prefix`, starting with the changes made *at* `from` (so pass
    /// `rev + 1` to see what happened after a read at `rev`). `from` older than the compacted
    /// revision yields `Compacted`. The stream ends only when the store closes or on error.
    async fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> Result<BoxStream<'static, Result<WatchResponse>>>;

    /// Forget history older than `revision` (keys' latest values are always kept).
    async fn compact(&self, revision: Revision) -> Result<()>;
}

/// The exclusive upper bound of the keys starting with `prefix` (etcd's "range end").
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // whole keyspace
}
