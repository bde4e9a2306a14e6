//! The node's own object: registration (addresses, capacity, kubelet endpoint, node info),
//! the heartbeat that keeps `Ready` fresh, and routes to the other nodes' pod CIDRs (what a
//! host-gateway CNI does), so pods on every node reach each other.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::AgentConfig;

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn uname(field: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/kernel/{field}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The status the agent posts: conditions, addresses, capacity, endpoint, node info.
pub fn status(cfg: &AgentConfig, ready: bool) -> serde_json::Value {
    let t = now();
    let cond = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let capacity = json!({"cpu": cpus.to_string(), "memory": format!("{mem_kib}Ki"), "pods": "110", "ephemeral-storage": "0"});
    json!({
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            if ready {
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
            } else {
                cond("Ready", "False", "KubeletNotReady", "waiting for a pod CIDR")
            },
        ],
        "addresses": [
            {"type": "InternalIP", "address": cfg.node_ip.to_string()},
            {"type": "Hostname", "address": cfg.node_name},
        ],
        "capacity": capacity,
        "allocatable": capacity,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.kubelet_port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": uname("osrelease"),
            "osImage": "svcnet node (Linux network namespace)",
            "containerRuntimeVersion": "svcnet://0.1.0",
            "kubeletVersion": "v1.32.0-svcnet",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        },
    })
}

/// Create the Node if it does not exist (labels as the kubelet sets them).
pub async fn register(client: &Client, cfg: &AgentConfig) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    if api.get_opt(&cfg.node_name).await?.is_none() {
        let mut labels: BTreeMap<String, String> = [
            ("kubernetes.io/hostname".to_string(), cfg.node_name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            (
                "kubernetes.io/arch".to_string(),
                std::env::consts::ARCH
                    .replace("x86_64", "amd64")
                    .replace("aarch64", "arm64"),
            ),
        ]
        .into();
        labels.extend(cfg.labels.clone());
        let mut spec = json!({});
        if let Some(c) = cfg.pod_cidr {
            spec = json!({"podCIDR": c.to_string(), "podCIDRs": [c.to_string()]});
        }
        let node: Node = serde_json::from_value(
            json!({"metadata": {"name": cfg.node_name, "labels": labels}, "spec": spec}),
        )?;
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub async fn post_status(
    client: &Client,
    cfg: &AgentConfig,
    ready: bool,
) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    api.patch_status(
        &cfg.node_name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status(cfg, ready)})),
    )
    .await
    .map(|_| ())
}

/// Wait for the node's pod CIDR (given, or set by the node IPAM controller).
pub async fn wait_for_pod_cidr(client: &Client, cfg: &AgentConfig) -> anyhow::Result<Ipv4Net> {
    if let Some(c) = cfg.pod_cidr {
        return Ok(c);
    }
    let api: Api<Node> = Api::all(client.clone());
    loop {
        if let Some(n) = api.get_opt(&cfg.node_name).await? {
            if let Some(c) = n.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
                return Ok(c.parse()?);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How often [`sync_routes`] puts back routes that went away without a Node change (a link
/// that goes down takes every route through it, and coming back up restores none).
const ROUTE_CHECK: Duration = Duration::from_secs(5);

/// Keep a route to every other node's pod CIDR via that node's InternalIP, and the routes
/// `keep` (`ip route` arguments, e.g. `10.96.0.0/12 dev eth0`), in `netns` (the node's
/// namespace, or the control plane's when it runs this for itself).
pub async fn sync_routes(
    client: Client,
    netns: Option<String>,
    own: Option<String>,
    keep: Vec<String>,
) {
    let api: Api<Node> = Api::all(client);
    let mut installed: BTreeMap<String, (Ipv4Net, Ipv4Addr)> = BTreeMap::new();
    let mut nodes: BTreeMap<String, (Ipv4Net, Ipv4Addr)> = BTreeMap::new();
    let mut stream = Box::pin(watcher(api, watcher::Config::default()));
    let mut check = tokio::time::interval(ROUTE_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            next = stream.try_next() => next,
            _ = check.tick() => {
                // Every wanted route again (`replace` leaves one that is there as it is).
                let mut cmds: String = keep.iter().map(|r| format!("route replace {r}\n")).collect();
                for (name, (cidr, ip)) in &installed {
                    if Some(name) != own.as_ref() {
                        cmds.push_str(&format!("route replace {cidr} via {ip}\n"));
                    }
                }
                run_routes(netns.as_deref(), &cmds);
                continue;
            }
        };
        let ev = match next {
            Ok(Some(ev)) => ev,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "node watch for routes");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let apply = |n: &Node, nodes: &mut BTreeMap<String, (Ipv4Net, Ipv4Addr)>| {
            let cidr = n
                .spec
                .as_ref()
                .and_then(|s| s.pod_cidr.as_deref())
                .and_then(|c| c.parse().ok());
            let ip = n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                .and_then(|a| a.address.parse().ok());
            match (cidr, ip) {
                (Some(c), Some(i)) => {
                    nodes.insert(n.name_any(), (c, i));
                }
                _ => {
                    nodes.remove(&n.name_any());
                }
            }
        };
        let settled = match ev {
            Event::Apply(n) => {
                apply(&n, &mut nodes);
                true
            }
            Event::Delete(n) => {
                nodes.remove(&n.name_any());
                true
            }
            Event::Init => {
                nodes.clear();
                false
            }
            Event::InitApply(n) => {
                apply(&n, &mut nodes);
                false
            }
            Event::InitDone => true,
        };
        if !settled {
            continue;
        }
        let mut cmds = String::new();
        for (name, (cidr, _)) in &installed {
            if Some(name) != own.as_ref() && nodes.get(name).map(|v| v.0) != Some(*cidr) {
                cmds.push_str(&format!("route del {cidr}\n"));
            }
        }
        for (name, (cidr, ip)) in &nodes {
            if Some(name) != own.as_ref() && installed.get(name) != Some(&(*cidr, *ip)) {
                cmds.push_str(&format!("route replace {cidr} via {ip}\n"));
            }
        }
        run_routes(netns.as_deref(), &cmds);
        installed = nodes.clone();
    }
}

/// Run the `ip` commands `cmds` in `netns`, one by one when the batch fails (`route del` of a
/// route already gone, or a gateway not reachable while a link is down, fails a whole batch).
fn run_routes(netns: Option<&str>, cmds: &str) {
    if cmds.is_empty() || svcnet_netns::ip_batch(netns, cmds).is_ok() {
        return;
    }
    for line in cmds.lines() {
        if let Err(e) = svcnet_netns::ip_batch(netns, line) {
            tracing::debug!(error = %e, line, "route");
        }
    }
}
