//! Turning a container of the pod spec into what the shim runs, as the kubelet's
//! `generateContainerConfig` (`pkg/kubelet/kuberuntime/kuberuntime_container.go`) and
//! containerd's CRI `CreateContainer`: for the `svcnet-process` RuntimeClass the command as a
//! host process; otherwise the image ensured, the volumes, the pod's shared namespaces and the
//! OCI bundle.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{hostname, Run, Worker, BACKOFF_MAX, BACKOFF_START};
use crate::agent::images::Step;
use crate::container::{self, rootfs::Overlay, spec as oci_spec, OciHandle, OciRun};
use crate::layout;
use crate::sandbox::Sandbox;
use crate::shim::ShimSpec;

impl Worker {
    /// The `svcnet-process` RuntimeClass: the container's command as a host process in the
    /// pod's namespaces.
    pub(super) fn process_spec(
        &mut self,
        i: usize,
        pod: &Pod,
        sb: &Sandbox,
        mut env: Vec<(String, String)>,
    ) -> Option<(ShimSpec, Vec<(String, String)>)> {
        let spec = &self.ctrs[i].spec;
        let command = spec.command.clone().unwrap_or_default();
        if command.is_empty() {
            let msg = format!(
                "the {:?} RuntimeClass runs a container's command as a process on the node: set \"command\" (and \"args\") for container {:?}, e.g. command: [\"svcnet\", \"agnhost\", \"netexec\", \"--http-port=80\"]",
                svcnet_cluster::runtime_class::PROCESS,
                spec.name
            );
            self.fail(pod, i, "CommandRequired", msg, BACKOFF_START);
            return None;
        }
        let mut argv: Vec<String> = command
            .iter()
            .chain(spec.args.iter().flatten())
            .map(|a| crate::envvars::expand(a, &env))
            .collect();
        // `svcnet ...` is this very binary, wherever it is installed.
        if argv[0] == "svcnet" {
            argv[0] = self.shared.cfg.exe.display().to_string();
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.insert(0, ("PATH".into(), self.shared.path_env()));
        }
        if !env.iter().any(|(k, _)| k == "HOSTNAME") {
            env.insert(0, ("HOSTNAME".into(), hostname(pod)));
        }
        let mut binds = layout::etc_binds(&sb.dir);
        match crate::agent::volumes::process_binds(pod, spec, &self.dir, &*self.shared) {
            Ok(b) => binds.extend(b),
            Err(msg) => {
                self.event(pod, i, true, "FailedMount", msg.clone());
                self.wait(i, "ContainerCreating", msg, BACKOFF_START);
                return None;
            }
        }
        let spec = &self.ctrs[i].spec;
        let c = &self.ctrs[i];
        let shim_spec = ShimSpec {
            argv,
            env: env.clone(),
            workdir: spec.working_dir.clone().map(PathBuf::from),
            netns: sb.netns.clone(),
            hostname: Some(hostname(pod)),
            binds,
            log: c.log_path(c.restart_count),
            dir: c.dir.clone(),
            oci: None,
            stdin: spec.stdin == Some(true),
            stdin_once: spec.stdin_once == Some(true),
            tty: spec.tty == Some(true),
        };
        Some((shim_spec, env))
    }

    /// A container from its image: the image ensured (pulled per imagePullPolicy), its OCI
    /// bundle written, the shim to run it under the OCI runtime.
    pub(super) fn image_spec(
        &mut self,
        i: usize,
        pod: &Pod,
        sb: &Sandbox,
        env: Vec<(String, String)>,
    ) -> Option<(ShimSpec, Vec<(String, String)>)> {
        let spec = self.ctrs[i].spec.clone();
        let image_name = spec.image.clone().unwrap_or_default();
        let Some(puller) = self
            .shared
            .images
            .clone()
            .filter(|_| container::available())
        else {
            let msg = format!(
                "this node runs containers from images with {} and an image store, and has {}: use runtimeClassName: {} to run the container's command as a process",
                container::RUNC,
                if container::available() { "no image store" } else { "no runc" },
                svcnet_cluster::runtime_class::PROCESS
            );
            self.fail(pod, i, "CreateContainerError", msg, BACKOFF_MAX);
            return None;
        };
        let mut events = Vec::new();
        let (keyring, missing) = crate::agent::images::pull_keyring(pod, &*self.shared);
        // Once per attempt, not on every look at a running pull.
        if let Some(message) = missing.filter(|_| !self.ctrs[i].image.pulling()) {
            let reason = "FailedToRetrieveImagePullSecret";
            let recorder = &self.shared.recorder;
            recorder.event_on(pod, None, "Warning", reason, message);
        }
        let step = self.ctrs[i].image.ensure(
            &puller,
            &image_name,
            spec.image_pull_policy.as_deref(),
            keyring,
            &mut events,
        );
        for e in events {
            self.event(pod, i, e.warning, e.reason, e.message);
        }
        let image = match step {
            Step::Ready(image) => image,
            Step::Pulling => {
                self.ctrs[i].run = Run::Waiting {
                    reason: "ContainerCreating".into(),
                    message: None,
                };
                self.ctrs[i].next_start = None;
                return None;
            }
            Step::Waiting {
                reason,
                message,
                retry,
            } => {
                let c = &mut self.ctrs[i];
                c.run = Run::Waiting {
                    reason: reason.into(),
                    message: Some(message),
                };
                c.next_start = Some(retry);
                return None;
            }
        };
        let normalised = svcnet_images::Reference::parse_docker_ref(&image_name)
            .map(|r| r.to_string())
            .unwrap_or_else(|_| image_name.clone());
        self.ctrs[i].image_ref = Some((normalised, image.image_ref()));
        // Published as in use (meta.json first: the node's own collections read it) before the
        // container exists; a collection that removed it meanwhile means ensuring it again.
        self.ctrs[i].save();
        if !crate::agent::image_gc::add_ref(&self.shared, puller.store(), &image.id) {
            self.ctrs[i].run = Run::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            };
            self.ctrs[i].next_start = None;
            return None;
        }

        let handle = OciHandle::new(&self.shared.cfg.data_dir, &self.uid, &spec.name);
        let (dir, restart) = (self.ctrs[i].dir.clone(), self.ctrs[i].restart_count);
        let host = hostname(pod);
        let expand = |v: &Option<Vec<String>>| -> Vec<String> {
            v.iter()
                .flatten()
                .map(|a| crate::envvars::expand(a, &env))
                .collect()
        };
        let pod_dir = self.dir.clone();
        // The pod's shared UTS and IPC namespaces (its pause process), and its PID namespace
        // with shareProcessNamespace.
        let share_pid = pod.spec.as_ref().and_then(|s| s.share_process_namespace) == Some(true);
        let pause = match container::pause::running(&pod_dir) {
            Some(pid) => pid,
            None => match container::pause::start(
                &self.shared.cfg.exe,
                &sb.netns,
                &host,
                &pod_dir,
                share_pid,
            ) {
                Ok(pid) => pid,
                Err(e) => {
                    let msg = format!("failed to start the pod's namespace holder: {e}");
                    self.fail(pod, i, "CreateContainerError", msg, BACKOFF_START);
                    return None;
                }
            },
        };
        let volumes = match crate::agent::volumes::mounts(pod, &spec, &pod_dir, &*self.shared) {
            Ok(v) => v,
            Err(msg) => {
                self.event(pod, i, true, "FailedMount", msg.clone());
                self.wait(i, "ContainerCreating", msg, BACKOFF_START);
                return None;
            }
        };
        let target_pid = self.target_pid_namespace(i);
        let created = (|| -> Result<OciRun, String> {
            let args =
                oci_spec::process_args(&expand(&spec.command), &expand(&spec.args), &image.config)?;
            let sc = spec.security_context.clone().unwrap_or_default();
            let psc = pod
                .spec
                .as_ref()
                .and_then(|s| s.security_context.clone())
                .unwrap_or_default();
            let user = oci_spec::resolve_user(
                image.config.user.as_deref(),
                sc.run_as_user.or(psc.run_as_user),
                sc.run_as_group.or(psc.run_as_group),
                &image.layers,
            )?;
            let caps = sc.capabilities.clone().unwrap_or_default();
            let overlay = Overlay::for_container(&dir, &image.layers);
            let input = oci_spec::SpecInput {
                args,
                env: oci_spec::environment(
                    &host,
                    image.config.env.as_deref().unwrap_or_default(),
                    &env,
                ),
                cwd: spec
                    .working_dir
                    .clone()
                    .filter(|w| !w.is_empty())
                    .or_else(|| image.config.working_dir.clone().filter(|w| !w.is_empty()))
                    .unwrap_or_else(|| "/".into()),
                user,
                hostname: host.clone(),
                uts_path: Some(container::pause::namespace_path(pause, "uts")),
                ipc_path: Some(container::pause::namespace_path(pause, "ipc")),
                pid_path: target_pid.or_else(|| {
                    share_pid
                        .then(|| container::pause::namespace_path(pause, container::pause::PID_NS))
                }),
                netns_path: svcnet_netns::NetNs::open(&sb.netns)
                    .map(|n| n.path())
                    .map_err(|e| e.to_string())?,
                rootfs: overlay.target.clone(),
                binds: layout::etc_binds(&sb.dir),
                volumes,
                cgroups_path: container::cgroups::ContainerCgroup::runtime_path(&handle.id),
                privileged: sc.privileged == Some(true),
                cap_add: caps.add.unwrap_or_default(),
                cap_drop: caps.drop.unwrap_or_default(),
                // On the parent cgroup, by the shim (container::cgroups).
                limits: Default::default(),
                terminal: spec.tty == Some(true),
            };
            let config = oci_spec::build(&input).map_err(|e| e.to_string())?;
            let bundle = dir.join("bundle");
            std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
            config
                .save(bundle.join("config.json"))
                .map_err(|e| e.to_string())?;
            overlay.prepare().map_err(|e| e.to_string())?;
            handle.save(&dir).map_err(|e| e.to_string())?;
            Ok(OciRun {
                handle: handle.clone(),
                bundle,
                rootfs: overlay,
                limits: limits(&spec),
            })
        })();
        let oci = match created {
            Ok(oci) => oci,
            Err(e) => {
                let msg = format!("failed to generate container {:?} spec: {e}", handle.id);
                self.fail(pod, i, "CreateContainerError", msg, BACKOFF_START);
                return None;
            }
        };
        let shim_spec = ShimSpec {
            argv: Vec::new(),
            env: Vec::new(),
            workdir: None,
            netns: sb.netns.clone(),
            hostname: Some(host),
            binds: Vec::new(),
            log: layout::container_log(&dir, restart),
            dir,
            oci: Some(oci),
            stdin: spec.stdin == Some(true),
            stdin_once: spec.stdin_once == Some(true),
            tty: spec.tty == Some(true),
        };
        Some((shim_spec, env))
    }
}

/// `resources.limits` as the cgroup takes them: memory in bytes; cpu as a CFS quota per
/// 100 ms period (the kubelet's `milliCPUToQuota`, at least 1 ms).
fn limits(c: &Container) -> oci_spec::Limits {
    let get = |k: &str| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(k))
            .map(|q| q.0.clone())
    };
    oci_spec::Limits {
        memory_bytes: get("memory").and_then(|q| quantity(&q)).map(|v| v as i64),
        cpu_quota: get("cpu")
            .and_then(|q| quantity(&q))
            .map(|cores| ((cores * 100_000.0).round() as i64).max(1000)),
    }
}

/// A Kubernetes quantity (`128Mi`, `1G`, `500m`, `2`) as a number.
fn quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some(n * mult)
}
