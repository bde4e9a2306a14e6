//! What every proxy mode implements: the per-mode proxier of kube-proxy
//! (`pkg/proxy/{nftables,iptables,ipvs}/proxier.go`, each a `Proxier` with `syncProxyRules`),
//! driven by the sync loop ([`crate::syncer`]). Here a full sync and a partial one are two
//! methods, where kube-proxy's proxier decides inside `syncProxyRules`.

use std::collections::BTreeSet;

use crate::model::{ServicePortName, State};
use crate::{iptables, nftables, userspace};

/// Why a sync failed, by mode (the message is the mode's own).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    NftablesFailed(#[from] nftables::Error),
    #[error(transparent)]
    IptablesFailed(#[from] iptables::Error),
    #[error(transparent)]
    UserspaceFailed(#[from] userspace::Error),
}

/// The Service ports a partial sync names.
pub type Changed = BTreeSet<ServicePortName>;

/// What a sync returns.
pub type SyncResult = Result<(), Error>;

/// A way of programming the kernel (nftables, iptables, ...).
pub trait Backend: Send {
    fn name(&self) -> &'static str;
    /// Program everything from scratch (one transaction).
    fn full(&mut self, state: &State) -> SyncResult;
    /// Program only what `changed` needs (their Services' rules), given the state `old` that
    /// is programmed now (after a full sync, or the last partial one). `old` may hold only the
    /// Service ports in `changed` (the sync loop keeps no copy of the rest, which equals `state`).
    fn partial(&mut self, old: &State, state: &State, changed: &Changed) -> SyncResult {
        let _ = (old, changed);
        self.full(state)
    }
    /// Remove everything this backend programmed.
    fn cleanup(&mut self) -> SyncResult;
}
