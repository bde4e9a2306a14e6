//! batch/v1 defaulting: `SetDefaults_Job` of `pkg/apis/batch/v1/defaults.go`, plus the pod
//! template defaults, and the selector the Job strategy generates on create
//! (`pkg/registry/batch/job/strategy.go`, `generateSelector`).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::core::default_pod_template_spec;

/// `batch.kubernetes.io/controller-uid`: the label the generated selector matches.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// `batch.kubernetes.io/job-name`
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The labels Kubernetes before 1.27 used, still written next to the prefixed ones.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";

/// `SetDefaults_Job`: completions and parallelism 1 when neither is set (parallelism 1 when
/// only it is unset), `backoffLimit` 6 (MaxInt32 with `backoffLimitPerIndex`), the Job's labels
/// from the template's when it has none, `completionMode: NonIndexed`, `suspend: false`,
/// `podReplacementPolicy` (`Failed` with a pod failure policy, else `TerminatingOrFailed`),
/// `manualSelector: false` left unset as upstream (a nil pointer), onPodConditions' status
/// `True`; then the pod template defaults.
pub fn default_job(job: &mut Job) {
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    if spec.backoff_limit.is_none() {
        spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone());
    if let Some(labels) = template_labels {
        if job.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            job.metadata.labels = Some(labels);
        }
    }
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    if let Some(policy) = &mut spec.pod_failure_policy {
        for rule in &mut policy.rules {
            for pattern in rule.on_pod_conditions.iter_mut().flatten() {
                if pattern.status.is_empty() {
                    pattern.status = "True".into();
                }
            }
        }
    }
    if spec.pod_replacement_policy.is_none() {
        spec.pod_replacement_policy = Some(if spec.pod_failure_policy.is_some() {
            "Failed".into()
        } else {
            "TerminatingOrFailed".into()
        });
    }
    default_pod_template_spec(&mut spec.template);
}

/// `generateSelector`, run on create unless `manualSelector` is true: the template gets
/// `batch.kubernetes.io/controller-uid` and `batch.kubernetes.io/job-name` (and the legacy
/// `controller-uid`, `job-name`) unless it has them, and the selector matches the uid label.
/// A user-given uid label that differs is left for validation to refuse.
pub fn generate_job_selector(job: &mut Job) {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let Some(spec) = job.spec.as_mut() else {
        return;
    };
    if spec.manual_selector == Some(true) {
        return;
    }
    let labels = spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    for (key, value) in [
        (LEGACY_CONTROLLER_UID_LABEL, &uid),
        (LEGACY_JOB_NAME_LABEL, &name),
        (CONTROLLER_UID_LABEL, &uid),
        (JOB_NAME_LABEL, &name),
    ] {
        labels
            .entry(key.to_string())
            .or_insert_with(|| value.clone());
    }
    let selector = spec.selector.get_or_insert_with(LabelSelector::default);
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .entry(CONTROLLER_UID_LABEL.to_string())
        .or_insert(uid);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(spec: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn job_defaults() {
        let mut j = job(json!({"template": {"metadata": {"labels": {"app": "pi"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}));
        default_job(&mut j);
        let v = serde_json::to_value(&j).unwrap();
        let s = &v["spec"];
        assert_eq!(
            (
                &s["completions"],
                &s["parallelism"],
                &s["backoffLimit"],
                &s["completionMode"],
                &s["suspend"],
                &s["podReplacementPolicy"]
            ),
            (
                &json!(1),
                &json!(1),
                &json!(6),
                &json!("NonIndexed"),
                &json!(false),
                &json!("TerminatingOrFailed")
            )
        );
        assert_eq!(v["metadata"]["labels"], json!({"app": "pi"}));
        // Only parallelism given: completions stay unset (a work queue).
        let mut j = job(json!({"parallelism": 3, "template": {}}));
        default_job(&mut j);
        let s = j.spec.unwrap();
        assert_eq!((s.completions, s.parallelism), (None, Some(3)));
        let mut j = job(
            json!({"backoffLimitPerIndex": 1, "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}, "template": {}}),
        );
        default_job(&mut j);
        let s = j.spec.unwrap();
        assert_eq!(s.backoff_limit, Some(i32::MAX));
        assert_eq!(s.pod_replacement_policy.as_deref(), Some("Failed"));
        let rule = &s.pod_failure_policy.unwrap().rules[0];
        assert_eq!(rule.on_pod_conditions.as_ref().unwrap()[0].status, "True");
    }

    #[test]
    fn generated_selector() {
        let mut j = job(json!({"template": {"metadata": {"labels": {"app": "pi"}}}}));
        generate_job_selector(&mut j);
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(
            v["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"],
            json!({"app": "pi", "batch.kubernetes.io/controller-uid": "u-1",
                "batch.kubernetes.io/job-name": "pi", "controller-uid": "u-1", "job-name": "pi"})
        );
        let mut j = job(json!({"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}));
        generate_job_selector(&mut j);
        assert_eq!(
            serde_json::to_value(&j).unwrap()["spec"]["selector"],
            json!({"matchLabels": {"a": "b"}})
        );
    }
}
