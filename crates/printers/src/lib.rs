//! Server-side printing for `kubectl get`: the Table columns and cells Kubernetes'
//! `pkg/printers/internalversion` produces, so kubectl shows what it shows against Kubernetes.

use serde_json::Value;

/// `metav1.TableColumnDefinition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// OpenAPI type: "string", "integer", "number", "boolean", "date".
    pub type_: &'static str,
    /// "name" for the name column, "" otherwise (or an OpenAPI format).
    pub format: &'static str,
    pub description: &'static str,
    /// 0 = always shown; 1 = `-o wide` only.
    pub priority: i32,
}

/// The columns for a resource (`group` "" = core), or the default `Name`, `Created At`.
pub fn columns(group: &str, resource: &str) -> &'static [Column] {
    let _ = (group, resource);
    unimplemented!()
}

/// The cells of one object's row, in the order of [`columns`]; `now` is used for ages.
pub fn cells(group: &str, resource: &str, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let _ = (group, resource, obj, now);
    unimplemented!()
}

/// Kubernetes' `duration.HumanDuration` (`4m42s`, `2d18h`, ...), used for AGE.
pub fn human_duration(d: std::time::Duration) -> String {
    let _ = d;
    unimplemented!()
}
