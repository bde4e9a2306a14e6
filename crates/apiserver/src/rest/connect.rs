//! "Connect" subresources: `pods/{name}/log|exec|attach|portforward|proxy`,
//! `services/{name}/proxy`, `nodes/{name}/proxy`. They reach a node agent (kubelet API on
//! the node's InternalIP, port from `status.daemonEndpoints`) or a pod directly, through
//! [`crate::proxy::forward`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::Request;
use serde_json::Value;

use super::read::get_cached;
use crate::codec::Query;
use crate::error::{ApiError, ApiResult};
use crate::request::Target;
use crate::resources::{ENDPOINTSLICES, NODES, SERVICES};
use crate::state::AppState;

pub const CONNECT_SUBRESOURCES: &[&str] = &["log", "exec", "attach", "portforward", "proxy"];

/// The kubelet port when a node does not say.
const DEFAULT_KUBELET_PORT: u16 = 10250;

pub async fn handle(
    state: &Arc<AppState>,
    req: Request<Body>,
    t: &Target,
    q: &Query,
) -> ApiResult<Response> {
    let sub = t.subresource.as_deref().unwrap_or_default();
    match (t.info.plural, sub) {
        ("pods", "log") => pod_log(state, req, t).await,
        ("pods", "exec" | "attach" | "portforward") => pod_stream(state, req, t, sub).await,
        ("pods", "proxy") => pod_proxy(state, req, t).await,
        ("services", "proxy") => service_proxy(state, req, t).await,
        ("nodes", "proxy") => node_proxy(state, req, t).await,
        _ => {
            let _ = q;
            Err(ApiError::path_not_found())
        }
    }
}

/// The path after `/proxy` in the request, and the query, as the backend should see them.
fn proxied_path(req: &Request<Body>) -> String {
    let path = req.uri().path();
    let rest = path
        .find("/proxy")
        .map(|i| &path[i + "/proxy".len()..])
        .unwrap_or("");
    let rest = if rest.is_empty() { "/" } else { rest };
    match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    }
}

/// `name`, `name:port` or `scheme:name:port` (as Kubernetes' proxy subresources take them).
fn split_name(raw: &str) -> (&str, Option<&str>) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.as_slice() {
        [name] => (name, None),
        [name, port] => (name, Some(*port).filter(|p| !p.is_empty())),
        [_scheme, name, port] => (name, Some(*port).filter(|p| !p.is_empty())),
        _ => (raw, None),
    }
}

async fn pod(state: &AppState, t: &Target, name: &str) -> ApiResult<Value> {
    let mut pt = t.clone();
    pt.name = Some(name.to_string());
    Ok(get_cached(state, &pt, None).await?.value.clone())
}

/// Where a node's kubelet API is.
async fn kubelet_of(state: &AppState, node_name: &str) -> ApiResult<SocketAddr> {
    let nt = Target {
        info: &NODES,
        namespace: None,
        name: Some(node_name.to_string()),
        subresource: None,
        rest: Vec::new(),
        legacy_watch: false,
    };
    let node = get_cached(state, &nt, None).await?;
    let addrs = node
        .value
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ip = ["InternalIP", "ExternalIP"]
        .iter()
        .find_map(|ty| {
            addrs
                .iter()
                .find(|a| a["type"] == *ty)
                .and_then(|a| a["address"].as_str())
                .and_then(|s| s.parse::<IpAddr>().ok())
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "no preferred addresses found; known addresses: {addrs:?}"
            ))
        })?;
    let port = node
        .value
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .map(|p| p as u16)
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(SocketAddr::new(ip, port))
}

/// The container a log/exec request means: the `container` query parameter, or the only one.
fn container_of(pod: &Value, name: &str, query: Option<&str>) -> ApiResult<String> {
    let wanted = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "container")
            .map(|(_, v)| v.into_owned())
    });
    let containers = container_names(pod, "/spec/containers");
    match wanted {
        Some(c) if !c.is_empty() => {
            let init = container_names(pod, "/spec/initContainers");
            let ephemeral = container_names(pod, "/spec/ephemeralContainers");
            if containers.contains(&c) || init.contains(&c) || ephemeral.contains(&c) {
                Ok(c)
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        _ if containers.len() == 1 => Ok(containers[0].clone()),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// The names of the containers listed at `pointer` (`/spec/containers`, `/spec/initContainers`).
fn container_names(pod: &Value, pointer: &str) -> Vec<String> {
    pod.pointer(pointer)
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The kubelet API of the node `pod` is bound to.
async fn kubelet_of_pod(state: &AppState, pod: &Value, name: &str) -> ApiResult<SocketAddr> {
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {name} does not have a host assigned"))
        })?;
    kubelet_of(state, node).await
}

/// Forward `req` to a kubelet's `path`, presenting the API server's kubelet credential.
async fn forward_to_kubelet(
    state: &AppState,
    req: Request<Body>,
    kubelet: SocketAddr,
    path: &str,
) -> ApiResult<Response> {
    crate::proxy::forward(
        &state.dialer,
        req,
        kubelet,
        path,
        state.kubelet_token.as_deref(),
    )
    .await
}

/// `?query` of the request, or "".
fn query_suffix(req: &Request<Body>) -> String {
    req.uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default()
}

async fn pod_log(state: &Arc<AppState>, req: Request<Body>, t: &Target) -> ApiResult<Response> {
    let name = t.name.clone().unwrap_or_default();
    let pod = pod(state, t, &name).await?;
    let container = container_of(&pod, &name, req.uri().query())?;
    let kubelet = kubelet_of_pod(state, &pod, &name).await?;
    let ns = t.namespace.clone().unwrap_or_default();
    let path = format!(
        "/containerLogs/{ns}/{name}/{container}{}",
        query_suffix(&req)
    );
    forward_to_kubelet(state, req, kubelet, &path).await
}

async fn pod_stream(
    state: &Arc<AppState>,
    req: Request<Body>,
    t: &Target,
    sub: &str,
) -> ApiResult<Response> {
    let name = t.name.clone().unwrap_or_default();
    let pod = pod(state, t, &name).await?;
    let kubelet = kubelet_of_pod(state, &pod, &name).await?;
    let ns = t.namespace.clone().unwrap_or_default();
    let q = query_suffix(&req);
    let path = if sub == "portforward" {
        let path = format!(
            "/portForward/{ns}/{name}{}",
            portforward_query(req.uri().query())?
        );
        // kubectl 1.31+: SPDY inside a WebSocket, unwrapped here (kube-apiserver's
        // PortForwardWebsockets, on by default since 1.31); the kubelet gets plain SPDY.
        if crate::proxy::is_tunneling_request(req.headers()) {
            let bearer = state.kubelet_token.as_deref();
            return crate::proxy::forward_tunneled(&state.dialer, req, kubelet, &path, bearer)
                .await;
        }
        path
    } else {
        let container = container_of(&pod, &name, req.uri().query())?;
        format!("/{sub}/{ns}/{name}/{container}{q}")
    };
    forward_to_kubelet(state, req, kubelet, &path).await
}

/// The kubelet's query for `pods/{name}/portforward?ports=..` (`PortForwardLocation`): the
/// `ports` (each parameter a port or a comma-separated list, as `Convert_Slice_string_To_Slice_int32`
/// reads them) as one `port` list; nothing without ports (SPDY clients name them per stream).
fn portforward_query(query: Option<&str>) -> ApiResult<String> {
    let mut ports = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',') {
            let port: u16 = p.parse().map_err(|_| {
                let why = if p.is_empty() || p.bytes().any(|b| !b.is_ascii_digit()) {
                    "invalid syntax"
                } else {
                    "value out of range"
                };
                ApiError::bad_request(format!(
                    "cannot convert to []int32: strconv.ParseUint: parsing {p:?}: {why}"
                ))
            })?;
            ports.push(port.to_string());
        }
    }
    if ports.is_empty() {
        return Ok(String::new());
    }
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("port", &ports.join(","))
        .finish();
    Ok(format!("?{q}"))
}

async fn pod_proxy(state: &Arc<AppState>, req: Request<Body>, t: &Target) -> ApiResult<Response> {
    let raw = t.name.clone().unwrap_or_default();
    let (name, port) = split_name(&raw);
    let pod = pod(state, t, name).await?;
    let ip: IpAddr = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ApiError::service_unavailable(format!("address not allowed: pod {name} has no IP"))
        })?;
    let port: u16 = match port {
        Some(p) => match p.parse() {
            Ok(n) => n,
            // A named port: look it up in the pod's containers.
            Err(_) => container_port_by_name(&pod, p).ok_or_else(|| {
                ApiError::bad_request(format!("invalid port name {p:?} for pod {name}"))
            })?,
        },
        None => 80,
    };
    let path = proxied_path(&req);
    crate::proxy::forward(&state.dialer, req, SocketAddr::new(ip, port), &path, None).await
}

fn container_port_by_name(pod: &Value, port_name: &str) -> Option<u16> {
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .find_map(|c| {
            c["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == port_name)?["containerPort"]
                .as_u64()
                .map(|p| p as u16)
        })
}

async fn service_proxy(
    state: &Arc<AppState>,
    req: Request<Body>,
    t: &Target,
) -> ApiResult<Response> {
    let raw = t.name.clone().unwrap_or_default();
    let (name, port) = split_name(&raw);
    let mut st = t.clone();
    st.info = &SERVICES;
    st.name = Some(name.to_string());
    let svc = get_cached(state, &st, None).await?.value.clone();
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // The service port: by name or number, or the only/first one.
    let sp = match port {
        Some(p) => ports
            .iter()
            .find(|sp| {
                sp["name"] == p || sp["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(p)
            })
            .cloned(),
        None => ports.first().cloned(),
    }
    .ok_or_else(|| {
        ApiError::service_unavailable(format!("no endpoints available for service \"{raw}\""))
    })?;
    let port_name = sp["name"].as_str().unwrap_or("").to_string();
    // A ready endpoint from the Service's EndpointSlices, with that port.
    let ns = t.namespace.clone().unwrap_or_default();
    let (slices, _) = state.cache.list(&ENDPOINTSLICES.prefix(Some(&ns)));
    let mut candidates: Vec<SocketAddr> = Vec::new();
    for s in slices.iter().filter(|s| {
        s.value
            .pointer("/metadata/labels/kubernetes.io~1service-name")
            == Some(&Value::String(name.to_string()))
    }) {
        let Some(target) = s.value["ports"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p["name"].as_str().unwrap_or("") == port_name)
            })
            .and_then(|p| p["port"].as_u64())
        else {
            continue;
        };
        for ep in s.value["endpoints"].as_array().into_iter().flatten() {
            if ep.pointer("/conditions/ready") == Some(&Value::Bool(false)) {
                continue;
            }
            if let Some(ip) = ep["addresses"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
            {
                candidates.push(SocketAddr::new(ip, target as u16));
            }
        }
    }
    if candidates.is_empty() {
        return Err(ApiError::service_unavailable(format!(
            "no endpoints available for service \"{raw}\""
        )));
    }
    use rand::seq::IndexedRandom;
    let backend = *candidates.choose(&mut rand::rng()).expect("not empty");
    let path = proxied_path(&req);
    crate::proxy::forward(&state.dialer, req, backend, &path, None).await
}

async fn node_proxy(state: &Arc<AppState>, req: Request<Body>, t: &Target) -> ApiResult<Response> {
    let raw = t.name.clone().unwrap_or_default();
    let (name, port) = split_name(&raw);
    let mut kubelet = kubelet_of(state, name).await?;
    if let Some(p) = port.and_then(|p| p.parse().ok()) {
        kubelet.set_port(p);
    }
    let path = proxied_path(&req);
    forward_to_kubelet(state, req, kubelet, &path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(split_name("web"), ("web", None));
        assert_eq!(split_name("web:8080"), ("web", Some("8080")));
        assert_eq!(split_name("https:web:443"), ("web", Some("443")));
        let req = Request::builder()
            .uri("/api/v1/namespaces/default/services/web/proxy/a/b?x=1")
            .body(Body::empty())
            .unwrap();
        assert_eq!(proxied_path(&req), "/a/b?x=1");
        let req = Request::builder()
            .uri("/api/v1/namespaces/default/services/web/proxy")
            .body(Body::empty())
            .unwrap();
        assert_eq!(proxied_path(&req), "/");
        let pod = serde_json::json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            container_of(&pod, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(container_of(&pod, "p", Some("container=b")).unwrap(), "b");
        assert_eq!(portforward_query(None).unwrap(), "");
        assert_eq!(
            portforward_query(Some("ports=80,8080&ports=9")).unwrap(),
            "?port=80%2C8080%2C9"
        );
        assert_eq!(
            portforward_query(Some("ports=http")).unwrap_err().message,
            "cannot convert to []int32: strconv.ParseUint: parsing \"http\": invalid syntax"
        );
    }
}
