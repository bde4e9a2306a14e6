//! The application half of strategicpatch's `patch_test.go`: its fixtures re-stated as
//! (original, patch, expected) over the same test schema (`MergeItem`), results compared
//! exactly, list order included. Two-way cases apply the patch to the original config, three-way
//! cases to the live object.

use pretty_assertions::assert_eq;
use serde_json::Value;
use svcnet_patch::schema::{Field, Type};
use svcnet_patch::{strategic_merge_patch, PatchError};

/// Upstream's `MergeItem` test struct.
static MERGE_ITEM: Type = Type::new(
    "MergeItem",
    &[
        Field::merge_by("mergingList", "name", &MERGE_ITEM),
        Field::object("nonMergingList", &MERGE_ITEM),
        Field::merge_set("mergingIntList"),
        Field::atomic("nonMergingIntList"),
        Field::merge_by("mergeItemPtr", "name", &MERGE_ITEM),
        Field::replace("replacingItem"),
        Field::object("retainKeysMap", &RETAIN_KEYS_MERGE_ITEM).retain_keys(),
        Field::merge_by("retainKeysMergingList", "name", &MERGE_ITEM).retain_keys(),
    ],
);

/// Upstream's `RetainKeysMergeItem`.
static RETAIN_KEYS_MERGE_ITEM: Type = Type::new(
    "RetainKeysMergeItem",
    &[
        Field::merge_set("mergingIntList"),
        Field::merge_by("mergingList", "name", &MERGE_ITEM),
        Field::object("nonMergingList", &MERGE_ITEM),
    ],
);

/// Runs a YAML list of cases: `name`, `original`, `patch`, and `result` or `error` (a part of
/// the expected message).
fn run(fixtures: &str) {
    let cases: Vec<Value> = serde_yaml::from_str(fixtures).expect("fixtures parse");
    assert!(!cases.is_empty());
    for c in cases {
        let name = c["name"].as_str().expect("name");
        let got = strategic_merge_patch(&c["original"], &c["patch"], &MERGE_ITEM);
        match (c.get("result"), c.get("error")) {
            (Some(want), None) => {
                let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(&got, want, "{name}");
            }
            (None, Some(want)) => {
                let err = got.expect_err(name).to_string();
                let want = want.as_str().expect("error is a string");
                assert!(err.contains(want), "{name}: {err:?} lacks {want:?}");
            }
            _ => panic!("{name}: give result or error"),
        }
    }
}

#[test]
fn maps_and_nulls() {
    run(r#"
- name: nil original
  original: {}
  patch: {name: 1, value: 1}
  result: {name: 1, value: 1}
- name: nil patch
  original: {name: 1}
  patch: {}
  result: {name: 1}
- name: add field to map (three-way)
  original: {name: 1, other: a}
  patch: {value: 1}
  result: {name: 1, value: 1, other: a}
- name: add field and delete field from map (three-way)
  original: {name: 1, other: a}
  patch: {name: null, value: 1}
  result: {value: 1, other: a}
- name: delete field from nested map (three-way)
  original: {simpleMap: {key1: 1, key2: 1, other: a}}
  patch: {simpleMap: {key2: null}}
  result: {simpleMap: {key1: 1, other: a}}
- name: delete all fields from map (three-way)
  original: {name: 1, value: 1, other: a}
  patch: {name: null, value: null}
  result: {other: a}
- name: defined null values overwrite current fields
  original: {name: a, other: a}
  patch: {name: 1, value: 1, other: null}
  result: {name: 1, value: 1}
- name: null for a missing field is dropped
  original: {name: original-name, value: original-value, other: current-other}
  patch: {name: modified-name, value: null, missing: null}
  result: {name: modified-name, other: current-other}
- name: delete map from nested map
  original: {simpleMap: {key1: 1, key2: 1}}
  patch: {simpleMap: {$patch: delete}}
  result: {simpleMap: {}}
- name: delete all keys from map
  original: {name: 1, value: 1}
  patch: {$patch: replace}
  result: {}
- name: add key and delete all keys from map
  original: {name: 1, value: 1}
  patch: {other: a, $patch: replace}
  result: {other: a}
- name: replacing item is replaced whole
  original: {replacingItem: {a: 1, b: 2}}
  patch: {replacingItem: {b: 3}}
  result: {replacingItem: {b: 3}}
- name: replace list of scalars
  original: {nonMergingIntList: [1, 4]}
  patch: {nonMergingIntList: [2, 3]}
  result: {nonMergingIntList: [2, 3]}
- name: a value of another type replaces
  original: {name: {a: 1}, mergingList: [{name: 1}]}
  patch: {name: 1, mergingList: {name: 1}}
  result: {name: 1, mergingList: {name: 1}}
"#);
}

#[test]
fn merging_lists_of_maps() {
    run(r#"
- name: nested patch merge with empty list (two-way)
  original: {name: hi}
  patch: {mergingList: [{name: hello}, {$patch: delete, name: doesntexist}]}
  result: {name: hi, mergingList: [{name: hello}]}
- name: nested patch merge with empty list (three-way)
  original: {name: hi, mergingList: [{name: hello2}]}
  patch:
    $setElementOrder/mergingList: [{name: hello}, {name: doesntexist}]
    mergingList: [{name: hello}]
  result: {name: hi, mergingList: [{name: hello}, {name: hello2}]}
- name: merge lists of maps
  original: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 4}, {name: 1}, {name: 2}, {name: 3}]
    mergingList: [{name: 4, value: 4}, {name: 3, value: 3}]
  result:
    mergingList:
      - {name: 4, value: 4}
      - {name: 1, other: a}
      - {name: 2, value: 2, other: b}
      - {name: 3, value: 3}
- name: merge lists of maps with conflict
  original: {mergingList: [{name: 1, other: a}, {name: 2, value: 3, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}, {name: 3}]
    mergingList: [{name: 2, value: 2}, {name: 3, value: 3}]
  result:
    mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]
- name: add field to map in merging list with conflict
  original: {mergingList: [{name: 1, other: a}, {name: 3, value: 2, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList: [{name: 1, value: 1}, {name: 2, value: 2}]
  result:
    mergingList:
      - {name: 1, value: 1, other: a}
      - {name: 2, value: 2}
      - {name: 3, value: 2, other: b}
- name: replace map field value in merging list
  original: {mergingList: [{name: 1, value: 1, other: a}, {name: 2, value: 2, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList: [{name: 1, value: a}]
  result: {mergingList: [{name: 1, value: a, other: a}, {name: 2, value: 2, other: b}]}
- name: delete field from map in merging list
  original: {mergingList: [{name: 1, value: 1, other: a}, {name: 2, value: 2, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList: [{name: 1, value: null}]
  result: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]}
- name: delete map from merging list
  original: {mergingList: [{name: 1}, {name: 2, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 2}]
    mergingList: [{name: 1, $patch: delete}]
  result: {mergingList: [{name: 2, other: b}]}
- name: delete missing map from merging list with conflict
  original: {mergingList: [{name: 3, other: a}]}
  patch:
    $setElementOrder/mergingList: [{name: 2}]
    mergingList: [{name: 2}, {name: 1, $patch: delete}]
  result: {mergingList: [{name: 2}, {name: 3, other: a}]}
- name: add map and delete map from merging list
  original: {mergingList: [{name: 1}, {name: 2, other: b}, {name: 4, other: c}]}
  patch:
    $setElementOrder/mergingList: [{name: 2}, {name: 3}]
    mergingList: [{name: 3}, {name: 1, $patch: delete}]
  result: {mergingList: [{name: 2, other: b}, {name: 4, other: c}, {name: 3}]}
- name: add map and delete map from merging list with conflict
  original: {mergingList: [{name: 1, other: a}, {name: 4, other: c}]}
  patch:
    $setElementOrder/mergingList: [{name: 2}, {name: 3}]
    mergingList: [{name: 2}, {name: 3}, {name: 1, $patch: delete}]
  result: {mergingList: [{name: 4, other: c}, {name: 2}, {name: 3}]}
- name: delete all maps from merging list
  original: {mergingList: [{name: 1, other: a}, {name: 2, other: b}]}
  patch: {mergingList: [{name: 1, $patch: delete}, {name: 2, $patch: delete}]}
  result: {mergingList: []}
- name: delete all duplicate entries in a merging list
  original: {mergingList: [{name: 1}, {name: 1}, {name: 2, value: a}, {name: 3}, {name: 3}]}
  patch: {mergingList: [{name: 1, $patch: delete}, {name: 3, $patch: delete}]}
  result: {mergingList: [{name: 2, value: a}]}
- name: delete all items from merging list
  original: {mergingList: [{name: 1}, {name: 2}]}
  patch: {mergingList: [{$patch: replace}]}
  result: {mergingList: []}
- name: replace directive keeps the other elements of the patch
  original: {mergingList: [{name: 1}, {name: 2}]}
  patch: {mergingList: [{name: 3, value: x}, {$patch: replace}]}
  result: {mergingList: [{name: 3, value: x}]}
- name: merge empty merging lists
  original: {mergingList: []}
  patch: {mergingList: []}
  result: {mergingList: []}
- name: an empty list in the patch does not clear a merging list
  original: {mergingList: [{name: 1}]}
  patch: {mergingList: []}
  result: {mergingList: [{name: 1}]}
- name: replace non merging list nested in merging list
  original:
    mergingList:
      - {name: 1, other: a, nonMergingList: [{name: 1}, {name: 2, value: 2}]}
      - {name: 2, other: b}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList: [{name: 1, nonMergingList: [{name: 1, value: 1}]}]
  result:
    mergingList:
      - {name: 1, other: a, nonMergingList: [{name: 1, value: 1}]}
      - {name: 2, other: b}
- name: add field to map in merging list nested in merging list
  original:
    mergingList:
      - {name: 1, other: a, mergingList: [{name: 1, value: a, other: c}, {name: 2, value: b, other: d}]}
      - {name: 2, other: b}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList:
      - $setElementOrder/mergingList: [{name: 1}, {name: 2}]
        name: 1
        mergingList: [{name: 1, value: 1}, {name: 2, value: 2}]
  result:
    mergingList:
      - {name: 1, other: a, mergingList: [{name: 1, value: 1, other: c}, {name: 2, value: 2, other: d}]}
      - {name: 2, other: b}
- name: nested merging list reordered by its own $setElementOrder
  original:
    mergingList:
      - {name: 1, other: a, mergingList: [{name: 2, value: 2, other: d}]}
      - {name: 2, other: b}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList:
      - $setElementOrder/mergingList: [{name: 2}, {name: 1}]
        name: 1
        mergingList: [{name: 1, value: 1}]
  result:
    mergingList:
      - {name: 1, other: a, mergingList: [{name: 2, value: 2, other: d}, {name: 1, value: 1}]}
      - {name: 2, other: b}
- name: add map to merging list by pointer
  original: {mergeItemPtr: [{name: 1, other: a}, {name: 3}]}
  patch:
    $setElementOrder/mergeItemPtr: [{name: 1}, {name: 2}]
    mergeItemPtr: [{name: 2}]
  result: {mergeItemPtr: [{name: 1, other: a}, {name: 2}, {name: 3}]}
- name: add map to merging list by pointer with conflict
  original: {mergeItemPtr: [{name: 3}]}
  patch:
    $setElementOrder/mergeItemPtr: [{name: 1}, {name: 2}]
    mergeItemPtr: [{name: 1}, {name: 2}]
  result: {mergeItemPtr: [{name: 1}, {name: 2}, {name: 3}]}
- name: preserve the order from the patch in a merging list
  original: {mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]}
  patch: {mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, other: x}]}
  result: {mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, value: b, other: x}]}
- name: preserve the order from the patch in a merging list 2
  original: {mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]}
  patch: {mergingList: [{name: 3, value: c}, {name: 1, value: a}]}
  result: {mergingList: [{name: 2, value: b}, {name: 3, value: c}, {name: 1, value: a}]}
"#);
}

#[test]
fn set_element_order() {
    run(r#"
- name: add an item in a list and preserve order
  original: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 3}, {name: 1}, {name: 2}]
    mergingList: [{name: 3, value: 3}]
  result: {mergingList: [{name: 3, value: 3}, {name: 1, other: a}, {name: 2, value: 2, other: b}]}
- name: add multiple items in a list and preserve order
  original: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 4}, {name: 2}, {name: 3}]
    mergingList: [{name: 4, value: 4}, {name: 3, value: 3}]
  result:
    mergingList:
      - {name: 1, other: a}
      - {name: 4, value: 4}
      - {name: 2, value: 2, other: b}
      - {name: 3, value: 3}
- name: delete an item in a list and preserve order
  original: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
  patch:
    $setElementOrder/mergingList: [{name: 2}, {name: 1}]
    mergingList: [{name: 3, $patch: delete}]
  result: {mergingList: [{name: 2, value: 2, other: b}, {name: 1, other: a}]}
- name: change an item in a list and preserve order
  original: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
  patch:
    $setElementOrder/mergingList: [{name: 2}, {name: 3}, {name: 1}]
    mergingList: [{name: 3, value: x}]
  result: {mergingList: [{name: 2, value: 2, other: b}, {name: 3, value: x}, {name: 1, other: a}]}
- name: add and delete an item in a list and preserve order
  original: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
  patch:
    $setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 1}]
    mergingList: [{name: 4, value: 4}, {name: 3, $patch: delete}]
  result: {mergingList: [{name: 4, value: 4}, {name: 2, value: 2, other: b}, {name: 1, other: a}]}
- name: set elements order in a list
  original: {mergingList: [{name: 1, other: a}, {name: 3, value: 3}, {name: 4, value: 4}, {name: 2, value: 2}]}
  patch:
    $setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 3}, {name: 1}]
  result:
    mergingList: [{name: 4, value: 4}, {name: 2, value: 2}, {name: 3, value: 3}, {name: 1, other: a}]
- name: set elements order in a list with server-only items
  original:
    mergingList: [{name: 1, other: a}, {name: 3, value: 3}, {name: 4, value: 4}, {name: 2, value: 2}, {name: 9}]
  patch:
    $setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 3}, {name: 1}]
  result:
    mergingList:
      [{name: 4, value: 4}, {name: 2, value: 2}, {name: 3, value: 3}, {name: 1, other: a}, {name: 9}]
- name: set elements order in a list with server-only items 2
  original:
    mergingList: [{name: 1, other: a}, {name: 2, value: 2}, {name: 9}, {name: 3, value: 3}, {name: 4, value: 4}]
  patch:
    $setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]
  result:
    mergingList:
      [{name: 2, value: 2}, {name: 1, other: a}, {name: 9}, {name: 4, value: 4}, {name: 3, value: 3}]
- name: set elements order in a list with server-only items 3
  original:
    mergingList:
      [{name: 1, other: a}, {name: 2, value: 2}, {name: 7}, {name: 9}, {name: 8}, {name: 3, value: 3}, {name: 4, value: 4}]
  patch:
    $setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]
  result:
    mergingList:
      - {name: 2, value: 2}
      - {name: 1, other: a}
      - {name: 7}
      - {name: 9}
      - {name: 8}
      - {name: 4, value: 4}
      - {name: 3, value: 3}
- name: $setElementOrder with an item not in the list
  original: {mergingList: [{name: 1}, {name: 3}]}
  patch:
    $setElementOrder/mergingList: [{name: 3}, {name: 2}, {name: 1}]
    mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]
  result: {mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]}
- name: $setElementOrder for a list the original does not have
  original: {}
  patch:
    $setElementOrder/mergingList: [{name: 2}, {name: 1}]
    mergingList: [{name: 2}, {name: 1}, {name: 0, $patch: delete}]
  result: {mergingList: [{name: 2}, {name: 1}]}
- name: behaviour of set element order for a merging list with duplicates
  original:
    mergingList: [{name: 1}, {name: 2, value: dup1}, {name: 3}, {name: 2, value: dup2}, {name: 4}]
  patch:
    $setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}, {name: 2}]
  result:
    mergingList: [{name: 2, value: dup1}, {name: 2, value: dup2}, {name: 1}, {name: 4}, {name: 3}]
- name: delete and reorder in one list, reorder in another
  original:
    mergingList: [{name: a, value: a}, {name: b, value: b}]
    mergeItemPtr: [{name: c, value: c}, {name: d, value: d}]
  patch:
    $setElementOrder/mergingList: [{name: b}]
    $setElementOrder/mergeItemPtr: [{name: d}, {name: c}]
    mergingList: [{$patch: delete, name: a}]
  result:
    mergingList: [{name: b, value: b}]
    mergeItemPtr: [{name: d, value: d}, {name: c, value: c}]
"#);
}

#[test]
fn lists_of_primitives() {
    run(r#"
- name: unique scalars when merging lists
  original: {mergingIntList: [1, 2]}
  patch: {mergingIntList: [2, 3]}
  result: {mergingIntList: [1, 2, 3]}
- name: merge lists of scalars
  original: {mergingIntList: [1, 2, 4]}
  patch: {$setElementOrder/mergingIntList: [1, 2, 3], mergingIntList: [3]}
  result: {mergingIntList: [1, 2, 3, 4]}
- name: delete items in lists of scalars
  original: {mergingIntList: [1, 2, 3, 4]}
  patch: {$setElementOrder/mergingIntList: [1, 2], $deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [1, 2, 4]}
- name: delete all duplicate items in lists of scalars
  original: {mergingIntList: [1, 2, 3, 3, 4]}
  patch: {$setElementOrder/mergingIntList: [1, 2], $deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [1, 2, 4]}
- name: add and delete items in lists of scalars
  original: {mergingIntList: [1, 2, 3, 4]}
  patch: {$setElementOrder/mergingIntList: [1, 2, 4], $deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [1, 2, 4]}
- name: add an item in a list of primitives and preserve order
  original: {mergingIntList: [1, 4, 2]}
  patch: {$setElementOrder/mergingIntList: [3, 1, 2], mergingIntList: [3]}
  result: {mergingIntList: [3, 1, 4, 2]}
- name: delete an item in a list of primitives and preserve order
  original: {mergingIntList: [1, 2, 3]}
  patch: {$setElementOrder/mergingIntList: [2, 1], $deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [2, 1]}
- name: add multiple items in a int list and preserve order
  original: {mergingIntList: [1, 2]}
  patch: {$setElementOrder/mergingIntList: [1, 4, 2, 3], mergingIntList: [4, 3]}
  result: {mergingIntList: [1, 4, 2, 3]}
- name: add and delete an item in a int list and preserve order
  original: {mergingIntList: [1, 2, 3]}
  patch:
    $setElementOrder/mergingIntList: [4, 2, 1]
    mergingIntList: [4]
    $deleteFromPrimitiveList/mergingIntList: [3]
  result: {mergingIntList: [4, 2, 1]}
- name: set elements order in a int list with server-only items
  original: {mergingIntList: [1, 3, 4, 2, 9]}
  patch: {$setElementOrder/mergingIntList: [4, 2, 3, 1]}
  result: {mergingIntList: [4, 2, 3, 1, 9]}
- name: set elements order in a int list with server-only items 2
  original: {mergingIntList: [1, 2, 9, 3, 4]}
  patch: {$setElementOrder/mergingIntList: [2, 1, 4, 3]}
  result: {mergingIntList: [2, 1, 9, 4, 3]}
- name: set elements order in a int list with server-only items 3
  original: {mergingIntList: [1, 2, 7, 9, 8, 3, 4]}
  patch: {$setElementOrder/mergingIntList: [2, 1, 4, 3]}
  result: {mergingIntList: [2, 1, 7, 9, 8, 4, 3]}
- name: behaviour of set element order for a merging int list with duplicates
  original: {mergingIntList: [1, 2, 3, 2, 4]}
  patch: {$setElementOrder/mergingIntList: [2, 1, 4, 3, 2]}
  result: {mergingIntList: [2, 2, 1, 4, 3]}
- name: $setElementOrder with an item not in the int list
  original: {mergingIntList: [1, 3]}
  patch: {$setElementOrder/mergingIntList: [3, 2, 1]}
  result: {mergingIntList: [3, 1]}
- name: preserve the order from the patch in a merging int list
  original: {mergingIntList: [1, 2, 3]}
  patch: {mergingIntList: [3, 1, 2]}
  result: {mergingIntList: [3, 1, 2]}
- name: preserve the order from the patch in a merging int list 2
  original: {mergingIntList: [1, 2, 3]}
  patch: {mergingIntList: [3, 1]}
  result: {mergingIntList: [2, 3, 1]}
- name: $deleteFromPrimitiveList of a missing item adds nothing
  original: {mergingIntList: [1, 2]}
  patch: {$deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [1, 2]}
- name: $deleteFromPrimitiveList on an empty list
  original: {mergingIntList: null}
  patch: {$deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: null}
- name: $deleteFromPrimitiveList on a missing list adds no list
  original: {foo: [bar]}
  patch: {$deleteFromPrimitiveList/mergingIntList: [3]}
  result: {foo: [bar]}
- name: $deleteFromPrimitiveList with the merge strategy
  original: {mergingIntList: [1, 2, 3]}
  patch: {$deleteFromPrimitiveList/mergingIntList: [2]}
  result: {mergingIntList: [1, 3]}
- name: $deleteFromPrimitiveList without the merge strategy
  original: {nonMergingIntList: [1, 2, 3]}
  patch: {$deleteFromPrimitiveList/nonMergingIntList: [2]}
  result: {nonMergingIntList: [1, 3]}
"#);
}

#[test]
fn retain_keys() {
    run(r#"
- name: retainKeys map can add a field when no retainKeys directive present
  original: {retainKeysMap: {name: foo}}
  patch: {retainKeysMap: {value: bar}}
  result: {retainKeysMap: {name: foo, value: bar}}
- name: retainKeys map can delete a field when no retainKeys directive present
  original: {retainKeysMap: {name: foo, value: a}}
  patch: {retainKeysMap: {value: null}}
  result: {retainKeysMap: {name: foo}}
- name: retainKeys map merge an empty map
  original: {retainKeysMap: {name: foo, value: a}}
  patch: {retainKeysMap: {}}
  result: {retainKeysMap: {name: foo, value: a}}
- name: retainKeys list can change a field when no retainKeys directive present
  original: {retainKeysMergingList: [{name: bar}, {name: foo, value: a}]}
  patch: {retainKeysMergingList: [{name: foo, value: b}]}
  result: {retainKeysMergingList: [{name: bar}, {name: foo, value: b}]}
- name: retainKeys map should clear defaulted field
  original: {retainKeysMap: {value: foo}}
  patch: {retainKeysMap: {$retainKeys: [other], other: bar}}
  result: {retainKeysMap: {other: bar}}
- name: retainKeys map should clear defaulted field with conflict (discriminated union)
  original: {retainKeysMap: {name: type1, value: foo}}
  patch: {retainKeysMap: {$retainKeys: [name, other], name: type2, other: bar}}
  result: {retainKeysMap: {name: type2, other: bar}}
- name: retainKeys map adds a field and clears a field
  original: {retainKeysMap: {name: foo, other: a}}
  patch: {retainKeysMap: {$retainKeys: [name, value], value: bar}}
  result: {retainKeysMap: {name: foo, value: bar}}
- name: retainKeys map deletes a field and clears a field
  original: {retainKeysMap: {name: foo, value: bar, other: a}}
  patch: {retainKeysMap: {$retainKeys: [name], value: null}}
  result: {retainKeysMap: {name: foo}}
- name: retainKeys map clears a field
  original: {retainKeysMap: {name: foo, value: bar, other: a}}
  patch: {retainKeysMap: {$retainKeys: [name, value]}}
  result: {retainKeysMap: {name: foo, value: bar}}
- name: retainKeys map adds a field in a nested map
  original: {retainKeysMap: {name: foo, value: bar, simpleMap: {key1: a, key3: c}}}
  patch: {retainKeysMap: {$retainKeys: [name, simpleMap, value], simpleMap: {key2: b}}}
  result: {retainKeysMap: {name: foo, value: bar, simpleMap: {key1: a, key2: b, key3: c}}}
- name: retainKeys map deletes nested non-merging list with conflict
  original: {retainKeysMap: {name: foo, nonMergingList: [{name: a}, {name: b}, {name: c}]}}
  patch: {retainKeysMap: {$retainKeys: [name, value], value: bar, nonMergingList: null}}
  result: {retainKeysMap: {name: foo, value: bar}}
- name: retainKeys map nested merging int list with no change
  original: {retainKeysMap: {name: foo, mergingIntList: [1, 2, 3]}}
  patch:
    retainKeysMap:
      $retainKeys: [mergingIntList, name, value]
      $setElementOrder/mergingIntList: [1, 2]
      value: bar
  result: {retainKeysMap: {name: foo, value: bar, mergingIntList: [1, 2, 3]}}
- name: retainKeys map adds an item in nested merging int list
  original: {retainKeysMap: {name: foo, mergingIntList: [1, 2, 3]}}
  patch:
    retainKeysMap:
      $setElementOrder/mergingIntList: [1, 2, 4]
      $retainKeys: [mergingIntList, name]
      mergingIntList: [4]
  result: {retainKeysMap: {name: foo, mergingIntList: [1, 2, 4, 3]}}
- name: retainKeys map adds an item and deletes an item in nested merging int list
  original: {retainKeysMap: {name: foo, mergingIntList: [1, 2, 3, 4]}}
  patch:
    retainKeysMap:
      $retainKeys: [mergingIntList, name]
      mergingIntList: [5]
      $deleteFromPrimitiveList/mergingIntList: [2]
      $setElementOrder/mergingIntList: [1, 3, 5]
  result: {retainKeysMap: {name: foo, mergingIntList: [1, 3, 5, 4]}}
- name: retainKeys map deletes an item in nested merging list
  original: {retainKeysMap: {name: foo, mergingList: [{name: a}, {name: b}, {name: x}]}}
  patch:
    retainKeysMap:
      $retainKeys: [mergingList, name]
      $setElementOrder/mergingList: [{name: a}]
      mergingList: [{name: b, $patch: delete}]
  result: {retainKeysMap: {name: foo, mergingList: [{name: a}, {name: x}]}}
- name: retainKeys list of maps clears a field
  original: {retainKeysMergingList: [{name: bar}, {name: foo, value: a, other: x}]}
  patch:
    $setElementOrder/retainKeysMergingList: [{name: bar}, {name: foo}]
    retainKeysMergingList: [{$retainKeys: [name, value], name: foo}]
  result: {retainKeysMergingList: [{name: bar}, {name: foo, value: a}]}
- name: retainKeys list of maps deletes a field and clears a field
  original: {retainKeysMergingList: [{name: bar}, {name: foo, value: a, other: x}]}
  patch:
    $setElementOrder/retainKeysMergingList: [{name: bar}, {name: foo}]
    retainKeysMergingList: [{$retainKeys: [name], name: foo, value: null}]
  result: {retainKeysMergingList: [{name: bar}, {name: foo}]}
"#);
}

#[test]
fn errors() {
    run(r#"
- name: order in $setElementOrder and patch list must match
  original: {mergingList: [{name: 1}, {name: 3}, {name: 2}]}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}, {name: 3}]
    mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]
  error: "The order in patch list:\n[map[name:3 value:3] map[name:1 value:1]]\n doesn't match $setElementOrder list:\n[map[name:1] map[name:2] map[name:3]]\n"
- name: order in $setElementOrder and patch int list must match
  original: {mergingIntList: [1, 3, 2]}
  patch: {$setElementOrder/mergingIntList: [1, 2, 3], mergingIntList: [3, 1]}
  error: "doesn't match $setElementOrder list"
- name: missing merge key
  original: {mergingList: [{name: 1, value: a}]}
  patch: {mergingList: [{value: b}]}
  error: "map: map[value:b] does not contain declared merge key: name"
- name: missing merge key in a delete directive
  original: {mergingList: [{name: 1, value: a}]}
  patch: {mergingList: [{$patch: delete}]}
  error: "map: map[$patch:delete] does not contain declared merge key: name"
- name: unknown patch type in a map
  original: {simpleMap: {a: b}}
  patch: {simpleMap: {$patch: frobnicate}}
  error: "unknown patch type: frobnicate in map: map[$patch:frobnicate]"
- name: unknown patch type in a list
  original: {mergingList: [{name: 1}]}
  patch: {mergingList: [{name: 1, $patch: frobnicate}]}
  error: "unknown patch type: frobnicate in map: map[$patch:frobnicate name:1]"
- name: merge directive in a list
  original: {mergingList: [{name: 1}]}
  patch: {mergingList: [{$patch: merge}]}
  error: merging lists cannot yet be specified in the patch
- name: patch sets a key outside $retainKeys
  original: {retainKeysMap: {name: foo}}
  patch: {retainKeysMap: {$retainKeys: [name], value: bar}}
  error: invalid patch format of retainKeys
- name: $retainKeys must be a list
  original: {retainKeysMap: {name: foo}}
  patch: {retainKeysMap: {$retainKeys: name}}
  error: invalid patch format of retainKeys
- name: $setElementOrder without a field
  original: {}
  patch: {$setElementOrder: [1]}
  error: invalid patch format of setElementOrder list
- name: $setElementOrder must be a list
  original: {mergingIntList: [1]}
  patch: {$setElementOrder/mergingIntList: 1}
  error: "expected a []interface {}, but received a int64"
- name: $deleteFromPrimitiveList without a field
  original: {}
  patch: {$deleteFromPrimitiveListmergingIntList: [1]}
  error: invalid patch format of primitive list
- name: element types must agree
  original: {mergingIntList: [1, 2]}
  patch: {mergingIntList: [a]}
  error: "list element types are not identical: [[1 2] [a]]"
- name: lists of maps need a merge key to merge
  original: {mergingIntList: [{a: 1}]}
  patch: {mergingIntList: [{a: 2}]}
  error: cannot merge lists without merge key for struct
"#);
}

#[test]
fn lists_of_lists_are_unprocessable() {
    let original = serde_json::json!({"mergingIntList": [[1]]});
    let patch = serde_json::json!({"mergingIntList": [[2]]});
    assert_eq!(
        strategic_merge_patch(&original, &patch, &MERGE_ITEM).unwrap_err(),
        PatchError::Failed("lists of lists are not supported".into())
    );
}
