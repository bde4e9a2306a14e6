//! The speaker (MetalLB's `speaker/main.go` and its layer-2 controller): reflectors (Services,
//! EndpointSlices, Nodes, the speakers' Leases) wake its loop, and so does a one-second tick
//! (leases expire without any event); each pass recomputes the addresses this node wins
//! ([`crate::plan`]) and adds / removes the difference. A second task renews this node's Lease
//! while its interface is up.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::{Api, Client};
use svcnet_informer::{lease, reflector};
use tokio::sync::Notify;
use tokio_util::task::AbortOnDropHandle;

use crate::announce::{Announcer, IpRange};

/// How a node's speaker runs.
#[derive(Clone, Debug)]
pub struct SpeakerConfig {
    /// This node's name.
    pub node_name: String,
    /// The node's network namespace (None: this process's).
    pub netns: Option<String>,
    /// Where addresses go and ARP is sent (`eth0`).
    pub interface: String,
    /// The LoadBalancer pools: /32s inside them found on the interface at start are stale.
    pub stale_ranges: Vec<IpRange>,
    /// How often the lease is renewed (1 s).
    pub renew_interval: Duration,
    /// How long a renewal is valid (3 s).
    pub lease_duration_seconds: i64,
}

impl SpeakerConfig {
    pub fn new(node_name: &str, netns: Option<String>, interface: &str) -> SpeakerConfig {
        SpeakerConfig {
            node_name: node_name.to_string(),
            netns,
            interface: interface.to_string(),
            stale_ranges: Vec::new(),
            renew_interval: Duration::from_secs(1),
            lease_duration_seconds: 3,
        }
    }
}

/// Is the interface administratively and physically up (`ip -o link show`)?
async fn link_up(netns: Option<&str>, interface: &str) -> bool {
    let mut c = tokio::process::Command::new("ip");
    if let Some(ns) = netns {
        c.args(["-n", ns]);
    }
    c.args(["-o", "link", "show", "dev", interface]);
    let Ok(out) = c.output().await else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 ..."
    text.split(['<', '>'])
        .nth(1)
        .is_some_and(|flags| flags.split(',').any(|f| f == "UP") && flags.contains("LOWER_UP"))
}

/// Renew this node's Lease every `renew_interval` while its interface is up; `up` tells the
/// loop whether it is.
async fn renew(client: Client, cfg: SpeakerConfig, up: Arc<AtomicBool>, wake: Arc<Notify>) {
    let leases: Api<Lease> = Api::namespaced(client, crate::LEASE_NAMESPACE);
    let holder = crate::lease_holder(&cfg.node_name, cfg.lease_duration_seconds);
    let mut tick = tokio::time::interval(cfg.renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u32;
    loop {
        tick.tick().await;
        let is_up = link_up(cfg.netns.as_deref(), &cfg.interface).await;
        if up.swap(is_up, Ordering::SeqCst) != is_up {
            if is_up {
                tracing::info!(node = %cfg.node_name, interface = %cfg.interface, "interface up: renewing the speaker lease");
            } else {
                tracing::warn!(node = %cfg.node_name, interface = %cfg.interface, "interface down: withdrawing addresses, lease not renewed");
            }
            wake.notify_one();
        }
        if !is_up {
            continue;
        }
        match holder.renew(&leases).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                // Said once per run of failures (the API server may be restarting).
                if failures == 10 {
                    tracing::warn!(node = %cfg.node_name, error = %e, "renewing the speaker lease keeps failing");
                } else {
                    tracing::debug!(node = %cfg.node_name, error = %e, "renewing the speaker lease");
                }
            }
        }
    }
}

/// Give up this node's Lease at once (a clean stop), so the other speakers take its addresses
/// over without waiting for it to expire.
pub async fn release(client: Client, node_name: &str) -> Result<(), kube::Error> {
    let leases = Api::<Lease>::namespaced(client, crate::LEASE_NAMESPACE);
    lease::release(&leases, &format!("{}{node_name}", crate::LEASE_PREFIX)).await
}

/// Run the speaker until the task is dropped; every address it added is removed then.
pub async fn run(client: Client, cfg: SpeakerConfig) -> anyhow::Result<()> {
    let wake = Arc::new(Notify::new());
    let all = watcher::Config::default;
    let w = || wake.clone();
    let services =
        reflector::spawn_waking(Api::<Service>::all(client.clone()), all(), w(), "speaker");
    let slices = reflector::spawn_waking(
        Api::<EndpointSlice>::all(client.clone()),
        all(),
        w(),
        "speaker",
    );
    let nodes = reflector::spawn_waking(Api::<Node>::all(client.clone()), all(), w(), "speaker");
    let leases = reflector::spawn_waking(
        Api::<Lease>::namespaced(client.clone(), crate::LEASE_NAMESPACE),
        all().labels(&format!(
            "{}={}",
            crate::LEASE_LABEL.0,
            crate::LEASE_LABEL.1
        )),
        w(),
        "speaker",
    );

    let mut announcer = Announcer::new(cfg.netns.clone(), &cfg.interface);
    announcer.remove_stale(&cfg.stale_ranges);

    let up = Arc::new(AtomicBool::new(
        link_up(cfg.netns.as_deref(), &cfg.interface).await,
    ));
    if !up.load(Ordering::SeqCst) {
        tracing::warn!(
            node = %cfg.node_name,
            interface = %cfg.interface,
            "the interface is not up (or does not exist): not announcing until it is"
        );
    }
    // Stop renewing when this future is dropped (cancellation), like the addresses.
    let _renewer = AbortOnDropHandle::new(tokio::spawn(renew(
        client,
        cfg.clone(),
        up.clone(),
        wake.clone(),
    )));

    services.wait_until_ready().await?;
    slices.wait_until_ready().await?;
    nodes.wait_until_ready().await?;
    leases.wait_until_ready().await?;
    tracing::info!(node = %cfg.node_name, interface = %cfg.interface, "speaker started");

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut owners: BTreeMap<Ipv4Addr, Vec<String>> = BTreeMap::new();
    let mut last_check = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tick.tick() => {}
        }
        if last_check.elapsed() >= Duration::from_secs(5) {
            last_check = std::time::Instant::now();
            announcer.restore_missing();
        }
        let want = if up.load(Ordering::SeqCst) {
            let svcs = services.state();
            let sls = slices.state();
            let ns = nodes.state();
            let ls = leases.state();
            crate::plan(
                &cfg.node_name,
                &svcs.iter().map(|s| &**s).collect::<Vec<_>>(),
                &sls.iter().map(|s| &**s).collect::<Vec<_>>(),
                &ns.iter().map(|n| &**n).collect::<Vec<_>>(),
                &ls.iter().map(|l| &**l).collect::<Vec<_>>(),
                jiff::Timestamp::now(),
            )
        } else {
            BTreeMap::new()
        };
        let gone: Vec<Ipv4Addr> = announcer
            .announced()
            .iter()
            .filter(|ip| !want.contains_key(ip))
            .copied()
            .collect();
        for ip in gone {
            let svcs = owners.remove(&ip).unwrap_or_default().join(", ");
            match announcer.remove(ip) {
                Ok(()) => tracing::info!(node = %cfg.node_name, "withdrawing {ip} for {svcs}"),
                Err(e) => tracing::warn!(node = %cfg.node_name, error = %e, "withdrawing {ip}"),
            }
        }
        for (ip, svcs) in want {
            if !announcer.announced().contains(&ip) {
                match announcer.add(ip) {
                    Ok(()) => tracing::info!(
                        node = %cfg.node_name,
                        "announcing {ip} for {}",
                        svcs.join(", ")
                    ),
                    Err(e) => tracing::warn!(node = %cfg.node_name, error = %e, "announcing {ip}"),
                }
            }
            owners.insert(ip, svcs);
        }
    }
}
