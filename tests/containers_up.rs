//! Containers from images on `svcnet up`, driven with the real kubectl: the seeds' nginx and
//! busybox images, built from Debian's packages and pushed to Debian's docker-registry on
//! loopback, which `svcnet up --private-registry` mirrors docker.io to. Nothing contacts the
//! internet (`--disable-default-registry-endpoint`).
//!
//! The tutorial's first commands: `kubectl create deployment nginx --image=nginx`, `kubectl
//! expose --type=NodePort`, nginx's page through the ClusterIP and the NodePort; `kubectl exec`
//! into one replica changes that replica's page only; a pod does not see the host's files; a
//! missing image is ErrImagePull then ImagePullBackOff with an Event naming the cause, while
//! the other pods run on.

mod support;

use std::process::Command;
use std::time::Duration;

use support::cluster::Cluster;
use support::poll::eventually;
use support::{stdout, table};

fn can_run() -> bool {
    support::cluster::can_run_images(&["kubectl", "curl"])
}

fn curl(c: &Cluster, target: &[&str], url: &str) -> String {
    c.exec_stdout(target, &["curl", "-s", "-m", "5", url])
}

#[test]
fn nginx_from_its_image_exec_isolation_and_a_missing_image() {
    if !can_run() {
        return;
    }
    let (_registry, mut c, _dir) = Cluster::up_with_registry(2, false, &["--host-ports=true"]);

    // The built-in RuntimeClass, and admission of an unknown one.
    let classes = table(&c.kubectl_ok(&["get", "runtimeclass"]));
    assert_eq!(classes.len(), 1, "{classes:?}");
    assert_eq!(
        (classes[0]["NAME"].as_str(), classes[0]["HANDLER"].as_str()),
        ("svcnet-process", "process")
    );
    let refused = c.kubectl(&[
        "run",
        "nope",
        "--image=busybox",
        "--overrides={\"spec\": {\"runtimeClassName\": \"nope\"}}",
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("pods \"nope\" is forbidden: pod rejected: RuntimeClass \"nope\" not found"),
        "{err}"
    );

    c.kubectl_ok(&[
        "create",
        "deployment",
        "nginx",
        "--image=nginx",
        "--replicas=2",
    ]);
    c.kubectl_ok(&[
        "expose",
        "deployment",
        "nginx",
        "--port=80",
        "--type=NodePort",
    ]);
    let pods = c.ready_pods("app=nginx", 2);

    // Status as the kubelet writes it: the normalised image and its digest.
    let name = &pods[0]["NAME"];
    let image = c.jsonpath("pod", name, "{.status.containerStatuses[0].image}");
    assert_eq!(image, "docker.io/library/nginx:latest");
    let image_id = c.jsonpath("pod", name, "{.status.containerStatuses[0].imageID}");
    assert!(
        image_id.starts_with("docker.io/library/nginx@sha256:"),
        "{image_id}"
    );
    let events = c.events_of("default", name);
    assert!(
        events.contains("Started: Started container nginx"),
        "{events}"
    );
    assert!(
        events.contains("Pulled: Successfully pulled image \"nginx\" in ")
            || events.contains("Pulled: Container image \"nginx\" already present on machine"),
        "{events}"
    );

    // nginx's page through the ClusterIP (from a node) and the NodePort (from outside, and
    // from the host's loopback).
    let cluster_ip = c.jsonpath("svc", "nginx", "{.spec.clusterIP}");
    let node_port = c.jsonpath("svc", "nginx", "{.spec.ports[0].nodePort}");
    let welcome = |body: &str| body.contains("Welcome to nginx!");
    eventually(
        Duration::from_secs(30),
        "nginx through the ClusterIP",
        || {
            welcome(&curl(
                &c,
                &["--node", "node-1"],
                &format!("http://{cluster_ip}/"),
            ))
            .then_some(())
        },
    );
    let node_ip = c.jsonpath(
        "node",
        "node-2",
        "{.status.addresses[?(@.type==\"InternalIP\")].address}",
    );
    let from_outside = curl(
        &c,
        &["--outside"],
        &format!("http://{node_ip}:{node_port}/"),
    );
    assert!(welcome(&from_outside), "{from_outside}");
    eventually(
        Duration::from_secs(20),
        "the NodePort from the host",
        || {
            let b = stdout(Command::new("curl").args([
                "-s",
                "-m",
                "2",
                &format!("http://127.0.0.1:{node_port}/"),
            ]));
            welcome(&b).then_some(())
        },
    );

    // kubectl exec runs inside the container (its root, its hostname): writing index.html
    // changes that replica's answers only.
    let (a, b) = (&pods[0], &pods[1]);
    let host = c.kubectl_ok(&["exec", &a["NAME"], "--", "hostname"]);
    assert_eq!(host.trim(), a["NAME"]);
    c.kubectl_ok(&[
        "exec",
        &a["NAME"],
        "--",
        "sh",
        "-c",
        "echo replica-a > /usr/share/nginx/html/index.html",
    ]);
    let page_a = curl(&c, &["--node", "node-1"], &format!("http://{}/", a["IP"]));
    assert_eq!(page_a, "replica-a");
    let page_b = curl(&c, &["--node", "node-1"], &format!("http://{}/", b["IP"]));
    assert!(welcome(&page_b), "the other replica is untouched: {page_b}");

    // The host's files are not the pod's.
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("host-marker");
    std::fs::write(&marker, "host-secret\n").unwrap();
    let out = c.kubectl(&["exec", &a["NAME"], "--", "cat", marker.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("host-secret"));
    let root = c.kubectl_ok(&["exec", &a["NAME"], "--", "ls", "/"]);
    assert!(!root.contains("work") && root.contains("usr"), "{root}");

    // A missing image: ErrImagePull, then ImagePullBackOff, with an Event naming the cause.
    c.kubectl_ok(&["run", "missing", "--image=nosuch/image:1"]);
    let reason = || {
        c.jsonpath(
            "pod",
            "missing",
            "{.status.containerStatuses[0].state.waiting.reason}",
        )
    };
    eventually(Duration::from_secs(60), "ErrImagePull", || {
        let r = reason();
        (r == "ErrImagePull" || r == "ImagePullBackOff").then_some(())
    });
    eventually(Duration::from_secs(60), "ImagePullBackOff", || {
        (reason() == "ImagePullBackOff").then_some(())
    });
    let events = c.events_of("default", "missing");
    assert!(
        events.contains("Failed: Failed to pull image \"nosuch/image:1\": ")
            && events.contains("not found"),
        "{events}"
    );
    assert!(
        events.contains("BackOff: Back-off pulling image \"nosuch/image:1\""),
        "{events}"
    );
    let t = table(&c.kubectl_ok(&["get", "pods", "-l", "app=nginx"]));
    assert!(
        t.iter()
            .all(|r| r["STATUS"] == "Running" && r["READY"] == "1/1"),
        "other pods unaffected: {t:?}"
    );

    // Volumes: an emptyDir shared by two containers, a hostPath (read-only) shows the host's
    // directory; a memory limit exceeded is OOMKilled.
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: vols}}\nspec:\n  initContainers:\n  \
         - {{name: init, image: busybox, command: [sh, -c, 'echo from-init > /data/i'], \
         volumeMounts: [{{name: d, mountPath: /data}}]}}\n  containers:\n  \
         - {{name: a, image: busybox, command: [sh, -c, 'echo shared > /data/f; sleep 3600'], \
         volumeMounts: [{{name: d, mountPath: /data}}]}}\n  \
         - {{name: b, image: busybox, command: [sleep, '3600'], \
         securityContext: {{runAsUser: 1000, runAsGroup: 2000}}, volumeMounts: [{{name: d, mountPath: /data}}, \
         {{name: h, mountPath: /host, readOnly: true}}]}}\n  volumes:\n  - {{name: d, emptyDir: {{}}}}\n  \
         - {{name: h, hostPath: {{path: {}, type: Directory}}}}\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata: {{name: oom}}\nspec:\n  restartPolicy: Never\n  \
         containers:\n  - {{name: hog, image: busybox, command: [sh, -c, 'head -c 200000000 /dev/zero | tail'], \
         resources: {{limits: {{memory: 32Mi}}}}}}\n",
        marker_dir.path().display()
    );
    let path = marker_dir.path().join("pods.yaml");
    std::fs::write(&path, manifest).unwrap();
    c.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let shared = eventually(Duration::from_secs(30), "the emptyDir shared", || {
        let out = c.kubectl(&["exec", "vols", "-c", "b", "--", "cat", "/data/f"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    assert_eq!(shared, "shared");
    let from_init = c.kubectl_ok(&["exec", "vols", "-c", "a", "--", "cat", "/data/i"]);
    assert_eq!(
        from_init.trim(),
        "from-init",
        "the init container ran first"
    );
    // The pod's containers share its IPC and UTS namespaces, not their PID namespaces.
    let ns = |ctr: &str, kind: &str| {
        c.kubectl_ok(&[
            "exec",
            "vols",
            "-c",
            ctr,
            "--",
            "readlink",
            &format!("/proc/self/ns/{kind}"),
        ])
    };
    assert_eq!(ns("a", "ipc"), ns("b", "ipc"));
    assert_eq!(ns("a", "uts"), ns("b", "uts"));
    assert_ne!(ns("a", "pid"), ns("b", "pid"));
    let ids = c.kubectl_ok(&["exec", "vols", "-c", "b", "--", "id"]);
    assert!(
        ids.starts_with("uid=1000 gid=2000"),
        "runAsUser/runAsGroup: {ids}"
    );
    assert_eq!(
        c.jsonpath(
            "pod",
            "vols",
            "{.status.initContainerStatuses[0].state.terminated.reason}"
        ),
        "Completed"
    );
    let host_file = c.kubectl_ok(&["exec", "vols", "-c", "b", "--", "cat", "/host/host-marker"]);
    assert_eq!(host_file.trim(), "host-secret");
    let write = c.kubectl(&["exec", "vols", "-c", "b", "--", "touch", "/host/x"]);
    assert!(!write.status.success(), "read-only: {write:?}");
    let oom = eventually(Duration::from_secs(60), "OOMKilled", || {
        let r = c.jsonpath(
            "pod",
            "oom",
            "{.status.containerStatuses[0].state.terminated.reason}",
        );
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(oom, "OOMKilled");
    assert_eq!(
        c.jsonpath(
            "pod",
            "oom",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "137"
    );

    // Deleting the deployment removes its containers (and their layers).
    c.kubectl_ok(&["delete", "deployment", "nginx", "--wait=true"]);
    eventually(Duration::from_secs(60), "nginx pods gone", || {
        table(&c.kubectl_ok(&["get", "pods", "-l", "app=nginx"]))
            .is_empty()
            .then_some(())
    });
    c.stop();
    assert_eq!(c.namespaces(), Vec::<String>::new());
    assert_eq!(c.processes(), Vec::<String>::new());
}
