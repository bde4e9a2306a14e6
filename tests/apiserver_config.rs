//! ConfigMaps and Secrets driven by the real kubectl against `svcnet apiserver`: `kubectl
//! create configmap|secret generic|tls|docker-registry`, `get` (NAME DATA AGE, NAME TYPE DATA
//! AGE), `describe`, `stringData` merged into `data`, the field selector `type`, and
//! Kubernetes' validation messages (keys, size, immutable, types).

mod support;

use support::{table, ApiServer};

fn stdin_err(s: &ApiServer, manifest: &str) -> String {
    let out = s.kubectl_stdin(&["create", "-f", "-"], manifest);
    assert!(!out.status.success(), "{manifest} was accepted");
    String::from_utf8(out.stderr).unwrap()
}

fn b64d(s: &str) -> String {
    let out = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn create_get_describe_config_maps_and_secrets() {
    let s = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.properties");
    std::fs::write(&file, "color=blue\n").unwrap();

    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "configmap",
            "app",
            "--from-literal=mode=fast",
            &format!("--from-file={}", file.display()),
        ])
        .trim(),
        "configmap/app created"
    );
    let out = s.kubectl_ok(&["get", "cm"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DATA", "AGE"], "{out}");
    let app = table(&out)
        .into_iter()
        .find(|r| r["NAME"] == "app")
        .unwrap();
    assert_eq!(app["DATA"], "2");
    assert_eq!(s.jsonpath("cm", "app", "{.data.mode}"), "fast");
    assert_eq!(
        s.jsonpath("cm", "app", "{.data.app\\.properties}"),
        "color=blue\n"
    );
    let described = s.kubectl_ok(&["describe", "cm", "app"]);
    assert!(described.contains("mode:\n----\nfast"), "{described}");

    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
        "--from-literal=password=s3cret",
    ]);
    assert_eq!(
        b64d(&s.jsonpath("secret", "creds", "{.data.password}")),
        "s3cret"
    );

    // A TLS pair made with openssl (kubectl checks that they match).
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=example.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    s.kubectl_ok(&[
        "create",
        "secret",
        "tls",
        "site",
        &format!("--cert={}", crt.display()),
        &format!("--key={}", key.display()),
    ]);
    s.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "pull",
        "--docker-server=registry.example:5000",
        "--docker-username=u",
        "--docker-password=p",
    ]);
    let auths = b64d(&s.jsonpath("secret", "pull", "{.data.\\.dockerconfigjson}"));
    assert!(auths.contains("registry.example:5000"), "{auths}");

    let out = s.kubectl_ok(&["get", "secret"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"], "{out}");
    let rows = table(&out);
    let row = |n: &str| rows.iter().find(|r| r["NAME"] == n).unwrap().clone();
    assert_eq!(
        (row("creds")["TYPE"].as_str(), row("creds")["DATA"].as_str()),
        ("Opaque", "2")
    );
    assert_eq!(row("site")["TYPE"], "kubernetes.io/tls");
    assert_eq!(row("pull")["TYPE"], "kubernetes.io/dockerconfigjson");

    // The field selector `type`.
    let tls = s.kubectl_ok(&[
        "get",
        "secrets",
        "--field-selector=type=kubernetes.io/tls",
        "-o",
        "name",
    ]);
    assert_eq!(tls.trim(), "secret/site");

    // `kubectl get cm,secret` in one call.
    let both = s.kubectl_ok(&["get", "cm,secret", "-o", "name"]);
    assert!(
        both.contains("configmap/app") && both.contains("secret/creds"),
        "{both}"
    );

    // stringData is written into data and never stored.
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Secret\nmetadata: {name: sd}\ndata: {a: eA==}\nstringData: {a: plain, b: two}\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(b64d(&s.jsonpath("secret", "sd", "{.data.a}")), "plain");
    assert_eq!(b64d(&s.jsonpath("secret", "sd", "{.data.b}")), "two");
    assert_eq!(s.jsonpath("secret", "sd", "{.stringData}"), "");
    let described = s.kubectl_ok(&["describe", "secret", "sd"]);
    assert!(
        described.contains("Type:  Opaque") && described.contains("a:  5 bytes"),
        "{described}"
    );
}

#[test]
fn validation_messages_are_kubernetes() {
    let s = ApiServer::start();
    let err = stdin_err(
        &s,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {\"a b\": \"1\", dup: \"2\"}\nbinaryData: {dup: eA==}\n",
    );
    assert_eq!(
        err.trim(),
        "The ConfigMap \"bad\" is invalid: \n* data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')\n* data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData"
    );

    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 1024 * 1024 + 1]).unwrap();
    let err = s.kubectl_err(&[
        "create",
        "configmap",
        "big",
        &format!("--from-file={}", big.display()),
    ]);
    assert_eq!(
        err.trim(),
        "error: failed to create configmap: ConfigMap \"big\" is invalid: []: Too long: may not be more than 1048576 bytes"
    );

    let err = stdin_err(
        &s,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: t}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}\n",
    );
    assert_eq!(
        err.trim(),
        "The Secret \"t\" is invalid: data[tls.key]: Required value"
    );

    // immutable: data and the flag itself are frozen; the type of any Secret is.
    s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\ndata: {a: \"1\"}\nimmutable: true\n",
    );
    let err = s.kubectl_err(&["patch", "cm", "frozen", "-p", r#"{"data":{"a":"2"}}"#]);
    assert_eq!(
        err.trim(),
        "The ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    s.kubectl_ok(&[
        "patch",
        "cm",
        "frozen",
        "-p",
        r#"{"metadata":{"labels":{"ok":"yes"}}}"#,
    ]);
    s.kubectl_ok(&["create", "secret", "generic", "plain", "--from-literal=a=b"]);
    let err = s.kubectl_err(&[
        "patch",
        "secret",
        "plain",
        "-p",
        r#"{"type":"example.com/other"}"#,
    ]);
    assert_eq!(
        err.trim(),
        "The Secret \"plain\" is invalid: type: Invalid value: \"example.com/other\": field is immutable"
    );
}
