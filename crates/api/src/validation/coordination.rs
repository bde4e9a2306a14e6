//! coordination.k8s.io/v1 Lease validation: mirrors `ValidateLease` / `ValidateLeaseUpdate` of
//! `pkg/apis/coordination/validation/validation.go`. (`spec.strategy` and
//! `spec.preferredHolder` belong to the CoordinatedLeaderElection feature, off by default: the
//! API server drops them before validation, so their checks are not here.)

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};

use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::name_is_dns_subdomain;
use crate::field::{Error, ErrorList, Path};

/// `ValidateLease`.
pub fn validate_create(lease: &Lease) -> ErrorList {
    let mut errs = validate_object_meta(
        &lease.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_spec(lease.spec.as_ref()));
    errs
}

/// `ValidateLeaseUpdate`.
pub fn validate_update(new: &Lease, old: &Lease) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_spec(new.spec.as_ref()));
    errs
}

/// `ValidateLeaseSpec`.
fn validate_spec(spec: Option<&LeaseSpec>) -> ErrorList {
    let mut errs = Vec::new();
    let Some(spec) = spec else {
        return errs;
    };
    let path = Path::new("spec");
    if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
        errs.push(Error::invalid(
            &path.child("leaseDurationSeconds"),
            i64::from(d),
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
        errs.push(Error::invalid(
            &path.child("leaseTransitions"),
            i64::from(t),
            "must be greater than or equal to 0",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::messages;
    use serde_json::json;

    fn lease(v: serde_json::Value) -> Lease {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_valid_lease_passes() {
        let l = lease(json!({
            "metadata": {"name": "node-1", "namespace": "kube-node-lease", "resourceVersion": "7"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                     "leaseTransitions": 0, "renewTime": "2026-11-27T10:00:00.000000Z"}
        }));
        assert!(validate_create(&l).is_empty());
        assert!(validate_update(&l, &l).is_empty());
        let bare = lease(json!({"metadata": {"name": "x", "namespace": "default"}}));
        assert!(
            validate_create(&bare).is_empty(),
            "a Lease may have no spec"
        );
    }

    #[test]
    fn durations_transitions_and_names_as_kubernetes_words_them() {
        let l = lease(json!({
            "metadata": {"name": "Bad_Name", "namespace": "default"},
            "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}
        }));
        let got = messages(&validate_create(&l));
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got[0].starts_with(
                "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
            ),
            "{got:?}"
        );
        assert_eq!(
            got[1..],
            [
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
        let old = lease(
            json!({"metadata": {"name": "x", "namespace": "default", "resourceVersion": "7"}}),
        );
        let mut new = old.clone();
        new.spec = Some(LeaseSpec {
            lease_duration_seconds: Some(-5),
            ..Default::default()
        });
        assert_eq!(
            messages(&validate_update(&new, &old)),
            ["spec.leaseDurationSeconds: Invalid value: -5: must be greater than 0"]
        );
    }
}
