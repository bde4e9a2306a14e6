//! The node agent's kubelet API (the kubelet's `pkg/kubelet/server/server.go`): what the API
//! server reaches for `pods/{name}/log`, `exec`, `attach` and `portforward`, over plain HTTP
//! on the node's InternalIP. Every call but `/healthz` must carry the bearer token the API server presents
//! (`<apiserver data dir>/kubelet-client.token`): see [`Authenticator`]; there is no anonymous
//! mode.
//!
//! - `GET /healthz`: `ok` (no token needed).
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow&tailLines&timestamps&sinceSeconds&
//!   sinceTime&limitBytes&previous&stream`: the container's CRI log file (as [`crate::shim`]
//!   writes it, [`crate::cri_log`]) as plain text — [`logs`].
//! - `/exec/{ns}/{pod}/{container}?command=..&stdin&stdout&stderr&tty`: a WebSocket speaking the
//!   Kubernetes channel protocols (`v5.channel.k8s.io` .. `channel.k8s.io`, [`stream`]); the
//!   command runs in the container's namespaces, with pipes or (`tty`) a pseudo-terminal —
//!   [`exec`] (the kubelet's `pkg/kubelet/cri/streaming/remotecommand`).
//! - `/attach/{ns}/{pod}/{container}?stdin&stdout&stderr&tty`: the running container's own
//!   stdio over the same protocols, through its shim — [`attach`].
//! - `/portForward/{ns}/{pod}`: SPDY/3.1 port forwarding into the pod's network namespace —
//!   [`portforward`]; or over WebSocket, `?port=` channel pairs — `portforward_ws`.
//!
//! `pods/{name}/proxy` does not come here: the API server dials pod IPs itself.
//!
//! This file holds the router, the [`Authenticator`], error answers as `Status`, and
//! [`PodRuntime`]: which containers exist, and where their logs and namespaces are, the agent
//! says through it.

pub mod attach;
pub mod exec;
mod httpstream;
pub mod logs;
pub mod portforward;
mod portforward_ws;
mod spdy_streams;
pub mod stream;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http::{header, HeaderMap, HeaderValue, StatusCode};

pub use exec::ExecOptions;
pub use logs::{read_log, LogOptions};
pub use stream::{StreamOptions, StreamProtocol};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerHandle {
    /// The current CRI log file.
    pub log_path: PathBuf,
    /// The log of the previous instance of the container (after a restart), if any.
    pub previous_log_path: Option<PathBuf>,
    /// The pod's network namespace (its name under `/run/netns`).
    pub netns: String,
    /// The pod's hostname (a private UTS namespace), if it has one.
    pub hostname: Option<String>,
    /// Bind mounts `(source, target)` of the container (its `/etc/resolv.conf`, ...).
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// The container's environment (exec'd commands get it too).
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    /// Whether the container's process is running (a followed log ends when it is not).
    pub running: bool,
    /// A container from an image: exec goes through the OCI runtime (`runc exec`), inside the
    /// container's namespaces and root filesystem.
    pub oci: Option<crate::container::OciHandle>,
    /// The container's directory (its shim's files: the attach socket).
    pub dir: PathBuf,
}

/// The node agent's view of its containers.
pub trait PodRuntime: Send + Sync + 'static {
    fn container(&self, namespace: &str, pod: &str, container: &str) -> Option<ContainerHandle>;

    /// The pod's sandbox, for `portForward`; `None`: no such pod on this node.
    fn sandbox(&self, _namespace: &str, _pod: &str) -> Option<portforward::PodSandbox> {
        None
    }
}

/// Who may call the kubelet API: whoever presents the API server's bearer token. The kubelet
/// authenticates with client certificates and/or token webhooks (TokenReviews) and, with
/// `authentication.anonymous.enabled: false` (the KubeletConfiguration default) and none of
/// them, refuses to start: `No authentication method configured` (apiserver's
/// `DelegatingAuthenticatorConfig.New`, called by the kubelet's `BuildAuth`). Here the one
/// caller is the API server, and its token is the one authenticator; there is no anonymous
/// mode, so an agent cannot serve logs and exec to anyone who reaches its port.
#[derive(Clone)]
pub struct Authenticator {
    token: String,
}

/// Why the kubelet API has no [`Authenticator`]: the node agent does not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("No authentication method configured")]
    NotConfigured,
    #[error("reading the bearer token from {0}: {1}")]
    TokenFileFailed(PathBuf, io::Error),
    #[error("the bearer token in {0} is empty")]
    EmptyToken(PathBuf),
}

impl Authenticator {
    /// The token (surrounding whitespace trimmed) in `file`, the `--token-file` of `svcnet
    /// node`; `None` is [`AuthError::NotConfigured`].
    pub fn from_token_file(file: Option<&Path>) -> Result<Authenticator, AuthError> {
        let file = file.ok_or(AuthError::NotConfigured)?;
        let token = std::fs::read_to_string(file)
            .map_err(|e| AuthError::TokenFileFailed(file.into(), e))?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(AuthError::EmptyToken(file.into()));
        }
        Ok(Authenticator { token })
    }

    /// A bearer token given directly (`None` if it is empty).
    pub fn bearer_token(token: impl Into<String>) -> Option<Authenticator> {
        let token = token.into().trim().to_string();
        (!token.is_empty()).then_some(Authenticator { token })
    }

    /// Whether `headers` carry `Authorization: Bearer <the token>` (compared in constant time
    /// for tokens of the right length).
    fn authenticates(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let (a, b) = (given.trim().as_bytes(), self.token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator { token: <redacted> }")
    }
}

struct AppState {
    auth: Authenticator,
    runtime: Arc<dyn PodRuntime>,
}

/// Serve the kubelet API on `listener` until the listener fails. Every request but `/healthz`
/// must pass `auth` (401 otherwise).
pub async fn serve(
    listener: tokio::net::TcpListener,
    auth: Authenticator,
    runtime: Arc<dyn PodRuntime>,
) -> io::Result<()> {
    axum::serve(listener, router(auth, runtime)).await
}

/// The kubelet API as a router (what [`serve`] serves).
pub fn router(auth: Authenticator, runtime: Arc<dyn PodRuntime>) -> Router {
    let state = Arc::new(AppState { auth, runtime });
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{ns}/{pod}/{container}",
            get(logs::get_container_logs),
        )
        .route("/exec/{ns}/{pod}/{container}", any(exec::get_exec))
        .route("/attach/{ns}/{pod}/{container}", any(attach::get_attach))
        .route(
            "/portForward/{ns}/{pod}",
            any(portforward::get_port_forward),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state)
}

async fn authenticate(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let wants_json = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    let resp = if req.uri().path() != "/healthz" && !st.auth.authenticates(req.headers()) {
        text_response(StatusCode::UNAUTHORIZED, "Unauthorized")
    } else {
        next.run(req).await
    };
    if wants_json && (resp.status().is_client_error() || resp.status().is_server_error()) {
        as_status(resp).await
    } else {
        resp
    }
}

/// An error answer as a `Status` object (for Kubernetes clients, which show its message; the
/// kubelet answers in text and kube-apiserver converts, but ours passes answers through).
async fn as_status(resp: Response) -> Response {
    use http_body_util::BodyExt;
    let (mut parts, body) = resp.into_parts();
    let message = match http_body_util::Limited::new(body, 64 * 1024)
        .collect()
        .await
    {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let code = parts.status.as_u16();
    let reason = match parts.status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        _ if parts.status.is_server_error() => "InternalError",
        _ => "",
    };
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&status).expect("serializable")),
    )
}

fn text_response(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.into(),
    )
        .into_response()
}

fn not_found(ns: &str, pod: &str, container: &str) -> Response {
    text_response(
        StatusCode::NOT_FOUND,
        format!("container {container:?} in pod \"{ns}/{pod}\" not found"),
    )
}

/// A query parameter of a `containerLogs` or `exec` request that cannot be taken; the request
/// is answered 400 with this message (the kubelet's).
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("invalid value {value:?} for {name}: not a boolean")]
    NotABoolean { name: String, value: String },
    #[error("invalid value {value:?} for {name}")]
    NotANumber { name: &'static str, value: String },
    #[error("{0}: must be greater than 0")]
    NotPositive(&'static str),
    #[error("invalid value {value:?} for sinceTime: {source}")]
    NotATime { value: String, source: jiff::Error },
    #[error("invalid value {0:?} for stream")]
    UnknownStream(String),
    #[error("at most one of sinceTime or sinceSeconds may be specified")]
    SinceTimeAndSeconds,
    #[error("you must specify at least 1 command")]
    NoCommand,
    #[error("you must specify at least 1 of stdin, stdout, stderr")]
    NoStream,
}

/// Go's `strconv.ParseBool`, as the kubelet reads its boolean parameters.
fn parse_bool(name: &str, v: &str) -> Result<bool, ParamError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
        _ => Err(ParamError::NotABoolean {
            name: name.to_string(),
            value: v.to_string(),
        }),
    }
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}
