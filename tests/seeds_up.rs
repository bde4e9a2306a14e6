//! The seed documents' manifests (examples/seeds) exactly as written, from their images, on
//! `svcnet up` with the real kubectl: nginx:1.23.1 and busybox built from Debian's packages and
//! quay.io/mask365/scaling:latest (an agnhost image built from the svcnet binary), all pushed
//! to Debian's docker-registry on loopback, which the cluster's registries.yaml mirrors
//! docker.io and quay.io to. The walkthrough as the seeds show it: the Deployment's pods
//! Running, `kubectl exec -it POD /bin/sh` writing the pod's IP into nginx's index.html and
//! `curl <pod IP>` showing it, the ClusterIP 10.97.1.1 and its Endpoints, the headless
//! Service's and the ExternalName's DNS answers, NodePort 30002 from outside on every node,
//! the busybox pod's resolv.conf and nslookup, the shield NodePort 31112 and skippy's 30050.
//! Then, on the seed's busybox pod, `kubectl cp` both ways; `shareProcessNamespace`; and the
//! air-gapped path: the seeds' archives in `<data-dir>/images`, no registry.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::cluster::Cluster;
use support::{eventually, seed, table, SERVICE_SEEDS};

fn can_run() -> bool {
    support::cluster::can_run_images(&["kubectl", "curl", "dig"])
}

fn curl(c: &Cluster, target: &[&str], url: &str) -> String {
    c.exec_stdout(target, &["curl", "-s", "-m", "5", url])
}

#[test]
fn seeds_as_written_from_their_images() {
    if !can_run() {
        return;
    }
    let (_registry, c, _dir) = Cluster::up_with_registry(2, true, &[]);

    // `kubectl create -f` of every manifest, as the seeds do (the shield lab's namespace
    // first, as its `labs/ns/` directory implies).
    c.kubectl_ok(&["create", "namespace", "shield"]);
    let more = [
        ("busybox.yaml", "pod/busybox created"),
        (
            "shield-app.yml",
            "service/the-bus created\npod/triskelion created",
        ),
        ("skippy.yaml", "service/skippy created"),
    ];
    for (file, expect) in SERVICE_SEEDS.into_iter().chain(more) {
        let out = c.kubectl_ok(&["create", "-f", seed(file).to_str().unwrap()]);
        assert_eq!(out.trim(), expect, "{file}");
    }

    // `kubectl get pods -n default -o wide --show-labels`: 3 Running, from nginx:1.23.1.
    let pods = c.ready_pods("app=service-env", 3);
    let ips: BTreeSet<String> = pods.iter().map(|p| p["IP"].clone()).collect();
    assert_eq!(ips.len(), 3, "{pods:?}");
    let name = &pods[0]["NAME"];
    assert_eq!(
        c.jsonpath("pod", name, "{.status.containerStatuses[0].image}"),
        "docker.io/library/nginx:1.23.1"
    );

    // "To facilitate testing, modify the nginx access page to podip": `kubectl exec -it POD
    // -n default /bin/sh`, `echo <IP> > /usr/share/nginx/html/index.html`, `exit` (the shell's
    // input piped here: kubectl drops -t without a terminal, as it says).
    for p in &pods {
        let script = format!(
            "echo {} > /usr/share/nginx/html/index.html\nexit\n",
            p["IP"]
        );
        c.kubectl_stdin_ok(
            &["exec", "-i", &p["NAME"], "-n", "default", "--", "/bin/sh"],
            &script,
        );
    }
    // `curl <pod IP>` → that IP (from a node: the seeds' master).
    for ip in &ips {
        assert_eq!(
            &curl(&c, &["--node", "node-1"], &format!("http://{ip}")),
            ip
        );
    }

    // ClusterIP: `kubectl describe svc service-clusterip` lists the 3 pods as Endpoints, and
    // `curl http://10.97.1.1:80` answers with each of them.
    let described = eventually(Duration::from_secs(30), "the Endpoints", || {
        let d = c.kubectl_ok(&["describe", "svc", "service-clusterip", "-n", "default"]);
        ips.iter()
            .all(|ip| d.contains(&format!("{ip}:80")))
            .then_some(d)
    });
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("IP:") && l.ends_with(" 10.97.1.1")),
        "{described}"
    );
    let seen: BTreeSet<String> =
        eventually(Duration::from_secs(20), "the ClusterIP answering", || {
            let got: BTreeSet<String> = (0..9)
                .map(|_| curl(&c, &["--node", "node-2"], "http://10.97.1.1:80"))
                .collect();
            got.is_subset(&ips).then_some(got)
        });
    assert!(seen.len() >= 2, "load-balanced: {seen:?}");

    // Headless: no cluster IP; `dig @10.96.0.10 service-headliness.default.svc.cluster.local
    // +short` gives the pods' addresses.
    let headless = table(&c.kubectl_ok(&["get", "svc", "service-headliness", "-o", "wide"]));
    assert_eq!(headless[0]["CLUSTER-IP"], "None");
    c.wait_dig_short(
        "node-1",
        "service-headliness.default.svc.cluster.local",
        &ips,
    );

    // NodePort 30002 on every node, from outside the cluster.
    for node in ["node-1", "node-2"] {
        let node_ip = c.jsonpath(
            "node",
            node,
            "{.status.addresses[?(@.type==\"InternalIP\")].address}",
        );
        let got = curl(&c, &["--outside"], &format!("http://{node_ip}:30002"));
        assert!(ips.contains(&got), "{node_ip}:30002 → {got:?}");
    }

    // ExternalName: the CNAME (what is behind it needs the internet).
    c.assert_cname(
        "node-2",
        "service-externalname.default.svc.cluster.local",
        "www.baidu.com.",
        &[],
    );

    // The sleeping busybox pod: its resolv.conf and `nslookup` of a Service.
    c.wait_running("busybox");
    assert_eq!(
        c.jsonpath("pod", "busybox", "{.status.containerStatuses[0].image}"),
        "docker.io/library/busybox:latest"
    );
    c.assert_cluster_resolv_conf("busybox");
    // (busybox 1.35's nslookup also asks the other search domains and exits 1 on their
    // NXDOMAIN, as it does against CoreDNS; the answer is what counts.)
    let out = c.kubectl(&["exec", "busybox", "--", "nslookup", "service-clusterip"]);
    let looked_up = String::from_utf8_lossy(&out.stdout);
    assert!(
        looked_up
            .contains("Name:\tservice-clusterip.default.svc.cluster.local\nAddress: 10.97.1.1"),
        "{looked_up}"
    );

    // The shield lab: the-bus (NodePort 31112 → 8080) reaches triskelion, pulled (Always).
    let tris = eventually(Duration::from_secs(120), "the triskelion pod", || {
        let t = table(&c.kubectl_ok(&["get", "pods", "-n", "shield", "-o", "wide"]));
        (t.len() == 1 && t[0]["READY"] == "1/1").then(|| t[0]["IP"].clone())
    });
    let events = c.events_of("shield", "triskelion");
    assert!(
        events.contains("Pulled: Successfully pulled image \"quay.io/mask365/scaling:latest\""),
        "{events}"
    );
    let bus = eventually(Duration::from_secs(20), "NodePort 31112", || {
        let got = curl(&c, &["--outside"], "http://172.28.0.12:31112");
        (got == tris).then_some(got)
    });
    assert_eq!(bus, tris);

    // skippy: a NodePort 30050 whose selector matches no pod — listed, and refused.
    let skippy = table(&c.kubectl_ok(&["get", "svc", "skippy"]));
    assert_eq!(skippy[0]["PORT(S)"], "8080:30050/TCP");
    let refused = c.exec(
        &["--outside"],
        &["curl", "-s", "-m", "5", "http://172.28.0.11:30050"],
    );
    assert_eq!(refused.status.code(), Some(7), "no endpoints: refused");

    // Each node has published the images its containers use in the shared store (what keeps
    // another node's image GC off them).
    for node in ["node-1", "node-2"] {
        let refs = std::fs::read(c.data().join(format!("images/refs/{node}.json")))
            .unwrap_or_else(|e| panic!("{node}'s image refs: {e}"));
        let refs: serde_json::Value = serde_json::from_slice(&refs).unwrap();
        let in_use = refs["in_use"].as_array().unwrap();
        assert!(!in_use.is_empty(), "{node}: {refs}");
    }
}

/// `kubectl cp` into and out of a busybox container (kubectl runs `tar` there through exec): a
/// file and a directory each way.
#[test]
fn kubectl_cp_both_ways() {
    if !can_run() {
        return;
    }
    let (_registry, c, dir) = Cluster::up_with_registry(1, false, &[]);
    c.kubectl_ok(&["create", "-f", seed("busybox.yaml").to_str().unwrap()]);
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/busybox",
        "--timeout=120s",
    ]);

    // Into the container: a file, then a directory.
    let local = dir.path().join("local");
    std::fs::create_dir_all(local.join("tree/sub")).unwrap();
    std::fs::write(local.join("hello.txt"), "hello from the host\n").unwrap();
    std::fs::write(local.join("tree/sub/deep.txt"), "deep\n").unwrap();
    c.kubectl_ok(&[
        "cp",
        local.join("hello.txt").to_str().unwrap(),
        "default/busybox:/tmp/hello.txt",
    ]);
    assert_eq!(
        c.kubectl_ok(&["exec", "busybox", "--", "cat", "/tmp/hello.txt"]),
        "hello from the host\n"
    );
    c.kubectl_ok(&[
        "cp",
        local.join("tree").to_str().unwrap(),
        "busybox:/tmp/tree",
    ]);
    assert_eq!(
        c.kubectl_ok(&["exec", "busybox", "--", "cat", "/tmp/tree/sub/deep.txt"]),
        "deep\n"
    );

    // Out of the container: a file the container wrote, then a directory.
    c.kubectl_ok(&[
        "exec",
        "busybox",
        "--",
        "sh",
        "-c",
        "mkdir -p /tmp/out/d && echo from-the-pod > /tmp/out/d/f && hostname > /tmp/name",
    ]);
    let back = dir.path().join("back");
    c.kubectl_ok(&[
        "cp",
        "busybox:/tmp/name",
        back.join("name").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(back.join("name")).unwrap(),
        "busybox\n"
    );
    c.kubectl_ok(&[
        "cp",
        "default/busybox:/tmp/out",
        back.join("out").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(back.join("out/d/f")).unwrap(),
        "from-the-pod\n"
    );
}

/// `shareProcessNamespace: true`: the containers share the pod's PID namespace (its pause
/// process's, whose init is PID 1 there), so `ps` in one lists the other's processes; a pod
/// without it keeps a PID namespace per container.
#[test]
fn share_process_namespace() {
    if !can_run() {
        return;
    }
    let (_registry, c, dir) = Cluster::up_with_registry(1, false, &[]);
    let manifest = dir.path().join("pods.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: shared}\nspec:\n  shareProcessNamespace: true\n  \
         containers:\n  - {name: a, image: busybox, command: [sleep, '3601']}\n  \
         - {name: b, image: busybox, command: [sleep, '3602']}\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata: {name: apart}\nspec:\n  \
         containers:\n  - {name: a, image: busybox, command: [sleep, '3603']}\n  \
         - {name: b, image: busybox, command: [sleep, '3604']}\n",
    )
    .unwrap();
    c.kubectl_ok(&["create", "-f", manifest.to_str().unwrap()]);
    for pod in ["shared", "apart"] {
        c.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=120s",
        ]);
    }

    // shareProcessNamespace: one PID namespace, each container sees the other's sleep.
    let ps = |pod: &str, ctr: &str| {
        c.kubectl_ok(&["exec", pod, "-c", ctr, "--", "ps", "-o", "pid,args"])
    };
    let from_a = ps("shared", "a");
    assert!(
        from_a.contains("sleep 3601") && from_a.contains("sleep 3602"),
        "{from_a}"
    );
    assert!(ps("shared", "b").contains("sleep 3601"));
    let ns = |pod: &str, ctr: &str| {
        c.kubectl_ok(&[
            "exec",
            pod,
            "-c",
            ctr,
            "--",
            "readlink",
            "/proc/self/ns/pid",
        ])
    };
    assert_eq!(ns("shared", "a"), ns("shared", "b"));
    // PID 1 is the pod's (the pause process's init), not a container's.
    let pid1 = c.kubectl_ok(&["exec", "shared", "-c", "a", "--", "cat", "/proc/1/cmdline"]);
    assert!(pid1.contains("pause"), "{pid1:?}");
    // Without it: each container alone in its PID namespace.
    let apart = ps("apart", "a");
    assert!(
        apart.contains("sleep 3603") && !apart.contains("sleep 3604"),
        "{apart}"
    );
    assert_ne!(ns("apart", "a"), ns("apart", "b"));

    // Deleting the pod ends every process of its namespace.
    c.kubectl_ok(&["delete", "pod", "shared", "--wait=true"]);
    eventually(
        Duration::from_secs(60),
        "the shared pod's processes gone",
        || {
            let left = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .filter(|c| c == b"sleep\x003601\x00" || c == b"sleep\x003602\x00")
                .count();
            (left == 0).then_some(())
        },
    );
}

/// The air-gapped path of examples/seeds/README.md: `svcnet images build-seeds --out
/// <data-dir>/images` before `svcnet up`, no registry at all; Service-Env.yaml's
/// nginx:1.23.1 (IfNotPresent) runs from the imported archive.
#[test]
fn seeds_from_archives_without_a_registry() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("data/images");
    let out = std::process::Command::new(support::SVCNET)
        .args(["images", "build-seeds", "--out"])
        .arg(&images)
        .output()
        .unwrap();
    support::assert_success(&out);
    let c = Cluster::up_in(dir, 1, &["--disable-default-registry-endpoint"]);
    c.kubectl_ok(&["create", "-f", seed("Service-Env.yaml").to_str().unwrap()]);
    let pods = c.ready_pods("app=service-env", 3);
    let name = &pods[0]["NAME"];
    let events = c.events_of("default", name);
    assert!(
        events.contains(
            "Pulled: Container image \"docker.io/library/nginx:1.23.1\" already present on machine"
        ),
        "{events}"
    );
    let page = curl(
        &c,
        &["--node", "node-1"],
        &format!("http://{}/", pods[0]["IP"]),
    );
    assert!(page.contains("Welcome to nginx!"), "{page}");
}
