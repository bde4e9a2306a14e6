//! The Endpoints controller, after kubernetes' `pkg/controller/endpoint`: the core/v1 Endpoints
//! object named as each Service with a selector, with ready pods under `addresses`, not-ready
//! ones under `notReadyAddresses`, subsets packed by port set (`RepackSubsets`) and truncated
//! at 1000 addresses. `kubectl describe svc` and the seeds show these; the proxy reads
//! EndpointSlices.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use crate::endpointslice::{queue_all_services, watch_services_and_pods, LABEL_HEADLESS};
use crate::util;
use crate::Context;
use svcnet_informer::{run_workers, Change, Key, Queue};

/// `v1.EndpointsOverCapacity`
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// `maxCapacity` of the upstream controller.
pub const MAX_CAPACITY: usize = 1000;

/// One (address, port) pair before packing; `port == None` for a headless Service without ports.
struct Entry {
    addr: EndpointAddress,
    ready: bool,
    port: Option<EndpointPort>,
}

/// The subsets of `svc` over `pods` (the pods of its namespace), packed and sorted.
pub fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let Some(selector) = util::service_selector(svc) else {
        return Vec::new();
    };
    let spec = svc.spec.as_ref();
    let publish_not_ready = spec
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ports = spec.and_then(|s| s.ports.clone()).unwrap_or_default();
    let v6 = util::service_is_v6(svc);
    let mut entries = Vec::new();
    for pod in pods {
        let Some(ip) = util::endpoint_address(svc, selector, pod, publish_not_ready, v6) else {
            continue;
        };
        let pspec = pod.spec.as_ref();
        let addr = EndpointAddress {
            ip,
            node_name: pspec
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            hostname: util::should_set_hostname(pod, svc)
                .then(|| pspec.and_then(|s| s.hostname.clone()))
                .flatten(),
            target_ref: Some(util::pod_reference(pod)),
        };
        let ready = publish_not_ready || util::is_pod_ready(pod);
        if ports.is_empty() {
            if util::is_headless(svc) {
                entries.push(Entry {
                    addr,
                    ready,
                    port: None,
                });
            }
            continue;
        }
        for sp in &ports {
            let Some(port) = util::find_port(pod, sp) else {
                continue;
            };
            entries.push(Entry {
                addr: addr.clone(),
                ready,
                port: Some(EndpointPort {
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    port,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                }),
            });
        }
    }
    repack(entries)
}

fn port_sort_key(p: &Option<EndpointPort>) -> (String, i32, String) {
    match p {
        None => (String::new(), -1, String::new()),
        Some(p) => (
            p.name.clone().unwrap_or_default(),
            p.port,
            p.protocol.clone().unwrap_or_default(),
        ),
    }
}

fn addr_sort_key(a: &EndpointAddress) -> (std::net::IpAddr, String) {
    (
        a.ip.parse()
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        a.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

/// `endpoints.RepackSubsets` + `SortSubsets`: addresses that serve the same set of ports share
/// a subset.
fn repack(entries: Vec<Entry>) -> Vec<EndpointSubset> {
    // Address (by IP + readiness) → its ports.
    type AddrKey = (std::net::IpAddr, String, bool);
    let mut by_addr: BTreeMap<AddrKey, (EndpointAddress, Vec<Option<EndpointPort>>)> =
        BTreeMap::new();
    for e in entries {
        let (ip, uid) = addr_sort_key(&e.addr);
        let slot = by_addr
            .entry((ip, uid, e.ready))
            .or_insert_with(|| (e.addr, Vec::new()));
        if !slot
            .1
            .iter()
            .any(|p| port_sort_key(p) == port_sort_key(&e.port))
        {
            slot.1.push(e.port);
        }
    }
    // Port set → addresses.
    type PortSetKey = Vec<(String, i32, String)>;
    /// The ports, the ready addresses and the not-ready ones.
    type Packed = (
        Vec<Option<EndpointPort>>,
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
    );
    let mut by_ports: BTreeMap<PortSetKey, Packed> = BTreeMap::new();
    for ((_, _, ready), (addr, mut ports)) in by_addr {
        ports.sort_by_key(port_sort_key);
        let key: PortSetKey = ports.iter().map(port_sort_key).collect();
        let slot = by_ports
            .entry(key)
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if ready {
            slot.1.push(addr);
        } else {
            slot.2.push(addr);
        }
    }
    by_ports
        .into_values()
        .map(|(ports, ready, not_ready)| {
            let ports: Vec<EndpointPort> = ports.into_iter().flatten().collect();
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// `truncateEndpoints`: at most [`MAX_CAPACITY`] addresses, ready ones kept first.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |s: &EndpointSubset| {
        s.addresses.as_ref().map_or(0, Vec::len)
            + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
    };
    if subsets.iter().map(count).sum::<usize>() <= MAX_CAPACITY {
        return false;
    }
    let mut budget = MAX_CAPACITY;
    for s in subsets.iter_mut() {
        if let Some(a) = s.addresses.as_mut() {
            a.truncate(budget);
            budget -= a.len();
        }
    }
    for s in subsets.iter_mut() {
        if let Some(a) = s.not_ready_addresses.as_mut() {
            a.truncate(budget);
            budget -= a.len();
        }
    }
    true
}

/// The Endpoints object `svc` should have, given the current one (or `None`); `None` back when
/// nothing needs writing.
pub fn desired(svc: &Service, pods: &[Arc<Pod>], current: Option<&Endpoints>) -> Option<Endpoints> {
    let mut subsets = subsets(svc, pods);
    let truncated = truncate(&mut subsets);
    let mut labels = svc.labels().clone();
    if util::is_headless(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    let mut ep = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            ..Default::default()
        },
        subsets: None,
    });
    let mut annotations = ep.metadata.annotations.clone().unwrap_or_default();
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let new_subsets = (!subsets.is_empty()).then_some(subsets);
    let same = current.is_some()
        && ep.subsets.as_ref().filter(|s| !s.is_empty()) == new_subsets.as_ref()
        && ep.metadata.labels.clone().unwrap_or_default() == labels
        && ep.metadata.annotations.clone().unwrap_or_default() == annotations;
    if same {
        return None;
    }
    ep.subsets = new_subsets;
    ep.metadata.labels = (!labels.is_empty()).then_some(labels);
    ep.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    Some(ep)
}

pub async fn run(ctx: Arc<Context>) {
    let queue = Queue::new();
    watch_services_and_pods(&ctx, &queue);
    // Someone else changed or removed an Endpoints of a Service we manage: put it back.
    let q = queue.clone();
    let mut endpoints = ctx.informers.endpoints.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = endpoints.recv().await {
            if let Change::Deleted(e) = ch {
                q.add(Key::of(&*e));
            }
        }
    });
    queue_all_services(&ctx, &queue);
    let workers = ctx.config.concurrent_service_endpoint_syncs;
    run_workers("endpoints", queue, workers, move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &key).await }
    })
    .await;
}

async fn sync(ctx: &Context, key: &Key) -> Result<Option<Duration>, kube::Error> {
    let ns = key.namespace.as_deref().unwrap_or("default");
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
    let svc = ctx
        .informers
        .services
        .store()
        .get(&ObjectRef::<Service>::new(&key.name).within(ns));
    let Some(svc) = svc else {
        // The Service is gone: so is its Endpoints (unless it was never ours: only Services with
        // a selector get one from us, and a selectorless Service's Endpoints goes with it too,
        // as upstream does).
        if ctx
            .informers
            .endpoints
            .store()
            .get(&ObjectRef::<Endpoints>::new(&key.name).within(ns))
            .is_some()
        {
            util::delete_ignore_missing(&api, &key.name, &DeleteParams::default()).await?;
        }
        return Ok(None);
    };
    if util::service_selector(&svc).is_none()
        || svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
    {
        return Ok(None);
    }
    let selector = util::service_selector(&svc).cloned().unwrap_or_default();
    let pods: Vec<Arc<Pod>> = ctx.informers.pods.matching(ns, &selector);
    let current = ctx
        .informers
        .endpoints
        .store()
        .get(&ObjectRef::<Endpoints>::new(&key.name).within(ns));
    let Some(ep) = desired(&svc, &pods, current.as_deref()) else {
        return Ok(None);
    };
    if current.is_some() {
        match api.replace(&key.name, &PostParams::default(), &ep).await {
            Ok(_) => {}
            // The informer was behind: the next event brings us back.
            Err(e) if util::is_not_found(&e) => {
                let mut fresh = ep.clone();
                fresh.metadata.resource_version = None;
                api.create(&PostParams::default(), &fresh).await?;
            }
            Err(e) => return Err(e),
        }
    } else {
        match api.create(&PostParams::default(), &ep).await {
            Ok(_) => {}
            // Created meanwhile (informer behind): update on the next pass.
            Err(e) if util::is_conflict(&e) => return Ok(Some(Duration::from_millis(50))),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn svc(ports: &[(&str, i32)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ServicePort {
                            name: Some(n.to_string()),
                            port: *p,
                            target_port: Some(IntOrString::Int(*p)),
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(name.into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                pod_ip: Some(ip.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn packs_ready_and_not_ready_by_port_set() {
        let s = svc(&[("http", 80), ("https", 443)]);
        let pods = vec![
            pod("b", "10.0.0.10", true),
            pod("a", "10.0.0.9", true),
            pod("c", "10.0.0.11", false),
        ];
        let subs = subsets(&s, &pods);
        assert_eq!(subs.len(), 1);
        let ips: Vec<&str> = subs[0]
            .addresses
            .as_ref()
            .unwrap()
            .iter()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(
            ips,
            vec!["10.0.0.9", "10.0.0.10"],
            "sorted by IP as a number"
        );
        assert_eq!(
            subs[0].not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.0.0.11"
        );
        assert_eq!(subs[0].ports.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn unchanged_endpoints_are_not_rewritten() {
        let s = svc(&[("", 80)]);
        let pods = vec![pod("a", "10.0.0.1", true)];
        let ep = desired(&s, &pods, None).unwrap();
        assert!(desired(&s, &pods, Some(&ep)).is_none());
        let more = vec![pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", true)];
        assert!(desired(&s, &more, Some(&ep)).is_some());
    }

    #[test]
    fn truncates_over_capacity() {
        let s = svc(&[("", 80)]);
        let pods: Vec<_> = (0..1100)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.1.{}.{}", i / 250, i % 250 + 1),
                    true,
                )
            })
            .collect();
        let ep = desired(&s, &pods, None).unwrap();
        let n: usize = ep
            .subsets
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.addresses.as_ref().unwrap().len())
            .sum();
        assert_eq!(n, MAX_CAPACITY);
        assert_eq!(ep.annotations()[OVER_CAPACITY], "truncated");
    }
}
