use super::*;
use crate::field::messages;
use pretty_assertions::assert_eq;
use serde_json::json;

fn svc(v: serde_json::Value) -> Service {
    serde_json::from_value(v).unwrap()
}

#[test]
fn defaults_like_set_defaults_service() {
    let mut s = svc(
        json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
    );
    default_service(&mut s);
    assert_eq!(
        serde_json::to_value(&s.spec).unwrap(),
        json!({
            "internalTrafficPolicy": "Cluster",
            "ports": [
                {"port": 80, "protocol": "TCP", "targetPort": 80},
                {"port": 53, "protocol": "UDP", "targetPort": "dns"}
            ],
            "sessionAffinity": "None",
            "type": "ClusterIP"
        })
    );
    let mut s = svc(
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example.com"}]}}}),
    );
    default_service(&mut s);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["spec"]["allocateLoadBalancerNodePorts"], json!(true));
    assert_eq!(v["spec"]["externalTrafficPolicy"], json!("Cluster"));
    assert_eq!(
        v["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    assert_eq!(
        v["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "192.0.2.1", "ipMode": "VIP"}, {"hostname": "lb.example.com"}])
    );
    let mut s = svc(json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}));
    default_service(&mut s);
    assert_eq!(s.spec.as_ref().unwrap().internal_traffic_policy, None);
    let mut s = svc(
        json!({"spec": {"externalIPs": ["192.0.2.9"], "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}, "ports": [{"port": 80}]}}),
    );
    default_service(&mut s);
    let spec = s.spec.unwrap();
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(
        spec.session_affinity_config, None,
        "dropped when sessionAffinity is None"
    );
}

#[test]
fn ip_families_as_the_registry_sets_them() {
    let cases = [
        (
            json!({"spec": {"type": "ClusterIP"}}),
            Some("SingleStack"),
            Some(vec!["IPv4"]),
        ),
        (
            json!({"spec": {"type": "NodePort", "clusterIP": "10.96.3.3"}}),
            Some("SingleStack"),
            Some(vec!["IPv4"]),
        ),
        (
            json!({"spec": {"type": "ClusterIP", "clusterIP": "None", "selector": {"a": "b"}}}),
            Some("SingleStack"),
            Some(vec!["IPv4"]),
        ),
        (
            json!({"spec": {"type": "ClusterIP", "clusterIP": "None"}}),
            Some("RequireDualStack"),
            Some(vec!["IPv4", "IPv6"]),
        ),
        (
            json!({"spec": {"type": "ClusterIP", "clusterIP": "None", "ipFamilyPolicy": "SingleStack"}}),
            Some("SingleStack"),
            Some(vec!["IPv4"]),
        ),
        (
            json!({"spec": {"type": "ClusterIP", "ipFamilyPolicy": "PreferDualStack"}}),
            Some("PreferDualStack"),
            Some(vec!["IPv4"]),
        ),
        (
            json!({"spec": {"type": "ExternalName", "externalName": "x.example"}}),
            None,
            None,
        ),
    ];
    for (v, policy, fams) in cases {
        let mut s = svc(v.clone());
        assert_eq!(init_ip_families(&mut s, &["IPv4"]), vec![], "{v}");
        let spec = s.spec.unwrap();
        assert_eq!(spec.ip_family_policy.as_deref(), policy, "{v}");
        assert_eq!(
            spec.ip_families,
            fams.map(|f| f.into_iter().map(String::from).collect::<Vec<_>>()),
            "{v}"
        );
    }
    // Dual-stack clusters add the second family for dual-stack requests.
    let mut s = svc(json!({"spec": {"type": "ClusterIP", "ipFamilyPolicy": "PreferDualStack"}}));
    assert_eq!(init_ip_families(&mut s, &["IPv4", "IPv6"]), vec![]);
    assert_eq!(
        s.spec.unwrap().ip_families,
        Some(vec!["IPv4".into(), "IPv6".into()])
    );
    // clusterIP alone is mirrored into clusterIPs.
    let mut s = svc(json!({"spec": {"type": "ClusterIP", "clusterIP": "None"}}));
    init_ip_families(&mut s, &["IPv4"]);
    assert_eq!(s.spec.unwrap().cluster_ips, Some(vec!["None".into()]));
}

#[test]
fn update_adopts_the_old_policy_and_guards_downgrades() {
    let old = svc(
        json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00::1"],
        "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}}),
    );
    let mut new = svc(
        json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "ipFamilies": ["IPv4", "IPv6"]}}),
    );
    let errs = messages(&init_ip_families_for_update(
        &mut new,
        &old,
        &["IPv4", "IPv6"],
    ));
    assert_eq!(
        errs,
        vec![
            r#"spec.ipFamilyPolicy: Invalid value: "RequireDualStack": must be 'SingleStack' to release the secondary cluster IP"#
        ]
    );
    let mut new = old.clone();
    new.spec.as_mut().unwrap().ip_family_policy = Some("SingleStack".into());
    assert_eq!(
        init_ip_families_for_update(&mut new, &old, &["IPv4", "IPv6"]),
        vec![]
    );
    let spec = new.spec.unwrap();
    assert_eq!(spec.cluster_ips, Some(vec!["10.96.0.1".into()]));
    assert_eq!(spec.ip_families, Some(vec!["IPv4".into()]));
}

#[test]
fn patch_allocated_values_fills_omitted_allocations() {
    let old = svc(
        json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31999,
        "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443, "nodePort": 30443}]}}),
    );
    let mut new = svc(
        json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "ports": [{"name": "https", "port": 8443}, {"name": "http", "port": 80, "nodePort": 30443}, {"name": "new", "port": 9}]}}),
    );
    patch_allocated_values(&mut new, &old);
    let spec = new.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.7"));
    assert_eq!(spec.cluster_ips, Some(vec!["10.96.0.7".into()]));
    assert_eq!(spec.health_check_node_port, Some(31999));
    let np: Vec<Option<i32>> = spec.ports.unwrap().iter().map(|p| p.node_port).collect();
    // 30443 is now used by "http", so "https" does not get it back; "new" has no old port.
    assert_eq!(np, vec![None, Some(30443), None]);
}
