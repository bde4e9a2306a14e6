//! Server-side apply with the real kubectl: `apply --server-side` (twice, idempotent), a
//! conflict with another field manager (409 with Kubernetes' message), `--force-conflicts`,
//! `diff --server-side`, `get --show-managed-fields`, and managedFields on ordinary writes.

mod support;

use support::ApiServer;

const WEB: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
";

fn apply(s: &ApiServer, extra: &[&str], manifest: &str) -> std::process::Output {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    args.extend_from_slice(extra);
    s.kubectl_stdin(&args, manifest)
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn apply_server_side_twice_conflict_force_and_diff() {
    let s = ApiServer::start();
    assert_eq!(
        ok(apply(&s, &[], WEB)).trim(),
        "service/web serverside-applied"
    );
    let rv = s.jsonpath("svc", "web", "{.metadata.resourceVersion}");
    // A second identical apply writes nothing.
    assert_eq!(
        ok(apply(&s, &[], WEB)).trim(),
        "service/web serverside-applied"
    );
    assert_eq!(s.jsonpath("svc", "web", "{.metadata.resourceVersion}"), rv);

    let yaml = s.kubectl_ok(&["get", "svc", "web", "-o", "yaml", "--show-managed-fields"]);
    for want in [
        "manager: kubectl",
        "operation: Apply",
        "fieldsType: FieldsV1",
        "k:{\"port\":80,\"protocol\":\"TCP\"}:",
        "f:targetPort: {}",
    ] {
        assert!(yaml.contains(want), "no {want:?} in\n{yaml}");
    }
    let plain = s.kubectl_ok(&["get", "svc", "web", "-o", "yaml"]);
    assert!(!plain.contains("managedFields"), "{plain}");

    // Another manager changing kubectl's field conflicts.
    let other = WEB.replace("8080", "9090");
    let out = apply(&s, &["--field-manager=other"], &other);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.ports[port=80,protocol=\"TCP\"].targetPort"
        ),
        "{err}"
    );
    assert_eq!(
        s.jsonpath("svc", "web", "{.spec.ports[0].targetPort}"),
        "8080"
    );

    // diff --server-side shows what the apply would change, and changes nothing.
    let out = s.kubectl_stdin(
        &[
            "diff",
            "--server-side",
            "--force-conflicts",
            "--field-manager=other",
            "-f",
            "-",
        ],
        &other,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains("-    targetPort: 8080"), "{diff}");
    assert!(diff.contains("+    targetPort: 9090"), "{diff}");
    assert_eq!(
        s.jsonpath("svc", "web", "{.spec.ports[0].targetPort}"),
        "8080"
    );

    // --force-conflicts takes the field.
    ok(apply(
        &s,
        &["--field-manager=other", "--force-conflicts"],
        &other,
    ));
    assert_eq!(
        s.jsonpath("svc", "web", "{.spec.ports[0].targetPort}"),
        "9090"
    );
    let managers = s.jsonpath("svc", "web", "{.metadata.managedFields[*].manager}");
    assert_eq!(managers, "kubectl other");

    // kubectl stops applying the selector (and agrees on the port: shared, no conflict):
    // "other" owns the selector too, so it stays; once "other" drops it, it goes.
    ok(apply(
        &s,
        &[],
        &other.replace("  selector: {app: web}\n", ""),
    ));
    assert_eq!(s.jsonpath("svc", "web", "{.spec.selector.app}"), "web");
    ok(apply(
        &s,
        &["--field-manager=other"],
        &other.replace("  selector: {app: web}\n", ""),
    ));
    assert_eq!(s.jsonpath("svc", "web", "{.spec.selector}"), "");
}

#[test]
fn conflict_with_client_side_apply_and_update_managers() {
    let s = ApiServer::start();
    // A client-side apply is an Update by "kubectl-client-side-apply".
    let out = s.kubectl_stdin(&["apply", "-f", "-"], WEB);
    ok(out);
    let managers = s.jsonpath(
        "svc",
        "web",
        "{.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}",
    );
    assert_eq!(managers, "kubectl-client-side-apply Update");
    let out = apply(&s, &[], &WEB.replace("8080", "9090"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .spec.ports[port=80,protocol=\"TCP\"].targetPort"
        ),
        "{err}"
    );

    // An apply without fieldManager is Kubernetes' 422.
    let (code, body) = s.curl_auth(
        &[
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/apply-patch+yaml",
            "--data-binary",
            WEB,
        ],
        "/api/v1/namespaces/default/services/web",
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains(r#"PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"#),
        "{body}"
    );

    // A label set by `kubectl label` is an Update manager's too.
    s.kubectl_ok(&["label", "svc", "web", "tier=front"]);
    let yaml = s.kubectl_ok(&["get", "svc", "web", "-o", "yaml", "--show-managed-fields"]);
    assert!(yaml.contains("manager: kubectl-label"), "{yaml}");
    assert!(yaml.contains("f:tier: {}"), "{yaml}");
}
