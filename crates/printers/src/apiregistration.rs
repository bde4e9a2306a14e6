//! `apiregistration.k8s.io` printer: kube-aggregator's APIService table (its registry's
//! `printAPIService`): which Service serves the group-version, whether it is available.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::age;
use crate::json::{arr_at, get, name, str_at};

/// Name, `Local` or `namespace/name` of the Service, `True` or `False (Reason)`, age.
pub(crate) fn api_service(obj: &Value, now: Timestamp) -> Vec<Value> {
    let service = match get(obj, &["spec", "service"]).filter(|s| !s.is_null()) {
        Some(s) => format!("{}/{}", str_at(s, &["namespace"]), str_at(s, &["name"])),
        None => "Local".to_string(),
    };
    let available = arr_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Available")
        .map(|c| match str_at(c, &["status"]) {
            "True" => "True".to_string(),
            s => match str_at(c, &["reason"]) {
                "" => s.to_string(),
                reason => format!("{s} ({reason})"),
            },
        })
        .unwrap_or_else(|| "Unknown".to_string());
    vec![
        json!(name(obj)),
        json!(service),
        json!(available),
        age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testing::{json_row, meta, row};

    #[test]
    fn api_services() {
        let local = json!({"metadata": meta("v1.apps", 60), "spec": {"group": "apps", "version": "v1"},
            "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}});
        assert_eq!(
            row("apiregistration.k8s.io", "apiservices", &local),
            json_row(r#"["v1.apps", "Local", "True", "60s"]"#)
        );
        let missing = json!({"metadata": meta("v1alpha1.wardle.k8s.io", 60),
            "spec": {"service": {"namespace": "wardle", "name": "api"}},
            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "ServiceNotFound"}]}});
        assert_eq!(
            row("apiregistration.k8s.io", "apiservices", &missing),
            json_row(
                r#"["v1alpha1.wardle.k8s.io", "wardle/api", "False (ServiceNotFound)", "60s"]"#
            )
        );
    }
}
