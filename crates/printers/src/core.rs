//! Core (`""` group) printers: `printService`, `printEndpoints`, `printNode`, `printNamespace`,
//! `printEvent`, `printConfigMap`, `printSecret`. The pod's, the largest, is in `pod.rs`.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::{age, since};
use crate::json::{arr_at, bool_at, has, int_at, map_at, name, str_at, time_at};
use crate::labels::format_labels;

const NODE_ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

// --- Service ------------------------------------------------------------------------------

pub(crate) fn service(obj: &Value, now: Timestamp) -> Vec<Value> {
    // Defaulting applied when upstream decodes a stored object: type ClusterIP, and
    // clusterIPs from clusterIP.
    let svc_type = match str_at(obj, &["spec", "type"]) {
        "" => "ClusterIP",
        t => t,
    };
    let internal_ip = arr_at(obj, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| Some(str_at(obj, &["spec", "clusterIP"])).filter(|ip| !ip.is_empty()))
        .unwrap_or("<none>");
    let mut ports = make_port_string(arr_at(obj, &["spec", "ports"]));
    if ports.is_empty() {
        ports = "<none>".to_string();
    }
    vec![
        json!(name(obj)),
        json!(svc_type),
        json!(internal_ip),
        json!(service_external_ip(obj, svc_type)),
        json!(ports),
        age(obj, now),
        json!(format_labels(map_at(obj, &["spec", "selector"]))),
    ]
}

fn strings(v: &[Value]) -> Vec<&str> {
    v.iter().map(|s| s.as_str().unwrap_or("")).collect()
}

/// `getServiceExternalIP` with `wide` = true (the server always prints wide).
fn service_external_ip(obj: &Value, svc_type: &str) -> String {
    let external_ips = strings(arr_at(obj, &["spec", "externalIPs"]));
    match svc_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb_ips = load_balancer_status_string(obj);
            if !external_ips.is_empty() {
                let mut results: Vec<&str> = Vec::new();
                if !lb_ips.is_empty() {
                    results.extend(lb_ips.split(','));
                }
                results.extend(external_ips);
                return results.join(",");
            }
            if !lb_ips.is_empty() {
                return lb_ips;
            }
            "<pending>".to_string()
        }
        "ExternalName" => str_at(obj, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `loadBalancerStatusStringer` with `wide` = true: the set (sorted, deduplicated) of
/// ingress IPs, or hostnames where there is no IP.
fn load_balancer_status_string(obj: &Value) -> String {
    let set: BTreeSet<&str> = arr_at(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|ing| {
            let ip = str_at(ing, &["ip"]);
            let host = str_at(ing, &["hostname"]);
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// `makePortString`: `80/TCP`, `80:30002/TCP`, comma-joined.
fn make_port_string(ports: &[Value]) -> String {
    ports
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let protocol = match str_at(p, &["protocol"]) {
                "" => "TCP", // defaulted on decode
                proto => proto,
            };
            let node_port = int_at(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

// --- Endpoints ----------------------------------------------------------------------------

pub(crate) fn endpoints(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(obj)),
        json!(format_endpoints(obj)),
        age(obj, now),
    ]
}

/// `formatEndpoints(endpoints, nil)`: at most 3 `ip:port` (or bare IPs for port-less
/// subsets), then ` + N more...`.
fn format_endpoints(obj: &Value) -> String {
    let subsets = arr_at(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = arr_at(ss, &["addresses"]);
        let ports = arr_at(ss, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for addr in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(addr, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for addr in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(
                    str_at(addr, &["ip"]),
                    int_at(port, &["port"]),
                ));
            }
        }
    }
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - MAX);
    }
    ret
}

/// `net.JoinHostPort`: brackets hosts containing a colon (IPv6).
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// --- Namespace ----------------------------------------------------------------------------

pub(crate) fn namespace(obj: &Value, now: Timestamp) -> Vec<Value> {
    let phase = match str_at(obj, &["status", "phase"]) {
        "" => "Active", // defaulted on decode
        p => p,
    };
    vec![json!(name(obj)), json!(phase), age(obj, now)]
}

// --- ConfigMap, Secret -------------------------------------------------------------------

/// `printConfigMap`: name, the number of `data` and `binaryData` keys, age.
pub(crate) fn config_map(obj: &Value, now: Timestamp) -> Vec<Value> {
    let keys = |f| map_at(obj, &[f]).map_or(0, |m| m.len());
    vec![
        json!(name(obj)),
        json!(keys("data") + keys("binaryData")),
        age(obj, now),
    ]
}

/// `printComponentStatus`: the `Healthy` condition as Healthy / Unhealthy (Unknown without
/// one), with its message and error.
pub(crate) fn component_status(obj: &Value) -> Vec<Value> {
    let healthy = arr_at(obj, &["conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Healthy");
    let (status, message, error) = match healthy {
        Some(c) => (
            if str_at(c, &["status"]) == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            str_at(c, &["message"]),
            str_at(c, &["error"]),
        ),
        None => ("Unknown", "", ""),
    };
    vec![
        json!(name(obj)),
        json!(status),
        json!(message),
        json!(error),
    ]
}

/// `printSecret`: name, `type`, the number of `data` keys, age.
pub(crate) fn secret(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(obj)),
        json!(str_at(obj, &["type"])),
        json!(map_at(obj, &["data"]).map_or(0, |m| m.len())),
        age(obj, now),
    ]
}

// --- Node ---------------------------------------------------------------------------------

pub(crate) fn node(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The last condition of each type wins, as in upstream's map.
    let ready = arr_at(obj, &["status", "conditions"])
        .iter()
        .rfind(|c| str_at(c, &["type"]) == "Ready");
    let mut status: Vec<&str> = match ready {
        Some(c) if str_at(c, &["status"]) == "True" => vec!["Ready"],
        Some(_) => vec!["NotReady"],
        None => vec!["Unknown"],
    };
    if bool_at(obj, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let mut roles = find_node_roles(obj).join(",");
    if roles.is_empty() {
        roles = "<none>".to_string();
    }
    let info = |field: &str| match str_at(obj, &["status", "nodeInfo", field]) {
        "" => "<unknown>",
        v => v,
    };
    vec![
        json!(name(obj)),
        json!(status.join(",")),
        json!(roles),
        age(obj, now),
        json!(str_at(obj, &["status", "nodeInfo", "kubeletVersion"])),
        json!(node_address(obj, "InternalIP")),
        json!(node_address(obj, "ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// The first address of the given type, or `<none>`.
fn node_address<'a>(obj: &'a Value, kind: &str) -> &'a str {
    arr_at(obj, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map(|a| str_at(a, &["address"]))
        .unwrap_or("<none>")
}

/// `findNodeRoles`: `node-role.kubernetes.io/<role>` label keys and the value of a
/// `kubernetes.io/role` label, sorted and deduplicated.
fn find_node_roles(obj: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    for (k, v) in map_at(obj, &["metadata", "labels"]).into_iter().flatten() {
        if let Some(role) = k.strip_prefix(NODE_ROLE_LABEL_PREFIX) {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == NODE_ROLE_LABEL {
            let v = v.as_str().unwrap_or("");
            if !v.is_empty() {
                roles.insert(v.to_string());
            }
        }
    }
    roles.into_iter().collect()
}

// --- Event --------------------------------------------------------------------------------

pub(crate) fn event(obj: &Value, now: Timestamp) -> Vec<Value> {
    let first_timestamp = match time_at(obj, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(obj, &["eventTime"]), now),
    };
    let mut last_timestamp = match time_at(obj, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first_timestamp.clone(),
    };
    let mut count = int_at(obj, &["count"]);
    if has(obj, &["series"]) {
        last_timestamp = since(time_at(obj, &["series", "lastObservedTime"]), now);
        count = int_at(obj, &["series", "count"]);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }
    let kind = str_at(obj, &["involvedObject", "kind"]).to_lowercase();
    let involved_name = str_at(obj, &["involvedObject", "name"]);
    let target = if involved_name.is_empty() {
        kind
    } else {
        format!("{kind}/{involved_name}")
    };
    vec![
        json!(last_timestamp),
        json!(str_at(obj, &["type"])),
        json!(str_at(obj, &["reason"])),
        json!(target),
        json!(str_at(obj, &["involvedObject", "fieldPath"])),
        json!(format_event_source(obj)),
        json!(str_at(obj, &["message"]).trim()),
        json!(first_timestamp),
        json!(count),
        json!(name(obj)),
    ]
}

/// `formatEventSource`: `component, host`, falling back to reportingController /
/// reportingInstance; the host part is left out when empty.
fn format_event_source(obj: &Value) -> String {
    let first_non_empty = |a: &'static [&'static str], b: &'static [&'static str]| {
        let x = str_at(obj, a);
        if x.is_empty() {
            str_at(obj, b)
        } else {
            x
        }
    };
    let component = first_non_empty(&["source", "component"], &["reportingComponent"]);
    let instance = first_non_empty(&["source", "host"], &["reportingInstance"]);
    if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    }
}

#[cfg(test)]
mod tests;
