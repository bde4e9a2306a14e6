//! A Pod on create and a pod template (Deployment, ReplicaSet): `ValidatePodCreate`,
//! `validatePodMetadataAndSpec`, `ValidatePodTemplateSpec` and
//! `validatePodSpecificAnnotations`: the metadata, then the spec (`spec.rs`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};

use crate::field::{Error, ErrorList, Path};
use crate::validation::meta::validate_object_meta;
use crate::validation::names::{name_is_dns_subdomain, validate_annotations, validate_labels};
use crate::validation::s;

use super::spec::{validate_pod_spec, PodValidationOptions};

const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// `ValidatePodCreate`
pub fn validate_create(pod: &Pod) -> ErrorList {
    let mut errs = validate_pod_metadata_and_spec(pod);
    let spec_path = Path::new("spec");
    let spec = pod.spec.clone().unwrap_or_default();
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(Error::forbidden(
            &spec_path.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    let gated = spec
        .scheduling_gates
        .as_ref()
        .is_some_and(|g| !g.is_empty());
    if !s(&spec.node_name).is_empty() && gated {
        errs.push(Error::forbidden(
            &spec_path.child("nodeName"),
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    errs
}

pub(super) fn validate_pod_metadata_and_spec(pod: &Pod) -> ErrorList {
    let meta_path = Path::new("metadata");
    let spec_path = Path::new("spec");
    let mut errs = validate_object_meta(&pod.metadata, true, name_is_dns_subdomain, &meta_path);
    errs.extend(validate_pod_specific_annotations(
        pod.metadata.annotations.as_ref(),
        &meta_path.child("annotations"),
    ));
    let spec = pod.spec.clone().unwrap_or_default();
    errs.extend(validate_pod_spec(
        &spec,
        &spec_path,
        PodValidationOptions {
            resource_is_pod: true,
        },
    ));
    for (field, list) in [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ] {
        for (i, c) in list.into_iter().flatten().enumerate() {
            let image = s(&c.image);
            if image.len() != image.trim().len() {
                errs.push(Error::invalid(
                    &spec_path.child(field).index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    errs
}

fn validate_pod_specific_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(cost) = annotations.and_then(|a| a.get(POD_DELETION_COST)) {
        if cost.parse::<i32>().is_err() {
            errs.push(Error::invalid(
                &path.key(POD_DELETION_COST),
                cost,
                "must be a 32bit integer",
            ));
        }
    }
    errs
}

/// `ValidatePodTemplateSpec` (the template of a Deployment/ReplicaSet; `path` is
/// `spec.template`).
pub fn validate_pod_template_spec(template: &PodTemplateSpec, path: &Path) -> ErrorList {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut errs = validate_labels(meta.labels.as_ref(), &path.child("labels"));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_pod_specific_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    let spec = template.spec.clone().unwrap_or_default();
    errs.extend(validate_pod_spec(
        &spec,
        &path.child("spec"),
        PodValidationOptions::default(),
    ));
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(Error::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}
