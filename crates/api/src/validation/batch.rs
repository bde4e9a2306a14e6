//! batch/v1 Job validation: `ValidateJob`, `ValidateJobSpec`, `ValidateJobUpdate` and
//! `ValidateJobStatusUpdate` of `pkg/apis/batch/validation/validation.go`, with the generated
//! selector's check (`validateGeneratedSelector`).
//!
//! Not checked (yet): pod failure policy rules, backoffLimitPerIndex / maxFailedIndexes,
//! success policies, the status conditions' transitions, and the template changes upstream
//! allows on a suspended Job that never started (here the template is always immutable).

use k8s_openapi::api::batch::v1::{Job, JobSpec};

use super::apps::{selector_immutable, selector_matches, validate_label_selector};
use super::gofmt;
use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{
    is_dns1123_label, name_is_dns_subdomain, validate_nonnegative, FIELD_IMMUTABLE_ERROR_MSG,
};
use super::pod::validate_pod_template_spec;
use crate::defaults::batch::CONTROLLER_UID_LABEL;
use crate::field::{BadValue, Error, ErrorList, Path};

/// `maxParallelismForIndexedJob`
const MAX_PARALLELISM_FOR_INDEXED_JOB: i32 = 100_000;

/// `validateGeneratedSelector`: unless `manualSelector`, the selector must be exactly the
/// generated one, matching this Job's uid.
fn validate_generated_selector(job: &Job) -> ErrorList {
    let spec = job.spec.clone().unwrap_or_default();
    if spec.manual_selector == Some(true) {
        return Vec::new();
    }
    let Some(sel) = &spec.selector else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    if uid.is_empty() {
        errs.push(Error::required(&Path::new("metadata").child("uid"), ""));
    }
    let generated = [(CONTROLLER_UID_LABEL.to_string(), uid)].into();
    if sel
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
        || sel.match_labels.as_ref() != Some(&generated)
    {
        errs.push(Error::invalid(
            &Path::new("spec").child("selector"),
            gofmt::label_selector(sel),
            "`selector` not auto-generated",
        ));
    }
    errs
}

/// `ValidateJobSpec`
fn validate_job_spec(spec: &JobSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (field, v) in [
        ("parallelism", spec.parallelism.map(i64::from)),
        ("completions", spec.completions.map(i64::from)),
        ("activeDeadlineSeconds", spec.active_deadline_seconds),
        ("backoffLimit", spec.backoff_limit.map(i64::from)),
        (
            "ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished.map(i64::from),
        ),
    ] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative(v, &path.child(field)));
        }
    }
    if let Some(mode) = spec.completion_mode.as_deref() {
        if mode != "NonIndexed" && mode != "Indexed" {
            errs.push(Error::not_supported(
                &path.child("completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if mode == "Indexed" {
            if spec.completions.is_none() {
                errs.push(Error::required(
                    &path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = spec
                .parallelism
                .filter(|p| *p > MAX_PARALLELISM_FOR_INDEXED_JOB)
            {
                errs.push(Error::invalid(
                    &path.child("parallelism"),
                    p,
                    format!(
                        "must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED_JOB} when completion mode is Indexed"
                    ),
                ));
            }
        }
    }
    let sel_path = path.child("selector");
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    match &spec.selector {
        None => errs.push(Error::required(&sel_path, "")),
        Some(sel) => {
            errs.extend(validate_label_selector(sel, &sel_path));
            // Whether manual or generated, the selector must match the pods it makes.
            if selector_matches(sel, template_labels) == Some(false) {
                errs.push(Error::invalid(
                    &path.child("template").child("metadata").child("labels"),
                    gofmt::labels(template_labels),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    let tpath = path.child("template");
    errs.extend(validate_pod_template_spec(&spec.template, &tpath));
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("");
    let restart_path = tpath.child("spec").child("restartPolicy");
    if restart != "OnFailure" && restart != "Never" {
        errs.push(Error::not_supported(
            &restart_path,
            restart,
            &["OnFailure", "Never"],
        ));
    } else if spec.pod_failure_policy.is_some() && restart != "Never" {
        errs.push(Error::invalid(
            &restart_path,
            restart,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    errs
}

/// `ValidateJob`: metadata (names as ReplicationControllers'), the generated selector, the
/// spec, and for Indexed Jobs the longest pod hostname (`<name>-<completions-1>`).
pub fn validate_create(job: &Job) -> ErrorList {
    let mut errs = validate_object_meta(
        &job.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_generated_selector(job));
    let spec = job.spec.clone().unwrap_or_default();
    errs.extend(validate_job_spec(&spec, &Path::new("spec")));
    if let (Some("Indexed"), Some(c)) = (spec.completion_mode.as_deref(), spec.completions) {
        let name = job.metadata.name.clone().unwrap_or_default();
        let hostname = format!("{name}-{}", c - 1);
        if c > 0 && !is_dns1123_label(&hostname).is_empty() {
            errs.push(Error::invalid(
                &Path::new("metadata").child("name"),
                name,
                format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
    errs
}

fn immutable(path: &Path, value: BadValue) -> Error {
    Error::invalid(path, value, FIELD_IMMUTABLE_ERROR_MSG)
}

/// `ValidateJobUpdate`: the spec as on create, and what may not change — completions (but
/// for Indexed Jobs scaled with parallelism == completions, "elastic" Jobs), selector,
/// template, completionMode, podFailurePolicy, backoffLimitPerIndex.
pub fn validate_update(new: &Job, old: &Job) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let p = Path::new("spec");
    let (ns, os) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    errs.extend(validate_job_spec(&ns, &p));
    let elastic = ns.completion_mode.as_deref() == Some("Indexed")
        && os.completion_mode.as_deref() == Some("Indexed")
        && ns.completions == ns.parallelism
        && os.completions == os.parallelism;
    if ns.completions != os.completions && !elastic {
        let v = ns.completions.map_or(BadValue::Null, BadValue::from);
        errs.push(immutable(&p.child("completions"), v));
    }
    match (&ns.selector, &os.selector) {
        (Some(n), Some(o)) => errs.extend(selector_immutable(n, o)),
        (n, o) if n != o => errs.push(immutable(
            &p.child("selector"),
            n.as_ref().map_or(BadValue::Null, gofmt::label_selector),
        )),
        _ => {}
    }
    if ns.template != os.template {
        // Go prints the whole `core.PodTemplateSpec`; the path says enough.
        errs.push(immutable(&p.child("template"), BadValue::Omit));
    }
    if ns.completion_mode != os.completion_mode {
        let v = ns.completion_mode.as_deref().unwrap_or("").into();
        errs.push(immutable(&p.child("completionMode"), v));
    }
    if ns.pod_failure_policy != os.pod_failure_policy {
        errs.push(immutable(&p.child("podFailurePolicy"), BadValue::Omit));
    }
    if ns.backoff_limit_per_index != os.backoff_limit_per_index {
        let v = ns
            .backoff_limit_per_index
            .map_or(BadValue::Null, BadValue::from);
        errs.push(immutable(&p.child("backoffLimitPerIndex"), v));
    }
    errs
}

/// `ValidateJobStatusUpdate`: the counts are not negative.
pub fn validate_status_update(new: &Job, old: &Job) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let st = new.status.clone().unwrap_or_default();
    let p = Path::new("status");
    for (field, v) in [
        ("active", st.active),
        ("succeeded", st.succeeded),
        ("failed", st.failed),
        ("ready", st.ready),
        ("terminating", st.terminating),
    ] {
        errs.extend(validate_nonnegative(v.unwrap_or(0).into(), &p.child(field)));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::batch::{default_job, generate_job_selector};
    use serde_json::json;

    fn job(spec: serde_json::Value) -> Job {
        let mut j: Job = serde_json::from_value(
            json!({"metadata": {"name": "pi", "namespace": "default", "uid": "u-1", "resourceVersion": "1"}, "spec": spec}),
        )
        .unwrap();
        default_job(&mut j);
        generate_job_selector(&mut j);
        j
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    fn template(restart: &str) -> serde_json::Value {
        json!({"spec": {"restartPolicy": restart, "containers": [{"name": "pi", "image": "perl"}]}})
    }

    #[test]
    fn a_generated_job_is_valid() {
        assert_eq!(
            messages(&validate_create(&job(
                json!({"template": template("Never")})
            ))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn job_errors_match_kubernetes() {
        let j = job(json!({"parallelism": -1, "backoffLimit": -2, "template": template("Always")}));
        assert_eq!(
            messages(&validate_create(&j)),
            [
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            ]
        );
        let j =
            job(json!({"selector": {"matchLabels": {"a": "b"}}, "template": template("Never")}));
        let m = messages(&validate_create(&j));
        assert!(
            m.iter()
                .any(|e| e.starts_with("spec.selector: Invalid value:")
                    && e.ends_with("`selector` not auto-generated")),
            "{m:?}"
        );
        let j = job(
            json!({"completionMode": "Indexed", "parallelism": 2, "template": template("Never")}),
        );
        assert_eq!(
            messages(&validate_create(&j)),
            ["spec.completions: Required value: when completion mode is Indexed"]
        );
    }

    #[test]
    fn job_update() {
        let old = job(json!({"completions": 3, "template": template("Never")}));
        let mut new = old.clone();
        new.spec.as_mut().unwrap().completions = Some(4);
        new.spec.as_mut().unwrap().parallelism = Some(2);
        assert_eq!(
            messages(&validate_update(&new, &old)),
            ["spec.completions: Invalid value: 4: field is immutable"]
        );
    }
}
