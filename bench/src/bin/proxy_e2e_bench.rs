//! Proxy end-to-end benchmark (issue 5 (c) and (d)): the real `svcnet proxy` (nftables, in a
//! scratch namespace) against the real API server in this process — an EndpointSlice change to
//! the rule in the kernel against a plain watcher seeing it, and the proxy's peak memory with
//! 10k Services against 1. Needs root. Details: bench/README.md.
//!
//! `cargo build --release -p svcnet -p svcnet-bench && ./target/release/proxy-e2e-bench [--changes 200] [--services 10000]`

use std::net::Ipv4Addr;
use std::ops::ControlFlow;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use svcnet_bench::cluster::{svcnet_exe, ApiServer};
use svcnet_bench::proc::Proc;
use svcnet_bench::report::{self, percentile};
use svcnet_bench::state::nth;
use svcnet_cluster::ports;
use svcnet_netns::testing::ScratchNetns;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200)]
    changes: usize,
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
}

fn ruleset(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "list", "table", "ip", "svcnet"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// How many full syncs the proxy in `ns` has done (its `/metrics`).
fn full_syncs(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-s",
            &format!("http://127.0.0.1:{}/metrics", ports::PROXY_METRICS),
        ])
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("kubeproxy_sync_full_proxy_rules_duration_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn svc(name: &str, ip: &str) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .expect("service")
}

fn slice(name: &str, svc: &str, ips: &[String]) -> EndpointSlice {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": ips.iter().map(|ip| serde_json::json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
    }))
    .expect("slice")
}

fn ms(d: Duration) -> String {
    report::ms(d, 1)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    svcnet_netns::check_privileges().map_err(anyhow::Error::msg)?;
    report::header();
    let api = ApiServer::start(None).await?;
    let client = api.client.clone();
    let ns = ScratchNetns::new("pe")?;
    let ns_name = ns.name().to_string();
    ns.ip_batch("link set lo up\naddr add 198.51.100.1/32 dev lo\n")?;
    let exe = svcnet_exe()?;
    let metrics = format!("127.0.0.1:{}", ports::PROXY_METRICS);
    let spawn_proxy = || {
        Proc::spawn(
            Command::new(&exe)
                .args([
                    "proxy",
                    "--hostname-override",
                    "n1",
                    "--node-ip",
                    "198.51.100.1",
                    "--netns",
                    &ns_name,
                    "--metrics-bind-address",
                    &metrics,
                    // Full syncs every 30 s (default: hourly), so that (d) sees one.
                    "--full-sync-period",
                    "30",
                    "--kubeconfig",
                ])
                .arg(api.kubeconfig())
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
    };
    let mut proxy = spawn_proxy()?;
    let result = async {
        let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        svcs.create(&PostParams::default(), &svc("prop", "10.96.100.1")).await?;
        slices.create(&PostParams::default(), &slice("prop-1", "prop", &["10.128.0.1".into()])).await?;
        let t = Instant::now();
        while !ruleset(&ns_name).contains("10.128.0.1") {
            anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "the proxy never programmed the first endpoint");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let small_rss = proxy.peak_rss_mib();

        // (c): change the endpoint's address; time until the kernel has the new one.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, String)>();
        let cfg = watcher::Config::default().labels("kubernetes.io/service-name=prop");
        svcnet_informer::watch::spawn(slices.clone(), cfg, move |ev| {
            if let Ok(Event::Apply(o)) = ev {
                if let Some(ip) = o.endpoints.first().and_then(|e| e.addresses.first()) {
                    let _ = tx.send((Instant::now(), ip.clone()));
                }
            }
            ControlFlow::Continue(())
        });
        let mut kernel = Vec::new();
        let mut watch = Vec::new();
        for i in 0..a.changes {
            let ip = format!("10.129.{}.{}", i / 250, i % 250 + 1);
            let p = serde_json::json!({"endpoints": [{"addresses": [ip], "conditions": {"ready": true}}]});
            let t0 = Instant::now();
            slices.patch("prop-1", &PatchParams::default(), &Patch::Merge(p)).await?;
            let seen = loop {
                let (t, got) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await?.ok_or_else(|| anyhow::anyhow!("watch ended"))?;
                if got == ip {
                    break t;
                }
            };
            watch.push(seen - t0);
            loop {
                if ruleset(&ns_name).contains(&ip) {
                    kernel.push(t0.elapsed());
                    break;
                }
                anyhow::ensure!(t0.elapsed() < Duration::from_secs(10), "{ip} never reached the kernel");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        kernel.sort();
        watch.sort();
        println!("## Proxy: API change → rule in the kernel ({} changes, nftables, 1 Service)\n", a.changes);
        println!("| percentile | endpoint in the kernel's ruleset | reference: the change seen by an API watcher | ratio |");
        println!("|---|---|---|---|");
        for (l, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
            let (k, w) = (percentile(&kernel, p), percentile(&watch, p));
            println!("| {l} | {} | {} | {} |", ms(k), ms(w), report::ratio(k.as_secs_f64(), w.as_secs_f64(), 1));
        }

        // (d): many Services; the proxy's memory once all are programmed.
        if a.services > 0 {
            let start = Instant::now();
            futures::stream::iter(0..a.services)
                .map(|i| {
                    let (svcs, slices) = (svcs.clone(), slices.clone());
                    let n = a.endpoints;
                    async move {
                        let vip = nth(Ipv4Addr::new(10, 97, 0, 10), i);
                        svcs.create(&PostParams::default(), &svc(&format!("s-{i}"), &vip.to_string())).await?;
                        let ips: Vec<String> = (0..n)
                            .map(|e| nth(Ipv4Addr::new(10, 130, 0, 0), i * n + e).to_string())
                            .collect();
                        slices.create(&PostParams::default(), &slice(&format!("s-{i}-1"), &format!("s-{i}"), &ips)).await?;
                        Ok::<_, kube::Error>(())
                    }
                })
                .buffer_unordered(16)
                .try_collect::<Vec<_>>()
                .await?;
            let written = start.elapsed();
            let last_vip = nth(Ipv4Addr::new(10, 97, 0, 10), a.services - 1);
            let needle = format!("{last_vip} . tcp . 80");
            while !ruleset(&ns_name).contains(&needle) {
                anyhow::ensure!(start.elapsed() < Duration::from_secs(900), "not programmed after 15 min");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let loaded = start.elapsed();
            let incremental_rss = proxy.peak_rss_mib();
            // The periodic full sync (every 30 s here) of the whole table is part of the peak.
            let n0 = full_syncs(&ns_name);
            let t = Instant::now();
            while full_syncs(&ns_name) <= n0 {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "no full sync within 120 s");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let resync_rss = proxy.peak_rss_mib();
            // A proxy restarted against the 10k objects: initial list, then a full sync of all.
            proxy.stop();
            proxy = spawn_proxy()?;
            let t = Instant::now();
            while full_syncs(&ns_name) < 1 {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(300), "the restarted proxy never synced");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let restart_took = t.elapsed();
            let restart_rss = proxy.peak_rss_mib();
            println!("\n## Proxy memory: {} Services × {} endpoints\n", a.services, a.endpoints);
            println!("(API writes took {:.1} s; everything was in the kernel after {:.1} s; the restarted proxy's first full sync ended {:.1} s after its start.)\n", written.as_secs_f64(), loaded.as_secs_f64(), restart_took.as_secs_f64());
            println!("| `svcnet proxy` peak RSS (VmHWM) | with {} × {} | reference: with 1 Service | ratio |", a.services, a.endpoints);
            println!("|---|---|---|---|");
            for (what, rss) in [
                ("after the Services arrived one by one (partial syncs)", incremental_rss),
                ("after a periodic full sync of them all", resync_rss),
                ("a proxy restarted against them (list + full sync)", restart_rss),
            ] {
                println!("| {what} | {rss:.0} MiB | {small_rss:.0} MiB | {} |", report::ratio(rss, small_rss, 1));
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    drop(proxy);
    drop(ns);
    result
}
