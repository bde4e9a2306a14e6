//! The iptables backend, in kube-proxy's layout and with its chain names and comments, so
//! `iptables -t nat -L -n -v` reads like a Kubernetes node's.
//!
//! [`render_with`] turns the model into `iptables-restore --noflush` input (pure, golden
//! tested); [`apply`] loads it; [`ensure_jumps`] hooks our chains into the built-in ones;
//! [`cleanup`] removes everything again.
//!
//! The rules are written in `iptables-save`'s canonical spelling (match order, `/32`
//! suffixes, quoting, `--probability` rounded as the kernel stores it), so what we render
//! is what `iptables-save` prints back — except the two MARK rules, kept in kube-proxy's
//! `--or-mark` / `--xor-mark` spelling (saved as `--set-xmark M/M` and `--set-xmark M/0x0`). IPv4 only: IPv6 addresses in the model are skipped
//! (they belong to `ip6tables`).
//!
//! nat:
//! - `KUBE-SERVICES`: per Service IP (cluster, external, load-balancer) and port a jump to
//!   the Service's chain; last, node-local destinations go to `KUBE-NODEPORTS`.
//! - `KUBE-NODEPORTS`: per node port a jump to `KUBE-EXT-<hash>`.
//! - `KUBE-SVC-<hash>` (Cluster policy) / `KUBE-SVL-<hash>` (Local policy): the one taking
//!   internal traffic first masquerades off-cluster sources; then one `KUBE-SEP-<hash>` per
//!   endpoint chosen with `-m statistic --mode random` (session affinity: `-m recent
//!   --rcheck` first).
//! - `KUBE-EXT-<hash>`: external traffic; masquerades unless `externalTrafficPolicy: Local`.
//! - `KUBE-FW-<hash>`: `loadBalancerSourceRanges`.
//! - `KUBE-SEP-<hash>`: hairpin masquerade and the DNAT.
//! - `KUBE-MARK-MASQ`, `KUBE-POSTROUTING`: masquerade by firewall mark.
//!
//! filter: `KUBE-SERVICES` (REJECT for Services without endpoints; DROP for
//! `internalTrafficPolicy: Local` ones whose endpoints are all on other nodes),
//! `KUBE-EXTERNAL-SERVICES` (the same for external IPs and node ports), `KUBE-NODEPORTS`
//! (health-check node ports), `KUBE-FORWARD`, `KUBE-PROXY-FIREWALL` (source ranges).
//!
//! Files: `names.rs` (chains and jumps), `render.rs` (pure), `restore.rs` (the iptables
//! commands: the only file that does I/O), `proxier.rs` (the mode's [`Proxier`]).

mod names;
mod proxier;
mod render;
mod restore;
#[cfg(test)]
mod tests;

pub use crate::model::NodeInfo;
pub use names::*;
pub use proxier::Proxier;
pub use render::{endpoint_chain, render, render_with, service_hash, Config};
pub use restore::{apply, cleanup, ensure_jumps, existing_chains, save, test_input, Error};
