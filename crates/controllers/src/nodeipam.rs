//! The node IPAM controller (kube-controller-manager `--allocate-node-cidrs`, range allocator):
//! each Node without `spec.podCIDR` gets the first free `/--node-cidr-mask-size` block of
//! `--cluster-cidr` (default 10.244.0.0/16 in /24s), which its node agent then hands out to pods.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::Context;
use svcnet_informer::{run_workers, Change, Key, Queue};

/// The first block of `cluster` (of `mask` bits) not in `used`.
pub fn first_free(cluster: Ipv4Net, mask: u8, used: &BTreeSet<Ipv4Net>) -> Option<Ipv4Net> {
    cluster.subnets(mask).ok()?.find(|n| {
        !used
            .iter()
            .any(|u| u.contains(&n.network()) || n.contains(&u.network()))
    })
}

fn used(ctx: &Context) -> BTreeSet<Ipv4Net> {
    ctx.informers
        .nodes
        .store()
        .state()
        .iter()
        .flat_map(|n| {
            let s = n.spec.clone().unwrap_or_default();
            s.pod_cidrs
                .unwrap_or_default()
                .into_iter()
                .chain(s.pod_cidr)
        })
        .filter_map(|c| c.parse().ok())
        .collect()
}

pub async fn run(ctx: Arc<Context>) {
    let queue = Queue::new();
    let q = queue.clone();
    let c = ctx.clone();
    let mut nodes = ctx.informers.nodes.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = nodes.recv().await {
            match ch {
                Change::Applied { new, .. } => q.add(Key::of(&*new)),
                Change::Deleted(_) => {}
                Change::Resync => {
                    for n in c.informers.nodes.store().state() {
                        q.add(Key::of(&*n));
                    }
                }
            }
        }
    });
    for n in ctx.informers.nodes.store().state() {
        queue.add(Key::of(&*n));
    }
    // One worker: allocations must not race each other.
    run_workers("nodeipam", queue, 1, move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &key).await }
    })
    .await;
}

async fn sync(ctx: &Context, key: &Key) -> Result<Option<Duration>, kube::Error> {
    let Some(node) = ctx
        .informers
        .nodes
        .store()
        .get(&ObjectRef::<Node>::new(&key.name))
    else {
        return Ok(None);
    };
    if node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .is_some_and(|c| !c.is_empty())
    {
        return Ok(None);
    }
    let Some(cidr) = first_free(
        ctx.config.cluster_cidr,
        ctx.config.node_cidr_mask_size,
        &used(ctx),
    ) else {
        ctx.recorder.event(
            &*node,
            crate::events::WARNING,
            "CIDRNotAvailable",
            format!("Node {} status is now: CIDRNotAvailable", node.name_any()),
        );
        return Ok(Some(Duration::from_secs(30)));
    };
    let api: Api<Node> = Api::all(ctx.client.clone());
    let p = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    api.patch(&key.name, &PatchParams::default(), &Patch::Merge(p))
        .await?;
    ctx.recorder.event(
        &*node,
        crate::events::NORMAL,
        "CIDRAssignmentSucceeded",
        format!("Node {} assigned pod CIDR {cidr}", node.name_any()),
    );
    // The informer shows the allocation before the next node is looked at (one worker, and
    // `used` reads the cache): wait for it so two nodes never get the same block.
    for _ in 0..100 {
        if used(ctx).contains(&cidr) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_free_block() {
        let cluster: Ipv4Net = "10.244.0.0/16".parse().unwrap();
        let mut used = BTreeSet::new();
        assert_eq!(
            first_free(cluster, 24, &used),
            Some("10.244.0.0/24".parse().unwrap())
        );
        used.insert("10.244.0.0/24".parse().unwrap());
        used.insert("10.244.2.0/24".parse().unwrap());
        assert_eq!(
            first_free(cluster, 24, &used),
            Some("10.244.1.0/24".parse().unwrap())
        );
        let tiny: Ipv4Net = "10.244.0.0/23".parse().unwrap();
        used.insert("10.244.1.0/24".parse().unwrap());
        assert_eq!(first_free(tiny, 24, &used), None);
    }
}
