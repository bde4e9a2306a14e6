//! Probes and lifecycle hooks: `validateProbe`, the per-kind rules of liveness, readiness and
//! startup probes, `validateLifecycle`, and the handler actions both share (`validateHandler`,
//! `validateHTTPGetAction`).

use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::field::{Error, ErrorList, Path};
use crate::validation::names::{
    is_http_header_name, validate_nonnegative, validate_port_num_or_name,
};
use crate::validation::s;

const SUPPORTED_HTTP_SCHEMES: &[&str] = &["HTTP", "HTTPS"];

/// A container's lifecycle hooks and its liveness, readiness and startup probes, as
/// `validateContainers` (and `validateInitContainers` for a restartable init container) checks
/// them one after the other.
pub(super) fn validate_lifecycle_and_probes(
    c: &Container,
    grace: Option<i64>,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(l) = &c.lifecycle {
        errs.extend(validate_lifecycle(l, grace, &path.child("lifecycle")));
    }
    for (probe, kind, field) in [
        (&c.liveness_probe, ProbeKind::Liveness, "livenessProbe"),
        (&c.readiness_probe, ProbeKind::Readiness, "readinessProbe"),
        (&c.startup_probe, ProbeKind::Startup, "startupProbe"),
    ] {
        errs.extend(validate_probe_kind(
            probe.as_ref(),
            kind,
            &path.child(field),
        ));
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
    let mut handlers = shared_handlers(
        probe.exec.as_ref(),
        probe.http_get.as_ref(),
        probe.tcp_socket.as_ref(),
        path,
    );
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

/// The handler actions a probe and a lifecycle hook have in common (exec, httpGet, tcpSocket),
/// each set one with its own errors, in `validateHandler`'s order; the caller adds its own
/// (grpc for a probe, sleep for a hook) and hands them to [`collect_handlers`].
fn shared_handlers(
    exec: Option<&ExecAction>,
    http_get: Option<&HTTPGetAction>,
    tcp_socket: Option<&TCPSocketAction>,
    path: &Path,
) -> Vec<(&'static str, ErrorList)> {
    let mut handlers = Vec::new();
    if let Some(e) = exec {
        let mut el = Vec::new();
        if e.command.as_deref().unwrap_or_default().is_empty() {
            el.push(Error::required(&path.child("exec").child("command"), ""));
        }
        handlers.push(("exec", el));
    }
    if let Some(h) = http_get {
        handlers.push(("httpGet", validate_http_get(h, &path.child("httpGet"))));
    }
    if let Some(t) = tcp_socket {
        handlers.push((
            "tcpSocket",
            validate_port_num_or_name(&t.port, &path.child("tcpSocket").child("port")),
        ));
    }
    handlers
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

/// `validateHTTPGetAction`
fn validate_http_get(h: &HTTPGetAction, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if s(&h.path).is_empty() {
        errs.push(Error::required(&path.child("path"), ""));
    }
    errs.extend(validate_port_num_or_name(&h.port, &path.child("port")));
    let scheme = s(&h.scheme);
    if !SUPPORTED_HTTP_SCHEMES.contains(&scheme) {
        errs.push(Error::not_supported(
            &path.child("scheme"),
            scheme,
            SUPPORTED_HTTP_SCHEMES,
        ));
    }
    for header in h.http_headers.iter().flatten() {
        for m in is_http_header_name(&header.name) {
            errs.push(Error::invalid(
                &path.child("httpHeaders"),
                header.name.as_str(),
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
    let mut handlers = shared_handlers(
        h.exec.as_ref(),
        h.http_get.as_ref(),
        h.tcp_socket.as_ref(),
        path,
    );
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
