//! Pod and PodSpec validation: mirrors `ValidatePodCreate`, `ValidatePodUpdate`,
//! `ValidatePodStatusUpdate`, `ValidatePodSpec`, `ValidatePodTemplateSpec` and the container,
//! volume, probe, env, port, toleration and DNS helpers of
//! `pkg/apis/core/validation/validation.go` (Kubernetes 1.32, default feature gates).
//!
//! A solid subset: everything a user of Deployments/Pods/Services meets (names, images, ports,
//! env, volume mounts, probes, lifecycle, policies, host ports, tolerations, DNS config, pod
//! security context ranges, immutability on update). Left out: resource quantities
//! (requests/limits), affinity, topology spread, Windows options, sysctls, seccomp/AppArmor,
//! resource claims, and per-source validation of exotic volume types.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Lifecycle, LifecycleHandler, Pod, PodSpec, PodTemplateSpec,
    Probe, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::gofmt;
use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{
    inclusive_range_error, is_config_map_key, is_http_header_name, is_relaxed_env_var_name,
    is_valid_group_id, is_valid_label_value, is_valid_port_name, is_valid_port_num,
    is_valid_user_id, name_is_dns_subdomain, validate_annotations, validate_dns1123_label,
    validate_dns1123_subdomain, validate_ip, validate_labels, validate_nonnegative,
    validate_port_num_or_name, validate_qualified_name,
};
use super::s;
use crate::field::{BadValue, Error, ErrorList, Path};

/// `PodValidationOptions`, reduced to what changes messages here.
#[derive(Clone, Copy, Debug, Default)]
pub struct PodValidationOptions {
    /// The spec belongs to a Pod (not a template in a Deployment or ReplicaSet).
    pub resource_is_pod: bool,
}

const SUPPORTED_PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const SUPPORTED_PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const SUPPORTED_HTTP_SCHEMES: &[&str] = &["HTTP", "HTTPS"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
/// Fields `ConvertDownwardAPIFieldLabel` accepts for v1 (before the per-use allow-list).
const DOWNWARD_API_FIELD_LABELS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];
const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// `must be one of ...` helper: Required for empty, NotSupported for unknown.
fn enum_value(value: &str, path: &Path, valid: &[&str]) -> ErrorList {
    if value.is_empty() {
        vec![Error::required(path, "")]
    } else if !valid.contains(&value) {
        vec![Error::not_supported(path, value, valid)]
    } else {
        Vec::new()
    }
}

/// `ValidatePodCreate`
pub fn validate_create(pod: &Pod) -> ErrorList {
    let mut errs = validate_pod_metadata_and_spec(pod);
    let spec_path = Path::new("spec");
    let spec = pod.spec.clone().unwrap_or_default();
    if !spec
        .ephemeral_containers
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        errs.push(Error::forbidden(
            &spec_path.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    if !s(&spec.node_name).is_empty()
        && !spec
            .scheduling_gates
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    {
        errs.push(Error::forbidden(
            &spec_path.child("nodeName"),
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    errs
}

fn validate_pod_metadata_and_spec(pod: &Pod) -> ErrorList {
    let meta_path = Path::new("metadata");
    let spec_path = Path::new("spec");
    let mut errs = validate_object_meta(&pod.metadata, true, name_is_dns_subdomain, &meta_path);
    errs.extend(validate_pod_specific_annotations(
        pod.metadata.annotations.as_ref(),
        &meta_path.child("annotations"),
    ));
    let spec = pod.spec.clone().unwrap_or_default();
    errs.extend(validate_pod_spec(
        &spec,
        &spec_path,
        PodValidationOptions {
            resource_is_pod: true,
        },
    ));
    for (field, list) in [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ] {
        for (i, c) in list.into_iter().flatten().enumerate() {
            let image = s(&c.image);
            if image.len() != image.trim().len() {
                errs.push(Error::invalid(
                    &spec_path.child(field).index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    errs
}

fn validate_pod_specific_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(cost) = annotations.and_then(|a| a.get(POD_DELETION_COST)) {
        if cost.parse::<i32>().is_err() {
            errs.push(Error::invalid(
                &path.key(POD_DELETION_COST),
                cost,
                "must be a 32bit integer",
            ));
        }
    }
    errs
}

/// `ValidatePodTemplateSpec` (the template of a Deployment/ReplicaSet; `path` is
/// `spec.template`).
pub fn validate_pod_template_spec(template: &PodTemplateSpec, path: &Path) -> ErrorList {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut errs = validate_labels(meta.labels.as_ref(), &path.child("labels"));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_pod_specific_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    let spec = template.spec.clone().unwrap_or_default();
    errs.extend(validate_pod_spec(
        &spec,
        &path.child("spec"),
        PodValidationOptions::default(),
    ));
    if !spec
        .ephemeral_containers
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        errs.push(Error::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// `ValidatePodSpec`
pub fn validate_pod_spec(spec: &PodSpec, path: &Path, opts: PodValidationOptions) -> ErrorList {
    let mut errs = Vec::new();
    if spec.termination_grace_period_seconds.is_none() {
        errs.push(Error::required(
            &path.child("terminationGracePeriodSeconds"),
            "",
        ));
    }
    let grace = spec.termination_grace_period_seconds;
    let (volumes, vol_errs) = validate_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &path.child("volumes"),
    );
    errs.extend(vol_errs);
    errs.extend(validate_containers(
        &spec.containers,
        &volumes,
        grace,
        &path.child("containers"),
    ));
    errs.extend(validate_init_containers(
        spec.init_containers.as_deref().unwrap_or_default(),
        &spec.containers,
        &volumes,
        grace,
        &path.child("initContainers"),
    ));
    errs.extend(validate_host_network_deps(spec, path, opts));
    errs.extend(enum_value(
        s(&spec.restart_policy),
        &path.child("restartPolicy"),
        RESTART_POLICIES,
    ));
    errs.extend(enum_value(
        s(&spec.dns_policy),
        &path.child("dnsPolicy"),
        DNS_POLICIES,
    ));
    errs.extend(validate_labels(
        spec.node_selector.as_ref(),
        &path.child("nodeSelector"),
    ));
    errs.extend(validate_pod_security_context(
        spec,
        &path.child("securityContext"),
    ));
    errs.extend(validate_dns_config(spec, &path.child("dnsConfig")));
    for (i, g) in spec.readiness_gates.iter().flatten().enumerate() {
        errs.extend(validate_qualified_name(
            &g.condition_type,
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    let mut gates = BTreeSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = path.child("schedulingGates").index(i);
        errs.extend(validate_qualified_name(&g.name, &p));
        if !gates.insert(g.name.clone()) {
            errs.push(Error::duplicate(&p, g.name.as_str()));
        }
    }
    if spec.host_users == Some(false) {
        let forbidden = "when `pod.Spec.HostUsers` is false";
        if spec.host_network == Some(true) {
            errs.push(Error::forbidden(&path.child("hostNetwork"), forbidden));
        }
        if spec.host_pid == Some(true) {
            errs.push(Error::forbidden(&path.child("HostPID"), forbidden));
        }
        if spec.host_ipc == Some(true) {
            errs.push(Error::forbidden(&path.child("HostIPC"), forbidden));
        }
    }
    for (field, value) in [
        ("serviceAccountName", s(&spec.service_account_name)),
        ("nodeName", s(&spec.node_name)),
    ] {
        if !value.is_empty() {
            for m in name_is_dns_subdomain(value, false) {
                errs.push(Error::invalid(&path.child(field), value, m));
            }
        }
    }
    if let Some(v) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&v) {
            errs.push(Error::invalid(
                &path.child("activeDeadlineSeconds"),
                v,
                inclusive_range_error(1, i32::MAX.into()),
            ));
        }
    }
    for (field, value) in [
        ("hostname", s(&spec.hostname)),
        ("subdomain", s(&spec.subdomain)),
    ] {
        if !value.is_empty() {
            errs.extend(validate_dns1123_label(value, &path.child(field)));
        }
    }
    errs.extend(validate_tolerations(spec, &path.child("tolerations")));
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let p = path.child("hostAliases").index(i);
        errs.extend(validate_ip(&alias.ip, &p.child("ip")));
        for (j, h) in alias.hostnames.iter().flatten().enumerate() {
            errs.extend(validate_dns1123_subdomain(
                h,
                &p.child("hostnames").index(j),
            ));
        }
    }
    let pcn = s(&spec.priority_class_name);
    if !pcn.is_empty() {
        for m in name_is_dns_subdomain(pcn, false) {
            errs.push(Error::invalid(&path.child("priorityClassName"), pcn, m));
        }
    }
    if let Some(rc) = &spec.runtime_class_name {
        for m in name_is_dns_subdomain(rc, false) {
            errs.push(Error::invalid(&path.child("runtimeClassName"), rc, m));
        }
    }
    if let Some(pp) = &spec.preemption_policy {
        errs.extend(enum_value(
            pp,
            &path.child("preemptionPolicy"),
            &["PreemptLowerPriority", "Never"],
        ));
    }
    if let Some(os) = &spec.os {
        if os.name.is_empty() {
            errs.push(Error::required(
                &path.child("os").child("name"),
                "cannot be empty",
            ));
        } else if !["linux", "windows"].contains(&os.name.as_str()) {
            errs.push(Error::not_supported(
                &path.child("os"),
                os.name.as_str(),
                &["linux", "windows"],
            ));
        }
    }
    errs
}

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
fn validate_volumes(volumes: &[Volume], path: &Path) -> (BTreeSet<String>, ErrorList) {
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

/// `validateContainers`
fn validate_containers(
    containers: &[Container],
    volumes: &BTreeSet<String>,
    grace: Option<i64>,
    path: &Path,
) -> ErrorList {
    if containers.is_empty() {
        return vec![Error::required(path, "")];
    }
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(c, volumes, &p));
        if !names.insert(c.name.clone()) {
            errs.push(Error::duplicate(&p.child("name"), c.name.as_str()));
        }
        if let Some(l) = &c.lifecycle {
            errs.extend(validate_lifecycle(l, grace, &p.child("lifecycle")));
        }
        errs.extend(validate_probe_kind(
            c.liveness_probe.as_ref(),
            ProbeKind::Liveness,
            &p.child("livenessProbe"),
        ));
        errs.extend(validate_probe_kind(
            c.readiness_probe.as_ref(),
            ProbeKind::Readiness,
            &p.child("readinessProbe"),
        ));
        errs.extend(validate_probe_kind(
            c.startup_probe.as_ref(),
            ProbeKind::Startup,
            &p.child("startupProbe"),
        ));
        if c.restart_policy.is_some() {
            errs.push(Error::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs.extend(check_host_port_conflicts(containers, 0, path));
    errs
}

/// `validateInitContainers`
fn validate_init_containers(
    containers: &[Container],
    regular: &[Container],
    volumes: &BTreeSet<String>,
    grace: Option<i64>,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let mut names: BTreeSet<String> = regular.iter().map(|c| c.name.clone()).collect();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(c, volumes, &p));
        let mut restart_always = false;
        if let Some(rp) = &c.restart_policy {
            if rp != "Always" {
                errs.push(Error::not_supported(
                    &p.child("restartPolicy"),
                    rp.as_str(),
                    &["Always"],
                ));
            }
            restart_always = rp == "Always";
        }
        if names.contains(&c.name) {
            errs.push(Error::duplicate(&p.child("name"), c.name.as_str()));
        } else if !c.name.is_empty() {
            names.insert(c.name.clone());
        }
        errs.extend(check_host_port_conflicts(std::slice::from_ref(c), i, path));
        if restart_always {
            if let Some(l) = &c.lifecycle {
                errs.extend(validate_lifecycle(l, grace, &p.child("lifecycle")));
            }
            errs.extend(validate_probe_kind(
                c.liveness_probe.as_ref(),
                ProbeKind::Liveness,
                &p.child("livenessProbe"),
            ));
            errs.extend(validate_probe_kind(
                c.readiness_probe.as_ref(),
                ProbeKind::Readiness,
                &p.child("readinessProbe"),
            ));
            errs.extend(validate_probe_kind(
                c.startup_probe.as_ref(),
                ProbeKind::Startup,
                &p.child("startupProbe"),
            ));
        } else {
            let forbidden = "may not be set for init containers without restartPolicy=Always";
            for (set, field) in [
                (c.lifecycle.is_some(), "lifecycle"),
                (c.liveness_probe.is_some(), "livenessProbe"),
                (c.readiness_probe.is_some(), "readinessProbe"),
                (c.startup_probe.is_some(), "startupProbe"),
            ] {
                if set {
                    errs.push(Error::forbidden(&p.child(field), forbidden));
                }
            }
        }
    }
    errs
}

/// `checkHostPortConflicts` (`first` is the index of `containers[0]` in the full list).
fn check_host_port_conflicts(containers: &[Container], first: usize, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let hp = port.host_port.unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{}", s(&port.protocol), s(&port.host_ip), hp);
            if !seen.insert(key.clone()) {
                errs.push(Error::duplicate(
                    &path
                        .index(first + ci)
                        .child("ports")
                        .index(pi)
                        .child("hostPort"),
                    key,
                ));
            }
        }
    }
    errs
}

/// `validateContainerCommon`
fn validate_container_common(c: &Container, volumes: &BTreeSet<String>, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let name_path = path.child("name");
    if c.name.is_empty() {
        errs.push(Error::required(&name_path, ""));
    } else {
        errs.extend(validate_dns1123_label(&c.name, &name_path));
    }
    if s(&c.image).is_empty() {
        errs.push(Error::required(&path.child("image"), ""));
    }
    errs.extend(enum_value(
        s(&c.termination_message_policy),
        &path.child("terminationMessagePolicy"),
        TERMINATION_MESSAGE_POLICIES,
    ));
    errs.extend(validate_container_ports(
        c.ports.as_deref().unwrap_or_default(),
        &path.child("ports"),
    ));
    errs.extend(validate_env(
        c.env.as_deref().unwrap_or_default(),
        &path.child("env"),
    ));
    errs.extend(validate_env_from(c, &path.child("envFrom")));
    errs.extend(validate_volume_mounts(
        c,
        volumes,
        &path.child("volumeMounts"),
    ));
    errs.extend(enum_value(
        s(&c.image_pull_policy),
        &path.child("imagePullPolicy"),
        SUPPORTED_PULL_POLICIES,
    ));
    if let Some(sc) = &c.security_context {
        let p = path.child("securityContext");
        if let Some(uid) = sc.run_as_user {
            for m in is_valid_user_id(uid) {
                errs.push(Error::invalid(&p.child("runAsUser"), uid, m));
            }
        }
        if let Some(gid) = sc.run_as_group {
            for m in is_valid_group_id(gid) {
                errs.push(Error::invalid(&p.child("runAsGroup"), gid, m));
            }
        }
        if let Some(pm) = &sc.proc_mount {
            if pm != "Default" && pm != "Unmasked" {
                errs.push(Error::not_supported(
                    &p.child("procMount"),
                    pm.as_str(),
                    &["Default", "Unmasked"],
                ));
            }
        }
    }
    errs
}

/// `validateContainerPorts`
fn validate_container_ports(ports: &[ContainerPort], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = s(&port.name);
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(Error::invalid(&p.child("name"), name, m));
                }
            } else if !names.insert(name.to_string()) {
                errs.push(Error::duplicate(&p.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(Error::required(&p.child("containerPort"), ""));
        } else {
            for m in is_valid_port_num(port.container_port.into()) {
                errs.push(Error::invalid(
                    &p.child("containerPort"),
                    port.container_port,
                    m,
                ));
            }
        }
        let hp = port.host_port.unwrap_or(0);
        if hp != 0 {
            for m in is_valid_port_num(hp.into()) {
                errs.push(Error::invalid(&p.child("hostPort"), hp, m));
            }
        }
        errs.extend(enum_value(
            s(&port.protocol),
            &p.child("protocol"),
            SUPPORTED_PORT_PROTOCOLS,
        ));
    }
    errs
}

/// `ValidateEnv` (with `RelaxedEnvironmentVariableValidation`, beta and on since 1.32).
fn validate_env(vars: &[EnvVar], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        if ev.name.is_empty() {
            errs.push(Error::required(&p.child("name"), ""));
        } else {
            for m in is_relaxed_env_var_name(&ev.name) {
                errs.push(Error::invalid(&p.child("name"), ev.name.as_str(), m));
            }
        }
        errs.extend(validate_env_var_value_from(ev, &p.child("valueFrom")));
    }
    errs
}

fn validate_env_var_value_from(ev: &EnvVar, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let Some(from) = &ev.value_from else {
        return errs;
    };
    let mut num = 0;
    if let Some(fr) = &from.field_ref {
        num += 1;
        errs.extend(validate_object_field_selector(
            s(&fr.api_version),
            &fr.field_path,
            &path.child("fieldRef"),
        ));
    }
    if let Some(rf) = &from.resource_field_ref {
        num += 1;
        let p = path.child("resourceFieldRef");
        if rf.resource.is_empty() {
            errs.push(Error::required(&p.child("resource"), ""));
        } else if !RESOURCE_FIELD_PATHS.contains(&rf.resource.as_str())
            && !rf.resource.starts_with("requests.hugepages-")
            && !rf.resource.starts_with("limits.hugepages-")
        {
            errs.push(Error::not_supported(
                &p.child("resource"),
                rf.resource.as_str(),
                RESOURCE_FIELD_PATHS,
            ));
        }
    }
    if let Some(r) = &from.config_map_key_ref {
        num += 1;
        errs.extend(validate_key_selector(
            &r.name,
            &r.key,
            &path.child("configMapKeyRef"),
        ));
    }
    if let Some(r) = &from.secret_key_ref {
        num += 1;
        errs.extend(validate_key_selector(
            &r.name,
            &r.key,
            &path.child("secretKeyRef"),
        ));
    }
    if num == 0 {
        errs.push(Error::invalid(
            path,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if !s(&ev.value).is_empty() {
        errs.push(Error::invalid(
            path,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if num > 1 {
        errs.push(Error::invalid(
            path,
            "",
            "may not have more than one field specified at a time",
        ));
    }
    errs
}

fn validate_key_selector(name: &str, key: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for m in name_is_dns_subdomain(name, false) {
        errs.push(Error::invalid(&path.child("name"), name, m));
    }
    if key.is_empty() {
        errs.push(Error::required(&path.child("key"), ""));
    } else {
        for m in is_config_map_key(key) {
            errs.push(Error::invalid(&path.child("key"), key, m));
        }
    }
    errs
}

/// `validateObjectFieldSelector` for env vars (defaulting sets `apiVersion: v1`).
fn validate_object_field_selector(api_version: &str, field_path: &str, path: &Path) -> ErrorList {
    if api_version.is_empty() {
        return vec![Error::required(&path.child("apiVersion"), "")];
    }
    if field_path.is_empty() {
        return vec![Error::required(&path.child("fieldPath"), "")];
    }
    let (base, subscript) = match field_path.split_once('[') {
        Some((b, rest)) if rest.ends_with(']') => (b, Some(&rest[..rest.len() - 1])),
        _ => (field_path, None),
    };
    if api_version != "v1" {
        return vec![Error::invalid(
            &path.child("fieldPath"),
            field_path,
            format!("error converting fieldPath: unsupported pod version: {api_version}"),
        )];
    }
    if !DOWNWARD_API_FIELD_LABELS.contains(&base)
        || (subscript.is_some() && !matches!(base, "metadata.annotations" | "metadata.labels"))
    {
        return vec![Error::invalid(
            &path.child("fieldPath"),
            field_path,
            format!("error converting fieldPath: field label not supported: {field_path}"),
        )];
    }
    if let Some(sub) = subscript {
        let key = sub.trim_matches('\'');
        return match base {
            "metadata.annotations" => validate_qualified_name(&key.to_lowercase(), path),
            _ => validate_qualified_name(key, path),
        };
    }
    if !ENV_FIELD_PATHS.contains(&base) {
        return vec![Error::not_supported(
            &path.child("fieldPath"),
            base,
            ENV_FIELD_PATHS,
        )];
    }
    Vec::new()
}

fn validate_env_from(c: &Container, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, ev) in c.env_from.iter().flatten().enumerate() {
        let p = path.index(i);
        let prefix = s(&ev.prefix);
        if !prefix.is_empty() {
            for m in is_relaxed_env_var_name(prefix) {
                errs.push(Error::invalid(&p.child("prefix"), prefix, m));
            }
        }
        let mut num = 0;
        for (set, field, name) in [
            (
                ev.config_map_ref.is_some(),
                "configMapRef",
                ev.config_map_ref.as_ref().map(|r| r.name.as_str()),
            ),
            (
                ev.secret_ref.is_some(),
                "secretRef",
                ev.secret_ref.as_ref().map(|r| r.name.as_str()),
            ),
        ] {
            if !set {
                continue;
            }
            num += 1;
            let name = name.unwrap_or("");
            let np = p.child(field).child("name");
            if name.is_empty() {
                errs.push(Error::required(&np, ""));
            } else {
                for m in name_is_dns_subdomain(name, true) {
                    errs.push(Error::invalid(&np, name, m));
                }
            }
        }
        if num == 0 {
            errs.push(Error::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if num > 1 {
            errs.push(Error::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
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
fn validate_volume_mounts(c: &Container, volumes: &BTreeSet<String>, path: &Path) -> ErrorList {
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

#[derive(Clone, Copy, PartialEq)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

fn validate_probe_kind(probe: Option<&Probe>, kind: ProbeKind, path: &Path) -> ErrorList {
    let Some(probe) = probe else {
        return Vec::new();
    };
    let mut errs = validate_probe(probe, path);
    match kind {
        ProbeKind::Liveness | ProbeKind::Startup => {
            let st = probe.success_threshold.unwrap_or(0);
            if st != 1 {
                errs.push(Error::invalid(
                    &path.child("successThreshold"),
                    st,
                    "must be 1",
                ));
            }
        }
        ProbeKind::Readiness => {
            if let Some(t) = probe.termination_grace_period_seconds {
                errs.push(Error::invalid(
                    &path.child("terminationGracePeriodSeconds"),
                    t,
                    "must not be set for readinessProbes",
                ));
            }
        }
    }
    errs
}

fn validate_probe(probe: &Probe, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut handlers: Vec<(&str, ErrorList)> = Vec::new();
    if let Some(e) = &probe.exec {
        let mut el = Vec::new();
        if e.command.as_deref().unwrap_or_default().is_empty() {
            el.push(Error::required(&path.child("exec").child("command"), ""));
        }
        handlers.push(("exec", el));
    }
    if let Some(h) = &probe.http_get {
        handlers.push((
            "httpGet",
            validate_http_get(
                s(&h.path),
                &h.port,
                s(&h.scheme),
                h.http_headers.as_deref().unwrap_or_default(),
                &path.child("httpGet"),
            ),
        ));
    }
    if let Some(t) = &probe.tcp_socket {
        handlers.push((
            "tcpSocket",
            validate_port_num_or_name(&t.port, &path.child("tcpSocket").child("port")),
        ));
    }
    if let Some(g) = &probe.grpc {
        handlers.push((
            "grpc",
            validate_port_num_or_name(&IntOrString::Int(g.port), &path.child("grpc").child("port")),
        ));
    }
    errs.extend(collect_handlers(handlers, path));
    for (field, v) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        errs.extend(validate_nonnegative(
            v.unwrap_or(0).into(),
            &path.child(field),
        ));
    }
    if let Some(t) = probe.termination_grace_period_seconds {
        if t <= 0 {
            errs.push(Error::invalid(
                &path.child("terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
    errs
}

/// `validateHandler`: exactly one handler; the later ones are "may not specify more than 1
/// handler type".
fn collect_handlers(handlers: Vec<(&str, ErrorList)>, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if handlers.is_empty() {
        errs.push(Error::required(path, "must specify a handler type"));
    }
    for (i, (name, el)) in handlers.into_iter().enumerate() {
        if i == 0 {
            errs.extend(el);
        } else {
            errs.push(Error::forbidden(
                &path.child(name),
                "may not specify more than 1 handler type",
            ));
        }
    }
    errs
}

fn validate_http_get(
    p: &str,
    port: &IntOrString,
    scheme: &str,
    headers: &[k8s_openapi::api::core::v1::HTTPHeader],
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    if p.is_empty() {
        errs.push(Error::required(&path.child("path"), ""));
    }
    errs.extend(validate_port_num_or_name(port, &path.child("port")));
    if !SUPPORTED_HTTP_SCHEMES.contains(&scheme) {
        errs.push(Error::not_supported(
            &path.child("scheme"),
            scheme,
            SUPPORTED_HTTP_SCHEMES,
        ));
    }
    for h in headers {
        for m in is_http_header_name(&h.name) {
            errs.push(Error::invalid(
                &path.child("httpHeaders"),
                h.name.as_str(),
                m,
            ));
        }
    }
    errs
}

fn validate_lifecycle(l: &Lifecycle, grace: Option<i64>, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (h, field) in [(&l.post_start, "postStart"), (&l.pre_stop, "preStop")] {
        if let Some(h) = h {
            errs.extend(validate_lifecycle_handler(h, grace, &path.child(field)));
        }
    }
    errs
}

fn validate_lifecycle_handler(h: &LifecycleHandler, grace: Option<i64>, path: &Path) -> ErrorList {
    let mut handlers: Vec<(&str, ErrorList)> = Vec::new();
    if let Some(e) = &h.exec {
        let mut el = Vec::new();
        if e.command.as_deref().unwrap_or_default().is_empty() {
            el.push(Error::required(&path.child("exec").child("command"), ""));
        }
        handlers.push(("exec", el));
    }
    if let Some(g) = &h.http_get {
        handlers.push((
            "httpGet",
            validate_http_get(
                s(&g.path),
                &g.port,
                s(&g.scheme),
                g.http_headers.as_deref().unwrap_or_default(),
                &path.child("httpGet"),
            ),
        ));
    }
    if let Some(t) = &h.tcp_socket {
        handlers.push((
            "tcpSocket",
            validate_port_num_or_name(&t.port, &path.child("tcpSocket").child("port")),
        ));
    }
    if let Some(sl) = &h.sleep {
        let mut el = Vec::new();
        if let Some(g) = grace {
            if sl.seconds <= 0 || sl.seconds > g {
                el.push(Error::invalid(
                    &path.child("sleep"),
                    sl.seconds,
                    format!("must be greater than 0 and less than terminationGracePeriodSeconds ({g}). Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep."),
                ));
            }
        }
        handlers.push(("sleep", el));
    }
    collect_handlers(handlers, path)
}

/// `validatePodHostNetworkDeps`
fn validate_host_network_deps(
    spec: &PodSpec,
    path: &Path,
    opts: PodValidationOptions,
) -> ErrorList {
    let mut errs = Vec::new();
    if spec.host_network != Some(true) {
        return errs;
    }
    for (i, c) in spec.containers.iter().enumerate() {
        for (j, port) in c.ports.iter().flatten().enumerate() {
            let hp = port.host_port.unwrap_or(0);
            if (opts.resource_is_pod || hp != 0) && hp != port.container_port {
                errs.push(Error::invalid(
                    &path
                        .child("containers")
                        .index(i)
                        .child("ports")
                        .index(j)
                        .child("hostPort"),
                    hp,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
    errs
}

fn validate_pod_security_context(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let Some(sc) = &spec.security_context else {
        return errs;
    };
    if let Some(g) = sc.fs_group {
        for m in is_valid_group_id(g) {
            errs.push(Error::invalid(&path.child("fsGroup"), g, m));
        }
    }
    if let Some(u) = sc.run_as_user {
        for m in is_valid_user_id(u) {
            errs.push(Error::invalid(&path.child("runAsUser"), u, m));
        }
    }
    if let Some(g) = sc.run_as_group {
        for m in is_valid_group_id(g) {
            errs.push(Error::invalid(&path.child("runAsGroup"), g, m));
        }
    }
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        for m in is_valid_group_id(*g) {
            errs.push(Error::invalid(
                &path.child("supplementalGroups").index(i),
                *g,
                m,
            ));
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errs.push(Error::invalid(
            &path.child("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    if let Some(p) = &sc.fs_group_change_policy {
        if p != "OnRootMismatch" && p != "Always" {
            errs.push(Error::not_supported(
                &path.child("fsGroupChangePolicy"),
                p.as_str(),
                &["Always", "OnRootMismatch"],
            ));
        }
    }
    errs
}

fn validate_dns_config(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if s(&spec.dns_policy) == "None" {
        let Some(cfg) = &spec.dns_config else {
            return vec![Error::required(
                path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )];
        };
        if cfg.nameservers.as_deref().unwrap_or_default().is_empty() {
            return vec![Error::required(
                &path.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            )];
        }
    }
    let Some(cfg) = &spec.dns_config else {
        return errs;
    };
    let nameservers = cfg.nameservers.as_deref().unwrap_or_default();
    if nameservers.len() > 3 {
        errs.push(Error::invalid(
            &path.child("nameservers"),
            gofmt::strings(nameservers),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        errs.extend(validate_ip(ns, &path.child("nameservers").index(i)));
    }
    let searches = cfg.searches.as_deref().unwrap_or_default();
    if searches.len() > 32 {
        errs.push(Error::invalid(
            &path.child("searches"),
            gofmt::strings(searches),
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        errs.push(Error::invalid(
            &path.child("searches"),
            gofmt::strings(searches),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        let search = search.strip_suffix('.').unwrap_or(search);
        errs.extend(validate_dns1123_subdomain(
            search,
            &path.child("searches").index(i),
        ));
    }
    for (i, o) in cfg.options.iter().flatten().enumerate() {
        if s(&o.name).is_empty() {
            errs.push(Error::required(
                &path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    errs
}

/// `ValidateTolerations`
fn validate_tolerations(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let p = path.index(i);
        let key = s(&t.key);
        let op = s(&t.operator);
        let effect = s(&t.effect);
        let value = s(&t.value);
        if !key.is_empty() {
            errs.extend(validate_qualified_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(Error::invalid(
                &p.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(Error::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(Error::invalid(&p.child("operator"), value, msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(Error::invalid(
                        &p.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            _ => errs.push(Error::not_supported(
                &p.child("operator"),
                op,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            errs.push(Error::not_supported(
                &p.child("effect"),
                effect,
                TAINT_EFFECTS,
            ));
        }
    }
    errs
}

/// The fields a Pod update may change (`updatablePodSpecFields`).
const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`: metadata, the full create rules, then only container images,
/// `activeDeadlineSeconds` (down), toleration additions and scheduling gate removals may change.
///
/// The forbidden-change message ends with a diff of the spec, as Kubernetes' does; Kubernetes'
/// own diff (`cmp.Diff`) is deliberately unstable, so only its first line is reproducible.
pub fn validate_update(new: &Pod, old: &Pod) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &meta_path);
    errs.extend(validate_pod_metadata_and_spec(new));
    let spec_path = Path::new("spec");
    let ns = new.spec.clone().unwrap_or_default();
    let os = old.spec.clone().unwrap_or_default();

    for (field, n, o) in [
        ("containers", &ns.containers, &os.containers),
        (
            "initContainers",
            &ns.init_containers.clone().unwrap_or_default(),
            &os.init_containers.clone().unwrap_or_default(),
        ),
    ] {
        let p = spec_path.child(field);
        if n.len() != o.len() {
            errs.push(Error::forbidden(
                &p,
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
        for (i, c) in n.iter().enumerate() {
            let image = s(&c.image);
            if image.is_empty() {
                errs.push(Error::required(&p.index(i).child("image"), ""));
            }
            if image.trim().len() != image.len() {
                errs.push(Error::invalid(
                    &p.index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }

    let ads = spec_path.child("activeDeadlineSeconds");
    match (ns.active_deadline_seconds, os.active_deadline_seconds) {
        (Some(n), _) if n < 0 || n > i64::from(i32::MAX) => {
            errs.push(Error::invalid(
                &ads,
                n,
                inclusive_range_error(0, i32::MAX.into()),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(Error::invalid(
                &ads,
                n,
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => errs.push(Error::invalid(
            &ads,
            BadValue::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }

    // Only additions to tolerations (tolerationSeconds may change).
    let strip = |t: &k8s_openapi::api::core::v1::Toleration| {
        let mut t = t.clone();
        t.toleration_seconds = None;
        t
    };
    let new_tols: Vec<_> = ns.tolerations.iter().flatten().map(strip).collect();
    if os
        .tolerations
        .iter()
        .flatten()
        .any(|o| !new_tols.contains(&strip(o)))
    {
        errs.push(Error::forbidden(
            &spec_path.child("tolerations"),
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    let old_gates: BTreeSet<&str> = os
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, g) in ns.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(g.name.as_str()) {
            errs.push(Error::forbidden(
                &spec_path.child("schedulingGates").index(i).child("name"),
                format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    g.name
                ),
            ));
        }
    }

    if ns == os {
        return errs;
    }
    let mut munged = ns.clone();
    for (c, o) in munged.containers.iter_mut().zip(&os.containers) {
        c.image = o.image.clone();
    }
    if let (Some(n), Some(o)) = (munged.init_containers.as_mut(), &os.init_containers) {
        for (c, o) in n.iter_mut().zip(o) {
            c.image = o.image.clone();
        }
    }
    munged.active_deadline_seconds = os.active_deadline_seconds;
    munged.scheduling_gates = os.scheduling_gates.clone();
    munged.tolerations = os.tolerations.clone();
    if os.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = os.termination_grace_period_seconds;
    }
    if munged != os {
        errs.push(Error::forbidden(
            &spec_path,
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}",
                spec_diff(&os, &munged)
            ),
        ));
    }
    errs
}

/// A readable diff of two specs (`-` old, `+` new), one changed leaf per line.
fn spec_diff(old: &PodSpec, new: &PodSpec) -> String {
    fn leaves(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    leaves(&format!("{prefix}.{k}"), v, out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    leaves(&format!("{prefix}[{i}]"), v, out);
                }
            }
            _ => {
                out.insert(prefix.to_string(), v.to_string());
            }
        }
    }
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    leaves(
        "spec",
        &serde_json::to_value(old).unwrap_or(Value::Null),
        &mut a,
    );
    leaves(
        "spec",
        &serde_json::to_value(new).unwrap_or(Value::Null),
        &mut b,
    );
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        match (a.get(k), b.get(k)) {
            (x, y) if x == y => {}
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("- \t{k}: {x},\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("+ \t{k}: {y},\n"));
                }
            }
        }
    }
    out.push_str("  }\n");
    out
}

/// `ValidatePodStatusUpdate`
pub fn validate_status_update(new: &Pod, old: &Pod) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &meta_path);
    let nst = new.status.clone().unwrap_or_default();
    let ost = old.status.clone().unwrap_or_default();
    // Kubernetes puts pod conditions under `metadata.conditions[i].Type` (sic).
    for (i, c) in nst.conditions.iter().flatten().enumerate() {
        if ["PodScheduled", "Ready", "Initialized"].contains(&c.type_.as_str()) {
            continue;
        }
        errs.extend(validate_qualified_name(
            &c.type_,
            &meta_path.child("conditions").index(i).child("Type"),
        ));
    }
    let status_path = Path::new("status");
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .map(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    if s(&node(new)) != s(&node(old)) {
        errs.push(Error::forbidden(
            &status_path.child("nodeName"),
            "may not be changed directly",
        ));
    }
    let nominated = s(&nst.nominated_node_name);
    if nominated != s(&ost.nominated_node_name) && !nominated.is_empty() {
        for m in name_is_dns_subdomain(nominated, false) {
            errs.push(Error::invalid(
                &status_path.child("nominatedNodeName"),
                nominated,
                m,
            ));
        }
    }
    if s(&nst.qos_class) != s(&ost.qos_class) {
        errs.push(Error::invalid(
            &status_path.child("qosClass"),
            s(&nst.qos_class),
            "field is immutable",
        ));
    }
    let restart = old
        .spec
        .as_ref()
        .map(|s| super::s(&s.restart_policy).to_string())
        .unwrap_or_default();
    errs.extend(validate_container_state_transition(
        nst.container_statuses.as_deref().unwrap_or_default(),
        ost.container_statuses.as_deref().unwrap_or_default(),
        &status_path.child("containerStatuses"),
        &restart,
    ));
    let ips: Vec<String> = nst
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.clone())
        .collect();
    let ips_path = status_path.child("podIPs");
    for (i, ip) in ips.iter().enumerate() {
        errs.extend(validate_ip(ip, &ips_path.index(i)));
    }
    if ips.len() > 1 {
        let v6 = ips
            .iter()
            .filter(|ip| super::names::is_ipv6_string(ip))
            .count();
        if v6 == 0 || v6 == ips.len() || ips.len() > 2 {
            let shown: Vec<String> = ips
                .iter()
                .map(|ip| format!("core.PodIP{{IP:{}}}", crate::field::go_quote(ip)))
                .collect();
            errs.push(Error::invalid(
                &ips_path,
                BadValue::Raw(format!("[]core.PodIP{{{}}}", shown.join(", "))),
                "may specify no more than one IP for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, ip) in ips.iter().enumerate() {
            if !seen.insert(ip) {
                errs.push(Error::duplicate(
                    &ips_path.index(i),
                    BadValue::Raw(format!("core.PodIP{{IP:{}}}", crate::field::go_quote(ip))),
                ));
            }
        }
    }
    let host_ips: Vec<String> = nst
        .host_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.clone())
        .collect();
    if let Some(first) = host_ips.first() {
        let p = status_path.child("hostIPs");
        if s(&nst.host_ip) != first {
            errs.push(Error::invalid(
                &p.index(0).child("ip"),
                first.as_str(),
                "must be equal to `hostIP`",
            ));
        }
        for (i, ip) in host_ips.iter().enumerate() {
            errs.extend(validate_ip(ip, &p.index(i)));
        }
    }
    errs
}

/// `ValidateContainerStateTransition`: with `restartPolicy` Never (or OnFailure after success),
/// a terminated container may not come back.
fn validate_container_state_transition(
    new: &[k8s_openapi::api::core::v1::ContainerStatus],
    old: &[k8s_openapi::api::core::v1::ContainerStatus],
    path: &Path,
    restart_policy: &str,
) -> ErrorList {
    let mut errs = Vec::new();
    if restart_policy == "Always" {
        return errs;
    }
    for (i, o) in old.iter().enumerate() {
        let Some(term) = o.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
            continue;
        };
        if term.exit_code != 0 && restart_policy == "OnFailure" {
            continue;
        }
        for n in new {
            if n.name == o.name
                && n.state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_none()
            {
                errs.push(Error::forbidden(
                    &path.index(i).child("state"),
                    "may not be transitioned to non-terminated state",
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests;
