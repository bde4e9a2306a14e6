//! `batch` printers: `printJob` (NAME STATUS COMPLETIONS DURATION AGE, wide: CONTAINERS
//! IMAGES SELECTOR).

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::apps::layout_container_cells;
use crate::duration::{age, human_nanos};
use crate::json::{arr_at, get, has, int_at, name, opt_int_at, str_at, time_at};
use crate::labels::format_label_selector;

/// `hasJobCondition`: a condition of the type with status True.
fn has_condition(obj: &Value, type_: &str) -> bool {
    arr_at(obj, &["status", "conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == type_ && str_at(c, &["status"]) == "True")
}

pub(crate) fn job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(obj, &["status", "succeeded"]);
    let completions = match opt_int_at(obj, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(obj, &["spec", "parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = time_at(obj, &["status", "startTime"]);
    let duration = match (start, time_at(obj, &["status", "completionTime"])) {
        (None, _) => String::new(),
        (Some(s), None) => human_nanos(now.as_nanosecond() - s.as_nanosecond()),
        (Some(s), Some(c)) => human_nanos(c.as_nanosecond() - s.as_nanosecond()),
    };
    let status = if has_condition(obj, "Complete") {
        "Complete"
    } else if has_condition(obj, "Failed") {
        "Failed"
    } else if has(obj, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else if has_condition(obj, "Suspended") {
        "Suspended"
    } else if has_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (containers, images) = layout_container_cells(obj);
    vec![
        json!(name(obj)),
        json!(status),
        json!(completions),
        json!(duration),
        age(obj, now),
        json!(containers),
        json!(images),
        json!(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use crate::testing::{ago, meta, row};

    fn json_row(group: &str, resource: &str, obj: &serde_json::Value) -> Vec<serde_json::Value> {
        row(group, resource, obj)
    }

    #[test]
    fn jobs() {
        let template = json!({"spec": {"containers": [{"name": "pi", "image": "perl:5.34.0"}]}});
        let selector = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}});
        let running = json!({"metadata": meta("pi", 120),
            "spec": {"completions": 5, "parallelism": 2, "selector": selector, "template": template},
            "status": {"startTime": ago(100), "succeeded": 2, "active": 2}});
        assert_eq!(
            json!(json_row("batch", "jobs", &running)),
            json!([
                "pi",
                "Running",
                "2/5",
                "100s",
                "2m",
                "pi",
                "perl:5.34.0",
                "batch.kubernetes.io/controller-uid=u-1"
            ])
        );
        let complete = json!({"metadata": meta("pi", 600),
            "spec": {"completions": 1, "template": template},
            "status": {"startTime": ago(500), "completionTime": ago(430), "succeeded": 1,
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                               {"type": "Complete", "status": "True"}]}});
        assert_eq!(
            json_row("batch", "jobs", &complete)[1..4],
            [json!("Complete"), json!("1/1"), json!("70s")]
        );
        let queue = json!({"metadata": meta("q", 5), "spec": {"parallelism": 3},
            "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert_eq!(
            json_row("batch", "jobs", &queue)[1..4],
            [json!("Failed"), json!("0/1 of 3"), json!("")]
        );
    }
}
