//! Table-driven: each case is a manifest as a user writes it; it goes through defaulting, IP
//! family initialisation and a fake allocator (as the API server does) and must produce exactly
//! Kubernetes' messages.

use super::*;
use crate::defaults::service::{
    default_service, drop_type_dependent_fields, init_ip_families, patch_allocated_values,
};
use crate::field::messages;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};

/// What the API server's allocator would do: a clusterIP for non-headless Services, nodePorts for
/// NodePort/LoadBalancer, a healthCheckNodePort for LoadBalancer+Local.
fn fake_allocate(svc: &mut Service) {
    let spec = svc.spec.as_mut().unwrap();
    let ty = s(&spec.type_).to_string();
    if ty != "ExternalName" && spec.cluster_ips.as_deref().unwrap_or_default().is_empty() {
        spec.cluster_ip = Some("10.96.0.10".into());
        spec.cluster_ips = Some(vec!["10.96.0.10".into()]);
    }
    if ty == "NodePort"
        || (ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports != Some(false))
    {
        for (i, p) in spec.ports.iter_mut().flatten().enumerate() {
            if p.node_port.unwrap_or(0) == 0 {
                p.node_port = Some(30100 + i as i32);
            }
        }
    }
    if ty == "LoadBalancer"
        && s(&spec.external_traffic_policy) == "Local"
        && spec.health_check_node_port.unwrap_or(0) == 0
    {
        spec.health_check_node_port = Some(30999);
    }
}

fn parse(v: Value) -> Service {
    let mut v = v;
    let meta = v
        .as_object_mut()
        .unwrap()
        .entry("metadata")
        .or_insert(json!({}));
    let m = meta.as_object_mut().unwrap();
    m.entry("name").or_insert(json!("web"));
    m.entry("namespace").or_insert(json!("default"));
    serde_json::from_value(v).unwrap()
}

/// Create path: default → init ipFamilies → allocate → validate.
fn create(v: Value) -> Vec<String> {
    let mut svc = parse(v);
    default_service(&mut svc);
    let errs = init_ip_families(&mut svc, &["IPv4"]);
    if !errs.is_empty() {
        return messages(&errs);
    }
    fake_allocate(&mut svc);
    messages(&validate_create(&svc))
}

fn created(v: Value) -> Service {
    let mut svc = parse(v);
    default_service(&mut svc);
    assert!(init_ip_families(&mut svc, &["IPv4"]).is_empty());
    fake_allocate(&mut svc);
    assert_eq!(validate_create(&svc), vec![]);
    svc.metadata.resource_version = Some("1".into());
    svc
}

/// Update path, as `kubectl replace`/`apply` sends a full object: default → patch allocated
/// values → drop type-dependent fields → init → allocate → validate.
fn update(old: &Service, v: Value) -> (Service, Vec<String>) {
    let mut svc = parse(v);
    svc.metadata.resource_version = Some("1".into());
    default_service(&mut svc);
    patch_allocated_values(&mut svc, old);
    drop_type_dependent_fields(&mut svc, old);
    let errs = init_ip_families(&mut svc, &["IPv4"]);
    if !errs.is_empty() {
        return (svc, messages(&errs));
    }
    fake_allocate(&mut svc);
    let errs = messages(&validate_update(&svc, old));
    (svc, errs)
}

const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

#[test]
fn valid_services_pass() {
    let ok = [
        json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}}),
        json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 443}]}}),
        json!({"spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}}),
        json!({"spec": {"clusterIP": "None"}}),
        json!({"spec": {"type": "ExternalName", "externalName": "example.com."}}),
        json!({"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
        json!({"spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}]}}),
        json!({"spec": {"externalIPs": ["192.0.2.10"], "ports": [{"port": 80}]}}),
        json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/lb", "loadBalancerSourceRanges": ["10.0.0.0/8", " 192.168.0.0/16"], "ports": [{"port": 80}]}}),
    ];
    for v in ok {
        assert_eq!(create(v.clone()), Vec::<String>::new(), "{v}");
    }
}

#[test]
fn create_errors_match_kubernetes() {
    let bad_name = format!("metadata.name: Invalid value: \"Web_1\": {DNS1035}");
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"metadata": {"name": "Web_1"}, "spec": {"ports": [{"port": 80}]}}),
            vec![&bad_name],
        ),
        (json!({"spec": {"selector": {"app": "x"}}}), vec!["spec.ports: Required value"]),
        (
            json!({"spec": {"ports": [{"name": "a", "port": 80}, {"port": 81}]}}),
            vec!["spec.ports[1].name: Required value"],
        ),
        (
            json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}}),
            vec![r#"spec.ports[1].name: Duplicate value: "http""#],
        ),
        (
            json!({"spec": {"ports": [{"name": "Http", "port": 80}]}}),
            vec![r#"spec.ports[0].name: Invalid value: "Http": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#],
        ),
        (
            json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}}),
            vec![r#"spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}"#],
        ),
        (
            json!({"spec": {"ports": [{"port": 0, "targetPort": 8080}]}}),
            vec!["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"],
        ),
        (
            json!({"spec": {"ports": [{"port": 70000}]}}),
            vec![
                "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            json!({"spec": {"ports": [{"port": 80, "protocol": "HTTP"}]}}),
            vec![r#"spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#],
        ),
        (
            json!({"spec": {"ports": [{"port": 80, "targetPort": 65536}]}}),
            vec!["spec.ports[0].targetPort: Invalid value: 65536: must be between 1 and 65535, inclusive"],
        ),
        (
            json!({"spec": {"ports": [{"port": 80, "targetPort": "Web_Port"}]}}),
            vec![r#"spec.ports[0].targetPort: Invalid value: "Web_Port": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"#],
        ),
        (
            json!({"spec": {"ports": [{"port": 80, "targetPort": "8080"}]}}),
            vec![r#"spec.ports[0].targetPort: Invalid value: "8080": must contain at least one letter (a-z)"#],
        ),
        (
            json!({"spec": {"ports": [{"port": 80, "nodePort": 30080}]}}),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            json!({"spec": {"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]}}),
            vec!["spec.ports[1].nodePort: Duplicate value: 30080"],
        ),
        (
            json!({"spec": {"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}}),
            vec![r#"spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for NodePort services"#],
        ),
        (
            json!({"spec": {"type": "LoadBalancer", "clusterIP": "None", "ports": [{"port": 80}]}}),
            vec![r#"spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for LoadBalancer services"#],
        ),
        (json!({"spec": {"type": "ExternalName"}}), vec!["spec.externalName: Required value"]),
        (
            json!({"spec": {"type": "ExternalName", "externalName": "Bad_Name"}}),
            vec![r#"spec.externalName: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#],
        ),
        (
            json!({"spec": {"type": "ExternalName", "externalName": "example.com", "clusterIP": "10.96.1.1", "clusterIPs": ["10.96.1.1"]}}),
            vec!["spec.clusterIPs: Forbidden: may not be set for ExternalName services"],
        ),
        (
            json!({"spec": {"type": "ExternalName", "externalName": "example.com", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}}),
            vec![
                "spec.ipFamilies: Forbidden: may not be set for ExternalName services",
                "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services",
            ],
        ),
        (
            json!({"spec": {"sessionAffinity": "Sticky", "ports": [{"port": 80}]}}),
            vec![r#"spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None""#],
        ),
        (
            json!({"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}, "ports": [{"port": 80}]}}),
            vec!["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400"],
        ),
        (
            json!({"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}, "ports": [{"port": 80}]}}),
            vec!["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400"],
        ),
        (
            json!({"spec": {"type": "Magic", "ports": [{"port": 80}]}}),
            vec![r#"spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#],
        ),
        (
            json!({"spec": {"externalIPs": ["1.2.3"], "ports": [{"port": 80}]}}),
            vec![r#"spec.externalIPs[0]: Invalid value: "1.2.3": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#],
        ),
        (
            json!({"spec": {"externalIPs": ["127.0.0.1"], "ports": [{"port": 80}]}}),
            vec![r#"spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)"#],
        ),
        (
            json!({"spec": {"loadBalancerSourceRanges": ["10.0.0.0/8"], "ports": [{"port": 80}]}}),
            vec!["spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"],
        ),
        (
            json!({"spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/33"], "ports": [{"port": 80}]}}),
            vec![r#"spec.LoadBalancerSourceRanges[0]: Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"#],
        ),
        (
            json!({"metadata": {"annotations": {"service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/8,bad"}}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
            vec![r#"metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]: Invalid value: "bad": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"#],
        ),
        (
            json!({"spec": {"externalTrafficPolicy": "Local", "ports": [{"port": 80}]}}),
            vec![r#"spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services"#],
        ),
        (
            json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Nearby", "ports": [{"port": 80}]}}),
            vec![r#"spec.externalTrafficPolicy: Unsupported value: "Nearby": supported values: "Cluster", "Local""#],
        ),
        (
            json!({"spec": {"internalTrafficPolicy": "Nearby", "ports": [{"port": 80}]}}),
            vec![r#"spec.internalTrafficPolicy: Unsupported value: "Nearby": supported values: "Cluster", "Local""#],
        ),
        (
            json!({"spec": {"type": "NodePort", "healthCheckNodePort": 30500, "ports": [{"port": 80}]}}),
            vec!["spec.healthCheckNodePort: Invalid value: 30500: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"],
        ),
        (
            json!({"spec": {"allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}}),
            vec!["spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'"],
        ),
        (
            json!({"spec": {"loadBalancerClass": "example.com/lb", "ports": [{"port": 80}]}}),
            vec!["spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'"],
        ),
        (
            json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "a/b/c", "ports": [{"port": 80}]}}),
            vec![r#"spec.loadBalancerClass: Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"#],
        ),
        (
            json!({"spec": {"trafficDistribution": "Anywhere", "ports": [{"port": 80}]}}),
            vec![r#"spec.trafficDistribution: Unsupported value: "Anywhere": supported values: "PreferClose""#],
        ),
        (
            json!({"spec": {"selector": {"app": "bad value"}, "ports": [{"port": 80}]}}),
            vec![r#"spec.selector: Invalid value: "bad value": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#],
        ),
        (
            json!({"spec": {"ports": [{"port": 80, "appProtocol": "-h2c"}]}}),
            vec![r#"spec.ports[0].appProtocol: Invalid value: "-h2c": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#],
        ),
        // Rejected before allocation, by the IP family initialisation.
        (
            json!({"spec": {"clusterIP": "10.96.0.300", "ports": [{"port": 80}]}}),
            vec![r#"spec.clusterIPs[0]: Invalid value: "10.96.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#],
        ),
        (
            json!({"spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.6"], "ports": [{"port": 80}]}}),
            vec![r#"spec.clusterIPs: Invalid value: []string{"10.96.0.6"}: first value must match `clusterIP`"#],
        ),
        (
            json!({"spec": {"clusterIPs": ["10.96.0.6"], "ports": [{"port": 80}]}}),
            vec![r#"spec.clusterIPs: Invalid value: []string{"10.96.0.6"}: must be empty when `clusterIP` is not specified"#],
        ),
        (
            json!({"spec": {"clusterIP": "None", "clusterIPs": ["None", "10.96.0.6"], "ports": [{"port": 80}]}}),
            vec![r#"spec.clusterIPs: Invalid value: []string{"None", "10.96.0.6"}: 'None' must be the first and only value"#],
        ),
        (
            json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}}),
            vec![r#"spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services"#],
        ),
        (
            json!({"spec": {"ipFamilies": ["IPv6"], "ports": [{"port": 80}]}}),
            vec![r#"spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster"#],
        ),
        (
            json!({"spec": {"ipFamilies": ["IPv5"], "ports": [{"port": 80}]}}),
            vec![r#"spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6""#],
        ),
        (
            json!({"spec": {"ipFamilyPolicy": "Whatever", "ports": [{"port": 80}]}}),
            vec![r#"spec.ipFamilyPolicy: Unsupported value: "Whatever": supported values: "PreferDualStack", "RequireDualStack", "SingleStack""#],
        ),
        (
            json!({"spec": {"clusterIP": "fd00::10", "ports": [{"port": 80}]}}),
            vec![r#"spec.clusterIPs[0]: Invalid value: []string{"fd00::10"}: IPv6 is not configured on this cluster"#],
        ),
        (
            json!({"spec": {"clusterIP": "10.96.0.5", "ipFamilies": ["IPv6"], "ports": [{"port": 80}]}}),
            vec![r#"spec.clusterIPs[0]: Invalid value: "10.96.0.5": expected an IPv6 value as indicated by `ipFamilies[0]`"#],
        ),
    ];
    for (v, want) in cases {
        assert_eq!(create(v.clone()), want, "{v}");
    }
}

#[test]
fn validates_without_defaulting_too() {
    // A raw object (e.g. written by a controller without defaults) still gets the required-field
    // errors Kubernetes would report.
    let svc = parse(json!({"spec": {"ports": [{"port": 80, "targetPort": 80}]}}));
    let got = messages(&validate_create(&svc));
    assert_eq!(
        got,
        vec![
            "spec.ports[0].protocol: Required value",
            "spec.sessionAffinity: Required value",
            "spec.type: Required value",
        ]
    );
    let mut svc = parse(
        json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "internalTrafficPolicy": "Cluster", "sessionAffinity": "None",
        "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP", "nodePort": 30001}]}}),
    );
    svc.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.1".into());
    svc.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.0.1".into()]);
    let got = messages(&validate_create(&svc));
    assert_eq!(
        got,
        vec![
            "allocateLoadBalancerNodePorts: Required value",
            "spec.healthCheckNodePort: Required value",
        ]
    );
    let svc = parse(
        json!({"spec": {"type": "NodePort", "sessionAffinity": "ClientIP",
        "internalTrafficPolicy": "Cluster", "externalTrafficPolicy": "Cluster", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
        "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP", "nodePort": 30001}]}}),
    );
    let got = messages(&validate_create(&svc));
    assert_eq!(
        got,
        vec!["spec.sessionAffinityConfig: Required value: when session affinity type is ClientIP"]
    );
    let mut svc = svc.clone();
    let spec = svc.spec.as_mut().unwrap();
    spec.session_affinity = Some("None".into());
    spec.session_affinity_config = Some(Default::default());
    let got = messages(&validate_create(&svc));
    assert_eq!(
        got,
        vec![
            "spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None"
        ]
    );
}

#[test]
fn reapplying_the_same_manifest_keeps_allocations() {
    let manifest = json!({"spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}});
    let old = created(manifest.clone());
    let (new, errs) = update(&old, manifest);
    assert_eq!(errs, Vec::<String>::new());
    let (ns, os) = (new.spec.unwrap(), old.spec.unwrap());
    assert_eq!(ns.cluster_ip, os.cluster_ip);
    assert_eq!(ns.cluster_ips, os.cluster_ips);
    assert_eq!(
        ns.ports.unwrap()[0].node_port,
        os.ports.unwrap()[0].node_port
    );
}

#[test]
fn update_errors_match_kubernetes() {
    let web = json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let headless = json!({"spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}});
    // (stored manifest, manifest sent as the update, the errors)
    let cases: Vec<(Value, Value, Vec<&str>)> = vec![
        (
            web.clone(),
            json!({"spec": {"clusterIP": "10.96.0.99", "clusterIPs": ["10.96.0.99"], "selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            vec![
                r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.99"}: may not change once set"#,
            ],
        ),
        // Only the singular field changed: normalisation follows it, the same error results.
        (
            web.clone(),
            json!({"spec": {"clusterIP": "10.96.0.99", "selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            vec![
                r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.99"}: may not change once set"#,
            ],
        ),
        // Headless stays headless when the manifest omits clusterIP; asking for an IP is a change.
        (
            headless.clone(),
            json!({"spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]}}),
            vec![],
        ),
        (
            headless.clone(),
            json!({"spec": {"clusterIP": "10.96.0.50", "selector": {"app": "db"}, "ports": [{"port": 5432}]}}),
            vec![
                r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.50"}: may not change once set"#,
            ],
        ),
        (
            json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/a", "ports": [{"port": 80}]}}),
            json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/b", "ports": [{"port": 80}]}}),
            vec![
                r#"spec.loadBalancerClass: Invalid value: "example.com/b": may not change once set"#,
            ],
        ),
        (
            json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}}),
            json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000, "ports": [{"port": 80}]}}),
            vec!["spec.healthCheckNodePort: Forbidden: field is immutable"],
        ),
    ];
    for (stored, sent, want) in cases {
        let (_, errs) = update(&created(stored.clone()), sent.clone());
        assert_eq!(errs, want, "{stored} updated with {sent}");
    }

    let old = created(web);
    let mut stale = old.clone();
    stale.metadata.name = Some("other".into());
    let got = messages(&validate_update(&stale, &old));
    assert_eq!(
        got,
        vec![r#"metadata.name: Invalid value: "other": field is immutable"#]
    );
}

#[test]
fn type_changes_drop_what_no_longer_applies() {
    let np = created(json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}}));
    let (new, errs) = update(
        &np,
        json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}),
    );
    assert_eq!(errs, Vec::<String>::new());
    let spec = new.spec.unwrap();
    assert_eq!(spec.ports.unwrap()[0].node_port, None);
    assert_eq!(spec.external_traffic_policy, None);
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));

    // A user-chosen nodePort on a ClusterIP Service is kept, and rejected.
    let (_, errs) = update(
        &np,
        json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 31111}]}}),
    );
    assert_eq!(
        errs,
        vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );

    let (new, errs) = update(
        &np,
        json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    assert_eq!(errs, Vec::<String>::new());
    let spec = new.spec.unwrap();
    assert_eq!(
        (
            spec.cluster_ip,
            spec.cluster_ips,
            spec.ip_families,
            spec.ip_family_policy
        ),
        (None, None, None, None)
    );

    // As `kubectl apply` sends it: the stored object with only `type` changed. Everything the
    // LoadBalancer had allocated or defaulted is dropped, so validation passes.
    let lb = created(
        json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "loadBalancerClass": "example.com/a", "ports": [{"port": 80}]}}),
    );
    let mut body = serde_json::to_value(&lb).unwrap();
    body["spec"]["type"] = json!("ClusterIP");
    let (new, errs) = update(&lb, body);
    assert_eq!(errs, Vec::<String>::new());
    let spec = new.spec.unwrap();
    assert_eq!(spec.ports.unwrap()[0].node_port, None);
    assert_eq!(spec.health_check_node_port, None);
    assert_eq!(spec.allocate_load_balancer_node_ports, None);
    assert_eq!(spec.load_balancer_class, None);
    assert_eq!(spec.external_traffic_policy, None);
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
}

#[test]
fn status_updates() {
    let old = created(json!({"spec": {"ports": [{"port": 80}]}}));
    let mut new = old.clone();
    new.status = Some(
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}))
            .unwrap(),
    );
    let got = messages(&validate_status_update(&new, &old));
    assert_eq!(
        got,
        vec!["status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"]
    );
    let old = created(json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}));
    let mut new = old.clone();
    new.status = Some(serde_json::from_value(json!({"loadBalancer": {"ingress": [
        {"ip": "192.0.2.300", "ipMode": "VIP"}, {"ip": "192.0.2.2"}, {"hostname": "10.0.0.1"}, {"ip": "192.0.2.3", "ipMode": "Tunnel"}
    ]}})).unwrap());
    let got = messages(&validate_status_update(&new, &old));
    assert_eq!(
        got,
        vec![
            r#"status.loadBalancer.ingress[0].ip: Invalid value: "192.0.2.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#,
            "status.loadBalancer.ingress[1].ipMode: Required value: must be specified when `ip` is set",
            r#"status.loadBalancer.ingress[2].hostname: Invalid value: "10.0.0.1": must be a DNS name, not an IP address"#,
            r#"status.loadBalancer.ingress[3].ipMode: Unsupported value: "Tunnel": supported values: "Proxy", "VIP""#,
        ]
    );
}
