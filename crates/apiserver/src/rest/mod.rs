//! The Kubernetes REST API over the resources in [`crate::resources`]: one generic handler per
//! verb, per-kind behaviour from each resource's [`crate::strategy::Strategy`].

mod componentstatus;
mod connect;
mod eviction;
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

use crate::auth::User;
use crate::codec::{self, Query, Representation};
use crate::error::{ApiError, ApiResult};
use crate::registry::{Part, WriteOptions};
use crate::request::{self, Target};
use crate::resources::ResourceInfo;
use crate::state::{AppState, ConnectionAbort};

/// Entry point for every `/api/...` and `/apis/...` resource path.
pub async fn handle(state: Arc<AppState>, req: Request<Body>) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let target = match request::parse(parts.uri.path(), &state.catalog) {
        Ok(Some(t)) => t,
        Ok(None) => return crate::discovery::handle(&parts, &state.catalog).await,
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
    let r = ResourceRequest {
        state: &state,
        target: &target,
        query: &query,
        headers: &parts.headers,
        connection: parts.extensions.get::<ConnectionAbort>().cloned(),
        user: parts.extensions.get::<User>().cloned(),
    };
    let result = dispatch(&r, &parts.method, body).await;
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

/// A request to a resource path as its handler receives it (kube-apiserver's handlers take
/// the request and its RequestScope): the resolved target, the query and the headers. Handlers
/// that take a body get it beside, and read it with [`ResourceRequest::read_body`].
pub struct ResourceRequest<'a> {
    pub state: &'a Arc<AppState>,
    pub target: &'a Target,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    /// Closes the connection the request came on (for a watch whose client stopped reading).
    pub connection: Option<ConnectionAbort>,
    /// Who asks (set by the authentication filter).
    pub user: Option<User>,
}

impl ResourceRequest<'_> {
    /// The body, read in full (413 past `--max-request-body-bytes`).
    pub async fn read_body(&self, body: Body) -> ApiResult<Bytes> {
        let limit = self.state.config.max_request_body_bytes;
        axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::too_large(limit))
    }

    /// The representation the client accepts for the answer.
    pub fn negotiate(&self) -> ApiResult<Representation> {
        codec::negotiate(self.headers)
    }

    /// The object named by the path ("" for a collection).
    pub fn name(&self) -> String {
        self.target.name.clone().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    /// What an update of this path may change.
    pub fn part(&self) -> Part {
        Part::of_subresource(self.target.subresource.as_deref())
    }

    pub fn write_options(&self) -> WriteOptions {
        WriteOptions {
            dry_run: self.query.dry_run,
            field_manager: Some(self.field_manager()),
            user: self.user.clone(),
            ..Default::default()
        }
    }

    /// `fieldManager`, else the User-Agent's first word (`managerOrUserAgent`).
    pub fn field_manager(&self) -> String {
        let ua = self
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        svcnet_ssa::manager_or_user_agent(self.query.field_manager.as_deref(), ua)
    }
}

async fn dispatch(r: &ResourceRequest<'_>, method: &Method, body: Body) -> ApiResult<Response> {
    let (t, q) = (r.target, r.query);
    if std::ptr::eq(t.info, &crate::resources::COMPONENTSTATUSES) {
        return componentstatus::handle(r, method).await;
    }
    match (method.as_str(), t.name.as_deref(), t.subresource.as_deref()) {
        ("GET", None, None) if q.watch || t.legacy_watch => watch::watch(r).await,
        ("GET", None, None) => read::list(r).await,
        // `/watch/.../name`: a watch of one object.
        ("GET", Some(_), None | Some("status")) if t.legacy_watch => watch::watch(r).await,
        (
            "GET",
            Some(_),
            None | Some("status") | Some("approval") | Some("ephemeralcontainers"),
        ) => read::get(r).await,
        ("GET", Some(_), Some("scale")) => sub::get_scale(r).await,
        ("POST", None, None) => write::create(r, body).await,
        ("POST", Some(_), Some("binding")) => sub::bind(r, body).await,
        ("POST", Some(_), Some("eviction")) => eviction::evict(r, body).await,
        (
            "PUT",
            Some(_),
            None
            | Some("status")
            | Some("finalize")
            | Some("approval")
            | Some("ephemeralcontainers"),
        ) => write::update(r, body).await,
        ("PUT", Some(_), Some("scale")) => sub::update_scale(r, body, false).await,
        (
            "PATCH",
            Some(_),
            None | Some("status") | Some("approval") | Some("ephemeralcontainers"),
        ) => write::patch(r, body).await,
        ("PATCH", Some(_), Some("scale")) => sub::update_scale(r, body, true).await,
        ("DELETE", Some(_), None) => write::delete(r, body).await,
        ("DELETE", None, None) => write::delete_collection(r, body).await,
        _ => Err(ApiError::method_not_allowed()),
    }
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

/// Encode one stored object as the client asked (plain, Table, PartialObjectMetadata), in the
/// form of `info`'s API ([`ResourceInfo::from_storage`]).
pub fn encode_one(
    info: &'static ResourceInfo,
    obj: &Value,
    rep: Representation,
    code: http::StatusCode,
) -> Response {
    match rep {
        Representation::Table => {
            let table = crate::table::table(
                info.storage(),
                std::iter::once(obj),
                None,
                None,
                true,
                "Metadata",
            );
            codec::respond(code, &table, Representation::Json)
        }
        Representation::PartialObjectMetadata => codec::respond(
            code,
            &crate::table::partial_object_metadata(obj),
            Representation::Json,
        ),
        rep => codec::respond(code, &info.from_storage(obj), rep),
    }
}
