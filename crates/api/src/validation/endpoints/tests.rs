use super::*;
use crate::defaults::core::default_endpoints;
use crate::defaults::discovery::default_endpointslice;
use crate::field::messages;
use pretty_assertions::assert_eq;
use serde_json::json;

#[test]
fn endpoints_rules() {
    let mut ep: Endpoints = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5", "nodeName": "node-1"}], "ports": [{"port": 80}]}]})).unwrap();
    default_endpoints(&mut ep);
    assert_eq!(validate_endpoints_create(&ep), vec![]);
    let mut bad: Endpoints = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"ports": [{"port": 80}]}, {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "a", "port": 80}, {"port": 0}]}]})).unwrap();
    default_endpoints(&mut bad);
    assert_eq!(
        messages(&validate_endpoints_create(&bad)),
        vec![
            "subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`",
            r#"subsets[1].addresses[0].ip: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)"#,
            "subsets[1].ports[1].name: Required value",
            "subsets[1].ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ]
    );
}

#[test]
fn endpointslice_rules() {
    let mut s: EndpointSlice = serde_json::from_value(json!({"metadata": {"name": "web-abc", "namespace": "default"},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "node-1"}], "ports": [{"name": "http", "port": 80}]})).unwrap();
    default_endpointslice(&mut s);
    assert_eq!(validate_endpointslice_create(&s), vec![]);
    let mut bad: EndpointSlice = serde_json::from_value(
        json!({"metadata": {"name": "web-abc", "namespace": "default"},
        "addressType": "IPv4", "endpoints": [{"addresses": []}, {"addresses": ["fd00::1"]}],
        "ports": [{"port": 80}, {"port": 81}, {"name": "x", "port": 82, "protocol": "ICMP"}]}),
    )
    .unwrap();
    default_endpointslice(&mut bad);
    assert_eq!(
        messages(&validate_endpointslice_create(&bad)),
        vec![
            "endpoints[0].addresses: Required value: must contain at least 1 address",
            r#"endpoints[1].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address"#,
            r#"ports[1].name: Duplicate value: """#,
            r#"ports[2].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP""#,
        ]
    );
    let mut t = s.clone();
    t.address_type = "Magic".into();
    assert_eq!(
        messages(&validate_endpointslice_create(&t)),
        vec![
            r#"addressType: Unsupported value: "Magic": supported values: "FQDN", "IPv4", "IPv6""#
        ]
    );
    let mut old = s.clone();
    old.metadata.resource_version = Some("1".into());
    let mut new = old.clone();
    new.address_type = "IPv6".into();
    new.endpoints[0].addresses = vec!["fd00::5".into()];
    assert_eq!(
        messages(&validate_endpointslice_update(&new, &old)),
        vec![r#"addressType: Invalid value: "IPv6": field is immutable"#]
    );
}
