//! The Job controller, after kubernetes' `pkg/controller/job`: runs a Job's pods to completion —
//! `parallelism` at a time until `completions` succeed (or, without `completions`, until one
//! succeeds and the rest end), Indexed Jobs with one pod per completion index (the
//! `batch.kubernetes.io/job-completion-index` annotation and label, `JOB_COMPLETION_INDEX`
//! in the environment, hostname `<job>-<index>`), `backoffLimit` (failed pods, or restarts
//! under `restartPolicy: OnFailure`), `activeDeadlineSeconds`, `suspend`, and
//! `ttlSecondsAfterFinished` (the TTL-after-finished controller's job, done here). Conditions
//! as Kubernetes 1.31+ writes them: `SuccessCriteriaMet` then `Complete` (reason
//! `CompletionsReached`), `FailureTarget` then `Failed` once no pod is left running.
//!
//! The decision is pure ([`plan`]); [`sync`] carries it out.
//!
//! Differences from upstream: finished pods are counted from the pods that exist (upstream
//! tracks them with the `batch.kubernetes.io/job-tracking` finalizer and
//! `uncountedTerminatedPods`), taking the larger of that and the recorded count so deleting a
//! finished pod never lowers it; failed pods are replaced at once (no exponential back-off
//! delay); pod failure policies, success policies and `backoffLimitPerIndex` are not acted on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use crate::events::{NORMAL, WARNING};
use crate::expectations::Expectations;
use crate::util;
use crate::Context;
use svcnet_informer::{run_workers, Change, Key, Queue};

/// `batch.kubernetes.io/job-completion-index`: annotation and label of an Indexed Job's pods.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

pub async fn run(ctx: Arc<Context>) {
    let queue = Queue::new();
    let exp = Arc::new(Expectations::default());
    let (q, c) = (queue.clone(), ctx.clone());
    let mut jobs = ctx.informers.jobs.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = jobs.recv().await {
            match ch {
                Change::Applied { new, .. } => q.add(Key::of(&*new)),
                Change::Deleted(j) => q.add(Key::of(&*j)),
                Change::Resync => c
                    .informers
                    .jobs
                    .store()
                    .state()
                    .iter()
                    .for_each(|j| q.add(Key::of(&**j))),
            }
        }
    });
    let (q, c, e) = (queue.clone(), ctx.clone(), exp.clone());
    let mut pods = ctx.informers.pods.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = pods.recv().await {
            match ch {
                Change::Applied { old, new } => {
                    if let Some(k) = owner(&new) {
                        if old.is_none() {
                            e.creation_observed(&k);
                        }
                        q.add(k);
                    }
                }
                Change::Deleted(p) => {
                    if let Some(k) = owner(&p) {
                        e.deletion_observed(&k, &Key::of(&*p).to_string());
                        q.add(k);
                    }
                }
                Change::Resync => {
                    e.clear();
                    c.informers
                        .jobs
                        .store()
                        .state()
                        .iter()
                        .for_each(|j| q.add(Key::of(&**j)));
                }
            }
        }
    });
    for j in ctx.informers.jobs.store().state() {
        queue.add(Key::of(&*j));
    }
    run_workers("job", queue, 5, move |key| {
        let (ctx, exp) = (ctx.clone(), exp.clone());
        async move { sync(&ctx, &exp, &key).await }
    })
    .await;
}

/// The Job controlling `pod`, as a queue key.
fn owner(pod: &Pod) -> Option<Key> {
    let r = util::controller_of(pod)?;
    (r.kind == "Job" && r.api_version == "batch/v1")
        .then(|| Key::new(pod.metadata.namespace.as_deref(), &r.name))
}

fn condition_true(job: &Job, type_: &str) -> bool {
    job.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// `IsJobFinished`: Complete or Failed.
pub fn finished(job: &Job) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

fn index_of(pod: &Pod) -> Option<i32> {
    pod.annotations().get(COMPLETION_INDEX)?.parse().ok()
}

/// `succeededIndexes.String()`: sorted indexes as ranges, `1,3-5,7`.
pub fn format_indexes(idx: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = idx.iter().copied().peekable();
    while let Some(first) = it.next() {
        let mut last = first;
        while it.peek() == Some(&(last + 1)) {
            last = it.next().unwrap();
        }
        out.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    out.join(",")
}

/// What one sync does.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub status: JobStatus,
    /// Pods to create: their completion index for Indexed Jobs.
    pub create: Vec<Option<i32>>,
    /// Active pods to delete (names).
    pub delete: Vec<String>,
    /// (type, reason, message)
    pub events: Vec<(&'static str, &'static str, &'static str)>,
    /// Look again after this long (the active deadline).
    pub requeue: Option<Duration>,
}

fn condition(type_: &str, reason: &str, message: &str, now: &Time) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

const BACKOFF_MESSAGE: &str = "Job has reached the specified backoff limit";
const DEADLINE_MESSAGE: &str = "Job was active longer than specified deadline";
const COMPLETIONS_MESSAGE: &str = "Reached expected number of succeeded pods";

/// `syncJob`'s decision for an unfinished Job and its pods (those it controls).
pub fn plan(job: &Job, pods: &[Arc<Pod>], now: jiff::Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let now_t = Time(now);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let suspended = spec.suspend == Some(true);
    let active: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| !matches!(util::phase(p), "Succeeded" | "Failed"))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let succeeded_pods = pods.iter().filter(|p| util::phase(p) == "Succeeded");
    let mut succeeded_idx: BTreeSet<i32> = BTreeSet::new();
    let completions = spec.completions;
    let mut succeeded = 0;
    for p in succeeded_pods {
        succeeded += 1;
        if let Some(i) = index_of(p).filter(|i| completions.is_some_and(|c| *i < c)) {
            succeeded_idx.insert(i);
        }
    }
    if indexed {
        succeeded = succeeded_idx.len() as i32;
    }
    let succeeded = succeeded.max(old.succeeded.unwrap_or(0));
    let failed_now = pods.iter().filter(|p| util::phase(p) == "Failed").count() as i32;
    let failed = failed_now.max(old.failed.unwrap_or(0));
    let mut status = JobStatus {
        active: Some(active.len() as i32),
        ready: Some(active.iter().filter(|p| util::is_pod_ready(p)).count() as i32),
        succeeded: Some(succeeded),
        failed: Some(failed),
        terminating: Some(
            pods.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .filter(|p| !matches!(util::phase(p), "Succeeded" | "Failed"))
                .count() as i32,
        ),
        start_time: old.start_time.clone(),
        completion_time: old.completion_time.clone(),
        conditions: old.conditions.clone(),
        completed_indexes: indexed.then(|| format_indexes(&succeeded_idx)),
        failed_indexes: old.failed_indexes.clone(),
        uncounted_terminated_pods: Some(UncountedTerminatedPods::default()),
    };
    let mut plan = Plan::default();
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(now_t.clone());
    }
    let mut conditions = status.conditions.take().unwrap_or_default();
    let has = |cs: &[JobCondition], t: &str| cs.iter().any(|c| c.type_ == t && c.status == "True");

    // Failure: the backoff limit (failed pods, or restarts under OnFailure) or the deadline.
    let restarts: i32 = active
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    let limit = spec.backoff_limit.unwrap_or(6);
    let past_deadline = match (spec.active_deadline_seconds, &status.start_time) {
        (Some(d), Some(start)) if !suspended => {
            let end = start.0 + jiff::SignedDuration::from_secs(d);
            if now >= end {
                true
            } else {
                plan.requeue = Some(Duration::from_secs_f64(
                    (end - now)
                        .total(jiff::Unit::Second)
                        .unwrap_or(1.0)
                        .max(0.1),
                ));
                false
            }
        }
        _ => false,
    };
    let failure = if has(&conditions, "FailureTarget") {
        conditions
            .iter()
            .find(|c| c.type_ == "FailureTarget")
            .and_then(|c| c.reason.clone())
            .map(|r| {
                if r == "DeadlineExceeded" {
                    ("DeadlineExceeded", DEADLINE_MESSAGE)
                } else {
                    ("BackoffLimitExceeded", BACKOFF_MESSAGE)
                }
            })
    } else if failed > limit
        || (on_failure && limit >= 0 && restarts > 0 && failed + restarts > limit)
    {
        Some(("BackoffLimitExceeded", BACKOFF_MESSAGE))
    } else if past_deadline {
        Some(("DeadlineExceeded", DEADLINE_MESSAGE))
    } else {
        None
    };
    if let Some((reason, message)) = failure {
        if !has(&conditions, "FailureTarget") {
            conditions.push(condition("FailureTarget", reason, message, &now_t));
        }
        plan.delete = active.iter().map(|p| p.name_any()).collect();
        if active.is_empty() {
            conditions.push(condition("Failed", reason, message, &now_t));
            plan.events.push((WARNING, reason, message));
        }
        plan.requeue = None;
        status.conditions = Some(conditions);
        plan.status = status;
        return plan;
    }

    // Success: the completions reached (or, without completions, one pod succeeded).
    let complete = match completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0,
    };
    if complete || has(&conditions, "SuccessCriteriaMet") {
        if !has(&conditions, "SuccessCriteriaMet") {
            conditions.push(condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                COMPLETIONS_MESSAGE,
                &now_t,
            ));
        }
        // A work queue Job waits for its other pods to end; with completions, extra pods go.
        if completions.is_some() {
            plan.delete = active.iter().map(|p| p.name_any()).collect();
        }
        if active.is_empty() {
            conditions.push(condition(
                "Complete",
                "CompletionsReached",
                COMPLETIONS_MESSAGE,
                &now_t,
            ));
            status.completion_time = Some(now_t.clone());
            plan.events.push((NORMAL, "Completed", "Job completed"));
        }
        plan.requeue = None;
        status.conditions = (!conditions.is_empty()).then_some(conditions);
        plan.status = status;
        return plan;
    }

    // Run `parallelism` pods at most, never more than the completions still wanted.
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let want = if suspended {
        0
    } else {
        match completions {
            Some(c) => parallelism.min(c - succeeded).max(0),
            None => parallelism,
        }
    } as usize;
    if active.len() > want {
        let mut extra: Vec<Arc<Pod>> = active.iter().map(|p| (*p).clone()).collect();
        crate::replicaset::deletion_order(&mut extra);
        plan.delete = extra
            .iter()
            .take(active.len() - want)
            .map(|p| p.name_any())
            .collect();
    } else if indexed {
        let running: BTreeSet<i32> = active.iter().filter_map(|p| index_of(p)).collect();
        plan.create = (0..completions.unwrap_or(0))
            .filter(|i| !succeeded_idx.contains(i) && !running.contains(i))
            .take(want - active.len())
            .map(Some)
            .collect();
    } else {
        plan.create = vec![None; want - active.len()];
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    plan.status = status;
    plan
}

/// A pod of the Job (`getPodFromTemplate` with the Job's additions).
pub fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let name = job.name_any();
    let template = job.spec.clone().unwrap_or_default().template;
    let meta = template.metadata.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let mut generate_name = format!("{name}-");
    if let Some(i) = index {
        annotations.insert(COMPLETION_INDEX.into(), i.to_string());
        labels.insert(COMPLETION_INDEX.into(), i.to_string());
        generate_name = format!("{name}-{i}-");
        if spec.hostname.is_none() {
            spec.hostname = Some(format!("{name}-{i}"));
        }
        let env = EnvVar {
            name: "JOB_COMPLETION_INDEX".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                }),
                ..Default::default()
            }),
        };
        for c in spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(spec.containers.iter_mut())
        {
            let envs = c.env.get_or_insert_with(Vec::new);
            if !envs.iter().any(|e| e.name == env.name) {
                envs.push(env.clone());
            }
        }
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: meta.finalizers,
            owner_references: Some(vec![util::controller_ref(job)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The TTL-after-finished controller: a finished Job whose TTL has passed is deleted (its pods
/// with it, in the background); `Some(wait)` when it is not yet time.
fn ttl_left(job: &Job, now: jiff::Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished_at = job
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .find_map(|c| c.last_transition_time.clone())?;
    let at = finished_at.0 + jiff::SignedDuration::from_secs(ttl.into());
    Some(if now >= at {
        Duration::ZERO
    } else {
        Duration::from_secs_f64((at - now).total(jiff::Unit::Second).unwrap_or(1.0))
    })
}

async fn sync(
    ctx: &Context,
    exp: &Expectations,
    key: &Key,
) -> Result<Option<Duration>, kube::Error> {
    let ns = key.namespace.as_deref().unwrap_or("default");
    let Some(job) = ctx
        .informers
        .jobs
        .store()
        .get(&ObjectRef::<Job>::new(&key.name).within(ns))
    else {
        exp.forget(key);
        return Ok(None);
    };
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let now = jiff::Timestamp::now();
    if finished(&job) {
        return match ttl_left(&job, now) {
            Some(d) if d.is_zero() => {
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..Default::default()
                };
                util::delete_ignore_missing(&jobs, &key.name, &dp).await?;
                Ok(None)
            }
            wait => Ok(wait),
        };
    }
    if job.metadata.deletion_timestamp.is_some() || !exp.satisfied(key) {
        return Ok(None);
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let pods: Vec<Arc<Pod>> = ctx
        .informers
        .pods
        .in_namespace(ns)
        .into_iter()
        .filter(|p| util::controller_of(&**p).is_some_and(|r| r.uid == uid))
        .collect();
    let plan = plan(&job, &pods, now);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    if !plan.delete.is_empty() {
        exp.expect_deletions(key, plan.delete.iter().map(|n| format!("{ns}/{n}")));
        for name in &plan.delete {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => ctx.recorder.event(
                    &*job,
                    NORMAL,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    exp.deletion_observed(key, &format!("{ns}/{name}"));
                    if !util::is_not_found(&e) {
                        ctx.recorder.event(
                            &*job,
                            WARNING,
                            "FailedDelete",
                            format!("Error deleting: {e}"),
                        );
                    }
                }
            }
        }
    }
    if !plan.create.is_empty() {
        exp.expect_creations(key, plan.create.len());
        for index in &plan.create {
            match api
                .create(&PostParams::default(), &pod_for(&job, *index))
                .await
            {
                Ok(p) => ctx.recorder.event(
                    &*job,
                    NORMAL,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.name_any()),
                ),
                Err(e) => {
                    exp.creation_observed(key);
                    ctx.recorder.event(
                        &*job,
                        WARNING,
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    );
                }
            }
        }
    }
    for (type_, reason, message) in &plan.events {
        ctx.recorder
            .event(&*job, type_, reason, message.to_string());
    }
    if job.status.as_ref() != Some(&plan.status) {
        let mut new = (*job).clone();
        new.status = Some(plan.status);
        match jobs
            .replace_status(&key.name, &PostParams::default(), &new)
            .await
        {
            Ok(_) => {}
            Err(e) if util::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(plan.requeue)
}

#[cfg(test)]
mod tests;
