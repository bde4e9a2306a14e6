//! Updates of a Pod: `ValidatePodUpdate` (only images, `activeDeadlineSeconds`, toleration
//! additions and scheduling-gate removals may change) and `ValidatePodStatusUpdate`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde_json::Value;

use crate::field::{BadValue, Error, ErrorList, Path};
use crate::validation::meta::validate_object_meta_update;
use crate::validation::names::{
    inclusive_range_error, name_is_dns_subdomain, validate_ip, validate_qualified_name,
};
use crate::validation::s;

use super::create::validate_pod_metadata_and_spec;

/// The fields a Pod update may change (`updatablePodSpecFields`).
const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`: metadata, the full create rules, then only container images,
/// `activeDeadlineSeconds` (down), toleration additions and scheduling gate removals may change.
///
/// The forbidden-change message ends with a diff of the spec, as Kubernetes' does; Kubernetes'
/// own diff (`cmp.Diff`) is deliberately unstable, so only its first line is reproducible.
pub fn validate_update(new: &Pod, old: &Pod) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &meta_path);
    errs.extend(validate_pod_metadata_and_spec(new));
    let spec_path = Path::new("spec");
    let ns = new.spec.clone().unwrap_or_default();
    let os = old.spec.clone().unwrap_or_default();

    for (field, n, o) in [
        ("containers", &ns.containers, &os.containers),
        (
            "initContainers",
            &ns.init_containers.clone().unwrap_or_default(),
            &os.init_containers.clone().unwrap_or_default(),
        ),
    ] {
        let p = spec_path.child(field);
        if n.len() != o.len() {
            errs.push(Error::forbidden(
                &p,
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
        for (i, c) in n.iter().enumerate() {
            let image = s(&c.image);
            if image.is_empty() {
                errs.push(Error::required(&p.index(i).child("image"), ""));
            }
            if image.trim().len() != image.len() {
                errs.push(Error::invalid(
                    &p.index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }

    let ads = spec_path.child("activeDeadlineSeconds");
    match (ns.active_deadline_seconds, os.active_deadline_seconds) {
        (Some(n), _) if n < 0 || n > i64::from(i32::MAX) => {
            errs.push(Error::invalid(
                &ads,
                n,
                inclusive_range_error(0, i32::MAX.into()),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(Error::invalid(
                &ads,
                n,
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => errs.push(Error::invalid(
            &ads,
            BadValue::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }

    // Only additions to tolerations (tolerationSeconds may change).
    let strip = |t: &k8s_openapi::api::core::v1::Toleration| {
        let mut t = t.clone();
        t.toleration_seconds = None;
        t
    };
    let new_tols: Vec<_> = ns.tolerations.iter().flatten().map(strip).collect();
    if os
        .tolerations
        .iter()
        .flatten()
        .any(|o| !new_tols.contains(&strip(o)))
    {
        errs.push(Error::forbidden(
            &spec_path.child("tolerations"),
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    let old_gates: BTreeSet<&str> = os
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, g) in ns.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(g.name.as_str()) {
            errs.push(Error::forbidden(
                &spec_path.child("schedulingGates").index(i).child("name"),
                format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    g.name
                ),
            ));
        }
    }

    if ns == os {
        return errs;
    }
    let mut munged = ns.clone();
    for (c, o) in munged.containers.iter_mut().zip(&os.containers) {
        c.image = o.image.clone();
    }
    if let (Some(n), Some(o)) = (munged.init_containers.as_mut(), &os.init_containers) {
        for (c, o) in n.iter_mut().zip(o) {
            c.image = o.image.clone();
        }
    }
    munged.active_deadline_seconds = os.active_deadline_seconds;
    munged.scheduling_gates = os.scheduling_gates.clone();
    munged.tolerations = os.tolerations.clone();
    if os.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = os.termination_grace_period_seconds;
    }
    if munged != os {
        errs.push(Error::forbidden(
            &spec_path,
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}",
                spec_diff(&os, &munged)
            ),
        ));
    }
    errs
}

/// A readable diff of two specs (`-` old, `+` new), one changed leaf per line.
fn spec_diff(old: &PodSpec, new: &PodSpec) -> String {
    fn leaves(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    leaves(&format!("{prefix}.{k}"), v, out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    leaves(&format!("{prefix}[{i}]"), v, out);
                }
            }
            _ => {
                out.insert(prefix.to_string(), v.to_string());
            }
        }
    }
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    leaves(
        "spec",
        &serde_json::to_value(old).unwrap_or(Value::Null),
        &mut a,
    );
    leaves(
        "spec",
        &serde_json::to_value(new).unwrap_or(Value::Null),
        &mut b,
    );
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        match (a.get(k), b.get(k)) {
            (x, y) if x == y => {}
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("- \t{k}: {x},\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("+ \t{k}: {y},\n"));
                }
            }
        }
    }
    out.push_str("  }\n");
    out
}

/// `ValidatePodStatusUpdate`
pub fn validate_status_update(new: &Pod, old: &Pod) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &meta_path);
    let nst = new.status.clone().unwrap_or_default();
    let ost = old.status.clone().unwrap_or_default();
    // Kubernetes puts pod conditions under `metadata.conditions[i].Type` (sic).
    for (i, c) in nst.conditions.iter().flatten().enumerate() {
        if ["PodScheduled", "Ready", "Initialized"].contains(&c.type_.as_str()) {
            continue;
        }
        errs.extend(validate_qualified_name(
            &c.type_,
            &meta_path.child("conditions").index(i).child("Type"),
        ));
    }
    let status_path = Path::new("status");
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .map(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    if s(&node(new)) != s(&node(old)) {
        errs.push(Error::forbidden(
            &status_path.child("nodeName"),
            "may not be changed directly",
        ));
    }
    let nominated = s(&nst.nominated_node_name);
    if nominated != s(&ost.nominated_node_name) && !nominated.is_empty() {
        for m in name_is_dns_subdomain(nominated, false) {
            errs.push(Error::invalid(
                &status_path.child("nominatedNodeName"),
                nominated,
                m,
            ));
        }
    }
    if s(&nst.qos_class) != s(&ost.qos_class) {
        errs.push(Error::invalid(
            &status_path.child("qosClass"),
            s(&nst.qos_class),
            "field is immutable",
        ));
    }
    let restart = old
        .spec
        .as_ref()
        .map(|s| crate::validation::s(&s.restart_policy).to_string())
        .unwrap_or_default();
    errs.extend(validate_container_state_transition(
        nst.container_statuses.as_deref().unwrap_or_default(),
        ost.container_statuses.as_deref().unwrap_or_default(),
        &status_path.child("containerStatuses"),
        &restart,
    ));
    let ips: Vec<String> = nst
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.clone())
        .collect();
    let ips_path = status_path.child("podIPs");
    for (i, ip) in ips.iter().enumerate() {
        errs.extend(validate_ip(ip, &ips_path.index(i)));
    }
    if ips.len() > 1 {
        let v6 = ips
            .iter()
            .filter(|ip| crate::validation::names::is_ipv6_string(ip))
            .count();
        if v6 == 0 || v6 == ips.len() || ips.len() > 2 {
            let shown: Vec<String> = ips
                .iter()
                .map(|ip| format!("core.PodIP{{IP:{}}}", crate::field::go_quote(ip)))
                .collect();
            errs.push(Error::invalid(
                &ips_path,
                BadValue::Raw(format!("[]core.PodIP{{{}}}", shown.join(", "))),
                "may specify no more than one IP for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, ip) in ips.iter().enumerate() {
            if !seen.insert(ip) {
                errs.push(Error::duplicate(
                    &ips_path.index(i),
                    BadValue::Raw(format!("core.PodIP{{IP:{}}}", crate::field::go_quote(ip))),
                ));
            }
        }
    }
    let host_ips: Vec<String> = nst
        .host_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.clone())
        .collect();
    if let Some(first) = host_ips.first() {
        let p = status_path.child("hostIPs");
        if s(&nst.host_ip) != first {
            errs.push(Error::invalid(
                &p.index(0).child("ip"),
                first.as_str(),
                "must be equal to `hostIP`",
            ));
        }
        for (i, ip) in host_ips.iter().enumerate() {
            errs.extend(validate_ip(ip, &p.index(i)));
        }
    }
    errs
}

/// `ValidateContainerStateTransition`: with `restartPolicy` Never (or OnFailure after success),
/// a terminated container may not come back.
fn validate_container_state_transition(
    new: &[k8s_openapi::api::core::v1::ContainerStatus],
    old: &[k8s_openapi::api::core::v1::ContainerStatus],
    path: &Path,
    restart_policy: &str,
) -> ErrorList {
    let mut errs = Vec::new();
    if restart_policy == "Always" {
        return errs;
    }
    for (i, o) in old.iter().enumerate() {
        let Some(term) = o.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
            continue;
        };
        if term.exit_code != 0 && restart_policy == "OnFailure" {
            continue;
        }
        for n in new {
            if n.name == o.name
                && n.state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_none()
            {
                errs.push(Error::forbidden(
                    &path.index(i).child("state"),
                    "may not be transitioned to non-terminated state",
                ));
            }
        }
    }
    errs
}
