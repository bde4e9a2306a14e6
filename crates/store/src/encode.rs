//! Kubernetes objects as JSON bytes, with the key order kube-apiserver writes.
//!
//! kube-apiserver encodes Go structs with `encoding/json`, which writes a struct's fields in
//! declaration order: an object starts `{"kind":...,"apiVersion":...,"metadata":{...},"spec":...,
//! "status":...}` (`TypeMeta` inlined first, then `ObjectMeta`, `Spec`, `Status`), and
//! `metadata` starts with `name`, `generateName`, `namespace`. Some clients compare bytes or
//! report errors by column, so [`to_vec`] writes that order where it is known:
//!
//! - a JSON object carrying `kind` or `apiVersion` (an object, a list, a `Status`, an object
//!   embedded in a list or a watch event): the top-level fields of its Go type, by `kind`
//!   ([`top_level_order`]), then the rest;
//! - any `metadata` object: `ObjectMeta`'s (and `ListMeta`'s) field order;
//! - everything else in the order of the `Value`'s map (sorted, as serde_json keeps it).
//!
//! Deviation: fields below `spec`/`status` come out sorted, not in Go's order (that needs the
//! Go declaration order of every type, which k8s-openapi does not keep: it sorts fields too).

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

/// `ObjectMeta`'s fields in Go's declaration order, with `ListMeta`'s `continue` and
/// `remainingItemCount` after `resourceVersion` (the two never share an object).
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "continue",
    "remainingItemCount",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The top-level fields of the Go type of `kind`, in declaration order (`TypeMeta` first).
pub fn top_level_order(kind: &str) -> &'static [&'static str] {
    macro_rules! fields {
        ($($f:literal),*) => {{
            const F: &[&str] = &["kind", "apiVersion", "metadata", $($f),*];
            F
        }};
    }
    match kind {
        "Status" => fields!("status", "message", "reason", "details", "code"),
        "Event" => fields!(
            // core/v1
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
            // events.k8s.io/v1
            "reportingController",
            "regarding",
            "note",
            "deprecatedSource",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount"
        ),
        "Endpoints" => fields!("subsets"),
        "EndpointSlice" => fields!("addressType", "endpoints", "ports"),
        "RuntimeClass" => fields!("handler", "overhead", "scheduling"),
        "ConfigMap" => fields!("immutable", "data", "binaryData"),
        "Secret" => fields!("immutable", "data", "stringData", "type"),
        "Table" => fields!("columnDefinitions", "rows"),
        "APIResourceList" => fields!("groupVersion", "resources"),
        "APIGroupList" => fields!("groups"),
        "APIGroup" => fields!("name", "versions", "preferredVersion"),
        "APIVersions" => fields!("versions", "serverAddressByClientCIDRs"),
        k if k.ends_with("List") => fields!("items"),
        _ => fields!("spec", "status"),
    }
}

/// Where a value sits, which decides the order of its keys.
#[derive(Clone, Copy)]
enum Place {
    Any,
    Metadata,
    /// A Status's `details` (`StatusDetails`).
    Details,
    /// The elements of `details.causes` (`StatusCause`).
    Causes,
}

/// `metav1.StatusDetails`' fields in Go's order.
const STATUS_DETAILS: &[&str] = &[
    "name",
    "group",
    "kind",
    "uid",
    "causes",
    "retryAfterSeconds",
];
/// `metav1.StatusCause`'s fields in Go's order.
const STATUS_CAUSE: &[&str] = &["reason", "message", "field"];

struct Ordered<'a>(&'a Value, Place);

fn write_ordered<S: Serializer>(
    s: S,
    map: &Map<String, Value>,
    first: &[&str],
) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(map.len()))?;
    for k in first {
        if let Some(v) = map.get(*k) {
            m.serialize_entry(k, &Ordered(v, place_of(k)))?;
        }
    }
    for (k, v) in map {
        if !first.contains(&k.as_str()) {
            m.serialize_entry(k, &Ordered(v, place_of(k)))?;
        }
    }
    m.end()
}

fn place_of(key: &str) -> Place {
    match key {
        "metadata" => Place::Metadata,
        "details" => Place::Details,
        "causes" => Place::Causes,
        _ => Place::Any,
    }
}

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.0, self.1) {
            (Value::Object(map), Place::Metadata) => write_ordered(s, map, OBJECT_META),
            (Value::Object(map), Place::Details) => write_ordered(s, map, STATUS_DETAILS),
            (Value::Object(map), Place::Causes) => write_ordered(s, map, STATUS_CAUSE),
            (Value::Object(map), _) => {
                let kind = map.get("kind").and_then(Value::as_str);
                if kind.is_some() || map.contains_key("apiVersion") {
                    write_ordered(s, map, top_level_order(kind.unwrap_or("")))
                } else {
                    write_ordered(s, map, &[])
                }
            }
            (Value::Array(items), place) => {
                // A cause list's elements are causes; any other array's start afresh.
                let element = match place {
                    Place::Causes => Place::Causes,
                    _ => Place::Any,
                };
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Ordered(v, element))?;
                }
                seq.end()
            }
            (v, _) => v.serialize(s),
        }
    }
}

/// `value` as compact JSON with Kubernetes' key order (see the module docs).
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, value);
    out
}

/// A response body as kube-apiserver writes one: [`to_vec`] and the final newline of Go's
/// `json.Encoder`.
pub fn body(value: &Value) -> Vec<u8> {
    let mut out = to_vec(value);
    out.push(b'\n');
    out
}

/// [`to_vec`], appended to `out`.
pub fn write(out: &mut Vec<u8>, value: &Value) {
    serde_json::to_writer(&mut *out, &Ordered(value, Place::Any)).expect("a JSON value serializes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: &Value) -> String {
        String::from_utf8(to_vec(v)).unwrap()
    }

    #[test]
    fn objects_start_with_type_meta_then_metadata_spec_status() {
        let svc = json!({"status": {"loadBalancer": {}}, "spec": {"type": "ClusterIP", "ports": []},
            "metadata": {"uid": "u", "namespace": "default", "name": "web", "creationTimestamp": "t"},
            "kind": "Service", "apiVersion": "v1"});
        assert_eq!(
            s(&svc),
            r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"default","uid":"u","creationTimestamp":"t"},"spec":{"ports":[],"type":"ClusterIP"},"status":{"loadBalancer":{}}}"#
        );
    }

    #[test]
    fn status_details_and_causes_in_go_order() {
        let st = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "details": {"kind": "services", "group": "", "name": "web",
                "causes": [{"field": "spec.ports", "message": "m", "reason": "FieldValueInvalid"}]},
            "code": 409});
        assert_eq!(
            s(&st),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","details":{"name":"web","group":"","kind":"services","causes":[{"reason":"FieldValueInvalid","message":"m","field":"spec.ports"}]},"code":409}"#
        );
    }

    #[test]
    fn lists_status_and_embedded_objects() {
        let list = json!({"items": [{"spec": {}, "kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}}],
            "metadata": {"resourceVersion": "5"}, "apiVersion": "v1", "kind": "PodList"});
        assert_eq!(
            s(&list),
            r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":[{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{}}]}"#
        );
        let status = json!({"code": 404, "details": {"name": "x"}, "message": "m", "reason": "NotFound",
            "status": "Failure", "metadata": {}, "apiVersion": "v1", "kind": "Status"});
        assert_eq!(
            s(&status),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"m","reason":"NotFound","details":{"name":"x"},"code":404}"#
        );
    }

    #[test]
    fn template_metadata_and_plain_maps() {
        let v = json!({"spec": {"template": {"spec": {}, "metadata": {"labels": {"b": "1", "a": "2"}, "name": "t", "annotations": {}}}}});
        assert_eq!(
            s(&v),
            r#"{"spec":{"template":{"metadata":{"name":"t","labels":{"a":"2","b":"1"},"annotations":{}},"spec":{}}}}"#
        );
    }
}
