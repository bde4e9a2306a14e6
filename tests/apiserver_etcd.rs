//! The API server on etcd (Debian's etcd 3.4, started by the tests on loopback): the API
//! basics on one server, and several API servers on one 3-member etcd cluster — allocation
//! without duplicates under 1,000 concurrent creates, watches across servers, an etcd member and
//! an API server killed, and a kube-rs watch resuming on another server without losing events.
//!
//! The whole API suite also runs on etcd with `SVCNET_TEST_STORE=etcd` (tests/support).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use support::ApiServer;
use svcnet_store::etcd::local::LocalEtcd;
use svcnet_store::etcd::{EtcdConfig, EtcdStore};
use svcnet_store::Store;

fn svc(name: &str, node_port: bool) -> Service {
    let mut spec = serde_json::json!({"selector": {"app": name}, "ports": [{"port": 80}]});
    if node_port {
        spec["type"] = "NodePort".into();
    }
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn rv(s: &Service) -> i64 {
    s.metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

async fn store_of(etcd: &LocalEtcd) -> EtcdStore {
    EtcdStore::connect(&EtcdConfig {
        endpoints: etcd.endpoints(),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Create/get/list/watch/update-conflict/delete, ClusterIP and NodePort allocation and 422s on
/// a server backed by etcd; objects sit under Kubernetes' key layout with resourceVersion =
/// the etcd key's mod_revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_basics_on_etcd() {
    let s = ApiServer::start_on_etcd(&[]);
    let client = s.client().await;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");

    // A watch from now on, to see the changes below.
    let list = api.list(&ListParams::default()).await.unwrap();
    let from = list.metadata.resource_version.clone().unwrap();
    assert_eq!(list.items.len(), 1, "only the kubernetes service");
    let mut watch = api
        .watch(&WatchParams::default().timeout(30), &from)
        .await
        .unwrap()
        .boxed();

    // Create: a ClusterIP from the range, stored in etcd where Kubernetes keeps it.
    let created = api
        .create(&PostParams::default(), &svc("web", false))
        .await
        .unwrap();
    let ip: std::net::Ipv4Addr = created
        .spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        "10.96.0.0/12"
            .parse::<ipnet::Ipv4Net>()
            .unwrap()
            .contains(&ip),
        "{ip}"
    );
    let store = store_of(s.etcd.as_ref().unwrap()).await;
    let (kv, _) = store
        .get("/registry/services/specs/default/web")
        .await
        .unwrap();
    let kv = kv.expect("the Service under /registry/services/specs/<ns>/<name>");
    assert_eq!(
        kv.mod_revision,
        rv(&created),
        "resourceVersion = etcd mod_revision"
    );
    let stored: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(stored["spec"]["clusterIP"], ip.to_string());
    let (claim, _) = store
        .get(&format!("/registry/svcnet/clusterips/{ip}"))
        .await
        .unwrap();
    assert!(claim.is_some(), "the ClusterIP claim is an etcd key");

    // Get and list.
    let got = api.get("web").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["kubernetes", "web"]);

    // Update: the current resourceVersion applies; a stale one is 409 Conflict.
    let mut next = got.clone();
    next.metadata.labels = Some(BTreeMap::from([("tier".into(), "front".into())]));
    let updated = api
        .replace("web", &PostParams::default(), &next)
        .await
        .unwrap();
    assert!(rv(&updated) > rv(&created));
    let mut stale = got.clone();
    stale.metadata.labels = Some(BTreeMap::from([("tier".into(), "back".into())]));
    let err = api_error(
        api.replace("web", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (409, "Conflict"),
        "{err:?}"
    );

    // NodePort allocation; a taken ClusterIP or NodePort asked for explicitly is 422.
    let np = api
        .create(&PostParams::default(), &svc("np", true))
        .await
        .unwrap();
    let port = np.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap();
    assert!((30000..=32767).contains(&port), "{port}");
    let mut dup_ip = svc("dup-ip", false);
    dup_ip.spec.as_mut().unwrap().cluster_ip = Some(ip.to_string());
    let err = api_error(
        api.create(&PostParams::default(), &dup_ip)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422, "{err:?}");
    assert!(err.message.contains("already allocated"), "{}", err.message);
    let mut dup_port = svc("dup-port", true);
    dup_port.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(port);
    let err = api_error(
        api.create(&PostParams::default(), &dup_port)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422, "{err:?}");
    assert!(
        err.message.contains("provided port is already allocated"),
        "{}",
        err.message
    );
    // Validation: a bad port is 422 Invalid with Kubernetes' message.
    let mut bad = svc("bad", false);
    bad.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 0;
    let err = api_error(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"), "{err:?}");
    assert!(
        err.message.contains("spec.ports[0].port"),
        "{}",
        err.message
    );

    // Delete: gone, and its allocations released (the same IP can be asked for again).
    api.delete("web", &DeleteParams::default()).await.unwrap();
    let err = api_error(api.get("web").await.unwrap_err());
    assert_eq!(err.code, 404);
    assert!(store
        .get(&format!("/registry/svcnet/clusterips/{ip}"))
        .await
        .unwrap()
        .0
        .is_none());
    let mut again = svc("again", false);
    again.spec.as_mut().unwrap().cluster_ip = Some(ip.to_string());
    api.create(&PostParams::default(), &again).await.unwrap();

    // The watch saw every change, in order, with increasing resourceVersions.
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let ev = next_event(&mut watch).await.unwrap().unwrap();
        match ev {
            WatchEvent::Added(s) => seen.push((
                "ADDED",
                s.metadata.name.clone().unwrap(),
                rv_of(&s.metadata),
            )),
            WatchEvent::Modified(s) => seen.push((
                "MODIFIED",
                s.metadata.name.clone().unwrap(),
                rv_of(&s.metadata),
            )),
            WatchEvent::Deleted(s) => seen.push((
                "DELETED",
                s.metadata.name.clone().unwrap(),
                rv_of(&s.metadata),
            )),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    let kinds: Vec<(&str, &str)> = seen.iter().map(|(t, n, _)| (*t, n.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("ADDED", "web"),
            ("MODIFIED", "web"),
            ("ADDED", "np"),
            ("DELETED", "web"),
            ("ADDED", "again")
        ]
    );
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "{seen:?}");

    // kubectl works unchanged.
    let out = s.kubectl_ok(&["get", "svc", "np", "-o", "wide"]);
    assert!(out.contains(&format!("80:{port}/TCP")), "{out}");
}

fn rv_of(m: &kube::api::ObjectMeta) -> i64 {
    m.resource_version.as_deref().unwrap().parse().unwrap()
}

/// Creates through `apis` (round robin), `n` of them from `start`, `concurrency` in flight;
/// retries 5xx/transport errors (as clients do) and returns how many retries there were.
async fn create_many(
    apis: &[Api<Service>],
    prefix: &str,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> usize {
    let retries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    futures::stream::iter(range)
        .map(|i| {
            let api = apis[i % apis.len()].clone();
            let retries = retries.clone();
            let name = format!("{prefix}-{i:04}");
            async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match api.create(&PostParams::default(), &svc(&name, true)).await {
                        Ok(_) => return,
                        // A retry of a create that did land.
                        Err(kube::Error::Api(e)) if e.code == 409 => return,
                        Err(e) if Instant::now() < deadline => {
                            if let kube::Error::Api(s) = &e {
                                assert!(s.code >= 500 || s.code == 429, "create {name}: {s:?}");
                            }
                            eprintln!("create {name}: {e}; retrying");
                            retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("create {name} kept failing: {e}"),
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    retries.load(std::sync::atomic::Ordering::Relaxed)
}

type ServiceWatch = futures::stream::BoxStream<'static, kube::Result<WatchEvent<Service>>>;

/// A watch of `api`'s Services from its current resourceVersion (a one-item list tells it), and
/// that resourceVersion.
async fn watch_from_now(api: &Api<Service>, timeout: u32) -> (String, ServiceWatch) {
    let from = api
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let w = api
        .watch(&WatchParams::default().timeout(timeout), &from)
        .await
        .unwrap()
        .boxed();
    (from, w)
}

/// The next event of a watch; one that does not come within 10 s fails the test.
async fn next_event(w: &mut ServiceWatch) -> Option<kube::Result<WatchEvent<Service>>> {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("watch stalled")
}

/// Every Service listed through `api` (`expect` of them, `node_ports` NodePorts): ClusterIPs and
/// NodePorts must all be distinct.
async fn assert_unique_allocations(api: &Api<Service>, expect: usize, node_ports: usize) {
    let all = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(all.len(), expect);
    let (ips, ports) = support::distinct_allocations(&all);
    assert_eq!(ips, expect);
    assert_eq!(ports, node_ports);
}

/// Two, then three API servers on one 3-member etcd: 1,000 concurrent creates through all of
/// them with no duplicate ClusterIP or NodePort; a watch on one server sees writes through
/// another; killing an etcd member and then an API server does not stop the others; a
/// kube-rs watch resumed on another server from its last resourceVersion loses no event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_apiservers_on_one_etcd_cluster() {
    let etcd_dir = tempfile::tempdir().unwrap();
    let mut etcd = LocalEtcd::start(etcd_dir.path(), 3).expect("starting a 3-member etcd");
    let url = etcd.store_url();
    let a = ApiServer::start_with(&["--store", &url]);
    let b = ApiServer::start_sharing(&a, &["--store", &url]);
    let ca = Api::<Service>::namespaced(a.client().await, "default");
    let cb = Api::<Service>::namespaced(b.client().await, "default");

    // Two servers: 500 concurrent creates, half through each.
    let t = Instant::now();
    let r1 = create_many(&[ca.clone(), cb.clone()], "two", 0..500, 64).await;
    // Three servers: 500 more through all three.
    let c = ApiServer::start_sharing(&a, &["--store", &url]);
    let cc = Api::<Service>::namespaced(c.client().await, "default");
    let r2 = create_many(
        &[ca.clone(), cb.clone(), cc.clone()],
        "three",
        500..1000,
        96,
    )
    .await;
    eprintln!(
        "1000 creates through 2+3 API servers: {:?} ({} retries)",
        t.elapsed(),
        r1 + r2
    );
    for api in [&ca, &cb, &cc] {
        assert_unique_allocations(api, 1001, 1000).await;
    }
    // The claims in etcd match: one per ClusterIP and per NodePort, nothing leaked.
    let store = store_of(&etcd).await;
    let count = |prefix: &'static str| {
        let store = &store;
        async move {
            store
                .range(svcnet_store::RangeRequest {
                    prefix: prefix.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .kvs
                .len()
        }
    };
    assert_eq!(count("/registry/svcnet/clusterips/").await, 1001);
    assert_eq!(count("/registry/svcnet/nodeports/").await, 1000);

    // A watch on A sees a write made through C.
    let (_, mut wa) = watch_from_now(&ca, 60).await;
    let made = cc
        .create(&PostParams::default(), &svc("through-c", false))
        .await
        .unwrap();
    let ev = next_event(&mut wa).await.unwrap().unwrap();
    match ev {
        WatchEvent::Added(s) => {
            assert_eq!(s.metadata.name.as_deref(), Some("through-c"));
            assert_eq!(s.metadata.resource_version, made.metadata.resource_version);
        }
        other => panic!("expected ADDED through-c, got {other:?}"),
    }

    // Kill one etcd member: writes through every server continue.
    etcd.kill(0);
    let r = create_many(
        &[ca.clone(), cb.clone(), cc.clone()],
        "member-down",
        0..60,
        6,
    )
    .await;
    eprintln!("60 creates with one etcd member down: {r} retries");
    for api in [&ca, &cb, &cc] {
        let got = api.get("member-down-0059").await.unwrap();
        assert!(got.spec.unwrap().cluster_ip.is_some());
    }

    // A kube-rs reflector on B (its clients must not notice A going away), and a kube-rs watch
    // on A that resumes on B from its last resourceVersion, as a watcher reconnecting does.
    let (reader, writer) = kube::runtime::reflector::store::<Service>();
    let rf = kube::runtime::reflector(writer, watcher(cb.clone(), watcher::Config::default()));
    let rf_task = tokio::spawn(async move {
        futures::pin_mut!(rf);
        while rf.try_next().await.ok().flatten().is_some() {}
    });
    reader.wait_until_ready().await.unwrap();
    let (from, mut w) = watch_from_now(&ca, 120).await;

    // A writer through B and C, while A is killed mid-stream.
    let writer = {
        let (cb, cc) = (cb.clone(), cc.clone());
        tokio::spawn(async move {
            let mut names = Vec::new();
            for i in 0..80 {
                let name = format!("failover-{i:03}");
                let api = if i % 2 == 0 { &cb } else { &cc };
                api.create(&PostParams::default(), &svc(&name, false))
                    .await
                    .unwrap();
                names.push(name);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            names
        })
    };
    let mut a = a;
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut last_rv: i64 = from.parse().unwrap();
    // Read some events from A, then kill it.
    while seen.len() < 20 {
        match next_event(&mut w).await {
            Some(Ok(WatchEvent::Added(s))) => {
                last_rv = rv_of(&s.metadata);
                seen.push((s.metadata.name.unwrap(), last_rv));
            }
            Some(Ok(WatchEvent::Bookmark(_))) => {}
            other => panic!("unexpected on A: {other:?}"),
        }
    }
    a.kill9();
    // The stream from A ends (possibly after buffered events, which count as seen).
    loop {
        match next_event(&mut w).await {
            Some(Ok(WatchEvent::Added(s))) => {
                last_rv = rv_of(&s.metadata);
                seen.push((s.metadata.name.unwrap(), last_rv));
            }
            Some(Ok(WatchEvent::Bookmark(_))) => {}
            Some(Ok(other)) => panic!("unexpected on A: {other:?}"),
            Some(Err(_)) | None => break,
        }
    }
    // Clients of B and C are not affected: the writer keeps going; resume on B from the last
    // resourceVersion seen on A, as a watcher does when it reconnects.
    let mut w = cb
        .watch(&WatchParams::default().timeout(120), &last_rv.to_string())
        .await
        .unwrap()
        .boxed();
    let names = writer.await.unwrap();
    while seen.len() < names.len() {
        match next_event(&mut w).await {
            Some(Ok(WatchEvent::Added(s))) => {
                seen.push((s.metadata.name.clone().unwrap(), rv_of(&s.metadata)))
            }
            Some(Ok(WatchEvent::Bookmark(_))) => {}
            other => panic!("unexpected on B: {other:?}"),
        }
    }
    let seen_names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        seen_names,
        names.iter().map(String::as_str).collect::<Vec<_>>(),
        "every create seen once, in order"
    );
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1));
    // The kube-rs watcher (reflector) on B has them all too.
    for _ in 0..200 {
        if names.iter().all(|n| {
            reader
                .state()
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(n))
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in &names {
        assert!(
            reader
                .state()
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(n)),
            "reflector lacks {n}"
        );
    }
    rf_task.abort();
    assert_unique_allocations(&cc, 1001 + 1 + 60 + 80, 1000 + 60).await;
}
