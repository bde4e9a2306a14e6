//! `metadata.managedFields` as kube-apiserver's FieldManager keeps them
//! (`k8s.io/apimachinery/pkg/util/managedfields/internal`): decoding and encoding the entries
//! (`managedfields.go`), the manager chain every write goes through — skip-non-applied
//! (`before-first-apply`), build-manager-info, managed-fields-updater (times), strip-meta —
//! around the structured-merge [`Updater`].
//!
//! Not done: the last-applied annotation managers (conflicts with client-side apply's
//! annotation, `lastappliedmanager.go`/`lastappliedupdater.go`) and capping Update managers
//! at 10 (`capmanagers.go`).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::path::PathElement;
use crate::schema::Type;
use crate::set::Set;
use crate::update::{
    Conflicts, ManagedFields, Manager, Operation, UpdateError, Updater, VersionedSet,
};

/// Why an apply failed, by the HTTP status Kubernetes answers with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// 409 Conflict, reason `Conflict`, one cause of type `FieldManagerConflict` per field.
    #[error("{}", .0.message())]
    Conflicts(Conflicts),
    /// 400 BadRequest (`metadata.managedFields must be nil`).
    #[error("{0}")]
    BadRequest(String),
    /// 500: what apimachinery returns as a plain error (`failed to create typed patch object
    /// (...)`, `failed to decode managed fields: ...`).
    #[error("{0}")]
    Internal(String),
}

/// Decoded managedFields: each manager's fields and time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Managed {
    pub fields: ManagedFields,
    pub times: BTreeMap<Manager, Option<String>>,
}

/// apimachinery `DecodeManagedFields`.
pub fn decode(entries: &[Value]) -> Result<Managed, String> {
    let mut m = Managed::default();
    for (i, e) in entries.iter().enumerate() {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
        let operation = match s("operation") {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".to_string()),
        };
        if s("apiVersion").is_empty() {
            return Err("apiVersion must not be empty".to_string());
        }
        match s("fieldsType") {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            t => {
                return Err(format!(
                    "invalid fieldsType {t:?} in managed fields entry {i}"
                ))
            }
        }
        let manager = Manager {
            manager: s("manager").to_string(),
            operation,
            api_version: (operation == Operation::Update).then(|| s("apiVersion").to_string()),
            subresource: s("subresource").to_string(),
        };
        let set = match e.get("fieldsV1") {
            Some(f) => Set::from_fields_v1(f).map_err(|e| format!("error decoding set: {e}"))?,
            None => Set::new(),
        };
        m.fields.insert(
            manager.clone(),
            VersionedSet {
                set,
                api_version: s("apiVersion").to_string(),
                applied: operation == Operation::Apply,
            },
        );
        m.times.insert(
            manager,
            e.get("time").and_then(Value::as_str).map(String::from),
        );
    }
    Ok(m)
}

/// apimachinery `encodeManagedFields`, sorted as `sortEncodedManagedFields`: by operation,
/// time, manager, apiVersion, subresource. Fields in Kubernetes' order.
pub fn encode(m: &Managed) -> Vec<Value> {
    let mut entries: Vec<(&Manager, &VersionedSet, Option<&str>)> = m
        .fields
        .iter()
        .map(|(k, vs)| (k, vs, m.times.get(k).and_then(|t| t.as_deref())))
        .collect();
    entries.sort_by(|a, b| {
        (
            a.0.operation.as_str(),
            a.2.unwrap_or(""),
            &a.0.manager,
            &a.1.api_version,
            &a.0.subresource,
        )
            .cmp(&(
                b.0.operation.as_str(),
                b.2.unwrap_or(""),
                &b.0.manager,
                &b.1.api_version,
                &b.0.subresource,
            ))
    });
    entries
        .into_iter()
        .map(|(k, vs, t)| {
            let mut e = Map::new();
            e.insert("manager".into(), json!(k.manager));
            let op = if vs.applied {
                Operation::Apply
            } else {
                k.operation
            };
            e.insert("operation".into(), json!(op.as_str()));
            e.insert("apiVersion".into(), json!(vs.api_version));
            if let Some(t) = t {
                e.insert("time".into(), json!(t));
            }
            e.insert("fieldsType".into(), json!("FieldsV1"));
            e.insert("fieldsV1".into(), vs.set.to_fields_v1());
            if !k.subresource.is_empty() {
                e.insert("subresource".into(), json!(k.subresource));
            }
            Value::Object(e)
        })
        .collect()
}

/// The manager of a request without `fieldManager`: the User-Agent up to its first `/`
/// (apiserver `managerOrUserAgent`, `prefixFromUserAgent`), at most 128 characters.
pub fn manager_or_user_agent(field_manager: Option<&str>, user_agent: &str) -> String {
    match field_manager {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => user_agent
            .split('/')
            .next()
            .unwrap_or("")
            .chars()
            .take(128)
            .collect(),
    }
}

/// The fields no manager owns (apimachinery `stripMetaManager`).
fn strip_set() -> Set {
    let mut s = Set::new();
    for p in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ] {
        let path: Vec<PathElement> = p.iter().map(|f| PathElement::field(f)).collect();
        s.insert(&path);
    }
    s
}

fn strip(fields: &mut ManagedFields, manager: &Manager) {
    if let Some(vs) = fields.get_mut(manager) {
        vs.set = vs.set.difference(&strip_set());
        if vs.set.is_empty() {
            fields.remove(manager);
        }
    }
}

fn managed_fields_of(obj: &Value) -> Option<&Vec<Value>> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
}

fn set_managed_fields(obj: &mut Value, m: &Managed) {
    let entries = encode(m);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    o
}

/// kube-apiserver's FieldManager for one kind at one API version and subresource.
#[derive(Clone, Copy, Debug)]
pub struct FieldManager<'a> {
    pub ty: &'a Type,
    /// `v1`, `apps/v1`...
    pub api_version: &'a str,
    /// `""` for the main resource, `status`, `scale`...
    pub subresource: &'a str,
    /// Reset fields no manager of this endpoint owns (see [`Updater::ignored`]).
    pub ignored: Option<&'a Set>,
}

impl FieldManager<'_> {
    fn updater(&self) -> Updater<'_> {
        Updater {
            ty: self.ty,
            api_version: self.api_version,
            ignored: self.ignored,
        }
    }

    /// The Update operation's inner chain (managedFieldsUpdater → stripMeta → structured
    /// merge): `manager` wrote `new` over `live`.
    fn update_managed(
        &self,
        live: &Value,
        new: &Value,
        mut managed: Managed,
        manager: &Manager,
        now: &str,
    ) -> Result<Managed, UpdateError> {
        let current = Manager::update("current-operation", self.api_version, "");
        let mut fields = self
            .updater()
            .update(live, new, &managed.fields, &current)?;
        strip(&mut fields, &current);
        if let Some(vs) = fields.remove(&current) {
            let set = match fields.get(manager) {
                Some(prev) => vs.set.union(&prev.set),
                None => vs.set,
            };
            fields.insert(manager.clone(), VersionedSet { set, ..vs });
            managed.times.insert(manager.clone(), Some(now.to_string()));
        }
        managed.fields = fields;
        managed.times.retain(|k, _| managed.fields.contains_key(k));
        Ok(managed)
    }

    /// An Update operation (create, PUT, any non-apply PATCH): records `manager`'s changes in
    /// `new`'s managedFields. `live` is `None` on create. As kube-apiserver, an existing object
    /// without managedFields stays untracked, a write that sends `managedFields: []` resets
    /// them, and managedFields a main-resource write sends are taken as they are (decoding
    /// errors fall back to the live object's). Never fails: as `UpdateNoErrors`, a failure
    /// keeps the live managedFields.
    pub fn update(&self, live: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
        let live_mf = live.and_then(managed_fields_of);
        let decode_live = || decode(live_mf.map(Vec::as_slice).unwrap_or(&[])).unwrap_or_default();
        let managed = if !self.subresource.is_empty() {
            decode_live()
        } else {
            match managed_fields_of(new) {
                Some(v) if v.is_empty() || (v.len() == 1 && v[0] == json!({})) => {
                    Managed::default()
                }
                Some(v) => match decode(v) {
                    Ok(m) if !m.fields.is_empty() => m,
                    _ => decode_live(),
                },
                None => decode_live(),
            }
        };
        let stripped = without_managed_fields(new);
        let has_uid = live.and_then(|l| l.pointer("/metadata/uid")).is_some();
        if managed.fields.is_empty() && has_uid {
            *new = stripped;
            return;
        }
        let empty = json!({});
        let live_v = live.map(without_managed_fields).unwrap_or(empty);
        let id = Manager::update(
            if manager.is_empty() {
                "unknown"
            } else {
                manager
            },
            self.api_version,
            self.subresource,
        );
        match self.update_managed(&live_v, &stripped, managed, &id, now) {
            Ok(m) => {
                *new = stripped;
                set_managed_fields(new, &m);
            }
            Err(_) => {
                *new = stripped;
                if let (Some(mf), Some(meta)) = (
                    live_mf,
                    new.get_mut("metadata").and_then(Value::as_object_mut),
                ) {
                    meta.insert("managedFields".into(), Value::Array(mf.clone()));
                }
            }
        }
    }

    /// An Apply operation: merges `applied` into `live` (`None`: the object does not exist
    /// yet) for `manager`, with managedFields. Returns the new object; when nothing changes,
    /// the live object (with managedFields recomputed, times unchanged).
    pub fn apply(
        &self,
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
        now: &str,
    ) -> Result<Value, ApplyError> {
        if applied
            .pointer("/metadata/managedFields")
            .is_some_and(|v| !v.is_null())
        {
            return Err(ApplyError::BadRequest(
                "metadata.managedFields must be nil".into(),
            ));
        }
        let live_mf = live.and_then(managed_fields_of);
        let mut managed = decode(live_mf.map(Vec::as_slice).unwrap_or(&[]))
            .map_err(|e| ApplyError::Internal(format!("failed to decode managed fields: {e}")))?;
        let empty = json!({});
        let mut live_v = live.map(without_managed_fields).unwrap_or(empty.clone());
        // skipNonAppliedManager: an object nobody tracked yet is owned by "before-first-apply".
        if managed.fields.is_empty() {
            let before = Manager::update("before-first-apply", self.api_version, self.subresource);
            managed = self
                .update_managed(&empty, &live_v, managed, &before, now)
                .map_err(|e| {
                    ApplyError::Internal(format!(
                        "failed to create manager for existing fields: {e}"
                    ))
                })?;
        }
        let id = Manager::apply(manager, self.subresource);
        let typed_err = |e: UpdateError| match e {
            UpdateError::Conflicts(c) => ApplyError::Conflicts(c),
            UpdateError::Invalid(e) => {
                ApplyError::Internal(format!("failed to create typed patch object: {e}"))
            }
        };
        let (new, mut fields) = self
            .updater()
            .apply(&live_v, applied, &managed.fields, &id, force)
            .map_err(typed_err)?;
        strip(&mut fields, &id);
        managed.fields = fields;
        if new.is_some() {
            managed.times.insert(id.clone(), Some(now.to_string()));
        }
        managed.times.retain(|k, _| managed.fields.contains_key(k));
        if let Some(n) = new {
            live_v = n;
        }
        if live_v.get("metadata").is_none() {
            live_v["metadata"] = json!({});
        }
        set_managed_fields(&mut live_v, &managed);
        Ok(live_v)
    }
}
