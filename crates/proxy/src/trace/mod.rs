//! A packet tracer over the `nft -f` scripts [`crate::nftables`] renders (as kube-proxy's
//! `pkg/proxy/nftables/helpers_test.go` `tracePacket`): the script is parsed into a
//! [`Ruleset`] and a packet is walked through its base chains in the kernel's hook order,
//! giving the verdict, the DNAT destination, whether it was masqueraded, and the chains
//! visited.
//!
//! Only the syntax the renderer emits is understood; anything else is a parse error, so that a
//! change of the renderer is noticed here rather than silently ignored. Partial-sync scripts
//! ([`crate::nftables::render_changes`]) are applied to a parsed ruleset with
//! [`Ruleset::apply`], with nft's checks (a deleted element, chain or map must exist; a chain
//! or map still referenced cannot be deleted; a rule may only refer to existing chains and
//! maps).
//!
//! State that the kernel keeps between packets is kept in the [`Tracer`]: the `numgen inc`
//! counter of every rule (so consecutive traces round-robin), and the elements of dynamic
//! maps (sessionAffinity), with a clock ([`Tracer::advance`]) for their timeouts. `numgen
//! random` takes [`Tracer::random_pick`] (0 by default) and the trace says it was random.
//!
//! Hooks, as the kernel runs them: a packet arriving (from a pod or from outside) passes
//! prerouting (filter -110, nat -100), the routing decision on its (translated) destination,
//! then input, or forward and postrouting; a packet the node sends passes output (filter -110,
//! nat -100, filter -90), postrouting, and input when it is for the node. NAT chains see only
//! the first packet of a connection ([`Packet::established`] skips them).
//!
//! [`ipt`] is the same for the iptables mode's `iptables-restore` input. The flows each mode
//! must route (kube-proxy's `proxier_test.go`) are tested with these in
//! `nftables/proxier/tests.rs` and `iptables/proxier/tests.rs`, over the table of
//! [`crate::testing::flows`].

/// `Err(fail!(...))`: a [`packet::ParseFailed`] with a formatted message.
macro_rules! fail {
    ($($t:tt)*) => {
        crate::trace::packet::ParseFailed(format!($($t)*))
    };
}

pub(crate) mod ipt;
mod nft;
mod packet;
mod ruleset;

pub(crate) use nft::Tracer;
pub(crate) use packet::{Packet, Trace, Verdict};
pub(crate) use ruleset::{Data, Ruleset};
