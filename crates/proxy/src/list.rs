//! `svcnet proxy --list`: a node's Services as kube-proxy's IPVS mode programs them, printed as
//! `ipvsadm -Ln` does (ClusterIPs, external IPs, load-balancer IPs, and NodePorts on each of the
//! node's addresses), with each real server's live connections from the node's conntrack table
//! — in any proxy mode. Like kube-proxy it needs no flag on a node: the node's name is the
//! hostname (`GetHostname`), its addresses the Node object's (`GetNodeHostIPs`) plus, as IPVS
//! mode's NodePorts with `--nodeport-addresses` unset, every address of the node's interfaces.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::conntrack;
use crate::ipvs::{self, Connections};
use crate::model::{self, NodeInfo};

/// Why `--list` printed nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// kube-proxy's message when `os.Hostname()` fails.
    #[error("couldn't determine hostname: {0}")]
    HostnameUnknown(std::io::Error),
    /// kube-proxy's message for a blank hostname.
    #[error("empty hostname is invalid")]
    HostnameEmpty,
    #[error("listing {what}: {error}")]
    ListFailed {
        what: &'static str,
        error: kube::Error,
    },
}

/// What `svcnet proxy --list` was given.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// The node's network namespace (None: this process's), whose addresses and conntrack table
    /// are read.
    pub netns: Option<String>,
    /// `--hostname-override` (None: the hostname).
    pub hostname_override: Option<String>,
    /// `--node-ip` (empty: the Node object's addresses).
    pub node_ips: Vec<IpAddr>,
    pub scheduler: ipvs::Scheduler,
}

/// The node's name as kube-proxy's `GetHostname` makes it: the override, else the hostname of
/// this process's UTS namespace, trimmed and lowercased.
pub fn hostname(hostname_override: Option<&str>) -> Result<String, Error> {
    let name = match hostname_override.filter(|h| !h.is_empty()) {
        Some(h) => h.to_string(),
        None => {
            std::fs::read_to_string("/proc/sys/kernel/hostname").map_err(Error::HostnameUnknown)?
        }
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::HostnameEmpty);
    }
    Ok(name.to_lowercase())
}

/// The Node's addresses as kube-proxy's `GetNodeHostIPs` picks them: its InternalIPs, else its
/// ExternalIPs.
pub fn node_addresses(node: &Node) -> Vec<IpAddr> {
    let addrs = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    for kind in ["InternalIP", "ExternalIP"] {
        let ips: Vec<IpAddr> = addrs
            .iter()
            .filter(|a| a.type_ == kind)
            .filter_map(|a| a.address.parse().ok())
            .collect();
        if !ips.is_empty() {
            return ips;
        }
    }
    Vec::new()
}

/// The global addresses of `netns`'s interfaces (`ip -j addr`), but those on IPVS mode's dummy
/// interface.
fn local_addresses(netns: Option<&str>) -> Result<Vec<IpAddr>, String> {
    let argv = ["ip", "-j", "addr", "show"];
    let out = match netns {
        Some(ns) => svcnet_netns::NetNs::open(ns)
            .and_then(|ns| ns.exec(&argv))
            .map_err(|e| e.to_string())?,
        None => std::process::Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .map_err(|e| format!("running ip: {e}"))?,
    };
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(parse_addresses(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_addresses(json: &str) -> Vec<IpAddr> {
    let links: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    links
        .iter()
        .filter(|l| l["ifname"] != ipvs::DUMMY_INTERFACE)
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] == "global")
        .filter_map(|a| a["local"].as_str()?.parse().ok())
        .collect()
}

/// The `ipvsadm -Ln` listing for this node (see the module doc). What cannot be read — the Node,
/// the interfaces, conntrack — is warned about and left out, as the listing is still useful.
pub async fn list(client: Client, o: &ListOptions) -> Result<String, Error> {
    let name = hostname(o.hostname_override.as_deref())?;
    let lp = ListParams::default();
    let failed = |what| move |error| Error::ListFailed { what, error };
    let svcs = Api::<Service>::all(client.clone())
        .list(&lp)
        .await
        .map_err(failed("services"))?
        .items;
    let slices = Api::<EndpointSlice>::all(client.clone())
        .list(&lp)
        .await
        .map_err(failed("endpointslices"))?
        .items;
    let node = match Api::<Node>::all(client).get_opt(&name).await {
        Ok(None) => {
            tracing::warn!(node = %name, "no Node of this name: NodePorts only on this host's addresses (--hostname-override, --node-ip)");
            None
        }
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(node = %name, error = %e, "failed to retrieve node info");
            None
        }
    };
    let state = model::build(
        &svcs.iter().collect::<Vec<_>>(),
        &slices.iter().collect::<Vec<_>>(),
    );
    let mut node_ips: Vec<IpAddr> = if o.node_ips.is_empty() {
        node.as_ref().map(node_addresses).unwrap_or_default()
    } else {
        o.node_ips.clone()
    };
    // The Service addresses IPVS mode binds to kube-ipvs0 are no node addresses.
    let vips: BTreeSet<IpAddr> = state
        .services
        .values()
        .flat_map(|sp| {
            sp.cluster_ips
                .iter()
                .chain(&sp.external_ips)
                .chain(&sp.load_balancer_ips)
        })
        .copied()
        .collect();
    match local_addresses(o.netns.as_deref()) {
        Ok(local) => {
            for ip in local {
                if !vips.contains(&ip) && !node_ips.contains(&ip) {
                    node_ips.push(ip);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing the node's addresses"),
    }
    let zone = node.as_ref().and_then(|n| {
        n.metadata
            .labels
            .as_ref()?
            .get("topology.kubernetes.io/zone")
            .cloned()
    });
    let conns = match conntrack::list(o.netns.as_deref()) {
        Ok(entries) => Connections::from_conntrack(&entries),
        Err(e) => {
            tracing::warn!(error = %e, "no connection counts (ActiveConn, InActConn)");
            Connections::default()
        }
    };
    let info = NodeInfo {
        name,
        node_ips,
        zone,
    };
    Ok(ipvs::list(&state, &info, o.scheduler.name(), &conns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_as_kube_proxy_takes_it() {
        assert_eq!(hostname(Some(" Node-1\n")).unwrap(), "node-1");
        assert!(matches!(hostname(Some("  ")), Err(Error::HostnameEmpty)));
        let own = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(None).unwrap(), own.trim().to_lowercase());
        assert_eq!(hostname(Some("")).unwrap(), own.trim().to_lowercase());
    }

    #[test]
    fn node_addresses_internal_first() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "node-1"},
            "status": {"addresses": [
                {"type": "Hostname", "address": "node-1"},
                {"type": "ExternalIP", "address": "203.0.113.7"},
                {"type": "InternalIP", "address": "172.28.0.11"},
            ]}
        }))
        .unwrap();
        assert_eq!(
            node_addresses(&node),
            ["172.28.0.11".parse::<IpAddr>().unwrap()]
        );
        let external: Node = serde_json::from_value(serde_json::json!({
            "status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.7"}]}
        }))
        .unwrap();
        assert_eq!(
            node_addresses(&external),
            ["203.0.113.7".parse::<IpAddr>().unwrap()]
        );
        assert!(node_addresses(&Node::default()).is_empty());
    }

    #[test]
    fn global_addresses_but_the_dummy_interface() {
        let json = r#"[
            {"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","scope":"host"}]},
            {"ifname":"eth0","addr_info":[
                {"family":"inet","local":"172.28.0.11","prefixlen":24,"scope":"global"},
                {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]},
            {"ifname":"kube-ipvs0","addr_info":[{"family":"inet","local":"10.96.0.1","scope":"global"}]}
        ]"#;
        assert_eq!(
            parse_addresses(json),
            ["172.28.0.11".parse::<IpAddr>().unwrap()]
        );
    }
}
