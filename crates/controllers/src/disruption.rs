//! The disruption controller, after kubernetes' `pkg/controller/disruption`: keeps each
//! PodDisruptionBudget's status (expected pods, desired and current healthy, the disruptions
//! allowed, the `DisruptionAllowed` condition) in line with the pods it selects, so the
//! eviction subresource can take disruptions from it. Pods the eviction subresource recorded
//! in `status.disruptedPods` count as gone until they are deleted or two minutes pass
//! (`DeletionTimeout`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use svcnet_api::disruption;

use crate::events::{NORMAL, WARNING};
use crate::util;
use crate::Context;
use svcnet_informer::{run_workers, Change, Key, Queue};

/// `DeletionTimeout`: how long an evicted pod may take to be deleted before it counts again.
const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(ctx: Arc<Context>) {
    let queue = Queue::new();
    spawn_watchers(ctx.clone(), queue.clone());
    for pdb in ctx.informers.pdbs.store().state() {
        queue.add(Key::of(&*pdb));
    }
    run_workers("disruption", queue, 1, move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &key).await }
    })
    .await;
}

/// The budget's pods: policy/v1 selects none without a selector, all with an empty one.
fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    pdb.metadata.namespace == pod.metadata.namespace
        && svcnet_api::selector::LabelSelector::from_meta(sel)
            .is_ok_and(|s| s.matches(pod.labels()))
}

fn spawn_watchers(ctx: Arc<Context>, queue: Arc<Queue>) {
    let q = queue.clone();
    let mut pdbs = ctx.informers.pdbs.subscribe();
    let c = ctx.clone();
    tokio::spawn(async move {
        while let Some(ch) = pdbs.recv().await {
            match ch {
                Change::Applied { new, .. } => q.add(Key::of(&*new)),
                Change::Deleted(p) => q.add(Key::of(&*p)),
                Change::Resync => {
                    for p in c.informers.pdbs.store().state() {
                        q.add(Key::of(&*p));
                    }
                }
            }
        }
    });
    let mut pods = ctx.informers.pods.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = pods.recv().await {
            let changed: Vec<Arc<Pod>> = match ch {
                Change::Applied { old, new } => old.into_iter().chain([new]).collect(),
                Change::Deleted(p) => vec![p],
                Change::Resync => continue,
            };
            for pdb in ctx.informers.pdbs.store().state() {
                if changed.iter().any(|p| selects(&pdb, p)) {
                    queue.add(Key::of(&*pdb));
                }
            }
        }
    });
}

/// `getExpectedScale`: the sum of the scales of the pods' controllers (a Deployment's
/// replicas for its ReplicaSets' pods), and the pods no controller manages.
fn expected_scale(
    ctx: &Context,
    ns: &str,
    pods: &[Arc<Pod>],
) -> Result<(i32, Vec<String>), String> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(r) = util::controller_of(&**pod) else {
            unmanaged.push(pod.name_any());
            continue;
        };
        if scales.contains_key(&r.uid) {
            continue;
        }
        let found = (r.kind == "ReplicaSet")
            .then(|| {
                let rs = ctx
                    .informers
                    .replica_sets
                    .store()
                    .get(&ObjectRef::<ReplicaSet>::new(&r.name).within(ns))
                    .filter(|rs| rs.metadata.uid.as_deref() == Some(r.uid.as_str()))?;
                // `getPodDeployment`: a ReplicaSet a Deployment controls scales with it.
                if let Some(d) = util::controller_of(&*rs).filter(|d| d.kind == "Deployment") {
                    let dep = ctx
                        .informers
                        .deployments
                        .store()
                        .get(&ObjectRef::<Deployment>::new(&d.name).within(ns))
                        .filter(|dep| dep.metadata.uid.as_deref() == Some(d.uid.as_str()))?;
                    let replicas = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    return Some((d.uid.clone(), replicas));
                }
                Some((
                    r.uid.clone(),
                    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                ))
            })
            .flatten();
        let Some((uid, scale)) = found else {
            return Err(format!("found no controllers for pod {:?}", pod.name_any()));
        };
        scales.insert(uid, scale);
        scales.entry(r.uid.clone()).or_insert(0);
    }
    Ok((scales.values().sum(), unmanaged))
}

/// `intstr.GetScaledValueFromIntOrPercent` rounding up.
fn scaled_up(v: &IntOrString, total: i32) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok(((p * i64::from(total) + 99) / 100) as i32)
        }
    }
}

/// `getExpectedPodCount`: (expected pods, desired healthy, unmanaged pods).
fn expected_pod_count(
    ctx: &Context,
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
) -> Result<(i32, i32, Vec<String>), String> {
    let ns = pdb.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pdb.spec.clone().unwrap_or_default();
    if let Some(max) = &spec.max_unavailable {
        let (expected, unmanaged) = expected_scale(ctx, ns, pods)?;
        let desired = (expected - scaled_up(max, expected)?).max(0);
        return Ok((expected, desired, unmanaged));
    }
    match &spec.min_available {
        Some(IntOrString::Int(i)) => Ok((pods.len() as i32, *i, Vec::new())),
        Some(min) => {
            let (expected, unmanaged) = expected_scale(ctx, ns, pods)?;
            Ok((expected, scaled_up(min, expected)?, unmanaged))
        }
        None => Ok((0, 0, Vec::new())),
    }
}

fn since(t: &Time) -> jiff::SignedDuration {
    jiff::Timestamp::now().duration_since(t.0)
}

async fn sync(ctx: &Context, key: &Key) -> Result<Option<Duration>, kube::Error> {
    let ns = key.namespace.as_deref().unwrap_or("default");
    let Some(pdb) = ctx
        .informers
        .pdbs
        .store()
        .get(&ObjectRef::<PodDisruptionBudget>::new(&key.name).within(ns))
    else {
        return Ok(None);
    };
    let pods: Vec<Arc<Pod>> = ctx
        .informers
        .pods
        .in_namespace(ns)
        .into_iter()
        .filter(|p| selects(&pdb, p))
        .collect();
    if pods.is_empty() {
        ctx.recorder
            .event(&*pdb, NORMAL, "NoPods", "No matching pods found".into());
    }
    let (expected, desired, unmanaged) = match expected_pod_count(ctx, &pdb, &pods) {
        Ok(v) => v,
        Err(e) => {
            ctx.recorder.event(
                &*pdb,
                WARNING,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {e}"),
            );
            return fail_safe(ctx, &pdb, &e).await;
        }
    };
    if !unmanaged.is_empty() {
        tracing::warn!(pdb = %key, ?unmanaged, "found unmanaged pods associated with this PDB");
    }
    // `buildDisruptedPodMap`: evicted pods not yet deleted, for up to DeletionTimeout.
    let timeout = jiff::SignedDuration::try_from(DELETION_TIMEOUT).expect("small");
    let recorded = pdb
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.clone())
        .unwrap_or_default();
    let mut disrupted = BTreeMap::new();
    let mut recheck: Option<jiff::SignedDuration> = None;
    for pod in &pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(t) = recorded.get(&pod.name_any()) else {
            continue;
        };
        let left = timeout - since(t);
        if left.is_negative() {
            ctx.recorder.event(
                &**pod,
                WARNING,
                "NotDeleted",
                format!(
                    "Pod was expected by PDB {ns}/{} to be deleted but it wasn't",
                    key.name
                ),
            );
        } else {
            recheck = Some(recheck.map_or(left, |r| r.min(left)));
            disrupted.insert(pod.name_any(), t.clone());
        }
    }
    // `countHealthyPods`.
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(&p.name_any()))
        .filter(|p| util::is_pod_ready(p))
        .count() as i32;
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let generation = pdb.metadata.generation;
    let old = pdb.status.clone().unwrap_or_default();
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: generation,
        conditions: old.conditions.clone(),
    };
    disruption::update_disruption_allowed_condition(&mut status, Time(jiff::Timestamp::now()));
    if status != old {
        write_status(ctx, &pdb, status).await?;
    }
    Ok(recheck.map(|d| d.unsigned_abs() + Duration::from_secs(1)))
}

/// `failSafe`: no disruptions while the status cannot be computed.
async fn fail_safe(
    ctx: &Context,
    pdb: &PodDisruptionBudget,
    err: &str,
) -> Result<Option<Duration>, kube::Error> {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let generation = status.observed_generation;
    disruption::set_status_condition(
        &mut status,
        "False",
        disruption::SYNC_FAILED,
        err,
        generation,
        Time(jiff::Timestamp::now()),
    );
    write_status(ctx, pdb, status).await?;
    Ok(None)
}

async fn write_status(
    ctx: &Context,
    pdb: &PodDisruptionBudget,
    status: PodDisruptionBudgetStatus,
) -> Result<(), kube::Error> {
    let ns = pdb.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), ns);
    let mut next = pdb.clone();
    next.status = Some(status);
    api.replace_status(&pdb.name_any(), &PostParams::default(), &next)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled_up(&IntOrString::String("50%".into()), 3), Ok(2));
        assert_eq!(scaled_up(&IntOrString::String("100%".into()), 2), Ok(2));
        assert_eq!(scaled_up(&IntOrString::Int(1), 7), Ok(1));
        assert!(scaled_up(&IntOrString::String("x".into()), 2).is_err());
    }
}
