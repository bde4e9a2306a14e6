//! One worker per pod on this node (the kubelet's pod worker): sandbox, containers through
//! shims, restarts with back-off, probes, status, and graceful termination. Everything a
//! restarted agent needs to adopt a running pod is on disk under `<data>/pods/<uid>/`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::images::ImageState;
use super::status::{self, ContainerView, Exit, Run};
use super::Shared;
use crate::container::{self, OciHandle};
use crate::layout;
use crate::probe::{self, ProbeContext, ProbeKind, ProbeUpdate};
use crate::sandbox::{self, PodFiles, Sandbox, SandboxSpec};

mod adopt;
mod create;
mod ephemeral;
use crate::shim;

/// Kubelet's container restart back-off: 10 s doubling to 5 min.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often a worker looks at its containers when nothing else wakes it.
const TICK: Duration = Duration::from_millis(200);

/// Persisted per container: what a restarted agent needs to adopt it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Meta {
    restart_count: i32,
    started_at: Option<jiff::Timestamp>,
    last: Option<Exit>,
    #[serde(default)]
    image_ref: Option<(String, String)>,
}

struct Ctr {
    /// An init container (`spec.initContainers`).
    init: bool,
    /// An ephemeral container (`spec.ephemeralContainers`): never restarted, and with
    /// `targetContainerName`, in that container's PID namespace ([`ephemeral`]).
    ephemeral: Option<ephemeral::Target>,
    spec: Container,
    dir: PathBuf,
    run: Run,
    last: Option<Exit>,
    restart_count: i32,
    ever_ran: bool,
    ready: bool,
    started: bool,
    backoff: Duration,
    next_start: Option<Instant>,
    probes: Vec<tokio::task::JoinHandle<()>>,
    /// Set when a liveness failure asked for a restart.
    killing: bool,
    /// Its run ended unseen (its process gone with its sandbox, or while no agent watched):
    /// the next look ends it even without the shim's exit record.
    lost: bool,
    /// Run by the OCI runtime from an image (not as a host process).
    oci: bool,
    /// The runtime has created its current run (runc wrote its init's pid file; a host
    /// process is created when started), as containerd's StartContainer returns only then:
    /// until it is, a running container still shows ContainerCreating and not ready, so an
    /// exec after `kubectl wait --for=condition=Ready` finds it. Looked for while false only.
    created: bool,
    /// The image (containers not run as host processes).
    image: ImageState,
    /// `(image, imageID)` as the status shows them, once the image is known.
    image_ref: Option<(String, String)>,
}

impl Ctr {
    /// Container `c` of the pod in `pod_dir`: adopted when a previous agent started it and it
    /// still runs in the pod's sandbox, else waiting to start, with the runs before it
    /// ([`adopt::prior`]).
    #[allow(clippy::too_many_arguments)]
    fn adopt_or_new(
        pod: &Pod,
        pod_dir: &Path,
        c: Container,
        init: bool,
        ephemeral: Option<ephemeral::Target>,
        policy: &str,
        sandbox_changed: bool,
        process_runtime: bool,
    ) -> Ctr {
        let cdir = layout::container_dir(pod_dir, &c.name);
        let prior = adopt::prior(pod, &cdir, &c.name, init, policy, sandbox_changed);
        let running = !sandbox_changed
            && shim::read_pid(&cdir).filter(|p| alive(*p)).is_some()
            && shim::read_exit(&cdir).is_none();
        if sandbox_changed {
            adopt::kill_leftover(&cdir);
        }
        let (run, lost) = adopt::initial_run(running, &prior);
        let meta = prior.meta;
        Ctr {
            init,
            ephemeral,
            spec: c,
            dir: cdir,
            ever_ran: running || meta.last.is_some() || !matches!(run, Run::Waiting { .. }),
            run,
            last: meta.last.clone(),
            restart_count: meta.restart_count,
            ready: false,
            started: false,
            backoff: Duration::ZERO,
            next_start: None,
            probes: Vec::new(),
            killing: false,
            lost,
            oci: !process_runtime,
            // An adopted container was created by an earlier agent.
            created: true,
            image: ImageState::default(),
            image_ref: meta.image_ref.clone(),
        }
    }

    fn meta(&self) -> Meta {
        Meta {
            restart_count: self.restart_count,
            started_at: match &self.run {
                Run::Running { started_at } => Some(*started_at),
                _ => None,
            },
            last: self.last.clone(),
            image_ref: self.image_ref.clone(),
        }
    }

    fn save(&self) {
        let _ = layout::create_dir(&self.dir);
        let _ = layout::write_file(
            &layout::container_meta_file(&self.dir),
            &serde_json::to_vec(&self.meta()).unwrap_or_default(),
        );
    }

    fn log_path(&self, restart: i32) -> PathBuf {
        layout::container_log(&self.dir, restart)
    }

    fn stop_probes(&mut self) {
        for h in self.probes.drain(..) {
            h.abort();
        }
    }

    fn view(&self, uid: &str) -> ContainerView {
        let created = self.created || !matches!(self.run, Run::Running { .. });
        ContainerView {
            init: self.init,
            ephemeral: self.ephemeral.is_some(),
            name: self.spec.name.clone(),
            image: self
                .image_ref
                .as_ref()
                .map(|r| r.0.clone())
                .unwrap_or_else(|| self.spec.image.clone().unwrap_or_default()),
            image_id: self
                .image_ref
                .as_ref()
                .map(|r| r.1.clone())
                .unwrap_or_default(),
            run: if created {
                self.run.clone()
            } else {
                Run::Waiting {
                    reason: "ContainerCreating".into(),
                    message: None,
                }
            },
            last: self.last.clone(),
            restart_count: self.restart_count,
            ready: self.ready && created,
            started: self.started && created,
            ever_ran: self.ever_ran,
            container_id: format!("svcnet://{uid}/{}", self.spec.name),
        }
    }
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// Signal a container: through the OCI runtime for a container from an image, else its
/// process group.
fn signal_group(dir: &Path, sig: Signal) {
    if container::signal(dir, sig) {
        return;
    }
    if let Some(pid) = shim::read_pid(dir) {
        let _ = kill(Pid::from_raw(-pid), sig);
    }
}

fn ts(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// The pod's hostname (`spec.hostname`, else the pod name cut to 63 characters).
pub fn hostname(pod: &Pod) -> String {
    let h = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.name_any());
    h.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// /etc/resolv.conf and /etc/hosts for the pod, by its dnsPolicy (kubelet's `GetPodDNS`).
fn pod_files(shared: &Shared, pod: &Pod) -> PodFiles {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.namespace().unwrap_or_else(|| "default".into());
    let domain = &shared.cfg.network.cluster_domain;
    let host = hostname(pod);
    let mut f = PodFiles {
        hostname: host.clone(),
        ..Default::default()
    };
    if let Some(sub) = spec.subdomain.as_ref().filter(|s| !s.is_empty()) {
        f.fqdn = Some(format!("{host}.{sub}.{ns}.svc.{domain}"));
    }
    for a in spec.host_aliases.iter().flatten() {
        f.host_aliases.push(format!(
            "{}\t{}",
            a.ip,
            a.hostnames.clone().unwrap_or_default().join("\t")
        ));
    }
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network == Some(true);
    match policy {
        "ClusterFirst" | "ClusterFirstWithHostNet"
            if !(host_network && policy == "ClusterFirst") =>
        {
            f.nameservers = vec![shared.cfg.network.cluster_dns.to_string()];
            f.searches = shared.cfg.network.dns_search(&ns);
            f.options = vec!["ndots:5".into()];
        }
        "None" => {}
        _ => {
            // Default: the node's resolver configuration.
            let host_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            for l in host_conf.lines() {
                let mut w = l.split_whitespace();
                match w.next() {
                    Some("nameserver") => f.nameservers.extend(w.next().map(str::to_string)),
                    Some("search") => f.searches.extend(w.map(str::to_string)),
                    Some("options") => f.options.extend(w.map(str::to_string)),
                    _ => {}
                }
            }
        }
    }
    if let Some(cfg) = &spec.dns_config {
        f.nameservers
            .extend(cfg.nameservers.clone().unwrap_or_default());
        f.searches.extend(cfg.searches.clone().unwrap_or_default());
        for o in cfg.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            f.options
                .retain(|x| x.split(':').next() != Some(name.as_str()));
            f.options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    f
}

pub struct Worker {
    shared: Arc<Shared>,
    rx: watch::Receiver<Option<Arc<Pod>>>,
    uid: String,
    ns: String,
    name: String,
    dir: PathBuf,
    started: jiff::Timestamp,
    sandbox: Option<Sandbox>,
    ctrs: Vec<Ctr>,
    probe_tx: mpsc::UnboundedSender<(usize, ProbeUpdate)>,
    probe_rx: mpsc::UnboundedReceiver<(usize, ProbeUpdate)>,
    last_status: Option<serde_json::Value>,
    sandbox_error: Option<String>,
    /// After a failed sandbox creation: when to try again.
    sandbox_retry: Option<Instant>,
    /// The address of a sandbox that is gone, kept for the new one when it is free.
    previous_ip: Option<Ipv4Addr>,
    /// `runtimeClassName: svcnet-process`: containers run as host processes, not from images.
    process_runtime: bool,
    /// Its configMap and secret volumes as last written (re-synced every turn).
    projected: crate::agent::volumes::Projected,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, rx: watch::Receiver<Option<Arc<Pod>>>) -> Option<Worker> {
        let pod = rx.borrow().clone()?;
        let uid = pod.uid()?;
        let dir = layout::pod_dir(&shared.cfg.data_dir, &uid);
        let _ = layout::create_dir(&dir);
        // The pod's sandbox: adopted while its namespace is there; one that is gone is made
        // again (the kubelet's `PodSandboxChanged`), its leftovers killed first.
        let saved_sandbox = std::fs::read(layout::pod_sandbox_file(&dir))
            .ok()
            .and_then(|b| serde_json::from_slice::<Sandbox>(&b).ok());
        let sandbox = saved_sandbox
            .clone()
            .filter(|sb| svcnet_netns::NetNs::exists(&sb.netns));
        let sandbox_changed =
            sandbox.is_none() && adopt::had_sandbox(&pod, saved_sandbox.is_some());
        if sandbox_changed {
            shared.recorder.event(
                &*pod,
                "Normal",
                adopt::SANDBOX_CHANGED,
                adopt::SANDBOX_CHANGED_MESSAGE.into(),
            );
            container::pause::stop(&dir);
            if let Some(old) = &saved_sandbox {
                let node_ns = shared
                    .cfg
                    .node_netns
                    .as_ref()
                    .and_then(|n| svcnet_netns::NetNs::open(n).ok());
                let _ = sandbox::destroy(old, node_ns.as_ref());
            }
        }
        let started = std::fs::read_to_string(layout::pod_started_file(&dir))
            .ok()
            .and_then(|s| ts(s.trim()))
            .or_else(|| Some(pod.status.as_ref()?.start_time.as_ref()?.0))
            .unwrap_or_else(|| {
                let now = jiff::Timestamp::now();
                let _ =
                    layout::write_file(&layout::pod_started_file(&dir), now.to_string().as_bytes());
                now
            });
        let policy = Self::restart_policy(&pod);
        let process_runtime = pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref())
            == Some(svcnet_cluster::runtime_class::PROCESS);
        // Init containers first (run one at a time, in order), then the app containers.
        let spec = pod.spec.clone().unwrap_or_default();
        let ctrs = spec
            .init_containers
            .unwrap_or_default()
            .into_iter()
            .map(|c| (true, c))
            .chain(spec.containers.into_iter().map(|c| (false, c)))
            .map(|(init, c)| {
                Ctr::adopt_or_new(
                    &pod,
                    &dir,
                    c,
                    init,
                    None,
                    &policy,
                    sandbox_changed,
                    process_runtime,
                )
            })
            .collect();
        let previous_ip = adopt::previous_ip(&pod).filter(|_| sandbox_changed);
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        Some(Worker {
            ns: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            shared,
            rx,
            uid,
            dir,
            started,
            sandbox,
            ctrs,
            probe_tx,
            probe_rx,
            last_status: None,
            projected: Default::default(),
            sandbox_error: None,
            sandbox_retry: None,
            previous_ip,
            process_runtime,
        })
    }

    fn netns_name(&self) -> String {
        layout::pod_netns(&self.shared.cfg.netns_prefix, &self.uid)
    }

    fn node_ns(&self) -> Option<svcnet_netns::NetNs> {
        self.shared
            .cfg
            .node_netns
            .as_ref()
            .and_then(|n| svcnet_netns::NetNs::open(n).ok())
    }

    fn ensure_sandbox(&mut self, pod: &Pod) {
        if self.sandbox.is_some() || self.sandbox_retry.is_some_and(|t| Instant::now() < t) {
            return;
        }
        match self.create_sandbox(pod) {
            Ok(sb) => {
                let _ = layout::write_file(
                    &layout::pod_sandbox_file(&self.dir),
                    &serde_json::to_vec(&sb).unwrap_or_default(),
                );
                self.sandbox = Some(sb);
                self.sandbox_error = None;
                self.sandbox_retry = None;
            }
            Err(e) => {
                // The kubelet's SyncPod: a Warning on the pod, tried again at the next sync.
                self.shared.recorder.event(
                    pod,
                    "Warning",
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {e}"),
                );
                self.sandbox_error = Some(format!("failed to create pod sandbox: {e}"));
                self.sandbox_retry = Some(Instant::now() + BACKOFF_START);
            }
        }
    }

    /// The pod's network namespace with an address (the kubelet's RunPodSandbox + CNI ADD).
    fn create_sandbox(&mut self, pod: &Pod) -> Result<Sandbox, String> {
        let ip = self
            .shared
            .ipam
            .lock()
            .expect("ipam lock")
            .allocate_preferring(&self.uid, self.previous_ip)
            .map_err(|e| format!("failed to allocate an IP: {e}"))?;
        let files = pod_files(&self.shared, pod);
        let netns = self.netns_name();
        let files_dir = layout::pod_files_dir(&self.dir);
        let spec = SandboxSpec {
            netns: &netns,
            uid: &self.uid,
            namespace: &self.ns,
            name: &self.name,
            ip,
            cidr: self.shared.cidr,
            files: &files,
            dir: &files_dir,
        };
        sandbox::create(&spec, self.node_ns().as_ref()).map_err(|e| e.to_string())
    }

    fn restart_policy(pod: &Pod) -> String {
        pod.spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    /// Start container `i` (its command, env and files), or say why it cannot run.
    fn start(&mut self, i: usize, pod: &Pod) {
        let Some(sb) = self.sandbox.clone() else {
            return;
        };
        let service_env = crate::envvars::service_env(
            &self.shared.services(),
            &self.ns,
            pod.spec
                .as_ref()
                .and_then(|s| s.enable_service_links)
                .unwrap_or(true),
        );
        let spec = self.ctrs[i].spec.clone();
        // fieldRefs to status.podIP / hostIP read the pod's status: give them what it will say.
        let mut with_ips = pod.clone();
        let st = with_ips.status.get_or_insert_with(Default::default);
        st.pod_ip = Some(sb.ip.to_string());
        st.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP {
            ip: sb.ip.to_string(),
        }]);
        st.host_ip = Some(self.shared.cfg.node_ip.to_string());
        st.host_ips = Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: self.shared.cfg.node_ip.to_string(),
        }]);
        let objects: &dyn crate::objects::Objects = &*self.shared;
        let env = match crate::envvars::container_env(&with_ips, &spec, &service_env, objects) {
            Ok(e) => {
                for msg in crate::envvars::invalid_env_from_keys(pod, &spec, objects) {
                    self.shared.recorder.event_on(
                        pod,
                        None,
                        "Warning",
                        "InvalidEnvironmentVariableNames",
                        msg,
                    );
                }
                e
            }
            Err(msg) => {
                self.fail(pod, i, "CreateContainerConfigError", msg, BACKOFF_START);
                return;
            }
        };
        let prepared = if self.process_runtime {
            self.process_spec(i, pod, &sb, env)
        } else {
            self.image_spec(i, pod, &sb, env)
        };
        let Some((shim_spec, env)) = prepared else {
            return;
        };
        let binds = shim_spec.binds.clone();
        match shim::spawn(&self.shared.cfg.exe, &shim_spec) {
            Ok(mut child) => {
                // Reap the shim when it ends (it outlives us if we are restarted).
                std::thread::spawn(move || {
                    let _ = child.wait();
                });
            }
            Err(e) => {
                let msg = format!("failed to start the container shim: {e}");
                self.fail(pod, i, "RunContainerError", msg, BACKOFF_START);
                return;
            }
        }
        self.event(
            pod,
            i,
            false,
            "Created",
            format!("Created container {}", spec.name),
        );
        self.event(
            pod,
            i,
            false,
            "Started",
            format!("Started container {}", spec.name),
        );
        let c = &mut self.ctrs[i];
        c.run = Run::Running {
            started_at: jiff::Timestamp::now(),
        };
        c.ever_ran = true;
        c.killing = false;
        c.created = !c.oci;
        c.save();
        self.shared
            .set_env(&self.ns, &self.name, &spec.name, env, binds);
        self.start_probes(i, pod);
    }

    /// Container `i` waits with `reason` and is tried again after `retry`.
    fn wait(&mut self, i: usize, reason: &str, message: String, retry: Duration) {
        let c = &mut self.ctrs[i];
        c.run = Run::Waiting {
            reason: reason.into(),
            message: Some(message),
        };
        c.next_start = Some(Instant::now() + retry);
    }

    /// Container `i` could not be created or started: it waits with `reason`, and the Event
    /// says why, as the kubelet's `startContainer` records each failed attempt (a Warning
    /// `Failed`, "Error: <message>"; repeats are one Event whose count grows). Tried again after
    /// `retry`, as the kubelet's pod worker re-syncs a pod whose sync failed.
    fn fail(&mut self, pod: &Pod, i: usize, reason: &str, message: String, retry: Duration) {
        self.event(pod, i, true, "Failed", format!("Error: {message}"));
        self.wait(i, reason, message, retry);
    }

    /// An Event on container `i` of the pod, as the kubelet records them.
    fn event(&self, pod: &Pod, i: usize, warning: bool, reason: &str, message: String) {
        let list = match &self.ctrs[i] {
            c if c.init => "initContainers",
            c if c.ephemeral.is_some() => "ephemeralContainers",
            _ => "containers",
        };
        let field = format!("spec.{list}{{{}}}", self.ctrs[i].spec.name);
        let kind = if warning { "Warning" } else { "Normal" };
        self.shared
            .recorder
            .event_on(pod, Some(field), kind, reason, message);
    }

    /// Probe workers for a started container: startup first; readiness and liveness after it.
    fn start_probes(&mut self, i: usize, pod: &Pod) {
        let Some(sb) = self.sandbox.clone() else {
            return;
        };
        let oci = OciHandle::load(&self.ctrs[i].dir).filter(|_| !self.process_runtime);
        let c = &mut self.ctrs[i];
        c.stop_probes();
        let spec = c.spec.clone();
        let ctx = || ProbeContext {
            pod_ip: IpAddr::V4(sb.ip),
            ports: spec.ports.clone().unwrap_or_default(),
            connector: self.shared.connector.clone(),
            exec: Arc::new(probe::PodExec {
                netns: sb.netns.clone(),
                hostname: Some(hostname(pod)),
                binds: layout::etc_binds(&sb.dir),
                env: Vec::new(),
                workdir: spec.working_dir.clone().map(PathBuf::from),
                oci: oci.clone(),
            }),
        };
        let mut spawn = |p: &Option<k8s_openapi::api::core::v1::Probe>, kind: ProbeKind| -> bool {
            let Some(p) = p.clone() else { return false };
            let (tx, mut rx) = mpsc::unbounded_channel::<ProbeUpdate>();
            let fwd = self.probe_tx.clone();
            let h = probe::spawn_worker(p, kind, ctx(), tx);
            let f = tokio::spawn(async move {
                while let Some(u) = rx.recv().await {
                    if fwd.send((i, u)).is_err() {
                        return;
                    }
                }
            });
            c.probes.push(h);
            c.probes.push(f);
            true
        };
        if c.started || !spawn(&spec.startup_probe, ProbeKind::Startup) {
            c.started = true;
            let has_readiness = spawn(&spec.readiness_probe, ProbeKind::Readiness);
            spawn(&spec.liveness_probe, ProbeKind::Liveness);
            c.ready = !has_readiness;
        }
    }

    /// Look at a running container: has it ended?
    fn reap(&mut self, i: usize, pod: &Pod) {
        let c = &mut self.ctrs[i];
        if !matches!(c.run, Run::Running { .. }) {
            return;
        }
        let exit_record = shim::read_exit(&c.dir);
        if !c.created {
            c.created = crate::container::init_pid_file(&c.dir).exists() || exit_record.is_some();
        }
        let exit = match exit_record {
            Some(rec) => Exit {
                exit_code: rec.exit_code,
                signal: rec.signal,
                reason: if rec.start_error.is_some() {
                    "StartError".into()
                } else if rec.oom_killed {
                    "OOMKilled".into()
                } else {
                    Exit::reason_for(rec.exit_code).into()
                },
                message: rec.start_error.clone(),
                started_at: ts(&rec.started_at),
                finished_at: ts(&rec.finished_at).unwrap_or_else(jiff::Timestamp::now),
            },
            None if c.lost => adopt::unknown_exit(match c.run {
                Run::Running { started_at } => Some(started_at),
                _ => None,
            }),
            None => {
                // No record: the shim itself is gone (killed with the node?) — only then an exit.
                match shim::read_pid(&c.dir) {
                    Some(pid) if alive(pid) => return,
                    None if layout::container_pid_file(&c.dir).exists() => return,
                    None => {
                        // Not written yet: the shim is still starting.
                        return;
                    }
                    Some(_) => Exit {
                        exit_code: 137,
                        signal: Some(9),
                        reason: "Error".into(),
                        message: Some("container process disappeared".into()),
                        started_at: None,
                        finished_at: jiff::Timestamp::now(),
                    },
                }
            }
        };
        c.stop_probes();
        c.ready = false;
        c.started = false;
        let mut policy = Self::restart_policy(pod);
        // An init container that succeeded is done; one that failed is restarted unless the
        // pod's policy is Never.
        if c.init && policy == "Always" {
            policy = "OnFailure".into();
        }
        // Ephemeral containers are not restarted.
        if c.ephemeral.is_some() {
            policy = "Never".into();
        }
        let restart = match policy.as_str() {
            "Never" => false,
            "OnFailure" => exit.exit_code != 0,
            _ => true,
        };
        if restart {
            // Back-off doubles while the container keeps failing; a run of 10 minutes resets it.
            let ran_long = exit
                .started_at
                .is_some_and(|s| exit.finished_at.as_second() - s.as_second() > 600);
            // The first restart is immediate, then 10 s, 20 s, ... (as the kubelet's back-off).
            let wait = if ran_long || c.killing {
                Duration::ZERO
            } else {
                c.backoff
            };
            c.backoff = if c.backoff.is_zero() || ran_long {
                BACKOFF_START
            } else {
                (c.backoff * 2).min(BACKOFF_MAX)
            };
            c.next_start = Some(Instant::now() + wait);
            c.restart_count += 1;
            c.run = if wait.is_zero() {
                Run::Waiting {
                    reason: "ContainerCreating".into(),
                    message: None,
                }
            } else {
                Run::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {}s restarting failed container={} pod={}_{}({})",
                        wait.as_secs(),
                        c.spec.name,
                        self.name,
                        self.ns,
                        self.uid
                    )),
                }
            };
            c.last = Some(exit);
        } else {
            c.run = Run::Terminated(exit);
        }
        c.killing = false;
        c.lost = false;
        c.save();
        if matches!(&c.run, Run::Waiting { reason, .. } if reason == "CrashLoopBackOff") {
            let msg = format!(
                "Back-off restarting failed container {} in pod {}_{}({})",
                c.spec.name, self.name, self.ns, self.uid
            );
            self.event(pod, i, true, "BackOff", msg);
        }
    }

    fn handle_probe(&mut self, i: usize, u: ProbeUpdate, pod: &Pod) {
        let Some(c) = self.ctrs.get_mut(i) else {
            return;
        };
        if !matches!(c.run, Run::Running { .. }) {
            return;
        }
        match u.kind {
            ProbeKind::Readiness => c.ready = u.result,
            ProbeKind::Startup => {
                if u.result && !c.started {
                    c.started = true;
                    self.start_probes(i, pod);
                }
            }
            ProbeKind::Liveness => {
                if !u.result && !c.killing {
                    tracing::info!(pod = %self.name, container = %c.spec.name, message = %u.message, "liveness probe failed; restarting");
                    c.killing = true;
                    c.ready = false;
                    signal_group(&c.dir, Signal::SIGTERM);
                    let dir = c.dir.clone();
                    let grace = termination_grace(pod);
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        signal_group(&dir, Signal::SIGKILL);
                    });
                }
            }
        }
    }

    fn ip(&self) -> Option<Ipv4Addr> {
        self.sandbox.as_ref().map(|s| s.ip)
    }

    async fn post_status(&mut self, pod: &Pod) {
        let mut views: Vec<ContainerView> = self.ctrs.iter().map(|c| c.view(&self.uid)).collect();
        if let Some(err) = &self.sandbox_error {
            for v in views.iter_mut() {
                v.run = Run::Waiting {
                    reason: "ContainerCreating".into(),
                    message: Some(err.clone()),
                };
            }
        }
        let ip = self.ip().map(|i| i.to_string());
        let st = status::pod_status(
            pod,
            &self.shared.cfg.node_ip.to_string(),
            ip.as_deref(),
            &views,
            self.started,
            jiff::Timestamp::now(),
        );
        let v = serde_json::to_value(&st).unwrap_or_default();
        // Unchanged apart from timestamps that only move on transitions: skip.
        if self.last_status.as_ref() == Some(&v) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.ns);
        let patch = json!({"metadata": {"uid": self.uid}, "status": v});
        match api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => self.last_status = Some(v),
            Err(e) => tracing::debug!(pod = %self.name, error = %e, "status update failed"),
        }
    }

    /// What the kubelet API knows of the pod: its sandbox and its containers, running or not.
    fn register(&self, pod: &Pod) {
        self.shared.register(
            &self.ns,
            &self.name,
            self.sandbox.as_ref(),
            pod,
            self.ctrs
                .iter()
                .map(|c| {
                    (
                        c.spec.name.clone(),
                        c.dir.clone(),
                        c.restart_count,
                        matches!(c.run, Run::Running { .. }),
                    )
                })
                .collect(),
        );
    }

    /// Run the pod until it is deleted and torn down.
    pub async fn run(mut self) {
        loop {
            let pod = self.rx.borrow().clone();
            let Some(pod) = pod.filter(|p| p.metadata.deletion_timestamp.is_none()) else {
                let pod = self.rx.borrow().clone();
                self.terminate(pod.as_deref()).await;
                return;
            };
            self.ensure_sandbox(&pod);
            self.add_ephemeral(&pod);
            self.register(&pod);
            self.projected.sync(&pod, &self.dir, &*self.shared);
            // The first init container that has not succeeded is the only one that runs.
            let pending_init = self
                .ctrs
                .iter()
                .position(|c| c.init && !matches!(&c.run, Run::Terminated(e) if e.exit_code == 0));
            for i in 0..self.ctrs.len() {
                if pending_init.is_some_and(|k| k != i) {
                    let c = &mut self.ctrs[i];
                    if !c.init
                        && matches!(&c.run, Run::Waiting { reason, .. } if reason == "ContainerCreating")
                    {
                        c.run = Run::Waiting {
                            reason: "PodInitializing".into(),
                            message: None,
                        };
                    }
                    continue;
                }
                self.reap(i, &pod);
                let c = &self.ctrs[i];
                let due = c.next_start.is_none_or(|t| Instant::now() >= t);
                let waiting = matches!(c.run, Run::Waiting { .. });
                if waiting && due && self.sandbox.is_some() {
                    self.start(i, &pod);
                }
                // Adopted running containers need their probes (once).
                let c = &self.ctrs[i];
                if matches!(c.run, Run::Running { .. })
                    && c.probes.is_empty()
                    && !c.started
                    && !c.ready
                {
                    self.start_probes(i, &pod);
                }
            }
            while let Ok((i, u)) = self.probe_rx.try_recv() {
                self.handle_probe(i, u, &pod);
            }
            // The kubelet API sees containers started above as running before the status
            // says so (kubectl attaches as soon as it reads Running).
            self.register(&pod);
            self.post_status(&pod).await;
            tokio::select! {
                r = self.rx.changed() => {
                    if r.is_err() {
                        // The agent is shutting down: leave the pod running (re-adopted later).
                        return;
                    }
                }
                Some((i, u)) = self.probe_rx.recv() => self.handle_probe(i, u, &pod),
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Stop containers (SIGTERM, grace, SIGKILL), remove the sandbox, release the IP, and tell
    /// the API the pod is gone.
    async fn terminate(&mut self, pod: Option<&Pod>) {
        let grace = pod.map(termination_grace).unwrap_or(Duration::ZERO);
        for i in 0..self.ctrs.len() {
            let c = &mut self.ctrs[i];
            c.stop_probes();
            c.image.abort();
            if matches!(c.run, Run::Running { .. }) {
                if let Some(pod) = pod {
                    let msg = format!("Stopping container {}", c.spec.name);
                    self.event(pod, i, false, "Killing", msg);
                }
            }
            signal_group(&self.ctrs[i].dir, Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        loop {
            let running = self.ctrs.iter().any(|c| {
                shim::read_pid(&c.dir).is_some_and(alive) && shim::read_exit(&c.dir).is_none()
            });
            if !running || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for c in &self.ctrs {
            signal_group(&c.dir, Signal::SIGKILL);
            if let Some(h) = OciHandle::load(&c.dir) {
                h.delete();
                container::cgroups::remove(&h.id);
            }
        }
        container::pause::stop(&self.dir);
        if let Some(sb) = self.sandbox.take() {
            if let Err(e) = sandbox::destroy(&sb, self.node_ns().as_ref()) {
                tracing::warn!(pod = %self.name, error = %e, "removing the sandbox");
            }
        }
        let _ = self
            .shared
            .ipam
            .lock()
            .expect("ipam lock")
            .release(&self.uid);
        self.shared.unregister(&self.ns, &self.name);
        let _ = std::fs::remove_dir_all(&self.dir);
        if pod.is_some() {
            let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.ns);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            if let Err(e) = api.delete(&self.name, &dp).await {
                tracing::debug!(pod = %self.name, error = %e, "final delete");
            }
        }
    }
}

/// The grace period of a pod being deleted (`deletionGracePeriodSeconds`, else the spec's, 30 s).
fn termination_grace(pod: &Pod) -> Duration {
    let s = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(s.max(0) as u64)
}

/// Remove what a pod left on this node when its object is gone (a restart of the agent while
/// the pod was deleted): processes, namespace, IP, files.
pub fn cleanup_orphan(shared: &Shared, uid: &str) {
    let dir = layout::pod_dir(&shared.cfg.data_dir, uid);
    if let Ok(entries) = std::fs::read_dir(layout::containers_dir(&dir)) {
        for e in entries.flatten() {
            signal_group(&e.path(), Signal::SIGKILL);
            if let Some(h) = OciHandle::load(&e.path()) {
                h.delete();
                container::cgroups::remove(&h.id);
            }
        }
    }
    container::pause::stop(&dir);
    if let Some(sb) = std::fs::read(layout::pod_sandbox_file(&dir))
        .ok()
        .and_then(|b| serde_json::from_slice::<Sandbox>(&b).ok())
    {
        let node_ns = shared
            .cfg
            .node_netns
            .as_ref()
            .and_then(|n| svcnet_netns::NetNs::open(n).ok());
        let _ = sandbox::destroy(&sb, node_ns.as_ref());
    }
    let _ = shared.ipam.lock().expect("ipam lock").release(uid);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The containers of a registered pod, as the kubelet API needs them.
pub type ContainerList = Vec<(String, PathBuf, i32, bool)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_defaults_to_pod_name() {
        let mut pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "web-1"}, "spec": {"containers": []}}),
        )
        .unwrap();
        assert_eq!(hostname(&pod), "web-1");
        pod.spec.as_mut().unwrap().hostname = Some("busybox-1".into());
        assert_eq!(hostname(&pod), "busybox-1");
    }
}
