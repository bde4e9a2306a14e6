//! Paths into an object, as structured-merge-diff's `fieldpath.PathElement` and `Path`: how
//! they order, print (`.spec.ports[port=80,protocol="TCP"].targetPort`, the form of
//! Kubernetes' conflict messages) and encode as `fieldsV1` keys (`f:name`,
//! `k:{"port":80,"protocol":"TCP"}`, `v:"value"`, `i:0`).

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// One step into a value.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A field of an object (`f:`).
    Field(String),
    /// An element of an associative list, by its key fields sorted by name (`k:`).
    Key(Vec<(String, Value)>),
    /// An element of a set (`v:`).
    Value(Value),
    /// An element of a list by position (`i:`).
    Index(usize),
}

/// A path: the steps from the object's root.
pub type Path = Vec<PathElement>;

impl PathElement {
    pub fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    /// A key element; `fields` need not be sorted.
    pub fn key<S: Into<String>>(fields: impl IntoIterator<Item = (S, Value)>) -> PathElement {
        let mut k: Vec<(String, Value)> = fields.into_iter().map(|(n, v)| (n.into(), v)).collect();
        k.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(k)
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The `fieldsV1` key of this element (SMD `SerializePathElement`).
    pub fn to_fields_key(&self) -> String {
        match self {
            PathElement::Field(n) => format!("f:{n}"),
            PathElement::Key(k) => {
                let obj: serde_json::Map<String, Value> = k.iter().cloned().collect();
                format!("k:{}", Value::Object(obj))
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `fieldsV1` key (SMD `DeserializePathElement`).
    pub fn from_fields_key(s: &str) -> Result<PathElement, String> {
        let (prefix, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("unknown path element type: {s:?}"))?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "k" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(m)) if !m.is_empty() => Ok(PathElement::key(m)),
                Ok(_) => Err("key must be a non-empty JSON object".to_string()),
                Err(e) => Err(e.to_string()),
            },
            "v" => serde_json::from_str(rest)
                .map(PathElement::Value)
                .map_err(|e| e.to_string()),
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("{e}")),
            _ => Err(format!("unknown path element type: {s:?}")),
        }
    }
}

impl fmt::Display for PathElement {
    /// SMD `PathElement.String`: `.name`, `[port=80,protocol="TCP"]`, `[="value"]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Key(k) => {
                let parts: Vec<String> = k.iter().map(|(n, v)| format!("{n}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Prints a path as SMD's `Path.String` does.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(|pe| pe.to_string()).collect()
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathElement {
    /// SMD `PathElement.Compare`: fields, then keys, then values, then indexes.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => a.len().cmp(&b.len()).then_with(|| {
                a.iter()
                    .zip(b)
                    .map(|((an, av), (bn, bv))| an.cmp(bn).then_with(|| value_cmp(av, bv)))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            }),
            (PathElement::Value(a), PathElement::Value(b)) => value_cmp(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// SMD `value.Compare`: a total order, numbers < strings < booleans < lists < maps < null.
pub fn value_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(p, q)| value_cmp(p, q))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .zip(y)
            .map(|((pk, pv), (qk, qv))| pk.cmp(qk).then_with(|| value_cmp(pv, qv)))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Ported from SMD fieldpath/serialize-pe_test.go and path_test.go.
    #[test]
    fn fields_keys_round_trip() {
        for s in [
            "f:",
            "f:spec",
            "f:0",
            "f:%!@",
            "k:{\"name\":\"my-container\"}",
            "k:{\"port\":\"8080\",\"protocol\":\"TCP\"}",
            "k:{\"optionalField\":null}",
            "k:{\"jsonField\":{\"A\":1,\"B\":null,\"C\":\"D\",\"E\":{\"F\":\"G\"}}}",
            "k:{\"listField\":[\"1\",\"2\",\"3\"]}",
            "v:null",
            "v:\"some-string\"",
            "v:1234",
            "v:{\"some\":\"json\"}",
            "i:0",
            "i:1234",
        ] {
            let pe = PathElement::from_fields_key(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(pe.to_fields_key(), s);
        }
        for bad in [
            "", "no-colon", "p:", "k:", "k:{}", "k:[]", "v:", "i:-1", "i:a",
        ] {
            assert!(PathElement::from_fields_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_sorted_by_name() {
        let pe = PathElement::key([("protocol", json!("TCP")), ("port", json!(80))]);
        assert_eq!(pe.to_fields_key(), r#"k:{"port":80,"protocol":"TCP"}"#);
        assert_eq!(pe.to_string(), r#"[port=80,protocol="TCP"]"#);
    }

    #[test]
    fn prints_paths_as_conflict_messages_do() {
        let p = vec![
            PathElement::field("spec"),
            PathElement::field("ports"),
            PathElement::key([("port", json!(80)), ("protocol", json!("TCP"))]),
            PathElement::field("targetPort"),
        ];
        assert_eq!(
            path_string(&p),
            r#".spec.ports[port=80,protocol="TCP"].targetPort"#
        );
        let p = vec![
            PathElement::field("metadata"),
            PathElement::field("finalizers"),
            PathElement::Value(json!("a")),
            PathElement::Index(2),
        ];
        assert_eq!(path_string(&p), r#".metadata.finalizers[="a"][2]"#);
    }

    #[test]
    fn orders_as_smd() {
        let mut v = [
            PathElement::Index(1),
            PathElement::Value(json!("b")),
            PathElement::key([("name", json!("a"))]),
            PathElement::field("z"),
            PathElement::Value(json!(3)),
            PathElement::field("a"),
        ];
        v.sort();
        let s: Vec<String> = v.iter().map(|p| p.to_fields_key()).collect();
        assert_eq!(
            s,
            ["f:a", "f:z", r#"k:{"name":"a"}"#, "v:3", r#"v:"b""#, "i:1"]
        );
        assert_eq!(value_cmp(&json!(80), &json!(443)), Ordering::Less);
    }
}
