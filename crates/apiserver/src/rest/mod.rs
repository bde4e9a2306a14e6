//! The Kubernetes REST API over the resources in [`crate::resources`]: one generic handler per
//! verb, per-kind behaviour from each resource's [`crate::strategy::Strategy`].

mod connect;
mod read;
mod sub;
mod watch;
mod write;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use serde_json::Value;
use svcnet_api::selector::{FieldSelector, LabelSelector};

use crate::codec::{self, Query, Representation};
use crate::error::{ApiError, ApiResult};
use crate::request::{self, Target};
use crate::resources::ResourceInfo;
use crate::state::AppState;

/// Entry point for every `/api/...` and `/apis/...` resource path.
pub async fn handle(state: Arc<AppState>, req: Request<Body>) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let target = match request::parse(parts.uri.path()) {
        Ok(Some(t)) => t,
        Ok(None) => return crate::discovery::handle(&parts).await,
        Err(e) => return e.into_response(),
    };
    let query = match Query::parse(parts.uri.query()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let verb = verb_of(&parts.method, &target, &query);
    if target
        .subresource
        .as_deref()
        .is_some_and(|s| connect::CONNECT_SUBRESOURCES.contains(&s))
    {
        let req = Request::from_parts(parts, body);
        return connect::handle(&state, req, &target, &query)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    let resource = match &target.subresource {
        Some(s) => format!("{}/{}", target.info.plural, s),
        None => target.info.plural.to_string(),
    };
    let result = dispatch(&state, &parts.method, &parts.headers, &target, &query, body).await;
    let resp = result.unwrap_or_else(IntoResponse::into_response);
    let code = resp.status().as_u16().to_string();
    state
        .metrics
        .requests
        .with_label_values(&[verb, &resource, &code])
        .inc();
    if verb != "watch" {
        state
            .metrics
            .request_duration
            .with_label_values(&[verb, &resource])
            .observe(started.elapsed().as_secs_f64());
    }
    resp
}

fn verb_of(method: &Method, t: &Target, q: &Query) -> &'static str {
    match (method.as_str(), t.name.is_some()) {
        ("GET", false) if q.watch || t.legacy_watch => "watch",
        ("GET", true) if t.legacy_watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

async fn dispatch(
    state: &Arc<AppState>,
    method: &Method,
    headers: &HeaderMap,
    t: &Target,
    q: &Query,
    body: Body,
) -> ApiResult<Response> {
    let sub = t.subresource.as_deref();
    match (method.as_str(), t.name.as_deref(), sub) {
        ("GET", None, None) => {
            let rep = codec::negotiate(headers)?;
            if q.watch || t.legacy_watch {
                watch::watch(state, t, q, rep).await
            } else {
                read::list(state, t, q, rep).await
            }
        }
        ("GET", Some(_), None | Some("status")) if t.legacy_watch => {
            // `/watch/.../name`: a watch of one object.
            let rep = codec::negotiate(headers)?;
            watch::watch(state, t, q, rep).await
        }
        ("GET", Some(_), None | Some("status")) => {
            read::get(state, t, q, codec::negotiate(headers)?).await
        }
        ("GET", Some(_), Some("scale")) => {
            sub::get_scale(state, t, codec::negotiate(headers)?).await
        }
        ("POST", None, None) => {
            let body = read_body(state, body).await?;
            write::create(state, t, q, headers, &body).await
        }
        ("POST", Some(_), Some("binding")) => {
            let body = read_body(state, body).await?;
            sub::bind(state, t, q, headers, &body).await
        }
        ("PUT", Some(_), None | Some("status") | Some("finalize")) => {
            let body = read_body(state, body).await?;
            write::update(state, t, q, headers, &body).await
        }
        ("PUT", Some(_), Some("scale")) => {
            let body = read_body(state, body).await?;
            sub::update_scale(state, t, q, headers, &body, None).await
        }
        ("PATCH", Some(_), None | Some("status")) => {
            let body = read_body(state, body).await?;
            write::patch(state, t, q, headers, &body).await
        }
        ("PATCH", Some(_), Some("scale")) => {
            let body = read_body(state, body).await?;
            let patch_type = write::patch_type(headers)?;
            sub::update_scale(state, t, q, headers, &body, Some(patch_type)).await
        }
        ("DELETE", Some(_), None) => {
            let body = read_body(state, body).await?;
            write::delete(state, t, q, headers, &body).await
        }
        ("DELETE", None, None) => {
            let body = read_body(state, body).await?;
            write::delete_collection(state, t, q, headers, &body).await
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

async fn read_body(state: &AppState, body: Body) -> ApiResult<Bytes> {
    let limit = state.config.max_request_body_bytes;
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))
}

/// Parsed label and field selectors of a list or watch.
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(info: &ResourceInfo, q: &Query) -> ApiResult<Self> {
        let labels = match q.label_selector.as_deref() {
            Some(s) if !s.trim().is_empty() => {
                LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            _ => LabelSelector::default(),
        };
        let fields = match q.field_selector.as_deref() {
            Some(s) if !s.trim().is_empty() => {
                FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            _ => FieldSelector::default(),
        };
        // Every field label must be one the kind supports.
        let probe = serde_json::json!({});
        for r in &fields.requirements {
            if info.field_value(&probe, &r.field).is_none() {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    r.field
                )));
            }
        }
        Ok(Selectors { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, info: &ResourceInfo, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches(&crate::objmeta::labels(obj)))
            && (self.fields.is_empty() || self.fields.matches(|f| info.field_value(obj, f)))
    }
}

/// Encode one object as the client asked (plain, Table, PartialObjectMetadata).
pub fn encode_one(
    info: &ResourceInfo,
    obj: &Value,
    rep: Representation,
    code: http::StatusCode,
) -> Response {
    match rep {
        Representation::Table => {
            let table =
                crate::table::table(info, std::iter::once(obj), None, None, true, "Metadata");
            codec::respond(code, &table, Representation::Json)
        }
        Representation::PartialObjectMetadata => codec::respond(
            code,
            &crate::table::partial_object_metadata(obj),
            Representation::Json,
        ),
        rep => codec::respond(code, obj, rep),
    }
}
