//! What a worker starting on a pod finds of the pod's earlier life on this node, as the
//! kubelet's `computePodActions` reads the runtime's records (`PodSandboxChanged`, the
//! containers' statuses): containers a previous agent started that still run are adopted; a
//! pod whose sandbox is gone — its network namespace removed while no agent watched, or the
//! whole node restarted (`svcnet up` again on the same data dir, whose teardown removed the
//! node's state) — gets the kubelet's answer to a changed sandbox: a `SandboxChanged` Event,
//! what was left of it killed, and its containers' runs ended and started again in a new
//! sandbox, each restart counted (`restartCount` + 1, the ended run in `lastState`).
//!
//! The earlier runs are read from the container's saved state when the node still has it, else
//! from the pod's status as the API server kept it (the kubelet recovers its restart counts from
//! the runtime's records or, when a reboot cleared them, from the pod's log directory; here the
//! status is what survives). A run whose end nobody saw ends as containerd reports a container
//! whose task vanished: exit code 255, reason `Unknown`. The pod keeps its address when it is
//! still free (its status' `podIP`), where a kubelet's CNI would usually hand out a new one.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod};
use nix::sys::signal::Signal;

use super::{alive, signal_group, Exit, Meta, Run};
use crate::container::{self, OciHandle};
use crate::layout;
use crate::shim;

/// The kubelet's Event when a pod's sandbox must be made again (`events.SandboxChanged`).
pub(super) const SANDBOX_CHANGED: &str = "SandboxChanged";
pub(super) const SANDBOX_CHANGED_MESSAGE: &str =
    "Pod sandbox changed, it will be killed and re-created.";

/// containerd's CRI for a container whose exit it could not see (`unknownExitCode`,
/// `unknownExitReason`).
const UNKNOWN_EXIT_CODE: i32 = 255;
const UNKNOWN_EXIT_REASON: &str = "Unknown";

/// A run of a container that ended unseen (its process gone with its sandbox).
pub(super) fn unknown_exit(started_at: Option<jiff::Timestamp>) -> Exit {
    Exit {
        exit_code: UNKNOWN_EXIT_CODE,
        signal: None,
        reason: UNKNOWN_EXIT_REASON.into(),
        message: None,
        started_at,
        finished_at: jiff::Timestamp::now(),
    }
}

/// Whether the pod had a sandbox before this worker: a saved one (whatever became of its
/// namespace), or an address in its status (only this node's agent writes it).
pub(super) fn had_sandbox(pod: &Pod, saved: bool) -> bool {
    saved
        || pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .is_some_and(|ip| !ip.is_empty())
}

/// The address the pod had (its status' `podIP`), to keep it if it is free.
pub(super) fn previous_ip(pod: &Pod) -> Option<std::net::Ipv4Addr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

/// What is known of a container's earlier runs.
pub(super) struct Prior {
    pub meta: Meta,
    /// It ended and, by the pod's restart policy, stays ended.
    pub terminated: Option<Exit>,
}

/// Container `name`'s earlier runs: its saved state, else its status in the pod.
pub(super) fn prior(
    pod: &Pod,
    cdir: &Path,
    name: &str,
    init: bool,
    policy: &str,
    sandbox_changed: bool,
) -> Prior {
    let status = container_status(pod, name, init);
    let saved: Option<Meta> = std::fs::read(layout::container_meta_file(cdir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let meta = saved.unwrap_or_else(|| {
        status
            .map(|s| Meta {
                restart_count: s.restart_count,
                started_at: s
                    .state
                    .as_ref()
                    .and_then(|st| st.running.as_ref())
                    .and_then(|r| r.started_at.as_ref())
                    .map(|t| t.0),
                last: s.last_state.as_ref().and_then(terminated),
                image_ref: None,
            })
            .unwrap_or_default()
    });
    // An ended container that is not run again (restartPolicy Never, a success under
    // OnFailure, an init container that succeeded — unless a new sandbox runs the pod's init
    // containers again, as the kubelet does).
    let terminated = status
        .and_then(|s| s.state.as_ref())
        .and_then(terminated)
        .filter(|_| meta.started_at.is_none())
        .filter(|e| match (init, policy) {
            (_, "Never") => true,
            (true, _) => e.exit_code == 0 && !sandbox_changed,
            (false, "OnFailure") => e.exit_code == 0,
            _ => false,
        });
    Prior { meta, terminated }
}

fn container_status<'a>(pod: &'a Pod, name: &str, init: bool) -> Option<&'a ContainerStatus> {
    let st = pod.status.as_ref()?;
    let list = if init {
        st.init_container_statuses.as_ref()
    } else {
        st.container_statuses.as_ref()
    };
    list?.iter().find(|c| c.name == name)
}

fn terminated(state: &ContainerState) -> Option<Exit> {
    let t = state.terminated.as_ref()?;
    Some(Exit {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|t| t.0),
        finished_at: t
            .finished_at
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(jiff::Timestamp::now),
    })
}

/// The state a container starts in under a new worker: adopted while it runs; a run that was
/// going and is gone, as running — the worker's next look ends it (`lost`); ended for good; or
/// waiting to be created.
pub(super) fn initial_run(running_now: bool, prior: &Prior) -> (Run, bool) {
    match (running_now, prior.meta.started_at, &prior.terminated) {
        (true, t, _) => (
            Run::Running {
                started_at: t.unwrap_or_else(jiff::Timestamp::now),
            },
            false,
        ),
        (false, Some(t), _) => (Run::Running { started_at: t }, true),
        (false, None, Some(exit)) => (Run::Terminated(exit.clone()), false),
        (false, None, None) => (
            Run::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            false,
        ),
    }
}

/// How long killing what is left of a container of a changed sandbox may take.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Kill what is left of a container whose sandbox is gone (the kubelet's `killPodWithSyncResult`
/// before a new sandbox): its process, its shim — waited for, so that it writes no exit over the
/// next run's — and its runtime state.
pub(super) fn kill_leftover(cdir: &Path) {
    if let Some(pid) = shim::read_pid(cdir).filter(|p| alive(*p)) {
        signal_group(cdir, Signal::SIGKILL);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        let deadline = Instant::now() + KILL_WAIT;
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if let Some(h) = OciHandle::load(cdir) {
        h.delete();
        container::cgroups::remove(&h.id);
    }
    let _ = std::fs::remove_file(layout::container_exit_file(cdir));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app"}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_running_container_of_a_wiped_node_is_ended_and_counted_from_the_status() {
        let p = pod(json!({
            "podIP": "10.244.1.5",
            "containerStatuses": [{
                "name": "app", "image": "", "imageID": "", "ready": true, "restartCount": 2,
                "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            }],
        }));
        assert!(had_sandbox(&p, false));
        assert_eq!(previous_ip(&p), Some("10.244.1.5".parse().unwrap()));
        let dir = tempfile::tempdir().unwrap();
        let prior = prior(&p, dir.path(), "app", false, "Always", true);
        assert_eq!(prior.meta.restart_count, 2);
        assert_eq!(prior.meta.last.as_ref().unwrap().exit_code, 1);
        let (run, lost) = initial_run(false, &prior);
        assert!(lost && matches!(run, Run::Running { .. }));
        let e = unknown_exit(None);
        assert_eq!((e.exit_code, e.reason.as_str()), (255, "Unknown"));
    }

    #[test]
    fn ended_containers_stay_ended_by_the_restart_policy() {
        let p = pod(json!({
            "containerStatuses": [{
                "name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
            }],
        }));
        assert!(!had_sandbox(&p, false));
        let dir = tempfile::tempdir().unwrap();
        for (policy, stays) in [("Never", true), ("OnFailure", true), ("Always", false)] {
            let pr = prior(&p, dir.path(), "app", false, policy, true);
            assert_eq!(pr.terminated.is_some(), stays, "{policy}");
            let (run, lost) = initial_run(false, &pr);
            assert_eq!(matches!(run, Run::Terminated(_)), stays, "{policy}");
            assert!(!lost);
        }
    }
}
