//! Fixtures of the printers' tests: a fixed clock, object metadata created some seconds before
//! it, and one printed row checked against its columns.

use jiff::{SignedDuration, Timestamp};
use pretty_assertions::assert_eq;
use serde_json::{json, Value};

use crate::{cells, columns};

const NOW: &str = "2024-06-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// RFC 3339 for `now - secs`.
pub(crate) fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs)).to_string()
}

pub(crate) fn meta(name: &str, created_secs_ago: i64) -> Value {
    json!({ "name": name, "namespace": "default", "creationTimestamp": ago(created_secs_ago) })
}

pub(crate) fn row(group: &str, resource: &str, obj: &Value) -> Vec<Value> {
    let c = cells(group, resource, obj, now());
    assert_eq!(
        c.len(),
        columns(group, resource).len(),
        "one cell per column for {group}/{resource}"
    );
    c
}

/// A row's expected cells, written as the JSON array a Table row carries:
/// `json_row(r#"["web", "1/1", 3]"#)` (strings and numbers as the printer returns them).
pub(crate) fn json_row(cells: &str) -> Vec<Value> {
    serde_json::from_str(cells).unwrap()
}
