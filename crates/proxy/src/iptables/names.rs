//! The names kube-proxy's iptables mode gives its chains (`pkg/proxy/iptables/proxier.go`'s
//! constants), and the jumps from the built-in chains to them.

pub const KUBE_SERVICES: &str = "KUBE-SERVICES";
pub const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
pub const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
pub const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
pub const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
pub const KUBE_FORWARD: &str = "KUBE-FORWARD";
pub const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";

/// The fixed chains of the nat table, as declared.
pub(super) const NAT_CHAINS: [&str; 4] = [
    KUBE_SERVICES,
    KUBE_NODEPORTS,
    KUBE_POSTROUTING,
    KUBE_MARK_MASQ,
];
/// The fixed chains of the filter table, as declared.
pub(super) const FILTER_CHAINS: [&str; 5] = [
    KUBE_SERVICES,
    KUBE_EXTERNAL_SERVICES,
    KUBE_NODEPORTS,
    KUBE_FORWARD,
    KUBE_PROXY_FIREWALL,
];

/// Prefixes of the per-Service / per-endpoint chains (all in nat).
pub(super) const SERVICE_CHAIN_PREFIXES: [&str; 5] = [
    "KUBE-SVC-",
    "KUBE-SVL-",
    "KUBE-EXT-",
    "KUBE-FW-",
    "KUBE-SEP-",
];

/// The jumps from built-in chains: (table, built-in chain, extra matches, comment, our chain),
/// as kube-proxy's `iptablesJumpChains`.
/// `-m conntrack --ctstate NEW`: only a connection's first packet.
const NEW: &[&str] = &["-m", "conntrack", "--ctstate", "NEW"];

#[rustfmt::skip]
pub(super) const JUMPS: [(&str, &str, &[&str], &str, &str); 12] = [
    ("filter", "INPUT", NEW, "kubernetes externally-visible service portals", KUBE_EXTERNAL_SERVICES),
    ("filter", "FORWARD", NEW, "kubernetes externally-visible service portals", KUBE_EXTERNAL_SERVICES),
    ("filter", "INPUT", &[], "kubernetes health check service ports", KUBE_NODEPORTS),
    ("filter", "FORWARD", NEW, "kubernetes service portals", KUBE_SERVICES),
    ("filter", "OUTPUT", NEW, "kubernetes service portals", KUBE_SERVICES),
    ("filter", "FORWARD", &[], "kubernetes forwarding rules", KUBE_FORWARD),
    ("filter", "INPUT", NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("filter", "OUTPUT", NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("filter", "FORWARD", NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("nat", "OUTPUT", &[], "kubernetes service portals", KUBE_SERVICES),
    ("nat", "PREROUTING", &[], "kubernetes service portals", KUBE_SERVICES),
    ("nat", "POSTROUTING", &[], "kubernetes postrouting rules", KUBE_POSTROUTING),
];
