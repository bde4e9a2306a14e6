//! Defaulting, as the Kubernetes API server applies it before validation (`pkg/apis/*/v1/defaults.go`).
//!
//! Each function fills the fields Kubernetes fills, so `kubectl get -o yaml` shows the same object
//! it would show against Kubernetes.

pub mod apps;
pub mod core;
pub mod discovery;
pub mod service;
