//! An in-memory watch cache over a [`Store`] (kube-apiserver's "cacher").
//!
//! Holds the current value of every key under a prefix and a bounded window of recent events,
//! fed by one store watch. Lists, gets and watches of the API server are served from here:
//! lists are consistent snapshots, watches replay the window and then follow live changes, and a
//! watch from a revision older than the window fails with [`CacheError::Expired`] (HTTP 410).
//!
//! Values are Kubernetes objects as JSON; the cache sets `metadata.resourceVersion` to the key's
//! `mod_revision` (the store keeps objects without it, as Kubernetes does on etcd). Values that are
//! not JSON objects with a `metadata` object are kept as they are.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::{Revision, Store, StoreError};

/// One object as cached.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    pub create_revision: Revision,
    /// The object's resourceVersion. For the object of a `Deleted` event: the deletion revision.
    pub mod_revision: Revision,
    /// The object, with `metadata.resourceVersion` set to `mod_revision`.
    pub value: serde_json::Value,
    /// `value` serialized (compact JSON), ready to be written to a response.
    pub json: Bytes,
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

#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// How many events the window keeps (older watches get `Expired`).
    pub capacity: usize,
    /// Buffer of each watcher; a watcher that falls this far behind is ended with `Lagged`.
    pub watcher_buffer: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 100_000,
            watcher_buffer: 100_000,
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
    /// The watcher fell too far behind and was dropped; the client should re-watch.
    #[error("watcher fell behind and was dropped")]
    Lagged,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// See the module docs.
pub struct WatchCache {
    _private: (),
}

/// A live watch on the cache: events under one prefix after a revision, in revision order.
pub struct CacheWatch {
    _private: (),
}

impl WatchCache {
    /// List `prefix` from the store, then follow it with one store watch (re-listing on
    /// compaction or watch failure). Returns once the initial list is loaded.
    pub async fn start(
        store: Arc<dyn Store>,
        prefix: &str,
        config: CacheConfig,
    ) -> Result<Arc<Self>, CacheError> {
        let _ = (store, prefix, config);
        unimplemented!()
    }

    /// The revision the cache has caught up to.
    pub fn revision(&self) -> Revision {
        unimplemented!()
    }

    /// Wait until the cache has seen `rev`; `TooLargeResourceVersion` after `timeout`.
    pub async fn wait_for_revision(
        &self,
        rev: Revision,
        timeout: Duration,
    ) -> Result<(), CacheError> {
        let _ = (rev, timeout);
        unimplemented!()
    }

    /// Ask the store for its current revision and wait until the cache has it: after this, a
    /// read from the cache sees every write acknowledged before the call (read-your-writes).
    pub async fn wait_consistent(&self, timeout: Duration) -> Result<Revision, CacheError> {
        let _ = timeout;
        unimplemented!()
    }

    /// One key at the cache's revision.
    pub fn get(&self, key: &str) -> (Option<Arc<CachedObject>>, Revision) {
        let _ = key;
        unimplemented!()
    }

    /// Every key under `prefix` (ascending key order), at the cache's revision.
    pub fn list(&self, prefix: &str) -> (Vec<Arc<CachedObject>>, Revision) {
        let _ = prefix;
        unimplemented!()
    }

    /// A consistent snapshot of `prefix` and a watch of everything after it, with no gap.
    pub fn list_and_watch(&self, prefix: &str) -> (Vec<Arc<CachedObject>>, Revision, CacheWatch) {
        let _ = prefix;
        unimplemented!()
    }

    /// Watch `prefix` for changes with revision > `from`. `Expired` when `from` is older than the
    /// window; when `from` is ahead of the cache, waits up to 3 s for it
    /// (`TooLargeResourceVersion` after).
    pub async fn watch(&self, prefix: &str, from: Revision) -> Result<CacheWatch, CacheError> {
        let _ = (prefix, from);
        unimplemented!()
    }

    /// The oldest revision a watch can start from.
    pub fn oldest_revision(&self) -> Revision {
        unimplemented!()
    }
}

impl CacheWatch {
    /// The next event under the prefix. `None` when the cache shuts down; `Err(Lagged)` when
    /// this watcher fell too far behind.
    pub async fn next(&mut self) -> Option<Result<Arc<CacheEvent>, CacheError>> {
        unimplemented!()
    }

    /// The highest revision this watch has fully consumed (including events outside its
    /// prefix): a BOOKMARK at this revision is truthful.
    pub fn progress_revision(&self) -> Revision {
        unimplemented!()
    }
}
