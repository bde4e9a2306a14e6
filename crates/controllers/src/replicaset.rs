//! The ReplicaSet controller, after kubernetes' `pkg/controller/replicaset`: keeps
//! `spec.replicas` active pods that match the selector, adopting orphans and releasing pods that
//! stopped matching, creating pods from the template (in slow-start batches) and deleting the
//! least useful ones first, and reports replicas / fullyLabeled / ready / available in status.
//!
//! The same code runs core/v1 ReplicationControllers, as upstream's `ReplicationManager` is the
//! ReplicaSet controller over an adapter (`pkg/controller/replication/conversion.go`): a
//! [`Managed`] kind is read as a ReplicaSet (its selector map as `matchLabels`), while owner
//! references, events and status writes name the real kind.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::events::{NORMAL, WARNING};
use crate::expectations::Expectations;
use crate::util;
use crate::Context;
use svcnet_informer::{run_workers, Change, Informer, Key, Queue};

/// `burstReplicas`: at most this many pods created or deleted per sync.
const BURST_REPLICAS: usize = 500;

/// A kind this controller keeps replicas of: ReplicaSets, and ReplicationControllers through
/// upstream's adapter.
pub trait Managed:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The work queue's name (and the `--controllers` name).
    const NAME: &'static str;
    fn informer(ctx: &Context) -> &Arc<Informer<Self>>;
    fn workers(ctx: &Context) -> usize;
    /// The object read as a ReplicaSet (`conversion.go`'s `ReplicaSetFromRC`).
    fn as_replica_set(&self) -> ReplicaSet;
    /// A ReplicaSet status written back in this kind's form.
    fn set_status(&mut self, status: ReplicaSetStatus);
}

impl Managed for ReplicaSet {
    const NAME: &'static str = "replicaset";
    fn informer(ctx: &Context) -> &Arc<Informer<Self>> {
        &ctx.informers.replica_sets
    }
    fn workers(ctx: &Context) -> usize {
        ctx.config.concurrent_replicaset_syncs
    }
    fn as_replica_set(&self) -> ReplicaSet {
        self.clone()
    }
    fn set_status(&mut self, status: ReplicaSetStatus) {
        self.status = Some(status);
    }
}

impl Managed for ReplicationController {
    const NAME: &'static str = "replicationcontroller";
    fn informer(ctx: &Context) -> &Arc<Informer<Self>> {
        &ctx.informers.replication_controllers
    }
    fn workers(ctx: &Context) -> usize {
        ctx.config.concurrent_rc_syncs
    }
    fn as_replica_set(&self) -> ReplicaSet {
        let spec = self.spec.clone().unwrap_or_default();
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: Some(ReplicaSetSpec {
                replicas: spec.replicas,
                min_ready_seconds: spec.min_ready_seconds,
                selector: LabelSelector {
                    match_labels: spec.selector,
                    match_expressions: None,
                },
                template: spec.template,
            }),
            status: self.status.as_ref().and_then(same_fields),
        }
    }
    fn set_status(&mut self, status: ReplicaSetStatus) {
        self.status = same_fields(&status);
    }
}

/// A status as the other kind's: RC and ReplicaSet statuses (and their conditions) have the
/// same JSON fields, but for the ReplicaSet's `terminatingReplicas`, which the RC drops.
fn same_fields<A: Serialize, B: DeserializeOwned>(a: &A) -> Option<B> {
    serde_json::to_value(a)
        .and_then(serde_json::from_value)
        .ok()
}

/// Run the controller for one kind: `run::<ReplicaSet>` is the ReplicaSet controller,
/// `run::<ReplicationController>` the replication manager.
pub async fn run<K: Managed>(ctx: Arc<Context>) {
    let queue = Queue::new();
    let exp = Arc::new(Expectations::default());
    spawn_watchers::<K>(ctx.clone(), queue.clone(), exp.clone());
    for rs in K::informer(&ctx).store().state() {
        queue.add(Key::of(&*rs));
    }
    let workers = K::workers(&ctx);
    run_workers(K::NAME, queue, workers, move |key| {
        let ctx = ctx.clone();
        let exp = exp.clone();
        async move { sync::<K>(&ctx, &exp, &key).await }
    })
    .await;
}

/// The owner of kind `K` that controls `pod`, if its controllerRef names one we know.
fn owner_rs<K: Managed>(ctx: &Context, pod: &Pod) -> Option<Key> {
    let r = util::controller_of(pod)?;
    if r.kind != K::kind(&()) {
        return None;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let rs = K::informer(ctx)
        .store()
        .get(&ObjectRef::<K>::new(&r.name).within(ns))?;
    (rs.meta().uid.as_deref() == Some(r.uid.as_str())).then(|| Key::of(&*rs))
}

/// Owners of kind `K` in the pod's namespace whose selector matches it (for an orphan to be
/// adopted).
fn matching_rs<K: Managed>(ctx: &Context, pod: &Pod) -> Vec<Key> {
    K::informer(ctx)
        .store()
        .state()
        .iter()
        .filter(|k| k.meta().namespace == pod.metadata.namespace)
        .filter(|k| {
            let rs = k.as_replica_set();
            util::label_selector(rs.spec.as_ref().map(|s| &s.selector))
                .is_some_and(|s| s.matches(pod.labels()))
        })
        .map(|rs| Key::of(&**rs))
        .collect()
}

fn pod_key(pod: &Pod) -> String {
    Key::of(pod).to_string()
}

fn spawn_watchers<K: Managed>(ctx: Arc<Context>, queue: Arc<Queue>, exp: Arc<Expectations>) {
    let q = queue.clone();
    let mut rss = K::informer(&ctx).subscribe();
    let c = ctx.clone();
    tokio::spawn(async move {
        while let Some(ch) = rss.recv().await {
            match ch {
                Change::Applied { new, .. } => q.add(Key::of(&*new)),
                Change::Deleted(rs) => q.add(Key::of(&*rs)),
                Change::Resync => {
                    for rs in K::informer(&c).store().state() {
                        q.add(Key::of(&*rs));
                    }
                }
            }
        }
    });
    let mut pods = ctx.informers.pods.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = pods.recv().await {
            match ch {
                Change::Applied { old, new } => {
                    let owner = owner_rs::<K>(&ctx, &new);
                    if let Some(o) = &owner {
                        if old.is_none() {
                            exp.creation_observed(o);
                        }
                        if new.metadata.deletion_timestamp.is_some()
                            && old
                                .as_ref()
                                .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
                        {
                            exp.deletion_observed(o, &pod_key(&new));
                        }
                        queue.add(o.clone());
                    } else if util::controller_of(&*new).is_none() {
                        for k in matching_rs::<K>(&ctx, &new) {
                            queue.add(k);
                        }
                    }
                    // Owner or labels changed: the previous owner must look again.
                    if let Some(old) = old {
                        if let Some(prev) = owner_rs::<K>(&ctx, &old) {
                            if Some(&prev) != owner.as_ref() || old.labels() != new.labels() {
                                queue.add(prev);
                            }
                        }
                    }
                }
                Change::Deleted(pod) => {
                    if let Some(o) = owner_rs::<K>(&ctx, &pod) {
                        exp.deletion_observed(&o, &pod_key(&pod));
                        queue.add(o);
                    }
                }
                Change::Resync => {
                    exp.clear();
                    for rs in K::informer(&ctx).store().state() {
                        queue.add(Key::of(&*rs));
                    }
                }
            }
        }
    });
}

/// `controller.ActivePods` order: the pods to delete first come first (unscheduled, pending,
/// not ready, ready for less time, restarted more, newer).
pub fn deletion_order(pods: &mut [Arc<Pod>]) {
    fn phase_rank(p: &Pod) -> u8 {
        match util::phase(p) {
            "Pending" | "" => 0,
            "Unknown" => 1,
            "Running" => 2,
            _ => 3,
        }
    }
    pods.sort_by_key(|p| {
        let assigned = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let ready_since = util::pod_ready_since(p);
        let restarts: i32 = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
            .unwrap_or(0);
        (
            assigned,
            phase_rank(p),
            ready_since.is_some(),
            Reverse(ready_since.flatten().map(|t| t.0)),
            Reverse(restarts),
            Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        )
    });
}

/// Pod from the ReplicaSet's template (`controller.GetPodFromTemplate`), controlled by `owner`.
fn pod_from_template<K: Managed>(owner: &K, rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![util::controller_ref(owner)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

struct Claimed {
    owned: Vec<Arc<Pod>>,
}

/// `PodControllerRefManager.ClaimPods`: pods controlled by `rs` that still match stay; those
/// that stopped matching are released; matching orphans are adopted.
async fn claim_pods<K: Managed>(
    ctx: &Context,
    api: &Api<Pod>,
    rs: &K,
    selector: &svcnet_api::selector::LabelSelector,
    pods: Vec<Arc<Pod>>,
) -> Result<Claimed, kube::Error> {
    let uid = rs.meta().uid.clone().unwrap_or_default();
    let mut owned = Vec::new();
    for pod in pods {
        let matches = selector.matches(pod.labels());
        match util::controller_of(&*pod) {
            Some(r) if r.uid == uid => {
                if matches || pod.metadata.deletion_timestamp.is_some() {
                    owned.push(pod);
                } else {
                    match util::release(api, &*pod, &uid).await {
                        Ok(_) => {}
                        Err(e) if util::is_not_found(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Some(_) => {}
            None => {
                if !matches
                    || pod.metadata.deletion_timestamp.is_some()
                    || rs.meta().deletion_timestamp.is_some()
                {
                    continue;
                }
                match util::adopt(api, &*pod, rs).await {
                    Ok(p) => {
                        ctx.recorder.event(
                            rs,
                            NORMAL,
                            "SuccessfulAdopt",
                            format!("Adopted pod: {}", pod.name_any()),
                        );
                        owned.push(Arc::new(p));
                    }
                    Err(e) if util::is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(Claimed { owned })
}

async fn sync<K: Managed>(
    ctx: &Context,
    exp: &Expectations,
    key: &Key,
) -> Result<Option<Duration>, kube::Error> {
    let ns = key.namespace.as_deref().unwrap_or("default");
    let Some(owner) = K::informer(ctx)
        .store()
        .get(&ObjectRef::<K>::new(&key.name).within(ns))
    else {
        exp.forget(key);
        return Ok(None);
    };
    let rs = owner.as_replica_set();
    let needs_sync = exp.satisfied(key) && rs.metadata.deletion_timestamp.is_none();
    let spec = rs.spec.clone().unwrap_or_default();
    let Some(selector) = util::label_selector(Some(&spec.selector)) else {
        return Ok(None);
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let all: Vec<Arc<Pod>> = ctx
        .informers
        .pods
        .in_namespace(ns)
        .into_iter()
        .filter(|p| util::phase(p) != "Succeeded" && util::phase(p) != "Failed")
        .collect();
    let claimed = claim_pods(ctx, &api, &*owner, &selector, all).await?;
    let active: Vec<Arc<Pod>> = claimed
        .owned
        .into_iter()
        .filter(|p| util::is_pod_active(p))
        .collect();

    let mut manage_err: Option<(String, String)> = None;
    if needs_sync {
        if let Err((reason, e)) = manage_replicas(ctx, exp, key, &api, &*owner, &rs, &active).await
        {
            manage_err = Some((reason.to_string(), e.to_string()));
        }
    }

    // Status, from what the cache shows (the new pods arrive as events and sync again).
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = jiff::Timestamp::now();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.labels().get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| util::is_pod_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| util::is_pod_available(p, min_ready, now))
        .count();
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = old.conditions.clone().unwrap_or_default();
    match &manage_err {
        Some((reason, msg)) if !conditions.iter().any(|c| c.type_ == "ReplicaFailure") => {
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.clone()),
                message: Some(msg.clone()),
                last_transition_time: Some(util::now()),
            })
        }
        None => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    let status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled as i32),
        ready_replicas: Some(ready as i32),
        available_replicas: Some(available as i32),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: old.terminating_replicas,
    };
    if status != old {
        let rsapi: Api<K> = Api::namespaced(ctx.client.clone(), ns);
        let mut new = (*owner).clone();
        new.set_status(status);
        match rsapi
            .replace_status(&key.name, &PostParams::default(), &new)
            .await
        {
            Ok(_) => {}
            Err(e) if util::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    if let Some((_, e)) = manage_err {
        return Err(kube::Error::Service(e.into()));
    }
    // Pods ready but not yet available: look again when they will be.
    if min_ready > 0 && ready != available {
        return Ok(Some(Duration::from_secs(min_ready as u64)));
    }
    Ok(None)
}

/// What `manageReplicas` does to a pod, with the events `RealPodControl` records for it.
#[derive(Clone, Copy)]
enum PodAction {
    Create,
    Delete,
}

impl PodAction {
    /// The event for one pod: created or deleted (`name`), or the error.
    fn record<K: Managed>(self, ctx: &Context, rs: &K, result: Result<&str, &kube::Error>) {
        let (type_, reason, message) = match (self, result) {
            (PodAction::Create, Ok(name)) => {
                (NORMAL, "SuccessfulCreate", format!("Created pod: {name}"))
            }
            (PodAction::Delete, Ok(name)) => {
                (NORMAL, "SuccessfulDelete", format!("Deleted pod: {name}"))
            }
            (PodAction::Create, Err(e)) => {
                (WARNING, "FailedCreate", format!("Error creating: {e}"))
            }
            (PodAction::Delete, Err(e)) => {
                (WARNING, "FailedDelete", format!("Error deleting: {e}"))
            }
        };
        ctx.recorder.event(rs, type_, reason, message);
    }
}

/// `manageReplicas`: create or delete pods to reach `spec.replicas`.
async fn manage_replicas<K: Managed>(
    ctx: &Context,
    exp: &Expectations,
    key: &Key,
    api: &Api<Pod>,
    owner: &K,
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
) -> Result<(), (&'static str, kube::Error)> {
    let want = rs
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let have = active.len();
    if have < want {
        let n = (want - have).min(BURST_REPLICAS);
        exp.expect_creations(key, n);
        let pod = pod_from_template(owner, rs);
        // Slow start: 1, 2, 4, ... so a failing template fails once, not n times.
        let mut done = 0;
        let mut batch = 1;
        while done < n {
            let this = batch.min(n - done);
            let pp = PostParams::default();
            let results = futures::future::join_all((0..this).map(|_| api.create(&pp, &pod))).await;
            let mut failed = None;
            for r in results {
                match r {
                    Ok(p) => PodAction::Create.record(ctx, owner, Ok(&p.name_any())),
                    Err(e) => {
                        exp.creation_observed(key);
                        PodAction::Create.record(ctx, owner, Err(&e));
                        failed = Some(e);
                    }
                }
            }
            done += this;
            if let Some(e) = failed {
                for _ in done..n {
                    exp.creation_observed(key);
                }
                return Err(("FailedCreate", e));
            }
            batch *= 2;
        }
    } else if have > want {
        let n = (have - want).min(BURST_REPLICAS);
        let mut pods = active.to_vec();
        deletion_order(&mut pods);
        pods.truncate(n);
        exp.expect_deletions(key, pods.iter().map(|p| pod_key(p)));
        let results = futures::future::join_all(pods.iter().map(|p| async move {
            (p, api.delete(&p.name_any(), &DeleteParams::default()).await)
        }))
        .await;
        let mut failed = None;
        for (p, r) in results {
            match r {
                Ok(_) => PodAction::Delete.record(ctx, owner, Ok(&p.name_any())),
                Err(e) => {
                    exp.deletion_observed(key, &pod_key(p));
                    if !util::is_not_found(&e) {
                        PodAction::Delete.record(ctx, owner, Err(&e));
                        failed = Some(e);
                    }
                }
            }
        }
        if let Some(e) = failed {
            return Err(("FailedDelete", e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(
        name: &str,
        node: Option<&str>,
        phase: &str,
        ready_at: Option<i64>,
        created: i64,
    ) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(jiff::Timestamp::from_second(created).unwrap())),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready_at.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(jiff::Timestamp::from_second(t).unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn deletes_least_useful_pods_first() {
        let mut pods = vec![
            pod("ready-old", Some("n"), "Running", Some(100), 10),
            pod("ready-new", Some("n"), "Running", Some(200), 20),
            pod("unscheduled", None, "Pending", None, 5),
            pod("not-ready", Some("n"), "Running", None, 1),
            pod("pending", Some("n"), "Pending", None, 2),
        ];
        deletion_order(&mut pods);
        let names: Vec<_> = pods.iter().map(|p| p.name_any()).collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "not-ready",
                "ready-new",
                "ready-old"
            ]
        );
    }

    /// The RC adapter: the selector map is `matchLabels`, the status survives the round trip.
    #[test]
    fn reads_a_replication_controller_as_a_replica_set() {
        let mut rc: ReplicationController = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"app": "web"}},
            "status": {"replicas": 2, "readyReplicas": 1, "observedGeneration": 3,
                "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}]},
        }))
        .unwrap();
        let rs = rc.as_replica_set();
        let sel = &rs.spec.as_ref().unwrap().selector;
        assert_eq!(sel.match_labels.as_ref().unwrap()["app"], "web");
        let status = rs.status.clone().unwrap();
        assert_eq!((status.replicas, status.ready_replicas), (2, Some(1)));
        let before = rc.status.clone();
        rc.set_status(status);
        assert_eq!(rc.status, before);
    }
}
