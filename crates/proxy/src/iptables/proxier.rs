//! The iptables mode's proxier (kube-proxy's `pkg/proxy/iptables/proxier.go` `Proxier`): every
//! sync is a full `iptables-restore --noflush` of our chains, deleting the per-Service chains
//! the previous one had and this one has not.

use std::collections::BTreeSet;

use crate::backend::{self, Backend, SyncResult};
use crate::model::{NodeInfo, State};

use super::render::{render_with, Config};
use super::restore::{apply, cleanup, ensure_jumps, existing_chains};

pub struct Proxier {
    netns: Option<String>,
    node: NodeInfo,
    cfg: Config,
    /// The per-Service chains the last sync declared (None: read them from the kernel).
    chains: Option<BTreeSet<String>>,
}

impl Proxier {
    /// A proxier for `node`, programming the tables inside `netns` (None: this process's).
    pub fn new(netns: Option<String>, node: NodeInfo, cfg: Config) -> Proxier {
        Proxier {
            netns,
            node,
            cfg,
            chains: None,
        }
    }
}

impl Backend for Proxier {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn full(&mut self, state: &State) -> SyncResult {
        let ns = self.netns.as_deref();
        ensure_jumps(ns)?;
        let prev = match self.chains.take() {
            Some(c) => c,
            None => existing_chains(ns)?,
        };
        let (input, chains) = render_with(&prev, state, &self.node, &self.cfg);
        apply(ns, &input)?;
        self.chains = Some(chains);
        Ok(())
    }

    fn cleanup(&mut self) -> SyncResult {
        cleanup(self.netns.as_deref()).map_err(backend::Error::from)
    }
}

#[cfg(test)]
mod tests;
