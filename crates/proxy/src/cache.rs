//! The proxy's caches of Services and EndpointSlices (kube-proxy's change trackers), kept as
//! the [`State`] itself: each watch event is converted on arrival (a Service to its
//! [`ServicePort`]s, a slice to a [`SliceInfo`]), only the Service it concerns is recomputed,
//! and the Service ports whose settings or endpoints changed are remembered until the sync loop
//! takes them ([`Cache::take_touched`]). No API object is kept, and no sync rebuilds the whole
//! state.

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

/// What the watchers send to the cache.
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
pub struct Cache {
    state: State,
    /// Slices by owning Service `(namespace, service)`, sorted by slice name (the order they
    /// are merged in; a Service has a few).
    by_service: HashMap<Key, Vec<(String, SliceInfo)>>,
    /// The owning Service's name of every slice (by `(namespace, slice)`).
    owner: HashMap<Key, String>,
    touched: BTreeSet<ServicePortName>,
    /// The touched Service ports as they were before their first change since the last
    /// [`Cache::take_touched`] (absent: they did not exist).
    before: State,
    /// During a re-list: what it listed so far (applied at `InitDone`, as a reflector swaps its
    /// store then).
    services_relist: Option<Vec<(Key, Vec<ServicePort>)>>,
    slices_relist: Option<Vec<(Key, SliceInfo)>>,
    services_synced: bool,
    slices_synced: bool,
}

impl Cache {
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
                // The first list goes straight in (nothing was programmed from the cache yet;
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
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": ports}
        }))
        .unwrap()
    }

    fn slice(ns: &str, name: &str, owner: Option<&str>, port: i32, ips: &[&str]) -> EndpointSlice {
        let labels = match owner {
            Some(o) => json!({"kubernetes.io/service-name": o}),
            None => json!({}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": ips.iter().enumerate().map(|(i, ip)| json!({
                "addresses": [ip],
                "conditions": {"ready": i % 3 != 2, "serving": true, "terminating": i % 3 == 2},
                "nodeName": format!("node-{}", i % 2),
                "zone": "z1",
                "hints": {"forZones": [{"name": "z1"}]}
            })).collect::<Vec<_>>()
        }))
        .unwrap()
    }

    /// A cluster the tests edit: the objects, and a cache fed the same events.
    #[derive(Default)]
    struct World {
        services: BTreeMap<Key, Service>,
        slices: BTreeMap<Key, EndpointSlice>,
        cache: Cache,
        names: Interner,
    }

    impl World {
        fn new() -> World {
            let mut w = World::default();
            w.relist(&[], &[]);
            w
        }

        fn put_svc(&mut self, s: Service) {
            self.services.insert(key_of(&s.metadata), s.clone());
            self.cache.apply(Update::service(watcher::Event::Apply(s)));
        }

        fn del_svc(&mut self, ns: &str, name: &str) {
            let s = self.services.remove(&(ns.into(), name.into())).unwrap();
            self.cache.apply(Update::service(watcher::Event::Delete(s)));
        }

        fn put_slice(&mut self, s: EndpointSlice) {
            self.slices.insert(key_of(&s.metadata), s.clone());
            let u = Update::slice(watcher::Event::Apply(s), &mut self.names);
            self.cache.apply(u);
        }

        fn del_slice(&mut self, ns: &str, name: &str) {
            let s = self.slices.remove(&(ns.into(), name.into())).unwrap();
            let u = Update::slice(watcher::Event::Delete(s), &mut self.names);
            self.cache.apply(u);
        }

        /// Both watchers re-list: the cluster is now exactly these objects.
        fn relist(&mut self, services: &[Service], slices: &[EndpointSlice]) {
            self.cache.apply(Update::service(watcher::Event::Init));
            let u = Update::slice(watcher::Event::Init, &mut self.names);
            self.cache.apply(u);
            self.services.clear();
            self.slices.clear();
            for s in services {
                self.services.insert(key_of(&s.metadata), s.clone());
                self.cache
                    .apply(Update::service(watcher::Event::InitApply(s.clone())));
            }
            for s in slices {
                self.slices.insert(key_of(&s.metadata), s.clone());
                let u = Update::slice(watcher::Event::InitApply(s.clone()), &mut self.names);
                self.cache.apply(u);
            }
            self.cache.apply(Update::service(watcher::Event::InitDone));
            let u = Update::slice(watcher::Event::InitDone, &mut self.names);
            self.cache.apply(u);
        }

        /// The cache's state is `model::build`'s, and the touched set names exactly the Service
        /// ports that differ from `before`.
        #[track_caller]
        fn check(&mut self, before: &State) -> BTreeSet<String> {
            let want = model::build(
                &self.services.values().collect::<Vec<_>>(),
                &self.slices.values().collect::<Vec<_>>(),
            );
            pretty_assertions::assert_eq!(self.cache.state(), &want);
            let (touched, was) = self.cache.take_touched();
            assert_eq!(touched, crate::runtime::changed(before, &want));
            pretty_assertions::assert_eq!(was, crate::runtime::only(before, &touched));
            touched.iter().map(|id| id.to_string()).collect()
        }

        fn snapshot(&self) -> State {
            self.cache.state().clone()
        }
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn http() -> serde_json::Value {
        json!([{"name": "http", "port": 80, "protocol": "TCP"}])
    }

    #[test]
    fn initial_list_matches_build() {
        let mut w = World::default();
        assert!(!w.cache.synced());
        w.relist(
            &[
                svc("a", "web", "10.96.0.1", http()),
                svc("a", "db", "10.96.0.2", json!([{"name": "http", "port": 5432}, {"name": "dns", "port": 53, "protocol": "UDP"}])),
                svc("b", "web", "10.96.0.3", http()),
            ],
            &[
                slice("a", "web-1", Some("web"), 8080, &["10.244.0.1", "10.244.0.2", "10.244.0.3"]),
                // The same address in two slices: the first (by name) wins.
                slice("a", "web-2", Some("web"), 8080, &["10.244.0.2", "10.244.0.4"]),
                slice("a", "db-1", Some("db"), 5432, &["10.244.1.1"]),
                slice("a", "orphan", None, 80, &["10.244.9.9"]),
                slice("b", "web-1", Some("web"), 80, &["10.244.2.1"]),
            ],
        );
        assert!(w.cache.synced());
        let t = w.check(&State::default());
        assert_eq!(
            t,
            set(&["a/web:http", "a/db:http", "a/db:dns", "b/web:http"])
        );
        assert_eq!(
            w.cache
                .state()
                .endpoints
                .values()
                .map(Vec::len)
                .sum::<usize>(),
            6
        );
    }

    #[test]
    fn events_keep_the_state_equal_to_build() {
        let mut w = World::new();
        let t = w.check(&State::default());
        assert!(t.is_empty());

        // Slices before their Service: nothing to proxy yet.
        w.put_slice(slice("a", "web-1", Some("web"), 8080, &["10.244.0.1"]));
        w.put_slice(slice(
            "a",
            "web-2",
            Some("web"),
            8080,
            &["10.244.0.2", "10.244.0.3"],
        ));
        let b = w.snapshot();
        assert!(w.check(&b).is_empty());
        w.put_svc(svc("a", "web", "10.96.0.1", http()));
        w.put_svc(svc("a", "other", "10.96.0.2", http()));
        assert_eq!(w.check(&b), set(&["a/web:http", "a/other:http"]));

        // An endpoint moves in one slice of several.
        let b = w.snapshot();
        w.put_slice(slice("a", "web-2", Some("web"), 8080, &["10.244.0.2"]));
        assert_eq!(w.check(&b), set(&["a/web:http"]));

        // An unchanged object again: nothing touched.
        let b = w.snapshot();
        w.put_slice(slice("a", "web-2", Some("web"), 8080, &["10.244.0.2"]));
        w.put_svc(svc("a", "web", "10.96.0.1", http()));
        assert!(w.check(&b).is_empty());

        // A slice moves to another Service: both change.
        let b = w.snapshot();
        w.put_slice(slice("a", "web-2", Some("other"), 8080, &["10.244.0.2"]));
        assert_eq!(w.check(&b), set(&["a/web:http", "a/other:http"]));

        // A slice loses its label: ignored from then on.
        let b = w.snapshot();
        w.put_slice(slice("a", "web-2", None, 8080, &["10.244.0.2"]));
        assert_eq!(w.check(&b), set(&["a/other:http"]));

        // A Service's ports change: the old port goes, the new one comes.
        let b = w.snapshot();
        w.put_svc(svc(
            "a",
            "web",
            "10.96.0.1",
            json!([{"name": "web", "port": 80}, {"name": "http", "port": 81}]),
        ));
        assert_eq!(w.check(&b), set(&["a/web:http", "a/web:web"]));

        // The Service is deleted while its slices remain; then it comes back.
        let b = w.snapshot();
        w.del_svc("a", "web");
        assert_eq!(w.check(&b), set(&["a/web:http", "a/web:web"]));
        let b = w.snapshot();
        w.put_svc(svc("a", "web", "10.96.0.1", http()));
        assert_eq!(w.check(&b), set(&["a/web:http"]));

        // Headless: no ports proxied.
        let b = w.snapshot();
        w.put_svc(svc("a", "web", "None", http()));
        assert_eq!(w.check(&b), set(&["a/web:http"]));
        let b = w.snapshot();
        w.put_svc(svc("a", "web", "10.96.0.1", http()));
        assert_eq!(w.check(&b), set(&["a/web:http"]));

        // Slices deleted.
        let b = w.snapshot();
        w.del_slice("a", "web-1");
        assert_eq!(w.check(&b), set(&["a/web:http"]));
        let b = w.snapshot();
        w.del_slice("a", "web-2");
        assert!(w.check(&b).is_empty(), "the unlabelled slice was ignored");
    }

    /// The first list is applied as it arrives (no buffer); one that restarts before its end
    /// starts again from nothing.
    #[test]
    fn first_list_goes_straight_in_and_restarts_cleanly() {
        let mut w = World::default();
        w.cache.apply(Update::service(watcher::Event::Init));
        let u = Update::slice(watcher::Event::Init, &mut w.names);
        w.cache.apply(u);
        w.cache.apply(Update::service(watcher::Event::InitApply(svc(
            "a",
            "gone",
            "10.96.0.2",
            http(),
        ))));
        let u = Update::slice(
            watcher::Event::InitApply(slice("a", "gone-1", Some("gone"), 8080, &["10.244.0.3"])),
            &mut w.names,
        );
        w.cache.apply(u);
        assert!(!w.cache.synced());
        assert_eq!(w.cache.state().services.len(), 1, "applied as it arrived");
        // The watch fails and lists again, without `gone`.
        w.relist(
            &[svc("a", "web", "10.96.0.1", http())],
            &[slice("a", "web-1", Some("web"), 8080, &["10.244.0.1"])],
        );
        assert!(w.cache.synced());
        let st = w.cache.state();
        assert_eq!(
            st,
            &model::build(
                &[&svc("a", "web", "10.96.0.1", http())],
                &[&slice("a", "web-1", Some("web"), 8080, &["10.244.0.1"])]
            )
        );
    }

    #[test]
    fn relist_drops_what_it_does_not_name() {
        let mut w = World::new();
        w.relist(
            &[
                svc("a", "web", "10.96.0.1", http()),
                svc("a", "gone", "10.96.0.2", http()),
            ],
            &[
                slice("a", "web-1", Some("web"), 8080, &["10.244.0.1"]),
                slice("a", "web-2", Some("web"), 8080, &["10.244.0.2"]),
                slice("a", "gone-1", Some("gone"), 8080, &["10.244.0.3"]),
            ],
        );
        w.check(&State::default());
        let b = w.snapshot();
        // While a re-list runs, the state is the old one.
        w.cache.apply(Update::service(watcher::Event::Init));
        let u = Update::slice(watcher::Event::Init, &mut w.names);
        w.cache.apply(u);
        let u = Update::slice(
            watcher::Event::InitApply(slice("a", "web-1", Some("web"), 8080, &["10.244.0.9"])),
            &mut w.names,
        );
        w.cache.apply(u);
        assert_eq!(w.cache.state(), &b);
        assert!(w.cache.take_touched().0.is_empty());
        // The re-list names `web` and `web-1` (changed) only.
        w.relist(
            &[svc("a", "web", "10.96.0.1", http())],
            &[slice("a", "web-1", Some("web"), 8080, &["10.244.0.9"])],
        );
        assert_eq!(w.check(&b), set(&["a/web:http", "a/gone:http"]));
        assert_eq!(w.cache.by_service.len(), 1);
        assert_eq!(w.cache.owner.len(), 1);
    }

    /// Random events (a small universe, so that slices collide, move and come back) against
    /// `model::build` after each one.
    #[test]
    fn random_events_match_build() {
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut w = World::new();
        for step in 0..600 {
            let ns = ["a", "b"][rnd(2) as usize];
            let s = format!("s{}", rnd(4));
            let before = w.snapshot();
            match rnd(10) {
                0..=2 => {
                    let ports = match rnd(3) {
                        0 => http(),
                        1 => {
                            json!([{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}])
                        }
                        _ => json!([{"name": "http", "port": 8000 + rnd(2)}]),
                    };
                    let ip = if rnd(5) == 0 { "None" } else { "10.96.0.1" };
                    w.put_svc(svc(ns, &s, ip, ports));
                }
                3 => {
                    if w.services.contains_key(&(ns.into(), s.clone())) {
                        w.del_svc(ns, &s);
                    }
                }
                4..=7 => {
                    let name = format!("sl{}", rnd(6));
                    let owner = (rnd(6) != 0).then(|| s.clone());
                    let n = rnd(4) as usize;
                    let ips: Vec<String> = (0..n).map(|_| format!("10.244.0.{}", rnd(5))).collect();
                    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
                    w.put_slice(slice(
                        ns,
                        &name,
                        owner.as_deref(),
                        8080 + rnd(2) as i32,
                        &ips,
                    ));
                }
                8 => {
                    let name = format!("sl{}", rnd(6));
                    if w.slices.contains_key(&(ns.into(), name.clone())) {
                        w.del_slice(ns, &name);
                    }
                }
                _ => {
                    // A re-list naming a random part of what exists.
                    let svcs: Vec<Service> = w
                        .services
                        .values()
                        .filter(|_| rnd(4) != 0)
                        .cloned()
                        .collect();
                    let sls: Vec<EndpointSlice> =
                        w.slices.values().filter(|_| rnd(4) != 0).cloned().collect();
                    w.relist(&svcs, &sls);
                }
            }
            let _ = step;
            w.check(&before);
        }
        assert!(!w.cache.state().services.is_empty());
    }

    #[test]
    fn places_are_shared() {
        let mut places = Interner::default();
        let a = slice(
            "a",
            "s1",
            Some("web"),
            80,
            &["10.244.0.1", "10.244.0.2", "10.244.0.3"],
        );
        let i = SliceInfo::new(&a, &mut places);
        let p0 = i.endpoints[0].place.clone().unwrap();
        let p2 = i.endpoints[2].place.clone().unwrap();
        assert!(std::sync::Arc::ptr_eq(&p0, &p2), "both on node-0 in z1");
        assert_eq!(p0.node_name.as_deref(), Some("node-0"));
        drop((p0, p2));
        places.prune();
        assert_eq!(places.len(), 2, "node-0 and node-1");
        drop(i);
        places.prune();
        assert!(places.is_empty());
    }
}
