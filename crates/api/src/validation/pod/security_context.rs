//! The pod's security context: `validatePodSpecSecurityContext` (user and group ID ranges,
//! `shareProcessNamespace` with `hostPID`, `fsGroupChangePolicy`).

use k8s_openapi::api::core::v1::PodSpec;

use crate::field::{Error, ErrorList, Path};
use crate::validation::names::{is_valid_group_id, is_valid_user_id};

pub(super) fn validate_pod_security_context(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let Some(sc) = &spec.security_context else {
        return errs;
    };
    if let Some(g) = sc.fs_group {
        for m in is_valid_group_id(g) {
            errs.push(Error::invalid(&path.child("fsGroup"), g, m));
        }
    }
    if let Some(u) = sc.run_as_user {
        for m in is_valid_user_id(u) {
            errs.push(Error::invalid(&path.child("runAsUser"), u, m));
        }
    }
    if let Some(g) = sc.run_as_group {
        for m in is_valid_group_id(g) {
            errs.push(Error::invalid(&path.child("runAsGroup"), g, m));
        }
    }
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
