//! A simple scheduler: binds each pending pod (no `spec.nodeName`, `schedulerName` default) to a
//! ready, schedulable node whose labels match its nodeSelector and whose NoSchedule/NoExecute
//! taints it tolerates, spreading by pod count (fewest first, then name). Binding goes through
//! `pods/binding` as kube-scheduler's does; a pod that fits nowhere gets `PodScheduled=False`,
//! `Unschedulable`, and a `FailedScheduling` event, and is retried when nodes change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::events::{NORMAL, WARNING};
use crate::util;
use crate::Context;
use svcnet_informer::conditions::node_ready;
use svcnet_informer::{run_workers, Change, Key, Queue};

const DEFAULT_SCHEDULER: &str = "default-scheduler";

fn pending(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty)
        && pod.metadata.deletion_timestamp.is_none()
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|n| n == DEFAULT_SCHEDULER)
        && !matches!(util::phase(pod), "Succeeded" | "Failed")
}

fn tolerates(tolerations: &[Toleration], key: &str, value: Option<&str>, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == effect);
        let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty() || k == key);
        let value_ok = match t.operator.as_deref() {
            Some("Exists") => true,
            _ => t.value.as_deref().unwrap_or("") == value.unwrap_or(""),
        };
        effect_ok && key_ok && value_ok
    })
}

/// Why `node` cannot take `pod`, or `None` if it can.
pub fn unfit(pod: &Pod, node: &Node) -> Option<&'static str> {
    if !node_ready(node) {
        return Some("node(s) were not ready");
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        return Some("node(s) were unschedulable");
    }
    let spec = pod.spec.as_ref();
    if let Some(sel) = spec.and_then(|s| s.node_selector.as_ref()) {
        if !sel.iter().all(|(k, v)| node.labels().get(k) == Some(v)) {
            return Some("node(s) didn't match Pod's node affinity/selector");
        }
    }
    let tolerations = spec.and_then(|s| s.tolerations.clone()).unwrap_or_default();
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
    for t in taints.into_iter().flatten() {
        if (t.effect == "NoSchedule" || t.effect == "NoExecute")
            && !tolerates(&tolerations, &t.key, t.value.as_deref(), &t.effect)
        {
            return Some("node(s) had untolerated taint");
        }
    }
    None
}

/// The node for `pod`: fewest pods first, then by name; or the reasons none fits.
pub fn choose(
    pod: &Pod,
    nodes: &[Arc<Node>],
    counts: &HashMap<String, usize>,
) -> Result<String, String> {
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut best: Option<(usize, String)> = None;
    for n in nodes {
        match unfit(pod, n) {
            Some(r) => *reasons.entry(r).or_default() += 1,
            None => {
                let name = n.name_any();
                let c = counts.get(&name).copied().unwrap_or(0);
                if best.as_ref().is_none_or(|(bc, bn)| (c, &name) < (*bc, bn)) {
                    best = Some((c, name));
                }
            }
        }
    }
    match best {
        Some((_, n)) => Ok(n),
        None => {
            let detail: Vec<String> = reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
            let mut msg = format!("0/{} nodes are available", nodes.len());
            if !detail.is_empty() {
                msg.push_str(": ");
                msg.push_str(&detail.join(", "));
            }
            msg.push('.');
            Err(msg)
        }
    }
}

/// Pods bound by this scheduler that the informer does not show bound yet (uid → node), so a
/// burst of pods spreads instead of piling onto the node that looked emptiest.
#[derive(Default)]
struct Assumed(Mutex<HashMap<String, String>>);

pub async fn run(ctx: Arc<Context>) {
    let queue = Queue::new();
    let assumed = Arc::new(Assumed::default());
    let queue_pending = {
        let ctx = ctx.clone();
        move |q: &Queue| {
            for p in ctx.informers.pods.store().state() {
                if pending(&p) {
                    q.add(Key::of(&*p));
                }
            }
        }
    };
    let (q, qp) = (queue.clone(), queue_pending.clone());
    let mut pods = ctx.informers.pods.subscribe();
    let a = assumed.clone();
    tokio::spawn(async move {
        while let Some(ch) = pods.recv().await {
            match ch {
                Change::Applied { new, .. } => {
                    if pending(&new) {
                        q.add(Key::of(&*new));
                    } else if let Some(uid) = new.metadata.uid.as_ref() {
                        a.0.lock().expect("assumed lock").remove(uid);
                    }
                }
                Change::Deleted(p) => {
                    if let Some(uid) = p.metadata.uid.as_ref() {
                        a.0.lock().expect("assumed lock").remove(uid);
                    }
                    // Room freed: pods that did not fit may now.
                    qp(&q);
                }
                Change::Resync => qp(&q),
            }
        }
    });
    let (q, qp) = (queue.clone(), queue_pending.clone());
    let mut nodes = ctx.informers.nodes.subscribe();
    tokio::spawn(async move {
        while nodes.recv().await.is_some() {
            qp(&q);
        }
    });
    queue_pending(&queue);
    run_workers("scheduler", queue, 1, move |key| {
        let ctx = ctx.clone();
        let assumed = assumed.clone();
        async move { schedule(&ctx, &assumed, &key).await }
    })
    .await;
}

async fn schedule(
    ctx: &Context,
    assumed: &Assumed,
    key: &Key,
) -> Result<Option<Duration>, kube::Error> {
    let ns = key.namespace.as_deref().unwrap_or("default");
    let Some(pod) = ctx
        .informers
        .pods
        .store()
        .get(&ObjectRef::<Pod>::new(&key.name).within(ns))
    else {
        return Ok(None);
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if !pending(&pod) || assumed.0.lock().expect("assumed lock").contains_key(&uid) {
        return Ok(None);
    }
    let nodes = ctx.informers.nodes.store().state();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for p in ctx.informers.pods.store().state() {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_ref()) {
            if !matches!(util::phase(&p), "Succeeded" | "Failed") {
                *counts.entry(n.clone()).or_default() += 1;
            }
        }
    }
    for n in assumed.0.lock().expect("assumed lock").values() {
        *counts.entry(n.clone()).or_default() += 1;
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    match choose(&pod, &nodes, &counts) {
        Ok(node) => {
            let binding = Binding {
                metadata: ObjectMeta {
                    name: pod.metadata.name.clone(),
                    namespace: pod.metadata.namespace.clone(),
                    uid: pod.metadata.uid.clone(),
                    ..Default::default()
                },
                target: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    ..Default::default()
                },
            };
            // Assumed before the call: the informer may show the bound pod before it returns.
            assumed
                .0
                .lock()
                .expect("assumed lock")
                .insert(uid.clone(), node.clone());
            let bound = api
                .create_subresource::<Binding, serde_json::Value>(
                    "binding",
                    &key.name,
                    &PostParams::default(),
                    &binding,
                )
                .await;
            if let Err(e) = bound {
                assumed.0.lock().expect("assumed lock").remove(&uid);
                // Deleted, or bound by someone else meanwhile.
                if util::is_not_found(&e) || util::is_conflict(&e) {
                    return Ok(None);
                }
                return Err(e);
            }
            ctx.recorder.event(
                &*pod,
                NORMAL,
                "Scheduled",
                format!("Successfully assigned {ns}/{} to {node}", key.name),
            );
            Ok(None)
        }
        Err(msg) => {
            let already = util::pod_condition(&pod, "PodScheduled")
                .is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(&msg));
            if !already {
                ctx.recorder
                    .event(&*pod, WARNING, "FailedScheduling", msg.clone());
                let cond = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg,
                    "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()});
                let p = json!({"status": {"conditions": [cond]}, "metadata": {"uid": uid}});
                match api
                    .patch_status(&key.name, &PatchParams::default(), &Patch::Strategic(p))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if util::is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, PodSpec, Taint};

    fn node(name: &str, ready: bool, taint: Option<&str>) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: taint.map(|k| {
                    vec![Taint {
                        key: k.into(),
                        effect: "NoSchedule".into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn spreads_by_count_and_skips_unfit_nodes() {
        let pod = Pod {
            spec: Some(PodSpec::default()),
            ..Default::default()
        };
        let nodes = vec![
            node("a", true, None),
            node("b", true, None),
            node("c", false, None),
            node("d", true, Some("dedicated")),
        ];
        let counts: HashMap<String, usize> = [("a".to_string(), 2), ("b".to_string(), 1)].into();
        assert_eq!(choose(&pod, &nodes, &counts), Ok("b".to_string()));
        assert_eq!(choose(&pod, &nodes, &HashMap::new()), Ok("a".to_string()));
        let err = choose(&pod, &nodes[2..], &HashMap::new()).unwrap_err();
        assert_eq!(
            err,
            "0/2 nodes are available: 1 node(s) had untolerated taint, 1 node(s) were not ready."
        );
        assert_eq!(
            choose(&pod, &[], &HashMap::new()).unwrap_err(),
            "0/0 nodes are available."
        );
    }
}
