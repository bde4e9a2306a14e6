//! Subresources with their own object types: `scale` (autoscaling/v1 Scale) of Deployments and
//! ReplicaSets, and `binding` of Pods (what a scheduler posts).

use std::sync::Arc;

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use svcnet_api::field::{Error as FieldError, Path};
use svcnet_api::selector::LabelSelector;

use super::read::get_cached;
use super::write::{apply_patch, PatchType};
use crate::codec::{self, Query, Representation};
use crate::error::{ApiError, ApiResult};
use crate::objmeta;
use crate::registry::{self, Part};
use crate::request::Target;
use crate::state::AppState;

fn scale_of(obj: &Value) -> Value {
    let meta = objmeta::meta(obj).cloned().unwrap_or_default();
    let mut smeta = serde_json::Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            smeta.insert(f.into(), v.clone());
        }
    }
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .and_then(|s| LabelSelector::from_meta(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": smeta,
        "spec": { "replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0) },
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

pub async fn get_scale(
    state: &Arc<AppState>,
    t: &Target,
    rep: Representation,
) -> ApiResult<Response> {
    let obj = get_cached(state, t, None).await?;
    Ok(codec::respond(StatusCode::OK, &scale_of(&obj.value), rep))
}

/// PUT (a Scale body) or PATCH (`patch_type`) of `scale`: changes `spec.replicas` of the object.
pub async fn update_scale(
    state: &Arc<AppState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
    patch_type: Option<PatchType>,
) -> ApiResult<Response> {
    let rep = codec::negotiate(headers)?;
    let input: Value = match patch_type {
        Some(_) => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        None => codec::decode_body(headers, body)?,
    };
    let name = t.name.clone().unwrap_or_default();
    let info = t.info;
    let (obj, _) = registry::update(
        state,
        info,
        t.namespace.as_deref(),
        &name,
        Part::Main,
        &q.into(),
        false,
        |cur| {
            let current_scale = scale_of(cur);
            let desired = match patch_type {
                Some(pt) => apply_patch("autoscaling/v1", "Scale", pt, &current_scale, &input)?,
                None => input.clone(),
            };
            let replicas = desired
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid_kind(
                    "autoscaling",
                    "Scale",
                    &name,
                    &[FieldError::invalid(
                        &Path::new("spec").child("replicas"),
                        replicas,
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut next = cur.clone();
            next["spec"]["replicas"] = json!(replicas);
            // A resourceVersion in the Scale is a precondition on the object.
            match objmeta::resource_version(&desired) {
                Some(rv)
                    if patch_type.is_none()
                        || rv != objmeta::resource_version(&current_scale).unwrap_or("") =>
                {
                    objmeta::meta_mut(&mut next).insert("resourceVersion".into(), json!(rv));
                }
                _ => {
                    if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                }
            }
            Ok(next)
        },
    )
    .await?;
    Ok(codec::respond(StatusCode::OK, &scale_of(&obj), rep))
}

/// `POST pods/{name}/binding`: assign the pod to a node, once.
pub async fn bind(
    state: &Arc<AppState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let binding = codec::decode_body(headers, body)?;
    let name = t.name.clone().unwrap_or_default();
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_kind(
                "",
                "Binding",
                &name,
                &[FieldError::required(&Path::new("target").child("name"), "")],
            )
        })?
        .to_string();
    let info = t.info;
    // One write, as the binding REST's: the node, and the PodScheduled condition.
    let now = objmeta::now_rfc3339();
    registry::update(
        state,
        info,
        t.namespace.as_deref(),
        &name,
        Part::Binding,
        &q.into(),
        false,
        |cur| {
            if let Some(existing) = cur
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                return Err(ApiError::conflict(
                    info,
                    &name,
                    &format!("pod {name} is already assigned to node \"{existing}\""),
                ));
            }
            if objmeta::deletion_timestamp(cur).is_some() {
                return Err(ApiError::conflict(
                    info,
                    &name,
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            let mut next = cur.clone();
            next["spec"]["nodeName"] = json!(node);
            let conds = next["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
            next["status"]["conditions"] = Value::Array(conds);
            if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            Ok(next)
        },
    )
    .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(codec::respond(
        StatusCode::CREATED,
        &status,
        Representation::Json,
    ))
}
