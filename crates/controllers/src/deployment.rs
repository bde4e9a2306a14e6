//! The Deployment controller, after kubernetes' `pkg/controller/deployment`: a ReplicaSet per
//! pod template (named `<deployment>-<pod-template-hash>`), rolling updates bounded by
//! maxSurge / maxUnavailable (or Recreate), proportional scaling mid-rollout, revision
//! annotations, old ReplicaSets pruned to `revisionHistoryLimit`, and the status and conditions
//! `kubectl rollout status` reads.
//!
//! The arithmetic (fenceposts, how many to surge or scale down) is in pure functions with unit
//! tests; [`sync`] applies it to the cluster one step per pass, like upstream, and is driven
//! again by the ReplicaSet status changes each step causes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::events::{NORMAL, WARNING};
use crate::util;
use crate::Context;
use svcnet_informer::{run_workers, Change, Key, Queue};

pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `rand.SafeEncodeString`: digits mapped onto an alphabet without vowels.
fn safe_encode(s: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// `controller.ComputeHash`: FNV-32a of the template (without its hash label) and the collision
/// count, safe-encoded — the `pod-template-hash` label and the ReplicaSet name suffix.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = template.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(POD_TEMPLATE_HASH);
    }
    let mut bytes = serde_json::to_vec(&t).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    safe_encode(&const_fnv1a_hash::fnv1a_hash_32(&bytes, None).to_string())
}

/// Drop empty objects and arrays: Go's semantic equality treats a nil map or slice as equal to
/// an empty one, and a struct field it always serializes (`resources: {}`) as equal to absent.
fn prune_empty(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !prune_empty(x));
            m.is_empty()
        }
        serde_json::Value::Array(a) => {
            a.iter_mut().for_each(|x| {
                prune_empty(x);
            });
            a.is_empty()
        }
        serde_json::Value::Null => true,
        _ => false,
    }
}

/// `EqualIgnoreHash`: the same template apart from the pod-template-hash label, compared as
/// `apiequality.Semantic.DeepEqual` does.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut() {
            if let Some(l) = m.labels.as_mut() {
                l.remove(POD_TEMPLATE_HASH);
                if l.is_empty() {
                    m.labels = None;
                }
            }
        }
        let mut v = serde_json::to_value(&t).unwrap_or_default();
        prune_empty(&mut v);
        v
    };
    strip(a) == strip(b)
}

/// `intstr.GetScaledValueFromIntOrPercent`.
fn scaled(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => {
            // The API default, 25%.
            let x = f64::from(total) * 0.25;
            (if round_up { x.ceil() } else { x.floor() }) as i32
        }
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(25.0);
            let x = f64::from(total) * pct / 100.0;
            (if round_up { x.ceil() } else { x.floor() }) as i32
        }
    }
}

fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `ResolveFenceposts`: (maxSurge, maxUnavailable) in pods; never both zero.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let desired = replicas(d);
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), desired, true);
    let unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// `MaxUnavailable`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// `MaxSurge`.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// `NewRSNewReplicas`: how big the new ReplicaSet may be now.
pub fn new_rs_new_replicas(d: &Deployment, all: &[ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    if !is_rolling(d) {
        return replicas(d);
    }
    let current: i32 = all.iter().map(rs_replicas).sum();
    let max_total = replicas(d) + max_surge(d);
    if current >= max_total {
        return rs_replicas(new_rs);
    }
    let up = (max_total - current).min(replicas(d) - rs_replicas(new_rs));
    rs_replicas(new_rs) + up
}

fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// `SetDeploymentCondition`: replaces the condition of that type, keeping lastTransitionTime when
/// the status did not change; no-op when status and reason are the same.
fn set_condition(
    status: &mut DeploymentStatus,
    type_: &str,
    st: &str,
    reason: &str,
    message: String,
) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let now = util::now();
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == st && c.reason.as_deref() == Some(reason) {
            return;
        }
        let transition = if c.status == st {
            c.last_transition_time.clone()
        } else {
            Some(now.clone())
        };
        *c = DeploymentCondition {
            type_: type_.into(),
            status: st.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_update_time: Some(now),
            last_transition_time: transition,
        };
        return;
    }
    conds.push(DeploymentCondition {
        type_: type_.into(),
        status: st.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

/// `calculateStatus`.
fn calculate_status(
    d: &Deployment,
    all: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> DeploymentStatus {
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| all.iter().map(f).sum::<i32>();
    let available = sum(&rs_available);
    let total_spec = sum(&rs_replicas);
    let actual = |rs: &ReplicaSet| rs.status.as_ref().map_or(0, |s| s.replicas);
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(&actual)),
        updated_replicas: Some(new_rs.map_or(0, actual)),
        ready_replicas: Some(sum(&|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    if available >= replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        );
    } else {
        set_condition(
            &mut status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        );
    }
    status
}

/// `DeploymentComplete`.
fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    s.updated_replicas == Some(r)
        && s.replicas == Some(r)
        && s.available_replicas == Some(r)
        && s.observed_generation >= d.metadata.generation
}

/// `DeploymentProgressing`.
fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas > old.updated_replicas
        || new_old < old_old
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
}

fn progress_deadline(d: &Deployment) -> Option<i64> {
    d.spec
        .as_ref()
        .map(|s| s.progress_deadline_seconds.unwrap_or(600))
        .filter(|s| *s < i32::MAX)
        .map(i64::from)
}

pub async fn run(ctx: Arc<Context>) {
    let queue = Queue::new();
    spawn_watchers(ctx.clone(), queue.clone());
    for d in ctx.informers.deployments.store().state() {
        queue.add(Key::of(&*d));
    }
    let workers = ctx.config.concurrent_deployment_syncs;
    run_workers("deployment", queue, workers, move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &key).await }
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
    if let Some(k) = owner_deployment(ctx, ns, util::controller_of(rs)) {
        queue.add(k);
    } else if util::controller_of(rs).is_none() {
        // An orphan: the Deployments that would adopt it.
        for d in ctx.informers.deployments.store().state() {
            if d.metadata.namespace.as_deref() == ns
                && util::label_selector(d.spec.as_ref().map(|s| &s.selector))
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
            let Some(r) = util::controller_of(&*pod).filter(|r| r.kind == "ReplicaSet") else {
                continue;
            };
            let ns = pod.metadata.namespace.as_deref();
            if let Some(rs) = ctx
                .informers
                .replica_sets
                .store()
                .get(&ObjectRef::<ReplicaSet>::new(&r.name).within(ns.unwrap_or("default")))
            {
                if let Some(k) = owner_deployment(&ctx, ns, util::controller_of(&*rs)) {
                    queue.add(k);
                }
            }
        }
    });
}

/// One sync's view: the Deployment and its ReplicaSets (copies updated as we write).
struct Rollout<'a> {
    ctx: &'a Context,
    api: Api<ReplicaSet>,
    d: Deployment,
    /// Owned ReplicaSets, oldest first.
    rss: Vec<ReplicaSet>,
    new: Option<usize>,
}

impl Rollout<'_> {
    fn all(&self) -> Vec<ReplicaSet> {
        self.rss.clone()
    }

    fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new.map(|i| &self.rss[i])
    }

    fn old_indices(&self) -> Vec<usize> {
        (0..self.rss.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    /// `scaleReplicaSetAndRecordEvent`: set replicas and the replica annotations.
    async fn scale(&mut self, i: usize, to: i32) -> Result<bool, kube::Error> {
        let d_replicas = replicas(&self.d);
        let max = d_replicas + max_surge(&self.d);
        let rs = &self.rss[i];
        let from = rs_replicas(rs);
        let ann = rs.annotations();
        let ann_ok = ann.get(DESIRED_REPLICAS).map(String::as_str) == Some(&d_replicas.to_string())
            && ann.get(MAX_REPLICAS).map(String::as_str) == Some(&max.to_string());
        if from == to && ann_ok {
            return Ok(false);
        }
        let mut new = rs.clone();
        new.spec.get_or_insert_with(Default::default).replicas = Some(to);
        let a = new.metadata.annotations.get_or_insert_with(BTreeMap::new);
        a.insert(DESIRED_REPLICAS.into(), d_replicas.to_string());
        a.insert(MAX_REPLICAS.into(), max.to_string());
        let updated = self
            .api
            .replace(&new.name_any(), &PostParams::default(), &new)
            .await?;
        if from != to {
            let dir = if to > from { "up" } else { "down" };
            self.ctx.recorder.event(
                &self.d,
                NORMAL,
                "ScalingReplicaSet",
                format!(
                    "Scaled {dir} replica set {} from {from} to {to}",
                    updated.name_any()
                ),
            );
        }
        self.rss[i] = updated;
        Ok(from != to)
    }
}

/// `copyDeploymentAnnotationsToReplicaSet` (the ones a ReplicaSet inherits).
fn inherited_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.annotations()
        .iter()
        .filter(|(k, _)| {
            ![
                LAST_APPLIED,
                REVISION,
                DESIRED_REPLICAS,
                MAX_REPLICAS,
                "deployment.kubernetes.io/revision-history",
            ]
            .contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn sync(ctx: &Context, key: &Key) -> Result<Option<Duration>, kube::Error> {
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
    let Some(selector) = util::label_selector(Some(&spec.selector)) else {
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
        match util::controller_of(&*rs) {
            Some(r) if r.uid == uid => {
                if matches {
                    rss.push((*rs).clone());
                } else {
                    let refs: Vec<&OwnerReference> = rs
                        .owner_references()
                        .iter()
                        .filter(|r| r.uid != uid)
                        .collect();
                    let p = json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
                    api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(p))
                        .await?;
                }
            }
            None if matches
                && d.metadata.deletion_timestamp.is_none()
                && rs.metadata.deletion_timestamp.is_none() =>
            {
                let mut refs = rs.owner_references().to_vec();
                refs.push(util::controller_ref(&d));
                let p = json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
                rss.push(
                    api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(p))
                        .await?,
                );
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
        rollout_rolling(&mut r).await
    } else {
        rollout_recreate(&mut r).await
    }
}

/// `getNewReplicaSet`: sync the existing new ReplicaSet's annotations, or create it.
async fn ensure_new_rs(r: &mut Rollout<'_>, create: bool) -> Result<(), kube::Error> {
    let max_old_revision = r
        .old_indices()
        .iter()
        .map(|i| revision(&r.rss[*i]))
        .max()
        .unwrap_or(0);
    let next_revision = (max_old_revision + 1).to_string();
    if let Some(i) = r.new {
        let rs = &r.rss[i];
        let mut want = rs.clone();
        let a = want.metadata.annotations.get_or_insert_with(BTreeMap::new);
        a.extend(inherited_annotations(&r.d));
        if revision(rs) < max_old_revision + 1 {
            a.insert(REVISION.into(), next_revision.clone());
        }
        let min_ready = r.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(s) = want.spec.as_mut() {
            s.min_ready_seconds = min_ready;
        }
        if want.metadata.annotations != rs.metadata.annotations
            || want.spec.as_ref().and_then(|s| s.min_ready_seconds)
                != rs.spec.as_ref().and_then(|s| s.min_ready_seconds)
        {
            r.rss[i] = r
                .api
                .replace(&want.name_any(), &PostParams::default(), &want)
                .await?;
        }
        return Ok(());
    }
    if !create {
        return Ok(());
    }
    let d = &r.d;
    let spec = d.spec.clone().unwrap_or_default();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = compute_hash(&spec.template, collision);
    let mut template = spec.template.clone();
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let mut annotations = inherited_annotations(d);
    annotations.insert(REVISION.into(), next_revision);
    annotations.insert(DESIRED_REPLICAS.into(), replicas(d).to_string());
    annotations.insert(
        MAX_REPLICAS.into(),
        (replicas(d) + max_surge(d)).to_string(),
    );
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.metadata.namespace.clone(),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![util::controller_ref(d)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    };
    let all = r.all();
    let n = new_rs_new_replicas(d, &all, &rs);
    if let Some(s) = rs.spec.as_mut() {
        s.replicas = Some(n);
    }
    let created = match r.api.create(&PostParams::default(), &rs).await {
        Ok(c) => {
            r.ctx.recorder.event(
                &r.d,
                NORMAL,
                "ScalingReplicaSet",
                format!("Scaled up replica set {} from 0 to {n}", c.name_any()),
            );
            c
        }
        Err(e) if util::is_conflict(&e) => {
            // Same name: ours if the template matches (the cache was behind), else a hash collision.
            let existing = r.api.get(&rs.name_any()).await?;
            let same = existing
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &spec.template))
                && util::controller_of(&existing)
                    .is_some_and(|c| Some(&c.uid) == d.metadata.uid.as_ref());
            if same {
                existing
            } else {
                let mut st = d.status.clone().unwrap_or_default();
                st.collision_count = Some(collision.unwrap_or(0) + 1);
                write_status(r, st).await?;
                return Err(e);
            }
        }
        Err(e) => return Err(e),
    };
    r.rss.push(created);
    r.new = Some(r.rss.len() - 1);
    let name = r.rss[r.rss.len() - 1].name_any();
    let mut st = r.d.status.clone().unwrap_or_default();
    set_condition(
        &mut st,
        "Progressing",
        "True",
        "NewReplicaSetCreated",
        format!("Created new replica set \"{name}\""),
    );
    r.d.status = Some(st);
    Ok(())
}

/// The Deployment's revision annotation follows its new ReplicaSet's.
async fn sync_revision(r: &mut Rollout<'_>) -> Result<(), kube::Error> {
    let Some(rev) = r
        .new_rs()
        .and_then(|rs| rs.annotations().get(REVISION).cloned())
    else {
        return Ok(());
    };
    if r.d.annotations().get(REVISION) == Some(&rev) {
        return Ok(());
    }
    let dapi: Api<Deployment> = Api::namespaced(
        r.ctx.client.clone(),
        r.d.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let p = json!({"metadata": {"annotations": {REVISION: rev}}});
    let updated = dapi
        .patch(&r.d.name_any(), &PatchParams::default(), &Patch::Merge(p))
        .await?;
    let status = r.d.status.clone();
    r.d = updated;
    r.d.status = status;
    Ok(())
}

async fn rollout_rolling(r: &mut Rollout<'_>) -> Result<Option<Duration>, kube::Error> {
    ensure_new_rs(r, true).await?;
    sync_revision(r).await?;
    // reconcileNewReplicaSet
    let i = r.new.expect("new replica set ensured");
    let want = replicas(&r.d);
    let cur = rs_replicas(&r.rss[i]);
    let scaled_up = if cur > want {
        r.scale(i, want).await?
    } else if cur < want {
        let n = new_rs_new_replicas(&r.d, &r.all(), &r.rss[i]);
        r.scale(i, n).await?
    } else {
        false
    };
    if scaled_up {
        return sync_rollout_status(r).await;
    }
    if reconcile_old(r).await? {
        return sync_rollout_status(r).await;
    }
    let st = calculate_status(&r.d, &r.rss, r.new_rs());
    if complete(&r.d, &st) {
        cleanup(r).await?;
    }
    sync_rollout_status(r).await
}

/// `reconcileOldReplicaSets`: scale old ReplicaSets down as far as maxUnavailable allows.
async fn reconcile_old(r: &mut Rollout<'_>) -> Result<bool, kube::Error> {
    let olds = r.old_indices();
    let old_count: i32 = olds.iter().map(|i| rs_replicas(&r.rss[*i])).sum();
    if old_count == 0 {
        return Ok(false);
    }
    let all_count: i32 = r.rss.iter().map(rs_replicas).sum();
    let min_available = replicas(&r.d) - max_unavailable(&r.d);
    let new_unavailable = r
        .new_rs()
        .map_or(0, |rs| rs_replicas(rs) - rs_available(rs));
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(false);
    }
    // cleanupUnhealthyReplicas: unavailable old pods go first.
    let mut total = 0;
    for &i in &olds {
        if total >= max_scaled_down {
            break;
        }
        let rs = &r.rss[i];
        let (cur, avail) = (rs_replicas(rs), rs_available(rs));
        if cur == 0 || cur == avail {
            continue;
        }
        let down = (max_scaled_down - total).min(cur - avail);
        r.scale(i, cur - down).await?;
        total += down;
    }
    // scaleDownOldReplicaSetsForRollingUpdate
    let available: i32 = r.rss.iter().map(rs_available).sum();
    if available > min_available {
        let budget = available - min_available;
        let mut done = 0;
        for &i in &olds {
            if done >= budget {
                break;
            }
            let cur = rs_replicas(&r.rss[i]);
            if cur == 0 {
                continue;
            }
            let down = cur.min(budget - done);
            r.scale(i, cur - down).await?;
            done += down;
        }
        total += done;
    }
    Ok(total > 0)
}

async fn rollout_recreate(r: &mut Rollout<'_>) -> Result<Option<Duration>, kube::Error> {
    ensure_new_rs(r, false).await?;
    let mut scaled_down = false;
    for i in r.old_indices() {
        if rs_replicas(&r.rss[i]) > 0 {
            scaled_down |= r.scale(i, 0).await?;
        }
    }
    if scaled_down {
        return sync_rollout_status(r).await;
    }
    // Wait until no pod of an old ReplicaSet is left.
    let old_uids: Vec<String> = r
        .old_indices()
        .iter()
        .filter_map(|i| r.rss[*i].metadata.uid.clone())
        .collect();
    let old_running = r
        .ctx
        .informers
        .pods
        .in_namespace(r.d.metadata.namespace.as_deref().unwrap_or("default"))
        .iter()
        .any(|p: &Arc<Pod>| {
            util::controller_of(&**p).is_some_and(|c| old_uids.contains(&c.uid))
                && !matches!(util::phase(p), "Succeeded" | "Failed")
        });
    if old_running {
        return sync_rollout_status(r).await;
    }
    ensure_new_rs(r, true).await?;
    sync_revision(r).await?;
    let i = r.new.expect("new replica set ensured");
    let want = replicas(&r.d);
    if r.scale(i, want).await? {
        return sync_rollout_status(r).await;
    }
    let st = calculate_status(&r.d, &r.rss, r.new_rs());
    if complete(&r.d, &st) {
        cleanup(r).await?;
    }
    sync_rollout_status(r).await
}

/// `sync`: scaling only (paused, or `kubectl scale` with no template change), proportionally
/// across active ReplicaSets.
async fn sync_scale_only(r: &mut Rollout<'_>) -> Result<Option<Duration>, kube::Error> {
    ensure_new_rs(r, false).await?;
    let want = replicas(&r.d);
    let active: Vec<usize> = (0..r.rss.len())
        .filter(|i| rs_replicas(&r.rss[*i]) > 0)
        .collect();
    let target = match active.len() {
        0 => r.new.or_else(|| r.rss.len().checked_sub(1)),
        1 => Some(active[0]),
        _ => None,
    };
    if let Some(i) = target {
        r.scale(i, want).await?;
    } else if is_rolling(&r.d) {
        // getProportion / getReplicaSetFraction.
        let allowed = want + max_surge(&r.d);
        let current: i32 = r.rss.iter().map(rs_replicas).sum();
        let to_add = allowed - current;
        let mut order = active.clone();
        if to_add > 0 {
            // Newer and bigger first.
            order.sort_by_key(|i| {
                (
                    std::cmp::Reverse(rs_replicas(&r.rss[*i])),
                    std::cmp::Reverse(*i),
                )
            });
        } else {
            order.sort_by_key(|i| (std::cmp::Reverse(rs_replicas(&r.rss[*i])), *i));
        }
        let mut added = 0;
        let mut sizes: BTreeMap<usize, i32> = BTreeMap::new();
        for &i in &order {
            let rs = &r.rss[i];
            let cur = rs_replicas(rs);
            let annotated = rs
                .annotations()
                .get(MAX_REPLICAS)
                .and_then(|v| v.parse::<i32>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(current.max(1));
            let fraction = if want == 0 {
                -cur
            } else {
                ((f64::from(cur) * f64::from(allowed) / f64::from(annotated)).round() as i32) - cur
            };
            let left = to_add - added;
            let p = if to_add > 0 {
                fraction.min(left)
            } else {
                fraction.max(left)
            };
            added += p;
            sizes.insert(i, cur + p);
        }
        if added != to_add {
            if let Some(first) = order.first() {
                *sizes.get_mut(first).expect("first sized") += to_add - added;
            }
        }
        for (i, n) in sizes {
            r.scale(i, n.max(0)).await?;
        }
    }
    let st = calculate_status(&r.d, &r.rss, r.new_rs());
    if complete(&r.d, &st) && r.d.spec.as_ref().and_then(|s| s.paused) != Some(true) {
        cleanup(r).await?;
    }
    sync_rollout_status(r).await
}

/// `cleanupDeployment`: keep at most `revisionHistoryLimit` old ReplicaSets (scaled to zero).
async fn cleanup(r: &mut Rollout<'_>) -> Result<(), kube::Error> {
    let limit =
        r.d.spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
    let olds: Vec<usize> = r
        .old_indices()
        .into_iter()
        .filter(|i| r.rss[*i].metadata.deletion_timestamp.is_none())
        .collect();
    if olds.len() <= limit {
        return Ok(());
    }
    let mut by_rev = olds.clone();
    by_rev.sort_by_key(|i| (revision(&r.rss[*i]), *i));
    let mut gone = Vec::new();
    for i in by_rev.into_iter().take(olds.len() - limit) {
        let rs = &r.rss[i];
        let actual = rs.status.as_ref().map_or(0, |s| s.replicas);
        if rs_replicas(rs) != 0 || actual != 0 {
            continue;
        }
        util::delete_ignore_missing(&r.api, &rs.name_any(), &DeleteParams::background()).await?;
        gone.push(i);
    }
    let new_name = r.new_rs().map(|rs| rs.name_any());
    let mut i = 0;
    r.rss.retain(|_| {
        let keep = !gone.contains(&i);
        i += 1;
        keep
    });
    r.new = new_name.and_then(|n| r.rss.iter().position(|rs| rs.name_any() == n));
    Ok(())
}

/// `syncRolloutStatus`: status and the Progressing condition; requeue to notice a missed deadline.
async fn sync_rollout_status(r: &mut Rollout<'_>) -> Result<Option<Duration>, kube::Error> {
    let mut st = calculate_status(&r.d, &r.rss, r.new_rs());
    let new_name = r.new_rs().map(|rs| rs.name_any()).unwrap_or_default();
    let paused = r.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
    let mut requeue = None;
    match progress_deadline(&r.d) {
        None => remove_condition(&mut st, "Progressing"),
        Some(deadline) => {
            let cur = condition(&st, "Progressing").cloned();
            let is_complete = st.replicas == st.updated_replicas
                && cur.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
            if paused {
                set_condition(
                    &mut st,
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused".into(),
                );
            } else if !is_complete {
                if complete(&r.d, &st) {
                    set_condition(
                        &mut st,
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                    );
                } else if progressing(&r.d, &st) {
                    let msg = format!("ReplicaSet \"{new_name}\" is progressing.");
                    let transition = cur
                        .as_ref()
                        .filter(|c| c.status == "True")
                        .and_then(|c| c.last_transition_time.clone());
                    remove_condition(&mut st, "Progressing");
                    set_condition(&mut st, "Progressing", "True", "ReplicaSetUpdated", msg);
                    if let Some(t) = transition {
                        if let Some(c) = st
                            .conditions
                            .as_mut()
                            .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "Progressing"))
                        {
                            c.last_transition_time = Some(t);
                        }
                    }
                } else if let Some(c) = cur.as_ref() {
                    let since = c.last_update_time.as_ref().map_or(0, |t| t.0.as_second());
                    let left = since + deadline - jiff::Timestamp::now().as_second();
                    if c.reason.as_deref() != Some("ProgressDeadlineExceeded") {
                        if left <= 0 {
                            set_condition(
                                &mut st,
                                "Progressing",
                                "False",
                                "ProgressDeadlineExceeded",
                                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                            );
                        } else {
                            requeue = Some(Duration::from_secs(left as u64 + 1));
                        }
                    }
                }
            }
        }
    }
    // ReplicaFailure mirrors the new ReplicaSet's.
    let failure = r.new_rs().and_then(|rs| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
            .cloned()
    });
    match failure {
        Some(f) => set_condition(
            &mut st,
            "ReplicaFailure",
            "True",
            f.reason.as_deref().unwrap_or("FailedCreate"),
            f.message.unwrap_or_default(),
        ),
        None => remove_condition(&mut st, "ReplicaFailure"),
    }
    write_status(r, st).await?;
    Ok(requeue)
}

async fn write_status(r: &mut Rollout<'_>, st: DeploymentStatus) -> Result<(), kube::Error> {
    if r.d.status.as_ref() == Some(&st) {
        return Ok(());
    }
    let dapi: Api<Deployment> = Api::namespaced(
        r.ctx.client.clone(),
        r.d.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let mut d = r.d.clone();
    d.status = Some(st);
    match dapi
        .replace_status(&d.name_any(), &PostParams::default(), &d)
        .await
    {
        Ok(updated) => {
            r.d = updated;
            Ok(())
        }
        Err(e) if util::is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};

    fn deploy(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(fenceposts(&deploy(3, pct("25%"), pct("25%"))), (1, 0));
        assert_eq!(fenceposts(&deploy(10, pct("25%"), pct("25%"))), (3, 2));
        assert_eq!(
            fenceposts(&deploy(3, IntOrString::Int(0), IntOrString::Int(0))),
            (0, 1)
        );
    }

    #[test]
    fn new_replica_set_surges_within_bounds() {
        let d = deploy(
            3,
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
        );
        // 3 old + 0 new: may add one (3 + surge 1).
        let new = rs(0);
        assert_eq!(new_rs_new_replicas(&d, &[rs(3), new.clone()], &new), 1);
        // Already at 4 pods: no more.
        let new = rs(1);
        assert_eq!(new_rs_new_replicas(&d, &[rs(3), new.clone()], &new), 1);
        // First rollout: straight to 3.
        let new = rs(0);
        assert_eq!(new_rs_new_replicas(&d, std::slice::from_ref(&new), &new), 3);
    }

    #[test]
    fn hash_is_stable_safe_and_ignores_its_own_label() {
        let mut t = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: None,
        };
        let h = compute_hash(&t, None);
        assert!(
            h.len() >= 6 && h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
        assert_ne!(h, compute_hash(&t, Some(1)));
        let mut labelled = t.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH.into(), h.clone());
        assert_eq!(compute_hash(&labelled, None), h);
        assert!(equal_ignore_hash(&labelled, &t));
        t.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("v".into(), "2".into());
        assert!(!equal_ignore_hash(&labelled, &t));
        // `resources: {}` (as Go always writes it) equals no resources.
        let with = |r: Option<k8s_openapi::api::core::v1::ResourceRequirements>| PodTemplateSpec {
            metadata: None,
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                containers: vec![k8s_openapi::api::core::v1::Container {
                    name: "c".into(),
                    resources: r,
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        assert!(equal_ignore_hash(
            &with(None),
            &with(Some(Default::default()))
        ));
    }
}
