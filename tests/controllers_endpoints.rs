//! The EndpointSlice and Endpoints controllers against a running API server, driven by kubectl
//! and kube-rs: the seed Deployment and Services, scaling, relabelling, readiness, deletion,
//! named target ports, headless hostnames, selectorless Services.
//!
//! No node runs here: [`support::fake_kubelet`] gives each pod an IP and readiness through its
//! status, as the node agent will.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use support::{fake_kubelet, seed, set_pod_status, wait_for, ApiServer};

const T: Duration = Duration::from_secs(30);

fn start() -> ApiServer {
    let mut s = ApiServer::start();
    s.start_controllers(&[]);
    s
}

/// Ready and not-ready addresses with their ports, from the Endpoints object.
#[derive(Debug, Default, PartialEq)]
struct Eps {
    ready: BTreeSet<String>,
    not_ready: BTreeSet<String>,
}

async fn endpoints(client: &kube::Client, name: &str) -> Option<Eps> {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ep = api.get_opt(name).await.ok()??;
    let mut out = Eps::default();
    for s in ep.subsets.unwrap_or_default() {
        let ports: Vec<i32> = s.ports.unwrap_or_default().iter().map(|p| p.port).collect();
        for p in &ports {
            for a in s.addresses.iter().flatten() {
                out.ready.insert(format!("{}:{p}", a.ip));
            }
            for a in s.not_ready_addresses.iter().flatten() {
                out.not_ready.insert(format!("{}:{p}", a.ip));
            }
        }
    }
    Some(out)
}

/// The same, from the Service's EndpointSlices (ready = conditions.ready).
async fn slices(client: &kube::Client, svc: &str) -> (Vec<EndpointSlice>, Eps) {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
    let list = api.list(&lp).await.map(|l| l.items).unwrap_or_default();
    let mut out = Eps::default();
    for s in &list {
        for p in s.ports.iter().flatten() {
            for e in &s.endpoints {
                let a = format!("{}:{}", e.addresses[0], p.port.unwrap_or(0));
                if e.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
                    out.ready.insert(a);
                } else {
                    out.not_ready.insert(a);
                }
            }
        }
    }
    (list, out)
}

/// Running pods of app=service-env, by name → IP (once every one has an IP).
async fn pod_ips(client: &kube::Client, selector: &str, n: usize) -> Option<Vec<(String, String)>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pods = api
        .list(&ListParams::default().labels(selector))
        .await
        .ok()?;
    let v: Vec<(String, String)> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| Some((p.metadata.name.clone()?, p.status.as_ref()?.pod_ip.clone()?)))
        .collect();
    (v.len() == n && pods.items.len() == n).then_some(v)
}

fn set(addrs: &[&str]) -> BTreeSet<String> {
    addrs.iter().map(|a| a.to_string()).collect()
}

/// Wait until Endpoints and EndpointSlices of `svc` both show exactly `ready` / `not_ready`.
async fn expect_endpoints(
    client: &kube::Client,
    svc: &str,
    ready: &BTreeSet<String>,
    not_ready: &BTreeSet<String>,
) {
    let want = Eps {
        ready: ready.clone(),
        not_ready: not_ready.clone(),
    };
    let mut last = (None, None);
    let ok = tokio::time::timeout(T, async {
        loop {
            let e = endpoints(client, svc).await;
            let (_, s) = slices(client, svc).await;
            if e.as_ref() == Some(&want) && s == want {
                return;
            }
            last = (e, Some(s));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        ok.is_ok(),
        "{svc}: wanted {want:?}, last saw Endpoints {:?} / slices {:?}",
        last.0,
        last.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_deployment_and_services_through_scale_relabel_readiness_and_deletion() {
    let s = start();
    let client = s.client().await;
    let kubelet = fake_kubelet(client.clone());
    for f in [
        "Service-Env.yaml",
        "Service-Clusterip.yaml",
        "Service-Headliness.yaml",
    ] {
        s.kubectl_ok(&["apply", "-f", seed(f).to_str().unwrap()]);
    }
    let sel = "app=service-env";
    let pods = wait_for(T, "3 pods with IPs", || pod_ips(&client, sel, 3)).await;
    let ready: BTreeSet<String> = pods.iter().map(|(_, ip)| format!("{ip}:80")).collect();
    expect_endpoints(&client, "service-clusterip", &ready, &BTreeSet::new()).await;
    expect_endpoints(&client, "service-headliness", &ready, &BTreeSet::new()).await;

    // The slices carry what kube-proxy and DNS read.
    let (list, _) = slices(&client, "service-clusterip").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let slice = &list[0];
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Service", "service-clusterip", Some(true))
    );
    for e in &slice.endpoints {
        let r = e.target_ref.as_ref().unwrap();
        assert_eq!(r.kind.as_deref(), Some("Pod"));
        assert!(pods.iter().any(|(n, _)| Some(n) == r.name.as_ref()));
        let c = e.conditions.as_ref().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(true), Some(true), Some(false))
        );
    }
    let (hl, _) = slices(&client, "service-headliness").await;
    assert_eq!(
        hl[0]
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );

    // kubectl describe shows them as the seeds do: `Endpoints: a:80,b:80,c:80`.
    let out = s.kubectl_ok(&["describe", "svc", "service-clusterip"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .expect("Endpoints line");
    let shown: BTreeSet<String> = line
        .trim_start_matches("Endpoints:")
        .trim()
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(shown, ready, "{out}");

    // Scale to 5, then to 1.
    s.kubectl_ok(&["scale", "deployment", "service-env", "--replicas=5"]);
    let pods5 = wait_for(T, "5 pods with IPs", || pod_ips(&client, sel, 5)).await;
    let ready5: BTreeSet<String> = pods5.iter().map(|(_, ip)| format!("{ip}:80")).collect();
    assert!(
        ready.is_subset(&ready5),
        "scaling up keeps the pods there were"
    );
    expect_endpoints(&client, "service-clusterip", &ready5, &BTreeSet::new()).await;
    s.kubectl_ok(&["scale", "deployment", "service-env", "--replicas=1"]);
    let pods1 = wait_for(T, "1 pod", || pod_ips(&client, sel, 1)).await;
    expect_endpoints(
        &client,
        "service-clusterip",
        &set(&[&format!("{}:80", pods1[0].1)]),
        &BTreeSet::new(),
    )
    .await;
    s.kubectl_ok(&["scale", "deployment", "service-env", "--replicas=3"]);
    let pods = wait_for(T, "3 pods again", || pod_ips(&client, sel, 3)).await;

    // Relabel one pod out: it leaves the Service, the ReplicaSet replaces it.
    let (out_name, out_ip) = pods[0].clone();
    s.kubectl_ok(&["label", "pod", &out_name, "app=other", "--overwrite"]);
    let pods = wait_for(T, "a replacement pod", || async {
        let p = pod_ips(&client, sel, 3).await?;
        (!p.iter().any(|(n, _)| *n == out_name)).then_some(p)
    })
    .await;
    let ready: BTreeSet<String> = pods.iter().map(|(_, ip)| format!("{ip}:80")).collect();
    assert!(!ready.contains(&format!("{out_ip}:80")));
    expect_endpoints(&client, "service-clusterip", &ready, &BTreeSet::new()).await;

    // Mark one not ready: listed under notReadyAddresses / ready=false.
    let (nr_name, nr_ip) = pods[1].clone();
    set_pod_status(&client, "default", &nr_name, None, false)
        .await
        .unwrap();
    let nr = set(&[&format!("{nr_ip}:80")]);
    let still: BTreeSet<String> = ready.difference(&nr).cloned().collect();
    expect_endpoints(&client, "service-clusterip", &still, &nr).await;
    let out = s.kubectl_ok(&["describe", "svc", "service-clusterip"]);
    assert!(
        !out.lines()
            .find(|l| l.starts_with("Endpoints:"))
            .unwrap()
            .contains(&nr_ip),
        "{out}"
    );

    // Delete one: gone from the endpoints, and replaced.
    let (del_name, del_ip) = pods[2].clone();
    s.kubectl_ok(&["delete", "pod", &del_name]);
    let pods = wait_for(T, "the deleted pod replaced", || async {
        let p = pod_ips(&client, sel, 3).await?;
        (!p.iter().any(|(n, _)| *n == del_name)).then_some(p)
    })
    .await;
    let ready: BTreeSet<String> = pods
        .iter()
        .filter(|(n, _)| *n != nr_name)
        .map(|(_, ip)| format!("{ip}:80"))
        .collect();
    assert!(!ready.contains(&format!("{del_ip}:80")));
    expect_endpoints(&client, "service-clusterip", &ready, &nr).await;

    // The relabelled pod is an orphan now, still running, in no endpoints.
    let orphan: Pod = Api::namespaced(client.clone(), "default")
        .get(&out_name)
        .await
        .unwrap();
    assert!(orphan
        .metadata
        .owner_references
        .unwrap_or_default()
        .is_empty());
    kubelet.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_target_port_across_two_templates() {
    let s = start();
    let client = s.client().await;
    let kubelet = fake_kubelet(client.clone());
    let deploy = |name: &str, port: u16| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: named, variant: {name}}}}}\n  template:\n    metadata: {{labels: {{app: named, variant: {name}}}}}\n    spec:\n      containers:\n      - name: web\n        image: nginx\n        ports: [{{name: http, containerPort: {port}}}]\n"
        )
    };
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: named}\nspec:\n  selector: {app: named}\n  ports: [{name: web, port: 80, targetPort: http}]\n";
    let manifest = format!(
        "{}---\n{}---\n{svc}",
        deploy("v8080", 8080),
        deploy("v9090", 9090)
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let a = wait_for(T, "v8080 pods", || pod_ips(&client, "variant=v8080", 2)).await;
    let b = wait_for(T, "v9090 pods", || pod_ips(&client, "variant=v9090", 2)).await;
    let mut want: BTreeSet<String> = a.iter().map(|(_, ip)| format!("{ip}:8080")).collect();
    want.extend(b.iter().map(|(_, ip)| format!("{ip}:9090")));
    expect_endpoints(&client, "named", &want, &BTreeSet::new()).await;

    // Two slices, one per port number, each with the Service port's name.
    let (list, _) = slices(&client, "named").await;
    let mut shapes: Vec<(String, i32, usize)> = list
        .iter()
        .map(|s| {
            let p = &s.ports.as_ref().unwrap()[0];
            (p.name.clone().unwrap(), p.port.unwrap(), s.endpoints.len())
        })
        .collect();
    shapes.sort();
    assert_eq!(
        shapes,
        vec![("web".into(), 8080, 2), ("web".into(), 9090, 2)]
    );
    // And two Endpoints subsets.
    let ep: Endpoints = Api::namespaced(client.clone(), "default")
        .get("named")
        .await
        .unwrap();
    assert_eq!(ep.subsets.unwrap().len(), 2);
    kubelet.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_hostname_selector_changes_and_selectorless_services() {
    let s = start();
    let client = s.client().await;
    let kubelet = fake_kubelet(client.clone());
    let manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: busybox-subdomain}\nspec:\n  clusterIP: None\n  selector: {name: busybox}\n  ports: [{name: foo, port: 1234}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: busybox1, labels: {name: busybox}}\nspec:\n  hostname: busybox-1\n  subdomain: busybox-subdomain\n  containers: [{name: busybox, image: busybox, command: [sleep, '3600']}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: busybox2, labels: {name: busybox}}\nspec:\n  hostname: busybox-2\n  containers: [{name: busybox, image: busybox, command: [sleep, '3600']}]\n";
    let out = s.kubectl_stdin(&["apply", "-f", "-"], manifest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pods = wait_for(T, "busybox pods", || pod_ips(&client, "name=busybox", 2)).await;
    let ip_of = |n: &str| pods.iter().find(|(p, _)| p == n).unwrap().1.clone();
    let want = set(&[
        &format!("{}:1234", ip_of("busybox1")),
        &format!("{}:1234", ip_of("busybox2")),
    ]);
    expect_endpoints(&client, "busybox-subdomain", &want, &BTreeSet::new()).await;

    // hostname only where subdomain names the Service.
    let (list, _) = slices(&client, "busybox-subdomain").await;
    let host = |ip: &str| {
        list[0]
            .endpoints
            .iter()
            .find(|e| e.addresses[0] == ip)
            .unwrap()
            .hostname
            .clone()
    };
    assert_eq!(host(&ip_of("busybox1")).as_deref(), Some("busybox-1"));
    assert_eq!(host(&ip_of("busybox2")), None);
    let ep: Endpoints = Api::namespaced(client.clone(), "default")
        .get("busybox-subdomain")
        .await
        .unwrap();
    let addrs = ep.subsets.unwrap()[0].addresses.clone().unwrap();
    assert!(addrs
        .iter()
        .any(|a| a.hostname.as_deref() == Some("busybox-1")));

    // Selector changed to pick nothing: both emptied (a placeholder slice stays).
    s.kubectl_ok(&[
        "patch",
        "svc",
        "busybox-subdomain",
        "-p",
        r#"{"spec":{"selector":{"name":"nobody"}}}"#,
    ]);
    expect_endpoints(
        &client,
        "busybox-subdomain",
        &BTreeSet::new(),
        &BTreeSet::new(),
    )
    .await;
    let (list, _) = slices(&client, "busybox-subdomain").await;
    assert_eq!(list.len(), 1);
    assert!(list[0].endpoints.is_empty());
    let out = s.kubectl_ok(&["describe", "svc", "busybox-subdomain"]);
    // As with Kubernetes' placeholder slice, kubectl shows an empty list.
    let line = out
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .expect("Endpoints line");
    assert_eq!(line.trim_start_matches("Endpoints:").trim(), "", "{out}");

    // A Service without a selector: its Endpoints and slices are the user's.
    let manual = "apiVersion: v1\nkind: Service\nmetadata: {name: external-db}\nspec:\n  ports: [{port: 5432}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: external-db}\nsubsets:\n- addresses: [{ip: 192.0.2.10}]\n  ports: [{port: 5432}]\n";
    let out = s.kubectl_stdin(&["apply", "-f", "-"], manual);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let e = endpoints(&client, "external-db").await.unwrap();
    assert_eq!(e.ready, set(&["192.0.2.10:5432"]));
    // Mirrored into a slice (what the proxy reads) by the mirroring controller, owned by the
    // Endpoints; never by the EndpointSlice controller.
    let (list, seen) = wait_for(T, "the mirrored slice", || async {
        let (l, e) = slices(&client, "external-db").await;
        (!l.is_empty()).then_some((l, e))
    })
    .await;
    assert_eq!(list.len(), 1);
    let labels = list[0].metadata.labels.clone().unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslicemirroring-controller.k8s.io"
    );
    assert_eq!(
        list[0].metadata.owner_references.as_ref().unwrap()[0].kind,
        "Endpoints"
    );
    assert_eq!(seen.ready, set(&["192.0.2.10:5432"]));
    // The user's Endpoints object is untouched.
    let ep: Endpoints = Api::namespaced(client.clone(), "default")
        .get("external-db")
        .await
        .unwrap();
    assert!(ep.metadata.labels.is_none() && ep.metadata.owner_references.is_none());
    // Edits to it are mirrored.
    let edit = r#"{"subsets":[{"addresses":[{"ip":"192.0.2.10"},{"ip":"192.0.2.11"}],"ports":[{"port":5432}]}]}"#;
    s.kubectl_ok(&[
        "patch",
        "endpoints",
        "external-db",
        "--type=merge",
        "-p",
        edit,
    ]);
    wait_for(T, "the edit mirrored", || async {
        let (_, e) = slices(&client, "external-db").await;
        (e.ready == set(&["192.0.2.10:5432", "192.0.2.11:5432"])).then_some(())
    })
    .await;

    // Service deleted: its Endpoints and slices go.
    s.kubectl_ok(&["delete", "svc", "busybox-subdomain"]);
    wait_for(T, "endpoints and slices gone", || async {
        let e = endpoints(&client, "busybox-subdomain").await;
        let (l, _) = slices(&client, "busybox-subdomain").await;
        (e.is_none() && l.is_empty()).then_some(())
    })
    .await;
    kubelet.abort();
}
