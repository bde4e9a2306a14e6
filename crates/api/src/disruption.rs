//! PodDisruptionBudget helpers both the eviction subresource and the disruption controller use
//! (`pkg/apis/policy` and `k8s.io/component-helpers/.../pdb`): the `DisruptionAllowed`
//! condition.

use k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// `policy.DisruptionAllowedCondition`.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// `policy.SufficientPodsReason`.
pub const SUFFICIENT_PODS: &str = "SufficientPods";
/// `policy.InsufficientPodsReason`.
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
/// `policy.SyncFailedReason`.
pub const SYNC_FAILED: &str = "SyncFailed";

/// `pdbhelper.UpdateDisruptionAllowedCondition`: True/SufficientPods while disruptions are
/// allowed, False/InsufficientPods otherwise.
pub fn update_disruption_allowed_condition(status: &mut PodDisruptionBudgetStatus, now: Time) {
    let (s, reason) = if status.disruptions_allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    let generation = status.observed_generation;
    set_status_condition(status, s, reason, "", generation, now);
}

/// `meta.SetStatusCondition` of the `DisruptionAllowed` condition: the transition time moves
/// only when the status changes.
pub fn set_status_condition(
    status: &mut PodDisruptionBudgetStatus,
    s: &str,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    match conds.iter_mut().find(|c| c.type_ == DISRUPTION_ALLOWED) {
        Some(c) => {
            if c.status != s {
                c.status = s.to_string();
                c.last_transition_time = now;
            }
            c.reason = reason.to_string();
            c.message = message.to_string();
            c.observed_generation = observed_generation;
        }
        None => conds.push(Condition {
            type_: DISRUPTION_ALLOWED.to_string(),
            status: s.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            observed_generation,
            last_transition_time: now,
        }),
    }
}
