//! Field selectors (apimachinery's `fields` package): `fields.ParseSelector`, the escaping of
//! values, and matching against an object's field labels.

use std::fmt;

use crate::selector::{err, write_joined, SelectorError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldOperator {
    Equals,
    DoubleEquals,
    NotEquals,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

impl FieldRequirement {
    fn matches(&self, actual: &str) -> bool {
        match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    /// Go's `hasTerm`/`notHasTerm` `String()`: `==` prints as `=`, the value escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{}{}", self.field, op, escape_field_value(&self.value))
    }
}

/// A parsed field selector (`metadata.name=x,spec.nodeName!=`). Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// `fields.ParseSelector`. Terms are sorted (as raw strings, as upstream); no whitespace is
    /// trimmed.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut requirements = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((field, operator, rhs)) = split_term(part) else {
                return err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let value = unescape_field_value(rhs)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// `get(field)` returns the object's value of a field label; `None` = not a supported field
    /// (matching then is the caller's error to report; here it counts as "").
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(&get(&r.field).unwrap_or_default()))
    }

    /// The value required by `field=value` / `field==value`, if the selector has one.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// Go's `Selector.String()`: the terms joined with `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, &self.requirements)
    }
}

/// The comma-separated terms; a `\`-escaped comma is data, kept with its backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Split at the first operator (`!=`, then `==`, then `=` at each position); the left side has
/// no escaping.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::DoubleEquals),
        ("=", FieldOperator::Equals),
    ];
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in &OPS {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind.clone(), rhs));
            }
        }
    }
    None
}

fn unescape_field_value(s: &str) -> Result<String, SelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if matches!(c, '\\' | ',' | '=') {
                out.push(c);
            } else {
                return err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its code point number.
            ',' | '=' => {
                return err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ))
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// Go's `fields.EscapeValue`.
fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | ',' | '=' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selectors_parse_like_upstream() {
        let s = FieldSelector::parse("metadata.name=web,spec.nodeName!=,status.phase==Running")
            .unwrap();
        assert_eq!(
            s.requirements,
            vec![
                FieldRequirement {
                    field: "metadata.name".into(),
                    operator: FieldOperator::Equals,
                    value: "web".into()
                },
                FieldRequirement {
                    field: "spec.nodeName".into(),
                    operator: FieldOperator::NotEquals,
                    value: "".into()
                },
                FieldRequirement {
                    field: "status.phase".into(),
                    operator: FieldOperator::DoubleEquals,
                    value: "Running".into()
                },
            ]
        );
        // Terms are sorted; `==` prints as `=`.
        assert_eq!(
            FieldSelector::parse("b==2,a=1").unwrap().to_string(),
            "a=1,b=2"
        );
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",").unwrap().is_empty());
        assert_eq!(s.exact("metadata.name"), Some("web"));
        assert_eq!(s.exact("status.phase"), Some("Running"));
        assert_eq!(s.exact("spec.nodeName"), None);

        let get = |f: &str| match f {
            "metadata.name" => Some("web".to_string()),
            "spec.nodeName" => Some("node-1".to_string()),
            "status.phase" => Some("Running".to_string()),
            _ => None,
        };
        assert!(s.matches(get));
        assert!(!FieldSelector::parse("spec.nodeName=").unwrap().matches(get));
        assert!(FieldSelector::parse("unknown=").unwrap().matches(get));
        assert!(FieldSelector::parse("").unwrap().matches(get));
    }

    // fields/selector_test.go TestSelectorParse, TestEscapeValue, TestInvalidEscapeSequences.
    #[test]
    fn field_selector_escaping() {
        let s = FieldSelector::parse(r"a=\,\=\\,b!=x\,y").unwrap();
        assert_eq!(s.requirements[0].value, r",=\");
        assert_eq!(s.requirements[1].value, "x,y");
        assert_eq!(s.to_string(), r"a=\,\=\\,b!=x\,y");
        // The left side has no escaping: the first operator splits.
        let s = FieldSelector::parse("a!b=c").unwrap();
        assert_eq!(s.requirements[0].field, "a!b");
        let s = FieldSelector::parse("x==").unwrap();
        assert_eq!(s.requirements[0].value, "");
        assert_eq!(s.requirements[0].operator, FieldOperator::DoubleEquals);
        let s = FieldSelector::parse("x===").unwrap_err();
        assert_eq!(
            s.0,
            "invalid field selector: unescaped character in value: 61"
        );
        for (input, want) in [
            ("foo", "invalid selector: 'foo'; can't understand 'foo'"),
            (
                "a=b,foo",
                "invalid selector: 'a=b,foo'; can't understand 'foo'",
            ),
            (
                r"a=\x",
                r"invalid field selector: invalid escape sequence: \x",
            ),
            (
                r"a=\",
                r"invalid field selector: invalid escape sequence: \",
            ),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
        ] {
            assert_eq!(
                FieldSelector::parse(input).unwrap_err().0,
                want,
                "{input:?}"
            );
        }
    }
}
