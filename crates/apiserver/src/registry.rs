//! The write path every resource shares, as kube-apiserver's generic registry
//! (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`): [`create`] (`Store.Create`:
//! system metadata, defaulting, allocation, validation, namespace admission, one store
//! transaction), [`update`] (`Store.Update`: the `GuaranteedUpdate` read-modify-write loop) and
//! [`delete`] (`Store.Delete`: preconditions, graceful deletion, finalizers).
//!
//! The REST handlers ([`crate::rest`]) only decode a request and call these; the server's own
//! writers ([`crate::bootstrap`], the namespace controller in [`crate::namespaces`]) call them
//! too, so an object written in-process goes through the same steps as one a client sends.
//! Kind-specific steps come from the resource's [`crate::strategy::Strategy`] and, for
//! Services' allocations, [`crate::hooks`].

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use svcnet_store::{Compare, Op};

use crate::alloc::Claims;
use crate::error::{ApiError, ApiResult};
use crate::hooks;
use crate::objmeta::{self, meta_mut};
use crate::resources::{ResourceInfo, CUSTOMRESOURCEDEFINITIONS, NAMESPACES, PODS, RUNTIMECLASSES};
use crate::state::AppState;

/// Attempts of a write that lost a race (a concurrent update, a random allocation taken).
const MAX_ATTEMPTS: usize = 16;
/// Attempts of one update (PUT, PATCH, status, binding) racing other writers of the object.
const UPDATE_ATTEMPTS: usize = 100;
const WAIT: Duration = Duration::from_secs(3);

/// `CreateOptions` / `UpdateOptions`: what a client may ask of a create or an update.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    /// An update's `metav1.Preconditions.UID`: the uid the object of a PUT carries
    /// (`rest.DefaultUpdatedObjectInfo.Preconditions`). The stored object must have it, or the
    /// update is a 409 before anything else is looked at, a missing object included.
    pub precondition_uid: Option<String>,
    /// The manager whose Update the write records in managedFields (kube-apiserver's
    /// FieldManager); `None`: managedFields are stored as given (an apply, internal writes).
    pub field_manager: Option<String>,
    /// Create a missing object whatever the kind's `allow_create_on_update` (an apply patch).
    pub force_allow_create: bool,
    /// Who writes (what a CertificateSigningRequest records as its requester).
    pub user: Option<crate::auth::User>,
}

pub use crate::part::Part;

/// `metav1.DeleteOptions`: what a client may ask of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

fn txn_parts(
    key: &str,
    value: Vec<u8>,
    guard: Compare,
    claims: &Claims,
) -> (Vec<Compare>, Vec<Op>) {
    let mut compares = vec![guard];
    let mut ops = vec![Op::Put {
        key: key.to_string(),
        value: Bytes::from(value),
    }];
    for (k, v) in &claims.claim {
        compares.push(Compare::Absent(k.clone()));
        ops.push(Op::Put {
            key: k.clone(),
            value: v.clone(),
        });
    }
    for k in &claims.release {
        ops.push(Op::Delete { key: k.clone() });
    }
    (compares, ops)
}

/// Namespace admission (Kubernetes' NamespaceLifecycle): the namespace must exist and not be
/// terminating. The watch cache answers; on a miss the store does (as NamespaceLifecycle's live
/// lookup): a namespace created a moment ago may not have reached the cache yet.
async fn check_namespace(
    state: &AppState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
) -> ApiResult<()> {
    let key = NAMESPACES.key(None, ns);
    let cached = state.cache.get(&key).0;
    let stored: Value;
    let value = match &cached {
        Some(obj) => &obj.value,
        None => match state.store.get(&key).await?.0 {
            Some(kv) => {
                stored = objmeta::from_storage(&kv)?;
                &stored
            }
            None => return Err(ApiError::namespace_not_found(ns)),
        },
    };
    if objmeta::deletion_timestamp(value).is_some()
        || value.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
    {
        return Err(ApiError::forbidden(
            info,
            name,
            &format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        ));
    }
    Ok(())
}

/// The RuntimeClass admission plugin (`plugin/pkg/admission/runtimeclass`): a pod naming a
/// RuntimeClass that does not exist is refused, 403 with the plugin's message. Runs before
/// the name is generated, as admission does (`pods "web-" is forbidden: ...`).
async fn check_runtime_class(state: &AppState, obj: &Value) -> ApiResult<()> {
    let Some(rc) = obj
        .pointer("/spec/runtimeClassName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Ok(());
    };
    let key = RUNTIMECLASSES.key(None, rc);
    let found = match state.cache.get(&key).0 {
        Some(obj) => objmeta::deletion_timestamp(&obj.value).is_none(),
        // The cache may lag a RuntimeClass created a moment ago: a live lookup, as the plugin.
        None => state.store.get(&key).await?.0.is_some(),
    };
    if found {
        return Ok(());
    }
    let name = ["name", "generateName"]
        .iter()
        .find_map(|f| {
            obj.pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("Unknown");
    Err(ApiError::forbidden(
        &PODS,
        name,
        &format!("pod rejected: RuntimeClass {rc:?} not found"),
    ))
}

/// Create `obj` (already decoded) in `namespace` (`Store.Create`).
pub async fn create(
    state: &AppState,
    info: &'static ResourceInfo,
    namespace: Option<&str>,
    mut obj: Value,
    opts: &WriteOptions,
) -> ApiResult<Value> {
    // Namespace of the object vs the request.
    if info.namespaced {
        let url_ns = namespace.ok_or_else(ApiError::method_not_allowed)?;
        match objmeta::namespace(&obj) {
            None => {
                meta_mut(&mut obj).insert("namespace".into(), json!(url_ns));
            }
            Some(ns) if ns == url_ns => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
        }
    }
    if objmeta::resource_version(&obj).is_some() {
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    if std::ptr::eq(info, &PODS) {
        check_runtime_class(state, &obj).await?;
    }
    {
        let m = meta_mut(&mut obj);
        let has_name = m
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !has_name {
            if let Some(prefix) = m
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                let generated = objmeta::generate_name(prefix);
                m.insert("name".into(), json!(generated));
            }
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(objmeta::now_rfc3339()));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        if info.has_generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    info.strategy
        .default(&mut obj)
        .map_err(|e| ApiError::cannot_handle(info, e))?;
    if let Some(m) = &opts.field_manager {
        crate::ssa::record_update(info, Part::Main, None, &mut obj, m);
    }
    info.strategy
        .prepare_for_create(&mut obj)
        .map_err(|e| ApiError::cannot_handle(info, e))?;
    hooks::prepare_create(info, &mut obj, opts.user.as_ref());
    info.strategy.fill_go_zero(&mut obj);
    let name = objmeta::name(&obj).unwrap_or("").to_string();
    let key = info.key(namespace, &name);
    let base = obj;
    let mut last_err = None;
    for _ in 0..MAX_ATTEMPTS {
        let mut obj = base.clone();
        let claims = hooks::begin_create(state, info, &mut obj)?;
        let errs = info
            .strategy
            .validate_create(&obj)
            .map_err(|e| ApiError::cannot_handle(info, e))?;
        if !errs.is_empty() {
            return Err(ApiError::invalid(info, &name, &errs));
        }
        if name.is_empty() {
            return Err(ApiError::bad_request("Name parameter required."));
        }
        if let Some(ns) = namespace.filter(|_| info.namespaced) {
            check_namespace(state, info, ns, &name).await?;
        }
        if opts.dry_run {
            return Ok(obj);
        }
        let (compares, ops) = txn_parts(
            &key,
            objmeta::for_storage(&obj),
            Compare::Absent(key.clone()),
            &claims,
        );
        let res = state.store.txn(compares, ops).await?;
        if res.succeeded {
            objmeta::set_resource_version(&mut obj, res.revision);
            return Ok(obj);
        }
        match res.failed_compare {
            Some(0) => return Err(ApiError::already_exists(info, &name)),
            _ => {
                // An allocation was taken meanwhile: let the cache catch up and allocate again
                // (a requested value then fails with "already allocated").
                state.cache.wait_consistent(WAIT).await?;
                last_err = Some(ApiError::internal("allocation kept conflicting; try again"));
            }
        }
    }
    Err(last_err.unwrap_or_else(|| ApiError::internal("create did not converge")))
}

/// Carry the system-owned metadata of `old` into `new` (`rest.BeforeUpdate`: the timestamps,
/// generation and the uid when none is given). A uid that differs was reported by
/// [`changed_uid`] first; name and namespace were checked by the REST handler.
fn keep_system_metadata(new: &mut Value, old: &Value) {
    let old_meta = objmeta::meta(old).cloned().unwrap_or_default();
    let m = meta_mut(new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "name",
        "namespace",
    ] {
        match old_meta.get(f) {
            Some(v) => {
                m.insert(f.into(), v.clone());
            }
            None => {
                m.remove(f);
            }
        }
    }
}

/// `metadata.uid: Invalid value: "x": field is immutable` when `new` names a uid other than
/// `old`'s: `rest.BeforeUpdate`'s `validateCommonFields` (`ValidateObjectMetaAccessorUpdate`),
/// which sees the whole object whatever part of it the update may change.
fn changed_uid(new: &Value, old: &Value) -> Option<svcnet_api::field::Error> {
    let uid = objmeta::meta_str(new, "uid").filter(|u| !u.is_empty())?;
    (Some(uid) != objmeta::meta_str(old, "uid")).then(|| {
        svcnet_api::field::Error::invalid(
            &svcnet_api::field::Path::new("metadata").child("uid"),
            uid,
            "field is immutable",
        )
    })
}

/// Update an object (`Store.Update`). The read-modify-write loop of every update (Kubernetes'
/// GuaranteedUpdate): `produce` turns
/// the current object into the desired one; the write is retried on a lost race unless the
/// desired object names the resourceVersion it expects, which then must match (409 otherwise).
/// A missing object is created when the kind allows create-on-update and `create_missing`.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    state: &AppState,
    info: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    part: Part,
    opts: &WriteOptions,
    create_missing: bool,
    mut produce: impl FnMut(&Value) -> ApiResult<Value>,
) -> ApiResult<(Value, bool)> {
    let key = info.key(namespace, name);
    // Kubernetes' GuaranteedUpdate retries a lost race until it wins; we bound it generously
    // and back off a little (randomized) so many writers of one object all get through.
    for attempt in 0..UPDATE_ATTEMPTS {
        if attempt >= 4 {
            use rand::Rng;
            let us = rand::rng().random_range(0..=200 * attempt as u64);
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
        state.cache.wait_consistent(WAIT).await?;
        let cur = state.cache.get(&key).0;
        if let Some(uid) = &opts.precondition_uid {
            let actual = cur
                .as_ref()
                .and_then(|c| objmeta::meta_str(&c.value, "uid"))
                .unwrap_or("");
            if uid != actual {
                return Err(ApiError::uid_precondition_failed(
                    info, name, &key, uid, actual,
                ));
            }
        }
        let Some(cur) = cur else {
            if ((create_missing && info.allow_create_on_update) || opts.force_allow_create)
                && part == Part::Main
            {
                let mut obj = produce(&Value::Null)?;
                objmeta::clear_resource_version(&mut obj);
                return Ok((create(state, info, namespace, obj, opts).await?, true));
            }
            return Err(ApiError::not_found(info, name));
        };
        let old = &cur.value;
        let mut new = produce(old)?;
        let uid_error = changed_uid(&new, old).filter(|_| part != Part::Binding);
        let expected_rv = objmeta::resource_version(&new).map(str::to_string);
        if let Some(rv) = &expected_rv {
            if *rv != cur.mod_revision.to_string() {
                return Err(ApiError::conflict_modified(info, name));
            }
        }
        keep_system_metadata(&mut new, old);
        if expected_rv.is_none() {
            // An unconditional update is validated as an update of the current version.
            objmeta::set_resource_version(&mut new, cur.mod_revision);
        }
        info.strategy
            .default(&mut new)
            .map_err(|e| ApiError::cannot_handle(info, e))?;
        match part {
            Part::Main if info.has_status() => match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            },
            Part::Main => {}
            Part::Status => {
                let status = new.get("status").cloned();
                new = old.clone();
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            Part::Finalize => {
                let finalizers = new.pointer("/spec/finalizers").cloned();
                new = old.clone();
                if !new.get("spec").is_some_and(Value::is_object) {
                    new["spec"] = json!({});
                }
                new["spec"]["finalizers"] = finalizers.unwrap_or(json!([]));
            }
            Part::Approval => {
                let conditions = new.pointer("/status/conditions").cloned();
                new = old.clone();
                if !new.get("status").is_some_and(Value::is_object) {
                    new["status"] = json!({});
                }
                match conditions {
                    Some(c) => new["status"]["conditions"] = c,
                    None => {
                        if let Some(s) = new["status"].as_object_mut() {
                            s.remove("conditions");
                        }
                    }
                }
            }
            Part::EphemeralContainers => {
                // `dropNonEphemeralContainerUpdates`: all but the ephemeral containers as they were.
                let ecs = new.pointer("/spec/ephemeralContainers").cloned();
                new = old.clone();
                match (ecs, new["spec"].as_object_mut()) {
                    (Some(e), Some(spec)) => {
                        spec.insert("ephemeralContainers".into(), e);
                    }
                    (None, Some(spec)) => {
                        spec.remove("ephemeralContainers");
                    }
                    (_, None) => {}
                }
            }
            Part::Binding => {
                let node = new
                    .pointer("/spec/nodeName")
                    .cloned()
                    .unwrap_or(Value::Null);
                let conditions = new
                    .pointer("/status/conditions")
                    .cloned()
                    .unwrap_or(json!([]));
                new = old.clone();
                new["spec"]["nodeName"] = node;
                if !new.get("status").is_some_and(Value::is_object) {
                    new["status"] = json!({});
                }
                new["status"]["conditions"] = conditions;
            }
        }
        hooks::prepare_update(info, part, &mut new, old);
        info.strategy.fill_go_zero(&mut new);
        if info.has_generation && new.get("spec") != old.get("spec") {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        if let Some(m) = &opts.field_manager {
            crate::ssa::record_update(info, part, Some(old), &mut new, m);
        }
        let claims = if part == Part::Main {
            hooks::begin_update(state, info, &mut new, old)?
        } else {
            Claims::default()
        };
        let mut errs: Vec<_> = uid_error.into_iter().collect();
        errs.extend(
            match part {
                Part::Status => info.strategy.validate_status_update(&new, old),
                Part::Approval => crate::strategy::validate_csr_approval(&new, old),
                Part::Binding => Ok(Vec::new()),
                Part::EphemeralContainers => {
                    crate::strategy::validate_ephemeral_containers_update(&new, old)
                }
                _ => info.strategy.validate_update(&new, old),
            }
            .map_err(|e| ApiError::cannot_handle(info, e))?,
        );
        if !errs.is_empty() {
            return Err(ApiError::invalid(info, name, &errs));
        }
        if objmeta::same_for_storage(&new, old) && claims.is_empty() {
            return Ok((old.clone(), false));
        }
        if opts.dry_run {
            return Ok((new, false));
        }
        // Removing the last finalizer of an object being deleted deletes it.
        if objmeta::deletion_timestamp(&new).is_some()
            && objmeta::finalizers(&new).is_empty()
            && !held_by_spec_finalizers(info, &new)
        {
            let mut release = hooks::on_delete(state, info, old)?;
            release.release.extend(claims.release);
            if let Some(v) = finish_delete(state, &key, cur.mod_revision, &new, &release).await? {
                return Ok((v, false));
            }
            continue;
        }
        let (compares, ops) = txn_parts(
            &key,
            objmeta::for_storage(&new),
            Compare::ModRevision(key.clone(), cur.mod_revision),
            &claims,
        );
        let res = state.store.txn(compares, ops).await?;
        if res.succeeded {
            objmeta::set_resource_version(&mut new, res.revision);
            return Ok((new, false));
        }
        if res.failed_compare == Some(0) && expected_rv.is_some() {
            return Err(ApiError::conflict_modified(info, name));
        }
    }
    Err(ApiError::conflict_modified(info, name))
}

/// Namespaces stay until their `spec.finalizers` are cleared too.
fn held_by_spec_finalizers(info: &ResourceInfo, obj: &Value) -> bool {
    std::ptr::eq(info, &NAMESPACES)
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

/// Delete `key` if it is still at `rev`; `None` when it changed meanwhile (retry).
async fn finish_delete(
    state: &AppState,
    key: &str,
    rev: i64,
    last: &Value,
    claims: &Claims,
) -> ApiResult<Option<Value>> {
    let mut ops = vec![Op::Delete {
        key: key.to_string(),
    }];
    ops.extend(claims.release.iter().map(|k| Op::Delete { key: k.clone() }));
    let res = state
        .store
        .txn(vec![Compare::ModRevision(key.to_string(), rev)], ops)
        .await?;
    if !res.succeeded {
        return Ok(None);
    }
    let mut v = last.clone();
    objmeta::set_resource_version(&mut v, res.revision);
    Ok(Some(v))
}

/// Namespaces Kubernetes never lets you delete.
const UNDELETABLE_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Delete one object with Kubernetes' semantics: preconditions; graceful deletion of pods bound
/// to a node (deletionTimestamp set; the node agent finishes it); finalizers (the object stays,
/// marked, until they are removed); namespaces go Terminating. Returns the object as last seen
/// and whether it is gone.
pub async fn delete(
    state: &AppState,
    info: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<(Value, bool)> {
    let key = info.key(namespace, name);
    if std::ptr::eq(info, &NAMESPACES) && UNDELETABLE_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            info,
            name,
            "this namespace may not be deleted",
        ));
    }
    for _ in 0..MAX_ATTEMPTS {
        state.cache.wait_consistent(WAIT).await?;
        let Some(cur) = state.cache.get(&key).0 else {
            return Err(ApiError::not_found(info, name));
        };
        let obj = &cur.value;
        if let Some(uid) = &opts.precondition_uid {
            let actual = objmeta::meta_str(obj, "uid").unwrap_or("");
            if uid != actual {
                return Err(ApiError::conflict(
                    info,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            if *rv != cur.mod_revision.to_string() {
                return Err(ApiError::conflict(
                    info,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in meta: {}",
                        cur.mod_revision
                    ),
                ));
            }
        }
        let mut marked = obj.clone();
        let mut keep = false;
        // Graceful deletion of a pod running on a node.
        if std::ptr::eq(info, &PODS)
            && obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
        {
            let phase = obj
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("");
            let grace = opts
                .grace_period_seconds
                .or_else(|| {
                    obj.pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                })
                .unwrap_or(30);
            if grace > 0 && phase != "Succeeded" && phase != "Failed" {
                let current = obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                if current.is_some_and(|c| c <= grace) {
                    return Ok((obj.clone(), false));
                }
                let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                let m = meta_mut(&mut marked);
                m.insert(
                    "deletionTimestamp".into(),
                    json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                keep = true;
            }
        }
        // Namespaces: Terminating until their content is gone.
        if held_by_spec_finalizers(info, obj) {
            if objmeta::deletion_timestamp(obj).is_some() {
                return Ok((obj.clone(), false));
            }
            meta_mut(&mut marked).insert("deletionTimestamp".into(), json!(objmeta::now_rfc3339()));
            marked["status"] = json!({ "phase": "Terminating" });
            keep = true;
        }
        // A CRD is held until its objects are deleted (`crate::crd::controller`).
        if std::ptr::eq(info, &CUSTOMRESOURCEDEFINITIONS) {
            crate::crd::mark_for_deletion(&mut marked);
        }
        let mut finalizers = objmeta::finalizers(&marked);
        match opts.propagation_policy.as_deref() {
            Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                finalizers.push("foregroundDeletion".into())
            }
            Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                finalizers.push("orphan".into())
            }
            _ => {}
        }
        if !finalizers.is_empty() {
            let m = meta_mut(&mut marked);
            if !m.contains_key("deletionTimestamp") {
                m.insert("deletionTimestamp".into(), json!(objmeta::now_rfc3339()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            m.insert("finalizers".into(), json!(finalizers));
            keep = true;
        }
        if opts.dry_run {
            return Ok((if keep { marked } else { obj.clone() }, !keep));
        }
        if keep {
            if objmeta::same_for_storage(&marked, obj) {
                return Ok((obj.clone(), false));
            }
            if info.has_generation {
                let g = obj
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    + 1;
                meta_mut(&mut marked).insert("generation".into(), json!(g));
            }
            let res = state
                .store
                .txn(
                    vec![Compare::ModRevision(key.clone(), cur.mod_revision)],
                    vec![Op::Put {
                        key: key.clone(),
                        value: Bytes::from(objmeta::for_storage(&marked)),
                    }],
                )
                .await?;
            if res.succeeded {
                objmeta::set_resource_version(&mut marked, res.revision);
                return Ok((marked, false));
            }
            continue;
        }
        let claims = hooks::on_delete(state, info, obj)?;
        if let Some(v) = finish_delete(state, &key, cur.mod_revision, obj, &claims).await? {
            return Ok((v, true));
        }
    }
    Err(ApiError::conflict_modified(info, name))
}

/// Delete every object of `info` in `namespace` that `selected` picks (`Store.DeleteCollection`),
/// each as [`delete`] does; one gone meanwhile is skipped. Returns the objects as last seen and
/// the revision of the list they were picked from.
pub async fn delete_collection(
    state: &AppState,
    info: &'static ResourceInfo,
    namespace: Option<&str>,
    selected: impl Fn(&Value) -> bool,
    opts: &DeleteOptions,
) -> ApiResult<(Vec<Value>, i64)> {
    state.cache.wait_consistent(WAIT).await?;
    let (objs, rv) = state.cache.list(&info.prefix(namespace));
    let mut deleted = Vec::new();
    for o in objs.iter().filter(|o| selected(&o.value)) {
        let ns = objmeta::namespace(&o.value);
        let name = objmeta::name(&o.value).unwrap_or("");
        match delete(state, info, ns, name, opts).await {
            Ok((v, _)) => deleted.push(v),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok((deleted, rv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::SERVICES;

    /// A namespace the watch cache has not seen yet (written a moment ago) is found in the
    /// store: `svcnet up` once failed creating `default/kubernetes` right after `default`.
    #[tokio::test]
    async fn a_namespace_not_yet_in_the_watch_cache_is_found_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config::new(dir.path().to_path_buf());
        cfg.secure_port = 0;
        let server = crate::server::Server::start(cfg).await.unwrap();
        let st = &server.state;
        let key = NAMESPACES.key(None, "fresh");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "fresh", "uid": "u1"},
                        "status": {"phase": "Active"}});
        // Straight into the store: the cache learns of it from the store's watch, later.
        st.store
            .txn(
                vec![Compare::Absent(key.clone())],
                vec![Op::Put {
                    key: key.clone(),
                    value: Bytes::from(ns.to_string()),
                }],
            )
            .await
            .unwrap();
        let svc = |ns: &str| {
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web", "namespace": ns},
                   "spec": {"ports": [{"port": 80}]}})
        };
        let created = create(
            st,
            &SERVICES,
            Some("fresh"),
            svc("fresh"),
            &WriteOptions::default(),
        )
        .await;
        assert!(created.is_ok(), "{:?}", created.err());
        let e = create(
            st,
            &SERVICES,
            Some("nowhere"),
            svc("nowhere"),
            &WriteOptions::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, 404);
        assert_eq!(e.message, "namespaces \"nowhere\" not found");
        server.shutdown().await;
    }
}
