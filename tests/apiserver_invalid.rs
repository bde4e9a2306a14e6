//! Invalid input through the real kubectl: each case prints Kubernetes' own message, and
//! nothing is stored.

mod support;

use serde_json::{json, Value};
use support::ApiServer;

fn svc(name: &str, spec: Value) -> String {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

fn create_err(s: &ApiServer, manifest: &str) -> String {
    let out = s.kubectl_stdin(&["create", "-f", "-"], manifest);
    assert!(
        !out.status.success(),
        "created although invalid: {manifest}"
    );
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn invalid_services_print_kubernetes_messages() {
    let s = ApiServer::start();
    let p80 = json!([{"port": 80}]);
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            svc("1bad", json!({"ports": p80})),
            vec![r#"The Service "1bad" is invalid: metadata.name: Invalid value: "1bad": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#],
        ),
        (svc("noports", json!({"selector": {"app": "x"}})), vec![r#"The Service "noports" is invalid: spec.ports: Required value"#]),
        (
            svc("unnamed", json!({"ports": [{"port": 80}, {"port": 81}]})),
            vec!["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"],
        ),
        (
            svc("dup", json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]})),
            vec![r#"spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}"#],
        ),
        (
            svc("range", json!({"ports": [{"port": 70000}]})),
            // targetPort defaults to the port, so both are reported; kubectl lists several causes
            // one per line.
            vec![
                "The Service \"range\" is invalid: \n* spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "* spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            svc("named", json!({"ports": [{"port": 80, "targetPort": "Web_Port"}]})),
            vec![r#"spec.ports[0].targetPort: Invalid value: "Web_Port": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"#],
        ),
        (
            svc("np-on-cip", json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]})),
            vec!["The Service \"np-on-cip\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            svc("headless-np", json!({"type": "NodePort", "clusterIP": "None", "ports": p80})),
            vec![r#"spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for NodePort services"#],
        ),
        (svc("en", json!({"type": "ExternalName"})), vec![r#"The Service "en" is invalid: spec.externalName: Required value"#]),
        (
            svc("en-ip", json!({"type": "ExternalName", "externalName": "example.com", "clusterIP": "10.96.5.5"})),
            vec!["spec.clusterIPs: Forbidden: may not be set for ExternalName services"],
        ),
        (
            svc("aff", json!({"ports": p80, "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}})),
            vec!["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400"],
        ),
        (
            svc("etp", json!({"ports": p80, "externalTrafficPolicy": "Local"})),
            vec![r#"spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services"#],
        ),
        (
            svc("ty", json!({"type": "Foo", "ports": p80})),
            vec![r#"spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#],
        ),
        (
            svc("outside", json!({"clusterIP": "10.0.0.1", "ports": p80})),
            vec![r#"The Service "outside" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: failed to allocate IP 10.0.0.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"#],
        ),
        (
            svc("np-range", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})),
            vec![r#"The Service "np-range" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"#],
        ),
        (
            svc("strict", json!({"ports": p80, "bogus": true})),
            vec![r#"Service in version "v1" cannot be handled as a Service: strict decoding error: unknown field "spec.bogus""#],
        ),
    ];
    for (manifest, wants) in &cases {
        let err = create_err(&s, manifest);
        for want in wants {
            assert!(
                err.contains(want),
                "for {manifest}\nwant: {want}\ngot:  {err}"
            );
        }
    }
    // Nothing of the above was stored.
    let names = s.kubectl_ok(&["get", "svc", "-o", "name"]);
    assert_eq!(names.trim(), "service/kubernetes");

    // sessionAffinityConfig with affinity None: Kubernetes' defaulting drops it (so its validation
    // rule never fires through the API); so do we.
    let out = s.kubectl_stdin(&["create", "-f", "-"], &svc("aff-none", json!({"ports": p80, "sessionAffinity": "None", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}})));
    assert!(out.status.success());
    assert_eq!(
        s.jsonpath(
            "svc",
            "aff-none",
            "{.spec.sessionAffinity}|{.spec.sessionAffinityConfig}"
        ),
        "None|"
    );
    s.kubectl_ok(&["delete", "svc", "aff-none"]);

    // Allocated values are refused for a second Service.
    s.kubectl_stdin(&["create", "-f", "-"], &svc("first", json!({"type": "NodePort", "clusterIP": "10.97.1.1", "ports": [{"port": 80, "nodePort": 30002}]})));
    let err = create_err(
        &s,
        &svc("second", json!({"clusterIP": "10.97.1.1", "ports": p80})),
    );
    assert_eq!(
        err,
        r#"The Service "second" is invalid: spec.clusterIPs: Invalid value: []string{"10.97.1.1"}: failed to allocate IP 10.97.1.1: provided IP is already allocated"#
    );
    let err = create_err(
        &s,
        &svc(
            "third",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30002}]}),
        ),
    );
    assert_eq!(
        err,
        r#"The Service "third" is invalid: spec.ports[0].nodePort: Invalid value: 30002: provided port is already allocated"#
    );

    // Updates: the ClusterIP is immutable; a conflicting name is 409.
    let out = s.kubectl(&[
        "patch",
        "svc",
        "first",
        "--type=merge",
        "-p",
        r#"{"spec":{"clusterIP":"10.97.1.2","clusterIPs":["10.97.1.2"]}}"#,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            r#"spec.clusterIPs[0]: Invalid value: []string{"10.97.1.2"}: may not change once set"#
        ),
        "{err}"
    );
    let err = create_err(&s, &svc("first", json!({"ports": p80})));
    assert!(err.contains(r#"services "first" already exists"#), "{err}");
    // The stored object is untouched by all of the above.
    let ip = s.jsonpath(
        "svc",
        "first",
        "{.spec.clusterIP} {.spec.ports[0].nodePort}",
    );
    assert_eq!(ip, "10.97.1.1 30002");
}
