//! The HTTP side of create, update (PUT, status, finalize), patch, delete and deletecollection:
//! decode the request (body, `fieldValidation`, patch formats, `DeleteOptions`), call the
//! [`crate::registry`], encode the answer (as kube-apiserver's `endpoints/handlers`).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::{encode_one, ResourceRequest};
use crate::codec::{self, Query, Representation};
use crate::error::{ApiError, ApiResult};
use crate::objmeta;
use crate::registry::{self, DeleteOptions, WriteOptions};
use crate::resources::ResourceInfo;

/// `fieldValidation`: how unknown fields in a body are treated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

fn field_validation(q: &Query) -> ApiResult<FieldValidation> {
    match q.field_validation.as_deref() {
        None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation: Invalid value: {other:?}: must be one of Ignore, Warn, or Strict"
        ))),
    }
}

/// Decode a request body into an object of `info`'s kind: kind/apiVersion checked, unknown
/// fields dropped (and reported per `fieldValidation`). Returns the object and warnings.
fn decode_object(info: &ResourceInfo, raw: Value, q: &Query) -> ApiResult<(Value, Vec<String>)> {
    let mode = field_validation(q)?;
    let api_version = info.api_version();
    let cannot = |detail: String| ApiError::cannot_handle(info, detail);
    let Value::Object(mut map) = raw else {
        return Err(cannot("the object provided is not a JSON object".into()));
    };
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(info.kind));
        }
        Some(k) if k == info.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): kind {:?} does not match",
            info.kind, k
        )))
        }
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
    }
    let raw = Value::Object(map);
    let decoded = info.strategy.decode(&raw).map_err(cannot)?;
    let unknown: Vec<String> = decoded
        .unknown_fields
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    match mode {
        FieldValidation::Strict if !unknown.is_empty() => Err(cannot(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        ))),
        FieldValidation::Warn => Ok((decoded.value, unknown)),
        _ => Ok((decoded.value, Vec::new())),
    }
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = HeaderValue::from_str(&v) {
            resp.headers_mut().append("Warning", h);
        }
    }
    resp
}

pub async fn create(r: &ResourceRequest<'_>, body: Body) -> ApiResult<Response> {
    let body = r.read_body(body).await?;
    let rep = r.negotiate()?;
    let raw = codec::decode_body(r.headers, &body)?;
    let (obj, warnings) = decode_object(r.target.info, raw, r.query)?;
    let info = r.target.info;
    let created = registry::create(
        r.state,
        info.storage(),
        r.namespace(),
        info.to_storage(obj),
        &r.write_options(),
    )
    .await?;
    Ok(with_warnings(
        encode_one(r.target.info, &created, rep, StatusCode::CREATED),
        &warnings,
    ))
}

pub async fn update(r: &ResourceRequest<'_>, body: Body) -> ApiResult<Response> {
    let body = r.read_body(body).await?;
    let t = r.target;
    let rep = r.negotiate()?;
    let name = r.name();
    let raw = codec::decode_body(r.headers, &body)?;
    let (obj, warnings) = decode_object(t.info, raw, r.query)?;
    check_name(t.info, &obj, &name, r.namespace())?;
    // The object's uid is a precondition on the stored one (`DefaultUpdatedObjectInfo`).
    let opts = WriteOptions {
        precondition_uid: objmeta::meta_str(&obj, "uid")
            .filter(|u| !u.is_empty())
            .map(str::to_string),
        ..r.write_options()
    };
    let stored = t.info.to_storage(obj);
    let (result, created) = registry::update(
        r.state,
        t.info.storage(),
        r.namespace(),
        &name,
        r.part(),
        &opts,
        true,
        |_| Ok(stored.clone()),
    )
    .await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_warnings(
        encode_one(t.info, &result, rep, code),
        &warnings,
    ))
}

/// The object of a PUT or the result of a PATCH is the object of the URL, as the update and
/// patch handlers check it: `rest.EnsureObjectNamespaceMatchesRequestNamespace` (a namespace, if
/// any, is the request's), then `checkName` (`endpoints/handlers/rest.go`).
fn check_name(info: &ResourceInfo, obj: &Value, name: &str, url_ns: Option<&str>) -> ApiResult<()> {
    if let (true, Some(ns), Some(url_ns)) = (info.namespaced, objmeta::namespace(obj), url_ns) {
        if ns != url_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let obj_name = objmeta::name(obj).unwrap_or("");
    if obj_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({obj_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// The patch formats Kubernetes accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    /// Server-side apply (`application/apply-patch+yaml`): see [`crate::ssa`].
    Apply,
}

const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

pub fn patch_type(headers: &HeaderMap) -> ApiResult<PatchType> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match ct.split(';').next().unwrap_or("").trim() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::StrategicMerge),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(ApiError::unsupported_media_type(PATCH_TYPES)),
    }
}

/// Apply a patch document to `current` (which carries its resourceVersion).
pub fn apply_patch(
    api_version: &str,
    kind: &str,
    patch_type: PatchType,
    current: &Value,
    patch: &Value,
) -> ApiResult<Value> {
    let result = match patch_type {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal into Go value of type map[string]interface {}",
                ));
            }
            Ok(svcnet_patch::merge_patch(current, patch))
        }
        PatchType::Json => svcnet_patch::json_patch(current, patch),
        PatchType::StrategicMerge => {
            let schema = svcnet_patch::schema::lookup(api_version, kind)
                .ok_or_else(|| ApiError::unsupported_media_type(&PATCH_TYPES[..2]))?;
            svcnet_patch::strategic_merge_patch(current, patch, schema)
        }
        // Applied by the caller, which knows the manager (`patch`); not on subresources.
        PatchType::Apply => return Err(ApiError::unsupported_media_type(&PATCH_TYPES[..3])),
    };
    result.map_err(|e| match e {
        svcnet_patch::PatchError::Invalid(m) => ApiError::bad_request(m),
        svcnet_patch::PatchError::Failed(m) => ApiError::unprocessable(&m),
        svcnet_patch::PatchError::TooLarge(m) => ApiError::request_entity_too_large(&m),
    })
}

/// A patch document (JSON, whatever its patch format).
pub fn decode_patch(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// `PatchOptions` validation (apimachinery `ValidatePatchOptions`): an apply names its
/// manager; only an apply may force.
fn validate_patch_options(q: &Query, patch_type: PatchType) -> ApiResult<()> {
    use svcnet_api::field::{Error as FieldError, Path};
    let mut errs = Vec::new();
    if patch_type == PatchType::Apply {
        if q.field_manager.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::required(
                &Path::new("fieldManager"),
                "is required for apply patch",
            ));
        }
    } else if q.force {
        errs.push(FieldError::forbidden(
            &Path::new("force"),
            "may not be specified for non-apply patch",
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_kind(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &errs,
        ))
    }
}

/// An apply patch's body: YAML (JSON is YAML), one object.
fn decode_apply_patch(body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the apply patch is not an object",
        ));
    }
    Ok(v)
}

/// The apply of `config` over `cur` (`Null`: create), as kube-apiserver's `applyPatcher`.
fn apply_config(r: &ResourceRequest<'_>, cur: &Value, config: &Value) -> ApiResult<Value> {
    let info = r.target.info;
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{config}'"
        )));
    }
    let version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if version != info.api_version() {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {version}, expected: {}",
            info.api_version()
        )));
    }
    let manager = r.query.field_manager.as_deref().unwrap_or("");
    let live = (!cur.is_null()).then_some(cur);
    crate::ssa::apply(info, r.part(), live, config, manager, r.query.force).map_err(|e| match e {
        svcnet_ssa::ApplyError::Conflicts(c) => ApiError::apply_conflict(c.message(), c.causes()),
        svcnet_ssa::ApplyError::BadRequest(m) => ApiError::bad_request(m),
        svcnet_ssa::ApplyError::Internal(m) => ApiError::internal(m),
    })
}

pub async fn patch(r: &ResourceRequest<'_>, body: Body) -> ApiResult<Response> {
    let body = r.read_body(body).await?;
    let rep = r.negotiate()?;
    let patch_type = patch_type(r.headers)?;
    validate_patch_options(r.query, patch_type)?;
    let patch = if patch_type == PatchType::Apply {
        decode_apply_patch(&body)?
    } else {
        decode_patch(&body)?
    };
    let name = r.name();
    let info = r.target.info;
    let opts = if patch_type == PatchType::Apply {
        WriteOptions {
            field_manager: None,
            force_allow_create: true,
            ..r.write_options()
        }
    } else {
        r.write_options()
    };
    let explicit_rv = patch.pointer("/metadata/resourceVersion").is_some()
        || patch.as_array().is_some_and(|ops| {
            ops.iter().any(|op| {
                op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
            })
        });
    let mut warnings = Vec::new();
    let (result, created) = registry::update(
        r.state,
        info.storage(),
        r.namespace(),
        &name,
        r.part(),
        &opts,
        false,
        |cur| {
            // The patch applies to the object as this API writes it.
            let cur = info.from_storage(cur);
            let patched = if patch_type == PatchType::Apply {
                apply_config(r, &cur, &patch)?
            } else {
                apply_patch(&info.api_version(), info.kind, patch_type, &cur, &patch)?
            };
            let (mut obj, w) = decode_object(info, patched, r.query)?;
            check_name(info, &obj, &name, r.namespace())?;
            // An object no body could carry is not stored (kube-apiserver leaves this to
            // etcd's request limit; see ARCHITECTURE.md). Unknown fields were dropped by the
            // decoding, as they would be before storing.
            let limit = r.state.config.max_request_body_bytes;
            if objmeta::encoded_len(&obj) > limit {
                return Err(ApiError::too_large(limit));
            }
            warnings = w;
            // A patch is conditional only when it names a resourceVersion itself; otherwise
            // it applies to whatever is current, and a lost race is retried (as Kubernetes).
            if !explicit_rv {
                objmeta::clear_resource_version(&mut obj);
            }
            Ok(info.to_storage(obj))
        },
    )
    .await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_warnings(
        encode_one(info, &result, rep, code),
        &warnings,
    ))
}

fn delete_options(q: &Query, headers: &HeaderMap, body: &[u8]) -> ApiResult<DeleteOptions> {
    let v = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(codec::decode_body(headers, body)?)
    };
    delete_options_of(q, v.as_ref())
}

/// DeleteOptions from the query and a decoded `DeleteOptions` object (a DELETE's body, an
/// Eviction's `deleteOptions`).
pub fn delete_options_of(q: &Query, v: Option<&Value>) -> ApiResult<DeleteOptions> {
    let mut o = DeleteOptions {
        grace_period_seconds: q.grace_period_seconds,
        propagation_policy: q.propagation_policy.clone(),
        dry_run: q.dry_run,
        ..Default::default()
    };
    if q.orphan_dependents == Some(true) && o.propagation_policy.is_none() {
        o.propagation_policy = Some("Orphan".into());
    }
    if let Some(v) = v {
        if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
            o.grace_period_seconds = Some(g);
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation_policy = Some(p.to_string());
        }
        if v.get("orphanDependents").and_then(Value::as_bool) == Some(true)
            && o.propagation_policy.is_none()
        {
            o.propagation_policy = Some("Orphan".into());
        }
        o.precondition_uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.precondition_rv = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        if v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            o.dry_run = true;
        }
    }
    if let Some(p) = &o.propagation_policy {
        if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
            return Err(ApiError::invalid_kind(
                "",
                "DeleteOptions",
                "",
                &[svcnet_api::field::Error::not_supported(
                    &svcnet_api::field::Path::new("propagationPolicy"),
                    p.as_str(),
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            ));
        }
    }
    if o.grace_period_seconds.is_some_and(|g| g < 0) {
        o.grace_period_seconds = Some(1);
    }
    Ok(o)
}

pub async fn delete(r: &ResourceRequest<'_>, body: Body) -> ApiResult<Response> {
    let body = r.read_body(body).await?;
    let rep = r.negotiate()?;
    let opts = delete_options(r.query, r.headers, &body)?;
    let info = r.target.info;
    let (obj, _) =
        registry::delete(r.state, info.storage(), r.namespace(), &r.name(), &opts).await?;
    Ok(encode_one(r.target.info, &obj, rep, StatusCode::OK))
}

pub async fn delete_collection(r: &ResourceRequest<'_>, body: Body) -> ApiResult<Response> {
    let body = r.read_body(body).await?;
    let rep = r.negotiate()?;
    let info = r.target.info;
    if !info.verbs.contains(&"deletecollection") {
        return Err(ApiError::method_not_allowed());
    }
    let opts = delete_options(r.query, r.headers, &body)?;
    let sel = super::Selectors::parse(info, r.query)?;
    let (deleted, rv) = registry::delete_collection(
        r.state,
        info.storage(),
        r.namespace(),
        |obj| sel.matches(info, obj),
        &opts,
    )
    .await?;
    let list = json!({
        "kind": info.list_kind,
        "apiVersion": info.api_version(),
        "metadata": { "resourceVersion": rv.to_string() },
        "items": deleted.iter().map(|o| info.from_storage(o).into_owned()).collect::<Vec<_>>(),
    });
    Ok(codec::respond(
        StatusCode::OK,
        &list,
        if rep == Representation::Yaml {
            rep
        } else {
            Representation::Json
        },
    ))
}
