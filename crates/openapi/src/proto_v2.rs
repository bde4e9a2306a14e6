//! An OpenAPI v2 document (JSON) as gnostic's `openapi_v2.Document` protobuf
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), which client-go's
//! `OpenAPISchema` asks for: `kubectl explain --output plaintext-openapiv2`, and client-side
//! apply/edit when OpenAPI v3 is off. kube-openapi's `ToProtoBinary` parses the JSON with
//! gnostic and marshals it; this writes the same messages directly, for the subset of Swagger
//! 2.0 Kubernetes' definitions and svcnet's paths use (field numbers from gnostic's
//! `openapiv2/OpenAPIv2.proto`). Vendor extensions and `default`/`enum` values are gnostic
//! `Any`s holding YAML; JSON is YAML, so their JSON text is written there.

use serde_json::{Map, Value};

/// Schema keys the encoder writes; a definition using another key would lose it (the tests
/// check Kubernetes' definitions use no other).
pub const SCHEMA_KEYS: &[&str] = &[
    "$ref",
    "format",
    "title",
    "description",
    "default",
    "required",
    "enum",
    "additionalProperties",
    "type",
    "items",
    "allOf",
    "properties",
];

/// Encodes a Swagger 2.0 document.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 1, doc["swagger"].as_str().unwrap_or("2.0"));
    message(&mut out, 2, |b| {
        string(b, 1, str_of(&doc["info"]["title"]));
        string(b, 2, str_of(&doc["info"]["version"]));
    });
    if let Some(paths) = doc["paths"].as_object() {
        message(&mut out, 8, |b| {
            for (path, item) in paths {
                message(b, 2, |b| {
                    string(b, 1, path);
                    message(b, 2, |b| path_item(b, item));
                });
            }
        });
    }
    if let Some(defs) = doc["definitions"].as_object() {
        message(&mut out, 9, |b| named_schemas(b, 1, defs));
    }
    out
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn path_item(b: &mut Vec<u8>, item: &Value) {
    for (verb, field) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("patch", 8),
    ] {
        if let Some(op) = item.get(verb) {
            message(b, field, |b| operation(b, op));
        }
    }
}

fn operation(b: &mut Vec<u8>, op: &Value) {
    string(b, 3, str_of(&op["description"]));
    string(b, 5, str_of(&op["operationId"]));
    for p in op["parameters"].as_array().into_iter().flatten() {
        // ParametersItem.parameter → Parameter.{body_parameter | non_body_parameter}
        message(b, 8, |b| {
            message(b, 1, |b| {
                if p["in"] == "body" {
                    message(b, 1, |b| {
                        string(b, 1, str_of(&p["description"]));
                        string(b, 2, str_of(&p["name"]));
                        string(b, 3, "body");
                        boolean(b, 4, p["required"] == true);
                        message(b, 5, |b| schema(b, &p["schema"]));
                    });
                } else {
                    // NonBodyParameter.query_parameter_sub_schema
                    message(b, 2, |b| {
                        message(b, 3, |b| {
                            boolean(b, 1, p["required"] == true);
                            string(b, 2, str_of(&p["in"]));
                            string(b, 3, str_of(&p["description"]));
                            string(b, 4, str_of(&p["name"]));
                            string(b, 6, str_of(&p["type"]));
                            boolean(b, 20, p["uniqueItems"] == true);
                        });
                    });
                }
            });
        });
    }
    if let Some(responses) = op["responses"].as_object() {
        message(b, 9, |b| {
            for (code, r) in responses {
                // NamedResponseValue → ResponseValue.response → Response
                message(b, 1, |b| {
                    string(b, 1, code);
                    message(b, 2, |b| {
                        message(b, 1, |b| {
                            string(b, 1, str_of(&r["description"]));
                            if let Some(s) = r.get("schema") {
                                // SchemaItem.schema
                                message(b, 2, |b| message(b, 1, |b| schema(b, s)));
                            }
                        });
                    });
                });
            }
        });
    }
    vendor_extensions(b, 13, op.as_object());
}

fn named_schemas(b: &mut Vec<u8>, field: u32, schemas: &Map<String, Value>) {
    for (name, s) in schemas {
        message(b, field, |b| {
            string(b, 1, name);
            message(b, 2, |b| schema(b, s));
        });
    }
}

fn schema(b: &mut Vec<u8>, s: &Value) {
    string(b, 1, str_of(&s["$ref"]));
    string(b, 2, str_of(&s["format"]));
    string(b, 3, str_of(&s["title"]));
    string(b, 4, str_of(&s["description"]));
    if let Some(d) = s.get("default") {
        message(b, 5, |b| any(b, d));
    }
    for r in s["required"].as_array().into_iter().flatten() {
        string_always(b, 19, str_of(r));
    }
    for e in s["enum"].as_array().into_iter().flatten() {
        message(b, 20, |b| any(b, e));
    }
    match s.get("additionalProperties") {
        Some(Value::Bool(v)) => message(b, 21, |b| boolean_always(b, 2, *v)),
        Some(ap @ Value::Object(_)) => message(b, 21, |b| message(b, 1, |b| schema(b, ap))),
        _ => {}
    }
    match &s["type"] {
        Value::String(t) => message(b, 22, |b| string_always(b, 1, t)),
        Value::Array(ts) => message(b, 22, |b| {
            ts.iter().for_each(|t| string_always(b, 1, str_of(t)));
        }),
        _ => {}
    }
    if let Some(items) = s.get("items") {
        message(b, 23, |b| match items {
            Value::Array(all) => all.iter().for_each(|i| message(b, 1, |b| schema(b, i))),
            one => message(b, 1, |b| schema(b, one)),
        });
    }
    for a in s["allOf"].as_array().into_iter().flatten() {
        message(b, 24, |b| schema(b, a));
    }
    if let Some(props) = s["properties"].as_object() {
        message(b, 25, |b| named_schemas(b, 1, props));
    }
    vendor_extensions(b, 31, s.as_object());
}

fn vendor_extensions(b: &mut Vec<u8>, field: u32, map: Option<&Map<String, Value>>) {
    for (k, v) in map
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("x-"))
    {
        message(b, field, |b| {
            string(b, 1, k);
            message(b, 2, |b| any(b, v));
        });
    }
}

/// gnostic `Any { yaml = 2 }`.
fn any(b: &mut Vec<u8>, v: &Value) {
    string_always(b, 2, &format!("{v}\n"));
}

fn varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn key(b: &mut Vec<u8>, field: u32, wire: u8) {
    varint(b, (u64::from(field) << 3) | u64::from(wire));
}

/// A proto3 string, left out when empty (its default).
fn string(b: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        string_always(b, field, s);
    }
}

/// A string element of a repeated field (written even when empty).
fn string_always(b: &mut Vec<u8>, field: u32, s: &str) {
    key(b, field, 2);
    varint(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

fn boolean(b: &mut Vec<u8>, field: u32, v: bool) {
    if v {
        boolean_always(b, field, v);
    }
}

/// A bool in a oneof, where false must still be written.
fn boolean_always(b: &mut Vec<u8>, field: u32, v: bool) {
    key(b, field, 0);
    b.push(u8::from(v));
}

/// A length-delimited embedded message.
fn message(b: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    key(b, field, 2);
    varint(b, inner.len() as u64);
    b.extend_from_slice(&inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_definitions_use_only_encoded_keys() {
        fn walk(s: &Value, at: &str) {
            let Some(map) = s.as_object() else { return };
            for (k, v) in map {
                assert!(
                    k.starts_with("x-") || SCHEMA_KEYS.contains(&k.as_str()),
                    "{at}: {k} would be dropped"
                );
                match k.as_str() {
                    "properties" => v
                        .as_object()
                        .unwrap()
                        .iter()
                        .for_each(|(p, s)| walk(s, &format!("{at}.{p}"))),
                    "items" | "additionalProperties" => walk(v, at),
                    "allOf" => v.as_array().unwrap().iter().for_each(|s| walk(s, at)),
                    _ => {}
                }
            }
        }
        for (name, s) in crate::definitions() {
            walk(s, name);
        }
    }

    #[test]
    fn writes_gnostic_field_numbers() {
        let doc = serde_json::json!({
            "swagger": "2.0",
            "info": { "title": "Kubernetes", "version": "v1.32.0" },
            "definitions": {
                "A": { "type": "object", "x-kubernetes-map-type": "atomic" },
            },
        });
        let bytes = encode(&doc);
        // swagger = 1: "2.0"
        assert_eq!(&bytes[..5], b"\x0a\x032.0");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("x-kubernetes-map-type"));
        assert!(text.contains("\"atomic\"\n"));
    }
}
