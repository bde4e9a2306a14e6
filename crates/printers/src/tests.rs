//! Table-driven tests: the seed documents' `kubectl get` outputs, and cases from upstream's
//! `printers_test.go` and `duration_test.go`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pretty_assertions::assert_eq;
use serde_json::{json, Value};

use crate::duration::human_nanos;
use crate::{cells, columns, human_duration, row_conditions};

const NOW: &str = "2024-06-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// RFC 3339 for `now - secs`.
fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs)).to_string()
}

fn meta(name: &str, created_secs_ago: i64) -> Value {
    json!({ "name": name, "namespace": "default", "creationTimestamp": ago(created_secs_ago) })
}

fn row(group: &str, resource: &str, obj: &Value) -> Vec<Value> {
    let c = cells(group, resource, obj, now());
    assert_eq!(
        c.len(),
        columns(group, resource).len(),
        "one cell per column for {group}/{resource}"
    );
    c
}

// --- HumanDuration ------------------------------------------------------------------------

#[test]
fn human_duration_upstream_cases() {
    let s = Duration::from_secs;
    let h = |n: u64| Duration::from_secs(n * 3600);
    let cases = [
        (s(1), "1s"),
        (s(70), "70s"),
        (s(190), "3m10s"),
        (s(70 * 60), "70m"),
        (h(47), "47h"),
        (h(49), "2d1h"),
        (h(8 * 24 + 2), "8d"),
        (h(367 * 24), "367d"),
        (h(365 * 2 * 24 + 25), "2y1d"),
        (h(365 * 8 * 24 + 2), "8y"),
    ];
    for (d, want) in cases {
        assert_eq!(human_duration(d), want, "{d:?}");
    }
}

#[test]
fn human_duration_upstream_boundaries() {
    const MS: i128 = 1_000_000;
    const S: i128 = 1_000 * MS;
    const M: i128 = 60 * S;
    const H: i128 = 60 * M;
    const D: i128 = 24 * H;
    const Y: i128 = 365 * D;
    let cases: &[(i128, &str)] = &[
        (-2 * S, "<invalid>"),
        (-2 * S + 1, "0s"),
        (0, "0s"),
        (S - MS, "0s"),
        (2 * M - MS, "119s"),
        (2 * M, "2m"),
        (2 * M + S, "2m1s"),
        (10 * M - MS, "9m59s"),
        (10 * M, "10m"),
        (10 * M + S, "10m"),
        (3 * H - MS, "179m"),
        (3 * H, "3h"),
        (3 * H + M, "3h1m"),
        (8 * H - MS, "7h59m"),
        (8 * H, "8h"),
        (8 * H + 59 * M, "8h"),
        (2 * D - MS, "47h"),
        (2 * D, "2d"),
        (2 * D + H, "2d1h"),
        (8 * D - MS, "7d23h"),
        (8 * D, "8d"),
        (8 * D + 23 * H, "8d"),
        (2 * Y - MS, "729d"),
        (2 * Y, "2y"),
        (2 * Y + 23 * H, "2y"),
        (2 * Y + 23 * H + 59 * M, "2y"),
        (2 * Y + D - MS, "2y"),
        (2 * Y + D, "2y1d"),
        (3 * Y, "3y"),
        (4 * Y, "4y"),
        (5 * Y, "5y"),
        (6 * Y, "6y"),
        (7 * Y, "7y"),
        (8 * Y - MS, "7y364d"),
        (8 * Y, "8y"),
        (8 * Y + 364 * D, "8y"),
        (9 * Y, "9y"),
    ];
    for &(d, want) in cases {
        assert_eq!(human_nanos(d), want, "{d}ns");
    }
}

#[test]
fn human_duration_seed_ages() {
    let s = Duration::from_secs;
    assert_eq!(human_duration(s(2 * 86400 + 18 * 3600 + 5)), "2d18h");
    assert_eq!(human_duration(s(4 * 60 + 42)), "4m42s");
    assert_eq!(human_duration(s(108)), "108s");
    assert_eq!(human_duration(s(18 * 3600 + 30 * 60)), "18h");
}

// --- Columns ------------------------------------------------------------------------------

#[test]
fn column_names_and_priorities() {
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, i32)]);
    let cases: &[Case] = &[
        (
            "",
            "services",
            &[
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1),
            ],
        ),
        (
            "",
            "pods",
            &[
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1),
            ],
        ),
        (
            "",
            "endpoints",
            &[("Name", 0), ("Endpoints", 0), ("Age", 0)],
        ),
        (
            "",
            "nodes",
            &[
                ("Name", 0),
                ("Status", 0),
                ("Roles", 0),
                ("Age", 0),
                ("Version", 0),
                ("Internal-IP", 1),
                ("External-IP", 1),
                ("OS-Image", 1),
                ("Kernel-Version", 1),
                ("Container-Runtime", 1),
            ],
        ),
        ("", "namespaces", &[("Name", 0), ("Status", 0), ("Age", 0)]),
        (
            "",
            "events",
            &[
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1),
            ],
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            &[
                ("Name", 0),
                ("AddressType", 0),
                ("Ports", 0),
                ("Endpoints", 0),
                ("Age", 0),
            ],
        ),
        (
            "apps",
            "deployments",
            &[
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ],
        ),
        (
            "apps",
            "replicasets",
            &[
                ("Name", 0),
                ("Desired", 0),
                ("Current", 0),
                ("Ready", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ],
        ),
        ("", "configmaps", &[("Name", 0), ("Created At", 0)]),
        ("apps", "services", &[("Name", 0), ("Created At", 0)]),
    ];
    for (group, resource, want) in cases {
        let got: Vec<(&str, i32)> = columns(group, resource)
            .iter()
            .map(|c| (c.name, c.priority))
            .collect();
        assert_eq!(&got, want, "{group}/{resource}");
        for c in columns(group, resource) {
            assert_eq!(
                c.format == "name",
                c.name == "Name",
                "{group}/{resource} {c:?}"
            );
            assert!(!c.description.is_empty(), "{c:?}");
            assert!(!c.description.contains('\\'), "unescaped: {c:?}");
        }
    }
}

#[test]
fn column_types_as_upstream() {
    let types = |g, r| -> Vec<&str> { columns(g, r).iter().map(|c| c.type_).collect() };
    assert_eq!(
        types("", "pods")[3],
        "string",
        "RESTARTS is a string column since 1.24"
    );
    assert_eq!(types("apps", "replicasets")[1..4], ["integer"; 3]);
    assert_eq!(types("apps", "deployments")[2..4], ["string"; 2]);
    assert_eq!(types("", "configmaps"), ["string", "date"]);
}

// --- Services -----------------------------------------------------------------------------

#[test]
fn services() {
    let cases: Vec<(&str, Value, Vec<Value>)> = vec![
        (
            "seed: kubernetes",
            json!({
                "metadata": meta("kubernetes", 2 * 86400 + 18 * 3600 + 60),
                "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            }),
            vec![
                json!("kubernetes"),
                json!("ClusterIP"),
                json!("10.96.0.1"),
                json!("<none>"),
                json!("443/TCP"),
                json!("2d18h"),
                json!("<none>"),
            ],
        ),
        (
            "seed: service-clusterip",
            json!({
                "metadata": meta("service-clusterip", 4 * 60 + 42),
                "spec": {"selector": {"app": "service-env"}, "clusterIP": "10.97.1.1",
                         "clusterIPs": ["10.97.1.1"], "type": "ClusterIP",
                         "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]},
            }),
            vec![
                json!("service-clusterip"),
                json!("ClusterIP"),
                json!("10.97.1.1"),
                json!("<none>"),
                json!("80/TCP"),
                json!("4m42s"),
                json!("app=service-env"),
            ],
        ),
        (
            "seed: headless",
            json!({
                "metadata": meta("service-headliness", 43),
                "spec": {"selector": {"app": "service-env"}, "clusterIP": "None", "clusterIPs": ["None"],
                         "type": "ClusterIP", "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]},
            }),
            vec![
                json!("service-headliness"),
                json!("ClusterIP"),
                json!("None"),
                json!("<none>"),
                json!("80/TCP"),
                json!("43s"),
                json!("app=service-env"),
            ],
        ),
        (
            "seed: service-nodeport",
            json!({
                "metadata": meta("service-nodeport", 20),
                "spec": {"selector": {"app": "service-env"}, "type": "NodePort",
                         "clusterIP": "10.101.89.79", "clusterIPs": ["10.101.89.79"],
                         "ports": [{"port": 80, "nodePort": 30002, "targetPort": 80, "protocol": "TCP"}]},
            }),
            vec![
                json!("service-nodeport"),
                json!("NodePort"),
                json!("10.101.89.79"),
                json!("<none>"),
                json!("80:30002/TCP"),
                json!("20s"),
                json!("app=service-env"),
            ],
        ),
        (
            "seed: service-externalname",
            json!({
                "metadata": meta("service-externalname", 5),
                "spec": {"type": "ExternalName", "externalName": "www.baidu.com"},
            }),
            vec![
                json!("service-externalname"),
                json!("ExternalName"),
                json!("<none>"),
                json!("www.baidu.com"),
                json!("<none>"),
                json!("5s"),
                json!("<none>"),
            ],
        ),
        (
            "seed: nginx NodePort from kubectl expose",
            json!({
                "metadata": meta("nginx", 5),
                "spec": {"type": "NodePort", "clusterIP": "10.0.0.112",
                         "ports": [{"port": 80, "nodePort": 31230, "protocol": "TCP"}],
                         "selector": {"run": "nginx"}},
            }),
            vec![
                json!("nginx"),
                json!("NodePort"),
                json!("10.0.0.112"),
                json!("<none>"),
                json!("80:31230/TCP"),
                json!("5s"),
                json!("run=nginx"),
            ],
        ),
        (
            "seed: the-bus NodePort 8080",
            json!({
                "metadata": meta("the-bus", 3600),
                "spec": {"type": "NodePort", "clusterIPs": ["10.96.69.229"],
                         "ports": [{"port": 8080, "nodePort": 31112, "targetPort": 8080, "protocol": "TCP"}],
                         "selector": {"env": "marvel"}},
            }),
            vec![
                json!("the-bus"),
                json!("NodePort"),
                json!("10.96.69.229"),
                json!("<none>"),
                json!("8080:31112/TCP"),
                json!("60m"),
                json!("env=marvel"),
            ],
        ),
        (
            "load balancer with multiple ingress IPs, sorted",
            json!({
                "metadata": {"name": "service1"},
                "spec": {"clusterIPs": ["1.2.3.4"], "type": "LoadBalancer",
                         "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "3.4.5.6"}, {"ip": "2.3.4.5"}]}},
            }),
            vec![
                json!("service1"),
                json!("LoadBalancer"),
                json!("1.2.3.4"),
                json!("2.3.4.5,3.4.5.6"),
                json!("80:31000/TCP"),
                json!("<unknown>"),
                json!("<none>"),
            ],
        ),
        (
            "load balancer pending, several protocols",
            json!({
                "metadata": {"name": "service2"},
                "spec": {"clusterIPs": ["1.3.4.5"], "type": "LoadBalancer",
                         "ports": [{"port": 80, "protocol": "TCP"}, {"port": 8090, "protocol": "UDP"},
                                   {"port": 8000, "protocol": "TCP"}, {"port": 7777, "protocol": "SCTP"}]},
            }),
            vec![
                json!("service2"),
                json!("LoadBalancer"),
                json!("1.3.4.5"),
                json!("<pending>"),
                json!("80/TCP,8090/UDP,8000/TCP,7777/SCTP"),
                json!("<unknown>"),
                json!("<none>"),
            ],
        ),
        (
            "load balancer: wide output is not elided; hostname when no IP; dedup",
            json!({
                "metadata": {"name": "service4"},
                "spec": {"clusterIPs": ["1.5.6.7"], "type": "LoadBalancer",
                         "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"foo": "bar"}},
                "status": {"loadBalancer": {"ingress": [
                    {"ip": "2.3.4.5"}, {"ip": "3.4.5.6"}, {"ip": "5.6.7.8", "hostname": "host5678"},
                    {"hostname": "lb.example.com"}, {"ip": "2.3.4.5"}]}},
            }),
            vec![
                json!("service4"),
                json!("LoadBalancer"),
                json!("1.5.6.7"),
                json!("2.3.4.5,3.4.5.6,5.6.7.8,lb.example.com"),
                json!("80/TCP"),
                json!("<unknown>"),
                json!("foo=bar"),
            ],
        ),
        (
            "load balancer with ingress and external IPs",
            json!({
                "metadata": {"name": "lb"},
                "spec": {"clusterIPs": ["10.0.0.9"], "type": "LoadBalancer", "externalIPs": ["9.9.9.9"]},
                "status": {"loadBalancer": {"ingress": [{"ip": "8.8.8.8"}]}},
            }),
            vec![
                json!("lb"),
                json!("LoadBalancer"),
                json!("10.0.0.9"),
                json!("8.8.8.8,9.9.9.9"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<none>"),
            ],
        ),
        (
            "cluster IP with external IPs, multiple ports, selector keys sorted, defaults",
            json!({
                "metadata": {"name": "web"},
                "spec": {"clusterIP": "10.0.0.3", "externalIPs": ["1.1.1.1", "2.2.2.2"],
                         "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}],
                         "selector": {"tier": "web", "app": "shop"}},
            }),
            vec![
                json!("web"),
                json!("ClusterIP"),
                json!("10.0.0.3"),
                json!("1.1.1.1,2.2.2.2"),
                json!("80/TCP,53/UDP"),
                json!("<unknown>"),
                json!("app=shop,tier=web"),
            ],
        ),
        (
            "unknown type",
            json!({"metadata": {"name": "x"}, "spec": {"type": "Weird"}}),
            vec![
                json!("x"),
                json!("Weird"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<none>"),
            ],
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(row("", "services", &obj), want, "{name}");
    }
}

// --- Pods ---------------------------------------------------------------------------------

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
            vec![
                json!("service-env-77bd9f74d4-7qntr"),
                json!("1/1"),
                json!("Running"),
                json!("0"),
                json!("108s"),
                json!("10.244.52.222"),
                json!("work2.host.com"),
                json!("<none>"),
                json!("<none>"),
            ],
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
            vec![
                json!("test1"),
                json!("1/2"),
                json!("podPhase"),
                json!("6"),
                json!("<unknown>"),
                json!("1.1.1.1"),
                json!("test1"),
                json!("node1"),
                json!("1/3"),
            ],
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
            vec![
                json!("test2"),
                json!("1/2"),
                json!("ContainerWaitingReason"),
                json!("6"),
                json!("<unknown>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
            ],
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

// --- Endpoints and EndpointSlices ---------------------------------------------------------

#[test]
fn endpoints() {
    let addrs = |ips: &[&str]| Value::Array(ips.iter().map(|ip| json!({"ip": ip})).collect());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("no subsets", json!({}), "<none>"),
        (
            "seed: three pods on port 80",
            json!({"subsets": [{"addresses": addrs(&["10.244.52.222", "10.244.67.79", "10.244.67.84"]),
                                "ports": [{"port": 80, "protocol": "TCP"}]}]}),
            "10.244.52.222:80,10.244.67.79:80,10.244.67.84:80",
        ),
        (
            "more than three",
            json!({"subsets": [{"addresses": addrs(&["10.244.0.5", "10.244.1.3"]), "ports": [{"port": 80}]},
                               {"addresses": addrs(&["10.244.2.2", "10.244.2.3", "10.244.2.4"]),
                                "ports": [{"port": 80}]}]}),
            "10.244.0.5:80,10.244.1.3:80,10.244.2.2:80 + 2 more...",
        ),
        (
            "two ports per address count twice",
            json!({"subsets": [{"addresses": addrs(&["10.244.0.5", "10.244.1.3"]),
                                "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}]}),
            "10.244.0.5:80,10.244.1.3:80,10.244.0.5:443 + 1 more...",
        ),
        (
            "headless without ports",
            json!({"subsets": [{"addresses": addrs(&["10.244.0.5", "10.244.1.3"])}]}),
            "10.244.0.5,10.244.1.3",
        ),
        (
            "IPv6 is bracketed",
            json!({"subsets": [{"addresses": addrs(&["fd00::5"]), "ports": [{"port": 8080}]}]}),
            "[fd00::5]:8080",
        ),
        (
            "only not-ready addresses",
            json!({"subsets": [{"notReadyAddresses": addrs(&["10.244.0.5"]), "ports": [{"port": 80}]}]}),
            "",
        ),
    ];
    for (name, mut obj, want) in cases {
        obj["metadata"] = meta("web", 90);
        assert_eq!(
            row("", "endpoints", &obj),
            vec![json!("web"), json!(want), json!("90s")],
            "{name}"
        );
    }
}

#[test]
fn endpoint_slices() {
    let ep = |ips: &[&str]| json!({"addresses": ips, "conditions": {"ready": true}});
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "empty",
            json!({"addressType": "IPv4"}),
            "<unset>",
            "<unset>",
        ),
        (
            "seed: three pods",
            json!({"addressType": "IPv4", "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
                   "endpoints": [ep(&["10.244.52.222"]), ep(&["10.244.67.79"]), ep(&["10.244.67.84"])]}),
            "80",
            "10.244.52.222,10.244.67.79,10.244.67.84",
        ),
        (
            "more ports and endpoints than shown",
            json!({"addressType": "IPv4",
                   "ports": [{"port": 80}, {"name": "metrics"}, {}, {"port": 9000}, {"port": 9001}],
                   "endpoints": [ep(&["10.0.0.1", "10.0.0.2"]), ep(&["10.0.0.3"]), ep(&["10.0.0.4"])]}),
            "80,metrics,* + 2 more...",
            "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
        ),
    ];
    for (name, mut obj, ports, endpoints) in cases {
        obj["metadata"] = meta("web-abcde", 30);
        let addr_type = obj["addressType"].clone();
        assert_eq!(
            row("discovery.k8s.io", "endpointslices", &obj),
            vec![
                json!("web-abcde"),
                addr_type,
                json!(ports),
                json!(endpoints),
                json!("30s")
            ],
            "{name}"
        );
    }
}

// --- Deployments and ReplicaSets ----------------------------------------------------------

#[test]
fn deployments() {
    let template = json!({"metadata": {"labels": {"app": "service-env"}},
                          "spec": {"containers": [{"name": "nginx", "image": "docker.io/library/nginx:1.23.1",
                                                   "ports": [{"containerPort": 80}]}]}});
    let cases: Vec<(&str, Value, Vec<Value>)> = vec![
        (
            "seed: service-env",
            json!({"metadata": meta("service-env", 108),
                   "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "service-env"}}, "template": template},
                   "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}}),
            vec![
                json!("service-env"),
                json!("3/3"),
                json!(3),
                json!(3),
                json!("108s"),
                json!("nginx"),
                json!("docker.io/library/nginx:1.23.1"),
                json!("app=service-env"),
            ],
        ),
        (
            "rolling out, no status yet, replicas defaulted, expressions",
            json!({"metadata": meta("web", 10),
                   "spec": {"selector": {"matchLabels": {"tier": "web"},
                                         "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                                              {"key": "canary", "operator": "DoesNotExist"}]},
                            "template": {"spec": {"containers": [{"name": "a", "image": "img-a"},
                                                                 {"name": "b", "image": "img-b"}]}}}}),
            vec![
                json!("web"),
                json!("0/1"),
                json!(0),
                json!(0),
                json!("10s"),
                json!("a,b"),
                json!("img-a,img-b"),
                json!("!canary,env in (dev,prod),tier=web"),
            ],
        ),
        (
            "empty selector prints empty, invalid prints <invalid>",
            json!({"metadata": meta("odd", 10), "spec": {"replicas": 0, "selector": {}}}),
            vec![
                json!("odd"),
                json!("0/0"),
                json!(0),
                json!(0),
                json!("10s"),
                json!(""),
                json!(""),
                json!(""),
            ],
        ),
        (
            "invalid selector",
            json!({"metadata": meta("bad", 10),
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"bad key!": "x"}}}}),
            vec![
                json!("bad"),
                json!("0/2"),
                json!(0),
                json!(0),
                json!("10s"),
                json!(""),
                json!(""),
                json!("<invalid>"),
            ],
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(row("apps", "deployments", &obj), want, "{name}");
    }
}

#[test]
fn replica_sets() {
    let cases: Vec<(&str, Value, Vec<Value>)> = vec![
        (
            "seed: service-env-77bd9f74d4",
            json!({"metadata": meta("service-env-77bd9f74d4", 108),
                   "spec": {"replicas": 3,
                            "selector": {"matchLabels": {"app": "service-env", "pod-template-hash": "77bd9f74d4"}},
                            "template": {"spec": {"containers": [{"name": "nginx",
                                                                  "image": "docker.io/library/nginx:1.23.1"}]}}},
                   "status": {"replicas": 3, "readyReplicas": 2}}),
            vec![
                json!("service-env-77bd9f74d4"),
                json!(3),
                json!(3),
                json!(2),
                json!("108s"),
                json!("nginx"),
                json!("docker.io/library/nginx:1.23.1"),
                json!("app=service-env,pod-template-hash=77bd9f74d4"),
            ],
        ),
        (
            "no selector: <none>; invalid operator: <error>",
            json!({"metadata": meta("rs", 5)}),
            vec![
                json!("rs"),
                json!(1),
                json!(0),
                json!(0),
                json!("5s"),
                json!(""),
                json!(""),
                json!("<none>"),
            ],
        ),
        (
            "invalid operator",
            json!({"metadata": meta("rs", 5),
                   "spec": {"replicas": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}}),
            vec![
                json!("rs"),
                json!(1),
                json!(0),
                json!(0),
                json!("5s"),
                json!(""),
                json!(""),
                json!("<error>"),
            ],
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(row("apps", "replicasets", &obj), want, "{name}");
    }
}

#[test]
fn label_selectors() {
    use crate::labels::selector_string;
    let cases: Vec<(Value, Option<&str>)> = vec![
        (
            json!({"matchLabels": {"b": "2", "a": "1"}}),
            Some("a=1,b=2"),
        ),
        (
            json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["b", "a"]},
                                        {"key": "w", "operator": "Exists"}]}),
            Some("w,x notin (a,b)"),
        ),
        (
            json!({"matchLabels": {"example.com/app": "web"}}),
            Some("example.com/app=web"),
        ),
        (json!({"matchLabels": {"Example.com/app": "web"}}), None),
        (json!({"matchLabels": {"a": "-bad"}}), None),
        (json!({"matchLabels": {"a": ""}}), Some("a=")),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            None,
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            None,
        ),
    ];
    for (sel, want) in cases {
        assert_eq!(selector_string(Some(&sel)).as_deref(), want, "{sel}");
    }
    assert_eq!(selector_string(None).as_deref(), Some(""));
}

// --- Nodes and Namespaces -----------------------------------------------------------------

#[test]
fn nodes() {
    let ready = |s: &str| json!({"conditions": [{"type": "Ready", "status": s}]});
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "ready, control plane, wide info",
            json!({"metadata": {"name": "master.host.com", "creationTimestamp": ago(2 * 86400 + 18 * 3600),
                                "labels": {"node-role.kubernetes.io/control-plane": "",
                                           "kubernetes.io/hostname": "master.host.com"}},
                   "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                             {"type": "Ready", "status": "True"}],
                              "addresses": [{"type": "InternalIP", "address": "192.16.1.10"},
                                            {"type": "Hostname", "address": "master.host.com"}],
                              "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Ubuntu 24.04 LTS",
                                           "kernelVersion": "6.8.0", "containerRuntimeVersion": "svcnet://0.1.0"}}}),
            vec![
                "master.host.com",
                "Ready",
                "control-plane",
                "2d18h",
                "v1.32.0",
                "192.16.1.10",
                "<none>",
                "Ubuntu 24.04 LTS",
                "6.8.0",
                "svcnet://0.1.0",
            ],
        ),
        (
            "ready and cordoned",
            json!({"metadata": {"name": "foo2"}, "spec": {"unschedulable": true}, "status": ready("True")}),
            vec![
                "foo2",
                "Ready,SchedulingDisabled",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>",
            ],
        ),
        (
            "not ready",
            json!({"metadata": {"name": "foo4"}, "status": ready("False")}),
            vec![
                "foo4",
                "NotReady",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>",
            ],
        ),
        (
            "unknown ready status is NotReady",
            json!({"metadata": {"name": "foo4u"}, "status": ready("Unknown")}),
            vec![
                "foo4u",
                "NotReady",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>",
            ],
        ),
        (
            "no Ready condition, cordoned",
            json!({"metadata": {"name": "foo8"}, "spec": {"unschedulable": true},
                   "status": {"conditions": [{"type": "InvalidValue", "status": "True"}]}}),
            vec![
                "foo8",
                "Unknown,SchedulingDisabled",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>",
            ],
        ),
        (
            "roles from both label forms, sorted; first addresses of each type",
            json!({"metadata": {"name": "foo10",
                                "labels": {"node-role.kubernetes.io/master": "", "node-role.kubernetes.io/control-plane": "",
                                           "node-role.kubernetes.io/proxy": "", "kubernetes.io/role": "node",
                                           "node-role.kubernetes.io/": ""}},
                   "status": {"addresses": [{"type": "ExternalIP", "address": "2.2.2.2"},
                                            {"type": "InternalIP", "address": "3.3.3.3"},
                                            {"type": "ExternalIP", "address": "4.4.4.4"}]}}),
            vec![
                "foo10",
                "Unknown",
                "control-plane,master,node,proxy",
                "<unknown>",
                "",
                "3.3.3.3",
                "2.2.2.2",
                "<unknown>",
                "<unknown>",
                "<unknown>",
            ],
        ),
    ];
    for (name, obj, want) in cases {
        let want: Vec<Value> = want.into_iter().map(|s| json!(s)).collect();
        assert_eq!(row("", "nodes", &obj), want, "{name}");
    }
}

#[test]
fn namespaces() {
    let cases = [
        (
            json!({"metadata": meta("default", 86400 * 3), "status": {"phase": "Active"}}),
            "Active",
            "3d",
        ),
        (
            json!({"metadata": meta("going", 60), "status": {"phase": "Terminating"}}),
            "Terminating",
            "60s",
        ),
        (json!({"metadata": meta("fresh", 0)}), "Active", "0s"),
    ];
    for (obj, phase, age) in cases {
        let got = row("", "namespaces", &obj);
        assert_eq!(got[1..], [json!(phase), json!(age)], "{obj}");
    }
}

// --- Leases -------------------------------------------------------------------------------

#[test]
fn leases() {
    let names: Vec<&str> = columns("coordination.k8s.io", "leases")
        .iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["Name", "Holder", "Age"]);
    let cases = [
        (
            json!({"metadata": meta("node-1", 120), "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}),
            "node-1",
            "2m",
        ),
        (json!({"metadata": meta("free", 5), "spec": {}}), "", "5s"),
        (json!({"metadata": meta("bare", 5)}), "", "5s"),
    ];
    for (obj, holder, age) in cases {
        let got = row("coordination.k8s.io", "leases", &obj);
        assert_eq!(
            got,
            [json!(obj["metadata"]["name"]), json!(holder), json!(age)],
            "{obj}"
        );
    }
}

// --- Events -------------------------------------------------------------------------------

#[test]
fn events() {
    let cases: Vec<(&str, Value, Vec<Value>)> = vec![
        (
            "classic event",
            json!({"metadata": meta("web.17a", 300),
                   "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{nginx}"},
                   "reason": "Pulled", "message": "  Container image already present  \n", "type": "Normal",
                   "source": {"component": "kubelet", "host": "work1.host.com"},
                   "firstTimestamp": ago(300), "lastTimestamp": ago(20), "count": 4}),
            vec![
                json!("20s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-1"),
                json!("spec.containers{nginx}"),
                json!("kubelet, work1.host.com"),
                json!("Container image already present"),
                json!("5m"),
                json!(4),
                json!("web.17a"),
            ],
        ),
        (
            "new-style event: eventTime, reporting controller, no count",
            json!({"metadata": meta("svc.1", 90),
                   "involvedObject": {"kind": "Service", "name": "web"},
                   "reason": "Allocated", "message": "ok", "type": "Normal",
                   "eventTime": "2024-06-01T11:58:30.000000Z",
                   "reportingComponent": "svcnet-controller", "reportingInstance": ""}),
            vec![
                json!("90s"),
                json!("Normal"),
                json!("Allocated"),
                json!("service/web"),
                json!(""),
                json!("svcnet-controller"),
                json!("ok"),
                json!("90s"),
                json!(1),
                json!("svc.1"),
            ],
        ),
        (
            "series",
            json!({"metadata": meta("x", 9000),
                   "involvedObject": {"kind": "Node"},
                   "type": "Warning", "reason": "Flapping",
                   "firstTimestamp": ago(9000), "lastTimestamp": ago(8000), "count": 2,
                   "series": {"count": 7, "lastObservedTime": "2024-06-01T11:59:00.000000Z"}}),
            vec![
                json!("60s"),
                json!("Warning"),
                json!("Flapping"),
                json!("node"),
                json!(""),
                json!(""),
                json!(""),
                json!("150m"),
                json!(7),
                json!("x"),
            ],
        ),
        (
            "no timestamps at all",
            json!({"metadata": {"name": "bare"}}),
            vec![
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!(""),
                json!(""),
                json!(""),
                json!(""),
                json!("<unknown>"),
                json!(1),
                json!("bare"),
            ],
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(row("", "events", &obj), want, "{name}");
    }
}

// --- Default table and odd input ----------------------------------------------------------

#[test]
fn default_table() {
    let obj = json!({"metadata": {"name": "cfg", "creationTimestamp": "2024-05-01T10:20:30Z"}});
    assert_eq!(
        row("", "configmaps", &obj),
        vec![json!("cfg"), json!("2024-05-01T10:20:30Z")]
    );
    let with_offset =
        json!({"metadata": {"name": "x", "creationTimestamp": "2024-05-01T12:20:30.5+02:00"}});
    assert_eq!(
        row("example.com", "widgets", &with_offset),
        vec![json!("x"), json!("2024-05-01T10:20:30Z")]
    );
    assert_eq!(
        row("", "configmaps", &json!({})),
        vec![json!(""), json!("0001-01-01T00:00:00Z")]
    );
}

#[test]
fn odd_input_never_panics() {
    let resources = [
        ("", "services"),
        ("", "pods"),
        ("", "endpoints"),
        ("", "nodes"),
        ("", "namespaces"),
        ("", "events"),
        ("discovery.k8s.io", "endpointslices"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("", "secrets"),
    ];
    let odd = [
        json!(null),
        json!(42),
        json!("pod"),
        json!([]),
        json!({"metadata": null, "spec": null, "status": null}),
        json!({"metadata": {"name": 7, "creationTimestamp": "yesterday", "deletionTimestamp": null,
                            "labels": {"a": 1}},
               "spec": {"ports": [null, 3, {"port": "80", "nodePort": -1}], "containers": "x",
                        "initContainers": [{"name": null, "restartPolicy": 1}], "selector": [1],
                        "replicas": 2.5, "type": 3, "clusterIPs": [null]},
               "status": {"containerStatuses": [null, {"state": null, "lastState": {"terminated": null}}],
                          "initContainerStatuses": [{"state": {"terminated": {"exitCode": "1"}}}],
                          "conditions": "Ready", "loadBalancer": {"ingress": [{}]}},
               "subsets": [{"addresses": [{}], "ports": [{}]}],
               "endpoints": [{"addresses": [null]}], "ports": [{"port": null, "name": null}],
               "series": {}, "count": -3}),
    ];
    for (group, resource) in resources {
        for obj in &odd {
            let c = row(group, resource, obj);
            assert!(
                c.iter().all(|v| v.is_string() || v.is_i64()),
                "{group}/{resource}: {c:?}"
            );
        }
    }
    // The clock running behind an object's creation time.
    let future = json!({"metadata": {"name": "f", "creationTimestamp": "2024-06-01T12:00:01Z"}});
    assert_eq!(row("", "namespaces", &future)[2], json!("0s"));
    let far_future =
        json!({"metadata": {"name": "f", "creationTimestamp": "2024-06-01T12:05:00Z"}});
    assert_eq!(row("", "namespaces", &far_future)[2], json!("<invalid>"));
}
