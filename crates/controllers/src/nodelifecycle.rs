//! The node lifecycle controller's health part (kube-controller-manager's
//! `node-lifecycle-controller`): a Node whose agent has not posted status for
//! `--node-monitor-grace-period` gets its conditions set to `Unknown` ("Kubelet stopped posting
//! node status."), and its pods are marked not ready — so their endpoints stop receiving traffic.
//! (Taint-based eviction after 5 minutes is not implemented.)

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::util;
use crate::Context;

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The last time the node's agent reported, if it ever did.
fn last_heartbeat(node: &Node) -> Option<i64> {
    ready_condition(node)?
        .last_heartbeat_time
        .as_ref()
        .map(|t| t.0.as_second())
}

fn ready_status(node: &Node) -> Option<&str> {
    ready_condition(node).map(|c| c.status.as_str())
}

pub async fn run(ctx: Arc<Context>) {
    let grace = ctx.config.node_monitor_grace_period;
    let period = (grace / 8).clamp(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        tokio::time::sleep(period).await;
        let now = jiff::Timestamp::now().as_second();
        for node in ctx.informers.nodes.store().state() {
            let Some(hb) = last_heartbeat(&node) else {
                continue;
            };
            if ready_status(&node) == Some("Unknown") || now - hb <= grace.as_secs() as i64 {
                continue;
            }
            if let Err(e) = mark_unknown(&ctx, &node).await {
                tracing::warn!(node = %node.name_any(), error = %e, "marking node unknown failed");
            }
        }
    }
}

async fn mark_unknown(ctx: &Context, node: &Node) -> Result<(), kube::Error> {
    let name = node.name_any();
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let conditions: Vec<serde_json::Value> = node
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .map(|c| {
            json!({
                "type": c.type_, "status": "Unknown", "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": c.last_heartbeat_time, "lastTransitionTime": now,
            })
        })
        .collect();
    let api: Api<Node> = Api::all(ctx.client.clone());
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": conditions}})),
    )
    .await?;
    ctx.recorder.event(
        node,
        crate::events::NORMAL,
        "NodeNotReady",
        format!("Node {name} status is now: NodeNotReady"),
    );
    // MarkPodsNotReady.
    for pod in ctx.informers.pods.store().state() {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(name.as_str())
            || !util::is_pod_ready(&pod)
        {
            continue;
        }
        let conds: Vec<serde_json::Value> = pod
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .map(|c| {
                if c.type_ == "Ready" {
                    json!({"type": "Ready", "status": "False", "lastTransitionTime": now})
                } else {
                    serde_json::to_value(c).unwrap_or_default()
                }
            })
            .collect();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": conds}})),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if util::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        ctx.recorder.event(
            &*pod,
            crate::events::WARNING,
            "NodeNotReady",
            "Node is not ready".into(),
        );
    }
    Ok(())
}
