//! TODO(helper)

mod support;
