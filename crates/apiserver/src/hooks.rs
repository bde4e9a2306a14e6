//! Kind-specific steps of the write path that go beyond defaulting and validation: Service
//! ClusterIP/NodePort allocation (Kubernetes' `beginCreate`/`beginUpdate` of the Service REST);
//! a CertificateSigningRequest's requester and fixed spec.

use k8s_openapi::api::core::v1::Service;
use serde_json::{json, Value};
use svcnet_api::defaults;

use crate::alloc::{owner_from_value, Claims};
use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::part::Part;
use crate::resources::{ResourceInfo, CERTIFICATESIGNINGREQUESTS, SERVICES};
use crate::state::AppState;

/// The single-stack families this cluster serves.
const CLUSTER_FAMILIES: &[&str] = &["IPv4"];

fn is_service(info: &ResourceInfo) -> bool {
    std::ptr::eq(info, &SERVICES)
}

fn typed(v: &Value) -> ApiResult<Service> {
    serde_json::from_value(v.clone())
        .map_err(|e| ApiError::internal(format!("decoding Service: {e}")))
}

fn untyped(s: &Service) -> ApiResult<Value> {
    serde_json::to_value(s).map_err(|e| ApiError::internal(format!("encoding Service: {e}")))
}

fn holder(state: &AppState) -> impl Fn(&str) -> Option<String> + '_ {
    move |key: &str| {
        state
            .cache
            .get(key)
            .0
            .and_then(|o| owner_from_value(&o.value).or(Some(String::new())))
    }
}

/// Before validation of a create: allocate what the object needs.
pub fn begin_create(state: &AppState, info: &ResourceInfo, obj: &mut Value) -> ApiResult<Claims> {
    if !is_service(info) {
        return Ok(Claims::default());
    }
    let mut svc = typed(obj)?;
    let errs = defaults::service::init_ip_families(&mut svc, CLUSTER_FAMILIES);
    if !errs.is_empty() {
        return Err(ApiError::invalid(
            info,
            svc.metadata.name.as_deref().unwrap_or(""),
            &errs,
        ));
    }
    let claims = state.alloc.allocate_create(&mut svc, &holder(state))?;
    *obj = untyped(&svc)?;
    Ok(claims)
}

/// Before validation of an update of the main resource.
pub fn begin_update(
    state: &AppState,
    info: &ResourceInfo,
    new: &mut Value,
    old: &Value,
) -> ApiResult<Claims> {
    if !is_service(info) {
        return Ok(Claims::default());
    }
    let mut svc = typed(new)?;
    let old_svc = typed(old)?;
    defaults::service::patch_allocated_values(&mut svc, &old_svc);
    defaults::service::drop_type_dependent_fields(&mut svc, &old_svc);
    let errs = defaults::service::init_ip_families_for_update(&mut svc, &old_svc, CLUSTER_FAMILIES);
    if !errs.is_empty() {
        return Err(ApiError::invalid(
            info,
            svc.metadata.name.as_deref().unwrap_or(""),
            &errs,
        ));
    }
    let claims = state
        .alloc
        .allocate_update(&mut svc, &old_svc, &holder(state))?;
    *new = untyped(&svc)?;
    Ok(claims)
}

/// What deleting the object releases.
pub fn on_delete(state: &AppState, info: &ResourceInfo, old: &Value) -> ApiResult<Claims> {
    if !is_service(info) {
        return Ok(Claims::default());
    }
    Ok(state.alloc.release_all(&typed(old)?))
}

fn is_csr(info: &ResourceInfo) -> bool {
    std::ptr::eq(info, &CERTIFICATESIGNINGREQUESTS)
}

/// After defaulting of a create, with the writer known: a CertificateSigningRequest records
/// who asked (its strategy's `PrepareForCreate`: `spec.username`, `uid`, `groups` from the
/// authenticated user, never from the body); its status was reset by the strategy.
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value, user: Option<&User>) {
    if !is_csr(info) {
        return;
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        for f in ["username", "uid", "groups", "extra"] {
            spec.remove(f);
        }
        if let Some(u) = user {
            let mut groups = u.groups.clone();
            if !groups.iter().any(|g| g == "system:authenticated") {
                groups.push("system:authenticated".into());
            }
            spec.insert("username".into(), json!(u.name));
            spec.insert("uid".into(), json!(u.uid));
            spec.insert("groups".into(), json!(groups));
        }
    }
}

/// After the part's fields are taken from the request: a CertificateSigningRequest's spec
/// never changes (`PrepareForUpdate` of all three strategies) and its conditions get their
/// timestamps (`populateConditionTimestamps`).
pub fn prepare_update(info: &ResourceInfo, part: Part, new: &mut Value, old: &Value) {
    if !is_csr(info) {
        return;
    }
    new["spec"] = old.get("spec").cloned().unwrap_or(Value::Null);
    if part == Part::Main {
        return;
    }
    let now = json!(crate::objmeta::now_rfc3339());
    let old_conditions = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(conditions) = new
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for c in conditions {
        let unset = |c: &Value, f: &str| c.get(f).is_none_or(Value::is_null);
        if unset(c, "lastUpdateTime") {
            c["lastUpdateTime"] = now.clone();
        }
        if unset(c, "lastTransitionTime") {
            let before = old_conditions
                .iter()
                .find(|o| o.get("type") == c.get("type") && o.get("status") == c.get("status"));
            c["lastTransitionTime"] = before
                .and_then(|o| o.get("lastTransitionTime"))
                .filter(|t| !t.is_null())
                .cloned()
                .unwrap_or_else(|| now.clone());
        }
    }
}
