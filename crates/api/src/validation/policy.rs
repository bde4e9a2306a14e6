//! policy/v1 PodDisruptionBudget validation: mirrors `ValidatePodDisruptionBudget`,
//! `ValidatePodDisruptionBudgetSpec` and `ValidatePodDisruptionBudgetStatusUpdate` of
//! `pkg/apis/policy/validation/validation.go`.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};

use super::apps::{
    not_more_than_100_percent, validate_label_selector, validate_positive_int_or_percent,
};
use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{name_is_dns_subdomain, validate_nonnegative};
use crate::field::{BadValue, Error, ErrorList, Path};

/// `supportedUnhealthyPodEvictionPolicies`.
const UNHEALTHY_POD_EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];

/// `ValidatePodDisruptionBudget` (create).
pub fn validate_create(pdb: &PodDisruptionBudget) -> ErrorList {
    let mut errs = validate_object_meta(
        &pdb.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_spec(pdb.spec.as_ref()));
    errs
}

/// `ValidatePodDisruptionBudget` with the metadata update rules: the spec is mutable.
pub fn validate_update(new: &PodDisruptionBudget, old: &PodDisruptionBudget) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_spec(new.spec.as_ref()));
    errs
}

/// `ValidatePodDisruptionBudgetStatusUpdate`: every count non-negative.
pub fn validate_status_update(new: &PodDisruptionBudget, old: &PodDisruptionBudget) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let Some(status) = &new.status else {
        return errs;
    };
    let p = Path::new("status");
    for (name, v) in [
        ("disruptionsAllowed", status.disruptions_allowed),
        ("currentHealthy", status.current_healthy),
        ("desiredHealthy", status.desired_healthy),
        ("expectedPods", status.expected_pods),
    ] {
        errs.extend(validate_nonnegative(v.into(), &p.child(name)));
    }
    errs
}

/// Go's `%#v` of the spec, as `field.Invalid(fldPath, spec, ...)` prints it (pointers at a
/// placeholder address, as in the Deployment strategy's message).
fn spec_go(spec: &PodDisruptionBudgetSpec) -> BadValue {
    let ptr = |set: bool, ty: &str| {
        if set {
            format!("(*{ty})(0xc000010000)")
        } else {
            format!("(*{ty})(nil)")
        }
    };
    BadValue::Raw(format!(
        "policy.PodDisruptionBudgetSpec{{MinAvailable:{}, Selector:{}, MaxUnavailable:{}, UnhealthyPodEvictionPolicy:{}}}",
        ptr(spec.min_available.is_some(), "intstr.IntOrString"),
        ptr(spec.selector.is_some(), "v1.LabelSelector"),
        ptr(spec.max_unavailable.is_some(), "intstr.IntOrString"),
        ptr(spec.unhealthy_pod_eviction_policy.is_some(), "policy.UnhealthyPodEvictionPolicyType"),
    ))
}

/// `ValidatePodDisruptionBudgetSpec`.
fn validate_spec(spec: Option<&PodDisruptionBudgetSpec>) -> ErrorList {
    let mut errs = Vec::new();
    let Some(spec) = spec else {
        return errs;
    };
    let path = Path::new("spec");
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        errs.push(Error::invalid(
            &path,
            spec_go(spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (name, v) in [
        ("minAvailable", &spec.min_available),
        ("maxUnavailable", &spec.max_unavailable),
    ] {
        if let Some(v) = v {
            let p = path.child(name);
            errs.extend(validate_positive_int_or_percent(v, &p));
            errs.extend(not_more_than_100_percent(v, &p));
        }
    }
    if let Some(sel) = &spec.selector {
        errs.extend(validate_label_selector(sel, &path.child("selector")));
    }
    if let Some(p) = &spec.unhealthy_pod_eviction_policy {
        if !UNHEALTHY_POD_EVICTION_POLICIES.contains(&p.as_str()) {
            errs.push(Error::not_supported(
                &path.child("unhealthyPodEvictionPolicy"),
                p.as_str(),
                UNHEALTHY_POD_EVICTION_POLICIES,
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}),
        )
        .unwrap()
    }

    fn messages(errs: ErrorList) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn spec_rules_as_upstream() {
        assert!(validate_create(&pdb(
            json!({"minAvailable": 2, "selector": {"matchLabels": {"a": "b"}}})
        ))
        .is_empty());
        assert!(validate_create(&pdb(json!({"maxUnavailable": "50%"}))).is_empty());
        let both = messages(validate_create(&pdb(
            json!({"minAvailable": 1, "maxUnavailable": 1}),
        )));
        assert_eq!(both.len(), 1);
        assert!(both[0].starts_with("spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:(*intstr.IntOrString)(0xc000010000)"), "{both:?}");
        assert!(
            both[0].ends_with(": minAvailable and maxUnavailable cannot be both set"),
            "{both:?}"
        );
        assert_eq!(
            messages(validate_create(&pdb(json!({"minAvailable": -1})))),
            ["spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"]
        );
        assert_eq!(
            messages(validate_create(&pdb(json!({"maxUnavailable": "120%"})))),
            ["spec.maxUnavailable: Invalid value: 120%: must not be greater than 100%"]
        );
        assert_eq!(
            messages(validate_create(&pdb(json!({"unhealthyPodEvictionPolicy": "Never"})))),
            ["spec.unhealthyPodEvictionPolicy: Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""]
        );
    }
}
