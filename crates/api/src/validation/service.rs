//! Service validation: mirrors `ValidateService`, `ValidateServiceCreate`,
//! `ValidateServiceUpdate`, `ValidateServiceStatusUpdate`, `ValidateServiceClusterIPsRelatedFields`,
//! `validateUpgradeDowngradeClusterIPs/IPFamilies`, `validateLoadBalancerClassField` and
//! `ValidateLoadBalancerStatus` of `pkg/apis/core/validation/validation.go` (Kubernetes 1.32/1.33,
//! default feature gates).
//!
//! Input is the Service as it will be stored: defaulted ([`crate::defaults::service`]), with
//! `ipFamilies`/`ipFamilyPolicy` initialised and clusterIP/nodePorts allocated. Allocation errors
//! ("provided IP is already allocated", ranges) are the allocator's, not produced here.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{LoadBalancerStatus, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::gofmt;
use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{
    is_ipv6_string, is_valid_port_num, name_is_dns1035_label, validate_cidr,
    validate_dns1123_subdomain, validate_ip, validate_labels, validate_non_special_ip,
    validate_port_num_or_name, validate_qualified_name,
};
use super::{enum_value, s, validate_port_and_protocol, validate_port_name};
use crate::field::{BadValue, Error, ErrorList, Path};

/// The most a ClientIP affinity may last (`core.MaxClientIPServiceAffinitySeconds`).
pub const MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS: i32 = 86400;

/// Sorted as `sets.List` sorts them, the order Kubernetes prints in "supported values".
const SUPPORTED_SESSION_AFFINITY: &[&str] = &["ClientIP", "None"];
const SUPPORTED_SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const SUPPORTED_TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const SUPPORTED_IP_FAMILIES: &[&str] = &["IPv4", "IPv6"];
const SUPPORTED_IP_FAMILY_POLICIES: &[&str] =
    &["PreferDualStack", "RequireDualStack", "SingleStack"];
const SUPPORTED_LB_IP_MODES: &[&str] = &["Proxy", "VIP"];

const ANNOTATION_TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";
const ANNOTATION_TOPOLOGY_AWARE_HINTS: &str = "service.kubernetes.io/topology-aware-hints";
const ANNOTATION_LB_SOURCE_RANGES: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

fn spec(svc: &Service) -> std::borrow::Cow<'_, ServiceSpec> {
    match &svc.spec {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(ServiceSpec::default()),
    }
}

fn cluster_ips(spec: &ServiceSpec) -> &[String] {
    spec.cluster_ips.as_deref().unwrap_or_default()
}

/// `isHeadlessService`: `clusterIPs == ["None"]`.
pub fn is_headless(spec: &ServiceSpec) -> bool {
    matches!(cluster_ips(spec), [ip] if ip == "None")
}

/// `apiservice.ExternallyAccessible`: NodePort, LoadBalancer, or ClusterIP with externalIPs.
pub fn externally_accessible(spec: &ServiceSpec) -> bool {
    match s(&spec.type_) {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => !spec.external_ips.as_deref().unwrap_or_default().is_empty(),
        _ => false,
    }
}

/// `apiservice.NeedsHealthCheck`: LoadBalancer with `externalTrafficPolicy: Local`.
pub fn needs_health_check(spec: &ServiceSpec) -> bool {
    s(&spec.type_) == "LoadBalancer" && s(&spec.external_traffic_policy) == "Local"
}

/// `ValidateServiceCreate`
pub fn validate_create(svc: &Service) -> ErrorList {
    validate_service(svc)
}

/// `ValidateServiceUpdate`: metadata, clusterIP/ipFamilies immutability (with the dual-stack
/// upgrade/downgrade rules), loadBalancerClass, healthCheckNodePort, then the full create rules.
pub fn validate_update(new: &Service, old: &Service) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let (ns, os) = (spec(new), spec(old));
    errs.extend(validate_upgrade_downgrade_cluster_ips(&os, &ns));
    errs.extend(validate_upgrade_downgrade_ip_families(&os, &ns));
    errs.extend(validate_load_balancer_class(Some(&os), &ns));
    if needs_health_check(&os)
        && needs_health_check(&ns)
        && ns.health_check_node_port.unwrap_or(0) != os.health_check_node_port.unwrap_or(0)
    {
        errs.push(Error::forbidden(
            &Path::new("spec").child("healthCheckNodePort"),
            "field is immutable",
        ));
    }
    errs.extend(validate_service(new));
    errs
}

/// `ValidateServiceStatusUpdate`: metadata and `status.loadBalancer`.
pub fn validate_status_update(new: &Service, old: &Service) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let lb = new
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.clone())
        .unwrap_or_default();
    errs.extend(validate_load_balancer_status(
        &lb,
        &Path::new("status").child("loadBalancer"),
        &spec(new),
    ));
    errs
}

/// `ValidateService`
pub fn validate_service(svc: &Service) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = validate_object_meta(&svc.metadata, true, name_is_dns1035_label, &meta_path);

    let annotations = svc.metadata.annotations.as_ref();
    let hints = annotations.and_then(|a| a.get(ANNOTATION_TOPOLOGY_AWARE_HINTS));
    let mode = annotations.and_then(|a| a.get(ANNOTATION_TOPOLOGY_MODE));
    if let (Some(hints), Some(mode)) = (hints, mode) {
        if hints != mode {
            errs.push(Error::invalid(
                &meta_path.child("annotations").key(ANNOTATION_TOPOLOGY_MODE),
                mode,
                format!("must match annotations[{ANNOTATION_TOPOLOGY_AWARE_HINTS}] when both are specified"),
            ));
        }
    }

    let spec = spec(svc);
    let spec_path = Path::new("spec");
    let ty = s(&spec.type_);
    let ports = spec.ports.as_deref().unwrap_or_default();
    let headless = is_headless(&spec);

    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(Error::required(&spec_path.child("ports"), ""));
    }

    match ty {
        "LoadBalancer" | "NodePort" if headless => {
            errs.push(Error::invalid(
                &spec_path.child("clusterIPs").index(0),
                cluster_ips(&spec)[0].as_str(),
                format!("may not be set to 'None' for {ty} services"),
            ));
        }
        "ExternalName" => {
            let forbidden = "may not be set for ExternalName services";
            if !cluster_ips(&spec).is_empty() {
                errs.push(Error::forbidden(&spec_path.child("clusterIPs"), forbidden));
            }
            if !spec.ip_families.as_deref().unwrap_or_default().is_empty() {
                errs.push(Error::forbidden(&spec_path.child("ipFamilies"), forbidden));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(Error::forbidden(
                    &spec_path.child("ipFamilyPolicy"),
                    forbidden,
                ));
            }
            let external_name = s(&spec.external_name);
            let cname = external_name.strip_suffix('.').unwrap_or(external_name);
            if cname.is_empty() {
                errs.push(Error::required(&spec_path.child("externalName"), ""));
            } else {
                errs.extend(validate_dns1123_subdomain(
                    cname,
                    &spec_path.child("externalName"),
                ));
            }
        }
        _ => {}
    }

    let mut port_names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        errs.extend(validate_service_port(
            port,
            ports.len() > 1,
            &mut port_names,
            &spec_path.child("ports").index(i),
        ));
    }

    if spec.selector.is_some() {
        errs.extend(validate_labels(
            spec.selector.as_ref(),
            &spec_path.child("selector"),
        ));
    }

    let affinity = s(&spec.session_affinity);
    errs.extend(enum_value(
        affinity,
        &spec_path.child("sessionAffinity"),
        SUPPORTED_SESSION_AFFINITY,
    ));
    let config_path = spec_path.child("sessionAffinityConfig");
    if affinity == "ClientIP" {
        errs.extend(validate_client_ip_affinity_config(&spec, &config_path));
    } else if affinity == "None" && spec.session_affinity_config.is_some() {
        errs.push(Error::forbidden(
            &config_path,
            "must not be set when session affinity is None",
        ));
    }

    errs.extend(validate_cluster_ips_related_fields(svc));

    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        let p = spec_path.child("externalIPs").index(i);
        let ip_errs = validate_ip(ip, &p);
        if ip_errs.is_empty() {
            errs.extend(validate_non_special_ip(ip, &p));
        } else {
            errs.extend(ip_errs);
        }
    }

    if ty.is_empty() {
        errs.push(Error::required(&spec_path.child("type"), ""));
    } else if !SUPPORTED_SERVICE_TYPES.contains(&ty) {
        errs.push(Error::not_supported(
            &spec_path.child("type"),
            ty,
            SUPPORTED_SERVICE_TYPES,
        ));
    }

    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port.node_port.unwrap_or(0) != 0 {
                errs.push(Error::forbidden(
                    &spec_path.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    // Duplicate NodePorts, per (protocol, nodePort).
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let np = port.node_port.unwrap_or(0);
        if np == 0 {
            continue;
        }
        if !node_ports.insert((s(&port.protocol).to_string(), np)) {
            errs.push(Error::duplicate(
                &spec_path.child("ports").index(i).child("nodePort"),
                np,
            ));
        }
    }

    // Duplicate ports, per (protocol, port).
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !seen.insert((s(&port.protocol).to_string(), port.port)) {
            errs.push(Error::duplicate(
                &spec_path.child("ports").index(i),
                gofmt::service_port_key(s(&port.protocol), port.port),
            ));
        }
    }

    let ranges = spec
        .load_balancer_source_ranges
        .as_deref()
        .unwrap_or_default();
    if !ranges.is_empty() {
        // Kubernetes' path has a capital L here.
        let p = spec_path.child("LoadBalancerSourceRanges");
        if ty != "LoadBalancer" {
            errs.push(Error::forbidden(
                &p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            errs.extend(validate_cidr(r.trim(), &p.index(i)));
        }
    } else if let Some(val) = annotations.and_then(|a| a.get(ANNOTATION_LB_SOURCE_RANGES)) {
        let p = Path::new("metadata")
            .child("annotations")
            .key(ANNOTATION_LB_SOURCE_RANGES);
        if ty != "LoadBalancer" {
            errs.push(Error::forbidden(
                &p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        let val = val.trim();
        if !val.is_empty() {
            for r in val.split(',') {
                errs.extend(validate_cidr(r.trim(), &p));
            }
        }
    }

    if spec.allocate_load_balancer_node_ports.is_some() && ty != "LoadBalancer" {
        errs.push(Error::forbidden(
            &spec_path.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        // Kubernetes reports this one without the `spec.` prefix.
        errs.push(Error::required(
            &Path::new("allocateLoadBalancerNodePorts"),
            "",
        ));
    }

    errs.extend(validate_load_balancer_class(None, &spec));
    errs.extend(validate_external_traffic_policy(&spec));
    errs.extend(validate_internal_traffic_policy(&spec));

    if let Some(td) = &spec.traffic_distribution {
        if td != "PreferClose" {
            errs.push(Error::not_supported(
                &spec_path.child("trafficDistribution"),
                td.as_str(),
                &["PreferClose"],
            ));
        }
    }
    errs
}

/// `validateServicePort`
fn validate_service_port(
    port: &ServicePort,
    require_name: bool,
    names: &mut BTreeSet<String>,
    path: &Path,
) -> ErrorList {
    let name = s(&port.name);
    let mut errs = validate_port_name(name, require_name, path);
    if !name.is_empty() && !names.insert(name.to_string()) {
        errs.push(Error::duplicate(&path.child("name"), name));
    }
    errs.extend(validate_port_and_protocol(
        port.port,
        s(&port.protocol),
        path,
    ));
    let target = port.target_port.clone().unwrap_or(IntOrString::Int(0));
    errs.extend(validate_port_num_or_name(
        &target,
        &path.child("targetPort"),
    ));
    if let Some(app) = &port.app_protocol {
        errs.extend(validate_qualified_name(app, &path.child("appProtocol")));
    }
    errs
}

/// `validateClientIPAffinityConfig`
fn validate_client_ip_affinity_config(spec: &ServiceSpec, path: &Path) -> ErrorList {
    let detail = "when session affinity type is ClientIP";
    let Some(config) = &spec.session_affinity_config else {
        return vec![Error::required(path, detail)];
    };
    let Some(client_ip) = &config.client_ip else {
        return vec![Error::required(&path.child("clientIP"), detail)];
    };
    let p = path.child("clientIP").child("timeoutSeconds");
    match client_ip.timeout_seconds {
        None => vec![Error::required(&p, detail)],
        Some(t) if t <= 0 || t > MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS => vec![Error::invalid(
            &p,
            t,
            format!(
                "must be greater than 0 and less than {MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS}"
            ),
        )],
        Some(_) => Vec::new(),
    }
}

/// `validateServiceExternalTrafficPolicy` (plus the healthCheckNodePort rules).
fn validate_external_traffic_policy(spec: &ServiceSpec) -> ErrorList {
    let mut errs = Vec::new();
    let p = Path::new("spec");
    let etp = s(&spec.external_traffic_policy);
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(Error::invalid(
                &p.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(Error::required(&p.child("externalTrafficPolicy"), ""));
    } else if !SUPPORTED_TRAFFIC_POLICIES.contains(&etp) {
        errs.push(Error::not_supported(
            &p.child("externalTrafficPolicy"),
            etp,
            SUPPORTED_TRAFFIC_POLICIES,
        ));
    }
    let hc = spec.health_check_node_port.unwrap_or(0);
    if !needs_health_check(spec) {
        if hc != 0 {
            errs.push(Error::invalid(
                &p.child("healthCheckNodePort"),
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        errs.push(Error::required(&p.child("healthCheckNodePort"), ""));
    } else {
        for m in is_valid_port_num(hc.into()) {
            errs.push(Error::invalid(&p.child("healthCheckNodePort"), hc, m));
        }
    }
    errs
}

/// `validateServiceInternalTrafficFieldsValue`
fn validate_internal_traffic_policy(spec: &ServiceSpec) -> ErrorList {
    let p = Path::new("spec").child("internalTrafficPolicy");
    match &spec.internal_traffic_policy {
        None if matches!(s(&spec.type_), "NodePort" | "LoadBalancer" | "ClusterIP") => {
            vec![Error::required(&p, "")]
        }
        Some(itp) if !SUPPORTED_TRAFFIC_POLICIES.contains(&itp.as_str()) => {
            vec![Error::not_supported(
                &p,
                itp.as_str(),
                SUPPORTED_TRAFFIC_POLICIES,
            )]
        }
        _ => Vec::new(),
    }
}

/// `validateLoadBalancerClassField`: immutable while LoadBalancer, a qualified name, and only on
/// LoadBalancer Services.
fn validate_load_balancer_class(old: Option<&ServiceSpec>, new: &ServiceSpec) -> ErrorList {
    let mut errs = Vec::new();
    let p = Path::new("spec").child("loadBalancerClass");
    let is_lb = |sp: &ServiceSpec| s(&sp.type_) == "LoadBalancer";
    if let Some(old) = old {
        if is_lb(old) && is_lb(new) && old.load_balancer_class != new.load_balancer_class {
            errs.push(Error::invalid(
                &p,
                match &new.load_balancer_class {
                    Some(c) => BadValue::Str(c.clone()),
                    None => BadValue::Null,
                },
                "may not change once set",
            ));
        }
    }
    if is_lb(new) {
        if let Some(class) = &new.load_balancer_class {
            errs.extend(validate_qualified_name(class, &p));
        }
    } else if new.load_balancer_class.is_some() {
        errs.push(Error::forbidden(
            &p,
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    errs
}

/// `ValidateServiceClusterIPsRelatedFields`: `clusterIP`/`clusterIPs` in sync and well-formed,
/// `ipFamilies`/`ipFamilyPolicy` supported, IPs matching their families. Also run before
/// allocation (see [`crate::defaults::service::init_ip_families`]).
pub fn validate_cluster_ips_related_fields(svc: &Service) -> ErrorList {
    let spec = spec(svc);
    if s(&spec.type_) == "ExternalName" {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let spec_path = Path::new("spec");
    let ips_path = spec_path.child("clusterIPs");
    let fam_path = spec_path.child("ipFamilies");
    let ips = cluster_ips(&spec);
    let families = spec.ip_families.as_deref().unwrap_or_default();
    let cluster_ip = s(&spec.cluster_ip);

    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(Error::required(&ips_path, ""));
        } else if ips[0] != cluster_ip {
            errs.push(Error::invalid(
                &ips_path,
                gofmt::strings(ips),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(Error::invalid(
            &ips_path,
            gofmt::strings(ips),
            "must be empty when `clusterIP` is not specified",
        ));
    }

    let mut seen = BTreeSet::new();
    for (i, fam) in families.iter().enumerate() {
        if !SUPPORTED_IP_FAMILIES.contains(&fam.as_str()) {
            errs.push(Error::not_supported(
                &fam_path.index(i),
                fam.as_str(),
                SUPPORTED_IP_FAMILIES,
            ));
        }
        if !seen.insert(fam.as_str()) {
            errs.push(Error::duplicate(&fam_path.index(i), fam.as_str()));
        }
    }

    if let Some(policy) = &spec.ip_family_policy {
        if !SUPPORTED_IP_FAMILY_POLICIES.contains(&policy.as_str()) {
            errs.push(Error::not_supported(
                &spec_path.child("ipFamilyPolicy"),
                policy.as_str(),
                SUPPORTED_IP_FAMILY_POLICIES,
            ));
        }
    }

    let mut has_invalid_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                has_invalid_ips = true;
                errs.push(Error::invalid(
                    &ips_path,
                    gofmt::strings(ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let ip_errs = validate_ip(ip, &ips_path.index(i));
        has_invalid_ips |= !ip_errs.is_empty();
        errs.extend(ip_errs);
    }

    if ips.len() > 2 {
        errs.push(Error::invalid(
            &ips_path,
            gofmt::strings(ips),
            "may only hold up to 2 values",
        ));
    }
    if has_invalid_ips {
        return errs;
    }

    if ips.len() > 1 {
        let v6 = ips.iter().filter(|ip| is_ipv6_string(ip)).count();
        let dual_stack = v6 > 0 && v6 < ips.len();
        if !dual_stack {
            errs.push(Error::invalid(
                &ips_path,
                gofmt::strings(ips),
                "may specify no more than one IP for each IP family",
            ));
        }
    }

    if !is_headless(&spec) && !ips.is_empty() && !families.is_empty() {
        for (i, ip) in ips.iter().enumerate() {
            let Some(fam) = families.get(i) else { break };
            if fam == "IPv4" && is_ipv6_string(ip) {
                errs.push(Error::invalid(
                    &ips_path.index(i),
                    ip,
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if fam == "IPv6" && !is_ipv6_string(ip) {
                errs.push(Error::invalid(
                    &ips_path.index(i),
                    ip,
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

fn policy_value(spec: &ServiceSpec) -> BadValue {
    match &spec.ip_family_policy {
        Some(p) => BadValue::Str(p.clone()),
        None => BadValue::Null,
    }
}

/// `validateUpgradeDowngradeClusterIPs`
fn validate_upgrade_downgrade_cluster_ips(old: &ServiceSpec, new: &ServiceSpec) -> ErrorList {
    let mut errs = Vec::new();
    if s(&new.type_) == "ExternalName" || s(&old.type_) == "ExternalName" {
        return errs;
    }
    if is_headless(old) && is_headless(new) {
        return errs;
    }
    let (old_ips, new_ips) = (cluster_ips(old), cluster_ips(new));
    let p = Path::new("spec").child("clusterIPs");
    let changed = || {
        Error::invalid(
            &p.index(0),
            gofmt::strings(new_ips),
            "may not change once set",
        )
    };
    if old_ips.len() == new_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != new_ips[i] {
                errs.push(Error::invalid(
                    &p.index(i),
                    gofmt::strings(new_ips),
                    "may not change once set",
                ));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            errs.push(Error::invalid(
                &p.index(0),
                gofmt::strings(new_ips),
                "primary clusterIP can not be unset",
            ));
        }
        if !old_ips.is_empty() && !new_ips.is_empty() && new_ips[0] != old_ips[0] {
            errs.push(changed());
        }
        if new_ips.len() == 1 && s(&new.ip_family_policy) != "SingleStack" {
            errs.push(Error::invalid(
                &Path::new("spec").child("ipFamilyPolicy"),
                policy_value(new),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errs.push(changed());
    }
    errs
}

/// `validateUpgradeDowngradeIPFamilies` (including its quirks: index 0 for every mismatch, and
/// `clusterIPs` shown as the value when the primary family changes on a length change).
fn validate_upgrade_downgrade_ip_families(old: &ServiceSpec, new: &ServiceSpec) -> ErrorList {
    let mut errs = Vec::new();
    if s(&new.type_) == "ExternalName" || s(&old.type_) == "ExternalName" {
        return errs;
    }
    if is_headless(old) != is_headless(new) || is_headless(new) {
        return errs;
    }
    let old_f = old.ip_families.as_deref().unwrap_or_default();
    let new_f = new.ip_families.as_deref().unwrap_or_default();
    let p = Path::new("spec").child("ipFamilies").index(0);
    if old_f.len() == new_f.len() {
        for (i, f) in old_f.iter().enumerate() {
            if *f != new_f[i] {
                errs.push(Error::invalid(
                    &p,
                    gofmt::ip_families(new_f),
                    "may not change once set",
                ));
            }
        }
    } else if old_f.len() > new_f.len() {
        if cluster_ips(new).is_empty() {
            errs.push(Error::invalid(
                &p,
                gofmt::ip_families(new_f),
                "primary ipFamily can not be unset",
            ));
        }
        if !new_f.is_empty() && new_f[0] != old_f[0] {
            errs.push(Error::invalid(
                &p,
                gofmt::strings(cluster_ips(new)),
                "may not change once set",
            ));
        }
        if new_f.len() == 1 && s(&new.ip_family_policy) != "SingleStack" {
            errs.push(Error::invalid(
                &Path::new("spec").child("ipFamilyPolicy"),
                policy_value(new),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !old_f.is_empty() && !new_f.is_empty() && new_f[0] != old_f[0] {
        errs.push(Error::invalid(
            &p,
            gofmt::strings(cluster_ips(new)),
            "may not change once set",
        ));
    }
    errs
}

/// `ValidateLoadBalancerStatus` (gates `AllowServiceLBStatusOnNonLB` off, `LoadBalancerIPMode` on).
pub fn validate_load_balancer_status(
    status: &LoadBalancerStatus,
    path: &Path,
    spec: &ServiceSpec,
) -> ErrorList {
    let mut errs = Vec::new();
    let ingress_path = path.child("ingress");
    let ingress = status.ingress.as_deref().unwrap_or_default();
    if s(&spec.type_) != "LoadBalancer" && !ingress.is_empty() {
        errs.push(Error::forbidden(
            &ingress_path,
            "may only be used when `spec.type` is 'LoadBalancer'",
        ));
        return errs;
    }
    for (i, ing) in ingress.iter().enumerate() {
        let p = ingress_path.index(i);
        let ip = s(&ing.ip);
        if !ip.is_empty() {
            errs.extend(validate_ip(ip, &p.child("ip")));
        }
        match &ing.ip_mode {
            None if !ip.is_empty() => errs.push(Error::required(
                &p.child("ipMode"),
                "must be specified when `ip` is set",
            )),
            None => {}
            Some(_) if ip.is_empty() => errs.push(Error::forbidden(
                &p.child("ipMode"),
                "may not be specified when `ip` is not set",
            )),
            Some(mode) if !SUPPORTED_LB_IP_MODES.contains(&mode.as_str()) => errs.push(
                Error::not_supported(&p.child("ipMode"), mode.as_str(), SUPPORTED_LB_IP_MODES),
            ),
            Some(_) => {}
        }
        let hostname = s(&ing.hostname);
        if !hostname.is_empty() {
            errs.extend(validate_dns1123_subdomain(hostname, &p.child("hostname")));
            if super::names::parse_ip_sloppy(hostname).is_some() {
                errs.push(Error::invalid(
                    &p.child("hostname"),
                    hostname,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests;
