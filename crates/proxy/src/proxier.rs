//! A whole proxy for one node: the chosen backend behind the sync loop, the metrics and health
//! endpoints, and the health-check servers of `externalTrafficPolicy: Local` Services. Used by
//! `svcnet proxy` and by every node of `svcnet up`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use kube::Client;

use crate::backend::Backend;
use crate::healthcheck::HealthServers;
use crate::metrics::Metrics;
use crate::model::{NodeInfo, ServicePortName, State};
use crate::runtime::{self, SyncSettings};
use crate::{iptables, nftables, userspace};

/// `--proxy-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Nftables,
    Iptables,
    Userspace,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nftables" | "" => Ok(Mode::Nftables),
            "iptables" => Ok(Mode::Iptables),
            "userspace" => Ok(Mode::Userspace),
            "ipvs" => Err(format!(
                "proxy mode {s:?} is not available yet (nftables and iptables are)"
            )),
            other => Err(format!(
                "unknown proxy mode {other:?}: use nftables or iptables"
            )),
        }
    }
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

struct Nft {
    netns: Option<String>,
    session: nftables::Session,
    node: NodeInfo,
    cfg: nftables::Config,
    /// What the table holds beyond the last state (Service port numbers).
    numbering: nftables::Numbering,
}

impl Backend for Nft {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn full(&mut self, state: &State) -> Result<(), String> {
        let full = nftables::render_full_sync(state, &self.node, &self.cfg, &mut self.numbering);
        let kind = self
            .session
            .apply_full_sync(full)
            .map_err(|e| e.to_string())?;
        tracing::debug!(?kind, "nftables full sync");
        Ok(())
    }

    fn partial(
        &mut self,
        old: &State,
        state: &State,
        changed: &BTreeSet<ServicePortName>,
    ) -> Result<(), String> {
        // Only the changed Service ports' elements move (O(change), not O(cluster)).
        let script = nftables::render_changes(
            old,
            state,
            changed.iter(),
            &self.node,
            &self.cfg,
            &mut self.numbering,
        );
        self.session.apply(&script).map_err(|e| e.to_string())
    }

    fn cleanup(&mut self) -> Result<(), String> {
        nftables::cleanup(self.netns.as_deref()).map_err(|e| e.to_string())
    }
}

struct Ipt {
    netns: Option<String>,
    node: NodeInfo,
    cfg: iptables::Config,
    chains: Option<BTreeSet<String>>,
}

impl Backend for Ipt {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn full(&mut self, state: &State) -> Result<(), String> {
        let ns = self.netns.as_deref();
        iptables::ensure_jumps(ns).map_err(|e| e.to_string())?;
        let prev = match self.chains.take() {
            Some(c) => c,
            None => iptables::existing_chains(ns).map_err(|e| e.to_string())?,
        };
        let (input, chains) = iptables::render_with(&prev, state, &self.node, &self.cfg);
        iptables::apply(ns, &input).map_err(|e| e.to_string())?;
        self.chains = Some(chains);
        Ok(())
    }

    fn cleanup(&mut self) -> Result<(), String> {
        iptables::cleanup(self.netns.as_deref()).map_err(|e| e.to_string())
    }
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

    fn full(&mut self, state: &State) -> Result<(), String> {
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

    fn partial(
        &mut self,
        old: &State,
        state: &State,
        changed: &BTreeSet<ServicePortName>,
    ) -> Result<(), String> {
        self.inner.partial(old, state, changed)
    }

    fn cleanup(&mut self) -> Result<(), String> {
        self.inner.cleanup()
    }
}

fn mode_backend(o: &Options) -> Box<dyn Backend> {
    let ns = o.netns.as_deref();
    let node = NodeInfo {
        name: o.node_name.clone(),
        node_ips: o.node_ips.clone(),
        zone: None,
    };
    match o.mode {
        Mode::Nftables => Box::new(Nft {
            netns: o.netns.clone(),
            session: nftables::Session::open(ns),
            node,
            cfg: nftables::Config {
                cluster_cidr: o.cluster_cidr,
                random: false,
            },
            numbering: Default::default(),
        }),
        Mode::Iptables => Box::new(Ipt {
            netns: o.netns.clone(),
            node,
            cfg: iptables::Config {
                cluster_cidr: o.cluster_cidr,
                ..Default::default()
            },
            chains: None,
        }),
        Mode::Userspace => Box::new(userspace::Userspace::new(
            o.netns.clone(),
            o.node_ips.clone(),
            o.userspace_algorithm,
        )),
    }
}

/// Run the proxy for one node until the process ends.
pub async fn run(client: Client, o: Options) -> Result<(), String> {
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = o.metrics_addr {
        let l =
            svcnet_netns::tokio_listener(o.netns.as_deref(), addr).map_err(|e| e.to_string())?;
        let m = metrics.clone();
        let max_age = o.settings.sync_period * 2;
        tokio::spawn(async move {
            let _ = crate::metrics::serve(l, m, max_age).await;
        });
    }
    let health = o
        .health_bind
        .map(|b| HealthServers::new(&o.node_name, o.netns.clone(), b));
    let backend = backend(&o);
    let cleanup = Some(runtime::Cleanup {
        netns: o.netns.clone(),
        node: o.node_name.clone(),
    });
    runtime::run(
        client,
        backend,
        o.settings.clone(),
        metrics,
        health,
        cleanup,
    )
    .await;
    Ok(())
}
