//! Helpers shared by the controllers, named after their client-go / kubernetes counterparts
//! (`podutil.IsPodReady`, `metav1.GetControllerOf`, `podutil.FindPort`, ...).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodCondition, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use std::fmt::Debug;

/// `podutil.IsPodReady`: the pod's Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod_ready_since(pod).is_some()
}

/// When the pod's Ready condition last turned True, if it is True.
pub fn pod_ready_since(pod: &Pod) -> Option<Option<&Time>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref())
}

/// `podutil.GetPodCondition`: the pod's condition of type `type_`.
pub fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// `podutil.IsPodAvailable`: ready for at least `min_ready_seconds`.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    match pod_ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => {
            let since = t.0.as_second();
            since + i64::from(min_ready_seconds) <= now.as_second()
        }
    }
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// `controller.IsPodActive`: not finished and not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    let p = phase(pod);
    p != "Succeeded" && p != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

/// `endpointutil.ShouldPodBeInEndpoints`: has an IP and will not run to completion.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let has_ip = pod.status.as_ref().is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let restart = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    match restart {
        "Never" => !matches!(phase(pod), "Failed" | "Succeeded"),
        "OnFailure" => phase(pod) != "Succeeded",
        _ => true,
    }
}

/// The pod's IPs (`status.podIPs`, or `status.podIP` alone).
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(st) = pod.status.as_ref() else {
        return Vec::new();
    };
    match &st.pod_ips {
        Some(ips) if !ips.is_empty() => ips.iter().map(|i| i.ip.clone()).collect(),
        _ => st
            .pod_ip
            .iter()
            .filter(|i| !i.is_empty())
            .cloned()
            .collect(),
    }
}

/// The pod IP of family `v6` (IPv4 when false), as the Service's family asks.
pub fn pod_ip_for_family(pod: &Pod, v6: bool) -> Option<String> {
    pod_ips(pod).into_iter().find(|ip| ip.contains(':') == v6)
}

/// The address of family `v6` that `pod` gives `svc`'s endpoints, when it is one of them: in the
/// Service's namespace, selected by `selector`, and fit to be an endpoint
/// ([`should_pod_be_in_endpoints`]).
pub fn endpoint_address(
    svc: &Service,
    selector: &BTreeMap<String, String>,
    pod: &Pod,
    include_terminating: bool,
    v6: bool,
) -> Option<String> {
    if pod.metadata.namespace != svc.metadata.namespace
        || !selector_matches(selector, pod.labels())
        || !should_pod_be_in_endpoints(pod, include_terminating)
    {
        return None;
    }
    pod_ip_for_family(pod, v6)
}

/// A reference to `pod`, as endpoints point at the pod behind an address (`targetRef`).
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Whether the Service's primary IP family is IPv6.
pub fn service_is_v6(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    if let Some(f) = spec.ip_families.as_ref().and_then(|f| f.first()) {
        return f == "IPv6";
    }
    spec.cluster_ip
        .as_deref()
        .is_some_and(|ip| ip.contains(':'))
}

/// `podutil.FindPort`: the port a Service port's targetPort means on this pod.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.as_ref()?.iter().find_map(|p| {
                    (p.name.as_deref() == Some(name)
                        && p.protocol.as_deref().unwrap_or("TCP") == proto)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

/// `endpointutil.ShouldSetHostname`: the pod's hostname + subdomain name this Service.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace
}

/// A Service's selector, if it has one (`None` = endpoints are the user's to manage).
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref()
}

/// `labels.SelectorFromSet(svc.spec.selector).Matches(pod.labels)` — an empty selector matches
/// nothing here, as in the endpoints controllers.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// A metav1.LabelSelector (Deployments, ReplicaSets) as a matcher; invalid or empty ones match
/// nothing, as controllers treat them.
pub fn label_selector(sel: Option<&LabelSelector>) -> Option<svcnet_api::selector::LabelSelector> {
    let s = svcnet_api::selector::LabelSelector::from_meta(sel?).ok()?;
    (!s.is_empty()).then_some(s)
}

/// `metav1.GetControllerOf`.
pub fn controller_of<K: Resource>(obj: &K) -> Option<&OwnerReference> {
    obj.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// `metav1.NewControllerRef`.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `ControllerRefManager`'s adoption: `obj` gets `owner` as its controller (the patch carries
/// `obj`'s uid, so a same-named replacement is not adopted by mistake).
pub async fn adopt<K, O>(api: &Api<K>, obj: &K, owner: &O) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    O: Resource<DynamicType = ()>,
{
    let mut refs = obj.owner_references().to_vec();
    refs.push(controller_ref(owner));
    patch_owner_references(api, obj, &refs).await
}

/// `ControllerRefManager`'s release: `obj` loses its references to the owner `owner_uid`.
pub async fn release<K>(api: &Api<K>, obj: &K, owner_uid: &str) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let refs: Vec<&OwnerReference> = obj
        .owner_references()
        .iter()
        .filter(|r| r.uid != owner_uid)
        .collect();
    patch_owner_references(api, obj, &refs).await
}

async fn patch_owner_references<K, R>(api: &Api<K>, obj: &K, refs: &R) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    R: Serialize,
{
    let patch = json!({"metadata": {"ownerReferences": refs, "uid": obj.meta().uid}});
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
}

pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Whether an API error is `NotFound`.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Delete, treating "already gone" as success.
pub async fn delete_ignore_missing<K>(
    api: &Api<K>,
    name: &str,
    dp: &kube::api::DeleteParams,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Merge-patch the status subresource.
pub async fn patch_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
}

/// The namespaced key of an object, `namespace/name`.
pub fn key_of<K: Resource>(obj: &K) -> svcnet_informer::Key {
    svcnet_informer::Key::of(obj)
}

/// Labels of an object (empty map when none).
pub fn labels<K: ResourceExt>(obj: &K) -> &BTreeMap<String, String> {
    obj.labels()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

    fn pod_with_ports(ports: &[(&str, i32, &str)]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(
                        ports
                            .iter()
                            .map(|(n, p, proto)| ContainerPort {
                                name: Some(n.to_string()),
                                container_port: *p,
                                protocol: Some(proto.to_string()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn find_port_by_name_and_protocol() {
        let pod = pod_with_ports(&[("http", 8080, "TCP"), ("dns", 53, "UDP")]);
        let sp = |tp: IntOrString, proto: &str| ServicePort {
            port: 80,
            target_port: Some(tp),
            protocol: Some(proto.into()),
            ..Default::default()
        };
        assert_eq!(
            find_port(&pod, &sp(IntOrString::String("http".into()), "TCP")),
            Some(8080)
        );
        assert_eq!(
            find_port(&pod, &sp(IntOrString::String("http".into()), "UDP")),
            None
        );
        assert_eq!(
            find_port(&pod, &sp(IntOrString::String("dns".into()), "UDP")),
            Some(53)
        );
        assert_eq!(
            find_port(&pod, &sp(IntOrString::Int(9376), "TCP")),
            Some(9376)
        );
    }

    #[test]
    fn empty_selector_matches_nothing() {
        let labels: BTreeMap<_, _> = [("app".to_string(), "x".to_string())].into();
        assert!(!selector_matches(&BTreeMap::new(), &labels));
        assert!(selector_matches(&labels.clone(), &labels));
    }
}
