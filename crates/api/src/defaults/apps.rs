//! TODO(helper): see defaults/mod.rs
