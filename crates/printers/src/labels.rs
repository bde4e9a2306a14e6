//! `labels.FormatLabels` and `metav1.LabelSelectorAsSelector(...).String()`, including the
//! validation `labels.NewRequirement` performs (an invalid selector prints as an error marker).

use serde_json::{Map, Value};

use crate::json::{arr_at, map_at, str_at};

/// `labels.FormatLabels`: `k=v` pairs sorted by key, comma-joined; `<none>` when empty.
pub(crate) fn format_labels(m: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<(&str, &str)> = m
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.LabelSelectorAsSelector(sel).String()`. `None` = the selector is invalid (Go
/// returns an error). A nil selector (`labels.Nothing()`) and an empty one
/// (`labels.Everything()`) both print as `""`.
pub(crate) fn selector_string(sel: Option<&Value>) -> Option<String> {
    let Some(sel) = sel else {
        return Some(String::new());
    };
    let match_labels = map_at(sel, &["matchLabels"]);
    let exprs = arr_at(sel, &["matchExpressions"]);
    let mut reqs: Vec<(String, String)> = Vec::new(); // (key, rendered requirement)
    for (k, v) in match_labels.into_iter().flatten() {
        let v = v.as_str().unwrap_or("");
        validate_key(k)?;
        validate_value(v)?;
        reqs.push((k.clone(), format!("{k}={v}")));
    }
    for expr in exprs {
        let key = str_at(expr, &["key"]);
        let values: Vec<&str> = arr_at(expr, &["values"])
            .iter()
            .map(|v| v.as_str().unwrap_or(""))
            .collect();
        validate_key(key)?;
        let rendered = match str_at(expr, &["operator"]) {
            op @ ("In" | "NotIn") => {
                if values.is_empty() {
                    return None;
                }
                for v in &values {
                    validate_value(v)?;
                }
                let mut sorted = values.clone();
                sorted.sort_unstable();
                let word = if op == "In" { "in" } else { "notin" };
                format!("{key} {word} ({})", sorted.join(","))
            }
            op @ ("Exists" | "DoesNotExist") => {
                if !values.is_empty() {
                    return None;
                }
                if op == "Exists" {
                    key.to_string()
                } else {
                    format!("!{key}")
                }
            }
            _ => return None,
        };
        reqs.push((key.to_string(), rendered));
    }
    // internalSelector.Add sorts by key; Go's sort is stable at these sizes.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: `<error>` for an invalid selector, `<none>` for an empty string.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        None => "<error>".to_string(),
        Some(s) if s.is_empty() => "<none>".to_string(),
        Some(s) => s,
    }
}

/// `validation.IsQualifiedName`.
fn validate_key(key: &str) -> Option<()> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 || !is_dns1123_subdomain(prefix) {
                return None;
            }
            name
        }
        None => key,
    };
    (!name.is_empty() && name.len() <= 63 && is_qualified_name_part(name)).then_some(())
}

/// `validation.IsValidLabelValue`.
fn validate_value(v: &str) -> Option<()> {
    (v.is_empty() || (v.len() <= 63 && is_qualified_name_part(v))).then_some(())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` (also rejects a second `/`).
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_alphanumeric();
    let inner = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    !b.is_empty() && edge(b[0]) && edge(b[b.len() - 1]) && b.iter().all(|&c| inner(c))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && edge(b[0])
            && edge(b[b.len() - 1])
            && b.iter().all(|&c| edge(c) || c == b'-')
    })
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::{json, Value};

    use super::selector_string;

    #[test]
    fn label_selectors() {
        let cases: Vec<(Value, Option<&str>)> = vec![
            (
                json!({"matchLabels": {"b": "2", "a": "1"}}),
                Some("a=1,b=2"),
            ),
            (
                json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["b", "a"]},
                                            {"key": "w", "operator": "Exists"}]}),
                Some("w,x notin (a,b)"),
            ),
            (
                json!({"matchLabels": {"example.com/app": "web"}}),
                Some("example.com/app=web"),
            ),
            (json!({"matchLabels": {"Example.com/app": "web"}}), None),
            (json!({"matchLabels": {"a": "-bad"}}), None),
            (json!({"matchLabels": {"a": ""}}), Some("a=")),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                None,
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                None,
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(selector_string(Some(&sel)).as_deref(), want, "{sel}");
        }
        assert_eq!(selector_string(None).as_deref(), Some(""));
    }
}
