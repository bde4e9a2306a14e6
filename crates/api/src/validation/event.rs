//! core/v1 Event validation: mirrors `ValidateEventCreate`/`ValidateEventUpdate` of
//! `pkg/apis/core/validation/events.go` for requests to the core `v1` API, which only get the
//! legacy checks (`legacyValidateEvent`): the namespace must match the involved object's, and
//! events with `eventTime` need `reportingController`, `reportingInstance`, `action`, `reason`
//! within their length limits. (The stricter events.k8s.io/v1 rules are not served here.)

use k8s_openapi::api::core::v1::Event;

use super::names::{is_dns1123_subdomain, is_qualified_name};
use super::s;
use crate::field::{Error, ErrorList, Path};

const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
const ACTION_LENGTH_LIMIT: usize = 128;
const REASON_LENGTH_LIMIT: usize = 128;
const NOTE_LENGTH_LIMIT: usize = 1024;

/// `ValidateEventCreate` for core/v1.
pub fn validate_create(event: &Event) -> ErrorList {
    legacy_validate_event(event)
}

/// `ValidateEventUpdate` for core/v1.
pub fn validate_update(new: &Event, _old: &Event) -> ErrorList {
    legacy_validate_event(new)
}

fn legacy_validate_event(event: &Event) -> ErrorList {
    let mut errs = Vec::new();
    let namespace = s(&event.metadata.namespace);
    let involved_ns = s(&event.involved_object.namespace);
    let ns_path = Path::new("involvedObject").child("namespace");
    let mismatch = || Error::invalid(&ns_path, involved_ns, "does not match event.namespace");
    if event.event_time.is_none() {
        if involved_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                errs.push(mismatch());
            }
        } else if namespace != involved_ns {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(mismatch());
        }
        let controller = s(&event.reporting_component);
        if controller.is_empty() {
            errs.push(Error::required(&Path::new("reportingController"), ""));
        }
        for m in is_qualified_name(controller) {
            errs.push(Error::invalid(
                &Path::new("reportingController"),
                controller,
                m,
            ));
        }
        for (field, value, limit) in [
            (
                "reportingInstance",
                s(&event.reporting_instance),
                REPORTING_INSTANCE_LENGTH_LIMIT,
            ),
            ("action", s(&event.action), ACTION_LENGTH_LIMIT),
            ("reason", s(&event.reason), REASON_LENGTH_LIMIT),
        ] {
            if value.is_empty() {
                errs.push(Error::required(&Path::new(field), ""));
            }
            if value.len() > limit {
                errs.push(Error::invalid(
                    &Path::new(field),
                    "",
                    format!("can have at most {limit} characters"),
                ));
            }
        }
        if s(&event.message).len() > NOTE_LENGTH_LIMIT {
            errs.push(Error::invalid(
                &Path::new("message"),
                "",
                format!("can have at most {NOTE_LENGTH_LIMIT} characters"),
            ));
        }
    }
    for m in is_dns1123_subdomain(namespace) {
        errs.push(Error::invalid(&Path::new("namespace"), namespace, m));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::messages;
    use serde_json::json;

    #[test]
    fn legacy_rules() {
        let ok: Event = serde_json::from_value(json!({"metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "reason": "Started"})).unwrap();
        assert_eq!(validate_create(&ok), vec![]);
        let bad: Event = serde_json::from_value(
            json!({"metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "other"}}),
        )
        .unwrap();
        let got = messages(&validate_create(&bad));
        assert_eq!(
            got,
            vec![
                r#"involvedObject.namespace: Invalid value: "other": does not match event.namespace"#
            ]
        );
        let new_style: Event = serde_json::from_value(json!({"metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "eventTime": "2024-05-01T10:00:00.000000Z"})).unwrap();
        let got = messages(&validate_create(&new_style));
        assert_eq!(got[0], "reportingController: Required value");
        assert!(got.contains(&"reportingInstance: Required value".to_string()));
        assert!(got.contains(&"action: Required value".to_string()));
        assert!(got.contains(&"reason: Required value".to_string()));
    }
}
