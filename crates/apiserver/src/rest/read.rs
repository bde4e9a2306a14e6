//! get and list.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use base64::Engine;
use http::StatusCode;
use serde_json::{json, Value};
use svcnet_api::field;
use svcnet_store::cache::CachedObject;
use svcnet_store::{RangeRequest, StoreError};

use super::{encode_one, ResourceRequest, Selectors};
use crate::codec::{self, Query, Representation};
use crate::error::{ApiError, ApiResult};
use crate::request::Target;
use crate::state::AppState;

/// How long a read waits for the cache to reach a requested or current revision.
const WAIT: Duration = Duration::from_secs(3);

pub fn parse_rv(rv: &str) -> ApiResult<i64> {
    rv.parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

/// kube-apiserver's `ValidateListOptions` (apimachinery `internalversion/validation`, with the
/// WatchList feature on: this server serves `sendInitialEvents`): the resourceVersionMatch and
/// sendInitialEvents combinations a list or a watch may not use, as 422 `ListOptions.meta.k8s.io
/// "" is invalid: ...` with one cause per rule broken.
pub fn validate_list_options(q: &Query, watch: bool) -> ApiResult<()> {
    let rvm = field::Path::new("resourceVersionMatch");
    let matched = q.resource_version_match.as_deref().unwrap_or("");
    let has_continue = q.continue_token.is_some();
    let mut errs = Vec::new();
    if watch {
        if q.send_initial_events.is_some() && matched != "NotOlderThan" {
            errs.push(field::Error::forbidden(
                &rvm,
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !matched.is_empty() {
            if q.send_initial_events.is_none() {
                errs.push(field::Error::forbidden(
                    &rvm,
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if matched != "NotOlderThan" {
                errs.push(field::Error::not_supported(
                    &rvm,
                    matched,
                    &["NotOlderThan"],
                ));
            }
            if has_continue {
                errs.push(field::Error::forbidden(
                    &rvm,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        let rv = q.resource_version.as_deref().unwrap_or("");
        if !matched.is_empty() {
            if rv.is_empty() {
                errs.push(field::Error::forbidden(
                    &rvm,
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if has_continue {
                errs.push(field::Error::forbidden(
                    &rvm,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if matched != "Exact" && matched != "NotOlderThan" {
                errs.push(field::Error::not_supported(
                    &rvm,
                    matched,
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if matched == "Exact" && rv == "0" {
                errs.push(field::Error::forbidden(
                    &rvm,
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if q.send_initial_events.is_some() {
            errs.push(field::Error::forbidden(
                &field::Path::new("sendInitialEvents"),
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_kind(
            "meta.k8s.io",
            "ListOptions",
            "",
            &errs,
        ))
    }
}

/// Bring the cache up to what `resourceVersion` asks for: unset = the latest (read-your-writes),
/// "0" = whatever it has, N = at least N.
pub async fn sync_cache(state: &AppState, rv: Option<&str>) -> ApiResult<i64> {
    match rv {
        None | Some("") => Ok(state.cache.wait_consistent(WAIT).await?),
        Some("0") => Ok(state.cache.revision()),
        Some(n) => {
            let n = parse_rv(n)?;
            state.cache.wait_for_revision(n, WAIT).await?;
            Ok(state.cache.revision())
        }
    }
}

pub async fn get_cached(
    state: &AppState,
    t: &Target,
    rv: Option<&str>,
) -> ApiResult<Arc<CachedObject>> {
    let name = t.name.as_deref().unwrap_or_default();
    sync_cache(state, rv).await?;
    let key = t.info.key(t.namespace.as_deref(), name);
    state
        .cache
        .get(&key)
        .0
        // A view's errors name the stored resource, as upstream's shared registry does.
        .ok_or_else(|| ApiError::not_found(t.info.storage(), name))
}

pub async fn get(r: &ResourceRequest<'_>) -> ApiResult<Response> {
    let rep = r.negotiate()?;
    let t = r.target;
    let obj = get_cached(r.state, t, r.query.resource_version.as_deref()).await?;
    if rep == Representation::Json && t.info.serves_stored_form() {
        let mut body = Vec::with_capacity(obj.json.len() + 1);
        body.extend_from_slice(&obj.json);
        return Ok(codec::respond_json_bytes(StatusCode::OK, body));
    }
    Ok(encode_one(t.info, &obj.value, rep, StatusCode::OK))
}

/// The opaque `continue` token: the revision of the first page and the last key returned.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, last_key: &str, prefix: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: last_key
            .strip_prefix(prefix)
            .unwrap_or(last_key)
            .to_string(),
    };
    base64::engine::general_purpose::URL_SAFE
        .encode(serde_json::to_vec(&token).expect("serializable"))
}

fn decode_continue(token: &str) -> ApiResult<ContinueToken> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if t.v != "meta.k8s.io/v1" || t.rv <= 0 || t.start.contains("..") {
        return Err(bad());
    }
    Ok(t)
}

const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

pub async fn list(r: &ResourceRequest<'_>) -> ApiResult<Response> {
    let rep = r.negotiate()?;
    let (state, t, q) = (r.state, r.target, r.query);
    let info = t.info;
    let sel = Selectors::parse(info, q)?;
    let prefix = info.prefix(t.namespace.as_deref());
    validate_list_options(q, false)?;
    let limit = q.limit.unwrap_or(0).max(0) as usize;
    let exact = q.resource_version_match.as_deref() == Some("Exact");
    // Paged lists and exact-revision lists are served by the store (which keeps history);
    // everything else from the watch cache. resourceVersion=0 is served from the cache in full, as
    // Kubernetes does.
    let rv_zero = q.resource_version.as_deref() == Some("0");
    if (limit > 0 || q.continue_token.is_some()) && !rv_zero || exact {
        return list_from_store(state, t, q, rep, &sel, &prefix, limit, exact).await;
    }
    let rv = sync_cache(state, q.resource_version.as_deref()).await?;
    let (objs, cache_rv) = state.cache.list(&prefix);
    let rv = rv.max(cache_rv).to_string();
    let objs: Vec<Arc<CachedObject>> = if sel.is_empty() {
        objs
    } else {
        objs.into_iter()
            .filter(|o| sel.matches(info, &o.value))
            .collect()
    };
    Ok(match rep {
        Representation::Json if info.serves_stored_form() => {
            let mut body =
                Vec::with_capacity(objs.iter().map(|o| o.json.len() + 1).sum::<usize>() + 128);
            body.extend_from_slice(
                format!(
                    "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{}\"}},\"items\":[",
                    info.list_kind,
                    info.api_version(),
                    rv
                )
                .as_bytes(),
            );
            for (i, o) in objs.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&o.json);
            }
            body.extend_from_slice(b"]}");
            codec::respond_json_bytes(StatusCode::OK, body)
        }
        rep => encode_list(info, objs.iter().map(|o| &o.value), &rv, None, rep, q),
    })
}

#[allow(clippy::too_many_arguments)]
async fn list_from_store(
    state: &Arc<AppState>,
    t: &Target,
    q: &Query,
    rep: Representation,
    sel: &Selectors,
    prefix: &str,
    limit: usize,
    exact: bool,
) -> ApiResult<Response> {
    let (mut revision, mut start_after) = match &q.continue_token {
        Some(tok) => {
            let c = decode_continue(tok)?;
            (Some(c.rv), Some(format!("{prefix}{}", c.start)))
        }
        None if exact => (
            Some(parse_rv(q.resource_version.as_deref().unwrap_or("0"))?),
            None,
        ),
        None => (None, None),
    };
    let mut items: Vec<Value> = Vec::new();
    let mut more;
    loop {
        let want = if limit == 0 { 0 } else { limit - items.len() };
        let res = state
            .store
            .range(RangeRequest {
                prefix: prefix.to_string(),
                start_after: start_after.clone(),
                limit: want,
                revision,
            })
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } if q.continue_token.is_some() => {
                    ApiError::expired(CONTINUE_TOO_OLD)
                }
                StoreError::Compacted { .. } => ApiError::expired(format!(
                    "too old resource version: {} ({})",
                    q.resource_version.as_deref().unwrap_or(""),
                    0
                )),
                StoreError::FutureRevision { requested, current } => {
                    ApiError::too_large_resource_version(requested, current)
                }
                e => e.into(),
            })?;
        revision = Some(res.revision);
        more = res.more;
        if let Some(last) = res.kvs.last() {
            start_after = Some(last.key.clone());
        }
        for kv in &res.kvs {
            let obj = crate::objmeta::from_storage(kv)?;
            if sel.matches(t.info, &obj) {
                items.push(obj);
            }
        }
        if !more || limit == 0 || items.len() >= limit {
            break;
        }
    }
    let rv = revision.unwrap_or(0);
    let cont = if more {
        start_after
            .as_deref()
            .map(|k| encode_continue(rv, k, prefix))
    } else {
        None
    };
    Ok(encode_list(
        t.info,
        items.iter(),
        &rv.to_string(),
        cont.as_deref(),
        rep,
        q,
    ))
}

pub(super) fn encode_list<'a>(
    info: &'static crate::resources::ResourceInfo,
    objs: impl Iterator<Item = &'a Value>,
    rv: &str,
    cont: Option<&str>,
    rep: Representation,
    q: &Query,
) -> Response {
    match rep {
        Representation::Table => {
            let include = q.include_object.as_deref().unwrap_or("Metadata");
            let table = crate::table::table(info.storage(), objs, Some(rv), cont, true, include);
            codec::respond(StatusCode::OK, &table, Representation::Json)
        }
        Representation::PartialObjectMetadata => codec::respond(
            StatusCode::OK,
            &crate::table::partial_object_metadata_list(objs, rv, cont),
            Representation::Json,
        ),
        rep => {
            let mut meta = json!({ "resourceVersion": rv });
            if let Some(c) = cont {
                meta["continue"] = json!(c);
            }
            let list = json!({
                "kind": info.list_kind,
                "apiVersion": info.api_version(),
                "metadata": meta,
                "items": objs.map(|o| info.from_storage(o).into_owned()).collect::<Vec<_>>(),
            });
            codec::respond(StatusCode::OK, &list, rep)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let tok = encode_continue(
            42,
            "/registry/pods/default/web-1",
            "/registry/pods/default/",
        );
        let c = decode_continue(&tok).unwrap();
        assert_eq!((c.rv, c.start.as_str()), (42, "web-1"));
        assert_eq!(decode_continue("garbage!").unwrap_err().code, 400);
    }

    /// The messages of apimachinery's validation_test.go `TestValidateListOptions`.
    #[test]
    fn list_options_are_validated_as_kube_apiserver_does() {
        let check = |query: &str, watch: bool| -> Vec<String> {
            let q = Query::parse(Some(query)).unwrap();
            match validate_list_options(&q, watch) {
                Ok(()) => vec![],
                Err(e) => {
                    assert_eq!(e.code, 422, "{query}");
                    let status = e.to_status();
                    assert_eq!(status["details"]["kind"], "ListOptions");
                    assert_eq!(status["details"]["group"], "meta.k8s.io");
                    status["details"]["causes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| {
                            format!(
                                "{}: {}",
                                c["field"].as_str().unwrap(),
                                c["message"].as_str().unwrap()
                            )
                        })
                        .collect()
                }
            }
        };
        assert!(check("resourceVersion=0", false).is_empty());
        assert!(check("resourceVersion=5&resourceVersionMatch=Exact", false).is_empty());
        assert!(check("resourceVersion=0&resourceVersionMatch=NotOlderThan", false).is_empty());
        assert_eq!(
            check("resourceVersion=0&resourceVersionMatch=Exact", false),
            [
                r#"resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0""#
            ]
        );
        assert_eq!(
            check("resourceVersionMatch=Exact", false),
            ["resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"]
        );
        assert_eq!(
            check("resourceVersion=1&resourceVersionMatch=Exact&continue=abc", false),
            ["resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided"]
        );
        assert_eq!(
            check("resourceVersion=1&resourceVersionMatch=bogus", false),
            [
                r#"resourceVersionMatch: Unsupported value: "bogus": supported values: "Exact", "NotOlderThan", """#
            ]
        );
        assert_eq!(
            check("sendInitialEvents=true", false),
            ["sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"]
        );
        assert!(check("watch=1", true).is_empty());
        assert!(check(
            "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
            true
        )
        .is_empty());
        assert_eq!(
            check("watch=1&resourceVersionMatch=NotOlderThan", true),
            ["resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"]
        );
        assert_eq!(
            check("watch=1&sendInitialEvents=true", true),
            ["resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"]
        );
        assert_eq!(
            check("watch=1&sendInitialEvents=true&resourceVersionMatch=Exact", true),
            [
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                r#"resourceVersionMatch: Unsupported value: "Exact": supported values: "NotOlderThan""#,
            ]
        );
    }
}
