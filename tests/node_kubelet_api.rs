//! The node agent's kubelet API (`svcnet_node::kubelet_api`) behind the real API server, driven by
//! the real kubectl: `kubectl logs` (tail, timestamps, follow, previous) and `kubectl exec`
//! (output, stderr, exit codes, stdin, a terminal), with the command running inside a test
//! network namespace. Needs root (skipped otherwise); uses only loopback and that namespace.

mod support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::ApiServer;
use svcnet_netns::testing::{can_run, ScratchNetns};
use svcnet_netns::NetNs;
use svcnet_node::kubelet_api::{serve, Authenticator, ContainerHandle, PodRuntime};

/// The Node and Pod made through the API, deleted however the test ends (before the server).
struct ObjectsGuard<'a> {
    api: &'a ApiServer,
    node: String,
    pod: String,
}

impl Drop for ObjectsGuard<'_> {
    fn drop(&mut self) {
        let _ = self.api.kubectl(&[
            "delete",
            "pod",
            &self.pod,
            "--grace-period=0",
            "--force",
            "--ignore-not-found",
        ]);
        let _ = self
            .api
            .kubectl(&["delete", "node", &self.node, "--ignore-not-found"]);
    }
}

/// One pod `default/<pod>` with one container `app`.
struct FakeRuntime {
    pod: String,
    handle: ContainerHandle,
    running: Arc<AtomicBool>,
}

impl PodRuntime for FakeRuntime {
    fn container(&self, namespace: &str, pod: &str, container: &str) -> Option<ContainerHandle> {
        ((namespace, pod, container) == ("default", self.pod.as_str(), "app")).then(|| {
            ContainerHandle {
                running: self.running.load(Ordering::SeqCst),
                ..self.handle.clone()
            }
        })
    }
}

/// Run `cmd` with `input` on stdin (kept open until it exits when `None`), killing it after
/// `timeout`.
fn run(mut cmd: Command, input: Option<&str>, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning");
    let mut stdin = child.stdin.take();
    if let Some(input) = input {
        let mut s = stdin.take().unwrap();
        s.write_all(input.as_bytes()).unwrap();
    }
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const T: Duration = Duration::from_secs(30);

#[test]
fn kubectl_logs_and_exec_reach_the_node_agent() {
    if !can_run(&[]) {
        return;
    }
    let ns = ScratchNetns::new("kubelet").expect("creating the test namespace");
    let ns_name = ns.name().to_string();
    let pid = std::process::id();

    let api = ApiServer::start();
    let files = tempfile::tempdir().unwrap();
    let log_path = files.path().join("app/0.log");
    std::fs::create_dir_all(log_path.parent().unwrap()).unwrap();
    std::fs::write(
        &log_path,
        "2026-01-02T03:04:05.000000001Z stdout F hello from the app\n\
         2026-01-02T03:04:06.000000002Z stderr F a warning\n\
         2026-01-02T03:04:07.000000003Z stdout P split \n\
         2026-01-02T03:04:07.500000000Z stdout F line\n",
    )
    .unwrap();
    let resolv = files.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local\n",
    )
    .unwrap();

    // The API server wrote the token it presents to kubelets when it started: the only
    // authenticator of the kubelet API (there is no anonymous mode).
    let auth = Authenticator::from_token_file(Some(&api.data_dir().join("kubelet-client.token")))
        .expect("the apiserver's kubelet client token");

    let pod = format!("kubelet-api-{pid}");
    let node = format!("t-kubelet-{pid}");
    let running = Arc::new(AtomicBool::new(true));
    let runtime = Arc::new(FakeRuntime {
        pod: pod.clone(),
        running: running.clone(),
        handle: ContainerHandle {
            log_path: log_path.clone(),
            previous_log_path: None,
            netns: ns_name.clone(),
            hostname: Some(pod.clone()),
            binds: vec![(resolv.clone(), PathBuf::from("/etc/resolv.conf"))],
            env: vec![
                (
                    "PATH".into(),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ),
                ("GREETING".into(), "hi there".into()),
            ],
            workdir: Some(PathBuf::from("/tmp")),
            running: true,
            ..Default::default()
        },
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(serve(listener, auth, runtime));

    // Without the token, or with another, the node agent turns logs and exec away.
    let direct = |path: &str, token: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        c.arg(format!("http://127.0.0.1:{port}{path}"));
        text(&run(c, Some(""), T).stdout)
    };
    let logs_path = format!("/containerLogs/default/{pod}/app");
    let exec_path = format!("/exec/default/{pod}/app?command=id&stdout=1");
    assert_eq!(direct(&logs_path, None), "401");
    assert_eq!(direct(&logs_path, Some("not-the-token")), "401");
    assert_eq!(direct(&exec_path, None), "401");
    assert_eq!(direct("/healthz", None), "200");

    let _objects = ObjectsGuard {
        api: &api,
        node: node.clone(),
        pod: pod.clone(),
    };
    let out = api.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  namespace: default\n\
             spec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: busybox\n"
        ),
    );
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), api.log());
    api.kubectl_ok(&[
        "patch",
        "node",
        &node,
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(
            r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"127.0.0.1"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{port}}}}}}}}}"#
        ),
    ]);

    // kubectl logs: the text of the CRI lines, partial ones joined.
    let logs = api.kubectl_ok(&["logs", &pod]);
    assert_eq!(logs, "hello from the app\na warning\nsplit line\n");
    assert_eq!(api.kubectl_ok(&["logs", &pod, "--tail=1"]), "split line\n");
    assert_eq!(
        api.kubectl_ok(&["logs", &pod, "--tail=2", "--timestamps"]),
        "2026-01-02T03:04:06.000000002Z a warning\n2026-01-02T03:04:07.000000003Z split line\n"
    );
    assert_eq!(
        api.kubectl_ok(&["logs", &pod, "-c", "app", "--limit-bytes=5"]),
        "hello"
    );
    let err = api.kubectl_err(&["logs", &pod, "--previous"]);
    assert!(
        err.contains("previous terminated container \"app\" in pod"),
        "{err}"
    );

    let kubectl = |args: &[&str]| api.kubectl_cmd(args);

    // exec: stdout and stderr apart, inside the pod's namespaces (only `lo`; its hostname and
    // resolv.conf; its environment and working directory).
    let out = run(
        kubectl(&[
            "exec",
            &pod,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; ip -o link | wc -l; ip -o link | cut -d: -f2; \
             cat /proc/self/net/dev | wc -l; hostname; cat /etc/resolv.conf; echo \"$GREETING\"; pwd",
        ]),
        Some(""),
        T,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "out",
            "1",
            "lo",
            "3",
            pod.as_str(),
            "nameserver 10.96.0.10",
            "search default.svc.cluster.local",
            "hi there",
            "/tmp"
        ],
        "{stdout}"
    );
    assert_eq!(text(&out.stderr), "err\n");

    // The exit code comes through.
    let out = run(
        kubectl(&["exec", &pod, "--", "sh", "-c", "exit 3"]),
        Some(""),
        T,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("command terminated with exit code 3"),
        "{}",
        text(&out.stderr)
    );

    // A command that does not exist.
    let out = run(kubectl(&["exec", &pod, "--", "nosuch"]), Some(""), T);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(r#"exec: "nosuch": executable file not found in $PATH"#),
        "{}",
        text(&out.stderr)
    );

    // stdin: through to the command, and closed at its end.
    let out = run(
        kubectl(&["exec", "-i", &pod, "--", "cat"]),
        Some("line one\nline two\n"),
        T,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "line one\nline two\n");

    // A terminal: kubectl -it needs one itself, which `script` gives it.
    let mut script = Command::new("script");
    script
        .args(["-qec"])
        .arg(format!(
            "stty rows 30 cols 100; kubectl exec -it {pod} -- sh -c '\
             tty; test -t 0 && echo stdin-is-a-tty; echo hi; \
             for i in $(seq 50); do [ \"$(stty size)\" = \"0 0\" ] || break; sleep 0.1; done; \
             stty size'"
        ))
        .arg("/dev/null")
        .env("KUBECONFIG", &api.kubeconfig)
        .env("HOME", &api.home);
    let out = run(script, None, T);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("/dev/pts/"), "{stdout}");
    assert!(stdout.contains("hi\r\n"), "{stdout}");
    assert!(stdout.contains("stdin-is-a-tty"), "{stdout}");

    // kubectl sent its terminal's size, which the command's terminal took.
    assert!(stdout.contains("30 100\r\n"), "{stdout}");

    // The same over SPDY/3.1, as kubectl up to 1.29 speaks it (and later ones told to):
    // stdout and stderr apart, the exit code, stdin to its end, and a terminal with its size.
    let spdy = |args: &[&str]| {
        let mut c = api.kubectl_cmd(args);
        c.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
        c
    };
    let out = run(
        spdy(&[
            "exec",
            &pod,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]),
        Some(""),
        T,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    assert!(
        text(&out.stderr).starts_with("err\n")
            && text(&out.stderr).contains("command terminated with exit code 3"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        spdy(&["exec", "-i", &pod, "--", "cat"]),
        Some("over spdy\n"),
        T,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "over spdy\n");
    let mut script = Command::new("script");
    script
        .args(["-qec"])
        .arg(format!(
            "stty rows 20 cols 90; kubectl exec -it {pod} -- sh -c '\
             for i in $(seq 50); do [ \"$(stty size)\" = \"0 0\" ] || break; sleep 0.1; done; \
             stty size'"
        ))
        .arg("/dev/null")
        .env("KUBECONFIG", &api.kubeconfig)
        .env("HOME", &api.home)
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    let out = run(script, None, T);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("20 90\r\n"), "{stdout}");

    // A client that goes away takes its command with it.
    let mut sleeper = api
        .kubectl_cmd(&["exec", &pod, "--", "sleep", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::eventually(T, "the sleep running in the namespace", || {
        (!NetNs::pids(&ns_name).is_empty()).then_some(())
    });
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();

    // Nothing exec'd is left in the namespace.
    support::eventually(Duration::from_secs(10), "exec'd processes gone", || {
        NetNs::pids(&ns_name).is_empty().then_some(())
    });

    // kubectl logs -f: what was there, what is appended, and the end when the container stops.
    let follow_cmd = api.kubectl_cmd(&["logs", "-f", &pod, "--tail=1"]);
    let follower = std::thread::spawn(move || run(follow_cmd, Some(""), T));
    std::thread::sleep(Duration::from_millis(700));
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .unwrap();
        f.write_all(b"2026-01-02T03:05:00.000000000Z stdout F appended\n")
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !follower.is_finished(),
        "kubectl logs -f ended while the container runs"
    );
    running.store(false, Ordering::SeqCst);
    let out = follower.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "split line\nappended\n");

    drop(_objects);
    assert!(api
        .kubectl_ok(&["get", "pods", "-o", "name"])
        .trim()
        .is_empty());
    rt.shutdown_timeout(Duration::from_secs(2));
}
