//! One sync of a Deployment against the cluster (upstream `sync.go`): the `Rollout` view of
//! a Deployment and its ReplicaSets, scaling a ReplicaSet (with its replica annotations and
//! event), the new ReplicaSet found or created (named `<deployment>-<pod-template-hash>`,
//! [`compute_hash`]), the revision, scaling-only syncs (paused, `kubectl scale`) spread
//! proportionally, old ReplicaSets pruned to `revisionHistoryLimit`, and the status written.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::progress::{self, calculate_status, complete, set_condition};
use super::util::{
    inherited_annotations, is_rolling, max_surge, new_rs_new_replicas, replicas, revision,
    rs_replicas, DESIRED_REPLICAS, MAX_REPLICAS, POD_TEMPLATE_HASH, REVISION,
};
use crate::events::NORMAL;
use crate::util;
use crate::Context;

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

/// One sync's view: the Deployment and its ReplicaSets (copies updated as we write).
pub(super) struct Rollout<'a> {
    pub(super) ctx: &'a Context,
    pub(super) api: Api<ReplicaSet>,
    pub(super) d: Deployment,
    /// Owned ReplicaSets, oldest first.
    pub(super) rss: Vec<ReplicaSet>,
    pub(super) new: Option<usize>,
}

impl Rollout<'_> {
    pub(super) fn all(&self) -> Vec<ReplicaSet> {
        self.rss.clone()
    }

    pub(super) fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new.map(|i| &self.rss[i])
    }

    pub(super) fn old_indices(&self) -> Vec<usize> {
        (0..self.rss.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    /// `scaleReplicaSetAndRecordEvent`: set replicas and the replica annotations.
    pub(super) async fn scale(&mut self, i: usize, to: i32) -> Result<bool, kube::Error> {
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

/// `getNewReplicaSet`: sync the existing new ReplicaSet's annotations, or create it.
pub(super) async fn ensure_new_rs(r: &mut Rollout<'_>, create: bool) -> Result<(), kube::Error> {
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
pub(super) async fn sync_revision(r: &mut Rollout<'_>) -> Result<(), kube::Error> {
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

/// `sync`: scaling only (paused, or `kubectl scale` with no template change), proportionally
/// across active ReplicaSets.
pub(super) async fn sync_scale_only(r: &mut Rollout<'_>) -> Result<Option<Duration>, kube::Error> {
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
pub(super) async fn cleanup(r: &mut Rollout<'_>) -> Result<(), kube::Error> {
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

/// `syncRolloutStatus`: the status [`progress::rollout_status`] computes, written; the requeue
/// notices a missed progress deadline.
pub(super) async fn sync_rollout_status(
    r: &mut Rollout<'_>,
) -> Result<Option<Duration>, kube::Error> {
    let (st, requeue) = progress::rollout_status(&r.d, &r.rss, r.new_rs());
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
