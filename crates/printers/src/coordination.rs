//! `coordination.k8s.io` printer: `printLease`.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::age;
use crate::json::{name, str_at};

/// `printLease`: name, `spec.holderIdentity` ("" when unset), age.
pub(crate) fn lease(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(obj)),
        json!(str_at(obj, &["spec", "holderIdentity"])),
        age(obj, now),
    ]
}
