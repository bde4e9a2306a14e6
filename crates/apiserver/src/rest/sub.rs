//! Subresources with their own object types: `scale` (autoscaling/v1 Scale) of Deployments,
//! ReplicaSets and ReplicationControllers, and `binding` of Pods (what a scheduler posts).

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};
use svcnet_api::field::{Error as FieldError, Path};
use svcnet_api::selector::LabelSelector;

use super::read::get_cached;
use super::write::{apply_patch, decode_patch, patch_type};
use super::ResourceRequest;
use crate::codec::{self, Representation};
use crate::error::{ApiError, ApiResult};
use crate::objmeta;
use crate::registry::{self, Part};
use crate::resources::ResourceInfo;

/// The Scale of `obj`. A ReplicationController's selector is a plain map
/// (`labels.SelectorFromSet(rc.Spec.Selector)`), the apps kinds' a LabelSelector.
fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
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
    if let Some((spec, status, selector)) =
        info.strategy.custom().and_then(|c| c.current().scale(obj))
    {
        // A custom resource's Scale reads the CRD's `subresources.scale` paths.
        return json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": smeta,
            "spec": { "replicas": spec },
            "status": { "replicas": status, "selector": selector },
        });
    }
    let selector = obj.pointer("/spec/selector").cloned();
    let selector = if info.kind == "ReplicationController" {
        selector
            .and_then(|s| serde_json::from_value(s).ok())
            .map(|m| LabelSelector::from_map(&m))
    } else {
        selector
            .and_then(|s| serde_json::from_value(s).ok())
            .and_then(|s| LabelSelector::from_meta(&s).ok())
    };
    let selector = selector.map(|s| s.to_string()).unwrap_or_default();
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

pub async fn get_scale(r: &ResourceRequest<'_>) -> ApiResult<Response> {
    let rep = r.negotiate()?;
    let obj = get_cached(r.state, r.target, None).await?;
    Ok(codec::respond(
        StatusCode::OK,
        &scale_of(r.target.info, &obj.value),
        rep,
    ))
}

/// PUT (a Scale body) or PATCH (`patch`) of `scale`: changes `spec.replicas` of the object.
pub async fn update_scale(r: &ResourceRequest<'_>, body: Body, patch: bool) -> ApiResult<Response> {
    let body = r.read_body(body).await?;
    let patch_type = if patch {
        Some(patch_type(r.headers)?)
    } else {
        None
    };
    let rep = r.negotiate()?;
    let input: Value = match patch_type {
        Some(_) => decode_patch(&body)?,
        None => codec::decode_body(r.headers, &body)?,
    };
    let name = r.name();
    let info = r.target.info;
    let (obj, _) = registry::update(
        r.state,
        info,
        r.namespace(),
        &name,
        Part::Main,
        &r.write_options(),
        false,
        |cur| {
            let current_scale = scale_of(info, cur);
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
            match info.strategy.custom() {
                Some(c) => c.current().set_replicas(&mut next, replicas),
                None => next["spec"]["replicas"] = json!(replicas),
            }
            // A resourceVersion in the Scale is a precondition on the object.
            match objmeta::resource_version(&desired) {
                Some(rv)
                    if patch_type.is_none()
                        || rv != objmeta::resource_version(&current_scale).unwrap_or("") =>
                {
                    objmeta::meta_mut(&mut next).insert("resourceVersion".into(), json!(rv));
                }
                _ => objmeta::clear_resource_version(&mut next),
            }
            Ok(next)
        },
    )
    .await?;
    Ok(codec::respond(StatusCode::OK, &scale_of(info, &obj), rep))
}

/// `POST pods/{name}/binding`: assign the pod to a node, once.
pub async fn bind(r: &ResourceRequest<'_>, body: Body) -> ApiResult<Response> {
    let body = r.read_body(body).await?;
    let binding = codec::decode_body(r.headers, &body)?;
    let name = r.name();
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
    let info = r.target.info;
    // One write, as the binding REST's: the node, and the PodScheduled condition.
    let now = objmeta::now_rfc3339();
    registry::update(
        r.state,
        info,
        r.namespace(),
        &name,
        Part::Binding,
        &r.write_options(),
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
            objmeta::clear_resource_version(&mut next);
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
