//! Namespace lifecycle (Kubernetes' namespace controller, run inside the API server): a deleted
//! namespace is Terminating until everything in it is deleted, then its `kubernetes` finalizer is
//! removed and it goes away.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::objmeta;
use crate::registry::{self, Part, WriteOptions};
use crate::resources::NAMESPACES;
use crate::state::AppState;

/// Delete what is left in `ns`; true when it is empty.
async fn sweep(state: &AppState, ns: &str) -> bool {
    let mut empty = true;
    // A view's objects are its stored kind's, swept with that kind.
    for info in state
        .catalog
        .all()
        .into_iter()
        .filter(|r| r.namespaced && r.view.is_none())
    {
        let (objs, _) = state.cache.list(&info.prefix(Some(ns)));
        for o in objs {
            empty = false;
            if objmeta::deletion_timestamp(&o.value).is_some()
                && !objmeta::finalizers(&o.value).is_empty()
            {
                continue;
            }
            let name = objmeta::name(&o.value).unwrap_or_default().to_string();
            if let Err(e) =
                registry::delete(state, info, Some(ns), &name, &Default::default()).await
            {
                if e.code != 404 {
                    tracing::warn!(namespace = ns, resource = info.plural, name, error = %e, "namespace cleanup");
                }
            }
        }
    }
    empty
}

async fn finalize(state: &AppState, ns: &str) {
    let res = registry::update(
        state,
        &NAMESPACES,
        None,
        ns,
        Part::Finalize,
        &WriteOptions::default(),
        false,
        |cur| {
            let mut next = cur.clone();
            next["spec"]["finalizers"] = json!([]);
            objmeta::clear_resource_version(&mut next);
            Ok(next)
        },
    )
    .await;
    if let Err(e) = res {
        if e.code != 404 {
            tracing::warn!(namespace = ns, error = %e, "finalizing namespace");
        }
    }
}

/// Runs until the process ends: reacts to namespace changes, and re-checks terminating
/// namespaces every second while any exists (their content may be waiting on graceful pod
/// deletion).
pub async fn run(state: Arc<AppState>) {
    let prefix = NAMESPACES.prefix(None);
    let (_, _, mut watch) = state.cache.list_and_watch(&prefix);
    loop {
        let (objs, _) = state.cache.list(&prefix);
        let terminating: Vec<String> = objs
            .iter()
            .filter(|o| objmeta::deletion_timestamp(&o.value).is_some())
            .filter_map(|o| objmeta::name(&o.value).map(str::to_string))
            .collect();
        for ns in &terminating {
            if sweep(&state, ns).await {
                finalize(&state, ns).await;
            }
        }
        if terminating.is_empty() {
            match watch.next().await {
                Some(Ok(_)) => {}
                Some(Err(_)) => {
                    let (_, _, w) = state.cache.list_and_watch(&prefix);
                    watch = w;
                }
                None => return,
            }
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
