//! The resources this server serves: names, scopes, storage keys and discovery data, and the
//! per-kind behaviour ([`Strategy`]) the generic REST handlers call into.

use std::borrow::Cow;

use crate::strategy::{self, Strategy};

/// Everything the generic handlers and discovery need to know about one resource.
pub struct ResourceInfo {
    /// API group ("" = core).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    /// The resource name in URLs (`services`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    /// Storage key prefix, as Kubernetes lays out etcd (`/registry/services/specs`).
    pub key_prefix: &'static str,
    /// Subresources served (`status`, `scale`, `binding`, ...).
    pub subresources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// PUT of a missing object creates it (Kubernetes' `AllowCreateOnUpdate`).
    pub allow_create_on_update: bool,
    /// `metadata.generation` is maintained (set to 1, bumped when the spec changes).
    pub has_generation: bool,
    /// Field labels usable in field selectors, besides metadata.name/metadata.namespace.
    pub field_labels: &'static [FieldLabel],
    pub strategy: &'static (dyn Strategy + Sync),
    /// Set when this resource is another API of a stored kind (see [`View`]).
    pub view: Option<&'static View>,
}

/// A second API version of a stored kind, as kube-apiserver serves events.k8s.io/v1 Events
/// from core/v1 Events' registry: the REST handlers convert a request's object into the stored
/// kind's form, write it with the stored kind's registry (its strategy, key, validation), and
/// convert what they answer back. Table output uses the stored kind's printer, as upstream's
/// printers work on the internal object.
pub struct View {
    pub storage: &'static ResourceInfo,
    pub to_storage: fn(&serde_json::Value) -> serde_json::Value,
    pub from_storage: fn(&serde_json::Value) -> serde_json::Value,
}

/// A field label: its name, the JSON path of its field, and what the field reads as when unset.
/// Kubernetes' field label conversion functions format the Go struct's field, so an unset
/// boolean reads `false` and an unset number `0` (`strconv.FormatBool(pod.Spec.HostNetwork)`),
/// an unset string "".
pub struct FieldLabel {
    pub name: &'static str,
    pub path: &'static [&'static str],
    pub zero: &'static str,
}

/// A string field label (unset: "").
const fn label(name: &'static str, path: &'static [&'static str]) -> FieldLabel {
    FieldLabel {
        name,
        path,
        zero: "",
    }
}

/// A boolean field label (unset: "false").
const fn bool_label(name: &'static str, path: &'static [&'static str]) -> FieldLabel {
    FieldLabel {
        name,
        path,
        zero: "false",
    }
}

/// A number field label (unset: "0").
const fn int_label(name: &'static str, path: &'static [&'static str]) -> FieldLabel {
    FieldLabel {
        name,
        path,
        zero: "0",
    }
}

/// The field labels every resource has.
const METADATA_NAME: FieldLabel = label("metadata.name", &["metadata", "name"]);
const METADATA_NAMESPACE: FieldLabel = label("metadata.namespace", &["metadata", "namespace"]);

impl ResourceInfo {
    /// The resource whose registry stores this one's objects (itself unless a [`View`]).
    pub fn storage(&'static self) -> &'static ResourceInfo {
        self.view.map_or(self, |v| v.storage)
    }

    /// A stored object as this resource's API writes it.
    pub fn from_storage<'a>(&self, obj: &'a serde_json::Value) -> Cow<'a, serde_json::Value> {
        match (self.view, self.strategy.custom()) {
            (Some(v), _) => Cow::Owned((v.from_storage)(obj)),
            // A custom resource's versions differ only in `apiVersion` (conversion `None`).
            (None, Some(_))
                if obj.get("apiVersion").and_then(|v| v.as_str()) != Some(&self.api_version()) =>
            {
                Cow::Owned(crate::crd::custom::with_api_version(
                    obj,
                    &self.api_version(),
                ))
            }
            (None, _) => Cow::Borrowed(obj),
        }
    }

    /// Whether a stored object is served as it is stored (its cached bytes can be sent): not
    /// for a [`View`], nor for a custom resource version other than the stored one.
    pub fn serves_stored_form(&self) -> bool {
        self.view.is_none()
            && self
                .strategy
                .custom()
                .is_none_or(|c| c.current().storage_api_version == self.api_version())
    }

    /// An object of this resource's API as it is stored.
    pub fn to_storage(&self, obj: serde_json::Value) -> serde_json::Value {
        match (self.view, self.strategy.custom()) {
            (Some(v), _) => (v.to_storage)(&obj),
            (None, Some(c)) => {
                crate::crd::custom::with_api_version(&obj, &c.current().storage_api_version)
            }
            (None, None) => obj,
        }
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `services` or `deployments.apps`, as Kubernetes names a resource in messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}/{}/{}", self.key_prefix, ns, name),
            _ => format!("{}/{}", self.key_prefix, name),
        }
    }

    /// The key prefix of a collection (one namespace, or all), ending in `/`.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}/{}/", self.key_prefix, ns),
            _ => format!("{}/", self.key_prefix),
        }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    pub fn has_status(&self) -> bool {
        self.has_subresource("status")
    }

    /// The value of a supported field label of `obj`, or `None` when the label is not supported.
    pub fn field_value(&self, obj: &serde_json::Value, label: &str) -> Option<String> {
        let l = match label {
            "metadata.name" => &METADATA_NAME,
            "metadata.namespace" => &METADATA_NAMESPACE,
            _ => self.field_labels.iter().find(|l| l.name == label)?,
        };
        let mut v = obj;
        for seg in l.path {
            match v.get(seg) {
                Some(next) => v = next,
                None => return Some(l.zero.to_string()),
            }
        }
        Some(match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => l.zero.to_string(),
            other => other.to_string(),
        })
    }
}

const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const GET_LIST: &[&str] = &["get", "list"];
const CRUD_NO_DELETECOLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

pub static NAMESPACES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Namespace",
    list_kind: "NamespaceList",
    plural: "namespaces",
    singular: "namespace",
    short_names: &["ns"],
    categories: &[],
    namespaced: false,
    key_prefix: "/registry/namespaces",
    subresources: &["status", "finalize"],
    verbs: CRUD_NO_DELETECOLLECTION,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[label("status.phase", &["status", "phase"])],
    strategy: &strategy::NAMESPACE,
    view: None,
};

pub static SERVICES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Service",
    list_kind: "ServiceList",
    plural: "services",
    singular: "service",
    short_names: &["svc"],
    categories: &["all"],
    namespaced: true,
    key_prefix: "/registry/services/specs",
    subresources: &["status", "proxy"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[
        label("spec.clusterIP", &["spec", "clusterIP"]),
        label("spec.type", &["spec", "type"]),
    ],
    strategy: &strategy::SERVICE,
    view: None,
};

pub static ENDPOINTS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Endpoints",
    list_kind: "EndpointsList",
    plural: "endpoints",
    singular: "endpoints",
    short_names: &["ep"],
    categories: &[],
    namespaced: true,
    key_prefix: "/registry/services/endpoints",
    subresources: &[],
    verbs: CRUD,
    allow_create_on_update: true,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::ENDPOINTS,
    view: None,
};

pub static PODS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Pod",
    list_kind: "PodList",
    plural: "pods",
    singular: "pod",
    short_names: &["po"],
    categories: &["all"],
    namespaced: true,
    key_prefix: "/registry/pods",
    subresources: &[
        "status",
        "binding",
        "eviction",
        "ephemeralcontainers",
        "log",
        "exec",
        "attach",
        "portforward",
        "proxy",
    ],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[
        label("spec.nodeName", &["spec", "nodeName"]),
        label("spec.restartPolicy", &["spec", "restartPolicy"]),
        label("spec.schedulerName", &["spec", "schedulerName"]),
        label("spec.serviceAccountName", &["spec", "serviceAccountName"]),
        bool_label("spec.hostNetwork", &["spec", "hostNetwork"]),
        label("status.phase", &["status", "phase"]),
        label("status.podIP", &["status", "podIP"]),
        label("status.nominatedNodeName", &["status", "nominatedNodeName"]),
    ],
    strategy: &strategy::POD,
    view: None,
};

pub static CONFIGMAPS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    list_kind: "ConfigMapList",
    plural: "configmaps",
    singular: "configmap",
    short_names: &["cm"],
    categories: &[],
    namespaced: true,
    key_prefix: "/registry/configmaps",
    subresources: &[],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::CONFIGMAP,
    view: None,
};

pub static SECRETS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Secret",
    list_kind: "SecretList",
    plural: "secrets",
    singular: "secret",
    short_names: &[],
    categories: &[],
    namespaced: true,
    key_prefix: "/registry/secrets",
    subresources: &[],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    // Kubernetes' secret `SelectableFields`.
    field_labels: &[label("type", &["type"])],
    strategy: &strategy::SECRET,
    view: None,
};

pub static NODES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Node",
    list_kind: "NodeList",
    plural: "nodes",
    singular: "node",
    short_names: &["no"],
    categories: &[],
    namespaced: false,
    // Kubernetes keeps nodes under their historical name.
    key_prefix: "/registry/minions",
    subresources: &["status", "proxy"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[bool_label("spec.unschedulable", &["spec", "unschedulable"])],
    strategy: &strategy::NODE,
    view: None,
};

/// Events' field labels (`pkg/registry/core/event` `ToSelectableFields`); events.k8s.io/v1
/// Events are selected by the same names, on the stored core/v1 object.
const EVENT_FIELD_LABELS: &[FieldLabel] = &[
    label("involvedObject.kind", &["involvedObject", "kind"]),
    label("involvedObject.namespace", &["involvedObject", "namespace"]),
    label("involvedObject.name", &["involvedObject", "name"]),
    label("involvedObject.uid", &["involvedObject", "uid"]),
    label(
        "involvedObject.apiVersion",
        &["involvedObject", "apiVersion"],
    ),
    label(
        "involvedObject.resourceVersion",
        &["involvedObject", "resourceVersion"],
    ),
    label("involvedObject.fieldPath", &["involvedObject", "fieldPath"]),
    label("reason", &["reason"]),
    label("reportingComponent", &["reportingComponent"]),
    label("source", &["source", "component"]),
    label("type", &["type"]),
];

pub static EVENTS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Event",
    list_kind: "EventList",
    plural: "events",
    singular: "event",
    short_names: &["ev"],
    categories: &[],
    namespaced: true,
    key_prefix: "/registry/events",
    subresources: &[],
    verbs: CRUD,
    allow_create_on_update: true,
    has_generation: false,
    field_labels: EVENT_FIELD_LABELS,
    strategy: &strategy::EVENT,
    view: None,
};

/// events.k8s.io/v1 Events: core/v1 Events through [`svcnet_api::conversion`].
pub static EVENTS_V1: ResourceInfo = ResourceInfo {
    group: "events.k8s.io",
    strategy: &strategy::EVENT_V1,
    view: Some(&View {
        storage: &EVENTS,
        to_storage: svcnet_api::conversion::event_v1_to_core,
        from_storage: svcnet_api::conversion::event_core_to_v1,
    }),
    // Names, scope, storage key and field labels: core/v1 Events'.
    ..EVENTS
};

pub static ENDPOINTSLICES: ResourceInfo = ResourceInfo {
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    list_kind: "EndpointSliceList",
    plural: "endpointslices",
    singular: "endpointslice",
    short_names: &[],
    categories: &[],
    namespaced: true,
    key_prefix: "/registry/endpointslices",
    subresources: &[],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: true,
    field_labels: &[],
    strategy: &strategy::ENDPOINTSLICE,
    view: None,
};

pub static DEPLOYMENTS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    list_kind: "DeploymentList",
    plural: "deployments",
    singular: "deployment",
    short_names: &["deploy"],
    categories: &["all"],
    namespaced: true,
    key_prefix: "/registry/deployments",
    subresources: &["status", "scale"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: true,
    field_labels: &[],
    strategy: &strategy::DEPLOYMENT,
    view: None,
};

pub static REPLICASETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "ReplicaSet",
    list_kind: "ReplicaSetList",
    plural: "replicasets",
    singular: "replicaset",
    short_names: &["rs"],
    categories: &["all"],
    namespaced: true,
    key_prefix: "/registry/replicasets",
    subresources: &["status", "scale"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: true,
    field_labels: &[int_label("status.replicas", &["status", "replicas"])],
    strategy: &strategy::REPLICASET,
    view: None,
};

/// core/v1 ReplicationControllers, run by the ReplicaSet controller's code (svcnet-controllers'
/// `replicaset`), as upstream's replication manager.
pub static REPLICATIONCONTROLLERS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ReplicationController",
    list_kind: "ReplicationControllerList",
    plural: "replicationcontrollers",
    singular: "replicationcontroller",
    short_names: &["rc"],
    categories: &["all"],
    namespaced: true,
    key_prefix: "/registry/controllers",
    subresources: &["status", "scale"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: true,
    field_labels: &[int_label("status.replicas", &["status", "replicas"])],
    strategy: &strategy::REPLICATIONCONTROLLER,
    view: None,
};

/// batch/v1 Jobs (`pkg/registry/batch/job`): status subresource, the generated selector on
/// create, `status.successful` selectable as upstream's `JobToSelectableFields`.
pub static JOBS: ResourceInfo = ResourceInfo {
    group: "batch",
    version: "v1",
    kind: "Job",
    list_kind: "JobList",
    plural: "jobs",
    singular: "job",
    short_names: &[],
    categories: &["all"],
    namespaced: true,
    key_prefix: "/registry/jobs",
    subresources: &["status"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: true,
    field_labels: &[int_label("status.successful", &["status", "succeeded"])],
    strategy: &strategy::JOB,
    view: None,
};

/// apps/v1 DaemonSets (`pkg/registry/apps/daemonset`): short name `ds`, status subresource.
pub static DAEMONSETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "DaemonSet",
    list_kind: "DaemonSetList",
    plural: "daemonsets",
    singular: "daemonset",
    short_names: &["ds"],
    categories: &["all"],
    namespaced: true,
    key_prefix: "/registry/daemonsets",
    subresources: &["status"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: true,
    field_labels: &[],
    strategy: &strategy::DAEMONSET,
    view: None,
};

pub static PODDISRUPTIONBUDGETS: ResourceInfo = ResourceInfo {
    group: "policy",
    version: "v1",
    kind: "PodDisruptionBudget",
    list_kind: "PodDisruptionBudgetList",
    plural: "poddisruptionbudgets",
    singular: "poddisruptionbudget",
    short_names: &["pdb"],
    categories: &[],
    namespaced: true,
    key_prefix: "/registry/poddisruptionbudgets",
    subresources: &["status"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: true,
    field_labels: &[],
    strategy: &strategy::PODDISRUPTIONBUDGET,
    view: None,
};

pub static LEASES: ResourceInfo = ResourceInfo {
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    list_kind: "LeaseList",
    plural: "leases",
    singular: "lease",
    short_names: &[],
    categories: &[],
    namespaced: true,
    key_prefix: "/registry/leases",
    subresources: &[],
    verbs: CRUD,
    // As Kubernetes' lease strategy: leader election PUTs a Lease that may not exist yet.
    allow_create_on_update: true,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::LEASE,
    view: None,
};

pub static RUNTIMECLASSES: ResourceInfo = ResourceInfo {
    group: "node.k8s.io",
    version: "v1",
    kind: "RuntimeClass",
    list_kind: "RuntimeClassList",
    plural: "runtimeclasses",
    singular: "runtimeclass",
    short_names: &[],
    categories: &[],
    namespaced: false,
    key_prefix: "/registry/runtimeclasses",
    subresources: &[],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::RUNTIMECLASS,
    view: None,
};

/// rbac.authorization.k8s.io/v1: stored and validated as Kubernetes does; not yet enforced.
pub static ROLES: ResourceInfo = ResourceInfo {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "Role",
    list_kind: "RoleList",
    plural: "roles",
    singular: "role",
    short_names: &[],
    categories: &[],
    namespaced: true,
    key_prefix: "/registry/roles",
    subresources: &[],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::ROLE,
    view: None,
};

pub static CLUSTERROLES: ResourceInfo = ResourceInfo {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "ClusterRole",
    list_kind: "ClusterRoleList",
    plural: "clusterroles",
    singular: "clusterrole",
    short_names: &[],
    categories: &[],
    namespaced: false,
    key_prefix: "/registry/clusterroles",
    subresources: &[],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::CLUSTERROLE,
    view: None,
};

pub static ROLEBINDINGS: ResourceInfo = ResourceInfo {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "RoleBinding",
    list_kind: "RoleBindingList",
    plural: "rolebindings",
    singular: "rolebinding",
    short_names: &[],
    categories: &[],
    namespaced: true,
    key_prefix: "/registry/rolebindings",
    subresources: &[],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::ROLEBINDING,
    view: None,
};

pub static CLUSTERROLEBINDINGS: ResourceInfo = ResourceInfo {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "ClusterRoleBinding",
    list_kind: "ClusterRoleBindingList",
    plural: "clusterrolebindings",
    singular: "clusterrolebinding",
    short_names: &[],
    categories: &[],
    namespaced: false,
    key_prefix: "/registry/clusterrolebindings",
    subresources: &[],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::CLUSTERROLEBINDING,
    view: None,
};

/// certificates.k8s.io/v1: `approval` adds Approved / Denied conditions, `status` the certificate.
pub static CERTIFICATESIGNINGREQUESTS: ResourceInfo = ResourceInfo {
    group: "certificates.k8s.io",
    version: "v1",
    kind: "CertificateSigningRequest",
    list_kind: "CertificateSigningRequestList",
    plural: "certificatesigningrequests",
    singular: "certificatesigningrequest",
    short_names: &["csr"],
    categories: &[],
    namespaced: false,
    key_prefix: "/registry/certificatesigningrequests",
    subresources: &["approval", "status"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::CERTIFICATESIGNINGREQUEST,
    view: None,
};

/// apiregistration.k8s.io/v1 (kube-aggregator): one local APIService per served group-version
/// is registered at start (`bootstrap.rs`); svcnet does not proxy to service-backed ones.
pub static APISERVICES: ResourceInfo = ResourceInfo {
    group: "apiregistration.k8s.io",
    version: "v1",
    kind: "APIService",
    list_kind: "APIServiceList",
    plural: "apiservices",
    singular: "apiservice",
    short_names: &[],
    categories: &[],
    namespaced: false,
    key_prefix: "/registry/apiregistration.k8s.io/apiservices",
    subresources: &["status"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::APISERVICE,
    view: None,
};

/// core/v1 ComponentStatus (deprecated upstream since 1.19, still served): not stored; each
/// read checks the components' health (`rest/componentstatus.rs`).
pub static COMPONENTSTATUSES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ComponentStatus",
    list_kind: "ComponentStatusList",
    plural: "componentstatuses",
    singular: "componentstatus",
    short_names: &["cs"],
    categories: &[],
    namespaced: false,
    key_prefix: "/registry/componentstatuses",
    subresources: &[],
    verbs: GET_LIST,
    allow_create_on_update: false,
    has_generation: false,
    field_labels: &[],
    strategy: &strategy::COMPONENTSTATUS,
    view: None,
};

/// apiextensions.k8s.io/v1 CustomResourceDefinitions ([`crate::crd`]); the kinds they define
/// are served through the server's [`crate::catalog::Catalog`].
pub static CUSTOMRESOURCEDEFINITIONS: ResourceInfo = ResourceInfo {
    group: "apiextensions.k8s.io",
    version: "v1",
    kind: "CustomResourceDefinition",
    list_kind: "CustomResourceDefinitionList",
    plural: "customresourcedefinitions",
    singular: "customresourcedefinition",
    short_names: &["crd", "crds"],
    categories: &["api-extensions"],
    namespaced: false,
    key_prefix: "/registry/apiextensions.k8s.io/customresourcedefinitions",
    subresources: &["status"],
    verbs: CRUD,
    allow_create_on_update: false,
    has_generation: true,
    field_labels: &[],
    strategy: &crate::crd::STRATEGY,
    view: None,
};

/// Every built-in resource, in discovery order (custom resources: [`crate::catalog`]).
pub static ALL: &[&ResourceInfo] = &[
    &NAMESPACES,
    &SERVICES,
    &ENDPOINTS,
    &PODS,
    &NODES,
    &COMPONENTSTATUSES,
    &EVENTS,
    &CONFIGMAPS,
    &SECRETS,
    &REPLICATIONCONTROLLERS,
    &ENDPOINTSLICES,
    &DEPLOYMENTS,
    &REPLICASETS,
    &DAEMONSETS,
    &JOBS,
    &PODDISRUPTIONBUDGETS,
    &LEASES,
    &RUNTIMECLASSES,
    &EVENTS_V1,
    &ROLES,
    &CLUSTERROLES,
    &ROLEBINDINGS,
    &CLUSTERROLEBINDINGS,
    &CERTIFICATESIGNINGREQUESTS,
    &APISERVICES,
    &CUSTOMRESOURCEDEFINITIONS,
];

/// The built-in group/versions: ("", "v1") first, then named groups.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in ALL {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    ALL.iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource a storage key belongs to, with the namespace and name the key encodes.
pub fn from_key(key: &str) -> Option<(&'static ResourceInfo, Option<&str>, &str)> {
    for r in ALL {
        if let Some(rest) = key
            .strip_prefix(r.key_prefix)
            .and_then(|k| k.strip_prefix('/'))
        {
            if r.namespaced {
                let (ns, name) = rest.split_once('/')?;
                if name.contains('/') {
                    continue;
                }
                return Some((r, Some(ns), name));
            } else if !rest.contains('/') {
                return Some((r, None, rest));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(
            SERVICES.key(Some("default"), "web"),
            "/registry/services/specs/default/web"
        );
        assert_eq!(NODES.key(None, "n1"), "/registry/minions/n1");
        let (r, ns, name) = from_key("/registry/services/endpoints/default/web").unwrap();
        assert_eq!((r.plural, ns, name), ("endpoints", Some("default"), "web"));
        let (r, ns, name) = from_key("/registry/services/specs/kube-system/kube-dns").unwrap();
        assert_eq!(
            (r.plural, ns, name),
            ("services", Some("kube-system"), "kube-dns")
        );
        assert!(from_key("/registry/svcnet/clusterips/10.96.0.1").is_none());
    }

    #[test]
    fn field_values() {
        let pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "hostNetwork": false}});
        assert_eq!(
            PODS.field_value(&pod, "spec.nodeName").as_deref(),
            Some("n1")
        );
        assert_eq!(
            PODS.field_value(&pod, "spec.hostNetwork").as_deref(),
            Some("false")
        );
        assert_eq!(PODS.field_value(&pod, "status.phase").as_deref(), Some(""));
        assert_eq!(PODS.field_value(&pod, "spec.bogus"), None);
    }

    /// Unset fields read as their Go zero value, as the field label conversion functions
    /// format them: `spec.unschedulable==false` matches a new Node.
    #[test]
    fn unset_fields_read_as_go_zero_values() {
        let empty = serde_json::json!({"metadata": {"name": "x"}, "spec": {}});
        let cases: [(&ResourceInfo, &str, &str); 4] = [
            (&NODES, "spec.unschedulable", "false"),
            (&PODS, "spec.hostNetwork", "false"),
            (&REPLICASETS, "status.replicas", "0"),
            (&PODS, "spec.nodeName", ""),
        ];
        for (info, label, zero) in cases {
            let got = info.field_value(&empty, label);
            assert_eq!(got.as_deref(), Some(zero), "{label}");
        }
    }
}
