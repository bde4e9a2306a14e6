//! ConfigMap and Secret validation, with the messages kube-apiserver 1.32 sends.

use super::*;
use crate::field::aggregate_message;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};

fn cm(v: Value) -> ConfigMap {
    serde_json::from_value(v).unwrap()
}

fn secret(v: Value) -> Secret {
    serde_json::from_value(v).unwrap()
}

fn meta() -> Value {
    json!({"name": "cfg", "namespace": "default", "resourceVersion": "1"})
}

fn messages(errs: &ErrorList) -> Vec<String> {
    errs.iter().map(|e| e.to_string()).collect()
}

#[test]
fn config_map_keys() {
    let ok =
        cm(json!({"metadata": meta(), "data": {"a.b-c_D": "1"}, "binaryData": {"bin": "AAE="}}));
    assert!(validate_config_map_create(&ok).is_empty());
    let bad = cm(
        json!({"metadata": meta(), "data": {"a b": "1", "..x": "2", "dup": "3"},
        "binaryData": {"dup": "AA==", ".": "AA=="}}),
    );
    assert_eq!(
        messages(&validate_config_map_create(&bad)),
        [
            "data[..x]: Invalid value: \"..x\": must not start with '..'",
            "data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            "data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData",
            "binaryData[.]: Invalid value: \".\": must not be '.'",
        ]
    );
}

#[test]
fn size_limit_is_one_mebibyte() {
    let exactly = "x".repeat(MAX_SIZE);
    let ok = cm(json!({"metadata": meta(), "data": {"a": exactly}}));
    assert!(validate_config_map_create(&ok).is_empty());
    let over = cm(json!({"metadata": meta(), "data": {"a": exactly, "b": "y"}}));
    assert_eq!(
        messages(&validate_config_map_create(&over)),
        ["[]: Too long: may not be more than 1048576 bytes"]
    );
    let big = secret(json!({"metadata": meta(), "type": "Opaque",
        "data": {"a": base64(&"x".repeat(MAX_SIZE + 1))}}));
    assert_eq!(
        messages(&validate_secret_create(&big)),
        ["data: Too long: may not be more than 1048576 bytes"]
    );
}

fn base64(s: &str) -> String {
    serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn immutable_config_map() {
    let old = cm(json!({"metadata": meta(), "data": {"a": "1"}, "immutable": true}));
    let same = old.clone();
    assert!(validate_config_map_update(&same, &old).is_empty());
    let changed = cm(json!({"metadata": meta(), "data": {"a": "2"}, "binaryData": {"b": "AA=="}}));
    assert_eq!(
        aggregate_message(&validate_config_map_update(&changed, &old)),
        "[immutable: Forbidden: field is immutable when `immutable` is set, data: Forbidden: field is immutable when `immutable` is set, binaryData: Forbidden: field is immutable when `immutable` is set]"
    );
    // A mutable one may become immutable, and change on the way.
    let mutable = cm(json!({"metadata": meta(), "data": {"a": "1"}}));
    let freeze = cm(json!({"metadata": meta(), "data": {"a": "3"}, "immutable": true}));
    assert!(validate_config_map_update(&freeze, &mutable).is_empty());
}

#[test]
fn secret_types() {
    let cases = [
        ("Opaque", json!({}), vec![]),
        (
            "kubernetes.io/tls",
            json!({"tls.crt": "eA=="}),
            vec!["data[tls.key]: Required value"],
        ),
        (
            "kubernetes.io/tls",
            json!({"tls.crt": "eA==", "tls.key": "eA=="}),
            vec![],
        ),
        (
            "kubernetes.io/dockerconfigjson",
            json!({}),
            vec!["data[.dockerconfigjson]: Required value"],
        ),
        (
            "kubernetes.io/dockerconfigjson",
            json!({".dockerconfigjson": base64("[1]")}),
            vec!["data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": json: cannot unmarshal array into Go value of type map[string]interface {}"],
        ),
        (
            "kubernetes.io/dockerconfigjson",
            json!({".dockerconfigjson": base64("{\"auths\":{}}")}),
            vec![],
        ),
        (
            "kubernetes.io/basic-auth",
            json!({}),
            vec!["data[username]: Required value", "data[password]: Required value"],
        ),
        ("kubernetes.io/basic-auth", json!({"password": ""}), vec![]),
        (
            "kubernetes.io/ssh-auth",
            json!({"ssh-privatekey": ""}),
            vec!["data[ssh-privatekey]: Required value"],
        ),
        (
            "kubernetes.io/service-account-token",
            json!({}),
            vec!["metadata.annotations[kubernetes.io/service-account.name]: Required value"],
        ),
        ("example.com/custom", json!({}), vec![]),
    ];
    for (type_, data, want) in cases {
        let s = secret(json!({"metadata": meta(), "type": type_, "data": data}));
        assert_eq!(messages(&validate_secret_create(&s)), want, "{type_}");
    }
}

#[test]
fn secret_update() {
    let old = secret(
        json!({"metadata": meta(), "type": "Opaque", "data": {"a": "eA=="}, "immutable": true}),
    );
    let new = secret(json!({"metadata": meta(), "type": "example.com/x", "data": {"a": "eQ=="}}));
    assert_eq!(
        messages(&validate_secret_update(&new, &old)),
        [
            "type: Invalid value: \"example.com/x\": field is immutable",
            "immutable: Forbidden: field is immutable when `immutable` is set",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
}
