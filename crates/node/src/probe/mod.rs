//! Readiness, liveness and startup probes, run as the kubelet runs them (`pkg/kubelet/prober`,
//! `pkg/probe/{http,tcp,exec}`). What lives where:
//!
//! - [`context`]: what every handler shares — the [`ProbeContext`] (pod IP, ports, how to
//!   connect and exec), the host and port it dials, and its [`ProbeResult`] (`pkg/probe`);
//! - [`prober`]: one attempt ([`run_once`], the kubelet's `prober.go` `runProbe`), and the TCP
//!   and exec handlers (`pkg/probe/tcp`, `pkg/probe/exec`);
//! - [`http`]: the HTTP GET probe (`pkg/probe/http`: redirects, headers, Go's messages);
//! - [`exec`]: how exec probes' commands run, through an [`ExecRunner`] — [`PodExec`] inside
//!   the pod's namespaces, [`LocalExec`] as a plain process (the runtime's `ExecSync`);
//! - [`dial`]: how HTTP and TCP probes connect from the node (as the kubelet's do), through a
//!   [`Connector`]: [`DirectConnector`] from the agent's own namespace, [`NetnsConnector`] from
//!   a named one (the node's, when the node itself is a namespace);
//! - [`worker`]: the per-container probe loop ([`spawn_worker`], `worker.go`), its thresholds
//!   ([`ProbeState`]) and the [`ProbeUpdate`]s it sends (what `results_manager.go` publishes;
//!   the pod worker in [`crate::agent::pods`] keeps the results).
//!
//! Differences from the kubelet: HTTPS and gRPC probes are not supported (they report
//! [`ProbeResult::Unknown`], which counts as a failure); exec probe commands are run as given
//! (the kubelet expands `$(VAR)` references to the container's static `env` first: see
//! [`crate::envvars::expand`]).

pub mod context;
pub mod dial;
pub mod exec;
pub mod http;
pub mod prober;
pub mod worker;

#[cfg(test)]
mod testing;

pub use context::{ProbeContext, ProbeResult};
pub use dial::{Connector, DirectConnector, NetnsConnector};
pub use exec::{ExecRunner, LocalExec, PodExec};
pub use http::USER_AGENT;
pub use prober::run_once;
pub use worker::{spawn_worker, ProbeKind, ProbeState, ProbeUpdate};
