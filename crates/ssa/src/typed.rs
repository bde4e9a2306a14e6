//! Walks of a value along its [`Type`], as structured-merge-diff's `typed` package: the field
//! set of a value (`tofieldset.go`), the comparison of two values (`compare.go`), the merge of an
//! applied configuration into a live object (`merge.go`) and the removal of items
//! (`remove.go`). svcnet's schema treats every object as a struct (every key a named field).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::path::{path_string, Path, PathElement};
use crate::schema::{ListType, MapType, Type};
use crate::set::Set;

/// A value that does not fit its schema, with its path: SMD's `ValidationError`
/// (`.spec.ports: element 0: associative list with keys has an element that omits key field
/// "port" (and doesn't have default value)`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

fn verr(path: &[PathElement], message: String) -> ValidationError {
    ValidationError {
        path: path_string(path),
        message,
    }
}

/// The path element of a list item (SMD `listItemToPathElement`); `None` for atomic lists.
pub fn list_item_element(ty: &Type, item: &Value) -> Result<Option<PathElement>, String> {
    match &ty.list {
        ListType::Atomic => Ok(None),
        ListType::Map(keys) => {
            let Value::Object(m) = item else {
                return Err("associative list with keys may not have non-map elements".into());
            };
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                let v = match m.get(k) {
                    Some(v) => v.clone(),
                    None => match ty.key_defaults.get(k) {
                        Some(d) => d.clone(),
                        None => {
                            return Err(format!(
                                "associative list with keys has an element that omits key field {k:?} (and doesn't have default value)"
                            ))
                        }
                    },
                };
                fields.push((k.clone(), v));
            }
            Ok(Some(PathElement::key(fields)))
        }
        ListType::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => {
                Err("associative list without keys has an element that's a list type".into())
            }
            v => Ok(Some(PathElement::Value(v.clone()))),
        },
    }
}

/// Whether a value is walked as a list of separate items.
fn granular_list<'a>(ty: &Type, v: Option<&'a Value>) -> Option<&'a Vec<Value>> {
    match v {
        Some(Value::Array(a)) if ty.list != ListType::Atomic => Some(a),
        _ => None,
    }
}

fn granular_map<'a>(ty: &Type, v: Option<&'a Value>) -> Option<&'a Map<String, Value>> {
    match v {
        Some(Value::Object(m)) if ty.map == MapType::Granular => Some(m),
        _ => None,
    }
}

/// Elements of a list with their path elements; a duplicate keeps its first value.
type Indexed<'a> = (Vec<PathElement>, BTreeMap<PathElement, &'a Value>);

fn index_items<'a>(
    ty: &Type,
    items: &'a [Value],
    path: &[PathElement],
    allow_duplicates: bool,
) -> Result<Indexed<'a>, ValidationError> {
    let mut order = Vec::with_capacity(items.len());
    let mut by_pe = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let pe = list_item_element(ty, item)
            .map_err(|e| verr(path, format!("element {i}: {e}")))?
            .expect("granular list");
        if by_pe.contains_key(&pe) {
            if !allow_duplicates {
                return Err(verr(path, format!("duplicate entries for key {pe}")));
            }
            continue;
        }
        by_pe.insert(pe.clone(), item);
        order.push(pe);
    }
    Ok((order, by_pe))
}

/// The left and right side of a walk.
type Pair<T> = (Option<T>, Option<T>);

/// Whether a walk of two values goes into their items or treats them as one leaf.
#[derive(PartialEq, Eq)]
enum Descend {
    List,
    Map,
    Leaf,
}

/// SMD's `doList`/`doMap`: granular lists and maps are walked item by item unless both sides
/// are empty (`emptyPromoteToLeaf`); values of different kinds are leaves (`handleAtom`).
fn descend(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    lists: Pair<&Vec<Value>>,
    maps: Pair<&Map<String, Value>>,
) -> Descend {
    let (ll, rl) = lists;
    let (lm, rm) = maps;
    let same_kind = lhs.is_none()
        || rhs.is_none()
        || (ll.is_some() == rl.is_some() && lm.is_some() == rm.is_some());
    if !same_kind {
        return Descend::Leaf;
    }
    if (ll.is_some() || rl.is_some())
        && !(ll.is_none_or(Vec::is_empty) && rl.is_none_or(Vec::is_empty))
    {
        return Descend::List;
    }
    if (lm.is_some() || rm.is_some())
        && !(lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty))
    {
        return Descend::Map;
    }
    Descend::Leaf
}

// ---- tofieldset.go ----------------------------------------------------------------------------

/// The set of fields a value sets (SMD `TypedValue.ToFieldSet`).
pub fn to_field_set(v: &Value, ty: &Type) -> Result<Set, ValidationError> {
    let mut set = Set::new();
    let mut path = Vec::new();
    field_set_walk(v, ty, &mut path, &mut set)?;
    Ok(set)
}

fn field_set_walk(
    v: &Value,
    ty: &Type,
    path: &mut Path,
    set: &mut Set,
) -> Result<(), ValidationError> {
    match v {
        Value::Array(items) => {
            if ty.list == ListType::Atomic {
                set.insert(path);
                return Ok(());
            }
            let el = ty.elements();
            let mut seen = BTreeMap::new();
            let mut pes = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let pe = list_item_element(ty, item)
                    .map_err(|e| verr(path, format!("element {i}: {e}")))?
                    .expect("granular list");
                *seen.entry(pe.clone()).or_insert(0) += 1;
                pes.push(pe);
            }
            for (item, pe) in items.iter().zip(pes) {
                path.push(pe.clone());
                // A duplicated element is owned whole (SMD: duplicates are atomic).
                if seen[&pe] == 1 {
                    field_set_walk(item, el, path, set)?;
                }
                set.insert(path);
                path.pop();
            }
        }
        Value::Object(m) => {
            if ty.map == MapType::Atomic {
                set.insert(path);
                return Ok(());
            }
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                field_set_walk(child, ty.field(k), path, set)?;
                if child.is_null() || child.as_object().is_some_and(|o| o.is_empty()) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        _ => set.insert(path),
    }
    Ok(())
}

// ---- compare.go -------------------------------------------------------------------------------

/// What changed between two values (SMD `typed.Comparison`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    /// Drops the paths under `prefixes` (SMD `Comparison.FilterFields` with an exclude filter).
    pub fn exclude_prefixes(&self, prefixes: &Set) -> Comparison {
        Comparison {
            added: self.added.exclude_prefixes(prefixes),
            modified: self.modified.exclude_prefixes(prefixes),
            removed: self.removed.exclude_prefixes(prefixes),
        }
    }
}

/// Compares `lhs` (before) with `rhs` (after) (SMD `TypedValue.Compare`).
pub fn compare(lhs: &Value, rhs: &Value, ty: &Type) -> Result<Comparison, ValidationError> {
    let mut c = Comparison::default();
    compare_walk(Some(lhs), Some(rhs), ty, &mut Vec::new(), &mut c)?;
    Ok(c)
}

fn compare_walk(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    ty: &Type,
    path: &mut Path,
    c: &mut Comparison,
) -> Result<(), ValidationError> {
    let (ll, rl) = (granular_list(ty, lhs), granular_list(ty, rhs));
    let (lm, rm) = (granular_map(ty, lhs), granular_map(ty, rhs));
    let walk = descend(lhs, rhs, (ll, rl), (lm, rm));
    if walk == Descend::List {
        let el = ty.elements();
        let (lo, lb) = index_items(ty, ll.map(|v| v.as_slice()).unwrap_or(&[]), path, true)?;
        let (ro, rb) = index_items(ty, rl.map(|v| v.as_slice()).unwrap_or(&[]), path, true)?;
        for pe in lo.iter().chain(ro.iter().filter(|pe| !lb.contains_key(pe))) {
            path.push(pe.clone());
            compare_walk(lb.get(pe).copied(), rb.get(pe).copied(), el, path, c)?;
            path.pop();
        }
    } else if walk == Descend::Map {
        let empty = Map::new();
        let (l, r) = (lm.unwrap_or(&empty), rm.unwrap_or(&empty));
        for k in l.keys().chain(r.keys().filter(|k| !l.contains_key(*k))) {
            path.push(PathElement::Field(k.clone()));
            compare_walk(l.get(k), r.get(k), ty.field(k), path, c)?;
            path.pop();
        }
    } else {
        // A leaf: a scalar, an atomic or empty list or map, or a change of kind.
        match (lhs, rhs) {
            (None, Some(_)) => c.added.insert(path),
            (Some(_), None) => c.removed.insert(path),
            (Some(l), Some(r)) if l != r => c.modified.insert(path),
            _ => {}
        }
        return Ok(());
    }
    match (lhs, rhs) {
        (None, _) => c.added.insert(path),
        (_, None) => c.removed.insert(path),
        _ => {}
    }
    Ok(())
}

// ---- merge.go ---------------------------------------------------------------------------------

/// Merges `rhs` into `lhs`: `rhs` wins every leaf, granular lists and maps merge item by item
/// (SMD `TypedValue.Merge`). List order follows SMD: `rhs`'s order, with `lhs`-only items kept
/// where they were relative to the shared ones.
pub fn merge(lhs: &Value, rhs: &Value, ty: &Type) -> Result<Value, ValidationError> {
    Ok(merge_walk(Some(lhs), Some(rhs), ty, &mut Vec::new())?.unwrap_or(Value::Null))
}

fn merge_walk(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    ty: &Type,
    path: &mut Path,
) -> Result<Option<Value>, ValidationError> {
    let (ll, rl) = (granular_list(ty, lhs), granular_list(ty, rhs));
    let (lm, rm) = (granular_map(ty, lhs), granular_map(ty, rhs));
    let walk = descend(lhs, rhs, (ll, rl), (lm, rm));
    if walk == Descend::List {
        let out = merge_list(
            ty,
            ll.map(|v| v.as_slice()).unwrap_or(&[]),
            rl.map(|v| v.as_slice()).unwrap_or(&[]),
            path,
        )?;
        return Ok(Some(Value::Array(out)));
    }
    if walk == Descend::Map {
        let empty = Map::new();
        let (l, r) = (lm.unwrap_or(&empty), rm.unwrap_or(&empty));
        let mut out = Map::new();
        for k in l.keys().chain(r.keys().filter(|k| !l.contains_key(*k))) {
            path.push(PathElement::Field(k.clone()));
            if let Some(v) = merge_walk(l.get(k), r.get(k), ty.field(k), path)? {
                out.insert(k.clone(), v);
            }
            path.pop();
        }
        return Ok(Some(Value::Object(out)));
    }
    Ok(rhs.or(lhs).cloned())
}

/// SMD `mergingWalker.visitListItems`, step by step.
fn merge_list(
    ty: &Type,
    lhs: &[Value],
    rhs: &[Value],
    path: &mut Path,
) -> Result<Vec<Value>, ValidationError> {
    let el = ty.elements();
    let (rpes, robs) = index_items(ty, rhs, path, false)?;
    let (lpes, lobs) = index_items(ty, lhs, path, true)?;
    let mut shared = rpes.iter().filter(|pe| lobs.contains_key(*pe));
    let mut next_shared = shared.next();
    let mut merged_rhs = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(lpes.len().max(rpes.len()));
    let item = |pe: &PathElement, path: &mut Path, out: &mut Vec<Value>| {
        path.push(pe.clone());
        let r = merge_walk(lobs.get(pe).copied(), robs.get(pe).copied(), el, path);
        path.pop();
        if let Some(v) = r? {
            out.push(v);
        }
        Ok::<(), ValidationError>(())
    };
    let (mut li, mut ri) = (0, 0);
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_rhs.insert(pe.clone());
                item(pe, path, &mut out)?;
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if robs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li];
            if !robs.contains_key(pe) {
                item(pe, path, &mut out)?;
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < rpes.len() {
            let pe = &rpes[ri];
            merged_rhs.insert(pe.clone());
            item(pe, path, &mut out)?;
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    Ok(out)
}

// ---- remove.go --------------------------------------------------------------------------------

/// Removes the items of `set` from `v` (SMD `TypedValue.RemoveItems`): a member is removed
/// whole, and a list or map left with nothing is removed too (SMD leaves `null`, which
/// decoding into Go types drops).
pub fn remove_items(v: &Value, set: &Set, ty: &Type) -> Value {
    remove_walk(v, set, ty).unwrap_or(Value::Null)
}

fn remove_walk(v: &Value, set: &Set, ty: &Type) -> Option<Value> {
    match v {
        Value::Array(items) if ty.list != ListType::Atomic => {
            let el = ty.elements();
            let mut out = Vec::new();
            for item in items {
                let Ok(Some(pe)) = list_item_element(ty, item) else {
                    out.push(item.clone());
                    continue;
                };
                if set.has(std::slice::from_ref(&pe)) {
                    continue;
                }
                let sub = set.with_prefix(&pe);
                if sub.is_empty() {
                    out.push(item.clone());
                } else if let Some(kept) = remove_walk(item, &sub, el) {
                    out.push(kept);
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Value::Object(m) if ty.map == MapType::Granular => {
            let mut out = Map::new();
            for (k, child) in m {
                let pe = PathElement::Field(k.clone());
                if set.has(std::slice::from_ref(&pe)) {
                    continue;
                }
                let sub = set.with_prefix(&pe);
                if sub.is_empty() {
                    out.insert(k.clone(), child.clone());
                } else if let Some(kept) = remove_walk(child, &sub, ty.field(k)) {
                    out.insert(k.clone(), kept);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(_) | Value::Object(_) => None,
        _ => Some(v.clone()),
    }
}
