//! `ValidatePodSpec` and the pod-level checks it runs itself: `validatePodHostNetworkDeps`,
//! `validatePodDNSConfig`, `ValidateTolerations`. Containers, volumes and the security context
//! have their own files, as their helpers have their own sections in upstream's validation.go.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodSpec;

use crate::field::{Error, ErrorList, Path};
use crate::validation::gofmt;
use crate::validation::names::{
    inclusive_range_error, is_valid_label_value, name_is_dns_subdomain, validate_dns1123_label,
    validate_dns1123_subdomain, validate_ip, validate_labels, validate_qualified_name,
};
use crate::validation::{enum_value, s, TAINT_EFFECTS};

use super::containers::{validate_containers, validate_init_containers};
use super::security_context::validate_pod_security_context;
use super::volumes::validate_volumes;

/// `PodValidationOptions`, reduced to what changes messages here.
#[derive(Clone, Copy, Debug, Default)]
pub struct PodValidationOptions {
    /// The spec belongs to a Pod (not a template in a Deployment or ReplicaSet).
    pub resource_is_pod: bool,
}

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

/// `ValidatePodSpec`
pub fn validate_pod_spec(spec: &PodSpec, path: &Path, opts: PodValidationOptions) -> ErrorList {
    let mut errs = Vec::new();
    if spec.termination_grace_period_seconds.is_none() {
        errs.push(Error::required(
            &path.child("terminationGracePeriodSeconds"),
            "",
        ));
    }
    let grace = spec.termination_grace_period_seconds;
    let (volumes, vol_errs) = validate_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &path.child("volumes"),
    );
    errs.extend(vol_errs);
    errs.extend(validate_containers(
        &spec.containers,
        &volumes,
        grace,
        &path.child("containers"),
    ));
    errs.extend(validate_init_containers(
        spec.init_containers.as_deref().unwrap_or_default(),
        &spec.containers,
        &volumes,
        grace,
        &path.child("initContainers"),
    ));
    errs.extend(super::ephemeral::validate_ephemeral_containers(
        spec.ephemeral_containers.as_deref().unwrap_or_default(),
        &spec.containers,
        spec.init_containers.as_deref().unwrap_or_default(),
        &volumes,
        &path.child("ephemeralContainers"),
    ));
    errs.extend(validate_host_network_deps(spec, path, opts));
    errs.extend(enum_value(
        s(&spec.restart_policy),
        &path.child("restartPolicy"),
        RESTART_POLICIES,
    ));
    errs.extend(enum_value(
        s(&spec.dns_policy),
        &path.child("dnsPolicy"),
        DNS_POLICIES,
    ));
    errs.extend(validate_labels(
        spec.node_selector.as_ref(),
        &path.child("nodeSelector"),
    ));
    errs.extend(validate_pod_security_context(
        spec,
        &path.child("securityContext"),
    ));
    errs.extend(validate_dns_config(spec, &path.child("dnsConfig")));
    for (i, g) in spec.readiness_gates.iter().flatten().enumerate() {
        errs.extend(validate_qualified_name(
            &g.condition_type,
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    let mut gates = BTreeSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = path.child("schedulingGates").index(i);
        errs.extend(validate_qualified_name(&g.name, &p));
        if !gates.insert(g.name.clone()) {
            errs.push(Error::duplicate(&p, g.name.as_str()));
        }
    }
    if spec.host_users == Some(false) {
        let forbidden = "when `pod.Spec.HostUsers` is false";
        if spec.host_network == Some(true) {
            errs.push(Error::forbidden(&path.child("hostNetwork"), forbidden));
        }
        if spec.host_pid == Some(true) {
            errs.push(Error::forbidden(&path.child("HostPID"), forbidden));
        }
        if spec.host_ipc == Some(true) {
            errs.push(Error::forbidden(&path.child("HostIPC"), forbidden));
        }
    }
    for (field, value) in [
        ("serviceAccountName", s(&spec.service_account_name)),
        ("nodeName", s(&spec.node_name)),
    ] {
        if !value.is_empty() {
            for m in name_is_dns_subdomain(value, false) {
                errs.push(Error::invalid(&path.child(field), value, m));
            }
        }
    }
    if let Some(v) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&v) {
            errs.push(Error::invalid(
                &path.child("activeDeadlineSeconds"),
                v,
                inclusive_range_error(1, i32::MAX.into()),
            ));
        }
    }
    for (field, value) in [
        ("hostname", s(&spec.hostname)),
        ("subdomain", s(&spec.subdomain)),
    ] {
        if !value.is_empty() {
            errs.extend(validate_dns1123_label(value, &path.child(field)));
        }
    }
    errs.extend(validate_tolerations(spec, &path.child("tolerations")));
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let p = path.child("hostAliases").index(i);
        errs.extend(validate_ip(&alias.ip, &p.child("ip")));
        for (j, h) in alias.hostnames.iter().flatten().enumerate() {
            errs.extend(validate_dns1123_subdomain(
                h,
                &p.child("hostnames").index(j),
            ));
        }
    }
    let pcn = s(&spec.priority_class_name);
    if !pcn.is_empty() {
        for m in name_is_dns_subdomain(pcn, false) {
            errs.push(Error::invalid(&path.child("priorityClassName"), pcn, m));
        }
    }
    if let Some(rc) = &spec.runtime_class_name {
        for m in name_is_dns_subdomain(rc, false) {
            errs.push(Error::invalid(&path.child("runtimeClassName"), rc, m));
        }
    }
    if let Some(pp) = &spec.preemption_policy {
        errs.extend(enum_value(
            pp,
            &path.child("preemptionPolicy"),
            &["PreemptLowerPriority", "Never"],
        ));
    }
    if let Some(os) = &spec.os {
        if os.name.is_empty() {
            errs.push(Error::required(
                &path.child("os").child("name"),
                "cannot be empty",
            ));
        } else if !["linux", "windows"].contains(&os.name.as_str()) {
            errs.push(Error::not_supported(
                &path.child("os"),
                os.name.as_str(),
                &["linux", "windows"],
            ));
        }
    }
    errs
}

/// `validatePodHostNetworkDeps`
fn validate_host_network_deps(
    spec: &PodSpec,
    path: &Path,
    opts: PodValidationOptions,
) -> ErrorList {
    let mut errs = Vec::new();
    if spec.host_network != Some(true) {
        return errs;
    }
    for (i, c) in spec.containers.iter().enumerate() {
        for (j, port) in c.ports.iter().flatten().enumerate() {
            let hp = port.host_port.unwrap_or(0);
            if (opts.resource_is_pod || hp != 0) && hp != port.container_port {
                errs.push(Error::invalid(
                    &path
                        .child("containers")
                        .index(i)
                        .child("ports")
                        .index(j)
                        .child("hostPort"),
                    hp,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
    errs
}

fn validate_dns_config(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if s(&spec.dns_policy) == "None" {
        let Some(cfg) = &spec.dns_config else {
            return vec![Error::required(
                path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )];
        };
        if cfg.nameservers.as_deref().unwrap_or_default().is_empty() {
            return vec![Error::required(
                &path.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            )];
        }
    }
    let Some(cfg) = &spec.dns_config else {
        return errs;
    };
    let nameservers = cfg.nameservers.as_deref().unwrap_or_default();
    if nameservers.len() > 3 {
        errs.push(Error::invalid(
            &path.child("nameservers"),
            gofmt::strings(nameservers),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        errs.extend(validate_ip(ns, &path.child("nameservers").index(i)));
    }
    let searches = cfg.searches.as_deref().unwrap_or_default();
    if searches.len() > 32 {
        errs.push(Error::invalid(
            &path.child("searches"),
            gofmt::strings(searches),
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        errs.push(Error::invalid(
            &path.child("searches"),
            gofmt::strings(searches),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        let search = search.strip_suffix('.').unwrap_or(search);
        errs.extend(validate_dns1123_subdomain(
            search,
            &path.child("searches").index(i),
        ));
    }
    for (i, o) in cfg.options.iter().flatten().enumerate() {
        if s(&o.name).is_empty() {
            errs.push(Error::required(
                &path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    errs
}

/// `ValidateTolerations`
fn validate_tolerations(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let p = path.index(i);
        let key = s(&t.key);
        let op = s(&t.operator);
        let effect = s(&t.effect);
        let value = s(&t.value);
        if !key.is_empty() {
            errs.extend(validate_qualified_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(Error::invalid(
                &p.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(Error::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(Error::invalid(&p.child("operator"), value, msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(Error::invalid(
                        &p.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            _ => errs.push(Error::not_supported(
                &p.child("operator"),
                op,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            errs.push(Error::not_supported(
                &p.child("effect"),
                effect,
                TAINT_EFFECTS,
            ));
        }
    }
    errs
}
