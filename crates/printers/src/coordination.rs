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

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use crate::columns;
    use crate::testing::{meta, row};

    #[test]
    fn leases() {
        let names: Vec<&str> = columns("coordination.k8s.io", "leases")
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["Name", "Holder", "Age"]);
        let cases = [
            (
                json!({"metadata": meta("node-1", 120), "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}),
                "node-1",
                "2m",
            ),
            (json!({"metadata": meta("free", 5), "spec": {}}), "", "5s"),
            (json!({"metadata": meta("bare", 5)}), "", "5s"),
        ];
        for (obj, holder, age) in cases {
            let got = row("coordination.k8s.io", "leases", &obj);
            assert_eq!(
                got,
                [json!(obj["metadata"]["name"]), json!(holder), json!(age)],
                "{obj}"
            );
        }
    }
}
