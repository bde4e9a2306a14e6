//! `kubectl debug` on `svcnet up` with the real kubectl (the seeds' busybox image from a
//! loopback registry): `kubectl debug -i <pod> --image=busybox --target=<container>` adds an
//! ephemeral container through `pods/{name}/ephemeralcontainers`, the node agent runs it in the
//! pod (its network namespace, the target's processes), kubectl attaches to it, and its end is
//! reported in `status.ephemeralContainerStatuses` without touching the pod's own containers.

mod support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use support::cluster::Cluster;
use support::poll::eventually;

#[test]
fn kubectl_debug_runs_an_ephemeral_container_in_the_pod() {
    if !support::cluster::can_run_images(&["kubectl"]) {
        return;
    }
    let (_registry, c, _dir) = Cluster::up_with_registry(1, false, &[]);
    c.kubectl_ok(&[
        "run",
        "app",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ]);
    c.ready_pods("run=app", 1);
    let pod_ip = c.jsonpath("pod", "app", "{.status.podIP}");

    // -i: kubectl writes to the debug shell's stdin; the shell sees the target's `sleep` (its
    // PID namespace) and the pod's address (its network namespace).
    let mut debug = c
        .kubectl_cmd(&[
            "debug",
            "-i",
            "app",
            "--image=busybox",
            "--target=app",
            "--container=debugger",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = debug.stdin.take().unwrap();
    // kubectl attaches once the container runs; input written before is held in the pipe.
    stdin
        .write_all(b"ps -o pid,args; ip -o -4 addr; exit 0\n")
        .unwrap();
    drop(stdin);
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = debug.stdout.take().unwrap();
    let mut stderr = debug.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let _ = stdout.read_to_string(&mut out);
    let err = t.join().unwrap();
    let status = debug.wait().unwrap();
    assert!(
        status.success(),
        "stdout: {out}\nstderr: {err}\n{}",
        c.log()
    );
    assert!(out.contains("sleep 3600"), "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains(&format!("inet {pod_ip}/")),
        "stdout: {out}\nstderr: {err}"
    );

    // Its end in ephemeralContainerStatuses; the pod runs on, its container not restarted.
    eventually(
        Duration::from_secs(60),
        "the debugger's exit in the status",
        || {
            let s = c.jsonpath(
                "pod",
                "app",
                "{.status.ephemeralContainerStatuses[0].name}:\
             {.status.ephemeralContainerStatuses[0].state.terminated.exitCode}",
            );
            (s == "debugger:0").then_some(())
        },
    );
    assert_eq!(
        c.jsonpath(
            "pod",
            "app",
            "{.status.phase} {.status.containerStatuses[0].restartCount} \
             {.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "Running 0 True"
    );
    c.kubectl_ok(&["delete", "pod", "app", "--grace-period=1"]);
}
