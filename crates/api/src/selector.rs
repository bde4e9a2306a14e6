//! Label selectors and field selectors, with Kubernetes' syntax, semantics and error messages
//! (`k8s.io/apimachinery/pkg/labels` and `pkg/fields`).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

/// A parsed label selector. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

/// A selector that could not be parsed; the message is Kubernetes' own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

impl LabelSelector {
    /// Parse the string syntax (`a=b,c!=d,e in (f,g),!h,i`).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let _ = s;
        unimplemented!()
    }
    /// From a `metav1.LabelSelector` (matchLabels + matchExpressions), as `LabelSelectorAsSelector`.
    pub fn from_meta(sel: &MetaLabelSelector) -> Result<Self, SelectorError> {
        let _ = sel;
        unimplemented!()
    }
    /// Every `key=value` of `map` must match (a Service's or ReplicaSet's `spec.selector` map).
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        let _ = map;
        unimplemented!()
    }
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let _ = labels;
        unimplemented!()
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form, as Go's `Selector.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        unimplemented!()
    }
}

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

/// A parsed field selector (`metadata.name=x,spec.nodeName!=`). Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let _ = s;
        unimplemented!()
    }
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
    /// `get(field)` returns the object's value of a field label; `None` = not a supported field
    /// (matching then is the caller's error to report; here it counts as "").
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        let _ = get;
        unimplemented!()
    }
    /// The value required by `field=value` / `field==value`, if the selector has one.
    pub fn exact(&self, field: &str) -> Option<&str> {
        let _ = field;
        unimplemented!()
    }
}
