//! Field paths and validation errors, rendered as Kubernetes' `k8s.io/apimachinery/pkg/util/validation/field`.

use std::fmt;

/// A path to a field, e.g. `spec.ports[0].port` or `metadata.labels[app]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path(String);

impl Path {
    pub fn new(root: &str) -> Self {
        Path(root.to_string())
    }
    /// `a.b`
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{}", self.0, name))
        }
    }
    /// `a[3]`
    pub fn index(&self, i: usize) -> Self {
        Path(format!("{}[{}]", self.0, i))
    }
    /// `a[key]`
    pub fn key(&self, k: &str) -> Self {
        Path(format!("{}[{}]", self.0, k))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Kubernetes' `field.ErrorType`: the `Display` is the human text, [`ErrorType::reason`] the
/// `StatusCause.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    TypeInvalid,
}

impl ErrorType {
    /// The `StatusCause.reason` Kubernetes sends for this error type.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
            ErrorType::TypeInvalid => "Invalid value",
        })
    }
}

/// The offending value, formatted as Go's `field.Error` formats its `BadValue`.
#[derive(Clone, Debug, PartialEq)]
pub enum BadValue {
    /// Not shown (Go's `omitValue`).
    Omit,
    /// `null`
    Null,
    /// Printed with `%v`.
    Int(i64),
    Bool(bool),
    /// Printed with `%q`.
    Str(String),
    /// Printed as given (Go's `%#v` of a struct, or a `String()`), e.g.
    /// `core.ServicePort{...}`; the caller formats it as Kubernetes does.
    Raw(String),
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::Str(s.to_string())
    }
}
impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::Str(s)
    }
}
impl From<&String> for BadValue {
    fn from(s: &String) -> Self {
        BadValue::Str(s.clone())
    }
}
impl From<i32> for BadValue {
    fn from(v: i32) -> Self {
        BadValue::Int(v.into())
    }
}
impl From<i64> for BadValue {
    fn from(v: i64) -> Self {
        BadValue::Int(v)
    }
}
impl From<bool> for BadValue {
    fn from(v: bool) -> Self {
        BadValue::Bool(v)
    }
}

/// One validation error.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub kind: ErrorType,
    pub field: String,
    pub bad_value: BadValue,
    pub detail: String,
}

/// Go's `strconv.Quote`-alike for `%q`: printable Unicode kept, the rest escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Error {
    fn new(kind: ErrorType, field: &Path, bad_value: BadValue, detail: impl Into<String>) -> Self {
        Error {
            kind,
            field: field.to_string(),
            bad_value,
            detail: detail.into(),
        }
    }
    pub fn not_found(field: &Path, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorType::NotFound, field, value.into(), "")
    }
    pub fn required(field: &Path, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorType::Required,
            field,
            BadValue::Str(String::new()),
            detail,
        )
    }
    pub fn duplicate(field: &Path, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorType::Duplicate, field, value.into(), "")
    }
    pub fn invalid(field: &Path, value: impl Into<BadValue>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, field, value.into(), detail)
    }
    /// `Unsupported value: "x": supported values: "A", "B"`
    pub fn not_supported(field: &Path, value: impl Into<BadValue>, valid: &[&str]) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorType::NotSupported, field, value.into(), detail)
    }
    pub fn forbidden(field: &Path, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorType::Forbidden,
            field,
            BadValue::Str(String::new()),
            detail,
        )
    }
    /// `Too long: may not be more than N bytes` (Kubernetes ≥ 1.30 wording).
    pub fn too_long(field: &Path, max: usize) -> Self {
        Self::new(
            ErrorType::TooLong,
            field,
            BadValue::Omit,
            format!("may not be more than {max} bytes"),
        )
    }
    /// `Too many: 5: must have at most 3 items`
    pub fn too_many(field: &Path, actual: usize, max: usize) -> Self {
        Self::new(
            ErrorType::TooMany,
            field,
            BadValue::Int(actual as i64),
            format!("must have at most {max} items"),
        )
    }
    pub fn internal(field: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, field, BadValue::Omit, detail)
    }

    /// The message without the field path (`StatusCause.message`), as Go's `ErrorBody()`.
    pub fn body(&self) -> String {
        let mut s = match self.kind {
            ErrorType::Required
            | ErrorType::Forbidden
            | ErrorType::TooLong
            | ErrorType::Internal => self.kind.to_string(),
            _ => match &self.bad_value {
                BadValue::Omit => self.kind.to_string(),
                BadValue::Null => format!("{}: null", self.kind),
                BadValue::Int(v) => format!("{}: {}", self.kind, v),
                BadValue::Bool(v) => format!("{}: {}", self.kind, v),
                BadValue::Str(v) => format!("{}: {}", self.kind, go_quote(v)),
                BadValue::Raw(v) => format!("{}: {}", self.kind, v),
            },
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for Error {
    /// `field: body`, as Go's `Error()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.body())
        } else {
            write!(f, "{}: {}", self.field, self.body())
        }
    }
}

impl std::error::Error for Error {}

/// A list of validation errors; empty = valid.
pub type ErrorList = Vec<Error>;

/// Go's `ErrorList.ToAggregate().Error()`: one error as is, several as `[a, b]`.
pub fn aggregate_message(errs: &[Error]) -> String {
    // Kubernetes de-duplicates identical messages in an aggregate.
    let mut msgs: Vec<String> = Vec::new();
    for e in errs {
        let m = e.to_string();
        if !msgs.contains(&m) {
            msgs.push(m);
        }
    }
    match msgs.len() {
        0 => String::new(),
        1 => msgs.remove(0),
        _ => format!("[{}]", msgs.join(", ")),
    }
}

/// Every error as Kubernetes renders it, in order: what validation tests compare with
/// kube-apiserver's messages.
#[cfg(test)]
pub(crate) fn messages(errs: &[Error]) -> Vec<String> {
    errs.iter().map(Error::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_kubernetes() {
        let p = Path::new("spec").child("ports").index(0).child("port");
        let e = Error::invalid(&p, 0, "must be between 1 and 65535, inclusive");
        assert_eq!(
            e.to_string(),
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
        );
        let e = Error::required(&Path::new("spec").child("ports"), "");
        assert_eq!(e.to_string(), "spec.ports: Required value");
        let e = Error::not_supported(
            &Path::new("spec").child("type"),
            "Foo",
            &["ClusterIP", "NodePort"],
        );
        assert_eq!(
            e.to_string(),
            r#"spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "NodePort""#
        );
        let e = Error::invalid(&Path::new("metadata").child("name"), "A_b", "x");
        assert_eq!(e.body(), r#"Invalid value: "A_b": x"#);
        assert_eq!(
            Path::new("metadata").child("labels").key("app").to_string(),
            "metadata.labels[app]"
        );
    }

    #[test]
    fn aggregates_like_go() {
        let a = Error::required(&Path::new("a"), "");
        let b = Error::required(&Path::new("b"), "");
        assert_eq!(
            aggregate_message(std::slice::from_ref(&a)),
            "a: Required value"
        );
        assert_eq!(
            aggregate_message(&[a.clone(), b, a]),
            "[a: Required value, b: Required value]"
        );
    }
}
