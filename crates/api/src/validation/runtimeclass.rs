//! node.k8s.io/v1 RuntimeClass validation: mirrors `ValidateRuntimeClass` /
//! `ValidateRuntimeClassUpdate` of `pkg/apis/node/validation/validation.go` (the handler is a
//! DNS label and immutable; overhead and scheduling are not checked here).

use k8s_openapi::api::node::v1::RuntimeClass;

use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{name_is_dns_label, name_is_dns_subdomain, FIELD_IMMUTABLE_ERROR_MSG};
use crate::field::{Error, ErrorList, Path};

/// `ValidateRuntimeClass`.
pub fn validate_create(rc: &RuntimeClass) -> ErrorList {
    let mut errs = validate_object_meta(
        &rc.metadata,
        false,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    for msg in name_is_dns_label(&rc.handler, false) {
        errs.push(Error::invalid(
            &Path::new("handler"),
            rc.handler.as_str(),
            msg,
        ));
    }
    errs
}

/// `ValidateRuntimeClassUpdate`.
pub fn validate_update(new: &RuntimeClass, old: &RuntimeClass) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    if new.handler != old.handler {
        errs.push(Error::invalid(
            &Path::new("handler"),
            new.handler.as_str(),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rc(v: serde_json::Value) -> RuntimeClass {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn handler_is_a_dns_label_and_immutable() {
        let good = rc(json!({"metadata": {"name": "svcnet-process"}, "handler": "process"}));
        assert!(validate_create(&good).is_empty());
        let bad = rc(json!({"metadata": {"name": "x"}, "handler": "Not_A_Label"}));
        let errs = validate_create(&bad);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .to_string()
                .starts_with("handler: Invalid value: \"Not_A_Label\""),
            "{}",
            errs[0]
        );
        let mut changed = good.clone();
        changed.handler = "runc".into();
        changed.metadata.resource_version = Some("1".into());
        let mut old = good.clone();
        old.metadata.resource_version = Some("1".into());
        let errs = validate_update(&changed, &old);
        assert!(
            errs.iter()
                .any(|e| e.to_string() == "handler: Invalid value: \"runc\": field is immutable"),
            "{errs:?}"
        );
    }
}
