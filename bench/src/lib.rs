//! What the benchmark binaries share: child processes that die with the bench ([`proc`]), the
//! report's arithmetic and the machine header every bench prints first ([`report`]), starting
//! the API server or `svcnet up` for a bench ([`cluster`]), and the synthetic proxy states the
//! proxy benches program ([`state`]). Namespaces come from `svcnet_netns::testing`.
//!
//! Each binary's long explanation is in bench/README.md.

pub mod cluster;
pub mod proc;
pub mod report;
pub mod state;
