//! Column definitions, as `AddHandlers` in `pkg/printers/internalversion/printers.go`
//! (Kubernetes v1.32) declares them. Descriptions are the `SwaggerDoc()` strings upstream
//! references.

use crate::Column;

// --- SwaggerDoc strings -----------------------------------------------------------------

const OBJ_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const OBJ_CREATION_TIMESTAMP: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

const POD_STATUS_POD_IP: &str = "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
const POD_SPEC_NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
const POD_STATUS_NOMINATED_NODE_NAME: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
const POD_SPEC_READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";

const SERVICE_SPEC_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
const SERVICE_SPEC_CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const SERVICE_SPEC_EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
const SERVICE_SPEC_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const SERVICE_SPEC_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";

const ENDPOINTS_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";

const NODE_INFO_KUBELET_VERSION: &str = "Kubelet Version reported by the node.";
const NODE_STATUS_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
const NODE_INFO_OS_IMAGE: &str =
    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
const NODE_INFO_KERNEL_VERSION: &str =
    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
const NODE_INFO_CONTAINER_RUNTIME_VERSION: &str = "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";

const EVENT_LAST_TIMESTAMP: &str =
    "The time at which the most recent occurrence of this event was recorded.";
const EVENT_TYPE: &str =
    "Type of this event (Normal, Warning), new types could be added in the future";
const EVENT_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
const EVENT_INVOLVED_OBJECT: &str = "The object that this event is about.";
const OBJECT_REFERENCE_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
const EVENT_SOURCE: &str =
    "The component reporting this event. Should be a short machine understandable string.";
const EVENT_MESSAGE: &str = "A human-readable description of the status of this operation.";
const EVENT_FIRST_TIMESTAMP: &str =
    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
const EVENT_COUNT: &str = "The number of times this event has occurred.";

// extensions/v1beta1, as upstream still references them.
const RS_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
const RS_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
const RS_STATUS_READY_REPLICAS: &str = "The number of ready replicas for this replica set.";
const RS_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const DEPLOYMENT_STATUS_UPDATED_REPLICAS: &str =
    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.";
const DEPLOYMENT_STATUS_AVAILABLE_REPLICAS: &str =
    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.";
const DEPLOYMENT_SPEC_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.";
const TEMPLATE_CONTAINERS: &str = "Names of each container in the template.";
const TEMPLATE_IMAGES: &str = "Images referenced by each container in the template.";

// discovery/v1beta1, as upstream still references them.
const SLICE_ADDRESS_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name.";
const SLICE_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates \"all ports\". Each slice may include a maximum of 100 ports.";
const SLICE_ENDPOINTS: &str = "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";

const JOB_STATUS_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
const JOB_SPEC_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const DS_DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const DS_CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const DS_READY: &str = "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.";
const DS_UPDATED: &str = "The total number of nodes that are running updated daemon pod";
const DS_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
const POD_SPEC_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
const DS_SPEC_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

// --- Column tables ----------------------------------------------------------------------

const fn col(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
    priority: i32,
) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority,
    }
}

const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: OBJ_NAME,
    priority: 0,
};
const AGE: Column = col("Age", "string", OBJ_CREATION_TIMESTAMP, 0);

pub(crate) static DEFAULT: [Column; 2] =
    [NAME, col("Created At", "date", OBJ_CREATION_TIMESTAMP, 0)];

pub(crate) static PODS: [Column; 9] = [
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
        0,
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
        0,
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        0,
    ),
    AGE,
    col("IP", "string", POD_STATUS_POD_IP, 1),
    col("Node", "string", POD_SPEC_NODE_NAME, 1),
    col("Nominated Node", "string", POD_STATUS_NOMINATED_NODE_NAME, 1),
    col("Readiness Gates", "string", POD_SPEC_READINESS_GATES, 1),
];

pub(crate) static SERVICES: [Column; 7] = [
    NAME,
    col("Type", "string", SERVICE_SPEC_TYPE, 0),
    col("Cluster-IP", "string", SERVICE_SPEC_CLUSTER_IP, 0),
    col("External-IP", "string", SERVICE_SPEC_EXTERNAL_IPS, 0),
    col("Port(s)", "string", SERVICE_SPEC_PORTS, 0),
    AGE,
    col("Selector", "string", SERVICE_SPEC_SELECTOR, 1),
];

pub(crate) static ENDPOINTS: [Column; 3] =
    [NAME, col("Endpoints", "string", ENDPOINTS_SUBSETS, 0), AGE];

pub(crate) static NODES: [Column; 10] = [
    NAME,
    col("Status", "string", "The status of the node", 0),
    col("Roles", "string", "The roles of the node", 0),
    AGE,
    col("Version", "string", NODE_INFO_KUBELET_VERSION, 0),
    col("Internal-IP", "string", NODE_STATUS_ADDRESSES, 1),
    col("External-IP", "string", NODE_STATUS_ADDRESSES, 1),
    col("OS-Image", "string", NODE_INFO_OS_IMAGE, 1),
    col("Kernel-Version", "string", NODE_INFO_KERNEL_VERSION, 1),
    col(
        "Container-Runtime",
        "string",
        NODE_INFO_CONTAINER_RUNTIME_VERSION,
        1,
    ),
];

/// Upstream's order: the name is the last (wide) column, not the first.
pub(crate) static EVENTS: [Column; 10] = [
    col("Last Seen", "string", EVENT_LAST_TIMESTAMP, 0),
    col("Type", "string", EVENT_TYPE, 0),
    col("Reason", "string", EVENT_REASON, 0),
    col("Object", "string", EVENT_INVOLVED_OBJECT, 0),
    col("Subobject", "string", OBJECT_REFERENCE_FIELD_PATH, 1),
    col("Source", "string", EVENT_SOURCE, 1),
    col("Message", "string", EVENT_MESSAGE, 0),
    col("First Seen", "string", EVENT_FIRST_TIMESTAMP, 1),
    col("Count", "string", EVENT_COUNT, 1),
    Column {
        priority: 1,
        ..NAME
    },
];

pub(crate) static NAMESPACES: [Column; 3] = [
    NAME,
    col("Status", "string", "The status of the namespace", 0),
    AGE,
];

const CONFIGMAP_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
const SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
const SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";

/// `configMapColumnDefinitions`: DATA counts `data` and `binaryData` keys (a "string" column
/// holding an integer, as upstream declares it).
pub(crate) static CONFIGMAPS: [Column; 3] = [NAME, col("Data", "string", CONFIGMAP_DATA, 0), AGE];

/// `secretColumnDefinitions`.
pub(crate) static SECRETS: [Column; 4] = [
    NAME,
    col("Type", "string", SECRET_TYPE, 0),
    col("Data", "string", SECRET_DATA, 0),
    AGE,
];

/// `podDisruptionBudgetColumnDefinitions`.
pub(crate) static PODDISRUPTIONBUDGETS: [Column; 5] = [
    NAME,
    col(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
        0,
    ),
    col(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
        0,
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
        0,
    ),
    AGE,
];

pub(crate) static LEASES: [Column; 3] = [
    NAME,
    col(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.",
        0,
    ),
    AGE,
];

pub(crate) static RUNTIMECLASSES: [Column; 3] = [
    NAME,
    col(
        "Handler",
        "string",
        "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class.",
        0,
    ),
    AGE,
];

pub(crate) static DEPLOYMENTS: [Column; 8] = [
    NAME,
    col("Ready", "string", "Number of the pod with ready state", 0),
    col(
        "Up-to-date",
        "string",
        DEPLOYMENT_STATUS_UPDATED_REPLICAS,
        0,
    ),
    col(
        "Available",
        "string",
        DEPLOYMENT_STATUS_AVAILABLE_REPLICAS,
        0,
    ),
    AGE,
    col("Containers", "string", TEMPLATE_CONTAINERS, 1),
    col("Images", "string", TEMPLATE_IMAGES, 1),
    col("Selector", "string", DEPLOYMENT_SPEC_SELECTOR, 1),
];

pub(crate) static REPLICASETS: [Column; 8] = [
    NAME,
    col("Desired", "integer", RS_SPEC_REPLICAS, 0),
    col("Current", "integer", RS_STATUS_REPLICAS, 0),
    col("Ready", "integer", RS_STATUS_READY_REPLICAS, 0),
    AGE,
    col("Containers", "string", TEMPLATE_CONTAINERS, 1),
    col("Images", "string", TEMPLATE_IMAGES, 1),
    col("Selector", "string", RS_SPEC_SELECTOR, 1),
];

const RC_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const RC_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const RC_STATUS_READY_REPLICAS: &str =
    "The number of ready replicas for this replication controller.";
const RC_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

/// `replicationControllerColumnDefinitions`: a ReplicaSet's columns, with the
/// ReplicationController fields' descriptions.
pub(crate) static REPLICATIONCONTROLLERS: [Column; 8] = [
    NAME,
    col("Desired", "integer", RC_SPEC_REPLICAS, 0),
    col("Current", "integer", RC_STATUS_REPLICAS, 0),
    col("Ready", "integer", RC_STATUS_READY_REPLICAS, 0),
    AGE,
    col("Containers", "string", TEMPLATE_CONTAINERS, 1),
    col("Images", "string", TEMPLATE_IMAGES, 1),
    col("Selector", "string", RC_SPEC_SELECTOR, 1),
];

pub(crate) static ENDPOINTSLICES: [Column; 5] = [
    NAME,
    col("AddressType", "string", SLICE_ADDRESS_TYPE, 0),
    col("Ports", "string", SLICE_PORTS, 0),
    col("Endpoints", "string", SLICE_ENDPOINTS, 0),
    AGE,
];

pub(crate) static JOBS: [Column; 8] = [
    NAME,
    col("Status", "string", "Status of the job.", 0),
    col("Completions", "string", JOB_STATUS_SUCCEEDED, 0),
    col(
        "Duration",
        "string",
        "Time required to complete the job.",
        0,
    ),
    AGE,
    col("Containers", "string", TEMPLATE_CONTAINERS, 1),
    col("Images", "string", TEMPLATE_IMAGES, 1),
    col("Selector", "string", JOB_SPEC_SELECTOR, 1),
];

pub(crate) static DAEMONSETS: [Column; 11] = [
    NAME,
    col("Desired", "integer", DS_DESIRED, 0),
    col("Current", "integer", DS_CURRENT, 0),
    col("Ready", "integer", DS_READY, 0),
    col("Up-to-date", "integer", DS_UPDATED, 0),
    col("Available", "integer", DS_AVAILABLE, 0),
    col("Node Selector", "string", POD_SPEC_NODE_SELECTOR, 0),
    AGE,
    col("Containers", "string", TEMPLATE_CONTAINERS, 1),
    col("Images", "string", TEMPLATE_IMAGES, 1),
    col("Selector", "string", DS_SPEC_SELECTOR, 1),
];

/// `roleBindingsColumnDefinitions` (also ClusterRoleBindings').
pub(crate) static ROLEBINDINGS: [Column; 6] = [
    NAME,
    col("Role", "string", "RoleRef to the referred Role.", 0),
    AGE,
    col("Users", "string", "Users in the roleBinding.", 1),
    col("Groups", "string", "Groups in the roleBinding.", 1),
    col(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding.",
        1,
    ),
];

/// `certificateSigningRequestColumnDefinitions`.
pub(crate) static CERTIFICATESIGNINGREQUESTS: [Column; 6] = [
    NAME,
    AGE,
    col("SignerName", "string", "signerName indicates the requested signer, and is a qualified name.", 0),
    col("Requestor", "string", "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block. When serialized as JSON or YAML, the data is additionally base64-encoded.", 0),
    col("RequestedDuration", "string", "expirationSeconds is the requested duration of validity of the issued certificate.", 0),
    col("Condition", "string", "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\".", 0),
];

/// kube-aggregator's APIService table.
pub(crate) static APISERVICES: [Column; 4] = [
    NAME,
    col(
        "Service",
        "string",
        "The reference to the service that hosts this API endpoint.",
        0,
    ),
    col(
        "Available",
        "string",
        "Whether this service is available.",
        0,
    ),
    AGE,
];

/// `componentStatusColumnDefinitions`.
pub(crate) static COMPONENTSTATUSES: [Column; 4] = [
    NAME,
    col("Status", "string", "Status of the component conditions", 0),
    col(
        "Message",
        "string",
        "Message of the component conditions",
        0,
    ),
    col("Error", "string", "Error of the component conditions", 0),
];

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use crate::columns;

    #[test]
    fn column_names_and_priorities() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, i32)]);
        let cases: &[Case] = &[
            (
                "",
                "services",
                &[
                    ("Name", 0),
                    ("Type", 0),
                    ("Cluster-IP", 0),
                    ("External-IP", 0),
                    ("Port(s)", 0),
                    ("Age", 0),
                    ("Selector", 1),
                ],
            ),
            (
                "",
                "pods",
                &[
                    ("Name", 0),
                    ("Ready", 0),
                    ("Status", 0),
                    ("Restarts", 0),
                    ("Age", 0),
                    ("IP", 1),
                    ("Node", 1),
                    ("Nominated Node", 1),
                    ("Readiness Gates", 1),
                ],
            ),
            (
                "",
                "endpoints",
                &[("Name", 0), ("Endpoints", 0), ("Age", 0)],
            ),
            (
                "",
                "nodes",
                &[
                    ("Name", 0),
                    ("Status", 0),
                    ("Roles", 0),
                    ("Age", 0),
                    ("Version", 0),
                    ("Internal-IP", 1),
                    ("External-IP", 1),
                    ("OS-Image", 1),
                    ("Kernel-Version", 1),
                    ("Container-Runtime", 1),
                ],
            ),
            ("", "namespaces", &[("Name", 0), ("Status", 0), ("Age", 0)]),
            (
                "",
                "events",
                &[
                    ("Last Seen", 0),
                    ("Type", 0),
                    ("Reason", 0),
                    ("Object", 0),
                    ("Subobject", 1),
                    ("Source", 1),
                    ("Message", 0),
                    ("First Seen", 1),
                    ("Count", 1),
                    ("Name", 1),
                ],
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                &[
                    ("Name", 0),
                    ("AddressType", 0),
                    ("Ports", 0),
                    ("Endpoints", 0),
                    ("Age", 0),
                ],
            ),
            (
                "apps",
                "deployments",
                &[
                    ("Name", 0),
                    ("Ready", 0),
                    ("Up-to-date", 0),
                    ("Available", 0),
                    ("Age", 0),
                    ("Containers", 1),
                    ("Images", 1),
                    ("Selector", 1),
                ],
            ),
            (
                "apps",
                "replicasets",
                &[
                    ("Name", 0),
                    ("Desired", 0),
                    ("Current", 0),
                    ("Ready", 0),
                    ("Age", 0),
                    ("Containers", 1),
                    ("Images", 1),
                    ("Selector", 1),
                ],
            ),
            ("", "configmaps", &[("Name", 0), ("Data", 0), ("Age", 0)]),
            (
                "",
                "secrets",
                &[("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)],
            ),
            ("", "limitranges", &[("Name", 0), ("Created At", 0)]),
            ("apps", "services", &[("Name", 0), ("Created At", 0)]),
        ];
        for (group, resource, want) in cases {
            let got: Vec<(&str, i32)> = columns(group, resource)
                .iter()
                .map(|c| (c.name, c.priority))
                .collect();
            assert_eq!(&got, want, "{group}/{resource}");
            for c in columns(group, resource) {
                assert_eq!(
                    c.format == "name",
                    c.name == "Name",
                    "{group}/{resource} {c:?}"
                );
                assert!(!c.description.is_empty(), "{c:?}");
                assert!(!c.description.contains('\\'), "unescaped: {c:?}");
            }
        }
    }

    #[test]
    fn column_types_as_upstream() {
        let types = |g, r| -> Vec<&str> { columns(g, r).iter().map(|c| c.type_).collect() };
        assert_eq!(
            types("", "pods")[3],
            "string",
            "RESTARTS is a string column since 1.24"
        );
        assert_eq!(types("apps", "replicasets")[1..4], ["integer"; 3]);
        assert_eq!(types("apps", "deployments")[2..4], ["string"; 2]);
        assert_eq!(types("", "limitranges"), ["string", "date"]);
        assert_eq!(types("", "configmaps"), ["string", "string", "string"]);
    }
}
