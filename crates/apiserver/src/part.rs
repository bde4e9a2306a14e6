//! Which part of an object a write may change: the main resource or a subresource, as
//! kube-apiserver's REST storages are split (`status`, `finalize`, `binding`, `approval`,
//! `ephemeralcontainers`). Its own file so
//! the write path and server-side apply's per-subresource managedFields share it.

/// Which part of an object an update may change.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Part {
    /// The main resource: everything but `status` (for kinds with a status subresource).
    Main,
    /// `/status`: only `status`.
    Status,
    /// `namespaces/x/finalize`: only `spec.finalizers`.
    Finalize,
    /// `pods/x/binding`: only `spec.nodeName` and `status.conditions`, without the pod-update
    /// validation that forbids changing the node (as the binding REST's own update).
    Binding,
    /// `certificatesigningrequests/x/approval`: only `status.conditions` (Approved, Denied).
    Approval,
    /// `pods/x/ephemeralcontainers`: only `spec.ephemeralContainers`, validated as
    /// `ValidatePodEphemeralContainersUpdate` (the `podEphemeralContainersStrategy`).
    EphemeralContainers,
}

impl Part {
    /// The part a request's subresource names (`status`, `finalize`, or none).
    pub fn of_subresource(subresource: Option<&str>) -> Part {
        match subresource {
            Some("status") => Part::Status,
            Some("finalize") => Part::Finalize,
            Some("approval") => Part::Approval,
            Some("ephemeralcontainers") => Part::EphemeralContainers,
            _ => Part::Main,
        }
    }
}
