//! core/v1 ComponentStatus (`pkg/registry/core/componentstatus`): built on each read, never
//! stored. kube-apiserver probes the scheduler's and controller-manager's `/healthz` and each
//! etcd server; svcnet's components hold the Leases upstream's hold (`kube-system/
//! kube-controller-manager`, `kube-system/kube-scheduler`, renewed by svcnet-controllers), so a
//! component is healthy while its Lease is fresh, and `etcd-0` while the store answers a read.

use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::read::encode_list;
use super::{encode_one, ResourceRequest};
use crate::error::{ApiError, ApiResult};
use crate::resources::COMPONENTSTATUSES;

/// The components, in upstream's order of `kubectl get componentstatuses`.
const COMPONENTS: &[&str] = &["controller-manager", "scheduler", "etcd-0"];

pub async fn handle(r: &ResourceRequest<'_>, method: &Method) -> ApiResult<Response> {
    if method != Method::GET || r.query.watch || r.target.subresource.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let rep = r.negotiate()?;
    match r.target.name.as_deref() {
        Some(name) => {
            if !COMPONENTS.contains(&name) {
                return Err(ApiError::not_found(&COMPONENTSTATUSES, name));
            }
            let obj = status(r, name).await;
            Ok(encode_one(&COMPONENTSTATUSES, &obj, rep, StatusCode::OK))
        }
        None => {
            let mut items = Vec::new();
            for c in COMPONENTS {
                items.push(status(r, c).await);
            }
            Ok(encode_list(
                &COMPONENTSTATUSES,
                items.iter(),
                "",
                None,
                rep,
                r.query,
            ))
        }
    }
}

async fn status(r: &ResourceRequest<'_>, name: &str) -> Value {
    let health = match name {
        "etcd-0" => match r.state.store.get("/registry/health").await {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        },
        "scheduler" => lease(r, "kube-scheduler"),
        _ => lease(r, "kube-controller-manager"),
    };
    let condition = match health {
        Ok(()) => json!({"type": "Healthy", "status": "True", "message": "ok"}),
        Err(e) => json!({"type": "Healthy", "status": "False", "error": e}),
    };
    json!({"kind": "ComponentStatus", "apiVersion": "v1",
           "metadata": {"name": name}, "conditions": [condition]})
}

/// Fresh: renewed less than `leaseDurationSeconds` ago.
fn lease(r: &ResourceRequest<'_>, name: &str) -> Result<(), String> {
    let key = format!("/registry/leases/kube-system/{name}");
    let Some(obj) = r.state.cache.get(&key).0 else {
        return Err(format!("Lease kube-system/{name} not found"));
    };
    let spec = &obj.value["spec"];
    let renewed = spec["renewTime"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let duration = spec["leaseDurationSeconds"].as_i64().unwrap_or(0);
    match renewed {
        Some(t) if jiff::Timestamp::now().as_second() - t.as_second() <= duration => Ok(()),
        _ => Err(format!(
            "Lease kube-system/{name} not renewed in the last {duration}s"
        )),
    }
}
