//! The node agent's kubelet API (the kubelet's `pkg/kubelet/server/server.go`): what the API
//! server reaches for `pods/{name}/log` and `pods/{name}/exec`, over plain HTTP on the node's
//! InternalIP (the API server authenticates with a bearer token,
//! `<apiserver data dir>/kubelet-client.token`).
//!
//! - `GET /healthz`: `ok` (no token needed).
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow&tailLines&timestamps&sinceSeconds&
//!   sinceTime&limitBytes&previous&stream`: the container's CRI log file (as [`crate::shim`]
//!   writes it, [`crate::cri_log`]) as plain text — [`logs`].
//! - `/exec/{ns}/{pod}/{container}?command=..&stdin&stdout&stderr&tty`: a WebSocket speaking the
//!   Kubernetes channel protocols (`v5.channel.k8s.io` .. `channel.k8s.io`); the command runs in
//!   the container's namespaces, with pipes or (`tty`) a pseudo-terminal — [`exec`] (the
//!   kubelet's `pkg/kubelet/cri/streaming/remotecommand`).
//! - `/attach/...`: not supported (400).
//!
//! `pods/{name}/proxy` does not come here: the API server dials pod IPs itself.
//!
//! This file holds the router, the bearer-token check, error answers as `Status`, and
//! [`PodRuntime`]: which containers exist, and where their logs and namespaces are, the agent
//! says through it.

pub mod exec;
pub mod logs;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http::{header, HeaderMap, HeaderValue, StatusCode};

pub use exec::{ExecOptions, StreamProtocol};
pub use logs::{read_log, LogOptions};

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
}

/// The node agent's view of its containers.
pub trait PodRuntime: Send + Sync + 'static {
    fn container(&self, namespace: &str, pod: &str, container: &str) -> Option<ContainerHandle>;
}

struct AppState {
    token: Option<String>,
    runtime: Arc<dyn PodRuntime>,
}

/// Serve the kubelet API on `listener` until the listener fails. With `token`, every request
/// but `/healthz` must carry `Authorization: Bearer <token>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    token: Option<String>,
    runtime: Arc<dyn PodRuntime>,
) -> io::Result<()> {
    axum::serve(listener, router(token, runtime)).await
}

/// The kubelet API as a router (what [`serve`] serves).
pub fn router(token: Option<String>, runtime: Arc<dyn PodRuntime>) -> Router {
    let state = Arc::new(AppState { token, runtime });
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{ns}/{pod}/{container}",
            get(logs::get_container_logs),
        )
        .route("/exec/{ns}/{pod}/{container}", any(exec::get_exec))
        .route("/attach/{ns}/{pod}/{container}", any(exec::get_attach))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let wants_json = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    let resp = match &st.token {
        Some(token) if req.uri().path() != "/healthz" && !bearer_matches(req.headers(), token) => {
            text_response(StatusCode::UNAUTHORIZED, "Unauthorized")
        }
        _ => next.run(req).await,
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

fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    // Constant time for equal lengths.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    #[error("you must specify at least one of stdin, stdout, stderr")]
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
