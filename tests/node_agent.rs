//! A standalone `svcnet node` against the real API server and controller-manager: it registers
//! its Node and gets a pod CIDR from the node IPAM controller, runs a pod in its own network
//! namespace, keeps it running when the agent is killed and restarted (re-adoption), goes
//! NotReady with its pod's endpoints when it stops heartbeating, restarts a container that
//! exits, and tears the pod down on deletion; what it writes is root's alone (directories 0700,
//! files 0600, the pod's /etc files 0644), and it refuses to start without authentication for
//! its kubelet API or with bad image GC flags. Uses a test namespace with an address on its loopback as the node;
//! everything is removed however the test ends.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use support::{eventually, wait_for, ApiServer, SVCNET};
use svcnet_netns::testing::{unique_name, NetnsGuard, ScratchNetns};
use svcnet_netns::NetNs;

const T: Duration = Duration::from_secs(30);

/// The agent process and the pod namespaces it made (those named with its prefix), stopped and
/// deleted however the test ends.
struct Agent {
    netns_prefix: String,
    child: Option<Child>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut a) = self.child.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
        drop(NetnsGuard(NetNs::list(&self.netns_prefix)));
    }
}

/// Wait until node `solo`'s Ready condition is `status`.
async fn wait_node_ready(nodes: &Api<Node>, status: &str, what: &str) {
    wait_for(T, what, || async {
        let n = nodes.get_opt("solo").await.ok()??;
        n.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == status)
            .then_some(())
    })
    .await
}

fn start_agent(s: &ApiServer, node_ns: &str, g: &Agent, data: &std::path::Path) -> Child {
    Command::new(SVCNET)
        .args([
            "node",
            "--node-name",
            "solo",
            "--node-ip",
            "198.51.100.7",
            "--heartbeat-seconds",
            "1",
        ])
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["--netns", node_ns, "--netns-prefix", &g.netns_prefix])
        .arg("--token-file")
        .arg(s.data_dir().join("kubelet-client.token"))
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data.with_extension("log"))
                .unwrap(),
        )
        .spawn()
        .expect("svcnet node")
}

async fn pod(client: &kube::Client, name: &str) -> Option<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// The status of `p`'s container `name`.
fn container_status(p: Pod, name: &str) -> ContainerStatus {
    p.status
        .unwrap()
        .container_statuses
        .unwrap()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap()
}

fn container_pid(data: &std::path::Path, uid: &str, container: &str) -> Option<i32> {
    std::fs::read_to_string(
        data.join("pods")
            .join(uid)
            .join("containers")
            .join(container)
            .join("pid"),
    )
    .ok()?
    .trim()
    .parse()
    .ok()
}

/// The permission bits of `p`.
fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every directory under `pods/` is 0700 and every file 0600, but the pod's `/etc` files 0644.
fn assert_private(data: &Path) {
    let pods = data.join("pods");
    assert_eq!(mode(&pods), 0o700, "{}", pods.display());
    assert_eq!(mode(&data.join("ipam.json")), 0o600, "ipam.json");
    let mut dirs = vec![pods];
    let mut files = 0;
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            // A file renamed over while we look (a restarting container's) is skipped.
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                assert_eq!(mode, 0o700, "{}", p.display());
                dirs.push(p);
            } else {
                let etc = p.parent().is_some_and(|d| d.ends_with("files"));
                let want = if etc { 0o644 } else { 0o600 };
                assert_eq!(mode, want, "{}", p.display());
                files += 1;
            }
        }
    }
    // started, sandbox.json, resolv.conf, hosts, hostname, and per container meta.json, pid, a log.
    assert!(files >= 5 + 3 * 3, "{files} files checked");
}

#[test]
fn refuses_to_start_without_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "\n").unwrap();
    let node = |extra: &[&std::ffi::OsStr]| {
        Command::new(SVCNET)
            .args(["node", "--node-name", "solo", "--node-ip", "198.51.100.7"])
            .arg("--data-dir")
            .arg(dir.path().join("node"))
            .args(extra)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("svcnet node")
    };
    for (extra, cause) in [
        (vec![], "No authentication method configured"),
        (
            vec!["--token-file".as_ref(), empty.as_os_str()],
            "the bearer token in",
        ),
    ] {
        let out = node(&extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("the kubelet API needs authentication: --token-file FILE"),
            "{err}"
        );
        assert!(err.contains(cause), "{err}");
    }
    assert!(!dir.path().join("node").exists(), "refused before anything");
}

/// The kubelet's image GC flags, checked first with the kubelet's messages.
#[test]
fn refuses_bad_image_gc_flags() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, want) in [
        (
            ["--image-gc-high-threshold", "101"],
            "invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100, inclusive",
        ),
        (
            ["--image-gc-low-threshold", "90"],
            "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 90 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 85",
        ),
        (
            ["--image-minimum-gc-age", "2"],
            "time: missing unit in duration \"2\"",
        ),
    ] {
        let out = Command::new(SVCNET)
            .args(["node", "--node-name", "solo", "--node-ip", "198.51.100.7"])
            .arg("--data-dir")
            .arg(dir.path().join("node"))
            .args(flags)
            .output()
            .expect("svcnet node");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(want), "{flags:?}: {err}");
    }
    assert!(!dir.path().join("node").exists(), "refused before anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_runs_readopts_goes_not_ready_and_cleans_up() {
    let mut s = ApiServer::start();
    s.start_controllers(&["--node-monitor-grace-period", "3"]);
    let client = s.client().await;
    let node = ScratchNetns::new("node").unwrap();
    let mut g = Agent {
        netns_prefix: format!("{}-", unique_name("agent")),
        child: None,
    };
    node.ip_batch("link set lo up\naddr add 198.51.100.7/32 dev lo\n")
        .unwrap();
    let data = s.dir.path().join("node");
    // What an older agent left world-readable is taken back at start.
    std::fs::create_dir_all(data.join("pods")).unwrap();
    std::fs::set_permissions(data.join("pods"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("ipam.json"), "{}").unwrap();
    std::fs::set_permissions(
        data.join("ipam.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    g.child = Some(start_agent(&s, node.name(), &g, &data));

    // Registered, with a pod CIDR from the node IPAM controller, Ready.
    let nodes: Api<Node> = Api::all(client.clone());
    let n = wait_for(T, "the node Ready with a pod CIDR", || async {
        let n = nodes.get_opt("solo").await.ok()??;
        let cidr = n.spec.as_ref()?.pod_cidr.clone()?;
        let ok = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ok.then_some((n, cidr))
    })
    .await;
    assert_eq!(n.1, "10.244.0.0/24");
    let addrs = n.0.status.unwrap().addresses.unwrap();
    assert!(addrs
        .iter()
        .any(|a| a.type_ == "InternalIP" && a.address == "198.51.100.7"));

    // A pod (and a Service selecting it), scheduled here and run.
    let manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n  runtimeClassName: svcnet-process\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: app\n    image: agnhost\n    command: [svcnet, agnhost, netexec, --http-port=8080]\n    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}\n  - {name: flaky, image: busybox, command: [sh, -c, 'sleep 0.5; exit 1']}\n  - name: live\n    image: busybox\n    command: [sleep, '3600']\n    livenessProbe: {exec: {command: [sh, -c, 'exit 1']}, periodSeconds: 1, failureThreshold: 2}\n";
    let out = s.kubectl_stdin(&["apply", "-f", "-"], manifest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = wait_for(T, "the pod running with an IP", || async {
        let p = pod(&client, "web").await?;
        let st = p.status.as_ref()?;
        (st.phase.as_deref() == Some("Running") && st.pod_ip.is_some()).then_some(p)
    })
    .await;
    let uid = p.metadata.uid.clone().unwrap();
    let ip = p.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert!(ip.starts_with("10.244.0."), "{ip}");
    assert_eq!(
        p.status.as_ref().unwrap().host_ip.as_deref(),
        Some("198.51.100.7")
    );
    // Really serving, in its own namespace, reached from the node. Running says the process
    // started, not that it listens yet (the pod has no readiness probe): the first answer may
    // take a moment on a loaded machine.
    let url = format!("http://{ip}:8080/hostname");
    let answer = eventually(T, "an answer from the pod's server", || {
        node.exec(&["curl", "-s", "-m", "5", &url])
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(answer, "web");

    // The exiting container is restarted (restartPolicy Always), with its last state kept.
    wait_for(T, "a restart of the flaky container", || async {
        let p = pod(&client, "web").await?;
        let cs = p.status.as_ref()?.container_statuses.clone()?;
        let f = cs.iter().find(|c| c.name == "flaky")?;
        (f.restart_count >= 1 && f.last_state.as_ref()?.terminated.as_ref()?.exit_code == 1)
            .then_some(())
    })
    .await;

    // A failing liveness probe (exec) gets its container killed (SIGTERM) and restarted.
    wait_for(T, "a liveness restart", || async {
        let p = pod(&client, "web").await?;
        let cs = p.status.as_ref()?.container_statuses.clone()?;
        let l = cs.iter().find(|c| c.name == "live")?;
        let t = l.last_state.as_ref()?.terminated.clone()?;
        (l.restart_count >= 1 && t.exit_code == 143 && t.signal == Some(15)).then_some(())
    })
    .await;
    // The tcpSocket readiness probe made `app` ready.
    let p = pod(&client, "web").await.unwrap();
    let app = container_status(p, "app");
    assert!(app.ready, "{app:?}");
    // Pod state, logs, addresses: root's alone.
    assert_private(&data);

    // Kill the agent: the container keeps running; a new agent adopts it (same process).
    let app_pid = container_pid(&data, &uid, "app").expect("app's pid");
    let mut a = g.child.take().unwrap();
    a.kill().unwrap();
    a.wait().unwrap();

    // Without heartbeats the node goes Unknown and its pod not ready (endpoint not ready).
    wait_node_ready(&nodes, "Unknown", "the node NotReady").await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    wait_for(T, "the endpoint not ready", || async {
        let l = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .ok()?;
        let e = l.items.first()?.endpoints.first()?.clone();
        (e.conditions?.ready == Some(false)).then_some(())
    })
    .await;
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(app_pid), None).is_ok(),
        "the container outlived its agent"
    );

    g.child = Some(start_agent(&s, node.name(), &g, &data));
    wait_node_ready(&nodes, "True", "the node Ready again").await;
    let p = wait_for(T, "the pod reported again", || async {
        let p = pod(&client, "web").await?;
        let cs = p.status.as_ref()?.container_statuses.clone()?;
        let app = cs.iter().find(|c| c.name == "app")?;
        (app.state.as_ref()?.running.is_some() && app.ready).then_some(p)
    })
    .await;
    assert_eq!(
        container_pid(&data, &uid, "app"),
        Some(app_pid),
        "adopted, not restarted"
    );
    let app = container_status(p, "app");
    assert_eq!(app.restart_count, 0);

    // Deletion: SIGTERM, the namespace and the pod object go.
    s.kubectl_ok(&["delete", "pod", "web", "--wait=true", "--timeout=30s"]);
    assert!(pod(&client, "web").await.is_none());
    // The sandbox goes right after the object (the agent removes the object once the
    // containers have stopped, then tears the sandbox down).
    wait_for(
        Duration::from_secs(15),
        "the pod's sandbox removed",
        || async {
            let gone = NetNs::list(&g.netns_prefix)
                .iter()
                .all(|n| n == node.name())
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(app_pid), None).is_err()
                && !data.join("pods").join(&uid).exists();
            gone.then_some(())
        },
    )
    .await;
}
