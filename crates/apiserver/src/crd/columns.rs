//! `kubectl get` of custom objects: a CRD version's `additionalPrinterColumns` as
//! apiextensions-apiserver's `tableconvertor` prints them — a `Name` column first, then each
//! column's JSONPath evaluated on the object (`date` columns as an age, several results joined
//! with `,`, no result as an empty cell) — and, for a version without columns, `Name` and
//! `Age` (the default columns upstream gives a CRD version).
//!
//! The JSONPath subset is what printer columns use: `.a.b`, `.a[0]`, `.a[*].b`, and filters
//! `[?(@.type=="Ready")]`.

use serde_json::{json, Value};

/// One `additionalPrinterColumns` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// The columns of a CRD version (`spec.versions[*]`): its own, or `Age`.
pub fn of_version(v: &Value) -> Vec<PrinterColumn> {
    let s = |c: &Value, f: &str| c.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let cols: Vec<PrinterColumn> = v["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| PrinterColumn {
            name: s(c, "name"),
            type_: s(c, "type"),
            format: s(c, "format"),
            description: s(c, "description"),
            priority: c["priority"].as_i64().unwrap_or(0),
            json_path: s(c, "jsonPath"),
        })
        .collect();
    if !cols.is_empty() {
        return cols;
    }
    vec![PrinterColumn {
        name: "Age".into(),
        type_: "date".into(),
        format: String::new(),
        description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata".into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    }]
}

/// The Table's column definitions.
pub fn definitions(cols: &[PrinterColumn]) -> Vec<Value> {
    let mut out = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION, "priority": 0}),
    ];
    out.extend(cols.iter().map(|c| {
        json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
    }));
    out
}

/// One row's cells.
pub fn cells(cols: &[PrinterColumn], obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let mut out = vec![name];
    for c in cols {
        let found = lookup(obj, &c.json_path);
        let cell = match (found.as_slice(), c.type_.as_str()) {
            ([], _) => Value::Null,
            ([one], "date") => match one.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
                Some(t) => {
                    let d = now.duration_since(t).unsigned_abs();
                    json!(svcnet_printers::human_duration(d))
                }
                None => json!("<invalid>"),
            },
            ([one], "integer" | "number" | "boolean") => (*one).clone(),
            ([one], _) => match one {
                Value::String(s) => json!(s),
                other => json!(other.to_string()),
            },
            (many, _) => {
                let parts: Vec<String> = many
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                json!(parts.join(","))
            }
        };
        out.push(cell);
    }
    out
}

/// A step of a printer column's JSONPath.
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.field=="value")]`
    Filter(Vec<String>, Value),
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            // A filter may hold `]` only inside quotes; printer columns do not.
            let inner = &r[..end];
            rest = &r[end + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, value) = f.split_once("==")?;
                let value = value.trim();
                let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    Some(s) => json!(s),
                    None => match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
                        Some(s) => json!(s),
                        None => serde_json::from_str(value).ok()?,
                    },
                };
                steps.push(Step::Filter(
                    field.trim().split('.').map(str::to_string).collect(),
                    value,
                ));
            } else if let Some(name) = inner.strip_prefix('\'').and_then(|n| n.strip_suffix('\'')) {
                steps.push(Step::Field(name.to_string()));
            } else {
                steps.push(Step::Index(inner.parse().ok()?));
            }
        } else {
            return None;
        }
    }
    Some(steps)
}

/// The values `path` finds in `obj`.
pub fn lookup<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut cur = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(f) => next.extend(v.get(f)),
                Step::Index(i) => next.extend(v.get(*i)),
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(field, want) => {
                    for item in v.as_array().into_iter().flatten() {
                        let mut x = Some(item);
                        for f in field {
                            x = x.and_then(|x| x.get(f));
                        }
                        if x == Some(want) {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur.into_iter().filter(|v| !v.is_null()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_of_printer_columns() {
        let o = json!({"spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 443}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]}});
        assert_eq!(lookup(&o, ".spec.replicas"), [&json!(3)]);
        assert_eq!(lookup(&o, ".spec.ports[1].port"), [&json!(443)]);
        assert_eq!(lookup(&o, ".spec.ports[*].port"), [&json!(80), &json!(443)]);
        assert_eq!(
            lookup(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            [&json!("True")]
        );
        assert!(lookup(&o, ".spec.missing").is_empty());
    }

    #[test]
    fn cells_as_the_table_convertor_prints_them() {
        let cols = of_version(&json!({"additionalPrinterColumns": [
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Ports", "type": "string", "jsonPath": ".spec.ports[*].port"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}));
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let o = json!({"metadata": {"name": "w", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            cells(&cols, &o, now),
            [
                json!("w"),
                json!(3),
                json!("80,443"),
                Value::Null,
                json!("10m")
            ]
        );
        assert_eq!(of_version(&json!({}))[0].name, "Age");
    }
}
