//! Containers and init containers: `validateContainers`, `validateInitContainers`,
//! `validateContainerCommon`, `validateContainerPorts` and `checkHostPortConflicts`. Env vars,
//! volume mounts and probes are checked by their own files.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, ContainerPort};

use crate::field::{Error, ErrorList, Path};
use crate::validation::names::{is_valid_port_name, is_valid_port_num, validate_dns1123_label};
use crate::validation::{enum_value, s, SUPPORTED_PORT_PROTOCOLS};

use super::env::{validate_env, validate_env_from};
use super::probes::validate_lifecycle_and_probes;
use super::security_context::validate_container_security_context;
use super::volumes::validate_volume_mounts;

const SUPPORTED_PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];

/// `validateContainers`
pub(super) fn validate_containers(
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
        errs.extend(validate_lifecycle_and_probes(c, grace, &p));
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
pub(super) fn validate_init_containers(
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
            errs.extend(validate_lifecycle_and_probes(c, grace, &p));
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
pub(super) fn validate_container_common(
    c: &Container,
    volumes: &BTreeSet<String>,
    path: &Path,
) -> ErrorList {
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
        errs.extend(validate_container_security_context(
            sc,
            &path.child("securityContext"),
        ));
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
