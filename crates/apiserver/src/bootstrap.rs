//! Objects every cluster has from the start: the `default`, `kube-system`, `kube-public` and
//! `kube-node-lease` namespaces and the `default/kubernetes` Service (the first address of the
//! service range, port 443 → the secure port), with its Endpoints and EndpointSlice when the
//! server has an address pods can reach (`--advertise-address`); the `svcnet-process`
//! RuntimeClass (node.k8s.io/v1); a local APIService per served group-version; the
//! `cluster-admin` ClusterRole and its binding to `system:masters`.

use serde_json::json;

use crate::error::ApiResult;
use crate::objmeta;
use crate::registry::{self, Part, WriteOptions};
use crate::resources::{
    APISERVICES, CLUSTERROLEBINDINGS, CLUSTERROLES, ENDPOINTS, ENDPOINTSLICES, NAMESPACES,
    RUNTIMECLASSES, SERVICES,
};
use crate::state::AppState;

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

async fn ensure(
    state: &AppState,
    info: &'static crate::resources::ResourceInfo,
    ns: Option<&str>,
    obj: serde_json::Value,
) -> ApiResult<()> {
    match registry::create(state, info, ns, obj, &WriteOptions::default()).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn run(state: &AppState) -> ApiResult<()> {
    for ns in SYSTEM_NAMESPACES {
        ensure(
            state,
            &NAMESPACES,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    // svcnet's own RuntimeClass: containers as host processes (svcnet-cluster names it).
    ensure(
        state,
        &RUNTIMECLASSES,
        None,
        json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
               "metadata": {"name": svcnet_cluster::runtime_class::PROCESS},
               "handler": svcnet_cluster::runtime_class::PROCESS_HANDLER}),
    )
    .await?;
    register_api_services(state).await?;
    bootstrap_policy(state).await?;
    let first = state.alloc.first_ip().to_string();
    ensure(
        state,
        &SERVICES,
        Some("default"),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": first, "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                     "targetPort": state.config.secure_port}], "sessionAffinity": "None", "type": "ClusterIP"}
        }),
    )
    .await?;
    if let Some(addr) = state.config.advertise_address {
        let port = state.config.secure_port;
        let subsets = json!([{"addresses": [{"ip": addr.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
        registry::update(
            state,
            &ENDPOINTS,
            Some("default"),
            "kubernetes",
            Part::Main,
            &WriteOptions::default(),
            true,
            |cur| {
                let mut next = if cur.is_null() {
                    json!({"apiVersion": "v1", "kind": "Endpoints",
                       "metadata": {"name": "kubernetes", "namespace": "default",
                                    "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}})
                } else {
                    cur.clone()
                };
                next["subsets"] = subsets.clone();
                objmeta::clear_resource_version(&mut next);
                Ok(next)
            },
        )
        .await?;
        ensure(
            state,
            &ENDPOINTSLICES,
            Some("default"),
            json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [addr.to_string()], "conditions": {"ready": true}}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}]
            }),
        )
        .await?;
    }
    Ok(())
}

/// kube-apiserver's `apiVersionPriorities` (group priority, version priority) for the
/// group-versions svcnet serves; others get 16000/15.
fn priority(group: &str) -> (i32, i32) {
    match group {
        "" => (18000, 1),
        "apiregistration.k8s.io" => (18000, 15),
        "apps" => (17800, 15),
        "events.k8s.io" => (17750, 15),
        "batch" => (17400, 15),
        "certificates.k8s.io" => (17300, 15),
        "policy" => (17100, 15),
        "rbac.authorization.k8s.io" => (17000, 15),
        "apiextensions.k8s.io" => (16700, 15),
        "coordination.k8s.io" => (16500, 15),
        "node.k8s.io" => (16300, 15),
        "discovery.k8s.io" => (16200, 15),
        _ => (16000, 15),
    }
}

/// The local APIServices kube-aggregator's autoregister controller keeps, one per served
/// group-version (`v1.`, `v1.apps`, ...), labelled `automanaged: onstart`.
async fn register_api_services(state: &AppState) -> ApiResult<()> {
    for (group, version) in crate::resources::group_versions() {
        let (group_priority, version_priority) = priority(group);
        ensure(
            state,
            &APISERVICES,
            None,
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                   "metadata": {"name": format!("{version}.{group}"),
                                "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
                   "spec": {"group": group, "version": version,
                            "groupPriorityMinimum": group_priority, "versionPriority": version_priority}}),
        )
        .await?;
    }
    Ok(())
}

/// The part of kube-apiserver's RBAC bootstrap policy (`plugin/pkg/auth/authorizer/rbac/
/// bootstrappolicy`) that clients look up by name: the `cluster-admin` ClusterRole and its
/// binding to `system:masters`. RBAC is not enforced yet; the other default roles come with it.
async fn bootstrap_policy(state: &AppState) -> ApiResult<()> {
    let meta = |name: &str| {
        json!({"name": name,
               "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
               "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
    };
    ensure(
        state,
        &CLUSTERROLES,
        None,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": meta("cluster-admin"),
               "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                         {"nonResourceURLs": ["*"], "verbs": ["*"]}]}),
    )
    .await?;
    ensure(
        state,
        &CLUSTERROLEBINDINGS,
        None,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": meta("cluster-admin"),
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]}),
    )
    .await
}
