//! Cluster benchmark (issue 4): `svcnet up` until every node is Ready (1 and 3 nodes) against
//! `svcnet apiserver` alone, and 50 pods from a Deployment's creation to all Ready against the
//! same sandboxes and processes made directly. Needs root; removes everything it made.
//! Details: bench/README.md.
//!
//! `cargo build --release -p svcnet -p svcnet-bench && ./target/release/cluster-bench [--runs 3] [--pods 50]`

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use svcnet_bench::cluster::{client, svcnet_exe, Up};
use svcnet_bench::proc::Proc;
use svcnet_bench::report::{self, median};
use svcnet_netns::testing::{unique_name, NetnsGuard, ScratchNetns};

#[derive(Parser)]
struct Args {
    /// Runs of each `up` measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Pods in the pod-start measurement.
    #[arg(long, default_value_t = 50)]
    pods: usize,
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// `svcnet apiserver` alone until its kubeconfig exists and /healthz answers.
fn apiserver_alone(data: &Path) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut child = Proc::spawn(
        Command::new(svcnet_exe()?)
            .args(["apiserver", "--secure-port", "0", "--data-dir"])
            .arg(data)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    let kc = data.join("kubeconfig");
    let took = loop {
        if let Ok(s) = std::fs::read_to_string(&kc) {
            if let Some(url) = s.lines().find_map(|l| l.trim().strip_prefix("server: ")) {
                let ok = Command::new("curl")
                    .args([
                        "-sk",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        &format!("{url}/healthz"),
                    ])
                    .output()?;
                if ok.stdout == b"200" {
                    break start.elapsed();
                }
            }
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "apiserver did not start"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    child.stop();
    Ok(took)
}

/// 50 pods of a Deployment, from `kubectl apply` to all Ready.
async fn pods_through_cluster(data: &Path, n: usize) -> anyhow::Result<Duration> {
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: bench}}\nspec:\n  replicas: {n}\n  selector: {{matchLabels: {{app: bench}}}}\n  template:\n    metadata: {{labels: {{app: bench}}}}\n    spec:\n      runtimeClassName: svcnet-process\n      containers:\n      - {{name: web, image: agnhost, command: [svcnet, agnhost, netexec, --http-port=80]}}\n"
    );
    let file = data.join("bench.yaml");
    std::fs::write(&file, manifest)?;
    let c = client(&data.join("kubeconfig")).await?;
    let api: Api<Pod> = Api::namespaced(c, "default");
    let start = Instant::now();
    let st = Command::new("kubectl")
        .arg("apply")
        .arg("-f")
        .arg(&file)
        .env("KUBECONFIG", data.join("kubeconfig"))
        .output()?;
    anyhow::ensure!(
        st.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    loop {
        let pods = api.list(&ListParams::default().labels("app=bench")).await?;
        let ready = pods
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        if ready == n {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "only {ready}/{n} pods ready after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The reference: the same number of sandboxes and server processes, made directly.
async fn pods_direct(n: usize, dir: &Path) -> anyhow::Result<Duration> {
    use svcnet_netns::NetNs;
    let tag = std::process::id();
    let base = unique_name("b");
    let node = ScratchNetns::named(format!("{base}-node"))?;
    // The pods' namespaces, however this ends (sandbox::destroy removes them first).
    let mut pods = NetnsGuard::default();
    let cidr: ipnet::Ipv4Net = "10.250.0.0/24".parse()?;
    let exe = svcnet_exe()?;
    let mut made = Vec::new();
    let mut children = Vec::new();
    let start = Instant::now();
    let result: anyhow::Result<Duration> = async {
        svcnet_node::sandbox::prepare_node(Some(&node), cidr)?;
        let files = svcnet_node::sandbox::PodFiles {
            hostname: "bench".into(),
            ..Default::default()
        };
        for i in 0..n {
            let ip = Ipv4Addr::new(10, 250, 0, 2 + i as u8);
            let uid = format!("{tag:x}{i:04x}");
            let netns = format!("{base}-pod-{i}");
            pods.0.push(netns.clone());
            let pdir = dir.join(&uid);
            let spec = svcnet_node::sandbox::SandboxSpec {
                netns: &netns,
                uid: &uid,
                namespace: "default",
                name: &uid,
                ip,
                cidr,
                files: &files,
                dir: &pdir,
            };
            made.push(svcnet_node::sandbox::create(&spec, Some(&node))?);
            let mut cmd = Command::new(&exe);
            cmd.args(["agnhost", "netexec", "--http-port=80"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            svcnet_netns::enter_on_exec(&mut cmd, &NetNs::open(&netns)?, Some("bench"), &[])?;
            children.push(Proc::spawn(&mut cmd)?);
        }
        for sb in &made {
            let addr = SocketAddr::from((sb.ip, 80));
            loop {
                if node
                    .tcp_connect(addr, Duration::from_millis(200))
                    .await
                    .is_ok()
                {
                    break;
                }
                anyhow::ensure!(
                    start.elapsed() < Duration::from_secs(60),
                    "{addr} never answered"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        Ok(start.elapsed())
    }
    .await;
    drop(children);
    for sb in &made {
        let _ = svcnet_node::sandbox::destroy(sb, Some(&node));
    }
    drop(pods);
    drop(node);
    result
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    svcnet_netns::check_privileges().map_err(anyhow::Error::msg)?;
    report::header();
    let tmp = tempfile::tempdir()?;

    let mut api_alone = Vec::new();
    for r in 0..args.runs {
        api_alone.push(apiserver_alone(&tmp.path().join(format!("api-{r}")))?);
    }
    let api_alone = median(api_alone);
    println!(
        "## `svcnet up` until every node is Ready (median of {} runs)\n",
        args.runs
    );
    println!(
        "| nodes | svcnet up → ready | reference: `svcnet apiserver` alone → serving | ratio |"
    );
    println!("|---|---|---|---|");
    for n in [1usize, 3] {
        let mut times = Vec::new();
        for r in 0..args.runs {
            let (cluster, took) = Up::start(n, &tmp.path().join(format!("up-{n}-{r}")))?;
            times.push(took);
            drop(cluster);
        }
        let m = median(times);
        println!(
            "| {n} | {} | {} | {:.1}x |",
            secs(m),
            secs(api_alone),
            m.as_secs_f64() / api_alone.as_secs_f64()
        );
    }

    let data = tmp.path().join("pods");
    let (cluster, _) = Up::start(3, &data)?;
    let through = pods_through_cluster(&data, args.pods).await;
    drop(cluster);
    let through = through?;
    let direct = pods_direct(args.pods, &tmp.path().join("direct")).await?;
    println!(
        "\n## {} pods: Deployment created → all Ready (3 nodes)\n",
        args.pods
    );
    println!("| path | time | per pod |");
    println!("|---|---|---|");
    println!("| svcnet: API → ReplicaSet → scheduler → agents → sandboxes + shims → status | {} | {:.1} ms |", secs(through), through.as_secs_f64() * 1000.0 / args.pods as f64);
    println!("| reference: the same sandboxes and processes made directly, answering on :80 | {} | {:.1} ms |", secs(direct), direct.as_secs_f64() * 1000.0 / args.pods as f64);
    println!(
        "| ratio | {:.1}x | |",
        through.as_secs_f64() / direct.as_secs_f64()
    );
    Ok(())
}
