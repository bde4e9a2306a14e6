//! Health-check servers for `externalTrafficPolicy: Local` Services (kube-proxy's
//! `ServiceHealthServer`): on each Service's `healthCheckNodePort`, HTTP 200 while this node has
//! local endpoints, 503 when it has none — so a load balancer sends traffic only to nodes that
//! can serve it. The body is kube-proxy's JSON.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::model::{self, State};

/// What one health-check port reports.
#[derive(Clone, Debug, Default, PartialEq)]
struct Entry {
    namespace: String,
    name: String,
    local_endpoints: usize,
}

/// The servers of one node.
pub struct HealthServers {
    node: String,
    netns: Option<String>,
    bind: std::net::IpAddr,
    entries: Arc<Mutex<BTreeMap<u16, Entry>>>,
    listeners: BTreeMap<u16, tokio::task::JoinHandle<()>>,
}

impl HealthServers {
    /// Servers for `node`, listening on `bind` (0.0.0.0: every node address) in `netns`.
    pub fn new(node: &str, netns: Option<String>, bind: std::net::IpAddr) -> Self {
        HealthServers {
            node: node.to_string(),
            netns,
            bind,
            entries: Arc::default(),
            listeners: BTreeMap::new(),
        }
    }

    /// Serve exactly the health-check ports `state` asks for, with its local endpoint counts.
    pub fn sync(&mut self, state: &State) {
        let mut want: BTreeMap<u16, Entry> = BTreeMap::new();
        for (id, sp) in &state.services {
            if sp.health_check_node_port == 0 || !sp.external_local {
                continue;
            }
            let eps = state.endpoints.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let (_, local) = model::categorize(sp, eps, &self.node, None);
            let e = want
                .entry(sp.health_check_node_port)
                .or_insert_with(|| Entry {
                    namespace: id.namespace.clone(),
                    name: id.name.clone(),
                    local_endpoints: 0,
                });
            e.local_endpoints = e.local_endpoints.max(local.len());
        }
        *self.entries.lock().expect("health lock") = want.clone();
        self.listeners.retain(|port, h| {
            let keep = want.contains_key(port);
            if !keep {
                h.abort();
            }
            keep
        });
        for port in want.keys() {
            if self.listeners.contains_key(port) {
                continue;
            }
            let addr = SocketAddr::new(self.bind, *port);
            let listener = match svcnet_netns::tokio_listener(self.netns.as_deref(), addr) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(port, error = %e, "health check port");
                    continue;
                }
            };
            let entries = self.entries.clone();
            let port = *port;
            let app = Router::new().fallback(get(move || async move { answer(&entries, port) }));
            self.listeners.insert(
                port,
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                }),
            );
        }
    }
}

fn answer(entries: &Mutex<BTreeMap<u16, Entry>>, port: u16) -> impl IntoResponse {
    let e = entries
        .lock()
        .expect("health lock")
        .get(&port)
        .cloned()
        .unwrap_or_default();
    let body = serde_json::json!({
        "service": {"namespace": e.namespace, "name": e.name},
        "localEndpoints": e.local_endpoints,
        "serviceProxyHealthy": true,
    });
    let code = if e.local_endpoints > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [
            ("Content-Type", "application/json"),
            ("X-Content-Type-Options", "nosniff"),
        ],
        body.to_string(),
    )
}

impl Drop for HealthServers {
    fn drop(&mut self) {
        for h in self.listeners.values() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Protocol, ServicePort};
    use crate::testing::{ep, id_in, sp};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_by_local_endpoint_count() {
        let id = id_in("d", "lb", "", Protocol::Tcp);
        let port = 32000 + (std::process::id() % 700) as u16;
        let sp = ServicePort {
            node_port: 30080,
            external_local: true,
            health_check_node_port: port,
            ..sp(&id, "10.96.0.9", 80)
        };
        let ep = |node: &str| ep("10.244.0.2", 80, node);
        let mut st = State::default();
        st.services.insert(id.clone(), sp);
        st.endpoints.insert(id.clone(), vec![ep("other")]);
        let mut hs = HealthServers::new("me", None, "127.0.0.1".parse().unwrap());
        hs.sync(&st);
        let get = move || {
            let out = std::process::Command::new("curl")
                .args([
                    "-s",
                    "-w",
                    "\n%{http_code}",
                    &format!("http://127.0.0.1:{port}/healthz"),
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let r = tokio::task::spawn_blocking(get).await.unwrap();
        assert!(
            r.ends_with("503") && r.contains("\"localEndpoints\":0"),
            "{r}"
        );
        st.endpoints.insert(id, vec![ep("me")]);
        hs.sync(&st);
        let r = tokio::task::spawn_blocking(get).await.unwrap();
        assert!(
            r.ends_with("200") && r.contains("\"localEndpoints\":1"),
            "{r}"
        );
    }
}
