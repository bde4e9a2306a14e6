//! watch: one JSON event per line, from the watch cache.
//!
//! Semantics as Kubernetes': resourceVersion unset ("most recent": synthetic ADDED events for the
//! current state, read-your-writes) or "0" ("any": the same from the cache as is), N (changes
//! after N; too old → an in-stream ERROR event with code 410). `sendInitialEvents=true` ends the
//! initial state with a BOOKMARK annotated `k8s.io/initial-events-end`. Label and field
//! selectors turn transitions into ADDED/DELETED as the cacher does. `timeoutSeconds` ends the
//! stream (unset or 0: `--min-request-timeout` × [1, 2), as kube-apiserver's `ListResource`);
//! bookmarks are sent periodically when `allowWatchBookmarks`.
//!
//! Fan-out: the response body pulls events straight from the watch's cache queue when hyper asks
//! for more, so nothing is encoded ahead of what the connection takes. A JSON event goes out as
//! three frames — a static `{"type":"ADDED","object":`, the object's cached JSON (a reference to
//! the one serialization every watcher shares) and a static `}\n` — so N watchers of an event
//! hold N references to one buffer, never N copies. Table and PartialObjectMetadata watches
//! (rare: `kubectl get -w`) build their line per watcher, one event at a time.
//!
//! Writes under a burst: each write to a watcher's connection costs about the same (a TLS
//! record and a `write`, on loopback the receiver's TCP work too) whether it carries one event
//! or twenty, so with many watchers that cost, paid per watcher per event, is what the fan-out
//! costs. kube-apiserver flushes only when a watcher's channel is empty, which coalesces only
//! what happened to queue up; here, in addition, a watcher that wrote less than
//! [`coalescing_window`] ago holds its next write until that window has passed, taking every
//! event that arrived meanwhile in one write, its small pieces joined into frames of up to
//! [`JOIN_BYTES`]. The window grows with the number of open watches
//! (`--watch-coalescing-per-watcher-us`, 25 µs each: 25 ms at 1,000, 2.5 ms at 100), so the
//! server's watch writes stay about 40,000 a second however many watch; below 40 watches there is
//! none, and an event after a quiet spell goes out at once. The price is latency under bursts
//! only: at most the window.
//!
//! A client that stops reading: its queue in the cache fills, the cache closes the watch
//! ("Forcing ... watcher close due to unresponsiveness", see `svcnet_store::cache`) and drops
//! what it had queued. Where hyper next polls the body, the body fails: hyper closes the HTTP/1
//! connection (or resets the HTTP/2 stream) instead of waiting to write the response's end, and
//! the client re-watches from its last resourceVersion. (kube-apiserver ends the response; Go's
//! server then blocks writing it to a client that does not read.) A client that does not read
//! at all never lets hyper poll again, and its connection would keep hyper's and TLS's buffers:
//! after [`UNRESPONSIVE_GRACE`] the connection is closed (`state::ConnectionAbort`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http::{header, StatusCode};
use rand::Rng;
use serde_json::{json, Value};
use svcnet_api::selector::{FieldOperator, FieldRequirement};
use svcnet_store::cache::{CacheError, CacheEvent, CacheEventType, CacheWatch, CachedObject};

use super::read::{parse_rv, sync_cache, validate_list_options};
use super::{ResourceRequest, Selectors};
use crate::codec::Representation;
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;
use crate::state::AppState;

/// How long hyper may take to poll the body of a watch closed for unresponsiveness (and so
/// close the connection itself, or reset just this HTTP/2 stream) before the whole connection is
/// closed. Ours: kube-apiserver leaves such a connection to the kernel.
pub const UNRESPONSIVE_GRACE: Duration = Duration::from_secs(5);

/// The first frame of a JSON watch event of each type.
fn json_prefix(kind: &str) -> Bytes {
    Bytes::from_static(match kind {
        "ADDED" => b"{\"type\":\"ADDED\",\"object\":",
        "MODIFIED" => b"{\"type\":\"MODIFIED\",\"object\":",
        _ => b"{\"type\":\"DELETED\",\"object\":",
    })
}

const JSON_SUFFIX: &[u8] = b"}\n";

/// Pieces ready together are copied into one frame up to this size: hyper writes at most 16
/// frames at a time (its `MAX_BUF_LIST_BUFFERS`), so three frames per event would cap a write
/// at five events. Larger pieces (big objects) stay shared, uncopied. A connection that does
/// not read holds at most 16 such frames in hyper's buffer.
const JOIN_BYTES: usize = 4096;

/// The longest a write is held.
const MAX_WINDOW: Duration = Duration::from_millis(50);

/// How long a watcher that just wrote holds its next write when `watchers` watches are open,
/// each adding `per_watcher`: none below 1 ms (tokio's timer resolution), at most
/// [`MAX_WINDOW`].
pub fn coalescing_window(watchers: i64, per_watcher: Duration) -> Option<Duration> {
    let window = per_watcher * u32::try_from(watchers.max(0)).unwrap_or(u32::MAX);
    (window >= Duration::from_millis(1)).then(|| window.min(MAX_WINDOW))
}

/// Encodes watch events in the negotiated representation.
struct Encoder {
    info: &'static ResourceInfo,
    rep: Representation,
    headers_sent: bool,
}

impl Encoder {
    /// The frames of one event, appended to `out`.
    fn event(&mut self, kind: &str, obj: &CachedObject, out: &mut VecDeque<Bytes>) {
        match self.rep {
            Representation::Json | Representation::Yaml if !self.info.serves_stored_form() => {
                out.push_back(line(kind, &self.info.from_storage(&obj.value)));
            }
            Representation::Json | Representation::Yaml => {
                out.push_back(json_prefix(kind));
                out.push_back(obj.json.clone());
                out.push_back(Bytes::from_static(JSON_SUFFIX));
            }
            Representation::Table => {
                let table = crate::table::table(
                    self.info.storage(),
                    std::iter::once(&obj.value),
                    Some(&obj.mod_revision.to_string()),
                    None,
                    !self.headers_sent,
                    "Metadata",
                );
                self.headers_sent = true;
                out.push_back(line(kind, &table));
            }
            Representation::PartialObjectMetadata => {
                out.push_back(line(
                    kind,
                    &crate::table::partial_object_metadata(&obj.value),
                ));
            }
        }
    }

    fn bookmark(&self, rv: i64, initial_events_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": rv.to_string(), "creationTimestamp": null });
        if initial_events_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let (kind, api_version) = match self.rep {
            Representation::PartialObjectMetadata => (
                "PartialObjectMetadata".to_string(),
                "meta.k8s.io/v1".to_string(),
            ),
            _ => (self.info.kind.to_string(), self.info.api_version()),
        };
        line(
            "BOOKMARK",
            &json!({ "kind": kind, "apiVersion": api_version, "metadata": meta }),
        )
    }
}

/// One event line: `{"type":...,"object":...}` in `WatchEvent`'s field order, the object in
/// Kubernetes' key order.
fn line(kind: &str, obj: &Value) -> Bytes {
    let mut out = format!("{{\"type\":{},\"object\":", Value::from(kind)).into_bytes();
    svcnet_store::encode::write(&mut out, obj);
    out.extend_from_slice(JSON_SUFFIX);
    Bytes::from(out)
}

fn error_line(e: &ApiError) -> Bytes {
    line("ERROR", &e.to_status())
}

/// kube-apiserver's watch lifetime (`ListResource`): `timeoutSeconds` when set and not 0, else
/// a random duration in [min-request-timeout, 2 × min-request-timeout), which spreads re-watches.
pub fn watch_timeout(timeout_seconds: Option<u64>, min_request_timeout: Duration) -> Duration {
    match timeout_seconds {
        Some(s) if s > 0 => Duration::from_secs(s),
        _ => min_request_timeout.mul_f64(1.0 + rand::rng().random::<f64>()),
    }
}

/// kube-apiserver's `groupResource.String()`: `services`, `deployments.apps`.
fn group_resource(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

pub async fn watch(r: &ResourceRequest<'_>) -> ApiResult<Response> {
    let rep = r.negotiate()?;
    let (state, t, q) = (r.state, r.target, r.query);
    validate_list_options(q, true)?;
    let info = t.info;
    let mut sel = Selectors::parse(info, q)?;
    if let Some(name) = &t.name {
        // A watch of one object by path: the same as fieldSelector=metadata.name=<name>.
        sel.fields.requirements.push(FieldRequirement {
            field: "metadata.name".into(),
            operator: FieldOperator::Equals,
            value: name.clone(),
        });
    }
    let prefix = info.prefix(t.namespace.as_deref());
    let rv = q.resource_version.as_deref().filter(|s| !s.is_empty());
    let send_initial = q.send_initial_events;
    let with_initial = match (send_initial, rv) {
        (Some(b), _) => b,
        (None, None) | (None, Some("0")) => true,
        (None, Some(_)) => false,
    };

    let mut initial: Vec<Arc<CachedObject>> = Vec::new();
    let mut initial_rv = 0;
    let mut early_error: Option<ApiError> = None;
    let cache_watch = if with_initial || rv.is_none() || rv == Some("0") {
        sync_cache(state, rv).await?;
        let (objs, rev, w) = state.cache.list_and_watch(&prefix);
        initial_rv = rev;
        if with_initial {
            initial = objs
                .into_iter()
                .filter(|o| sel.matches(info, &o.value))
                .collect();
        }
        Some(w)
    } else {
        let from = parse_rv(rv.unwrap_or("0"))?;
        match state.cache.watch(&prefix, from).await {
            Ok(w) => Some(w),
            Err(e @ CacheError::Expired { .. }) => {
                early_error = Some(e.into());
                None
            }
            Err(e) => return Err(e.into()),
        }
    };

    let finished = Arc::new(AtomicBool::new(false));
    if let Some(w) = &cache_watch {
        let resource = group_resource(info);
        w.set_label(
            resource.clone(),
            format!(
                "key: {:?}, labels: {:?}, fields: {:?}",
                prefix,
                q.label_selector.as_deref().unwrap_or(""),
                q.field_selector.as_deref().unwrap_or("")
            ),
        );
        let (state, finished, abort) = (state.clone(), finished.clone(), r.connection.clone());
        w.on_forced_close(move || {
            state
                .metrics
                .terminated_watchers
                .with_label_values(&[info.group, info.plural])
                .inc();
            let Some(abort) = abort else { return };
            tokio::spawn(async move {
                tokio::time::sleep(UNRESPONSIVE_GRACE).await;
                if !finished.load(Ordering::SeqCst) {
                    tracing::info!(
                        resource,
                        "closing the connection of an unresponsive watcher: hyper did not poll its body for {UNRESPONSIVE_GRACE:?}"
                    );
                    abort.abort();
                }
            });
        });
    }
    let timeout = watch_timeout(q.timeout_seconds, state.config.min_request_timeout);
    let bookmark_interval = state.config.bookmark_interval;
    state.metrics.watchers.inc();
    let stream = WatchStream {
        state: state.clone(),
        finished,
        enc: Encoder {
            info,
            rep,
            headers_sent: false,
        },
        sel,
        pending: VecDeque::new(),
        early_error,
        initial: initial.into_iter(),
        initial_end_bookmark: send_initial == Some(true) && q.allow_watch_bookmarks,
        initial_rv,
        watch: cache_watch,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        bookmarks: q.allow_watch_bookmarks.then(|| {
            tokio::time::interval_at(
                tokio::time::Instant::now() + bookmark_interval,
                bookmark_interval,
            )
        }),
        done: false,
        lagged: false,
    };
    let body = Body::from_stream(futures::stream::unfold(stream, |mut s| async move {
        let frame = s.next_frame().await?;
        Some((frame, s))
    }));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .expect("static response parts are valid"))
}

/// One watch response being written: what it has left to send, produced as hyper asks for it.
struct WatchStream {
    state: Arc<AppState>,
    /// Set when the body is dropped (sent in full, or the connection went).
    finished: Arc<AtomicBool>,
    enc: Encoder,
    sel: Selectors,
    /// Frames of the current event not yet taken.
    pending: VecDeque<Bytes>,
    early_error: Option<ApiError>,
    initial: std::vec::IntoIter<Arc<CachedObject>>,
    initial_end_bookmark: bool,
    initial_rv: i64,
    watch: Option<CacheWatch>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    bookmarks: Option<tokio::time::Interval>,
    done: bool,
    /// The cache closed the watch for falling behind.
    lagged: bool,
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.finished.store(true, Ordering::SeqCst);
        self.state.metrics.watchers.dec();
    }
}

impl WatchStream {
    /// The next frame: what is ready to send, small pieces joined up to [`JOIN_BYTES`]; after
    /// a close for falling behind, an error: hyper then closes an HTTP/1 connection (or resets
    /// an HTTP/2 stream) rather than wait to write the response's end to a client that is not
    /// reading.
    async fn next_frame(&mut self) -> Option<std::io::Result<Bytes>> {
        let first = match self.next_piece().await? {
            Ok(first) => first,
            error => return Some(error),
        };
        let mut joined: Option<BytesMut> = None;
        loop {
            if self.pending.is_empty()
                && (self.lagged || self.done || self.produce().now_or_never().is_none())
            {
                break;
            }
            let Some(next) = self.pending.front() else {
                continue;
            };
            let len = joined.as_ref().map_or(first.len(), |j| j.len());
            if len + next.len() > JOIN_BYTES {
                break;
            }
            let next = self.pending.pop_front().expect("just seen");
            joined
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&next);
        }
        Some(Ok(joined.map_or(first, BytesMut::freeze)))
    }

    /// The next piece of an event (or a whole line), waiting for one if need be.
    async fn next_piece(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(Ok(frame));
            }
            if std::mem::take(&mut self.lagged) {
                return Some(Err(std::io::Error::other(
                    "watch closed: the client did not keep up",
                )));
            }
            if self.done {
                return None;
            }
            if self.produce().now_or_never().is_some() {
                continue;
            }
            // Nothing ready: hyper writes what it has now. Wait for more, and when that comes
            // within the coalescing window of this write, hold it until the window has passed.
            let hold = coalescing_window(
                self.state.metrics.watchers.get(),
                self.state.config.watch_coalescing_per_watcher,
            )
            .map(|window| tokio::time::Instant::now() + window);
            self.produce().await;
            if let Some(until) = hold.filter(|h| *h > tokio::time::Instant::now()) {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = &mut self.deadline => self.done = true,
                }
            }
        }
    }

    /// Queue the frames of the next thing to send, or mark the stream done.
    async fn produce(&mut self) {
        if let Some(e) = self.early_error.take() {
            self.pending.push_back(error_line(&e));
            self.done = true;
            return;
        }
        if let Some(obj) = self.initial.next() {
            self.enc.event("ADDED", &obj, &mut self.pending);
            return;
        }
        if std::mem::take(&mut self.initial_end_bookmark) {
            self.pending
                .push_back(self.enc.bookmark(self.initial_rv, true));
            return;
        }
        let Some(w) = self.watch.as_mut() else {
            self.done = true;
            return;
        };
        // A queued event is taken without polling the timers (a burst's events come one
        // after another here); the deadline is still honoured.
        if !self.deadline.is_elapsed() {
            if let Some(ev) = w.try_next() {
                self.take(ev);
                return;
            }
        }
        let bookmarks = self.bookmarks.as_mut();
        let has_bookmarks = bookmarks.is_some();
        let tick = async {
            match bookmarks {
                Some(i) => {
                    i.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = &mut self.deadline => self.done = true,
            _ = tick, if has_bookmarks => {
                let rv = w.progress_revision();
                self.pending.push_back(self.enc.bookmark(rv, false));
            }
            ev = w.next() => self.take(ev),
        }
    }

    /// Queue the frames of a cache event (none when the selectors filter it out), or end the
    /// stream when the watch closed.
    fn take(&mut self, ev: Option<Result<Arc<CacheEvent>, CacheError>>) {
        let ev = match ev {
            Some(Ok(ev)) => ev,
            // Closed for falling behind, or the cache closed: end the response; the client
            // re-watches from its last resourceVersion.
            other => {
                self.lagged = matches!(other, Some(Err(CacheError::Lagged)));
                self.done = true;
                return;
            }
        };
        let info = self.enc.info;
        let new_match = self.sel.matches(info, &ev.object.value);
        let old_match = ev
            .prev
            .as_ref()
            .is_some_and(|p| self.sel.matches(info, &p.value));
        let kind = match ev.kind {
            CacheEventType::Added => new_match.then_some("ADDED"),
            CacheEventType::Deleted => (old_match || new_match).then_some("DELETED"),
            CacheEventType::Modified => match (old_match, new_match) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        };
        if let Some(kind) = kind {
            self.enc.event(kind, &ev.object, &mut self.pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing_window_grows_with_the_watchers_from_a_millisecond() {
        let us = Duration::from_micros;
        assert_eq!(coalescing_window(0, us(10)), None);
        assert_eq!(coalescing_window(99, us(10)), None);
        assert_eq!(
            coalescing_window(100, us(10)),
            Some(Duration::from_millis(1))
        );
        assert_eq!(
            coalescing_window(1000, us(10)),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            coalescing_window(1000, us(25)),
            Some(Duration::from_millis(25))
        );
        assert_eq!(coalescing_window(100_000, us(10)), Some(MAX_WINDOW));
        assert_eq!(coalescing_window(1000, us(0)), None);
        assert_eq!(coalescing_window(-1, us(10)), None);
    }
}
