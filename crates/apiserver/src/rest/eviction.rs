//! `POST pods/{name}/eviction`, as kube-apiserver's `EvictionREST`
//! (`pkg/registry/core/pod/storage/eviction.go`): the pod is deleted only if the one
//! PodDisruptionBudget selecting it allows a disruption, which the eviction takes
//! (`status.disruptionsAllowed` decremented, the pod recorded in `status.disruptedPods` for the
//! disruption controller). Pods that are not running (Pending, Succeeded, Failed, already
//! terminating) are deleted without looking at budgets.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};
use svcnet_api::disruption;
use svcnet_api::selector::LabelSelector;

use super::write::delete_options_of;
use super::ResourceRequest;
use crate::codec::{self, Representation};
use crate::error::{ApiError, ApiResult, Cause};
use crate::objmeta;
use crate::registry::{self, Part, WriteOptions};
use crate::resources::{PODDISRUPTIONBUDGETS, PODS};

/// `MaxDisruptedPodSize`: evictions the disruption controller has not confirmed yet.
const MAX_DISRUPTED_POD_SIZE: usize = 2000;

/// `policyv1.DisruptionBudgetCause`.
const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";

/// `errors.NewTooManyRequests` with the budget's cause.
fn too_many_requests(retry_after: u32, cause: String) -> ApiError {
    let mut e = ApiError::too_many_requests(
        "Cannot evict pod as it would violate the pod's disruption budget.",
        retry_after,
    );
    e.details.causes = vec![Cause {
        reason: DISRUPTION_BUDGET_CAUSE.into(),
        message: cause,
        field: String::new(),
    }];
    e
}

/// `canIgnorePDB`: a pod that is not running, or already terminating, disrupts nothing.
fn can_ignore_pdb(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    matches!(phase, Some("Succeeded" | "Failed" | "Pending"))
        || objmeta::deletion_timestamp(pod).is_some()
}

/// `podutil.IsPodReady`.
fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// `getPodDisruptionBudgets`: the budgets of the pod's namespace whose selector matches its
/// labels, with policy/v1's semantics (an empty selector matches every pod, none matches none).
fn budgets_of(r: &ResourceRequest<'_>, pod: &Value) -> Vec<PodDisruptionBudget> {
    let labels = objmeta::labels(pod);
    let (objs, _) = r
        .state
        .cache
        .list(&PODDISRUPTIONBUDGETS.prefix(r.namespace()));
    objs.iter()
        .filter_map(|o| serde_json::from_value::<PodDisruptionBudget>(o.value.clone()).ok())
        .filter(|pdb| {
            let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
                return false;
            };
            LabelSelector::from_meta(sel).is_ok_and(|s| s.matches(&labels))
        })
        .collect()
}

pub async fn evict(r: &ResourceRequest<'_>, body: Body) -> ApiResult<Response> {
    let body = r.read_body(body).await?;
    // policy/v1 or policy/v1beta1: the same fields.
    let eviction = codec::decode_body(r.headers, &body)?;
    let name = r.name();
    if eviction.pointer("/metadata/name").and_then(Value::as_str) != Some(name.as_str()) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let mut opts = delete_options_of(r.query, eviction.get("deleteOptions"))?;
    let dry_run = opts.dry_run;
    let key = PODS.key(r.namespace(), &name);
    r.state
        .cache
        .wait_consistent(std::time::Duration::from_secs(5))
        .await?;
    let Some(pod) = r.state.cache.get(&key).0 else {
        return Err(ApiError::not_found(&PODS, &name));
    };
    let pod = pod.value.clone();
    if !can_ignore_pdb(&pod) {
        let budgets = budgets_of(r, &pod);
        if budgets.len() > 1 {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(pdb) = budgets.into_iter().next() {
            let healthy_budget_unhealthy_pod = !is_ready(&pod) && {
                let policy = pdb
                    .spec
                    .as_ref()
                    .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
                let st = pdb.status.clone().unwrap_or_default();
                policy == Some("AlwaysAllow")
                    || (st.current_healthy >= st.desired_healthy && st.desired_healthy > 0)
            };
            if !healthy_budget_unhealthy_pod {
                check_and_decrement(r, &pdb, &name, dry_run).await?;
            }
            // The pod must still be the one the budget was checked against.
            if opts.precondition_uid.is_none() {
                opts.precondition_uid = objmeta::meta_str(&pod, "uid").map(str::to_string);
            }
        }
    }
    if !dry_run {
        let rv = add_disruption_target(r, &name).await?;
        // A resourceVersion precondition names the pod as the client saw it; the condition
        // just written is ours (as upstream re-reads it before deleting).
        if opts.precondition_rv.as_deref() == objmeta::resource_version(&pod) {
            opts.precondition_rv = opts.precondition_rv.map(|_| rv);
        }
    }
    registry::delete(r.state, &PODS, r.namespace(), &name, &opts).await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(codec::respond(
        StatusCode::CREATED,
        &status,
        Representation::Json,
    ))
}

/// `checkAndDecrement`: refuse when the budget allows no disruption (or the controller has not
/// seen its latest spec), else take one, recording the pod in `disruptedPods`.
async fn check_and_decrement(
    r: &ResourceRequest<'_>,
    pdb: &PodDisruptionBudget,
    pod_name: &str,
    dry_run: bool,
) -> ApiResult<()> {
    let pdb_name = pdb.metadata.name.clone().unwrap_or_default();
    let opts = WriteOptions {
        dry_run,
        field_manager: Some(r.field_manager()),
        ..Default::default()
    };
    registry::update(
        r.state,
        &PODDISRUPTIONBUDGETS,
        r.namespace(),
        &pdb_name,
        Part::Status,
        &opts,
        false,
        |cur| {
            let mut pdb: PodDisruptionBudget = serde_json::from_value(cur.clone())
                .map_err(ApiError::internal)?;
            let generation = pdb.metadata.generation.unwrap_or(0);
            let status = pdb.status.get_or_insert_with(Default::default);
            if status.observed_generation.unwrap_or(0) < generation {
                return Err(too_many_requests(
                    10,
                    format!("The disruption budget {pdb_name} is still being processed by the server."),
                ));
            }
            let forbidden = |detail: &str| {
                ApiError::forbidden(&PODDISRUPTIONBUDGETS, &pdb_name, detail)
            };
            if status.disruptions_allowed < 0 {
                return Err(forbidden("pdb disruptions allowed is negative"));
            }
            let disrupted = status.disrupted_pods.get_or_insert_with(Default::default);
            if disrupted.len() > MAX_DISRUPTED_POD_SIZE {
                return Err(forbidden("DisruptedPods map too big - too many evictions not confirmed by PDB controller"));
            }
            if status.disruptions_allowed == 0 {
                return Err(too_many_requests(
                    0,
                    format!(
                        "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                        status.desired_healthy, status.current_healthy
                    ),
                ));
            }
            let now = Time(jiff::Timestamp::now());
            disrupted.insert(pod_name.to_string(), now.clone());
            status.disruptions_allowed -= 1;
            if status.disruptions_allowed == 0 {
                disruption::update_disruption_allowed_condition(status, now);
            }
            let mut next = serde_json::to_value(&pdb).map_err(ApiError::internal)?;
            objmeta::clear_resource_version(&mut next);
            Ok(next)
        },
    )
    .await?;
    Ok(())
}

/// `addConditionAndDeletePod`'s condition: `DisruptionTarget` (reason
/// `EvictionByEvictionAPI`), so the pod's owner can tell an eviction from a failure.
async fn add_disruption_target(r: &ResourceRequest<'_>, name: &str) -> ApiResult<String> {
    let now = objmeta::now_rfc3339();
    let result = registry::update(
        r.state,
        &PODS,
        r.namespace(),
        name,
        Part::Status,
        &r.write_options(),
        false,
        |cur| {
            let mut next = cur.clone();
            let conds = next["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "DisruptionTarget").collect();
            conds.push(json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
                "lastTransitionTime": now, "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}));
            next["status"]["conditions"] = Value::Array(conds);
            objmeta::clear_resource_version(&mut next);
            Ok(next)
        },
    )
    .await;
    let (obj, _) = result?;
    Ok(objmeta::resource_version(&obj).unwrap_or("").to_string())
}
