//! API server benchmark (issue 2): N Service creates, a list of N, and watch-event latency with
//! W watchers through the real HTTPS API with kube-rs, each next to the same work done directly
//! on the store in the same run; `--store etcd` adds the API server on a local etcd.
//! Details: bench/README.md.
//!
//! `cargo run --release -p svcnet-bench --bin apiserver-bench -- [--services 10000] [--watchers 100]`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use svcnet_bench::cluster::ApiServer;
use svcnet_bench::report::{self, percentile};
use svcnet_store::etcd::local::LocalEtcd;
use svcnet_store::etcd::{EtcdConfig, EtcdStore};
use svcnet_store::sqlite::SqliteStore;
use svcnet_store::{Compare, Op, RangeRequest, Store, WatchResponse};

#[derive(Parser)]
struct Args {
    /// Services to create and list.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Concurrent creators (1 = one after another).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Watchers for the latency measurement.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Writes observed by the watchers.
    #[arg(long, default_value_t = 200)]
    watch_writes: usize,
    /// `sqlite` (the API server vs the bare SQLite store), or `etcd` (the API server on etcd
    /// next to the API server on SQLite, and both bare stores).
    #[arg(long, default_value = "sqlite")]
    store: String,
}

fn svc_json(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    })
}

fn ms(d: Duration) -> String {
    report::ms(d, 3)
}

/// The reference: the same creates, list and watch directly on a store.
async fn store_reference(
    args: &Args,
    store: Arc<dyn Store>,
) -> anyhow::Result<(Duration, Duration, Vec<Duration>)> {
    let start = Instant::now();
    let per = args.services.div_ceil(args.concurrency);
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w * per)..((w + 1) * per) {
                let name = format!("svc-{i}");
                let key = format!("/registry/services/specs/default/{name}");
                let value = Bytes::from(serde_json::to_vec(&svc_json(&name)).unwrap());
                let claim = format!(
                    "/registry/svcnet/clusterips/10.{}.{}.{}",
                    100 + i / 65536,
                    (i / 256) % 256,
                    i % 256
                );
                store
                    .txn(
                        vec![Compare::Absent(key.clone()), Compare::Absent(claim.clone())],
                        vec![
                            Op::Put { key, value },
                            Op::Put {
                                key: claim,
                                value: Bytes::from_static(b"{}"),
                            },
                        ],
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let creates = start.elapsed();
    let start = Instant::now();
    let r = store
        .range(RangeRequest {
            prefix: "/registry/services/".into(),
            ..Default::default()
        })
        .await?;
    let list = start.elapsed();
    assert!(r.kvs.len() >= args.services);

    // Watch latency on the store's own watch.
    let rev = store.current_revision().await?;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let lat: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let mut w = store.watch("/registry/services/", rev + 1).await?;
        let sent = sent.clone();
        let lat = lat.clone();
        let expect = args.watch_writes;
        watchers.push(tokio::spawn(async move {
            let mut n = 0;
            while let Some(Ok(resp)) = w.next().await {
                if let WatchResponse::Events { events, .. } = resp {
                    for e in events {
                        let t0 = sent.lock().unwrap().get(&e.kv.key).copied();
                        if let Some(t0) = t0 {
                            lat.lock().unwrap().push(t0.elapsed());
                            n += 1;
                        }
                    }
                }
                if n >= expect {
                    break;
                }
            }
        }));
    }
    for i in 0..args.watch_writes {
        let key = format!("/registry/services/specs/default/watched-{i}");
        sent.lock().unwrap().insert(key.clone(), Instant::now());
        store
            .txn(
                vec![],
                vec![Op::Put {
                    key,
                    value: Bytes::from(serde_json::to_vec(&svc_json("w"))?),
                }],
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for w in watchers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let mut l = lat.lock().unwrap().clone();
    l.sort();
    Ok((creates, list, l))
}

/// What one API server run measured.
struct ApiRun {
    creates: Duration,
    list_time: Duration,
    list_len: usize,
    paged_time: Duration,
    pages: usize,
    lat: Vec<Duration>,
}

/// Creates, lists and watch latency through a fresh API server on `store` (None = SQLite).
async fn api_run(
    args: &Args,
    store: Option<svcnet_apiserver::config::StoreUrl>,
) -> anyhow::Result<ApiRun> {
    let server = ApiServer::start(store).await?;
    let client = server.client.clone();
    let api: Api<Service> = Api::namespaced(client.clone(), "default");

    // 1. Creates.
    let start = Instant::now();
    let per = args.services.div_ceil(args.concurrency);
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let api = api.clone();
        let n = args.services;
        tasks.push(tokio::spawn(async move {
            for i in (w * per)..((w + 1) * per).min(n) {
                let svc: Service = serde_json::from_value(svc_json(&format!("svc-{i}"))).unwrap();
                api.create(&PostParams::default(), &svc).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let creates = start.elapsed();

    // 2. List of all (one request, JSON), and the kubectl way (Table pages of 500) by HTTP.
    let start = Instant::now();
    let list = api.list(&ListParams::default()).await?;
    let list_time = start.elapsed();
    assert!(list.items.len() > args.services);
    let start = Instant::now();
    let mut pages = 0;
    let mut cont: Option<String> = None;
    loop {
        let lp = ListParams {
            limit: Some(500),
            continue_token: cont.clone(),
            ..Default::default()
        };
        let page = api.list(&lp).await?;
        pages += 1;
        cont = page.metadata.continue_.filter(|c| !c.is_empty());
        if cont.is_none() {
            break;
        }
    }
    let paged_time = start.elapsed();

    // 3. Watch latency: W watchers, then writes spaced out; time from the create call to each event.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let lat: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let rv = api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap();
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let stream = api.watch(&WatchParams::default().timeout(290), &rv).await?;
        let sent = sent.clone();
        let lat = lat.clone();
        let expect = args.watch_writes;
        watchers.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut n = 0;
            while let Ok(Some(ev)) = stream.try_next().await {
                if let WatchEvent::Added(s) = ev {
                    let t0 = sent
                        .lock()
                        .unwrap()
                        .get(s.metadata.name.as_deref().unwrap_or(""))
                        .copied();
                    if let Some(t0) = t0 {
                        lat.lock().unwrap().push(t0.elapsed());
                        n += 1;
                        if n >= expect {
                            break;
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..args.watch_writes {
        let name = format!("watched-{i}");
        let svc: Service = serde_json::from_value(svc_json(&name))?;
        sent.lock().unwrap().insert(name, Instant::now());
        api.create(&PostParams::default(), &svc).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for w in watchers {
        let _ = tokio::time::timeout(Duration::from_secs(60), w).await;
    }
    let mut lat = lat.lock().unwrap().clone();
    lat.sort();
    server.shutdown().await;

    Ok(ApiRun {
        creates,
        list_time,
        list_len: list.items.len(),
        paged_time,
        pages,
        lat,
    })
}

fn ratio(a: Duration, b: Duration) -> String {
    report::ratio(a.as_secs_f64(), b.as_secs_f64(), 1)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    report::header();
    match args.store.as_str() {
        "sqlite" => {}
        "etcd" => return etcd_vs_sqlite(&args).await,
        other => anyhow::bail!("--store {other}: expected sqlite or etcd"),
    }
    let ApiRun {
        creates,
        list_time,
        list_len,
        paged_time,
        pages,
        lat,
    } = api_run(&args, None).await?;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("ref.db"))?);
    let (ref_creates, ref_list, ref_lat) = store_reference(&args, store).await?;

    println!(
        "# apiserver-bench: {} services, {} concurrent creators, {} watchers x {} writes",
        args.services, args.concurrency, args.watchers, args.watch_writes
    );
    println!(
        "| measure | svcnet apiserver (HTTPS, kube-rs) | reference: bare SQLite store | ratio |"
    );
    println!("|---|---|---|---|");
    println!(
        "| {} creates | {:.2} s ({:.0}/s) | {:.2} s | {:.1}x |",
        args.services,
        creates.as_secs_f64(),
        args.services as f64 / creates.as_secs_f64(),
        ref_creates.as_secs_f64(),
        creates.as_secs_f64() / ref_creates.as_secs_f64()
    );
    println!(
        "| list of {} (one request) | {} | {} (range of raw values) | {:.1}x |",
        list_len,
        ms(list_time),
        ms(ref_list),
        list_time.as_secs_f64() / ref_list.as_secs_f64()
    );
    println!(
        "| list in pages of 500 ({pages} requests) | {} | | |",
        ms(paged_time)
    );
    println!(
        "| watch event latency p50 | {} ({} events) | {} | {:.1}x |",
        ms(percentile(&lat, 0.5)),
        lat.len(),
        ms(percentile(&ref_lat, 0.5)),
        percentile(&lat, 0.5).as_secs_f64() / percentile(&ref_lat, 0.5).as_secs_f64().max(1e-9)
    );
    println!(
        "| watch event latency p99 | {} | {} | {:.1}x |",
        ms(percentile(&lat, 0.99)),
        ms(percentile(&ref_lat, 0.99)),
        percentile(&lat, 0.99).as_secs_f64() / percentile(&ref_lat, 0.99).as_secs_f64().max(1e-9)
    );
    println!(
        "| watch event latency max | {} | {} | |",
        ms(lat.last().copied().unwrap_or_default()),
        ms(ref_lat.last().copied().unwrap_or_default())
    );
    Ok(())
}

/// `--store etcd`: the API server on etcd next to the API server on SQLite (same run), and the
/// two bare stores under them.
async fn etcd_vs_sqlite(args: &Args) -> anyhow::Result<()> {
    let etcd_dir = tempfile::tempdir()?;
    let sqlite = api_run(args, None).await?;
    let etcd = LocalEtcd::start(etcd_dir.path(), 1)?;
    let url =
        svcnet_apiserver::config::StoreUrl::parse(&etcd.store_url()).map_err(anyhow::Error::msg)?;
    let on_etcd = api_run(args, Some(url)).await?;

    let dir = tempfile::tempdir()?;
    let bare_sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("ref.db"))?);
    let (sq_creates, sq_list, sq_lat) = store_reference(args, bare_sqlite).await?;
    // A fresh etcd for the bare-store run, so it starts as empty as the SQLite one.
    drop(etcd);
    let etcd_dir2 = tempfile::tempdir()?;
    let etcd2 = LocalEtcd::start(etcd_dir2.path(), 1)?;
    let bare_etcd: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(&EtcdConfig {
            endpoints: etcd2.endpoints(),
            ..Default::default()
        })
        .await?,
    );
    let (et_creates, et_list, et_lat) = store_reference(args, bare_etcd).await?;
    drop(etcd2);

    println!(
        "# apiserver-bench --store etcd: {} services, {} concurrent creators, {} watchers x {} writes",
        args.services, args.concurrency, args.watchers, args.watch_writes
    );
    println!("| measure | API server on SQLite | API server on etcd | etcd / SQLite | bare SQLite store | bare etcd store |");
    println!("|---|---|---|---|---|---|");
    let rate = |d: Duration| args.services as f64 / d.as_secs_f64();
    println!(
        "| {} creates | {:.2} s ({:.0}/s) | {:.2} s ({:.0}/s) | {} | {:.2} s | {:.2} s |",
        args.services,
        sqlite.creates.as_secs_f64(),
        rate(sqlite.creates),
        on_etcd.creates.as_secs_f64(),
        rate(on_etcd.creates),
        ratio(on_etcd.creates, sqlite.creates),
        sq_creates.as_secs_f64(),
        et_creates.as_secs_f64()
    );
    println!(
        "| list of {} (one request) | {} | {} | {} | {} | {} |",
        on_etcd.list_len,
        ms(sqlite.list_time),
        ms(on_etcd.list_time),
        ratio(on_etcd.list_time, sqlite.list_time),
        ms(sq_list),
        ms(et_list)
    );
    println!(
        "| list in pages of 500 ({} requests) | {} | {} | {} | | |",
        on_etcd.pages,
        ms(sqlite.paged_time),
        ms(on_etcd.paged_time),
        ratio(on_etcd.paged_time, sqlite.paged_time)
    );
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        println!(
            "| watch event latency {label} | {} | {} | {} | {} | {} |",
            ms(percentile(&sqlite.lat, p)),
            ms(percentile(&on_etcd.lat, p)),
            ratio(percentile(&on_etcd.lat, p), percentile(&sqlite.lat, p)),
            ms(percentile(&sq_lat, p)),
            ms(percentile(&et_lat, p))
        );
    }
    println!(
        "| watch events received | {} | {} | | {} | {} |",
        sqlite.lat.len(),
        on_etcd.lat.len(),
        sq_lat.len(),
        et_lat.len()
    );
    Ok(())
}
