//! ClusterIP and NodePort allocation.
//!
//! An allocation is a store key (`/registry/svcnet/clusterips/<ip>`,
//! `/registry/svcnet/nodeports/<port>`) claimed in the same transaction that writes the Service,
//! guarded by a `Compare::Absent` on the key, and released in the transaction that deletes or
//! changes it. So no address or port can be handed out twice — not under concurrent creates, not
//! across several API servers on one store, not across crashes — and there is nothing to repair
//! or leak: the allocator state *is* the stored keys. (Kubernetes ≥ 1.33 does the same with
//! IPAddress objects.) This module only chooses candidates and builds the claims.
//!
//! Candidates follow Kubernetes' static/dynamic split (KEP-3070, KEP-3668): automatic allocation
//! takes the upper part of a range first, leaving the lower band (e.g. 10.96.0.0–10.96.0.255,
//! holding the `kubernetes` service's .1 and the DNS service's .10) for addresses users ask for.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use bytes::Bytes;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use rand::Rng;
use svcnet_api::field::{BadValue, Error as FieldError, Path};

use crate::error::{ApiError, ApiResult};

pub const CLUSTER_IP_PREFIX: &str = "/registry/svcnet/clusterips/";
pub const NODE_PORT_PREFIX: &str = "/registry/svcnet/nodeports/";

/// Allocation changes that must be applied atomically with an object write.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims {
    /// Keys to create (each must be absent), with the owner recorded as value.
    pub claim: Vec<(String, Bytes)>,
    /// Keys to delete.
    pub release: Vec<String>,
    /// Whether any claimed value was picked automatically (a conflict on it is retried).
    pub has_random: bool,
}

impl Claims {
    pub fn is_empty(&self) -> bool {
        self.claim.is_empty() && self.release.is_empty()
    }
}

/// Who holds an allocation key, per the store (via the watch cache).
pub type Holder<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn cluster_ip_key(ip: &str) -> String {
    format!("{CLUSTER_IP_PREFIX}{ip}")
}

pub fn node_port_key(port: i32) -> String {
    format!("{NODE_PORT_PREFIX}{port}")
}

fn owner_of(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or(""),
        svc.metadata.name.as_deref().unwrap_or("")
    )
}

fn owner_value(owner: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "service": owner }).to_string())
}

/// The owner recorded in an allocation key's value.
pub fn owner_from_value(value: &serde_json::Value) -> Option<String> {
    value
        .get("service")
        .and_then(|s| s.as_str())
        .map(str::to_string)
}

/// One Service's allocation in progress: who holds what (per the store), which Service asks,
/// and the claims so far.
struct Pass<'a> {
    holder: Holder<'a>,
    owner: String,
    claims: Claims,
}

impl<'a> Pass<'a> {
    fn new(svc: &Service, holder: Holder<'a>) -> Self {
        Pass {
            holder,
            owner: owner_of(svc),
            claims: Claims::default(),
        }
    }

    /// Who holds `key`, if anyone.
    fn holder_of(&self, key: &str) -> Option<String> {
        (self.holder)(key)
    }

    /// Claim `key` for this Service.
    fn claim(&mut self, key: String) {
        self.claims.claim.push((key, owner_value(&self.owner)));
    }

    /// Claim `key`, a value picked automatically (a conflict on it is retried).
    fn claim_random(&mut self, key: String) {
        self.claim(key);
        self.claims.has_random = true;
    }
}

/// The size of the static band of a range of `size` values (Kubernetes' formula).
fn static_band(size: u64, min: u64, max: u64, step: u64) -> u64 {
    (size / step).clamp(min, max).min(size)
}

/// Picks ClusterIPs and NodePorts for Services and builds their [`Claims`].
#[derive(Clone, Debug)]
pub struct ServiceAllocator {
    cidr: Ipv4Net,
    /// First usable address (network + 1) as u32, and how many usable addresses follow.
    ip_base: u32,
    ip_size: u64,
    ip_static: u64,
    port_min: i32,
    port_max: i32,
    port_static: u64,
}

impl ServiceAllocator {
    pub fn new(cidr: Ipv4Net, ports: (i32, i32)) -> Self {
        let total = 1u64 << (32 - cidr.prefix_len() as u64);
        // Exclude the network address, and the broadcast address for ranges wider than /31.
        let ip_size = if total > 2 { total - 2 } else { total };
        let ip_base = u32::from(cidr.network()) + if total > 2 { 1 } else { 0 };
        let port_size = (ports.1 - ports.0 + 1) as u64;
        ServiceAllocator {
            cidr,
            ip_base,
            ip_size,
            ip_static: static_band(ip_size, 16, 256, 16),
            port_min: ports.0,
            port_max: ports.1,
            port_static: static_band(port_size, 16, 128, 32),
        }
    }

    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    pub fn port_range(&self) -> (i32, i32) {
        (self.port_min, self.port_max)
    }

    /// The address of the `kubernetes` Service: the first of the range.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.ip_base)
    }

    fn ip_in_range(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip) as u64;
        v >= self.ip_base as u64 && v < self.ip_base as u64 + self.ip_size
    }

    /// Pick a free address: random in the dynamic band, then a scan of it, then the static band.
    fn next_ip(&self, holder: Holder, taken_here: &[String]) -> Option<Ipv4Addr> {
        let free = |off: u64| {
            let ip = Ipv4Addr::from(self.ip_base + off as u32).to_string();
            holder(&cluster_ip_key(&ip)).is_none() && !taken_here.contains(&ip)
        };
        pick(self.ip_size, self.ip_static, free)
            .map(|off| Ipv4Addr::from(self.ip_base + off as u32))
    }

    fn next_port(&self, holder: Holder, taken_here: &[i32]) -> Option<i32> {
        let size = (self.port_max - self.port_min + 1) as u64;
        let free = |off: u64| {
            let p = self.port_min + off as i32;
            holder(&node_port_key(p)).is_none() && !taken_here.contains(&p)
        };
        pick(size, self.port_static, free).map(|off| self.port_min + off as i32)
    }

    /// Allocate what a new Service needs; fills `spec.clusterIP(s)`, nodePorts and
    /// healthCheckNodePort. Errors are Kubernetes' (422 for a requested value, 500 when full).
    pub fn allocate_create(&self, svc: &mut Service, holder: Holder) -> ApiResult<Claims> {
        let mut pass = Pass::new(svc, holder);
        self.alloc_cluster_ips(svc, &mut pass)?;
        self.alloc_node_ports(svc, None, &mut pass)?;
        self.alloc_health_check_port(svc, None, &mut pass)?;
        Ok(pass.claims)
    }

    /// Allocate and release what an update changes (type changes, ports added or removed).
    /// `new` has had `patch_allocated_values` / `drop_type_dependent_fields` applied.
    pub fn allocate_update(
        &self,
        new: &mut Service,
        old: &Service,
        holder: Holder,
    ) -> ApiResult<Claims> {
        let mut pass = Pass::new(new, holder);
        let old_type = service_type(old);
        let new_type = service_type(new);
        if old_type == "ExternalName" && new_type != "ExternalName" {
            self.alloc_cluster_ips(new, &mut pass)?;
        } else if old_type != "ExternalName" && new_type == "ExternalName" {
            for ip in allocated_ips(old) {
                pass.claims.release.push(cluster_ip_key(&ip));
            }
        }
        self.alloc_node_ports(new, Some(old), &mut pass)?;
        self.alloc_health_check_port(new, Some(old), &mut pass)?;
        Ok(pass.claims)
    }

    /// Everything a deleted Service held.
    pub fn release_all(&self, svc: &Service) -> Claims {
        let mut claims = Claims::default();
        for ip in allocated_ips(svc) {
            claims.release.push(cluster_ip_key(&ip));
        }
        for p in node_ports(svc) {
            claims.release.push(node_port_key(p));
        }
        if let Some(hc) = svc
            .spec
            .as_ref()
            .and_then(|s| s.health_check_node_port)
            .filter(|p| *p != 0)
        {
            claims.release.push(node_port_key(hc));
        }
        claims.release.sort();
        claims.release.dedup();
        claims
    }

    fn alloc_cluster_ips(&self, svc: &mut Service, pass: &mut Pass) -> ApiResult<()> {
        if service_type(svc) == "ExternalName" {
            return Ok(());
        }
        let name = svc.metadata.name.clone().unwrap_or_default();
        let spec = svc.spec.get_or_insert_with(Default::default);
        let requested = spec
            .cluster_ips
            .as_ref()
            .and_then(|ips| ips.first().cloned())
            .or_else(|| spec.cluster_ip.clone())
            .filter(|s| !s.is_empty());
        if requested.as_deref() == Some("None") {
            return Ok(());
        }
        let ip = match requested {
            Some(req) => {
                let Ok(ip) = req.parse::<Ipv4Addr>() else {
                    // Not an IPv4 address: validation reports it with Kubernetes' message.
                    return Ok(());
                };
                let field_err = |detail: String| {
                    let list = spec_cluster_ips_go(
                        spec.cluster_ips
                            .as_deref()
                            .unwrap_or(std::slice::from_ref(&req)),
                    );
                    ApiError::invalid_kind(
                        "",
                        "Service",
                        &name,
                        &[FieldError::invalid(
                            &Path::new("spec").child("clusterIPs"),
                            BadValue::Raw(list),
                            format!("failed to allocate IP {req}: {detail}"),
                        )],
                    )
                };
                if !self.ip_in_range(ip) {
                    return Err(field_err(format!(
                        "provided IP is not in the valid range. The range of valid IPs is {}",
                        self.cidr
                    )));
                }
                match pass.holder_of(&cluster_ip_key(&ip.to_string())) {
                    Some(h) if h != pass.owner => {
                        return Err(field_err("provided IP is already allocated".into()))
                    }
                    Some(_) => {}
                    None => pass.claim(cluster_ip_key(&ip.to_string())),
                }
                ip
            }
            None => {
                let ip = self.next_ip(pass.holder, &[]).ok_or_else(|| {
                    ApiError::internal("failed to allocate a serviceIP: range is full")
                })?;
                pass.claim_random(cluster_ip_key(&ip.to_string()));
                ip
            }
        };
        spec.cluster_ip = Some(ip.to_string());
        spec.cluster_ips = Some(vec![ip.to_string()]);
        Ok(())
    }

    fn check_requested_port(
        &self,
        name: &str,
        path: Path,
        port: i32,
        pass: &Pass,
    ) -> ApiResult<bool> {
        let err = |detail: String| {
            ApiError::invalid_kind(
                "",
                "Service",
                name,
                &[FieldError::invalid(&path, port, detail)],
            )
        };
        if port < self.port_min || port > self.port_max {
            return Err(err(format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                self.port_min, self.port_max
            )));
        }
        match pass.holder_of(&node_port_key(port)) {
            Some(h) if h != pass.owner => Err(err("provided port is already allocated".into())),
            Some(_) => Ok(false),
            None => Ok(true),
        }
    }

    fn alloc_node_ports(
        &self,
        svc: &mut Service,
        old: Option<&Service>,
        pass: &mut Pass,
    ) -> ApiResult<()> {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let old_ports: Vec<i32> = old.map(node_ports).unwrap_or_default();
        let wants = matches!(service_type(svc).as_str(), "NodePort" | "LoadBalancer");
        if !wants {
            // Moving away from NodePort/LoadBalancer releases every node port held.
            for p in &old_ports {
                pass.claims.release.push(node_port_key(*p));
            }
            return Ok(());
        }
        let should_allocate = should_allocate_node_ports(svc);
        let mut claimed_here: Vec<i32> = Vec::new();
        // Ports with the same number (different protocols) share one node port.
        let mut by_service_port: HashMap<i32, i32> = HashMap::new();
        let ports = svc.spec.as_mut().and_then(|s| s.ports.as_mut());
        if let Some(ports) = ports {
            for (i, sp) in ports.iter_mut().enumerate() {
                let requested = sp.node_port.unwrap_or(0);
                if requested == 0 && !should_allocate {
                    continue;
                }
                if requested != 0 {
                    if !old_ports.contains(&requested) && !claimed_here.contains(&requested) {
                        let path = Path::new("spec").child("ports").index(i).child("nodePort");
                        if self.check_requested_port(&name, path, requested, pass)? {
                            pass.claim(node_port_key(requested));
                        }
                        claimed_here.push(requested);
                    }
                    by_service_port.entry(sp.port).or_insert(requested);
                    continue;
                }
                if let Some(shared) = by_service_port.get(&sp.port) {
                    sp.node_port = Some(*shared);
                    continue;
                }
                let port = self.next_port(pass.holder, &claimed_here).ok_or_else(|| {
                    ApiError::internal("failed to allocate a nodePort: range is full")
                })?;
                pass.claim_random(node_port_key(port));
                claimed_here.push(port);
                by_service_port.insert(sp.port, port);
                sp.node_port = Some(port);
            }
        }
        let now = node_ports(svc);
        for p in old_ports {
            if !now.contains(&p) {
                pass.claims.release.push(node_port_key(p));
            }
        }
        Ok(())
    }

    fn alloc_health_check_port(
        &self,
        svc: &mut Service,
        old: Option<&Service>,
        pass: &mut Pass,
    ) -> ApiResult<()> {
        let needed_before = old.is_some_and(needs_health_check);
        let old_port = old
            .and_then(|o| o.spec.as_ref())
            .and_then(|s| s.health_check_node_port)
            .unwrap_or(0);
        let needs = needs_health_check(svc);
        let taken_here: Vec<i32> = node_ports(svc);
        let spec = svc.spec.get_or_insert_with(Default::default);
        match (needed_before, needs) {
            (true, false) => {
                if old_port != 0 {
                    pass.claims.release.push(node_port_key(old_port));
                }
                spec.health_check_node_port = None;
            }
            (false, true) => {
                let requested = spec.health_check_node_port.unwrap_or(0);
                if requested != 0 {
                    let free = requested >= self.port_min
                        && requested <= self.port_max
                        && pass
                            .holder_of(&node_port_key(requested))
                            .is_none_or(|h| h == pass.owner);
                    if !free {
                        let why = if requested < self.port_min || requested > self.port_max {
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                self.port_min, self.port_max
                            )
                        } else {
                            "provided port is already allocated".to_string()
                        };
                        return Err(ApiError::internal(format!(
                            "failed to allocate requested HealthCheck NodePort {requested}: {why}"
                        )));
                    }
                    if pass.holder_of(&node_port_key(requested)).is_none() {
                        pass.claim(node_port_key(requested));
                    }
                } else {
                    let port = self.next_port(pass.holder, &taken_here).ok_or_else(|| {
                        ApiError::internal(
                            "failed to allocate a HealthCheck NodePort 0: range is full",
                        )
                    })?;
                    pass.claim_random(node_port_key(port));
                    spec.health_check_node_port = Some(port);
                }
            }
            (true, true) => {
                // Kept; changing it is a validation error.
                if spec.health_check_node_port.unwrap_or(0) == 0 {
                    spec.health_check_node_port = Some(old_port);
                }
            }
            (false, false) => {}
        }
        Ok(())
    }
}

/// Random probes in the dynamic band, then a scan of it from a random start, then the static band.
fn pick(size: u64, static_size: u64, free: impl Fn(u64) -> bool) -> Option<u64> {
    let mut rng = rand::rng();
    let dynamic = size.saturating_sub(static_size);
    if dynamic > 0 {
        for _ in 0..32 {
            let off = static_size + rng.random_range(0..dynamic);
            if free(off) {
                return Some(off);
            }
        }
        let start = rng.random_range(0..dynamic);
        for i in 0..dynamic {
            let off = static_size + (start + i) % dynamic;
            if free(off) {
                return Some(off);
            }
        }
    }
    if static_size > 0 {
        let start = rng.random_range(0..static_size);
        for i in 0..static_size {
            let off = (start + i) % static_size;
            if free(off) {
                return Some(off);
            }
        }
    }
    None
}

/// Go's `%#v` of a `[]string`, as Kubernetes prints `spec.clusterIPs` in errors.
fn spec_cluster_ips_go(ips: &[String]) -> String {
    let quoted: Vec<String> = ips.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

pub fn service_type(svc: &Service) -> String {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.clone())
        .unwrap_or_else(|| "ClusterIP".to_string())
}

fn should_allocate_node_ports(svc: &Service) -> bool {
    match service_type(svc).as_str() {
        "NodePort" => true,
        "LoadBalancer" => svc
            .spec
            .as_ref()
            .and_then(|s| s.allocate_load_balancer_node_ports)
            .unwrap_or(true),
        _ => false,
    }
}

/// Kubernetes' `NeedsHealthCheck`: LoadBalancer with externalTrafficPolicy Local.
pub fn needs_health_check(svc: &Service) -> bool {
    service_type(svc) == "LoadBalancer"
        && svc
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local")
}

/// The ClusterIPs a Service holds (none for headless and ExternalName).
pub fn allocated_ips(svc: &Service) -> Vec<String> {
    if service_type(svc) == "ExternalName" {
        return Vec::new();
    }
    let spec = match &svc.spec {
        Some(s) => s,
        None => return Vec::new(),
    };
    let mut ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if ips.is_empty() {
        ips.extend(spec.cluster_ip.clone());
    }
    ips.retain(|ip| !ip.is_empty() && ip != "None");
    ips
}

/// The distinct node ports a Service's ports hold.
pub fn node_ports(svc: &Service) -> Vec<i32> {
    let mut out: Vec<i32> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.node_port)
                .filter(|p| *p != 0)
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn alloc() -> ServiceAllocator {
        ServiceAllocator::new("10.96.0.0/12".parse().unwrap(), (30000, 32767))
    }

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    struct Held(RefCell<HashMap<String, String>>);
    impl Held {
        fn new() -> Self {
            Held(RefCell::new(HashMap::new()))
        }
        fn apply(&self, c: &Claims, owner: &str) {
            for (k, _) in &c.claim {
                self.0.borrow_mut().insert(k.clone(), owner.to_string());
            }
            for k in &c.release {
                self.0.borrow_mut().remove(k);
            }
        }
        fn get(&self, k: &str) -> Option<String> {
            self.0.borrow().get(k).cloned()
        }
        /// Allocate for a new Service and hold what it claims (under its namespace/name), as
        /// its create would.
        fn create(&self, a: &ServiceAllocator, v: serde_json::Value) -> (Service, Claims) {
            let mut s = svc(v);
            let c = a.allocate_create(&mut s, &|k| self.get(k)).unwrap();
            self.apply(&c, &owner_of(&s));
            (s, c)
        }
        /// The error that refuses a new Service.
        fn refused(&self, a: &ServiceAllocator, v: serde_json::Value) -> ApiError {
            a.allocate_create(&mut svc(v), &|k| self.get(k))
                .unwrap_err()
        }
    }

    #[test]
    fn bands_match_kubernetes() {
        let a = alloc();
        assert_eq!(a.first_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(a.ip_static, 256);
        assert_eq!(a.port_static, 86);
        let small = ServiceAllocator::new("10.0.0.0/28".parse().unwrap(), (30000, 30010));
        assert_eq!(small.ip_size, 14);
        assert_eq!(small.ip_static, 14);
    }

    #[test]
    fn requested_ip_honoured_then_refused() {
        let a = alloc();
        let held = Held::new();
        let (_, c) = held.create(
            &a,
            serde_json::json!({"metadata": {"name": "a", "namespace": "default"},
            "spec": {"clusterIP": "10.97.1.1", "ports": [{"port": 80}]}}),
        );
        assert_eq!(c.claim[0].0, "/registry/svcnet/clusterips/10.97.1.1");
        assert!(!c.has_random);
        let err = held.refused(
            &a,
            serde_json::json!({"metadata": {"name": "b", "namespace": "default"},
            "spec": {"clusterIP": "10.97.1.1", "ports": [{"port": 80}]}}),
        );
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            r#"Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.97.1.1"}: failed to allocate IP 10.97.1.1: provided IP is already allocated"#
        );
        let err = held.refused(
            &a,
            serde_json::json!({"metadata": {"name": "c", "namespace": "default"},
            "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}}),
        );
        assert!(err.message.ends_with(
            "failed to allocate IP 10.0.0.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        ));
    }

    #[test]
    fn random_ips_avoid_static_band_and_headless_gets_none() {
        let a = alloc();
        let held = Held::new();
        let h = |k: &str| held.get(k);
        for i in 0..200 {
            let (s, _) = held.create(
                &a,
                serde_json::json!({"metadata": {"name": format!("s{i}"), "namespace": "default"},
                "spec": {"ports": [{"port": 80}]}}),
            );
            let ip: Ipv4Addr = s
                .spec
                .as_ref()
                .unwrap()
                .cluster_ip
                .as_ref()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                u32::from(ip) >= u32::from(Ipv4Addr::new(10, 96, 1, 1)),
                "{ip} is in the static band"
            );
        }
        assert_eq!(held.0.borrow().len(), 200);
        let mut s = svc(
            serde_json::json!({"metadata": {"name": "h", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
        );
        assert!(a.allocate_create(&mut s, &h).unwrap().is_empty());
    }

    #[test]
    fn node_ports_requested_random_shared_and_released() {
        let a = alloc();
        let held = Held::new();
        let h = |k: &str| held.get(k);
        let (s, _) = held.create(
            &a,
            serde_json::json!({"metadata": {"name": "np", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.5.5",
                     "ports": [{"name": "a", "port": 80, "nodePort": 30002}, {"name": "dns", "port": 53, "protocol": "UDP"},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}),
        );
        let ports = s.spec.as_ref().unwrap().ports.as_ref().unwrap();
        assert_eq!(ports[0].node_port, Some(30002));
        assert_eq!(
            ports[1].node_port, ports[2].node_port,
            "same port number shares a node port"
        );
        let random = ports[1].node_port.unwrap();
        assert!(
            (30086..=32767).contains(&random),
            "{random} outside the dynamic band"
        );
        // Another service asking for 30002, or for a port outside the range, is refused with
        // Kubernetes' message.
        for (name, node_port, message) in [
            ("np2", 30002, "spec.ports[0].nodePort: Invalid value: 30002: provided port is already allocated"),
            ("np3", 80, "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        ] {
            let err = held.refused(
                &a,
                serde_json::json!({"metadata": {"name": name, "namespace": "default"},
                "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]}}),
            );
            assert!(err.message.ends_with(message));
        }
        // Type change to ClusterIP releases every node port.
        let old = s.clone();
        let mut new = s.clone();
        new.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        for p in new.spec.as_mut().unwrap().ports.as_mut().unwrap() {
            p.node_port = None;
        }
        let c = a.allocate_update(&mut new, &old, &h).unwrap();
        assert!(c.claim.is_empty());
        assert_eq!(c.release.len(), 2);
        held.apply(&c, "");
        assert!(held
            .0
            .borrow()
            .keys()
            .all(|k| k.starts_with(CLUSTER_IP_PREFIX)));
        // Delete releases the IP.
        let c = a.release_all(&new);
        assert_eq!(
            c.release,
            vec!["/registry/svcnet/clusterips/10.96.5.5".to_string()]
        );
    }

    #[test]
    fn exhausted_node_ports_are_a_500() {
        let a = ServiceAllocator::new("10.96.0.0/12".parse().unwrap(), (30000, 30001));
        let held = Held::new();
        for i in 0..2 {
            held.create(
                &a,
                serde_json::json!({"metadata": {"name": format!("n{i}"), "namespace": "d"},
                "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
            );
        }
        let err = held.refused(
            &a,
            serde_json::json!({"metadata": {"name": "x", "namespace": "d"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
        );
        assert_eq!(
            (err.code, err.message.as_str()),
            (
                500,
                "Internal error occurred: failed to allocate a nodePort: range is full"
            )
        );
    }
}
