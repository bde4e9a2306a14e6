//! apps/v1 DaemonSet validation: `ValidateDaemonSet`, `ValidateDaemonSetSpec`,
//! `ValidateDaemonSetUpdateStrategy`, `ValidateRollingUpdateDaemonSet`,
//! `ValidateDaemonSetUpdate` (the apps/v1 selector immutability) and
//! `ValidateDaemonSetStatusUpdate` of `pkg/apis/apps/validation/validation.go`.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::apps::{
    int_or_percent_value, not_more_than_100_percent, selector_immutable, selector_matches,
    validate_label_selector, validate_positive_int_or_percent,
};
use super::gofmt;
use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{name_is_dns_subdomain, validate_nonnegative};
use super::pod::validate_pod_template_spec;
use crate::field::{BadValue, Error, ErrorList, Path};

/// `ValidateDaemonSetUpdateStrategy` and `ValidateRollingUpdateDaemonSet`.
fn validate_update_strategy(strategy: &DaemonSetUpdateStrategy, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    match strategy.type_.as_deref().unwrap_or("") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(ru) = &strategy.rolling_update else {
                return vec![Error::required(&path.child("rollingUpdate"), "")];
            };
            let p = path.child("rollingUpdate");
            let zero = IntOrString::Int(0);
            let mu = ru.max_unavailable.as_ref().unwrap_or(&zero);
            let ms = ru.max_surge.as_ref().unwrap_or(&zero);
            errs.extend(validate_positive_int_or_percent(
                mu,
                &p.child("maxUnavailable"),
            ));
            errs.extend(validate_positive_int_or_percent(ms, &p.child("maxSurge")));
            errs.extend(not_more_than_100_percent(mu, &p.child("maxUnavailable")));
            errs.extend(not_more_than_100_percent(ms, &p.child("maxSurge")));
            match (int_or_percent_value(mu) != 0, int_or_percent_value(ms) != 0) {
                (true, true) => errs.push(Error::invalid(
                    &p.child("maxSurge"),
                    gofmt::int_or_string(ms),
                    "may not be set when maxUnavailable is non-zero",
                )),
                (false, false) => errs.push(Error::required(
                    &p.child("maxUnavailable"),
                    "cannot be 0 when maxSurge is 0",
                )),
                _ => {}
            }
        }
        t => errs.push(Error::not_supported(
            path,
            BadValue::Raw(format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}}}",
                crate::field::go_quote(t)
            )),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    errs
}

/// `ValidateDaemonSetSpec`
fn validate_spec(spec: &DaemonSetSpec, path: &Path) -> ErrorList {
    let sel_path = path.child("selector");
    let mut errs = validate_label_selector(&spec.selector, &sel_path);
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    if selector_matches(&spec.selector, labels) == Some(false) {
        errs.push(Error::invalid(
            &path.child("template").child("metadata").child("labels"),
            gofmt::labels(labels),
            "`selector` does not match template `labels`",
        ));
    }
    let sel = &spec.selector;
    if (sel.match_labels.is_some() || sel.match_expressions.is_some())
        && sel.match_labels.as_ref().map_or(0, |m| m.len())
            + sel.match_expressions.as_ref().map_or(0, |e| e.len())
            == 0
    {
        errs.push(Error::invalid(
            &sel_path,
            gofmt::label_selector(sel),
            "empty selector is invalid for daemonset",
        ));
    }
    let tpath = path.child("template");
    errs.extend(validate_pod_template_spec(&spec.template, &tpath));
    let pod = spec.template.spec.clone().unwrap_or_default();
    let restart = pod.restart_policy.as_deref().unwrap_or("");
    if restart != "Always" {
        errs.push(Error::not_supported(
            &tpath.child("spec").child("restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if let Some(ads) = pod.active_deadline_seconds {
        errs.push(Error::invalid(
            &tpath.child("spec").child("activeDeadlineSeconds"),
            ads,
            "activeDeadlineSeconds in DaemonSet is not Supported",
        ));
    }
    errs.extend(validate_nonnegative(
        spec.min_ready_seconds.unwrap_or(0).into(),
        &path.child("minReadySeconds"),
    ));
    errs.extend(validate_update_strategy(
        &spec.update_strategy.clone().unwrap_or_default(),
        &path.child("updateStrategy"),
    ));
    if let Some(l) = spec.revision_history_limit {
        errs.extend(validate_nonnegative(
            l.into(),
            &path.child("revisionHistoryLimit"),
        ));
    }
    errs
}

/// `ValidateDaemonSet`
pub fn validate_create(ds: &DaemonSet) -> ErrorList {
    let mut errs = validate_object_meta(
        &ds.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_spec(
        &ds.spec.clone().unwrap_or_default(),
        &Path::new("spec"),
    ));
    errs
}

/// `ValidateDaemonSetUpdate` plus the apps/v1 rule that `spec.selector` is immutable.
pub fn validate_update(new: &DaemonSet, old: &DaemonSet) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let ns = new.spec.clone().unwrap_or_default();
    errs.extend(validate_spec(&ns, &Path::new("spec")));
    errs.extend(selector_immutable(
        &ns.selector,
        &old.spec.clone().unwrap_or_default().selector,
    ));
    errs
}

/// `ValidateDaemonSetStatusUpdate`: every count is not negative.
pub fn validate_status_update(new: &DaemonSet, old: &DaemonSet) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let st = new.status.clone().unwrap_or_default();
    let p = Path::new("status");
    for (field, v) in [
        ("currentNumberScheduled", st.current_number_scheduled),
        ("numberMisscheduled", st.number_misscheduled),
        ("desiredNumberScheduled", st.desired_number_scheduled),
        ("numberReady", st.number_ready),
        (
            "updatedNumberScheduled",
            st.updated_number_scheduled.unwrap_or(0),
        ),
        ("numberAvailable", st.number_available.unwrap_or(0)),
        ("numberUnavailable", st.number_unavailable.unwrap_or(0)),
    ] {
        errs.extend(validate_nonnegative(v.into(), &p.child(field)));
    }
    errs.extend(validate_nonnegative(
        st.observed_generation.unwrap_or(0),
        &p.child("observedGeneration"),
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apps::default_daemonset;
    use serde_json::json;

    fn ds(spec: serde_json::Value) -> DaemonSet {
        let mut d: DaemonSet =
            serde_json::from_value(json!({"metadata": {"name": "agent", "namespace": "default", "resourceVersion": "1"}, "spec": spec}))
                .unwrap();
        default_daemonset(&mut d);
        d
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn daemonset_errors_match_kubernetes() {
        let template = json!({"metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "a", "image": "busybox"}]}});
        let ok = ds(json!({"selector": {"matchLabels": {"app": "agent"}}, "template": template}));
        assert_eq!(messages(&validate_create(&ok)), Vec::<String>::new());
        let bad = ds(
            json!({"selector": {"matchLabels": {"app": "other"}}, "template": template,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}),
        );
        assert_eq!(
            messages(&validate_create(&bad)),
            [
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"agent\"}: `selector` does not match template `labels`",
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0",
            ]
        );
        let mut new = ok.clone();
        new.spec.as_mut().unwrap().selector.match_labels =
            Some([("app".to_string(), "x".to_string())].into());
        new.spec.as_mut().unwrap().template.metadata = None;
        let m = messages(&validate_update(&new, &ok));
        assert!(
            m.iter()
                .any(|e| e.starts_with("spec.selector") && e.ends_with("field is immutable")),
            "{m:?}"
        );
    }
}
