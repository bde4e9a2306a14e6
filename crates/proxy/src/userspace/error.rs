//! Why the userspace mode's sync failed.

use crate::model::ServicePortName;
use crate::nftables;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not inside a tokio runtime (the listeners are its tasks).
    #[error("the userspace proxy needs a tokio runtime: {0}")]
    NoRuntime(#[from] tokio::runtime::TryCurrentError),
    /// Every port of the listener port range is taken.
    #[error("no free port in the userspace port range")]
    NoFreePort,
    #[error("SCTP is not proxied in userspace mode")]
    SctpNotProxied,
    #[error("listening for {id}: {source}")]
    ListenFailed {
        id: ServicePortName,
        source: std::io::Error,
    },
    /// Some Service ports got no listener (the others were programmed).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    ListenersFailed(Vec<Error>),
    /// The table was refused.
    #[error(transparent)]
    ApplyFailed(#[from] nftables::Error),
}
