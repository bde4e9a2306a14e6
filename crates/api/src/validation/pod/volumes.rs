//! Volumes and volume mounts: `ValidateVolumes`, `validateVolumeSource` (the required field of
//! each common source; exotic sources are only counted) and `ValidateVolumeMounts`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Volume};
use serde_json::Value;

use crate::field::{Error, ErrorList, Path};
use crate::validation::names::validate_dns1123_label;
use crate::validation::s;

/// Volume source fields in the order `validateVolumeSource` checks them, with the field name
/// Kubernetes uses in its "more than 1 volume type" error (sic: `cephFS`, `downwarAPI`).
const VOLUME_SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn validate_volume_source(source: &str, v: &Value, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let required = |errs: &mut ErrorList, key: &str| {
        if str_field(v, key).is_empty() {
            errs.push(Error::required(&path.child(key), ""));
        }
    };
    match source {
        "hostPath" => {
            let p = str_field(v, "path");
            if p.is_empty() {
                errs.push(Error::required(&path.child("path"), ""));
            } else if p.split('/').any(|part| part == "..") {
                errs.push(Error::invalid(
                    &path.child("path"),
                    p,
                    "must not contain '..'",
                ));
            }
        }
        "secret" => required(&mut errs, "secretName"),
        "configMap" => required(&mut errs, "name"),
        "persistentVolumeClaim" => required(&mut errs, "claimName"),
        "nfs" => {
            required(&mut errs, "server");
            let p = str_field(v, "path");
            if p.is_empty() {
                errs.push(Error::required(&path.child("path"), ""));
            }
            if !p.starts_with('/') {
                errs.push(Error::invalid(
                    &path.child("path"),
                    p,
                    "must be an absolute path",
                ));
            }
        }
        _ => {}
    }
    for mode_key in ["defaultMode"] {
        if let Some(m) = v.get(mode_key).and_then(Value::as_i64) {
            if !(0..=0o777).contains(&m) {
                errs.push(Error::invalid(
                    &path.child(mode_key),
                    m,
                    "must be a number between 0 and 0777 (octal), both inclusive",
                ));
            }
        }
    }
    errs
}

/// `ValidateVolumes`: returns the valid volume names (for mounts) and the errors.
pub(super) fn validate_volumes(volumes: &[Volume], path: &Path) -> (BTreeSet<String>, ErrorList) {
    let mut names = BTreeSet::new();
    let mut errs = Vec::new();
    for (i, vol) in volumes.iter().enumerate() {
        let idx = path.index(i);
        let name_path = idx.child("name");
        let json = serde_json::to_value(vol).unwrap_or(Value::Null);
        let mut el = Vec::new();
        let mut count = 0;
        for (key, go_name) in VOLUME_SOURCES {
            let Some(v) = json.get(*key) else { continue };
            if count > 0 {
                el.push(Error::forbidden(
                    &idx.child(go_name),
                    "may not specify more than 1 volume type",
                ));
            } else {
                count += 1;
                el.extend(validate_volume_source(go_name, v, &idx.child(go_name)));
            }
        }
        if count == 0 {
            el.push(Error::required(&idx, "must specify a volume type"));
        }
        if vol.name.is_empty() {
            el.push(Error::required(&name_path, ""));
        } else {
            el.extend(validate_dns1123_label(&vol.name, &name_path));
        }
        if names.contains(&vol.name) {
            el.push(Error::duplicate(&name_path, vol.name.as_str()));
        }
        if el.is_empty() {
            names.insert(vol.name.clone());
        } else {
            errs.extend(el);
        }
    }
    (names, errs)
}

fn validate_local_descending_path(target: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if target.starts_with('/') {
        errs.push(Error::invalid(path, target, "must be a relative path"));
    }
    if target.split('/').any(|p| p == "..") {
        errs.push(Error::invalid(path, target, "must not contain '..'"));
    }
    errs
}

/// `ValidateVolumeMounts` (volume devices aside).
pub(super) fn validate_volume_mounts(
    c: &Container,
    volumes: &BTreeSet<String>,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let mut mount_points = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(Error::required(&p.child("name"), ""));
        }
        if !volumes.contains(&m.name) {
            errs.push(Error::not_found(&p.child("name"), m.name.as_str()));
        }
        if m.mount_path.is_empty() {
            errs.push(Error::required(&p.child("mountPath"), ""));
        }
        if !mount_points.insert(m.mount_path.clone()) {
            errs.push(Error::invalid(
                &p.child("mountPath"),
                m.mount_path.as_str(),
                "must be unique",
            ));
        }
        let sub_path = s(&m.sub_path);
        if !sub_path.is_empty() {
            // Kubernetes reports these at `volumeMounts.subPath`, without the index.
            errs.extend(validate_local_descending_path(
                sub_path,
                &path.child("subPath"),
            ));
        }
        let expr = s(&m.sub_path_expr);
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(Error::invalid(
                    &p.child("subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(validate_local_descending_path(
                expr,
                &path.child("subPathExpr"),
            ));
        }
        if let Some(mp) = &m.mount_propagation {
            if !["None", "HostToContainer", "Bidirectional"].contains(&mp.as_str()) {
                errs.push(Error::not_supported(
                    &path.child("mountPropagation"),
                    mp.as_str(),
                    &["Bidirectional", "HostToContainer", "None"],
                ));
            }
        }
    }
    errs
}
