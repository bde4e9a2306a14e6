//! `kubectl port-forward` on `svcnet up`, with the real kubectl of several versions: to a pod,
//! to a Service (kubectl picks a pod of the Service and maps the Service port to its
//! targetPort) and to a Deployment (one of its pods); several ports in one forward; local
//! ports given (`L:R`), left to kubectl (`:R`) and zero (`0:R`); sequential and concurrent
//! connections through one forward; 1 MB each way intact; and a port nothing listens on giving
//! the kubelet's error on kubectl's stderr (after which kubectl ends, as it does upstream).
//! kubectl 1.27 and 1.30 speak SPDY/3.1 to the API server; 1.31+ tunnel SPDY through a
//! WebSocket (`SPDY/3.1+portforward.k8s.io`) and fall back to SPDY only when the WebSocket
//! upgrade fails, so each protocol is checked with a client that uses it by default and one
//! switched by `KUBECTL_PORT_FORWARD_WEBSOCKETS`. The cluster and every kubectl are removed at
//! the end, also when an assertion fails (their `Drop`s).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::stdout;

/// The agnhost container's fields after `- name: web`, indented by `pad`.
fn agnhost(pad: &str) -> String {
    [
        "image: registry.k8s.io/e2e-test-images/agnhost:2.53",
        "command: [svcnet, agnhost, netexec, --http-port=8080, --tcp-port=9000]",
        "ports: [{containerPort: 8080}, {containerPort: 9000}]",
        "readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}",
    ]
    .iter()
    .map(|l| format!("\n{pad}{l}"))
    .collect()
}

fn manifest() -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: pf, labels: {{app: pf}}}}
spec:
  containers:
  - name: web{}
---
apiVersion: v1
kind: Service
metadata: {{name: pf}}
spec:
  selector: {{app: pf}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}
  - {{name: tcp, port: 90, targetPort: 9000}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: pfd}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: pfd}}}}
  template:
    metadata: {{labels: {{app: pfd}}}}
    spec:
      containers:
      - name: web{}
",
        agnhost("    "),
        agnhost("        ")
    )
}

const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

/// A `kubectl port-forward` running in the background; killed on drop.
struct Forward {
    child: Child,
    /// The local port of each port spec, in order.
    ports: Vec<u16>,
    stderr: mpsc::Receiver<String>,
}

impl Forward {
    /// `kubectl.<version> port-forward <target> <specs...> -v=4`, waiting for its
    /// `Forwarding from 127.0.0.1:<port>` line of each spec.
    fn start(c: &Cluster, version: &str, ws: Option<bool>, target: &str, specs: &[&str]) -> Self {
        let mut cmd = Command::new(format!("{KUBECTL_DIR}/kubectl.{version}"));
        cmd.arg("port-forward")
            .arg(target)
            .args(specs)
            .arg("-v=4")
            .env("KUBECONFIG", c.data().join("kubeconfig"))
            .env("HOME", c.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ws) = ws {
            cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", ws.to_string());
        }
        let mut child = cmd.spawn().expect("kubectl port-forward");
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (ptx, prx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                    let port = rest.split_whitespace().next().unwrap_or("").parse::<u16>();
                    let _ = ptx.send(port.ok());
                }
            }
        });
        let mut f = Forward {
            child,
            ports: Vec::new(),
            stderr,
        };
        while f.ports.len() < specs.len() {
            match prx.recv_timeout(Duration::from_secs(30)) {
                Ok(Some(port)) => f.ports.push(port),
                _ => panic!(
                    "kubectl {version} port-forward {target} {specs:?} never forwarded:\n{}",
                    f.stderr_now()
                ),
            }
        }
        f
    }

    /// What kubectl wrote on stderr so far.
    fn stderr_now(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl http://127.0.0.1:<port><path>`: the body, or curl's complaint.
fn curl(port: u16, path: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A local port free right now (for `L:R` specs).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The pod's answers on local `port`: `hostname` (checked by `host`) one by one, then eight
/// `/echo`s at once.
fn answers_through(port: u16, host: impl Fn(&str) -> bool, what: &str) {
    for i in 0..3 {
        let got = curl(port, "/hostname");
        assert!(
            got.as_deref().is_ok_and(&host),
            "{what}, connection {i}: {got:?}"
        );
    }
    let together: Vec<_> = (0..8)
        .map(|i| std::thread::spawn(move || curl(port, &format!("/echo?msg=c{i}"))))
        .collect();
    for (i, t) in together.into_iter().enumerate() {
        assert_eq!(
            t.join().unwrap().as_deref(),
            Ok(format!("c{i}").as_str()),
            "{what}, concurrent connection {i}"
        );
    }
}

/// 1 MiB of distinct lines to agnhost's TCP echo on local `port`, written while its echo is
/// read back: what comes back is exactly what went out.
fn megabyte_through(port: u16, what: &str) {
    let sent: Vec<u8> = (0..16384u32)
        .flat_map(|i| format!("{i:08x}{}\n", "x".repeat(55)).into_bytes())
        .collect();
    assert_eq!(sent.len(), 1 << 20);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = conn.try_clone().unwrap();
    let out = sent.clone();
    let w = std::thread::spawn(move || writer.write_all(&out));
    let mut got = vec![0; sent.len()];
    let read = conn.read_exact(&mut got);
    w.join().unwrap().expect("writing 1 MiB");
    read.unwrap_or_else(|e| panic!("{what}: reading 1 MiB back: {e}"));
    assert!(got == sent, "{what}: 1 MiB came back changed");
}

/// A forward of a port nothing listens on: a connection to it ends empty, kubectl reports the
/// kubelet's error (the error stream's text, naming the refused connect inside the pod) and,
/// as client-go's `handleConnection` closes the whole connection on an error-stream error
/// (every installed kubectl, 1.27–1.33), ends with `lost connection to pod`.
fn refused_through(c: &Cluster, version: &str, ws: Option<bool>) {
    let mut f = Forward::start(c, version, ws, "pod/pf", &[":9999"]);
    let port = f.ports[0];
    assert!(curl(port, "/").is_err(), "an answer from port 9999");
    let wanted = format!("an error occurred forwarding {port} -> 9999");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut said = String::new();
    while Instant::now() < deadline && !said.contains("lost connection to pod") {
        if let Ok(line) = f.stderr.recv_timeout(Duration::from_millis(200)) {
            said.push_str(&line);
            said.push('\n');
        }
    }
    assert!(said.contains(&wanted), "kubectl {version}:\n{said}");
    assert!(
        said.contains("failed to connect to localhost:9999 inside namespace")
            && said.contains("dial tcp4 127.0.0.1:9999: connect: connection refused"),
        "kubectl {version}:\n{said}"
    );
    assert!(
        said.contains("error: lost connection to pod"),
        "kubectl {version}:\n{said}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !f.running(),
        "kubectl {version} still running after losing the connection"
    );
}

/// Whether kubectl's `-v=4` log shows the WebSocket tunnel negotiated (client-go's tunneling
/// dialer logs `negotiated protocol: portforward.k8s.io`).
fn tunneled(f: &Forward) -> bool {
    f.stderr_now()
        .contains("negotiated protocol: portforward.k8s.io")
}

fn can_run(versions: &[&str]) -> bool {
    if nix::unistd::geteuid().is_root()
        && versions
            .iter()
            .all(|v| Path::new(&format!("{KUBECTL_DIR}/kubectl.{v}")).exists())
        && stdout(Command::new("curl").arg("--version")).contains("curl")
    {
        return true;
    }
    eprintln!("skipped: needs root, curl and kubectl {versions:?} in {KUBECTL_DIR}");
    false
}

#[test]
fn port_forward_to_pods_services_and_deployments_with_kubectl_1_27_to_1_33() {
    // (version, KUBECTL_PORT_FORWARD_WEBSOCKETS, whether the WebSocket tunnel is expected)
    let clients: &[(&str, Option<bool>, bool)] = &[
        ("1.27", None, false),
        ("1.30", None, false),
        ("1.30", Some(true), true),
        ("1.33", None, true),
        ("1.33", Some(false), false),
    ];
    let versions: Vec<&str> = clients.iter().map(|c| c.0).collect();
    if !can_run(&versions) {
        return;
    }
    let mut c = Cluster::up(1);
    c.apply(&manifest());
    c.ready_pods("app=pf", 1);
    c.ready_pods("app=pfd", 1);

    for &(version, ws, expect_tunnel) in clients {
        let what = format!("kubectl {version} (websockets: {ws:?})");
        // Two ports of the pod, local ports chosen by kubectl.
        let pod = Forward::start(&c, version, ws, "pod/pf", &[":8080", ":9000"]);
        answers_through(pod.ports[0], |h| h == "pf", &format!("{what} pod/pf"));
        megabyte_through(pod.ports[1], &format!("{what} pod/pf"));
        assert_eq!(tunneled(&pod), expect_tunnel, "{what}");
        // Service ports (mapped to their targetPorts), one local port given, one zero.
        let local = free_port();
        let svc = Forward::start(&c, version, ws, "svc/pf", &[&format!("{local}:80"), "0:90"]);
        assert_eq!(svc.ports[0], local, "{what} svc/pf {local}:80");
        answers_through(local, |h| h == "pf", &format!("{what} svc/pf"));
        megabyte_through(svc.ports[1], &format!("{what} svc/pf"));
        // A Deployment's pod.
        let local = free_port();
        let deploy = Forward::start(
            &c,
            version,
            ws,
            "deployment/pfd",
            &[&format!("{local}:8080")],
        );
        answers_through(
            deploy.ports[0],
            |h| h.starts_with("pfd-"),
            &format!("{what} deployment/pfd"),
        );
        drop((pod, svc, deploy));
        refused_through(&c, version, ws);
    }

    // A pod that does not exist: the API server's NotFound, as kube-apiserver answers.
    let out = Command::new(format!("{KUBECTL_DIR}/kubectl.1.33"))
        .args(["port-forward", "pod/nope", ":80"])
        .env("KUBECONFIG", c.data().join("kubeconfig"))
        .env("HOME", c.dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pods \"nope\" not found"), "{err}");

    c.stop();
    assert_eq!(c.namespaces(), Vec::<String>::new());
    assert_eq!(c.processes(), Vec::<String>::new());
}
