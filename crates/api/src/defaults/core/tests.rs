use super::*;
use pretty_assertions::assert_eq;
use serde_json::json;

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, tag) in [
        ("nginx", "latest"),
        ("nginx:latest", "latest"),
        ("nginx:1.27", "1.27"),
        ("localhost:5000/app", "latest"),
        ("localhost:5000/app:v2", "v2"),
        ("nginx@sha256:abc", ""),
        ("nginx:1.27@sha256:abc", "1.27"),
    ] {
        assert_eq!(image_tag(image), tag, "{image}");
    }
}

#[test]
fn pod_defaults() {
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{
                "name": "c", "image": "busybox:1.36",
                "ports": [{"containerPort": 8080}],
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "readinessProbe": {"httpGet": {"port": 8080}},
                "resources": {"limits": {"cpu": "500m"}}
            }],
            "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}}]
        }
    }))
    .unwrap();
    default_pod(&mut pod);
    let v = serde_json::to_value(&pod.spec).unwrap();
    assert_eq!(
        v,
        json!({
            "containers": [{
                "name": "c", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"},
                    "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "500m"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            }],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": true,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}}
            ]
        })
    );
}

#[test]
fn host_network_pods_get_host_ports() {
    let mut pod: Pod = serde_json::from_value(json!({"spec": {"hostNetwork": true,
        "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 53}]}]}}))
    .unwrap();
    default_pod(&mut pod);
    assert_eq!(
        pod.spec.unwrap().containers[0].ports.as_ref().unwrap()[0].host_port,
        Some(53)
    );
}

#[test]
fn node_namespace_endpoints_defaults() {
    let mut ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap();
    default_namespace(&mut ns);
    let v = serde_json::to_value(&ns).unwrap();
    assert_eq!(
        v["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "team-a"})
    );
    assert_eq!(v["status"], json!({"phase": "Active"}));

    let mut node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.244.1.0/24"}, "status": {"capacity": {"pods": "110"}}}))
    .unwrap();
    default_node(&mut node);
    let v = serde_json::to_value(&node).unwrap();
    assert_eq!(v["spec"]["podCIDRs"], json!(["10.244.1.0/24"]));
    assert_eq!(v["status"]["allocatable"], json!({"pods": "110"}));

    let mut ep: Endpoints = serde_json::from_value(
        json!({"subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 80}]}]}),
    )
    .unwrap();
    default_endpoints(&mut ep);
    assert_eq!(
        ep.subsets.unwrap()[0].ports.as_ref().unwrap()[0]
            .protocol
            .as_deref(),
        Some("TCP")
    );
}

#[test]
fn secret_type_and_string_data() {
    let mut s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds"},
        "data": {"user": "b2xk", "keep": "eA=="},
        "stringData": {"user": "admin", "pass": "s3cret"},
    }))
    .unwrap();
    default_secret(&mut s);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["type"], "Opaque");
    assert_eq!(v.get("stringData"), None, "never stored");
    // stringData wins over data, as the conversion writes it last.
    assert_eq!(
        v["data"],
        json!({"user": "YWRtaW4=", "pass": "czNjcmV0", "keep": "eA=="})
    );

    let mut tls: Secret =
        serde_json::from_value(json!({"type": "kubernetes.io/tls", "stringData": {"a": "b"}}))
            .unwrap();
    default_secret(&mut tls);
    assert_eq!(tls.type_.as_deref(), Some("kubernetes.io/tls"));
}
