//! A container's volumes, as the kubelet's volume manager prepares them for the runtime
//! (`pkg/volume/emptydir`, `pkg/volume/hostpath`, `pkg/kubelet/kubelet_pods.go`
//! `makeMounts`): `emptyDir` is a directory of the pod's (`<pod dir>/volumes/
//! kubernetes.io~empty-dir/<name>`, shared by its containers, removed with the pod);
//! `emptyDir.medium: Memory` a tmpfs; `hostPath` the host's path after the `type` check;
//! `subPath` a path inside the volume; `readOnly` a read-only bind.
//!
//! Deviation: a Memory emptyDir is a tmpfs per container (the kubelet mounts one tmpfs on the
//! host and shares it): svcnet makes no mounts on the host. Other volume types (configMap,
//! secret, projected, ...) are not mounted (there are no Secrets or ConfigMaps served yet).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::container::spec::VolumeMount;

/// Why a volume cannot be set up: the kubelet's `FailedMount` event message.
pub type MountError = String;

/// The mounts of container `c` of `pod`, whose directory is `pod_dir`.
pub fn mounts(pod: &Pod, c: &Container, pod_dir: &Path) -> Result<Vec<VolumeMount>, MountError> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for vm in c.volume_mounts.iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == vm.name) else {
            return Err(format!("unable to find volume {:?}", vm.name));
        };
        let failed = |e: String| format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name);
        let source = if let Some(ed) = &v.empty_dir {
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
            read_only: vm.read_only == Some(true),
        });
    }
    Ok(out)
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
        let m = mounts(&pod, &c, &pod_dir).unwrap();
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
        let e = mounts(&bad, &c, &pod_dir).unwrap_err();
        assert_eq!(
            e,
            format!(
                "MountVolume.SetUp failed for volume \"host\" : hostPath type check failed: {} is not a file",
                host.display()
            )
        );
    }
}
