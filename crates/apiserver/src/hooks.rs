//! Kind-specific steps of the write path that go beyond defaulting and validation: Service
//! ClusterIP/NodePort allocation (Kubernetes' `beginCreate`/`beginUpdate` of the Service REST).

use k8s_openapi::api::core::v1::Service;
use serde_json::Value;
use svcnet_api::defaults;

use crate::alloc::{owner_from_value, Claims};
use crate::error::{ApiError, ApiResult};
use crate::resources::{ResourceInfo, SERVICES};
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
