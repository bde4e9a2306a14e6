//! What every probe handler shares (the kubelet's `pkg/probe/probe.go` and `util.go`): the
//! [`ProbeContext`] it runs in — the pod's IP and ports, how to connect and how to exec — the
//! host and port it dials, and its [`ProbeResult`].

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ContainerPort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::dial::Connector;
use super::exec::ExecRunner;

/// The outcome of one probe attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    /// The probe ran and failed, with the kubelet's message.
    Failure(String),
    /// The probe could not run (unsupported handler, unknown named port, command that could not
    /// be started); counted as a failure.
    Unknown(String),
}

impl ProbeResult {
    pub fn is_success(&self) -> bool {
        matches!(self, ProbeResult::Success)
    }

    /// The failure message (empty for a success).
    pub fn message(&self) -> &str {
        match self {
            ProbeResult::Success => "",
            ProbeResult::Failure(m) | ProbeResult::Unknown(m) => m,
        }
    }
}

/// What a probe needs besides its spec.
#[derive(Clone)]
pub struct ProbeContext {
    /// The pod's IP: the host of HTTP and TCP probes that do not name one.
    pub pod_ip: IpAddr,
    /// The container's ports, to resolve named probe ports.
    pub ports: Vec<ContainerPort>,
    pub connector: Arc<dyn Connector>,
    pub exec: Arc<dyn ExecRunner>,
}

impl ProbeContext {
    /// The host and port an HTTP or TCP probe dials: its `host`, else the pod's IP, and its
    /// `port` resolved against the container's ports (an unknown one is
    /// [`ProbeResult::Unknown`]).
    pub(super) fn target(
        &self,
        host: Option<&str>,
        port: &IntOrString,
    ) -> Result<(String, u16), ProbeResult> {
        let port = resolve_port(port, &self.ports).map_err(ProbeResult::Unknown)?;
        let host = match host.filter(|h| !h.is_empty()) {
            Some(h) => h.to_string(),
            None => self.pod_ip.to_string(),
        };
        Ok((host, port))
    }
}

/// `probe.ResolveContainerPort`: a number, or the name of one of the container's ports (or a
/// number written as a string).
fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => match ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
        {
            Some(p) => i64::from(p.container_port),
            None => name
                .parse::<i64>()
                .map_err(|_| format!("strconv.Atoi: parsing {name:?}: invalid syntax"))?,
        },
    };
    if n > 0 && n < 65536 {
        Ok(n as u16)
    } else {
        Err(format!("invalid port number: {n}"))
    }
}
