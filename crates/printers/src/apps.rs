//! `apps` printers: `printDeployment`, `printReplicaSet`.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::age;
use crate::json::{arr_at, get, int_at, name, opt_int_at, str_at};
use crate::labels::{format_label_selector, selector_string};

/// `spec.replicas`, defaulted to 1 as upstream does when decoding an apps/v1 object.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int_at(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// `layoutContainerCells`: container names and images, each comma-joined.
fn layout_container_cells(obj: &Value) -> (String, String) {
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
    let (containers, images) = layout_container_cells(obj);
    vec![
        json!(name(obj)),
        json!(desired_replicas(obj)),
        json!(int_at(obj, &["status", "replicas"])),
        json!(int_at(obj, &["status", "readyReplicas"])),
        age(obj, now),
        json!(containers),
        json!(images),
        json!(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}
