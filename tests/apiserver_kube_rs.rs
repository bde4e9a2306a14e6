//! kube-rs against the API server: `watcher` and `reflector` (list + watch, then changes), a
//! 410 Gone making the watcher re-list, and the raw watch semantics behind them.

mod support;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use support::ApiServer;

fn svc(name: &str) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}
    }))
    .unwrap()
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn reflector_lists_then_follows_changes() {
    let s = ApiServer::start();
    let client = s.client().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &svc("before"))
        .await
        .unwrap();

    let (reader, writer) = reflector::store();
    let stream =
        reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.try_next().await.ok().flatten().is_some() {}
    });
    reader.wait_until_ready().await.unwrap();
    let names = |r: &reflector::Store<Service>| {
        let mut v: Vec<String> = r
            .state()
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&reader), ["before", "kubernetes"]);

    api.create(&PostParams::default(), &svc("after"))
        .await
        .unwrap();
    wait_until("the created service in the reflector", || {
        names(&reader).contains(&"after".to_string())
    })
    .await;
    let mut changed = api.get("after").await.unwrap();
    changed.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    api.replace("after", &PostParams::default(), &changed)
        .await
        .unwrap();
    wait_until("the label in the reflector", || {
        reader
            .state()
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some("after") && s.metadata.labels.is_some())
    })
    .await;
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("the deletion in the reflector", || {
        !names(&reader).contains(&"before".to_string())
    })
    .await;
    assert_eq!(names(&reader), ["after", "kubernetes"]);
    task.abort();
}

#[tokio::test]
async fn gone_resource_version_makes_the_watcher_relist() {
    // A watch cache of 5 events: a watcher that re-watches after more writes gets 410.
    let s = ApiServer::start_with(&["--watch-cache-size", "5"]);
    let client = s.client().await;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let other: Api<Service> = Api::namespaced(client, "kube-public");
    // Each watch lasts 1 s, so the watcher comes back with its last resourceVersion.
    let events = watcher(api.clone(), watcher::Config::default().timeout(1));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        futures::pin_mut!(events);
        while let Some(e) = events.next().await {
            let label = match &e {
                Ok(watcher::Event::Init) => "Init",
                Ok(watcher::Event::InitDone) => "InitDone",
                Ok(watcher::Event::InitApply(_)) => "InitApply",
                Ok(watcher::Event::Apply(_)) => "Apply",
                Ok(watcher::Event::Delete(_)) => "Delete",
                Err(_) => "Error",
            };
            if tx.send(label).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while !seen.contains(&"InitDone") {
        seen.push(
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    // Twenty writes elsewhere push the watcher's resourceVersion out of the window.
    for i in 0..20 {
        other
            .create(&PostParams::default(), &svc(&format!("churn-{i}")))
            .await
            .unwrap();
    }
    let mut relisted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some("Init")) => {
                relisted = true;
                break;
            }
            Ok(Some(l)) => seen.push(l),
            _ => {}
        }
    }
    assert!(
        relisted,
        "the watcher did not re-list after 410; saw {seen:?}"
    );
    // And it keeps working after the re-list.
    api.create(&PostParams::default(), &svc("post-relist"))
        .await
        .unwrap();
    let mut applied = false;
    for _ in 0..40 {
        if let Ok(Some("Apply" | "InitApply")) =
            tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
        {
            applied = true;
            break;
        }
    }
    assert!(applied);
    task.abort();
}

/// ClusterIP Services `w<i>` (TCP 80) for each `i` of `range`, made by kubectl.
fn create_services(s: &ApiServer, range: std::ops::Range<usize>) {
    for i in range {
        s.kubectl_ok(&[
            "create",
            "service",
            "clusterip",
            &format!("w{i}"),
            "--tcp=80",
        ]);
    }
}

#[test]
fn raw_watch_semantics() {
    let s = ApiServer::start_with(&["--watch-cache-size", "5"]);
    create_services(&s, 0..3);
    // sendInitialEvents: the current state, then a BOOKMARK marking its end.
    let (code, body) = s.curl_auth(
        &["--max-time", "20"],
        "/api/v1/namespaces/default/services?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
    );
    assert_eq!(code, 200);
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["ADDED", "ADDED", "ADDED", "ADDED", "BOOKMARK"],
        "{body}"
    );
    assert_eq!(
        lines[4]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    // A resourceVersion older than the window: an in-stream ERROR with 410 Expired.
    create_services(&s, 3..12);
    let (code, body) = s.curl_auth(
        &["--max-time", "20"],
        "/api/v1/namespaces/default/services?watch=1&resourceVersion=2&timeoutSeconds=5",
    );
    assert_eq!(code, 200);
    let ev: serde_json::Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(ev["type"], "ERROR", "{body}");
    assert_eq!(
        (
            ev["object"]["code"].as_i64(),
            ev["object"]["reason"].as_str()
        ),
        (Some(410), Some("Expired"))
    );

    // resourceVersion=N: only what happened after N; label selectors filter.
    let (_, list) = s.curl_auth(&[], "/api/v1/namespaces/default/services");
    let rv = serde_json::from_str::<serde_json::Value>(&list).unwrap()["metadata"]
        ["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    s.kubectl_ok(&["label", "svc", "w3", "pick=me"]);
    s.kubectl_ok(&["label", "svc", "w4", "other=x"]);
    let path = format!("/api/v1/namespaces/default/services?watch=1&resourceVersion={rv}&labelSelector=pick%3Dme&timeoutSeconds=1");
    let (_, body) = s.curl_auth(&["--max-time", "20"], &path);
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{body}");
    // w3 entered the selector: ADDED, as Kubernetes' cacher reports it.
    assert_eq!(
        (
            lines[0]["type"].as_str(),
            lines[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("w3"))
    );

    // A paged list is consistent and complete.
    let (_, page1) = s.curl_auth(&[], "/api/v1/namespaces/default/services?limit=5");
    let p1: serde_json::Value = serde_json::from_str(&page1).unwrap();
    assert_eq!(p1["items"].as_array().unwrap().len(), 5);
    let cont = p1["metadata"]["continue"].as_str().unwrap();
    let (_, page2) = s.curl_auth(
        &[],
        &format!("/api/v1/namespaces/default/services?limit=100&continue={cont}"),
    );
    let p2: serde_json::Value = serde_json::from_str(&page2).unwrap();
    assert_eq!(
        p2["items"].as_array().unwrap().len(),
        8,
        "13 services in default"
    );
    assert!(p2["metadata"].get("continue").is_none());
    assert_eq!(
        p1["metadata"]["resourceVersion"],
        p2["metadata"]["resourceVersion"]
    );
}

/// Patches without a resourceVersion are not conditional: racing ones all apply (each retried
/// on the server against the latest version), as in Kubernetes; one naming a stale
/// resourceVersion gets 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_all_apply_and_stale_rv_conflicts() {
    use kube::api::{Patch, PatchParams};
    let s = ApiServer::start();
    let client = s.client().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &svc("racy"))
        .await
        .unwrap();
    let patches = (0..40).map(|i| {
        let api = api.clone();
        async move {
            let p = serde_json::json!({"metadata": {"annotations": {format!("k{i}"): "v"}}});
            api.patch("racy", &PatchParams::default(), &Patch::Merge(p))
                .await
        }
    });
    let results = futures::future::join_all(patches).await;
    assert!(
        results.iter().all(|r| r.is_ok()),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let got = api.get("racy").await.unwrap();
    assert_eq!(got.metadata.annotations.unwrap().len(), 40);
    let stale = serde_json::json!({"metadata": {"resourceVersion": created.metadata.resource_version, "labels": {"x": "y"}}});
    match api
        .patch("racy", &PatchParams::default(), &Patch::Merge(stale))
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 409),
        other => panic!("expected 409, got {other:?}"),
    }
}
