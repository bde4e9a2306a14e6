//! Recreate updates (upstream `recreate.go`): every old ReplicaSet scaled to zero, then, once
//! no old pod is left, the new ReplicaSet scaled to the full count.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::progress::{calculate_status, complete};
use super::sync::{cleanup, ensure_new_rs, sync_revision, sync_rollout_status, Rollout};
use super::util::{replicas, rs_replicas};
use crate::util;

pub(super) async fn rollout_recreate(r: &mut Rollout<'_>) -> Result<Option<Duration>, kube::Error> {
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
