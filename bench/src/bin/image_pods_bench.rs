//! Image pods benchmark (issue 17): a Deployment of 50 pods of a cached image (the seeds'
//! nginx, built from Debian's nginx-light and served by Debian's docker-registry on loopback,
//! pulled once before) from `kubectl apply` to all Ready, against the same Deployment in the
//! process RuntimeClass (`svcnet agnhost netexec`, no image, no OCI runtime), same cluster,
//! rounds alternating; and the memory (PSS) of `svcnet up` (API server, controllers and the
//! node agents run in it) and of the per-container processes it starts, with each set running.
//! Target: ratio ≤ 1.5×. Needs root, runc and docker-registry; removes everything it made.
//!
//! ```sh
//! apt-get install -y docker-registry runc busybox-static nginx-light
//! cargo build --release -p svcnet -p svcnet-bench
//! ./target/release/image-pods-bench [--pods 50] [--rounds 3] [--nodes 3]
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use svcnet_bench::cluster::{client, Up};
use svcnet_bench::report::{self, median};
use svcnet_images::testing::Registry;

#[derive(Parser)]
struct Args {
    /// Pods in each Deployment.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Rounds of each runtime (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Nodes of `svcnet up`.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
}

/// A Deployment of `n` pods named `name`: from the nginx image, or `svcnet agnhost` in the
/// process RuntimeClass.
fn deployment(name: &str, n: usize, image: bool) -> String {
    let pod = if image {
        "      containers:\n      - {name: web, image: nginx, imagePullPolicy: IfNotPresent}\n"
            .to_string()
    } else {
        "      runtimeClassName: svcnet-process\n      containers:\n      - {name: web, image: agnhost, command: [svcnet, agnhost, netexec, --http-port=80]}\n"
            .to_string()
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {n}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n{pod}"
    )
}

fn kubectl(data: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", data.join("kubeconfig"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("kubectl")?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(text.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Apply the Deployment and wait until its `n` pods are Ready: the time that took.
async fn apply_until_ready(
    data: &Path,
    pods: &Api<Pod>,
    name: &str,
    n: usize,
    image: bool,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    kubectl(
        data,
        &["apply", "-f", "-"],
        Some(&deployment(name, n, image)),
    )?;
    let selector = format!("app={name}");
    loop {
        let list = pods.list(&ListParams::default().labels(&selector)).await?;
        let n_ready = list.items.iter().filter(|p| ready(p)).count();
        if n_ready == n {
            return Ok(start.elapsed());
        }
        ensure!(
            start.elapsed() < Duration::from_secs(300),
            "{name}: only {n_ready}/{n} pods Ready after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Delete the Deployment and wait until its pods are gone.
async fn delete(data: &Path, pods: &Api<Pod>, name: &str) -> anyhow::Result<()> {
    kubectl(data, &["delete", "deployment", name, "--wait=false"], None)?;
    let selector = format!("app={name}");
    let start = Instant::now();
    while !pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .is_empty()
    {
        ensure!(
            start.elapsed() < Duration::from_secs(300),
            "{name}: pods still there after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A process's name for the memory table: `svcnet <subcommand>` for svcnet's own processes
/// (up, shim, pause, agnhost), else the kernel's command name.
fn command(pid: u32, comm: &str) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut argv = cmdline.split(|b| *b == 0).map(String::from_utf8_lossy);
    match (argv.next(), argv.next()) {
        (Some(exe), Some(sub)) if exe.ends_with("svcnet") => format!("svcnet {sub}"),
        _ => comm.to_string(),
    }
}

/// A process's proportional set size (`Pss:` of /proc/PID/smaps_rollup, KiB): its resident
/// pages, each shared page divided among the processes sharing it — so the sum over many
/// processes of one binary counts its text once, which a sum of RSS would count each time.
fn pss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Memory (PSS, MiB) of `root` and of its descendants, summed by command name.
fn pss_by_command(root: u32) -> BTreeMap<String, (usize, f64)> {
    let mut parent_of = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the command (which may hold spaces) start after the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| command(pid, c));
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u32>().ok());
        if let (Some(comm), Some(ppid)) = (comm, ppid) {
            parent_of.insert(pid, (ppid, comm));
        }
    }
    let descends = |mut pid: u32| {
        while pid > 1 {
            if pid == root {
                return true;
            }
            pid = parent_of.get(&pid).map_or(0, |(p, _)| *p);
        }
        false
    };
    let mut out: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for (pid, (_, comm)) in &parent_of {
        if descends(*pid) {
            let e = out.entry(comm.clone()).or_default();
            e.0 += 1;
            e.1 += pss_kib(*pid) / 1024.0;
        }
    }
    out
}

fn memory_table(rows: &[(&str, BTreeMap<String, (usize, f64)>)]) {
    let names: std::collections::BTreeSet<&String> =
        rows.iter().flat_map(|(_, m)| m.keys()).collect();
    print!("| process (how many: total PSS) |");
    for (label, _) in rows {
        print!(" {label} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(rows.len()));
    for name in names {
        print!("| `{name}` |");
        for (_, m) in rows {
            match m.get(name) {
                Some((n, mib)) => print!(" {n}: {mib:.1} MiB |"),
                None => print!(" – |"),
            }
        }
        println!();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    svcnet_netns::check_privileges().map_err(anyhow::Error::msg)?;
    ensure!(
        Path::new("/usr/bin/runc").is_file() && svcnet_images::testing::available(),
        "needs runc and docker-registry (apt-get install -y runc docker-registry)"
    );
    report::header();
    let registry = Registry::start()?;
    registry.push_seeds().await?;
    let tmp = tempfile::tempdir()?;
    let yaml = tmp.path().join("registries.yaml");
    std::fs::write(&yaml, registry.mirror_yaml(""))?;
    let data = tmp.path().join("up");
    let (up, _) = Up::start_with(
        args.nodes,
        &data,
        &[
            "--private-registry",
            yaml.to_str().expect("a UTF-8 path"),
            "--disable-default-registry-endpoint",
        ],
    )?;
    let pods: Api<Pod> = Api::namespaced(client(&data.join("kubeconfig")).await?, "default");

    // The image is pulled once (one pod per node would pull it once too: the store is shared).
    apply_until_ready(&data, &pods, "warm", 1, true).await?;
    delete(&data, &pods, "warm").await?;

    let idle = pss_by_command(up.id());
    let (mut process, mut image) = (Vec::new(), Vec::new());
    let (mut process_pss, mut image_pss) = (BTreeMap::new(), BTreeMap::new());
    for round in 0..args.rounds {
        process.push(apply_until_ready(&data, &pods, "proc", args.pods, false).await?);
        if round == 0 {
            process_pss = pss_by_command(up.id());
        }
        delete(&data, &pods, "proc").await?;
        image.push(apply_until_ready(&data, &pods, "img", args.pods, true).await?);
        if round == 0 {
            image_pss = pss_by_command(up.id());
        }
        delete(&data, &pods, "img").await?;
    }
    let (process, image) = (median(process), median(image));
    println!(
        "## {} pods of a Deployment, `kubectl apply` → all Ready ({} nodes, median of {} rounds)\n",
        args.pods, args.nodes, args.rounds
    );
    println!("| runtime | time | per pod |");
    println!("|---|---|---|");
    for (label, d) in [
        ("image (nginx, cached; runc, overlayfs)", image),
        ("reference: process RuntimeClass (svcnet agnhost)", process),
    ] {
        println!(
            "| {label} | {:.3} s | {:.1} ms |",
            d.as_secs_f64(),
            d.as_secs_f64() * 1e3 / args.pods as f64
        );
    }
    println!(
        "| ratio | {} | |\n",
        report::ratio(image.as_secs_f64(), process.as_secs_f64(), 2)
    );
    println!(
        "## Memory (PSS) of `svcnet up` and its descendants, by command ({} pods running)\n",
        args.pods
    );
    memory_table(&[
        ("no pods", idle),
        ("image pods", image_pss),
        ("process pods", process_pss),
    ]);
    drop(up);
    Ok(())
}
