//! Rolling updates (upstream `rolling.go`): the new ReplicaSet grows within maxSurge, old
//! ones shrink within maxUnavailable — unavailable old pods first — one step per sync.

use std::time::Duration;

use super::progress::{calculate_status, complete};
use super::sync::{cleanup, ensure_new_rs, sync_revision, sync_rollout_status, Rollout};
use super::util::{max_unavailable, new_rs_new_replicas, replicas, rs_available, rs_replicas};

pub(super) async fn rollout_rolling(r: &mut Rollout<'_>) -> Result<Option<Duration>, kube::Error> {
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
