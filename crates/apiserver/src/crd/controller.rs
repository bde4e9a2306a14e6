//! The CRD controllers of apiextensions-apiserver, run inside the API server over its watch
//! cache: for every CRD, serve its kinds (the `crdHandler`'s storage map and the discovery
//! and OpenAPI controllers: here the server's [`Catalog`]), accept its names and establish it
//! (`NamingConditionController`: `NamesAccepted` + `status.acceptedNames`;
//! `EstablishingController`: `Established`), record its storage version
//! (`status.storedVersions`), and, once it is deleted, delete its objects and remove the
//! cleanup finalizer (`CRDFinalizer`).
//!
//! Each API server runs this against the shared store, so with several API servers on etcd
//! every one serves every CRD; their status writes are the same and retried on conflict.
//! Deviation: names are always accepted; a second CRD claiming a kind or short name already
//! served is not told `NamesAccepted=False`.
//!
//! [`Catalog`]: crate::catalog::Catalog

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{custom, set_condition, CLEANUP_FINALIZER};
use crate::objmeta;
use crate::registry::{self, Part, WriteOptions};
use crate::resources::CUSTOMRESOURCEDEFINITIONS;
use crate::state::AppState;

fn name_of(crd: &Value) -> String {
    objmeta::name(crd).unwrap_or_default().to_string()
}

fn condition_true(crd: &Value, type_: &str) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

/// `crd` with the status the naming and establishing controllers give it.
fn established(crd: &Value) -> Value {
    let mut next = crd.clone();
    if !next["status"].is_object() {
        next["status"] = json!({});
    }
    next["status"]["acceptedNames"] = svcnet_api::apiextensions::crd::accepted_names(crd);
    set_condition(
        &mut next,
        "NamesAccepted",
        "True",
        "NoConflicts",
        "no conflicts found",
    );
    set_condition(
        &mut next,
        "Established",
        "True",
        "InitialNamesAccepted",
        "the initial names have been accepted",
    );
    let storage = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
        .map(str::to_string);
    let mut stored: Vec<Value> = next["status"]["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(s) = storage {
        if !stored.contains(&json!(s)) {
            stored.push(json!(s));
        }
    }
    next["status"]["storedVersions"] = Value::Array(stored);
    next
}

/// Whether the status of `crd` is what [`established`] would make it (ignoring times).
fn status_current(crd: &Value, want: &Value) -> bool {
    let strip = |v: &Value| {
        let mut s = v["status"].clone();
        for c in s["conditions"].as_array_mut().into_iter().flatten() {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
        s
    };
    strip(crd) == strip(want)
}

/// Serve the kinds of every stored CRD (without writing anything): what a starting server does
/// before it listens, so a CRD established earlier is served from the first request on.
pub fn load(state: &AppState) {
    let (objs, _) = state.cache.list(&CUSTOMRESOURCEDEFINITIONS.prefix(None));
    for o in objs {
        if condition_true(&o.value, "Established") {
            let rv = o.mod_revision;
            state
                .catalog
                .set(&name_of(&o.value), rv, custom::infos(&o.value));
        }
    }
}

/// Establish `crd`: serve it, then write its status.
async fn establish(state: &AppState, crd: &Value, rv: i64) {
    let name = name_of(crd);
    let want = established(crd);
    // Served before it is said to be: a client waiting for Established can use it at once.
    state.catalog.set(&name, rv, custom::infos(&want));
    if status_current(crd, &want) {
        return;
    }
    let res = registry::update(
        state,
        &CUSTOMRESOURCEDEFINITIONS,
        None,
        &name,
        Part::Status,
        &WriteOptions::default(),
        false,
        |cur| {
            let mut next = established(cur);
            objmeta::clear_resource_version(&mut next);
            Ok(next)
        },
    )
    .await;
    if let Err(e) = res {
        if e.code != 404 && e.code != 409 {
            tracing::warn!(crd = name, error = %e, "establishing CustomResourceDefinition");
        }
    }
}

/// Delete the objects of a deleted CRD; once none is left, let the CRD go. True when done.
async fn finalize(state: &AppState, crd: &Value) -> bool {
    let name = name_of(crd);
    if !objmeta::finalizers(crd)
        .iter()
        .any(|f| f == CLEANUP_FINALIZER)
    {
        state.catalog.remove(&name);
        return true;
    }
    let mut left = false;
    let served = state.catalog.of_crd(&name);
    let accepted = crd
        .pointer("/status/acceptedNames/plural")
        .and_then(Value::as_str);
    let infos = if served.is_empty() && accepted.is_some_and(|p| !p.is_empty()) {
        custom::infos(crd)
    } else {
        served
    };
    if let Some(info) = infos.first().copied() {
        let (objs, _) = state.cache.list(&info.prefix(None));
        for o in objs {
            left = true;
            if objmeta::deletion_timestamp(&o.value).is_some() {
                continue;
            }
            let ns = objmeta::namespace(&o.value).map(str::to_string);
            let obj_name = name_of(&o.value);
            if let Err(e) =
                registry::delete(state, info, ns.as_deref(), &obj_name, &Default::default()).await
            {
                if e.code != 404 {
                    tracing::warn!(crd = name, name = obj_name, error = %e, "deleting custom object");
                }
            }
        }
    }
    if left {
        return false;
    }
    state.catalog.remove(&name);
    let res = registry::update(
        state,
        &CUSTOMRESOURCEDEFINITIONS,
        None,
        &name,
        Part::Main,
        &WriteOptions::default(),
        false,
        |cur| {
            let mut next = cur.clone();
            let kept: Vec<String> = objmeta::finalizers(cur)
                .into_iter()
                .filter(|f| f != CLEANUP_FINALIZER)
                .collect();
            objmeta::meta_mut(&mut next).insert("finalizers".into(), json!(kept));
            objmeta::clear_resource_version(&mut next);
            Ok(next)
        },
    )
    .await;
    match res {
        Ok(_) => true,
        Err(e) if e.code == 404 => true,
        Err(e) => {
            tracing::warn!(crd = name, error = %e, "removing the cleanup finalizer");
            false
        }
    }
}

/// Runs until the process ends: reacts to CRD changes, and re-checks deleted CRDs every
/// second while their objects are going.
pub async fn run(state: Arc<AppState>) {
    let prefix = CUSTOMRESOURCEDEFINITIONS.prefix(None);
    let (_, _, mut watch) = state.cache.list_and_watch(&prefix);
    loop {
        let (objs, _) = state.cache.list(&prefix);
        let mut pending = false;
        let mut present = Vec::new();
        for o in &objs {
            present.push(name_of(&o.value));
            if objmeta::deletion_timestamp(&o.value).is_some() {
                pending |= !finalize(&state, &o.value).await;
            } else {
                establish(&state, &o.value, o.mod_revision).await;
            }
        }
        for gone in state.catalog.crd_names() {
            if !present.contains(&gone) {
                state.catalog.remove(&gone);
            }
        }
        if pending {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        match watch.next().await {
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                let (_, _, w) = state.cache.list_and_watch(&prefix);
                watch = w;
            }
            None => return,
        }
    }
}
