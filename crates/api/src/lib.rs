//! Kubernetes API semantics, without I/O.
//!
//! - [`field`]: field paths and validation errors rendered exactly as Kubernetes renders them
//!   (`spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive`).
//! - [`validation`]: per-kind create/update validation with Kubernetes' field paths and messages.
//! - [`defaults`]: per-kind defaulting, as the Kubernetes API server applies it on write.
//! - [`selector`]: label selectors (string syntax and `LabelSelector`) and field selectors.
//! - [`disruption`]: the PodDisruptionBudget `DisruptionAllowed` condition.
//! - [`apiextensions`]: CustomResourceDefinitions and custom objects against their schemas.
//! - [`conversion`]: one stored kind served in two API versions (events.k8s.io/v1 Events as
//!   core/v1 Events).
//!
//! Everything works on the k8s-openapi types, so what is validated is what goes on the wire.

pub mod apiextensions;
pub mod conversion;
pub mod defaults;
pub mod disruption;
pub mod field;
pub mod selector;
pub mod validation;
