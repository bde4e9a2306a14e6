//! The Deployment, ReplicaSet, garbage-collector and scheduler controllers against a running
//! API server, driven by the real kubectl: names, labels and status as Kubernetes has them,
//! scaling, replacement, rolling updates with `kubectl rollout status`, cascading deletion in
//! its three flavours, pods bound to nodes once nodes exist, and ReplicationControllers (the
//! ReplicaSet controller's code, as upstream's replication manager).

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, ListParams};
use support::{fake_kubelet, seed, wait_for, ApiServer};
use svcnet_controllers::util::pod_condition;

const T: Duration = Duration::from_secs(30);

async fn pods(client: &kube::Client, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn replica_sets(client: &kube::Client) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// `kubectl delete` one of the pods `selector` picks; wait for `n` pods again, without it.
async fn delete_a_pod_see_it_replaced(
    s: &ApiServer,
    client: &kube::Client,
    selector: &str,
    n: usize,
) {
    let victim = pods(client, selector).await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    s.kubectl_ok(&["delete", "pod", &victim]);
    wait_for(T, "a replacement", || async {
        let ps = pods(client, selector).await;
        (ps.len() == n
            && ps
                .iter()
                .all(|p| p.metadata.name.as_deref() != Some(&victim)))
        .then_some(())
    })
    .await;
}

fn alphabet(s: &str) -> bool {
    s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_replicasets_pods_scale_replace_and_roll() {
    let mut s = ApiServer::start();
    s.start_controllers(&[]);
    let client = s.client().await;
    let kubelet = fake_kubelet(client.clone());
    s.kubectl_ok(&["apply", "-f", seed("Service-Env.yaml").to_str().unwrap()]);
    let out = s.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/service-env",
        "--timeout=30s",
    ]);
    assert!(
        out.contains("deployment \"service-env\" successfully rolled out"),
        "{out}"
    );

    // Deployment → ReplicaSet `service-env-<hash>` → pods `service-env-<hash>-<5>`.
    let rss = replica_sets(&client).await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let rs_name = rs.metadata.name.clone().unwrap();
    let hash = rs_name
        .strip_prefix("service-env-")
        .expect("rs named after the deployment");
    assert!(hash.len() >= 6 && alphabet(hash), "{rs_name}");
    let rs_labels = rs.metadata.labels.clone().unwrap();
    assert_eq!(rs_labels["pod-template-hash"], hash);
    assert_eq!(
        rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Deployment", "service-env")
    );
    let ps = pods(&client, "app=service-env").await;
    assert_eq!(ps.len(), 3);
    for p in &ps {
        let name = p.metadata.name.clone().unwrap();
        let suffix = name
            .strip_prefix(&format!("{rs_name}-"))
            .expect("pod named after its replica set");
        assert!(suffix.len() == 5 && alphabet(suffix), "{name}");
        let l = p.metadata.labels.as_ref().unwrap();
        assert_eq!(
            (l["app"].as_str(), l["pod-template-hash"].as_str()),
            ("service-env", hash)
        );
        assert_eq!(
            p.metadata.owner_references.as_ref().unwrap()[0].name,
            rs_name
        );
        assert!(
            p.spec.as_ref().unwrap().node_name.is_none(),
            "no node exists: unscheduled"
        );
    }

    // Status as kubectl shows it.
    let t = support::table(&s.kubectl_ok(&["get", "deployment", "service-env"]));
    assert_eq!(
        (
            t[0]["READY"].as_str(),
            t[0]["UP-TO-DATE"].as_str(),
            t[0]["AVAILABLE"].as_str()
        ),
        ("3/3", "3", "3")
    );
    let d: Deployment = Api::namespaced(client.clone(), "default")
        .get("service-env")
        .await
        .unwrap();
    let st = d.status.unwrap();
    assert_eq!(
        (
            st.replicas,
            st.ready_replicas,
            st.available_replicas,
            st.updated_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    let conds = st.conditions.unwrap();
    let cond = |t: &str| conds.iter().find(|c| c.type_ == t).unwrap().clone();
    assert_eq!(
        (
            cond("Available").status.as_str(),
            cond("Available").reason.as_deref()
        ),
        ("True", Some("MinimumReplicasAvailable"))
    );
    assert_eq!(
        cond("Progressing").reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    let described = s.kubectl_ok(&["describe", "deployment", "service-env"]);
    assert!(
        described.contains(&format!("Scaled up replica set {rs_name} from 0 to 3")),
        "{described}"
    );

    // kubectl scale, both ways.
    s.kubectl_ok(&["scale", "deployment", "service-env", "--replicas=5"]);
    s.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/service-env",
        "--timeout=30s",
    ]);
    assert_eq!(pods(&client, "app=service-env").await.len(), 5);
    s.kubectl_ok(&["scale", "deployment", "service-env", "--replicas=2"]);
    wait_for(T, "2 pods", || async {
        (pods(&client, "app=service-env").await.len() == 2).then_some(())
    })
    .await;
    let t = support::table(&s.kubectl_ok(&["get", "rs"]));
    assert_eq!(
        (t[0]["DESIRED"].as_str(), t[0]["CURRENT"].as_str()),
        ("2", "2")
    );

    // A deleted pod is replaced.
    delete_a_pod_see_it_replaced(&s, &client, "app=service-env", 2).await;

    // Rolling update: a new ReplicaSet, the old one scaled to zero, revision 2.
    s.kubectl_ok(&["scale", "deployment", "service-env", "--replicas=4"]);
    s.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/service-env",
        "--timeout=30s",
    ]);
    s.kubectl_ok(&[
        "set",
        "image",
        "deployment/service-env",
        "nginx=docker.io/library/nginx:1.25",
    ]);
    let out = s.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/service-env",
        "--timeout=30s",
    ]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let rss = replica_sets(&client).await;
    assert_eq!(rss.len(), 2);
    let new = rss
        .iter()
        .find(|r| r.metadata.name.as_deref() != Some(&rs_name))
        .unwrap();
    let old = rss
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(&rs_name))
        .unwrap();
    let brief = |r: &ReplicaSet| {
        (
            r.metadata.name.clone(),
            r.spec.as_ref().unwrap().replicas,
            r.metadata.annotations.clone(),
        )
    };
    assert_eq!(
        new.spec.as_ref().unwrap().replicas,
        Some(4),
        "{:?}\n{:?}",
        brief(new),
        brief(old)
    );
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(
        new.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    let ps = pods(&client, "app=service-env").await;
    assert_eq!(ps.len(), 4);
    let new_hash = &new.metadata.labels.as_ref().unwrap()["pod-template-hash"];
    assert!(ps
        .iter()
        .all(|p| &p.metadata.labels.as_ref().unwrap()["pod-template-hash"] == new_hash));
    assert!(ps
        .iter()
        .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref()
            == Some("docker.io/library/nginx:1.25")));
    let d: Deployment = Api::namespaced(client.clone(), "default")
        .get("service-env")
        .await
        .unwrap();
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    let history = s.kubectl_ok(&["rollout", "history", "deployment/service-env"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    // The surge was bounded: 25% of 4 → at most one pod over, never below 3 available.
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=ScalingReplicaSet",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains(&format!("Scaled down replica set {rs_name} from 4 to 3")),
        "{events}"
    );

    // Back to the first template: the old ReplicaSet becomes the new one, revision 3.
    s.kubectl_ok(&["rollout", "undo", "deployment/service-env"]);
    s.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/service-env",
        "--timeout=30s",
    ]);
    let all: Vec<_> = replica_sets(&client).await.iter().map(brief).collect();
    assert_eq!(all.len(), 2, "undo reuses the first ReplicaSet: {all:?}");
    let rs: ReplicaSet = Api::namespaced(client.clone(), "default")
        .get(&rs_name)
        .await
        .unwrap();
    assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(
        rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );
    kubelet.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_deletion_background_orphan_foreground() {
    let mut s = ApiServer::start();
    s.start_controllers(&[]);
    let client = s.client().await;
    let kubelet = fake_kubelet(client.clone());
    let deploy = |name: &str| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: nginx}}]}}\n")
    };
    for name in ["bg", "orphan", "fg"] {
        let out = s.kubectl_stdin(&["apply", "-f", "-"], &deploy(name));
        assert!(out.status.success());
        s.kubectl_ok(&[
            "rollout",
            "status",
            &format!("deployment/{name}"),
            "--timeout=30s",
        ]);
    }

    // Background (kubectl's default): the ReplicaSet and its pods follow.
    s.kubectl_ok(&["delete", "deployment", "bg"]);
    wait_for(T, "bg's replica set and pods collected", || async {
        let rs = replica_sets(&client).await.into_iter().any(|r| {
            r.metadata
                .labels
                .unwrap_or_default()
                .get("app")
                .map(String::as_str)
                == Some("bg")
        });
        (!rs && pods(&client, "app=bg").await.is_empty()).then_some(())
    })
    .await;

    // Orphan: the ReplicaSet stays, without its ownerReference; its pods stay.
    s.kubectl_ok(&["delete", "deployment", "orphan", "--cascade=orphan"]);
    let orphaned = wait_for(T, "orphaned replica set", || async {
        let d: Option<Deployment> = Api::namespaced(client.clone(), "default")
            .get_opt("orphan")
            .await
            .ok()?;
        let rs = replica_sets(&client).await.into_iter().find(|r| {
            r.metadata
                .labels
                .clone()
                .unwrap_or_default()
                .get("app")
                .map(String::as_str)
                == Some("orphan")
        })?;
        (d.is_none()
            && rs
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default()
                .is_empty())
        .then_some(rs)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pods(&client, "app=orphan").await.len(),
        2,
        "an orphaned ReplicaSet keeps its pods"
    );
    assert!(Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .get_opt(orphaned.metadata.name.as_deref().unwrap())
        .await
        .unwrap()
        .is_some());

    // Foreground: kubectl waits until the dependents are gone, then the owner goes.
    s.kubectl_ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--timeout=30s",
    ]);
    assert!(
        pods(&client, "app=fg").await.is_empty(),
        "foreground deletion removed the pods first"
    );
    assert!(!replica_sets(&client).await.into_iter().any(|r| r
        .metadata
        .labels
        .unwrap_or_default()
        .get("app")
        .map(String::as_str)
        == Some("fg")));
    assert!(Api::<Deployment>::namespaced(client.clone(), "default")
        .get_opt("fg")
        .await
        .unwrap()
        .is_none());
    kubelet.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_pods_are_bound_to_ready_nodes_spread_by_count() {
    let mut s = ApiServer::start();
    s.start_controllers(&[]);
    let client = s.client().await;
    let deploy = |name: &str, n: u32| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {n}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: nginx}}]}}\n")
    };
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &deploy("early", 1));
    assert!(out.status.success());
    // No node yet: the pod stays pending, and says why.
    let p = wait_for(T, "an unschedulable pod", || async {
        pods(&client, "app=early").await.into_iter().find(|p| {
            pod_condition(p, "PodScheduled").is_some_and(|c| {
                c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
            })
        })
    })
    .await;
    assert!(p.spec.unwrap().node_name.is_none());
    // The Event is recorded after the pod's condition (the scheduler's event recorder runs
    // beside it), so it may come a moment later.
    let events = wait_for(T, "a FailedScheduling event", || async {
        let events = s.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=FailedScheduling",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert!(events.contains("0/0 nodes are available"), "{events}");

    // Two ready nodes and a not-ready one appear; the pending pod lands on the first ready one.
    for (name, ready) in [("node-a", "True"), ("node-b", "True"), ("node-c", "False")] {
        s.add_node(name, ready);
    }
    wait_for(T, "the early pod bound", || async {
        let ps = pods(&client, "app=early").await;
        ps.iter()
            .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-a"))
            .then_some(())
    })
    .await;

    // Four more spread by count over the ready nodes: node-b first (it has none), then evenly.
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &deploy("spread", 4));
    assert!(out.status.success());
    let nodes = wait_for(T, "all pods bound", || async {
        let ps = pods(&client, "app=spread").await;
        let nodes: Vec<String> = ps
            .iter()
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        (ps.len() == 4 && nodes.len() == 4).then_some(nodes)
    })
    .await;
    let on = |n: &str| nodes.iter().filter(|x| x.as_str() == n).count();
    assert_eq!(
        (on("node-a"), on("node-b"), on("node-c")),
        (2, 2, 0),
        "{nodes:?}"
    );
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Scheduled",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains("Successfully assigned default/spread-"),
        "{events}"
    );
}

/// A ReplicationController from a manifest, end to end with kubectl: defaulted selector and
/// labels, pods it owns, `kubectl get rc` columns (and `-o wide`), `kubectl scale rc`, a
/// deleted pod replaced, a strategic merge patch of the template, `kubectl explain`, and pods
/// collected when the RC is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controller_pods_scale_and_cascade() {
    let mut s = ApiServer::start();
    s.start_controllers(&[]);
    let client = s.client().await;
    let kubelet = fake_kubelet(client.clone());
    // No selector: it defaults to the template's labels, as do the RC's own labels.
    let manifest = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: web}\nspec:\n  replicas: 3\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: nginx, image: nginx}]}\n";
    let out = s.kubectl_stdin(&["apply", "-f", "-"], manifest);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "replicationcontroller/web created"
    );
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    let rc = rcs.get("web").await.unwrap();
    let uid = rc.metadata.uid.clone().unwrap();
    let spec = rc.spec.clone().unwrap();
    assert_eq!(spec.selector.unwrap()["app"], "web");
    assert_eq!(rc.metadata.labels.unwrap()["app"], "web");

    let ps = wait_for(T, "3 ready pods", || async {
        let ps = pods(&client, "app=web").await;
        let rc = rcs.get("web").await.ok()?;
        (ps.len() == 3 && rc.status?.ready_replicas == Some(3)).then_some(ps)
    })
    .await;
    for p in &ps {
        let name = p.metadata.name.clone().unwrap();
        assert!(
            name.strip_prefix("web-")
                .is_some_and(|x| x.len() == 5 && alphabet(x)),
            "{name}"
        );
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            (
                "v1",
                "ReplicationController",
                "web",
                uid.as_str(),
                Some(true)
            )
        );
    }

    // kubectl's columns, by the short name.
    let out = s.kubectl_ok(&["get", "rc"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    let t = support::table(&out);
    assert_eq!(
        (
            t[0]["NAME"].as_str(),
            t[0]["DESIRED"].as_str(),
            t[0]["CURRENT"].as_str(),
            t[0]["READY"].as_str()
        ),
        ("web", "3", "3", "3")
    );
    let wide = support::table(&s.kubectl_ok(&["get", "rc", "web", "-o", "wide"]));
    assert_eq!(
        (
            wide[0]["CONTAINERS"].as_str(),
            wide[0]["IMAGES"].as_str(),
            wide[0]["SELECTOR"].as_str()
        ),
        ("nginx", "nginx", "app=web")
    );
    assert!(s
        .kubectl_ok(&["get", "all"])
        .contains("replicationcontroller/web"));

    // kubectl scale, both ways (the scale subresource).
    let out = s.kubectl_ok(&["scale", "rc", "web", "--replicas=5"]);
    assert_eq!(out.trim(), "replicationcontroller/web scaled");
    assert_eq!(
        s.kubectl_ok(&["get", "rc", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    wait_for(T, "5 pods", || async {
        (pods(&client, "app=web").await.len() == 5).then_some(())
    })
    .await;
    s.kubectl_ok(&["scale", "rc", "web", "--replicas=2"]);
    wait_for(T, "2 pods, status 2", || async {
        let n = pods(&client, "app=web")
            .await
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count();
        let rc = rcs.get("web").await.ok()?;
        (n == 2 && rc.status?.replicas == 2).then_some(())
    })
    .await;

    // A deleted pod is replaced.
    delete_a_pod_see_it_replaced(&s, &client, "app=web", 2).await;

    // A strategic merge patch (kubectl patch's default) and kubectl explain.
    s.kubectl_ok(&[
        "patch",
        "rc",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#,
    ]);
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "rc",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].image}"
        ]),
        "nginx:1.27"
    );
    let explained = s.kubectl_ok(&["explain", "rc.spec.selector"]);
    assert!(
        explained.contains("KIND:       ReplicationController"),
        "{explained}"
    );

    // Kubernetes' validation messages.
    let bad = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: bad}\nspec:\n  selector: {app: other}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: nginx, image: nginx}]}\n";
    let out = s.kubectl_stdin(&["create", "-f", "-"], bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"The ReplicationController "bad" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#),
        "{err}"
    );

    // Deleting the RC (background cascade) collects its pods.
    s.kubectl_ok(&["delete", "rc", "web"]);
    wait_for(T, "web's pods collected", || async {
        pods(&client, "app=web").await.is_empty().then_some(())
    })
    .await;
    kubelet.abort();
}
