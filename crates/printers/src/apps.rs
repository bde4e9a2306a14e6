//! `apps` printers: `printDeployment`, `printReplicaSet`; and core/v1's
//! `printReplicationController`, a ReplicaSet's row with a plain-map selector.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::age;
use crate::json::{arr_at, get, int_at, map_at, name, opt_int_at, str_at};
use crate::labels::{format_label_selector, format_labels, selector_string};

/// `spec.replicas`, defaulted to 1 as upstream does when decoding an apps/v1 object.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int_at(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// `layoutContainerCells`: container names and images, each comma-joined.
pub(crate) fn layout_container_cells(obj: &Value) -> (String, String) {
    let containers = arr_at(obj, &["spec", "template", "spec", "containers"]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

pub(crate) fn deployment(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ready = int_at(obj, &["status", "readyReplicas"]);
    let (containers, images) = layout_container_cells(obj);
    let selector =
        selector_string(get(obj, &["spec", "selector"])).unwrap_or_else(|| "<invalid>".to_string());
    vec![
        json!(name(obj)),
        json!(format!("{ready}/{}", desired_replicas(obj))),
        json!(int_at(obj, &["status", "updatedReplicas"])),
        json!(int_at(obj, &["status", "availableReplicas"])),
        age(obj, now),
        json!(containers),
        json!(images),
        json!(selector),
    ]
}

pub(crate) fn replica_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let selector = format_label_selector(get(obj, &["spec", "selector"]));
    replicas_row(obj, now, selector)
}

/// `printReplicationController`: the selector is `labels.FormatLabels` of the map.
pub(crate) fn replication_controller(obj: &Value, now: Timestamp) -> Vec<Value> {
    let selector = format_labels(map_at(obj, &["spec", "selector"]));
    replicas_row(obj, now, selector)
}

/// `printDaemonSet`: NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE, wide:
/// CONTAINERS IMAGES SELECTOR.
pub(crate) fn daemon_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = layout_container_cells(obj);
    let node_selector = format_labels(map_at(obj, &["spec", "template", "spec", "nodeSelector"]));
    vec![
        json!(name(obj)),
        json!(int_at(obj, &["status", "desiredNumberScheduled"])),
        json!(int_at(obj, &["status", "currentNumberScheduled"])),
        json!(int_at(obj, &["status", "numberReady"])),
        json!(int_at(obj, &["status", "updatedNumberScheduled"])),
        json!(int_at(obj, &["status", "numberAvailable"])),
        json!(node_selector),
        age(obj, now),
        json!(containers),
        json!(images),
        json!(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

/// NAME DESIRED CURRENT READY AGE, wide: CONTAINERS IMAGES SELECTOR.
fn replicas_row(obj: &Value, now: Timestamp, selector: String) -> Vec<Value> {
    let (containers, images) = layout_container_cells(obj);
    vec![
        json!(name(obj)),
        json!(desired_replicas(obj)),
        json!(int_at(obj, &["status", "replicas"])),
        json!(int_at(obj, &["status", "readyReplicas"])),
        age(obj, now),
        json!(containers),
        json!(images),
        json!(selector),
    ]
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::{json, Value};

    use crate::testing::{json_row, meta, row};

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
                json_row(
                    r#"["service-env", "3/3", 3, 3, "108s", "nginx", "docker.io/library/nginx:1.23.1", "app=service-env"]"#,
                ),
            ),
            (
                "rolling out, no status yet, replicas defaulted, expressions",
                json!({"metadata": meta("web", 10),
                       "spec": {"selector": {"matchLabels": {"tier": "web"},
                                             "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                                                  {"key": "canary", "operator": "DoesNotExist"}]},
                                "template": {"spec": {"containers": [{"name": "a", "image": "img-a"},
                                                                     {"name": "b", "image": "img-b"}]}}}}),
                json_row(
                    r#"["web", "0/1", 0, 0, "10s", "a,b", "img-a,img-b", "!canary,env in (dev,prod),tier=web"]"#,
                ),
            ),
            (
                "empty selector prints empty, invalid prints <invalid>",
                json!({"metadata": meta("odd", 10), "spec": {"replicas": 0, "selector": {}}}),
                json_row(r#"["odd", "0/0", 0, 0, "10s", "", "", ""]"#),
            ),
            (
                "invalid selector",
                json!({"metadata": meta("bad", 10),
                       "spec": {"replicas": 2, "selector": {"matchLabels": {"bad key!": "x"}}}}),
                json_row(r#"["bad", "0/2", 0, 0, "10s", "", "", "<invalid>"]"#),
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
                json_row(
                    r#"["service-env-77bd9f74d4", 3, 3, 2, "108s", "nginx", "docker.io/library/nginx:1.23.1", "app=service-env,pod-template-hash=77bd9f74d4"]"#,
                ),
            ),
            (
                "no selector: <none>; invalid operator: <error>",
                json!({"metadata": meta("rs", 5)}),
                json_row(r#"["rs", 1, 0, 0, "5s", "", "", "<none>"]"#),
            ),
            (
                "invalid operator",
                json!({"metadata": meta("rs", 5),
                       "spec": {"replicas": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}}),
                json_row(r#"["rs", 1, 0, 0, "5s", "", "", "<error>"]"#),
            ),
        ];
        for (name, obj, want) in cases {
            assert_eq!(row("apps", "replicasets", &obj), want, "{name}");
        }
    }

    #[test]
    fn replication_controllers() {
        let obj = json!({"metadata": meta("web", 30),
                         "spec": {"replicas": 2, "selector": {"app": "web", "tier": "fe"},
                                  "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
                         "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            row("", "replicationcontrollers", &obj),
            json_row(r#"["web", 2, 2, 1, "30s", "web", "nginx", "app=web,tier=fe"]"#)
        );
        let bare = json!({"metadata": meta("rc", 5)});
        assert_eq!(
            row("", "replicationcontrollers", &bare),
            json_row(r#"["rc", 1, 0, 0, "5s", "", "", "<none>"]"#)
        );
    }

    #[test]
    fn daemon_sets() {
        let obj = json!({"metadata": meta("agent", 60),
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "a", "image": "busybox"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                "updatedNumberScheduled": 3, "numberAvailable": 2, "numberMisscheduled": 0}});
        assert_eq!(
            json!(row("apps", "daemonsets", &obj)),
            json!([
                "agent",
                3,
                3,
                2,
                3,
                2,
                "kubernetes.io/os=linux",
                "60s",
                "a",
                "busybox",
                "app=agent"
            ])
        );
    }
}
