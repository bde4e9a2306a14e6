//! kube-apiserver's FieldManager (`k8s.io/apimachinery/pkg/util/managedfields`), ported cases
//! from `fieldmanager_test.go`, `skipnonapplied_test.go`, `conflict_test.go`: managedFields on
//! every write, Apply and Update entries, before-first-apply, conflicts as Kubernetes prints
//! them.

use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use svcnet_ssa::{ApplyError, FieldManager, Type};

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-01T00:01:00Z";

fn service_type() -> Type {
    Type::object([(
        "spec",
        Type::object([(
            "ports",
            Type::list_map(&["port", "protocol"], Type::default())
                .key_default("protocol", json!("TCP")),
        )]),
    )])
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

fn fm(ty: &Type) -> FieldManager<'_> {
    FieldManager {
        ty,
        api_version: "v1",
        subresource: "",
        ignored: None,
    }
}

const SVC: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports:
  - {port: 80, protocol: TCP, targetPort: 8080}
";

#[test]
fn create_records_an_update_entry() {
    let ty = service_type();
    let mut obj = yaml(SVC);
    fm(&ty).update(None, &mut obj, "kubectl-create", T1);
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {
                ".": {},
                "f:ports": {
                    ".": {},
                    "k:{\"port\":80,\"protocol\":\"TCP\"}": {
                        ".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}
                    }
                },
                "f:selector": {".": {}, "f:app": {}}
            }}
        }])
    );
}

#[test]
fn an_untracked_existing_object_stays_untracked() {
    let ty = service_type();
    let mut live = yaml(SVC);
    live["metadata"]["uid"] = json!("u1");
    let mut new = live.clone();
    new["spec"]["selector"]["app"] = json!("other");
    fm(&ty).update(Some(&live), &mut new, "kubectl-edit", T2);
    assert!(new["metadata"].get("managedFields").is_none());
}

#[test]
fn an_update_adds_its_manager_and_takes_changed_fields() {
    let ty = service_type();
    let mut live = yaml(SVC);
    fm(&ty).update(None, &mut live, "kubectl-create", T1);
    live["metadata"]["uid"] = json!("u1");
    let mut new = live.clone();
    new["spec"]["selector"]["app"] = json!("other");
    fm(&ty).update(Some(&live), &mut new, "kubectl-edit", T2);
    let mf = new["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf.len(), 2);
    assert_eq!(mf[0]["manager"], "kubectl-create");
    assert_eq!(mf[0]["time"], T1);
    assert!(mf[0]["fieldsV1"]["f:spec"]["f:selector"]
        .get("f:app")
        .is_none());
    assert_eq!(mf[1]["manager"], "kubectl-edit");
    assert_eq!(mf[1]["time"], T2);
    assert_eq!(
        mf[1]["fieldsV1"],
        json!({"f:spec": {"f:selector": {"f:app": {}}}})
    );
    // A write that changes nothing keeps every entry and time.
    let mut same = new.clone();
    fm(&ty).update(
        Some(&new),
        &mut same,
        "kubectl-edit",
        "2026-01-02T00:00:00Z",
    );
    assert_eq!(same, new);
    // `managedFields: []` resets them.
    let mut reset = new.clone();
    reset["metadata"]["managedFields"] = json!([]);
    fm(&ty).update(Some(&new), &mut reset, "x", T2);
    assert!(reset["metadata"].get("managedFields").is_none());
}

#[test]
fn apply_creates_then_is_idempotent() {
    let ty = service_type();
    let cfg = yaml(SVC);
    let created = fm(&ty).apply(None, &cfg, "kubectl", false, T1).unwrap();
    let mf = &created["metadata"]["managedFields"];
    assert_eq!(
        mf,
        &json!([{
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {
                "f:ports": {
                    "k:{\"port\":80,\"protocol\":\"TCP\"}": {
                        ".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}
                    }
                },
                "f:selector": {"f:app": {}}
            }}
        }])
    );
    let again = fm(&ty)
        .apply(Some(&created), &cfg, "kubectl", false, T2)
        .unwrap();
    assert_eq!(
        again, created,
        "a second identical apply changes nothing, not even the time"
    );
}

#[test]
fn apply_over_an_updated_object_gives_before_first_apply() {
    let ty = service_type();
    let mut live = yaml(SVC);
    live["metadata"]["uid"] = json!("u1");
    // Created before managedFields were tracked: the first apply attributes what exists to
    // "before-first-apply", so the applier does not own (and will not remove) it.
    let out = fm(&ty)
        .apply(
            Some(&live),
            &yaml("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort}"),
            "kubectl",
            false,
            T1,
        )
        .unwrap();
    let mf = out["metadata"]["managedFields"].as_array().unwrap();
    let names: Vec<_> = mf.iter().map(|e| e["manager"].as_str().unwrap()).collect();
    assert_eq!(names, ["kubectl", "before-first-apply"]);
    assert_eq!(mf[1]["operation"], "Update");
    assert_eq!(out["spec"]["type"], "NodePort");
    assert_eq!(out["spec"]["selector"]["app"], "web");
}

#[test]
fn conflict_with_an_updater_is_kubernetes_409_message() {
    let ty = service_type();
    let mut live = yaml(SVC);
    fm(&ty).update(None, &mut live, "kubectl-client-side-apply", T1);
    live["metadata"]["uid"] = json!("u1");
    let cfg = yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n  - {port: 80, targetPort: 9090}",
    );
    let err = fm(&ty)
        .apply(Some(&live), &cfg, "kubectl", false, T2)
        .unwrap_err();
    let ApplyError::Conflicts(c) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .spec.ports[port=80,protocol="TCP"].targetPort"#
    );
    assert_eq!(
        c.causes(),
        [(
            r#"conflict with "kubectl-client-side-apply" using v1"#.to_string(),
            r#".spec.ports[port=80,protocol="TCP"].targetPort"#.to_string()
        )]
    );

    // force: the applier takes the field.
    let out = fm(&ty)
        .apply(Some(&live), &cfg, "kubectl", true, T2)
        .unwrap();
    assert_eq!(out["spec"]["ports"][0]["targetPort"], 9090);
    let mf = out["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf[0]["manager"], "kubectl");
    assert_eq!(mf[1]["manager"], "kubectl-client-side-apply");
    assert!(
        mf[1]["fieldsV1"]["f:spec"]["f:ports"]["k:{\"port\":80,\"protocol\":\"TCP\"}"]
            .get("f:targetPort")
            .is_none()
    );
}

#[test]
fn several_conflicts_are_listed_per_manager() {
    let ty = Type::default();
    let a = fm(&ty)
        .apply(
            None,
            &yaml("metadata: {name: x}\na: 1\nb: 1"),
            "one",
            false,
            T1,
        )
        .unwrap();
    let b = fm(&ty)
        .apply(
            Some(&a),
            &yaml("metadata: {name: x}\nc: 1"),
            "two",
            false,
            T1,
        )
        .unwrap();
    let err = fm(&ty)
        .apply(
            Some(&b),
            &yaml("metadata: {name: x}\na: 2\nb: 2\nc: 2"),
            "three",
            false,
            T2,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"one\":\n- .a\n- .b\nconflicts with \"two\":\n- .c"
    );
}

#[test]
fn apply_rejects_managed_fields_in_the_body() {
    let ty = Type::default();
    let err = fm(&ty)
        .apply(
            None,
            &yaml("metadata: {name: x, managedFields: []}"),
            "m",
            false,
            T1,
        )
        .unwrap_err();
    assert_eq!(
        err,
        ApplyError::BadRequest("metadata.managedFields must be nil".into())
    );
}

#[test]
fn subresource_managers_are_their_own_entries() {
    let ty = Type::default();
    let mut ignored = svcnet_ssa::Set::new();
    ignored.insert(&[svcnet_ssa::PathElement::field("spec")]);
    let status = FieldManager {
        ty: &ty,
        api_version: "v1",
        subresource: "status",
        ignored: Some(&ignored),
    };
    let mut live = yaml("metadata: {name: x}\nspec: {a: 1}");
    fm(&ty).update(None, &mut live, "creator", T1);
    live["metadata"]["uid"] = json!("u");
    let mut new = live.clone();
    new["status"] = json!({"ready": true});
    status.update(Some(&live), &mut new, "kubelet", T2);
    let mf = new["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf[1]["manager"], "kubelet");
    assert_eq!(mf[1]["subresource"], "status");
    assert_eq!(
        mf[1]["fieldsV1"],
        json!({"f:status": {".": {}, "f:ready": {}}})
    );
}

#[test]
fn manager_from_user_agent() {
    assert_eq!(
        svcnet_ssa::manager_or_user_agent(None, "kubectl/v1.33.0 (linux/amd64) kubernetes/abc"),
        "kubectl"
    );
    assert_eq!(
        svcnet_ssa::manager_or_user_agent(Some("m"), "kubectl/v1"),
        "m"
    );
}
