//! The nftables mode's proxier (kube-proxy's `pkg/proxy/nftables/proxier.go` `Proxier`): full
//! syncs through [`Session::apply_full_sync`], partial ones as [`render_changes`] scripts, with
//! the [`Numbering`] that describes the table between syncs.

use crate::backend::{self, Backend, Changed, SyncResult};
use crate::model::{NodeInfo, State};

use super::kernel::{cleanup, Session};
use super::plan::{Config, Numbering};
use super::render::{render_changes, render_full_sync};

pub struct Proxier {
    netns: Option<String>,
    session: Session,
    node: NodeInfo,
    cfg: Config,
    /// What the table holds beyond the last state (Service port numbers).
    numbering: Numbering,
}

impl Proxier {
    /// A proxier for `node`, programming the table inside `netns` (None: this process's).
    pub fn new(netns: Option<String>, node: NodeInfo, cfg: Config) -> Proxier {
        Proxier {
            session: Session::open(netns.as_deref()),
            netns,
            node,
            cfg,
            numbering: Numbering::default(),
        }
    }
}

impl Backend for Proxier {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn full(&mut self, state: &State) -> SyncResult {
        let full = render_full_sync(state, &self.node, &self.cfg, &mut self.numbering);
        let kind = self.session.apply_full_sync(full)?;
        tracing::debug!(?kind, "nftables full sync");
        Ok(())
    }

    fn partial(&mut self, old: &State, state: &State, changed: &Changed) -> SyncResult {
        // Only the changed Service ports' elements move (O(change), not O(cluster)).
        let script = render_changes(
            old,
            state,
            changed.iter(),
            &self.node,
            &self.cfg,
            &mut self.numbering,
        );
        self.session.apply(&script).map_err(backend::Error::from)
    }

    fn cleanup(&mut self) -> SyncResult {
        cleanup(self.netns.as_deref()).map_err(backend::Error::from)
    }
}

#[cfg(test)]
mod tests;
