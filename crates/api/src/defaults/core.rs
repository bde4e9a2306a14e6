//! Core defaulting: mirrors `pkg/apis/core/v1/defaults.go` and the generated defaulters
//! (`zz_generated.defaults.go`) for Pod, PodSpec/PodTemplateSpec, Container, Probe, Volume,
//! Node, Namespace, Endpoints and ReplicationController.
//!
//! [`default_pod_spec`] is what every embedded pod template gets (Deployments, ReplicaSets);
//! [`default_pod`] adds the Pod-only defaults (`enableServiceLinks`, requests from limits, host
//! ports under `hostNetwork`).

use k8s_openapi::api::core::v1::{
    Container, Endpoints, HTTPGetAction, Namespace, NamespaceStatus, Node, Pod, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ReplicationController, Secret, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// `v1.DefaultTerminationGracePeriodSeconds`
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// `v1.DefaultSchedulerName`
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// `v1.TerminationMessagePathDefault`
pub const TERMINATION_MESSAGE_PATH_DEFAULT: &str = "/dev/termination-log";
/// `0644`, the default mode of secret, configMap, downwardAPI and projected volumes.
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;
/// `kubernetes.io/metadata.name`, the label every Namespace carries.
pub const LABEL_METADATA_NAME: &str = "kubernetes.io/metadata.name";

fn empty(v: &Option<String>) -> bool {
    v.as_deref().unwrap_or("").is_empty()
}

fn set_if_empty(v: &mut Option<String>, default: &str) {
    if empty(v) {
        *v = Some(default.to_string());
    }
}

/// The tag `parsers.ParseImageName` finds: `latest` when there is neither tag nor digest.
pub fn image_tag(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag.to_string(),
        None if digest.is_some() => String::new(),
        None => "latest".to_string(),
    }
}

/// What `SetDefaults_Container` and `SetDefaults_EphemeralContainer` share (the two are
/// different types): `imagePullPolicy` from the image's tag (`Always` for `latest`), the
/// termination message path and policy.
fn default_image_and_termination_message(
    image: Option<&str>,
    image_pull_policy: &mut Option<String>,
    termination_message_path: &mut Option<String>,
    termination_message_policy: &mut Option<String>,
) {
    if empty(image_pull_policy) {
        let tag = image_tag(image.unwrap_or(""));
        *image_pull_policy = Some(
            if tag == "latest" {
                "Always"
            } else {
                "IfNotPresent"
            }
            .into(),
        );
    }
    set_if_empty(termination_message_path, TERMINATION_MESSAGE_PATH_DEFAULT);
    set_if_empty(termination_message_policy, "File");
}

/// `SetDefaults_Container` and the generated defaults below it.
pub fn default_container(c: &mut Container) {
    default_image_and_termination_message(
        c.image.as_deref(),
        &mut c.image_pull_policy,
        &mut c.termination_message_path,
        &mut c.termination_message_policy,
    );
    for p in c.ports.iter_mut().flatten() {
        set_if_empty(&mut p.protocol, "TCP");
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(fr) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            set_if_empty(&mut fr.api_version, "v1");
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(l) = &mut c.lifecycle {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            if let Some(g) = &mut h.http_get {
                default_http_get(g);
            }
        }
    }
}

fn default_http_get(g: &mut HTTPGetAction) {
    set_if_empty(&mut g.path, "/");
    set_if_empty(&mut g.scheme, "HTTP");
}

/// `SetDefaults_Probe` (timeout 1s, period 10s, success 1, failure 3) and its handler's defaults.
pub fn default_probe(p: &mut Probe) {
    for (v, d) in [
        (&mut p.timeout_seconds, 1),
        (&mut p.period_seconds, 10),
        (&mut p.success_threshold, 1),
        (&mut p.failure_threshold, 3),
    ] {
        if v.unwrap_or(0) == 0 {
            *v = Some(d);
        }
    }
    if let Some(g) = &mut p.http_get {
        default_http_get(g);
    }
    if let Some(g) = &mut p.grpc {
        if g.service.is_none() {
            g.service = Some(String::new());
        }
    }
}

/// `SetDefaults_Volume`: a volume without a source is an `emptyDir`; sources get their default
/// file modes.
pub fn default_volume(v: &mut Volume) {
    let has_source = serde_json::to_value(&*v)
        .ok()
        .and_then(|j| j.as_object().map(|o| o.keys().any(|k| k != "name")))
        .unwrap_or(false);
    if !has_source {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = &mut v.secret {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(c) = &mut v.config_map {
        c.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(d) = &mut v.downward_api {
        d.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for item in d.items.iter_mut().flatten() {
            if let Some(fr) = &mut item.field_ref {
                set_if_empty(&mut fr.api_version, "v1");
            }
        }
    }
    if let Some(p) = &mut v.projected {
        p.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for src in p.sources.iter_mut().flatten() {
            if let Some(t) = &mut src.service_account_token {
                t.expiration_seconds.get_or_insert(3600);
            }
        }
    }
    if let Some(h) = &mut v.host_path {
        if h.type_.is_none() {
            h.type_ = Some(String::new());
        }
    }
}

/// `SetDefaults_PodSpec` plus the generated defaults of its containers and volumes: what every
/// pod template gets (`dnsPolicy: ClusterFirst`, `restartPolicy: Always`, `securityContext: {}`,
/// `terminationGracePeriodSeconds: 30`, `schedulerName: default-scheduler`).
pub fn default_pod_spec(spec: &mut PodSpec) {
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.restart_policy, "Always");
    if spec.security_context.is_none() {
        spec.security_context = Some(PodSecurityContext::default());
    }
    if spec.termination_grace_period_seconds.is_none() {
        spec.termination_grace_period_seconds = Some(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    }
    set_if_empty(&mut spec.scheduler_name, DEFAULT_SCHEDULER_NAME);
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        default_container(c);
    }
    for e in spec.ephemeral_containers.iter_mut().flatten() {
        default_image_and_termination_message(
            e.image.as_deref(),
            &mut e.image_pull_policy,
            &mut e.termination_message_path,
            &mut e.termination_message_policy,
        );
        // The generated defaulters reach an ephemeral container's ports too (which validation
        // then forbids, but with their protocol set).
        for p in e.ports.iter_mut().flatten() {
            set_if_empty(&mut p.protocol, "TCP");
        }
    }
}

/// The defaults of a pod template (Deployment, ReplicaSet): [`default_pod_spec`].
pub fn default_pod_template_spec(t: &mut PodTemplateSpec) {
    default_pod_spec(t.spec.get_or_insert_with(Default::default));
}

/// `SetDefaults_ReplicationController`: the selector and the RC's own labels default to the
/// template's labels (when those are set and they are empty), `replicas: 1`; the template gets
/// the pod template defaults (it is a pointer in v1: an absent one stays absent).
pub fn default_replication_controller(rc: &mut ReplicationController) {
    let spec = rc.spec.get_or_insert_with(Default::default);
    let labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    if let Some(labels) = labels {
        if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
            spec.selector = Some(labels.clone());
        }
        if rc.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            rc.metadata.labels = Some(labels);
        }
    }
    spec.replicas.get_or_insert(1);
    if let Some(t) = &mut spec.template {
        default_pod_template_spec(t);
    }
}

fn requests_from_limits(c: &mut Container) {
    let Some(res) = &mut c.resources else { return };
    let Some(limits) = res.limits.clone() else {
        return;
    };
    let requests = res.requests.get_or_insert_with(Default::default);
    for (k, v) in limits {
        requests.entry(k).or_insert_with(|| Quantity(v.0.clone()));
    }
}

/// `SetDefaults_Pod` on top of [`default_pod_spec`]: requests default to limits,
/// `enableServiceLinks: true`, and with `hostNetwork` every container port is also a host port.
pub fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    default_pod_spec(spec);
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        requests_from_limits(c);
    }
    if spec.enable_service_links.is_none() {
        spec.enable_service_links = Some(true);
    }
    if spec.host_network == Some(true) {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            for p in c.ports.iter_mut().flatten() {
                if p.host_port.unwrap_or(0) == 0 {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }
}

/// Node defaults: `SetDefaults_NodeStatus` (allocatable = capacity when unset), and
/// `spec.podCIDR`/`spec.podCIDRs` kept in sync as the v1 conversion does.
pub fn default_node(node: &mut Node) {
    if let Some(spec) = &mut node.spec {
        let cidrs_empty = spec.pod_cidrs.as_deref().unwrap_or_default().is_empty();
        if cidrs_empty && !empty(&spec.pod_cidr) {
            spec.pod_cidrs = Some(vec![spec.pod_cidr.clone().unwrap_or_default()]);
        } else if !cidrs_empty && empty(&spec.pod_cidr) {
            spec.pod_cidr = spec.pod_cidrs.as_ref().and_then(|c| c.first().cloned());
        }
    }
    if let Some(status) = &mut node.status {
        if status.allocatable.is_none() && status.capacity.is_some() {
            status.allocatable = status.capacity.clone();
        }
    }
}

/// `SetDefaults_Secret` (`type: Opaque`) and what the v1 → internal conversion
/// (`Convert_v1_Secret_To_core_Secret`) does with `stringData`: each entry is written into
/// `data` (over a `data` entry of the same key) and `stringData` is dropped, so it is never
/// stored or returned. Runs on every create and update, as conversion does on every decode.
pub fn default_secret(secret: &mut Secret) {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (k, v) in string_data {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    set_if_empty(&mut secret.type_, "Opaque");
}

/// `SetDefaults_Namespace` (the `kubernetes.io/metadata.name` label) and
/// `SetDefaults_NamespaceStatus` (`phase: Active`).
pub fn default_namespace(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(LABEL_METADATA_NAME.to_string(), name);
    }
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    set_if_empty(&mut status.phase, "Active");
}

/// `SetDefaults_Endpoints`: port `protocol: TCP`.
pub fn default_endpoints(ep: &mut Endpoints) {
    for ss in ep.subsets.iter_mut().flatten() {
        for p in ss.ports.iter_mut().flatten() {
            set_if_empty(&mut p.protocol, "TCP");
        }
    }
}

#[cfg(test)]
mod tests;
