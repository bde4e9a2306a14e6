//! The cluster-administration kinds clients expect of any API server, driven by the real
//! kubectl: RBAC objects (stored and validated; issue 20 enforces them),
//! CertificateSigningRequests with `kubectl certificate approve`, the local APIServices and
//! ComponentStatuses.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{eventually, table, ApiServer};

#[test]
fn rbac_objects_with_kubernetes_validation_and_columns() {
    let s = ApiServer::start();
    // The Role of kubernetes-client/python's e2e test (rbac-role.yaml).
    let role = "kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  namespace: default
  name: pod-reader
rules:
- apiGroups: [\"\"]
  resources: [\"pods\"]
  verbs: [\"get\", \"watch\", \"list\"]
";
    let out = s.kubectl_stdin(&["apply", "-f", "-"], role);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "role.rbac.authorization.k8s.io/pod-reader created"
    );
    let verbs = s.kubectl_ok(&[
        "get",
        "role",
        "pod-reader",
        "-o",
        "jsonpath={.rules[0].verbs}",
    ]);
    assert_eq!(verbs.trim(), r#"["get","watch","list"]"#);

    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "read-pods",
        "--role=pod-reader",
        "--user=alice",
        "--group=devs",
        "--serviceaccount=web:default",
    ]);
    let t = table(&s.kubectl_ok(&["get", "rolebinding", "read-pods", "-o", "wide"]));
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        (
            t[0]["ROLE"].as_str(),
            t[0]["USERS"].as_str(),
            t[0]["GROUPS"].as_str(),
            t[0]["SERVICEACCOUNTS"].as_str()
        ),
        ("Role/pod-reader", "alice", "devs", "web/default")
    );
    s.kubectl_ok(&[
        "create",
        "clusterrole",
        "metrics-reader",
        "--verb=get",
        "--non-resource-url=/metrics",
    ]);
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "metrics",
        "--clusterrole=metrics-reader",
        "--user=prometheus",
    ]);
    let t = table(&s.kubectl_ok(&["get", "clusterrolebinding", "metrics"]));
    assert_eq!(t[0]["ROLE"], "ClusterRole/metrics-reader", "{t:?}");

    // Kubernetes' messages, nothing stored.
    let bad = "kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata: {namespace: default, name: metrics}
rules:
- nonResourceURLs: [\"/metrics\"]
  verbs: [\"get\"]
";
    let out = s.kubectl_stdin(&["create", "-f", "-"], bad);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        r#"The Role "metrics" is invalid: rules[0].nonResourceURLs: Invalid value: []string{"/metrics"}: namespaced rules cannot apply to non-resource URLs"#
    );
    let err = s.kubectl_err(&[
        "patch",
        "rolebinding",
        "read-pods",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"name":"admin","kind":"ClusterRole"}}"#,
    ]);
    assert!(
        err.contains(r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"admin"}: cannot change roleRef"#),
        "{err}"
    );
    let err = s.kubectl_err(&["get", "role", "metrics"]);
    assert!(err.contains("NotFound"), "{err}");

    // The bootstrap policy's cluster-admin, bound to system:masters.
    let t = table(&s.kubectl_ok(&["get", "clusterrolebinding", "cluster-admin", "-o", "wide"]));
    assert_eq!(
        (t[0]["ROLE"].as_str(), t[0]["GROUPS"].as_str()),
        ("ClusterRole/cluster-admin", "system:masters"),
        "{t:?}"
    );
}

/// A PEM certificate request for `CN=<user>, O=<group>` made by openssl.
fn certificate_request(dir: &std::path::Path, user: &str, group: &str) -> String {
    let key = dir.join(format!("{user}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-keyout"])
        .arg(&key)
        .args(["-subj", &format!("/CN={user}/O={group}")])
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn certificate_signing_requests_are_approved_through_approval() {
    let s = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let csr = |name: &str, request: &str, signer: &str| {
        format!(
            "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {{name: {name}}}
spec:
  request: {request}
  signerName: {signer}
  expirationSeconds: 86400
  usages: [client auth]
"
        )
    };
    let req = b64(&certificate_request(dir.path(), "alice", "devs"));
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        &csr("alice", &req, "kubernetes.io/kube-apiserver-client"),
    );
    assert!(out.status.success(), "{out:?}");
    // The requester is who created it, whatever the body said.
    let t = table(&s.kubectl_ok(&["get", "csr"]));
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        (
            t[0]["SIGNERNAME"].as_str(),
            t[0]["REQUESTOR"].as_str(),
            t[0]["REQUESTEDDURATION"].as_str(),
            t[0]["CONDITION"].as_str()
        ),
        (
            "kubernetes.io/kube-apiserver-client",
            "admin",
            "24h",
            "Pending"
        )
    );
    let groups = s.kubectl_ok(&["get", "csr", "alice", "-o", "jsonpath={.spec.groups}"]);
    assert_eq!(
        groups.trim(),
        r#"["system:masters","system:authenticated"]"#
    );

    // Approval is its own subresource: a status update may not add it.
    let (code, body) = s.curl_auth(
        &[
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/merge-patch+json",
            "-d",
            r#"{"status":{"conditions":[{"type":"Approved","status":"True","reason":"Sneaky"}]}}"#,
        ],
        "/apis/certificates.k8s.io/v1/certificatesigningrequests/alice/status",
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains(r#"updates may not add a condition of type \"Approved\""#),
        "{body}"
    );
    let out = s.kubectl_ok(&["certificate", "approve", "alice"]);
    assert_eq!(
        out.trim(),
        "certificatesigningrequest.certificates.k8s.io/alice approved"
    );
    let t = table(&s.kubectl_ok(&["get", "csr", "alice"]));
    assert_eq!(t[0]["CONDITION"], "Approved", "{t:?}");
    let reason = s.kubectl_ok(&[
        "get",
        "csr",
        "alice",
        "-o",
        "jsonpath={.status.conditions[0].reason} {.status.conditions[0].lastUpdateTime}",
    ]);
    let (reason, updated) = reason.trim().split_once(' ').unwrap();
    assert_eq!(reason, "KubectlApprove");
    assert!(!updated.is_empty(), "the condition gets its timestamps");
    // Once approved, kubectl refuses to deny; the server refuses Denied beside Approved.
    let err = s.kubectl_err(&["certificate", "deny", "alice"]);
    assert!(
        err.contains(r#"certificate signing request "alice" is already Approved"#),
        "{err}"
    );
    let (code, body) = s.curl_auth(
        &[
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/json-patch+json",
            "-d",
            r#"[{"op":"add","path":"/status/conditions/-","value":{"type":"Denied","status":"True"}}]"#,
        ],
        "/apis/certificates.k8s.io/v1/certificatesigningrequests/alice/approval",
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains(r#"status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"#),
        "{body}"
    );

    // A request that is not a CSR, an unknown usage: Kubernetes' messages.
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        &csr("junk", &b64("hello"), "example.com/signer"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f}: PEM block type must be CERTIFICATE REQUEST"),
        "{err}"
    );
    let err = s.kubectl_err(&["get", "csr", "junk"]);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn local_api_services_and_component_statuses() {
    let mut s = ApiServer::start();
    let t = table(&s.kubectl_ok(&["get", "apiservices"]));
    let row = |name: &str| {
        t.iter()
            .find(|r| r["NAME"] == name)
            .unwrap_or_else(|| panic!("no APIService {name} in {t:?}"))
            .clone()
    };
    for name in [
        "v1.",
        "v1.apps",
        "v1.rbac.authorization.k8s.io",
        "v1.apiregistration.k8s.io",
    ] {
        let r = row(name);
        assert_eq!(
            (r["SERVICE"].as_str(), r["AVAILABLE"].as_str()),
            ("Local", "True")
        );
    }
    // A service-backed APIService (python's api-service.yaml) is stored; svcnet does not proxy
    // to it, so it is not available; a second create is a conflict.
    let wardle = "apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.wardle.k8s.io}
spec:
  insecureSkipTLSVerify: true
  group: wardle.k8s.io
  groupPriorityMinimum: 1000
  versionPriority: 15
  service: {name: api, namespace: wardle}
  version: v1alpha1
";
    let out = s.kubectl_stdin(&["create", "-f", "-"], wardle);
    assert!(out.status.success(), "{out:?}");
    let out = s.kubectl_stdin(&["create", "-f", "-"], wardle);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        r#"Error from server (AlreadyExists): error when creating "STDIN": apiservices.apiregistration.k8s.io "v1alpha1.wardle.k8s.io" already exists"#
    );
    let t = table(&s.kubectl_ok(&["get", "apiservice", "v1alpha1.wardle.k8s.io"]));
    assert_eq!(
        (t[0]["SERVICE"].as_str(), t[0]["AVAILABLE"].as_str()),
        ("wardle/api", "False (FailedDiscoveryCheck)")
    );
    let port = s.kubectl_ok(&[
        "get",
        "apiservice",
        "v1alpha1.wardle.k8s.io",
        "-o",
        "jsonpath={.spec.service.port}",
    ]);
    assert_eq!(port.trim(), "443", "defaulted");

    // ComponentStatuses: etcd-0 is the store; the controller manager and scheduler are healthy
    // while their kube-system Leases are renewed.
    let t = table(&s.kubectl_ok(&["get", "componentstatuses"]));
    let status: Vec<(&str, &str)> = t
        .iter()
        .map(|r| (r["NAME"].as_str(), r["STATUS"].as_str()))
        .collect();
    assert_eq!(
        status,
        [
            ("controller-manager", "Unhealthy"),
            ("scheduler", "Unhealthy"),
            ("etcd-0", "Healthy")
        ]
    );
    s.start_controllers(&[]);
    eventually(Duration::from_secs(20), "components healthy", || {
        let t = table(&String::from_utf8_lossy(&s.kubectl(&["get", "cs"]).stdout));
        (t.len() == 3 && t.iter().all(|r| r["STATUS"] == "Healthy")).then_some(())
    });
    let holder = s.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.trim().is_empty());
    let err = s.kubectl_err(&["get", "cs", "kube-proxy"]);
    assert!(
        err.contains(r#"componentstatuses "kube-proxy" not found"#),
        "{err}"
    );
}
