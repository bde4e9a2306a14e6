//! `pods/{name}/ephemeralcontainers` against the API server: kube-rs' get/replace/patch (as its
//! `can_operate_on_ephemeral_containers`), `kubectl debug` adding a debug container, and
//! Kubernetes' validation (only ephemeral containers change; none removed or changed; unique
//! names, an existing target, no ports).

mod support;

use k8s_openapi::api::core::v1::{EphemeralContainer, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::ApiServer;

fn ephemeral(name: &str, command: &str) -> EphemeralContainer {
    serde_json::from_value(json!({
        "name": name,
        "image": "busybox:stable",
        "command": ["sh", "-c", command],
    }))
    .unwrap()
}

#[tokio::test]
async fn ephemeral_containers_with_kube_rs_and_kubectl_debug() {
    let s = ApiServer::start();
    let client = s.client().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "eph", "labels": {"app": "eph"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "busybox", "image": "busybox:stable",
                            "command": ["sh", "-c", "sleep 2"]}],
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    // kube-rs: none at first; a replace with only the ephemeral containers (no resourceVersion,
    // no containers) sets them; a strategic patch adds one (merged by name).
    let got = pods.get_ephemeral_containers("eph").await.unwrap();
    assert_eq!(got.spec.unwrap().ephemeral_containers, None);
    let replace: Pod = serde_json::from_value(json!({
        "metadata": {"name": "eph"},
        "spec": {"ephemeralContainers": [ephemeral("eph1", "sleep 2")]}
    }))
    .unwrap();
    let got = pods
        .replace_ephemeral_containers("eph", &PostParams::default(), &replace)
        .await
        .unwrap();
    let spec = got.spec.unwrap();
    let ecs = spec.ephemeral_containers.unwrap();
    assert_eq!(ecs.len(), 1);
    assert_eq!(ecs[0].name, "eph1");
    assert_eq!(ecs[0].image.as_deref(), Some("busybox:stable"));
    // Defaulted as the other containers, the rest of the pod untouched.
    assert_eq!(ecs[0].termination_message_policy.as_deref(), Some("File"));
    assert_eq!(spec.containers[0].name, "busybox");
    let patch: Pod = serde_json::from_value(
        json!({"spec": {"ephemeralContainers": [ephemeral("eph2", "sleep 1")]}}),
    )
    .unwrap();
    let got = pods
        .patch_ephemeral_containers("eph", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let mut names: Vec<String> = got
        .spec
        .unwrap()
        .ephemeral_containers
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    // Merged by name (the order is the strategic merge's).
    names.sort();
    assert_eq!(names, ["eph1", "eph2"]);
    let got = pods.get("eph").await.unwrap();
    assert_eq!(got.spec.unwrap().ephemeral_containers.unwrap().len(), 2);

    // Only ephemeral containers change through the subresource: a label in the same body is
    // dropped.
    let got = s.kubectl_ok(&[
        "patch",
        "pod",
        "eph",
        "--subresource=ephemeralcontainers",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"app":"changed"}}}"#,
    ]);
    assert!(got.contains("pod/eph patched"), "{got}");
    assert_eq!(s.jsonpath("pod", "eph", "{.metadata.labels.app}"), "eph");

    // Removed or changed: Kubernetes' messages.
    let first = s.jsonpath("pod", "eph", "{.spec.ephemeralContainers[0].name}");
    let err = s.kubectl_err(&[
        "patch",
        "pod",
        "eph",
        "--subresource=ephemeralcontainers",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/ephemeralContainers/0"}]"#,
    ]);
    assert!(
        err.contains(&format!(
            "spec.ephemeralContainers: Forbidden: existing ephemeral containers {first:?} may not be removed"
        )),
        "{err}"
    );
    let err = s.kubectl_err(&[
        "patch",
        "pod",
        "eph",
        "--subresource=ephemeralcontainers",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ephemeralContainers/0/image","value":"nginx"}]"#,
    ]);
    assert!(
        err.contains(&format!(
            "existing ephemeral containers {first:?} may not be changed"
        )),
        "{err}"
    );
    // A duplicate name, a target that is not a container, ports.
    let err = s.kubectl_err(&[
        "patch",
        "pod",
        "eph",
        "--subresource=ephemeralcontainers",
        "--type=strategic",
        "-p",
        r#"{"spec":{"ephemeralContainers":[{"name":"busybox","image":"busybox"},
            {"name":"t","image":"busybox","targetContainerName":"nope",
             "ports":[{"containerPort":80}]}]}}"#,
    ]);
    // (Indexes as the strategic merge orders the list.)
    for want in [
        r#"].name: Duplicate value: "busybox""#,
        r#"].targetContainerName: Not found: "nope""#,
        "].ports: Forbidden: cannot be set for an Ephemeral Container",
    ] {
        assert!(err.contains(want), "{want}\n{err}");
    }
    assert!(!err.contains("protocol"), "{err}");
    // Not on create.
    let err = s.kubectl_err(&[
        "run",
        "eph-create",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"ephemeralContainers":[{"name":"x","image":"busybox"}]}}"#,
    ]);
    assert!(
        err.contains("spec.ephemeralContainers: Forbidden: cannot be set on create"),
        "{err}"
    );

    // kubectl debug (without -i it adds the container and returns).
    let out = s.kubectl_ok(&[
        "debug",
        "eph",
        "--image=busybox",
        "--container=debugger",
        "--target=busybox",
        "--",
        "sleep",
        "5",
    ]);
    let _ = out;
    let ecs = s.jsonpath(
        "pod",
        "eph",
        "{range .spec.ephemeralContainers[*]}{.name}:{.targetContainerName}:{.image} {end}",
    );
    let mut ecs: Vec<&str> = ecs.split_whitespace().collect();
    ecs.sort();
    assert_eq!(
        ecs,
        [
            "debugger:busybox:busybox",
            "eph1::busybox:stable",
            "eph2::busybox:stable"
        ]
    );
    // Discovery lists the subresource.
    let resources = s.kubectl_ok(&["get", "--raw", "/api/v1"]);
    let v: serde_json::Value = serde_json::from_str(&resources).unwrap();
    let sub = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/ephemeralcontainers")
        .expect("pods/ephemeralcontainers in discovery");
    assert_eq!(sub["kind"], "Pod");
    assert_eq!(sub["verbs"], json!(["get", "patch", "update"]));
}
