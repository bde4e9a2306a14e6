//! The change tracker (kube-proxy's `pkg/proxy/servicechangetracker.go` and
//! `endpointschangetracker.go`, one type here): the proxy's view of Services and EndpointSlices,
//! kept as the [`State`] itself. Each watch event is converted on arrival (a Service to its
//! [`ServicePort`]s, a slice to a [`SliceInfo`], as CoreDNS's `object.ToService`), only the
//! Service it concerns is recomputed, and the Service ports whose settings or endpoints changed
//! are remembered, with what they were, until the sync loop takes them
//! ([`ChangeTracker::take_touched`]: kube-proxy's `ServiceChangeTracker.checkoutChanges`). No
//! API object is kept, and no sync rebuilds the whole state.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;

use crate::model::{self, Interner, Protocol, ServicePort, ServicePortName, SliceInfo, State};

/// `(namespace, name)` of a Service or an EndpointSlice.
pub type Key = (String, String);

fn key_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Key {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// A watch event, its object converted ([`watcher::Event`] without the API object).
#[derive(Clone, Debug, PartialEq)]
pub enum Change<T> {
    /// A re-list starts: what it does not name is gone at `InitDone`.
    Init,
    InitApply(Key, T),
    InitDone,
    Apply(Key, T),
    Delete(Key),
}

/// What the watchers send to the change tracker.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    Service(Change<Vec<ServicePort>>),
    Slice(Change<SliceInfo>),
}

impl Update {
    pub fn service(ev: watcher::Event<Service>) -> Update {
        let conv = |s: &Service| (key_of(&s.metadata), model::service_ports(s));
        Update::Service(match ev {
            watcher::Event::Init => Change::Init,
            watcher::Event::InitApply(s) => {
                let (k, v) = conv(&s);
                Change::InitApply(k, v)
            }
            watcher::Event::InitDone => Change::InitDone,
            watcher::Event::Apply(s) => {
                let (k, v) = conv(&s);
                Change::Apply(k, v)
            }
            watcher::Event::Delete(s) => Change::Delete(key_of(&s.metadata)),
        })
    }

    /// `places` are shared by the slices converted with it; it forgets unused ones after each
    /// re-list.
    pub fn slice(ev: watcher::Event<EndpointSlice>, places: &mut Interner) -> Update {
        let mut conv = |s: &EndpointSlice| (key_of(&s.metadata), SliceInfo::new(s, places));
        Update::Slice(match ev {
            watcher::Event::Init => Change::Init,
            watcher::Event::InitApply(s) => {
                let (k, v) = conv(&s);
                Change::InitApply(k, v)
            }
            watcher::Event::InitDone => {
                places.prune();
                Change::InitDone
            }
            watcher::Event::Apply(s) => {
                let (k, v) = conv(&s);
                Change::Apply(k, v)
            }
            watcher::Event::Delete(s) => Change::Delete(key_of(&s.metadata)),
        })
    }
}

/// The cluster as the proxy sees it, kept up to date event by event.
#[derive(Debug, Default)]
pub struct ChangeTracker {
    state: State,
    /// Slices by owning Service `(namespace, service)`, sorted by slice name (the order they
    /// are merged in; a Service has a few).
    by_service: HashMap<Key, Vec<(String, SliceInfo)>>,
    /// The owning Service's name of every slice (by `(namespace, slice)`).
    owner: HashMap<Key, String>,
    touched: BTreeSet<ServicePortName>,
    /// The touched Service ports as they were before their first change since the last
    /// [`ChangeTracker::take_touched`] (absent: they did not exist).
    before: State,
    /// During a re-list: what it listed so far (applied at `InitDone`, as a reflector swaps its
    /// store then).
    services_relist: Option<Vec<(Key, Vec<ServicePort>)>>,
    slices_relist: Option<Vec<(Key, SliceInfo)>>,
    services_synced: bool,
    slices_synced: bool,
}

impl ChangeTracker {
    /// The state: every proxied Service port with its endpoints (as [`model::build`] makes it).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Both watchers have listed once.
    pub fn synced(&self) -> bool {
        self.services_synced && self.slices_synced
    }

    /// The Service ports whose settings or endpoints changed (or that came or went) since the
    /// last call, and what they were then (only those: the rest of the state is unchanged).
    pub fn take_touched(&mut self) -> (BTreeSet<ServicePortName>, State) {
        (
            std::mem::take(&mut self.touched),
            std::mem::take(&mut self.before),
        )
    }

    /// `id` is about to change: remember it and, the first time, what it was.
    fn touch(&mut self, id: &ServicePortName) {
        if self.touched.contains(id) {
            return;
        }
        self.touched.insert(id.clone());
        if let Some(sp) = self.state.services.get(id) {
            self.before.services.insert(id.clone(), sp.clone());
        }
        if let Some(e) = self.state.endpoints.get(id) {
            self.before.endpoints.insert(id.clone(), e.clone());
        }
    }

    /// The Services (namespace, name) that have ports in the state.
    fn service_keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .state
            .services
            .keys()
            .map(|id| (id.namespace.clone(), id.name.clone()))
            .collect();
        keys.dedup();
        keys
    }

    pub fn apply(&mut self, u: Update) {
        match u {
            Update::Service(c) => match c {
                // The first list goes straight in (nothing was programmed from the tracker yet;
                // buffering 10k Services would only add to the start-up peak). A list that
                // restarts before it ended begins from nothing again.
                Change::Init if !self.services_synced => {
                    let present: Vec<Key> = self.service_keys();
                    for k in present {
                        self.set_service(&k, Vec::new());
                    }
                }
                Change::Init => self.services_relist = Some(Vec::new()),
                Change::InitApply(k, v) => match &mut self.services_relist {
                    Some(b) => b.push((k, v)),
                    None => self.set_service(&k, v),
                },
                Change::InitDone if self.services_relist.is_none() => self.services_synced = true,
                Change::InitDone => {
                    let listed = self.services_relist.take().unwrap_or_default();
                    let seen: HashSet<&Key> = listed.iter().map(|(k, _)| k).collect();
                    let mut gone: Vec<Key> = Vec::new();
                    for id in self.state.services.keys() {
                        let k = (id.namespace.clone(), id.name.clone());
                        if !seen.contains(&k) && gone.last() != Some(&k) {
                            gone.push(k);
                        }
                    }
                    drop(seen);
                    for k in gone {
                        self.set_service(&k, Vec::new());
                    }
                    for (k, v) in listed {
                        self.set_service(&k, v);
                    }
                    self.services_synced = true;
                }
                Change::Apply(k, v) => self.set_service(&k, v),
                Change::Delete(k) => self.set_service(&k, Vec::new()),
            },
            Update::Slice(c) => match c {
                Change::Init if !self.slices_synced => {
                    let present: Vec<Key> = self.owner.keys().cloned().collect();
                    for k in present {
                        self.set_slice(k, None);
                    }
                }
                Change::Init => self.slices_relist = Some(Vec::new()),
                Change::InitApply(k, v) => match &mut self.slices_relist {
                    Some(b) => b.push((k, v)),
                    None => self.set_slice(k, Some(v)),
                },
                Change::InitDone if self.slices_relist.is_none() => self.slices_synced = true,
                Change::InitDone => {
                    let listed = self.slices_relist.take().unwrap_or_default();
                    let seen: HashSet<&Key> = listed.iter().map(|(k, _)| k).collect();
                    let gone: Vec<Key> = self
                        .owner
                        .keys()
                        .filter(|k| !seen.contains(k))
                        .cloned()
                        .collect();
                    drop(seen);
                    for k in gone {
                        self.set_slice(k, None);
                    }
                    for (k, v) in listed {
                        self.set_slice(k, Some(v));
                    }
                    self.slices_synced = true;
                }
                Change::Apply(k, v) => self.set_slice(k, Some(v)),
                Change::Delete(k) => self.set_slice(k, None),
            },
        }
    }

    /// The ids of the Service `key`'s ports in the state.
    fn port_ids(&self, key: &Key) -> Vec<(ServicePortName, Protocol)> {
        let lo = ServicePortName {
            namespace: key.0.clone(),
            name: key.1.clone(),
            port: String::new(),
            protocol: Protocol::Tcp,
        };
        self.state
            .services
            .range(lo..)
            .take_while(|(id, _)| id.namespace == key.0 && id.name == key.1)
            .map(|(id, sp)| (id.clone(), sp.protocol))
            .collect()
    }

    fn merged(&self, key: &Key) -> BTreeMap<(String, Protocol), Vec<model::Endpoint>> {
        match self.by_service.get(key) {
            Some(slices) => model::merge(slices.iter().map(|(_, s)| s)),
            None => BTreeMap::new(),
        }
    }

    fn set_endpoints(&mut self, id: &ServicePortName, list: Vec<model::Endpoint>) {
        if self.state.endpoints.get(id) != Some(&list) {
            self.touch(id);
            self.state.endpoints.insert(id.clone(), list);
        }
    }

    /// The Service `key` has these ports (none: deleted, or not proxied).
    fn set_service(&mut self, key: &Key, ports: Vec<ServicePort>) {
        for (id, _) in self.port_ids(key) {
            if !ports.iter().any(|p| p.id == id) {
                self.touch(&id);
                self.state.services.remove(&id);
                self.state.endpoints.remove(&id);
            }
        }
        if ports.is_empty() {
            return;
        }
        let mut eps = self.merged(key);
        for sp in ports {
            let list = eps
                .remove(&(sp.id.port.clone(), sp.protocol))
                .unwrap_or_default();
            self.set_endpoints(&sp.id, list);
            if self.state.services.get(&sp.id) != Some(&sp) {
                self.touch(&sp.id);
                self.state.services.insert(sp.id.clone(), sp);
            }
        }
    }

    /// Recompute the endpoints of the Service `key`'s ports from its slices.
    fn refresh(&mut self, key: &Key) {
        let ids = self.port_ids(key);
        if ids.is_empty() {
            return;
        }
        let mut eps = self.merged(key);
        for (id, protocol) in ids {
            let list = eps.remove(&(id.port.clone(), protocol)).unwrap_or_default();
            self.set_endpoints(&id, list);
        }
    }

    /// The slice `key` is now `info` (None: deleted).
    fn set_slice(&mut self, key: Key, info: Option<SliceInfo>) {
        // A slice without its Service's label is ignored (as by `model::build`).
        let info = info.and_then(|i| Some((i.service.clone()?, i)));
        let old = self.owner.remove(&key);
        let (ns, name) = key;
        let mut old_info = None;
        if let Some(o) = &old {
            let k = (ns.clone(), o.clone());
            if let Some(m) = self.by_service.get_mut(&k) {
                if let Ok(i) = m.binary_search_by(|(n, _)| n.cmp(&name)) {
                    old_info = Some(m.remove(i).1);
                }
                if m.is_empty() {
                    self.by_service.remove(&k);
                }
            }
        }
        let unchanged = match (&old, &old_info, &info) {
            (Some(o), Some(oi), Some((s, i))) => o == s && oi == i,
            _ => false,
        };
        let new_owner = info.as_ref().map(|(s, _)| s.clone());
        if let Some((s, i)) = info {
            let m = self.by_service.entry((ns.clone(), s.clone())).or_default();
            match m.binary_search_by(|(n, _)| n.cmp(&name)) {
                Ok(at) => m[at].1 = i,
                Err(at) => m.insert(at, (name.clone(), i)),
            }
            m.shrink_to_fit();
            self.owner.insert((ns.clone(), name), s);
        }
        if unchanged {
            return;
        }
        if let Some(o) = old {
            if new_owner.as_ref() != Some(&o) {
                self.refresh(&(ns.clone(), o));
            }
        }
        if let Some(s) = new_owner {
            self.refresh(&(ns, s));
        }
    }
}

#[cfg(test)]
mod tests;
