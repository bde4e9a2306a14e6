use super::*;
use crate::defaults::core::default_pod;
use crate::field::messages;
use k8s_openapi::api::core::v1::Pod;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};

fn pod(spec: Value) -> Pod {
    let mut p: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}),
    )
    .unwrap();
    default_pod(&mut p);
    p
}

fn create(spec: Value) -> Vec<String> {
    messages(&validate_create(&pod(spec)))
}

#[test]
fn valid_pod_passes() {
    assert_eq!(
        create(
            json!({"containers": [{"name": "web", "image": "nginx", "ports": [{"name": "http", "containerPort": 80}],
            "env": [{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "livenessProbe": {"httpGet": {"port": "http"}}, "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data"}]})
        ),
        Vec::<String>::new()
    );
}

#[test]
fn create_errors_match_kubernetes() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"containers": []}), vec!["spec.containers: Required value"]),
        (
            json!({"containers": [{"name": "", "image": "nginx"}]}),
            vec!["spec.containers[0].name: Required value"],
        ),
        (
            json!({"containers": [{"name": "web"}]}),
            vec!["spec.containers[0].image: Required value"],
        ),
        (
            json!({"containers": [{"name": "Web", "image": "nginx"}]}),
            vec![r#"spec.containers[0].name: Invalid value: "Web": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]}),
            vec![r#"spec.containers[1].name: Duplicate value: "a""#],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 70000}, {"containerPort": 80, "protocol": "ICMP"}, {"containerPort": 0}]}]}),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                r#"spec.containers[0].ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP""#,
                "spec.containers[0].ports[2].containerPort: Required value",
            ],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "ports": [{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]}]}),
            vec![r#"spec.containers[0].ports[1].name: Duplicate value: "http""#],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}, {"name": "b", "image": "y", "ports": [{"containerPort": 81, "hostPort": 8080}]}]}),
            vec![r#"spec.containers[1].ports[0].hostPort: Duplicate value: "TCP//8080""#],
        ),
        (
            json!({"restartPolicy": "Sometimes", "containers": [{"name": "a", "image": "x"}]}),
            vec![r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#],
        ),
        (
            json!({"dnsPolicy": "Custom", "containers": [{"name": "a", "image": "x"}]}),
            vec![r#"spec.dnsPolicy: Unsupported value: "Custom": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None""#],
        ),
        (
            json!({"dnsPolicy": "None", "containers": [{"name": "a", "image": "x"}]}),
            vec!["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Sometimes"}]}),
            vec![r#"spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never""#],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "env": [{"name": ""}, {"name": "A=B"}]}]}),
            vec![
                "spec.containers[0].env[0].name: Required value",
                r#"spec.containers[0].env[1].name: Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII characters other than '='"#,
            ],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "env": [{"name": "A", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}),
            vec![r#"spec.containers[0].env[0].valueFrom: Invalid value: "": may not be specified when `value` is not empty"#],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}]}]}),
            vec![r#"spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "status.phase": supported values: "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs""#],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "missing", "mountPath": "/d"}]}]}),
            vec![r#"spec.containers[0].volumeMounts[0].name: Not found: "missing""#],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "livenessProbe": {"httpGet": {"port": 80}, "successThreshold": 2}}]}),
            vec!["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "readinessProbe": {"periodSeconds": 5}}]}),
            vec!["spec.containers[0].readinessProbe: Required value: must specify a handler type"],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}]}),
            vec!["spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "readinessProbe": {"tcpSocket": {"port": "Web"}}}]}),
            vec![r#"spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: "Web": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"#],
        ),
        (
            json!({"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}], "containers": [{"name": "a", "image": "x"}]}),
            vec!["spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"],
        ),
        (
            json!({"volumes": [{"name": "v"}, {"name": "v"}], "containers": [{"name": "a", "image": "x"}]}),
            vec![r#"spec.volumes[1].name: Duplicate value: "v""#],
        ),
        (
            json!({"hostNetwork": true, "containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
            vec!["spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"],
        ),
        (
            json!({"tolerations": [{"operator": "Equal", "value": "x"}], "containers": [{"name": "a", "image": "x"}]}),
            vec![r#"spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which means "match all values and all keys""#],
        ),
        (
            json!({"activeDeadlineSeconds": 0, "containers": [{"name": "a", "image": "x"}]}),
            vec!["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"],
        ),
        (
            json!({"containers": [{"name": "a", "image": " nginx"}]}),
            vec![r#"spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace"#],
        ),
        (
            json!({"initContainers": [{"name": "a", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}}], "containers": [{"name": "a", "image": "x"}]}),
            vec![
                r#"spec.initContainers[0].name: Duplicate value: "a""#,
                "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            ],
        ),
        (
            json!({"containers": [{"name": "a", "image": "x", "restartPolicy": "Always"}]}),
            vec!["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(create(spec.clone()), want, "{spec}");
    }
}

#[test]
fn updates_may_only_change_images_and_a_few_fields() {
    let mut old = pod(json!({"containers": [{"name": "web", "image": "nginx:1.26"}]}));
    old.metadata.resource_version = Some("3".into());
    let mut new = old.clone();
    new.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.27".into());
    assert_eq!(validate_update(&new, &old), vec![]);

    let mut new = old.clone();
    new.spec.as_mut().unwrap().containers[0].ports = Some(vec![serde_json::from_value(
        json!({"containerPort": 80, "protocol": "TCP"}),
    )
    .unwrap()]);
    let errs = validate_update(&new, &old);
    assert_eq!(errs.len(), 1);
    let msg = errs[0].to_string();
    assert!(
        msg.starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"),
        "{msg}"
    );
    assert!(
        msg.contains("+ \tspec.containers[0].ports[0].containerPort: 80,"),
        "{msg}"
    );

    let mut new = old.clone();
    new.spec
        .as_mut()
        .unwrap()
        .containers
        .push(serde_json::from_value(json!({"name": "b", "image": "x"})).unwrap());
    default_pod(&mut new);
    let got = messages(&validate_update(&new, &old));
    assert_eq!(
        got,
        vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
    );
}

#[test]
fn status_updates() {
    let mut old = pod(
        json!({"restartPolicy": "Never", "nodeName": "n1", "containers": [{"name": "web", "image": "nginx"}]}),
    );
    old.metadata.resource_version = Some("3".into());
    old.status = Some(serde_json::from_value(json!({"containerStatuses": [{"name": "web", "image": "nginx", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0}}}]})).unwrap());
    let mut new = old.clone();
    new.status = Some(serde_json::from_value(json!({"podIPs": [{"ip": "10.244.1.5"}, {"ip": "10.244.1.6"}],
        "containerStatuses": [{"name": "web", "image": "nginx", "imageID": "", "ready": true, "restartCount": 1, "state": {"running": {}}}]})).unwrap());
    new.spec.as_mut().unwrap().node_name = Some("n2".into());
    let got = messages(&validate_status_update(&new, &old));
    assert_eq!(
        got,
        vec![
            "status.nodeName: Forbidden: may not be changed directly",
            "status.containerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state",
            r#"status.podIPs: Invalid value: []core.PodIP{core.PodIP{IP:"10.244.1.5"}, core.PodIP{IP:"10.244.1.6"}}: may specify no more than one IP for each IP family"#,
        ]
    );
}
