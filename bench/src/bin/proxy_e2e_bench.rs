//! Proxy end-to-end benchmark (issue 5 (c) and (d)), with the real `svcnet proxy` process
//! (nftables mode, in a scratch network namespace) against the real API server (in this
//! process):
//!
//! (c) an EndpointSlice change written to the API → the new endpoint in the kernel's ruleset,
//!     p50/p99 over `--changes` changes. Reference, same run: the same change seen by a plain
//!     watcher of the API (the floor for anything downstream of the API).
//! (d) the proxy's peak memory with `--services` Services × `--endpoints` endpoints programmed.
//!     Reference, same run: its peak memory with the 1 Service of part (c).
//!
//! Needs root; creates and deletes `svcnet-pe-<pid>` only.
//!
//! `cargo build --release -p svcnet -p svcnet-bench && ./target/release/proxy-e2e-bench [--changes 200] [--services 10000]`

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, watcher, Event};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200)]
    changes: usize,
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
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
            "http://127.0.0.1:10249/metrics",
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    svcnet_netns::check_privileges().map_err(anyhow::Error::msg)?;
    let dir = tempfile::tempdir()?;
    let mut config = svcnet_apiserver::Config::new(dir.path().to_path_buf());
    config.secure_port = 0;
    let server = svcnet_apiserver::Server::start(config).await?;
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig_path)?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?;
    let ns_name = format!("svcnet-pe-{}", std::process::id());
    let ns = svcnet_netns::NetNs::create(&ns_name)?;
    ns.ip_batch("link set lo up\naddr add 198.51.100.1/32 dev lo\n")?;
    let exe = std::env::current_exe()?.with_file_name("svcnet");
    anyhow::ensure!(
        exe.exists(),
        "build svcnet first: cargo build --release -p svcnet"
    );
    let spawn_proxy = || -> std::io::Result<Proc> {
        Ok(Proc(
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
                    "127.0.0.1:10249",
                    // Full syncs every 30 s (default: hourly), so that (d) sees one.
                    "--full-sync-period",
                    "30",
                    "--kubeconfig",
                ])
                .arg(&server.kubeconfig_path)
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()?,
        ))
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
        let small_rss = peak_rss_mib(proxy.0.id());

        // (c): change the endpoint's address; time until the kernel has the new one.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, String)>();
        let wapi = slices.clone();
        tokio::spawn(async move {
            let mut s = Box::pin(watcher(wapi, watcher::Config::default().labels("kubernetes.io/service-name=prop")));
            while let Ok(Some(ev)) = s.try_next().await {
                if let Event::Apply(o) = ev {
                    if let Some(ip) = o.endpoints.first().and_then(|e| e.addresses.first()) {
                        let _ = tx.send((Instant::now(), ip.clone()));
                    }
                }
            }
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
            println!("| {l} | {} | {} | {:.1}x |", ms(k), ms(w), k.as_secs_f64() / w.as_secs_f64().max(1e-9));
        }

        // (d): many Services; the proxy's memory once all are programmed.
        if a.services > 0 {
            let start = Instant::now();
            futures::stream::iter(0..a.services)
                .map(|i| {
                    let (svcs, slices) = (svcs.clone(), slices.clone());
                    let n = a.endpoints;
                    async move {
                        let vip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 97, 0, 10)) + i as u32);
                        svcs.create(&PostParams::default(), &svc(&format!("s-{i}"), &vip.to_string())).await?;
                        let ips: Vec<String> = (0..n)
                            .map(|e| std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 130, 0, 0)) + (i * n + e) as u32).to_string())
                            .collect();
                        slices.create(&PostParams::default(), &slice(&format!("s-{i}-1"), &format!("s-{i}"), &ips)).await?;
                        Ok::<_, kube::Error>(())
                    }
                })
                .buffer_unordered(16)
                .try_collect::<Vec<_>>()
                .await?;
            let written = start.elapsed();
            let last_vip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 97, 0, 10)) + (a.services - 1) as u32);
            let needle = format!("{last_vip} . tcp . 80");
            while !ruleset(&ns_name).contains(&needle) {
                anyhow::ensure!(start.elapsed() < Duration::from_secs(900), "not programmed after 15 min");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let loaded = start.elapsed();
            let incremental_rss = peak_rss_mib(proxy.0.id());
            // The periodic full sync (every 30 s here) of the whole table is part of the peak.
            let n0 = full_syncs(&ns_name);
            let t = Instant::now();
            while full_syncs(&ns_name) <= n0 {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "no full sync within 120 s");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let resync_rss = peak_rss_mib(proxy.0.id());
            // A proxy restarted against the 10k objects: initial list, then a full sync of all.
            let _ = proxy.0.kill();
            let _ = proxy.0.wait();
            proxy = spawn_proxy()?;
            let t = Instant::now();
            while full_syncs(&ns_name) < 1 {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(300), "the restarted proxy never synced");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let restart_took = t.elapsed();
            let restart_rss = peak_rss_mib(proxy.0.id());
            println!("\n## Proxy memory: {} Services × {} endpoints\n", a.services, a.endpoints);
            println!("(API writes took {:.1} s; everything was in the kernel after {:.1} s; the restarted proxy's first full sync ended {:.1} s after its start.)\n", written.as_secs_f64(), loaded.as_secs_f64(), restart_took.as_secs_f64());
            println!("| `svcnet proxy` peak RSS (VmHWM) | with {} × {} | reference: with 1 Service | ratio |", a.services, a.endpoints);
            println!("|---|---|---|---|");
            for (what, rss) in [
                ("after the Services arrived one by one (partial syncs)", incremental_rss),
                ("after a periodic full sync of them all", resync_rss),
                ("a proxy restarted against them (list + full sync)", restart_rss),
            ] {
                println!("| {what} | {rss:.0} MiB | {small_rss:.0} MiB | {:.1}x |", rss / small_rss.max(1e-9));
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    drop(proxy);
    let _ = svcnet_netns::NetNs::delete(&ns_name);
    result
}

use futures::StreamExt;
