//! The kubelet's image garbage collection for this node (`StartGarbageCollection`'s image
//! loop in pkg/kubelet/kubelet.go over `image_gc_manager.go`): every `ImageGCPeriod` (5 min)
//! the node publishes the images its containers use ([`Store::set_refs`], from each
//! container's `meta.json`) and runs the kubelet's policy on the host's shared store
//! ([`Store::garbage_collect`], which keeps every image any node publishes). A container is
//! published before it is created ([`add_ref`]), so another node's collection cannot remove
//! its image in between. Logs and events as the kubelet's: "Disk usage on image filesystem is
//! over the high threshold, ..." and "Removing image to free bytes" (the store's, in that
//! order), then what was freed, `FreeDiskSpaceFailed` when
//! too little could be freed, "Image garbage collection failed once. ..." and, when it fails
//! again, "... multiple times in a row" with an `ImageGCFailed` event on the Node.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Node;
use svcnet_images::image_gc::IMAGE_GC_PERIOD;
use svcnet_images::Store;

use super::Shared;
use crate::layout;

/// The images the node's containers use: the imageID each container's `meta.json` records.
pub fn in_use(node_dir: &Path) -> BTreeSet<String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(default)]
        image_ref: Option<(String, String)>,
    }
    let mut ids = BTreeSet::new();
    let read = |d: &Path| std::fs::read_dir(d).into_iter().flatten().flatten();
    for pod in read(&layout::pods_dir(node_dir)) {
        for ctr in read(&layout::containers_dir(&pod.path())) {
            let meta = std::fs::read(layout::container_meta_file(&ctr.path()))
                .ok()
                .and_then(|b| serde_json::from_slice::<Meta>(&b).ok());
            if let Some((_, id)) = meta.and_then(|m| m.image_ref) {
                ids.insert(id);
            }
        }
    }
    ids
}

/// This node is about to create a container from `image_id` (its `meta.json` already names
/// it): published in the store's refs; `false` if a collection removed the image meanwhile.
pub fn add_ref(shared: &Shared, store: &Store, image_id: &str) -> bool {
    let _one_writer = shared.image_refs.lock().expect("image refs lock");
    match store.add_ref(&shared.cfg.node_name, image_id, SystemTime::now()) {
        Ok(present) => present,
        Err(e) => {
            // Not published: the image stays eligible; creating the container is still right.
            tracing::warn!(error = %e, image = image_id, "publishing the image in use");
            true
        }
    }
}

/// One collection: publish, then the kubelet's `GarbageCollect`. `Err`: the kubelet's error.
fn collect(shared: &Shared, store: &Store) -> Result<(), String> {
    {
        let _one_writer = shared.image_refs.lock().expect("image refs lock");
        let used = in_use(&shared.cfg.data_dir);
        store
            .set_refs(&shared.cfg.node_name, &used, SystemTime::now())
            .map_err(|e| e.to_string())?;
    }
    let policy = shared.cfg.image_gc;
    let stats = store.fs_stats().map_err(|e| e.to_string())?;
    let outcome = store
        .garbage_collect(&policy, stats, SystemTime::now())
        .map_err(|e| e.to_string())?;
    if outcome.amount_to_free > 0 {
        tracing::info!(
            node = %shared.cfg.node_name,
            freed = outcome.freed,
            images = outcome.removed.len(),
            "image garbage collection freed bytes"
        );
    }
    match outcome.shortfall() {
        Some(err) => {
            shared.recorder.event(
                &node_ref(shared),
                "Warning",
                "FreeDiskSpaceFailed",
                err.clone(),
            );
            Err(err)
        }
        None => Ok(()),
    }
}

/// The kubelet's `nodeRef`: the Node by name, its name as UID.
fn node_ref(shared: &Shared) -> Node {
    let mut node = Node::default();
    node.metadata.name = Some(shared.cfg.node_name.clone());
    node.metadata.uid = Some(shared.cfg.node_name.clone());
    node
}

/// The image GC loop, until the agent ends (nothing when the policy disables it).
pub async fn run(shared: Arc<Shared>) {
    let Some(store) = shared.images.as_ref().map(|p| p.store().clone()) else {
        return;
    };
    if !shared.cfg.image_gc.enabled() {
        return;
    }
    let mut prev_failed = false;
    // At start, then every period (the kubelet's `wait.Until`).
    let mut tick = tokio::time::interval(IMAGE_GC_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (s, st) = (shared.clone(), store.clone());
        let r = tokio::task::spawn_blocking(move || collect(&s, &st))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match r {
            Err(err) if prev_failed => {
                tracing::error!(error = %err, "Image garbage collection failed multiple times in a row");
                shared
                    .recorder
                    .event(&node_ref(&shared), "Warning", "ImageGCFailed", err);
            }
            Err(err) => {
                tracing::error!(error = %err, "Image garbage collection failed once. Stats initialization may not have completed yet");
                prev_failed = true;
            }
            Ok(()) => {
                if prev_failed {
                    tracing::info!("Image garbage collection succeeded");
                } else {
                    tracing::debug!("Image garbage collection succeeded");
                }
                prev_failed = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_reads_each_containers_image_id() {
        let node = tempfile::tempdir().unwrap();
        let write = |pod: &str, ctr: &str, json: &str| {
            let dir = layout::container_dir(&layout::pod_dir(node.path(), pod), ctr);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(layout::container_meta_file(&dir), json).unwrap();
        };
        write(
            "uid-1",
            "nginx",
            r#"{"restart_count":0,"image_ref":["docker.io/library/nginx:latest","docker.io/library/nginx@sha256:aa"]}"#,
        );
        write(
            "uid-2",
            "busy",
            r#"{"restart_count":1,"image_ref":["docker.io/library/busybox:latest","sha256:bb"]}"#,
        );
        // A host-process container has no image.
        write("uid-2", "agnhost", r#"{"restart_count":0}"#);
        assert_eq!(
            in_use(node.path()),
            BTreeSet::from([
                "docker.io/library/nginx@sha256:aa".to_string(),
                "sha256:bb".to_string()
            ])
        );
    }
}
