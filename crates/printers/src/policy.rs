//! `policy` printer: `printPodDisruptionBudget`.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::age;
use crate::json::{get, int_at, name};

/// An `intstr.IntOrString`'s `String()`, or "N/A" when unset.
fn int_or_string(obj: &Value, field: &str) -> String {
    match get(obj, &["spec", field]) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".to_string(),
    }
}

/// `printPodDisruptionBudget`: name, minAvailable and maxUnavailable ("N/A" when unset),
/// `status.disruptionsAllowed` (an int64 cell), age.
pub(crate) fn pod_disruption_budget(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(obj)),
        json!(int_or_string(obj, "minAvailable")),
        json!(int_or_string(obj, "maxUnavailable")),
        json!(int_at(obj, &["status", "disruptionsAllowed"])),
        age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use crate::columns;
    use crate::testing::{meta, row};

    #[test]
    fn pod_disruption_budgets() {
        let names: Vec<&str> = columns("policy", "poddisruptionbudgets")
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Min Available",
                "Max Unavailable",
                "Allowed Disruptions",
                "Age"
            ]
        );
        let obj = json!({"metadata": meta("web", 60), "spec": {"minAvailable": 2},
            "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            row("policy", "poddisruptionbudgets", &obj),
            [
                json!("web"),
                json!("2"),
                json!("N/A"),
                json!(1),
                json!("60s")
            ]
        );
        let obj = json!({"metadata": meta("pct", 5), "spec": {"maxUnavailable": "50%"}});
        assert_eq!(
            row("policy", "poddisruptionbudgets", &obj),
            [
                json!("pct"),
                json!("N/A"),
                json!("50%"),
                json!(0),
                json!("5s")
            ]
        );
    }
}
