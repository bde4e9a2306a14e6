//! Deployment conditions and status (upstream `progress.go`, `calculateStatus` of `sync.go`
//! and the condition helpers of `util/deployment_util.go`): Available, Progressing with
//! `progressDeadlineSeconds`, ReplicaFailure mirrored from the new ReplicaSet, and when a
//! rollout is complete. Pure: `sync.rs` writes what it computes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use kube::ResourceExt;

use super::util::{max_unavailable, replicas, rs_available, rs_replicas};
use crate::util;

fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// `SetDeploymentCondition`: replaces the condition of that type, keeping lastTransitionTime when
/// the status did not change; no-op when status and reason are the same.
pub(super) fn set_condition(
    status: &mut DeploymentStatus,
    type_: &str,
    st: &str,
    reason: &str,
    message: String,
) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let now = util::now();
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == st && c.reason.as_deref() == Some(reason) {
            return;
        }
        let transition = if c.status == st {
            c.last_transition_time.clone()
        } else {
            Some(now.clone())
        };
        *c = DeploymentCondition {
            type_: type_.into(),
            status: st.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_update_time: Some(now),
            last_transition_time: transition,
        };
        return;
    }
    conds.push(DeploymentCondition {
        type_: type_.into(),
        status: st.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

/// `calculateStatus`.
pub(super) fn calculate_status(
    d: &Deployment,
    all: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> DeploymentStatus {
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| all.iter().map(f).sum::<i32>();
    let available = sum(&rs_available);
    let total_spec = sum(&rs_replicas);
    let actual = |rs: &ReplicaSet| rs.status.as_ref().map_or(0, |s| s.replicas);
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(&actual)),
        updated_replicas: Some(new_rs.map_or(0, actual)),
        ready_replicas: Some(sum(&|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    if available >= replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        );
    } else {
        set_condition(
            &mut status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        );
    }
    status
}

/// `DeploymentComplete`.
pub(super) fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    s.updated_replicas == Some(r)
        && s.replicas == Some(r)
        && s.available_replicas == Some(r)
        && s.observed_generation >= d.metadata.generation
}

/// `DeploymentProgressing`.
pub(super) fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas > old.updated_replicas
        || new_old < old_old
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
}

pub(super) fn progress_deadline(d: &Deployment) -> Option<i64> {
    d.spec
        .as_ref()
        .map(|s| s.progress_deadline_seconds.unwrap_or(600))
        .filter(|s| *s < i32::MAX)
        .map(i64::from)
}

/// `syncRolloutStatus`'s status: the Progressing condition, and when to requeue to notice a
/// missed deadline.
pub(super) fn rollout_status(
    d: &Deployment,
    rss: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> (DeploymentStatus, Option<Duration>) {
    let mut st = calculate_status(d, rss, new_rs);
    let new_name = new_rs.map(|rs| rs.name_any()).unwrap_or_default();
    let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);
    let mut requeue = None;
    match progress_deadline(d) {
        None => remove_condition(&mut st, "Progressing"),
        Some(deadline) => {
            let cur = condition(&st, "Progressing").cloned();
            let is_complete = st.replicas == st.updated_replicas
                && cur.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
            if paused {
                set_condition(
                    &mut st,
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused".into(),
                );
            } else if !is_complete {
                if complete(d, &st) {
                    set_condition(
                        &mut st,
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                    );
                } else if progressing(d, &st) {
                    let msg = format!("ReplicaSet \"{new_name}\" is progressing.");
                    let transition = cur
                        .as_ref()
                        .filter(|c| c.status == "True")
                        .and_then(|c| c.last_transition_time.clone());
                    remove_condition(&mut st, "Progressing");
                    set_condition(&mut st, "Progressing", "True", "ReplicaSetUpdated", msg);
                    if let Some(t) = transition {
                        if let Some(c) = st
                            .conditions
                            .as_mut()
                            .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "Progressing"))
                        {
                            c.last_transition_time = Some(t);
                        }
                    }
                } else if let Some(c) = cur.as_ref() {
                    let since = c.last_update_time.as_ref().map_or(0, |t| t.0.as_second());
                    let left = since + deadline - jiff::Timestamp::now().as_second();
                    if c.reason.as_deref() != Some("ProgressDeadlineExceeded") {
                        if left <= 0 {
                            set_condition(
                                &mut st,
                                "Progressing",
                                "False",
                                "ProgressDeadlineExceeded",
                                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                            );
                        } else {
                            requeue = Some(Duration::from_secs(left as u64 + 1));
                        }
                    }
                }
            }
        }
    }
    // ReplicaFailure mirrors the new ReplicaSet's.
    let failure = new_rs.and_then(|rs| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
            .cloned()
    });
    match failure {
        Some(f) => set_condition(
            &mut st,
            "ReplicaFailure",
            "True",
            f.reason.as_deref().unwrap_or("FailedCreate"),
            f.message.unwrap_or_default(),
        ),
        None => remove_condition(&mut st, "ReplicaFailure"),
    }
    (st, requeue)
}
