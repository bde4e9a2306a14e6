//! Label selectors and field selectors, with Kubernetes' syntax, semantics and error messages
//! (`k8s.io/apimachinery/pkg/labels` and `pkg/fields`).
//!
//! - [`LabelSelector::parse`] is `labels.Parse`: a lexer and a recursive-descent parser for
//!   `a=b,c!=d,e in (f,g),h notin (i),j,!k,l>1,m<2`, with the key and value validation of
//!   `labels.NewRequirement`. Requirements come out sorted by key, values of `in`/`notin`
//!   de-duplicated and sorted, as upstream.
//! - [`LabelSelector::from_meta`] is `metav1.LabelSelectorAsSelector`, [`LabelSelector::from_map`]
//!   is `labels.SelectorFromSet` (no validation; an empty map selects everything).
//! - [`FieldSelector::parse`] is `fields.ParseSelector`: `,`-separated `field=value`,
//!   `field==value`, `field!=value` terms, values escaped with `\` (`\,`, `\=`, `\\`).
//!
//! Every error message is the one the Kubernetes API server puts into the `message` of its HTTP
//! 400 `Status` (the API server wraps nothing around them), e.g.
//! `unable to parse requirement: found '', expected: in, notin, =, ==, !=, gt, lt`.
//!
//! `labels/` is apimachinery's `labels` package: the [`Requirement`] and its matching
//! (`requirement.rs`), the lexer and parser of the string syntax (`parser.rs`), and
//! [`LabelSelector`] (`mod.rs`). `fields.rs` is its `fields` package.

use std::fmt;

mod fields;
mod labels;

pub use fields::{FieldOperator, FieldRequirement, FieldSelector};
pub use labels::{LabelSelector, Operator, Requirement};

/// A selector that could not be parsed; the message is Kubernetes' own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

fn err<T>(msg: String) -> Result<T, SelectorError> {
    Err(SelectorError(msg))
}

/// Go's `Selector.String()` in both packages: the requirements' strings joined with `,`.
fn write_joined(f: &mut fmt::Formatter<'_>, requirements: &[impl fmt::Display]) -> fmt::Result {
    for (i, r) in requirements.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{r}")?;
    }
    Ok(())
}
