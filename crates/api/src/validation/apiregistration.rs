//! apiregistration.k8s.io/v1 APIService validation: mirrors kube-aggregator's
//! `pkg/apis/apiregistration/validation/validation.go` (`ValidateAPIService`,
//! `ValidateAPIServiceUpdate`): the name is `<version>.<group>`, priorities in range, a local
//! APIService has no TLS settings, a service-backed one names its Service.

use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;

use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{is_dns1035_label, is_dns1123_subdomain, is_valid_port_num};
use super::rbac::name_is_path_segment;
use crate::field::{BadValue, Error, ErrorList, Path};

/// `ValidateAPIService`.
pub fn validate_create(s: &APIService) -> ErrorList {
    let spec = s.spec.clone().unwrap_or_default();
    let group = spec.group.as_deref().unwrap_or("");
    let version = spec.version.as_deref().unwrap_or("");
    let required = format!("{version}.{group}");
    let mut errs = validate_object_meta(
        &s.metadata,
        false,
        name_is_path_segment,
        &Path::new("metadata"),
    );
    let name = s.metadata.name.as_deref().unwrap_or("");
    if !name.is_empty() && name_is_path_segment(name, false).is_empty() && name != required {
        errs.insert(
            0,
            Error::invalid(
                &Path::new("metadata").child("name"),
                name,
                format!("must be `spec.version+\".\"+spec.group`: {required:?}"),
            ),
        );
    }
    let p = Path::new("spec");
    if group.is_empty() && version != "v1" {
        errs.push(Error::required(
            &p.child("group"),
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() {
        for m in is_dns1123_subdomain(group) {
            errs.push(Error::invalid(&p.child("group"), group, m));
        }
    }
    for m in is_dns1035_label(version) {
        errs.push(Error::invalid(&p.child("version"), version, m));
    }
    if !(1..=20000).contains(&spec.group_priority_minimum) {
        errs.push(Error::invalid(
            &p.child("groupPriorityMinimum"),
            spec.group_priority_minimum,
            "must be positive and less than 20000",
        ));
    }
    if !(1..=1000).contains(&spec.version_priority) {
        errs.push(Error::invalid(
            &p.child("versionPriority"),
            spec.version_priority,
            "must be positive and less than 1000",
        ));
    }
    let skip_tls = spec.insecure_skip_tls_verify.unwrap_or(false);
    let ca_len = spec.ca_bundle.as_ref().map_or(0, |b| b.0.len());
    let Some(svc) = &spec.service else {
        if ca_len != 0 {
            errs.push(Error::invalid(
                &p.child("caBundle"),
                format!("{ca_len} bytes"),
                "local APIServices may not have a caBundle",
            ));
        }
        if skip_tls {
            errs.push(Error::invalid(
                &p.child("insecureSkipTLSVerify"),
                true,
                "local APIServices may not have insecureSkipTLSVerify",
            ));
        }
        return errs;
    };
    let sp = p.child("service");
    if svc.namespace.as_deref().unwrap_or("").is_empty() {
        errs.push(Error::required(&sp.child("namespace"), ""));
    }
    if svc.name.as_deref().unwrap_or("").is_empty() {
        errs.push(Error::required(&sp.child("name"), ""));
    }
    let port = svc.port.unwrap_or(443);
    let port_errs = is_valid_port_num(port.into());
    if !port_errs.is_empty() {
        errs.push(Error::invalid(
            &sp.child("port"),
            BadValue::Int(port.into()),
            format!("port is not valid: {}", port_errs.join(", ")),
        ));
    }
    if skip_tls && ca_len > 0 {
        errs.push(Error::invalid(
            &p.child("insecureSkipTLSVerify"),
            true,
            "may not be true if caBundle is present",
        ));
    }
    errs
}

/// `ValidateAPIServiceUpdate`.
pub fn validate_update(new: &APIService, old: &APIService) -> ErrorList {
    let mut errs = validate_create(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_name_is_version_dot_group() {
        let s: APIService = serde_json::from_value(json!({
            "metadata": {"name": "v1alpha1.wardle"},
            "spec": {"group": "wardle.k8s.io", "version": "v1alpha1", "groupPriorityMinimum": 1000,
                     "versionPriority": 15, "insecureSkipTLSVerify": true,
                     "service": {"namespace": "wardle", "name": "api"}}
        }))
        .unwrap();
        let errs: Vec<String> = validate_create(&s)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                r#"metadata.name: Invalid value: "v1alpha1.wardle": must be `spec.version+"."+spec.group`: "v1alpha1.wardle.k8s.io""#
            ]
        );
        let local: APIService = serde_json::from_value(json!({
            "metadata": {"name": "v1."},
            "spec": {"version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 1}
        }))
        .unwrap();
        assert!(validate_create(&local).is_empty());
    }
}
