use super::*;
use serde_json::json;

fn job(spec: serde_json::Value, status: serde_json::Value) -> Job {
    serde_json::from_value(
        json!({"metadata": {"name": "pi", "namespace": "default", "uid": "u"},
        "spec": spec, "status": status}),
    )
    .unwrap()
}

fn pod(name: &str, phase: &str, index: Option<i32>) -> Arc<Pod> {
    let mut p: Pod = serde_json::from_value(json!({"metadata": {"name": name},
        "status": {"phase": phase}}))
    .unwrap();
    if let Some(i) = index {
        p.metadata.annotations = Some([(COMPLETION_INDEX.to_string(), i.to_string())].into());
    }
    Arc::new(p)
}

fn now() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn types(p: &Plan) -> Vec<(String, Option<String>)> {
    p.status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.reason.clone()))
        .collect()
}

#[test]
fn runs_parallelism_pods_until_completions() {
    let j = job(
        json!({"completions": 5, "parallelism": 2, "backoffLimit": 6}),
        json!({}),
    );
    let p = plan(&j, &[], now());
    assert_eq!(p.create.len(), 2);
    assert_eq!(p.status.start_time, Some(Time(now())));
    // 4 done, 1 running: nothing more.
    let pods: Vec<_> = (0..4)
        .map(|i| pod(&format!("s{i}"), "Succeeded", None))
        .chain([pod("r", "Running", None)])
        .collect();
    let p = plan(&j, &pods, now());
    assert_eq!(
        (p.create.len(), p.status.active, p.status.succeeded),
        (0, Some(1), Some(4))
    );
    // The fifth succeeds: SuccessCriteriaMet and Complete, completion time, the event.
    let pods: Vec<_> = (0..5)
        .map(|i| pod(&format!("s{i}"), "Succeeded", None))
        .collect();
    let p = plan(&j, &pods, now());
    assert_eq!(
        types(&p),
        [
            (
                "SuccessCriteriaMet".into(),
                Some("CompletionsReached".into())
            ),
            ("Complete".into(), Some("CompletionsReached".into()))
        ]
    );
    assert_eq!(p.status.completion_time, Some(Time(now())));
    assert_eq!(p.events, [(NORMAL, "Completed", "Job completed")]);
}

#[test]
fn fails_past_the_backoff_limit() {
    let j = job(
        json!({"completions": 1, "parallelism": 1, "backoffLimit": 1}),
        json!({}),
    );
    let p = plan(&j, &[pod("f1", "Failed", None)], now());
    assert_eq!(p.create.len(), 1, "one failure is within the limit");
    let p = plan(
        &j,
        &[pod("f1", "Failed", None), pod("f2", "Failed", None)],
        now(),
    );
    assert_eq!(
        types(&p),
        [
            ("FailureTarget".into(), Some("BackoffLimitExceeded".into())),
            ("Failed".into(), Some("BackoffLimitExceeded".into()))
        ]
    );
    assert_eq!(
        p.status.conditions.unwrap()[1].message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert!(p.create.is_empty());
}

#[test]
fn deadline_deletes_running_pods_then_fails() {
    let start = "2025-12-31T23:59:00Z";
    let j = job(
        json!({"completions": 1, "activeDeadlineSeconds": 30}),
        json!({"startTime": start}),
    );
    let p = plan(&j, &[pod("r", "Running", None)], now());
    assert_eq!(p.delete, ["r"]);
    assert_eq!(
        types(&p),
        [("FailureTarget".into(), Some("DeadlineExceeded".into()))]
    );
    let j = job(
        json!({"completions": 1, "activeDeadlineSeconds": 90}),
        json!({"startTime": start}),
    );
    assert_eq!(plan(&j, &[], now()).requeue, Some(Duration::from_secs(30)));
}

#[test]
fn indexed_jobs_create_missing_indexes() {
    let j = job(
        json!({"completions": 5, "parallelism": 3, "completionMode": "Indexed"}),
        json!({}),
    );
    let pods = [
        pod("a", "Succeeded", Some(0)),
        pod("b", "Running", Some(2)),
        pod("c", "Succeeded", Some(3)),
    ];
    let p = plan(&j, &pods, now());
    assert_eq!(p.create, [Some(1), Some(4)]);
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0,3"));
    let pod = pod_for(&j, Some(4));
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-4-"));
    assert_eq!(pod.annotations()[COMPLETION_INDEX], "4");
    assert_eq!(pod.spec.unwrap().hostname.as_deref(), Some("pi-4"));
}

#[test]
fn formats_index_ranges() {
    assert_eq!(format_indexes(&[0, 1, 2, 4, 6, 7].into()), "0-2,4,6-7");
    assert_eq!(format_indexes(&BTreeSet::new()), "");
}

#[test]
fn suspended_jobs_run_nothing() {
    let j = job(
        json!({"completions": 2, "parallelism": 2, "suspend": true}),
        json!({}),
    );
    let p = plan(&j, &[pod("r", "Running", None)], now());
    assert_eq!(
        (p.delete.len(), p.create.len(), p.status.start_time),
        (1, 0, None)
    );
}
