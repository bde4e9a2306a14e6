//! The embedded default backend: SQLite (bundled), in WAL mode with `synchronous=FULL`, so every
//! acknowledged write survives `kill -9` (and power loss).

use std::path::Path;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::{
    Compare, Op, RangeRequest, RangeResult, Result, Revision, Store, TxnResult, WatchResponse,
};

pub struct SqliteStore {
    _private: (),
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let _ = path;
        unimplemented!()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<(Option<crate::KeyValue>, Revision)> {
        let _ = key;
        unimplemented!()
    }
    async fn range(&self, req: RangeRequest) -> Result<RangeResult> {
        let _ = req;
        unimplemented!()
    }
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult> {
        let _ = (compares, ops);
        unimplemented!()
    }
    async fn current_revision(&self) -> Result<Revision> {
        unimplemented!()
    }
    async fn compacted_revision(&self) -> Result<Revision> {
        unimplemented!()
    }
    async fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> Result<BoxStream<'static, Result<WatchResponse>>> {
        let _ = (prefix, from);
        unimplemented!()
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        let _ = revision;
        unimplemented!()
    }
}
