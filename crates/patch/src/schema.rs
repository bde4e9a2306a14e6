//! Strategic-merge metadata (patchStrategy / patchMergeKey) of the kinds svcnet serves.
//!
//! Kubernetes reads this metadata from the Go struct tags of `k8s.io/api` (`patchStrategy:"merge"
//! patchMergeKey:"name"`). Here it is a small static tree: a [`Type`] lists only the fields that
//! carry metadata or lead to one that does. Every other field is "untagged": objects merge key by
//! key, lists are replaced whole — which is also what Kubernetes does for an untagged field.
//! (One difference: for a field that the Go struct does not have at all, Kubernetes fails with
//! `unable to find api field in struct ...`; here it merges like an untagged one.)
//!
//! To serve a new kind, describe the path to its tagged fields and add it to [`KINDS`]:
//!
//! ```text
//! static MY_SPEC: Type = Type::new("MySpec", &[Field::merge_by("items", "name", &ANY)]);
//! static MY_KIND: Type = Type::new("MyKind", &[Field::object("metadata", &OBJECT_META),
//!                                              Field::object("spec", &MY_SPEC)]);
//! ```
//!
//! Sources: `k8s.io/api` core/v1, apps/v1, discovery/v1, autoscaling/v1 `types.go`, and
//! `k8s.io/apimachinery` meta/v1 `types.go` (Kubernetes 1.33).

/// How a field's value is merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// No `patchStrategy` tag: objects merge key by key, lists are replaced whole ("atomic").
    Default,
    /// `patchStrategy:"merge"`: a list of objects merges element by element on the field's
    /// [`Field::merge_key`]; a list of primitives merges as a set (and takes
    /// `$deleteFromPrimitiveList`).
    Merge,
    /// `patchStrategy:"replace"`: the value is replaced whole, also an object.
    Replace,
}

/// svcnet's fix for a Kubernetes bug on lists whose real identity is two keys but whose
/// `patchMergeKey` is one (Service `spec.ports`: identity (port, protocol), merge key `port`;
/// kubernetes#39188, #47249).
///
/// A patch element that carries `field` only matches (merges into, or with `$patch: delete`
/// deletes) a live element whose `field` — `default` when absent — is the same. A patch element
/// without `field` matches on the merge key alone, as upstream does. So patching in
/// `{port: 53, protocol: UDP}` next to a live `{port: 53, protocol: TCP}` adds a second port
/// instead of turning the TCP one into UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discriminator {
    pub field: &'static str,
    pub default: &'static str,
}

/// The merge metadata of one field.
#[derive(Debug)]
pub struct Field {
    /// The JSON name.
    pub name: &'static str,
    pub strategy: Strategy,
    /// `patchMergeKey` (lists of objects with [`Strategy::Merge`]).
    pub merge_key: Option<&'static str>,
    /// `patchStrategy:"...,retainKeys"`: clients (kubectl apply) send `$retainKeys` for it. The
    /// server honours `$retainKeys` wherever it appears, so this is informational.
    pub retain_keys: bool,
    /// See [`Discriminator`]; `None` everywhere except Service `spec.ports`.
    pub discriminator: Option<Discriminator>,
    /// The field's type; for a list, the type of its elements.
    pub ty: &'static Type,
}

impl Field {
    /// An untagged field whose value (or, for a list, whose elements) has tagged fields inside.
    pub const fn object(name: &'static str, ty: &'static Type) -> Field {
        Field {
            name,
            strategy: Strategy::Default,
            merge_key: None,
            retain_keys: false,
            discriminator: None,
            ty,
        }
    }

    /// An untagged list, listed for documentation only (any field not listed behaves the same).
    pub const fn atomic(name: &'static str) -> Field {
        Field::object(name, &ANY)
    }

    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: a list of objects merged on `key`.
    pub const fn merge_by(name: &'static str, key: &'static str, ty: &'static Type) -> Field {
        Field {
            strategy: Strategy::Merge,
            merge_key: Some(key),
            ..Field::object(name, ty)
        }
    }

    /// `patchStrategy:"merge"` on a list of primitives: merged as a set.
    pub const fn merge_set(name: &'static str) -> Field {
        Field {
            strategy: Strategy::Merge,
            ..Field::object(name, &ANY)
        }
    }

    /// `patchStrategy:"replace"`.
    pub const fn replace(name: &'static str) -> Field {
        Field {
            strategy: Strategy::Replace,
            ..Field::object(name, &ANY)
        }
    }

    /// Adds `retainKeys` to the field's strategy.
    pub const fn retain_keys(self) -> Field {
        Field {
            retain_keys: true,
            ..self
        }
    }

    /// Adds a [`Discriminator`].
    pub const fn discriminated_by(self, field: &'static str, default: &'static str) -> Field {
        Field {
            discriminator: Some(Discriminator { field, default }),
            ..self
        }
    }
}

/// The merge metadata of one type: its fields that carry metadata.
#[derive(Debug)]
pub struct Type {
    /// The Go type name, for documentation and debugging.
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// The type of values without any tagged field below them.
pub static ANY: Type = Type::new("", &[]);

/// What an unlisted field is: untagged, nothing tagged below.
static UNTAGGED: Field = Field::atomic("");

impl Type {
    pub const fn new(name: &'static str, fields: &'static [Field]) -> Type {
        Type { name, fields }
    }

    /// The metadata of field `name`; an unlisted field is untagged.
    pub fn field(&self, name: &str) -> &Field {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or(&UNTAGGED)
    }
}

/// The root type of `apiVersion`/`kind`, e.g. ("v1", "Service"), ("apps/v1", "Deployment"),
/// ("autoscaling/v1", "Scale").
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static Type> {
    KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, t)| *t)
}

/// Every kind that takes strategic merge patches: (apiVersion, kind, root type).
pub static KINDS: &[(&str, &str, &Type)] = &[
    ("v1", "Service", &SERVICE),
    ("v1", "Pod", &POD),
    ("v1", "Endpoints", &ENDPOINTS),
    ("v1", "Node", &NODE),
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "Event", &EVENT),
    ("events.k8s.io/v1", "Event", &EVENT),
    ("apps/v1", "Deployment", &DEPLOYMENT),
    ("apps/v1", "ReplicaSet", &REPLICA_SET),
    ("v1", "ReplicationController", &REPLICATION_CONTROLLER),
    ("apps/v1", "DaemonSet", &DAEMON_SET),
    ("batch/v1", "Job", &JOB),
    ("discovery.k8s.io/v1", "EndpointSlice", &ENDPOINT_SLICE),
    ("autoscaling/v1", "Scale", &SCALE),
];

// ---- meta/v1 --------------------------------------------------------------------------------

pub static OBJECT_META: Type = Type::new(
    "ObjectMeta",
    &[
        Field::merge_by("ownerReferences", "uid", &ANY),
        Field::merge_set("finalizers"),
        Field::atomic("managedFields"),
        // labels, annotations: maps, merged key by key.
    ],
);

/// A `status.conditions` list of `metav1.Condition` or of a kind's own condition type.
const fn conditions() -> Field {
    Field::merge_by("conditions", "type", &ANY)
}

/// `metadata` of every kind.
const fn metadata() -> Field {
    Field::object("metadata", &OBJECT_META)
}

// ---- core/v1 Service --------------------------------------------------------------------------

pub static SERVICE: Type = Type::new(
    "Service",
    &[
        metadata(),
        Field::object("spec", &SERVICE_SPEC),
        Field::object("status", &SERVICE_STATUS),
    ],
);

pub static SERVICE_SPEC: Type = Type::new(
    "ServiceSpec",
    &[
        // +listType=map +listMapKey=port +listMapKey=protocol, patchMergeKey port: see
        // Discriminator for why svcnet also looks at the protocol.
        Field::merge_by("ports", "port", &ANY).discriminated_by("protocol", "TCP"),
        Field::atomic("externalIPs"),
        Field::atomic("loadBalancerSourceRanges"),
        Field::atomic("clusterIPs"),
        Field::atomic("ipFamilies"),
        // selector: a map, merged key by key.
    ],
);

pub static SERVICE_STATUS: Type = Type::new(
    "ServiceStatus",
    &[
        conditions(),
        // loadBalancer.ingress (and its ports): atomic.
    ],
);

// ---- core/v1 Pod ------------------------------------------------------------------------------

pub static POD: Type = Type::new(
    "Pod",
    &[
        metadata(),
        Field::object("spec", &POD_SPEC),
        Field::object("status", &POD_STATUS),
    ],
);

pub static POD_TEMPLATE_SPEC: Type = Type::new(
    "PodTemplateSpec",
    &[metadata(), Field::object("spec", &POD_SPEC)],
);

pub static POD_SPEC: Type = Type::new(
    "PodSpec",
    &[
        Field::merge_by("volumes", "name", &ANY).retain_keys(),
        Field::merge_by("initContainers", "name", &CONTAINER),
        Field::merge_by("containers", "name", &CONTAINER),
        Field::merge_by("ephemeralContainers", "name", &CONTAINER),
        Field::merge_by("imagePullSecrets", "name", &ANY),
        Field::merge_by("hostAliases", "ip", &ANY),
        Field::merge_by("topologySpreadConstraints", "topologyKey", &ANY),
        Field::merge_by("schedulingGates", "name", &ANY),
        Field::merge_by("resourceClaims", "name", &ANY).retain_keys(),
        Field::atomic("tolerations"),
        Field::atomic("readinessGates"),
    ],
);

/// Container and EphemeralContainer (EphemeralContainerCommon has the same tags).
pub static CONTAINER: Type = Type::new(
    "Container",
    &[
        Field::merge_by("ports", "containerPort", &ANY),
        Field::merge_by("env", "name", &ANY),
        Field::merge_by("volumeMounts", "mountPath", &ANY),
        Field::merge_by("volumeDevices", "devicePath", &ANY),
        Field::atomic("envFrom"),
        Field::atomic("command"),
        Field::atomic("args"),
        Field::atomic("resizePolicy"),
    ],
);

pub static POD_STATUS: Type = Type::new(
    "PodStatus",
    &[
        conditions(),
        Field::merge_by("podIPs", "ip", &ANY),
        Field::merge_by("hostIPs", "ip", &ANY),
        Field::merge_by("resourceClaimStatuses", "name", &ANY).retain_keys(),
        Field::atomic("containerStatuses"),
        Field::atomic("initContainerStatuses"),
        Field::atomic("ephemeralContainerStatuses"),
    ],
);

// ---- core/v1 Endpoints, Node, Namespace, Event --------------------------------------------------

pub static ENDPOINTS: Type = Type::new(
    "Endpoints",
    &[
        metadata(),
        // subsets, and addresses/ports inside them: atomic.
        Field::atomic("subsets"),
    ],
);

pub static NODE: Type = Type::new(
    "Node",
    &[
        metadata(),
        Field::object("spec", &NODE_SPEC),
        Field::object("status", &NODE_STATUS),
    ],
);

pub static NODE_SPEC: Type = Type::new(
    "NodeSpec",
    &[Field::merge_set("podCIDRs"), Field::atomic("taints")],
);

pub static NODE_STATUS: Type = Type::new(
    "NodeStatus",
    &[
        conditions(),
        Field::merge_by("addresses", "type", &ANY),
        Field::atomic("images"),
        Field::atomic("volumesInUse"),
        Field::atomic("volumesAttached"),
    ],
);

/// `data`, `binaryData` (and a Secret's `stringData`): maps, merged key by key.
pub static CONFIG_MAP: Type = Type::new("ConfigMap", &[metadata()]);
pub static SECRET: Type = Type::new("Secret", &[metadata()]);

pub static NAMESPACE: Type = Type::new(
    "Namespace",
    &[
        metadata(),
        // spec.finalizers: atomic.
        Field::object("status", &NAMESPACE_STATUS),
    ],
);

pub static NAMESPACE_STATUS: Type = Type::new("NamespaceStatus", &[conditions()]);

/// core/v1 and events.k8s.io/v1 Event: nothing tagged but the metadata.
pub static EVENT: Type = Type::new("Event", &[metadata()]);

// ---- apps/v1 ------------------------------------------------------------------------------------

pub static DEPLOYMENT: Type = Type::new(
    "Deployment",
    &[
        metadata(),
        Field::object("spec", &DEPLOYMENT_SPEC),
        Field::object("status", &DEPLOYMENT_STATUS),
    ],
);

pub static DEPLOYMENT_SPEC: Type = Type::new(
    "DeploymentSpec",
    &[
        Field::object("template", &POD_TEMPLATE_SPEC),
        // patchStrategy:"retainKeys": kubectl apply sends $retainKeys when the strategy type
        // changes, so that a stale rollingUpdate goes away.
        Field::object("strategy", &ANY).retain_keys(),
        // selector.matchExpressions: atomic.
    ],
);

pub static DEPLOYMENT_STATUS: Type = Type::new("DeploymentStatus", &[conditions()]);

pub static REPLICA_SET: Type = Type::new(
    "ReplicaSet",
    &[
        metadata(),
        Field::object("spec", &REPLICA_SET_SPEC),
        Field::object("status", &REPLICA_SET_STATUS),
    ],
);

pub static REPLICA_SET_SPEC: Type = Type::new(
    "ReplicaSetSpec",
    &[Field::object("template", &POD_TEMPLATE_SPEC)],
);

pub static REPLICA_SET_STATUS: Type = Type::new("ReplicaSetStatus", &[conditions()]);

/// core/v1 ReplicationController: a ReplicaSet's patch strategies (its `spec.selector` is a
/// plain map, merged key by key).
pub static REPLICATION_CONTROLLER: Type = Type::new(
    "ReplicationController",
    &[
        metadata(),
        Field::object("spec", &REPLICATION_CONTROLLER_SPEC),
        Field::object("status", &REPLICATION_CONTROLLER_STATUS),
    ],
);

pub static REPLICATION_CONTROLLER_SPEC: Type = Type::new(
    "ReplicationControllerSpec",
    &[Field::object("template", &POD_TEMPLATE_SPEC)],
);

pub static REPLICATION_CONTROLLER_STATUS: Type =
    Type::new("ReplicationControllerStatus", &[conditions()]);

pub static DAEMON_SET: Type = Type::new(
    "DaemonSet",
    &[
        metadata(),
        Field::object("spec", &DAEMON_SET_SPEC),
        Field::object("status", &DAEMON_SET_STATUS),
    ],
);

pub static DAEMON_SET_SPEC: Type = Type::new(
    "DaemonSetSpec",
    &[Field::object("template", &POD_TEMPLATE_SPEC)],
);

pub static DAEMON_SET_STATUS: Type = Type::new("DaemonSetStatus", &[conditions()]);

// ---- batch/v1 -----------------------------------------------------------------------------------

pub static JOB: Type = Type::new(
    "Job",
    &[
        metadata(),
        Field::object("spec", &JOB_SPEC),
        Field::object("status", &JOB_STATUS),
    ],
);

pub static JOB_SPEC: Type = Type::new("JobSpec", &[Field::object("template", &POD_TEMPLATE_SPEC)]);

pub static JOB_STATUS: Type = Type::new("JobStatus", &[conditions()]);

// ---- discovery.k8s.io/v1, autoscaling/v1 --------------------------------------------------------

pub static ENDPOINT_SLICE: Type = Type::new(
    "EndpointSlice",
    &[
        metadata(),
        // +listType=atomic, no patch strategy.
        Field::atomic("endpoints"),
        Field::atomic("ports"),
    ],
);

pub static SCALE: Type = Type::new("Scale", &[metadata()]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_served_kinds() {
        for (v, k) in [
            ("v1", "Service"),
            ("v1", "Pod"),
            ("v1", "Endpoints"),
            ("v1", "Node"),
            ("v1", "Namespace"),
            ("v1", "Event"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "ReplicaSet"),
            ("v1", "ReplicationController"),
            ("apps/v1", "DaemonSet"),
            ("batch/v1", "Job"),
            ("discovery.k8s.io/v1", "EndpointSlice"),
            ("autoscaling/v1", "Scale"),
        ] {
            let t = lookup(v, k).unwrap_or_else(|| panic!("{v} {k}"));
            assert_eq!(t.field("metadata").ty.name, "ObjectMeta", "{v} {k}");
        }
        assert!(lookup("v1", "Deployment").is_none());
        assert!(lookup("apps/v1", "StatefulSet").is_none());
    }

    #[test]
    fn walks_to_tagged_fields() {
        let svc = lookup("v1", "Service").unwrap();
        let ports = svc.field("spec").ty.field("ports");
        assert_eq!(ports.strategy, Strategy::Merge);
        assert_eq!(ports.merge_key, Some("port"));
        assert_eq!(
            ports.discriminator,
            Some(Discriminator {
                field: "protocol",
                default: "TCP"
            })
        );

        let deploy = lookup("apps/v1", "Deployment").unwrap();
        let pod_spec = deploy
            .field("spec")
            .ty
            .field("template")
            .ty
            .field("spec")
            .ty;
        let containers = pod_spec.field("containers");
        assert_eq!(containers.merge_key, Some("name"));
        assert_eq!(containers.ty.field("env").merge_key, Some("name"));
        assert_eq!(
            containers.ty.field("volumeMounts").merge_key,
            Some("mountPath")
        );
        assert_eq!(
            containers.ty.field("ports").merge_key,
            Some("containerPort")
        );
        assert!(containers.ty.field("ports").discriminator.is_none());
        assert!(pod_spec.field("volumes").retain_keys);
        assert!(deploy.field("spec").ty.field("strategy").retain_keys);

        let meta = svc.field("metadata").ty;
        assert_eq!(meta.field("ownerReferences").merge_key, Some("uid"));
        assert_eq!(meta.field("finalizers").strategy, Strategy::Merge);
        assert_eq!(meta.field("finalizers").merge_key, None);
        assert_eq!(meta.field("managedFields").strategy, Strategy::Default);

        let node = lookup("v1", "Node").unwrap();
        assert_eq!(
            node.field("spec").ty.field("taints").strategy,
            Strategy::Default
        );
        assert_eq!(
            node.field("spec").ty.field("podCIDRs").strategy,
            Strategy::Merge
        );
        assert_eq!(
            node.field("status").ty.field("addresses").merge_key,
            Some("type")
        );

        // Unlisted fields are untagged, all the way down.
        let f = svc.field("nope");
        assert_eq!(f.strategy, Strategy::Default);
        assert_eq!(f.ty.field("deeper").strategy, Strategy::Default);
    }
}
