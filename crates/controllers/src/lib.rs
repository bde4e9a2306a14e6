//! Controllers, as kube-controller-manager runs them, on kube-rs watchers so the same code works
//! against svcnet's API server and a real Kubernetes one.
//!
//! Start at [`run`], which starts every controller over one set of shared informers
//! ([`svcnet_informer`]: informers, the work queue); then one module per controller, each after
//! its `pkg/controller/...` counterpart:
//!
//! - Service networking: [`endpointslice`] (EndpointSlices from selectors), [`endpoints`] (the
//!   core/v1 Endpoints), [`endpointslicemirroring`] (selectorless Services' Endpoints into
//!   slices), [`loadbalancer`] (LoadBalancer addresses from pools; the speaker announces them);
//! - workloads: [`deployment`] (a folder: sync, rolling, recreate, progress), [`replicaset`]
//!   (also ReplicationControllers, through an adapter as upstream), [`disruption`]
//!   (PodDisruptionBudget status), [`job`] (Jobs run to completion, and their TTL after finishing),
//!   [`gc`] (garbage collection by ownerReferences), [`scheduler`] (binds pending pods to ready
//!   nodes);
//! - nodes: [`nodeipam`] (pod CIDRs), [`nodelifecycle`] (Unknown when a node goes silent);
//! - shared: [`heartbeat`] (the components' Leases in kube-system), [`util`] (client-go /
//!   podutil helpers), [`events`] (the Event recorder),
//!   [`expectations`] (pods asked for and not yet seen).
//!
//! Controllers reach the API only through kube-rs: this crate never imports the API server or
//! the store.

pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
/// Moved to svcnet-informer (the node agent records Events too).
pub use svcnet_informer::events;
pub mod expectations;
pub mod gc;
pub mod heartbeat;
pub mod job;
pub mod loadbalancer;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod scheduler;
pub mod util;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::watcher;
use kube::{Api, Client};

use svcnet_informer::Informer;

/// Controller-manager settings (flags named as kube-controller-manager's).
#[derive(Clone, Debug)]
pub struct Config {
    /// `--max-endpoints-per-slice`
    pub max_endpoints_per_slice: usize,
    /// `--concurrent-service-endpoint-syncs` (EndpointSlice and Endpoints workers)
    pub concurrent_service_endpoint_syncs: usize,
    /// `--concurrent-deployment-syncs`
    pub concurrent_deployment_syncs: usize,
    /// `--concurrent-replicaset-syncs`
    pub concurrent_replicaset_syncs: usize,
    /// `--concurrent-rc-syncs` (ReplicationController workers)
    pub concurrent_rc_syncs: usize,
    /// `--concurrent-gc-syncs`
    pub concurrent_gc_syncs: usize,
    /// Controllers to run (`--controllers`); empty = all.
    pub controllers: Vec<String>,
    /// `--cluster-cidr`: the pods' addresses, split among nodes by the node IPAM controller.
    pub cluster_cidr: ipnet::Ipv4Net,
    /// `--node-cidr-mask-size`
    pub node_cidr_mask_size: u8,
    /// `--node-monitor-grace-period`: silence after which a node is marked Unknown.
    pub node_monitor_grace_period: std::time::Duration,
    /// `--loadbalancer-ip-range` (several; `a.b.c.d-e.f.g.h`, CIDR or address): the pools
    /// LoadBalancer Services get addresses from ([`loadbalancer`]); none = the controller idles.
    pub loadbalancer_ip_ranges: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_endpoints_per_slice: 100,
            concurrent_service_endpoint_syncs: 5,
            concurrent_deployment_syncs: 5,
            concurrent_replicaset_syncs: 5,
            concurrent_rc_syncs: 5,
            concurrent_gc_syncs: 20,
            controllers: Vec::new(),
            cluster_cidr: Default::default(),
            node_cidr_mask_size: 0,
            node_monitor_grace_period: std::time::Duration::from_secs(40),
            loadbalancer_ip_ranges: Vec::new(),
        }
        .with_network(&svcnet_cluster::ClusterNetwork::default())
    }
}

impl Config {
    /// The pods' range, its per-node blocks and the LoadBalancer pools of `net`.
    pub fn with_network(mut self, net: &svcnet_cluster::ClusterNetwork) -> Self {
        self.cluster_cidr = net.cluster_cidr;
        self.node_cidr_mask_size = net.node_cidr_mask_size;
        self.loadbalancer_ip_ranges = net.loadbalancer_ip_ranges.clone();
        self
    }

    pub fn enabled(&self, name: &str) -> bool {
        self.controllers.is_empty() || self.controllers.iter().any(|c| c == name || c == "*")
    }
}

/// A Service's index keys: its selector's `key=value` pairs (see [`endpointslice`]'s
/// pod → Services lookup).
fn selector_keys(svc: &Service) -> Vec<String> {
    util::service_selector(svc)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// One informer per kind, shared by every controller.
pub struct Informers {
    pub pods: Arc<Informer<Pod>>,
    pub services: Arc<Informer<Service>>,
    pub endpoint_slices: Arc<Informer<EndpointSlice>>,
    pub endpoints: Arc<Informer<Endpoints>>,
    pub nodes: Arc<Informer<Node>>,
    pub deployments: Arc<Informer<Deployment>>,
    pub replica_sets: Arc<Informer<ReplicaSet>>,
    pub replication_controllers: Arc<Informer<ReplicationController>>,
    pub pdbs: Arc<Informer<PodDisruptionBudget>>,
    pub jobs: Arc<Informer<Job>>,
    pub daemon_sets: Arc<Informer<DaemonSet>>,
}

impl Informers {
    pub fn spawn(client: &Client) -> Self {
        let cfg = watcher::Config::default;
        Informers {
            pods: Informer::spawn(Api::all(client.clone()), cfg()),
            services: Informer::spawn_indexed(Api::all(client.clone()), cfg(), Some(selector_keys)),
            endpoint_slices: Informer::spawn(Api::all(client.clone()), cfg()),
            endpoints: Informer::spawn(Api::all(client.clone()), cfg()),
            nodes: Informer::spawn(Api::all(client.clone()), cfg()),
            deployments: Informer::spawn(Api::all(client.clone()), cfg()),
            replica_sets: Informer::spawn(Api::all(client.clone()), cfg()),
            replication_controllers: Informer::spawn(Api::all(client.clone()), cfg()),
            pdbs: Informer::spawn(Api::all(client.clone()), cfg()),
            jobs: Informer::spawn(Api::all(client.clone()), cfg()),
            daemon_sets: Informer::spawn(Api::all(client.clone()), cfg()),
        }
    }

    /// Wait until every informer has its first list.
    pub async fn wait_ready(&self) {
        self.pods.wait_ready().await;
        self.services.wait_ready().await;
        self.endpoint_slices.wait_ready().await;
        self.endpoints.wait_ready().await;
        self.nodes.wait_ready().await;
        self.deployments.wait_ready().await;
        self.replica_sets.wait_ready().await;
        self.replication_controllers.wait_ready().await;
        self.pdbs.wait_ready().await;
        self.jobs.wait_ready().await;
        self.daemon_sets.wait_ready().await;
    }
}

/// What every controller gets.
pub struct Context {
    pub client: Client,
    pub informers: Informers,
    pub config: Config,
    pub recorder: events::Recorder,
}

/// Run every enabled controller until the process ends.
pub async fn run(client: Client, config: Config) {
    let informers = Informers::spawn(&client);
    let recorder = events::Recorder::new(client.clone(), "svcnet-controller-manager");
    let ctx = Arc::new(Context {
        client,
        informers,
        config,
        recorder,
    });
    ctx.informers.wait_ready().await;
    tracing::info!("informers synced; starting controllers");
    let mut tasks = Vec::new();
    let c = &ctx.config;
    let mut leases = vec!["kube-controller-manager"];
    if c.enabled("scheduler") {
        leases.push("kube-scheduler");
    }
    let heartbeat = tokio::spawn(heartbeat::run(ctx.clone(), leases));
    if c.enabled("endpointslice") {
        tasks.push(tokio::spawn(endpointslice::run(ctx.clone())));
    }
    if c.enabled("endpointslicemirroring") {
        tasks.push(tokio::spawn(endpointslicemirroring::run(ctx.clone())));
    }
    if c.enabled("endpoints") {
        tasks.push(tokio::spawn(endpoints::run(ctx.clone())));
    }
    if c.enabled("replicaset") {
        tasks.push(tokio::spawn(replicaset::run::<ReplicaSet>(ctx.clone())));
    }
    if c.enabled("replicationcontroller") {
        tasks.push(tokio::spawn(replicaset::run::<ReplicationController>(
            ctx.clone(),
        )));
    }
    if c.enabled("deployment") {
        tasks.push(tokio::spawn(deployment::run(ctx.clone())));
    }
    if c.enabled("job") {
        tasks.push(tokio::spawn(job::run(ctx.clone())));
    }
    if c.enabled("disruption") {
        tasks.push(tokio::spawn(disruption::run(ctx.clone())));
    }
    if c.enabled("garbagecollector") {
        tasks.push(tokio::spawn(gc::run(ctx.clone())));
    }
    if c.enabled("nodeipam") {
        tasks.push(tokio::spawn(nodeipam::run(ctx.clone())));
    }
    if c.enabled("nodelifecycle") {
        tasks.push(tokio::spawn(nodelifecycle::run(ctx.clone())));
    }
    if c.enabled("loadbalancer") && !c.loadbalancer_ip_ranges.is_empty() {
        tasks.push(tokio::spawn(loadbalancer::run(ctx.clone())));
    }
    if c.enabled("scheduler") {
        tasks.push(tokio::spawn(scheduler::run(ctx.clone())));
    }
    if tasks.is_empty() {
        // `--controllers=none`: informers only (what caching the cluster costs; see bench/).
        futures::future::pending::<()>().await;
    }
    for t in tasks {
        let _ = t.await;
    }
    heartbeat.abort();
}
