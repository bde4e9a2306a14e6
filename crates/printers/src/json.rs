//! Lenient accessors over stored objects: a missing field, `null` or a value of the wrong
//! JSON type reads as the Go zero value, so printing never fails and never panics.

use jiff::Timestamp;
use serde_json::{Map, Value};

/// The value at `path`, if every step is an object key that exists and the value is not `null`.
pub(crate) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_object()?.get(*key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// Go's `*T != nil` for a struct or pointer field: present and not `null`.
pub(crate) fn has(v: &Value, path: &[&str]) -> bool {
    get(v, path).is_some()
}

/// A string field, `""` when absent or not a string.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

/// A string field that distinguishes "unset" (`None`) from `""` (Go `*string`).
pub(crate) fn opt_str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// An integer field (`int32`/`int64`), `None` when absent or not an integral number.
pub(crate) fn opt_int_at(v: &Value, path: &[&str]) -> Option<i64> {
    let n = get(v, path)?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f <= i64::MAX as f64).then_some(f as i64)
}

/// An integer field, `0` when absent.
pub(crate) fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int_at(v, path).unwrap_or(0)
}

/// A boolean field, `false` when absent.
pub(crate) fn bool_at(v: &Value, path: &[&str]) -> bool {
    opt_bool_at(v, path).unwrap_or(false)
}

/// A `*bool` field.
pub(crate) fn opt_bool_at(v: &Value, path: &[&str]) -> Option<bool> {
    get(v, path).and_then(Value::as_bool)
}

/// An array field, empty when absent or not an array.
pub(crate) fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// An object field (a Go map), `None` when absent or not an object.
pub(crate) fn map_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    get(v, path).and_then(Value::as_object)
}

/// A `metav1.Time` / `metav1.MicroTime`; `None` is Go's zero time (absent, `null`,
/// unparsable, or `0001-01-01T00:00:00Z` itself).
pub(crate) fn time_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    let t: Timestamp = get(v, path)?.as_str()?.parse().ok()?;
    // Go's zero time.Time, as it serializes.
    const GO_ZERO_SECONDS: i64 = -62_135_596_800;
    (t.as_second() != GO_ZERO_SECONDS || t.subsec_nanosecond() != 0).then_some(t)
}

/// `metadata.name`.
pub(crate) fn name(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"])
}
