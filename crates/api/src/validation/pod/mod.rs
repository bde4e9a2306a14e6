//! Pod and PodSpec validation: mirrors `ValidatePodCreate`, `ValidatePodUpdate`,
//! `ValidatePodStatusUpdate`, `ValidatePodSpec`, `ValidatePodTemplateSpec` and the container,
//! volume, probe, env, port, toleration and DNS helpers of
//! `pkg/apis/core/validation/validation.go` (Kubernetes 1.32, default feature gates).
//!
//! A solid subset: everything a user of Deployments/Pods/Services meets (names, images, ports,
//! env, volume mounts, probes, lifecycle, policies, host ports, tolerations, DNS config, pod
//! security context ranges, immutability on update). Left out: resource quantities
//! (requests/limits), affinity, topology spread, Windows options, sysctls, seccomp/AppArmor,
//! resource claims, and per-source validation of exotic volume types.
//!
//! One file per group of upstream's helpers: `create.rs` (a Pod and a pod template), `spec.rs`
//! (`ValidatePodSpec`, host network, DNS config, tolerations), `containers.rs`, `env.rs`,
//! `volumes.rs` (volumes and mounts), `probes.rs` (probes and lifecycle hooks),
//! `security_context.rs`, `update.rs` (Pod and Pod status updates) and `ephemeral.rs` (ephemeral
//! containers and the `ephemeralcontainers` subresource's updates).

mod containers;
mod create;
mod env;
mod ephemeral;
mod probes;
mod security_context;
mod spec;
mod update;
mod volumes;

pub use create::{validate_create, validate_pod_template_spec};
pub use ephemeral::validate_ephemeral_containers_update;
pub use spec::{validate_pod_spec, PodValidationOptions};
pub use update::{validate_status_update, validate_update};

#[cfg(test)]
mod tests;
