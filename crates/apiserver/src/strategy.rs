//! Per-kind behaviour on write, as Kubernetes' registry strategies: decoding into the typed
//! object (which drops unknown fields, reported for `fieldValidation`), defaulting, what happens
//! to `status` on create and update, and validation.
//!
//! Everything goes through the k8s-openapi types, so stored objects are exactly what those types
//! can represent: every known field round-trips, unknown ones never reach the store.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ComponentStatus;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, PodStatus, ReplicationController, Secret,
    Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::{
    APIService, APIServiceCondition, APIServiceStatus,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use svcnet_api::field::ErrorList;
use svcnet_api::{defaults, validation};

/// A decoded object and the paths of fields its type does not know.
pub struct Decoded {
    pub value: Value,
    pub unknown_fields: Vec<String>,
}

/// The per-kind hooks the generic REST handlers call. Errors are decoding errors (the body is
/// not a valid object of the kind), reported as 400.
pub trait Strategy: Send + Sync {
    /// Round-trip through the typed object; report fields it dropped.
    fn decode(&self, obj: &Value) -> Result<Decoded, String>;
    fn default(&self, obj: &mut Value) -> Result<(), String>;
    /// Status and kind-specific fields on create.
    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), String>;
    fn validate_create(&self, obj: &Value) -> Result<ErrorList, String>;
    fn validate_update(&self, new: &Value, old: &Value) -> Result<ErrorList, String>;
    fn validate_status_update(&self, new: &Value, old: &Value) -> Result<ErrorList, String>;
    /// Add the fields Go's encoding/json writes for a zero value (see [`GoZero`]).
    fn fill_go_zero(&self, obj: &mut Value);
    /// The custom-resource behaviour behind this strategy, for a CRD's kinds.
    fn custom(&self) -> Option<&crate::crd::custom::CustomStrategy> {
        None
    }
}

/// Fields kube-apiserver always writes, as (JSON pointer, JSON value when unset): Go's
/// encoding/json omits an `omitempty` field only when it is a zero scalar, slice, map or
/// pointer, never a struct, so a Service is stored and served with `"status":{"loadBalancer":
/// {}}`, a Deployment with `"status":{}`, a ReplicaSet with `"status":{"replicas":0}` (not
/// `omitempty`), and a `metav1.Time` left unset is written `null`. k8s-openapi's `Option`s drop
/// all of them; this puts them back. A pointer's parent must exist (earlier entries make it).
pub type GoZero = &'static [(&'static str, &'static str)];

fn fill_go_zero(obj: &mut Value, zero: GoZero) {
    for (pointer, literal) in zero {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        let Some(Value::Object(map)) = obj.pointer_mut(parent) else {
            continue;
        };
        if map.get(key).is_none_or(Value::is_null) {
            map.insert(
                key.to_string(),
                serde_json::from_str(literal).expect("a JSON literal"),
            );
        }
    }
}

/// What happens to `status` on create.
#[derive(Clone, Copy)]
pub enum StatusOnCreate {
    /// Cleared: status is written through the status subresource only.
    Reset,
    /// Kept as sent (nodes, and kinds without a status subresource).
    Keep,
}

/// A [`Strategy`] over a k8s-openapi type, from plain functions.
pub struct Typed<T: 'static> {
    pub default: fn(&mut T),
    pub status_on_create: StatusOnCreate,
    /// Runs after the status rule.
    pub prepare_for_create: fn(&mut T),
    pub validate_create: fn(&T) -> ErrorList,
    pub validate_update: fn(&T, &T) -> ErrorList,
    pub validate_status_update: fn(&T, &T) -> ErrorList,
    pub go_zero: GoZero,
}

fn to_typed<T: DeserializeOwned>(v: &Value) -> Result<T, String> {
    T::deserialize(v).map_err(|e| e.to_string())
}

fn to_value<T: Serialize>(t: &T) -> Result<Value, String> {
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// Fields present in `input` but absent from `output` (the typed round trip of `input`),
/// as dotted paths (`spec.foo`, `spec.ports[0].bar`). `null`s are not unknown fields.
pub fn unknown_fields(input: &Value, output: &Value) -> Vec<String> {
    fn walk(input: &Value, output: Option<&Value>, path: &str, out: &mut Vec<String>) {
        match (input, output) {
            (Value::Object(i), Some(Value::Object(o))) => {
                for (k, v) in i {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match o.get(k) {
                        Some(ov) => walk(v, Some(ov), &p, out),
                        None if v.is_null() => {}
                        // An empty object/array the typed form omits is not an unknown field.
                        None if is_empty_container(v) => {}
                        None => out.push(p),
                    }
                }
            }
            (Value::Array(i), Some(Value::Array(o))) => {
                for (idx, v) in i.iter().enumerate() {
                    walk(v, o.get(idx), &format!("{path}[{idx}]"), out);
                }
            }
            _ => {}
        }
    }
    fn is_empty_container(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.values().all(|x| x.is_null() || is_empty_container(x)),
            Value::Array(a) => a.is_empty(),
            _ => false,
        }
    }
    let mut out = Vec::new();
    walk(input, Some(output), "", &mut out);
    out
}

impl<T> Strategy for Typed<T>
where
    T: DeserializeOwned + Serialize + Send + Sync + 'static,
{
    fn decode(&self, obj: &Value) -> Result<Decoded, String> {
        let typed: T = to_typed(obj)?;
        let value = to_value(&typed)?;
        let unknown_fields = unknown_fields(obj, &value);
        Ok(Decoded {
            value,
            unknown_fields,
        })
    }

    fn default(&self, obj: &mut Value) -> Result<(), String> {
        let mut t: T = to_typed(obj)?;
        (self.default)(&mut t);
        *obj = to_value(&t)?;
        Ok(())
    }

    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), String> {
        if let (StatusOnCreate::Reset, Some(o)) = (self.status_on_create, obj.as_object_mut()) {
            o.remove("status");
        }
        let mut t: T = to_typed(obj)?;
        (self.prepare_for_create)(&mut t);
        *obj = to_value(&t)?;
        Ok(())
    }

    fn validate_create(&self, obj: &Value) -> Result<ErrorList, String> {
        Ok((self.validate_create)(&to_typed(obj)?))
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Result<ErrorList, String> {
        Ok((self.validate_update)(&to_typed(new)?, &to_typed(old)?))
    }

    fn validate_status_update(&self, new: &Value, old: &Value) -> Result<ErrorList, String> {
        Ok((self.validate_status_update)(
            &to_typed(new)?,
            &to_typed(old)?,
        ))
    }

    fn fill_go_zero(&self, obj: &mut Value) {
        fill_go_zero(obj, self.go_zero)
    }
}

/// A workload's pod template: `metadata` (a struct) with its unset `creationTimestamp`.
const TEMPLATE_ZERO: [(&str, &str); 3] = [
    ("/spec/template", "{}"),
    ("/spec/template/metadata", "{}"),
    ("/spec/template/metadata/creationTimestamp", "null"),
];

fn nothing<T>(_: &mut T) {}
fn no_errors_update<T>(_: &T, _: &T) -> ErrorList {
    Vec::new()
}

pub static SERVICE: Typed<Service> = Typed {
    default: defaults::service::default_service,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: nothing,
    validate_create: validation::service::validate_create,
    validate_update: validation::service::validate_update,
    validate_status_update: validation::service::validate_status_update,
    go_zero: &[
        ("/spec", "{}"),
        ("/status", "{}"),
        ("/status/loadBalancer", "{}"),
    ],
};

pub static ENDPOINTS: Typed<Endpoints> = Typed {
    default: defaults::core::default_endpoints,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::endpoints::validate_endpoints_create,
    validate_update: validation::endpoints::validate_endpoints_update,
    validate_status_update: no_errors_update,
    go_zero: &[],
};

/// `pods/{name}/ephemeralcontainers` updates (`podEphemeralContainersStrategy.ValidateUpdate`).
pub fn validate_ephemeral_containers_update(new: &Value, old: &Value) -> Result<ErrorList, String> {
    let (new, old): (Pod, Pod) = (to_typed(new)?, to_typed(old)?);
    Ok(validation::pod::validate_ephemeral_containers_update(
        &new, &old,
    ))
}

fn pod_prepare_for_create(pod: &mut Pod) {
    pod.status = Some(PodStatus {
        phase: Some("Pending".to_string()),
        qos_class: Some(qos_class(pod).to_string()),
        ..Default::default()
    });
}

/// Kubernetes' `GetPodQOS`: Guaranteed when every container has equal cpu and memory requests
/// and limits, BestEffort when none has any, Burstable otherwise.
fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return "BestEffort";
    };
    let containers: Vec<_> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let res = c.resources.as_ref();
        let req = res.and_then(|r| r.requests.as_ref());
        let lim = res.and_then(|r| r.limits.as_ref());
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(resource));
            let r = req.and_then(|m| m.get(resource)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

pub static POD: Typed<Pod> = Typed {
    default: defaults::core::default_pod,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: pod_prepare_for_create,
    validate_create: validation::pod::validate_create,
    validate_update: validation::pod::validate_update,
    validate_status_update: validation::pod::validate_status_update,
    go_zero: &[("/spec", "{}"), ("/status", "{}")],
};

pub static NODE: Typed<Node> = Typed {
    default: defaults::core::default_node,
    // "Nodes allow *all* fields, including status, to be set on create."
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::node::validate_create,
    validate_update: validation::node::validate_update,
    validate_status_update: validation::node::validate_status_update,
    go_zero: &[
        ("/spec", "{}"),
        ("/status", "{}"),
        ("/status/daemonEndpoints", "{}"),
        ("/status/daemonEndpoints/kubeletEndpoint", r#"{"Port":0}"#),
        (
            "/status/nodeInfo",
            r#"{"machineID":"","systemUUID":"","bootID":"","kernelVersion":"","osImage":"","containerRuntimeVersion":"","kubeletVersion":"","kubeProxyVersion":"","operatingSystem":"","architecture":""}"#,
        ),
    ],
};

fn namespace_prepare_for_create(ns: &mut Namespace) {
    let spec = ns.spec.get_or_insert_with(Default::default);
    let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == "kubernetes") {
        finalizers.push("kubernetes".to_string());
    }
    ns.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
        phase: Some("Active".to_string()),
        ..Default::default()
    });
}

pub static NAMESPACE: Typed<Namespace> = Typed {
    default: defaults::core::default_namespace,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: namespace_prepare_for_create,
    validate_create: validation::namespace::validate_create,
    validate_update: validation::namespace::validate_update,
    validate_status_update: validation::namespace::validate_status_update,
    go_zero: &[("/spec", "{}"), ("/status", "{}")],
};

pub static EVENT: Typed<Event> = Typed {
    default: nothing,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::event::validate_create,
    validate_update: validation::event::validate_update,
    validate_status_update: no_errors_update,
    go_zero: &[
        ("/involvedObject", "{}"),
        ("/source", "{}"),
        ("/firstTimestamp", "null"),
        ("/lastTimestamp", "null"),
        ("/eventTime", "null"),
        ("/reportingComponent", r#""""#),
        ("/reportingInstance", r#""""#),
    ],
};

/// events.k8s.io/v1 Events: only decoded here (unknown fields, types); everything else is the
/// stored core/v1 Event's ([`EVENT`]) once converted.
pub static EVENT_V1: Typed<k8s_openapi::api::events::v1::Event> = Typed {
    default: nothing,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: |_| Vec::new(),
    validate_update: no_errors_update,
    validate_status_update: no_errors_update,
    go_zero: &[],
};

pub static ENDPOINTSLICE: Typed<EndpointSlice> = Typed {
    default: defaults::discovery::default_endpointslice,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::endpoints::validate_endpointslice_create,
    validate_update: validation::endpoints::validate_endpointslice_update,
    validate_status_update: no_errors_update,
    go_zero: &[("/ports", "null")],
};

/// What `PrepareForCreate` / `PrepareForUpdate` of the lease registry do with the
/// CoordinatedLeaderElection feature off (its default): `spec.strategy` and
/// `spec.preferredHolder` are dropped.
fn drop_coordinated_fields(lease: &mut Lease) {
    if let Some(spec) = lease.spec.as_mut() {
        spec.strategy = None;
        spec.preferred_holder = None;
    }
}

pub static LEASE: Typed<Lease> = Typed {
    // Runs on create and update alike.
    default: drop_coordinated_fields,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::coordination::validate_create,
    validate_update: validation::coordination::validate_update,
    validate_status_update: no_errors_update,
    go_zero: &[("/spec", "{}")],
};

/// Kubernetes' `configMapStrategy`: no status, no defaults.
pub static CONFIGMAP: Typed<ConfigMap> = Typed {
    default: nothing,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::config::validate_config_map_create,
    validate_update: validation::config::validate_config_map_update,
    validate_status_update: no_errors_update,
    go_zero: &[],
};

/// Kubernetes' secret strategy; `default` also merges `stringData` into `data`, as the v1 →
/// internal conversion does on every write.
pub static SECRET: Typed<Secret> = Typed {
    default: defaults::core::default_secret,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::config::validate_secret_create,
    validate_update: validation::config::validate_secret_update,
    validate_status_update: no_errors_update,
    go_zero: &[],
};

pub static RUNTIMECLASS: Typed<RuntimeClass> = Typed {
    default: nothing,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::runtimeclass::validate_create,
    validate_update: validation::runtimeclass::validate_update,
    validate_status_update: no_errors_update,
    go_zero: &[],
};

/// Kubernetes' `podDisruptionBudgetStrategy`: status reset on create (the disruption
/// controller writes it), the spec mutable, `generation` bumped on spec changes.
pub static PODDISRUPTIONBUDGET: Typed<PodDisruptionBudget> = Typed {
    default: nothing,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: nothing,
    validate_create: validation::policy::validate_create,
    validate_update: validation::policy::validate_update,
    validate_status_update: validation::policy::validate_status_update,
    // Go writes the status struct and its non-omitempty counts.
    go_zero: &[
        ("/spec", "{}"),
        (
            "/status",
            r#"{"disruptionsAllowed":0,"currentHealthy":0,"desiredHealthy":0,"expectedPods":0}"#,
        ),
    ],
};

pub static DEPLOYMENT: Typed<Deployment> = Typed {
    default: defaults::apps::default_deployment,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: nothing,
    validate_create: validation::apps::validate_deployment_create,
    validate_update: validation::apps::validate_deployment_update,
    validate_status_update: validation::apps::validate_deployment_status_update,
    go_zero: &[
        ("/spec", "{}"),
        TEMPLATE_ZERO[0],
        TEMPLATE_ZERO[1],
        TEMPLATE_ZERO[2],
        ("/spec/strategy", "{}"),
        ("/status", "{}"),
    ],
};

pub static REPLICASET: Typed<ReplicaSet> = Typed {
    default: defaults::apps::default_replicaset,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: nothing,
    validate_create: validation::apps::validate_replicaset_create,
    validate_update: validation::apps::validate_replicaset_update,
    validate_status_update: validation::apps::validate_replicaset_status_update,
    go_zero: &[
        ("/spec", "{}"),
        TEMPLATE_ZERO[0],
        TEMPLATE_ZERO[1],
        TEMPLATE_ZERO[2],
        ("/status", r#"{"replicas":0}"#),
    ],
};

/// core/v1 ReplicationControllers (`pkg/registry/core/replicationcontroller/strategy.go`): the
/// template is a pointer in v1, so only a present one gets `"metadata":{"creationTimestamp":
/// null}`; `status.replicas` is not `omitempty`.
pub static REPLICATIONCONTROLLER: Typed<ReplicationController> = Typed {
    default: defaults::core::default_replication_controller,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: nothing,
    validate_create: validation::replicationcontroller::validate_create,
    validate_update: validation::replicationcontroller::validate_update,
    validate_status_update: validation::replicationcontroller::validate_status_update,
    go_zero: &[
        ("/spec", "{}"),
        TEMPLATE_ZERO[1],
        TEMPLATE_ZERO[2],
        ("/status", r#"{"replicas":0}"#),
    ],
};

/// Roles (`pkg/registry/rbac/role/strategy.go`): `rules` is not `omitempty` in Go.
pub static ROLE: Typed<Role> = Typed {
    default: nothing,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::rbac::validate_role,
    validate_update: validation::rbac::validate_role_update,
    validate_status_update: no_errors_update,
    go_zero: &[("/rules", "null")],
};

pub static CLUSTERROLE: Typed<ClusterRole> = Typed {
    default: nothing,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::rbac::validate_cluster_role,
    validate_update: validation::rbac::validate_cluster_role_update,
    validate_status_update: no_errors_update,
    go_zero: &[("/rules", "null")],
};

pub static ROLEBINDING: Typed<RoleBinding> = Typed {
    default: defaults::rbac::default_role_binding,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::rbac::validate_role_binding,
    validate_update: validation::rbac::validate_role_binding_update,
    validate_status_update: no_errors_update,
    go_zero: &[],
};

pub static CLUSTERROLEBINDING: Typed<ClusterRoleBinding> = Typed {
    default: defaults::rbac::default_cluster_role_binding,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: validation::rbac::validate_cluster_role_binding,
    validate_update: validation::rbac::validate_cluster_role_binding_update,
    validate_status_update: no_errors_update,
    go_zero: &[],
};

/// `pkg/registry/certificates/certificates/strategy.go`: status reset on create (the requester
/// is filled in by `hooks::prepare_create`); `/approval` is validated by
/// [`validate_csr_approval`].
pub static CERTIFICATESIGNINGREQUEST: Typed<CertificateSigningRequest> = Typed {
    default: nothing,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: nothing,
    validate_create: validation::certificates::validate_create,
    validate_update: validation::certificates::validate_update,
    validate_status_update: validation::certificates::validate_status_update,
    go_zero: &[("/status", "{}")],
};

/// `ValidateCertificateSigningRequestApprovalUpdate` on stored JSON.
pub fn validate_csr_approval(new: &Value, old: &Value) -> Result<ErrorList, String> {
    Ok(validation::certificates::validate_approval_update(
        &to_typed(new)?,
        &to_typed(old)?,
    ))
}

/// kube-aggregator's APIService status as its availability controller writes it: a local
/// APIService (served by this server) is available; svcnet does not proxy to a Service-backed
/// one, so it is not.
fn api_service_status(s: &mut APIService) {
    let local = s.spec.as_ref().is_none_or(|spec| spec.service.is_none());
    let (status, reason, message) = if local {
        ("True", "Local", "Local APIServices are always available")
    } else {
        (
            "False",
            "FailedDiscoveryCheck",
            "svcnet does not proxy to aggregated API servers",
        )
    };
    s.status = Some(APIServiceStatus {
        conditions: Some(vec![APIServiceCondition {
            type_: "Available".into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::now(),
            )),
        }]),
    });
}

pub static APISERVICE: Typed<APIService> = Typed {
    default: defaults::apiregistration::default_api_service,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: api_service_status,
    validate_create: validation::apiregistration::validate_create,
    validate_update: validation::apiregistration::validate_update,
    validate_status_update: no_errors_update,
    go_zero: &[("/spec", "{}"), ("/status", "{}")],
};

/// ComponentStatuses are never written (`rest/componentstatus.rs` builds them on read).
pub static COMPONENTSTATUS: Typed<ComponentStatus> = Typed {
    default: nothing,
    status_on_create: StatusOnCreate::Keep,
    prepare_for_create: nothing,
    validate_create: |_| Vec::new(),
    validate_update: no_errors_update,
    validate_status_update: no_errors_update,
    go_zero: &[],
};

/// `jobStrategy.PrepareForCreate`: the generated selector (unless `manualSelector`), and the
/// Job's labels from its template's when it has none, which upstream's defaulting does when
/// the stored Job is read back (so `kubectl get job -o yaml` shows the generated labels).
fn job_prepare_for_create(job: &mut Job) {
    defaults::batch::generate_job_selector(job);
    let labels = job
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    if job.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
        job.metadata.labels = labels;
    }
}

/// batch/v1 Jobs: status written by the Job controller only; Go writes the template's
/// metadata and an empty status.
pub static JOB: Typed<Job> = Typed {
    default: defaults::batch::default_job,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: job_prepare_for_create,
    validate_create: validation::batch::validate_create,
    validate_update: validation::batch::validate_update,
    validate_status_update: validation::batch::validate_status_update,
    go_zero: &[
        ("/spec", "{}"),
        TEMPLATE_ZERO[0],
        TEMPLATE_ZERO[1],
        TEMPLATE_ZERO[2],
        ("/status", "{}"),
    ],
};

/// `daemonSetStrategy.PrepareForCreate` sets `templateGeneration` 1, which apps/v1 carries as
/// the `deprecated.daemonset.template.generation` annotation. (Upstream bumps it when an update
/// changes the template; the strategy hooks here run on create only, so it stays 1.)
fn daemonset_prepare_for_create(ds: &mut DaemonSet) {
    ds.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            "deprecated.daemonset.template.generation".into(),
            "1".into(),
        );
}

/// apps/v1 DaemonSets: Go writes the status' four counts that are not `omitempty`.
pub static DAEMONSET: Typed<DaemonSet> = Typed {
    default: defaults::apps::default_daemonset,
    status_on_create: StatusOnCreate::Reset,
    prepare_for_create: daemonset_prepare_for_create,
    validate_create: validation::daemonset::validate_create,
    validate_update: validation::daemonset::validate_update,
    validate_status_update: validation::daemonset::validate_status_update,
    go_zero: &[
        ("/spec", "{}"),
        TEMPLATE_ZERO[0],
        TEMPLATE_ZERO[1],
        TEMPLATE_ZERO[2],
        ("/spec/updateStrategy", "{}"),
        (
            "/status",
            r#"{"currentNumberScheduled":0,"numberMisscheduled":0,"desiredNumberScheduled":0,"numberReady":0}"#,
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_unknown_fields() {
        let input = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "creationTimestamp": null},
            "spec": {"ports": [{"port": 80, "bogus": 1}], "foo": "bar", "selector": {}}});
        let d = SERVICE.decode(&input).unwrap();
        assert_eq!(
            d.unknown_fields,
            vec!["spec.foo".to_string(), "spec.ports[0].bogus".to_string()]
        );
        assert_eq!(d.value["spec"]["ports"][0]["port"], 80);
    }

    #[test]
    fn qos() {
        let pod: Pod =
            serde_json::from_value(json!({"spec": {"containers": [{"name": "a"}]}})).unwrap();
        assert_eq!(qos_class(&pod), "BestEffort");
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [{"name": "a",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}))
        .unwrap();
        assert_eq!(qos_class(&pod), "Guaranteed");
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [{"name": "a",
            "resources": {"requests": {"cpu": "1"}}}]}}))
        .unwrap();
        assert_eq!(qos_class(&pod), "Burstable");
    }
}
