//! The shared state of a running API server.

use std::sync::Arc;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use svcnet_store::cache::WatchCache;
use svcnet_store::Store;

use crate::alloc::ServiceAllocator;
use crate::auth::Tokens;
use crate::config::Config;

pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub cache: Arc<WatchCache>,
    pub alloc: ServiceAllocator,
    /// The bearer tokens the authentication middleware accepts.
    pub tokens: Arc<Tokens>,
    pub metrics: Metrics,
    /// How connections to nodes and pods are made (proxy, logs, exec).
    pub dialer: Arc<dyn crate::proxy::Dialer>,
    /// The credential the API server presents to node agents.
    pub kubelet_token: Option<String>,
    /// What is served: the built-in resources and the kinds of established CRDs.
    pub catalog: Arc<crate::catalog::Catalog>,
    /// The OpenAPI documents of what is served.
    pub openapi: crate::openapi::Cache,
}

/// Prometheus metrics, named as kube-apiserver's.
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub watchers: IntGauge,
    /// Watches closed for not keeping up, by group and resource.
    pub terminated_watchers: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "apiserver_request_total",
                "Counter of apiserver requests by verb, resource and HTTP code.",
            ),
            &["verb", "resource", "code"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "apiserver_request_duration_seconds",
                "Response latency by verb and resource.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["verb", "resource"],
        )
        .expect("valid metric");
        let watchers = IntGauge::new(
            "apiserver_registered_watchers",
            "Number of currently open watches.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(request_duration.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(watchers.clone()))
            .expect("unique metric");
        // The cacher's `TerminatedWatchersCounter`.
        let terminated_watchers = IntCounterVec::new(
            Opts::new(
                "apiserver_terminated_watchers_total",
                "Counter of watchers closed due to unresponsiveness broken by resource type.",
            ),
            &["group", "resource"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(terminated_watchers.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            requests,
            request_duration,
            watchers,
            terminated_watchers,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Closes the connection a request came on: a request extension set for each connection. A
/// watch whose client stopped reading uses it: hyper no longer polls a body it cannot write, so
/// only closing the connection lets go of hyper's and TLS's buffers.
#[derive(Clone, Debug, Default)]
pub struct ConnectionAbort(tokio_util::sync::CancellationToken);

impl ConnectionAbort {
    pub fn abort(&self) {
        self.0.cancel();
    }

    /// Resolves once `abort` was called.
    pub async fn aborted(&self) {
        self.0.cancelled().await
    }
}
