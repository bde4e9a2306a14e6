//! The proxy's model of Services and their endpoints, as kube-proxy's `ServicePortMap` and
//! `EndpointsMap`: built purely from API objects, so every renderer (nftables, iptables,
//! userspace, IPVS) consumes the same thing and can be tested without a cluster.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// `namespace/name:port-name` — a Service port's identity (kube-proxy's `ServicePortName`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    /// The port's name ("" for a single unnamed port).
    pub port: String,
    pub protocol: Protocol,
}

impl std::fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.port.is_empty() {
            write!(f, "{}/{}", self.namespace, self.name)
        } else {
            write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(s: Option<&str>) -> Protocol {
        match s {
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            _ => Protocol::Tcp,
        }
    }

    /// As nft and iptables spell it.
    pub fn lower(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// What the proxy needs of one Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub id: ServicePortName,
    /// ClusterIPs (primary first); empty for headless / ExternalName (not proxied).
    pub cluster_ips: Vec<IpAddr>,
    pub port: u16,
    pub protocol: Protocol,
    /// 0 when none.
    pub node_port: u16,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.loadBalancerSourceRanges` (empty = any).
    pub load_balancer_source_ranges: Vec<ipnet::IpNet>,
    /// `sessionAffinity: ClientIP` timeout in seconds (None = no affinity).
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local` (only for NodePort / LoadBalancer / external IPs).
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// 0 when none.
    pub health_check_node_port: u16,
}

impl ServicePort {
    /// A plain ClusterIP Service port (no node port, affinity, policies or external addresses),
    /// for callers that build a state by hand: tests and benchmarks.
    pub fn new(id: ServicePortName, cluster_ip: IpAddr, port: u16) -> ServicePort {
        ServicePort {
            protocol: id.protocol,
            id,
            cluster_ips: vec![cluster_ip],
            port,
            node_port: 0,
            external_ips: vec![],
            load_balancer_ips: vec![],
            load_balancer_source_ranges: vec![],
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            health_check_node_port: 0,
        }
    }
}

/// One endpoint of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
    pub zone: Option<String>,
    /// Topology hints: zones this endpoint should serve.
    pub hint_zones: Option<Vec<String>>,
}

/// The node a proxy programs (every backend renders for one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// Where NodePorts are served (empty: every local address).
    pub node_ips: Vec<IpAddr>,
    pub zone: Option<String>,
}

/// The cluster as the proxy sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub services: BTreeMap<ServicePortName, ServicePort>,
    pub endpoints: BTreeMap<ServicePortName, Vec<Endpoint>>,
}

fn ips(list: Option<&Vec<String>>) -> Vec<IpAddr> {
    list.into_iter()
        .flatten()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The Service ports of `svc` the proxy serves (none for headless and ExternalName Services).
pub fn service_ports(svc: &Service) -> Vec<ServicePort> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let mut cluster_ips = ips(spec.cluster_ips.as_ref());
    if cluster_ips.is_empty() {
        cluster_ips.extend(
            spec.cluster_ip
                .as_deref()
                .and_then(|s| s.parse::<IpAddr>().ok()),
        );
    }
    if cluster_ips.is_empty() {
        return Vec::new();
    }
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .unwrap_or(10800) as u32
    });
    let lb_ips: Vec<IpAddr> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect();
    let external_policy_applies =
        matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"))
            || spec.external_ips.as_ref().is_some_and(|e| !e.is_empty());
    spec.ports
        .iter()
        .flatten()
        .map(|p| {
            let protocol = Protocol::parse(p.protocol.as_deref());
            ServicePort {
                id: ServicePortName {
                    namespace: ns.clone(),
                    name: name.clone(),
                    port: p.name.clone().unwrap_or_default(),
                    protocol,
                },
                cluster_ips: cluster_ips.clone(),
                port: p.port as u16,
                protocol,
                node_port: p.node_port.unwrap_or(0) as u16,
                external_ips: ips(spec.external_ips.as_ref()),
                load_balancer_ips: lb_ips.clone(),
                load_balancer_source_ranges: spec
                    .load_balancer_source_ranges
                    .iter()
                    .flatten()
                    .filter_map(|r| r.trim().parse().ok())
                    .collect(),
                affinity_timeout: affinity,
                external_local: external_policy_applies
                    && spec.external_traffic_policy.as_deref() == Some("Local"),
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                health_check_node_port: spec.health_check_node_port.unwrap_or(0) as u16,
            }
        })
        .collect()
}

/// One EndpointSlice as the proxy keeps it (kube-proxy's `endpointSliceInfo`): only what
/// [`merge`] reads, converted when the slice arrives, so a cache of 10k slices does not hold
/// 10k API objects. Where endpoints are (node, zone, hints) is shared ([`Interner`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// The owning Service (label `kubernetes.io/service-name`); None: the slice is ignored.
    pub service: Option<String>,
    /// Ports with a number (the others are ignored).
    pub ports: Box<[SlicePort]>,
    /// Endpoints with a parseable first address (the others are ignored).
    pub endpoints: Box<[SliceEndpoint]>,
}

/// A port of a [`SliceInfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePort {
    /// "" when unnamed.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

/// An endpoint of a [`SliceInfo`] (32 bytes), its conditions' defaults resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoint {
    pub ip: IpAddr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// None: no node, zone or hints.
    pub place: Option<Arc<Place>>,
}

/// Where an endpoint is: the same for the many endpoints of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Place {
    pub node_name: Option<String>,
    pub zone: Option<String>,
    pub hint_zones: Option<Vec<String>>,
}

/// Shares the few distinct [`Place`]s among many endpoints.
#[derive(Debug, Default)]
pub struct Interner(HashSet<Arc<Place>>);

impl Interner {
    pub fn get(&mut self, p: Place) -> Arc<Place> {
        if let Some(a) = self.0.get(&p) {
            return a.clone();
        }
        let a = Arc::new(p);
        self.0.insert(a.clone());
        a
    }

    /// How many places it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forget places nobody else holds any more.
    pub fn prune(&mut self) {
        self.0.retain(|a| Arc::strong_count(a) > 1);
    }
}

impl SliceInfo {
    pub fn new(s: &EndpointSlice, places: &mut Interner) -> SliceInfo {
        SliceInfo {
            service: s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .cloned(),
            ports: s
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(SlicePort {
                        port: p.port? as u16,
                        name: p.name.clone().unwrap_or_default(),
                        protocol: Protocol::parse(p.protocol.as_deref()),
                    })
                })
                .collect(),
            endpoints: s
                .endpoints
                .iter()
                .filter_map(|e| {
                    let ip = e.addresses.first()?.parse::<IpAddr>().ok()?;
                    let c = e.conditions.as_ref();
                    // Kubernetes: nil ready means ready; nil serving means = ready.
                    let ready = c.and_then(|c| c.ready).unwrap_or(true);
                    let place = Place {
                        node_name: e.node_name.clone(),
                        zone: e.zone.clone(),
                        hint_zones: e
                            .hints
                            .as_ref()
                            .and_then(|h| h.for_zones.as_ref())
                            .map(|z| z.iter().map(|z| z.name.clone()).collect()),
                    };
                    Some(SliceEndpoint {
                        ip,
                        ready,
                        serving: c.and_then(|c| c.serving).unwrap_or(ready),
                        terminating: c.and_then(|c| c.terminating).unwrap_or(false),
                        place: (place != Place::default()).then(|| places.get(place)),
                    })
                })
                .collect(),
        }
    }
}

/// The endpoints per Service port from a Service's EndpointSlices (kube-proxy's
/// `EndpointSliceCache`): endpoints merged across slices and de-duplicated by address, ports
/// matched by name and protocol.
pub fn endpoints(slices: &[&EndpointSlice]) -> BTreeMap<(String, Protocol), Vec<Endpoint>> {
    let mut places = Interner::default();
    let infos: Vec<SliceInfo> = slices
        .iter()
        .map(|s| SliceInfo::new(s, &mut places))
        .collect();
    merge(&infos)
}

/// [`endpoints`] from slices already converted: the first slice naming an address (for a
/// port) wins.
pub fn merge<'a>(
    slices: impl IntoIterator<Item = &'a SliceInfo>,
) -> BTreeMap<(String, Protocol), Vec<Endpoint>> {
    let mut out: BTreeMap<(String, Protocol), Vec<Endpoint>> = BTreeMap::new();
    for s in slices {
        for p in &s.ports {
            let list = out.entry((p.name.clone(), p.protocol)).or_default();
            for e in &s.endpoints {
                if list.iter().any(|x| x.ip == e.ip && x.port == p.port) {
                    continue;
                }
                list.push(Endpoint {
                    ip: e.ip,
                    port: p.port,
                    ready: e.ready,
                    serving: e.serving,
                    terminating: e.terminating,
                    node_name: e.place.as_ref().and_then(|p| p.node_name.clone()),
                    zone: e.place.as_ref().and_then(|p| p.zone.clone()),
                    hint_zones: e.place.as_ref().and_then(|p| p.hint_zones.clone()),
                });
            }
            list.sort();
        }
    }
    for list in out.values_mut() {
        list.shrink_to_fit();
    }
    out
}

/// The whole state from Services and EndpointSlices.
pub fn build(services: &[&Service], slices: &[&EndpointSlice]) -> State {
    let mut st = State::default();
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        let Some(svc) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
        else {
            continue;
        };
        by_service
            .entry((
                s.metadata.namespace.clone().unwrap_or_default(),
                svc.clone(),
            ))
            .or_default()
            .push(s);
    }
    for svc in services {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let eps = endpoints(
            by_service
                .get(&(ns, name))
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        );
        for sp in service_ports(svc) {
            let list = eps
                .get(&(sp.id.port.clone(), sp.protocol))
                .cloned()
                .unwrap_or_default();
            st.endpoints.insert(sp.id.clone(), list);
            st.services.insert(sp.id.clone(), sp);
        }
    }
    st
}

/// Which endpoints a Service port's traffic goes to (kube-proxy's `CategorizeEndpoints`):
/// `(cluster, local)` — for traffic under the Cluster policy and under the Local policy. Ready
/// endpoints are used; when there are none, serving terminating ones; topology hints are
/// honoured only when every endpoint has them and some name `zone`.
pub fn categorize<'a>(
    sp: &ServicePort,
    eps: &'a [Endpoint],
    node: &str,
    zone: Option<&str>,
) -> (Vec<&'a Endpoint>, Vec<&'a Endpoint>) {
    let usable = |pick: &dyn Fn(&Endpoint) -> bool| -> Vec<&'a Endpoint> {
        let ready: Vec<&Endpoint> = eps.iter().filter(|e| e.ready && pick(e)).collect();
        if !ready.is_empty() {
            return ready;
        }
        eps.iter()
            .filter(|e| e.serving && e.terminating && pick(e))
            .collect()
    };
    let hints_usable = zone.is_some_and(|z| {
        !eps.is_empty()
            && eps.iter().all(|e| e.hint_zones.is_some())
            && eps.iter().any(|e| {
                e.ready
                    && e.hint_zones
                        .as_ref()
                        .is_some_and(|h| h.iter().any(|x| x == z))
            })
    });
    let cluster = if hints_usable {
        let z = zone.unwrap_or_default();
        usable(&|e| {
            e.hint_zones
                .as_ref()
                .is_some_and(|h| h.iter().any(|x| x == z))
        })
    } else {
        usable(&|_| true)
    };
    let local = if sp.external_local || sp.internal_local {
        usable(&|e| e.node_name.as_deref() == Some(node))
    } else {
        Vec::new()
    };
    (cluster, local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn builds_ports_and_endpoints() {
        let s = svc(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.97.1.1", "clusterIPs": ["10.97.1.1"],
                     "externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30002, "protocol": "TCP"},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }));
        let sl = slice(json!({
            "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.2"], "conditions": {"ready": true}, "nodeName": "node-1"},
                {"addresses": ["10.244.1.2"], "conditions": {"ready": false, "serving": true, "terminating": true}, "nodeName": "node-2"}
            ]
        }));
        let st = build(&[&s], &[&sl]);
        assert_eq!(st.services.len(), 2);
        let http = st.services.values().find(|p| p.id.port == "http").unwrap();
        assert_eq!(
            (
                http.port,
                http.node_port,
                http.affinity_timeout,
                http.external_local
            ),
            (80, 30002, Some(10800), true)
        );
        assert_eq!(http.id.to_string(), "default/web:http");
        let eps = &st.endpoints[&http.id];
        assert_eq!(eps.len(), 2);
        let (cluster, local) = categorize(http, eps, "node-2", None);
        assert_eq!(cluster.len(), 1, "ready ones only while there are some");
        // Local traffic on node-2: its only endpoint is terminating but serving, so it is used.
        assert_eq!(local.len(), 1);
        assert_eq!(local[0].node_name.as_deref(), Some("node-2"));
        let dns = st.services.values().find(|p| p.id.port == "dns").unwrap();
        assert!(st.endpoints[&dns.id].is_empty());
    }

    #[test]
    fn terminating_fallback_and_headless() {
        let sp = ServicePort::new(
            ServicePortName {
                namespace: "d".into(),
                name: "s".into(),
                port: String::new(),
                protocol: Protocol::Tcp,
            },
            "10.96.0.5".parse().unwrap(),
            80,
        );
        let e = Endpoint {
            ip: "10.244.0.9".parse().unwrap(),
            port: 80,
            ready: false,
            serving: true,
            terminating: true,
            node_name: None,
            zone: None,
            hint_zones: None,
        };
        let (cluster, _) = categorize(&sp, std::slice::from_ref(&e), "n", None);
        assert_eq!(cluster.len(), 1, "only terminating ones: use them");
        let headless = svc(
            json!({"metadata": {"name": "h", "namespace": "d"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
        );
        assert!(service_ports(&headless).is_empty());
    }
}
