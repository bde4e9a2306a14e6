//! A custom object against its CRD version's `openAPIV3Schema`, as apiextensions-apiserver
//! treats it on every write: pruning of unknown fields (`structural/pruning`), defaulting
//! (`structural/defaulting`), then validation (kube-openapi's `validate` behind
//! `apiextensions-apiserver/pkg/apiserver/validation.ValidateCustomResource`), each error
//! converted to a `field.Error` as `ConvertErrors` does: `Required value`, `Unsupported value`
//! for `enum`, `Too long` for `maxLength`, `Too many` for `maxItems`, and `Invalid value` with
//! kube-openapi's message (`spec.replicas in body must be of type integer: "string"`) for the
//! rest.
//!
//! The schema is read as JSON (the CRD's own form), so every keyword is looked up where it is
//! used. Deviation: `anyOf`/`oneOf`/`allOf`/`not` are not evaluated (they may only constrain
//! value validation in a structural schema; `x-kubernetes-int-or-string` is checked directly).

use serde_json::{Map, Value};

use crate::field::{BadValue, Error, ErrorList, Path};

/// Fields every object has at its root (and an embedded resource at its own root), kept by
/// pruning and not validated by the schema here (ObjectMeta is validated as ObjectMeta).
const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn flag(schema: &Value, ext: &str) -> bool {
    schema.get(ext).and_then(Value::as_bool) == Some(true)
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// `additionalProperties` as a schema (`true` is an unconstrained schema).
fn additional(schema: &Value) -> Option<&Value> {
    static ANY: Value = Value::Null;
    match schema.get("additionalProperties") {
        Some(Value::Bool(true)) => Some(&ANY),
        Some(s @ Value::Object(_)) => Some(s),
        _ => None,
    }
}

/// Drop the fields the schema does not specify (`structural/pruning.Prune`), and nulls in
/// fields that are neither nullable nor defaulted (`PruneNonNullableNullsWithoutDefaults`).
/// Returns the paths dropped (`spec.foo`), for `fieldValidation` warnings and errors.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut dropped = Vec::new();
    prune_at(schema, obj, "", true, &mut dropped);
    dropped
}

fn prune_at(schema: &Value, value: &mut Value, path: &str, root: bool, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
            let props = properties(schema);
            let extra = additional(schema);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if embedded && ROOT_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                let p = child(path, &k);
                let sub = props.and_then(|ps| ps.get(&k)).or(extra);
                match sub {
                    Some(s) => {
                        let v = map.get_mut(&k).expect("key listed");
                        if v.is_null()
                            && s.is_object()
                            && !flag(s, "nullable")
                            && s.get("default").is_none()
                        {
                            map.remove(&k);
                            continue;
                        }
                        prune_at(s, v, &p, false, out);
                    }
                    None if preserve => {}
                    None => {
                        map.remove(&k);
                        out.push(p);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    prune_at(s, v, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

/// Fill absent fields that have a `default` (`structural/defaulting.Default`), after pruning.
pub fn default(schema: &Value, obj: &mut Value) {
    default_at(schema, obj, true)
}

fn default_at(schema: &Value, value: &mut Value, root: bool) {
    match value {
        Value::Object(map) => {
            if let Some(props) = properties(schema) {
                for (k, s) in props {
                    if root && ROOT_FIELDS.contains(&k.as_str()) {
                        continue;
                    }
                    if let Some(d) = s.get("default") {
                        if map
                            .get(k)
                            .is_none_or(|v| v.is_null() && !flag(s, "nullable"))
                        {
                            map.insert(k.clone(), d.clone());
                        }
                    }
                    if let Some(v) = map.get_mut(k) {
                        default_at(s, v, false);
                    }
                }
            }
            if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                let known = properties(schema);
                for (k, v) in map.iter_mut() {
                    if known.is_none_or(|p| !p.contains_key(k)) {
                        default_at(s, v, false);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for v in items {
                    default_at(s, v, false);
                }
            }
        }
        _ => {}
    }
}

/// Validate `obj` (pruned and defaulted) against the schema. `apiVersion`, `kind` and
/// `metadata` at the root are not walked.
pub fn validate(schema: &Value, obj: &Value) -> ErrorList {
    let mut errs = Vec::new();
    validate_at(schema, obj, "", true, &mut errs);
    errs
}

/// kube-openapi's name of a JSON value's type (`getTypeName`/`swag`'s).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, v: &Value) -> bool {
    match (expected, v) {
        ("object", Value::Object(_)) | ("array", Value::Array(_)) => true,
        ("string", Value::String(_)) | ("boolean", Value::Bool(_)) => true,
        ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// The offending value as Go's `%v`/`%q` of the decoded JSON prints it in a field error.
fn bad_value(v: &Value) -> BadValue {
    match v {
        Value::Null => BadValue::Null,
        Value::Bool(b) => BadValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => BadValue::Int(i),
            None => BadValue::Raw(n.to_string()),
        },
        Value::String(s) => BadValue::Str(s.clone()),
        other => BadValue::Raw(other.to_string()),
    }
}

/// A number as Go's `%v` prints a schema bound (`1`, `1.5`).
fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => v.to_string(),
    }
}

fn invalid(path: &str, v: &Value, detail: String) -> Error {
    Error::invalid(&Path::new(path), bad_value(v), detail)
}

/// The label of `path` in kube-openapi's messages (the root is `body`).
fn label(path: &str) -> &str {
    if path.is_empty() {
        "body"
    } else {
        path
    }
}

fn validate_at(schema: &Value, value: &Value, path: &str, root: bool, errs: &mut ErrorList) {
    if value.is_null() && flag(schema, "nullable") {
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !matches!(value, Value::String(_)) && !type_matches("integer", value) {
            errs.push(Error {
                kind: crate::field::ErrorType::TypeInvalid,
                ..invalid(
                    path,
                    &Value::String(type_name(value).into()),
                    format!(
                        "{} in body must be of type integer,string: {:?}",
                        label(path),
                        type_name(value)
                    ),
                )
            });
        }
        return;
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        if !type_matches(t, value) {
            // `InvalidTypeCode` → `field.TypeInvalid(path, <type name>, message)`.
            let actual = type_name(value);
            errs.push(Error {
                kind: crate::field::ErrorType::TypeInvalid,
                ..invalid(
                    path,
                    &Value::String(actual.into()),
                    format!("{} in body must be of type {t}: {:?}", label(path), actual),
                )
            });
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            let shown: Vec<String> = allowed
                .iter()
                .map(|a| match a {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            let shown: Vec<&str> = shown.iter().map(String::as_str).collect();
            errs.push(Error::not_supported(
                &Path::new(path),
                bad_value(value),
                &shown,
            ));
        }
    }
    match value {
        Value::String(s) => validate_string(schema, s, value, path, errs),
        Value::Number(_) => validate_number(schema, value, path, errs),
        Value::Array(items) => validate_array(schema, items, value, path, errs),
        Value::Object(map) => validate_object(schema, map, path, root, errs),
        _ => {}
    }
}

fn validate_string(schema: &Value, s: &str, value: &Value, path: &str, errs: &mut ErrorList) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if len > max {
            errs.push(Error::too_long(&Path::new(path), max as usize));
        }
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if len < min {
            let detail = format!(
                "{} in body should be at least {min} chars long",
                label(path)
            );
            errs.push(invalid(path, value, detail));
        }
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        // An invalid pattern was refused when the CRD was written.
        if regex::Regex::new(p).is_ok_and(|re| !re.is_match(s)) {
            let detail = format!("{} in body should match '{p}'", label(path));
            errs.push(invalid(path, value, detail));
        }
    }
    if let Some(f) = schema.get("format").and_then(Value::as_str) {
        if !format_ok(f, s) {
            errs.push(Error {
                kind: crate::field::ErrorType::TypeInvalid,
                ..invalid(
                    path,
                    value,
                    format!("{} in body must be of type {f}: {:?}", label(path), s),
                )
            });
        }
    }
}

/// The formats kube-openapi's `strfmt` registry checks that are cheap to check here; any other
/// format is accepted, as kube-openapi accepts a format it does not know.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok() && s.len() == 10,
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s.parse::<ipnet::IpNet>().is_ok(),
        "uuid" => {
            let b = s.as_bytes();
            b.len() == 36
                && b.iter().enumerate().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => *c == b'-',
                    _ => c.is_ascii_hexdigit(),
                })
        }
        _ => true,
    }
}

fn validate_number(schema: &Value, value: &Value, path: &str, errs: &mut ErrorList) {
    let Some(n) = value.as_f64() else { return };
    let exclusive = |k: &str| flag(schema, k);
    if let Some(max) = schema.get("maximum") {
        let m = max.as_f64().unwrap_or(f64::MAX);
        if exclusive("exclusiveMaximum") && n >= m {
            let detail = format!("{} in body should be less than {}", label(path), num(max));
            errs.push(invalid(path, value, detail));
        } else if n > m {
            let detail = format!(
                "{} in body should be less than or equal to {}",
                label(path),
                num(max)
            );
            errs.push(invalid(path, value, detail));
        }
    }
    if let Some(min) = schema.get("minimum") {
        let m = min.as_f64().unwrap_or(f64::MIN);
        if exclusive("exclusiveMinimum") && n <= m {
            let detail = format!(
                "{} in body should be greater than {}",
                label(path),
                num(min)
            );
            errs.push(invalid(path, value, detail));
        } else if n < m {
            let detail = format!(
                "{} in body should be greater than or equal to {}",
                label(path),
                num(min)
            );
            errs.push(invalid(path, value, detail));
        }
    }
    if let Some(mult) = schema.get("multipleOf") {
        if let Some(m) = mult.as_f64().filter(|m| *m > 0.0) {
            if (n / m).fract() != 0.0 {
                let detail = format!(
                    "{} in body should be a multiple of {}",
                    label(path),
                    num(mult)
                );
                errs.push(invalid(path, value, detail));
            }
        }
    }
}

fn validate_array(
    schema: &Value,
    items: &[Value],
    value: &Value,
    path: &str,
    errs: &mut ErrorList,
) {
    let n = items.len();
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
        if n as u64 > max {
            errs.push(Error::too_many(&Path::new(path), n, max as usize));
        }
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
        if (n as u64) < min {
            let detail = format!("{} in body should have at least {min} items", label(path));
            errs.push(Error::invalid(&Path::new(path), n as i64, detail));
        }
    }
    let _ = value;
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    if flag(schema, "uniqueItems") || list_type == Some("set") {
        for (i, v) in items.iter().enumerate() {
            if items[..i].contains(v) {
                errs.push(Error::duplicate(
                    &Path::new(&format!("{path}[{i}]")),
                    bad_value(v),
                ));
            }
        }
    }
    if list_type == Some("map") {
        let keys: Vec<&str> = schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let key_of = |v: &Value| -> Vec<Value> {
            keys.iter()
                .map(|k| v.get(*k).cloned().unwrap_or(Value::Null))
                .collect()
        };
        for (i, v) in items.iter().enumerate() {
            let k = key_of(v);
            if items[..i].iter().any(|o| key_of(o) == k) {
                let shown: Map<String, Value> = keys
                    .iter()
                    .zip(k)
                    .map(|(name, v)| (name.to_string(), v))
                    .collect();
                errs.push(Error::duplicate(
                    &Path::new(&format!("{path}[{i}]")),
                    BadValue::Raw(Value::Object(shown).to_string()),
                ));
            }
        }
    }
    if let Some(s) = schema.get("items") {
        for (i, v) in items.iter().enumerate() {
            validate_at(s, v, &format!("{path}[{i}]"), false, errs);
        }
    }
}

fn validate_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    root: bool,
    errs: &mut ErrorList,
) {
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    if embedded {
        // `objectmeta.Validate` of an embedded resource.
        for f in ["apiVersion", "kind"] {
            if map.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                errs.push(Error::required(
                    &Path::new(&child(path, f)),
                    "must not be empty",
                ));
            }
        }
    }
    let skip = |k: &str| (root || embedded) && ROOT_FIELDS.contains(&k);
    if let Some(Value::Array(required)) = schema.get("required") {
        for r in required.iter().filter_map(Value::as_str) {
            if !skip(r) && map.get(r).is_none() {
                errs.push(Error::required(&Path::new(&child(path, r)), ""));
            }
        }
    }
    let n = map.len();
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
        if n as u64 > max {
            errs.push(Error::too_many(&Path::new(path), n, max as usize));
        }
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
        if (n as u64) < min {
            let detail = format!(
                "{} in body should have at least {min} properties",
                label(path)
            );
            errs.push(Error::invalid(&Path::new(path), n as i64, detail));
        }
    }
    let props = properties(schema);
    let extra = schema.get("additionalProperties").filter(|s| s.is_object());
    for (k, v) in map {
        if skip(k) {
            continue;
        }
        let sub = props.and_then(|p| p.get(k)).or(extra);
        if let Some(s) = sub {
            validate_at(s, v, &child(path, k), false, errs);
        }
    }
}

#[cfg(test)]
mod tests;
