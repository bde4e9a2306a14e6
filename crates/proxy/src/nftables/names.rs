//! The names of the table's objects (kube-proxy's grouped constants at the top of
//! `pkg/proxy/nftables/proxier.go`): the table, its shared maps and sets, the fixed chains, the
//! prefixes of the per-endpoint-count and per-Service-port objects, and the maps' declarations.

pub const TABLE: &str = "svcnet";
/// The table's family and name, as nft commands spell it.
pub const FAMILY_TABLE: &str = "ip svcnet";
/// The packet-mark bit asking `masquerading` to masquerade.
pub const MASQ_MARK: &str = "0x4000";

// Shared sets and maps.
pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub const FIREWALL_IPS: &str = "firewall-ips";
pub const CLUSTER_IPS: &str = "cluster-ips";
pub const NODEPORT_IPS: &str = "nodeport-ips";
pub const HAIRPIN: &str = "hairpin";
pub const ENDPOINTS: &str = "endpoints";
pub const SERVICE_IDS: &str = "service-ids";
pub const NODEPORT_IDS: &str = "nodeport-ids";

// Chains.
pub const NAT_PREROUTING: &str = "nat-prerouting";
pub const NAT_OUTPUT: &str = "nat-output";
pub const NAT_POSTROUTING: &str = "nat-postrouting";
pub const FILTER_PREROUTING: &str = "filter-prerouting";
pub const FILTER_INPUT: &str = "filter-input";
pub const FILTER_FORWARD: &str = "filter-forward";
pub const FILTER_OUTPUT: &str = "filter-output";
pub const FILTER_OUTPUT_POST_DNAT: &str = "filter-output-post-dnat";
pub const SERVICES: &str = "services";
pub const MASQUERADING: &str = "masquerading";
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
pub const REJECT_CHAIN: &str = "reject-chain";
pub const FIREWALL_CHECK: &str = "firewall-check";
pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
pub const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";

// Shared dispatch chains, one of each per endpoint count N in use (`pick-3`, ...).
pub const CLUSTER_DISPATCH: &str = "cluster-";
pub const EXTERNAL_DISPATCH: &str = "external-";
pub const PICK: &str = "pick-";

// Per-Service-port object name prefixes.
pub const SVC_CHAIN: &str = "svc-";
pub const EXT_CHAIN: &str = "ext-";
pub const FW_CHAIN: &str = "fw-";
pub const EPS_MAP: &str = "eps-";
pub const EPA_MAP: &str = "epa-";
pub const AFF_MAP: &str = "aff-";
pub const LOCAL_EPS_MAP: &str = "lep-";
pub const LOCAL_EPA_MAP: &str = "lepa-";
pub const LOCAL_AFF_MAP: &str = "laff-";

pub(super) const EPS_DECL: &str = "typeof numgen inc mod 1 : ip daddr . th dport;";
pub(super) const EPA_DECL: &str = "type mark : ipv4_addr . inet_service;";
pub(super) const AFF_DECL: &str = "type ipv4_addr : mark; flags dynamic,timeout;";
pub(super) const VERDICT_KEY3: &str = "type ipv4_addr . inet_proto . inet_service : verdict;";
pub(super) const VERDICT_KEY2: &str = "type inet_proto . inet_service : verdict;";
/// (`tcp dport` rather than `th dport`: nft, reading a `th` map back, refuses it in a `tcp`
/// rule; the data is the same two bytes for every protocol.)
pub(super) const ENDPOINTS_DECL: &str = "typeof ct mark . numgen inc mod 1 : ip daddr . tcp dport;";
pub(super) const IDS_KEY3: &str = "type ipv4_addr . inet_proto . inet_service : mark;";
pub(super) const IDS_KEY2: &str = "type inet_proto . inet_service : mark;";
/// Shared sets with at least this many elements are declared with a `size` (4x, a power of two).
pub(super) const SIZED_FROM: usize = 4096;
