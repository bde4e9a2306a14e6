//! Shared informers: list + watch one kind once, keep it in a store, tell every subscriber.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{store::Writer, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

/// One change seen by an informer.
#[derive(Debug)]
pub enum Change<K> {
    /// Added or modified; `old` is the previous state if the informer had one.
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    /// Deleted, with its last state.
    Deleted(Arc<K>),
    /// The informer (re)listed, or this subscriber fell behind: reconcile everything.
    Resync,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied { old, new } => Change::Applied {
                old: old.clone(),
                new: new.clone(),
            },
            Change::Deleted(o) => Change::Deleted(o.clone()),
            Change::Resync => Change::Resync,
        }
    }
}

/// A shared informer for `K`: its store and its change feed.
pub struct Informer<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    tx: broadcast::Sender<Change<K>>,
}

/// A subscriber's view of an informer's changes.
pub struct Subscription<K> {
    rx: broadcast::Receiver<Change<K>>,
}

impl<K: Clone> Subscription<K> {
    /// The next change; a subscriber that fell behind gets `Resync`. `None` when the informer ends.
    pub async fn recv(&mut self) -> Option<Change<K>> {
        match self.rx.recv().await {
            Ok(c) => Some(c),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Start listing and watching `api`; the returned informer fills as the watch proceeds.
    pub fn spawn(api: Api<K>, config: watcher::Config) -> Arc<Self> {
        let mut writer: Writer<K> = Writer::default();
        let store = writer.as_reader();
        let (tx, _) = broadcast::channel(16 * 1024);
        let informer = Arc::new(Informer {
            store: store.clone(),
            tx: tx.clone(),
        });
        tokio::spawn(async move {
            let mut events = watcher(api, config).default_backoff().boxed();
            while let Some(ev) = events.next().await {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::warn!(kind = K::kind(&()).as_ref(), error = %e, "watch failed; retrying");
                        continue;
                    }
                };
                match &ev {
                    Event::Apply(obj) => {
                        let key = ObjectRef::from_obj(obj);
                        let old = store.get(&key);
                        writer.apply_watcher_event(&ev);
                        if let Some(new) = store.get(&key) {
                            let _ = tx.send(Change::Applied { old, new });
                        }
                    }
                    Event::Delete(obj) => {
                        writer.apply_watcher_event(&ev);
                        let _ = tx.send(Change::Deleted(Arc::new(obj.clone())));
                    }
                    Event::InitDone => {
                        writer.apply_watcher_event(&ev);
                        let _ = tx.send(Change::Resync);
                    }
                    Event::Init | Event::InitApply(_) => writer.apply_watcher_event(&ev),
                }
            }
        });
        informer
    }

    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    pub fn subscribe(&self) -> Subscription<K> {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }

    /// Wait until the first list is in the store.
    pub async fn wait_ready(&self) {
        let _ = self.store.wait_until_ready().await;
    }
}
