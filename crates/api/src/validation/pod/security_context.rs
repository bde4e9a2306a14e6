//! Security contexts: the pod's (`validatePodSpecSecurityContext`: user and group ID ranges,
//! `shareProcessNamespace` with `hostPID`, `fsGroupChangePolicy`) and a container's
//! (`ValidateSecurityContext`: ID ranges, `procMount`).

use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};

use crate::field::{Error, ErrorList, Path};
use crate::validation::names::{is_valid_group_id, is_valid_user_id};

/// `validatePodSpecSecurityContext`
pub(super) fn validate_pod_security_context(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let Some(sc) = &spec.security_context else {
        return errs;
    };
    errs.extend(validate_ids(
        &[
            ("fsGroup", sc.fs_group, is_valid_group_id),
            ("runAsUser", sc.run_as_user, is_valid_user_id),
            ("runAsGroup", sc.run_as_group, is_valid_group_id),
        ],
        path,
    ));
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        for m in is_valid_group_id(*g) {
            errs.push(Error::invalid(
                &path.child("supplementalGroups").index(i),
                *g,
                m,
            ));
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errs.push(Error::invalid(
            &path.child("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    if let Some(p) = &sc.fs_group_change_policy {
        if p != "OnRootMismatch" && p != "Always" {
            errs.push(Error::not_supported(
                &path.child("fsGroupChangePolicy"),
                p.as_str(),
                &["Always", "OnRootMismatch"],
            ));
        }
    }
    errs
}

/// `ValidateSecurityContext` of a container: its user and group IDs, `procMount`.
pub(super) fn validate_container_security_context(sc: &SecurityContext, path: &Path) -> ErrorList {
    let mut errs = validate_ids(
        &[
            ("runAsUser", sc.run_as_user, is_valid_user_id),
            ("runAsGroup", sc.run_as_group, is_valid_group_id),
        ],
        path,
    );
    if let Some(pm) = &sc.proc_mount {
        if pm != "Default" && pm != "Unmasked" {
            errs.push(Error::not_supported(
                &path.child("procMount"),
                pm.as_str(),
                &["Default", "Unmasked"],
            ));
        }
    }
    errs
}

/// A user or group ID check of `util/validation` (`IsValidUserID`, `IsValidGroupID`).
type IdCheck = fn(i64) -> Vec<String>;

/// Each ID that is set (Go's `*int64`) must pass its check; the errors name the field.
fn validate_ids(ids: &[(&str, Option<i64>, IdCheck)], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for &(field, id, check) in ids {
        if let Some(id) = id {
            for m in check(id) {
                errs.push(Error::invalid(&path.child(field), id, m));
            }
        }
    }
    errs
}
