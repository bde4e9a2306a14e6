//! Service defaulting and the registry's write-path adjustments: mirrors `SetDefaults_Service`
//! of `pkg/apis/core/v1/defaults.go`, `initIPFamilyFields` of
//! `pkg/registry/core/service/storage/alloc.go`, `patchAllocatedValues` and
//! `normalizeClusterIPs` of `pkg/registry/core/service/storage/storage.go`, and
//! `dropTypeDependentFields` of `pkg/registry/core/service/strategy.go` (Kubernetes 1.32/1.33).
//!
//! Order on create: [`default_service`] → [`init_ip_families`] → allocate clusterIPs/nodePorts →
//! validate. On update: [`default_service`] (of the request body) → [`patch_allocated_values`] →
//! [`drop_type_dependent_fields`] → [`init_ip_families_for_update`] (or [`init_ip_families`]) →
//! allocate → validate.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ClientIPConfig, Service, ServiceSpec, SessionAffinityConfig};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::field::{BadValue, Error, ErrorList, Path};
use crate::validation::gofmt;
use crate::validation::names::is_ipv6_string;
use crate::validation::service::{externally_accessible, validate_cluster_ips_related_fields};

/// `v1.DefaultClientIPServiceAffinitySeconds`: 3 hours.
pub const DEFAULT_CLIENT_IP_SERVICE_AFFINITY_SECONDS: i32 = 10800;

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn empty(v: &Option<String>) -> bool {
    s(v).is_empty()
}

/// `SetDefaults_Service`: `type: ClusterIP`, `sessionAffinity: None` (ClientIP gets a 10800s
/// timeout), port `protocol: TCP` and `targetPort = port`, `externalTrafficPolicy: Cluster` for
/// externally-accessible Services, `internalTrafficPolicy: Cluster` for all but ExternalName,
/// `allocateLoadBalancerNodePorts: true` and ingress `ipMode: VIP` for LoadBalancers.
pub fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    if empty(&spec.session_affinity) {
        spec.session_affinity = Some("None".into());
    }
    match s(&spec.session_affinity) {
        "None" => spec.session_affinity_config = None,
        "ClientIP" => {
            let has_timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .is_some();
            if !has_timeout {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(DEFAULT_CLIENT_IP_SERVICE_AFFINITY_SECONDS),
                    }),
                });
            }
        }
        _ => {}
    }
    if empty(&spec.type_) {
        spec.type_ = Some("ClusterIP".into());
    }
    for port in spec.ports.iter_mut().flatten() {
        if empty(&port.protocol) {
            port.protocol = Some("TCP".into());
        }
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(v)) => v.is_empty(),
            Some(_) => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    if externally_accessible(spec) && empty(&spec.external_traffic_policy) {
        spec.external_traffic_policy = Some("Cluster".into());
    }
    let ty = s(&spec.type_).to_string();
    if spec.internal_traffic_policy.is_none()
        && matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP")
    {
        spec.internal_traffic_policy = Some("Cluster".into());
    }
    if ty == "LoadBalancer" {
        if spec.allocate_load_balancer_node_ports.is_none() {
            spec.allocate_load_balancer_node_ports = Some(true);
        }
        let ingress = svc
            .status
            .as_mut()
            .and_then(|st| st.load_balancer.as_mut())
            .and_then(|lb| lb.ingress.as_mut());
        for ing in ingress.into_iter().flatten() {
            if !empty(&ing.ip) && ing.ip_mode.is_none() {
                ing.ip_mode = Some("VIP".into());
            }
        }
    }
}

fn spec_mut(svc: &mut Service) -> &mut ServiceSpec {
    svc.spec.get_or_insert_with(Default::default)
}

fn spec_ref(svc: &Service) -> std::borrow::Cow<'_, ServiceSpec> {
    match &svc.spec {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(ServiceSpec::default()),
    }
}

fn ty(spec: &ServiceSpec) -> &str {
    s(&spec.type_)
}

fn needs_cluster_ip(spec: &ServiceSpec) -> bool {
    ty(spec) != "ExternalName"
}

fn needs_node_port(spec: &ServiceSpec) -> bool {
    matches!(ty(spec), "NodePort" | "LoadBalancer")
}

fn needs_hc_node_port(spec: &ServiceSpec) -> bool {
    ty(spec) == "LoadBalancer" && s(&spec.external_traffic_policy) == "Local"
}

fn cluster_ips(spec: &ServiceSpec) -> &[String] {
    spec.cluster_ips.as_deref().unwrap_or_default()
}

fn families(spec: &ServiceSpec) -> &[String] {
    spec.ip_families.as_deref().unwrap_or_default()
}

/// The strategy's `sameClusterIPs`: singular and plural unchanged.
fn same_cluster_ips(old: &ServiceSpec, new: &ServiceSpec) -> bool {
    s(&old.cluster_ip) == s(&new.cluster_ip) && cluster_ips(old) == cluster_ips(new)
}

/// The storage package's `sameClusterIPs`: the plural field unchanged.
fn same_cluster_ips_plural(old: &ServiceSpec, new: &ServiceSpec) -> bool {
    cluster_ips(old) == cluster_ips(new)
}

/// `normalizeClusterIPs`: keep `clusterIP` and `clusterIPs` in sync for clients that only set
/// the singular field (create: `old = None`).
pub fn normalize_cluster_ips(new: &mut Service, old: Option<&Service>) {
    let old_spec = old.map(spec_ref);
    let spec = spec_mut(new);
    let Some(old) = old_spec else {
        if !empty(&spec.cluster_ip) && cluster_ips(spec).is_empty() {
            spec.cluster_ips = Some(vec![s(&spec.cluster_ip).to_string()]);
        }
        return;
    };
    if !cluster_ips(&old).is_empty()
        && cluster_ips(spec).is_empty()
        && s(&old.cluster_ip) == s(&spec.cluster_ip)
    {
        spec.cluster_ips = old.cluster_ips.clone();
    }
    if s(&old.cluster_ip) != s(&spec.cluster_ip) {
        let same = same_cluster_ips_plural(&old, spec);
        if !s(&old.cluster_ip).is_empty() && s(&spec.cluster_ip).is_empty() {
            if same {
                spec.cluster_ips = None;
            }
        } else if same {
            spec.cluster_ips = Some(vec![s(&spec.cluster_ip).to_string()]);
        }
    }
}

/// `patchAllocatedValues` (then `normalizeClusterIPs`): a PUT or apply that omits the allocated
/// clusterIP(s), nodePorts (matched by port name) or healthCheckNodePort keeps the old ones, so
/// re-submitting the same manifest succeeds.
pub fn patch_allocated_values(new: &mut Service, old: &Service) {
    let old_spec = spec_ref(old).into_owned();
    let spec = spec_mut(new);
    if needs_cluster_ip(&old_spec) && needs_cluster_ip(spec) {
        if empty(&spec.cluster_ip) {
            spec.cluster_ip = old_spec.cluster_ip.clone();
        }
        if cluster_ips(spec).is_empty() && !cluster_ips(&old_spec).is_empty() {
            spec.cluster_ips = old_spec.cluster_ips.clone();
        }
    }
    if needs_node_port(&old_spec) && needs_node_port(spec) {
        let used_by = |sp: &ServiceSpec| -> BTreeSet<i32> {
            sp.ports
                .iter()
                .flatten()
                .filter_map(|p| p.node_port.filter(|&n| n != 0))
                .collect()
        };
        let used: BTreeSet<i32> = used_by(&old_spec)
            .intersection(&used_by(spec))
            .copied()
            .collect();
        let mut by_name: BTreeMap<String, i32> = BTreeMap::new();
        for p in old_spec.ports.iter().flatten() {
            by_name.insert(s(&p.name).to_string(), p.node_port.unwrap_or(0));
        }
        for p in spec.ports.iter_mut().flatten() {
            if p.node_port.unwrap_or(0) == 0 {
                let old_val = by_name.get(s(&p.name)).copied().unwrap_or(0);
                if !used.contains(&old_val) && old_val != 0 {
                    p.node_port = Some(old_val);
                }
            }
        }
    }
    if needs_hc_node_port(&old_spec)
        && needs_hc_node_port(spec)
        && spec.health_check_node_port.unwrap_or(0) == 0
    {
        spec.health_check_node_port = old_spec.health_check_node_port;
    }
    normalize_cluster_ips(new, Some(old));
}

/// `dropTypeDependentFields`: when the type changes, wipe what the new type does not use and the
/// user did not change in the same request (clusterIP(s)/ipFamilies/ipFamilyPolicy when leaving
/// for ExternalName, nodePorts when leaving NodePort/LoadBalancer, healthCheckNodePort,
/// allocateLoadBalancerNodePorts, loadBalancerClass, externalTrafficPolicy). The allocator then
/// releases what was wiped.
pub fn drop_type_dependent_fields(new: &mut Service, old: &Service) {
    let old = spec_ref(old).into_owned();
    let spec = spec_mut(new);
    if needs_cluster_ip(&old) && !needs_cluster_ip(spec) {
        if same_cluster_ips(&old, spec) {
            spec.cluster_ip = None;
            spec.cluster_ips = None;
        }
        if families(&old) == families(spec) {
            spec.ip_families = None;
        }
        if s(&old.ip_family_policy) == s(&spec.ip_family_policy) {
            spec.ip_family_policy = None;
        }
    }
    if needs_node_port(&old) && !needs_node_port(spec) {
        let node_ports = |sp: &ServiceSpec| -> BTreeSet<i32> {
            sp.ports
                .iter()
                .flatten()
                .filter_map(|p| p.node_port.filter(|&n| n != 0))
                .collect()
        };
        // Users may add, remove or change ports, as long as they add no new NodePort.
        if node_ports(&old).is_superset(&node_ports(spec)) {
            for p in spec.ports.iter_mut().flatten() {
                p.node_port = None;
            }
        }
    }
    if needs_hc_node_port(&old)
        && !needs_hc_node_port(spec)
        && old.health_check_node_port.unwrap_or(0) == spec.health_check_node_port.unwrap_or(0)
    {
        spec.health_check_node_port = None;
    }
    if ty(&old) == "LoadBalancer" && ty(spec) != "LoadBalancer" {
        if let (Some(o), Some(n)) = (
            old.allocate_load_balancer_node_ports,
            spec.allocate_load_balancer_node_ports,
        ) {
            if o == n {
                spec.allocate_load_balancer_node_ports = None;
            }
        }
        if old.load_balancer_class == spec.load_balancer_class {
            spec.load_balancer_class = None;
        }
    }
    if externally_accessible(&old)
        && !externally_accessible(spec)
        && s(&old.external_traffic_policy) == s(&spec.external_traffic_policy)
    {
        spec.external_traffic_policy = None;
    }
}

fn family_of(ip: &str) -> &'static str {
    if is_ipv6_string(ip) {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn other_family(f: &str) -> &'static str {
    if f == "IPv4" {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn policy_value(spec: &ServiceSpec) -> BadValue {
    match &spec.ip_family_policy {
        Some(p) => BadValue::Str(p.clone()),
        None => BadValue::Null,
    }
}

/// `initIPFamilyFields` on create: fills `ipFamilyPolicy` (SingleStack; RequireDualStack for
/// headless Services without selector) and `ipFamilies` (the cluster's primary family, both
/// families for dual-stack requests on a dual-stack cluster, both for headless-selectorless),
/// after checking the request against the cluster (`cluster_families`, primary first, e.g.
/// `["IPv4"]`). ExternalName Services get nothing.
///
/// Returns Kubernetes' errors for requests this cluster cannot serve (the API server answers
/// 422 with them, before allocating anything): e.g. `spec.ipFamilyPolicy: Invalid value:
/// "RequireDualStack": this cluster is not configured for dual-stack services`.
pub fn init_ip_families(svc: &mut Service, cluster_families: &[&str]) -> ErrorList {
    normalize_cluster_ips(svc, None);
    init_ip_family_fields(svc, None, cluster_families)
}

/// `initIPFamilyFields` on update: as [`init_ip_families`], but an omitted `ipFamilyPolicy`
/// keeps the old one, a matching PreferDualStack Service is left alone, and releasing a
/// secondary IP or family requires `SingleStack`.
pub fn init_ip_families_for_update(
    new: &mut Service,
    old: &Service,
    cluster_families: &[&str],
) -> ErrorList {
    init_ip_family_fields(new, Some(old), cluster_families)
}

fn is_matching_prefer_dual_stack(new: &ServiceSpec, old: Option<&ServiceSpec>) -> bool {
    let Some(old) = old else { return false };
    let Some(policy) = &new.ip_family_policy else {
        return false;
    };
    let has_ip = |sp: &ServiceSpec| matches!(ty(sp), "ClusterIP" | "NodePort" | "LoadBalancer");
    ty(old) == ty(new)
        && has_ip(new)
        && has_ip(old)
        && policy == "PreferDualStack"
        && old.ip_family_policy.as_deref().unwrap_or("PreferDualStack") == "PreferDualStack"
        && same_cluster_ips_plural(old, new)
        && families(old) == families(new)
}

fn init_ip_family_fields(
    svc: &mut Service,
    old: Option<&Service>,
    cluster_families: &[&str],
) -> ErrorList {
    let old_spec = old.map(|o| spec_ref(o).into_owned());
    if ty(&spec_ref(svc)) == "ExternalName" {
        return Vec::new();
    }
    if is_matching_prefer_dual_stack(&spec_ref(svc), old_spec.as_ref()) {
        return Vec::new();
    }
    let primary = cluster_families.first().copied().unwrap_or("IPv4");
    {
        let spec = spec_mut(svc);
        if spec.ip_family_policy.is_none() {
            spec.ip_family_policy = match old_spec.as_ref().and_then(|o| o.ip_family_policy.clone())
            {
                Some(p) => Some(p),
                None if s(&spec.cluster_ip) == "None"
                    && spec.selector.as_ref().is_none_or(|m| m.is_empty()) =>
                {
                    Some("RequireDualStack".into())
                }
                None => Some("SingleStack".into()),
            };
        }
    }
    let pre = validate_cluster_ips_related_fields(svc);
    if !pre.is_empty() {
        return pre;
    }

    let spec_path = Path::new("spec");
    let mut errs = Vec::new();
    let spec = spec_mut(svc);
    let policy = s(&spec.ip_family_policy).to_string();
    if let Some(old) = &old_spec {
        if policy == "SingleStack" {
            if same_cluster_ips_plural(old, spec) && cluster_ips(spec).len() > 1 {
                spec.cluster_ips.as_mut().unwrap().truncate(1);
            }
            if families(old) == families(spec) && families(spec).len() > 1 {
                spec.ip_families.as_mut().unwrap().truncate(1);
            }
        } else {
            if !cluster_ips(spec).is_empty() && cluster_ips(spec).len() < cluster_ips(old).len() {
                errs.push(Error::invalid(
                    &spec_path.child("ipFamilyPolicy"),
                    policy_value(spec),
                    "must be 'SingleStack' to release the secondary cluster IP",
                ));
            }
            if !families(spec).is_empty() && families(spec).len() < families(old).len() {
                errs.push(Error::invalid(
                    &spec_path.child("ipFamilyPolicy"),
                    policy_value(spec),
                    "must be 'SingleStack' to release the secondary IP family",
                ));
            }
        }
    }
    if policy == "SingleStack" {
        if cluster_ips(spec).len() == 2 {
            errs.push(Error::invalid(
                &spec_path.child("ipFamilyPolicy"),
                policy_value(spec),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if families(spec).len() == 2 {
            errs.push(Error::invalid(
                &spec_path.child("ipFamilyPolicy"),
                policy_value(spec),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }
    let ips: Vec<String> = cluster_ips(spec).to_vec();
    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" {
            break;
        }
        let fam = family_of(ip);
        if i >= families(spec).len() {
            if !cluster_families.contains(&fam) {
                errs.push(Error::invalid(
                    &spec_path.child("clusterIPs").index(i),
                    gofmt::strings(&ips),
                    format!("{fam} is not configured on this cluster"),
                ));
            } else {
                spec.ip_families
                    .get_or_insert_with(Vec::new)
                    .push(fam.to_string());
            }
        }
    }
    if !errs.is_empty() {
        return errs;
    }

    if s(&spec.cluster_ip) == "None" && spec.selector.as_ref().is_none_or(|m| m.is_empty()) {
        let fams = spec.ip_families.get_or_insert_with(Vec::new);
        if fams.is_empty() {
            fams.push(primary.to_string());
        }
        if fams.len() < 2 && policy != "SingleStack" {
            let other = other_family(&fams[0]);
            fams.push(other.to_string());
        }
        return Vec::new();
    }

    if policy == "RequireDualStack" && cluster_families.len() < 2 {
        errs.push(Error::invalid(
            &spec_path.child("ipFamilyPolicy"),
            policy_value(spec),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, fam) in families(spec).iter().enumerate() {
        if !cluster_families.contains(&fam.as_str()) {
            errs.push(Error::invalid(
                &spec_path.child("ipFamilies").index(i),
                fam.as_str(),
                "not configured on this cluster",
            ));
        }
    }
    if !errs.is_empty() {
        return errs;
    }
    let fams = spec.ip_families.get_or_insert_with(Vec::new);
    if fams.is_empty() {
        fams.push(primary.to_string());
    }
    if policy != "SingleStack" && fams.len() == 1 && cluster_families.len() == 2 {
        let other = other_family(&fams[0]);
        fams.push(other.to_string());
    }
    Vec::new()
}

#[cfg(test)]
mod tests;
