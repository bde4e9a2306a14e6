//! The Job controller against the real API server, driven by kubectl: pods run to completion
//! (a stand-in kubelet ends them Succeeded or Failed), `kubectl wait --for=condition=complete`,
//! the backoff limit, `kubectl create job`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use support::{table, wait_for, ApiServer};

/// A kubelet that ends every pod it sees in `phase` (after recording how many of the Job's
/// pods were running at once, so parallelism can be checked).
fn finishing_kubelet(
    client: kube::Client,
    phase: &'static str,
    most_active: Arc<Mutex<usize>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client, "default");
        loop {
            if let Ok(pods) = api.list(&ListParams::default()).await {
                let running: Vec<&Pod> = pods
                    .items
                    .iter()
                    .filter(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some(phase)
                            && p.metadata.deletion_timestamp.is_none()
                    })
                    .collect();
                {
                    let mut m = most_active.lock().unwrap();
                    *m = (*m).max(running.len());
                }
                // Give the controller a moment to over-create if it would.
                tokio::time::sleep(Duration::from_millis(100)).await;
                for p in running {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let code = if phase == "Succeeded" { 0 } else { 1 };
                    let status = serde_json::json!({"status": {
                        "phase": phase,
                        "containerStatuses": [{"name": "work", "ready": false, "restartCount": 0,
                            "image": "busybox", "imageID": "",
                            "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}}}]
                    }});
                    let _ = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

const JOB: &str = "apiVersion: batch/v1
kind: Job
metadata: {name: five}
spec:
  completions: 5
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: work, image: busybox, command: [sh, -c, 'echo done']}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_five_completions_two_at_a_time_completes() {
    let mut s = ApiServer::start();
    s.start_controllers(&[]);
    let client = s.client().await;
    let most = Arc::new(Mutex::new(0));
    let kubelet = finishing_kubelet(client.clone(), "Succeeded", most.clone());
    let out = s.kubectl_stdin(&["apply", "-f", "-"], JOB);
    assert!(out.status.success(), "{out:?}");
    let out = s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/five",
        "--timeout=60s",
    ]);
    assert_eq!(out.trim(), "job.batch/five condition met");
    kubelet.abort();
    let t = table(&s.kubectl_ok(&["get", "jobs"]));
    assert_eq!(
        (t[0]["STATUS"].as_str(), t[0]["COMPLETIONS"].as_str()),
        ("Complete", "5/5"),
        "{t:?}"
    );
    assert!(*most.lock().unwrap() <= 2, "parallelism 2 exceeded");
    let pods = s.kubectl_ok(&["get", "pods", "-l", "job-name=five", "-o", "name"]);
    assert_eq!(pods.lines().count(), 5, "{pods}");
    // The Job owns its pods: deleting it deletes them.
    s.kubectl_ok(&["delete", "job", "five"]);
    wait_for(
        Duration::from_secs(20),
        "the Job's pods deleted",
        || async {
            let pods = s.kubectl_ok(&["get", "pods", "-l", "job-name=five", "-o", "name"]);
            pods.trim().is_empty().then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_stops_at_its_backoff_limit() {
    let mut s = ApiServer::start();
    s.start_controllers(&[]);
    let client = s.client().await;
    let kubelet = finishing_kubelet(client.clone(), "Failed", Arc::new(Mutex::new(0)));
    let out = s.kubectl_ok(&[
        "create",
        "job",
        "doomed",
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert_eq!(out.trim(), "job.batch/doomed created");
    s.kubectl_ok(&[
        "patch",
        "job",
        "doomed",
        "--type=merge",
        "-p",
        r#"{"spec":{"backoffLimit":1}}"#,
    ]);
    let out = s.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/doomed",
        "--timeout=60s",
    ]);
    assert_eq!(out.trim(), "job.batch/doomed condition met");
    kubelet.abort();
    let reason = s.kubectl_ok(&[
        "get",
        "job",
        "doomed",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Failed")].reason}"#,
    ]);
    assert_eq!(reason.trim(), "BackoffLimitExceeded");
    let t = table(&s.kubectl_ok(&["get", "job", "doomed"]));
    assert_eq!(t[0]["STATUS"], "Failed", "{t:?}");
}
