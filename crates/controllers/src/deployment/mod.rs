//! The Deployment controller, after kubernetes' `pkg/controller/deployment`: a ReplicaSet per
//! pod template (named `<deployment>-<pod-template-hash>`), rolling updates bounded by
//! maxSurge / maxUnavailable (or Recreate), proportional scaling mid-rollout, revision
//! annotations, old ReplicaSets pruned to `revisionHistoryLimit`, and the status and conditions
//! `kubectl rollout status` reads.
//!
//! The arithmetic (fenceposts, how many to surge or scale down) is in pure functions with unit
//! tests; `sync_deployment` applies it to the cluster one step per pass, like upstream, and is
//! driven again by the ReplicaSet status changes each step causes. What lives where:
//!
//! - this file (`deployment_controller.go`): [`run`], the watches that queue a Deployment, and
//!   `sync_deployment`: claim ReplicaSets, find the new one, pick the strategy;
//! - `sync.rs` (`sync.go`): the `Rollout` view, scaling, the new ReplicaSet and its hash,
//!   revisions, scaling-only syncs, history cleanup, writing the status;
//! - `rolling.rs` (`rolling.go`) and `recreate.rs` (`recreate.go`): the two strategies;
//! - `progress.rs` (`progress.go`): conditions, `progressDeadlineSeconds`, completeness;
//! - `util.rs` (`util/deployment_util.go`): annotations and the replica arithmetic.

mod progress;
mod recreate;
mod rolling;
mod sync;
mod util;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use crate::events::WARNING;
use crate::Context;
use svcnet_informer::{run_workers, Change, Key, Queue};

pub use sync::{compute_hash, equal_ignore_hash};
pub use util::{
    fenceposts, max_surge, max_unavailable, new_rs_new_replicas, DESIRED_REPLICAS, MAX_REPLICAS,
    POD_TEMPLATE_HASH, REVISION,
};

use self::sync::{sync_scale_only, Rollout};
use self::util::{is_rolling, replicas, rs_replicas};

/// Run the controller: a worker pool over the queue the watches below fill.
pub async fn run(ctx: Arc<Context>) {
    let queue = Queue::new();
    spawn_watchers(ctx.clone(), queue.clone());
    for d in ctx.informers.deployments.store().state() {
        queue.add(Key::of(&*d));
    }
    let workers = ctx.config.concurrent_deployment_syncs;
    run_workers("deployment", queue, workers, move |key| {
        let ctx = ctx.clone();
        async move { sync_deployment(&ctx, &key).await }
    })
    .await;
}

/// The Deployment controlling an object (by controllerRef, uid checked).
fn owner_deployment(ctx: &Context, ns: Option<&str>, r: Option<&OwnerReference>) -> Option<Key> {
    let r = r.filter(|r| r.kind == "Deployment")?;
    let d = ctx
        .informers
        .deployments
        .store()
        .get(&ObjectRef::<Deployment>::new(&r.name).within(ns.unwrap_or("default")))?;
    (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then(|| Key::of(&*d))
}

fn queue_for_rs(ctx: &Context, queue: &Queue, rs: &ReplicaSet) {
    let ns = rs.metadata.namespace.as_deref();
    if let Some(k) = owner_deployment(ctx, ns, crate::util::controller_of(rs)) {
        queue.add(k);
    } else if crate::util::controller_of(rs).is_none() {
        // An orphan: the Deployments that would adopt it.
        for d in ctx.informers.deployments.store().state() {
            if d.metadata.namespace.as_deref() == ns
                && crate::util::label_selector(d.spec.as_ref().map(|s| &s.selector))
                    .is_some_and(|s| s.matches(rs.labels()))
            {
                queue.add(Key::of(&*d));
            }
        }
    }
}

fn spawn_watchers(ctx: Arc<Context>, queue: Arc<Queue>) {
    let (c, q) = (ctx.clone(), queue.clone());
    let mut ds = ctx.informers.deployments.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = ds.recv().await {
            match ch {
                Change::Applied { new, .. } => q.add(Key::of(&*new)),
                Change::Deleted(d) => q.add(Key::of(&*d)),
                Change::Resync => {
                    for d in c.informers.deployments.store().state() {
                        q.add(Key::of(&*d));
                    }
                }
            }
        }
    });
    let (c, q) = (ctx.clone(), queue.clone());
    let mut rss = ctx.informers.replica_sets.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = rss.recv().await {
            match ch {
                Change::Applied { new, .. } => queue_for_rs(&c, &q, &new),
                Change::Deleted(rs) => queue_for_rs(&c, &q, &rs),
                Change::Resync => {}
            }
        }
    });
    // Recreate waits for the old pods to be gone.
    let mut pods = ctx.informers.pods.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = pods.recv().await {
            let Change::Deleted(pod) = ch else { continue };
            let Some(r) = crate::util::controller_of(&*pod).filter(|r| r.kind == "ReplicaSet")
            else {
                continue;
            };
            let ns = pod.metadata.namespace.as_deref();
            if let Some(rs) = ctx
                .informers
                .replica_sets
                .store()
                .get(&ObjectRef::<ReplicaSet>::new(&r.name).within(ns.unwrap_or("default")))
            {
                if let Some(k) = owner_deployment(&ctx, ns, crate::util::controller_of(&*rs)) {
                    queue.add(k);
                }
            }
        }
    });
}

/// `syncDeployment`: one pass over the Deployment `key`.
async fn sync_deployment(ctx: &Context, key: &Key) -> Result<Option<Duration>, kube::Error> {
    let ns = key.namespace.as_deref().unwrap_or("default");
    let Some(d) = ctx
        .informers
        .deployments
        .store()
        .get(&ObjectRef::<Deployment>::new(&key.name).within(ns))
    else {
        return Ok(None);
    };
    let d = (*d).clone();
    let spec = d.spec.clone().unwrap_or_default();
    let Some(selector) = crate::util::label_selector(Some(&spec.selector)) else {
        ctx.recorder.event(
            &d,
            WARNING,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        return Ok(None);
    };
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let uid = d.metadata.uid.clone().unwrap_or_default();

    // Claim ReplicaSets (`ReplicaSetControllerRefManager.ClaimReplicaSets`).
    let mut rss = Vec::new();
    for rs in ctx.informers.replica_sets.store().state() {
        if rs.metadata.namespace.as_deref() != Some(ns) {
            continue;
        }
        let matches = selector.matches(rs.labels());
        match crate::util::controller_of(&*rs) {
            Some(r) if r.uid == uid => {
                if matches {
                    rss.push((*rs).clone());
                } else {
                    crate::util::release(&api, &*rs, &uid).await?;
                }
            }
            None if matches
                && d.metadata.deletion_timestamp.is_none()
                && rs.metadata.deletion_timestamp.is_none() =>
            {
                rss.push(crate::util::adopt(&api, &*rs, &d).await?);
            }
            _ => {}
        }
    }
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    rss.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            a.name_any(),
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.name_any(),
            ))
    });
    let template = spec.template.clone();
    let new = rss.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, &template))
    });
    let mut r = Rollout {
        ctx,
        api,
        d,
        rss,
        new,
    };

    if spec.paused == Some(true) {
        return sync_scale_only(&mut r).await;
    }
    // A replicas change with no template change: scale proportionally (`isScalingEvent`).
    let scaling = r.rss.iter().any(|rs| {
        rs_replicas(rs) > 0
            && rs
                .annotations()
                .get(DESIRED_REPLICAS)
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|v| v != replicas(&r.d))
    });
    if scaling && r.new.is_some() {
        return sync_scale_only(&mut r).await;
    }
    if is_rolling(&r.d) {
        rolling::rollout_rolling(&mut r).await
    } else {
        recreate::rollout_recreate(&mut r).await
    }
}
