//! watch: one JSON event per line, from the watch cache.
//!
//! Semantics as Kubernetes': resourceVersion unset ("most recent": synthetic ADDED events for the
//! current state, read-your-writes) or "0" ("any": the same from the cache as is), N (changes
//! after N; too old → an in-stream ERROR event with code 410). `sendInitialEvents=true` ends the
//! initial state with a BOOKMARK annotated `k8s.io/initial-events-end`. Label and field
//! selectors turn transitions into ADDED/DELETED as the cacher does. `timeoutSeconds` ends the
//! stream (unset or 0: `--min-request-timeout` × [1, 2), as kube-apiserver's `ListResource`);
//! bookmarks are sent periodically when `allowWatchBookmarks`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, StatusCode};
use rand::Rng;
use serde_json::{json, Value};
use svcnet_api::selector::{FieldOperator, FieldRequirement};
use svcnet_store::cache::{CacheError, CacheEventType, CachedObject};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::read::{parse_rv, sync_cache, validate_list_options};
use super::{ResourceRequest, Selectors};
use crate::codec::Representation;
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;

/// Encodes watch events in the negotiated representation.
struct Encoder {
    info: &'static ResourceInfo,
    rep: Representation,
    headers_sent: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, obj: &CachedObject) -> Bytes {
        match self.rep {
            Representation::Json | Representation::Yaml => {
                let mut out = Vec::with_capacity(obj.json.len() + 32);
                out.extend_from_slice(b"{\"type\":\"");
                out.extend_from_slice(kind.as_bytes());
                out.extend_from_slice(b"\",\"object\":");
                out.extend_from_slice(&obj.json);
                out.extend_from_slice(b"}\n");
                Bytes::from(out)
            }
            Representation::Table => {
                let table = crate::table::table(
                    self.info,
                    std::iter::once(&obj.value),
                    Some(&obj.mod_revision.to_string()),
                    None,
                    !self.headers_sent,
                    "Metadata",
                );
                self.headers_sent = true;
                line(kind, &table)
            }
            Representation::PartialObjectMetadata => {
                line(kind, &crate::table::partial_object_metadata(&obj.value))
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

fn line(kind: &str, obj: &Value) -> Bytes {
    let mut out =
        serde_json::to_vec(&json!({ "type": kind, "object": obj })).expect("serializable");
    out.push(b'\n');
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

    let timeout = watch_timeout(q.timeout_seconds, state.config.min_request_timeout);
    let bookmarks = q.allow_watch_bookmarks;
    let bookmark_interval = state.config.bookmark_interval;
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let mut enc = Encoder {
        info,
        rep,
        headers_sent: false,
    };
    let state2 = state.clone();
    tokio::spawn(async move {
        state2.metrics.watchers.inc();
        let _guard = scopeguard(|| state2.metrics.watchers.dec());
        if let Some(e) = early_error {
            let _ = tx.send(Ok(error_line(&e))).await;
            return;
        }
        let Some(mut w) = cache_watch else { return };
        for obj in &initial {
            if tx.send(Ok(enc.event("ADDED", obj))).await.is_err() {
                return;
            }
        }
        if send_initial == Some(true)
            && bookmarks
            && tx.send(Ok(enc.bookmark(initial_rv, true))).await.is_err()
        {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + bookmark_interval,
            bookmark_interval,
        );
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = tx.closed() => break,
                _ = tick.tick(), if bookmarks => {
                    let rv = w.progress_revision();
                    if tx.send(Ok(enc.bookmark(rv, false))).await.is_err() {
                        break;
                    }
                }
                ev = w.next() => {
                    let ev = match ev {
                        Some(Ok(ev)) => ev,
                        // Lagged or closed: end the stream; the client re-watches from its last
                        // resourceVersion.
                        _ => break,
                    };
                    let new_match = sel.matches(info, &ev.object.value);
                    let old_match = ev.prev.as_ref().is_some_and(|p| sel.matches(info, &p.value));
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
                        if tx.send(Ok(enc.event(kind, &ev.object))).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    let body = Body::from_stream(ReceiverStream::new(rx));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .expect("static response parts are valid"))
}

/// Run `f` when dropped (the watch task ends however it ends).
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f()
            }
        }
    }
    Guard(Some(f))
}
