//! Server-side printing for `kubectl get`: the Table columns and cells Kubernetes'
//! `pkg/printers/internalversion` produces, so kubectl shows what it shows against Kubernetes.
//!
//! Start at [`columns`] and [`cells`]. The server always prints "wide" (kube-apiserver's
//! `TableConvertor` uses `GenerateOptions{Wide: true}`): [`cells`] returns a value for every
//! column, and kubectl hides the `priority` 1 columns unless `-o wide`.
//!
//! Objects are read as stored JSON through lenient accessors (`json.rs`): a missing field,
//! `null` or a wrongly typed value reads as Go's zero value, so odd input prints what upstream
//! prints for zero values and never panics. Where upstream decodes with API defaulting
//! (Service `type`, port `protocol`, `clusterIPs`, `spec.replicas`, Namespace `phase`), the
//! default is applied.
//!
//! Printers, as upstream, one file per API group: services, endpoints, nodes, namespaces,
//! events (`core.rs`) and pods (`pod.rs`, the largest); endpointslices (`discovery.rs`);
//! deployments, replicasets, replicationcontrollers, daemonsets (`apps.rs`); jobs (`batch.rs`);
//! leases (`coordination.rs`); runtimeclasses (`node.rs`); poddisruptionbudgets (`policy.rs`);
//! role bindings (`rbac.rs`); certificatesigningrequests (`certificates.rs`); apiservices
//! (`apiregistration.rs`, kube-aggregator's table). The column tables are in
//! `columns.rs`, label and selector strings in `labels.rs`, ages in `duration.rs`. Anything
//! else gets the default `Name`, `Created At` table of `k8s.io/apiserver/pkg/registry/rest`.

use serde_json::Value;

mod apiregistration;
mod apps;
mod batch;
mod certificates;
mod columns;
mod coordination;
mod core;
mod discovery;
mod duration;
mod json;
mod labels;
mod node;
mod pod;
mod policy;
mod rbac;
#[cfg(test)]
mod testing;

/// `metav1.TableColumnDefinition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// OpenAPI type: "string", "integer", "number", "boolean", "date".
    pub type_: &'static str,
    /// "name" for the name column, "" otherwise (or an OpenAPI format).
    pub format: &'static str,
    pub description: &'static str,
    /// 0 = always shown; 1 = `-o wide` only.
    pub priority: i32,
}

/// The printers this crate has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Service,
    Pod,
    Endpoints,
    Node,
    Namespace,
    Event,
    EndpointSlice,
    Deployment,
    ReplicaSet,
    ReplicationController,
    Lease,
    RuntimeClass,
    ConfigMap,
    Secret,
    PodDisruptionBudget,
    RoleBinding,
    CertificateSigningRequest,
    ApiService,
    ComponentStatus,
    Job,
    DaemonSet,
    Default,
}

fn kind(group: &str, resource: &str) -> Kind {
    match (group, resource) {
        ("", "services") => Kind::Service,
        ("", "pods") => Kind::Pod,
        ("", "endpoints") => Kind::Endpoints,
        ("", "nodes") => Kind::Node,
        ("", "namespaces") => Kind::Namespace,
        ("", "events") => Kind::Event,
        ("discovery.k8s.io", "endpointslices") => Kind::EndpointSlice,
        ("apps", "deployments") => Kind::Deployment,
        ("apps", "replicasets") => Kind::ReplicaSet,
        ("", "replicationcontrollers") => Kind::ReplicationController,
        ("coordination.k8s.io", "leases") => Kind::Lease,
        ("node.k8s.io", "runtimeclasses") => Kind::RuntimeClass,
        ("", "configmaps") => Kind::ConfigMap,
        ("", "secrets") => Kind::Secret,
        ("policy", "poddisruptionbudgets") => Kind::PodDisruptionBudget,
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => Kind::RoleBinding,
        ("certificates.k8s.io", "certificatesigningrequests") => Kind::CertificateSigningRequest,
        ("apiregistration.k8s.io", "apiservices") => Kind::ApiService,
        ("", "componentstatuses") => Kind::ComponentStatus,
        ("batch", "jobs") => Kind::Job,
        ("apps", "daemonsets") => Kind::DaemonSet,
        _ => Kind::Default,
    }
}

/// The columns for a resource (`group` "" = core), or the default `Name`, `Created At`.
pub fn columns(group: &str, resource: &str) -> &'static [Column] {
    match kind(group, resource) {
        Kind::Service => &columns::SERVICES,
        Kind::Pod => &columns::PODS,
        Kind::Endpoints => &columns::ENDPOINTS,
        Kind::Node => &columns::NODES,
        Kind::Namespace => &columns::NAMESPACES,
        Kind::Event => &columns::EVENTS,
        Kind::EndpointSlice => &columns::ENDPOINTSLICES,
        Kind::Deployment => &columns::DEPLOYMENTS,
        Kind::ReplicaSet => &columns::REPLICASETS,
        Kind::ReplicationController => &columns::REPLICATIONCONTROLLERS,
        Kind::Lease => &columns::LEASES,
        Kind::RuntimeClass => &columns::RUNTIMECLASSES,
        Kind::ConfigMap => &columns::CONFIGMAPS,
        Kind::Secret => &columns::SECRETS,
        Kind::PodDisruptionBudget => &columns::PODDISRUPTIONBUDGETS,
        Kind::RoleBinding => &columns::ROLEBINDINGS,
        Kind::CertificateSigningRequest => &columns::CERTIFICATESIGNINGREQUESTS,
        Kind::ApiService => &columns::APISERVICES,
        Kind::ComponentStatus => &columns::COMPONENTSTATUSES,
        Kind::Job => &columns::JOBS,
        Kind::DaemonSet => &columns::DAEMONSETS,
        Kind::Default => &columns::DEFAULT,
    }
}

/// The cells of one object's row, in the order of [`columns`]; `now` is used for ages.
///
/// Cells are JSON strings, except where upstream puts an `int64` in the row (replica set
/// counts, deployment UP-TO-DATE / AVAILABLE, event COUNT): JSON numbers.
pub fn cells(group: &str, resource: &str, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    match kind(group, resource) {
        Kind::Service => core::service(obj, now),
        Kind::Pod => pod::pod(obj, now),
        Kind::Endpoints => core::endpoints(obj, now),
        Kind::Node => core::node(obj, now),
        Kind::Namespace => core::namespace(obj, now),
        Kind::Event => core::event(obj, now),
        Kind::EndpointSlice => discovery::endpoint_slice(obj, now),
        Kind::Deployment => apps::deployment(obj, now),
        Kind::ReplicaSet => apps::replica_set(obj, now),
        Kind::ReplicationController => apps::replication_controller(obj, now),
        Kind::Lease => coordination::lease(obj, now),
        Kind::RuntimeClass => node::runtime_class(obj, now),
        Kind::ConfigMap => core::config_map(obj, now),
        Kind::Secret => core::secret(obj, now),
        Kind::PodDisruptionBudget => policy::pod_disruption_budget(obj, now),
        Kind::RoleBinding => rbac::role_binding(obj, now),
        Kind::CertificateSigningRequest => certificates::certificate_signing_request(obj, now),
        Kind::ApiService => apiregistration::api_service(obj, now),
        Kind::ComponentStatus => core::component_status(obj),
        Kind::Job => batch::job(obj, now),
        Kind::DaemonSet => apps::daemon_set(obj, now),
        Kind::Default => default_cells(obj),
    }
}

/// The row's `conditions` (`metav1.TableRowCondition` JSON) upstream sets: `Completed` for
/// pods in phase Succeeded or Failed; none otherwise. A row without conditions omits the
/// field.
pub fn row_conditions(group: &str, resource: &str, obj: &Value) -> Vec<Value> {
    match kind(group, resource) {
        Kind::Pod => pod::pod_row_conditions(obj),
        _ => Vec::new(),
    }
}

/// Kubernetes' `duration.HumanDuration` (`4m42s`, `2d18h`, ...), used for AGE.
pub fn human_duration(d: std::time::Duration) -> String {
    duration::human_nanos(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// The default table: the name and `creationTimestamp` in RFC 3339 (UTC, whole seconds).
fn default_cells(obj: &Value) -> Vec<Value> {
    let created = match json::time_at(obj, &["metadata", "creationTimestamp"]) {
        // Go's time.RFC3339 layout drops sub-second digits.
        Some(t) => jiff::Timestamp::from_second(t.as_second())
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default(),
        None => "0001-01-01T00:00:00Z".to_string(),
    };
    vec![
        Value::String(json::name(obj).to_string()),
        Value::String(created),
    ]
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use crate::testing::row;

    #[test]
    fn default_table() {
        let obj = json!({"metadata": {"name": "cfg", "creationTimestamp": "2024-05-01T10:20:30Z"}});
        assert_eq!(
            row("", "limitranges", &obj),
            vec![json!("cfg"), json!("2024-05-01T10:20:30Z")]
        );
        let with_offset =
            json!({"metadata": {"name": "x", "creationTimestamp": "2024-05-01T12:20:30.5+02:00"}});
        assert_eq!(
            row("example.com", "widgets", &with_offset),
            vec![json!("x"), json!("2024-05-01T10:20:30Z")]
        );
        assert_eq!(
            row("", "limitranges", &json!({})),
            vec![json!(""), json!("0001-01-01T00:00:00Z")]
        );
    }

    #[test]
    fn odd_input_never_panics() {
        let resources = [
            ("", "services"),
            ("", "pods"),
            ("", "endpoints"),
            ("", "nodes"),
            ("", "namespaces"),
            ("", "events"),
            ("discovery.k8s.io", "endpointslices"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("", "replicationcontrollers"),
            ("", "secrets"),
            ("policy", "poddisruptionbudgets"),
            ("batch", "jobs"),
            ("apps", "daemonsets"),
        ];
        let odd = [
            json!(null),
            json!(42),
            json!("pod"),
            json!([]),
            json!({"metadata": null, "spec": null, "status": null}),
            json!({"metadata": {"name": 7, "creationTimestamp": "yesterday", "deletionTimestamp": null,
                                "labels": {"a": 1}},
                   "spec": {"ports": [null, 3, {"port": "80", "nodePort": -1}], "containers": "x",
                            "initContainers": [{"name": null, "restartPolicy": 1}], "selector": [1],
                            "replicas": 2.5, "type": 3, "clusterIPs": [null]},
                   "status": {"containerStatuses": [null, {"state": null, "lastState": {"terminated": null}}],
                              "initContainerStatuses": [{"state": {"terminated": {"exitCode": "1"}}}],
                              "conditions": "Ready", "loadBalancer": {"ingress": [{}]}},
                   "subsets": [{"addresses": [{}], "ports": [{}]}],
                   "endpoints": [{"addresses": [null]}], "ports": [{"port": null, "name": null}],
                   "series": {}, "count": -3}),
        ];
        for (group, resource) in resources {
            for obj in &odd {
                let c = row(group, resource, obj);
                assert!(
                    c.iter().all(|v| v.is_string() || v.is_i64()),
                    "{group}/{resource}: {c:?}"
                );
            }
        }
        // The clock running behind an object's creation time.
        let future =
            json!({"metadata": {"name": "f", "creationTimestamp": "2024-06-01T12:00:01Z"}});
        assert_eq!(row("", "namespaces", &future)[2], json!("0s"));
        let far_future =
            json!({"metadata": {"name": "f", "creationTimestamp": "2024-06-01T12:05:00Z"}});
        assert_eq!(row("", "namespaces", &far_future)[2], json!("<invalid>"));
    }
}
