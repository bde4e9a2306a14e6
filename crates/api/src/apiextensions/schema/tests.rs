//! Custom objects against a schema, by keyword, with the messages kube-apiserver returns.

use serde_json::{json, Value};

use super::*;
use crate::field::messages;

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["cronSpec"],
                "properties": {
                    "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                    "image": {"type": "string", "minLength": 2, "maxLength": 10},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                    "mode": {"type": "string", "enum": ["Fast", "Slow"]},
                    "tags": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                    "port": {"x-kubernetes-int-or-string": true},
                    "when": {"type": "string", "format": "date-time"},
                    "note": {"type": "string", "nullable": true},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                },
            },
            "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
        },
    })
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"}, "spec": spec})
}

fn check(spec: Value) -> Vec<String> {
    let mut o = obj(spec);
    prune(&schema(), &mut o);
    default(&schema(), &mut o);
    messages(&validate(&schema(), &o))
}

#[test]
fn a_valid_object() {
    assert!(check(json!({"cronSpec": "* * * * */5", "image": "img", "mode": "Fast", "tags": ["a"], "port": 80, "note": null})).is_empty());
    assert!(check(
        json!({"cronSpec": "* * * * */5", "port": "http", "when": "2026-01-02T03:04:05Z"})
    )
    .is_empty());
}

#[test]
fn types() {
    assert_eq!(
        check(json!({"cronSpec": "* * * * *", "replicas": "string"})),
        [
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ]
    );
    assert_eq!(
        check(json!({"cronSpec": "* * * * *", "tags": ["a", 1]})),
        [
            r#"spec.tags[1]: Invalid value: "integer": spec.tags[1] in body must be of type string: "integer""#
        ]
    );
    assert_eq!(
        check(json!({"cronSpec": "* * * * *", "port": true})),
        [
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
        ]
    );
}

#[test]
fn required_enum_pattern_and_bounds() {
    assert_eq!(check(json!({})), ["spec.cronSpec: Required value"]);
    assert_eq!(
        check(json!({"cronSpec": "bad", "mode": "Medium", "replicas": 11, "image": "a"})),
        [
            r#"spec.cronSpec: Invalid value: "bad": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'"#,
            r#"spec.image: Invalid value: "a": spec.image in body should be at least 2 chars long"#,
            r#"spec.mode: Unsupported value: "Medium": supported values: "Fast", "Slow""#,
            "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        ]
    );
    assert_eq!(
        check(json!({"cronSpec": "* * * * *", "replicas": 0, "image": "abcdefghijkl"})),
        [
            "spec.image: Too long: may not be more than 10 bytes",
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        ]
    );
}

#[test]
fn arrays_and_formats() {
    assert_eq!(
        check(json!({"cronSpec": "* * * * *", "tags": ["a", "b", "a"]})),
        [
            "spec.tags: Too many: 3: must have at most 2 items",
            r#"spec.tags[2]: Duplicate value: "a""#,
        ]
    );
    assert_eq!(
        check(json!({"cronSpec": "* * * * *", "tags": []})),
        ["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"]
    );
    assert_eq!(
        check(json!({"cronSpec": "* * * * *", "when": "yesterday"})),
        [
            r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#
        ]
    );
}

#[test]
fn embedded_resources_need_kind_and_api_version() {
    assert_eq!(
        check(json!({"cronSpec": "* * * * *", "template": {"metadata": {}}})),
        [
            "spec.template.apiVersion: Required value: must not be empty",
            "spec.template.kind: Required value: must not be empty",
        ]
    );
}

#[test]
fn pruning_keeps_what_the_schema_specifies() {
    let mut o = obj(
        json!({"cronSpec": "x", "bogus": 1, "extra": {"anything": [1]}, "labels": {"a": "b"},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}, "replicas": null}),
    );
    o["junk"] = json!(true);
    o["status"] = json!({"replicas": 1, "unknown": 2});
    let dropped = prune(&schema(), &mut o);
    assert_eq!(dropped, ["junk", "spec.bogus", "status.unknown"]);
    assert_eq!(o["spec"]["extra"], json!({"anything": [1]}));
    assert_eq!(o["spec"]["template"]["kind"], "Pod");
    assert_eq!(o["metadata"]["name"], "x");
    // A null in a non-nullable field with a default is kept for defaulting to fill.
    default(&schema(), &mut o);
    assert_eq!(o["spec"]["replicas"], 1);
}

#[test]
fn defaults_fill_absent_fields_only() {
    let mut o = obj(json!({"cronSpec": "x", "replicas": 3}));
    default(&schema(), &mut o);
    assert_eq!(o["spec"]["replicas"], 3);
    let mut o = obj(json!({"cronSpec": "x"}));
    default(&schema(), &mut o);
    assert_eq!(o["spec"]["replicas"], 1);
}
