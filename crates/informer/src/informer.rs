//! Shared informers: list + watch one kind once, keep it in a store, tell every subscriber.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use std::ops::ControlFlow;

use kube::runtime::reflector::{store::Writer, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
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
    index: Arc<Mutex<Index>>,
}

/// Extra index keys of an object (for Services: their selector's `key=value` pairs).
pub type KeyFn<K> = fn(&K) -> Vec<String>;

/// Names by namespace and by (namespace, `key=value` label), as client-go's namespace index plus
/// a label index: a Service's sync looks at the pods its selector can match, not at every pod.
/// Updated before each change is broadcast, so a sync a change triggers sees it indexed.
#[derive(Default)]
struct Index {
    by_namespace: HashMap<String, HashSet<String>>,
    by_label: HashMap<(String, String), HashSet<String>>,
}

impl Index {
    /// The index keys of `obj`: `key=value` per label, and `extra`'s keys (prefixed `@`).
    fn entries<K: Resource>(
        obj: &K,
        extra: Option<KeyFn<K>>,
    ) -> Option<(String, String, Vec<String>)> {
        let m = obj.meta();
        let ns = m.namespace.clone().unwrap_or_default();
        let name = m.name.clone()?;
        let mut keys: Vec<String> = m
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if let Some(f) = extra {
            keys.extend(f(obj).into_iter().map(|k| format!("@{k}")));
        }
        Some((ns, name, keys))
    }

    fn add<K: Resource>(&mut self, obj: &K, extra: Option<KeyFn<K>>) {
        let Some((ns, name, labels)) = Self::entries(obj, extra) else {
            return;
        };
        for l in labels {
            self.by_label
                .entry((ns.clone(), l))
                .or_default()
                .insert(name.clone());
        }
        self.by_namespace.entry(ns).or_default().insert(name);
    }

    fn remove<K: Resource>(&mut self, obj: &K, extra: Option<KeyFn<K>>) {
        let Some((ns, name, labels)) = Self::entries(obj, extra) else {
            return;
        };
        for l in labels {
            let k = (ns.clone(), l);
            if let Some(set) = self.by_label.get_mut(&k) {
                set.remove(&name);
                if set.is_empty() {
                    self.by_label.remove(&k);
                }
            }
        }
        if let Some(set) = self.by_namespace.get_mut(&ns) {
            set.remove(&name);
            if set.is_empty() {
                self.by_namespace.remove(&ns);
            }
        }
    }
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
    K: crate::watch::Watched,
{
    /// Start listing and watching `api`; the returned informer fills as the watch proceeds.
    pub fn spawn(api: Api<K>, config: watcher::Config) -> Arc<Self> {
        Self::spawn_indexed(api, config, None)
    }

    /// As [`Informer::spawn`], also indexing each object under `extra`'s keys (see
    /// [`Informer::by_key`]).
    pub fn spawn_indexed(
        api: Api<K>,
        config: watcher::Config,
        extra: Option<KeyFn<K>>,
    ) -> Arc<Self> {
        let mut writer: Writer<K> = Writer::default();
        let store = writer.as_reader();
        // Deep enough for a burst of 100k pods; a subscriber that still falls behind resyncs.
        let (tx, _) = broadcast::channel(128 * 1024);
        let index: Arc<Mutex<Index>> = Arc::default();
        let informer = Arc::new(Informer {
            store: store.clone(),
            tx: tx.clone(),
            index: index.clone(),
        });
        crate::watch::spawn(api, config, move |ev| {
            {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::warn!(kind = K::kind(&()).as_ref(), error = %e, "watch failed; retrying");
                        return ControlFlow::Continue(());
                    }
                };
                match &ev {
                    Event::Apply(obj) => {
                        let key = ObjectRef::from_obj(obj);
                        let old = store.get(&key);
                        writer.apply_watcher_event(&ev);
                        if let Some(new) = store.get(&key) {
                            {
                                let mut ix = index.lock().expect("index lock");
                                if let Some(o) = &old {
                                    ix.remove(&**o, extra);
                                }
                                ix.add(&*new, extra);
                            }
                            let _ = tx.send(Change::Applied { old, new });
                        }
                    }
                    Event::Delete(obj) => {
                        let old = store.get(&ObjectRef::from_obj(obj));
                        writer.apply_watcher_event(&ev);
                        {
                            let mut ix = index.lock().expect("index lock");
                            ix.remove(obj, extra);
                            if let Some(o) = &old {
                                ix.remove(&**o, extra);
                            }
                        }
                        let _ = tx.send(Change::Deleted(Arc::new(obj.clone())));
                    }
                    Event::InitDone => {
                        writer.apply_watcher_event(&ev);
                        let mut fresh = Index::default();
                        for o in store.state() {
                            fresh.add(&*o, extra);
                        }
                        *index.lock().expect("index lock") = fresh;
                        let _ = tx.send(Change::Resync);
                    }
                    Event::Init | Event::InitApply(_) => writer.apply_watcher_event(&ev),
                }
            }
            ControlFlow::Continue(())
        });
        informer
    }

    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    fn get_all(&self, namespace: &str, names: &[String]) -> Vec<Arc<K>> {
        names
            .iter()
            .filter_map(|n| self.store.get(&ObjectRef::new(n).within(namespace)))
            .collect()
    }

    /// The objects of `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let names: Vec<String> = {
            let ix = self.index.lock().expect("index lock");
            ix.by_namespace
                .get(namespace)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        };
        self.get_all(namespace, &names)
    }

    /// The objects of `namespace` indexed under `key` by the informer's extra key function.
    pub fn by_key(&self, namespace: &str, key: &str) -> Vec<Arc<K>> {
        let names: Vec<String> = {
            let ix = self.index.lock().expect("index lock");
            ix.by_label
                .get(&(namespace.to_string(), format!("@{key}")))
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        };
        self.get_all(namespace, &names)
    }

    /// The objects of `namespace` carrying every label of `selector` (none for an empty one),
    /// looked up through the rarest of its labels.
    pub fn matching(&self, namespace: &str, selector: &BTreeMap<String, String>) -> Vec<Arc<K>> {
        let names: Vec<String> = {
            let ix = self.index.lock().expect("index lock");
            let sets: Option<Vec<&HashSet<String>>> = selector
                .iter()
                .map(|(k, v)| {
                    ix.by_label
                        .get(&(namespace.to_string(), format!("{k}={v}")))
                })
                .collect();
            match sets.and_then(|s| s.into_iter().min_by_key(|s| s.len())) {
                Some(smallest) if !selector.is_empty() => smallest.iter().cloned().collect(),
                _ => Vec::new(),
            }
        };
        names
            .iter()
            .filter_map(|n| self.store.get(&ObjectRef::new(n).within(namespace)))
            .filter(|o| {
                let labels = o.meta().labels.as_ref();
                selector
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            })
            .collect()
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
