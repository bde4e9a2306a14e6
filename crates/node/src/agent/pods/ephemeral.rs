//! Ephemeral containers (`spec.ephemeralContainers`, added through the API server's
//! `pods/{name}/ephemeralcontainers`, as `kubectl debug` does): the worker starts each new one
//! in the running pod — same sandbox and network namespace, its image through the image
//! machinery like any container — never restarts it, and reports it in
//! `status.ephemeralContainerStatuses`. With `targetContainerName` it joins that container's
//! PID namespace (the kubelet's `NamespaceMode_TARGET`), so `kubectl debug --target` sees the
//! target's processes.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{Ctr, Worker};
use crate::container;

/// What marks an ephemeral container: the container whose PID namespace it joins, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Target {
    pub container: Option<String>,
}

/// An ephemeral container as a container (the fields are the same but
/// `targetContainerName`), and its target.
fn as_container(
    ec: &k8s_openapi::api::core::v1::EphemeralContainer,
) -> Option<(Container, Target)> {
    let mut v = serde_json::to_value(ec).ok()?;
    if let Some(o) = v.as_object_mut() {
        o.remove("targetContainerName");
    }
    let c = serde_json::from_value(v).ok()?;
    let container = ec.target_container_name.clone().filter(|t| !t.is_empty());
    Some((c, Target { container }))
}

impl Worker {
    /// Take in the ephemeral containers the pod has and the worker has not (after an agent
    /// restart, adopted as the others).
    pub(super) fn add_ephemeral(&mut self, pod: &Pod) {
        let ecs = pod
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_deref())
            .unwrap_or_default();
        for ec in ecs {
            if self.ctrs.iter().any(|c| c.spec.name == ec.name) {
                continue;
            }
            let Some((c, target)) = as_container(ec) else {
                continue;
            };
            let ctr = Ctr::adopt_or_new(
                pod,
                &self.dir,
                c,
                false,
                Some(target),
                "Never",
                false,
                self.process_runtime,
            );
            self.ctrs.push(ctr);
        }
    }

    /// The PID namespace ephemeral container `i` joins: its target's, while that runs.
    pub(super) fn target_pid_namespace(&self, i: usize) -> Option<PathBuf> {
        let target = self.ctrs[i].ephemeral.as_ref()?.container.as_ref()?;
        let t = self.ctrs.iter().find(|c| &c.spec.name == target)?;
        let pid: i32 = std::fs::read_to_string(container::init_pid_file(&t.dir))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(container::pause::namespace_path(pid, "pid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_as_container() {
        let ec = serde_json::from_value(serde_json::json!({
            "name": "debugger", "image": "busybox", "stdin": true, "tty": true,
            "targetContainerName": "app",
        }))
        .unwrap();
        let (c, t) = as_container(&ec).unwrap();
        assert_eq!(c.name, "debugger");
        assert_eq!(c.image.as_deref(), Some("busybox"));
        assert_eq!((c.stdin, c.tty), (Some(true), Some(true)));
        assert_eq!(t.container.as_deref(), Some("app"));
    }
}
