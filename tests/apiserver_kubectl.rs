//! The API server driven by the real kubectl: the seeds' manifests and the commands users run
//! (create -f, get -o wide, describe, apply twice, edit, patch, scale, expose, delete, get -w).

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use support::{assert_success, cells, eventually, table, ApiServer, SERVICE_SEEDS};

/// `kubectl patch svc web <flags> -p <patch>`: stdout.
fn patch_web(s: &ApiServer, flags: &[&str], patch: &str) -> String {
    let mut args = vec!["patch", "svc", "web"];
    args.extend_from_slice(flags);
    args.extend(["-p", patch]);
    s.kubectl_ok(&args)
}

fn create_seeds(s: &ApiServer) {
    s.kubectl_ok(&["create", "namespace", "shield"]);
    for (file, expect) in SERVICE_SEEDS {
        let out = s.kubectl_seed("create", file);
        assert_eq!(out.trim(), expect);
    }
    let out = s.kubectl_seed("create", "shield-app.yml");
    assert_eq!(
        out.trim(),
        "service/the-bus created\npod/triskelion created"
    );
}

#[test]
fn seeds_create_get_wide_and_describe() {
    let s = ApiServer::start();
    create_seeds(&s);

    let out = s.kubectl_ok(&["get", "svc", "-n", "default", "-o", "wide"]);
    let header = out.lines().next().unwrap();
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ],
        "{out}"
    );
    let rows = table(&out);
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["NAME"] == name)
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
            .clone()
    };
    let k = row("kubernetes");
    assert_eq!(
        cells(
            &k,
            &["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "SELECTOR"]
        ),
        ["ClusterIP", "10.96.0.1", "<none>", "443/TCP", "<none>"]
    );
    let c = row("service-clusterip");
    assert_eq!(
        cells(&c, &["TYPE", "CLUSTER-IP", "PORT(S)", "SELECTOR"]),
        ["ClusterIP", "10.97.1.1", "80/TCP", "app=service-env"]
    );
    let h = row("service-headliness");
    assert_eq!(cells(&h, &["CLUSTER-IP", "PORT(S)"]), ["None", "80/TCP"]);
    let n = row("service-nodeport");
    assert_eq!(
        cells(&n, &["TYPE", "PORT(S)"]),
        ["NodePort", "80:30002/TCP"]
    );
    let ip: std::net::Ipv4Addr = n["CLUSTER-IP"].parse().unwrap();
    assert!(
        u32::from(ip) >> 20 == u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)) >> 20,
        "{ip} not in 10.96.0.0/12"
    );
    let e = row("service-externalname");
    assert_eq!(
        cells(&e, &["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]),
        ["ExternalName", "<none>", "www.baidu.com", "<none>"]
    );
    assert!(c["AGE"].ends_with('s'), "age like 5s: {}", c["AGE"]);

    // The shield NodePort service and its pod.
    let out = s.kubectl_ok(&["get", "svc", "the-bus", "-n", "shield"]);
    assert_eq!(table(&out)[0]["PORT(S)"], "8080:31112/TCP");
    let out = s.kubectl_ok(&["get", "pods", "-n", "shield", "--show-labels"]);
    let pod = &table(&out)[0];
    assert_eq!(
        cells(pod, &["NAME", "STATUS", "LABELS"]),
        ["triskelion", "Pending", "env=marvel"]
    );

    // describe, as in the seeds (Endpoints are filled by the controllers, issue 3).
    let out = s.kubectl_ok(&["describe", "svc", "service-clusterip", "-n", "default"]);
    let fields: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {k} in\n{out}"))
    };
    for (field, want) in [
        ("Name", "service-clusterip"),
        ("Namespace", "default"),
        ("Labels", "<none>"),
        ("Selector", "app=service-env"),
        ("Type", "ClusterIP"),
        ("IP Family Policy", "SingleStack"),
        ("IP Families", "IPv4"),
        ("IP", "10.97.1.1"),
        ("IPs", "10.97.1.1"),
        ("Port", "<unset>  80/TCP"),
        ("TargetPort", "80/TCP"),
        ("Session Affinity", "None"),
        ("Events", "<none>"),
    ] {
        assert_eq!(get(field), want, "{field}");
    }

    let out = s.kubectl_ok(&["describe", "svc", "service-headliness"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("IP:") && l.trim_end().ends_with("None")),
        "{out}"
    );

    // The Deployment is there with the seed's spec (pods come from the controllers).
    let out = s.jsonpath("deploy", "service-env", "{.spec.replicas} {.spec.strategy.type} {.spec.template.spec.containers[0].ports[0].containerPort}");
    assert_eq!(out, "3 RollingUpdate 80");
    let out = s.kubectl_ok(&["get", "deploy"]);
    let cols: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(cols, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);

    // Short names, categories and output formats.
    let all = s.kubectl_ok(&["get", "all", "-n", "shield"]);
    assert!(
        all.contains("service/the-bus") && all.contains("pod/triskelion"),
        "{all}"
    );
    for short in [
        "svc",
        "ep",
        "po",
        "ns",
        "no",
        "deploy",
        "rs",
        "endpointslices",
        "events",
    ] {
        s.kubectl_ok(&["get", short, "-A"]);
    }
    let yaml = s.kubectl_ok(&["get", "svc", "service-nodeport", "-o", "yaml"]);
    for want in [
        "nodePort: 30002",
        "externalTrafficPolicy: Cluster",
        "internalTrafficPolicy: Cluster",
        "sessionAffinity: None",
        "ipFamilyPolicy: SingleStack",
        "protocol: TCP",
        "targetPort: 80",
    ] {
        assert!(yaml.contains(want), "missing {want} in\n{yaml}");
    }
    let ns = s.kubectl_ok(&["get", "ns"]);
    for n in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "shield",
    ] {
        assert!(
            table(&ns)
                .iter()
                .any(|r| r["NAME"] == n && r["STATUS"] == "Active"),
            "{ns}"
        );
    }
}

const WEB: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    tier: front
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
";

#[test]
fn apply_twice_then_edit_patch_delete() {
    let s = ApiServer::start();
    let file = s.dir.path().join("web.yaml");
    std::fs::write(&file, WEB).unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", f]).trim(),
        "service/web created"
    );
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", f]).trim(),
        "service/web unchanged"
    );
    let ip = s.jsonpath("svc", "web", "{.spec.clusterIP}");

    // Change the file: a second port and a new label; apply merges, keeping the allocated IP.
    let changed = WEB.replace("    tier: front\n", "    tier: front\n    team: a\n")
        + "  - name: metrics\n    port: 9090\n    protocol: TCP\n";
    std::fs::write(&file, changed).unwrap();
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", f]).trim(),
        "service/web configured"
    );
    let out = s.jsonpath(
        "svc",
        "web",
        "{.spec.clusterIP} {.metadata.labels.team} {.spec.ports[*].port}",
    );
    assert_eq!(out, format!("{ip} a 80 9090"));
    // Remove the port again: apply deletes it (strategic merge with $setElementOrder).
    std::fs::write(&file, WEB).unwrap();
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", f]).trim(),
        "service/web configured"
    );
    assert_eq!(
        s.jsonpath("svc", "web", "{.spec.ports[*].port} {.metadata.labels}"),
        "80 {\"tier\":\"front\"}"
    );

    // kubectl patch: strategic (default), merge and json.
    assert_eq!(
        patch_web(
            &s,
            &[],
            r#"{"spec":{"ports":[{"port":80,"targetPort":9000}]}}"#
        )
        .trim(),
        "service/web patched"
    );
    assert_eq!(
        s.jsonpath(
            "svc",
            "web",
            "{.spec.ports[0].targetPort} {.spec.ports[0].name}"
        ),
        "9000 http"
    );
    patch_web(
        &s,
        &["--type=merge"],
        r#"{"metadata":{"annotations":{"note":"hi"}}}"#,
    );
    patch_web(
        &s,
        &["--type=json"],
        r#"[{"op":"replace","path":"/spec/sessionAffinity","value":"ClientIP"}]"#,
    );
    let out = s.jsonpath("svc", "web", "{.metadata.annotations.note} {.spec.sessionAffinity} {.spec.sessionAffinityConfig.clientIP.timeoutSeconds}");
    assert_eq!(out, "hi ClientIP 10800");
    // A patch that changes nothing is "no change".
    let out = patch_web(
        &s,
        &["--type=merge"],
        r#"{"metadata":{"annotations":{"note":"hi"}}}"#,
    );
    assert_eq!(out.trim(), "service/web patched (no change)");

    // kubectl edit, with an editor that rewrites the port.
    let editor = s.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/port: 80$/port: 8081/' \"$1\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .unwrap();
    let out = s
        .kubectl_cmd(&["edit", "svc", "web"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "service/web edited"
    );
    assert_eq!(s.jsonpath("svc", "web", "{.spec.ports[0].port}"), "8081");

    // Optimistic concurrency: a replace with a stale resourceVersion is a conflict.
    let stale = s.kubectl_ok(&["get", "svc", "web", "-o", "json"]);
    s.kubectl_ok(&["label", "svc", "web", "bump=1"]);
    let out = s.kubectl_stdin(&["replace", "-f", "-"], &stale);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"Operation cannot be fulfilled on services "web": the object has been modified; please apply your changes to the latest version and try again"#),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(
        s.kubectl_ok(&["delete", "svc", "web"]).trim(),
        r#"service "web" deleted"#
    );
    let err = s.kubectl_err(&["get", "svc", "web"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): services "web" not found"#
    );
    // Its ClusterIP is free again: a new Service can ask for it.
    let again = WEB.replace("spec:\n", &format!("spec:\n  clusterIP: {ip}\n"));
    let out = s.kubectl_stdin(&["create", "-f", "-"], &again);
    assert_success(&out);
}

#[test]
fn get_watch_sees_add_and_delete() {
    let s = ApiServer::start();
    let mut child = s
        .kubectl_cmd(&["get", "svc", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |pred: &dyn Fn(&str) -> bool, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(_) => panic!("no {what} in watch output: {seen:#?}"),
            }
        }
    };
    let header = wait_for(&|l| l.starts_with("EVENT"), "header");
    assert!(
        header.split_whitespace().eq([
            "EVENT",
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]),
        "{header}"
    );
    wait_for(
        &|l| l.starts_with("ADDED") && l.contains("kubernetes"),
        "the existing kubernetes service",
    );
    s.kubectl_ok(&["create", "service", "clusterip", "watched", "--tcp=80:8080"]);
    let added = wait_for(
        &|l| l.starts_with("ADDED") && l.contains("watched"),
        "ADDED watched",
    );
    assert!(added.contains("80/TCP"), "{added}");
    s.kubectl_ok(&["delete", "svc", "watched"]);
    wait_for(
        &|l| l.starts_with("DELETED") && l.contains("watched"),
        "DELETED watched",
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn expose_scale_selectors_and_events() {
    let s = ApiServer::start();
    s.kubectl_seed("create", "Service-Env.yaml");
    let out = s.kubectl_ok(&[
        "expose",
        "deployment/service-env",
        "--port=80",
        "--type=NodePort",
    ]);
    assert_eq!(out.trim(), "service/service-env exposed");
    let out = s.kubectl_ok(&["get", "svc", "service-env", "-o", "wide"]);
    let row = &table(&out)[0];
    assert_eq!(row["SELECTOR"], "app=service-env");
    let np: u16 = row["PORT(S)"]
        .trim_start_matches("80:")
        .trim_end_matches("/TCP")
        .parse()
        .unwrap();
    assert!((30000..=32767).contains(&np));

    assert_eq!(
        s.kubectl_ok(&["scale", "deployment", "service-env", "--replicas=5"])
            .trim(),
        "deployment.apps/service-env scaled"
    );
    assert_eq!(
        s.jsonpath(
            "deploy",
            "service-env",
            "{.spec.replicas} {.metadata.generation}"
        ),
        "5 2"
    );

    // Label and field selectors.
    for (name, labels) in [
        ("a", "tier=web,env=prod"),
        ("b", "tier=web,env=dev"),
        ("c", "tier=db"),
    ] {
        s.kubectl_ok(&["create", "service", "clusterip", name, "--tcp=80"]);
        let mut args = vec!["label", "svc", name];
        args.extend(labels.split(','));
        s.kubectl_ok(&args);
    }
    let names = |sel: &[&str]| -> Vec<String> {
        let mut args = vec!["get", "svc", "-o", "name"];
        args.extend_from_slice(sel);
        let mut v: Vec<String> = s
            .kubectl_ok(&args)
            .lines()
            .map(|l| l.trim_start_matches("service/").to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&["-l", "tier=web"]), ["a", "b"]);
    assert_eq!(names(&["-l", "tier==web,env!=prod"]), ["b"]);
    assert_eq!(names(&["-l", "env in (prod,dev)"]), ["a", "b"]);
    assert_eq!(names(&["-l", "env notin (prod),tier"]), ["b", "c"]);
    assert_eq!(names(&["-l", "!env,tier"]), ["c"]);
    assert_eq!(names(&["--field-selector", "metadata.name=c"]), ["c"]);
    assert_eq!(
        names(&["--field-selector", "spec.type=NodePort"]),
        ["service-env"]
    );
    let err = s.kubectl_err(&["get", "svc", "--field-selector", "spec.bogus=1"]);
    assert!(
        err.contains("field label not supported: spec.bogus"),
        "{err}"
    );
    // Paging: kubectl lists in chunks.
    let out = s.kubectl_ok(&["get", "svc", "--chunk-size=2", "-o", "name"]);
    assert_eq!(out.lines().count(), 5, "{out}");

    // Events: create one, list it with the field selector describe uses.
    let uid = s.jsonpath("svc", "a", "{.metadata.uid}");
    let event = format!(
        r#"{{"apiVersion":"v1","kind":"Event","metadata":{{"name":"e1","namespace":"default"}},
        "involvedObject":{{"kind":"Service","name":"a","namespace":"default","uid":"{uid}"}},"reason":"Test","message":"hello","type":"Normal",
        "source":{{"component":"test"}},"count":1}}"#
    );
    let out = s.kubectl_stdin(&["create", "-f", "-"], &event);
    assert_success(&out);
    let out = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=a,involvedObject.kind=Service",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "event/e1");
    let described = s.kubectl_ok(&["describe", "svc", "a"]);
    assert!(
        described.contains("Test") && described.contains("hello"),
        "{described}"
    );

    // delete by selector, and namespaces with content.
    s.kubectl_ok(&["delete", "svc", "-l", "tier=web"]);
    assert_eq!(names(&["-l", "tier"]), ["c"]);
    s.kubectl_ok(&["create", "ns", "scratch"]);
    s.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "x",
        "--tcp=80",
        "-n",
        "scratch",
    ]);
    s.kubectl_ok(&["delete", "ns", "scratch"]);
    eventually(
        Duration::from_secs(10),
        "namespace scratch to go away",
        || (!s.kubectl(&["get", "ns", "scratch"]).status.success()).then_some(()),
    );
    let err = s.kubectl_err(&["delete", "ns", "default"]);
    assert!(
        err.contains(r#"namespaces "default" is forbidden: this namespace may not be deleted"#),
        "{err}"
    );
}

#[test]
fn auth_and_limits() {
    let s = ApiServer::start();
    let (code, body) = s.curl(&[], "/api/v1/namespaces/default/services");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains(r#""reason":"Unauthorized""#), "{body}");
    let (code, _) = s.curl(&["-H", "Authorization: Bearer wrong"], "/api/v1/services");
    assert_eq!(code, 401);
    let (code, body) = s.curl(&[], "/version");
    assert_eq!(code, 200);
    assert!(body.contains(r#""gitVersion""#));
    // Bodies over 3 MiB: 413.
    let big = s.dir.path().join("big.json");
    let payload = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","data":{{"x":"{}"}}}}"#,
        "a".repeat(3 * 1024 * 1024 + 10)
    );
    std::fs::write(&big, payload).unwrap();
    let at = format!("@{}", big.display());
    let (code, body) = s.curl_auth(
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &at,
        ],
        "/api/v1/namespaces/default/services",
    );
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("Request entity too large: limit is 3145728"),
        "{body}"
    );
    // Unknown paths are Kubernetes 404s.
    let (code, body) = s.curl_auth(&[], "/api/v1/bogus");
    assert_eq!(code, 404);
    assert!(
        body.contains("the server could not find the requested resource"),
        "{body}"
    );
}

#[test]
fn deletion_semantics_graceful_finalizers_dry_run() {
    let s = ApiServer::start();
    // A pod bound to a node is deleted gracefully: marked, kept until the node (or --force) ends it.
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"nodeName":"n1","containers":[{"name":"c","image":"busybox"}]}}"#;
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], pod)
        .status
        .success());
    s.kubectl_ok(&["delete", "pod", "p", "--wait=false"]);
    let out = s.jsonpath("pod", "p", "{.metadata.deletionGracePeriodSeconds}");
    assert_eq!(out, "30");
    let out = s.kubectl_ok(&["get", "pod", "p"]);
    assert_eq!(table(&out)[0]["STATUS"], "Terminating");
    s.kubectl_ok(&["delete", "pod", "p", "--grace-period=0", "--force"]);
    assert!(!s.kubectl(&["get", "pod", "p"]).status.success());

    // A finalizer holds an object until it is removed.
    let cm = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"held","finalizers":["example.com/hold"]},"spec":{"ports":[{"port":80}]}}"#;
    assert!(s.kubectl_stdin(&["create", "-f", "-"], cm).status.success());
    s.kubectl_ok(&["delete", "svc", "held", "--wait=false"]);
    assert!(!s
        .jsonpath("svc", "held", "{.metadata.deletionTimestamp}")
        .is_empty());
    s.kubectl_ok(&[
        "patch",
        "svc",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    eventually(Duration::from_secs(5), "held to be gone", || {
        (!s.kubectl(&["get", "svc", "held"]).status.success()).then_some(())
    });

    // Server-side dry run stores nothing.
    let out = s.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "dry",
        "--tcp=80",
        "--dry-run=server",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert!(
        out.starts_with("10."),
        "a dry run still shows the allocation: {out}"
    );
    assert!(!s.kubectl(&["get", "svc", "dry"]).status.success());
}

/// coordination.k8s.io Leases, as leader election uses them: created by kubectl and by a PUT
/// of one that does not exist yet, listed with their holder, renewed under optimistic
/// concurrency (a stale resourceVersion is a 409), validated with Kubernetes' messages.
#[test]
fn leases_for_leader_election() {
    let s = ApiServer::start();
    let lease = "apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: controller, namespace: default}
spec: {holderIdentity: node-1, leaseDurationSeconds: 15, leaseTransitions: 0}
";
    let out = s.kubectl_stdin(&["create", "-f", "-"], lease);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "lease.coordination.k8s.io/controller created"
    );
    let t = table(&s.kubectl_ok(&["get", "leases"]));
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        (t[0]["NAME"].as_str(), t[0]["HOLDER"].as_str()),
        ("controller", "node-1")
    );
    assert!(t[0].contains_key("AGE"), "{t:?}");

    // A PUT creates a Lease that does not exist (AllowCreateOnUpdate), as client-go's
    // leader election may.
    let put = |name: &str, body: &str| {
        s.curl_auth(
            &[
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
            ],
            &format!("/apis/coordination.k8s.io/v1/namespaces/default/leases/{name}"),
        )
    };
    let (code, body) = put(
        "scheduler",
        r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"scheduler","namespace":"default"},"spec":{"holderIdentity":"a","leaseDurationSeconds":15}}"#,
    );
    assert_eq!(code, 201, "{body}");

    // Renewal under optimistic concurrency: the current resourceVersion wins, a stale one is a
    // conflict.
    let rv = s.jsonpath("lease", "scheduler", "{.metadata.resourceVersion}");
    let renew = |rv: &str, holder: &str| {
        put(
            "scheduler",
            &format!(
                r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":"scheduler","namespace":"default","resourceVersion":"{rv}"}},"spec":{{"holderIdentity":"{holder}","leaseDurationSeconds":15,"leaseTransitions":1}}}}"#
            ),
        )
    };
    let (code, body) = renew(rv.trim(), "b");
    assert_eq!(code, 200, "{body}");
    let (code, body) = renew(rv.trim(), "c");
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains(r#"Operation cannot be fulfilled on leases.coordination.k8s.io \"scheduler\": the object has been modified; please apply your changes to the latest version and try again"#),
        "{body}"
    );
    let holder = s.jsonpath("lease", "scheduler", "{.spec.holderIdentity}");
    assert_eq!(holder.trim(), "b");

    // Validation, with Kubernetes' messages; nothing stored.
    let bad = "apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: bad, namespace: default}
spec: {leaseDurationSeconds: 0, leaseTransitions: -1}
";
    let out = s.kubectl_stdin(&["create", "-f", "-"], bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"The Lease "bad" is invalid: "#)
            && err.contains("spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0")
            && err.contains(
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"
            ),
        "{err}"
    );
    let names = s.kubectl_ok(&["get", "leases", "-o", "name"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "lease.coordination.k8s.io/controller",
            "lease.coordination.k8s.io/scheduler"
        ]
    );
    s.kubectl_ok(&["delete", "lease", "controller"]);
}
