//! Validation of every kind the API server serves, with Kubernetes' field paths and messages
//! (`pkg/apis/core/validation`, `pkg/apis/apps/validation`, `pkg/apis/discovery/validation`,
//! `k8s.io/apimachinery/pkg/api/validation`, `k8s.io/apimachinery/pkg/util/validation`).
//!
//! Each kind has `validate_create(&T)`, `validate_update(&new, &old)` and, where the kind has a
//! status subresource, `validate_status_update(&new, &old)`. They return every error found.

pub mod apps;
pub mod endpoints;
pub mod event;
pub mod meta;
pub mod names;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod service;
