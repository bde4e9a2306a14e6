//! Defaulting, as the Kubernetes API server applies it before validation (`pkg/apis/*/v1/defaults.go`).
//!
//! Each function fills the fields Kubernetes fills, so `kubectl get -o yaml` shows the same object
//! it would show against Kubernetes.
//!
//! Kubernetes defaults every request body on decode (create, update, patch results alike), so
//! the API server should call the kind's `default_*` function on every write before anything
//! else. For Services, the registry steps of [`service`] follow (IP families, allocated values,
//! type-dependent fields), then allocation, then [`crate::validation`].
//!
//! - [`core`]: Pod ([`core::default_pod`]), pod templates ([`core::default_pod_spec`],
//!   [`core::default_pod_template_spec`]), Node, Namespace, Endpoints.
//! - [`service`]: Service, plus `init_ip_families`, `patch_allocated_values`,
//!   `drop_type_dependent_fields`, `normalize_cluster_ips`.
//! - [`apps`]: Deployment, ReplicaSet, DaemonSet. [`batch`]: Job (and its generated selector).
//!   [`discovery`]: EndpointSlice.

pub mod apiregistration;
pub mod apps;
pub mod batch;
pub mod core;
pub mod discovery;
pub mod rbac;
pub mod service;
