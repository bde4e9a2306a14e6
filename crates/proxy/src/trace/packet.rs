//! What both tracers share: the packet traced, what happened to it, and its fields as the rules
//! see them on the way.

use std::fmt;
use std::net::Ipv4Addr;

use crate::model::Protocol;

/// The kernel's limit of nested jumps.
pub(crate) const MAX_DEPTH: usize = 16;

/// A packet to trace: the first packet of a connection unless `new` is false.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub dport: u16,
    pub proto: Protocol,
    /// Sent by the node itself (output path) rather than arriving (from a pod or outside).
    pub local: bool,
    pub new: bool,
}

impl Packet {
    pub fn new(proto: Protocol, src: &str, dst: &str, dport: u16) -> Packet {
        Packet {
            src: src.parse().expect("source address"),
            dst: dst.parse().expect("destination address"),
            dport,
            proto,
            local: false,
            new: true,
        }
    }
    pub fn tcp(src: &str, dst: &str, dport: u16) -> Packet {
        Packet::new(Protocol::Tcp, src, dst, dport)
    }
    pub fn udp(src: &str, dst: &str, dport: u16) -> Packet {
        Packet::new(Protocol::Udp, src, dst, dport)
    }
    /// Sent by the node.
    pub fn sent_by_node(self) -> Packet {
        Packet {
            local: true,
            ..self
        }
    }
    /// A packet of an established connection.
    pub fn established(self) -> Packet {
        Packet { new: false, ..self }
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {}:{}{}{}",
            self.proto.lower(),
            self.src,
            self.dst,
            self.dport,
            if self.local { " (from the node)" } else { "" },
            if self.new { "" } else { " (established)" }
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Reject { tcp_reset: bool },
}

/// What happened to a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub verdict: Verdict,
    pub dnat: Option<(Ipv4Addr, u16)>,
    pub masqueraded: bool,
    /// A `numgen random` chose ([`Tracer::random_pick`]).
    pub random: bool,
    /// Routed to the node itself (input) rather than forwarded.
    pub delivered_locally: bool,
    /// `hook:chain` of every chain entered, in order.
    pub chains: Vec<String>,
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.verdict)?;
        if let Some((ip, port)) = self.dnat {
            write!(f, ", DNAT to {ip}:{port}")?;
        }
        if self.masqueraded {
            f.write_str(", masqueraded")?;
        }
        if self.random {
            f.write_str(", random pick")?;
        }
        write!(f, "; via {}", self.chains.join(" > "))
    }
}

/// The packet as the rules of either tracer see it while it is traced.
pub(crate) struct Walk {
    pub(crate) saddr: Ipv4Addr,
    pub(crate) daddr: Ipv4Addr,
    pub(crate) dport: u16,
    pub(crate) proto: Protocol,
    pub(crate) new: bool,
    pub(crate) mark: u32,
    pub(crate) dnat: Option<(Ipv4Addr, u16)>,
    pub(crate) masqueraded: bool,
    pub(crate) random: bool,
    pub(crate) chains: Vec<String>,
}

impl Walk {
    pub(crate) fn new(p: &Packet) -> Walk {
        Walk {
            saddr: p.src,
            daddr: p.dst,
            dport: p.dport,
            proto: p.proto,
            new: p.new,
            mark: 0,
            dnat: None,
            masqueraded: false,
            random: false,
            chains: Vec::new(),
        }
    }

    /// What happened, once the walk ended with `verdict`.
    pub(crate) fn into_trace(self, verdict: Verdict, delivered_locally: bool) -> Trace {
        Trace {
            verdict,
            dnat: self.dnat,
            masqueraded: self.masqueraded,
            random: self.random,
            delivered_locally,
            chains: self.chains,
        }
    }
}

/// Whether `ip` is one of the node's own addresses (127.0.0.0/8 always is).
pub(crate) fn is_local(local_ips: &[Ipv4Addr], ip: Ipv4Addr) -> bool {
    ip.is_loopback() || local_ips.contains(&ip)
}

/// Why a script (or `iptables-restore` input) was refused: what the tracer does not understand,
/// or what nft / iptables would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ParseFailed(pub(crate) String);

impl From<String> for ParseFailed {
    fn from(s: String) -> ParseFailed {
        ParseFailed(s)
    }
}

impl From<&str> for ParseFailed {
    fn from(s: &str) -> ParseFailed {
        ParseFailed(s.to_string())
    }
}
