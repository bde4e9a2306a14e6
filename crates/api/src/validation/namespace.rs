//! Namespace validation: mirrors `ValidateNamespace`, `ValidateNamespaceUpdate` and
//! `ValidateNamespaceStatusUpdate` of `pkg/apis/core/validation/validation.go` (the update path
//! also re-runs `ValidateNamespace`, as the namespace strategy does).

use k8s_openapi::api::core::v1::Namespace;

use super::meta::{validate_finalizer_name, validate_object_meta, validate_object_meta_update};
use super::names::name_is_dns_label;
use super::s;
use crate::field::{Error, ErrorList, Path};

/// `ValidateNamespace`: a DNS-1123 label name, not namespaced, valid `spec.finalizers`
/// (reported at `spec.finalizers`, without index, as Kubernetes does).
pub fn validate_create(ns: &Namespace) -> ErrorList {
    let mut errs = validate_object_meta(
        &ns.metadata,
        false,
        name_is_dns_label,
        &Path::new("metadata"),
    );
    let p = Path::new("spec").child("finalizers");
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.clone());
    for f in finalizers.iter().flatten() {
        errs.extend(validate_finalizer_name(f, &p));
    }
    errs
}

/// `ValidateNamespace` plus `ValidateNamespaceUpdate`.
pub fn validate_update(new: &Namespace, old: &Namespace) -> ErrorList {
    let mut errs = validate_create(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs
}

/// `ValidateNamespaceStatusUpdate`: `Active` unless being deleted, then `Terminating`.
pub fn validate_status_update(new: &Namespace, old: &Namespace) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let phase = new.status.as_ref().map(|st| s(&st.phase)).unwrap_or("");
    let p = Path::new("status").child("Phase");
    if new.metadata.deletion_timestamp.is_none() {
        if phase != "Active" {
            errs.push(Error::invalid(
                &p,
                phase,
                "may only be 'Active' if `deletionTimestamp` is empty",
            ));
        }
    } else if phase != "Terminating" {
        errs.push(Error::invalid(
            &p,
            phase,
            "may only be 'Terminating' if `deletionTimestamp` is not empty",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::messages;
    use serde_json::json;

    #[test]
    fn namespace_rules() {
        let ok: Namespace = serde_json::from_value(
            json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": ["kubernetes"]}}),
        )
        .unwrap();
        assert_eq!(validate_create(&ok), vec![]);
        let bad: Namespace = serde_json::from_value(
            json!({"metadata": {"name": "team.a"}, "spec": {"finalizers": ["custom"]}}),
        )
        .unwrap();
        assert_eq!(
            messages(&validate_create(&bad)),
            vec![
                r#"metadata.name: Invalid value: "team.a": must not contain dots"#,
                r#"spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified"#,
            ]
        );
        let mut old = ok.clone();
        old.metadata.resource_version = Some("1".into());
        let mut new = old.clone();
        new.status = Some(serde_json::from_value(json!({"phase": "Terminating"})).unwrap());
        assert_eq!(
            messages(&validate_status_update(&new, &old)),
            vec![
                r#"status.Phase: Invalid value: "Terminating": may only be 'Active' if `deletionTimestamp` is empty"#
            ]
        );
    }
}
