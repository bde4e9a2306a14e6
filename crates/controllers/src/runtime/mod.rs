//! A small controller runtime in client-go's shape: one [`Informer`] per kind shared by every
//! controller (a kube-runtime `watcher` feeding a reflector `Store`, broadcasting each change with
//! the object's previous state), and a [`Queue`] of keys with per-key exclusivity, de-duplication
//! and exponential backoff on errors, worked by [`run_workers`].
//!
//! Why not kube-runtime's `Controller` with shared streams: its dispatcher does not propagate
//! deletions, and the EndpointSlice controller must react to a deleted pod (and to a pod whose
//! labels stopped matching, which needs the old object).

mod informer;
mod queue;

pub use informer::{Change, Informer, KeyFn, Subscription};
pub use queue::{run_workers, Key, Queue};
