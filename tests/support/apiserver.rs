//! A `svcnet apiserver` per test (on SQLite, or its own etcd with `SVCNET_TEST_STORE=etcd`),
//! with kubectl, curl and kube-rs pointed at it, and the controller-manager beside it on demand.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::commands::{kubectl_stdout, seed, SVCNET};

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
    /// The server's open-file limit (soft and hard), set between fork and exec.
    pub open_file_limit: Option<u64>,
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

    /// A server whose open-file limit is `nofile` (on SQLite, in its own data dir).
    pub fn start_with_open_file_limit(nofile: u64, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_limited(dir, args, None, None, Some(nofile))
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
        Self::start_limited(dir, args, peer, etcd, None)
    }

    fn start_limited(
        dir: tempfile::TempDir,
        args: &[&str],
        peer: Option<&ApiServer>,
        etcd: Option<svcnet_store::etcd::local::LocalEtcd>,
        open_file_limit: Option<u64>,
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
            open_file_limit,
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

    /// The server's process id (None after `kill9`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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
        let mut cmd = super::commands::with_open_file_limit(SVCNET, self.open_file_limit);
        let child = spawn_logged(
            cmd.arg("apiserver")
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

    /// A Node object with its Ready condition's status ("True", "False"), as a node agent would
    /// register it (no agent runs; nothing sends heartbeats).
    pub fn add_node(&self, name: &str, ready: &str) {
        let out = self.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let patch = format!(
            r#"{{"status":{{"conditions":[{{"type":"Ready","status":"{ready}","reason":"KubeletReady"}}]}}}}"#
        );
        self.kubectl_ok(&[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ]);
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
        super::commands::output_with_input(self.kubectl_cmd(args), input)
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
