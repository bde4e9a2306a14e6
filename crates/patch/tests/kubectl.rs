//! Strategic merge patches as kubectl v1.32 sends them (`apply`, `edit`, `set image`, `patch`),
//! applied to live objects as the API server stores them (defaulted, with server-set fields).

use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use svcnet_patch::{schema, strategic_merge_patch, PatchError};

/// `patch` applied to `live` with the schema of `live`'s own `apiVersion` and `kind`, as the API
/// server picks it for the object it patches.
fn smp(live: &Value, patch: Value) -> Value {
    let (api_version, kind) = (live["apiVersion"].as_str(), live["kind"].as_str());
    let ty = schema::lookup(api_version.unwrap(), kind.unwrap()).expect("served kind");
    strategic_merge_patch(live, &patch, ty).unwrap_or_else(|e| panic!("{e}"))
}

fn service(ports: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "6f1c2b9e-0000-4000-8000-000000000001",
            "resourceVersion": "42",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n"}
        },
        "spec": {
            "clusterIP": "10.96.0.20",
            "clusterIPs": ["10.96.0.20"],
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": ports,
            "selector": {"app": "web"},
            "sessionAffinity": "None",
            "type": "ClusterIP"
        },
        "status": {"loadBalancer": {}}
    })
}

/// `live` with `f` applied to it: the expected result of a patch that changes little.
fn with(mut live: Value, f: impl FnOnce(&mut Value)) -> Value {
    f(&mut live);
    live
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[test]
fn apply_changes_a_service_port() {
    // Config changed `port: 80` to `port: 8080`; kubectl apply's three-way patch adds the new
    // element, deletes the old one and orders the list.
    let live =
        service(json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]));
    let got = smp(
        &live,
        json!({
            "metadata": {"annotations": {LAST_APPLIED: "{\"new\":true}\n"}},
            "spec": {
                "$setElementOrder/ports": [{"port": 8080}],
                "ports": [
                    {"name": "http", "port": 8080, "targetPort": 8080},
                    {"$patch": "delete", "port": 80}
                ]
            }
        }),
    );
    let want = with(live, |v| {
        v["metadata"]["annotations"][LAST_APPLIED] = json!("{\"new\":true}\n");
        v["spec"]["ports"] = json!([{"name": "http", "port": 8080, "targetPort": 8080}]);
    });
    assert_eq!(got, want);
}

#[test]
fn apply_adds_a_label() {
    let live = service(json!([{"port": 80, "protocol": "TCP", "targetPort": 80}]));
    let got = smp(
        &live,
        json!({
            "metadata": {
                "annotations": {LAST_APPLIED: "{\"new\":true}\n"},
                "labels": {"tier": "frontend"}
            }
        }),
    );
    let want = with(live, |v| {
        v["metadata"]["annotations"][LAST_APPLIED] = json!("{\"new\":true}\n");
        v["metadata"]["labels"]["tier"] = json!("frontend");
    });
    assert_eq!(got, want);
}

#[test]
fn apply_removes_a_port_and_a_label() {
    let live = service(json!([
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}
    ]));
    let got = smp(
        &live,
        json!({
            "metadata": {"labels": {"app": null}},
            "spec": {
                "$setElementOrder/ports": [{"port": 80}],
                "ports": [{"$patch": "delete", "port": 443}]
            }
        }),
    );
    let want = with(live, |v| {
        v["metadata"]["labels"] = json!({});
        v["spec"]["ports"] =
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]);
    });
    assert_eq!(got, want);
}

#[test]
fn apply_reorders_ports_and_keeps_server_fields() {
    // A NodePort Service: nodePort is server-assigned and must survive a reorder.
    let live = with(
        service(json!([
            {"name": "a", "nodePort": 30001, "port": 80, "protocol": "TCP", "targetPort": 80},
            {"name": "b", "nodePort": 30002, "port": 81, "protocol": "TCP", "targetPort": 81}
        ])),
        |v| v["spec"]["type"] = json!("NodePort"),
    );
    let got = smp(
        &live,
        json!({"spec": {"$setElementOrder/ports": [{"port": 81}, {"port": 80}]}}),
    );
    let want = with(live, |v| {
        v["spec"]["ports"] = json!([
            {"name": "b", "nodePort": 30002, "port": 81, "protocol": "TCP", "targetPort": 81},
            {"name": "a", "nodePort": 30001, "port": 80, "protocol": "TCP", "targetPort": 80}
        ]);
    });
    assert_eq!(got, want);
}

#[test]
fn edit_changes_target_port_and_type() {
    // kubectl edit sends the two-way patch between the object it showed and the edited one.
    let live =
        service(json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]));
    let got = smp(
        &live,
        json!({
            "spec": {
                "$setElementOrder/ports": [{"port": 80}],
                "ports": [{"port": 80, "targetPort": 9090}],
                "type": "NodePort",
                "selector": {"app": null, "role": "web"}
            }
        }),
    );
    let want = with(live, |v| {
        v["spec"]["ports"] =
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 9090}]);
        v["spec"]["type"] = json!("NodePort");
        v["spec"]["selector"] = json!({"role": "web"});
    });
    assert_eq!(got, want);
}

#[test]
fn udp_next_to_tcp_on_the_same_port_is_a_second_port() {
    // kubernetes#39188: upstream merges `{port: 53, protocol: UDP}` into the live TCP 53 port
    // (patchMergeKey is "port" only), so the TCP port disappears. svcnet tells them apart.
    let live = service(json!([
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}
    ]));
    let got = smp(
        &live,
        json!({
            "spec": {
                "$setElementOrder/ports": [{"port": 53}, {"port": 53}],
                "ports": [{"name": "dns-udp", "port": 53, "protocol": "UDP", "targetPort": 53}]
            }
        }),
    );
    assert_eq!(
        got["spec"]["ports"],
        json!([
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "dns-udp", "port": 53, "protocol": "UDP", "targetPort": 53}
        ])
    );

    // A protocol matches a live port without one as TCP, the default.
    let live_undefaulted = service(json!([{"name": "dns", "port": 53, "targetPort": 53}]));
    let got2 = smp(
        &live_undefaulted,
        json!({"spec": {"ports": [{"port": 53, "protocol": "TCP", "targetPort": 5353}]}}),
    );
    assert_eq!(
        got2["spec"]["ports"],
        json!([{"name": "dns", "port": 53, "protocol": "TCP", "targetPort": 5353}])
    );

    // With both present, a patch element with a protocol changes only that one...
    let got3 = smp(
        &got,
        json!({"spec": {"ports": [{"port": 53, "protocol": "UDP", "targetPort": 1053}]}}),
    );
    assert_eq!(
        got3["spec"]["ports"],
        json!([
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "dns-udp", "port": 53, "protocol": "UDP", "targetPort": 1053}
        ])
    );
    // ...one without a protocol keeps upstream's meaning: the first port 53.
    let got4 = smp(
        &got,
        json!({"spec": {"ports": [{"port": 53, "targetPort": 9053}]}}),
    );
    assert_eq!(
        got4["spec"]["ports"],
        json!([
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 9053},
            {"name": "dns-udp", "port": 53, "protocol": "UDP", "targetPort": 53}
        ])
    );
    // Deleting with a protocol deletes that port only; without, every port 53.
    let got5 = smp(
        &got,
        json!({"spec": {"ports": [{"$patch": "delete", "port": 53, "protocol": "UDP"}]}}),
    );
    assert_eq!(
        got5["spec"]["ports"],
        json!([{"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}])
    );
    let got6 = smp(
        &got,
        json!({"spec": {"ports": [{"$patch": "delete", "port": 53}]}}),
    );
    assert_eq!(got6["spec"]["ports"], json!([]));
}

#[test]
fn patch_replaces_ports_with_replace_directive() {
    let live = service(json!([
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}
    ]));
    let got = smp(
        &live,
        json!({"spec": {"ports": [{"port": 8080, "name": null}, {"$patch": "replace"}]}}),
    );
    assert_eq!(got["spec"]["ports"], json!([{"port": 8080}]));
}

#[test]
fn patch_without_merge_key_is_a_bad_request() {
    let live = service(json!([{"port": 80, "protocol": "TCP", "targetPort": 80}]));
    let err = strategic_merge_patch(
        &live,
        &json!({"spec": {"ports": [{"targetPort": 9}]}}),
        schema::lookup("v1", "Service").unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        PatchError::Invalid(
            "map: map[targetPort:9] does not contain declared merge key: port".into()
        )
    );
}

#[test]
fn patch_into_a_missing_spec_drops_directives() {
    // The live object has no spec: the patch's spec is taken as is, minus its directives.
    let live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}});
    let got = smp(
        &live,
        json!({"spec": {
            "$setElementOrder/ports": [{"port": 80}],
            "ports": [{"port": 80}, {"$patch": "delete", "port": 81}],
            "selector": {"app": "web", "gone": null}
        }}),
    );
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}})
    );
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "generation": 1, "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "A", "value": "1"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "volumeMounts": [{"mountPath": "/data", "name": "data"}]
                        },
                        {"name": "log", "image": "busybox", "args": ["tail", "-f", "/data/log"]}
                    ],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        },
        "status": {
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ],
            "replicas": 2
        }
    })
}

#[test]
fn apply_changes_a_container_image() {
    let live = deployment();
    let got = smp(
        &live,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
            "containers": [{"image": "nginx:1.27", "name": "web"}]
        }}}}),
    );
    let want = with(live, |v| {
        v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27")
    });
    assert_eq!(got, want);
}

#[test]
fn set_image_changes_a_container_image() {
    // `kubectl set image deployment/web web=nginx:1.27`
    let live = deployment();
    let got = smp(
        &live,
        json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.27", "name": "web"}]}}}}),
    );
    let want = with(live, |v| {
        v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27")
    });
    assert_eq!(got, want);
}

#[test]
fn apply_merges_env_mounts_and_ports_inside_a_container() {
    let live = deployment();
    let got = smp(
        &live,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
            "containers": [{
                "name": "web",
                "$setElementOrder/env": [{"name": "B"}, {"name": "A"}],
                "env": [{"name": "B", "value": "2"}],
                "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
                "ports": [{"containerPort": 443}],
                "volumeMounts": [{"mountPath": "/data", "readOnly": true}]
            }]
        }}}}),
    );
    let web = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        web["env"],
        json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}])
    );
    assert_eq!(
        web["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}])
    );
    assert_eq!(
        web["volumeMounts"],
        json!([{"mountPath": "/data", "name": "data", "readOnly": true}])
    );
    assert_eq!(web["image"], json!("nginx:1.25"));
    // The other container is untouched and stays second.
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][1]["name"],
        json!("log")
    );
}

#[test]
fn apply_adds_a_container_at_the_configured_position() {
    let live = deployment();
    let got = smp(
        &live,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "init"}, {"name": "web"}, {"name": "log"}],
            "containers": [{"image": "busybox", "name": "init"}]
        }}}}),
    );
    let names: Vec<&str> = got["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["init", "web", "log"]);
}

#[test]
fn apply_changes_the_deployment_strategy_with_retain_keys() {
    let live = deployment();
    let got = smp(
        &live,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn apply_switches_a_volume_source_with_retain_keys() {
    let live = deployment();
    let got = smp(
        &live,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/volumes": [{"name": "data"}],
            "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "name": "data"}]
        }}}}),
    );
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cfg"}}])
    );
}

#[test]
fn status_conditions_merge_by_type() {
    let live = deployment();
    let got = smp(
        &live,
        json!({"status": {"conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
            {"type": "ReplicaFailure", "status": "True"}
        ]}}),
    );
    assert_eq!(
        got["status"]["conditions"],
        json!([
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
            {"type": "ReplicaFailure", "status": "True"}
        ])
    );
}

#[test]
fn finalizers_and_owner_references() {
    let live = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": "web-abc",
            "finalizers": ["a", "b"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1", "controller": true}]
        }
    });
    let got = smp(
        &live,
        json!({"metadata": {
            "finalizers": ["c", "a"],
            "ownerReferences": [
                {"uid": "u1", "blockOwnerDeletion": true},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg", "uid": "u2"}
            ]
        }}),
    );
    // Primitive merge lists are sets. Server-only items go before the first patch item that
    // follows them on the server; "b" follows nothing of the patch's, so it goes last.
    assert_eq!(got["metadata"]["finalizers"], json!(["c", "a", "b"]));
    assert_eq!(
        got["metadata"]["ownerReferences"],
        json!([
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1", "controller": true, "blockOwnerDeletion": true},
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg", "uid": "u2"}
        ])
    );
    let got = smp(
        &got,
        json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["c"],
            "ownerReferences": [{"$patch": "delete", "uid": "u2"}]
        }}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        got["metadata"]["ownerReferences"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn node_lists() {
    let live = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {
            "podCIDR": "10.244.1.0/24",
            "podCIDRs": ["10.244.1.0/24"],
            "taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]
        },
        "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}],
            "conditions": [{"type": "Ready", "status": "False"}]
        }
    });
    let got = smp(
        &live,
        json!({
            "spec": {"podCIDRs": ["fd00::/64"], "taints": [{"key": "c", "effect": "NoSchedule"}]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }),
    );
    // Upstream puts patch items before server-only ones that it cannot place relative to them.
    assert_eq!(
        got["spec"]["podCIDRs"],
        json!(["fd00::/64", "10.244.1.0/24"])
    );
    // Taints have no patch strategy: replaced whole.
    assert_eq!(
        got["spec"]["taints"],
        json!([{"key": "c", "effect": "NoSchedule"}])
    );
    assert_eq!(
        got["status"]["addresses"],
        json!([{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n1"}])
    );
    assert_eq!(
        got["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}])
    );
}

#[test]
fn endpoint_slice_lists_are_atomic() {
    let live = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-x", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"]}, {"addresses": ["10.244.2.7"]}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    });
    let got = smp(&live, json!({"endpoints": [{"addresses": ["10.244.3.9"]}]}));
    assert_eq!(got["endpoints"], json!([{"addresses": ["10.244.3.9"]}]));
    assert_eq!(got["ports"], live["ports"]);
}

#[test]
fn pod_status_ips_merge_by_ip() {
    let live = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "status": {"podIPs": [{"ip": "10.244.1.5"}], "phase": "Pending"}
    });
    let got = smp(
        &live,
        json!({"status": {"phase": "Running", "podIPs": [{"ip": "fd00::5"}],
                          "conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert_eq!(
        got["status"]["podIPs"],
        json!([{"ip": "fd00::5"}, {"ip": "10.244.1.5"}])
    );
    assert_eq!(got["status"]["phase"], json!("Running"));
    assert_eq!(
        got["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}])
    );
}

#[test]
fn scale_patch() {
    let live = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                      "metadata": {"name": "web"}, "spec": {"replicas": 2}, "status": {"replicas": 2}});
    let got = smp(&live, json!({"spec": {"replicas": 5}}));
    assert_eq!(got["spec"], json!({"replicas": 5}));
}
