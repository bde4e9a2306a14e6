//! Environment variables: `ValidateEnv`, `validateEnvVarValueFrom` (downward API field and
//! resource references, ConfigMap and Secret keys), `validateObjectFieldSelector` and
//! `ValidateEnvFrom`.

use k8s_openapi::api::core::v1::{Container, EnvVar};

use crate::field::{Error, ErrorList, Path};
use crate::validation::names::{
    is_config_map_key, is_relaxed_env_var_name, name_is_dns_subdomain, validate_qualified_name,
};
use crate::validation::s;

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
/// Fields `ConvertDownwardAPIFieldLabel` accepts for v1 (before the per-use allow-list).
const DOWNWARD_API_FIELD_LABELS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `ValidateEnv` (with `RelaxedEnvironmentVariableValidation`, beta and on since 1.32).
pub(super) fn validate_env(vars: &[EnvVar], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        if ev.name.is_empty() {
            errs.push(Error::required(&p.child("name"), ""));
        } else {
            for m in is_relaxed_env_var_name(&ev.name) {
                errs.push(Error::invalid(&p.child("name"), ev.name.as_str(), m));
            }
        }
        errs.extend(validate_env_var_value_from(ev, &p.child("valueFrom")));
    }
    errs
}

fn validate_env_var_value_from(ev: &EnvVar, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let Some(from) = &ev.value_from else {
        return errs;
    };
    let mut num = 0;
    if let Some(fr) = &from.field_ref {
        num += 1;
        errs.extend(validate_object_field_selector(
            s(&fr.api_version),
            &fr.field_path,
            &path.child("fieldRef"),
        ));
    }
    if let Some(rf) = &from.resource_field_ref {
        num += 1;
        let p = path.child("resourceFieldRef");
        if rf.resource.is_empty() {
            errs.push(Error::required(&p.child("resource"), ""));
        } else if !RESOURCE_FIELD_PATHS.contains(&rf.resource.as_str())
            && !rf.resource.starts_with("requests.hugepages-")
            && !rf.resource.starts_with("limits.hugepages-")
        {
            errs.push(Error::not_supported(
                &p.child("resource"),
                rf.resource.as_str(),
                RESOURCE_FIELD_PATHS,
            ));
        }
    }
    if let Some(r) = &from.config_map_key_ref {
        num += 1;
        errs.extend(validate_key_selector(
            &r.name,
            &r.key,
            &path.child("configMapKeyRef"),
        ));
    }
    if let Some(r) = &from.secret_key_ref {
        num += 1;
        errs.extend(validate_key_selector(
            &r.name,
            &r.key,
            &path.child("secretKeyRef"),
        ));
    }
    if num != 0 && !s(&ev.value).is_empty() {
        errs.push(Error::invalid(
            path,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else {
        errs.extend(exactly_one_source(
            num,
            "`fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            path,
        ));
    }
    errs
}

/// A `valueFrom` or `envFrom` entry names exactly one source: none is "must specify one of",
/// several are "may not have more than one field specified at a time".
fn exactly_one_source(count: usize, sources: &str, path: &Path) -> Option<Error> {
    match count {
        0 => Some(Error::invalid(
            path,
            "",
            format!("must specify one of: {sources}"),
        )),
        1 => None,
        _ => Some(Error::invalid(
            path,
            "",
            "may not have more than one field specified at a time",
        )),
    }
}

fn validate_key_selector(name: &str, key: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for m in name_is_dns_subdomain(name, false) {
        errs.push(Error::invalid(&path.child("name"), name, m));
    }
    if key.is_empty() {
        errs.push(Error::required(&path.child("key"), ""));
    } else {
        for m in is_config_map_key(key) {
            errs.push(Error::invalid(&path.child("key"), key, m));
        }
    }
    errs
}

/// `validateObjectFieldSelector` for env vars (defaulting sets `apiVersion: v1`).
fn validate_object_field_selector(api_version: &str, field_path: &str, path: &Path) -> ErrorList {
    if api_version.is_empty() {
        return vec![Error::required(&path.child("apiVersion"), "")];
    }
    if field_path.is_empty() {
        return vec![Error::required(&path.child("fieldPath"), "")];
    }
    let (base, subscript) = match field_path.split_once('[') {
        Some((b, rest)) if rest.ends_with(']') => (b, Some(&rest[..rest.len() - 1])),
        _ => (field_path, None),
    };
    if api_version != "v1" {
        return vec![Error::invalid(
            &path.child("fieldPath"),
            field_path,
            format!("error converting fieldPath: unsupported pod version: {api_version}"),
        )];
    }
    if !DOWNWARD_API_FIELD_LABELS.contains(&base)
        || (subscript.is_some() && !matches!(base, "metadata.annotations" | "metadata.labels"))
    {
        return vec![Error::invalid(
            &path.child("fieldPath"),
            field_path,
            format!("error converting fieldPath: field label not supported: {field_path}"),
        )];
    }
    if let Some(sub) = subscript {
        let key = sub.trim_matches('\'');
        return match base {
            "metadata.annotations" => validate_qualified_name(&key.to_lowercase(), path),
            _ => validate_qualified_name(key, path),
        };
    }
    if !ENV_FIELD_PATHS.contains(&base) {
        return vec![Error::not_supported(
            &path.child("fieldPath"),
            base,
            ENV_FIELD_PATHS,
        )];
    }
    Vec::new()
}

pub(super) fn validate_env_from(c: &Container, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, ev) in c.env_from.iter().flatten().enumerate() {
        let p = path.index(i);
        let prefix = s(&ev.prefix);
        if !prefix.is_empty() {
            for m in is_relaxed_env_var_name(prefix) {
                errs.push(Error::invalid(&p.child("prefix"), prefix, m));
            }
        }
        let mut num = 0;
        for (set, field, name) in [
            (
                ev.config_map_ref.is_some(),
                "configMapRef",
                ev.config_map_ref.as_ref().map(|r| r.name.as_str()),
            ),
            (
                ev.secret_ref.is_some(),
                "secretRef",
                ev.secret_ref.as_ref().map(|r| r.name.as_str()),
            ),
        ] {
            if !set {
                continue;
            }
            num += 1;
            let name = name.unwrap_or("");
            let np = p.child(field).child("name");
            if name.is_empty() {
                errs.push(Error::required(&np, ""));
            } else {
                for m in name_is_dns_subdomain(name, true) {
                    errs.push(Error::invalid(&np, name, m));
                }
            }
        }
        errs.extend(exactly_one_source(
            num,
            "`configMapRef` or `secretRef`",
            path,
        ));
    }
    errs
}
