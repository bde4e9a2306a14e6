//! A container's volumes, as the kubelet's volume manager prepares them for the runtime
//! (`pkg/volume/emptydir`, `pkg/volume/hostpath`, `pkg/kubelet/kubelet_pods.go`
//! `makeMounts`): `emptyDir` is a directory of the pod's (`<pod dir>/volumes/
//! kubernetes.io~empty-dir/<name>`, shared by its containers, removed with the pod);
//! `emptyDir.medium: Memory` a tmpfs; `hostPath` the host's path after the `type` check;
//! `subPath` a path inside the volume; `readOnly` a read-only bind.
//!
//! `configMap` and `secret` volumes are the kubelet's plugins (`pkg/volume/configmap`,
//! `pkg/volume/secret`): the object's keys (or `items`, each with its `mode`, else
//! `defaultMode`) written by the [`atomic_writer`] into `<pod dir>/volumes/
//! kubernetes.io~configmap/<name>` (`kubernetes.io~secret`), always mounted read-only; a
//! missing object is `configmap "x" not found` unless `optional` (then an empty volume), a
//! missing item key `configmap references non-existent config key: k`. [`Projected::sync`]
//! rewrites them when the object changes, as the kubelet's periodic re-sync does, so a
//! running container sees the new `..data` (except through a `subPath`, as upstream).
//!
//! Deviations: a Memory emptyDir is a tmpfs per container (the kubelet mounts one tmpfs on the
//! host and shares it): svcnet makes no mounts on the host; for the same reason a secret
//! volume is a directory on the node's disk where the kubelet uses a tmpfs. Other volume types
//! (projected, downwardAPI, ...) are not mounted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use crate::atomic_writer::{self, Payload};
use crate::container::spec::VolumeMount;
use crate::objects::{config_map_not_found, secret_not_found, Objects};

/// Why a volume cannot be set up: the kubelet's `FailedMount` event message.
pub type MountError = String;

/// The mounts of container `c` of `pod`, whose directory is `pod_dir`; configMap and secret
/// volumes are written from `objects`.
pub fn mounts(
    pod: &Pod,
    c: &Container,
    pod_dir: &Path,
    objects: &dyn Objects,
) -> Result<Vec<VolumeMount>, MountError> {
    let mut out = Vec::new();
    for (vm, v) in mounted(pod, c)? {
        let failed = |e: String| format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name);
        let mut read_only = vm.read_only == Some(true);
        let source = if let Some((dir, payload)) = projection(pod, v, pod_dir, objects) {
            atomic_writer::write(&dir, &payload?.0).map_err(|e| failed(e.to_string()))?;
            read_only = true;
            Some(dir)
        } else if let Some(ed) = &v.empty_dir {
            if ed.medium.as_deref() == Some("Memory") {
                None
            } else {
                let dir = pod_dir
                    .join("volumes/kubernetes.io~empty-dir")
                    .join(&v.name);
                std::fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
                // As the kubelet's: world-writable, so any user of the pod can use it.
                set_mode(&dir, 0o777);
                Some(dir)
            }
        } else if let Some(hp) = &v.host_path {
            let p = PathBuf::from(&hp.path);
            check_host_path(&p, hp.type_.as_deref().unwrap_or("")).map_err(failed)?;
            Some(p)
        } else {
            tracing::warn!(volume = %v.name, "volume type not supported; not mounted");
            continue;
        };
        let sub = vm.sub_path.as_deref().filter(|s| !s.is_empty());
        let source = match (source, sub) {
            (Some(s), Some(sub)) => {
                if sub.split('/').any(|part| part == "..") || sub.starts_with('/') {
                    return Err(failed(format!("invalid subpath {sub:?}")));
                }
                let p = s.join(sub);
                if !p.exists() {
                    std::fs::create_dir_all(&p).map_err(|e| failed(e.to_string()))?;
                }
                Some(p)
            }
            (s, _) => s,
        };
        out.push(VolumeMount {
            source,
            target: PathBuf::from(&vm.mount_path),
            read_only,
        });
    }
    Ok(out)
}

/// Each of `c`'s volumeMounts with the pod's volume it names.
fn mounted<'a>(
    pod: &'a Pod,
    c: &'a Container,
) -> Result<Vec<(&'a k8s_openapi::api::core::v1::VolumeMount, &'a Volume)>, MountError> {
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    let volumes: Vec<&Volume> = volumes.collect();
    c.volume_mounts
        .iter()
        .flatten()
        .map(|vm| match volumes.iter().find(|v| v.name == vm.name) {
            Some(v) => Ok((vm, *v)),
            None => Err(format!("unable to find volume {:?}", vm.name)),
        })
        .collect()
}

/// The binds of container `c`'s configMap and secret volumes for the `svcnet-process`
/// RuntimeClass, whose processes see the node's filesystem: each volume's directory (or its
/// `subPath`) is bound over the mount path in the process's own mount namespace, which must
/// already exist on the node (nothing is created on the host). Other volume types are not
/// mounted for host processes.
pub fn process_binds(
    pod: &Pod,
    c: &Container,
    pod_dir: &Path,
    objects: &dyn Objects,
) -> Result<Vec<(PathBuf, PathBuf)>, MountError> {
    let mut out = Vec::new();
    for (vm, v) in mounted(pod, c)? {
        let Some((dir, payload)) = projection(pod, v, pod_dir, objects) else {
            continue;
        };
        let failed = |e: String| format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name);
        atomic_writer::write(&dir, &payload?.0).map_err(|e| failed(e.to_string()))?;
        let target = PathBuf::from(&vm.mount_path);
        if !target.exists() {
            return Err(failed(format!(
                "mount point {} does not exist on the node: the {} RuntimeClass binds a volume over a directory of the node",
                target.display(),
                svcnet_cluster::runtime_class::PROCESS
            )));
        }
        let source = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.split('/').any(|p| p == "..") || sub.starts_with('/') => {
                return Err(failed(format!("invalid subpath {sub:?}")));
            }
            Some(sub) => dir.join(sub),
            None => dir,
        };
        out.push((source, target));
    }
    Ok(out)
}

/// A volume's files and the resourceVersion of the object they come from.
type Written = (Payload, String);

/// A configMap or secret volume's directory and what it holds now (with the object's
/// resourceVersion), or the kubelet's error; `None` for other volume types.
fn projection(
    pod: &Pod,
    v: &Volume,
    pod_dir: &Path,
    objects: &dyn Objects,
) -> Option<(PathBuf, Result<Written, MountError>)> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let failed = |e: String| format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name);
    // (plugin dir, items, defaultMode, optional, message for a missing item key, the object's
    // keys and resourceVersion or why it is missing)
    type Found = Result<(Vec<(String, Vec<u8>)>, Option<String>), String>;
    let (plugin, items, mode, optional, missing_key, found): (_, _, _, _, _, Found) =
        if let Some(src) = &v.config_map {
            let found = match objects.config_map(ns, &src.name) {
                Some(cm) => {
                    let strings = cm.data.iter().flatten();
                    let binary = cm.binary_data.iter().flatten();
                    let all = strings
                        .map(|(k, d)| (k.clone(), d.clone().into_bytes()))
                        .chain(binary.map(|(k, d)| (k.clone(), d.0.clone())))
                        .collect();
                    Ok((all, cm.metadata.resource_version.clone()))
                }
                None => Err(config_map_not_found(&src.name)),
            };
            let key = "configmap references non-existent config key";
            let cfg = (src.items.as_deref(), src.default_mode, src.optional);
            ("kubernetes.io~configmap", cfg.0, cfg.1, cfg.2, key, found)
        } else if let Some(src) = &v.secret {
            let name = src.secret_name.as_deref().unwrap_or("");
            let found = match objects.secret(ns, name) {
                Some(s) => {
                    let data = s.data.iter().flatten();
                    let all = data.map(|(k, d)| (k.clone(), d.0.clone())).collect();
                    Ok((all, s.metadata.resource_version.clone()))
                }
                None => Err(secret_not_found(name)),
            };
            let key = "references non-existent secret key";
            let cfg = (src.items.as_deref(), src.default_mode, src.optional);
            ("kubernetes.io~secret", cfg.0, cfg.1, cfg.2, key, found)
        } else {
            return None;
        };
    let optional = optional == Some(true);
    let mode = mode.unwrap_or(0o644) as u32;
    let result = match found {
        Ok((all, rv)) => make_payload(&all, items, mode, optional, missing_key)
            .map(|p| (p, rv.unwrap_or_default())),
        // The kubelet sets up an empty volume for a missing optional object.
        Err(_) if optional => Ok((Payload::new(), String::new())),
        Err(e) => Err(e),
    };
    let dir = pod_dir.join("volumes").join(plugin).join(&v.name);
    Some((dir, result.map_err(failed)))
}

/// The volume plugins' `MakePayload`: every key, or the `items` (path, mode) asked for.
fn make_payload(
    all: &[(String, Vec<u8>)],
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
    missing: &str,
) -> Result<Payload, String> {
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        return Ok(all
            .iter()
            .map(|(k, d)| (k.clone(), (d.clone(), default_mode)))
            .collect());
    };
    let mut out = Payload::new();
    for item in items {
        match all.iter().find(|(k, _)| *k == item.key) {
            Some((_, d)) => {
                let mode = item.mode.map_or(default_mode, |m| m as u32);
                out.insert(item.path.clone(), (d.clone(), mode));
            }
            None if optional => {}
            None => return Err(format!("{missing}: {}", item.key)),
        }
    }
    Ok(out)
}

/// The resourceVersions a pod's configMap and secret volumes were last written from: the
/// kubelet's re-sync of mounted volumes, run on every turn of the pod worker.
#[derive(Default)]
pub struct Projected(HashMap<String, String>);

impl Projected {
    /// Rewrite the pod's configMap and secret volumes that have been set up and whose object
    /// changed. A failure leaves the files as they were (the kubelet's too), logged.
    pub fn sync(&mut self, pod: &Pod, pod_dir: &Path, objects: &dyn Objects) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            // Unchanged objects cost a lookup, not a copy of their data.
            let version = if let Some(src) = &v.config_map {
                objects
                    .config_map(ns, &src.name)
                    .map(|o| o.metadata.resource_version.clone())
            } else if let Some(src) = &v.secret {
                let name = src.secret_name.as_deref().unwrap_or("");
                objects
                    .secret(ns, name)
                    .map(|o| o.metadata.resource_version.clone())
            } else {
                continue;
            };
            if version
                .flatten()
                .is_some_and(|rv| self.0.get(&v.name) == Some(&rv))
            {
                continue;
            }
            let Some((dir, r)) = projection(pod, v, pod_dir, objects) else {
                continue;
            };
            if !dir.exists() {
                continue; // not mounted yet: `mounts` writes it
            }
            match r {
                Ok((payload, rv)) => match atomic_writer::write(&dir, &payload) {
                    Ok(_) => {
                        self.0.insert(v.name.clone(), rv);
                    }
                    Err(e) => {
                        tracing::warn!(volume = %v.name, error = %e, "updating the volume")
                    }
                },
                Err(e) => tracing::debug!(volume = %v.name, error = %e, "volume not updated"),
            }
        }
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}

/// `hostPath.type` as the kubelet checks it (`pkg/volume/hostpath/host_path.go`), with its
/// messages.
fn check_host_path(p: &Path, kind: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let shown = p.display();
    let meta = std::fs::metadata(p);
    let is = |f: &dyn Fn(&std::fs::Metadata) -> bool| meta.as_ref().is_ok_and(f);
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !p.exists() {
                std::fs::create_dir_all(p).map_err(|e| e.to_string())?;
                set_mode(p, 0o755);
            }
            Ok(())
        }
        "FileOrCreate" => {
            if !p.exists() {
                std::fs::File::create(p).map_err(|e| e.to_string())?;
                set_mode(p, 0o644);
            }
            Ok(())
        }
        "Directory" if is(&|m| m.is_dir()) => Ok(()),
        "Directory" => Err(format!(
            "hostPath type check failed: {shown} is not a directory"
        )),
        "File" if is(&|m| m.is_file()) => Ok(()),
        "File" => Err(format!("hostPath type check failed: {shown} is not a file")),
        "Socket" if is(&|m| m.file_type().is_socket()) => Ok(()),
        "Socket" => Err(format!(
            "hostPath type check failed: {shown} is not a socket file"
        )),
        "CharDevice" if is(&|m| m.file_type().is_char_device()) => Ok(()),
        "CharDevice" => Err(format!(
            "hostPath type check failed: {shown} is not a character device"
        )),
        "BlockDevice" if is(&|m| m.file_type().is_block_device()) => Ok(()),
        "BlockDevice" => Err(format!(
            "hostPath type check failed: {shown} is not a block device"
        )),
        other => Err(format!("hostPath type {other:?} is not supported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Fixed;
    use serde_json::json;

    #[test]
    fn empty_dir_host_path_and_sub_path() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c", "volumeMounts": [
                    {"name": "cache", "mountPath": "/cache"},
                    {"name": "mem", "mountPath": "/mem"},
                    {"name": "host", "mountPath": "/host", "readOnly": true, "subPath": "sub"},
                ]}],
                "volumes": [
                    {"name": "cache", "emptyDir": {}},
                    {"name": "mem", "emptyDir": {"medium": "Memory"}},
                    {"name": "host", "hostPath": {"path": host.to_str().unwrap(), "type": "DirectoryOrCreate"}},
                ],
            }
        }))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        let pod_dir = dir.path().join("pod");
        let m = mounts(&pod, &c, &pod_dir, &Fixed::default()).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0].source.as_deref(),
            Some(
                pod_dir
                    .join("volumes/kubernetes.io~empty-dir/cache")
                    .as_path()
            )
        );
        assert!(m[0].source.as_ref().unwrap().is_dir());
        assert_eq!(m[1].source, None, "Memory: a tmpfs");
        assert_eq!(m[2].source.as_deref(), Some(host.join("sub").as_path()));
        assert!(m[2].read_only && host.join("sub").is_dir());

        let mut bad = pod.clone();
        bad.spec.as_mut().unwrap().volumes.as_mut().unwrap()[2]
            .host_path
            .as_mut()
            .unwrap()
            .type_ = Some("File".into());
        let e = mounts(&bad, &c, &pod_dir, &Fixed::default()).unwrap_err();
        assert_eq!(
            e,
            format!(
                "MountVolume.SetUp failed for volume \"host\" : hostPath type check failed: {} is not a file",
                host.display()
            )
        );
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use crate::objects::Fixed;
    use serde_json::json;

    fn objects(value: &str) -> Fixed {
        Fixed {
            config_maps: vec![serde_json::from_value(json!({
                "metadata": {"namespace": "default", "name": "cfg", "resourceVersion": value},
                "data": {"greeting": value, "other": "x"},
            }))
            .unwrap()],
            secrets: vec![serde_json::from_value(json!({
                "metadata": {"namespace": "default", "name": "creds", "resourceVersion": "1"},
                "data": {"password": "czNjcmV0"},
            }))
            .unwrap()],
        }
    }

    fn pod(volumes: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {
                "containers": [{"name": "c", "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "creds", "mountPath": "/etc/creds"},
                ]}],
                "volumes": volumes,
            }
        }))
        .unwrap()
    }

    #[test]
    fn config_map_and_secret_volumes() {
        let tmp = tempfile::tempdir().unwrap();
        let pod = pod(json!([
            {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "hello/msg", "mode": 0o600}]}},
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        ]));
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        let m = mounts(&pod, &c, tmp.path(), &objects("1")).unwrap();
        assert!(m.iter().all(|m| m.read_only), "always read-only");
        let cfg = m[0].source.clone().unwrap();
        assert_eq!(cfg, tmp.path().join("volumes/kubernetes.io~configmap/cfg"));
        assert_eq!(std::fs::read_to_string(cfg.join("hello/msg")).unwrap(), "1");
        assert!(!cfg.join("other").exists(), "only the items");
        let creds = m[1].source.clone().unwrap();
        assert_eq!(
            std::fs::read_to_string(creds.join("password")).unwrap(),
            "s3cret"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(creds.join("password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);

        // An update reaches the directory a container has mounted.
        let mut projected = Projected::default();
        projected.sync(&pod, tmp.path(), &objects("2"));
        assert_eq!(std::fs::read_to_string(cfg.join("hello/msg")).unwrap(), "2");
    }

    #[test]
    fn missing_objects_and_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = pod(json!([
            {"name": "cfg", "configMap": {"name": "nope"}},
            {"name": "creds", "secret": {"secretName": "creds"}},
        ]));
        let c = missing.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(
            mounts(&missing, &c, tmp.path(), &objects("1")).unwrap_err(),
            "MountVolume.SetUp failed for volume \"cfg\" : configmap \"nope\" not found"
        );
        let optional = pod(json!([
            {"name": "cfg", "configMap": {"name": "nope", "optional": true}},
            {"name": "creds", "secret": {"secretName": "creds", "items": [{"key": "user", "path": "u"}]}},
        ]));
        assert_eq!(
            mounts(&optional, &c, tmp.path(), &objects("1")).unwrap_err(),
            "MountVolume.SetUp failed for volume \"creds\" : references non-existent secret key: user"
        );
    }

    #[test]
    fn process_binds_need_the_mount_point() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("mnt");
        let mut pod = pod(json!([{"name": "cfg", "configMap": {"name": "cfg"}}]));
        let c: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
            {"name": "cfg", "mountPath": target.to_str().unwrap()}]}))
        .unwrap();
        pod.spec.as_mut().unwrap().containers = vec![c.clone()];
        let pod_dir = tmp.path().join("pod");
        let e = process_binds(&pod, &c, &pod_dir, &objects("1")).unwrap_err();
        assert!(e.contains("does not exist on the node"), "{e}");
        std::fs::create_dir(&target).unwrap();
        let binds = process_binds(&pod, &c, &pod_dir, &objects("1")).unwrap();
        assert_eq!(
            binds,
            [(pod_dir.join("volumes/kubernetes.io~configmap/cfg"), target)]
        );
    }
}
