//! Strategic merge patch as the Kubernetes API server applies it:
//! `strategicpatch.StrategicMergeMapPatch` with `MergeParallelList: true,
//! IgnoreUnmatchedNulls: true` (k8s.io/apimachinery/pkg/util/strategicpatch/patch.go, the
//! `mergeMap` / `mergeSlice` half; the diff half, which builds patches, lives in kubectl).
//!
//! The functions mirror upstream's one for one, in the same order of steps, because the order of
//! list elements in the result depends on those steps. Deliberate differences:
//!
//! - Service `spec.ports` elements are told apart by protocol too (see
//!   `schema::Discriminator`), fixing kubernetes#39188.
//! - Values that land in the result without being merged (new keys, replaced lists, appended
//!   list elements, `$patch: replace` maps) come out without directive keys and without `null`
//!   object members. Upstream leaves those for the decoding into Go structs to drop; svcnet may
//!   store the JSON as it is, so it drops them here. The decoded result is the same.
//! - Errors that upstream returns as plain Go errors (HTTP 500) are [`PatchError::Invalid`]
//!   (HTTP 400) with the same message; a field unknown to the schema merges as an untagged field
//!   instead of failing with `unable to find api field`.

use serde_json::{Map, Value};

use crate::go;
use crate::schema::{Field, Strategy, Type};
use crate::PatchError;

const DIRECTIVE_MARKER: &str = "$patch";
const DELETE_DIRECTIVE: &str = "delete";
const REPLACE_DIRECTIVE: &str = "replace";
const MERGE_DIRECTIVE: &str = "merge";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

// mergepatch's sentinel errors: the API server answers the first four with 400, the last with 422.
const ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST: &str =
    "invalid patch format of setElementOrder list";
const ERR_NO_LIST_OF_LISTS: &str = "lists of lists are not supported";

type Result<T> = std::result::Result<T, PatchError>;

fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(PatchError::Invalid(msg.into()))
}

/// `mergepatch.ErrNoMergeKey`
fn no_merge_key<T>(m: &Map<String, Value>, key: &str) -> Result<T> {
    invalid(format!(
        "map: {} does not contain declared merge key: {key}",
        go::v_map(m)
    ))
}

/// `mergepatch.ErrBadArgType`
fn bad_arg_type<T>(expected: &str, actual: &Value) -> Result<T> {
    invalid(format!(
        "expected a {expected}, but received a {}",
        go::type_name(actual)
    ))
}

const MAP_TYPE: &str = "map[string]interface {}";
const SLICE_TYPE: &str = "[]interface {}";

/// `mergepatch.ErrBadPatchType`
fn bad_patch_type<T>(directive: &Value, m: &Map<String, Value>) -> Result<T> {
    invalid(format!(
        "unknown patch type: {} in map: {}",
        go::s(directive),
        go::v_map(m)
    ))
}

/// Apply `patch` to `original`, both JSON objects.
pub(crate) fn apply(
    original: Map<String, Value>,
    patch: Map<String, Value>,
    ty: &Type,
) -> Result<Value> {
    merge_map(original, patch, ty).map(Value::Object)
}

/// `mergeMap`
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: &Type,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER).cloned() {
        return directive_in_map(&directive, patch);
    }

    apply_retain_keys_directive(&mut original, &mut patch)?;

    // Process $setElementOrder lists and the lists they order (removed from `patch`).
    merge_patch_into_original(&mut original, &mut patch, ty)?;

    for (k, patch_v) in patch {
        let (k, is_delete_list) = if k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            (extract_key(&k, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?, true)
        } else {
            (k, false)
        };

        // null deletes the key (even for a $deleteFromPrimitiveList key: upstream quirk).
        if patch_v.is_null() {
            original.remove(&k);
            continue;
        }

        let Some(original_v) = original.get_mut(&k) else {
            if !is_delete_list {
                if let Some(v) = new_value(patch_v) {
                    original.insert(k, v);
                }
            }
            continue;
        };

        if kind(original_v) != kind(&patch_v) {
            if !is_delete_list {
                match new_value(patch_v) {
                    Some(v) => *original_v = v,
                    None => {
                        original.remove(&k);
                    }
                }
            }
            continue;
        }

        let field = ty.field(&k);
        match (original_v.take(), patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                *original_v = Value::Object(if field.strategy == Strategy::Replace {
                    strip_object(p)
                } else {
                    merge_map(o, p, field.ty)?
                });
            }
            (Value::Array(o), Value::Array(p)) => {
                *original_v = Value::Array(merge_slice_handler(o, p, field, is_delete_list)?.list);
            }
            (_, p) => *original_v = p,
        }
    }
    Ok(original)
}

/// `handleDirectiveInMergeMap`: a map with `$patch`.
fn directive_in_map(
    directive: &Value,
    mut patch: Map<String, Value>,
) -> Result<Map<String, Value>> {
    match directive.as_str() {
        Some(REPLACE_DIRECTIVE) => {
            patch.remove(DIRECTIVE_MARKER);
            Ok(strip_object(patch))
        }
        Some(DELETE_DIRECTIVE) => Ok(Map::new()),
        _ => bad_patch_type(directive, &patch),
    }
}

/// `extractKey`: `$deleteFromPrimitiveList/finalizers` → `finalizers`.
fn extract_key(s: &str, prefix: &str) -> Result<String> {
    match s.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ => match prefix {
            DELETE_FROM_PRIMITIVE_LIST_PREFIX => invalid(ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST),
            _ => invalid(ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST),
        },
    }
}

/// `applyRetainKeysDirective`: clear the keys of `original` missing from `$retainKeys`, after
/// checking that the patch sets no key outside it.
fn apply_retain_keys_directive(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return invalid(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS);
    };
    let retained = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !retained(k) {
            return invalid(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS);
        }
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// `mergePatchIntoOriginal`: for every `$setElementOrder/<list>`, merge `<list>` of the patch
/// into the original now and order the result: `$setElementOrder` first, then the patch list's
/// order, then the live list's order for server-only elements.
fn merge_patch_into_original(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    ty: &Type,
) -> Result<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for key in keys {
        let Some(set_order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(set_order) = set_order else {
            return bad_arg_type(SLICE_TYPE, &set_order);
        };
        let original_key = extract_key(&key, SET_ELEMENT_ORDER_PREFIX)?;
        let original_list = match original.get(&original_key) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return bad_arg_type(SLICE_TYPE, other),
        };
        let patch_list = match patch.get(&original_key) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return bad_arg_type(SLICE_TYPE, other),
        };
        let field = ty.field(&original_key);
        let merge_key = field.merge_key;
        validate_patch_with_set_order_list(
            patch_list.as_deref().unwrap_or_default(),
            &set_order,
            merge_key,
        )?;

        let mut original_field_value = original_list.clone().unwrap_or_default();
        let patch_field_value = patch_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => p.into_iter().filter_map(new_value).collect(),
            (Some(o), Some(p)) => {
                let merged = merge_slice_handler(o, p, field, false)?;
                // Upstream merged into the live list's backing array, which
                // `original_field_value` still shows: see GoAlias.
                if let Some(view) = merged.aliased_original {
                    original_field_value = view;
                }
                merged.list
            }
            (None, None) => continue,
        };

        let (patch_items, server_only) = partition(merged, &set_order, merge_key)?;
        let elem_kind = slice_element_kind(&[&original_field_value, &patch_field_value])?;
        let both = normalize_element_order(
            patch_items,
            server_only,
            &set_order,
            &original_field_value,
            merge_key,
            elem_kind,
        )?;
        original.insert(original_key.clone(), Value::Array(both));
        patch.remove(&original_key);
    }
    Ok(())
}

/// `validatePatchWithSetOrderList`: the patch list's elements (deletions aside) must appear in
/// `$setElementOrder`, in the same relative order.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    set_order: &[Value],
    merge_key: Option<&str>,
) -> Result<()> {
    if set_order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<Value> = match merge_key {
        Some(_) => extract_to_delete_items(patch_list.to_vec())?.0,
        None => patch_list.to_vec(),
    };
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < set_order.len() {
        if contains_directive_marker(&non_delete[pi]) {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(&non_delete[pi], &set_order[si], merge_key)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= set_order.len() {
        return invalid(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER_PREFIX} list:\n{}\n",
            go::v_list(patch_list),
            go::v_list(set_order)
        ));
    }
    Ok(())
}

fn contains_directive_marker(item: &Value) -> bool {
    item.as_object()
        .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
}

/// `mergeKeyValueEqual`
fn merge_key_value_equal(left: &Value, right: &Value, merge_key: Option<&str>) -> Result<bool> {
    let Some(key) = merge_key else {
        return Ok(left == right);
    };
    let Value::Object(l) = left else {
        return bad_arg_type(MAP_TYPE, left);
    };
    let Value::Object(r) = right else {
        return bad_arg_type(MAP_TYPE, right);
    };
    let Some(lv) = l.get(key) else {
        return no_merge_key(l, key);
    };
    let Some(rv) = r.get(key) else {
        return no_merge_key(r, key);
    };
    Ok(lv == rv)
}

/// A merged list, and what upstream's caller would then see of the live list it passed in.
struct Merged {
    list: Vec<Value>,
    /// `Some` when merging wrote into the live list's backing array (see [`GoAlias`]).
    aliased_original: Option<Vec<Value>>,
}

impl From<Vec<Value>> for Merged {
    fn from(list: Vec<Value>) -> Self {
        Merged {
            list,
            aliased_original: None,
        }
    }
}

/// Go slices share backing arrays, and upstream's list merge edits the live list in place:
/// `deleteMatchingEntries` shifts elements left (`append(s[:i], s[i+1:]...)`), and
/// `mergeSliceWithoutSpecialElements` appends new elements into the freed capacity. The caller
/// `mergePatchIntoOriginal` keeps its own view of the live list (the old length over the same
/// array) and orders server-only elements by it, so these edits decide where server-only
/// elements land. This replays them on a copy. (The API server builds the live object with
/// `DefaultUnstructuredConverter`, so capacity equals length: appends beyond it reallocate.)
struct GoAlias {
    view: Vec<Value>,
    len: usize,
}

impl GoAlias {
    fn new(original: &[Value]) -> Self {
        GoAlias {
            view: original.to_vec(),
            len: original.len(),
        }
    }

    /// `s = append(s[:i], s[i+1:]...)`
    fn remove(&mut self, i: usize) {
        for j in i..self.len - 1 {
            self.view[j] = self.view[j + 1].clone();
        }
        self.len -= 1;
    }

    /// `s = append(s, v)` while it fits the original capacity; `false` once it reallocated.
    fn push(&mut self, v: &Value) -> bool {
        if self.len >= self.view.len() {
            return false;
        }
        self.view[self.len] = v.clone();
        self.len += 1;
        true
    }
}

/// `mergeSliceHandler`
fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: &Field,
    is_delete_list: bool,
) -> Result<Merged> {
    // Deletion lists are handled the same way whatever the field's strategy.
    if field.strategy == Strategy::Merge || is_delete_list {
        merge_slice(original, patch, field, is_delete_list)
    } else {
        Ok(patch.into_iter().map(strip).collect::<Vec<_>>().into())
    }
}

/// `mergeSlice`
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: &Field,
    is_delete_list: bool,
) -> Result<Merged> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original.into());
    }
    let elem_kind = slice_element_kind(&[&original, &patch])?;
    let merge_key = field.merge_key;

    let mut alias = None;
    let (original, patch, merged) = if elem_kind != Kind::Object {
        if is_delete_list {
            return Ok(delete_from_slice(original, &patch).into());
        }
        let mut both = original.clone();
        both.extend(patch.iter().cloned());
        (original, patch, deduplicate_scalars(both))
    } else {
        let Some(key) = merge_key else {
            return invalid("cannot merge lists without merge key for struct");
        };
        let mut go = GoAlias::new(&original);
        let special = merge_slice_with_special_elements(original, patch, key, field, &mut go)?;
        let (original, patch) = (special.original, special.patch);
        let merged = merge_slice_without_special_elements(original.clone(), &patch, key, field)?;
        if !special.replaced {
            for appended in &merged[original.len()..] {
                if !go.push(appended) {
                    break;
                }
            }
        }
        alias = Some(go.view);
        (original, patch, merged)
    };

    let (patch_items, server_only) = partition(merged, &patch, merge_key)?;
    let list = normalize_element_order(
        patch_items,
        server_only,
        &patch,
        &original,
        merge_key,
        elem_kind,
    )?;
    Ok(Merged {
        list,
        aliased_original: alias,
    })
}

/// Whether a live list element is the one a patch element means, beyond the merge key.
fn discriminator_matches(
    field: &Field,
    live: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> bool {
    let Some(d) = field.discriminator else {
        return true;
    };
    match patch.get(d.field) {
        None | Some(Value::Null) => true,
        Some(want) => match live.get(d.field) {
            None | Some(Value::Null) => want.as_str() == Some(d.default),
            Some(have) => have == want,
        },
    }
}

struct SpecialElements {
    /// The live list to merge into: after deletions, or the patch's elements after a replace.
    original: Vec<Value>,
    /// The patch without `$patch` elements (empty after a replace).
    patch: Vec<Value>,
    replaced: bool,
}

/// `mergeSliceWithSpecialElements`: apply `$patch: delete` and `$patch: replace` elements.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    field: &Field,
    go: &mut GoAlias,
) -> Result<SpecialElements> {
    let mut without_special = Vec::new();
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            return bad_arg_type(MAP_TYPE, &v);
        };
        match m.get(DIRECTIVE_MARKER) {
            None => without_special.push(v),
            Some(d) if d.as_str() == Some(DELETE_DIRECTIVE) => {
                let Some(merge_value) = m.get(key) else {
                    return no_merge_key(m, key);
                };
                // `deleteMatchingEntries`: remove every element with that merge key.
                while let Some(i) = find_map_in_slice(&original, key, merge_value, |live| {
                    discriminator_matches(field, live, m)
                })? {
                    original.remove(i);
                    go.remove(i);
                }
            }
            // Keep going: later elements may carry other directives to prune.
            Some(d) if d.as_str() == Some(REPLACE_DIRECTIVE) => replace = true,
            Some(d) if d.as_str() == Some(MERGE_DIRECTIVE) => {
                return invalid("merging lists cannot yet be specified in the patch");
            }
            Some(d) => return bad_patch_type(d, m),
        }
    }
    if replace {
        return Ok(SpecialElements {
            original: without_special.into_iter().map(strip).collect(),
            patch: Vec::new(),
            replaced: true,
        });
    }
    Ok(SpecialElements {
        original,
        patch: without_special,
        replaced: false,
    })
}

/// `findMapInSliceBasedOnKeyValue` (plus the discriminator): the index of the element whose
/// merge key is `value`.
fn find_map_in_slice(
    list: &[Value],
    key: &str,
    value: &Value,
    matches: impl Fn(&Map<String, Value>) -> bool,
) -> Result<Option<usize>> {
    for (i, v) in list.iter().enumerate() {
        let Value::Object(m) = v else {
            return invalid(format!("value for key {i} is not a map."));
        };
        if m.get(key) == Some(value) && matches(m) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// `mergeSliceWithoutSpecialElements`: merge each patch element into the original element with
/// the same merge key, or append it.
fn merge_slice_without_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    field: &Field,
) -> Result<Vec<Value>> {
    for v in patch {
        let Value::Object(m) = v else {
            return bad_arg_type(MAP_TYPE, v);
        };
        let Some(merge_value) = m.get(key) else {
            return no_merge_key(m, key);
        };
        match find_map_in_slice(&original, key, merge_value, |live| {
            discriminator_matches(field, live, m)
        })? {
            Some(i) => {
                let Value::Object(live) = original[i].take() else {
                    unreachable!("find_map_in_slice only finds objects")
                };
                original[i] = Value::Object(merge_map(live, m.clone(), field.ty)?);
            }
            None => original.push(strip(v.clone())),
        }
    }
    Ok(original)
}

/// `deleteFromSlice`: a primitive list minus the `$deleteFromPrimitiveList` values.
fn delete_from_slice(current: Vec<Value>, to_delete: &[Value]) -> Vec<Value> {
    current
        .into_iter()
        .filter(|v| !to_delete.contains(v))
        .collect()
}

/// `deduplicateScalars`, exactly: a duplicate is overwritten by the last element, so the order
/// changes in the way the later ordering step expects.
fn deduplicate_scalars(mut s: Vec<Value>) -> Vec<Value> {
    if s.is_empty() {
        return s;
    }
    let mut length = s.len() - 1;
    let mut i = 0;
    while i < length {
        let mut j = i + 1;
        while j <= length {
            if s[i] == s[j] {
                s[j] = s[length].clone();
                s.truncate(length);
                length -= 1;
                // Go's `j--` then `j++`: look at position j again.
                continue;
            }
            j += 1;
        }
        i += 1;
    }
    s
}

/// `partitionPrimitivesByPresentInList` / `partitionMapsByPresentInList`: the elements of
/// `merged` that `by` mentions, and the others (server-only ones).
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut in_patch = Vec::new();
    let mut server_only = Vec::new();
    match merge_key {
        None => {
            for v in merged {
                if by.contains(&v) {
                    in_patch.push(v);
                } else {
                    server_only.push(v);
                }
            }
        }
        Some(key) => {
            for v in merged {
                let Value::Object(m) = &v else {
                    return bad_arg_type(MAP_TYPE, &v);
                };
                let Some(merge_value) = m.get(key) else {
                    return no_merge_key(m, key);
                };
                if find_map_in_slice(by, key, merge_value, |_| true)?.is_some() {
                    in_patch.push(v);
                } else {
                    server_only.push(v);
                }
            }
        }
    }
    Ok((in_patch, server_only))
}

/// `normalizeElementOrder`: sort the patch items by `patch_order` and the server-only items by
/// `server_order`, then interleave them.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    elem_kind: Kind,
) -> Result<Vec<Value>> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key, elem_kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, elem_kind)?;
    Ok(merge_sorted_slice(
        server_only,
        patch_items,
        server_order,
        merge_key,
        elem_kind,
    ))
}

/// `normalizeSliceOrder`: sort `to_sort` by `order` (`$patch: delete` elements last).
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    elem_kind: Kind,
) -> Result<Vec<Value>> {
    let (mut to_sort, to_delete) = if elem_kind == Kind::Object {
        let key = merge_key.unwrap_or("");
        validate_merge_key_in_lists(key, &[&to_sort, order])?;
        extract_to_delete_items(to_sort)?
    } else {
        (to_sort, Vec::new())
    };
    go::sort_slice_stable(&mut to_sort, |a, b| {
        match (
            index(order, a, merge_key, elem_kind),
            index(order, b, merge_key, elem_kind),
        ) {
            (Some(ia), Some(ib)) => ia < ib,
            _ => true,
        }
    });
    to_sort.extend(to_delete);
    Ok(to_sort)
}

/// `validateMergeKeyInLists`
fn validate_merge_key_in_lists(key: &str, lists: &[&[Value]]) -> Result<()> {
    for item in lists.iter().flat_map(|l| l.iter()) {
        let Value::Object(m) = item else {
            return bad_arg_type(MAP_TYPE, item);
        };
        if !m.contains_key(key) {
            return no_merge_key(m, key);
        }
    }
    Ok(())
}

/// `extractToDeleteItems`: (elements to keep, `$patch: delete` elements).
fn extract_to_delete_items(list: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for v in list {
        let Value::Object(m) = &v else {
            return bad_arg_type(MAP_TYPE, &v);
        };
        if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE) {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

/// `index`: the position of `value` in `list`, by merge key for objects (where, as in Go, two
/// objects without the key are equal).
fn index(list: &[Value], value: &Value, merge_key: Option<&str>, elem_kind: Kind) -> Option<usize> {
    if elem_kind == Kind::Object {
        let key = merge_key.unwrap_or("");
        let get = |v: &Value| v.as_object().and_then(|m| m.get(key)).cloned();
        let want = get(value);
        list.iter().position(|v| get(v) == want)
    } else {
        list.iter().position(|v| v == value)
    }
}

/// `mergeSortedSlice`: insert each server-only item (`left`) among the patch items (`right`),
/// before the first patch item that comes after it in the live list.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
    elem_kind: Kind,
) -> Vec<Value> {
    let less = |l: &Value, r: &Value| match (
        index(server_order, l, merge_key, elem_kind),
        index(server_order, r, merge_key, elem_kind),
    ) {
        (Some(li), Some(ri)) => li < ri,
        _ => false,
    };
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => less(l, r),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// The Go type of a decoded JSON value, as far as `sliceElementType` cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    List,
    Object,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_f64() => Kind::Float,
        Value::Number(_) => Kind::Int,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::List,
        Value::Object(_) => Kind::Object,
    }
}

/// `sliceElementType`: the one element type of the lists.
fn slice_element_kind(lists: &[&[Value]]) -> Result<Kind> {
    let mut prev: Option<Kind> = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = kind(v);
        match prev {
            None if k == Kind::List => {
                return Err(PatchError::Failed(ERR_NO_LIST_OF_LISTS.to_string()))
            }
            None => prev = Some(k),
            Some(p) if p != k => {
                let all: Vec<String> = lists.iter().map(|l| go::v_list(l)).collect();
                return invalid(format!(
                    "list element types are not identical: [{}]",
                    all.join(" ")
                ));
            }
            Some(_) => {}
        }
    }
    prev.map_or_else(|| invalid("no elements in any of the given slices"), Ok)
}

fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE_MARKER
        || k == RETAIN_KEYS_DIRECTIVE
        || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
        || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
}

/// A patch value for a key the original does not have (or has with another type):
/// `discardNullValuesFromPatch` + `removeDirectives` — `null` members go, objects that carry
/// `$patch` go (`None` when the value itself is one), and so do the other directive keys.
fn new_value(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
                    .filter_map(|(k, v)| new_value(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(list) => Some(Value::Array(
            list.into_iter().filter_map(new_value).collect(),
        )),
        other => Some(other),
    }
}

/// A patch value that replaces the original whole: directive keys and `null` members dropped,
/// objects kept (what decoding upstream's result into Go structs leaves).
fn strip(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_object(m)),
        Value::Array(list) => Value::Array(list.into_iter().map(strip).collect()),
        other => other,
    }
}

fn strip_object(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .map(|(k, v)| (k, strip(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vals(v: Value) -> Vec<Value> {
        v.as_array().unwrap().clone()
    }

    #[test]
    fn deduplicates_like_go() {
        // Go: s[j] = s[last]; so [1 2 1 3] -> [1 2 3].
        assert_eq!(
            deduplicate_scalars(vals(json!([1, 2, 1, 3]))),
            vals(json!([1, 2, 3]))
        );
        // [1 1 2 3] -> the second 1 is replaced by 3: [1 3 2].
        assert_eq!(
            deduplicate_scalars(vals(json!([1, 1, 2, 3]))),
            vals(json!([1, 3, 2]))
        );
        assert_eq!(
            deduplicate_scalars(vals(json!(["a", "a", "a"]))),
            vals(json!(["a"]))
        );
        assert!(deduplicate_scalars(vec![]).is_empty());
    }

    #[test]
    fn element_kinds() {
        assert_eq!(
            slice_element_kind(&[&vals(json!([1, 2])), &vals(json!([3]))]).unwrap(),
            Kind::Int
        );
        assert_eq!(
            slice_element_kind(&[&vals(json!([1])), &vals(json!(["a"]))]).unwrap_err(),
            PatchError::Invalid("list element types are not identical: [[1] [a]]".into())
        );
        assert_eq!(
            slice_element_kind(&[&vals(json!([[1]]))]).unwrap_err(),
            PatchError::Failed("lists of lists are not supported".into())
        );
        assert_eq!(
            slice_element_kind(&[&[], &[]]).unwrap_err(),
            PatchError::Invalid("no elements in any of the given slices".into())
        );
    }

    #[test]
    fn new_values_lose_nulls_and_directives() {
        assert_eq!(
            new_value(
                json!({"a": null, "b": {"c": null, "d": 1}, "e": [{"$patch": "delete", "x": 1}, {"y": null}],
                "$setElementOrder/e": [], "$retainKeys": ["a"]})
            ),
            Some(json!({"b": {"d": 1}, "e": [{}]}))
        );
        assert_eq!(new_value(json!({"$patch": "replace"})), None);
        assert_eq!(
            strip(json!([{"$patch": "delete", "key": "x", "value": null}])),
            json!([{"key": "x"}])
        );
    }
}
