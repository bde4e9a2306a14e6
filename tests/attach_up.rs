//! `kubectl attach` and `kubectl run -i/-it --rm` on containers from images, with the real
//! kubectl on `svcnet up` (the seeds' busybox image from a loopback registry,
//! [`support::images`]): the tutorial's `kubectl run -i --rm --image=busybox --restart=Never t
//! -- nslookup <Service>` prints the Service's ClusterIP and leaves no pod; a container's stdin
//! is held for the first attach (`stdinOnce`); a command that ended before kubectl could attach
//! still shows its output (kubectl falls back to the logs); `kubectl attach -i` writes to a
//! running container's stdin and `kubectl attach` alone streams its output (also with `-i` to a
//! container without stdin); a container that does not run gets the kubelet's answer and a
//! completed pod kubectl's refusal; `run -it --rm` and `attach -it` drive a shell on a terminal
//! (kubectl on a pty from `script`, its size passed on).

mod support;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::poll::eventually;

/// A kubectl (or `script` around one) running with piped stdio; its output collected.
struct Running {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |mut r: Box<dyn Read + Send>| {
            let buf = Arc::new(Mutex::new(String::new()));
            let b = buf.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    b.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            });
            buf
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Running { child, out, err }
    }

    fn out(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn err(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Wait (60 s at most) until its stdout contains `text`.
    fn wait_for_output(&self, text: &str) {
        eventually(
            Duration::from_secs(60),
            &format!("{text:?} in the output"),
            || self.out().contains(text).then_some(()),
        );
    }

    fn write(&mut self, data: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin open");
        stdin.write_all(data.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn close_stdin(&mut self) {
        self.child.stdin.take();
    }

    /// Wait (60 s at most) for it to end: whether it succeeded, its stdout and stderr.
    fn finish(mut self) -> (bool, String, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "still running after 60 s\nstdout: {}\nstderr: {}",
                    self.out(),
                    self.err()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The collectors read to the end of the pipes.
        std::thread::sleep(Duration::from_millis(100));
        (status.success(), self.out(), self.err())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubectl get pod <name>` says it does not exist.
fn pod_gone(c: &Cluster, name: &str) -> bool {
    let out = c.kubectl(&["get", "pod", name]);
    String::from_utf8_lossy(&out.stderr).contains("NotFound")
}

/// `kubectl run -i --rm --image=busybox --restart=Never <name> -- <argv>` with `input` on its
/// stdin: whether it succeeded, its stdout and stderr; the pod must be gone after it.
fn run_i_rm(c: &Cluster, name: &str, input: &str, argv: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "run",
        "-i",
        "--rm",
        "--image=busybox",
        "--restart=Never",
        name,
        "--",
    ];
    args.extend(argv);
    let mut run = Running::start(c.kubectl_cmd(&args));
    run.write(input);
    run.close_stdin();
    let (ok, out, err) = run.finish();
    let deleted = format!("pod \"{name}\" deleted");
    assert!(out.contains(&deleted), "stdout: {out}\nstderr: {err}");
    assert!(pod_gone(c, name));
    (ok, out, err)
}

#[test]
fn run_i_rm_attach_and_a_terminal() {
    if !support::cluster::can_run_images(&["kubectl", "curl", "script"]) {
        return;
    }
    let (_registry, c, _dir) = Cluster::up_with_registry(1, false, &[]);

    // The tutorial: nslookup of a Service from a throwaway pod.
    c.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:80"]);
    let cluster_ip = c.jsonpath("service", "web", "{.spec.clusterIP}");
    let (_ok, out, err) = run_i_rm(&c, "t", "", &["nslookup", "web"]);
    assert!(
        out.contains(&format!("Address: {cluster_ip}")),
        "stdout: {out}\nstderr: {err}\n{}",
        c.log()
    );

    // stdinOnce: the container waits for its stdin, which the first attach gives it.
    let script = "read line; echo got:$line";
    let (ok, out, err) = run_i_rm(&c, "reader", "hello\n", &["sh", "-c", script]);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("got:hello"), "stdout: {out}\nstderr: {err}");

    // A command that may be over before kubectl attaches: its output either way (attached,
    // or kubectl's fallback to the logs), and its exit code as kubectl's.
    let script = "echo quick-output; exit 3";
    let (ok, out, err) = run_i_rm(&c, "quick", "", &["sh", "-c", script]);
    assert!(!ok, "exit 3 is kubectl's exit code");
    assert!(out.contains("quick-output"), "stdout: {out}\nstderr: {err}");

    // `kubectl attach` to a running container with stdin (not stdinOnce: --leave-stdin-open).
    c.kubectl_ok(&[
        "run",
        "cat",
        "--image=busybox",
        "--restart=Never",
        "--stdin",
        "--leave-stdin-open",
        "--attach=false",
        "--",
        "sh",
        "-c",
        "while read l; do echo got:$l; done",
    ]);
    c.ready_pods("run=cat", 1);
    let mut attach = Running::start(c.kubectl_cmd(&["attach", "cat", "-i"]));
    attach.write("one\n");
    attach.wait_for_output("got:one");
    // The session's stdin ends: the session ends, the container goes on.
    attach.close_stdin();
    let (ok, out, err) = attach.finish();
    assert!(ok, "stdout: {out}\nstderr: {err}");
    let again = Running::start(c.kubectl_cmd(&["attach", "cat"]));
    // Output only: what the container writes while attached.
    eventually(Duration::from_secs(60), "the attached output", || {
        c.kubectl_ok(&[
            "exec",
            "cat",
            "--",
            "sh",
            "-c",
            "echo via-exec > /proc/1/fd/1",
        ]);
        std::thread::sleep(Duration::from_millis(200));
        again.out().contains("via-exec").then_some(())
    });
    assert!(!again.out().contains("got:one"), "{}", again.out());
    drop(again);
    // The same over SPDY/3.1 (kubectl up to 1.29, or told to).
    let mut spdy = c.kubectl_cmd(&["attach", "cat", "-i"]);
    spdy.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    let mut attach = Running::start(spdy);
    attach.write("two\n");
    attach.wait_for_output("got:two");
    attach.close_stdin();
    let (ok, out, err) = attach.finish();
    assert!(ok, "stdout: {out}\nstderr: {err}");
    c.kubectl_ok(&["delete", "pod", "cat", "--now"]);

    // A container without stdin: `kubectl attach` (with or without -i) streams its output; the
    // end of kubectl's stdin does not end the session (containerd takes no stdin for it).
    c.kubectl_ok(&[
        "run",
        "ticker",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done",
    ]);
    c.ready_pods("run=ticker", 1);
    for args in [&["attach", "ticker"][..], &["attach", "ticker", "-i"]] {
        let mut attach = Running::start(c.kubectl_cmd(args));
        attach.close_stdin();
        attach.wait_for_output("tick-");
        let seen = attach.out().matches("tick-").count();
        eventually(Duration::from_secs(30), "more ticks", || {
            (attach.out().matches("tick-").count() > seen + 2).then_some(())
        });
        assert!(attach.child.try_wait().unwrap().is_none(), "{args:?} ended");
    }
    c.kubectl_ok(&["delete", "pod", "ticker", "--now"]);

    // A container that does not run (crashing, its pod Running): the kubelet's answer.
    c.kubectl_ok(&[
        "run",
        "crash",
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "exit 1",
    ]);
    eventually(Duration::from_secs(60), "the kubelet's answer", || {
        let out = c.kubectl(&["attach", "crash"]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        err.contains("unable to upgrade connection: container crash not found in pod crash_default")
            .then_some(())
    });
    c.kubectl_ok(&["delete", "pod", "crash", "--now"]);

    // kubectl's own refusal for a completed pod.
    c.kubectl_ok(&[
        "run",
        "done",
        "--image=busybox",
        "--restart=Never",
        "--",
        "true",
    ]);
    eventually(Duration::from_secs(60), "the pod Succeeded", || {
        (c.jsonpath("pod", "done", "{.status.phase}") == "Succeeded").then_some(())
    });
    let out = c.kubectl(&["attach", "done"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot attach a container in a completed pod; current phase is Succeeded"),
        "{err}"
    );

    // A terminal: `kubectl run -it --rm ... -- sh` on a pty.
    let mut term = on_terminal(
        &c,
        "kubectl run -it --rm --image=busybox --restart=Never shell -- sh",
    );
    term.wait_for_output("If you don't see a command prompt, try pressing enter.");
    term.write("\r");
    term.wait_for_output("# ");
    term.write("echo $((6*7)) $TERM; stty size\r");
    term.wait_for_output("42 xterm\r\n30 100\r\n");
    term.write("exit\r");
    let (_ok, out, err) = term.finish();
    assert!(
        out.contains("pod \"shell\" deleted"),
        "stdout: {out}\nstderr: {err}"
    );
    assert!(pod_gone(&c, "shell"));

    // `kubectl attach -it` to a shell that runs on a terminal already.
    c.kubectl_ok(&[
        "run",
        "tty",
        "--image=busybox",
        "--restart=Never",
        "--stdin",
        "--tty",
        "--leave-stdin-open",
        "--attach=false",
        "--",
        "sh",
    ]);
    c.ready_pods("run=tty", 1);
    let mut term = on_terminal(&c, "kubectl attach tty -it");
    term.wait_for_output("If you don't see a command prompt, try pressing enter.");
    term.write("\r");
    term.wait_for_output("# ");
    term.write("echo attached-$((1+1))\r");
    term.wait_for_output("attached-2");
    term.write("exit\r");
    let (ok, out, err) = term.finish();
    assert!(ok, "stdout: {out}\nstderr: {err}");
    eventually(Duration::from_secs(60), "the shell's end", || {
        (c.jsonpath("pod", "tty", "{.status.phase}") == "Succeeded").then_some(())
    });
}

/// `command` (a kubectl command line) with the cluster's environment, on the terminal of
/// `script`, sized 100x30 (which kubectl passes on).
fn on_terminal(c: &Cluster, command: &str) -> Running {
    let env: Vec<String> = c
        .kubectl_cmd(&[])
        .get_envs()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.unwrap().to_string_lossy()))
        .collect();
    let mut script = Command::new("script");
    script.args([
        "-qfec",
        &format!("stty rows 30 cols 100; env {} {command}", env.join(" ")),
        "/dev/null",
    ]);
    Running::start(script)
}
