//! CustomResourceDefinitions with the real kubectl: a CRD with a schema, printer columns,
//! status and scale subresources, established (`kubectl wait --for condition=established`),
//! its kind served live (get by plural, singular and short name, `explain`), objects validated
//! with Kubernetes' messages, pruned and defaulted, and deleted with the CRD.

mod support;

use support::ApiServer;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: The schedule and what runs.
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
                description: The cron schedule.
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
              replicas:
                type: integer
                minimum: 0
                maximum: 10
                default: 1
          status:
            type: object
            properties:
              replicas:
                type: integer
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn apply(s: &ApiServer, yaml: &str) -> std::process::Output {
    s.kubectl_stdin(&["apply", "-f", "-"], yaml)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_crd_with_schema_columns_status_and_scale() {
    let s = ApiServer::start();
    let out = apply(&s, CRD);
    assert!(out.status.success(), "{}", stderr(&out));
    s.kubectl_ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/crontabs.stable.example.com",
    ]);
    let names = s.jsonpath(
        "crd",
        "crontabs.stable.example.com",
        "{.status.acceptedNames.kind} {.status.acceptedNames.listKind} {.status.storedVersions}",
    );
    assert_eq!(names, r#"CronTab CronTabList ["v1"]"#);

    // An unknown field: refused with kubectl's strict field validation, pruned without it.
    let with_unknown = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: my-cron}\nspec: {cronSpec: '* * * * */5', image: my-image, bogus: 1}\n";
    let err = stderr(&apply(&s, with_unknown));
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.bogus""#),
        "{err}"
    );
    let out = s.kubectl_stdin(&["apply", "--validate=false", "-f", "-"], with_unknown);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "crontab.stable.example.com/my-cron created"
    );
    assert_eq!(s.jsonpath("crontab", "my-cron", "{.spec.replicas}"), "1");
    assert_eq!(s.jsonpath("ct", "my-cron", "{.spec.bogus}"), "");

    // Invalid objects, with Kubernetes' messages.
    let out = apply(
        &s,
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {cronSpec: nope, replicas: many}\n",
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#),
        "{err}"
    );
    assert!(err.contains(r#""bad" is invalid"#), "{err}");
    let out = apply(
        &s,
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {replicas: 11}\n",
    );
    let err = stderr(&out);
    assert!(err.contains("spec.cronSpec: Required value"), "{err}");
    assert!(
        err.contains("spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"),
        "{err}"
    );

    // Printer columns, by plural, singular, short name and category.
    for name in ["crontabs", "crontab", "ct", "all"] {
        let out = s.kubectl_ok(&["get", name]);
        assert!(out.contains("NAME"), "{name}: {out}");
        assert!(out.contains("SPEC"), "{name}: {out}");
        assert!(out.contains("REPLICAS"), "{name}: {out}");
        assert!(out.contains("my-cron"), "{name}: {out}");
        assert!(out.contains("* * * * */5"), "{name}: {out}");
    }

    // The other served version: the same object, its apiVersion the version asked for.
    let v1beta1 = s.kubectl_ok(&[
        "get",
        "crontabs.v1beta1.stable.example.com",
        "my-cron",
        "-o",
        "jsonpath={.apiVersion} {.spec.image}",
    ]);
    assert_eq!(v1beta1, "stable.example.com/v1beta1 my-image");

    // explain reads the CRD's schema from OpenAPI v3.
    let explain = s.kubectl_ok(&["explain", "crontab.spec"]);
    assert!(explain.contains("The schedule and what runs."), "{explain}");
    assert!(
        explain.contains("cronSpec\t<string> -required-"),
        "{explain}"
    );
    assert!(explain.contains("replicas\t<integer>"), "{explain}");

    // Status is written only through the status subresource.
    s.kubectl_ok(&[
        "patch",
        "crontab",
        "my-cron",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":5},"spec":{"image":"other"}}"#,
    ]);
    assert_eq!(
        s.jsonpath("crontab", "my-cron", "{.status.replicas}/{.spec.image}"),
        "/other"
    );
    s.kubectl_ok(&[
        "patch",
        "crontab",
        "my-cron",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2},"spec":{"image":"ignored"}}"#,
    ]);
    assert_eq!(
        s.jsonpath("crontab", "my-cron", "{.status.replicas}/{.spec.image}"),
        "2/other"
    );

    // Scale through the scale subresource.
    let out = s.kubectl_ok(&["scale", "crontab/my-cron", "--replicas=3"]);
    assert_eq!(out.trim(), "crontab.stable.example.com/my-cron scaled");
    assert_eq!(s.jsonpath("crontab", "my-cron", "{.spec.replicas}"), "3");

    // Deleting the CRD deletes its objects, and the kind is no longer served.
    s.kubectl_ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--wait=true",
    ]);
    s.kubectl_err(&["get", "crontabs.stable.example.com"]);
    let (code, _) = s.curl_auth(
        &[],
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
    );
    assert_eq!(code, 404);

    // Created again, it is empty.
    let out = apply(&s, CRD);
    assert!(out.status.success(), "{}", stderr(&out));
    s.kubectl_ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/crontabs.stable.example.com",
    ]);
    let out = s.kubectl_ok(&["get", "crontabs", "-o", "name"]);
    assert_eq!(out.trim(), "");
}

#[test]
fn invalid_crds_are_refused_with_kubernetes_messages() {
    let s = ApiServer::start();
    let bad = CRD
        .replace(
            "name: crontabs.stable.example.com",
            "name: crontab.stable.example.com",
        )
        .replace("scope: Namespaced", "scope: Everywhere");
    let out = apply(&s, &bad);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(r#"metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group"#),
        "{err}"
    );
    assert!(
        err.contains(r#"spec.scope: Unsupported value: "Everywhere": supported values: "Cluster", "Namespaced""#),
        "{err}"
    );
    let two_storage = CRD.replace("storage: false", "storage: true");
    let err = stderr(&apply(&s, &two_storage));
    assert!(
        err.contains("spec.versions: Invalid value: [\"v1\", \"v1beta1\"]: must have exactly one version marked as storage version"),
        "{err}"
    );
}

/// A cluster-scoped kind, served while a namespaced one of another CRD is too, in discovery.
#[test]
fn cluster_scoped_kinds_and_discovery() {
    let s = ApiServer::start();
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: pools.net.example.org}
spec:
  group: net.example.org
  scope: Cluster
  names: {plural: pools, kind: Pool}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              addresses: {type: array, items: {type: string}, maxItems: 2}
"#;
    let out = apply(&s, crd);
    assert!(out.status.success(), "{}", stderr(&out));
    s.kubectl_ok(&[
        "wait",
        "--for=condition=established",
        "--timeout=60s",
        "crd/pools.net.example.org",
    ]);
    let resources = s.kubectl_ok(&["api-resources", "--api-group=net.example.org"]);
    assert!(resources.contains("pools"), "{resources}");
    assert!(
        resources.contains("net.example.org/v1alpha1"),
        "{resources}"
    );
    assert!(resources.contains("false"), "{resources}");
    let out = apply(
        &s,
        "apiVersion: net.example.org/v1alpha1\nkind: Pool\nmetadata: {name: p1}\nspec: {addresses: [10.0.0.0/24]}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.kubectl_ok(&["get", "pools"]);
    assert!(out.starts_with("NAME   AGE\np1     "), "{out}");
    let err = stderr(&apply(
        &s,
        "apiVersion: net.example.org/v1alpha1\nkind: Pool\nmetadata: {name: p2}\nspec: {addresses: [a, b, c]}\n",
    ));
    assert!(
        err.contains("spec.addresses: Too many: 3: must have at most 2 items"),
        "{err}"
    );
    s.kubectl_ok(&["delete", "crd", "pools.net.example.org"]);
}

mod kube_rs {
    //! An operator's view: a `#[derive(CustomResource)]` type (kube's `derive`), its CRD
    //! created from the type, waited for, then objects created, listed, watched, and their
    //! status written through the status subresource.

    use std::time::Duration;

    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
    use kube::runtime::wait::{await_condition, conditions};
    use kube::runtime::{watcher, WatchStreamExt};
    use kube::CustomResourceExt;
    use kube_derive::CustomResource;
    use serde::{Deserialize, Serialize};

    use super::support::ApiServer;

    // The schema is written below rather than derived: deriving it needs kube-core's `schema`
    // feature, which would rebuild every crate on kube for the tests.
    #[derive(CustomResource, Deserialize, Serialize, Clone, Debug)]
    #[kube(
        schema = "disabled",
        group = "kube.rs.example",
        version = "v1",
        kind = "Document",
        namespaced,
        status = "DocumentStatus",
        shortname = "doc",
        printcolumn = r#"{"name":"Title", "type":"string", "jsonPath":".spec.title"}"#
    )]
    pub struct DocumentSpec {
        title: String,
        #[serde(default)]
        hidden: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pages: Option<u32>,
    }

    #[derive(Deserialize, Serialize, Clone, Debug, Default)]
    pub struct DocumentStatus {
        published: bool,
    }

    #[tokio::test]
    async fn a_derived_custom_resource_created_listed_watched_with_status() {
        let s = ApiServer::start();
        let client = s.client().await;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let mut crd = Document::crd();
        crd.spec.versions[0].schema = Some(serde_json::from_value(serde_json::json!({
            "openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["title"], "properties": {
                    "title": {"type": "string"},
                    "hidden": {"type": "boolean", "default": false},
                    "pages": {"type": "integer", "format": "int32", "minimum": 0, "nullable": true}}},
                "status": {"type": "object", "nullable": true, "properties": {
                    "published": {"type": "boolean"}}}}}
        })).unwrap());
        crds.create(&PostParams::default(), &crd).await.unwrap();
        let established = await_condition(
            crds.clone(),
            "documents.kube.rs.example",
            conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .expect("established in time")
            .unwrap();

        let docs: Api<Document> = Api::namespaced(client, "default");
        let events = watcher(docs.clone(), watcher::Config::default()).applied_objects();
        futures::pin_mut!(events);

        let mut doc = Document::new(
            "readme",
            DocumentSpec {
                title: "Read me".into(),
                hidden: false,
                pages: Some(3),
            },
        );
        doc.status = Some(DocumentStatus { published: true });
        let created = docs.create(&PostParams::default(), &doc).await.unwrap();
        assert_eq!(created.spec.title, "Read me");
        // Status is the status subresource's: dropped on create.
        assert!(created.status.is_none_or(|s| !s.published));

        let seen = tokio::time::timeout(Duration::from_secs(30), events.try_next())
            .await
            .expect("a watch event")
            .unwrap()
            .unwrap();
        assert_eq!(seen.metadata.name.as_deref(), Some("readme"));

        let list = docs.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        assert_eq!(list.items[0].spec.pages, Some(3));

        let patch = serde_json::json!({"status": {"published": true}});
        let patched = docs
            .patch_status("readme", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        assert!(patched.status.unwrap().published);
        let status = docs.get_status("readme").await.unwrap();
        assert!(status.status.unwrap().published);

        // The watch sees the status change too.
        let next = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let d = events.try_next().await.unwrap().unwrap();
                if d.status.as_ref().is_some_and(|s| s.published) {
                    return d;
                }
            }
        })
        .await
        .expect("the status change watched");
        assert_eq!(next.spec.title, "Read me");

        // Server-side apply of the derived type, with its own manager.
        let applied = serde_json::json!({
            "apiVersion": "kube.rs.example/v1", "kind": "Document",
            "metadata": {"name": "applied"}, "spec": {"title": "Applied"}
        });
        let out = docs
            .patch(
                "applied",
                &PatchParams::apply("docs-operator"),
                &Patch::Apply(&applied),
            )
            .await
            .unwrap();
        assert_eq!(out.spec.title, "Applied");
        let managers: Vec<String> = out
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert_eq!(managers, ["docs-operator"]);
        let _ = events.next();
    }
}
