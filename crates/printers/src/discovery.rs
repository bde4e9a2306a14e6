//! `discovery.k8s.io` printer: `printEndpointSlice`.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::age;
use crate::json::{arr_at, has, int_at, name, opt_str_at, str_at};

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

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::{json, Value};

    use crate::testing::{meta, row};

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
}
