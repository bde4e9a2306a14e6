//! `/metrics` (Prometheus text, with kube-proxy's metric names) and `/healthz` (200 while syncs
//! succeed and are recent, 503 otherwise, as kube-proxy's health server).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Gauge, Histogram, HistogramOpts, IntCounter, Registry, TextEncoder};

/// The proxy's metrics.
pub struct Metrics {
    pub registry: Registry,
    pub sync_duration: Histogram,
    pub full_sync_duration: Histogram,
    pub partial_sync_duration: Histogram,
    pub last_sync: Gauge,
    pub sync_failures: IntCounter,
    /// From a watch event to its rules being in the kernel.
    pub network_programming: Histogram,
}

fn histogram(r: &Registry, name: &str, help: &str) -> Histogram {
    let buckets = prometheus::exponential_buckets(0.001, 2.0, 15).expect("valid buckets");
    let h = Histogram::with_opts(
        HistogramOpts::new(name, help)
            .namespace("kubeproxy")
            .buckets(buckets),
    )
    .expect("valid histogram");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new();
        let last_sync = Gauge::with_opts(
            prometheus::Opts::new(
                "sync_proxy_rules_last_timestamp_seconds",
                "The last time proxy rules were successfully synced.",
            )
            .namespace("kubeproxy"),
        )
        .expect("valid gauge");
        r.register(Box::new(last_sync.clone()))
            .expect("unique metric");
        let sync_failures = IntCounter::with_opts(
            prometheus::Opts::new(
                "sync_proxy_rules_iptables_restore_failures_total",
                "Failed syncs of proxy rules.",
            )
            .namespace("kubeproxy"),
        )
        .expect("valid counter");
        r.register(Box::new(sync_failures.clone()))
            .expect("unique metric");
        Metrics {
            sync_duration: histogram(
                &r,
                "sync_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds",
            ),
            full_sync_duration: histogram(
                &r,
                "sync_full_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for full resyncs",
            ),
            partial_sync_duration: histogram(
                &r,
                "sync_partial_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for partial resyncs",
            ),
            network_programming: histogram(
                &r,
                "network_programming_duration_seconds",
                "In-cluster network programming latency in seconds",
            ),
            last_sync,
            sync_failures,
            registry: r,
        }
    }
}

impl Metrics {
    pub fn record(&self, full: bool, took: Duration) {
        self.sync_duration.observe(took.as_secs_f64());
        if full {
            self.full_sync_duration.observe(took.as_secs_f64());
        } else {
            self.partial_sync_duration.observe(took.as_secs_f64());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_sync.set(now.as_secs_f64());
    }

    fn text(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Healthy when the last successful sync is younger than `max_age`.
    fn healthy(&self, max_age: Duration) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let last = self.last_sync.get();
        last > 0.0 && now - last <= max_age.as_secs_f64()
    }
}

/// Serve `/metrics` and `/healthz` on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    max_age: Duration,
) -> std::io::Result<()> {
    let m1 = metrics.clone();
    let app = Router::new()
        .route("/metrics", get(move || async move { m1.text() }))
        .route(
            "/healthz",
            get(move || async move {
                if metrics.healthy(max_age) {
                    (StatusCode::OK, "ok")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "proxy rules are not synced",
                    )
                }
            }),
        );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curl(addr: std::net::SocketAddr, path: &str) -> String {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                &format!("http://{addr}{path}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_and_health_over_http() {
        let m = Arc::new(Metrics::default());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve(l, m.clone(), Duration::from_secs(60)));
        let h = tokio::task::spawn_blocking(move || curl(addr, "/healthz"))
            .await
            .unwrap();
        assert!(h.ends_with("503"), "no sync yet: {h}");
        m.record(true, Duration::from_millis(12));
        let h = tokio::task::spawn_blocking(move || curl(addr, "/healthz"))
            .await
            .unwrap();
        assert!(h.ends_with("200"), "{h}");
        let text = tokio::task::spawn_blocking(move || curl(addr, "/metrics"))
            .await
            .unwrap();
        assert!(
            text.contains("kubeproxy_sync_proxy_rules_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("kubeproxy_sync_full_proxy_rules_duration_seconds_count 1"));
    }
}
