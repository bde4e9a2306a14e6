//! API server configuration (flags named as kube-apiserver's where one exists).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;

use svcnet_cluster::ClusterNetwork;

/// Where objects are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://PATH` (default: `<data-dir>/state.db`).
    Sqlite(PathBuf),
    /// `etcd://host:port[,host:port...]`, with TLS client files from `--etcd-cafile` etc.
    Etcd(svcnet_store::etcd::EtcdConfig),
}

impl StoreUrl {
    /// Parse `sqlite://PATH` (or a plain path) or `etcd://host:port[,host:port...]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("sqlite://") {
            return Ok(StoreUrl::Sqlite(PathBuf::from(p)));
        }
        if s.starts_with("etcd://") || s.starts_with("etcds://") {
            return svcnet_store::etcd::EtcdConfig::parse_url(s).map(StoreUrl::Etcd);
        }
        if s.contains("://") {
            return Err(format!(
                "unsupported store {s:?}: expected sqlite://PATH or etcd://HOST:PORT[,HOST:PORT]"
            ));
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(s)))
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    pub secure_port: u16,
    /// The address the `kubernetes` Service's endpoints point at.
    pub advertise_address: Option<Ipv4Addr>,
    pub service_cluster_ip_range: Ipv4Net,
    pub service_node_port_range: (i32, i32),
    /// `None` = `sqlite://<data-dir>/state.db`.
    pub store: Option<StoreUrl>,
    /// Events kept by the watch cache (older watches get 410).
    pub watch_cache_size: usize,
    /// Extra bearer tokens, in kube-apiserver's `--token-auth-file` CSV format.
    pub token_auth_file: Option<PathBuf>,
    /// Request bodies larger than this get 413 (Kubernetes: 3 MiB).
    pub max_request_body_bytes: usize,
    /// How often watches with allowWatchBookmarks get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// kube-apiserver's `--min-request-timeout` (1800 s): a watch without `timeoutSeconds` (or
    /// with 0) lasts a random time between this and twice this.
    pub min_request_timeout: Duration,
    /// What each open watch adds to the window in which a watcher that just wrote holds its
    /// next write, taking every event that arrives meanwhile in one write (ours; zero: every
    /// event is written as it comes). See `rest::watch`.
    pub watch_coalescing_per_watcher: Duration,
    /// History kept in the store for paging and watch resumption before compaction.
    pub compaction_interval: Duration,
    /// Connection timeouts and caps, in-flight request limits.
    pub serving: ServingConfig,
}

/// What each open watch adds to the write-coalescing window by default
/// (`--watch-coalescing-per-watcher-us`): 10 µs, so 10 ms at 1,000 watchers.
pub const WATCH_COALESCING_PER_WATCHER: Duration = Duration::from_micros(10);

/// How connections are served: Go's `http.Server` fields as kube-apiserver sets them
/// (`staging/src/k8s.io/apiserver/pkg/server/secure_serving.go`), its HTTP/2 settings, and its
/// in-flight request limits (`filters/maxinflight.go`). See [`crate::serving`].
#[derive(Clone, Debug)]
pub struct ServingConfig {
    /// `--max-requests-inflight`: read-only requests (get, list) served at once; more get 429.
    /// kube-apiserver: 400. 0 = no limit.
    pub max_requests_inflight: usize,
    /// `--max-mutating-requests-inflight`: writes served at once. kube-apiserver: 200. 0 = no
    /// limit.
    pub max_mutating_requests_inflight: usize,
    /// `--http2-max-streams-per-connection` (kube-apiserver: 100, what Go's HTTP/2 clients assume).
    pub http2_max_streams_per_connection: u32,
    /// Time for a client to finish the TLS handshake. Go bounds the handshake by the smallest
    /// of `ReadTimeout`/`WriteTimeout`/`ReadHeaderTimeout` (32 s in kube-apiserver); 10 s is Go's
    /// `http.Transport.TLSHandshakeTimeout`, what its clients allow a server.
    pub tls_handshake_timeout: Duration,
    /// Go's `http.Server.ReadHeaderTimeout`: time to send a request's headers, counted from the
    /// handshake (first request) or the request's first byte (later ones). kube-apiserver: 32 s.
    pub read_header_timeout: Duration,
    /// Go's `http.Server.IdleTimeout` (also HTTP/2's): a connection with no request in flight
    /// is closed after this. kube-apiserver: 90 s.
    pub idle_timeout: Duration,
    /// Go's `http.Server.MaxHeaderBytes`: the request line and headers (HTTP/1.1), or the
    /// header list (HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE`). kube-apiserver: 1 MiB.
    pub max_header_bytes: usize,
    /// Connections served at once; `None` = from the open-file limit (what is left after the
    /// store, logs and clients of its own). Go has no cap: kube-apiserver runs out of file
    /// descriptors instead.
    pub max_connections: Option<usize>,
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            http2_max_streams_per_connection: 100,
            tls_handshake_timeout: Duration::from_secs(10),
            read_header_timeout: Duration::from_secs(32),
            idle_timeout: Duration::from_secs(90),
            max_header_bytes: 1 << 20,
            max_connections: None,
        }
    }
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        Config {
            data_dir,
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            secure_port: 6443,
            advertise_address: None,
            service_cluster_ip_range: Default::default(),
            service_node_port_range: (0, 0),
            store: None,
            watch_cache_size: 100_000,
            token_auth_file: None,
            max_request_body_bytes: 3 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(60),
            min_request_timeout: Duration::from_secs(1800),
            watch_coalescing_per_watcher: WATCH_COALESCING_PER_WATCHER,
            compaction_interval: Duration::from_secs(300),
            serving: ServingConfig::default(),
        }
        .with_network(&ClusterNetwork::default())
    }

    /// The Service ClusterIP range and NodePort range of `net`.
    pub fn with_network(mut self, net: &ClusterNetwork) -> Self {
        self.service_cluster_ip_range = net.service_cidr;
        self.service_node_port_range = (
            i32::from(*net.node_port_range.start()),
            i32::from(*net.node_port_range.end()),
        );
        self
    }

    pub fn store_url(&self) -> StoreUrl {
        self.store
            .clone()
            .unwrap_or_else(|| StoreUrl::Sqlite(self.data_dir.join("state.db")))
    }
}

/// Parse `--service-node-port-range` (`30000-32767`, or `30000+2767` as kube-apiserver accepts).
pub fn parse_port_range(s: &str) -> Result<(i32, i32), String> {
    let bad = || format!("invalid port range {s:?}: expected LOW-HIGH");
    let (lo, hi) = if let Some((a, b)) = s.split_once('-') {
        let lo: i32 = a.trim().parse().map_err(|_| bad())?;
        (lo, b.trim().parse::<i32>().map_err(|_| bad())?)
    } else if let Some((a, b)) = s.split_once('+') {
        let lo: i32 = a.trim().parse().map_err(|_| bad())?;
        (lo, lo + b.trim().parse::<i32>().map_err(|_| bad())?)
    } else {
        return Err(bad());
    };
    if lo < 1 || hi > 65535 || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        assert_eq!(parse_port_range("30000-32767").unwrap(), (30000, 32767));
        assert_eq!(parse_port_range("30000+100").unwrap(), (30000, 30100));
        assert!(parse_port_range("5-1").is_err());
        assert_eq!(
            StoreUrl::parse("sqlite:///tmp/x.db").unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(StoreUrl::parse("redis://x").is_err());
        match StoreUrl::parse("etcd://127.0.0.1:2379,10.0.0.2:2379").unwrap() {
            StoreUrl::Etcd(c) => assert_eq!(c.endpoints, vec!["127.0.0.1:2379", "10.0.0.2:2379"]),
            other => panic!("{other:?}"),
        }
        assert!(StoreUrl::parse("etcd://nohost").is_err());
    }
}
