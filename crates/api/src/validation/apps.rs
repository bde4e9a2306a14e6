//! TODO(helper): see validation/mod.rs
