//! `apps`, `discovery.k8s.io` and `coordination.k8s.io` printers: `printDeployment`,
//! `printReplicaSet`, `printEndpointSlice`, `printLease`.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::since;
use crate::json::{arr_at, get, has, int_at, name, opt_int_at, opt_str_at, str_at, time_at};
use crate::labels::{format_label_selector, selector_string};

fn age(obj: &Value, now: Timestamp) -> Value {
    json!(since(time_at(obj, &["metadata", "creationTimestamp"]), now))
}

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

pub(crate) fn endpoint_slice(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(obj)),
        json!(str_at(obj, &["addressType"])),
        json!(format_discovery_ports(arr_at(obj, &["ports"]))),
        json!(format_discovery_endpoints(arr_at(obj, &["endpoints"]))),
        age(obj, now),
    ]
}

const MAX_LISTED: usize = 3;

/// `formatDiscoveryPorts`: port numbers, else names, else `*` (all ports).
fn format_discovery_ports(ports: &[Value]) -> String {
    let mut list = Vec::new();
    let mut more = false;
    for port in ports {
        if list.len() < MAX_LISTED {
            let num = if has(port, &["port"]) {
                int_at(port, &["port"]).to_string()
            } else if let Some(n) = opt_str_at(port, &["name"]) {
                n.to_string()
            } else {
                "*".to_string()
            };
            list.push(num);
        } else if list.len() == MAX_LISTED {
            more = true;
        }
    }
    list_with_more_string(&list, more, ports.len())
}

/// `formatDiscoveryEndpoints`: the addresses of all endpoints.
fn format_discovery_endpoints(endpoints: &[Value]) -> String {
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for endpoint in endpoints {
        for address in arr_at(endpoint, &["addresses"]) {
            if list.len() < MAX_LISTED {
                list.push(address.as_str().unwrap_or("").to_string());
            } else if list.len() == MAX_LISTED {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more_string(&list, more, count)
}

/// `listWithMoreString`: ` + N more...` past the first three, `<unset>` for none.
fn list_with_more_string(list: &[String], more: bool, count: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - MAX_LISTED);
    }
    if ret.is_empty() {
        return "<unset>".to_string();
    }
    ret
}

/// `printLease`: name, `spec.holderIdentity` ("" when unset), age.
pub(crate) fn lease(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(obj)),
        json!(str_at(obj, &["spec", "holderIdentity"])),
        age(obj, now),
    ]
}
