//! Controllers benchmark (issue 3): pod readiness → EndpointSlice propagation (p50/p99) against
//! the pod's own watch event, and the controller-manager's CPU time and peak memory for
//! `--services` × `--pods` against one running informers only; the real API server in this
//! process, the real `svcnet controller-manager` as a child. Details: bench/README.md.
//!
//! `cargo build --release -p svcnet -p svcnet-bench && ./target/release/controllers-bench
//!  [--changes 300] [--services 1000] [--pods 100]`

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use svcnet_bench::cluster::{svcnet_exe, ApiServer};
use svcnet_bench::proc::Proc;
use svcnet_bench::report::{self, percentile};
use svcnet_informer::watch::Watched;
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// Readiness flips timed in the propagation part.
    #[arg(long, default_value_t = 300)]
    changes: usize,
    /// Pods behind the Service of the propagation part.
    #[arg(long, default_value_t = 50)]
    prop_pods: usize,
    /// Services in the scale part (0 skips it).
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Pods per Service in the scale part.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

fn controller_manager(kubeconfig: &std::path::Path, controllers: &str) -> anyhow::Result<Proc> {
    Ok(Proc::spawn(
        Command::new(svcnet_exe()?)
            .args(["controller-manager", "--kubeconfig"])
            .arg(kubeconfig)
            .arg(format!("--controllers={controllers}"))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )?)
}

fn ms(d: Duration) -> String {
    report::ms(d, 2)
}

fn ip(k: usize) -> String {
    format!("10.{}.{}.{}", 100 + k / 65536, (k / 256) % 256, k % 256)
}

fn pod(ns: &str, name: &str, app: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "agnhost", "ports": [{"name": "http", "containerPort": 8080}]}]}
    }))
    .expect("pod")
}

fn status(ip: &str, ready: bool) -> serde_json::Value {
    let st = if ready { "True" } else { "False" };
    serde_json::json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": st}, {"type": "ContainersReady", "status": st}]
    }})
}

async fn set_status(api: &Api<Pod>, name: &str, ip: &str, ready: bool) -> anyhow::Result<()> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(status(ip, ready)),
    )
    .await?;
    Ok(())
}

fn svc(ns: &str, name: &str, app: &str) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": "http"}]}
    }))
    .expect("service")
}

/// Readiness by IP from a slice.
fn slice_ready(s: &EndpointSlice) -> HashMap<String, bool> {
    s.endpoints
        .iter()
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready) == Some(true),
            )
        })
        .collect()
}

fn pod_ready(p: &Pod) -> Option<(String, bool)> {
    let st = p.status.as_ref()?;
    let ready = st
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    Some((st.pod_ip.clone()?, ready))
}

/// Forward what a watcher sees, stamped on arrival.
fn spawn_watch<K, F, T>(
    api: Api<K>,
    cfg: watcher::Config,
    extract: F,
) -> mpsc::UnboundedReceiver<(Instant, T)>
where
    K: Watched,
    F: Fn(&K) -> Vec<T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    svcnet_informer::watch::spawn(api, cfg, move |ev| {
        if let Ok(Event::Apply(o) | Event::InitApply(o)) = ev {
            let now = Instant::now();
            for t in extract(&o) {
                if tx.send((now, t)).is_err() {
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    rx
}

async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<(Instant, (String, bool))>,
    ip: &str,
    ready: bool,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((t, (i, r)))) if i == ip && r == ready => return Ok(t),
            Ok(Some(_)) => continue,
            _ => anyhow::bail!("no event for {ip} ready={ready} within 10 s"),
        }
    }
}

async fn propagation(client: &kube::Client, args: &Args) -> anyhow::Result<()> {
    let ns = "default";
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &svc(ns, "prop", "prop"))
        .await?;
    for i in 0..args.prop_pods {
        let name = format!("prop-{i}");
        pods.create(&PostParams::default(), &pod(ns, &name, "prop"))
            .await?;
        set_status(&pods, &name, &ip(i), true).await?;
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let cfg = watcher::Config::default().labels("kubernetes.io/service-name=prop");
    let mut slice_rx = spawn_watch(slices, cfg, |s: &EndpointSlice| {
        slice_ready(s).into_iter().collect()
    });
    let mut pod_rx = spawn_watch(
        pods.clone(),
        watcher::Config::default().labels("app=prop"),
        |p: &Pod| pod_ready(p).into_iter().collect(),
    );
    // Settle: every pod ready in the slice.
    let start = Instant::now();
    let mut seen: HashMap<String, bool> = HashMap::new();
    while seen.values().filter(|r| **r).count() < args.prop_pods {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "slice never listed all pods"
        );
        if let Some((_, (ip, r))) = slice_rx.recv().await {
            seen.insert(ip, r);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    while slice_rx.try_recv().is_ok() {}
    while pod_rx.try_recv().is_ok() {}

    let mut slice_lat = Vec::new();
    let mut pod_lat = Vec::new();
    let mut ready: Vec<bool> = vec![true; args.prop_pods];
    for c in 0..args.changes {
        let i = c % args.prop_pods;
        ready[i] = !ready[i];
        let (name, addr) = (format!("prop-{i}"), ip(i));
        let t0 = Instant::now();
        set_status(&pods, &name, &addr, ready[i]).await?;
        let tp = wait_for(&mut pod_rx, &addr, ready[i]).await?;
        let ts = wait_for(&mut slice_rx, &addr, ready[i]).await?;
        pod_lat.push(tp - t0);
        slice_lat.push(ts - t0);
    }
    slice_lat.sort();
    pod_lat.sort();
    println!(
        "## Propagation: pod readiness → EndpointSlice, {} changes, {} pods behind the Service\n",
        args.changes, args.prop_pods
    );
    println!(
        "| percentile | EndpointSlice update seen | reference: the pod's own watch event | ratio |"
    );
    println!("|---|---|---|---|");
    for (label, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        let (a, b) = (percentile(&slice_lat, p), percentile(&pod_lat, p));
        println!(
            "| {label} | {} | {} | {} |",
            ms(a),
            ms(b),
            report::ratio(a.as_secs_f64(), b.as_secs_f64(), 1)
        );
    }
    println!();
    Ok(())
}

async fn scale(
    client: &kube::Client,
    kubeconfig: &std::path::Path,
    args: &Args,
) -> anyhow::Result<()> {
    let ns = "scale";
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let full = controller_manager(kubeconfig, "endpointslice,endpoints")?;
    let bare = controller_manager(kubeconfig, "none")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu0_full, _) = full.usage();
    let (cpu0_bare, _) = bare.usage();
    let start = Instant::now();
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(0..args.services)
        .map(|s| {
            let svcs = svcs.clone();
            async move {
                svcs.create(
                    &PostParams::default(),
                    &svc(ns, &format!("s-{s}"), &format!("s-{s}")),
                )
                .await
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let total = args.services * args.pods;
    let pods = Arc::new(pods);
    futures::stream::iter(0..total)
        .map(|k| {
            let pods = pods.clone();
            async move {
                let (s, i) = (k / args.pods, k % args.pods);
                let name = format!("s-{s}-{i}");
                pods.create(&PostParams::default(), &pod(ns, &name, &format!("s-{s}")))
                    .await?;
                set_status(&pods, &name, &ip(k + 1000), true).await
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let written = start.elapsed();
    // Converged when every Service's slices and Endpoints list all its pods as ready.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    loop {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(1800),
            "did not converge in 30 min"
        );
        let mut ready: HashMap<String, usize> = HashMap::new();
        for s in slices.list(&ListParams::default()).await?.items {
            let svc = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .cloned()
                .unwrap_or_default();
            *ready.entry(svc).or_default() += slice_ready(&s).values().filter(|r| **r).count();
        }
        let slices_done = ready.len() == args.services && ready.values().all(|n| *n == args.pods);
        let eps_done = slices_done
            && eps
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|e| {
                    e.subsets
                        .iter()
                        .flatten()
                        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
                        .sum::<usize>()
                        == args.pods
                })
                .count()
                == args.services;
        if eps_done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let converged = start.elapsed();
    let (cpu_full, rss_full) = full.usage();
    let (cpu_bare, rss_bare) = bare.usage();
    let (cf, cb) = (cpu_full - cpu0_full, cpu_bare - cpu0_bare);
    println!(
        "## Scale: {} Services × {} pods = {total} pods (namespace `{ns}`)\n",
        args.services, args.pods
    );
    println!("Writes (Services, pods, pod statuses) took {:.1} s; every Service's slices and Endpoints complete after {:.1} s.\n", written.as_secs_f64(), converged.as_secs_f64());
    println!("| controller-manager | CPU time (user+sys) | peak RSS |");
    println!("|---|---|---|");
    println!("| `--controllers=endpointslice,endpoints` | {cf:.2} s | {rss_full:.0} MiB |");
    println!(
        "| reference: `--controllers=none` (informers only) | {cb:.2} s | {rss_bare:.0} MiB |"
    );
    println!(
        "| ratio | {} | {} |\n",
        report::ratio(cf, cb, 2),
        report::ratio(rss_full, rss_bare, 2)
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    report::header();
    let api = ApiServer::start(None).await?;
    {
        let _cm = controller_manager(api.kubeconfig(), "endpointslice,endpoints")?;
        propagation(&api.client, &args).await?;
    }
    if args.services > 0 {
        scale(&api.client, api.kubeconfig(), &args).await?;
    }
    Ok(())
}
