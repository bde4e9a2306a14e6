//! What the kubelet puts in a container's environment: the container's own `env` (with
//! `$(VAR)` references expanded and downward-API values filled in) followed by the Service
//! variables (`KUBERNETES_SERVICE_HOST`, `MY_SVC_PORT_80_TCP_ADDR`, ...).
//!
//! - this file: [`container_env`], the kubelet's `makeEnvironmentVariables`, with
//!   [`invalid_env_from_keys`] for its `InvalidEnvironmentVariableNames` events;
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

use crate::objects::{config_map_not_found, secret_not_found, Objects};

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
/// - `envFrom` (first, each source's keys in order, `prefix` prepended; keys that are no
///   valid variable names skipped, see [`invalid_env_from_keys`]) and
///   `valueFrom.configMapKeyRef`/`secretKeyRef` read `objects`: a missing object is the
///   kubelet's error (`configmap "x" not found`), a missing key `couldn't find key k in
///   ConfigMap ns/x`, both skipped when marked `optional`. `configMapKeyRef` reads `data`
///   only, as the kubelet does.
///
/// A variable declared twice keeps its first position and takes the last value.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    service_env: &[(String, String)],
    objects: &dyn Objects,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (k, v) in env_from(ns, container, objects)? {
        if !is_env_var_name(&k) {
            continue;
        }
        match index.get(&k) {
            Some(&i) => out[i].1 = v,
            None => {
                index.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }

    let services: HashMap<&str, &str> = service_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
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
            } else if let Some(r) = &src.config_map_key_ref {
                let cm = objects.config_map(ns, &r.name);
                let found = cm
                    .as_ref()
                    .map(|cm| cm.data.as_ref().and_then(|d| d.get(&r.key)).cloned());
                match key_value(
                    found,
                    ("configmap", "ConfigMap"),
                    ns,
                    &r.name,
                    &r.key,
                    r.optional,
                )? {
                    Some(v) => value = v,
                    None => continue,
                }
            } else if let Some(r) = &src.secret_key_ref {
                let secret = objects.secret(ns, &r.name);
                let found = secret.as_ref().map(|s| {
                    let v = s.data.as_ref().and_then(|d| d.get(&r.key));
                    v.map(|v| String::from_utf8_lossy(&v.0).into_owned())
                });
                match key_value(found, ("secret", "Secret"), ns, &r.name, &r.key, r.optional)? {
                    Some(v) => value = v,
                    None => continue,
                }
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

/// A `configMapKeyRef`/`secretKeyRef` value: `found` is `None` for a missing object, `Some(None)`
/// for a missing key; `Ok(None)` skips the variable (`optional`). `kind` is how the kubelet
/// names the kind in each message (`configmap "x" not found`, `couldn't find key k in
/// ConfigMap ns/x`).
fn key_value(
    found: Option<Option<String>>,
    kind: (&str, &str),
    ns: &str,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, String> {
    match found {
        Some(Some(v)) => Ok(Some(v)),
        _ if optional == Some(true) => Ok(None),
        None => Err(format!("{} {name:?} not found", kind.0)),
        Some(None) => Err(format!("couldn't find key {key} in {} {ns}/{name}", kind.1)),
    }
}

/// The `(name, value)` pairs of the container's `envFrom`, prefixed, in order (invalid names
/// included); a missing non-optional source is the kubelet's error.
fn env_from(
    ns: &str,
    container: &Container,
    objects: &dyn Objects,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for from in container.env_from.as_deref().unwrap_or_default() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        if let Some(r) = &from.config_map_ref {
            match objects.config_map(ns, &r.name) {
                Some(cm) => out.extend(
                    cm.data
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (format!("{prefix}{k}"), v)),
                ),
                None if r.optional.unwrap_or(false) => {}
                None => return Err(config_map_not_found(&r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match objects.secret(ns, &r.name) {
                Some(s) => out.extend(s.data.clone().unwrap_or_default().into_iter().map(
                    |(k, v)| {
                        (
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        )
                    },
                )),
                None if r.optional.unwrap_or(false) => {}
                None => return Err(secret_not_found(&r.name)),
            }
        }
    }
    Ok(out)
}

/// The messages of the kubelet's `InvalidEnvironmentVariableNames` Warning events: one per
/// `envFrom` source whose keys (with the prefix) include names that are no valid variable
/// names, which [`container_env`] skipped.
pub fn invalid_env_from_keys(
    pod: &Pod,
    container: &Container,
    objects: &dyn Objects,
) -> Vec<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    for from in container.env_from.as_deref().unwrap_or_default() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let sources = [
            from.config_map_ref.as_ref().and_then(|r| {
                let keys = objects
                    .config_map(ns, &r.name)?
                    .data
                    .as_ref()?
                    .keys()
                    .cloned()
                    .collect();
                Some(("configMap", &r.name, keys))
            }),
            from.secret_ref.as_ref().and_then(|r| {
                let keys = objects
                    .secret(ns, &r.name)?
                    .data
                    .as_ref()?
                    .keys()
                    .cloned()
                    .collect();
                Some(("secret", &r.name, keys))
            }),
        ];
        for (what, name, keys) in sources.into_iter().flatten() {
            let keys: Vec<String> = keys;
            let mut invalid: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{prefix}{k}"))
                .filter(|k| !is_env_var_name(k))
                .collect();
            if !invalid.is_empty() {
                invalid.sort();
                out.push(format!(
                    "Keys [{}] from the EnvFrom {what} {ns}/{name} were skipped since they are considered invalid environment variable names.",
                    invalid.join(", ")
                ));
            }
        }
    }
    out
}

/// apimachinery's `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`, and not `.`, `..` or `..*`.
fn is_env_var_name(k: &str) -> bool {
    let mut chars = k.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_'));
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && k != "."
        && !k.starts_with("..")
}
