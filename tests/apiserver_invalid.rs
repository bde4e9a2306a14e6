//! Invalid and hostile input through the real kubectl and curl: each case gets Kubernetes' own
//! status and message, nothing is stored, and the server's memory stays where it was.

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};
use support::{test_store_is_etcd, ApiServer};

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

/// `curl -X <method>` of the file `body` (written into the test's dir) with `content_type`:
/// (status code, the answer as JSON).
fn send(s: &ApiServer, method: &str, content_type: &str, path: &str, body: &str) -> (u16, Value) {
    let file = s.dir.path().join("body.json");
    std::fs::write(&file, body).unwrap();
    let ct = format!("Content-Type: {content_type}");
    let at = format!("@{}", file.display());
    let (code, out) = s.curl_auth(&["-X", method, "-H", &ct, "--data-binary", &at], path);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:.300}"));
    (code, v)
}

/// `status`'s code, reason and message, and its first cause's message ("" if none).
fn status(v: &Value) -> (i64, &str, &str, &str) {
    (
        v["code"].as_i64().unwrap_or(0),
        v["reason"].as_str().unwrap_or(""),
        v["message"].as_str().unwrap_or(""),
        v.pointer("/details/causes/0/message")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
}

/// The pid of `s`'s `svcnet apiserver` process (the one started on its data dir).
fn server_pid(s: &ApiServer) -> u32 {
    let dir = s.data_dir().display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&b"apiserver".as_slice()) && args.contains(&dir.as_bytes()) {
            return pid;
        }
    }
    panic!("no svcnet apiserver on {dir}");
}

/// Resident memory of `pid`, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024
}

/// The issue's copy bomb (a 1,024-element array copied into itself 40 times: 2.9 KB that
/// would double to gigabytes) and more than 10,000 operations are refused with Kubernetes'
/// errors before any memory is spent on them; the object stays as it was.
#[test]
fn json_patch_bombs_are_refused_without_memory() {
    let s = ApiServer::start();
    s.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let before = s.kubectl_ok(&["get", "svc", "web", "-o", "json"]);
    let pid = server_pid(&s);
    let rss_before = rss_mib(pid);

    let mut ops = vec![json!({"op": "add", "path": "/x", "value": vec!["a"; 1024]})];
    ops.extend((0..40).map(|_| json!({"op": "copy", "from": "/x", "path": "/x/-"})));
    let bomb = Value::Array(ops).to_string();
    assert!(bomb.len() < 8 * 1024, "{}", bomb.len());
    let path = "/api/v1/namespaces/default/services/web";
    let (code, v) = send(&s, "PATCH", "application/json-patch+json", path, &bomb);
    assert_eq!(
        status(&v),
        (
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
            "Unable to complete the copy, the accumulated size increase of copy is 4192244, exceeding the limit 3145728"
        ),
        "{v}"
    );
    assert_eq!(code, 422);
    // kubectl sends the same patch and reports the refusal with its cause.
    std::fs::write(s.dir.path().join("bomb.json"), &bomb).unwrap();
    let bomb_file = s.dir.path().join("bomb.json");
    let err = s.kubectl_err(&[
        "patch",
        "svc",
        "web",
        "--type=json",
        "--patch-file",
        bomb_file.to_str().unwrap(),
    ]);
    assert!(
        err.contains("The request is invalid")
            && err.contains("Unable to complete the copy, the accumulated size increase of copy is 4192244, exceeding the limit 3145728"),
        "{err}"
    );

    let op = json!({"op": "add", "path": "/metadata/labels/x", "value": "y"});
    let many = Value::Array(vec![op; 10_001]).to_string();
    let (code, v) = send(&s, "PATCH", "application/json-patch+json", path, &many);
    assert_eq!(code, 413);
    assert_eq!(
        status(&v),
        (
            413,
            "RequestEntityTooLarge",
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001",
            ""
        ),
        "{v}"
    );

    // Unbounded, the bomb takes gigabytes within seconds; refused, a few MiB at most.
    let rss_after = rss_mib(pid);
    assert!(
        rss_after < rss_before + 100,
        "RSS {rss_before} MiB -> {rss_after} MiB"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "svc", "web", "-o", "json"]),
        before,
        "the Service is untouched"
    );
}

/// A patch whose result would be larger than any body the server accepts (3 MiB) is refused
/// as such a body is, whatever the patch type; the object stays as it was.
#[test]
fn patched_objects_are_held_to_the_body_limit() {
    let s = ApiServer::start();
    s.kubectl_ok(&["create", "deployment", "web", "--image=busybox"]);
    let before = s.kubectl_ok(&["get", "deploy", "web", "-o", "json"]);
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let limit = 3 * 1024 * 1024;
    let too_large = (
        413,
        "RequestEntityTooLarge",
        "Request entity too large: limit is 3145728",
        "",
    );

    // JSON patch: 1.6 MB of arguments, copied once (within the copy limit): 3.2 MB.
    let args = "/spec/template/spec/containers/0/args";
    let half = "a".repeat(1_600_000);
    let copy = json!([
        {"op": "add", "path": args, "value": [half]},
        {"op": "copy", "from": format!("{args}/0"), "path": format!("{args}/-")},
    ]);
    let (_, v) = send(
        &s,
        "PATCH",
        "application/json-patch+json",
        path,
        &copy.to_string(),
    );
    assert_eq!(status(&v), too_large, "{v}");

    // Merge and strategic merge patches as large as a body may be, onto the object.
    let fill = |wrapper: &str| {
        let overhead = wrapper.len() - 2;
        wrapper.replace("{}", &"a".repeat(limit - overhead))
    };
    let merge = fill(
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"busybox","image":"busybox","args":["{}"]}]}}}}"#,
    );
    let smp =
        fill(r#"{"spec":{"template":{"spec":{"containers":[{"name":"busybox","args":["{}"]}]}}}}"#);
    for (ct, body) in [
        ("application/merge-patch+json", &merge),
        ("application/strategic-merge-patch+json", &smp),
    ] {
        assert_eq!(body.len(), limit);
        let (_, v) = send(&s, "PATCH", ct, path, body);
        assert_eq!(status(&v), too_large, "{ct}: {v:.300}");
    }
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "web", "-o", "json"]),
        before,
        "the Deployment is untouched"
    );
}

/// A changed uid or namespace is refused as Kubernetes refuses it, path by path, instead of
/// being ignored; the stored object keeps its own.
#[test]
fn changed_uid_or_namespace_is_refused() {
    let s = ApiServer::start();
    s.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let uid = s.jsonpath("svc", "web", "{.metadata.uid}");
    let before = s.kubectl_ok(&["get", "svc", "web", "-o", "json"]);
    let path = "/api/v1/namespaces/default/services/web";

    // PATCH, main resource and status: the uid is immutable (BeforeUpdate's
    // validateCommonFields).
    let err = s.kubectl_err(&[
        "patch",
        "svc",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"uid":"other"}}"#,
    ]);
    assert_eq!(
        err.trim(),
        r#"The Service "web" is invalid: metadata.uid: Invalid value: "other": field is immutable"#
    );
    let (_, v) = send(
        &s,
        "PATCH",
        "application/merge-patch+json",
        &format!("{path}/status"),
        r#"{"metadata":{"uid":"other"},"status":{"loadBalancer":{}}}"#,
    );
    assert_eq!(
        status(&v),
        (
            422,
            "Invalid",
            r#"Service "web" is invalid: metadata.uid: Invalid value: "other": field is immutable"#,
            r#"Invalid value: "other": field is immutable"#
        ),
        "{v}"
    );
    // PATCH: the namespace must be the request's (EnsureObjectNamespaceMatchesRequestNamespace).
    for ct in [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ] {
        let (_, v) = send(
            &s,
            "PATCH",
            ct,
            path,
            r#"{"metadata":{"namespace":"kube-system"}}"#,
        );
        assert_eq!(
            status(&v),
            (
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
                ""
            ),
            "{ct}: {v}"
        );
    }
    let (_, v) = send(
        &s,
        "PATCH",
        "application/json-patch+json",
        path,
        r#"[{"op":"replace","path":"/metadata/namespace","value":"kube-system"}]"#,
    );
    assert_eq!(status(&v).0, 400, "{v}");

    // PUT: the object's uid is a precondition on the stored one (409), its namespace must be
    // the URL's (EnsureObjectNamespaceMatchesRequestNamespace, 400).
    let mut obj: Value = serde_json::from_str(&before).unwrap();
    obj["metadata"]["uid"] = json!("other");
    let (_, v) = send(&s, "PUT", "application/json", path, &obj.to_string());
    let conflict = format!(
        r#"Operation cannot be fulfilled on services "web": StorageError: invalid object, Code: 4, Key: /registry/services/specs/default/web, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: other, UID in object meta: {uid}"#
    );
    assert_eq!(status(&v), (409, "Conflict", conflict.as_str(), ""), "{v}");
    let mut obj: Value = serde_json::from_str(&before).unwrap();
    obj["metadata"]["namespace"] = json!("kube-system");
    let (_, v) = send(&s, "PUT", "application/json", path, &obj.to_string());
    assert_eq!(
        status(&v),
        (
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
            ""
        ),
        "{v}"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "svc", "web", "-o", "json"]),
        before,
        "the Service is untouched"
    );

    // What the precondition is for: `kubectl replace` of a copy taken before the Service was
    // deleted and created again does not overwrite the new one.
    let old_copy = s.dir.path().join("old.json");
    std::fs::write(&old_copy, &before).unwrap();
    s.kubectl_ok(&["delete", "svc", "web"]);
    s.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=81:8081"]);
    let new_uid = s.jsonpath("svc", "web", "{.metadata.uid}");
    let err = s.kubectl_err(&["replace", "-f", old_copy.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {new_uid}"
        )),
        "{err}"
    );
    assert_eq!(s.jsonpath("svc", "web", "{.spec.ports[0].port}"), "81");
}

/// Kubernetes defaults a missing `kind` and `apiVersion` of a create or update body from the
/// URL (the create and update handlers decode with the resource's kind as default, the JSON
/// serializer's `gvkWithDefaults`; apiserver's `TestCreateDefaultsAPIVersion`). "Object 'Kind'
/// is missing in '...'" is what kubectl says of a manifest without `kind`, before sending
/// anything. A kind that differs is refused.
#[test]
fn bodies_without_kind_take_the_url_s() {
    let s = ApiServer::start();
    let path = "/api/v1/namespaces/default/services";
    let (code, v) = send(
        &s,
        "POST",
        "application/json",
        path,
        r#"{"metadata":{"name":"bare"},"spec":{"ports":[{"port":80}]}}"#,
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        (v["kind"].as_str(), v["apiVersion"].as_str()),
        (Some("Service"), Some("v1"))
    );
    let (code, v) = send(
        &s,
        "POST",
        "application/json",
        path,
        r#"{"kind":"Pod","metadata":{"name":"pod"},"spec":{"ports":[{"port":80}]}}"#,
    );
    assert_eq!(code, 400, "{v}");
    // An update without kind is an update of the URL's kind too.
    let (code, v) = send(
        &s,
        "PUT",
        "application/json",
        &format!("{path}/bare"),
        r#"{"metadata":{"name":"bare"},"spec":{"ports":[{"port":81}]}}"#,
    );
    assert_eq!((code, v["kind"].as_str()), (200, Some("Service")), "{v}");
    assert_eq!(s.jsonpath("svc", "bare", "{.spec.ports[0].port}"), "81");
    // kubectl refuses a manifest without kind itself ("kind not set" when it validates).
    let manifest = s.dir.path().join("bare.json");
    std::fs::write(&manifest, r#"{"apiVersion":"v1","metadata":{"name":"x"}}"#).unwrap();
    let manifest = manifest.to_str().unwrap();
    let err = s.kubectl_err(&["create", "--validate=false", "-f", manifest]);
    assert!(err.contains("Object 'Kind' is missing in"), "{err}");
}

/// The data dir is 0700 and every private file in it 0600, from the first start and after a
/// restart on a data dir an older version left readable.
#[test]
fn data_dir_and_private_files_are_owner_only() {
    let mut s = ApiServer::start();
    let dir = s.data_dir();
    let mut private = vec![
        "ca.key",
        "apiserver.key",
        "admin.token",
        "kubelet-client.token",
        "kubeconfig",
        "apiserver.lock",
    ];
    if !test_store_is_etcd() {
        private.extend(["state.db", "state.db-wal", "state.db-shm"]);
    }
    let mode = |f: &str| {
        let out = std::process::Command::new("stat")
            .args(["-c", "%a"])
            .arg(dir.join(f))
            .output()
            .unwrap();
        assert!(out.status.success(), "stat {f}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let check = |when: &str| {
        assert_eq!(mode(""), "700", "{when}: the data dir");
        for f in &private {
            assert_eq!(mode(f), "600", "{when}: {f}");
        }
    };
    s.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    check("first start");

    s.kill9();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in &private {
        let p = dir.join(f);
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    s.spawn();
    s.kubectl_ok(&["get", "svc", "web"]);
    check("restart");
}
