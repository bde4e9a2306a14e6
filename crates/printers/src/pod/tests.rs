//! The pod printer's tables: upstream's `printers_test.go` cases (status reasons, init
//! containers, sidecars, restarts) and the seed documents' pods.

use pretty_assertions::assert_eq;
use serde_json::{json, Value};

use crate::row_conditions;
use crate::testing::{ago, json_row, meta, row};

fn containers(n: usize) -> Value {
    Value::Array((0..n).map(|_| json!({"name": "", "image": ""})).collect())
}

/// The first five (non-wide) cells of a pod named as given, created at an unknown time.
fn pod_cells(pod: &Value) -> Vec<Value> {
    row("", "pods", pod)[..5].to_vec()
}

fn want(name: &str, ready: &str, status: &str, restarts: &str) -> Vec<Value> {
    vec![
        json!(name),
        json!(ready),
        json!(status),
        json!(restarts),
        json!("<unknown>"),
    ]
}

#[test]
fn pod_status_upstream_cases() {
    let running = json!({"running": {}});
    let finished = |secs: i64| json!({"terminated": {"finishedAt": ago(secs)}});
    let cases: Vec<(Value, Vec<Value>)> = vec![
        // Name, num of containers, restarts, container ready status.
        (
            json!({"metadata": {"name": "test1"}, "spec": {"containers": containers(2)},
                   "status": {"phase": "podPhase", "containerStatuses": [
                       {"ready": true, "restartCount": 3, "state": running},
                       {"restartCount": 3}]}}),
            want("test1", "1/2", "podPhase", "6"),
        ),
        // Container error overwrites pod phase.
        (
            json!({"metadata": {"name": "test2"}, "spec": {"containers": containers(2)},
                   "status": {"phase": "podPhase", "containerStatuses": [
                       {"ready": true, "restartCount": 3, "state": running},
                       {"restartCount": 3, "state": {"waiting": {"reason": "ContainerWaitingReason"}}}]}}),
            want("test2", "1/2", "ContainerWaitingReason", "6"),
        ),
        // Terminated state; the first container overwrites the rest.
        (
            json!({"metadata": {"name": "test3"}, "spec": {"containers": containers(2)},
                   "status": {"phase": "podPhase", "containerStatuses": [
                       {"restartCount": 3, "state": {"waiting": {"reason": "ContainerWaitingReason"}}},
                       {"restartCount": 3, "state": {"terminated": {"reason": "ContainerTerminatedReason"}}}]}}),
            want("test3", "0/2", "ContainerWaitingReason", "6"),
        ),
        // Ready is not enough for reporting running.
        (
            json!({"metadata": {"name": "test4"}, "spec": {"containers": containers(2)},
                   "status": {"phase": "podPhase", "containerStatuses": [
                       {"ready": true, "restartCount": 3, "state": running},
                       {"ready": true, "restartCount": 3}]}}),
            want("test4", "1/2", "podPhase", "6"),
        ),
        (
            json!({"metadata": {"name": "test5"}, "spec": {"containers": containers(2)},
                   "status": {"reason": "podReason", "phase": "podPhase", "containerStatuses": [
                       {"ready": true, "restartCount": 3, "state": running},
                       {"ready": true, "restartCount": 3}]}}),
            want("test5", "1/2", "podReason", "6"),
        ),
        // One running, one completed, without a Ready condition.
        (
            json!({"metadata": {"name": "test6"}, "spec": {"containers": containers(2)},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"ready": true, "restartCount": 3, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                       {"ready": true, "restartCount": 3, "state": running}]}}),
            want("test6", "1/2", "NotReady", "6"),
        ),
        // ... and with one.
        (
            json!({"metadata": {"name": "test6"}, "spec": {"containers": containers(2)},
                   "status": {"phase": "Running",
                              "conditions": [{"type": "Ready", "status": "True"}],
                              "containerStatuses": [
                       {"ready": true, "restartCount": 3, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                       {"ready": true, "restartCount": 3, "state": running}]}}),
            want("test6", "1/2", "Running", "6"),
        ),
        // 1 init container restarting and 1 container not running.
        (
            json!({"metadata": {"name": "test7"},
                   "spec": {"initContainers": containers(1), "containers": containers(1)},
                   "status": {"phase": "podPhase",
                              "initContainerStatuses": [{"ready": false, "restartCount": 3, "state": running,
                                                         "lastState": finished(10)}],
                              "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"waiting": {}}}]}}),
            want("test7", "0/1", "Init:0/1", "3 (10s ago)"),
        ),
        // 2 init containers, one restarting and the other not running.
        (
            json!({"metadata": {"name": "test8"},
                   "spec": {"initContainers": containers(2), "containers": containers(1)},
                   "status": {"phase": "podPhase",
                              "initContainerStatuses": [
                                  {"ready": false, "restartCount": 3, "state": running, "lastState": finished(10)},
                                  {"ready": false, "state": {"waiting": {}}}],
                              "containerStatuses": [{"ready": false, "state": {"waiting": {}}}]}}),
            want("test8", "0/1", "Init:0/2", "3 (10s ago)"),
        ),
        // 2 init containers, one completed without restarts and the other restarting.
        (
            json!({"metadata": {"name": "test9"},
                   "spec": {"initContainers": containers(2), "containers": containers(1)},
                   "status": {"phase": "podPhase",
                              "initContainerStatuses": [
                                  {"ready": false, "state": {"terminated": {}}},
                                  {"ready": false, "restartCount": 3, "state": running, "lastState": finished(10)}],
                              "containerStatuses": [{"ready": false, "state": {"waiting": {}}}]}}),
            want("test9", "0/1", "Init:1/2", "3 (10s ago)"),
        ),
        // 2 init containers, one completed with restarts and the other restarting.
        (
            json!({"metadata": {"name": "test10"},
                   "spec": {"initContainers": containers(2), "containers": containers(1)},
                   "status": {"phase": "podPhase",
                              "initContainerStatuses": [
                                  {"ready": false, "restartCount": 2, "state": {"terminated": {}}, "lastState": finished(120)},
                                  {"ready": false, "restartCount": 3, "state": running, "lastState": finished(10)}],
                              "containerStatuses": [{"ready": false, "state": {"waiting": {}}}]}}),
            want("test10", "0/1", "Init:1/2", "5 (10s ago)"),
        ),
        // 1 init container completed with restarts and one container restarting.
        (
            json!({"metadata": {"name": "test11"},
                   "spec": {"initContainers": containers(1), "containers": containers(1)},
                   "status": {"phase": "Running",
                              "initContainerStatuses": [
                                  {"ready": false, "restartCount": 2, "state": {"terminated": {}}, "lastState": finished(120)}],
                              "containerStatuses": [
                                  {"ready": false, "restartCount": 4, "state": running, "lastState": finished(20)}]}}),
            want("test11", "0/1", "Running", "4 (20s ago)"),
        ),
        // 1 container that restarted 5d ago.
        (
            json!({"metadata": {"name": "test12"}, "spec": {"containers": containers(1)},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"ready": true, "restartCount": 3, "state": running, "lastState": finished(5 * 86400)}]}}),
            want("test12", "1/1", "Running", "3 (5d ago)"),
        ),
        // 2 containers, one never restarted and the other restarted 10d ago.
        (
            json!({"metadata": {"name": "test13"}, "spec": {"containers": containers(2)},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"ready": true, "restartCount": 0, "state": running},
                       {"ready": true, "restartCount": 3, "state": running, "lastState": finished(10 * 86400)}]}}),
            want("test13", "2/2", "Running", "3 (10d ago)"),
        ),
        // 2 containers, restarted 5d and 20d ago.
        (
            json!({"metadata": {"name": "test14"}, "spec": {"containers": containers(2)},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"ready": true, "restartCount": 6, "state": running, "lastState": finished(5 * 86400)},
                       {"ready": true, "restartCount": 3, "state": running, "lastState": finished(20 * 86400)}]}}),
            want("test14", "2/2", "Running", "9 (5d ago)"),
        ),
        // PodScheduled condition with reason SchedulingGated.
        (
            json!({"metadata": {"name": "test15"}, "spec": {"containers": containers(2)},
                   "status": {"phase": "podPhase", "conditions": [
                       {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}),
            want("test15", "0/2", "SchedulingGated", "0"),
        ),
        // Succeeded / Failed.
        (
            json!({"metadata": {"name": "test16"}, "spec": {"containers": containers(1)},
                   "status": {"phase": "Succeeded", "containerStatuses": [
                       {"ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}}),
            want("test16", "0/1", "Completed", "0"),
        ),
        (
            json!({"metadata": {"name": "test17"}, "spec": {"containers": containers(1)},
                   "status": {"phase": "Failed", "containerStatuses": [
                       {"ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Error", "exitCode": 1}}}]}}),
            want("test17", "0/1", "Error", "0"),
        ),
        // Deletion of a succeeded pod keeps Completed; of a running or pending one: Terminating.
        (
            json!({"metadata": {"name": "test18", "deletionTimestamp": ago(10)}, "spec": {"containers": containers(1)},
                   "status": {"phase": "Succeeded", "containerStatuses": [
                       {"ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}}),
            want("test18", "0/1", "Completed", "0"),
        ),
        (
            json!({"metadata": {"name": "test19", "deletionTimestamp": ago(10)}, "spec": {"containers": containers(1)},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"ready": false, "restartCount": 0, "state": running}]}}),
            want("test19", "0/1", "Terminating", "0"),
        ),
        (
            json!({"metadata": {"name": "test20", "deletionTimestamp": ago(10)}, "spec": {"containers": containers(1)},
                   "status": {"phase": "Pending"}}),
            want("test20", "0/1", "Terminating", "0"),
        ),
        // Statuses for init containers and containers that do not exist in the spec.
        (
            json!({"metadata": {"name": "test4"},
                   "spec": {"initContainers": [{"name": "init1", "image": "initimage"},
                                               {"name": "sidecar1", "image": "sidecarimage", "restartPolicy": "Always"}],
                            "containers": [{"name": "container1", "image": "containerimage"}]},
                   "status": {"phase": "Running",
                              "initContainerStatuses": [{"name": "initinvalid"}, {"name": "init1"}, {"name": "sidecar1"}],
                              "containerStatuses": [{"name": "containerinvalid"}, {"name": "container1"}]}}),
            want("test4", "0/2", "Init:0/2", "0"),
        ),
    ];
    for (pod, expected) in cases {
        assert_eq!(pod_cells(&pod), expected, "{pod}");
    }
}

#[test]
fn pod_status_more_reasons() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "image pull / container creating",
            json!({"spec": {"containers": containers(1)}, "status": {"phase": "Pending",
                   "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
            "ContainerCreating",
        ),
        (
            "crash loop",
            json!({"spec": {"containers": containers(1)}, "status": {"phase": "Running",
                   "containerStatuses": [{"restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
            "CrashLoopBackOff",
        ),
        (
            "terminated without reason: signal",
            json!({"spec": {"containers": containers(1)}, "status": {"phase": "Running",
                   "containerStatuses": [{"state": {"terminated": {"signal": 9, "exitCode": 137}}}]}}),
            "Signal:9",
        ),
        (
            "terminated without reason: exit code",
            json!({"spec": {"containers": containers(1)}, "status": {"phase": "Running",
                   "containerStatuses": [{"state": {"terminated": {"exitCode": 3}}}]}}),
            "ExitCode:3",
        ),
        (
            "init container failed with a reason",
            json!({"spec": {"initContainers": containers(1), "containers": containers(1)}, "status": {"phase": "Pending",
                   "initContainerStatuses": [{"state": {"terminated": {"reason": "Error", "exitCode": 1}}}]}}),
            "Init:Error",
        ),
        (
            "init container failed by signal",
            json!({"spec": {"initContainers": containers(1), "containers": containers(1)}, "status": {"phase": "Pending",
                   "initContainerStatuses": [{"state": {"terminated": {"signal": 15, "exitCode": 143}}}]}}),
            "Init:Signal:15",
        ),
        (
            "init container failed with exit code",
            json!({"spec": {"initContainers": containers(1), "containers": containers(1)}, "status": {"phase": "Pending",
                   "initContainerStatuses": [{"state": {"terminated": {"exitCode": 2}}}]}}),
            "Init:ExitCode:2",
        ),
        (
            "init container waiting with a reason",
            json!({"spec": {"initContainers": containers(1), "containers": containers(1)}, "status": {"phase": "Pending",
                   "initContainerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]}}),
            "Init:ErrImagePull",
        ),
        (
            "init container waiting for PodInitializing counts",
            json!({"spec": {"initContainers": containers(2), "containers": containers(1)}, "status": {"phase": "Pending",
                   "initContainerStatuses": [{"state": {"terminated": {"exitCode": 0}}},
                                             {"state": {"waiting": {"reason": "PodInitializing"}}}]}}),
            "Init:1/2",
        ),
        (
            "node lost while deleting",
            json!({"metadata": {"deletionTimestamp": ago(5)}, "spec": {"containers": containers(1)},
                   "status": {"phase": "Running", "reason": "NodeLost"}}),
            "Unknown",
        ),
        (
            "node lost, not deleting",
            json!({"spec": {"containers": containers(1)}, "status": {"phase": "Running", "reason": "NodeLost"}}),
            "NodeLost",
        ),
        (
            "evicted",
            json!({"spec": {"containers": containers(1)}, "status": {"phase": "Failed", "reason": "Evicted"}}),
            "Evicted",
        ),
        ("empty pod", json!({}), ""),
    ];
    for (name, pod, status) in cases {
        assert_eq!(row("", "pods", &pod)[2], json!(status), "{name}");
    }
}

#[test]
fn pod_with_restartable_init_containers() {
    let sidecars = json!([{"name": "restartable-init-1", "restartPolicy": "Always"},
                          {"name": "restartable-init-2", "restartPolicy": "Always"}]);
    let running = json!({"running": {}});
    let cases: Vec<(Value, Vec<Value>)> = vec![
        // The first one running but not started.
        (
            json!({"metadata": {"name": "test1"}, "spec": {"initContainers": sidecars, "containers": containers(1)},
                   "status": {"phase": "Pending",
                              "conditions": [{"type": "Initialized", "status": "False"}],
                              "initContainerStatuses": [
                                  {"name": "restartable-init-1", "restartCount": 3, "state": running, "started": false,
                                   "lastState": {"terminated": {"finishedAt": ago(10)}}},
                                  {"name": "restartable-init-2", "state": {"waiting": {}}, "started": false}],
                              "containerStatuses": [{"state": {"waiting": {}}}]}}),
            want("test1", "0/3", "Init:0/2", "3 (10s ago)"),
        ),
        // The first one started, the second running but not started.
        (
            json!({"metadata": {"name": "test1"}, "spec": {"initContainers": sidecars, "containers": containers(1)},
                   "status": {"phase": "Pending",
                              "conditions": [{"type": "Initialized", "status": "False"}],
                              "initContainerStatuses": [
                                  {"name": "restartable-init-1", "restartCount": 3, "state": running, "started": true,
                                   "lastState": {"terminated": {"finishedAt": ago(10)}}},
                                  {"name": "restartable-init-2", "state": running, "started": false}],
                              "containerStatuses": [{"state": {"waiting": {}}}]}}),
            want("test1", "0/3", "Init:1/2", "3 (10s ago)"),
        ),
        // Both started and 1 container running.
        (
            json!({"metadata": {"name": "test2"}, "spec": {"initContainers": sidecars, "containers": containers(1)},
                   "status": {"phase": "Running",
                              "conditions": [{"type": "Initialized", "status": "True"}],
                              "initContainerStatuses": [
                                  {"name": "restartable-init-1", "restartCount": 3, "state": running, "started": true,
                                   "lastState": {"terminated": {"finishedAt": ago(10)}}},
                                  {"name": "restartable-init-2", "state": running, "started": true}],
                              "containerStatuses": [{"ready": true, "restartCount": 4, "state": running,
                                                     "lastState": {"terminated": {"finishedAt": ago(20)}}}]}}),
            want("test2", "1/3", "Running", "7 (10s ago)"),
        ),
        // Both completed with non-zero and 1 container completed.
        (
            json!({"metadata": {"name": "test3"}, "spec": {"initContainers": sidecars, "containers": containers(1)},
                   "status": {"phase": "Succeeded",
                              "conditions": [{"type": "Initialized", "status": "True"}],
                              "initContainerStatuses": [
                                  {"name": "restartable-init-1", "restartCount": 3, "started": false,
                                   "state": {"terminated": {"reason": "Error", "exitCode": 137}},
                                   "lastState": {"terminated": {"finishedAt": ago(10)}}},
                                  {"name": "restartable-init-2", "started": false,
                                   "state": {"terminated": {"reason": "Error", "exitCode": 137}}}],
                              "containerStatuses": [{"restartCount": 4,
                                                     "state": {"terminated": {"reason": "Completed", "exitCode": 0}},
                                                     "lastState": {"terminated": {"finishedAt": ago(20)}}}]}}),
            want("test3", "0/3", "Completed", "7 (10s ago)"),
        ),
    ];
    for (pod, expected) in cases {
        assert_eq!(pod_cells(&pod), expected, "{pod}");
    }
}

#[test]
fn pod_wide_and_seed() {
    let cases: Vec<(&str, Value, Vec<Value>)> = vec![
        (
            "seed: service-env pod",
            json!({
                "metadata": meta("service-env-77bd9f74d4-7qntr", 108),
                "spec": {"nodeName": "work2.host.com",
                         "containers": [{"name": "nginx", "image": "docker.io/library/nginx:1.23.1"}]},
                "status": {"phase": "Running", "podIP": "10.244.52.222", "podIPs": [{"ip": "10.244.52.222"}],
                           "conditions": [{"type": "Ready", "status": "True"}],
                           "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 0,
                                                  "started": true, "state": {"running": {"startedAt": ago(100)}}}]},
            }),
            json_row(
                r#"["service-env-77bd9f74d4-7qntr", "1/1", "Running", "0", "108s", "10.244.52.222", "work2.host.com", "<none>", "<none>"]"#,
            ),
        ),
        (
            "readiness gates, nominated node, first of podIPs",
            json!({
                "metadata": {"name": "test1"},
                "spec": {"containers": containers(2), "nodeName": "test1",
                         "readinessGates": [{"conditionType": "condition1"}, {"conditionType": "condition2"},
                                            {"conditionType": "condition3"}]},
                "status": {"phase": "podPhase", "nominatedNodeName": "node1",
                           "podIPs": [{"ip": "1.1.1.1"}, {"ip": "2001:db8::"}],
                           "conditions": [{"type": "condition1", "status": "False"},
                                          {"type": "condition2", "status": "True"}],
                           "containerStatuses": [{"ready": true, "restartCount": 3, "state": {"running": {}}},
                                                 {"restartCount": 3}]},
            }),
            json_row(
                r#"["test1", "1/2", "podPhase", "6", "<unknown>", "1.1.1.1", "test1", "node1", "1/3"]"#,
            ),
        ),
        (
            "no node, no IP",
            json!({
                "metadata": {"name": "test2"},
                "spec": {"containers": containers(2)},
                "status": {"phase": "podPhase", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": {"running": {}}},
                    {"restartCount": 3, "state": {"waiting": {"reason": "ContainerWaitingReason"}}}]},
            }),
            json_row(
                r#"["test2", "1/2", "ContainerWaitingReason", "6", "<unknown>", "<none>", "<none>", "<none>", "<none>"]"#,
            ),
        ),
    ];
    for (name, pod, expected) in cases {
        assert_eq!(row("", "pods", &pod), expected, "{name}");
    }
}

#[test]
fn pod_row_conditions() {
    let completed = |reason: &str, message: &str| {
        vec![json!({"type": "Completed", "status": "True", "reason": reason, "message": message})]
    };
    let phase = |p: &str| json!({"status": {"phase": p}});
    assert_eq!(
        row_conditions("", "pods", &phase("Succeeded")),
        completed("Succeeded", "The pod has completed successfully.")
    );
    assert_eq!(
        row_conditions("", "pods", &phase("Failed")),
        completed("Failed", "The pod failed.")
    );
    assert!(row_conditions("", "pods", &phase("Running")).is_empty());
    assert!(row_conditions("", "services", &phase("Failed")).is_empty());
}
