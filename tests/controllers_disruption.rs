//! PodDisruptionBudgets and the eviction subresource, driven by the real `kubectl drain`
//! against the API server and controller-manager: the disruption controller's status, a drain
//! refused with Kubernetes' 429 while the budget allows no disruption, and allowed one pod at a
//! time once it does, the next waiting until the replacement is Ready.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams};
use support::{set_pod_status, table, wait_for, ApiServer};

const T: Duration = Duration::from_secs(60);
const DENIED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Plays the node agent of every node: pods bound to a node turn Running and Ready, and pods
/// being deleted are removed once their containers would have stopped (the kubelet's final
/// delete, grace 0). Unbound pods stay Pending.
fn kubelet(client: kube::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<Pod> = Api::all(client.clone());
        let mut next: u32 = 2;
        loop {
            for p in api
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
            {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                if p.metadata.deletion_timestamp.is_some() {
                    let _ = Api::<Pod>::namespaced(client.clone(), &ns)
                        .delete(&name, &DeleteParams::default().grace_period(0))
                        .await;
                    continue;
                }
                let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                let has_ip = p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some();
                if bound && !has_ip {
                    let ip = format!("10.244.0.{next}");
                    next += 1;
                    let _ = set_pod_status(&client, &ns, &name, Some(&ip), true).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

async fn web_pods(client: &kube::Client) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().labels("app=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn ready(p: &Pod) -> bool {
    svcnet_controllers::util::is_pod_ready(p)
}

/// Wait for the budget's status as the disruption controller writes it for its latest spec:
/// (currentHealthy, desiredHealthy, expectedPods, disruptionsAllowed).
async fn wait_status(client: &kube::Client, want: (i32, i32, i32, i32)) -> PodDisruptionBudget {
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    wait_for(T, &format!("pdb status {want:?}"), || async {
        let pdb = api.get("web").await.ok()?;
        let st = pdb.status.clone()?;
        let got = (
            st.current_healthy,
            st.desired_healthy,
            st.expected_pods,
            st.disruptions_allowed,
        );
        (got == want && st.observed_generation == pdb.metadata.generation).then_some(pdb)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_respects_pod_disruption_budgets() {
    let mut s = ApiServer::start();
    // No node lifecycle: the nodes here have no agent sending heartbeats.
    s.start_controllers(&[
        "--controllers=replicaset,deployment,scheduler,disruption,garbagecollector",
    ]);
    let client = s.client().await;
    let _kubelet = kubelet(client.clone());
    s.add_node("node-a", "True");
    s.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    wait_for(T, "two ready pods on node-a", || async {
        let ps = web_pods(&client).await;
        (ps.len() == 2 && ps.iter().all(ready)).then_some(())
    })
    .await;

    // minAvailable 2 of 2: no disruption allowed.
    s.kubectl_ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=2",
    ]);
    let pdb = wait_status(&client, (2, 2, 2, 0)).await;
    let cond = &pdb.status.unwrap().conditions.unwrap()[0];
    assert_eq!(
        (
            cond.type_.as_str(),
            cond.status.as_str(),
            cond.reason.as_str()
        ),
        ("DisruptionAllowed", "False", "InsufficientPods")
    );
    let t = table(&s.kubectl_ok(&["get", "pdb"]));
    assert_eq!(
        (
            t[0]["NAME"].as_str(),
            t[0]["MIN AVAILABLE"].as_str(),
            t[0]["MAX UNAVAILABLE"].as_str(),
            t[0]["ALLOWED DISRUPTIONS"].as_str()
        ),
        ("web", "2", "N/A", "0")
    );
    let err = s.kubectl_err(&["drain", "node-a", "--timeout=6s"]);
    assert!(err.contains(DENIED), "{err}");
    assert!(err.contains("(will retry after 5s)"), "{err}");
    assert_eq!(web_pods(&client).await.len(), 2, "nothing evicted");
    assert_eq!(
        s.jsonpath("node", "node-a", "{.spec.unschedulable}"),
        "true"
    );

    // The Status itself, as kube-apiserver answers it.
    let victim = web_pods(&client).await[0].metadata.name.clone().unwrap();
    // policy/v1beta1 Evictions too, as older clients send them.
    for version in ["v1", "v1beta1"] {
        let body = format!(
            r#"{{"apiVersion":"policy/{version}","kind":"Eviction","metadata":{{"name":"{victim}","namespace":"default"}}}}"#
        );
        let ct = "Content-Type: application/json";
        let (code, resp) = s.curl_auth(
            &["-X", "POST", "-H", ct, "-d", &body],
            &format!("/api/v1/namespaces/default/pods/{victim}/eviction"),
        );
        assert_eq!(code, 429, "{resp}");
        let status: serde_json::Value = serde_json::from_str(&resp).unwrap();
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["message"], DENIED);
        assert_eq!(
            status["details"]["causes"][0],
            serde_json::json!({"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"})
        );
    }

    // minAvailable 1: one pod may go. The drain evicts one; its replacement cannot be scheduled
    // (node-a is cordoned, no other node) so the other pod's eviction is refused.
    s.kubectl_ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]);
    wait_status(&client, (2, 1, 2, 1)).await;
    let before: Vec<String> = web_pods(&client)
        .await
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    let err = s.kubectl_err(&["drain", "node-a", "--timeout=8s"]);
    assert!(err.contains(DENIED), "{err}");
    let left = wait_for(
        T,
        "one original pod evicted, a pending replacement",
        || async {
            let ps = web_pods(&client).await;
            let originals: Vec<&Pod> = ps
                .iter()
                .filter(|p| before.contains(p.metadata.name.as_ref().unwrap()))
                .collect();
            (ps.len() == 2 && originals.len() == 1)
                .then(|| originals[0].metadata.name.clone().unwrap())
        },
    )
    .await;
    let replacement = web_pods(&client)
        .await
        .into_iter()
        .find(|p| p.metadata.name.as_deref() != Some(left.as_str()))
        .unwrap();
    assert!(!ready(&replacement), "unschedulable: not ready");
    wait_status(&client, (1, 1, 2, 0)).await;

    // A second node: the replacement runs there and turns Ready; the drain completes.
    s.add_node("node-b", "True");
    wait_status(&client, (2, 1, 2, 1)).await;
    let out = s.kubectl_ok(&["drain", "node-a", "--timeout=60s"]);
    assert!(out.contains(&format!("pod/{left} evicted")), "{out}");
    assert!(out.contains("node/node-a drained"), "{out}");
    wait_for(T, "two ready pods on node-b", || async {
        let ps = web_pods(&client).await;
        let on_b = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-b");
        (ps.len() == 2 && ps.iter().all(|p| ready(p) && on_b(p))).then_some(())
    })
    .await;
}
