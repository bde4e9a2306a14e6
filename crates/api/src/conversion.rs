//! Conversions between API versions of one stored kind, on objects as JSON.
//!
//! events.k8s.io/v1 `Event` is stored as a core/v1 `Event`, as kube-apiserver serves both from
//! one registry: `pkg/apis/events/v1/conversion.go` maps `regarding` ↔ `involvedObject`,
//! `note` ↔ `message`, `reportingController` ↔ `reportingComponent`, `deprecatedSource` ↔
//! `source`, `deprecatedFirstTimestamp`/`deprecatedLastTimestamp`/`deprecatedCount` ↔
//! `firstTimestamp`/`lastTimestamp`/`count`; the other fields have the same name in both.

use serde_json::{Map, Value};

/// (events.k8s.io/v1 field, core/v1 field).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("metadata", "metadata"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("action", "action"),
    ("reason", "reason"),
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("type", "type"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// `obj`'s fields under the other version's names (`to_core`: events.k8s.io/v1 → core/v1).
fn rename(obj: &Value, api_version: &str, to_core: bool) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), Value::from("Event"));
    out.insert("apiVersion".into(), Value::from(api_version));
    for &(events, core) in EVENT_FIELDS {
        let (src, dst) = if to_core {
            (events, core)
        } else {
            (core, events)
        };
        if let Some(v) = obj.get(src) {
            out.insert(dst.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

/// An events.k8s.io/v1 Event as the core/v1 Event it is stored as.
pub fn event_v1_to_core(obj: &Value) -> Value {
    rename(obj, "v1", true)
}

/// A stored core/v1 Event as events.k8s.io/v1 writes it: Go's `encoding/json` omits the empty
/// `omitempty` strings and count, and writes the struct fields (`regarding`,
/// `deprecatedSource`) and unset times (`null`) always.
pub fn event_core_to_v1(obj: &Value) -> Value {
    let mut out = rename(obj, "events.k8s.io/v1", false);
    let map = out.as_object_mut().expect("an object");
    for f in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
        "note",
        "type",
    ] {
        if map.get(f).is_some_and(|v| v.as_str() == Some("")) {
            map.remove(f);
        }
    }
    if map
        .get("deprecatedCount")
        .is_some_and(|v| v.as_i64() == Some(0))
    {
        map.remove("deprecatedCount");
    }
    for (f, zero) in [
        ("eventTime", Value::Null),
        ("regarding", Value::Object(Map::new())),
        ("deprecatedSource", Value::Object(Map::new())),
        ("deprecatedFirstTimestamp", Value::Null),
        ("deprecatedLastTimestamp", Value::Null),
    ] {
        map.entry(f).or_insert(zero);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_v1_round_trips_through_core() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2024-05-01T10:00:00.000000Z", "series": {"count": 2, "lastObservedTime": "2024-05-01T10:00:01.000000Z"},
            "reportingController": "kube", "reportingInstance": "kube-1", "action": "Reconcile",
            "reason": "Synced", "regarding": {"kind": "Service", "name": "web", "namespace": "default"},
            "note": "done", "type": "Normal"});
        let core = event_v1_to_core(&v1);
        assert_eq!(
            core,
            json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "default"},
                "eventTime": "2024-05-01T10:00:00.000000Z", "series": {"count": 2, "lastObservedTime": "2024-05-01T10:00:01.000000Z"},
                "reportingComponent": "kube", "reportingInstance": "kube-1", "action": "Reconcile",
                "reason": "Synced", "involvedObject": {"kind": "Service", "name": "web", "namespace": "default"},
                "message": "done", "type": "Normal"})
        );
        let mut back = v1.clone();
        let m = back.as_object_mut().unwrap();
        m.insert("deprecatedSource".into(), json!({}));
        m.insert("deprecatedFirstTimestamp".into(), Value::Null);
        m.insert("deprecatedLastTimestamp".into(), Value::Null);
        assert_eq!(event_core_to_v1(&core), back);
    }

    #[test]
    fn a_core_event_seen_through_events_v1() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Pulled", "message": "pulled",
            "source": {"component": "kubelet"}, "firstTimestamp": "t1", "lastTimestamp": "t2",
            "count": 3, "type": "Normal", "eventTime": null, "reportingComponent": "", "reportingInstance": ""});
        assert_eq!(
            event_core_to_v1(&core),
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                "eventTime": null, "reason": "Pulled", "regarding": {"kind": "Pod", "name": "p"},
                "note": "pulled", "type": "Normal", "deprecatedSource": {"component": "kubelet"},
                "deprecatedFirstTimestamp": "t1", "deprecatedLastTimestamp": "t2", "deprecatedCount": 3})
        );
    }
}
