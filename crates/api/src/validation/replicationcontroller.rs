//! core/v1 ReplicationController validation: `ValidateReplicationController`,
//! `ValidateReplicationControllerUpdate`, `ValidateReplicationControllerStatusUpdate`,
//! `ValidateReplicationControllerSpec` and `ValidatePodTemplateSpecForRC` of
//! `pkg/apis/core/validation/validation.go`. Unlike a ReplicaSet's, the selector is a plain map
//! and stays mutable.

use k8s_openapi::api::core::v1::{ReplicationController, ReplicationControllerSpec};

use super::apps::{validate_replica_counts, validate_replica_template};
use super::gofmt;
use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{name_is_dns_subdomain, validate_nonnegative};
use crate::field::{Error, ErrorList, Path};
use crate::selector::LabelSelector;

/// `ValidateReplicationControllerSpec`
fn validate_spec(spec: &ReplicationControllerSpec, path: &Path) -> ErrorList {
    let mut errs = validate_nonnegative(
        spec.min_ready_seconds.unwrap_or(0).into(),
        &path.child("minReadySeconds"),
    );
    let map = spec.selector.clone().unwrap_or_default();
    let selector = LabelSelector::from_map(&map);
    // `ValidateNonEmptySelector`
    if selector.is_empty() {
        errs.push(Error::required(&path.child("selector"), ""));
    }
    errs.extend(validate_nonnegative(
        spec.replicas.unwrap_or(0).into(),
        &path.child("replicas"),
    ));
    // `ValidatePodTemplateSpecForRC`
    let tpath = path.child("template");
    match &spec.template {
        None => errs.push(Error::required(&tpath, "")),
        Some(template) => {
            let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
            if !selector.is_empty() && !selector.matches(&labels.clone().unwrap_or_default()) {
                errs.push(Error::invalid(
                    &tpath.child("metadata").child("labels"),
                    gofmt::labels(labels.as_ref()),
                    "`selector` does not match template `labels`",
                ));
            }
            errs.extend(validate_replica_template(
                template,
                &tpath,
                "ReplicationController",
            ));
        }
    }
    errs
}

/// `ValidateReplicationController`
pub fn validate_create(rc: &ReplicationController) -> ErrorList {
    let mut errs = validate_object_meta(
        &rc.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_spec(
        &rc.spec.clone().unwrap_or_default(),
        &Path::new("spec"),
    ));
    errs
}

/// `ValidateReplicationControllerUpdate`
pub fn validate_update(new: &ReplicationController, old: &ReplicationController) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_spec(
        &new.spec.clone().unwrap_or_default(),
        &Path::new("spec"),
    ));
    errs
}

/// `ValidateReplicationControllerStatusUpdate`
pub fn validate_status_update(
    new: &ReplicationController,
    old: &ReplicationController,
) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let st = new.status.clone().unwrap_or_default();
    errs.extend(validate_replica_counts(
        st.replicas,
        st.fully_labeled_replicas,
        st.ready_replicas,
        st.available_replicas,
        st.observed_generation,
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::core::default_replication_controller;
    use crate::field::messages;
    use pretty_assertions::assert_eq;
    use serde_json::{json, Value};

    fn rc(spec: Value) -> ReplicationController {
        let mut rc: ReplicationController = serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"}, "spec": spec}),
        )
        .unwrap();
        default_replication_controller(&mut rc);
        rc
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
    }

    /// The selector and the RC's labels default to the template's labels, replicas to 1.
    #[test]
    fn defaults_from_the_template() {
        let r = rc(json!({"template": template()}));
        let spec = r.spec.clone().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(
            serde_json::to_value(&spec.selector).unwrap(),
            json!({"app": "web"})
        );
        assert_eq!(
            serde_json::to_value(&r.metadata.labels).unwrap(),
            json!({"app": "web"})
        );
        assert_eq!(validate_create(&r), vec![]);
    }

    #[test]
    fn errors_match_kubernetes() {
        let cases = [
            (
                json!({}),
                vec!["spec.selector: Required value", "spec.template: Required value"],
            ),
            (
                json!({"selector": {"app": "api"}, "template": template(), "replicas": -1, "minReadySeconds": -2}),
                vec![
                    "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
                    "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                    r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#,
                ],
            ),
            (
                json!({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 5,
                    "containers": [{"name": "web", "image": "nginx"}]}}}),
                vec![
                    r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#,
                    "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicationController is not Supported",
                ],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                messages(&validate_create(&rc(spec.clone()))),
                want,
                "{spec}"
            );
        }
    }

    /// The selector may change (unlike a ReplicaSet's); status counts are checked.
    #[test]
    fn updates() {
        let old = rc(json!({"template": template()}));
        let mut new = old.clone();
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("app".to_string(), "web".to_string());
        labels.insert("tier".to_string(), "x".to_string());
        let spec = new.spec.as_mut().unwrap();
        spec.template
            .as_mut()
            .unwrap()
            .metadata
            .as_mut()
            .unwrap()
            .labels = Some(labels.clone());
        spec.selector = Some(labels);
        assert_eq!(validate_update(&new, &old), vec![]);
        let mut bad = old.clone();
        bad.status = serde_json::from_value(json!({"replicas": 1, "readyReplicas": 2})).unwrap();
        assert_eq!(
            messages(&validate_status_update(&bad, &old)),
            vec!["status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas"]
        );
    }
}
