//! A `svcnet up` cluster for end-to-end tests: started in a temporary data dir, driven with
//! kubectl and `svcnet exec`, and torn down (checked) however the test ends.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::commands::{kubectl_stdout, seed, table, Row, SVCNET};
use super::poll::eventually;

/// A running `svcnet up`; stopped (and checked clean) by `down`, killed + torn down on drop.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub prefix: String,
}

impl Cluster {
    pub fn up(nodes: usize) -> Cluster {
        Self::up_with(nodes, &[])
    }

    /// `svcnet up --nodes N` with extra flags (e.g. `--proxy-mode iptables`).
    pub fn up_with(nodes: usize, extra: &[&str]) -> Cluster {
        Self::up_in(tempfile::tempdir().unwrap(), nodes, extra)
    }

    /// [`Cluster::up_with`] with its data dir at `<dir>/data` (prepared, e.g. with image
    /// archives in `<dir>/data/images`).
    pub fn up_in(dir: tempfile::TempDir, nodes: usize, extra: &[&str]) -> Cluster {
        Self::up_logging(dir, nodes, extra, "warn")
    }

    /// [`Cluster::up_in`] with `RUST_LOG=<rust_log>` (its stderr is [`Cluster::log`]).
    pub fn up_logging(
        dir: tempfile::TempDir,
        nodes: usize,
        extra: &[&str],
        rust_log: &str,
    ) -> Cluster {
        let mut c = Cluster {
            dir,
            child: None,
            prefix: String::new(),
        };
        c.start(nodes, extra, rust_log);
        c
    }

    /// Stop the cluster (as Ctrl-C would) and start `svcnet up` again on the same data dir, as
    /// a user restarting it does; the API's objects survive, the nodes start afresh.
    pub fn restart(&mut self, nodes: usize, extra: &[&str]) {
        self.stop();
        self.start(nodes, extra, "warn");
    }

    /// `svcnet up` on this data dir, until it says ready.
    fn start(&mut self, nodes: usize, extra: &[&str], rust_log: &str) {
        // The host's loopback forwarders only where a test asks (`--host-ports=true`): the
        // seeds' fixed NodePorts (30002, 31112) of clusters running side by side would compete
        // for 127.0.0.1's ports, and the README's test curls 127.0.0.1:30002.
        let host_ports =
            (!extra.iter().any(|a| a.starts_with("--host-ports"))).then_some("--host-ports=false");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("up.log"))
            .unwrap();
        let mut child = Command::new(SVCNET)
            .args([
                "up",
                "--nodes",
                &nodes.to_string(),
                "--apiserver-port",
                "0",
                "--data-dir",
            ])
            .arg(self.data())
            .args(extra)
            .args(host_ports)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("svcnet up");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("svcnet up never said ready:\n{}", self.log()));
            if line.starts_with("ready") {
                break;
            }
        }
        self.prefix = std::fs::read_to_string(self.data().join("netns-prefix"))
            .expect("the cluster's namespace prefix");
    }

    /// Debian's docker-registry on loopback holding the seeds' images (busybox; nginx as
    /// `latest` and `1.23.1`; with `scaling`, the agnhost image built from this svcnet binary
    /// as `mask365/scaling:latest`), and `svcnet up --nodes N` whose registries.yaml mirrors
    /// docker.io and quay.io to it. Nothing contacts the internet
    /// (`--disable-default-registry-endpoint`); `extra`: more flags of `up`. The registry and
    /// the registries.yaml's directory live as long as the values returned.
    pub fn up_with_registry(
        nodes: usize,
        scaling: bool,
        extra: &[&str],
    ) -> (svcnet_images::testing::Registry, Cluster, tempfile::TempDir) {
        let registry = svcnet_images::testing::Registry::start().expect("docker-registry");
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async {
                registry.push_seeds().await?;
                if scaling {
                    registry.push_scaling(std::path::Path::new(SVCNET)).await?;
                }
                std::io::Result::Ok(())
            })
            .expect("pushing the seeds' images");
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("registries.yaml");
        std::fs::write(&yaml, registry.mirror_yaml("")).unwrap();
        let mut args = vec![
            "--private-registry",
            yaml.to_str().unwrap(),
            "--disable-default-registry-endpoint",
        ];
        args.extend(extra);
        let c = Cluster::up_with(nodes, &args);
        (registry, c, dir)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("up.log")).unwrap_or_default()
    }

    /// A kubectl command for this cluster, to run as the caller likes (stdin, a terminal).
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", self.data().join("kubeconfig"))
            .env("HOME", self.dir.path());
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().unwrap()
    }

    /// kubectl with `input` on its stdin; its stdout, after it succeeded.
    pub fn kubectl_stdin_ok(&self, args: &[&str], input: &str) -> String {
        let out = super::commands::output_with_input(self.kubectl_cmd(args), input);
        kubectl_stdout(args, out, "up log", || self.log())
    }

    /// `dig @10.96.0.10 <args>` (the kube-dns Service) from node `node`: its output, trimmed.
    pub fn dig(&self, node: &str, args: &[&str]) -> String {
        let mut argv = vec!["dig", "@10.96.0.10"];
        argv.extend_from_slice(args);
        self.exec_stdout(&["--node", node], &argv)
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        kubectl_stdout(args, self.kubectl(args), "up log", || self.log())
    }

    /// `kubectl get <resource> <name> -o jsonpath=<template>`.
    pub fn jsonpath(&self, resource: &str, name: &str, template: &str) -> String {
        self.kubectl_ok(&["get", resource, name, "-o", &format!("jsonpath={template}")])
    }

    /// `kubectl apply -f` of `manifest`, its pods whose containers all have a `command` run
    /// as host processes ([`process_runtime`]).
    pub fn apply(&self, manifest: &str) {
        let path = self.dir.path().join("m.yaml");
        std::fs::write(&path, process_runtime(manifest)).unwrap();
        self.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// `kubectl apply -f` each of these seed manifests (examples/seeds) as host processes, for
    /// tests of the proxy and DNS that need no image: [`agnhost_processes`], then as
    /// [`Cluster::apply`]. tests/seeds_up.rs runs the seeds as written, from their images.
    pub fn apply_seeds(&self, names: &[&str]) {
        for name in names {
            let manifest = std::fs::read_to_string(seed(name)).unwrap();
            self.apply(&agnhost_processes(&manifest));
        }
    }

    /// Wait (60 s at most) until exactly `n` pods match `selector`, all Ready (`1/1`); their
    /// rows of `kubectl get pods -o wide`.
    pub fn ready_pods(&self, selector: &str, n: usize) -> Vec<Row> {
        eventually(
            Duration::from_secs(60),
            &format!("{n} Ready pods with {selector}"),
            || {
                let t = table(&self.kubectl_ok(&["get", "pods", "-o", "wide", "-l", selector]));
                (t.len() == n && t.iter().all(|r| r["READY"] == "1/1")).then_some(t)
            },
        )
    }

    /// `svcnet exec <where> -- argv`.
    pub fn exec(&self, target: &[&str], argv: &[&str]) -> Output {
        Command::new(SVCNET)
            .arg("exec")
            .args(target)
            .arg("--data-dir")
            .arg(self.data())
            .arg("--")
            .args(argv)
            .output()
            .unwrap()
    }

    /// `svcnet exec <where> -- argv`: its stdout, trimmed.
    pub fn exec_stdout(&self, target: &[&str], argv: &[&str]) -> String {
        let out = self.exec(target, argv);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `svcnet exec <where> -- argv`: its stdout (trimmed) when it succeeded.
    pub fn exec_ok(&self, target: &[&str], argv: &[&str]) -> Option<String> {
        let out = self.exec(target, argv);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The Events about object `name` in namespace `ns`, one `Reason: message` a line.
    pub fn events_of(&self, ns: &str, name: &str) -> String {
        self.kubectl_ok(&[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ])
    }

    /// Wait (20 s at most) until `dig @10.96.0.10 <name> +short` from `node` gives exactly
    /// `want` (the A records of a headless Service: its pods' addresses).
    pub fn wait_dig_short(&self, node: &str, name: &str, want: &BTreeSet<String>) {
        eventually(
            Duration::from_secs(20),
            &format!("the A records of {name}"),
            || {
                let got: BTreeSet<String> = self
                    .dig(node, &[name, "+short"])
                    .lines()
                    .map(str::to_string)
                    .collect();
                (&got == want).then_some(())
            },
        )
    }

    /// `dig @10.96.0.10 <name> <extra>` from `node` answers with the CNAME `target` (an
    /// ExternalName Service; what is behind it needs a resolver outside the cluster).
    pub fn assert_cname(&self, node: &str, name: &str, target: &str, extra: &[&str]) {
        let mut args = vec![name];
        args.extend_from_slice(extra);
        let out = self.dig(node, &args);
        assert!(out.contains("CNAME") && out.contains(target), "{out}");
    }

    /// Wait (60 s at most) until pod `name` (default namespace) is Running.
    pub fn wait_running(&self, name: &str) {
        eventually(Duration::from_secs(60), &format!("{name} Running"), || {
            let t = table(&self.kubectl_ok(&["get", "pod", name]));
            (t[0]["STATUS"] == "Running").then_some(())
        })
    }

    /// Pod `name`'s /etc/resolv.conf is the cluster's, as the seeds show it (dnsPolicy
    /// ClusterFirst): the search path, the kube-dns Service, ndots:5.
    pub fn assert_cluster_resolv_conf(&self, name: &str) {
        let resolv = self.kubectl_ok(&["exec", name, "--", "cat", "/etc/resolv.conf"]);
        assert!(
            resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local")
                && resolv.contains("nameserver 10.96.0.10")
                && resolv.contains("options ndots:5"),
            "{resolv}"
        );
    }

    /// Node `i`'s network namespace.
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}node-{i}", self.prefix)
    }

    /// `ip -n <node i's namespace> <args>`.
    pub fn ip(&self, node: usize, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["-n", &self.node_ns(node)])
            .args(args)
            .output()
            .unwrap()
    }

    /// This cluster's network namespaces.
    pub fn namespaces(&self) -> Vec<String> {
        svcnet_netns::NetNs::list(&self.prefix)
    }

    /// Processes that belong to this cluster (container shims carry the data dir).
    pub fn processes(&self) -> Vec<String> {
        let needle = self.data().to_string_lossy().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&needle) && !c.contains(" exec "))
            .collect()
    }

    /// SIGTERM `up` (as Ctrl-C would) and wait for it to finish its teardown.
    pub fn stop(&mut self) {
        let _ = self.stop_with(nix::sys::signal::Signal::SIGTERM);
    }

    /// Send `up` `signal` and wait (30 s at most, then kill it) for it to finish its teardown:
    /// its exit status, if it exited by itself.
    pub fn stop_with(
        &mut self,
        signal: nix::sys::signal::Signal,
    ) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), signal);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = c.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Whatever happened, leave nothing behind.
        let _ = Command::new(SVCNET)
            .arg("down")
            .arg("--data-dir")
            .arg(self.data())
            .output();
    }
}

/// Whether this host can run pods from images in tests (root, runc, the docker-registry, the
/// seeds' Debian packages, and `programs`); why not, on stderr.
pub fn can_run_images(programs: &[&str]) -> bool {
    let missing: Vec<&str> = [
        "/usr/bin/runc",
        svcnet_images::testing::DOCKER_REGISTRY,
        "/bin/busybox",
        "/usr/sbin/nginx",
    ]
    .into_iter()
    .filter(|p| !std::path::Path::new(p).is_file())
    .collect();
    if !missing.is_empty() || !svcnet_netns::testing::can_run(programs) {
        eprintln!("skipped: needs root, {programs:?} and {missing:?}");
        return false;
    }
    true
}

/// The pod spec of a manifest document: a Pod's, or a workload's pod template's.
fn pod_spec(v: &mut serde_yaml::Value) -> Option<&mut serde_yaml::Value> {
    match v.get("kind").and_then(|k| k.as_str()) {
        Some("Pod") => v.get_mut("spec"),
        _ => v
            .get_mut("spec")
            .and_then(|s| s.get_mut("template"))
            .and_then(|t| t.get_mut("spec")),
    }
}

/// `manifest` with each container that has no `command` (a server from its image: the seeds'
/// nginx, the shield app) given `svcnet agnhost netexec` on its first `containerPort` (80 when
/// none), which answers `/` with the pod's IP as the seeds' edited nginx pages do; then
/// [`process_runtime`] runs those pods as host processes.
pub fn agnhost_processes(manifest: &str) -> String {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(manifest) {
        let mut v = serde_yaml::Value::deserialize(doc).expect("a YAML manifest");
        if v.is_null() {
            continue;
        }
        let containers = pod_spec(&mut v)
            .and_then(|s| s.get_mut("containers"))
            .and_then(|c| c.as_sequence_mut());
        for c in containers.into_iter().flatten() {
            if c.get("command").is_some() {
                continue;
            }
            let port = c
                .get("ports")
                .and_then(|p| p.get(0))
                .and_then(|p| p.get("containerPort"))
                .and_then(|p| p.as_u64())
                .unwrap_or(80);
            let command: Vec<serde_yaml::Value> = [
                "svcnet",
                "agnhost",
                "netexec",
                &format!("--http-port={port}"),
            ]
            .into_iter()
            .map(Into::into)
            .collect();
            c.as_mapping_mut()
                .unwrap()
                .insert("command".into(), command.into());
        }
        out.push(serde_yaml::to_string(&v).unwrap());
    }
    out.join("---\n")
}

/// `manifest` with `runtimeClassName: svcnet-process` on every pod (and pod template) whose
/// containers all have a `command` and that names no RuntimeClass: the fast host-process
/// runtime for tests that need no image (their commands are the host's programs).
pub fn process_runtime(manifest: &str) -> String {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(manifest) {
        let mut v = serde_yaml::Value::deserialize(doc).expect("a YAML manifest");
        if v.is_null() {
            continue;
        }
        if let Some(spec) = pod_spec(&mut v) {
            let all_commands = spec
                .get("containers")
                .and_then(|c| c.as_sequence())
                .is_some_and(|cs| cs.iter().all(|c| c.get("command").is_some()));
            if all_commands && spec.get("runtimeClassName").is_none() {
                spec.as_mapping_mut()
                    .unwrap()
                    .insert("runtimeClassName".into(), "svcnet-process".into());
            }
        }
        out.push(serde_yaml::to_string(&v).unwrap());
    }
    out.join("---\n")
}
