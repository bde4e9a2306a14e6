//! The etcd v3 backend: [`Store`] over the `etcd-client` crate.
//!
//! The trait is etcd's own model, so this is a thin mapping:
//! - revisions are etcd's revisions (an object's resourceVersion is its key's `mod_revision`);
//! - [`Compare::Absent`] / [`Compare::Exists`] are `version == 0` / `version > 0`,
//!   [`Compare::ModRevision`] is `mod_revision == r`; a failed transaction reads the compared
//!   keys in its `else` branch (atomically with the compare) to report which compare failed;
//! - a range is one etcd range (one revision, so a consistent snapshot), paged with `limit`;
//! - a watch is an etcd watch with `prev_kv`; etcd's "compacted" cancel becomes
//!   [`StoreError::Compacted`]; an idle watch asks etcd for a progress notification, so a
//!   reader waiting for a revision written outside its prefix is not left waiting;
//! - [`Store::compact`] is etcd's compaction; [`Store::compacted_revision`] is found by probing
//!   reads (etcd does not report it otherwise), remembered, and learned from watch cancels.
//!
//! Differences from [`crate::sqlite::SqliteStore`], both etcd's own behaviour: a fresh etcd is at
//! revision 1 (not 0), and a transaction whose ops change nothing (deleting an absent key)
//! does not create a revision. A transaction may touch each key once (etcd rejects duplicates).

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Certificate, Client, CompareOp, ConnectOptions, EventType, GetOptions, Identity, TlsOptions,
    Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::{
    prefix_end, Compare, EventKind, KeyValue, Op, RangeRequest, RangeResult, Result, Revision,
    Store, StoreError, TxnResult, WatchEvent, WatchResponse,
};

pub mod local;

/// How long a watch may be quiet before it asks etcd for a progress notification.
const PROGRESS_AFTER_IDLE: Duration = Duration::from_millis(500);
/// Watch responses buffered per watch before the reader must catch up.
const WATCH_BUFFER: usize = 64;
/// How long a call is retried while etcd (or the member the client picked) is unreachable.
const RETRY_FOR: Duration = Duration::from_secs(10);

/// TLS client material for etcd (kube-apiserver's `--etcd-cafile`, `--etcd-certfile`,
/// `--etcd-keyfile`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdTls {
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }
}

/// Where etcd is and how to reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `host:port` (or `http(s)://host:port`) of each member.
    pub endpoints: Vec<String>,
    pub tls: EtcdTls,
    /// How long [`EtcdStore::connect`] waits for etcd to answer.
    pub connect_timeout: Option<Duration>,
}

impl EtcdConfig {
    /// Parse `etcd://host:port[,host:port...]` (also `etcds://` for TLS, as a hint only: TLS is
    /// on when any TLS file is given).
    pub fn parse_url(url: &str) -> std::result::Result<Self, String> {
        let rest = url
            .strip_prefix("etcd://")
            .or_else(|| url.strip_prefix("etcds://"))
            .ok_or_else(|| {
                format!("not an etcd URL: {url:?} (expected etcd://host:port[,host:port])")
            })?;
        let endpoints: Vec<String> = rest
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(format!("no etcd endpoints in {url:?}"));
        }
        for e in &endpoints {
            let hostport = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"))
                .unwrap_or(e);
            let ok = hostport
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(format!(
                    "bad etcd endpoint {e:?} in {url:?}: expected host:port"
                ));
            }
        }
        Ok(EtcdConfig {
            endpoints,
            ..Default::default()
        })
    }
}

/// [`Store`] on an etcd v3 cluster. See the module docs.
pub struct EtcdStore {
    client: Client,
    /// The highest compacted revision seen (0 = none seen yet).
    compacted: AtomicI64,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("required revision has been compacted"))
}

/// Whether a failed call can be sent again: reads always when etcd was unreachable; writes only
/// when the request certainly did not reach etcd (connection refused: a member is down and the
/// client's balancer picked it) or etcd refused it before proposing (no leader).
fn retryable(e: &etcd_client::Error, idempotent: bool) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::Unavailable => {
            let m = s.message();
            idempotent
                || m.contains("tcp connect error")
                || m.contains("error trying to connect")
                || m.contains("etcdserver: no leader")
        }
        etcd_client::Error::TransportError(_) => idempotent,
        _ => false,
    }
}

fn is_future(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("required revision is a future revision"))
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    h.map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd response without a header".into()))
}

fn to_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: kv.key_str().map_err(backend)?.to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| StoreError::OpenFailed(format!("reading {}: {e}", path.display())))
}

fn tls_options(tls: &EtcdTls) -> Result<TlsOptions> {
    let mut opts = TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        opts = opts.ca_certificate(Certificate::from_pem(read_file(ca)?));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            opts = opts.identity(Identity::from_pem(read_file(cert)?, read_file(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::OpenFailed(
                "--etcd-certfile and --etcd-keyfile go together".into(),
            ))
        }
    }
    Ok(opts)
}

/// The etcd key range of a [`RangeRequest`]: `[key, range_end)`.
fn range_bounds(prefix: &str, start_after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let end = prefix_end(prefix);
    let mut key = if prefix.is_empty() {
        vec![0]
    } else {
        prefix.as_bytes().to_vec()
    };
    if let Some(after) = start_after {
        let mut next = after.as_bytes().to_vec();
        next.push(0); // the smallest key after `after`
        if next > key {
            key = next;
        }
    }
    (key, end)
}

/// Whether a compare holds for `kv` (the key's current state; `None` = absent).
fn holds(c: &Compare, kv: Option<&etcd_client::KeyValue>) -> bool {
    match c {
        Compare::Absent(_) => kv.is_none(),
        Compare::Exists(_) => kv.is_some(),
        Compare::ModRevision(_, r) => kv.is_some_and(|kv| kv.mod_revision() == *r),
    }
}

fn compare_key(c: &Compare) -> &str {
    match c {
        Compare::Absent(k) | Compare::Exists(k) | Compare::ModRevision(k, _) => k,
    }
}

fn to_etcd_compare(c: &Compare) -> etcd_client::Compare {
    match c {
        Compare::Absent(k) => etcd_client::Compare::version(k.as_str(), CompareOp::Equal, 0),
        Compare::Exists(k) => etcd_client::Compare::version(k.as_str(), CompareOp::Greater, 0),
        // An existing key is never at revision <= 0, but etcd reports 0 for an absent key:
        // make "ModRevision(k, 0)" fail as the trait says.
        Compare::ModRevision(k, r) if *r <= 0 => {
            etcd_client::Compare::version(k.as_str(), CompareOp::Less, 0)
        }
        Compare::ModRevision(k, r) => {
            etcd_client::Compare::mod_revision(k.as_str(), CompareOp::Equal, *r)
        }
    }
}

impl EtcdStore {
    /// Connect to etcd and check that it answers (within `connect_timeout`, default 10 s).
    pub async fn connect(config: &EtcdConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(StoreError::OpenFailed("no etcd endpoints".into()));
        }
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let endpoints: Vec<String> = if config.tls.is_empty() {
            config.endpoints.clone()
        } else {
            opts = opts.with_tls(tls_options(&config.tls)?);
            // etcd-client needs https:// (or no scheme) for TLS.
            config
                .endpoints
                .iter()
                .map(|e| e.strip_prefix("http://").unwrap_or(e).to_string())
                .collect()
        };
        let wait = config.connect_timeout.unwrap_or(Duration::from_secs(10));
        let connect = async {
            let client = Client::connect(&endpoints, Some(opts)).await.map_err(|e| {
                StoreError::OpenFailed(format!("connecting to etcd {endpoints:?}: {e}"))
            })?;
            let store = EtcdStore {
                client,
                compacted: AtomicI64::new(0),
            };
            // etcd-client connects lazily: make one read so a wrong address fails here.
            loop {
                match store.current_revision().await {
                    Ok(_) => return Ok(store),
                    Err(e) => tracing::debug!(error = %e, "etcd not answering yet"),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        match tokio::time::timeout(wait, connect).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::OpenFailed(format!(
                "etcd at {endpoints:?} did not answer within {wait:?}"
            ))),
        }
    }

    /// Run `f`, again (with back-off, for up to [`RETRY_FOR`]) while it fails in a way
    /// [`retryable`] allows: with one etcd member down, calls that reach it fail fast.
    async fn call<T, F, Fut>(
        &self,
        idempotent: bool,
        mut f: F,
    ) -> std::result::Result<T, etcd_client::Error>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut delay = Duration::from_millis(10);
        loop {
            match f(self.client.clone()).await {
                Err(e) if retryable(&e, idempotent) && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "etcd call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                r => return r,
            }
        }
    }

    /// Whether a read at `rev` is still possible (false = compacted away).
    async fn readable_at(&self, rev: Revision) -> Result<bool> {
        let opts = GetOptions::new()
            .with_revision(rev)
            .with_count_only()
            .with_limit(1);
        match self
            .call(true, |c| {
                let opts = opts.clone();
                async move { c.kv_client().get("\0", Some(opts)).await }
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_compacted(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    fn note_compacted(&self, rev: Revision) {
        self.compacted.fetch_max(rev, Ordering::Relaxed);
    }

    fn compacted_error(&self, requested: Revision, compacted: Revision) -> StoreError {
        self.note_compacted(compacted);
        StoreError::Compacted {
            requested,
            compacted,
        }
    }

    /// Map an etcd error of a read/compaction at `requested`.
    async fn revision_error(&self, e: etcd_client::Error, requested: Revision) -> StoreError {
        if is_compacted(&e) {
            match self.compacted_revision().await {
                Ok(c) => self.compacted_error(requested, c.max(requested + 1)),
                Err(e) => e,
            }
        } else if is_future(&e) {
            match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { requested, current },
                Err(e) => e,
            }
        } else {
            backend(e)
        }
    }
}

/// Convert one etcd watch response into the trait's responses (one per revision).
fn convert_events(resp: &etcd_client::WatchResponse) -> Result<Vec<WatchResponse>> {
    let mut out: Vec<WatchResponse> = Vec::new();
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        let rev = kv.mod_revision();
        let prev = ev.prev_kv();
        let event = match ev.event_type() {
            EventType::Put => WatchEvent {
                kind: EventKind::Put,
                kv: to_kv(kv)?,
                prev_value: prev.map(|p| Bytes::copy_from_slice(p.value())),
            },
            EventType::Delete => WatchEvent {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: kv.key_str().map_err(backend)?.to_string(),
                    value: Bytes::new(),
                    create_revision: 0,
                    mod_revision: rev,
                },
                prev_value: prev.map(|p| Bytes::copy_from_slice(p.value())),
            },
        };
        match out.last_mut() {
            Some(WatchResponse::Events { revision, events }) if *revision == rev => {
                events.push(event)
            }
            _ => out.push(WatchResponse::Events {
                revision: rev,
                events: vec![event],
            }),
        }
    }
    Ok(out)
}

/// Follow one etcd watch until the reader goes away or the watch ends.
async fn pump_watch(
    mut stream: etcd_client::WatchStream,
    tx: mpsc::Sender<Result<WatchResponse>>,
    mut next_rev: Revision,
    first_items: Vec<WatchResponse>,
) {
    let mut last_sent = next_rev - 1;
    for item in first_items {
        if let WatchResponse::Events { revision, .. } = &item {
            last_sent = *revision;
            next_rev = revision + 1;
        }
        if tx.send(Ok(item)).await.is_err() {
            return;
        }
    }
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = tokio::time::sleep(PROGRESS_AFTER_IDLE) => {
                if stream.request_progress().await.is_err() {
                    let _ = tx.send(Err(StoreError::Backend("etcd watch request stream closed".into()))).await;
                    return;
                }
                continue;
            }
            _ = tx.closed() => return,
        };
        let resp = match msg {
            Ok(Some(r)) => r,
            Ok(None) => {
                let _ = tx
                    .send(Err(StoreError::Backend("etcd watch stream ended".into())))
                    .await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(backend(format!("etcd watch: {e}")))).await;
                return;
            }
        };
        if resp.compact_revision() != 0 {
            let _ = tx
                .send(Err(StoreError::Compacted {
                    requested: next_rev,
                    compacted: resp.compact_revision(),
                }))
                .await;
            return;
        }
        if resp.canceled() {
            let reason = resp.cancel_reason().to_string();
            let _ = tx
                .send(Err(StoreError::Backend(format!(
                    "etcd canceled the watch: {reason}"
                ))))
                .await;
            return;
        }
        if resp.created() && resp.events().is_empty() {
            continue;
        }
        let items = match convert_events(&resp) {
            Ok(items) => items,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if items.is_empty() {
            // A progress notification: everything up to the header revision has been sent.
            let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            if rev > last_sent {
                last_sent = rev;
                next_rev = rev + 1;
                if tx
                    .send(Ok(WatchResponse::Progress { revision: rev }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            continue;
        }
        for item in items {
            if let WatchResponse::Events { revision, .. } = &item {
                last_sent = *revision;
                next_rev = revision + 1;
            }
            if tx.send(Ok(item)).await.is_err() {
                return;
            }
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision)> {
        let resp = self
            .call(true, |c| async move { c.kv_client().get(key, None).await })
            .await
            .map_err(backend)?;
        let rev = header_revision(resp.header())?;
        let kv = resp.kvs().first().map(to_kv).transpose()?;
        Ok((kv, rev))
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResult> {
        let (key, end) = range_bounds(&req.prefix, req.start_after.as_deref());
        let mut opts = GetOptions::new().with_range(end);
        if req.limit > 0 {
            opts = opts.with_limit(req.limit as i64);
        }
        if let Some(rev) = req.revision {
            opts = opts.with_revision(rev);
        }
        let resp = match self
            .call(true, |c| {
                let (key, opts) = (key.clone(), opts.clone());
                async move { c.kv_client().get(key, Some(opts)).await }
            })
            .await
        {
            Ok(r) => r,
            Err(e) => return Err(self.revision_error(e, req.revision.unwrap_or(0)).await),
        };
        let kvs = resp.kvs().iter().map(to_kv).collect::<Result<Vec<_>>>()?;
        let revision = match req.revision {
            Some(r) if r > 0 => r,
            _ => header_revision(resp.header())?,
        };
        Ok(RangeResult {
            kvs,
            revision,
            more: resp.more(),
        })
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult> {
        let etcd_compares: Vec<etcd_client::Compare> =
            compares.iter().map(to_etcd_compare).collect();
        let then: Vec<TxnOp> = ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value } => TxnOp::put(key, value.to_vec(), None),
                Op::Delete { key } => TxnOp::delete(key, None),
            })
            .collect();
        // On failure, read every compared key in the same transaction to say which failed.
        let otherwise: Vec<TxnOp> = compares
            .iter()
            .map(|c| TxnOp::get(compare_key(c), Some(GetOptions::new().with_keys_only())))
            .collect();
        let txn = Txn::new()
            .when(etcd_compares)
            .and_then(then)
            .or_else(otherwise);
        let resp = self
            .call(false, |c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await
            .map_err(backend)?;
        let revision = header_revision(resp.header())?;
        if resp.succeeded() {
            return Ok(TxnResult {
                succeeded: true,
                revision,
                failed_compare: None,
            });
        }
        let mut failed = None;
        for (i, (c, r)) in compares.iter().zip(resp.op_responses()).enumerate() {
            let TxnOpResponse::Get(get) = r else {
                return Err(StoreError::Backend(
                    "etcd txn: unexpected else response".into(),
                ));
            };
            if !holds(c, get.kvs().first()) {
                failed = Some(i);
                break;
            }
        }
        Ok(TxnResult {
            succeeded: false,
            revision,
            failed_compare: failed,
        })
    }

    async fn current_revision(&self) -> Result<Revision> {
        let opts = GetOptions::new().with_count_only().with_limit(1);
        let resp = self
            .call(true, |c| {
                let opts = opts.clone();
                async move { c.kv_client().get("\0", Some(opts)).await }
            })
            .await
            .map_err(backend)?;
        header_revision(resp.header())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        let known = self.compacted.load(Ordering::Relaxed);
        let current = self.current_revision().await?;
        if known == 0 && self.readable_at(1).await? {
            return Ok(0);
        }
        // The smallest readable revision in [max(known, 1), current]: reads at `current` always
        // work (etcd never compacts past its current revision).
        let (mut lo, mut hi) = (known.max(1), current.max(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.readable_at(mid).await? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.note_compacted(lo);
        Ok(lo)
    }

    async fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> Result<BoxStream<'static, Result<WatchResponse>>> {
        let from = from.max(1);
        // etcd reports a compacted start asynchronously, after "created": check it up front so
        // the caller gets `Compacted` from this call, as the trait says.
        let current = self.current_revision().await?;
        if from <= current && !self.readable_at(from).await? {
            let c = self.compacted_revision().await?;
            return Err(self.compacted_error(from, c));
        }
        let (key, end) = range_bounds(prefix, None);
        let opts = WatchOptions::new()
            .with_range(end)
            .with_start_revision(from)
            .with_prev_key()
            .with_progress_notify();
        let mut stream = self
            .call(true, |c| {
                let (key, opts) = (key.clone(), opts.clone());
                async move { c.watch_client().watch(key, Some(opts)).await }
            })
            .await
            .map_err(backend)?;
        // The first message says whether the watch was created.
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .map_err(|_| StoreError::Backend("etcd did not confirm the watch".into()))?
            .map_err(backend)?
            .ok_or_else(|| StoreError::Backend("etcd watch stream ended".into()))?;
        if first.compact_revision() != 0 {
            return Err(self.compacted_error(from, first.compact_revision()));
        }
        if first.canceled() {
            return Err(StoreError::Backend(format!(
                "etcd refused the watch: {}",
                first.cancel_reason()
            )));
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let first_items = convert_events(&first)?;
        tokio::spawn(pump_watch(stream, tx, from, first_items));
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self
            .call(true, |c| async move {
                c.kv_client().compact(revision, None).await
            })
            .await
        {
            Ok(_) => {
                self.note_compacted(revision);
                Ok(())
            }
            // Compacting at or below the compacted revision is a no-op, as in the SQLite store.
            Err(e) if is_compacted(&e) => Ok(()),
            Err(e) => Err(self.revision_error(e, revision).await),
        }
    }
}

#[cfg(test)]
mod tests;
