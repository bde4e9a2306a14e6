//! API errors as Kubernetes `metav1.Status`: each error carries its HTTP code, reason and the
//! message Kubernetes would send, and renders itself as the response.

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde_json::{json, Value};
use svcnet_api::field;

use crate::resources::ResourceInfo;

/// One `StatusCause`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// `metav1.StatusDetails`: which object, and the causes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Details {
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    pub retry_after_seconds: Option<u32>,
}

/// A failed API request, rendered as a `Status` object. Details are boxed: errors travel
/// through every `Result` of the request path and stay small.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Box<Details>,
}

impl ApiError {
    fn plain(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Box::default(),
        }
    }

    fn with_resource(mut self, info: &ResourceInfo, name: &str) -> Self {
        self.details.name = Some(name.to_string());
        if !info.group.is_empty() {
            self.details.group = Some(info.group.to_string());
        }
        self.details.kind = Some(info.plural.to_string());
        self
    }

    /// `Service in version "v1" cannot be handled as a Service: <detail>` (400): a body that
    /// does not decode as the kind, or that its strategy cannot default or prepare.
    pub fn cannot_handle(info: &ResourceInfo, detail: impl std::fmt::Display) -> Self {
        Self::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {}",
            info.kind, info.version, info.kind, detail
        ))
    }

    /// `services "x" not found` (404).
    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        Self::plain(
            404,
            "NotFound",
            format!("{} \"{}\" not found", info.qualified_resource(), name),
        )
        .with_resource(info, name)
    }

    /// `namespaces "x" not found` for a missing namespace when creating inside it.
    pub fn namespace_not_found(ns: &str) -> Self {
        let mut e = Self::plain(404, "NotFound", format!("namespaces \"{ns}\" not found"));
        e.details.name = Some(ns.to_string());
        e.details.kind = Some("namespaces".to_string());
        e
    }

    /// 404 for a path the server does not serve.
    pub fn path_not_found() -> Self {
        Self::plain(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// `services "x" already exists` (409).
    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        Self::plain(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", info.qualified_resource(), name),
        )
        .with_resource(info, name)
    }

    /// The optimistic-concurrency conflict (409).
    pub fn conflict(info: &ResourceInfo, name: &str, detail: &str) -> Self {
        Self::plain(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                info.qualified_resource(),
                name,
                detail
            ),
        )
        .with_resource(info, name)
    }

    /// A server-side apply's conflicts (apimachinery `NewApplyConflict`): 409 `Conflict`, one
    /// `FieldManagerConflict` cause per field, no name or kind in the details.
    pub fn apply_conflict(message: String, causes: Vec<(String, String)>) -> Self {
        let mut e = Self::plain(409, "Conflict", message);
        e.details.causes = causes
            .into_iter()
            .map(|(message, field)| Cause {
                reason: "FieldManagerConflict".to_string(),
                message,
                field,
            })
            .collect();
        e
    }

    /// A failed UID precondition of an update (the uid a PUT's object carries is not the stored
    /// object's): etcd3's `Preconditions.Check` error (`storage.NewInvalidObjError`, code 4)
    /// as `InterpretUpdateError` turns it into a 409.
    pub fn uid_precondition_failed(
        info: &ResourceInfo,
        name: &str,
        key: &str,
        precondition: &str,
        actual: &str,
    ) -> Self {
        Self::conflict(
            info,
            name,
            &format!(
                "StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {precondition}, UID in object meta: {actual}"
            ),
        )
    }

    pub fn conflict_modified(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `Service "x" is invalid: ...` (422) with one cause per field error.
    pub fn invalid(info: &ResourceInfo, name: &str, errs: &[field::Error]) -> Self {
        Self::invalid_kind(info.group, info.kind, name, errs)
    }

    pub fn invalid_kind(group: &str, kind: &str, name: &str, errs: &[field::Error]) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut e = Self::plain(
            422,
            "Invalid",
            format!(
                "{} \"{}\" is invalid: {}",
                qualified_kind,
                name,
                field::aggregate_message(errs)
            ),
        );
        e.details.name = Some(name.to_string());
        e.details.kind = Some(kind.to_string());
        if !group.is_empty() {
            e.details.group = Some(group.to_string());
        }
        e.details.causes = errs
            .iter()
            .map(|fe| Cause {
                reason: fe.kind.reason().to_string(),
                message: fe.body(),
                field: fe.field.clone(),
            })
            .collect();
        e
    }

    /// Kubernetes' `NewGenericServerResponse(422, ...)`: a generic message, the detail as a cause
    /// (what a failed JSON patch gets).
    pub fn unprocessable(detail: &str) -> Self {
        let mut e = Self::plain(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        );
        e.details.causes = vec![Cause {
            reason: String::new(),
            message: detail.to_string(),
            field: String::new(),
        }];
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::plain(400, "BadRequest", message)
    }

    /// `services "x" is forbidden: ...` (403).
    pub fn forbidden(info: &ResourceInfo, name: &str, detail: &str) -> Self {
        Self::plain(
            403,
            "Forbidden",
            format!(
                "{} \"{}\" is forbidden: {}",
                info.qualified_resource(),
                name,
                detail
            ),
        )
        .with_resource(info, name)
    }

    pub fn method_not_allowed() -> Self {
        Self::plain(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(supported: &[&str]) -> Self {
        Self::plain(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                supported.join(", ")
            ),
        )
    }

    pub fn not_acceptable(supported: &[&str]) -> Self {
        Self::plain(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: {}",
                supported.join(", ")
            ),
        )
    }

    /// 410 Gone with reason Expired (too old resourceVersion / continue token).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::plain(410, "Expired", message)
    }

    /// 504 for a resourceVersion the server has not reached in time.
    pub fn too_large_resource_version(requested: i64, current: i64) -> Self {
        let mut e = Self::plain(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        );
        e.details.retry_after_seconds = Some(1);
        e.details.causes = vec![Cause {
            reason: "ResourceVersionTooLarge".into(),
            message: "Too large resource version".into(),
            field: String::new(),
        }];
        e
    }

    /// `errors.NewTooManyRequests` (429): `retryAfterSeconds` (and the `Retry-After` header)
    /// only when non-zero, as Go omits the zero.
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: u32) -> Self {
        let mut e = Self::plain(429, "TooManyRequests", message);
        e.details.retry_after_seconds = Some(retry_after_seconds).filter(|s| *s > 0);
        e
    }

    pub fn unauthorized() -> Self {
        Self::plain(401, "Unauthorized", "Unauthorized")
    }

    /// `Request entity too large: limit is 3145728` (413): a body, or an object after a patch,
    /// over the body limit (kube-apiserver's `MaxRequestBodyBytes`).
    pub fn too_large(limit: usize) -> Self {
        Self::request_entity_too_large(&format!("limit is {limit}"))
    }

    /// `NewRequestEntityTooLargeError`: `Request entity too large: <detail>` (413).
    pub fn request_entity_too_large(detail: &str) -> Self {
        Self::plain(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: {detail}"),
        )
    }

    /// `Internal error occurred: ...` (500).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        let mut e = Self::plain(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        );
        e.details.causes = vec![Cause {
            reason: String::new(),
            message: message.to_string(),
            field: String::new(),
        }];
        e
    }

    /// A 500 whose message Kubernetes sends as is (no "Internal error occurred" prefix).
    pub fn internal_raw(message: impl Into<String>) -> Self {
        Self::plain(500, "", message)
    }

    /// The store is unavailable (503).
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::plain(503, "ServiceUnavailable", message)
    }

    /// The `metav1.Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        let mut details = serde_json::Map::new();
        let d = &self.details;
        if let Some(n) = &d.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &d.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &d.kind {
            details.insert("kind".into(), json!(k));
        }
        if !d.causes.is_empty() {
            let causes: Vec<Value> = d
                .causes
                .iter()
                .map(|c| {
                    let mut o = serde_json::Map::new();
                    if !c.reason.is_empty() {
                        o.insert("reason".into(), json!(c.reason));
                    }
                    if !c.message.is_empty() {
                        o.insert("message".into(), json!(c.message));
                    }
                    if !c.field.is_empty() {
                        o.insert("field".into(), json!(c.field));
                    }
                    Value::Object(o)
                })
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(r) = d.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            svcnet_store::encode::body(&self.to_status()),
        )
            .into_response();
        if let Some(r) = self.details.retry_after_seconds {
            resp.headers_mut().insert(header::RETRY_AFTER, r.into());
        }
        resp
    }
}

impl From<svcnet_store::StoreError> for ApiError {
    fn from(e: svcnet_store::StoreError) -> Self {
        match e {
            svcnet_store::StoreError::Compacted { .. } => ApiError::expired(e.to_string()),
            _ => ApiError::internal(e),
        }
    }
}

impl From<svcnet_store::cache::CacheError> for ApiError {
    fn from(e: svcnet_store::cache::CacheError) -> Self {
        use svcnet_store::cache::CacheError;
        match e {
            CacheError::Expired { requested, oldest } => {
                ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
            }
            CacheError::TooLargeResourceVersion { requested, current } => {
                ApiError::too_large_resource_version(requested, current)
            }
            CacheError::Lagged => ApiError::internal("watch fell behind"),
            CacheError::Store(s) => s.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
