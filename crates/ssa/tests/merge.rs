//! structured-merge-diff's merge tests (`merge/leaf_test.go`, `set_test.go`, `key_test.go`,
//! `multiple_appliers_test.go`, `nested_test.go`, `default_keys_test.go`), ported: a sequence
//! of Apply / Update operations, then the object and each manager's field set.

use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use svcnet_ssa::update::UpdateError;
use svcnet_ssa::{path_string, ManagedFields, Manager, Set, Type, Updater};

struct State {
    ty: Type,
    live: Value,
    managers: ManagedFields,
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

impl State {
    fn new(ty: Type) -> State {
        State {
            ty,
            live: json!({}),
            managers: ManagedFields::new(),
        }
    }

    fn updater(&self) -> Updater<'_> {
        Updater {
            ty: &self.ty,
            api_version: "v1",
            ignored: None,
        }
    }

    fn try_apply(&mut self, manager: &str, obj: &str, force: bool) -> Result<(), UpdateError> {
        let (new, managers) = self.updater().apply(
            &self.live,
            &yaml(obj),
            &self.managers,
            &Manager::apply(manager, ""),
            force,
        )?;
        if let Some(n) = new {
            self.live = n;
        }
        self.managers = managers;
        Ok(())
    }

    fn apply(&mut self, manager: &str, obj: &str) {
        self.try_apply(manager, obj, false).unwrap();
    }

    /// The conflicts of an apply, as `manager path` strings.
    fn conflicts(&mut self, manager: &str, obj: &str) -> Vec<String> {
        match self.try_apply(manager, obj, false) {
            Err(UpdateError::Conflicts(c)) => {
                c.0.iter()
                    .map(|c| format!("{} {}", c.manager.manager, path_string(&c.path)))
                    .collect()
            }
            other => panic!("expected conflicts, got {other:?}"),
        }
    }

    fn update(&mut self, manager: &str, obj: &str) {
        let new = yaml(obj);
        self.managers = self
            .updater()
            .update(
                &self.live,
                &new,
                &self.managers,
                &Manager::update(manager, "v1", ""),
            )
            .unwrap();
        self.live = new;
    }

    /// Each manager's fieldsV1, by name.
    fn fields(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, vs) in &self.managers {
            m.insert(k.manager.clone(), vs.set.to_fields_v1());
        }
        Value::Object(m)
    }

    fn assert(&self, obj: &str, fields: Value) {
        assert_eq!(self.live, yaml(obj));
        assert_eq!(self.fields(), fields);
    }
}

fn leaf() -> Type {
    Type::default()
}

// ---- leaf_test.go -----------------------------------------------------------------------------

#[test]
fn leaf_apply_twice() {
    let mut s = State::new(leaf());
    s.apply("default", "numeric: 1\nstring: string");
    s.apply("default", "numeric: 2\nstring: string\nbool: false");
    s.assert(
        "numeric: 2\nstring: string\nbool: false",
        json!({"default": {"f:numeric": {}, "f:string": {}, "f:bool": {}}}),
    );
}

#[test]
fn leaf_apply_update_apply_no_conflict() {
    let mut s = State::new(leaf());
    s.apply("default", "numeric: 1\nstring: string");
    s.update("controller", "numeric: 1\nstring: string\nbool: true");
    s.apply("default", "numeric: 2\nstring: string");
    s.assert(
        "numeric: 2\nstring: string\nbool: true",
        json!({
            "default": {"f:numeric": {}, "f:string": {}},
            "controller": {"f:bool": {}},
        }),
    );
}

#[test]
fn leaf_apply_update_apply_with_conflict_then_force() {
    let mut s = State::new(leaf());
    s.apply("default", "numeric: 1\nstring: string");
    s.update(
        "controller",
        "numeric: 1\nstring: controller string\nbool: true",
    );
    assert_eq!(
        s.conflicts("default", "numeric: 2\nstring: user string"),
        ["controller .string"]
    );
    // The failed apply changed nothing.
    assert_eq!(s.live["string"], "controller string");
    s.try_apply("default", "numeric: 2\nstring: user string", true)
        .unwrap();
    s.assert(
        "numeric: 2\nstring: user string\nbool: true",
        json!({
            "default": {"f:numeric": {}, "f:string": {}},
            "controller": {"f:bool": {}},
        }),
    );
}

#[test]
fn leaf_apply_twice_dangling_removes_the_field() {
    let mut s = State::new(leaf());
    s.apply("default", "numeric: 1\nstring: string\nbool: false");
    s.apply("default", "string: new string");
    s.assert("string: new string", json!({"default": {"f:string": {}}}));
}

#[test]
fn leaf_apply_update_dangling_keeps_a_field_another_manager_owns() {
    let mut s = State::new(leaf());
    s.apply("default", "numeric: 1\nstring: string\nbool: true");
    s.update("controller", "numeric: 1\nstring: string\nbool: false");
    s.apply("default", "string: new string");
    s.assert(
        "string: new string\nbool: false",
        json!({
            "default": {"f:string": {}},
            "controller": {"f:bool": {}},
        }),
    );
}

#[test]
fn leaf_same_value_is_shared_without_conflict() {
    let mut s = State::new(leaf());
    s.apply("a", "numeric: 1");
    s.apply("b", "numeric: 1\nstring: b");
    s.assert(
        "numeric: 1\nstring: b",
        json!({"a": {"f:numeric": {}}, "b": {"f:numeric": {}, "f:string": {}}}),
    );
    // a stops applying numeric: b still owns it, so it stays.
    s.apply("a", "bool: true");
    s.assert(
        "numeric: 1\nstring: b\nbool: true",
        json!({"a": {"f:bool": {}}, "b": {"f:numeric": {}, "f:string": {}}}),
    );
}

#[test]
fn leaf_update_takes_ownership_from_appliers() {
    let mut s = State::new(leaf());
    s.apply("default", "numeric: 1\nstring: string");
    s.update("controller", "numeric: 2\nstring: string");
    s.assert(
        "numeric: 2\nstring: string",
        json!({"default": {"f:string": {}}, "controller": {"f:numeric": {}}}),
    );
    // Removing a field takes it from everyone.
    s.update("controller", "numeric: 2");
    s.assert("numeric: 2", json!({"controller": {"f:numeric": {}}}));
}

// ---- set_test.go ------------------------------------------------------------------------------

fn set_schema() -> Type {
    Type::object([("list", Type::set())])
}

#[test]
fn set_apply_twice_removes_dropped_values() {
    let mut s = State::new(set_schema());
    s.apply("default", "list: [a, b, c, d]");
    s.apply("default", "list: [a, b, c]");
    s.assert(
        "list: [a, b, c]",
        json!({"default": {"f:list": {"v:\"a\"": {}, "v:\"b\"": {}, "v:\"c\"": {}}}}),
    );
}

#[test]
fn set_apply_update_apply_no_overlap() {
    let mut s = State::new(set_schema());
    s.apply("default", "list: [a, c]");
    s.update("controller", "list: [a, b, c, d]");
    s.apply("default", "list: [a, aprime, c, cprime]");
    s.assert(
        "list: [a, b, aprime, c, d, cprime]",
        json!({
            "default": {"f:list": {"v:\"a\"": {}, "v:\"aprime\"": {}, "v:\"c\"": {}, "v:\"cprime\"": {}}},
            "controller": {"f:list": {"v:\"b\"": {}, "v:\"d\"": {}}},
        }),
    );
}

#[test]
fn set_two_appliers_keep_shared_values() {
    let mut s = State::new(set_schema());
    s.apply("one", "list: [a, b]");
    s.apply("two", "list: [b, c]");
    s.assert(
        "list: [a, b, c]",
        json!({
            "one": {"f:list": {"v:\"a\"": {}, "v:\"b\"": {}}},
            "two": {"f:list": {"v:\"b\"": {}, "v:\"c\"": {}}},
        }),
    );
    s.apply("one", "list: [a]");
    assert_eq!(s.live, yaml("list: [a, b, c]"));
    s.apply("two", "list: [c]");
    assert_eq!(s.live, yaml("list: [a, c]"));
}

// ---- key_test.go, nested_test.go --------------------------------------------------------------

fn ports_schema() -> Type {
    Type::object([(
        "ports",
        Type::list_map(&["port", "protocol"], Type::default())
            .key_default("protocol", json!("TCP")),
    )])
}

#[test]
fn associative_list_merges_by_key() {
    let mut s = State::new(ports_schema());
    s.apply(
        "default",
        "ports:\n- {port: 80, name: http}\n- {port: 53, protocol: UDP}",
    );
    s.apply(
        "other",
        "ports:\n- {port: 443, name: https}\n- {port: 80, targetPort: 8080}",
    );
    s.assert(
        "ports:\n- {port: 443, name: https}\n- {port: 80, name: http, targetPort: 8080}\n- {port: 53, protocol: UDP}",
        json!({
            "default": {"f:ports": {
                "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:name": {}},
                "k:{\"port\":53,\"protocol\":\"UDP\"}": {".": {}, "f:port": {}, "f:protocol": {}},
            }},
            "other": {"f:ports": {
                "k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:name": {}},
                "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}},
            }},
        }),
    );
    assert_eq!(
        s.conflicts(
            "default",
            "ports:\n- {port: 80, name: http, targetPort: 9090}"
        ),
        [r#"other .ports[port=80,protocol="TCP"].targetPort"#]
    );
    // default stops applying UDP 53: it goes; port 80 is still owned by other.
    s.apply("default", "ports:\n- {port: 80, name: http}");
    assert_eq!(
        s.live,
        yaml("ports:\n- {port: 443, name: https}\n- {port: 80, name: http, targetPort: 8080}")
    );
    // other stops applying port 80: default still owns the element and its name.
    s.apply("other", "ports:\n- {port: 443, name: https}");
    assert_eq!(
        s.live,
        yaml("ports:\n- {port: 443, name: https}\n- {port: 80, name: http}")
    );
}

#[test]
fn associative_list_without_key_is_an_error() {
    let mut s = State::new(Type::object([(
        "list",
        Type::list_map(&["name"], Type::default()),
    )]));
    let err = s
        .try_apply("default", "list:\n- {value: 1}", false)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#".list: element 0: associative list with keys has an element that omits key field "name" (and doesn't have default value)"#
    );
    let err = s
        .try_apply("default", "list:\n- {name: a}\n- {name: a}", false)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#".list: duplicate entries for key [name="a"]"#
    );
}

#[test]
fn nested_maps_and_lists() {
    let container = Type::object([("env", Type::list_map(&["name"], Type::default()))]);
    let ty = Type::object([(
        "spec",
        Type::object([("containers", Type::list_map(&["name"], container))]),
    )]);
    let mut s = State::new(ty);
    s.apply(
        "default",
        "spec:\n  containers:\n  - name: c\n    image: nginx\n    env:\n    - {name: A, value: '1'}",
    );
    s.update(
        "controller",
        "spec:\n  containers:\n  - name: c\n    image: nginx\n    env:\n    - {name: A, value: '1'}\n    - {name: B, value: '2'}",
    );
    s.apply(
        "default",
        "spec:\n  containers:\n  - name: c\n    image: nginx:2",
    );
    s.assert(
        "spec:\n  containers:\n  - name: c\n    image: nginx:2\n    env:\n    - {name: B, value: '2'}",
        json!({
            "default": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {}}}}},
            "controller": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {"f:env": {
                "k:{\"name\":\"B\"}": {".": {}, "f:name": {}, "f:value": {}}
            }}}}},
        }),
    );
}

#[test]
fn atomic_list_is_one_field() {
    let mut s = State::new(leaf());
    s.apply("default", "list: [a, b]");
    s.update("controller", "list: [a, b, c]");
    s.assert("list: [a, b, c]", json!({"controller": {"f:list": {}}}));
    assert_eq!(s.conflicts("default", "list: [a]"), ["controller .list"]);
}

#[test]
fn atomic_map_is_one_field() {
    let mut s = State::new(Type::object([("m", Type::atomic())]));
    s.apply("default", "m: {a: 1, b: 2}");
    s.apply("default", "m: {a: 1}");
    s.assert("m: {a: 1}", json!({"default": {"f:m": {}}}));
}

#[test]
fn granular_map_removes_only_unowned_keys() {
    let mut s = State::new(leaf());
    s.apply("default", "labels: {a: '1', b: '2'}");
    s.update("controller", "labels: {a: '1', b: '2', c: '3'}");
    s.apply("default", "labels: {a: '1'}");
    s.assert(
        "labels: {a: '1', c: '3'}",
        json!({
            "default": {"f:labels": {"f:a": {}}},
            "controller": {"f:labels": {"f:c": {}}},
        }),
    );
    // Emptying its last key removes the map the applier no longer sets.
    s.apply("default", "other: x");
    assert_eq!(s.live, yaml("labels: {c: '3'}\nother: x"));
}

#[test]
fn list_order_follows_smd() {
    // merge_test.go "ordering": the applied order wins, live-only items keep their place.
    let ty = Type::object([("list", Type::list_map(&["name"], Type::default()))]);
    let mut s = State::new(ty);
    s.update(
        "controller",
        "list:\n- {name: a}\n- {name: b}\n- {name: c}\n- {name: d}",
    );
    s.apply("default", "list:\n- {name: c}\n- {name: a}\n- {name: e}");
    assert_eq!(
        s.live,
        yaml("list:\n- {name: b}\n- {name: c}\n- {name: d}\n- {name: a}\n- {name: e}")
    );
}

#[test]
fn ignored_fields_are_owned_by_no_one() {
    let ty = leaf();
    let mut ignored = Set::new();
    ignored.insert(&[svcnet_ssa::PathElement::field("status")]);
    let u = Updater {
        ty: &ty,
        api_version: "v1",
        ignored: Some(&ignored),
    };
    let (_, m) = u
        .apply(
            &json!({}),
            &yaml("spec: {a: 1}\nstatus: {b: 2}"),
            &ManagedFields::new(),
            &Manager::apply("x", ""),
            false,
        )
        .unwrap();
    assert_eq!(
        m[&Manager::apply("x", "")].set.to_fields_v1(),
        json!({"f:spec": {"f:a": {}}})
    );
}

#[test]
fn apply_without_changes_returns_no_object() {
    let ty = leaf();
    let u = Updater {
        ty: &ty,
        api_version: "v1",
        ignored: None,
    };
    let live = yaml("a: 1");
    let (new, _) = u
        .apply(
            &live,
            &live,
            &ManagedFields::new(),
            &Manager::apply("x", ""),
            false,
        )
        .unwrap();
    assert_eq!(new, None);
}
