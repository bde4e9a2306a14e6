//! Server-side apply and managedFields for the REST handlers: each kind's merge schema for
//! [`svcnet_ssa`], and kube-apiserver's FieldManager calls (`UpdateNoErrors` on create, update
//! and non-apply patch; `Apply` for `application/apply-patch+yaml`).
//!
//! The schema comes from Kubernetes' OpenAPI definitions (`svcnet_openapi`), as
//! kube-apiserver builds structured-merge-diff's types from its OpenAPI models:
//! `x-kubernetes-list-type` (`map` keyed by `x-kubernetes-list-map-keys`, `set`, `atomic`),
//! `x-kubernetes-map-type`, and the key fields' `default`s, which upstream publishes only in
//! its OpenAPI v3 (the `+default="TCP"` markers of the two port types). A kind with no
//! definition is deduced, as SMD deduces one: atomic lists, granular maps. A CRD's kinds take
//! theirs from the CRD version's `openAPIV3Schema`, as upstream's CRD handler does.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Value};
use svcnet_ssa::{FieldManager, ListType, MapType, PathElement, Set, Type};

use crate::part::Part;

/// Key fields' defaults that the v2 definitions leave out (upstream's `+default` markers,
/// published in its OpenAPI v3): a port without `protocol` is the TCP one.
const KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
];

/// How deep a schema is followed; deeper values are deduced (the served kinds are far
/// shallower; a self-referencing definition stops here).
const MAX_DEPTH: usize = 32;

/// The SSA type of an OpenAPI v2 schema (`$ref`s resolved through the definitions).
fn convert(schema: &Value, depth: usize) -> Type {
    convert_in(schema, depth, &mut Vec::new())
}

/// [`convert`] below the definitions named in `expanding` (the `$ref`s on the path here): a
/// definition that refers to itself (apiextensions' `JSONSchemaProps` does, through a dozen
/// fields) is deduced where it recurs, as structured-merge-diff treats a recursive type past
/// its first level, instead of being expanded once per path (exponential in the depth).
fn convert_in(schema: &Value, depth: usize, expanding: &mut Vec<String>) -> Type {
    if depth > MAX_DEPTH {
        return Type::default();
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        if expanding.iter().any(|e| e == r) {
            return Type::default();
        }
        let Some(d) = svcnet_openapi::resolve(r) else {
            return Type::default();
        };
        expanding.push(r.to_string());
        let ty = convert_in(d, depth + 1, expanding);
        expanding.pop();
        return ty;
    }
    let mut ty = match schema.get("type").and_then(Value::as_str) {
        Some("array") => {
            let items = schema.get("items").unwrap_or(&Value::Null);
            let element = convert_in(items, depth + 1, expanding);
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("map") => {
                    let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let mut t = Type::list_map(&keys, element);
                    if let Some(name) = items.get("$ref").and_then(Value::as_str) {
                        let name = name.rsplit('/').next().unwrap_or_default();
                        for (def, key, default) in KEY_DEFAULTS {
                            if *def == name && keys.contains(key) {
                                t = t.key_default(key, json!(default));
                            }
                        }
                    }
                    t
                }
                Some("set") => Type::set(),
                _ => Type {
                    list: ListType::Atomic,
                    element: Some(Box::new(element)),
                    ..Type::default()
                },
            }
        }
        _ => match (schema.get("properties"), schema.get("additionalProperties")) {
            (Some(Value::Object(props)), _) => Type::object(
                props
                    .iter()
                    .map(|(name, s)| (name.clone(), convert_in(s, depth + 1, expanding)))
                    .collect::<Vec<_>>(),
            ),
            (None, Some(v @ Value::Object(_))) => Type::map_of(convert_in(v, depth + 1, expanding)),
            _ => Type::default(),
        },
    };
    if schema.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
        ty.map = MapType::Atomic;
    }
    ty
}

/// The SSA schema of `apiVersion`/`kind`, built once per kind.
pub fn schema(api_version: &str, kind: &str) -> &'static Type {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), &'static Type>>> = OnceLock::new();
    let key = (api_version.to_string(), kind.to_string());
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .expect("ssa schemas");
    cache.entry(key).or_insert_with(|| {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let ty = svcnet_openapi::schema_for(group, version, kind)
            .map(|s| convert(s, 0))
            .unwrap_or_default();
        // One per served kind, kept for the process's life.
        Box::leak(Box::new(ty))
    })
}

fn subresource(part: Part) -> Option<&'static str> {
    match part {
        Part::Main => Some(""),
        Part::Status => Some("status"),
        Part::EphemeralContainers => Some("ephemeralcontainers"),
        _ => None,
    }
}

/// The fields a manager of `part` never owns: apimachinery's reset fields (`status` on the
/// main resource of a kind with a status subresource, `spec` on `/status`).
fn ignored(part: Part, has_status: bool) -> Option<Set> {
    let field = match part {
        Part::Main | Part::EphemeralContainers if has_status => "status",
        Part::Status => "spec",
        _ => return None,
    };
    let mut s = Set::new();
    s.insert(&[PathElement::field(field)]);
    Some(s)
}

/// Records `manager`'s Update of `live` (`None` on create) into `new`'s managedFields.
pub fn record_update(
    info: &crate::resources::ResourceInfo,
    part: Part,
    live: Option<&Value>,
    new: &mut Value,
    manager: &str,
) {
    if subresource(part).is_none() {
        return;
    }
    with_field_manager(info, part, |fm| {
        fm.update(live, new, manager, &crate::objmeta::now_rfc3339())
    })
}

/// Runs `f` with the FieldManager of `info` at `part`.
fn with_field_manager<T>(
    info: &crate::resources::ResourceInfo,
    part: Part,
    f: impl FnOnce(FieldManager<'_>) -> T,
) -> T {
    let api_version = info.api_version();
    // A CRD's kinds merge by their own schema's list types and map keys.
    let custom = info.strategy.custom().map(|c| {
        let v = c.current();
        if v.schema.is_object() {
            convert(&v.schema, 0)
        } else {
            Type::default()
        }
    });
    let ty = match &custom {
        Some(t) => t,
        None => schema(&api_version, info.kind),
    };
    let ign = ignored(part, info.has_status());
    f(FieldManager {
        ty,
        api_version: &api_version,
        subresource: subresource(part).unwrap_or(""),
        ignored: ign.as_ref(),
    })
}

/// Applies `config` for `manager` over `live` (`None`: not yet created).
pub fn apply(
    info: &crate::resources::ResourceInfo,
    part: Part,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, svcnet_ssa::ApplyError> {
    with_field_manager(info, part, |fm| {
        fm.apply(live, config, manager, force, &crate::objmeta::now_rfc3339())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `JSONSchemaProps` refers to itself through a dozen fields: expanded once per path it
    /// took the server to 24 GB; stopped where it recurs, it is a few thousand nodes.
    #[test]
    fn a_self_referencing_definition_is_expanded_once() {
        fn size(t: &Type) -> usize {
            1 + t.fields.values().map(size).sum::<usize>() + t.element.as_deref().map_or(0, size)
        }
        let crd = schema("apiextensions.k8s.io/v1", "CustomResourceDefinition");
        let versions = crd.field("spec").field("versions");
        assert!(
            versions.elements().fields.contains_key("schema"),
            "{versions:?}"
        );
        assert!(size(crd) < 10_000, "{}", size(crd));
    }

    #[test]
    fn service_ports_are_keyed_by_port_and_protocol() {
        let t = schema("v1", "Service");
        let ports = t.field("spec").field("ports");
        assert_eq!(
            ports.list,
            ListType::Map(vec!["port".into(), "protocol".into()])
        );
        assert_eq!(ports.key_defaults["protocol"], json!("TCP"));
        let d = schema("apps/v1", "Deployment");
        let c = d
            .field("spec")
            .field("template")
            .field("spec")
            .field("containers");
        assert_eq!(c.list, ListType::Map(vec!["name".into()]));
        assert_eq!(
            c.elements().field("env").list,
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(c.elements().field("args").list, ListType::Atomic);
        assert_eq!(d.field("metadata").field("finalizers").list, ListType::Set);
    }
}
