//! RFC 6902 JSON patch as kube-apiserver applies it: the semantics and messages of the Go
//! library Kubernetes uses (`gopkg.in/evanphx/json-patch.v4`), under kube-apiserver's limits.
//!
//! The operations themselves are the `json-patch` crate's, applied one at a time so that each
//! step can be checked before it runs:
//!
//! - At most [`MAX_OPERATIONS`] operations (`maxJSONPatchOperations` in
//!   `endpoints/handlers/patch.go`); more is [`PatchError::TooLarge`] (HTTP 413).
//! - The `copy` operations of one patch may add at most [`MAX_COPY_BYTES`] in total
//!   (`JSONPatchMaxCopyBytes` of `k8s.io/apiserver/pkg/server/config.go`, handed to evanphx's
//!   `AccumulatedCopySizeLimit`); past it, [`PatchError::Failed`] with evanphx's
//!   `AccumulatedCopySizeError` message (HTTP 422). evanphx serializes the value first and
//!   compares after; here its encoded size is counted without building it, and the limit is
//!   checked before the copy is made, so a patch that doubles a value forty times is refused
//!   having spent no memory on it.
//!
//! Every other operation can grow the document only by values written in the patch itself, so
//! with these two limits the result is at most the target, plus the patch, plus
//! [`MAX_COPY_BYTES`].

use serde_json::Value;

use crate::go;
use crate::PatchError;

/// kube-apiserver's `maxJSONPatchOperations`.
pub const MAX_OPERATIONS: usize = 10_000;

/// kube-apiserver's default `JSONPatchMaxCopyBytes` (3 MiB, "2x the 1.5 MB etcd request
/// limit"; the same as the default `MaxRequestBodyBytes`). kube-apiserver has no flag for it.
pub const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Apply an RFC 6902 JSON patch, with the error messages of the Go library Kubernetes uses
/// (`gopkg.in/evanphx/json-patch.v4`) and kube-apiserver's limits. All operations apply or none
/// does.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = decode(patch)?;
    if ops.len() > MAX_OPERATIONS {
        return Err(PatchError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut doc = target.clone();
    let mut copied = 0usize;
    for fields in ops {
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
        let mut op = fields.clone();
        if matches!(kind, "add" | "replace" | "test") {
            op.entry("value").or_insert(Value::Null);
        }
        let op: json_patch::PatchOperation = serde_json::from_value(Value::Object(op))
            .map_err(|e| PatchError::Failed(e.to_string()))?;
        match &op {
            // Go: testing a missing member of an existing object against null holds.
            json_patch::PatchOperation::Test(t)
                if t.value.is_null()
                    && doc.pointer(t.path.as_str()).is_none()
                    && parent(t.path.as_str())
                        .and_then(|p| doc.pointer(p))
                        .is_some() =>
            {
                continue;
            }
            json_patch::PatchOperation::Copy(c) => {
                copied += copy_size(&doc, c.from.as_str(), c.path.as_str());
                if copied > MAX_COPY_BYTES {
                    return Err(PatchError::Failed(format!(
                        "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_COPY_BYTES}"
                    )));
                }
            }
            _ => {}
        }
        if json_patch::patch(&mut doc, std::slice::from_ref(&op)).is_err() {
            return Err(PatchError::Failed(json_patch_error(&doc, &op)));
        }
    }
    Ok(doc)
}

/// The operations of a patch document, as evanphx's `DecodePatch` reads them: the whole
/// document must be an array of objects before anything is counted or applied (HTTP 400).
fn decode(patch: &Value) -> Result<Vec<&serde_json::Map<String, Value>>, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::Invalid(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            go::json_type_name(patch)
        )));
    };
    ops.iter()
        .map(|op| match op {
            Value::Object(fields) => Ok(fields),
            other => Err(PatchError::Invalid(format!(
                "json: cannot unmarshal {} into Go value of type map[string]*json.RawMessage",
                go::json_type_name(other)
            ))),
        })
        .collect()
}

/// What a `copy` from `from` to `path` adds, as evanphx counts it (the length of the copied
/// value's JSON; a `null` member is no value at all), or 0 when the copy will fail anyway (the
/// source or the destination's container is missing: the operation reports that instead).
fn copy_size(doc: &Value, from: &str, path: &str) -> usize {
    match (doc.pointer(from), parent(path).and_then(|p| doc.pointer(p))) {
        (Some(Value::Null), Some(_)) => 0,
        (Some(value), Some(_)) => go::marshal_len(value),
        _ => 0,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn more_than_ten_thousand_operations_are_refused_before_any_applies() {
        let target = json!({"metadata": {"name": "x"}});
        let op = json!({"op": "add", "path": "/x", "value": "y"});
        let ops = |n: usize| Value::Array(vec![op.clone(); n]);
        assert!(json_patch(&target, &ops(MAX_OPERATIONS)).is_ok());
        assert_eq!(
            json_patch(&target, &ops(MAX_OPERATIONS + 1)).unwrap_err(),
            PatchError::TooLarge(
                "The allowed maximum operations in a JSON patch is 10000, got 10001".into()
            )
        );
        // The document is decoded whole first (evanphx's DecodePatch): a malformed element is a
        // 400 even after an operation that would fail.
        assert_eq!(
            json_patch(&target, &json!([{"op": "remove", "path": "/nope"}, 7])).unwrap_err(),
            PatchError::Invalid(
                "json: cannot unmarshal number into Go value of type map[string]*json.RawMessage"
                    .into()
            )
        );
    }

    /// The copy bomb: a 1,024-element array doubled by copying it into itself. Each
    /// copy adds the array's encoded length (4098 * 2^k - 1 bytes for the k-th); the tenth
    /// takes the total past 3 MiB and is refused before it is made.
    #[test]
    fn accumulated_copies_are_limited_to_3_mib() {
        let target = json!({"metadata": {"name": "x"}});
        let bomb = |copies: usize| {
            let mut ops = vec![json!({"op": "add", "path": "/x", "value": vec!["a"; 1024]})];
            ops.extend((0..copies).map(|_| json!({"op": "copy", "from": "/x", "path": "/x/-"})));
            Value::Array(ops)
        };
        let nine = json_patch(&target, &bomb(9)).unwrap();
        assert_eq!(nine["x"].as_array().unwrap().len(), 1024 + 9);
        assert_eq!(
            json_patch(&target, &bomb(40)).unwrap_err(),
            PatchError::Failed(
                "Unable to complete the copy, the accumulated size increase of copy is 4192244, exceeding the limit 3145728".into()
            )
        );
        // Copies that fail for another reason count nothing and report that reason.
        assert_eq!(
            json_patch(
                &target,
                &json!([{"op": "copy", "from": "/nope", "path": "/y"}])
            )
            .unwrap_err(),
            PatchError::Failed(
                "copy operation does not apply: doc is missing from path: /nope: missing value"
                    .into()
            )
        );
    }

    #[test]
    fn copied_size_is_go_json_length() {
        for v in [
            json!(null),
            json!([1, -2.5, true, false, "x"]),
            json!({"a": {"b": [{}, []]}, "c": "line\nbreak \"q\" \\ é"}),
        ] {
            assert_eq!(
                go::marshal_len(&v),
                serde_json::to_vec(&v).unwrap().len(),
                "{v}"
            );
        }
        // Go escapes HTML characters and U+2028/9 (6 bytes each), and all control characters
        // but \b \f \n \r \t.
        assert_eq!(go::marshal_len(&json!("<&>")), 2 + 18);
        assert_eq!(go::marshal_len(&json!("\u{2028}\u{1}\u{8}")), 2 + 6 + 6 + 2);
    }
}
