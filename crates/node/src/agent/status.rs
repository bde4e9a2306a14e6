//! Pod status as the kubelet computes it (`generateAPIPodStatus`, `getPhase`): phase, the
//! conditions kubectl shows, and one status per container. Pure, so it is unit-tested.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What the agent knows of one container.
#[derive(Clone, Debug, PartialEq)]
pub enum Run {
    /// Not started (yet, or again after a back-off): reason and message.
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: jiff::Timestamp,
    },
    Terminated(Exit),
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exit {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<jiff::Timestamp>,
    pub finished_at: jiff::Timestamp,
}

impl Exit {
    /// Kubernetes' reasons: `Completed` for 0, `Error` otherwise (`OOMKilled` comes from the shim's record).
    pub fn reason_for(code: i32) -> &'static str {
        if code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContainerView {
    /// An init container (reported in `initContainerStatuses`).
    pub init: bool,
    /// An ephemeral container (`ephemeralContainerStatuses`; not part of the pod's phase or
    /// readiness).
    pub ephemeral: bool,
    pub name: String,
    pub image: String,
    /// The image's digest reference (`docker.io/library/nginx@sha256:...`), once known.
    pub image_id: String,
    pub run: Run,
    pub last: Option<Exit>,
    pub restart_count: i32,
    /// Readiness (true when running and no readiness probe, or the probe succeeded).
    pub ready: bool,
    /// Startup: false until the startup probe succeeded (true when running without one).
    pub started: bool,
    /// Whether it ever ran (a container that never ran keeps the pod Pending).
    pub ever_ran: bool,
    pub container_id: String,
}

fn time(t: jiff::Timestamp) -> Time {
    Time(t)
}

fn state_of(run: &Run) -> ContainerState {
    match run {
        Run::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        Run::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..Default::default()
        },
        Run::Terminated(e) => ContainerState {
            terminated: Some(terminated(e)),
            ..Default::default()
        },
    }
}

fn terminated(e: &Exit) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: e.exit_code,
        signal: e.signal,
        reason: Some(e.reason.clone()),
        message: e.message.clone(),
        started_at: e.started_at.map(time),
        finished_at: Some(time(e.finished_at)),
        container_id: None,
    }
}

/// `getPhase`.
pub fn phase(restart_policy: &str, containers: &[ContainerView]) -> &'static str {
    if containers
        .iter()
        .any(|c| !c.ever_ran && matches!(c.run, Run::Waiting { .. }))
    {
        return "Pending";
    }
    let running = containers
        .iter()
        .filter(|c| matches!(c.run, Run::Running { .. }))
        .count();
    let waiting = containers
        .iter()
        .filter(|c| matches!(c.run, Run::Waiting { .. }))
        .count();
    let exits: Vec<&Exit> = containers
        .iter()
        .filter_map(|c| match &c.run {
            Run::Terminated(e) => Some(e),
            _ => None,
        })
        .collect();
    if running > 0 || waiting > 0 {
        return "Running";
    }
    let failed = exits.iter().any(|e| e.exit_code != 0);
    match restart_policy {
        "Always" => "Running",
        "OnFailure" if failed => "Running",
        _ if failed => "Failed",
        _ => "Succeeded",
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    prior: &[PodCondition],
    now: jiff::Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // Keep lastTransitionTime while the status stays.
    let since = prior
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(time(now));
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        last_transition_time: Some(since),
        ..Default::default()
    }
}

fn container_status(c: &ContainerView) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: matches!(c.run, Run::Running { .. } | Run::Terminated(_))
            .then(|| c.container_id.clone()),
        ready: c.ready,
        started: Some(c.started && matches!(c.run, Run::Running { .. })),
        restart_count: c.restart_count,
        state: Some(state_of(&c.run)),
        last_state: c.last.as_ref().map(|e| ContainerState {
            terminated: Some(terminated(e)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pod's status from what the agent knows (`views`: init containers, then the others).
pub fn pod_status(
    pod: &Pod,
    host_ip: &str,
    pod_ip: Option<&str>,
    views: &[ContainerView],
    started: jiff::Timestamp,
    now: jiff::Timestamp,
) -> PodStatus {
    let (ephemeral, views): (Vec<ContainerView>, Vec<ContainerView>) =
        views.iter().cloned().partition(|c| c.ephemeral);
    let (inits, apps): (Vec<ContainerView>, Vec<ContainerView>) =
        views.into_iter().partition(|c| c.init);
    let containers = &apps[..];
    let incomplete: Vec<&str> = inits
        .iter()
        .filter(|c| !matches!(&c.run, Run::Terminated(e) if e.exit_code == 0))
        .map(|c| c.name.as_str())
        .collect();
    let prior = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    // `getPhase`: Pending while init containers run; Failed when one failed for good.
    let init_failed = inits
        .iter()
        .any(|c| matches!(&c.run, Run::Terminated(e) if e.exit_code != 0));
    let phase = match (incomplete.is_empty(), init_failed) {
        (true, _) => phase(policy, containers),
        (false, true) if policy == "Never" => "Failed",
        (false, _) => "Pending",
    };
    let all_ready = !containers.is_empty() && containers.iter().all(|c| c.ready);
    let not_ready: Vec<&str> = containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let terminal = phase == "Succeeded" || phase == "Failed";
    let reason = (!all_ready).then_some(if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    });
    let mut ready = condition("Ready", all_ready && !terminal, reason, &prior, now);
    let mut cready = condition(
        "ContainersReady",
        all_ready && !terminal,
        reason,
        &prior,
        now,
    );
    if !all_ready && !terminal {
        let msg = format!("containers with unready status: [{}]", not_ready.join(" "));
        ready.message = Some(msg.clone());
        cready.message = Some(msg);
    }
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            pod_ip.is_some(),
            None,
            &prior,
            now,
        ),
        {
            let reason = (!incomplete.is_empty()).then_some("ContainersNotInitialized");
            let mut c = condition("Initialized", incomplete.is_empty(), reason, &prior, now);
            if !incomplete.is_empty() {
                c.message = Some(format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                ));
            }
            c
        },
        ready,
        cready,
        condition("PodScheduled", true, None, &prior, now),
    ];
    let statuses = containers.iter().map(container_status).collect();
    let init_statuses: Vec<ContainerStatus> = inits.iter().map(container_status).collect();
    let ephemeral_statuses: Vec<ContainerStatus> = ephemeral.iter().map(container_status).collect();
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.into()),
        host_ips: Some(vec![HostIP { ip: host_ip.into() }]),
        pod_ip: pod_ip.map(str::to_string),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip: ip.into() }]),
        start_time: Some(time(started)),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        ephemeral_container_statuses: (!ephemeral_statuses.is_empty())
            .then_some(ephemeral_statuses),
        // Set by the API server at creation from the resources, and immutable.
        qos_class: pod
            .status
            .as_ref()
            .and_then(|s| s.qos_class.clone())
            .or_else(|| Some("BestEffort".into())),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(run: Run, ever_ran: bool, ready: bool) -> ContainerView {
        ContainerView {
            init: false,
            ephemeral: false,
            name: "c".into(),
            image: "img".into(),
            image_id: String::new(),
            run,
            last: None,
            restart_count: 0,
            ready,
            started: true,
            ever_ran,
            container_id: "svcnet://x".into(),
        }
    }

    fn exit(code: i32) -> Run {
        Run::Terminated(Exit {
            exit_code: code,
            signal: None,
            reason: Exit::reason_for(code).into(),
            message: None,
            started_at: None,
            finished_at: jiff::Timestamp::now(),
        })
    }

    #[test]
    fn phases_as_get_phase() {
        let waiting = Run::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        assert_eq!(
            phase("Always", &[view(waiting.clone(), false, false)]),
            "Pending"
        );
        assert_eq!(
            phase("Always", &[view(waiting, true, false)]),
            "Running",
            "back-off after a run"
        );
        assert_eq!(
            phase(
                "Always",
                &[view(
                    Run::Running {
                        started_at: jiff::Timestamp::now()
                    },
                    true,
                    true
                )]
            ),
            "Running"
        );
        assert_eq!(phase("Never", &[view(exit(0), true, false)]), "Succeeded");
        assert_eq!(phase("Never", &[view(exit(1), true, false)]), "Failed");
        assert_eq!(phase("OnFailure", &[view(exit(1), true, false)]), "Running");
        assert_eq!(
            phase("OnFailure", &[view(exit(0), true, false)]),
            "Succeeded"
        );
    }

    #[test]
    fn ready_conditions_and_container_states() {
        let pod = Pod::default();
        let now = jiff::Timestamp::now();
        let c = view(Run::Running { started_at: now }, true, false);
        let st = pod_status(&pod, "172.28.0.10", Some("10.244.0.5"), &[c], now, now);
        let conds = st.conditions.unwrap();
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("ContainersNotReady"))
        );
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [c]")
        );
        assert_eq!(st.pod_ip.as_deref(), Some("10.244.0.5"));
        let cs = &st.container_statuses.unwrap()[0];
        assert!(cs.state.as_ref().unwrap().running.is_some());
    }

    #[test]
    fn init_containers_keep_the_pod_pending() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "spec": {"containers": []}
        }))
        .unwrap();
        let now = jiff::Timestamp::now();
        let mut init = view(Run::Running { started_at: now }, true, false);
        init.init = true;
        init.name = "setup".into();
        let app = view(
            Run::Waiting {
                reason: "PodInitializing".into(),
                message: None,
            },
            false,
            false,
        );
        let st = pod_status(
            &pod,
            "10.0.0.1",
            None,
            &[init.clone(), app.clone()],
            now,
            now,
        );
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(
            st.init_container_statuses.as_ref().unwrap()[0].name,
            "setup"
        );
        assert_eq!(st.container_statuses.as_ref().unwrap().len(), 1);
        let initialized = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Initialized")
            .unwrap();
        assert_eq!(initialized.status, "False");
        assert_eq!(
            initialized.message.as_deref(),
            Some("containers with incomplete status: [setup]")
        );
        init.run = Run::Terminated(Exit {
            exit_code: 0,
            signal: None,
            reason: "Completed".into(),
            message: None,
            started_at: None,
            finished_at: now,
        });
        let st = pod_status(&pod, "10.0.0.1", None, &[init, app], now, now);
        assert!(st
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Initialized" && c.status == "True"));
    }
}
