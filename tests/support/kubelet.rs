//! A stand-in node agent for controller tests that run no nodes.

use std::time::Duration;

/// Plays the node agent for controller tests that run no nodes: every pod without an IP gets
/// one (10.244.<n>) and turns Running and Ready, through the pods' status as a kubelet reports
/// it. Stops when the returned handle is aborted or dropped with the runtime.
pub fn fake_kubelet(client: kube::Client) -> tokio::task::JoinHandle<()> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    tokio::spawn(async move {
        let api: Api<Pod> = Api::all(client.clone());
        let mut next: u32 = 2;
        loop {
            if let Ok(pods) = api.list(&ListParams::default()).await {
                for p in pods {
                    let has_ip = p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some();
                    if has_ip || p.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let ip = format!("10.244.{}.{}", next / 250, next % 250 + 1);
                    next += 1;
                    let ns = p.metadata.namespace.clone().unwrap_or_default();
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let _ = set_pod_status(&client, &ns, &name, Some(&ip), true).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Set a pod's IP (if given) and readiness through its status, as a kubelet would.
pub async fn set_pod_status(
    client: &kube::Client,
    ns: &str,
    name: &str,
    ip: Option<&str>,
    ready: bool,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = jiff_now();
    let status = if ready { "True" } else { "False" };
    let mut st = serde_json::json!({
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": status, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
        ],
    });
    if let Some(ip) = ip {
        st["podIP"] = ip.into();
        st["podIPs"] = serde_json::json!([{ "ip": ip }]);
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": st })),
    )
    .await
    .map(|_| ())
}

fn jiff_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
