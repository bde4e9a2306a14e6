//! Validation of every kind the API server serves, with Kubernetes' field paths and messages
//! (`pkg/apis/core/validation`, `pkg/apis/apps/validation`, `pkg/apis/discovery/validation`,
//! `pkg/apis/coordination/validation`, `pkg/apis/node/validation`,
//! `k8s.io/apimachinery/pkg/api/validation`, `k8s.io/apimachinery/pkg/util/validation`).
//!
//! Each kind has `validate_create(&T)`, `validate_update(&new, &old)` and, where the kind has a
//! status subresource, `validate_status_update(&new, &old)`. They return every error found.
//!
//! Inputs are the objects *after* defaulting ([`crate::defaults`]) and, for Services, after the
//! registry steps (`init_ip_families`, allocation, `patch_allocated_values`,
//! `drop_type_dependent_fields`): validation checks what will be stored, as Kubernetes does.
//!
//! Every message is the one kube-apiserver 1.32/1.33 produces, byte for byte, including how Go
//! prints the offending value ([`gofmt`]).

pub mod apiregistration;
pub mod apps;
pub mod batch;
pub mod certificates;
pub mod config;
pub mod coordination;
pub mod daemonset;
pub mod endpoints;
pub mod event;
pub mod gofmt;
pub mod meta;
pub mod names;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod policy;
pub mod rbac;
pub mod replicationcontroller;
pub mod runtimeclass;
pub mod service;

use crate::field::{Error, ErrorList, Path};
use names::{is_valid_port_num, validate_dns1123_label};

/// `supportedPortProtocols`: what a Service, Endpoints or container port may name.
pub(crate) const SUPPORTED_PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
/// The taint effects a Node's taint or a Pod's toleration may name.
pub(crate) const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// `""` for an absent string field: Go has no difference between the two.
pub(crate) fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// `must be one of ...` helper: Required for empty, NotSupported for unknown.
pub(crate) fn enum_value(value: &str, path: &Path, valid: &[&str]) -> ErrorList {
    if value.is_empty() {
        vec![Error::required(path, "")]
    } else if !valid.contains(&value) {
        vec![Error::not_supported(path, value, valid)]
    } else {
        Vec::new()
    }
}

/// The `name` of a Service or Endpoints port (`path` is the port's): required where the object
/// has several ports, a DNS-1123 label when set.
pub(crate) fn validate_port_name(name: &str, required: bool, path: &Path) -> ErrorList {
    if required && name.is_empty() {
        vec![Error::required(&path.child("name"), "")]
    } else if !name.is_empty() {
        validate_dns1123_label(name, &path.child("name"))
    } else {
        Vec::new()
    }
}

/// The `port` number and `protocol` of a Service or Endpoints port (`path` is the port's).
pub(crate) fn validate_port_and_protocol(port: i32, protocol: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for m in is_valid_port_num(port.into()) {
        errs.push(Error::invalid(&path.child("port"), port, m));
    }
    errs.extend(enum_value(
        protocol,
        &path.child("protocol"),
        SUPPORTED_PORT_PROTOCOLS,
    ));
    errs
}
