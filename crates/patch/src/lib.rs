//! Patch semantics of the Kubernetes API server: strategic merge patch
//! (`k8s.io/apimachinery/pkg/util/strategicpatch`), JSON merge patch (RFC 7386) and JSON patch
//! (RFC 6902).
//!
//! Strategic merge needs to know, per field, how lists merge (by which key) — Kubernetes takes it
//! from Go struct tags; here it is the [`schema`] table for the kinds svcnet serves.
//!
//! Start with [`strategic_merge_patch`] (what `kubectl apply`, `edit`, `set image` and
//! `patch` without `--type` send). It follows upstream step by step — list order included,
//! which kubectl's `$setElementOrder` depends on — except where svcnet deliberately differs:
//!
//! - Service `spec.ports` elements are told apart by protocol as well as port
//!   ([`schema::Discriminator`], kubernetes#39188): UDP 53 patched in next to TCP 53 is a
//!   second port, not a change of the first.
//! - Results carry no directive keys and no `null` members (upstream leaves them for the decoding
//!   into Go structs to drop).
//! - A field missing from the schema merges as an untagged field instead of failing, and errors
//!   upstream answers with HTTP 500 are [`PatchError::Invalid`].
//!
//! # Errors and HTTP status codes
//!
//! [`PatchError::Invalid`] is a malformed patch: answer `400 BadRequest` with the message (for
//! strategic merge these are upstream's messages, e.g. `map: map[targetPort:9] does not contain
//! declared merge key: port`, `invalid patch format of retainKeys`, `The order in patch list: ...
//! doesn't match $setElementOrder list: ...`).
//! [`PatchError::Failed`] is a well-formed patch that cannot apply: answer `422` with reason
//! `Invalid`. For JSON patch (a failed `test`, a missing path) upstream's `Status.message` is the
//! generic "the server rejected our request due to an error in our request" and this text is in
//! `details.causes[0].message`; for strategic merge it is `lists of lists are not supported`,
//! sent as the message.

mod go;
pub mod schema;
mod strategic;

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    /// The patch document is malformed (HTTP 400 in Kubernetes' wording where it has one).
    #[error("{0}")]
    Invalid(String),
    /// A JSON patch operation failed (a `test` that did not hold, a missing path): HTTP 422.
    #[error("{0}")]
    Failed(String),
}

/// Apply an RFC 7386 JSON merge patch.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let mut doc = target.clone();
    json_patch::merge(&mut doc, patch);
    doc
}

/// Apply an RFC 6902 JSON patch, with the error messages of the Go library Kubernetes uses
/// (`gopkg.in/evanphx/json-patch.v4`). All operations apply or none does.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::Invalid(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            go::json_type_name(patch)
        )));
    };
    let mut doc = target.clone();
    for op in ops {
        let Value::Object(fields) = op else {
            return Err(PatchError::Invalid(format!(
                "json: cannot unmarshal {} into Go value of type map[string]*json.RawMessage",
                go::json_type_name(op)
            )));
        };
        let kind = fields
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        if !matches!(
            kind,
            "add" | "remove" | "replace" | "move" | "copy" | "test"
        ) {
            return Err(PatchError::Failed(format!("Unexpected kind: {kind}")));
        }
        if !fields.get("path").is_some_and(Value::is_string) {
            return Err(PatchError::Failed(format!(
                "{kind} operation failed to decode path: missing value"
            )));
        }
        if matches!(kind, "move" | "copy") && !fields.get("from").is_some_and(Value::is_string) {
            return Err(PatchError::Failed(format!(
                "{kind} operation failed to decode from: missing value"
            )));
        }
        // evanphx/json-patch takes a missing "value" as null.
        let mut op = op.clone();
        if matches!(kind, "add" | "replace" | "test") {
            if let Value::Object(m) = &mut op {
                m.entry("value").or_insert(Value::Null);
            }
        }
        let op: json_patch::PatchOperation =
            serde_json::from_value(op).map_err(|e| PatchError::Failed(e.to_string()))?;
        if let json_patch::PatchOperation::Test(t) = &op {
            // Go: testing a missing member of an existing object against null holds.
            if t.value.is_null()
                && doc.pointer(t.path.as_str()).is_none()
                && parent(t.path.as_str())
                    .and_then(|p| doc.pointer(p))
                    .is_some()
            {
                continue;
            }
        }
        if json_patch::patch(&mut doc, std::slice::from_ref(&op)).is_err() {
            return Err(PatchError::Failed(json_patch_error(&doc, &op)));
        }
    }
    Ok(doc)
}

/// The JSON pointer of the parent of `path`, `None` for the root.
fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

/// The last token of `path`, unescaped.
fn last_token(path: &str) -> String {
    let token = path.rsplit('/').next().unwrap_or_default();
    token.replace("~1", "/").replace("~0", "~")
}

/// evanphx/json-patch v4's message for a failed operation (`doc` is the document before it).
fn json_patch_error(doc: &Value, op: &json_patch::PatchOperation) -> String {
    use json_patch::PatchOperation as Op;
    let missing = "missing value";
    let container = |path: &str| parent(path).and_then(|p| doc.pointer(p));
    match op {
        Op::Add(o) => {
            let path = o.path.as_str();
            match container(path) {
                Some(Value::Array(_)) => format!(
                    "error in add for path: '{path}': Unable to access invalid index: {}: invalid index referenced",
                    last_token(path)
                ),
                _ => format!("add operation does not apply: doc is missing path: \"{path}\": {missing}"),
            }
        }
        Op::Remove(o) => {
            let path = o.path.as_str();
            match container(path) {
                Some(Value::Object(_)) => format!(
                    "error in remove for path: '{path}': Unable to remove nonexistent key: {}: {missing}",
                    last_token(path)
                ),
                Some(Value::Array(_)) => format!(
                    "error in remove for path: '{path}': Unable to access invalid index: {}: invalid index referenced",
                    last_token(path)
                ),
                _ => format!("remove operation does not apply: doc is missing path: \"{path}\": {missing}"),
            }
        }
        Op::Replace(o) => {
            let path = o.path.as_str();
            match container(path) {
                Some(Value::Object(_) | Value::Array(_)) => {
                    format!(
                        "replace operation does not apply: doc is missing key: {path}: {missing}"
                    )
                }
                _ => format!(
                    "replace operation does not apply: doc is missing path: {path}: {missing}"
                ),
            }
        }
        Op::Move(o) => {
            let (from, path) = (o.from.as_str(), o.path.as_str());
            if doc.pointer(from).is_none() {
                match container(from) {
                    Some(_) => format!(
                        "error in move for path: '{}': Unable to remove nonexistent key: {}: {missing}",
                        last_token(from),
                        last_token(from)
                    ),
                    None => format!("move operation does not apply: doc is missing from path: {from}: {missing}"),
                }
            } else {
                format!("move operation does not apply: doc is missing destination path: {path}: {missing}")
            }
        }
        Op::Copy(o) => {
            let (from, path) = (o.from.as_str(), o.path.as_str());
            if doc.pointer(from).is_none() {
                format!(
                    "copy operation does not apply: doc is missing from path: {from}: {missing}"
                )
            } else {
                format!("copy operation does not apply: doc is missing destination path: {path}: {missing}")
            }
        }
        Op::Test(o) => {
            let path = o.path.as_str();
            if container(path).is_none() && !path.is_empty() {
                format!("test operation does not apply: is missing path: {path}: {missing}")
            } else {
                format!("testing value {path} failed: test failed")
            }
        }
    }
}

/// Apply a strategic merge patch to `original`, an object of the kind `schema` describes.
///
/// `patch` must be a JSON object (`null` changes nothing), as the API server decodes it into a
/// `map[string]interface{}`.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: &'static schema::Type,
) -> Result<Value, PatchError> {
    let patch = match patch {
        Value::Object(m) => m.clone(),
        Value::Null => return Ok(original.clone()),
        other => {
            return Err(PatchError::Invalid(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go::json_type_name(other)
            )))
        }
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => serde_json::Map::new(),
        _ => return Err(PatchError::Invalid("invalid JSON document".to_string())),
    };
    strategic::apply(original, patch, schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_is_rfc7386() {
        let target = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [{"port": 80}]}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"ports": [{"port": 81}]}});
        assert_eq!(
            merge_patch(&target, &patch),
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"ports": [{"port": 81}]}})
        );
        // kubectl scale's patch of the scale subresource.
        assert_eq!(
            merge_patch(
                &json!({"spec": {"replicas": 1}}),
                &json!({"spec": {"replicas": 3}})
            ),
            json!({"spec": {"replicas": 3}})
        );
    }

    #[test]
    fn json_patch_applies_rfc6902() {
        let target = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80}]}});
        let patch = json!([
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "add", "path": "/spec/ports/-", "value": {"port": 443}},
            {"op": "replace", "path": "/spec/ports/0/port", "value": 8080},
            {"op": "copy", "from": "/spec/ports/1", "path": "/spec/extra"},
            {"op": "move", "from": "/spec/extra", "path": "/spec/moved"},
            {"op": "test", "path": "/metadata/labels/missing", "value": null},
        ]);
        assert_eq!(
            json_patch(&target, &patch).unwrap(),
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"ports": [{"port": 8080}, {"port": 443}], "moved": {"port": 443}}})
        );
    }

    #[test]
    fn json_patch_errors_read_like_evanphx() {
        let target = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80}]}});
        let fail = |p: Value| json_patch(&target, &p).unwrap_err();
        assert_eq!(
            fail(json!([{"op": "test", "path": "/metadata/labels/a", "value": "2"}])),
            PatchError::Failed("testing value /metadata/labels/a failed: test failed".into())
        );
        assert_eq!(
            fail(json!([{"op": "remove", "path": "/metadata/labels/x"}])),
            PatchError::Failed(
                "error in remove for path: '/metadata/labels/x': Unable to remove nonexistent key: x: missing value".into()
            )
        );
        assert_eq!(
            fail(json!([{"op": "remove", "path": "/metadata/annotations/x"}])),
            PatchError::Failed(
                "remove operation does not apply: doc is missing path: \"/metadata/annotations/x\": missing value".into()
            )
        );
        assert_eq!(
            fail(json!([{"op": "replace", "path": "/spec/type", "value": "NodePort"}])),
            PatchError::Failed(
                "replace operation does not apply: doc is missing key: /spec/type: missing value"
                    .into()
            )
        );
        assert_eq!(
            fail(json!([{"op": "add", "path": "/status/x", "value": 1}])),
            PatchError::Failed(
                "add operation does not apply: doc is missing path: \"/status/x\": missing value"
                    .into()
            )
        );
        assert_eq!(
            fail(json!([{"op": "jump", "path": "/x"}])),
            PatchError::Failed("Unexpected kind: jump".into())
        );
        assert_eq!(
            fail(json!({"op": "add"})),
            PatchError::Invalid(
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch".into()
            )
        );
        // Nothing applies when one operation fails.
        assert!(json_patch(
            &target,
            &json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"},
                    {"op": "test", "path": "/metadata/labels/a", "value": "2"}])
        )
        .is_err());
    }

    #[test]
    fn strategic_patch_must_be_an_object() {
        let svc = schema::lookup("v1", "Service").unwrap();
        assert_eq!(
            strategic_merge_patch(&json!({}), &json!([1]), svc).unwrap_err(),
            PatchError::Invalid(
                "json: cannot unmarshal array into Go value of type map[string]interface {}".into()
            )
        );
        let obj = json!({"spec": {"type": "ClusterIP"}});
        assert_eq!(strategic_merge_patch(&obj, &Value::Null, svc).unwrap(), obj);
    }
}
