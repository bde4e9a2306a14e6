//! ConfigMap and Secret validation: mirrors `ValidateConfigMap`, `ValidateConfigMapUpdate`,
//! `ValidateSecret` and `ValidateSecretUpdate` of `pkg/apis/core/validation/validation.go`.
//!
//! Keys are `IsConfigMapKey` (`[-._a-zA-Z0-9]+`, not `.`/`..`/`..*`), a ConfigMap's `data` and
//! `binaryData` may not share a key, and the values together hold at most 1 MiB
//! (`core.MaxSecretSize`). `immutable: true` freezes `data` (and `binaryData`) and itself; a
//! Secret's `type` never changes and decides which keys it must have. A Secret's `stringData`
//! has been merged into `data` before validation (as Kubernetes' v1 → internal conversion
//! does), so its keys are checked as `data[key]`.
//!
//! Deviations: a malformed `.dockercfg` / `.dockerconfigjson` is reported with serde_json's
//! reason where Go prints `encoding/json`'s; `bootstrap.kubernetes.io/token` Secrets get no
//! token-specific checks.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;

use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{is_config_map_key, name_is_dns_subdomain, validate_immutable};
use crate::field::{BadValue, Error, ErrorList, Path};

/// `core.MaxSecretSize`, also a ConfigMap's limit.
pub const MAX_SIZE: usize = 1024 * 1024;
/// The detail of every refused change to an immutable ConfigMap or Secret.
pub const IMMUTABLE_SET_MSG: &str = "field is immutable when `immutable` is set";

pub const SECRET_TYPE_OPAQUE: &str = "Opaque";
pub const SECRET_TYPE_SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
pub const SECRET_TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";
pub const SECRET_TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const SECRET_TYPE_BASIC_AUTH: &str = "kubernetes.io/basic-auth";
pub const SECRET_TYPE_SSH_AUTH: &str = "kubernetes.io/ssh-auth";
pub const SECRET_TYPE_TLS: &str = "kubernetes.io/tls";
/// `core.ServiceAccountNameKey`
pub const SERVICE_ACCOUNT_NAME_KEY: &str = "kubernetes.io/service-account.name";

fn check_key(key: &str, path: &Path, errs: &mut ErrorList) {
    for msg in is_config_map_key(key) {
        errs.push(Error::invalid(&path.key(key), key, msg));
    }
}

/// `ValidateConfigMap`.
pub fn validate_config_map_create(cm: &ConfigMap) -> ErrorList {
    let mut errs = validate_object_meta(
        &cm.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    let empty_bin = BTreeMap::new();
    let binary = cm.binary_data.as_ref().unwrap_or(&empty_bin);
    let mut total = 0;
    let data_path = Path::new("data");
    for (key, value) in cm.data.iter().flatten() {
        check_key(key, &data_path, &mut errs);
        if binary.contains_key(key) {
            errs.push(Error::invalid(
                &data_path.key(key),
                key.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.len();
    }
    let bin_path = Path::new("binaryData");
    for (key, value) in binary {
        check_key(key, &bin_path, &mut errs);
        total += value.0.len();
    }
    if total > MAX_SIZE {
        // Upstream passes `field.NewPath("")` (the whole object), which Go prints as `[]`.
        errs.push(Error::too_long(&Path::new("[]"), MAX_SIZE));
    }
    errs
}

/// `ValidateConfigMapUpdate`.
pub fn validate_config_map_update(new: &ConfigMap, old: &ConfigMap) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(Error::forbidden(&Path::new("immutable"), IMMUTABLE_SET_MSG));
        }
        if new.data != old.data {
            errs.push(Error::forbidden(&Path::new("data"), IMMUTABLE_SET_MSG));
        }
        if new.binary_data != old.binary_data {
            errs.push(Error::forbidden(
                &Path::new("binaryData"),
                IMMUTABLE_SET_MSG,
            ));
        }
    }
    errs.extend(validate_config_map_create(new));
    errs
}

/// `ValidateSecret`.
pub fn validate_secret_create(secret: &Secret) -> ErrorList {
    let mut errs = validate_object_meta(
        &secret.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    let data_path = Path::new("data");
    let empty = BTreeMap::new();
    let data: &BTreeMap<String, ByteString> = secret.data.as_ref().unwrap_or(&empty);
    let mut total = 0;
    for (key, value) in data {
        check_key(key, &data_path, &mut errs);
        total += value.0.len();
    }
    if total > MAX_SIZE {
        errs.push(Error::too_long(&data_path, MAX_SIZE));
    }
    let has = |k: &str| data.contains_key(k);
    match secret.type_.as_deref().unwrap_or("") {
        SECRET_TYPE_SERVICE_ACCOUNT_TOKEN => {
            let named = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SERVICE_ACCOUNT_NAME_KEY))
                .is_some_and(|v| !v.is_empty());
            if !named {
                errs.push(Error::required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key(SERVICE_ACCOUNT_NAME_KEY),
                    "",
                ));
            }
        }
        t @ (SECRET_TYPE_DOCKERCFG | SECRET_TYPE_DOCKER_CONFIG_JSON) => {
            let key = if t == SECRET_TYPE_DOCKERCFG {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.get(key) {
                None => errs.push(Error::required(&data_path.key(key), "")),
                Some(bytes) => {
                    if let Some(reason) = json_map_error(&bytes.0) {
                        errs.push(Error::invalid(
                            &data_path.key(key),
                            "<secret contents redacted>",
                            reason,
                        ));
                    }
                }
            }
        }
        // Either may be empty, but one must be there.
        SECRET_TYPE_BASIC_AUTH if !has("username") && !has("password") => {
            errs.push(Error::required(&data_path.key("username"), ""));
            errs.push(Error::required(&data_path.key("password"), ""));
        }
        SECRET_TYPE_SSH_AUTH if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            errs.push(Error::required(&data_path.key("ssh-privatekey"), ""));
        }
        SECRET_TYPE_TLS => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errs.push(Error::required(&data_path.key(key), ""));
                }
            }
        }
        _ => {}
    }
    errs
}

/// `ValidateSecretUpdate`.
pub fn validate_secret_update(new: &Secret, old: &Secret) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let shown = || BadValue::Str(new.type_.clone().unwrap_or_default());
    errs.extend(validate_immutable(
        &new.type_,
        &old.type_,
        shown,
        &Path::new("type"),
    ));
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(Error::forbidden(&Path::new("immutable"), IMMUTABLE_SET_MSG));
        }
        if new.data != old.data {
            errs.push(Error::forbidden(&Path::new("data"), IMMUTABLE_SET_MSG));
        }
    }
    errs.extend(validate_secret_create(new));
    errs
}

/// Why Go's `json.Unmarshal` of `input` into a `map[string]interface{}` fails, as it says it
/// for the common cases (serde_json's reason for a syntax error).
fn json_map_error(input: &[u8]) -> Option<String> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Some("unexpected end of JSON input".into());
    }
    let what = match serde_json::from_slice::<serde_json::Value>(input) {
        Err(e) => return Some(e.to_string()),
        Ok(serde_json::Value::Object(_) | serde_json::Value::Null) => return None,
        Ok(serde_json::Value::Array(_)) => "array",
        Ok(serde_json::Value::String(_)) => "string",
        Ok(serde_json::Value::Bool(_)) => "bool",
        Ok(serde_json::Value::Number(_)) => "number",
    };
    Some(format!(
        "json: cannot unmarshal {what} into Go value of type map[string]interface {{}}"
    ))
}

#[cfg(test)]
mod tests;
