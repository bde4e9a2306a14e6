//! The EndpointSlice controller, after kubernetes' `pkg/controller/endpointslice` and its
//! reconciler: for every Service with a selector, EndpointSlices listing the pods the selector
//! picks, grouped by the ports they resolve to, at most `--max-endpoints-per-slice` each.
//!
//! [`plan`] is the pure part (Service + pods + existing slices → slices to create, update and
//! delete) and is unit-tested; [`run`] wires it to informers and the API. A change touches as
//! few slices as it can: existing slices keep their endpoints, new endpoints fill slices that
//! are being updated anyway before others, and only then new slices are created.
//!
//! Slices the controller wrote but its informer has not shown yet are remembered (as the
//! upstream `EndpointSliceTracker` does) so that a sync never acts on a stale cache and
//! creates duplicates.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use crate::util;
use crate::Context;
use svcnet_informer::{run_workers, Change, Key, Queue};

pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

/// What one sync decided.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Ports as a comparable key (the upstream `PortMapKey`).
type PortKey = Vec<(Option<String>, Option<i32>, Option<String>, Option<String>)>;

fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut k: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.port,
                p.protocol.clone(),
                p.app_protocol.clone(),
            )
        })
        .collect();
    k.sort();
    k
}

/// An endpoint's identity across syncs: its pod, else its addresses.
fn endpoint_key(ep: &Endpoint) -> String {
    match ep.target_ref.as_ref().and_then(|r| r.uid.as_deref()) {
        Some(uid) if !uid.is_empty() => format!("uid:{uid}"),
        _ => format!("addr:{}", ep.addresses.join(",")),
    }
}

/// `podToEndpoint`.
fn pod_to_endpoint(pod: &Pod, svc: &Service, ip: String, zone: Option<String>) -> Endpoint {
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = publish_not_ready || util::is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish_not_ready || (serving && !terminating);
    let spec = pod.spec.as_ref();
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: util::should_set_hostname(pod, svc)
            .then(|| spec.and_then(|s| s.hostname.clone()))
            .flatten(),
        node_name: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(util::pod_reference(pod)),
        zone,
        ..Default::default()
    }
}

/// `getEndpointPorts`: the Service's ports as this pod serves them (ports a pod cannot resolve,
/// such as a named targetPort it lacks, are left out).
fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let Some(ports) = svc.spec.as_ref().and_then(|s| s.ports.as_ref()) else {
        return Vec::new();
    };
    ports
        .iter()
        .filter_map(|sp| {
            let port = util::find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// The labels every slice of `svc` carries (`setEndpointSliceLabels`).
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| k.as_str() != LABEL_SERVICE_NAME && k.as_str() != LABEL_MANAGED_BY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if util::is_headless(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    labels.insert(LABEL_SERVICE_NAME.into(), svc.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

/// The address types the Service's slices carry, from its ipFamilies.
fn address_types(svc: &Service) -> Vec<&'static str> {
    let fams = svc.spec.as_ref().and_then(|s| s.ip_families.as_ref());
    match fams {
        Some(f) if !f.is_empty() => f
            .iter()
            .map(|f| if f == "IPv6" { "IPv6" } else { "IPv4" })
            .collect(),
        _ => vec![if util::service_is_v6(svc) {
            "IPv6"
        } else {
            "IPv4"
        }],
    }
}

fn new_slice(
    svc: &Service,
    address_type: &str,
    ports: Vec<EndpointPort>,
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![util::controller_ref(svc)]),
            ..Default::default()
        },
        address_type: address_type.to_string(),
        endpoints,
        ports: (!ports.is_empty()).then_some(ports),
    }
}

/// Whether a slice is one of this controller's (the user owns every other slice).
pub fn is_managed(slice: &EndpointSlice) -> bool {
    slice.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
}

/// Decide the slices of `svc`. `pods` are the pods of its namespace; `zone_of` gives a node's
/// zone; `existing` are the slices this controller manages for the Service.
pub fn plan(
    svc: &Service,
    pods: &[Arc<Pod>],
    zone_of: &dyn Fn(&str) -> Option<String>,
    existing: &[Arc<EndpointSlice>],
    max_per_slice: usize,
) -> Plan {
    let max = max_per_slice.max(1);
    let mut plan = Plan::default();
    let Some(selector) = util::service_selector(svc) else {
        return plan;
    };
    let types = address_types(svc);
    // Slices of address types the Service no longer has.
    for s in existing {
        if !types.contains(&s.address_type.as_str()) {
            plan.delete.push((**s).clone());
        }
    }
    for address_type in types {
        let v6 = address_type == "IPv6";
        // Desired endpoints, grouped by the ports they resolve to.
        let mut desired: BTreeMap<PortKey, (Vec<EndpointPort>, BTreeMap<String, Endpoint>)> =
            BTreeMap::new();
        for pod in pods {
            let Some(ip) = util::endpoint_address(svc, selector, pod, true, v6) else {
                continue;
            };
            let zone = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(zone_of);
            let ep = pod_to_endpoint(pod, svc, ip, zone);
            let ports = endpoint_ports(svc, pod);
            let group = desired
                .entry(port_key(&ports))
                .or_insert_with(|| (ports, BTreeMap::new()));
            group.1.insert(endpoint_key(&ep), ep);
        }
        let want_labels = slice_labels(svc);
        let want_owner = vec![util::controller_ref(svc)];

        // Existing slices keep what is still desired.
        let mut updating: Vec<EndpointSlice> = Vec::new();
        let mut unchanged: Vec<EndpointSlice> = Vec::new();
        let mut deleting: Vec<EndpointSlice> = Vec::new();
        for s in existing.iter().filter(|s| s.address_type == address_type) {
            let pk = port_key(s.ports.as_deref().unwrap_or(&[]));
            let Some((_, group)) = desired.get_mut(&pk) else {
                deleting.push((**s).clone());
                continue;
            };
            let mut changed = false;
            let mut kept = Vec::with_capacity(s.endpoints.len());
            for ep in &s.endpoints {
                match group.remove(&endpoint_key(ep)) {
                    Some(want) => {
                        if &want != ep {
                            changed = true;
                        }
                        kept.push(want);
                    }
                    None => changed = true,
                }
            }
            if kept.is_empty() {
                deleting.push((**s).clone());
                continue;
            }
            let mut slice = (**s).clone();
            let meta_changed = slice.metadata.labels.as_ref() != Some(&want_labels)
                || slice.metadata.owner_references.as_ref() != Some(&want_owner);
            slice.endpoints = kept;
            slice.metadata.labels = Some(want_labels.clone());
            slice.metadata.owner_references = Some(want_owner.clone());
            if changed || meta_changed {
                updating.push(slice);
            } else {
                unchanged.push(slice);
            }
        }

        // New endpoints: first into slices being updated anyway, then into unchanged slices
        // with room, then into new slices.
        let mut creating: Vec<EndpointSlice> = Vec::new();
        for (pk, (ports, group)) in desired {
            let mut rest: Vec<Endpoint> = group.into_values().collect();
            if rest.is_empty() {
                continue;
            }
            for s in updating.iter_mut() {
                if rest.is_empty() {
                    break;
                }
                if port_key(s.ports.as_deref().unwrap_or(&[])) == pk && s.endpoints.len() < max {
                    let room = max - s.endpoints.len();
                    let take = rest.len().min(room);
                    s.endpoints.extend(rest.drain(..take));
                }
            }
            let mut i = 0;
            while i < unchanged.len() && !rest.is_empty() {
                let s = &unchanged[i];
                if port_key(s.ports.as_deref().unwrap_or(&[])) == pk && s.endpoints.len() < max {
                    let mut s = unchanged.remove(i);
                    let take = rest.len().min(max - s.endpoints.len());
                    s.endpoints.extend(rest.drain(..take));
                    updating.push(s);
                } else {
                    i += 1;
                }
            }
            while !rest.is_empty() {
                let take = rest.len().min(max);
                let eps: Vec<Endpoint> = rest.drain(..take).collect();
                creating.push(new_slice(svc, address_type, ports.clone(), eps));
            }
        }

        // A Service with no endpoints keeps one empty placeholder slice.
        if updating.is_empty() && unchanged.is_empty() && creating.is_empty() {
            let placeholder = deleting.iter().position(|s| {
                s.endpoints.is_empty() && s.ports.as_deref().unwrap_or(&[]).is_empty()
            });
            match placeholder {
                Some(i) => {
                    let mut s = deleting.remove(i);
                    if s.metadata.labels.as_ref() != Some(&want_labels)
                        || s.metadata.owner_references.as_ref() != Some(&want_owner)
                    {
                        s.metadata.labels = Some(want_labels.clone());
                        s.metadata.owner_references = Some(want_owner.clone());
                        updating.push(s);
                    }
                }
                None => creating.push(new_slice(svc, address_type, Vec::new(), Vec::new())),
            }
        }
        plan.create.extend(creating);
        plan.update.extend(updating);
        plan.delete.extend(deleting);
    }
    plan
}

/// Slice name → (resourceVersion written, when).
type Written = HashMap<String, (u64, Instant)>;

const EXPECTATION_TTL: Duration = Duration::from_secs(10);

/// Writes this controller made that its informer may not show yet, per Service.
#[derive(Default)]
struct Tracker {
    /// Slice name → the resourceVersion written (0 = deleted), and when. An expectation older
    /// than [`EXPECTATION_TTL`] is dropped (the slice may have gone before the informer saw it).
    written: Mutex<HashMap<Key, Written>>,
}

impl Tracker {
    fn record(&self, svc: &Key, slice: &str, rv: u64) {
        self.written
            .lock()
            .expect("tracker lock")
            .entry(svc.clone())
            .or_default()
            .insert(slice.to_string(), (rv, Instant::now()));
    }

    /// Whether the informer's slices already show every write; forgets the ones it shows.
    fn caught_up(&self, svc: &Key, slices: &[Arc<EndpointSlice>]) -> bool {
        let mut w = self.written.lock().expect("tracker lock");
        let Some(expect) = w.get_mut(svc) else {
            return true;
        };
        let seen: HashMap<&str, u64> = slices
            .iter()
            .map(|s| (s.metadata.name.as_deref().unwrap_or(""), rv_of(s)))
            .collect();
        expect.retain(|name, (rv, at)| match (seen.get(name.as_str()), *rv) {
            _ if at.elapsed() > EXPECTATION_TTL => false,
            (Some(_), 0) => true,
            (None, 0) => false,
            (Some(have), want) => *have < want,
            (None, _) => true,
        });
        let ok = expect.is_empty();
        if ok {
            w.remove(svc);
        }
        ok
    }

    fn forget(&self, svc: &Key) {
        self.written.lock().expect("tracker lock").remove(svc);
    }
}

fn rv_of(s: &EndpointSlice) -> u64 {
    s.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The Services of `pod`'s namespace whose selector matches its labels.
pub(crate) fn services_for_pod(ctx: &Context, pod: &Pod) -> Vec<Key> {
    // Candidates through the selector index: Services selecting on one of the pod's labels.
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut keys: Vec<Key> = pod
        .labels()
        .iter()
        .flat_map(|(k, v)| ctx.informers.services.by_key(ns, &format!("{k}={v}")))
        .filter(|s| {
            util::service_selector(s).is_some_and(|sel| util::selector_matches(sel, pod.labels()))
        })
        .map(|s| Key::of(&*s))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// What of a pod the endpoints depend on (`podEndpointsChanged`), to skip irrelevant updates.
pub(crate) fn endpoint_relevant(pod: &Pod) -> impl PartialEq {
    let spec = pod.spec.as_ref();
    (
        pod.metadata.labels.clone(),
        pod.metadata.deletion_timestamp.is_some(),
        util::pod_ips(pod),
        util::is_pod_ready(pod),
        util::phase(pod).to_string(),
        spec.and_then(|s| s.node_name.clone()),
        spec.and_then(|s| s.hostname.clone()),
        spec.and_then(|s| s.subdomain.clone()),
        spec.map(|s| {
            s.containers
                .iter()
                .map(|c| c.ports.clone())
                .collect::<Vec<_>>()
        }),
    )
}

/// Queue the Services a pod change concerns (before and after a relabel).
pub(crate) fn queue_for_pod_change(ctx: &Context, queue: &Queue, change: &Change<Pod>) -> bool {
    match change {
        Change::Applied { old, new } => {
            if let Some(old) = old {
                if endpoint_relevant(old) == endpoint_relevant(new) {
                    return false;
                }
                if old.labels() != new.labels() {
                    for k in services_for_pod(ctx, old) {
                        queue.add(k);
                    }
                }
            }
            for k in services_for_pod(ctx, new) {
                queue.add(k);
            }
            false
        }
        Change::Deleted(pod) => {
            for k in services_for_pod(ctx, pod) {
                queue.add(k);
            }
            false
        }
        Change::Resync => true,
    }
}

/// Queue every Service.
pub(crate) fn queue_all_services(ctx: &Context, queue: &Queue) {
    for s in ctx.informers.services.store().state() {
        queue.add(Key::of(&*s));
    }
}

pub async fn run(ctx: Arc<Context>) {
    let queue = Queue::new();
    let tracker = Arc::new(Tracker::default());
    spawn_watchers(ctx.clone(), queue.clone());
    queue_all_services(&ctx, &queue);
    let workers = ctx.config.concurrent_service_endpoint_syncs;
    run_workers("endpointslice", queue, workers, move |key| {
        let ctx = ctx.clone();
        let tracker = tracker.clone();
        async move { sync(&ctx, &tracker, &key).await }
    })
    .await;
}

/// Queue a Service when it changes, and the Services a pod change concerns (shared with the
/// Endpoints controller).
pub(crate) fn watch_services_and_pods(ctx: &Arc<Context>, queue: &Arc<Queue>) {
    let (c, q) = (ctx.clone(), queue.clone());
    let mut services = ctx.informers.services.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = services.recv().await {
            match ch {
                Change::Applied { new, .. } => q.add(Key::of(&*new)),
                Change::Deleted(s) => q.add(Key::of(&*s)),
                Change::Resync => queue_all_services(&c, &q),
            }
        }
    });
    let (c, q) = (ctx.clone(), queue.clone());
    let mut pods = ctx.informers.pods.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = pods.recv().await {
            if queue_for_pod_change(&c, &q, &ch) {
                queue_all_services(&c, &q);
            }
        }
    });
}

fn spawn_watchers(ctx: Arc<Context>, queue: Arc<Queue>) {
    watch_services_and_pods(&ctx, &queue);
    let (c, q) = (ctx.clone(), queue.clone());
    let mut slices = ctx.informers.endpoint_slices.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = slices.recv().await {
            let slice = match &ch {
                Change::Applied { new, .. } => new.clone(),
                Change::Deleted(s) => s.clone(),
                Change::Resync => {
                    queue_all_services(&c, &q);
                    continue;
                }
            };
            if !is_managed(&slice) {
                continue;
            }
            if let Some(svc) = slice.labels().get(LABEL_SERVICE_NAME) {
                q.add(Key::new(slice.metadata.namespace.as_deref(), svc));
            }
        }
    });
    let (c, q) = (ctx.clone(), queue);
    let mut nodes = ctx.informers.nodes.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = nodes.recv().await {
            let zone_changed = match &ch {
                Change::Applied {
                    old: Some(old),
                    new,
                } => old.labels().get(LABEL_ZONE) != new.labels().get(LABEL_ZONE),
                Change::Applied { old: None, new } => new.labels().contains_key(LABEL_ZONE),
                Change::Deleted(n) => n.labels().contains_key(LABEL_ZONE),
                Change::Resync => false,
            };
            if zone_changed {
                queue_all_services(&c, &q);
            }
        }
    });
}

/// The slices this controller manages for the Service `key`.
fn managed_slices(ctx: &Context, key: &Key) -> Vec<Arc<EndpointSlice>> {
    let ns = key.namespace.as_deref().unwrap_or_default();
    let by_service: BTreeMap<String, String> =
        [(LABEL_SERVICE_NAME.to_string(), key.name.clone())].into();
    ctx.informers
        .endpoint_slices
        .matching(ns, &by_service)
        .into_iter()
        .filter(|s| is_managed(s))
        .collect()
}

async fn sync(
    ctx: &Context,
    tracker: &Tracker,
    key: &Key,
) -> Result<Option<Duration>, kube::Error> {
    let ns = key.namespace.as_deref().unwrap_or("default");
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    let existing = managed_slices(ctx, key);
    if !tracker.caught_up(key, &existing) {
        // Our own writes are on their way to the informer, which will queue this again.
        return Ok(Some(Duration::from_secs(1)));
    }
    let svc = ctx
        .informers
        .services
        .store()
        .get(&ObjectRef::<Service>::new(&key.name).within(ns));
    let svc = match svc {
        Some(s) if s.metadata.deletion_timestamp.is_none() => s,
        _ => {
            // The garbage collector removes them too (ownerReferences); doing it here is quicker.
            for s in &existing {
                util::delete_ignore_missing(&api, &s.name_any(), &DeleteParams::default()).await?;
            }
            tracker.forget(key);
            return Ok(None);
        }
    };
    if util::service_selector(&svc).is_none() {
        return Ok(None);
    }
    let selector = util::service_selector(&svc).cloned().unwrap_or_default();
    let pods: Vec<Arc<Pod>> = ctx.informers.pods.matching(ns, &selector);
    let nodes = ctx.informers.nodes.store();
    let zone_of = |node: &str| -> Option<String> {
        nodes
            .get(&ObjectRef::<Node>::new(node))
            .and_then(|n| n.labels().get(LABEL_ZONE).cloned())
    };
    let plan = plan(
        &svc,
        &pods,
        &zone_of,
        &existing,
        ctx.config.max_endpoints_per_slice,
    );
    if plan.is_empty() {
        return Ok(None);
    }
    tracing::debug!(service = %key, create = plan.create.len(), update = plan.update.len(), delete = plan.delete.len(), "syncing endpoint slices");
    // Creates and updates first, deletes last, so consumers never see a gap.
    for s in &plan.create {
        let created = api.create(&PostParams::default(), s).await?;
        tracker.record(key, &created.name_any(), rv_of(&created));
    }
    for s in &plan.update {
        let updated = api
            .replace(&s.name_any(), &PostParams::default(), s)
            .await?;
        tracker.record(key, &updated.name_any(), rv_of(&updated));
    }
    for s in &plan.delete {
        util::delete_ignore_missing(&api, &s.name_any(), &DeleteParams::default()).await?;
        tracker.record(key, &s.name_any(), 0);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn svc(selector: &[(&str, &str)], target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("svc-uid".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(
                    selector
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(target),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ip_families: Some(vec!["IPv4".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(
        name: &str,
        ip: &str,
        ready: bool,
        labels: &[(&str, &str)],
        port: (&str, i32),
    ) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some(port.0.into()),
                        container_port: port.1,
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some(ip.into()),
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn no_zone(_: &str) -> Option<String> {
        Some("zone-a".into())
    }

    /// Apply a plan the way the API would, naming created slices.
    fn apply(existing: Vec<Arc<EndpointSlice>>, p: Plan) -> Vec<Arc<EndpointSlice>> {
        let mut out: Vec<EndpointSlice> = existing
            .into_iter()
            .map(|s| (*s).clone())
            .filter(|s| !p.delete.iter().any(|d| d.metadata.name == s.metadata.name))
            .filter(|s| !p.update.iter().any(|d| d.metadata.name == s.metadata.name))
            .collect();
        out.extend(p.update);
        for (i, mut s) in p.create.into_iter().enumerate() {
            s.metadata.name = Some(format!("web-{}-{i}", out.len()));
            out.push(s);
        }
        out.into_iter().map(Arc::new).collect()
    }

    fn addrs(slices: &[Arc<EndpointSlice>]) -> Vec<String> {
        let mut v: Vec<String> = slices
            .iter()
            .flat_map(|s| s.endpoints.iter().map(|e| e.addresses[0].clone()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn lists_matching_pods_with_conditions_and_ports() {
        let s = svc(&[("app", "web")], IntOrString::Int(8080));
        let pods = vec![
            pod(
                "a",
                "10.0.0.1",
                true,
                &[("app", "web"), ("extra", "x")],
                ("http", 8080),
            ),
            pod("b", "10.0.0.2", false, &[("app", "web")], ("http", 8080)),
            pod("c", "10.0.0.3", true, &[("app", "other")], ("http", 8080)),
        ];
        let p = plan(&s, &pods, &no_zone, &[], 100);
        assert_eq!(p.create.len(), 1);
        let slice = &p.create[0];
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(slice.labels()[LABEL_SERVICE_NAME], "web");
        assert_eq!(slice.labels()[LABEL_MANAGED_BY], CONTROLLER_NAME);
        assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(8080));
        assert_eq!(slice.owner_references()[0].kind, "Service");
        let by_ip: BTreeMap<_, _> = slice
            .endpoints
            .iter()
            .map(|e| (e.addresses[0].as_str(), e))
            .collect();
        assert_eq!(by_ip.len(), 2);
        assert_eq!(
            by_ip["10.0.0.1"].conditions.as_ref().unwrap().ready,
            Some(true)
        );
        assert_eq!(
            by_ip["10.0.0.2"].conditions.as_ref().unwrap().ready,
            Some(false)
        );
        assert_eq!(by_ip["10.0.0.1"].zone.as_deref(), Some("zone-a"));
        assert_eq!(by_ip["10.0.0.1"].node_name.as_deref(), Some("node-1"));
    }

    #[test]
    fn named_target_port_groups_pods_by_port_number() {
        let s = svc(&[("app", "web")], IntOrString::String("http".into()));
        let pods = vec![
            pod("a", "10.0.0.1", true, &[("app", "web")], ("http", 8080)),
            pod("b", "10.0.0.2", true, &[("app", "web")], ("http", 9090)),
            pod("c", "10.0.0.3", true, &[("app", "web")], ("http", 8080)),
        ];
        let p = plan(&s, &pods, &no_zone, &[], 100);
        assert_eq!(p.create.len(), 2);
        let mut shapes: Vec<(i32, usize)> = p
            .create
            .iter()
            .map(|s| {
                (
                    s.ports.as_ref().unwrap()[0].port.unwrap(),
                    s.endpoints.len(),
                )
            })
            .collect();
        shapes.sort();
        assert_eq!(shapes, vec![(8080, 2), (9090, 1)]);
    }

    #[test]
    fn changes_touch_few_slices_and_respect_the_limit() {
        let s = svc(&[("app", "web")], IntOrString::Int(80));
        let mut pods: Vec<Arc<Pod>> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    true,
                    &[("app", "web")],
                    ("http", 80),
                )
            })
            .collect();
        let p = plan(&s, &pods, &no_zone, &[], 100);
        assert_eq!(p.create.len(), 3);
        assert!(p.create.iter().all(|s| s.endpoints.len() <= 100));
        let slices = apply(Vec::new(), p);
        assert!(
            plan(&s, &pods, &no_zone, &slices, 100).is_empty(),
            "steady state"
        );

        // One pod turns not ready: one slice updated, nothing else.
        pods[5] = pod("p5", "10.0.0.6", false, &[("app", "web")], ("http", 80));
        let p = plan(&s, &pods, &no_zone, &slices, 100);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        let slices = apply(slices, p);

        // A new pod fills the slice with room instead of creating one.
        pods.push(pod(
            "new",
            "10.0.9.9",
            true,
            &[("app", "web")],
            ("http", 80),
        ));
        let p = plan(&s, &pods, &no_zone, &slices, 100);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        let slices = apply(slices, p);
        assert_eq!(addrs(&slices).len(), 251);

        // Every pod gone: one placeholder slice stays.
        let p = plan(&s, &[], &no_zone, &slices, 100);
        let slices = apply(slices, p);
        assert_eq!(slices.len(), 1);
        assert!(slices[0].endpoints.is_empty());
    }

    #[test]
    fn publish_not_ready_and_terminating() {
        let mut s = svc(&[("app", "web")], IntOrString::Int(80));
        let mut term = (*pod("t", "10.0.0.9", true, &[("app", "web")], ("http", 80))).clone();
        term.metadata.deletion_timestamp = Some(util::now());
        let pods = vec![
            Arc::new(term),
            pod("n", "10.0.0.8", false, &[("app", "web")], ("http", 80)),
        ];
        let p = plan(&s, &pods, &no_zone, &[], 100);
        let c = |ip: &str| {
            p.create[0]
                .endpoints
                .iter()
                .find(|e| e.addresses[0] == ip)
                .unwrap()
                .conditions
                .clone()
                .unwrap()
        };
        assert_eq!(
            (
                c("10.0.0.9").ready,
                c("10.0.0.9").serving,
                c("10.0.0.9").terminating
            ),
            (Some(false), Some(true), Some(true))
        );
        assert_eq!(c("10.0.0.8").ready, Some(false));
        s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let p = plan(&s, &pods, &no_zone, &[], 100);
        assert!(p.create[0]
            .endpoints
            .iter()
            .all(|e| e.conditions.as_ref().unwrap().ready == Some(true)));
    }

    #[test]
    fn hostname_for_subdomain_and_no_selector_untouched() {
        let mut s = svc(&[("app", "web")], IntOrString::Int(80));
        s.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let mut p0 = (*pod("a", "10.0.0.1", true, &[("app", "web")], ("http", 80))).clone();
        p0.spec.as_mut().unwrap().hostname = Some("busybox-1".into());
        p0.spec.as_mut().unwrap().subdomain = Some("web".into());
        let p = plan(&s, &[Arc::new(p0)], &no_zone, &[], 100);
        assert_eq!(
            p.create[0].endpoints[0].hostname.as_deref(),
            Some("busybox-1")
        );
        assert_eq!(
            p.create[0].labels().get(LABEL_HEADLESS).map(String::as_str),
            Some("")
        );

        s.spec.as_mut().unwrap().selector = None;
        assert!(plan(&s, &[], &no_zone, &[], 100).is_empty());
    }
}
