//! One requirement of a label selector (`labels.Requirement`): its operators, its construction
//! with the key and value validation of `labels.NewRequirement`, its matching and its string
//! form.

use std::collections::BTreeMap;
use std::fmt;

use crate::field::{aggregate_message, BadValue, Error as FieldError, Path};
use crate::selector::SelectorError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// The `selection.Operator` string (`"="`, `"in"`, `"!"`, `"gt"`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    /// `labels.NewRequirement`: validates the key, the number of values for the operator and
    /// every value. `path` is the `field.Path` option (`None` = no path, as in `labels.Parse`).
    pub fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
        path: Option<&Path>,
    ) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        let child = |name: &str| match path {
            Some(p) => p.child(name),
            None => Path::new(name),
        };
        if let Some(e) = validate_label_key(key, &child("key")) {
            errs.push(e);
        }
        let value_path = child("values");
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(FieldError::invalid(
                        &value_path,
                        go_string_slice(&values),
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        &value_path,
                        go_string_slice(&values),
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(FieldError::invalid(
                        &value_path,
                        go_string_slice(&values),
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        &value_path,
                        go_string_slice(&values),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(FieldError::invalid(
                            &value_path.index(i),
                            v.as_str(),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            if let Some(e) = validate_label_value(key, v, &value_path.index(i)) {
                errs.push(e);
            }
        }
        if !errs.is_empty() {
            return Err(SelectorError(aggregate_message(&errs)));
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => labels
                .get(&self.key)
                .is_some_and(|v| self.values.contains(v)),
            Operator::NotIn | Operator::NotEquals => labels
                .get(&self.key)
                .is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => labels.contains_key(&self.key),
            Operator::DoesNotExist => !labels.contains_key(&self.key),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(have)) = labels.get(&self.key).map(|v| v.parse::<i64>()) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Go's `Requirement.String()`: `!k`, `k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    /// `k notin (a,b)`, `k>1`, `k<1`; several values are printed sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        if self.values.len() == 1 {
            f.write_str(&self.values[0])?;
        } else {
            let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            f.write_str(&sorted.join(","))?;
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Key and value validation (util/validation: IsQualifiedName, IsValidLabelValue).

pub(super) fn validate_label_key(key: &str, path: &Path) -> Option<FieldError> {
    let errs = crate::validation::names::is_qualified_name(key);
    (!errs.is_empty()).then(|| FieldError::invalid(path, key, errs.join("; ")))
}

fn validate_label_value(key: &str, value: &str, path: &Path) -> Option<FieldError> {
    let errs = crate::validation::names::is_valid_label_value(value);
    (!errs.is_empty()).then(|| FieldError::invalid(&path.key(key), value, errs.join("; ")))
}

/// Go's `%#v` of a `[]string` (`[]string(nil)` when empty: upstream copies values with
/// `append([]string(nil), ...)`).
fn go_string_slice(values: &[String]) -> BadValue {
    if values.is_empty() {
        return BadValue::Raw("[]string(nil)".to_string());
    }
    let quoted: Vec<String> = values.iter().map(|v| crate::field::go_quote(v)).collect();
    BadValue::Raw(format!("[]string{{{}}}", quoted.join(", ")))
}
