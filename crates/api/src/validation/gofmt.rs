//! How kube-apiserver 1.32/1.33 prints the offending value of a `field.Error` when that value is
//! not a plain string or number (`k8s.io/apimachinery/pkg/util/validation/field/errors.go`,
//! `ErrorBody`): Go's `%#v` of the *internal* type (`[]string{"a", "b"}`,
//! `map[string]string{"app":"web"}`, `core.ServicePort{...}`), or the value's `String()` when its
//! pointer type has one (`intstr.IntOrString` prints `25%`, `*metav1.LabelSelector` prints the
//! gogo-protobuf form `&LabelSelector{MatchLabels:map[string]string{app: web,},...}`).
//!
//! Every function returns a [`BadValue::Raw`] ready for [`crate::field::Error`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::field::{go_quote, BadValue};

/// `[]string{"a", "b"}`; a nil slice is `[]string(nil)`.
pub fn string_slice(type_name: &str, values: Option<&[String]>) -> String {
    match values {
        None => format!("[]{type_name}(nil)"),
        Some(v) => {
            let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
            format!("[]{type_name}{{{}}}", items.join(", "))
        }
    }
}

/// [`string_slice`] as a [`BadValue`], with Go's `[]string` type name.
pub fn strings(values: &[String]) -> BadValue {
    BadValue::Raw(string_slice("string", Some(values)))
}

/// `[]core.IPFamily{"IPv4"}`: the internal type of `spec.ipFamilies`.
pub fn ip_families(values: &[String]) -> BadValue {
    BadValue::Raw(string_slice("core.IPFamily", Some(values)))
}

/// `map[string]string{"a":"b", "c":"d"}` (keys sorted, as `fmt` prints maps); nil is
/// `map[string]string(nil)`.
pub fn string_map(map: Option<&BTreeMap<String, String>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// [`string_map`] as a [`BadValue`].
pub fn labels(map: Option<&BTreeMap<String, String>>) -> BadValue {
    BadValue::Raw(string_map(map))
}

/// `intstr.IntOrString` printed through its `String()`: `80`, `25%`, `http`.
pub fn int_or_string(v: &IntOrString) -> BadValue {
    BadValue::Raw(match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    })
}

/// `%#v` of an `intstr.IntOrString` nested in a struct:
/// `intstr.IntOrString{Type:0, IntVal:80, StrVal:""}`.
pub fn int_or_string_go(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => format!("intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"),
        IntOrString::String(s) => {
            format!(
                "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
                go_quote(s)
            )
        }
    }
}

/// The key Kubernetes reports for a duplicate Service port: a `core.ServicePort` holding only the
/// protocol and port, printed with `%#v`.
pub fn service_port_key(protocol: &str, port: i32) -> BadValue {
    BadValue::Raw(format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:{}, NodePort:0}}",
        go_quote(protocol),
        int_or_string_go(&IntOrString::Int(0)),
    ))
}

/// gogo-protobuf `String()` of a `*metav1.LabelSelector`:
/// `&LabelSelector{MatchLabels:map[string]string{app: web,},MatchExpressions:[]LabelSelectorRequirement{},}`.
pub fn label_selector(sel: &LabelSelector) -> BadValue {
    let mut labels = String::from("map[string]string{");
    for (k, v) in sel.match_labels.iter().flatten() {
        labels.push_str(&format!("{k}: {v},"));
    }
    labels.push('}');
    let mut exprs = String::from("[]LabelSelectorRequirement{");
    for e in sel.match_expressions.iter().flatten() {
        exprs.push_str(&format!(
            "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
            e.key,
            e.operator,
            e.values.as_deref().unwrap_or_default().join(" ")
        ));
    }
    exprs.push('}');
    BadValue::Raw(format!(
        "&LabelSelector{{MatchLabels:{labels},MatchExpressions:{exprs},}}"
    ))
}

fn go_bool_ptr_gogo(v: Option<bool>) -> String {
    match v {
        None => "nil".to_string(),
        Some(b) => format!("*{b}"),
    }
}

/// gogo-protobuf `String()` of a `metav1.OwnerReference`.
pub fn owner_reference(r: &OwnerReference) -> BadValue {
    BadValue::Raw(format!(
        "&OwnerReference{{Kind:{},Name:{},UID:{},APIVersion:{},Controller:{},BlockOwnerDeletion:{},}}",
        r.kind,
        r.name,
        r.uid,
        r.api_version,
        go_bool_ptr_gogo(r.controller),
        go_bool_ptr_gogo(r.block_owner_deletion),
    ))
}

fn go_ptr<T: std::fmt::Display>(type_name: &str, v: Option<T>) -> String {
    match v {
        None => format!("(*{type_name})(nil)"),
        // Go prints the address; it is meaningless to users and differs on every run.
        Some(_) => format!("(*{type_name})(0xc000010000)"),
    }
}

/// `%#v` of a `[]v1.OwnerReference` (pointer fields print as addresses, as in Go).
pub fn owner_references(refs: &[OwnerReference]) -> BadValue {
    let items: Vec<String> = refs
        .iter()
        .map(|r| {
            format!(
                "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
                go_quote(&r.api_version),
                go_quote(&r.kind),
                go_quote(&r.name),
                go_quote(&r.uid),
                go_ptr("bool", r.controller),
                go_ptr("bool", r.block_owner_deletion),
            )
        })
        .collect();
    BadValue::Raw(format!("[]v1.OwnerReference{{{}}}", items.join(", ")))
}

/// `time.Time.String()` of a UTC timestamp: `2024-05-01 10:00:00 +0000 UTC` (fractional seconds
/// only when non-zero, trailing zeros trimmed).
pub fn time(ts: &jiff::Timestamp) -> BadValue {
    BadValue::Raw(go_time_string(ts))
}

/// See [`time`].
pub fn go_time_string(ts: &jiff::Timestamp) -> String {
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let nanos = dt.subsec_nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// Go's zero `time.Time`, as `metav1.Time{}` prints.
pub const ZERO_TIME: &str = "0001-01-01 00:00:00 +0000 UTC";

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn renders_like_go() {
        assert_eq!(
            string_slice("string", Some(&["a".to_string(), "b".to_string()])),
            r#"[]string{"a", "b"}"#
        );
        assert_eq!(string_slice("string", None), "[]string(nil)");
        let mut m = BTreeMap::new();
        m.insert("tier".to_string(), "x".to_string());
        m.insert("app".to_string(), "web".to_string());
        assert_eq!(
            string_map(Some(&m)),
            r#"map[string]string{"app":"web", "tier":"x"}"#
        );
        assert_eq!(string_map(None), "map[string]string(nil)");
        let sel = LabelSelector {
            match_labels: Some(m),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert_eq!(
            label_selector(&sel),
            BadValue::Raw(
                "&LabelSelector{MatchLabels:map[string]string{app: web,tier: x,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:k,Operator:In,Values:[a b],},},}".into()
            )
        );
        let ts: jiff::Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        assert_eq!(go_time_string(&ts), "2024-05-01 10:00:00 +0000 UTC");
        let ts: jiff::Timestamp = "2024-05-01T10:00:00.5Z".parse().unwrap();
        assert_eq!(go_time_string(&ts), "2024-05-01 10:00:00.5 +0000 UTC");
    }
}
