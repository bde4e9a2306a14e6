//! Starting, serving and stopping the API server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, StatusCode};
use svcnet_store::cache::{CacheConfig, WatchCache};
use svcnet_store::etcd::EtcdStore;
use svcnet_store::sqlite::SqliteStore;
use svcnet_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alloc::ServiceAllocator;
use crate::auth::{self, Tokens, User};
use crate::config::{Config, StoreUrl};
use crate::serving::inflight::{self, InflightLimits};
use crate::serving::Serving;
use crate::state::{AppState, Metrics};
use crate::{bootstrap, crd, namespaces, openapi, rest, tls, version};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("preparing data dir {0}: {1}")]
    DataDirFailed(PathBuf, std::io::Error),
    #[error("another API server is using {0}")]
    DataDirLocked(PathBuf),
    #[error("opening the store: {0}")]
    StoreOpenFailed(#[from] svcnet_store::StoreError),
    #[error("loading the watch cache: {0}")]
    CacheStartFailed(#[from] svcnet_store::cache::CacheError),
    #[error("setting up TLS: {0}")]
    TlsFailed(std::io::Error),
    #[error("reading --token-auth-file: {0}")]
    TokenFileFailed(std::io::Error),
    #[error("listening on {0}: {1}")]
    BindFailed(SocketAddr, std::io::Error),
    #[error("creating the default objects: {0}")]
    BootstrapFailed(crate::error::ApiError),
}

/// What a caller embedding the API server can add: how it reaches nodes and pods, and more
/// places to serve on (sockets made elsewhere, e.g. inside the cluster network's namespace).
pub struct ServerOptions {
    pub dialer: Arc<dyn crate::proxy::Dialer>,
    pub extra_listeners: Vec<std::net::TcpListener>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            dialer: Arc::new(crate::proxy::DirectDialer),
            extra_listeners: Vec::new(),
        }
    }
}

/// A running API server.
pub struct Server {
    pub local_addr: SocketAddr,
    pub state: Arc<AppState>,
    pub kubeconfig_path: PathBuf,
    /// `https://host:port`
    pub url: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _lock: std::fs::File,
}

/// The handler chain, outermost last: authentication, then the in-flight limit (which needs
/// the user), then the routes.
fn router(state: Arc<AppState>, limits: Arc<InflightLimits>) -> Router {
    Router::new()
        .route("/version", get(|| async { version::respond() }))
        .route("/version/", get(|| async { version::respond() }))
        // kube-apiserver's healthz handlers: the root path and one path per check
        // (`/healthz/ping`, ...). `/healthz/` itself is not served there either (404).
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/healthz/ping", get(|| async { "ok" }))
        .route("/livez/ping", get(|| async { "ok" }))
        .route("/readyz/ping", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route(
            "/openapi/v2",
            get(
                |State(s): State<Arc<AppState>>, h: http::HeaderMap| async move {
                    openapi::v2(&s.openapi.documents(&s.catalog), &h)
                },
            ),
        )
        .route(
            "/openapi/v3",
            get(
                |State(s): State<Arc<AppState>>, h: http::HeaderMap| async move {
                    openapi::index(&s.openapi.documents(&s.catalog), &h)
                },
            ),
        )
        .route(
            "/openapi/v3/{*path}",
            get(
                |State(s): State<Arc<AppState>>,
                 UrlPath(p): UrlPath<String>,
                 uri: http::Uri,
                 h: http::HeaderMap| async move {
                    let docs = s.openapi.documents(&s.catalog);
                    openapi::group_version(&docs, &p, uri.query(), &h)
                },
            ),
        )
        .fallback(resource)
        .layer(axum::middleware::from_fn_with_state(
            limits,
            inflight::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.tokens.clone(),
            auth::middleware,
        ))
        .with_state(state)
}

async fn resource(State(state): State<Arc<AppState>>, req: Request) -> Response {
    rest::handle(state, req).await
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let enc = prometheus::TextEncoder::new();
    let _ = enc.encode(&state.metrics.registry.gather(), &mut buf);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, enc.format_type().to_string())],
        buf,
    )
        .into_response()
}

impl Server {
    pub async fn start(config: Config) -> Result<Server, ServerError> {
        Self::start_with(config, ServerOptions::default()).await
    }

    pub async fn start_with(
        mut config: Config,
        options: ServerOptions,
    ) -> Result<Server, ServerError> {
        let dir = config.data_dir.clone();
        tls::secure_data_dir(&dir).map_err(|e| ServerError::DataDirFailed(dir.clone(), e))?;
        let lock_path = dir.join("apiserver.lock");
        let lock = std::fs::OpenOptions::new()
            .mode(0o600)
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| ServerError::DataDirFailed(dir.clone(), e))?;
        if lock.try_lock().is_err() {
            return Err(ServerError::DataDirLocked(dir));
        }

        let store: Arc<dyn Store> = match config.store_url() {
            StoreUrl::Sqlite(path) => Arc::new(SqliteStore::open(&path)?),
            StoreUrl::Etcd(etcd) => Arc::new(EtcdStore::connect(&etcd).await?),
        };
        let cache = WatchCache::start(
            store.clone(),
            "/registry/",
            CacheConfig {
                capacity: config.watch_cache_size,
                ..Default::default()
            },
        )
        .await?;

        let bind = SocketAddr::new(config.bind_address, config.secure_port);
        let listener =
            crate::serving::listen(bind).map_err(|e| ServerError::BindFailed(bind, e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| ServerError::BindFailed(bind, e))?;
        config.secure_port = local_addr.port();
        let host: IpAddr = if config.bind_address.is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            config.bind_address
        };
        let url = format!("https://{}", SocketAddr::new(host, local_addr.port()));

        let alloc = ServiceAllocator::new(
            config.service_cluster_ip_range,
            config.service_node_port_range,
        );
        let mut ips = vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(alloc.first_ip()),
            host,
        ];
        if let Some(a) = config.advertise_address {
            ips.push(IpAddr::V4(a));
        }
        ips.sort();
        ips.dedup();
        let names: Vec<String> = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let tls = tls::load_or_create(&dir, &names, &ips).map_err(ServerError::TlsFailed)?;

        let mut tokens = Tokens::new();
        let admin =
            auth::admin_token(&dir).map_err(|e| ServerError::DataDirFailed(dir.clone(), e))?;
        tokens.insert(
            admin.clone(),
            User {
                name: "admin".into(),
                uid: "admin".into(),
                groups: vec!["system:masters".into()],
            },
        );
        if let Some(f) = &config.token_auth_file {
            tokens.load_csv(f).map_err(ServerError::TokenFileFailed)?;
        }

        let kubelet_token = auth::token_file(&dir, "kubelet-client.token")
            .map_err(|e| ServerError::DataDirFailed(dir.clone(), e))?;
        let state = Arc::new(AppState {
            config,
            store,
            cache,
            alloc,
            tokens: Arc::new(tokens),
            metrics: Metrics::new(),
            dialer: options.dialer,
            kubelet_token: Some(kubelet_token),
            catalog: Default::default(),
            openapi: Default::default(),
        });
        bootstrap::run(&state)
            .await
            .map_err(ServerError::BootstrapFailed)?;
        crd::controller::load(&state);

        let (shutdown, shutdown_rx) = watch::channel(false);
        let limits = InflightLimits::new(
            &state.config.serving,
            &state.metrics.registry,
            state.catalog.clone(),
        );
        let serving = Serving::new(
            router(state.clone(), limits),
            tls.server_config.clone(),
            &state.config.serving,
            state.config.max_request_body_bytes,
        );
        let mut tasks = vec![
            tokio::spawn(crate::serving::serve(
                listener,
                serving.clone(),
                shutdown_rx.clone(),
            )),
            tokio::spawn(namespaces::run(state.clone())),
            tokio::spawn(crd::controller::run(state.clone())),
            tokio::spawn(compaction(state.clone())),
        ];
        for l in options.extra_listeners {
            let l = TcpListener::from_std(l).map_err(|e| ServerError::BindFailed(bind, e))?;
            tasks.push(tokio::spawn(crate::serving::serve(
                l,
                serving.clone(),
                shutdown_rx.clone(),
            )));
        }

        let kubeconfig_path = dir.join("kubeconfig");
        let kc = tls::kubeconfig(&url, &tls.ca_pem, &admin);
        tls::write_private(&kubeconfig_path, kc.as_bytes())
            .map_err(|e| ServerError::DataDirFailed(dir.clone(), e))?;
        tracing::info!(
            %url,
            kubeconfig = %kubeconfig_path.display(),
            max_connections = serving.max_connections(),
            "API server serving"
        );
        Ok(Server {
            local_addr,
            state,
            kubeconfig_path,
            url,
            shutdown,
            tasks,
            _lock: lock,
        })
    }

    /// Stop serving and background work. The library never waits for signals: whoever runs
    /// the server (the `svcnet` binary, a test) decides when to call this.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Compact store history older than one interval (as kube-apiserver compacts etcd every 5 min).
async fn compaction(state: Arc<AppState>) {
    let every = state.config.compaction_interval;
    let mut previous: Option<i64> = None;
    loop {
        tokio::time::sleep(every).await;
        if let Some(rev) = previous {
            if let Err(e) = state.store.compact(rev).await {
                tracing::warn!(error = %e, revision = rev, "compaction failed");
            }
        }
        previous = state.store.current_revision().await.ok();
    }
}
