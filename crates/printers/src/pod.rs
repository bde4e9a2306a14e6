//! The pod printer (`printPod`): READY, STATUS as kubectl shows it (init containers, sidecars,
//! waiting and terminated reasons, a lost node), RESTARTS with the last restart's age, the IP,
//! node, nominated node and readiness gates; and the `Completed` row condition.

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::{age, since};
use crate::json::{arr_at, bool_at, get, has, int_at, name, opt_bool_at, str_at, time_at};

/// `k8s.io/kubernetes/pkg/util/node.NodeUnreachablePodReason`.
const NODE_UNREACHABLE_POD_REASON: &str = "NodeLost";

/// metav1.Time.Before with Go's zero time as `None` (before every real time).
fn before(t: Option<Timestamp>, u: Option<Timestamp>) -> bool {
    match (t, u) {
        (None, Some(_)) => true,
        (Some(t), Some(u)) => t < u,
        _ => false,
    }
}

/// `podutil.IsRestartableInitContainer` (a sidecar).
fn is_restartable_init_container(c: Option<&Value>) -> bool {
    c.is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
}

fn has_condition(obj: &Value, type_: &str) -> bool {
    arr_at(obj, &["status", "conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == type_ && str_at(c, &["status"]) == "True")
}

/// `isPodInitializedConditionTrue`: the first `Initialized` condition decides.
fn is_pod_initialized(obj: &Value) -> bool {
    arr_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Initialized")
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

pub(crate) fn pod(obj: &Value, now: Timestamp) -> Vec<Value> {
    let status = get(obj, &["status"]).unwrap_or(&Value::Null);
    let init_specs = arr_at(obj, &["spec", "initContainers"]);
    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let mut total_containers = arr_at(obj, &["spec", "containers"]).len();
    let mut ready_containers = 0usize;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_init_restart: Option<Timestamp> = None;

    let phase = str_at(status, &["phase"]);
    let mut reason = match str_at(status, &["reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };

    // {type: PodScheduled, reason: SchedulingGated} makes the reason SchedulingGated.
    for c in arr_at(status, &["conditions"]) {
        if str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }

    // Later duplicates override earlier ones, as in upstream's map.
    let mut init_by_name: HashMap<&str, &Value> = HashMap::new();
    for c in init_specs {
        init_by_name.insert(str_at(c, &["name"]), c);
        if is_restartable_init_container(Some(c)) {
            total_containers += 1;
        }
    }

    let mut initializing = false;
    for (i, cs) in arr_at(status, &["initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let restart_count = int_at(cs, &["restartCount"]);
        restarts += restart_count;
        let last_terminated = has(cs, &["lastState", "terminated"])
            .then(|| time_at(cs, &["lastState", "terminated", "finishedAt"]));
        if let Some(finished) = last_terminated {
            if before(last_restart, finished) {
                last_restart = finished;
            }
        }
        let restartable =
            is_restartable_init_container(init_by_name.get(str_at(cs, &["name"])).copied());
        if restartable {
            restartable_init_restarts += restart_count;
            if let Some(finished) = last_terminated {
                if before(last_restartable_init_restart, finished) {
                    last_restartable_init_restart = finished;
                }
            }
        }
        let terminated = has(cs, &["state", "terminated"]);
        let waiting_reason = str_at(cs, &["state", "waiting", "reason"]);
        if terminated && int_at(cs, &["state", "terminated", "exitCode"]) == 0 {
            continue;
        } else if restartable && opt_bool_at(cs, &["started"]) == Some(true) {
            if bool_at(cs, &["ready"]) {
                ready_containers += 1;
            }
            continue;
        } else if terminated {
            // Initialization failed.
            let t_reason = str_at(cs, &["state", "terminated", "reason"]);
            reason = if t_reason.is_empty() {
                let signal = int_at(cs, &["state", "terminated", "signal"]);
                if signal != 0 {
                    format!("Init:Signal:{signal}")
                } else {
                    let code = int_at(cs, &["state", "terminated", "exitCode"]);
                    format!("Init:ExitCode:{code}")
                }
            } else {
                format!("Init:{t_reason}")
            };
        } else if has(cs, &["state", "waiting"])
            && !waiting_reason.is_empty()
            && waiting_reason != "PodInitializing"
        {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || is_pod_initialized(obj) {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        for cs in arr_at(status, &["containerStatuses"]).iter().rev() {
            restarts += int_at(cs, &["restartCount"]);
            if has(cs, &["lastState", "terminated"]) {
                let finished = time_at(cs, &["lastState", "terminated", "finishedAt"]);
                if before(last_restart, finished) {
                    last_restart = finished;
                }
            }
            let waiting_reason = str_at(cs, &["state", "waiting", "reason"]);
            let terminated = has(cs, &["state", "terminated"]);
            let terminated_reason = str_at(cs, &["state", "terminated", "reason"]);
            if has(cs, &["state", "waiting"]) && !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if terminated && !terminated_reason.is_empty() {
                reason = terminated_reason.to_string();
            } else if terminated {
                let signal = int_at(cs, &["state", "terminated", "signal"]);
                reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    let code = int_at(cs, &["state", "terminated", "exitCode"]);
                    format!("ExitCode:{code}")
                };
            } else if bool_at(cs, &["ready"]) && has(cs, &["state", "running"]) {
                has_running = true;
                ready_containers += 1;
            }
        }

        // Back to "Running" if at least one container is still reporting as running.
        if reason == "Completed" && has_running {
            reason = if has_condition(obj, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if has(obj, &["metadata", "deletionTimestamp"]) {
        if str_at(status, &["reason"]) == NODE_UNREACHABLE_POD_REASON {
            reason = "Unknown".to_string();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".to_string();
        }
    }

    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    vec![
        json!(name(obj)),
        json!(format!("{ready_containers}/{total_containers}")),
        json!(reason),
        json!(restarts_str),
        age(obj, now),
        json!(pod_ip(status)),
        json!(none_if_empty(str_at(obj, &["spec", "nodeName"]))),
        json!(none_if_empty(str_at(status, &["nominatedNodeName"]))),
        json!(readiness_gates(obj)),
    ]
}

/// The first pod IP; `status.podIP` is authoritative, as in the v1 → internal conversion.
fn pod_ip(status: &Value) -> &str {
    let ip = str_at(status, &["podIP"]);
    if !ip.is_empty() {
        return ip;
    }
    none_if_empty(
        arr_at(status, &["podIPs"])
            .first()
            .map(|p| str_at(p, &["ip"]))
            .unwrap_or(""),
    )
}

fn none_if_empty(s: &str) -> &str {
    if s.is_empty() {
        "<none>"
    } else {
        s
    }
}

/// `true/total` readiness gates, `<none>` without gates.
fn readiness_gates(obj: &Value) -> String {
    let gates = arr_at(obj, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = arr_at(obj, &["status", "conditions"]);
    let true_conditions = gates
        .iter()
        .filter(|gate| {
            let t = str_at(gate, &["conditionType"]);
            conditions
                .iter()
                .find(|c| str_at(c, &["type"]) == t)
                .is_some_and(|c| str_at(c, &["status"]) == "True")
        })
        .count();
    format!("{true_conditions}/{}", gates.len())
}

/// `metav1.TableRowCondition`s upstream attaches to a pod's row: `Completed` for pods that
/// succeeded or failed.
pub(crate) fn pod_row_conditions(obj: &Value) -> Vec<Value> {
    let (reason, message) = match str_at(obj, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return Vec::new(),
    };
    vec![json!({
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    })]
}

#[cfg(test)]
mod tests;
