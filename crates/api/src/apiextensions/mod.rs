//! apiextensions.k8s.io: CustomResourceDefinitions ([`crd`]: defaulting, validation, accepted
//! names) and custom objects against their schema ([`schema`]: pruning, defaulting,
//! validation with apiextensions-apiserver's messages).

pub mod crd;
pub mod schema;
