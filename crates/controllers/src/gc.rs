//! The garbage collector, after kubernetes' `pkg/controller/garbagecollector`, over the kinds
//! svcnet's controllers create and own: Pods, ReplicaSets and EndpointSlices as dependents;
//! Deployments, ReplicaSets, ReplicationControllers, Jobs, DaemonSets, Services, Endpoints,
//! Pods and Nodes as owners.
//!
//! - Background (the default of `kubectl delete`): a dependent whose owners are all gone is
//!   deleted; one that lost only some owners has those references removed.
//! - Foreground (`--cascade=foreground`): the owner carries the `foregroundDeletion` finalizer;
//!   its dependents are deleted (in the foreground too) and the finalizer is removed once none
//!   is left.
//! - Orphan (`--cascade=orphan`): the owner carries the `orphan` finalizer; its references are
//!   removed from every dependent, then the finalizer.
//!
//! An owner missing from the cache is looked up live before anything is deleted, so a cache
//! that is behind never deletes a dependent of an owner that exists.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::util;
use crate::Context;
use svcnet_informer::{run_workers, Change, Key, Queue};

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

/// What the queue holds: a kind and an object of it.
fn item(kind: &str, ns: Option<&str>, name: &str) -> Key {
    Key::new(ns, &format!("{kind}/{name}"))
}

fn split(key: &Key) -> (&str, &str) {
    key.name.split_once('/').unwrap_or(("", &key.name))
}

pub async fn run(ctx: Arc<Context>) {
    let queue = Queue::new();
    watch(&ctx, &queue, ctx.informers.pods.subscribe(), "Pod");
    watch(
        &ctx,
        &queue,
        ctx.informers.replica_sets.subscribe(),
        "ReplicaSet",
    );
    watch(
        &ctx,
        &queue,
        ctx.informers.endpoint_slices.subscribe(),
        "EndpointSlice",
    );
    watch(
        &ctx,
        &queue,
        ctx.informers.deployments.subscribe(),
        "Deployment",
    );
    watch(
        &ctx,
        &queue,
        ctx.informers.replication_controllers.subscribe(),
        "ReplicationController",
    );
    watch(&ctx, &queue, ctx.informers.jobs.subscribe(), "Job");
    watch(
        &ctx,
        &queue,
        ctx.informers.daemon_sets.subscribe(),
        "DaemonSet",
    );
    watch(&ctx, &queue, ctx.informers.services.subscribe(), "Service");
    watch(&ctx, &queue, ctx.informers.nodes.subscribe(), "Node");
    resync(&ctx, &queue);
    run_workers(
        "garbagecollector",
        queue,
        ctx.config.concurrent_gc_syncs,
        move |key| {
            let ctx = ctx.clone();
            async move { sync(&ctx, &key).await }
        },
    )
    .await;
}

fn queue_obj<K: Resource>(queue: &Queue, kind: &str, obj: &K) {
    let m = obj.meta();
    queue.add(item(
        kind,
        m.namespace.as_deref(),
        m.name.as_deref().unwrap_or(""),
    ));
}

/// Every object with owners, and every owner waiting on a finalizer.
fn resync(ctx: &Context, queue: &Queue) {
    fn each<K: Resource<DynamicType = ()> + Clone>(queue: &Queue, kind: &str, store: &Store<K>) {
        for o in store.state() {
            let m = o.meta();
            if m.owner_references.as_ref().is_some_and(|r| !r.is_empty())
                || m.deletion_timestamp.is_some()
            {
                queue_obj(queue, kind, &*o);
            }
        }
    }
    let i = &ctx.informers;
    each(queue, "Pod", i.pods.store());
    each(queue, "ReplicaSet", i.replica_sets.store());
    each(queue, "EndpointSlice", i.endpoint_slices.store());
    each(queue, "Deployment", i.deployments.store());
    each(
        queue,
        "ReplicationController",
        i.replication_controllers.store(),
    );
    each(queue, "Job", i.jobs.store());
    each(queue, "DaemonSet", i.daemon_sets.store());
    each(queue, "Service", i.services.store());
    each(queue, "Node", i.nodes.store());
}

fn watch<K>(
    ctx: &Arc<Context>,
    queue: &Arc<Queue>,
    mut sub: svcnet_informer::Subscription<K>,
    kind: &'static str,
) where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let (ctx, queue) = (ctx.clone(), queue.clone());
    tokio::spawn(async move {
        while let Some(ch) = sub.recv().await {
            match ch {
                Change::Applied { new, .. } => {
                    let m = new.meta();
                    if m.owner_references.as_ref().is_some_and(|r| !r.is_empty())
                        || m.deletion_timestamp.is_some()
                    {
                        queue_obj(&queue, kind, &*new);
                    }
                    if m.deletion_timestamp.is_some() {
                        queue_owners(&queue, &*new);
                    }
                }
                Change::Deleted(old) => {
                    // Its dependents may be orphans now; its owners may be waiting on it.
                    let uid = old.meta().uid.clone().unwrap_or_default();
                    for k in dependents_of(&ctx, &uid) {
                        queue.add(k.0);
                    }
                    queue_owners(&queue, &*old);
                }
                Change::Resync => resync(&ctx, &queue),
            }
        }
    });
}

/// Queue the owners of `obj` (owners in foreground deletion wait on it).
fn queue_owners<K: Resource>(queue: &Queue, obj: &K) {
    let ns = obj.meta().namespace.as_deref();
    for r in obj.meta().owner_references.iter().flatten() {
        let ns = if r.kind == "Node" { None } else { ns };
        queue.add(item(&r.kind, ns, &r.name));
    }
}

/// The dependents (queue item, ownerReference to `uid`, being deleted) of an owner, from the cache.
fn dependents_of(ctx: &Context, uid: &str) -> Vec<(Key, bool)> {
    fn scan<K: Resource<DynamicType = ()> + Clone>(
        out: &mut Vec<(Key, bool)>,
        kind: &str,
        store: &Store<K>,
        uid: &str,
    ) {
        for o in store.state() {
            let m = o.meta();
            if m.owner_references.iter().flatten().any(|r| r.uid == uid) {
                out.push((
                    item(
                        kind,
                        m.namespace.as_deref(),
                        m.name.as_deref().unwrap_or(""),
                    ),
                    m.deletion_timestamp.is_some(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    if uid.is_empty() {
        return out;
    }
    let i = &ctx.informers;
    scan(&mut out, "Pod", i.pods.store(), uid);
    scan(&mut out, "ReplicaSet", i.replica_sets.store(), uid);
    scan(&mut out, "EndpointSlice", i.endpoint_slices.store(), uid);
    out
}

/// An owner as the collector sees it.
#[derive(Debug, PartialEq)]
enum Owner {
    /// Exists and is not being deleted in the foreground.
    Alive,
    /// Being deleted in the foreground: its dependents go first.
    Foreground,
    Gone,
    /// A kind the collector does not know: left alone.
    Unknown,
}

fn state_of<K: Resource>(obj: Option<&K>, r: &OwnerReference) -> Option<Owner> {
    let o = obj?;
    if o.meta().uid.as_deref() != Some(r.uid.as_str()) {
        return None;
    }
    let fg = o.meta().deletion_timestamp.is_some()
        && o.meta()
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == FOREGROUND);
    Some(if fg { Owner::Foreground } else { Owner::Alive })
}

async fn live<K>(ctx: &Context, ns: Option<&str>, r: &OwnerReference) -> Result<Owner, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns.unwrap_or("default"));
    match api.get_opt(&r.name).await? {
        Some(o) => Ok(state_of(Some(&o), r).unwrap_or(Owner::Gone)),
        None => Ok(Owner::Gone),
    }
}

async fn owner_state(
    ctx: &Context,
    ns: Option<&str>,
    r: &OwnerReference,
) -> Result<Owner, kube::Error> {
    let i = &ctx.informers;
    let n = ns.unwrap_or("default");
    let cached = match (r.api_version.as_str(), r.kind.as_str()) {
        ("apps/v1", "Deployment") => state_of(
            i.deployments
                .store()
                .get(&ObjectRef::new(&r.name).within(n))
                .as_deref(),
            r,
        ),
        ("apps/v1", "ReplicaSet") => state_of(
            i.replica_sets
                .store()
                .get(&ObjectRef::new(&r.name).within(n))
                .as_deref(),
            r,
        ),
        ("v1", "ReplicationController") => state_of(
            i.replication_controllers
                .store()
                .get(&ObjectRef::new(&r.name).within(n))
                .as_deref(),
            r,
        ),
        ("batch/v1", "Job") => state_of(
            i.jobs
                .store()
                .get(&ObjectRef::new(&r.name).within(n))
                .as_deref(),
            r,
        ),
        ("apps/v1", "DaemonSet") => state_of(
            i.daemon_sets
                .store()
                .get(&ObjectRef::new(&r.name).within(n))
                .as_deref(),
            r,
        ),
        ("v1", "Service") => state_of(
            i.services
                .store()
                .get(&ObjectRef::new(&r.name).within(n))
                .as_deref(),
            r,
        ),
        ("v1", "Pod") => state_of(
            i.pods
                .store()
                .get(&ObjectRef::new(&r.name).within(n))
                .as_deref(),
            r,
        ),
        ("v1", "Endpoints") => state_of(
            i.endpoints
                .store()
                .get(&ObjectRef::new(&r.name).within(n))
                .as_deref(),
            r,
        ),
        ("v1", "Node") => state_of(i.nodes.store().get(&ObjectRef::new(&r.name)).as_deref(), r),
        _ => return Ok(Owner::Unknown),
    };
    if let Some(s) = cached {
        return Ok(s);
    }
    // Not (yet) in the cache: ask the API server before concluding anything.
    match r.kind.as_str() {
        "Deployment" => live::<Deployment>(ctx, ns, r).await,
        "ReplicaSet" => live::<ReplicaSet>(ctx, ns, r).await,
        "ReplicationController" => live::<ReplicationController>(ctx, ns, r).await,
        "Job" => live::<Job>(ctx, ns, r).await,
        "DaemonSet" => live::<DaemonSet>(ctx, ns, r).await,
        "Service" => live::<Service>(ctx, ns, r).await,
        "Pod" => live::<Pod>(ctx, ns, r).await,
        "Endpoints" => live::<k8s_openapi::api::core::v1::Endpoints>(ctx, ns, r).await,
        _ => {
            let api: Api<Node> = Api::all(ctx.client.clone());
            Ok(match api.get_opt(&r.name).await? {
                Some(o) => state_of(Some(&o), r).unwrap_or(Owner::Gone),
                None => Owner::Gone,
            })
        }
    }
}

async fn sync(ctx: &Context, key: &Key) -> Result<Option<Duration>, kube::Error> {
    let (kind, name) = split(key);
    let ns = key.namespace.as_deref();
    let n = ns.unwrap_or("default");
    let i = &ctx.informers;
    let c = ctx.client.clone();
    match kind {
        "Pod" => {
            let o = i.pods.store().get(&ObjectRef::new(name).within(n));
            handle(ctx, Api::<Pod>::namespaced(c, n), o.as_deref()).await
        }
        "ReplicaSet" => {
            let o = i.replica_sets.store().get(&ObjectRef::new(name).within(n));
            handle(ctx, Api::<ReplicaSet>::namespaced(c, n), o.as_deref()).await
        }
        "EndpointSlice" => {
            let o = i
                .endpoint_slices
                .store()
                .get(&ObjectRef::new(name).within(n));
            handle(ctx, Api::<EndpointSlice>::namespaced(c, n), o.as_deref()).await
        }
        "Deployment" => {
            let o = i.deployments.store().get(&ObjectRef::new(name).within(n));
            handle(ctx, Api::<Deployment>::namespaced(c, n), o.as_deref()).await
        }
        "ReplicationController" => {
            let o = i
                .replication_controllers
                .store()
                .get(&ObjectRef::new(name).within(n));
            let api = Api::<ReplicationController>::namespaced(c, n);
            handle(ctx, api, o.as_deref()).await
        }
        "Job" => {
            let o = i.jobs.store().get(&ObjectRef::new(name).within(n));
            handle(ctx, Api::<Job>::namespaced(c, n), o.as_deref()).await
        }
        "DaemonSet" => {
            let o = i.daemon_sets.store().get(&ObjectRef::new(name).within(n));
            handle(ctx, Api::<DaemonSet>::namespaced(c, n), o.as_deref()).await
        }
        "Service" => {
            let o = i.services.store().get(&ObjectRef::new(name).within(n));
            handle(ctx, Api::<Service>::namespaced(c, n), o.as_deref()).await
        }
        "Node" => {
            let o = i.nodes.store().get(&ObjectRef::new(name));
            handle(ctx, Api::<Node>::all(c), o.as_deref()).await
        }
        _ => Ok(None),
    }
}

/// One object: first as an owner being deleted with a finalizer, then as a dependent.
async fn handle<K>(
    ctx: &Context,
    api: Api<K>,
    obj: Option<&K>,
) -> Result<Option<Duration>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(obj) = obj else { return Ok(None) };
    let m = obj.meta();
    let name = m.name.clone().unwrap_or_default();
    let uid = m.uid.clone().unwrap_or_default();
    let finalizers: Vec<String> = m.finalizers.clone().unwrap_or_default();
    if m.deletion_timestamp.is_some() && finalizers.iter().any(|f| f == ORPHAN) {
        for (dep, _) in dependents_of(ctx, &uid) {
            remove_refs(ctx, &dep, |r| r.uid == uid).await?;
        }
        remove_finalizer(&api, &name, &finalizers, ORPHAN).await?;
        return Ok(None);
    }
    if m.deletion_timestamp.is_some() && finalizers.iter().any(|f| f == FOREGROUND) {
        let deps = dependents_of(ctx, &uid);
        if deps.is_empty() {
            remove_finalizer(&api, &name, &finalizers, FOREGROUND).await?;
            return Ok(None);
        }
        for (dep, deleting) in deps {
            if !deleting {
                delete_item(ctx, &dep, PropagationPolicy::Foreground, None).await?;
            }
        }
        // Their deletions queue this owner again; look anyway in case one is stuck.
        return Ok(Some(Duration::from_secs(5)));
    }
    let refs = m.owner_references.clone().unwrap_or_default();
    if refs.is_empty() {
        return Ok(None);
    }
    let mut gone = Vec::new();
    let mut waiting_foreground = false;
    let mut unknown = false;
    for r in &refs {
        match owner_state(ctx, m.namespace.as_deref(), r).await? {
            Owner::Gone => gone.push(r.uid.clone()),
            Owner::Foreground => waiting_foreground = true,
            Owner::Unknown => unknown = true,
            Owner::Alive => {}
        }
    }
    let kind = K::kind(&()).into_owned();
    let key = item(&kind, m.namespace.as_deref(), &name);
    if gone.len() == refs.len() && !unknown {
        if m.deletion_timestamp.is_none() {
            tracing::debug!(%key, "owners gone; deleting");
            delete_item(ctx, &key, PropagationPolicy::Background, Some(uid)).await?;
        }
    } else if waiting_foreground && gone.len() + 1 >= refs.len() {
        if m.deletion_timestamp.is_none() {
            delete_item(ctx, &key, PropagationPolicy::Foreground, Some(uid)).await?;
        }
    } else if !gone.is_empty() {
        remove_refs(ctx, &key, |r| gone.contains(&r.uid)).await?;
    }
    Ok(None)
}

async fn remove_finalizer<K>(
    api: &Api<K>,
    name: &str,
    finalizers: &[String],
    which: &str,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let rest: Vec<&String> = finalizers.iter().filter(|f| f.as_str() != which).collect();
    let p = json!({"metadata": {"finalizers": rest}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(p))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if util::is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Delete the object a queue item names.
async fn delete_item(
    ctx: &Context,
    key: &Key,
    policy: PropagationPolicy,
    uid: Option<String>,
) -> Result<(), kube::Error> {
    let (kind, name) = split(key);
    let n = key.namespace.as_deref().unwrap_or("default");
    let dp = DeleteParams {
        propagation_policy: Some(policy),
        preconditions: uid.map(|u| Preconditions {
            uid: Some(u),
            resource_version: None,
        }),
        ..Default::default()
    };
    let c = ctx.client.clone();
    let r = match kind {
        "Pod" => Api::<Pod>::namespaced(c, n)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        "ReplicaSet" => Api::<ReplicaSet>::namespaced(c, n)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        "EndpointSlice" => Api::<EndpointSlice>::namespaced(c, n)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        _ => Ok(()),
    };
    match r {
        Err(e) if util::is_not_found(&e) || util::is_conflict(&e) => Ok(()),
        other => other,
    }
}

/// Remove the ownerReferences `drop` picks from the object a queue item names.
async fn remove_refs(
    ctx: &Context,
    key: &Key,
    drop: impl Fn(&OwnerReference) -> bool,
) -> Result<(), kube::Error> {
    let (kind, name) = split(key);
    let n = key.namespace.as_deref().unwrap_or("default");
    let i = &ctx.informers;
    let refs: Option<(Vec<OwnerReference>, Option<String>)> = match kind {
        "Pod" => i
            .pods
            .store()
            .get(&ObjectRef::new(name).within(n))
            .map(|o| (o.owner_references().to_vec(), o.uid())),
        "ReplicaSet" => i
            .replica_sets
            .store()
            .get(&ObjectRef::new(name).within(n))
            .map(|o| (o.owner_references().to_vec(), o.uid())),
        "EndpointSlice" => i
            .endpoint_slices
            .store()
            .get(&ObjectRef::new(name).within(n))
            .map(|o| (o.owner_references().to_vec(), o.uid())),
        _ => None,
    };
    let Some((refs, uid)) = refs else {
        return Ok(());
    };
    let keep: Vec<&OwnerReference> = refs.iter().filter(|r| !drop(r)).collect();
    if keep.len() == refs.len() {
        return Ok(());
    }
    let p = Patch::Merge(json!({"metadata": {"ownerReferences": keep, "uid": uid}}));
    let pp = PatchParams::default();
    let c = ctx.client.clone();
    let r = match kind {
        "Pod" => Api::<Pod>::namespaced(c, n)
            .patch(name, &pp, &p)
            .await
            .map(|_| ()),
        "ReplicaSet" => Api::<ReplicaSet>::namespaced(c, n)
            .patch(name, &pp, &p)
            .await
            .map(|_| ()),
        _ => Api::<EndpointSlice>::namespaced(c, n)
            .patch(name, &pp, &p)
            .await
            .map(|_| ()),
    };
    match r {
        Err(e) if util::is_not_found(&e) => Ok(()),
        other => other,
    }
}
