//! Patch semantics of the Kubernetes API server: strategic merge patch
//! (`k8s.io/apimachinery/pkg/util/strategicpatch`), JSON merge patch (RFC 7386) and JSON patch
//! (RFC 6902).
//!
//! Strategic merge needs to know, per field, how lists merge (by which key) — Kubernetes takes it
//! from Go struct tags; here it is the [`schema`] table for the kinds svcnet serves.

pub mod schema;

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
    let _ = (target, patch);
    unimplemented!()
}

/// Apply an RFC 6902 JSON patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let _ = (target, patch);
    unimplemented!()
}

/// Apply a strategic merge patch to `original`, an object of the kind `schema` describes.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: &'static schema::Type,
) -> Result<Value, PatchError> {
    let _ = (original, patch, schema);
    unimplemented!()
}
