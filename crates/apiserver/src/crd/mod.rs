//! CustomResourceDefinitions (apiextensions.k8s.io/v1), as kube-apiserver's
//! apiextensions-apiserver serves them:
//!
//! - the CRD kind itself ([`STRATEGY`]: defaulting and validation from
//!   `svcnet_api::apiextensions::crd`; deletion marks it Terminating with the
//!   `customresourcecleanup.apiextensions.k8s.io` finalizer, [`mark_for_deletion`], as
//!   `customresourcedefinition/etcd.go`'s Delete);
//! - the controller ([`controller`]) that, for every CRD in the store, serves its kinds through
//!   the server's [`crate::catalog::Catalog`] and writes `NamesAccepted`, `Established` and
//!   `acceptedNames` (the naming and establishing controllers), and that deletes a deleted
//!   CRD's objects before it lets the CRD go (the finalizer controller);
//! - the custom objects' per-version behaviour ([`custom`]: pruning, defaulting, schema
//!   validation, status split, apiVersion-only conversion), their printer columns
//!   ([`columns`]) and their Scale ([`custom::CustomVersion::scale`]).

pub mod columns;
pub mod controller;
pub mod custom;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{json, Value};
use svcnet_api::apiextensions::crd;
use svcnet_api::field::{Error, ErrorList, Path};
use svcnet_api::validation::meta::validate_object_meta;
use svcnet_api::validation::names::name_is_dns_subdomain;

use crate::strategy::{StatusOnCreate, Typed};

/// The finalizer a CRD carries while its objects are deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn as_json(crd: &CustomResourceDefinition) -> Value {
    serde_json::to_value(crd).unwrap_or_default()
}

fn crd_default(c: &mut CustomResourceDefinition) {
    let mut v = as_json(c);
    crd::default(&mut v);
    if let Ok(t) = serde_json::from_value(v) {
        *c = t;
    }
}

fn crd_validate_create(c: &CustomResourceDefinition) -> ErrorList {
    let mut errs = validate_object_meta(
        &c.metadata,
        false,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(crd::validate(&as_json(c)));
    errs
}

/// `ValidateCustomResourceDefinitionUpdate`: the create rules, and a group and scope that do
/// not change once the CRD has been established (its objects are stored under them).
fn crd_validate_update(
    new: &CustomResourceDefinition,
    old: &CustomResourceDefinition,
) -> ErrorList {
    let mut errs = crd::validate(&as_json(new));
    let sp = Path::new("spec");
    if new.spec.group != old.spec.group {
        errs.push(Error::invalid(
            &sp.child("group"),
            new.spec.group.as_str(),
            "field is immutable",
        ));
    }
    let established = old
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
    if established && new.spec.scope != old.spec.scope {
        errs.push(Error::invalid(
            &sp.child("scope"),
            new.spec.scope.as_str(),
            "field is immutable",
        ));
    }
    errs
}

fn nothing(_: &mut CustomResourceDefinition) {}

fn no_errors(_: &CustomResourceDefinition, _: &CustomResourceDefinition) -> ErrorList {
    Vec::new()
}

/// The CRD kind's strategy (`customresourcedefinition/strategy.go`).
pub static STRATEGY: Typed<CustomResourceDefinition> = Typed {
    default: crd_default,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: nothing,
    validate_create: crd_validate_create,
    validate_update: crd_validate_update,
    validate_status_update: no_errors,
    go_zero: &[],
};

/// Set or replace the condition `type_` in a CRD's status, keeping its transition time when the
/// status does not change (`SetCRDCondition`).
pub fn set_condition(crd: &mut Value, type_: &str, status: &str, reason: &str, message: &str) {
    let now = crate::objmeta::now_rfc3339();
    let conds = crd["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut found = false;
    for mut c in conds {
        if c["type"] == type_ {
            found = true;
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        out.push(c);
    }
    if !found {
        out.push(json!({"type": type_, "status": status, "lastTransitionTime": now, "reason": reason, "message": message}));
    }
    crd["status"]["conditions"] = Value::Array(out);
}

/// What deleting a CRD does before it is gone (`customresourcedefinition/etcd.go` Delete): the
/// cleanup finalizer holds it, and its status says its objects are about to be deleted.
pub fn mark_for_deletion(crd: &mut Value) {
    let mut finalizers = crate::objmeta::finalizers(crd);
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        finalizers.push(CLEANUP_FINALIZER.into());
    }
    crate::objmeta::meta_mut(crd).insert("finalizers".into(), json!(finalizers));
    set_condition(
        crd,
        "Terminating",
        "True",
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    );
}
