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
//! `Invalid`. For JSON patch (a failed `test`, a missing path, too much copied) upstream's
//! `Status.message` is the generic "the server rejected our request due to an error in our
//! request" (`NewGenericServerResponse`) and this text is in `details.causes[0].message`; for
//! strategic merge it is `lists of lists are not supported`, sent as the message.
//! [`PatchError::TooLarge`] is a JSON patch of more than [`MAX_OPERATIONS`] operations: answer
//! `413` with reason `RequestEntityTooLarge` and the message prefixed `Request entity too large: `
//! (`NewRequestEntityTooLargeError`).

mod go;
mod jsonpatch;
pub mod schema;
mod strategic;

use serde_json::Value;

pub use jsonpatch::{json_patch, MAX_COPY_BYTES, MAX_OPERATIONS};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    /// The patch document is malformed (HTTP 400 in Kubernetes' wording where it has one).
    #[error("{0}")]
    Invalid(String),
    /// A JSON patch operation failed (a `test` that did not hold, a missing path, the copy
    /// limit): HTTP 422.
    #[error("{0}")]
    Failed(String),
    /// A JSON patch of too many operations: HTTP 413.
    #[error("{0}")]
    TooLarge(String),
}

/// Apply an RFC 7386 JSON merge patch.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let mut doc = target.clone();
    json_patch::merge(&mut doc, patch);
    doc
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
