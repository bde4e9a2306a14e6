//! What a user sees of a node's pods with the real kubectl, on `svcnet up`: a container stuck in
//! a waiting reason has the kubelet's Event in `kubectl describe pod`; after `svcnet up` is
//! stopped and started again on the same data dir, the pods' sandboxes are made again as the
//! kubelet does (a `SandboxChanged` Event, each container's restart counted with its ended run
//! in `lastState`), keeping their addresses; `kubectl exec` without a terminal gives exactly
//! the command's output, over WebSocket and over SPDY.

mod support;

use std::time::Duration;

use support::cluster::Cluster;
use support::{assert_success, eventually, table};

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  runtimeClassName: svcnet-process
  containers: [{name: s, image: busybox, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Pod
metadata: {name: imageonly}
spec:
  runtimeClassName: svcnet-process
  containers: [{name: web, image: nginx}]
";

/// `kubectl exec <pod> -- echo hi`'s stdout, over SPDY when `spdy` (kubectl ≤ 1.29's way).
fn exec_echo(c: &Cluster, pod: &str, spdy: bool) -> Vec<u8> {
    let out = c
        .kubectl_cmd(&["exec", pod, "--", "echo", "hi"])
        .env(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
            if spdy { "false" } else { "true" },
        )
        .output()
        .unwrap();
    assert_success(&out);
    out.stdout
}

/// `kubectl describe pod <pod>` once its Events show `message`, and that Event's type and
/// reason.
fn describe_event(c: &Cluster, pod: &str, message: &str) -> (String, String, String) {
    let describe = eventually(Duration::from_secs(30), message, || {
        let d = c.kubectl_ok(&["describe", "pod", pod]);
        d.contains(message).then_some(d)
    });
    let line = describe.lines().find(|l| l.contains(message)).unwrap();
    let mut cols = line.split_whitespace().map(str::to_string);
    let (type_, reason) = (cols.next().unwrap(), cols.next().unwrap());
    (type_, reason, describe)
}

#[test]
fn waiting_reasons_have_events_a_restarted_cluster_counts_restarts_and_exec_is_exact() {
    let mut c = Cluster::up(1);
    c.apply(PODS);
    c.wait_running("sleeper");

    // A container that cannot be created: the kubelet's Warning on it, in describe's Events.
    let (type_, reason, describe) = describe_event(
        &c,
        "imageonly",
        "Error: the \"svcnet-process\" RuntimeClass runs a container's command",
    );
    assert_eq!((type_.as_str(), reason.as_str()), ("Warning", "Failed"));
    assert!(
        describe.contains("Reason:       CommandRequired"),
        "{describe}"
    );
    let field_path = c.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=imageonly",
        "-o",
        "jsonpath={.items[?(@.reason==\"Failed\")].involvedObject.fieldPath}",
    ]);
    assert_eq!(field_path.trim(), "spec.containers{web}");

    // exec without a terminal: the command's output and nothing else.
    assert_eq!(exec_echo(&c, "sleeper", false), b"hi\n");
    assert_eq!(exec_echo(&c, "sleeper", true), b"hi\n");

    // The cluster stopped and started again on its data dir: the pod's sandbox is gone.
    let ip = c.jsonpath("pod", "sleeper", "{.status.podIP}");
    let uid = c.jsonpath("pod", "sleeper", "{.metadata.uid}");
    c.restart(1, &[]);
    let row = eventually(
        Duration::from_secs(60),
        "sleeper running again, its restart counted",
        || {
            let t = table(&c.kubectl_ok(&["get", "pod", "sleeper", "-o", "wide"]));
            let r = t.into_iter().next()?;
            (r["STATUS"] == "Running" && r["RESTARTS"].starts_with("1 ")).then_some(r)
        },
    );
    assert_eq!(row["IP"], ip, "the pod keeps its address");
    assert_eq!(c.jsonpath("pod", "sleeper", "{.metadata.uid}"), uid);
    let last = c.jsonpath(
        "pod",
        "sleeper",
        "{.status.containerStatuses[0].lastState.terminated.exitCode} {.status.containerStatuses[0].lastState.terminated.reason}",
    );
    assert_eq!(
        last, "255 Unknown",
        "containerd's word for a run that ended unseen"
    );
    let (type_, reason, describe) = describe_event(
        &c,
        "sleeper",
        "Pod sandbox changed, it will be killed and re-created.",
    );
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Normal", "SandboxChanged")
    );
    assert!(describe.contains("Restart Count:  1"), "{describe}");
    assert!(describe.contains("Exit Code:    255"), "{describe}");
    // The new run answers exec as the first did.
    assert_eq!(exec_echo(&c, "sleeper", false), b"hi\n");

    c.stop();
    assert_eq!(c.namespaces(), Vec::<String>::new());
}

/// The same with a container from an image (`runc exec`): the command's output, nothing more.
#[test]
fn exec_into_a_container_from_an_image_gives_exactly_its_output() {
    if !support::cluster::can_run_images(&["kubectl"]) {
        return;
    }
    let (_registry, mut c, _dir) = Cluster::up_with_registry(1, false, &[]);
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: box}\nspec:\n  containers: [{name: b, image: busybox, command: [sleep, '3600']}]\n");
    eventually(Duration::from_secs(120), "box Running", || {
        let t = table(&c.kubectl_ok(&["get", "pod", "box"]));
        (t[0]["STATUS"] == "Running").then_some(())
    });
    assert_eq!(exec_echo(&c, "box", false), b"hi\n");
    assert_eq!(exec_echo(&c, "box", true), b"hi\n");
    c.stop();
}
