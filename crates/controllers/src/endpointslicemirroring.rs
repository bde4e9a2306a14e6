//! The EndpointSlice mirroring controller, after kubernetes' `pkg/controller/endpointslicemirroring`:
//! a Service without a selector gets its endpoints from a user-written Endpoints object; this
//! controller mirrors that object into EndpointSlices (which is what kube-proxy and DNS read),
//! one per subset's port set, owned by the Endpoints. It never writes the user's Endpoints, and
//! skips Endpoints labelled `endpointslice.kubernetes.io/skip-mirror: "true"` and those of
//! Services that have a selector (the EndpointSlice controller serves those).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use crate::endpointslice::{LABEL_MANAGED_BY, LABEL_SERVICE_NAME};
use crate::util;
use crate::Context;
use svcnet_informer::{run_workers, Change, Key, Queue};

pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
pub const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// `--mirroring-max-endpoints-per-subset`
const MAX_PER_SUBSET: usize = 1000;

fn is_mirrored(s: &EndpointSlice) -> bool {
    s.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
}

fn to_endpoint(a: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![a.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(ready),
            terminating: Some(false),
        }),
        hostname: a.hostname.clone(),
        node_name: a.node_name.clone(),
        target_ref: a.target_ref.clone(),
        ..Default::default()
    }
}

/// The slices mirroring `ep` (without names), one per subset and address family.
pub fn desired(ep: &Endpoints) -> Vec<EndpointSlice> {
    let mut labels: BTreeMap<String, String> = ep
        .labels()
        .iter()
        .filter(|(k, _)| k.as_str() != LABEL_MANAGED_BY && k.as_str() != LABEL_SERVICE_NAME)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_SERVICE_NAME.into(), ep.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    let owner = util::controller_ref(ep);
    let mut out = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let all = subset
            .addresses
            .iter()
            .flatten()
            .map(|a| (a, true))
            .chain(
                subset
                    .not_ready_addresses
                    .iter()
                    .flatten()
                    .map(|a| (a, false)),
            )
            .take(MAX_PER_SUBSET);
        let mut by_family: BTreeMap<&str, Vec<Endpoint>> = BTreeMap::new();
        for (a, ready) in all {
            let family = if a.ip.contains(':') { "IPv6" } else { "IPv4" };
            by_family
                .entry(family)
                .or_default()
                .push(to_endpoint(a, ready));
        }
        for (family, endpoints) in by_family {
            out.push(EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{}-", ep.name_any())),
                    namespace: ep.metadata.namespace.clone(),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                address_type: family.into(),
                endpoints,
                ports: (!ports.is_empty()).then(|| ports.clone()),
            });
        }
    }
    out
}

/// What makes two slices the same for mirroring (everything but identity).
fn content(s: &EndpointSlice) -> serde_json::Value {
    serde_json::json!([
        s.address_type,
        s.ports,
        s.endpoints,
        s.metadata.labels,
        s.metadata.owner_references
    ])
}

pub async fn run(ctx: Arc<Context>) {
    let queue = Queue::new();
    let (c, q) = (ctx.clone(), queue.clone());
    let mut eps = ctx.informers.endpoints.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = eps.recv().await {
            match ch {
                Change::Applied { new, .. } => q.add(Key::of(&*new)),
                Change::Deleted(e) => q.add(Key::of(&*e)),
                Change::Resync => queue_all(&c, &q),
            }
        }
    });
    let (c, q) = (ctx.clone(), queue.clone());
    let mut svcs = ctx.informers.services.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = svcs.recv().await {
            match ch {
                Change::Applied { new, .. } => q.add(Key::of(&*new)),
                Change::Deleted(s) => q.add(Key::of(&*s)),
                Change::Resync => queue_all(&c, &q),
            }
        }
    });
    let q = queue.clone();
    let mut slices = ctx.informers.endpoint_slices.subscribe();
    tokio::spawn(async move {
        while let Some(ch) = slices.recv().await {
            let s = match &ch {
                Change::Applied { new, .. } => new.clone(),
                Change::Deleted(s) => s.clone(),
                Change::Resync => continue,
            };
            if is_mirrored(&s) {
                if let Some(n) = s.labels().get(LABEL_SERVICE_NAME) {
                    q.add(Key::new(s.metadata.namespace.as_deref(), n));
                }
            }
        }
    });
    queue_all(&ctx, &queue);
    run_workers(
        "endpointslicemirroring",
        queue,
        ctx.config.concurrent_service_endpoint_syncs,
        move |key| {
            let ctx = ctx.clone();
            async move { sync(&ctx, &key).await }
        },
    )
    .await;
}

fn queue_all(ctx: &Context, q: &Queue) {
    for e in ctx.informers.endpoints.store().state() {
        q.add(Key::of(&*e));
    }
}

async fn sync(ctx: &Context, key: &Key) -> Result<Option<Duration>, kube::Error> {
    let ns = key.namespace.as_deref().unwrap_or("default");
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    let by_service: BTreeMap<String, String> =
        [(LABEL_SERVICE_NAME.to_string(), key.name.clone())].into();
    let existing: Vec<Arc<EndpointSlice>> = ctx
        .informers
        .endpoint_slices
        .matching(ns, &by_service)
        .into_iter()
        .filter(|s| is_mirrored(s))
        .collect();
    let ep = ctx
        .informers
        .endpoints
        .store()
        .get(&ObjectRef::<Endpoints>::new(&key.name).within(ns));
    let svc = ctx
        .informers
        .services
        .store()
        .get(&ObjectRef::<Service>::new(&key.name).within(ns));
    let mirror = match (&ep, &svc) {
        (Some(ep), Some(svc)) => {
            util::service_selector(svc).is_none()
                && ep.labels().get(SKIP_MIRROR).map(String::as_str) != Some("true")
                && ep.metadata.deletion_timestamp.is_none()
        }
        _ => false,
    };
    let mut want = match (&ep, mirror) {
        (Some(ep), true) => desired(ep),
        _ => Vec::new(),
    };
    // Keep existing slices that already say what one desired slice says; rewrite the rest in
    // place; create or delete the difference.
    let mut stale = Vec::new();
    for s in existing {
        if let Some(i) = want.iter().position(|w| content(w) == content(&s)) {
            want.remove(i);
        } else {
            stale.push(s);
        }
    }
    for w in want {
        match stale.pop() {
            Some(old) => {
                let mut s = w;
                s.metadata.name = old.metadata.name.clone();
                s.metadata.generate_name = None;
                s.metadata.resource_version = old.metadata.resource_version.clone();
                api.replace(&old.name_any(), &PostParams::default(), &s)
                    .await?;
            }
            None => {
                api.create(&PostParams::default(), &w).await?;
            }
        }
    }
    for s in stale {
        util::delete_ignore_missing(&api, &s.name_any(), &DeleteParams::default()).await?;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EndpointPort as CorePort, EndpointSubset};

    #[test]
    fn mirrors_subsets_by_family_with_readiness() {
        let ep = Endpoints {
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("default".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(vec![EndpointAddress {
                    ip: "192.0.2.1".into(),
                    ..Default::default()
                }]),
                not_ready_addresses: Some(vec![EndpointAddress {
                    ip: "2001:db8::1".into(),
                    ..Default::default()
                }]),
                ports: Some(vec![CorePort {
                    port: 5432,
                    ..Default::default()
                }]),
            }]),
        };
        let d = desired(&ep);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].address_type, "IPv4");
        assert_eq!(
            d[0].endpoints[0].conditions.as_ref().unwrap().ready,
            Some(true)
        );
        assert_eq!(d[1].address_type, "IPv6");
        assert_eq!(
            d[1].endpoints[0].conditions.as_ref().unwrap().ready,
            Some(false)
        );
        assert_eq!(d[0].labels()[LABEL_MANAGED_BY], CONTROLLER_NAME);
        assert_eq!(d[0].owner_references()[0].kind, "Endpoints");
        assert_eq!(d[0].ports.as_ref().unwrap()[0].port, Some(5432));
    }
}
