//! A whole proxy for one node (kube-proxy's `ProxyServer`, cmd/kube-proxy/app/server.go): the
//! mode's proxier chosen from [`Options`], behind the sync loop ([`crate::syncer`]), the metrics
//! and health endpoints, and the health-check servers of `externalTrafficPolicy: Local`
//! Services. Used by `svcnet proxy` and by every node of `svcnet up`.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use kube::Client;

use crate::backend::{Backend, Changed, SyncResult};
use crate::healthcheck::HealthServers;
use crate::ipvs::kernel::KernelIpvs;
use crate::metrics::Metrics;
use crate::model::{NodeInfo, State};
use crate::syncer::{self, SyncSettings, Syncer};
use crate::{iptables, nftables, userspace};

/// `--proxy-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Nftables,
    Iptables,
    Userspace,
}

/// The modes `--proxy-mode` takes, as help texts and errors name them.
pub const MODES: &str = "nftables (the default), iptables or userspace";

/// Why `--proxy-mode` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseModeError {
    /// ipvs, with what the kernel has: kube-proxy's "can't use the IPVS proxier: ipvs not
    /// supported by the kernel" when it has no IPVS; svcnet only renders the mode either way.
    #[error("can't use the IPVS proxier: {}; svcnet runs {MODES}, and `svcnet proxy --list` shows the virtual servers IPVS mode would program, as `ipvsadm -Ln`", ipvs_why(.0))]
    Ipvs(KernelIpvs),
    #[error("unknown proxy mode {0:?}: use {MODES}")]
    Unknown(String),
}

fn ipvs_why(k: &KernelIpvs) -> String {
    match k {
        KernelIpvs::Missing(why) => {
            format!("ipvs not supported by the kernel (this kernel has no IPVS (ip_vs): {why})")
        }
        KernelIpvs::Present => "svcnet renders IPVS mode but does not program it".to_string(),
        KernelIpvs::Loadable => {
            "svcnet renders IPVS mode but does not program it (ip_vs is not loaded)".to_string()
        }
    }
}

impl FromStr for Mode {
    type Err = ParseModeError;

    /// A mode's name; `ipvs` is refused saying whether this kernel has IPVS.
    fn from_str(s: &str) -> Result<Self, ParseModeError> {
        match s {
            "nftables" | "" => Ok(Mode::Nftables),
            "iptables" => Ok(Mode::Iptables),
            "userspace" => Ok(Mode::Userspace),
            "ipvs" => Err(ParseModeError::Ipvs(crate::ipvs::kernel::kernel_ipvs())),
            other => Err(ParseModeError::Unknown(other.to_string())),
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--metrics-bind-address` could not be listened on.
    #[error(transparent)]
    MetricsListenFailed(std::io::Error),
}

#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    /// The node's network namespace (None: this process's).
    pub netns: Option<String>,
    pub node_name: String,
    /// The node's addresses (where NodePorts are served).
    pub node_ips: Vec<IpAddr>,
    /// `--cluster-cidr`: traffic to ClusterIPs from outside it is masqueraded.
    pub cluster_cidr: Option<ipnet::IpNet>,
    /// `--metrics-bind-address` (metrics and healthz), inside the node's namespace.
    pub metrics_addr: Option<SocketAddr>,
    /// Where health-check node ports listen (0.0.0.0 on a node).
    pub health_bind: Option<IpAddr>,
    pub settings: SyncSettings,
    /// How the userspace mode picks an endpoint.
    pub userspace_algorithm: userspace::Algorithm,
}

/// The backend for `mode`. The other modes' leftovers are removed after its first successful
/// full sync (switching modes is clean, and there is no moment without rules: an established
/// connection that sent a packet then would lose its translation).
pub fn backend(o: &Options) -> Box<dyn Backend> {
    Box::new(Switched {
        inner: mode_backend(o),
        mode: o.mode,
        netns: o.netns.clone(),
        others_left: true,
    })
}

/// Wraps the mode's backend to remove the other modes' rules once it has programmed its own.
struct Switched {
    inner: Box<dyn Backend>,
    mode: Mode,
    netns: Option<String>,
    others_left: bool,
}

impl Backend for Switched {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn full(&mut self, state: &State) -> SyncResult {
        self.inner.full(state)?;
        if std::mem::take(&mut self.others_left) {
            let ns = self.netns.as_deref();
            if self.mode != Mode::Nftables {
                let _ = nftables::cleanup(ns);
            }
            if self.mode != Mode::Iptables {
                let _ = iptables::cleanup(ns);
            }
            if self.mode != Mode::Userspace {
                let _ = userspace::cleanup(ns);
            }
        }
        Ok(())
    }

    fn partial(&mut self, old: &State, state: &State, changed: &Changed) -> SyncResult {
        self.inner.partial(old, state, changed)
    }

    fn cleanup(&mut self) -> SyncResult {
        self.inner.cleanup()
    }
}

fn mode_backend(o: &Options) -> Box<dyn Backend> {
    let node = NodeInfo {
        name: o.node_name.clone(),
        node_ips: o.node_ips.clone(),
        zone: None,
    };
    match o.mode {
        Mode::Nftables => Box::new(nftables::Proxier::new(
            o.netns.clone(),
            node,
            nftables::Config {
                cluster_cidr: o.cluster_cidr,
                random: false,
            },
        )),
        Mode::Iptables => Box::new(iptables::Proxier::new(
            o.netns.clone(),
            node,
            iptables::Config {
                cluster_cidr: o.cluster_cidr,
                ..Default::default()
            },
        )),
        Mode::Userspace => Box::new(userspace::Proxier::new(
            o.netns.clone(),
            o.node_ips.clone(),
            o.userspace_algorithm,
        )),
    }
}

/// Run the proxy for one node until the process ends.
pub async fn run(client: Client, o: Options) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = o.metrics_addr {
        let l = svcnet_netns::tokio_listener(o.netns.as_deref(), addr)
            .map_err(Error::MetricsListenFailed)?;
        let m = metrics.clone();
        let max_age = o.settings.sync_period * 2;
        tokio::spawn(async move {
            let _ = crate::metrics::serve(l, m, max_age).await;
        });
    }
    let health = o
        .health_bind
        .map(|b| HealthServers::new(&o.node_name, o.netns.clone(), b));
    let cleanup = Some(syncer::Cleanup {
        netns: o.netns.clone(),
        node: o.node_name.clone(),
    });
    let syncer = Syncer::new(backend(&o), o.settings.clone(), metrics)
        .with_health(health)
        .with_cleanup(cleanup);
    syncer::run(client, syncer).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_is_refused_saying_why() {
        let missing = ParseModeError::Ipvs(KernelIpvs::Missing(
            "/proc/net/ip_vs is missing and kernel 6.18.44 has no ip_vs module".into(),
        ));
        assert_eq!(
            missing.to_string(),
            "can't use the IPVS proxier: ipvs not supported by the kernel (this kernel has no \
             IPVS (ip_vs): /proc/net/ip_vs is missing and kernel 6.18.44 has no ip_vs module); \
             svcnet runs nftables (the default), iptables or userspace, and `svcnet proxy --list` \
             shows the virtual servers IPVS mode would program, as `ipvsadm -Ln`"
        );
        let present = ParseModeError::Ipvs(KernelIpvs::Present).to_string();
        assert!(
            present.starts_with(
                "can't use the IPVS proxier: svcnet renders IPVS mode but does not program it;"
            ),
            "{present}"
        );
        // This kernel, whatever it has: the modes that run are named.
        let here = "ipvs".parse::<Mode>().unwrap_err().to_string();
        assert!(
            here.contains("nftables (the default), iptables or userspace"),
            "{here}"
        );
        assert_eq!(
            "ipvsx".parse::<Mode>().unwrap_err().to_string(),
            "unknown proxy mode \"ipvsx\": use nftables (the default), iptables or userspace"
        );
        assert_eq!("userspace".parse::<Mode>(), Ok(Mode::Userspace));
    }
}
