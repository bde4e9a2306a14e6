//! ObjectMeta validation: mirrors `k8s.io/apimachinery/pkg/api/validation/objectmeta.go`
//! (`ValidateObjectMeta`, `ValidateObjectMetaUpdate`, owner references, finalizers, annotation
//! size) plus the extra finalizer-name rule of `pkg/apis/core/validation/validation.go`
//! (`validateKubeFinalizerName`), which every built-in kind applies.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::gofmt;
use super::names::{
    validate_annotations, validate_labels, validate_nonnegative, validate_qualified_name, NameFn,
    FIELD_IMMUTABLE_ERROR_MSG,
};
use super::s;
use crate::field::{BadValue, Error, ErrorList, Path};

/// Finalizers that need no domain prefix (`helper.IsStandardFinalizerName`).
pub const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// `ValidateObjectMeta` (core's variant: apimachinery's checks plus `validateKubeFinalizerName`).
///
/// `name_fn` is one of [`super::names::name_is_dns_subdomain`],
/// [`super::names::name_is_dns_label`], [`super::names::name_is_dns1035_label`]. Name generation
/// is expected to have happened: an empty name is `Required value: name or generateName is
/// required`.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_fn: NameFn,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let generate_name = s(&meta.generate_name);
    if !generate_name.is_empty() {
        for m in name_fn(generate_name, true) {
            errs.push(Error::invalid(
                &path.child("generateName"),
                generate_name,
                m,
            ));
        }
    }
    let name = s(&meta.name);
    if name.is_empty() {
        errs.push(Error::required(
            &path.child("name"),
            "name or generateName is required",
        ));
    } else {
        for m in name_fn(name, false) {
            errs.push(Error::invalid(&path.child("name"), name, m));
        }
    }
    let namespace = s(&meta.namespace);
    if namespaced {
        if namespace.is_empty() {
            errs.push(Error::required(&path.child("namespace"), ""));
        } else {
            for m in super::names::name_is_dns_label(namespace, false) {
                errs.push(Error::invalid(&path.child("namespace"), namespace, m));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(Error::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    errs.extend(validate_nonnegative(
        meta.generation.unwrap_or(0),
        &path.child("generation"),
    ));
    errs.extend(validate_labels(meta.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        meta.owner_references.as_deref().unwrap_or_default(),
        &path.child("ownerReferences"),
    ));
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    errs.extend(validate_finalizers(finalizers, &path.child("finalizers")));
    errs.extend(validate_managed_fields(meta, &path.child("managedFields")));
    for (i, f) in finalizers.iter().enumerate() {
        errs.extend(validate_kube_finalizer_name(
            f,
            &path.child("finalizers").index(i),
        ));
    }
    errs
}

/// `ValidateObjectMetaUpdate` (core's variant, with `validateKubeFinalizerName`).
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let new_finalizers = new.finalizers.as_deref().unwrap_or_default();
    if old.deletion_timestamp.is_some() {
        errs.extend(validate_no_new_finalizers(
            new_finalizers,
            old.finalizers.as_deref().unwrap_or_default(),
            &path.child("finalizers"),
        ));
    }
    if s(&new.resource_version).is_empty() {
        errs.push(Error::invalid(
            &path.child("resourceVersion"),
            "",
            "must be specified for an update",
        ));
    }
    let (new_gen, old_gen) = (new.generation.unwrap_or(0), old.generation.unwrap_or(0));
    if new_gen < old_gen {
        errs.push(Error::invalid(
            &path.child("generation"),
            new_gen,
            "must not be decremented",
        ));
    }
    let immutable = |errs: &mut ErrorList, changed: bool, field: &str, shown: BadValue| {
        if changed {
            errs.push(Error::invalid(
                &path.child(field),
                shown,
                FIELD_IMMUTABLE_ERROR_MSG,
            ));
        }
    };
    immutable(
        &mut errs,
        s(&new.name) != s(&old.name),
        "name",
        s(&new.name).into(),
    );
    immutable(
        &mut errs,
        s(&new.namespace) != s(&old.namespace),
        "namespace",
        s(&new.namespace).into(),
    );
    immutable(
        &mut errs,
        s(&new.uid) != s(&old.uid),
        "uid",
        s(&new.uid).into(),
    );
    let ts = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref().map(|t| t.0.as_second())
    };
    immutable(
        &mut errs,
        ts(&new.creation_timestamp) != ts(&old.creation_timestamp),
        "creationTimestamp",
        match &new.creation_timestamp {
            Some(t) => gofmt::time(&t.0),
            None => BadValue::Raw(gofmt::ZERO_TIME.to_string()),
        },
    );
    immutable(
        &mut errs,
        ts(&new.deletion_timestamp) != ts(&old.deletion_timestamp),
        "deletionTimestamp",
        match &new.deletion_timestamp {
            Some(t) => gofmt::time(&t.0),
            None => BadValue::Null,
        },
    );
    immutable(
        &mut errs,
        new.deletion_grace_period_seconds != old.deletion_grace_period_seconds,
        "deletionGracePeriodSeconds",
        match new.deletion_grace_period_seconds {
            Some(v) => BadValue::Int(v),
            None => BadValue::Null,
        },
    );
    errs.extend(validate_labels(new.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        new.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        new.owner_references.as_deref().unwrap_or_default(),
        &path.child("ownerReferences"),
    ));
    errs.extend(validate_managed_fields(new, &path.child("managedFields")));
    for (i, f) in new_finalizers.iter().enumerate() {
        errs.extend(validate_kube_finalizer_name(
            f,
            &path.child("finalizers").index(i),
        ));
    }
    errs
}

/// `ValidateOwnerReferences`
pub fn validate_owner_references(refs: &[OwnerReference], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut first_controller = String::new();
    for r in refs {
        errs.extend(validate_owner_reference(r, path));
        if r.controller == Some(true) {
            let cur = format!("{}/{}", r.kind, r.name);
            if !first_controller.is_empty() {
                errs.push(Error::invalid(
                    path,
                    gofmt::owner_references(refs),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first_controller} and {cur}"
                    ),
                ));
            } else {
                first_controller = cur;
            }
        }
    }
    errs
}

/// `schema.FromAPIVersionAndKind`: (group, version).
fn parse_api_version(api_version: &str) -> (String, String) {
    if api_version.is_empty() {
        return (String::new(), String::new());
    }
    match api_version.split('/').collect::<Vec<_>>()[..] {
        [v] => (String::new(), v.to_string()),
        [g, v] => (g.to_string(), v.to_string()),
        _ => (String::new(), String::new()),
    }
}

fn validate_owner_reference(r: &OwnerReference, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let (group, version) = parse_api_version(&r.api_version);
    if version.is_empty() {
        errs.push(Error::invalid(
            &path.child("apiVersion"),
            &r.api_version,
            "version must not be empty",
        ));
    }
    if r.kind.is_empty() {
        errs.push(Error::invalid(
            &path.child("kind"),
            &r.kind,
            "must not be empty",
        ));
    }
    if r.name.is_empty() {
        errs.push(Error::invalid(
            &path.child("name"),
            &r.name,
            "must not be empty",
        ));
    }
    if r.uid.is_empty() {
        errs.push(Error::invalid(
            &path.child("uid"),
            &r.uid,
            "must not be empty",
        ));
    }
    if group.is_empty() && version == "v1" && r.kind == "Event" {
        errs.push(Error::invalid(
            path,
            gofmt::owner_reference(r),
            format!(
                "{group}/{version}, Kind={} is disallowed from being an owner",
                r.kind
            ),
        ));
    }
    errs
}

/// `ValidateFinalizers` (apimachinery): qualified names, not both `orphan` and
/// `foregroundDeletion`. Errors point at the list, not the item, as in Kubernetes.
pub fn validate_finalizers(finalizers: &[String], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for f in finalizers {
        errs.extend(validate_qualified_name(f, path));
    }
    let has = |n: &str| finalizers.iter().any(|f| f == n);
    if has("orphan") && has("foregroundDeletion") {
        errs.push(Error::invalid(
            path,
            gofmt::strings(finalizers),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// `validateKubeFinalizerName`: an unqualified finalizer must be a standard one.
pub fn validate_kube_finalizer_name(name: &str, path: &Path) -> ErrorList {
    if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        vec![Error::invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        )]
    } else {
        Vec::new()
    }
}

/// `validateFinalizerName` (Namespace `spec.finalizers`): qualified name and standard-or-qualified.
pub fn validate_finalizer_name(name: &str, path: &Path) -> ErrorList {
    let mut errs = validate_qualified_name(name, path);
    errs.extend(validate_kube_finalizer_name(name, path));
    errs
}

/// `ValidateNoNewFinalizers`
pub fn validate_no_new_finalizers(new: &[String], old: &[String], path: &Path) -> ErrorList {
    let mut extra: Vec<String> = new.iter().filter(|f| !old.contains(f)).cloned().collect();
    extra.sort();
    extra.dedup();
    if extra.is_empty() {
        Vec::new()
    } else {
        vec![Error::forbidden(
            path,
            format!(
                "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                gofmt::string_slice("string", Some(&extra))
            ),
        )]
    }
}

/// `ValidateManagedFields` (operation and fieldsType).
fn validate_managed_fields(meta: &ObjectMeta, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, f) in meta.managed_fields.iter().flatten().enumerate() {
        let p = path.index(i);
        let op = s(&f.operation);
        if op != "Apply" && op != "Update" {
            errs.push(Error::invalid(
                &p.child("operation"),
                op,
                "must be `Apply` or `Update`",
            ));
        }
        let ft = s(&f.fields_type);
        if !ft.is_empty() && ft != "FieldsV1" {
            errs.push(Error::invalid(
                &p.child("fieldsType"),
                ft,
                "must be `FieldsV1`",
            ));
        }
        let manager = s(&f.manager);
        if manager.len() > 128 {
            errs.push(Error::too_long(&p.child("manager"), 128));
        }
    }
    errs
}

#[cfg(test)]
mod tests;
