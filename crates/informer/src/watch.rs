//! A kube-rs watcher on a task of its own: what the informer, the reflectors and the proxy's
//! convert-on-arrival watchers are built on (kube-runtime's `watcher` + `default_backoff`).

use std::ops::ControlFlow;

use futures::StreamExt;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// The bounds every watched kind meets (k8s-openapi's types do).
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// Watch `api` on a spawned task until `on_event` breaks or the stream ends. A failed list or
/// watch is retried with kube-rs' default backoff and reported to `on_event` as `Err` (a re-list
/// after it arrives as `Init` … `InitDone`). Objects arrive without `managedFields`: no svcnet
/// client reads them, and they are often the largest part of an object.
pub fn spawn<K, F>(
    api: Api<K>,
    config: watcher::Config,
    mut on_event: F,
) -> tokio::task::JoinHandle<()>
where
    K: Watched,
    F: FnMut(Result<Event<K>, watcher::Error>) -> ControlFlow<()> + Send + 'static,
{
    let stream = watcher(api, config)
        .modify(|o| {
            o.meta_mut().managed_fields = None;
        })
        .default_backoff();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if on_event(ev).is_break() {
                return;
            }
        }
    })
}
