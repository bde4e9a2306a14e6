//! `svcnet up` end to end: a 2-node cluster in network namespaces, the seed Deployment (with a
//! command) running as real processes, reached over the pod network from a node and from
//! another pod, `kubectl exec` / `logs`, the pods' resolv.conf and Service environment, pod
//! replacement, a container without a command, and `svcnet down` leaving nothing behind.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::cluster::Cluster;
use support::{assert_success, eventually, stdout, table, Row, SVCNET};

const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: service-clusterip}
spec:
  selector: {app: service-env}
  ports: [{port: 80, targetPort: 80}]
";

/// The seed Deployment, with a command (svcnet runs processes, not images).
const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: service-env}
spec:
  replicas: 3
  selector: {matchLabels: {app: service-env}}
  template:
    metadata: {labels: {app: service-env}}
    spec:
      containers:
      - name: nginx
        image: docker.io/library/nginx:1.23.1
        command: [sh, -c, 'echo serving on $(hostname); exec svcnet agnhost netexec --http-port=80']
        ports: [{containerPort: 80}]
        readinessProbe:
          httpGet: {path: /healthz, port: 80}
          periodSeconds: 1
";

fn running_pods(c: &Cluster, n: usize) -> Vec<Row> {
    eventually(
        Duration::from_secs(60),
        &format!("{n} Running, Ready pods"),
        || {
            let t = table(&c.kubectl_ok(&[
                "get",
                "pods",
                "-o",
                "wide",
                "--show-labels",
                "-l",
                "app=service-env",
            ]));
            (t.len() == n
                && t.iter()
                    .all(|r| r["STATUS"] == "Running" && r["READY"] == "1/1"))
            .then_some(t)
        },
    )
}

#[test]
fn up_runs_the_seed_deployment_as_processes_and_down_leaves_nothing() {
    let mut c = Cluster::up_with(2, &["--host-ports=true"]);
    assert_eq!(
        c.namespaces().len(),
        5,
        "net, cp, outside and two nodes: {:?}",
        c.namespaces()
    );
    let nodes = table(&c.kubectl_ok(&["get", "nodes"]));
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|n| n["STATUS"] == "Ready"), "{nodes:?}");

    // A second `up` on the same data dir refuses clearly.
    let second = Command::new(SVCNET)
        .args(["up", "--apiserver-port", "0", "--data-dir"])
        .arg(c.data())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another `svcnet up` is running"), "{err}");

    c.apply(SERVICES);
    c.apply(DEPLOYMENT);
    let pods = running_pods(&c, 3);
    let ips: Vec<String> = pods.iter().map(|p| p["IP"].clone()).collect();
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{ips:?}");
    let on: std::collections::BTreeSet<&str> = pods.iter().map(|p| p["NODE"].as_str()).collect();
    assert_eq!(on, ["node-1", "node-2"].into(), "spread over both nodes");
    assert!(pods.iter().all(|p| p["IP"].starts_with("10.244.")));
    assert!(pods[0]["LABELS"].contains("app=service-env,pod-template-hash="));

    // Each pod answers from a node (node-1 reaches node-2's pods through the node network).
    for p in &pods {
        let out = c.exec(
            &["--node", "node-1"],
            &[
                "curl",
                "-s",
                "-m",
                "5",
                &format!("http://{}/hostname", p["IP"]),
            ],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), p["NAME"], "{:?}", out);
    }
    // And from another pod, which sees the caller's pod IP.
    let (a, b) = (&pods[0], &pods[1]);
    let out = c.exec(
        &[&a["NAME"]],
        &[
            "curl",
            "-s",
            "-m",
            "5",
            &format!("http://{}/clientip", b["IP"]),
        ],
    );
    let client = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        client.starts_with(&format!("{}:", a["IP"])),
        "{client} {out:?}"
    );

    // kubectl exec and logs, through the API server to the node's kubelet API.
    let hostname = c.kubectl_ok(&["exec", &a["NAME"], "--", "hostname"]);
    assert_eq!(hostname.trim(), a["NAME"]);
    let logs = c.kubectl_ok(&["logs", &a["NAME"]]);
    assert!(
        logs.contains(&format!("serving on {}", a["NAME"])),
        "{logs}"
    );
    let code = c.kubectl(&["exec", &a["NAME"], "--", "sh", "-c", "exit 3"]);
    assert_eq!(code.status.code(), Some(3));

    // resolv.conf as the seeds show, and the Service environment of Services made before the pod.
    let resolv = c.kubectl_ok(&["exec", &a["NAME"], "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(resolv, "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n");
    let env = c.kubectl_ok(&["exec", &a["NAME"], "--", "env"]);
    let svc_ip = c.jsonpath("svc", "service-clusterip", "{.spec.clusterIP}");
    for want in [
        format!("SERVICE_CLUSTERIP_SERVICE_HOST={svc_ip}"),
        "SERVICE_CLUSTERIP_SERVICE_PORT=80".to_string(),
        format!("SERVICE_CLUSTERIP_PORT_80_TCP=tcp://{svc_ip}:80"),
        "KUBERNETES_SERVICE_HOST=10.96.0.1".to_string(),
    ] {
        assert!(
            env.lines().any(|l| l == want),
            "{want} missing from:\n{env}"
        );
    }

    // A deleted pod is replaced; its namespace goes.
    let before = c.namespaces().len();
    c.kubectl_ok(&["delete", "pod", &a["NAME"]]);
    let pods = running_pods(&c, 3);
    assert!(pods.iter().all(|p| p["NAME"] != a["NAME"]));
    assert_eq!(
        c.namespaces().len(),
        before,
        "one pod namespace gone, one made"
    );

    // The process RuntimeClass runs commands: a container without one is not run, and the
    // pod says what to set.
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: imageonly}\nspec:\n  runtimeClassName: svcnet-process\n  containers: [{name: web, image: nginx}]\n");
    eventually(Duration::from_secs(30), "CommandRequired", || {
        let t = table(&c.kubectl_ok(&["get", "pod", "imageonly"]));
        (t[0]["STATUS"] == "CommandRequired").then_some(())
    });
    let msg = c.jsonpath(
        "pod",
        "imageonly",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert!(msg.contains("set \"command\""), "{msg}");

    // The outside client reaches the nodes, not the pods' network directly.
    let code = |url: &str| {
        c.exec_stdout(
            &["--outside"],
            &[
                "curl",
                "-s",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                url,
            ],
        )
    };
    assert_eq!(code("http://172.28.0.11:10250/healthz"), "200");
    assert_eq!(
        code("http://172.28.0.12:10250/containerLogs/default/x/y"),
        "401",
        "the kubelet API wants the API server's token"
    );
    assert_eq!(
        code(&format!("http://{}/", b["IP"])),
        "000",
        "pods are not routed from outside"
    );

    // `kubectl proxy` → services/NAME/proxy/ returns a pod's page (its IP), as in the seeds;
    // .../services/NAME returns the object.
    let mut proxy = Command::new("kubectl")
        .args(["proxy", "--port=0"])
        .env("KUBECONFIG", c.data().join("kubeconfig"))
        .env("HOME", c.dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(proxy.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().to_string();
    let get = |path: &str| {
        stdout(Command::new("curl").args([
            "-s",
            "-m",
            "5",
            &format!("http://127.0.0.1:{port}{path}"),
        ]))
    };
    let page = get("/api/v1/namespaces/default/services/service-clusterip/proxy/");
    let ips: Vec<String> =
        table(&c.kubectl_ok(&["get", "pods", "-o", "wide", "-l", "app=service-env"]))
            .iter()
            .map(|p| p["IP"].clone())
            .collect();
    assert!(
        ips.contains(&page.trim().to_string()),
        "{page:?} not one of {ips:?}"
    );
    assert!(get("/api/v1/namespaces/default/services/service-clusterip").contains("\"clusterIP\""));
    let _ = proxy.kill();
    let _ = proxy.wait();

    // NodePorts are forwarded from the host's loopback into the cluster (to node-1's NodePort,
    // which its service proxy sends to a pod).
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: np}\nspec:\n  type: NodePort\n  selector: {app: service-env}\n  ports: [{port: 80, nodePort: 31777}]\n");
    let body = eventually(Duration::from_secs(20), "127.0.0.1:31777 forwarded", || {
        let b = stdout(Command::new("curl").args(["-s", "-m", "2", "http://127.0.0.1:31777/"]));
        let b = b.trim().to_string();
        (!b.is_empty()).then_some(b)
    });
    assert!(ips.contains(&body), "{body:?} not one of {ips:?}");

    // Stop: nothing of the cluster is left.
    assert!(!c.processes().is_empty(), "containers were running");
    c.stop();
    assert_eq!(c.namespaces(), Vec::<String>::new());
    assert_eq!(c.processes(), Vec::<String>::new());
    let links = stdout(Command::new("ip").args(["-o", "link"]));
    assert!(
        !links.contains("vn1") && !links.contains("br0@"),
        "no link leaked into the host: {links}"
    );
    assert!(!Path::new(&c.data().join("up.pid")).exists());
}

#[test]
fn down_cleans_up_after_a_crashed_up_and_up_needs_privileges() {
    let mut c = Cluster::up(1);
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: sleeper}\nspec:\n  containers: [{name: s, image: busybox, command: [sleep, '3600']}]\n");
    eventually(Duration::from_secs(30), "the pod running", || {
        let t = table(&c.kubectl_ok(&["get", "pod", "sleeper"]));
        (t[0]["STATUS"] == "Running").then_some(())
    });
    assert!(
        c.namespaces().len() == 5,
        "net, cp, outside, node, pod: {:?}",
        c.namespaces()
    );
    // A crash: no teardown ran.
    let mut up = c.child.take().unwrap();
    up.kill().unwrap();
    up.wait().unwrap();
    assert!(
        !c.namespaces().is_empty() && !c.processes().is_empty(),
        "a crash leaves things behind"
    );
    // A pod's pause process outside any namespace of the cluster (one an agent started while
    // its pod's namespace was being removed): `down` ends it too.
    let stray_pod = c.data().join("nodes/node-1/pods/stray");
    let mut stray = Command::new(SVCNET)
        .args(["pause", "--hostname", "stray", "--pod-dir"])
        .arg(&stray_pod)
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), "the stray pause", || {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", stray.id())).unwrap();
        String::from_utf8_lossy(&cmdline)
            .contains("\0pause\0")
            .then_some(())
    });
    let out = Command::new(SVCNET)
        .arg("down")
        .arg("--data-dir")
        .arg(c.data())
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(c.namespaces(), Vec::<String>::new());
    assert_eq!(c.processes(), Vec::<String>::new());
    assert!(stray.wait().is_ok(), "the stray pause was killed");

    // Without root: a clear error, nothing created.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            SVCNET,
            "up",
            "--data-dir",
            "/tmp/svcnet-nobody-test",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("svcnet up needs root"), "{err}");
}
