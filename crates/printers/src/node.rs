//! `node.k8s.io` printer: `printRuntimeClass`.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::age;
use crate::json::{name, str_at};

/// `printRuntimeClass`: name, `handler`, age.
pub(crate) fn runtime_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(obj)),
        json!(str_at(obj, &["handler"])),
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
    fn runtime_classes() {
        let names: Vec<&str> = columns("node.k8s.io", "runtimeclasses")
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["Name", "Handler", "Age"]);
        let obj = json!({"metadata": meta("svcnet-process", 120), "handler": "process"});
        assert_eq!(
            row("node.k8s.io", "runtimeclasses", &obj),
            [json!("svcnet-process"), json!("process"), json!("2m")]
        );
    }
}
