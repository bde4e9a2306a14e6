//! The updater of structured-merge-diff (`merge/update.go`): who owns what after an Update
//! (a write of a whole object) or an Apply (a partial configuration), and the conflicts an
//! Apply meets. One API version: svcnet serves one version per kind, so SMD's conversions
//! between versions are the identity.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::path::{path_string, Path};
use crate::schema::Type;
use crate::set::Set;
use crate::typed::{self, Comparison, ValidationError};

/// Whether a manager's fields came from an Apply or an Update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who manages a set of fields: apimachinery's manager identifier (`BuildManagerIdentifier`):
/// the manager's name, the operation, the subresource, and for Update the API version (an
/// applier's fields are one entry whatever version it applied with).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Manager {
    pub manager: String,
    pub operation: Operation,
    /// `Some` for Update only.
    pub api_version: Option<String>,
    pub subresource: String,
}

impl Manager {
    pub fn apply(manager: &str, subresource: &str) -> Manager {
        Manager {
            manager: manager.to_string(),
            operation: Operation::Apply,
            api_version: None,
            subresource: subresource.to_string(),
        }
    }

    pub fn update(manager: &str, api_version: &str, subresource: &str) -> Manager {
        Manager {
            manager: manager.to_string(),
            operation: Operation::Update,
            api_version: Some(api_version.to_string()),
            subresource: subresource.to_string(),
        }
    }
}

impl fmt::Display for Manager {
    /// apimachinery's `printManager` without the time: `"kubectl" with subresource "status"
    /// using v1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.manager)?;
        if !self.subresource.is_empty() {
            write!(f, " with subresource {:?}", self.subresource)?;
        }
        if let (Operation::Update, Some(v)) = (self.operation, &self.api_version) {
            write!(f, " using {v}")?;
        }
        Ok(())
    }
}

/// The fields of one manager (SMD `VersionedSet`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionedSet {
    pub set: Set,
    pub api_version: String,
    pub applied: bool,
}

/// Every manager's fields (SMD `fieldpath.ManagedFields`).
pub type ManagedFields = BTreeMap<Manager, VersionedSet>;

/// A field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub manager: Manager,
    pub path: Path,
}

/// The conflicts of an Apply (SMD `merge.Conflicts`), in managers' order then paths' order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

impl Conflicts {
    /// Kubernetes' 409 message (apimachinery `getConflictMessage`): `Apply failed with 1
    /// conflict: conflict with "kubectl" using v1: .spec.replicas`. (apimachinery's
    /// `printManager` would add an Update manager's time, but the identifiers it prints never
    /// carry one.)
    pub fn message(&self) -> String {
        if let [c] = self.0.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                c.manager,
                path_string(&c.path)
            );
        }
        let mut by: BTreeMap<&Manager, Vec<String>> = BTreeMap::new();
        for c in &self.0 {
            by.entry(&c.manager).or_default().push(path_string(&c.path));
        }
        let mut lines = Vec::new();
        for (m, paths) in by {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.into_iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }

    /// The Status causes, each (message, field): (`conflict with "kubectl" using v1`,
    /// `.spec.replicas`), reason `FieldManagerConflict`.
    pub fn causes(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|c| (format!("conflict with {}", c.manager), path_string(&c.path)))
            .collect()
    }
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Why an update or apply failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("{0}")]
    Conflicts(Conflicts),
    /// The object does not fit the schema (a list item without its key, duplicates...).
    #[error("{0}")]
    Invalid(ValidationError),
}

impl From<ValidationError> for UpdateError {
    fn from(e: ValidationError) -> Self {
        UpdateError::Invalid(e)
    }
}

/// SMD's `Updater` for one API version. `ignored`: fields no manager of this endpoint owns
/// (apimachinery's reset fields: `status` on the main resource, everything but `status` on
/// the status subresource).
#[derive(Clone, Copy, Debug)]
pub struct Updater<'a> {
    pub ty: &'a Type,
    pub api_version: &'a str,
    pub ignored: Option<&'a Set>,
}

impl Updater<'_> {
    fn filter(&self, s: Set) -> Set {
        match self.ignored {
            Some(i) => s.exclude_prefixes(i),
            None => s,
        }
    }

    /// SMD `Updater.update`: takes what changed away from every other manager; with `force`
    /// false, a change to another manager's field is a conflict.
    fn update_others(
        &self,
        old: &Value,
        new: &Value,
        managers: &mut ManagedFields,
        workflow: &Manager,
        force: bool,
    ) -> Result<Comparison, UpdateError> {
        let mut cmp = typed::compare(old, new, self.ty)?;
        if let Some(i) = self.ignored {
            cmp = cmp.exclude_prefixes(i);
        }
        let changed = cmp.modified.union(&cmp.added);
        let mut conflicts = Vec::new();
        for (m, vs) in managers.iter() {
            if m == workflow {
                continue;
            }
            for path in vs.set.intersection(&changed).paths() {
                conflicts.push(Conflict {
                    manager: m.clone(),
                    path,
                });
            }
        }
        if !force && !conflicts.is_empty() {
            return Err(UpdateError::Conflicts(Conflicts(conflicts)));
        }
        for (m, vs) in managers.iter_mut() {
            if m == workflow {
                continue;
            }
            vs.set = vs.set.difference(&changed).difference(&cmp.removed);
        }
        managers.retain(|_, vs| !vs.set.is_empty());
        Ok(cmp)
    }

    /// SMD `Updater.Update`: `manager` wrote `new` over `live`; it now owns what it changed.
    pub fn update(
        &self,
        live: &Value,
        new: &Value,
        managers: &ManagedFields,
        manager: &Manager,
    ) -> Result<ManagedFields, UpdateError> {
        let mut managers = managers.clone();
        let cmp = self.update_others(live, new, &mut managers, manager, true)?;
        let previous = managers
            .remove(manager)
            .map(|vs| vs.set)
            .unwrap_or_default();
        let set = previous
            .difference(&cmp.removed)
            .union(&cmp.modified)
            .union(&cmp.added);
        let set = self.filter(set);
        if !set.is_empty() {
            managers.insert(
                manager.clone(),
                VersionedSet {
                    set,
                    api_version: self.api_version.to_string(),
                    applied: false,
                },
            );
        }
        Ok(managers)
    }

    /// SMD `Updater.Apply`: merges `config` into `live`, gives `manager` exactly the fields
    /// of `config`, removes the fields it applied before and no longer applies when no one
    /// else owns them. Returns `None` for the object when nothing changed.
    pub fn apply(
        &self,
        live: &Value,
        config: &Value,
        managers: &ManagedFields,
        manager: &Manager,
        force: bool,
    ) -> Result<(Option<Value>, ManagedFields), UpdateError> {
        let mut managers = managers.clone();
        let merged = typed::merge(live, config, self.ty)?;
        let last = managers.get(manager).map(|vs| vs.set.clone());
        let set = self.filter(typed::to_field_set(config, self.ty)?);
        managers.insert(
            manager.clone(),
            VersionedSet {
                set,
                api_version: self.api_version.to_string(),
                applied: true,
            },
        );
        let new = self.prune(&merged, &managers, last.as_ref())?;
        self.update_others(live, &new, &mut managers, manager, force)?;
        let changed = new != *live;
        Ok((changed.then_some(new), managers))
    }

    /// SMD `Updater.prune` with `addBackOwnedItems` and `addBackDanglingItems`: removes what
    /// the applier owned before (`last`) unless someone (the applier included) owns it now.
    fn prune(
        &self,
        merged: &Value,
        managers: &ManagedFields,
        last: Option<&Set>,
    ) -> Result<Value, UpdateError> {
        let Some(last) = last.filter(|l| !l.is_empty()) else {
            return Ok(merged.clone());
        };
        let ty = self.ty;
        let pruned = typed::remove_items(merged, &last.with_named_fields(), ty);
        // addBackOwnedItems
        let owned = managers
            .values()
            .fold(Set::new(), |acc, vs| acc.union(&vs.set));
        let merged_set = typed::to_field_set(merged, ty)?.with_named_fields();
        let pruned_set = typed::to_field_set(&pruned, ty)?.with_named_fields();
        let pruned = typed::remove_items(
            merged,
            &merged_set.difference(&pruned_set.union(&owned.with_named_fields())),
            ty,
        );
        // addBackDanglingItems
        let pruned_set = typed::to_field_set(&pruned, ty)?.with_named_fields();
        let remove = merged_set
            .difference(&pruned_set)
            .intersection(&last.with_named_fields());
        Ok(typed::remove_items(merged, &remove, ty))
    }
}
