//! Shared harness of the end-to-end tests: start the real `svcnet` binary in a temporary data
//! dir, drive it with the real `kubectl` (and kube-rs), and stop it however the test ends.
#![allow(dead_code)]

pub mod cluster;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SVCNET: &str = env!("CARGO_BIN_EXE_svcnet");

/// The seed manifests (examples/seeds).
pub fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/seeds")
        .join(name)
}

/// A running `svcnet apiserver`, killed on drop.
pub struct ApiServer {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    /// HOME for kubectl, so its discovery cache is this server's alone.
    pub home: PathBuf,
    pub url: String,
    pub extra_args: Vec<String>,
    child: Option<Child>,
    controllers: Option<Child>,
    /// The etcd this server stores in, when the harness started one (SVCNET_TEST_STORE=etcd).
    pub etcd: Option<svcnet_store::etcd::local::LocalEtcd>,
}

/// `SVCNET_TEST_STORE=etcd` runs every API server of the tests on its own local etcd (Debian's
/// etcd 3.4 on loopback) instead of SQLite.
pub fn test_store_is_etcd() -> bool {
    std::env::var("SVCNET_TEST_STORE").is_ok_and(|v| v == "etcd")
}

impl ApiServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Self {
        if test_store_is_etcd() && !args.iter().any(|a| a.starts_with("--store")) {
            return Self::start_on_etcd(args);
        }
        Self::start_in(tempfile::tempdir().expect("tempdir"), args, None, None)
    }

    /// A server on a fresh one-member etcd of its own (killed with the server).
    pub fn start_on_etcd(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let etcd = svcnet_store::etcd::local::LocalEtcd::start(&dir.path().join("etcd"), 1)
            .expect("starting etcd");
        let mut all: Vec<&str> = args.to_vec();
        let url = etcd.store_url();
        eprintln!("API server on etcd: {url}");
        all.extend(["--store", url.as_str()]);
        Self::start_in(dir, &all, None, Some(etcd))
    }

    /// Another server on the store given in `args`, sharing `peer`'s CA and admin token (as
    /// several API servers of one cluster do), so one kubeconfig's credentials work on both.
    pub fn start_sharing(peer: &ApiServer, args: &[&str]) -> Self {
        Self::start_in(
            tempfile::tempdir().expect("tempdir"),
            args,
            Some(peer),
            None,
        )
    }

    fn start_in(
        dir: tempfile::TempDir,
        args: &[&str],
        peer: Option<&ApiServer>,
        etcd: Option<svcnet_store::etcd::local::LocalEtcd>,
    ) -> Self {
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut s = ApiServer {
            kubeconfig: dir.path().join("data/kubeconfig"),
            home,
            dir,
            url: String::new(),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
            controllers: None,
            etcd,
        };
        if let Some(peer) = peer {
            std::fs::create_dir_all(s.data_dir()).unwrap();
            for f in ["ca.crt", "ca.key", "admin.token", "kubelet-client.token"] {
                let from = peer.data_dir().join(f);
                if from.exists() {
                    std::fs::copy(&from, s.data_dir().join(f)).unwrap();
                }
            }
        }
        s.spawn();
        s
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Start the process (again, after `kill9`), on the port it had if it had one.
    pub fn spawn(&mut self) {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(0);
        let _ = std::fs::remove_file(&self.kubeconfig);
        let child = spawn_logged(
            Command::new(SVCNET)
                .arg("apiserver")
                .arg("--data-dir")
                .arg(self.data_dir())
                .arg("--secure-port")
                .arg(port.to_string())
                .args(&self.extra_args),
            &self.dir.path().join("apiserver.log"),
        );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(kc) = std::fs::read_to_string(&self.kubeconfig) {
                if let Some(line) = kc.lines().find(|l| l.trim_start().starts_with("server:")) {
                    self.url = line.trim().trim_start_matches("server:").trim().to_string();
                    break;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("svcnet apiserver exited early ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "apiserver did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start `svcnet controller-manager` against this server (stopped on drop).
    pub fn start_controllers(&mut self, args: &[&str]) {
        let child = spawn_logged(
            Command::new(SVCNET)
                .arg("controller-manager")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(args),
            &self.dir.path().join("controllers.log"),
        );
        self.controllers = Some(child);
    }

    pub fn controllers_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("controllers.log")).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default()
    }

    /// SIGKILL the server (a crash); `spawn` starts it again on the same data dir and port.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env_remove("KUBECTL_EXTERNAL_DIFF");
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("running kubectl")
    }

    /// Run kubectl and return stdout; panic with everything on failure.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        kubectl_stdout(args, self.kubectl(args), "server log", || self.log())
    }

    /// `kubectl get <resource> <name> -o jsonpath=<template>`.
    pub fn jsonpath(&self, resource: &str, name: &str, template: &str) -> String {
        self.kubectl_ok(&["get", resource, name, "-o", &format!("jsonpath={template}")])
    }

    /// `kubectl <verb> -f <a seed manifest>` (examples/seeds): stdout.
    pub fn kubectl_seed(&self, verb: &str, name: &str) -> String {
        self.kubectl_ok(&[verb, "-f", seed(name).to_str().unwrap()])
    }

    /// Run kubectl expecting failure; return stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// kubectl with `input` on stdin (for `-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// `curl` against the server (with the CA); returns (status code, body).
    pub fn curl(&self, args: &[&str], path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(self.data_dir().join("ca.crt"))
            .args(["-o", "-", "-w", "\n%{http_code}"])
            .args(args)
            .arg(format!("{}{}", self.url, path))
            .output()
            .expect("running curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    pub fn curl_auth(&self, args: &[&str], path: &str) -> (u16, String) {
        let auth = format!("Authorization: Bearer {}", self.token());
        let mut all = vec!["-H", auth.as_str()];
        all.extend_from_slice(args);
        self.curl(&all, path)
    }

    /// A kube-rs client for this server.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.controllers.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.kill9();
        // etcd (if ours) goes before the temp dir holding its data.
        self.etcd.take();
    }
}

/// Start `cmd` (a `svcnet` component) with `RUST_LOG=info`, its stdout discarded and its
/// stderr appended to `log`.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    cmd.env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

/// The stdout of a kubectl run that must have succeeded; otherwise a panic with its output and
/// the log of what it talked to (`log_name`: whose).
fn kubectl_stdout(
    args: &[&str],
    out: Output,
    log_name: &str,
    log: impl FnOnce() -> String,
) -> String {
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\nstdout: {}\nstderr: {}\n{log_name}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The stdout of `cmd` (run to its end), as text.
pub fn stdout(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Services as the allocators left them: every ClusterIP and every NodePort handed out once.
/// Returns how many of each.
pub fn distinct_allocations(services: &[k8s_openapi::api::core::v1::Service]) -> (usize, usize) {
    let mut ips = std::collections::HashSet::new();
    let mut ports = std::collections::HashSet::new();
    for s in services {
        let spec = s.spec.as_ref().unwrap();
        let ip = spec.cluster_ip.clone().unwrap();
        assert!(ips.insert(ip.clone()), "ClusterIP {ip} handed out twice");
        for p in spec.ports.iter().flatten() {
            if let Some(np) = p.node_port {
                assert!(ports.insert(np), "NodePort {np} handed out twice");
            }
        }
    }
    (ips.len(), ports.len())
}

/// Poll `f` until it returns Some, or panic after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A row of a `kubectl get` table: column name → cell.
pub type Row = std::collections::BTreeMap<String, String>;

/// The rows of a `kubectl get` table: header line split into columns, rows as maps.
pub fn table(out: &str) -> Vec<Row> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return vec![];
    };
    // kubectl pads columns with at least 3 spaces; header words inside a column ("NOMINATED
    // NODE") are separated by one.
    let bytes = header.as_bytes();
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| {
            bytes[i] != b' ' && (i == 0 || (i >= 2 && bytes[i - 1] == b' ' && bytes[i - 2] == b' '))
        })
        .collect();
    let names: Vec<String> = starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let e = starts.get(k + 1).copied().unwrap_or(header.len());
            header[s..e].trim().to_string()
        })
        .collect();
    lines
        .map(|l| {
            names
                .iter()
                .enumerate()
                .map(|(k, n)| {
                    let s = starts[k].min(l.len());
                    let e = starts.get(k + 1).copied().unwrap_or(l.len()).min(l.len());
                    (n.clone(), l[s..e].trim().to_string())
                })
                .collect()
        })
        .collect()
}

/// A command that must have succeeded; its stderr says why not.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cells of `row` (a row of [`table`]) under `columns`, in that order.
pub fn cells<'a>(row: &'a Row, columns: &[&str]) -> Vec<&'a str> {
    columns.iter().map(|c| row[*c].as_str()).collect()
}

/// Plays the node agent for controller tests that run no nodes: every pod without an IP gets
/// one (10.244.<n>) and turns Running and Ready, through the pods' status as a kubelet reports
/// it. Stops when the returned handle is aborted or dropped with the runtime.
pub fn fake_kubelet(client: kube::Client) -> tokio::task::JoinHandle<()> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    tokio::spawn(async move {
        let api: Api<Pod> = Api::all(client.clone());
        let mut next: u32 = 2;
        loop {
            if let Ok(pods) = api.list(&ListParams::default()).await {
                for p in pods {
                    let has_ip = p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some();
                    if has_ip || p.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let ip = format!("10.244.{}.{}", next / 250, next % 250 + 1);
                    next += 1;
                    let ns = p.metadata.namespace.clone().unwrap_or_default();
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let _ = set_pod_status(&client, &ns, &name, Some(&ip), true).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Set a pod's IP (if given) and readiness through its status, as a kubelet would.
pub async fn set_pod_status(
    client: &kube::Client,
    ns: &str,
    name: &str,
    ip: Option<&str>,
    ready: bool,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = jiff_now();
    let status = if ready { "True" } else { "False" };
    let mut st = serde_json::json!({
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": status, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
        ],
    });
    if let Some(ip) = ip {
        st["podIP"] = ip.into();
        st["podIPs"] = serde_json::json!([{ "ip": ip }]);
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": st })),
    )
    .await
    .map(|_| ())
}

fn jiff_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Poll the async `f` until it returns Some, or panic after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
