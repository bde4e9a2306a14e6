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

/// A cluster the tests edit: the objects, and a change tracker fed the same events.
#[derive(Default)]
struct World {
    services: BTreeMap<Key, Service>,
    slices: BTreeMap<Key, EndpointSlice>,
    tracker: ChangeTracker,
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
        self.tracker
            .apply(Update::service(watcher::Event::Apply(s)));
    }

    fn del_svc(&mut self, ns: &str, name: &str) {
        let s = self.services.remove(&(ns.into(), name.into())).unwrap();
        self.tracker
            .apply(Update::service(watcher::Event::Delete(s)));
    }

    fn put_slice(&mut self, s: EndpointSlice) {
        self.slices.insert(key_of(&s.metadata), s.clone());
        let u = Update::slice(watcher::Event::Apply(s), &mut self.names);
        self.tracker.apply(u);
    }

    fn del_slice(&mut self, ns: &str, name: &str) {
        let s = self.slices.remove(&(ns.into(), name.into())).unwrap();
        let u = Update::slice(watcher::Event::Delete(s), &mut self.names);
        self.tracker.apply(u);
    }

    /// Both watchers re-list: the cluster is now exactly these objects.
    fn relist(&mut self, services: &[Service], slices: &[EndpointSlice]) {
        self.tracker.apply(Update::service(watcher::Event::Init));
        let u = Update::slice(watcher::Event::Init, &mut self.names);
        self.tracker.apply(u);
        self.services.clear();
        self.slices.clear();
        for s in services {
            self.services.insert(key_of(&s.metadata), s.clone());
            self.tracker
                .apply(Update::service(watcher::Event::InitApply(s.clone())));
        }
        for s in slices {
            self.slices.insert(key_of(&s.metadata), s.clone());
            let u = Update::slice(watcher::Event::InitApply(s.clone()), &mut self.names);
            self.tracker.apply(u);
        }
        self.tracker
            .apply(Update::service(watcher::Event::InitDone));
        let u = Update::slice(watcher::Event::InitDone, &mut self.names);
        self.tracker.apply(u);
    }

    /// The tracker's state is `model::build`'s, and the touched set names exactly the Service
    /// ports that differ from `before`.
    #[track_caller]
    fn check(&mut self, before: &State) -> BTreeSet<String> {
        let want = model::build(
            &self.services.values().collect::<Vec<_>>(),
            &self.slices.values().collect::<Vec<_>>(),
        );
        pretty_assertions::assert_eq!(self.tracker.state(), &want);
        let (touched, was) = self.tracker.take_touched();
        assert_eq!(touched, crate::syncer::changed(before, &want));
        pretty_assertions::assert_eq!(was, crate::syncer::only(before, &touched));
        touched.iter().map(|id| id.to_string()).collect()
    }

    fn snapshot(&self) -> State {
        self.tracker.state().clone()
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
    assert!(!w.tracker.synced());
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
    assert!(w.tracker.synced());
    let t = w.check(&State::default());
    assert_eq!(
        t,
        set(&["a/web:http", "a/db:http", "a/db:dns", "b/web:http"])
    );
    assert_eq!(
        w.tracker
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
    w.tracker.apply(Update::service(watcher::Event::Init));
    let u = Update::slice(watcher::Event::Init, &mut w.names);
    w.tracker.apply(u);
    w.tracker
        .apply(Update::service(watcher::Event::InitApply(svc(
            "a",
            "gone",
            "10.96.0.2",
            http(),
        ))));
    let u = Update::slice(
        watcher::Event::InitApply(slice("a", "gone-1", Some("gone"), 8080, &["10.244.0.3"])),
        &mut w.names,
    );
    w.tracker.apply(u);
    assert!(!w.tracker.synced());
    assert_eq!(w.tracker.state().services.len(), 1, "applied as it arrived");
    // The watch fails and lists again, without `gone`.
    w.relist(
        &[svc("a", "web", "10.96.0.1", http())],
        &[slice("a", "web-1", Some("web"), 8080, &["10.244.0.1"])],
    );
    assert!(w.tracker.synced());
    let st = w.tracker.state();
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
    w.tracker.apply(Update::service(watcher::Event::Init));
    let u = Update::slice(watcher::Event::Init, &mut w.names);
    w.tracker.apply(u);
    let u = Update::slice(
        watcher::Event::InitApply(slice("a", "web-1", Some("web"), 8080, &["10.244.0.9"])),
        &mut w.names,
    );
    w.tracker.apply(u);
    assert_eq!(w.tracker.state(), &b);
    assert!(w.tracker.take_touched().0.is_empty());
    // The re-list names `web` and `web-1` (changed) only.
    w.relist(
        &[svc("a", "web", "10.96.0.1", http())],
        &[slice("a", "web-1", Some("web"), 8080, &["10.244.0.9"])],
    );
    assert_eq!(w.check(&b), set(&["a/web:http", "a/gone:http"]));
    assert_eq!(w.tracker.by_service.len(), 1);
    assert_eq!(w.tracker.owner.len(), 1);
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
    assert!(!w.tracker.state().services.is_empty());
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
