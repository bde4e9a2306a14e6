//! apps/v1 validation: mirrors `ValidateDeployment*`, `ValidateReplicaSet*`,
//! `ValidateDeploymentStrategy`, `ValidateRollingUpdateDeployment` and
//! `ValidatePodTemplateSpecForReplicaSet` of `pkg/apis/apps/validation/validation.go`, the
//! selector immutability of the apps/v1 strategies (`pkg/registry/apps/deployment/strategy.go`,
//! `.../replicaset/strategy.go`), `ValidateLabelSelector` of
//! `apimachinery/pkg/apis/meta/v1/validation`, and `ValidateScale` of
//! `pkg/apis/autoscaling/validation`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::gofmt;
use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{
    is_valid_label_value, is_valid_percent, name_is_dns_subdomain, validate_labels,
    validate_nonnegative, validate_qualified_name, FIELD_IMMUTABLE_ERROR_MSG,
    IS_NEGATIVE_ERROR_MSG,
};
use super::pod::validate_pod_template_spec;
use crate::field::{BadValue, Error, ErrorList, Path};

/// `ValidateLabelSelector` (strict: label values in expressions must be valid).
pub fn validate_label_selector(sel: &LabelSelector, path: &Path) -> ErrorList {
    let mut errs = validate_labels(sel.match_labels.as_ref(), &path.child("matchLabels"));
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(Error::required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(Error::forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(Error::invalid(
                &p.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        errs.extend(validate_qualified_name(&e.key, &p.child("key")));
        for (j, v) in values.iter().enumerate() {
            for m in is_valid_label_value(v) {
                errs.push(Error::invalid(&p.child("values").index(j), v, m));
            }
        }
    }
    errs
}

/// The outcome of `metav1.LabelSelectorAsSelector`.
enum Selector {
    /// `labels.Nothing()`: a nil selector, matches nothing (and is not "empty").
    Nothing,
    /// `labels.Everything()`: no requirement at all.
    Everything,
    /// A valid selector with requirements.
    Some(LabelSelector),
    /// The selector does not convert.
    Invalid,
}

fn is_nil(sel: &LabelSelector) -> bool {
    sel.match_labels.is_none() && sel.match_expressions.is_none()
}

fn as_selector(sel: &LabelSelector) -> Selector {
    if is_nil(sel) {
        return Selector::Nothing;
    }
    let labels = sel.match_labels.clone().unwrap_or_default();
    let exprs = sel.match_expressions.as_deref().unwrap_or_default();
    if labels.is_empty() && exprs.is_empty() {
        return Selector::Everything;
    }
    for (k, v) in &labels {
        if !super::names::is_qualified_name(k).is_empty() || !is_valid_label_value(v).is_empty() {
            return Selector::Invalid;
        }
    }
    for e in exprs {
        let values = e.values.as_deref().unwrap_or_default();
        let ok = match e.operator.as_str() {
            "In" | "NotIn" => !values.is_empty(),
            "Exists" | "DoesNotExist" => values.is_empty(),
            _ => false,
        };
        if !ok
            || !super::names::is_qualified_name(&e.key).is_empty()
            || values.iter().any(|v| !is_valid_label_value(v).is_empty())
        {
            return Selector::Invalid;
        }
    }
    Selector::Some(sel.clone())
}

/// Whether `metav1.LabelSelectorAsSelector(sel)` matches `labels`; `None` when it does not
/// convert (validation reports that elsewhere).
pub(super) fn selector_matches(
    sel: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> Option<bool> {
    match as_selector(sel) {
        Selector::Nothing => Some(false),
        Selector::Everything => Some(true),
        Selector::Some(s) => Some(matches(&s, labels.unwrap_or(&BTreeMap::new()))),
        Selector::Invalid => None,
    }
}

fn matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// The selector checks shared by Deployments and ReplicaSets, then
/// `ValidatePodTemplateSpecForReplicaSet`.
fn validate_selector_and_template(
    sel: &LabelSelector,
    template: &PodTemplateSpec,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let sel_path = path.child("selector");
    if is_nil(sel) {
        errs.push(Error::required(&sel_path, ""));
    } else {
        errs.extend(validate_label_selector(sel, &sel_path));
        if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && sel
                .match_expressions
                .as_deref()
                .unwrap_or_default()
                .is_empty()
        {
            errs.push(Error::invalid(
                &sel_path,
                gofmt::label_selector(sel),
                "empty selector is invalid for deployment",
            ));
        }
    }
    let selector = as_selector(sel);
    if let Selector::Invalid = selector {
        errs.push(Error::invalid(
            &sel_path,
            gofmt::label_selector(sel),
            "invalid label selector",
        ));
        return errs;
    }
    let tpath = path.child("template");
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    let matched = match &selector {
        Selector::Nothing => false,
        Selector::Everything | Selector::Invalid => true,
        Selector::Some(s) => matches(s, &labels.clone().unwrap_or_default()),
    };
    if !matched {
        errs.push(Error::invalid(
            &tpath.child("metadata").child("labels"),
            gofmt::labels(labels.as_ref()),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(validate_replica_template(template, &tpath, "ReplicaSet"));
    errs
}

/// The tail of `ValidatePodTemplateSpecForReplicaSet` / `ValidatePodTemplateSpecForRC`: the
/// template as a pod template, restarted `Always`, with no `activeDeadlineSeconds`.
pub(super) fn validate_replica_template(
    template: &PodTemplateSpec,
    tpath: &Path,
    kind: &str,
) -> ErrorList {
    let mut errs = validate_pod_template_spec(template, tpath);
    let spec = template.spec.clone().unwrap_or_default();
    let restart = spec.restart_policy.as_deref().unwrap_or("");
    if restart != "Always" {
        errs.push(Error::not_supported(
            &tpath.child("spec").child("restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        errs.push(Error::forbidden(
            &tpath.child("spec").child("activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) if is_valid_percent(s).is_empty() => s[..s.len() - 1].parse().ok(),
        _ => None,
    }
}

pub(super) fn int_or_percent_value(v: &IntOrString) -> i64 {
    match (percent_value(v), v) {
        (Some(p), _) => p,
        (None, IntOrString::Int(i)) => (*i).into(),
        // Go's IntValue() of a non-numeric string is 0.
        (None, IntOrString::String(s)) => s.parse().unwrap_or(0),
    }
}

/// `ValidatePositiveIntOrPercent`
pub(crate) fn validate_positive_int_or_percent(v: &IntOrString, path: &Path) -> ErrorList {
    match v {
        IntOrString::String(s) => is_valid_percent(s)
            .into_iter()
            .map(|m| Error::invalid(path, gofmt::int_or_string(v), m))
            .collect(),
        IntOrString::Int(i) => validate_nonnegative((*i).into(), path),
    }
}

pub(crate) fn not_more_than_100_percent(v: &IntOrString, path: &Path) -> ErrorList {
    match percent_value(v) {
        Some(p) if p > 100 => vec![Error::invalid(
            path,
            gofmt::int_or_string(v),
            "must not be greater than 100%",
        )],
        _ => Vec::new(),
    }
}

fn strategy_go(strategy: &DeploymentStrategy) -> BadValue {
    BadValue::Raw(format!(
        "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{}}}",
        crate::field::go_quote(strategy.type_.as_deref().unwrap_or("")),
        if strategy.rolling_update.is_some() {
            "(*apps.RollingUpdateDeployment)(0xc000010000)"
        } else {
            "(*apps.RollingUpdateDeployment)(nil)"
        }
    ))
}

/// `ValidateDeploymentStrategy`
fn validate_deployment_strategy(strategy: &DeploymentStrategy, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    match strategy.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                errs.push(Error::forbidden(
                    &path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match &strategy.rolling_update {
            None => errs.push(Error::required(
                &path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let p = path.child("rollingUpdate");
                let zero = IntOrString::Int(0);
                let mu = ru.max_unavailable.as_ref().unwrap_or(&zero);
                let ms = ru.max_surge.as_ref().unwrap_or(&zero);
                errs.extend(validate_positive_int_or_percent(
                    mu,
                    &p.child("maxUnavailable"),
                ));
                errs.extend(validate_positive_int_or_percent(ms, &p.child("maxSurge")));
                if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                    errs.push(Error::invalid(
                        &p.child("maxUnavailable"),
                        gofmt::int_or_string(mu),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                errs.extend(not_more_than_100_percent(mu, &p.child("maxUnavailable")));
            }
        },
        _ => errs.push(Error::not_supported(
            path,
            strategy_go(strategy),
            &["Recreate", "RollingUpdate"],
        )),
    }
    errs
}

/// `ValidateDeploymentSpec`
fn validate_deployment_spec(spec: &DeploymentSpec, path: &Path) -> ErrorList {
    let mut errs = validate_nonnegative(spec.replicas.unwrap_or(0).into(), &path.child("replicas"));
    errs.extend(validate_selector_and_template(
        &spec.selector,
        &spec.template,
        path,
    ));
    errs.extend(validate_deployment_strategy(
        &spec.strategy.clone().unwrap_or_default(),
        &path.child("strategy"),
    ));
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(validate_nonnegative(
        min_ready.into(),
        &path.child("minReadySeconds"),
    ));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(validate_nonnegative(
            r.into(),
            &path.child("revisionHistoryLimit"),
        ));
    }
    if let Some(pd) = spec.progress_deadline_seconds {
        errs.extend(validate_nonnegative(
            pd.into(),
            &path.child("progressDeadlineSeconds"),
        ));
        if pd <= min_ready {
            errs.push(Error::invalid(
                &path.child("progressDeadlineSeconds"),
                pd,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

pub(super) fn selector_immutable(new: &LabelSelector, old: &LabelSelector) -> ErrorList {
    if new == old {
        Vec::new()
    } else {
        vec![Error::invalid(
            &Path::new("spec").child("selector"),
            gofmt::label_selector(new),
            FIELD_IMMUTABLE_ERROR_MSG,
        )]
    }
}

/// `ValidateDeployment`
pub fn validate_deployment_create(d: &Deployment) -> ErrorList {
    let mut errs = validate_object_meta(
        &d.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_deployment_spec(
        &d.spec.clone().unwrap_or_default(),
        &Path::new("spec"),
    ));
    errs
}

/// `ValidateDeploymentUpdate` plus the apps/v1 rule that `spec.selector` is immutable.
pub fn validate_deployment_update(new: &Deployment, old: &Deployment) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let ns = new.spec.clone().unwrap_or_default();
    errs.extend(validate_deployment_spec(&ns, &Path::new("spec")));
    errs.extend(selector_immutable(
        &ns.selector,
        &old.spec.clone().unwrap_or_default().selector,
    ));
    errs
}

fn status_relations(
    path: &Path,
    replicas: i32,
    relations: &[(&str, i32)],
    available: i32,
    ready: i32,
) -> ErrorList {
    let mut errs = Vec::new();
    for (field, v) in relations {
        if *v > replicas {
            errs.push(Error::invalid(
                &path.child(field),
                *v,
                "cannot be greater than status.replicas",
            ));
        }
    }
    if available > ready {
        errs.push(Error::invalid(
            &path.child("availableReplicas"),
            available,
            "cannot be greater than readyReplicas",
        ));
    }
    errs
}

/// `ValidateDeploymentStatusUpdate`
pub fn validate_deployment_status_update(new: &Deployment, old: &Deployment) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let p = Path::new("status");
    let st = new.status.clone().unwrap_or_default();
    let replicas = st.replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let ready = st.ready_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    for (field, v) in [
        ("observedGeneration", st.observed_generation.unwrap_or(0)),
        ("replicas", replicas.into()),
        ("updatedReplicas", updated.into()),
        ("readyReplicas", ready.into()),
        ("availableReplicas", available.into()),
        (
            "unavailableReplicas",
            st.unavailable_replicas.unwrap_or(0).into(),
        ),
    ] {
        errs.extend(validate_nonnegative(v, &p.child(field)));
    }
    if let Some(c) = st.collision_count {
        errs.extend(validate_nonnegative(c.into(), &p.child("collisionCount")));
    }
    errs.extend(status_relations(
        &p,
        replicas,
        &[
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ],
        available,
        ready,
    ));
    let old_cc = old.status.as_ref().and_then(|s| s.collision_count);
    if is_decremented(st.collision_count, old_cc) {
        errs.push(Error::invalid(
            &p.child("collisionCount"),
            st.collision_count.unwrap_or(0),
            "cannot be decremented",
        ));
    }
    errs
}

fn is_decremented(new: Option<i32>, old: Option<i32>) -> bool {
    match (new, old) {
        (None, Some(_)) => true,
        (Some(n), Some(o)) => n < o,
        _ => false,
    }
}

fn validate_replicaset_spec(spec: &ReplicaSetSpec, path: &Path) -> ErrorList {
    let mut errs = validate_nonnegative(spec.replicas.unwrap_or(0).into(), &path.child("replicas"));
    errs.extend(validate_nonnegative(
        spec.min_ready_seconds.unwrap_or(0).into(),
        &path.child("minReadySeconds"),
    ));
    // An absent template is Go's zero struct, validated as such.
    let template = spec.template.clone().unwrap_or_default();
    errs.extend(validate_selector_and_template(
        &spec.selector,
        &template,
        path,
    ));
    errs
}

/// `ValidateReplicaSet`
pub fn validate_replicaset_create(rs: &ReplicaSet) -> ErrorList {
    let mut errs = validate_object_meta(
        &rs.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_replicaset_spec(
        &rs.spec.clone().unwrap_or_default(),
        &Path::new("spec"),
    ));
    errs
}

/// `ValidateReplicaSetUpdate` plus the apps/v1 rule that `spec.selector` is immutable.
pub fn validate_replicaset_update(new: &ReplicaSet, old: &ReplicaSet) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let ns = new.spec.clone().unwrap_or_default();
    errs.extend(validate_replicaset_spec(&ns, &Path::new("spec")));
    errs.extend(selector_immutable(
        &ns.selector,
        &old.spec.clone().unwrap_or_default().selector,
    ));
    errs
}

/// `ValidateReplicaSetStatusUpdate`
pub fn validate_replicaset_status_update(new: &ReplicaSet, old: &ReplicaSet) -> ErrorList {
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

/// The counts of a ReplicaSet's or ReplicationController's status
/// (`ValidateReplicaSetStatus`, `ValidateReplicationControllerStatus`): not negative, none
/// above `replicas`, `availableReplicas` not above `readyReplicas`.
pub(super) fn validate_replica_counts(
    replicas: i32,
    fully: Option<i32>,
    ready: Option<i32>,
    available: Option<i32>,
    observed_generation: Option<i64>,
) -> ErrorList {
    let mut errs = Vec::new();
    let p = Path::new("status");
    let (fully, ready, available) = (
        fully.unwrap_or(0),
        ready.unwrap_or(0),
        available.unwrap_or(0),
    );
    for (field, v) in [
        ("replicas", i64::from(replicas)),
        ("fullyLabeledReplicas", fully.into()),
        ("readyReplicas", ready.into()),
        ("availableReplicas", available.into()),
        ("observedGeneration", observed_generation.unwrap_or(0)),
    ] {
        errs.extend(validate_nonnegative(v, &p.child(field)));
    }
    errs.extend(status_relations(
        &p,
        replicas,
        &[
            ("fullyLabeledReplicas", fully),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ],
        available,
        ready,
    ));
    errs
}

/// `ValidateScale` for the `scale` subresource: `spec.replicas` must not be negative.
pub fn validate_scale(replicas: i32) -> ErrorList {
    if replicas < 0 {
        vec![Error::invalid(
            &Path::new("spec").child("replicas"),
            replicas,
            IS_NEGATIVE_ERROR_MSG,
        )]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests;
