//! Label selectors (apimachinery's `labels` package): [`LabelSelector`] from the string syntax,
//! from a `metav1.LabelSelector` or from a map, and its matching.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;

use crate::selector::{write_joined, SelectorError};

mod parser;
mod requirement;

use parser::Parser;
pub use requirement::{Operator, Requirement};

/// A parsed label selector. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parse the string syntax (`a=b,c!=d,e in (f,g),!h,i`).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser::new(s);
        let mut requirements = parser.parse()?;
        // Go sorts with sort.Sort(ByKey); for the handful of requirements a selector has that is
        // an insertion sort, i.e. stable.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// From a `metav1.LabelSelector` (matchLabels + matchExpressions), as `LabelSelectorAsSelector`.
    /// An empty one selects everything.
    pub fn from_meta(sel: &MetaLabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(
                k,
                Operator::Equals,
                vec![v.clone()],
                None,
            )?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError(format!(
                        "{} is not a valid label selector operator",
                        crate::field::go_quote(other)
                    )))
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            requirements.push(Requirement::new(&expr.key, op, values, None)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Every `key=value` of `map` must match (a Service's or ReplicaSet's `spec.selector` map).
    /// Not validated; an empty map gives the empty selector (which selects everything — callers
    /// for whom an empty selector means "nothing", like Services, check [`Self::is_empty`]).
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        LabelSelector {
            requirements: map
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Go's `RequiresExactMatch`: the value `label` must have (`=`, `==`, or `in` with one value).
    pub fn exact(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (&r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form, as Go's `Selector.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, &self.requirements)
    }
}

#[cfg(test)]
mod tests;
