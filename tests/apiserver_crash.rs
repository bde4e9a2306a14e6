//! Durability: kill -9 the API server during a burst of creates; after a restart every
//! acknowledged object is there and no ClusterIP or NodePort is held twice.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use support::ApiServer;

/// Creates each of the 8 writers makes at most: 1,200 Services, 600 of them NodePort, so the
/// 2,768-port range keeps room for the 200 NodePort Services made after the restart however
/// fast the machine is (a burst bounded by time filled the range on a quiet machine).
const CREATES_PER_WRITER: usize = 150;
/// The server is killed once this many creates are acknowledged: mid-burst on any machine.
const KILL_AFTER_ACKED: usize = 100;

fn svc(name: &str, node_port: bool) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"type": if node_port { "NodePort" } else { "ClusterIP" },
                 "selector": {"app": name}, "ports": [{"port": 80}]}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_creates_loses_nothing_acknowledged() {
    let mut s = ApiServer::start();
    let client = s.client().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let api = api.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..CREATES_PER_WRITER {
                let name = format!("w{w}-{i}");
                match api
                    .create(&PostParams::default(), &svc(&name, i % 2 == 0))
                    .await
                {
                    Ok(_) => acked.lock().unwrap().push(name),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    // Let the burst run, then crash the server mid-flight: after a count of acknowledged
    // creates, not a time, so the burst is the same on a quiet machine and on a loaded one.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = acked.lock().unwrap().len();
        if n >= KILL_AFTER_ACKED
            || Instant::now() > deadline
            || tasks.iter().all(|t| t.is_finished())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "only {} creates acknowledged before the kill",
        acked.len()
    );

    s.spawn();
    let client = s.client().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    let present: HashSet<String> = list
        .items
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    for name in &acked {
        assert!(
            present.contains(name),
            "acknowledged {name} lost after kill -9"
        );
    }
    support::distinct_allocations(&list.items);

    // The allocators were rebuilt from what is stored: new Services never reuse a held value.
    for i in 0..200 {
        api.create(&PostParams::default(), &svc(&format!("after-{i}"), true))
            .await
            .unwrap();
    }
    let list = api.list(&ListParams::default()).await.unwrap();
    support::distinct_allocations(&list.items);
}
