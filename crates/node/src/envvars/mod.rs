//! What the kubelet puts in a container's environment: the container's own `env` (with
//! `$(VAR)` references expanded and downward-API values filled in) followed by the Service
//! variables (`KUBERNETES_SERVICE_HOST`, `MY_SVC_PORT_80_TCP_ADDR`, ...).
//!
//! - this file: [`container_env`], the kubelet's `makeEnvironmentVariables` (without ConfigMaps
//!   and Secrets, which svcnet does not serve);
//! - [`services`]: the Service variables ([`service_env`]: `kubelet.getServiceEnvVarMap`,
//!   `pkg/kubelet/envvars.FromServices`);
//! - [`downward`]: `fieldRef` and `resourceFieldRef` values (`pkg/fieldpath`,
//!   `resource.ExtractContainerResourceValue`, quantities);
//! - [`expansion`]: `$(VAR)` references ([`expand`]: `third_party/forked/golang/expansion`).

pub mod downward;
pub mod expansion;
pub mod services;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use downward::{field_value, resource_value};
pub use expansion::expand;
use expansion::expand_with;
pub use services::service_env;

/// The environment of `container` of `pod`: its `env` in declared order, then the variables of
/// `service_env` (see [`service_env`]) it does not set itself.
///
/// - `value`s have `$(VAR)` references expanded against the variables defined before them and
///   the Service variables (see [`expand`]);
/// - `valueFrom.fieldRef`: `metadata.name`, `metadata.namespace`, `metadata.uid`,
///   `metadata.labels['k']`, `metadata.annotations['k']` (also the whole maps, as `k="v"` lines),
///   `spec.nodeName`, `spec.serviceAccountName`, `status.hostIP`, `status.hostIPs`,
///   `status.podIP`, `status.podIPs` (comma-joined). The IPs are read from `pod.status`, so the
///   caller fills it (pod IPs from the sandbox, host IPs from the node) before calling;
/// - `valueFrom.resourceFieldRef`: `limits.*`/`requests.*` of the named container (default
///   this one) divided by `divisor` and rounded up, as the kubelet does. Differences: an unset
///   `limits.cpu`/`limits.memory` is the node's CPU count / `MemTotal` (the kubelet uses the
///   node's allocatable), any other unset value is `"0"` (an unset request takes the limit,
///   as API defaulting would);
/// - `valueFrom.configMapKeyRef`/`secretKeyRef` and `envFrom`: svcnet serves no ConfigMaps or
///   Secrets, so these fail as the kubelet does when the object is missing
///   (`configmap "x" not found`), unless marked `optional`, in which case they are skipped.
///
/// A variable declared twice keeps its first position and takes the last value.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    service_env: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    for from in container.env_from.as_deref().unwrap_or_default() {
        if let Some(cm) = &from.config_map_ref {
            if !cm.optional.unwrap_or(false) {
                return Err(format!("configmap {:?} not found", cm.name));
            }
        }
        if let Some(s) = &from.secret_ref {
            if !s.optional.unwrap_or(false) {
                return Err(format!("secret {:?} not found", s.name));
            }
        }
    }

    let services: HashMap<&str, &str> = service_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for var in container.env.as_deref().unwrap_or_default() {
        let mut value = var.value.clone().unwrap_or_default();
        if !value.is_empty() {
            value = expand_with(&value, |name| {
                index
                    .get(name)
                    .map(|&i| out[i].1.as_str())
                    .or_else(|| services.get(name).copied())
            });
        }
        if let Some(src) = &var.value_from {
            if let Some(f) = &src.field_ref {
                value = field_value(pod, &f.field_path)?;
            } else if let Some(r) = &src.resource_field_ref {
                value = resource_value(pod, container, r)?;
            } else if let Some(cm) = &src.config_map_key_ref {
                if cm.optional.unwrap_or(false) {
                    continue;
                }
                return Err(format!("configmap {:?} not found", cm.name));
            } else if let Some(s) = &src.secret_key_ref {
                if s.optional.unwrap_or(false) {
                    continue;
                }
                return Err(format!("secret {:?} not found", s.name));
            }
        }
        match index.get(&var.name) {
            Some(&i) => out[i].1 = value,
            None => {
                index.insert(var.name.clone(), out.len());
                out.push((var.name.clone(), value));
            }
        }
    }
    for (k, v) in service_env {
        if !index.contains_key(k) {
            index.insert(k.clone(), out.len());
            out.push((k.clone(), v.clone()));
        }
    }
    Ok(out)
}
