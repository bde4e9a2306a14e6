//! A Kubernetes-compatible API server for Services and the objects they need.
//!
//! The real `kubectl` and kube-rs clients work against it unchanged: Kubernetes' REST paths,
//! verbs, watch semantics, discovery, Table output and `Status` errors, over HTTPS with bearer
//! tokens. Objects are k8s-openapi types (so every field round-trips), stored in an
//! etcd-shaped [`svcnet_store::Store`] with resourceVersion = revision.
//!
//! Where to start: [`server::Server::start`] wires everything; [`rest`] holds the generic verb
//! handlers (HTTP in and out); [`registry`] is the write path they and the server's own writers
//! share (create, update, delete); per-kind behaviour is in [`resources`] (names, keys) and [`strategy`] (defaulting,
//! validation via `svcnet-api`), with Service IP/port allocation in [`alloc`] and [`hooks`].
//! Connections (timeouts, caps, the in-flight limit) are [`serving`]'s. What is served — the
//! built-in table and the kinds of CustomResourceDefinitions ([`crd`]) — is the [`catalog`]'s.

pub mod alloc;
pub mod auth;
pub mod bootstrap;
pub mod catalog;
pub mod codec;
pub mod config;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod hooks;
pub mod namespaces;
pub mod objmeta;
pub mod openapi;
pub mod part;
pub mod registry;
pub mod request;
pub mod resources;
pub mod rest;
pub mod server;
pub mod serving;
pub mod ssa;
pub mod state;
pub mod strategy;
pub mod table;
pub mod tls;
pub mod version;

pub use config::Config;
pub use server::{Server, ServerError, ServerOptions};
pub mod proxy;
