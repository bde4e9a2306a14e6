//! The details clients compare against Kubernetes: `/version/`, the bytes of a response (key
//! order, the final newline), `status` always written, and field selectors over unset fields.
//! Checked with curl where bytes matter, and with kubectl and kube-rs.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, ListParams, PostParams};
use support::{assert_success, ApiServer};

const WEB: &str = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},
    "spec":{"selector":{"app":"web"},"ports":[{"port":80}]}}"#;

/// The raw lines of a watch of `collection` (its query, if any, included) that ends after a second.
fn watch_for_a_second(s: &ApiServer, collection: &str) -> String {
    let sep = if collection.contains('?') { '&' } else { '?' };
    let (code, body) = s.curl_auth(
        &[],
        &format!("{collection}{sep}watch=true&timeoutSeconds=1"),
    );
    assert_eq!(code, 200, "{body}");
    body
}

/// `GET /version/` is served as `/version` (go-restful ignores the trailing slash), indented
/// as kube-apiserver's `WriteRawJSON` writes it; the health checks' own paths answer "ok".
#[test]
fn version_with_slash_and_health_check_paths() {
    let s = ApiServer::start();
    for path in ["/version", "/version/"] {
        let (code, body) = s.curl(&[], path);
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            body.starts_with("{\n  \"major\": \"1\",\n  \"minor\": \""),
            "{path}: {body}"
        );
        assert!(body.ends_with("\"\n}"), "no final newline: {body:?}");
    }
    for path in ["/healthz", "/healthz/ping", "/livez/ping", "/readyz/ping"] {
        let (code, body) = s.curl_auth(&[], path);
        assert_eq!((code, body.as_str()), (200, "ok"), "{path}");
    }
    // Kubernetes registers `/healthz` and `/healthz/<check>` only.
    let (code, _) = s.curl_auth(&[], "/healthz/");
    assert_eq!(code, 404);
}

/// Objects come back as Go writes them: `kind`, `apiVersion`, `metadata` (`name`,
/// `namespace`, `uid`, ...), `spec`, `status`, and a newline after the body; lists, errors and
/// watch events too.
#[test]
fn json_key_order_and_final_newline() {
    let s = ApiServer::start();
    assert_success(&s.kubectl_stdin(&["create", "-f", "-"], WEB));

    let (code, body) = s.curl_auth(&[], "/api/v1/namespaces/default/services/web");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.starts_with(
            r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"default","uid":""#
        ),
        "{body}"
    );
    assert!(
        body.ends_with("\"status\":{\"loadBalancer\":{}}}\n"),
        "{body:?}"
    );
    let spec = body.find(r#","spec":{"#).expect("spec");
    let meta_rv = body
        .find(r#","resourceVersion":""#)
        .expect("resourceVersion");
    let created = body
        .find(r#","creationTimestamp":""#)
        .expect("creationTimestamp");
    assert!(meta_rv < created && created < spec, "{body}");

    for path in [
        "/api/v1/namespaces/default/services",
        "/api/v1/namespaces/default/services?limit=1",
    ] {
        let (code, body) = s.curl_auth(&[], path);
        assert_eq!(code, 200, "{body}");
        assert!(
            body.starts_with(r#"{"kind":"ServiceList","apiVersion":"v1","metadata":{"#),
            "{body}"
        );
        assert!(
            body.contains(r#""items":[{"kind":"Service","apiVersion":"v1","metadata":{"name":"#),
            "{body}"
        );
        assert!(body.ends_with("}]}\n"), "{body:?}");
    }

    let (code, body) = s.curl_auth(&[], "/api/v1/namespaces/default/services/nope");
    assert_eq!(code, 404);
    assert!(
        body.starts_with(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \"nope\" not found","reason":"NotFound","details":{"#
        ),
        "{body}"
    );
    assert!(body.ends_with(",\"code\":404}\n"), "{body:?}");

    let body = watch_for_a_second(
        &s,
        "/api/v1/namespaces/default/services?fieldSelector=metadata.name%3Dweb",
    );
    assert!(
        body.starts_with(
            r#"{"type":"ADDED","object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"web","#
        ),
        "{body}"
    );
    assert!(body.contains(r#""status":{"loadBalancer":{}}}}"#), "{body}");
    assert!(body.ends_with("}\n"), "{body:?}");

    // Table rows embed objects in the same order.
    let (_, body) = s.curl_auth(
        &["-H", "Accept: application/json;as=Table;v=v1;g=meta.k8s.io"],
        "/api/v1/namespaces/default/services?includeObject=Object&fieldSelector=metadata.name%3Dweb",
    );
    assert!(
        body.starts_with(r#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"#),
        "{body}"
    );
    assert!(
        body.contains(r#""object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"web""#),
        "{body}"
    );
}

/// `status` is always written, as Go writes a struct field: `{"loadBalancer":{}}` for a
/// Service, `{}` for a Deployment, `{"replicas":0}` for a ReplicaSet; on create, get, list.
#[test]
fn status_is_always_written() {
    let s = ApiServer::start();
    let out = s.kubectl_stdin(&["create", "-f", "-", "-o", "json"], WEB);
    assert_success(&out);
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["status"], serde_json::json!({"loadBalancer": {}}));

    s.kubectl_ok(&[
        "create",
        "deployment",
        "app",
        "--image=registry.k8s.io/pause:3.10",
    ]);
    let (_, body) = s.curl_auth(&[], "/apis/apps/v1/namespaces/default/deployments/app");
    assert!(body.contains(r#""status":{}}"#), "{body}");
    assert!(
        body.contains(
            r#""template":{"metadata":{"creationTimestamp":null,"labels":{"app":"app"}}"#
        ),
        "{body}"
    );
    let (_, body) = s.curl_auth(&[], "/apis/apps/v1/deployments");
    assert!(body.contains(r#""status":{}}]}"#), "{body}");

    let rs = r#"{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"rs"},
        "spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
        "spec":{"containers":[{"name":"c","image":"registry.k8s.io/pause:3.10"}]}}}}"#;
    assert_success(&s.kubectl_stdin(&["create", "-f", "-"], rs));
    let (_, body) = s.curl_auth(&[], "/apis/apps/v1/namespaces/default/replicasets/rs");
    assert!(body.ends_with("\"status\":{\"replicas\":0}}\n"), "{body:?}");

    // A status update that leaves status out leaves Go's zero value.
    let (code, body) = s.curl_auth(
        &[
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/merge-patch+json",
            "-d",
            r#"{"status":null}"#,
        ],
        "/api/v1/namespaces/default/services/web/status",
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""status":{"loadBalancer":{}}"#), "{body}");
}

/// kube-rs sees the same: a created Service's and Deployment's `status` is there.
#[tokio::test]
async fn kube_rs_gets_status_on_create() {
    let s = ApiServer::start();
    let client = s.client().await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_str(WEB).unwrap();
    let created = svcs.create(&PostParams::default(), &svc).await.unwrap();
    let lb = created.status.and_then(|st| st.load_balancer);
    assert_eq!(lb, Some(Default::default()));

    let deps: Api<Deployment> = Api::namespaced(client, "default");
    let dep: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app"},
        "spec": {"selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}
    }))
    .unwrap();
    let created = deps.create(&PostParams::default(), &dep).await.unwrap();
    assert_eq!(created.status, Some(Default::default()));
    let got = deps.get("app").await.unwrap();
    assert_eq!(got.status, Some(Default::default()));
}

/// An unset boolean field compares as `false`, as Kubernetes' field label conversion formats
/// the Go zero value: a new Node matches `spec.unschedulable==false` (kube-rs's cordon test), a
/// pod without `hostNetwork` matches `spec.hostNetwork=false`.
#[tokio::test]
async fn field_selectors_see_unset_booleans_as_false() {
    let s = ApiServer::start();
    let node = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"}}"#;
    assert_success(&s.kubectl_stdin(&["create", "-f", "-"], node));
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
        "spec":{"containers":[{"name":"c","image":"registry.k8s.io/pause:3.10"}]}}"#;
    assert_success(&s.kubectl_stdin(&["create", "-f", "-"], pod));

    let names = |args: &[&str]| s.kubectl_ok(args).trim().to_string();
    assert_eq!(
        names(&[
            "get",
            "nodes",
            "--field-selector",
            "spec.unschedulable==false",
            "-o",
            "name"
        ]),
        "node/n1"
    );
    assert_eq!(
        names(&[
            "get",
            "nodes",
            "--field-selector",
            "spec.unschedulable=true",
            "-o",
            "name"
        ]),
        ""
    );
    assert_eq!(
        names(&[
            "get",
            "pods",
            "--field-selector",
            "spec.hostNetwork=false",
            "-o",
            "name"
        ]),
        "pod/p"
    );
    assert_eq!(
        names(&[
            "get",
            "pods",
            "--field-selector",
            "spec.hostNetwork!=false",
            "-o",
            "name"
        ]),
        ""
    );

    let nodes: Api<Node> = Api::all(s.client().await);
    let schedulable = ListParams::default().fields("spec.unschedulable==false");
    let listed = nodes.list(&schedulable).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    s.kubectl_ok(&["cordon", "n1"]);
    assert!(nodes.list(&schedulable).await.unwrap().items.is_empty());
    s.kubectl_ok(&["uncordon", "n1"]);
    assert_eq!(nodes.list(&schedulable).await.unwrap().items.len(), 1);
}

/// events.k8s.io/v1 Events are core/v1 Events seen through the events API, as Kubernetes
/// serves them: kube-runtime's event Recorder creates one and then patches its `series`; both
/// APIs show the same objects with their own field names.
#[tokio::test]
async fn kube_runtime_recorder_writes_events_k8s_io_v1() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    use kube::runtime::events::{Event as Publish, EventType, Recorder, Reporter};
    use kube::Resource;

    let s = ApiServer::start();
    let client = s.client().await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let kubernetes = svcs.get("kubernetes").await.unwrap();
    let reporter = Reporter {
        controller: "svcnet-test".into(),
        instance: Some("svcnet-test-1".into()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let event = Publish {
        type_: EventType::Normal,
        reason: "Checked".into(),
        note: Some("looked at kubernetes".into()),
        action: "Check".into(),
        secondary: None,
    };
    let reference = kubernetes.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = events.list(&Default::default()).await.unwrap();
    let found = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Checked"))
        .expect("the event, through events.k8s.io/v1");
    assert_eq!(found.note.as_deref(), Some("looked at kubernetes"));
    assert_eq!(found.reporting_controller.as_deref(), Some("svcnet-test"));
    assert_eq!(
        found.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("kubernetes")
    );
    assert!(found.series.is_none());

    // The same object through core/v1: message, involvedObject, reportingComponent.
    let name = found.metadata.name.clone().unwrap();
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let c = core.get(&name).await.unwrap();
    assert_eq!(c.message.as_deref(), Some("looked at kubernetes"));
    assert_eq!(c.involved_object.name.as_deref(), Some("kubernetes"));
    assert_eq!(c.reporting_component.as_deref(), Some("svcnet-test"));
    assert_eq!(c.action.as_deref(), Some("Check"));

    // A repeat is a merge patch of the series.
    recorder.publish(&event, &reference).await.unwrap();
    let again = events.get(&name).await.unwrap();
    assert_eq!(again.series.map(|s| s.count), Some(2));
    let series = core.get(&name).await.unwrap().series;
    assert_eq!(series.and_then(|s| s.count), Some(2));

    // kubectl sees it both ways.
    let out = s.kubectl_ok(&[
        "get",
        "events.v1.events.k8s.io",
        &name,
        "-o",
        "jsonpath={.note}",
    ]);
    assert_eq!(out, "looked at kubernetes");
    let out = s.kubectl_ok(&["get", "events", &name, "-o", "jsonpath={.message}"]);
    assert_eq!(out, "looked at kubernetes");

    // Discovery lists the group; a watch through it sees the events API's fields.
    let (_, body) = s.curl_auth(&[], "/apis/events.k8s.io/v1");
    assert!(body.contains(r#""name":"events""#), "{body}");
    let body = watch_for_a_second(&s, "/apis/events.k8s.io/v1/namespaces/default/events");
    assert!(
        body.starts_with(
            r#"{"type":"ADDED","object":{"kind":"Event","apiVersion":"events.k8s.io/v1","metadata":{"name":"kubernetes."#
        ),
        "{body}"
    );
    assert!(body.contains(r#""note":"looked at kubernetes""#), "{body}");
    s.kubectl_ok(&["delete", "events.v1.events.k8s.io", &name]);
    assert!(core.get_opt(&name).await.unwrap().is_none());
}
