//! Ephemeral containers (`pods/{name}/ephemeralcontainers`): `validateEphemeralContainers`,
//! part of every Pod's spec validation, and `ValidatePodEphemeralContainersUpdate`, what the
//! subresource's updates must keep (no ephemeral container removed or changed).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod};
use serde_json::Value;

use crate::field::{Error, ErrorList, Path};
use crate::validation::meta::validate_object_meta_update;

use super::containers::validate_container_common;
use super::create::validate_pod_metadata_and_spec;

/// The fields an ephemeral container may set (`allowedEphemeralContainerFields`); the others
/// are "cannot be set for an Ephemeral Container".
const ALLOWED_FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "envFrom",
    "env",
    "volumeMounts",
    "volumeDevices",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
    "targetContainerName",
];

const NOT_FOR_EPHEMERAL: &str = "cannot be set for an Ephemeral Container";

/// `validateEphemeralContainers`: each as a container, names unique across all containers,
/// `targetContainerName` one of the pod's (non-ephemeral) containers, and only the allowed
/// fields.
pub(super) fn validate_ephemeral_containers(
    ecs: &[EphemeralContainer],
    containers: &[Container],
    init: &[Container],
    volumes: &BTreeSet<String>,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let others: BTreeSet<&str> = containers
        .iter()
        .chain(init)
        .map(|c| c.name.as_str())
        .collect();
    let mut all = others.clone();
    for (i, ec) in ecs.iter().enumerate() {
        let p = path.index(i);
        let mut v = serde_json::to_value(ec).expect("serializable");
        // Set fields: Go's `reflect.Value.IsZero` — `resources` is the one struct (not a
        // pointer) among them, zero when empty (kubectl debug sends `"resources":{}`).
        let fields: Vec<String> = v
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, v)| match v {
                        Value::Null => false,
                        Value::Object(m) if k.as_str() == "resources" => !m.is_empty(),
                        _ => true,
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("targetContainerName");
        }
        let c: Container = serde_json::from_value(v).expect("the common fields of a container");
        errs.extend(validate_container_common(&c, volumes, &p));
        if !all.insert(ec.name.as_str()) {
            errs.push(Error::duplicate(&p.child("name"), ec.name.as_str()));
        }
        if let Some(t) = ec
            .target_container_name
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            if !others.contains(t) {
                errs.push(Error::not_found(&p.child("targetContainerName"), t));
            }
        }
        for f in fields {
            if !ALLOWED_FIELDS.contains(&f.as_str()) {
                errs.push(Error::forbidden(&p.child(&f), NOT_FOR_EPHEMERAL));
            }
        }
        for (j, m) in ec.volume_mounts.iter().flatten().enumerate() {
            let mp = p.child("volumeMounts").index(j);
            if m.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
                errs.push(Error::forbidden(&mp.child("subPath"), NOT_FOR_EPHEMERAL));
            }
            if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
                errs.push(Error::forbidden(
                    &mp.child("subPathExpr"),
                    NOT_FOR_EPHEMERAL,
                ));
            }
        }
    }
    errs
}

/// `ValidatePodEphemeralContainersUpdate`: the pod as a whole, and every ephemeral container it
/// had still there, unchanged (patches do not keep the order, so each is found by name).
pub fn validate_ephemeral_containers_update(new: &Pod, old: &Pod) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &meta_path);
    errs.extend(validate_pod_metadata_and_spec(new));
    if old
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
    {
        return vec![Error::forbidden(
            &Path::new(""),
            "static pods do not support ephemeral containers",
        )];
    }
    let path = Path::new("spec").child("ephemeralContainers");
    let ecs = |p: &Pod| -> Vec<EphemeralContainer> {
        p.spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.clone())
            .unwrap_or_default()
    };
    let new_by_name: BTreeMap<String, Value> = ecs(new)
        .into_iter()
        .map(|c| {
            (
                c.name.clone(),
                serde_json::to_value(c).expect("serializable"),
            )
        })
        .collect();
    for o in ecs(old) {
        match new_by_name.get(&o.name) {
            None => errs.push(Error::forbidden(
                &path,
                format!(
                    "existing ephemeral containers {:?} may not be removed\n",
                    o.name
                ),
            )),
            Some(n) if *n != serde_json::to_value(&o).expect("serializable") => {
                errs.push(Error::forbidden(
                    &path,
                    format!(
                        "existing ephemeral containers {:?} may not be changed\n",
                        o.name
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    errs
}
