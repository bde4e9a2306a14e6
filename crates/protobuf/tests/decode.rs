//! Real protobuf bodies, encoded with k8s-pb's prost types (generated from Kubernetes'
//! own .proto files), decoded and compared with the JSON Kubernetes would write, and read
//! back through k8s-openapi.
//!
//! Go's encoder writes every non-pointer scalar field even when zero; the inputs here do
//! the same where it matters (`go_meta`, the `Some("")` and `Some(0)` fields) so the tests
//! check that those zeros are dropped again while pointer zeros are kept.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1 as apps_json, core::v1 as core_json, discovery::v1 as discovery_json,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString as JsonIntOrString;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::autoscaling::v1 as autoscaling;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::discovery::v1 as discovery;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use pretty_assertions::assert_eq;
use prost::Message;
use serde_json::{json, Value};
use svcnet_protobuf::{decode, DecodeError, MAGIC};

/// The body client-go sends: magic + runtime.Unknown{typeMeta, raw}.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(raw),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    envelope(api_version, kind, object.encode_to_vec())
}

fn decode_json(body: &[u8]) -> Value {
    decode(body).unwrap().object
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|t| t.to_string()).collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity { string: s(v) }))
        .collect()
}

/// IntOrString as Go writes it: all three fields, always.
fn int(value: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(value),
        str_val: s(""),
    })
}

fn named(name: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(name),
    })
}

fn time(seconds: i64) -> Option<meta::Time> {
    Some(meta::Time {
        seconds: Some(seconds),
        nanos: Some(0),
    })
}

/// ObjectMeta as client-go encodes a new object's: every string field, generation 0 and
/// a zero creationTimestamp (an empty message).
fn go_meta(name: &str, namespace: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(namespace),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    })
}

#[test]
fn namespace_as_kubectl_create_namespace_sends_it() {
    let ns = core::Namespace {
        metadata: go_meta("foo", ""),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            ..Default::default()
        }),
    };
    let decoded = decode(&body("v1", "Namespace", &ns)).unwrap();
    assert_eq!(
        (decoded.api_version.as_str(), decoded.kind.as_str()),
        ("v1", "Namespace")
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "foo", "creationTimestamp": null},
            "spec": {},
            "status": {},
        })
    );
    let typed: core_json::Namespace = serde_json::from_value(decoded.object).unwrap();
    assert_eq!(typed.metadata.name.as_deref(), Some("foo"));
    assert_eq!(typed.metadata.creation_timestamp, None);
}

fn service() -> core::Service {
    core::Service {
        metadata: Some(meta::ObjectMeta {
            labels: map(&[("app", "web")]),
            annotations: map(&[("note", "ünïcode ✓")]),
            ..go_meta("web", "default").unwrap()
        }),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s("http"),
                    protocol: s("TCP"),
                    port: Some(80),
                    target_port: int(8080),
                    node_port: Some(0),
                    app_protocol: None,
                },
                core::ServicePort {
                    name: s("metrics"),
                    protocol: s("TCP"),
                    port: Some(9090),
                    target_port: named("metrics"),
                    node_port: Some(0),
                    app_protocol: s("http"),
                },
            ],
            selector: map(&[("app", "web"), ("tier", "front")]),
            cluster_ip: s("10.96.0.20"),
            r#type: s("ClusterIP"),
            session_affinity: s("ClientIP"),
            load_balancer_ip: s(""),
            external_name: s(""),
            external_traffic_policy: s(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            session_affinity_config: Some(core::SessionAffinityConfig {
                client_ip: Some(core::ClientIpConfig {
                    timeout_seconds: Some(10800),
                }),
            }),
            ip_families: strings(&["IPv4"]),
            ip_family_policy: s("SingleStack"),
            allocate_load_balancer_node_ports: Some(false),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    }
}

#[test]
fn service_with_int_and_named_target_ports() {
    let object = decode_json(&body("v1", "Service", &service()));
    assert_eq!(
        object,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "creationTimestamp": null,
                "labels": {"app": "web"},
                "annotations": {"note": "ünïcode ✓"},
            },
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "metrics", "protocol": "TCP", "appProtocol": "http", "port": 9090, "targetPort": "metrics"},
                ],
                "selector": {"app": "web", "tier": "front"},
                "clusterIP": "10.96.0.20",
                "type": "ClusterIP",
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                // A pointer: false was chosen by the client, so it stays.
                "allocateLoadBalancerNodePorts": false,
            },
            "status": {"loadBalancer": {}},
        })
    );

    let typed: core_json::Service = serde_json::from_value(object).unwrap();
    let spec = typed.spec.unwrap();
    let ports = spec.ports.unwrap();
    assert_eq!(ports[0].target_port, Some(JsonIntOrString::Int(8080)));
    assert_eq!(
        ports[1].target_port,
        Some(JsonIntOrString::String("metrics".into()))
    );
    assert_eq!(ports[0].node_port, None);
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.20"));
    assert_eq!(spec.load_balancer_ip, None);
    assert_eq!(spec.allocate_load_balancer_node_ports, Some(false));
    assert_eq!(
        spec.session_affinity_config
            .unwrap()
            .client_ip
            .unwrap()
            .timeout_seconds,
        Some(10800)
    );
    assert_eq!(spec.selector.unwrap().len(), 2);
}

#[test]
fn unset_target_port_is_zero_as_in_go_json() {
    // Go's IntOrString is a struct, always encoded; its JSON for "unset" is 0.
    let svc = core::Service {
        metadata: go_meta("x", ""),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                port: Some(80),
                target_port: int(0),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let object = decode_json(&body("v1", "Service", &svc));
    assert_eq!(
        object["spec"]["ports"],
        json!([{"port": 80, "targetPort": 0}])
    );
}

fn probe(handler: core::ProbeHandler, period: i32) -> Option<core::Probe> {
    Some(core::Probe {
        handler: Some(handler),
        initial_delay_seconds: Some(0),
        timeout_seconds: Some(1),
        period_seconds: Some(period),
        success_threshold: Some(1),
        failure_threshold: Some(3),
        termination_grace_period_seconds: None,
    })
}

fn pod() -> core::Pod {
    let container = core::Container {
        name: s("app"),
        image: s("busybox:1.36"),
        command: strings(&["sh", "-c"]),
        args: strings(&["httpd -f -p 8080"]),
        working_dir: s(""),
        ports: vec![core::ContainerPort {
            name: s("http"),
            host_port: Some(0),
            container_port: Some(8080),
            protocol: s("TCP"),
            host_ip: s(""),
        }],
        env: vec![
            core::EnvVar {
                name: s("MODE"),
                value: s("demo"),
                value_from: None,
            },
            core::EnvVar {
                name: s("TOKEN"),
                value: s(""),
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: s("creds"),
                        }),
                        key: s("token"),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(core::ResourceRequirements {
            limits: quantities(&[("cpu", "500m"), ("memory", "128Mi")]),
            requests: quantities(&[("cpu", "100m")]),
            claims: vec![],
        }),
        volume_mounts: vec![core::VolumeMount {
            name: s("config"),
            read_only: Some(false),
            mount_path: s("/etc/app"),
            sub_path: s(""),
            ..Default::default()
        }],
        liveness_probe: probe(
            core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: named("http"),
                    host: s(""),
                    scheme: s("HTTP"),
                    http_headers: vec![],
                }),
                ..Default::default()
            },
            10,
        ),
        readiness_probe: probe(
            core::ProbeHandler {
                tcp_socket: Some(core::TcpSocketAction {
                    port: int(8080),
                    host: s(""),
                }),
                ..Default::default()
            },
            5,
        ),
        termination_message_path: s("/dev/termination-log"),
        termination_message_policy: s("File"),
        image_pull_policy: s("IfNotPresent"),
        security_context: Some(core::SecurityContext {
            run_as_user: Some(0),
            allow_privilege_escalation: Some(false),
            capabilities: Some(core::Capabilities {
                add: vec![],
                drop: strings(&["ALL"]),
            }),
            ..Default::default()
        }),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    };
    core::Pod {
        metadata: go_meta("web-0", "default"),
        spec: Some(core::PodSpec {
            volumes: vec![
                core::Volume {
                    name: s("config"),
                    volume_source: Some(core::VolumeSource {
                        config_map: Some(core::ConfigMapVolumeSource {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: s("web-config"),
                            }),
                            items: vec![core::KeyToPath {
                                key: s("app.conf"),
                                path: s("app.conf"),
                                mode: None,
                            }],
                            default_mode: Some(0o644),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                },
                core::Volume {
                    name: s("scratch"),
                    volume_source: Some(core::VolumeSource {
                        empty_dir: Some(core::EmptyDirVolumeSource {
                            medium: s(""),
                            size_limit: Some(Quantity { string: s("1Gi") }),
                        }),
                        ..Default::default()
                    }),
                },
            ],
            containers: vec![container],
            restart_policy: s("Always"),
            termination_grace_period_seconds: Some(30),
            dns_policy: s("ClusterFirst"),
            node_selector: map(&[("kubernetes.io/os", "linux")]),
            service_account_name: s(""),
            node_name: s(""),
            host_network: Some(false),
            host_pid: Some(false),
            host_ipc: Some(false),
            security_context: Some(core::PodSecurityContext {
                supplemental_groups: vec![1000, 2000],
                fs_group: Some(0),
                ..Default::default()
            }),
            hostname: s(""),
            subdomain: s(""),
            scheduler_name: s("default-scheduler"),
            tolerations: vec![core::Toleration {
                key: s("node.kubernetes.io/not-ready"),
                operator: s("Exists"),
                value: s(""),
                effect: s("NoExecute"),
                toleration_seconds: Some(300),
            }],
            enable_service_links: Some(true),
            ..Default::default()
        }),
        status: Some(core::PodStatus::default()),
    }
}

#[test]
fn pod_with_containers_probes_resources_and_volumes() {
    let object = decode_json(&body("v1", "Pod", &pod()));
    assert_eq!(
        object,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": null},
            "spec": {
                "volumes": [
                    // VolumeSource and LocalObjectReference are inlined, as in Go's JSON.
                    {"name": "config", "configMap": {
                        "name": "web-config",
                        "items": [{"key": "app.conf", "path": "app.conf"}],
                        "defaultMode": 420,
                    }},
                    {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                ],
                "containers": [{
                    "name": "app",
                    "image": "busybox:1.36",
                    "command": ["sh", "-c"],
                    "args": ["httpd -f -p 8080"],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "MODE", "value": "demo"},
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token", "optional": false}}},
                    ],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3,
                    },
                    "readinessProbe": {
                        "tcpSocket": {"port": 8080},
                        "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3,
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {
                        "capabilities": {"drop": ["ALL"]},
                        "runAsUser": 0,
                        "allowPrivilegeEscalation": false,
                    },
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "securityContext": {"supplementalGroups": [1000, 2000], "fsGroup": 0},
                "schedulerName": "default-scheduler",
                "tolerations": [{
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }],
                "enableServiceLinks": true,
            },
            "status": {},
        })
    );

    let typed: core_json::Pod = serde_json::from_value(object).unwrap();
    let spec = typed.spec.unwrap();
    let c = &spec.containers[0];
    assert_eq!(
        c.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0,
        "128Mi"
    );
    assert_eq!(
        c.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .port,
        JsonIntOrString::String("http".into())
    );
    assert_eq!(c.security_context.as_ref().unwrap().run_as_user, Some(0));
    assert_eq!(c.stdin, None);
    let volumes = spec.volumes.unwrap();
    assert_eq!(
        volumes[0].config_map.as_ref().unwrap().default_mode,
        Some(420)
    );
    assert_eq!(
        volumes[1]
            .empty_dir
            .as_ref()
            .unwrap()
            .size_limit
            .as_ref()
            .unwrap()
            .0,
        "1Gi"
    );
    assert_eq!(
        spec.security_context.unwrap().supplemental_groups,
        Some(vec![1000, 2000])
    );
}

#[test]
fn packed_and_unpacked_repeated_scalars_are_both_read() {
    // k8s-pb writes supplementalGroups unpacked (field 4 of PodSecurityContext, as the
    // proto2 .proto says); a packed encoding of the same list must decode the same.
    let unpacked = core::PodSecurityContext {
        supplemental_groups: vec![1, 300, 70000],
        ..Default::default()
    };
    let mut packed = vec![0x22, 0x00]; // field 4, length-delimited, length patched below
    prost::encoding::encode_varint(1, &mut packed);
    prost::encoding::encode_varint(300, &mut packed);
    prost::encoding::encode_varint(70000, &mut packed);
    packed[1] = (packed.len() - 2) as u8;
    for security_context in [unpacked.encode_to_vec(), packed] {
        let mut spec = Vec::new();
        prost::encoding::bytes::encode(14, &security_context, &mut spec); // PodSpec.securityContext
        let mut pod = Vec::new();
        prost::encoding::bytes::encode(2, &spec, &mut pod); // Pod.spec
        let object = decode_json(&envelope("v1", "Pod", pod));
        assert_eq!(
            object["spec"]["securityContext"]["supplementalGroups"],
            json!([1, 300, 70000])
        );
    }
}

#[test]
fn deployment_keeps_pointer_zeros_and_drops_value_zeros() {
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            labels: map(&[("app", "web")]),
            ..go_meta("web", "default").unwrap()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: map(&[("app", "web")]),
                match_expressions: vec![],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: map(&[("app", "web")]),
                    creation_timestamp: Some(meta::Time::default()),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: s("busybox"),
                        image: s("busybox"),
                        resources: Some(core::ResourceRequirements::default()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: int(1),
                    max_surge: named("25%"),
                }),
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: Some(10),
            paused: Some(false),
            progress_deadline_seconds: Some(600),
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    };
    let object = decode_json(&body("apps/v1", "Deployment", &deployment));
    assert_eq!(
        object,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "busybox", "image": "busybox", "resources": {}}]},
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            "status": {},
        })
    );
    let typed: apps_json::Deployment = serde_json::from_value(object).unwrap();
    let spec = typed.spec.unwrap();
    assert_eq!(spec.replicas, Some(0));
    assert_eq!(
        spec.strategy.unwrap().rolling_update.unwrap().max_surge,
        Some(JsonIntOrString::String("25%".into()))
    );
}

#[test]
fn endpoint_slice_with_conditions_and_ports() {
    let slice = discovery::EndpointSlice {
        metadata: Some(meta::ObjectMeta {
            labels: map(&[("kubernetes.io/service-name", "web")]),
            owner_references: vec![meta::OwnerReference {
                api_version: s("v1"),
                kind: s("Service"),
                name: s("web"),
                uid: s("5b0c4e4e-1111-2222-3333-444455556666"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }],
            ..go_meta("web-abcde", "default").unwrap()
        }),
        address_type: s("IPv4"),
        endpoints: vec![
            discovery::Endpoint {
                addresses: strings(&["10.244.1.5"]),
                conditions: Some(discovery::EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                target_ref: Some(core::ObjectReference {
                    kind: s("Pod"),
                    namespace: s("default"),
                    name: s("web-0"),
                    uid: s(""),
                    api_version: s(""),
                    resource_version: s(""),
                    field_path: s(""),
                }),
                node_name: s("node-1"),
                zone: s(""),
                ..Default::default()
            },
            discovery::Endpoint {
                addresses: strings(&["10.244.2.7"]),
                conditions: Some(discovery::EndpointConditions {
                    ready: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
        ports: vec![discovery::EndpointPort {
            name: s(""),
            protocol: s("TCP"),
            port: Some(8080),
            app_protocol: None,
        }],
    };
    let object = decode_json(&body("discovery.k8s.io/v1", "EndpointSlice", &slice));
    assert_eq!(
        object,
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "web-abcde",
                "namespace": "default",
                "creationTimestamp": null,
                "labels": {"kubernetes.io/service-name": "web"},
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Service", "name": "web",
                    "uid": "5b0c4e4e-1111-2222-3333-444455556666",
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": ["10.244.1.5"],
                    "conditions": {"ready": true, "serving": true, "terminating": false},
                    "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-0"},
                    // Pointers: the empty zone is the client's choice.
                    "nodeName": "node-1",
                    "zone": "",
                },
                {"addresses": ["10.244.2.7"], "conditions": {"ready": false}},
            ],
            "ports": [{"name": "", "protocol": "TCP", "port": 8080}],
        })
    );
    let typed: discovery_json::EndpointSlice = serde_json::from_value(object).unwrap();
    assert_eq!(
        typed.endpoints[1].conditions.as_ref().unwrap().ready,
        Some(false)
    );
    assert_eq!(typed.ports.unwrap()[0].port, Some(8080));
}

#[test]
fn endpoint_slice_without_endpoints_has_null_as_in_go_json() {
    // `endpoints` has no omitempty: Go writes a nil list as null.
    let slice = discovery::EndpointSlice {
        metadata: go_meta("empty", "default"),
        address_type: s("IPv4"),
        ..Default::default()
    };
    let object = decode_json(&body("discovery.k8s.io/v1", "EndpointSlice", &slice));
    assert_eq!(object["endpoints"], Value::Null);
    assert!(object.get("ports").is_none());
    let typed: discovery_json::EndpointSlice = serde_json::from_value(object).unwrap();
    assert!(typed.endpoints.is_empty());
}

#[test]
fn delete_options_with_preconditions() {
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("abc-123"),
            resource_version: s("42"),
        }),
        orphan_dependents: None,
        propagation_policy: s("Foreground"),
        dry_run: strings(&["All"]),
        ignore_store_read_error_with_cluster_breaking_potential: None,
    };
    // client-go sends DeleteOptions in the group version of the resource it deletes.
    for api_version in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        let object = decode_json(&body(api_version, "DeleteOptions", &options));
        assert_eq!(
            object,
            json!({
                "apiVersion": api_version,
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "abc-123", "resourceVersion": "42"},
                "propagationPolicy": "Foreground",
                "dryRun": ["All"],
            })
        );
        let typed: k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions =
            serde_json::from_value(object).unwrap();
        assert_eq!(typed.grace_period_seconds, Some(0));
    }
}

#[test]
fn timestamps_in_events() {
    let event = core::Event {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: time(1_700_000_000),
            deletion_timestamp: time(0),
            ..go_meta("web.17a", "default").unwrap()
        }),
        involved_object: Some(core::ObjectReference {
            kind: s("Pod"),
            name: s("web-0"),
            ..Default::default()
        }),
        reason: s("Started"),
        message: s("Started container app"),
        source: Some(core::EventSource {
            component: s("kubelet"),
            host: s("node-1"),
        }),
        first_timestamp: Some(meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(999_999_999),
        }),
        last_timestamp: Some(meta::Time::default()),
        count: Some(1),
        r#type: s("Normal"),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_789),
        }),
        series: None,
        action: s(""),
        related: None,
        reporting_component: s(""),
        reporting_instance: s(""),
    };
    let object = decode_json(&body("v1", "Event", &event));
    assert_eq!(
        object,
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": "web.17a",
                "namespace": "default",
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "deletionTimestamp": "1970-01-01T00:00:00Z",
            },
            "involvedObject": {"kind": "Pod", "name": "web-0"},
            "reason": "Started",
            "message": "Started container app",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2023-11-14T22:13:20Z",
            "lastTimestamp": null,
            "count": 1,
            "type": "Normal",
            "eventTime": "2023-11-14T22:13:20.123456Z",
            // No omitempty on these two in Go.
            "reportingComponent": "",
            "reportingInstance": "",
        })
    );
    let typed: core_json::Event = serde_json::from_value(object).unwrap();
    assert_eq!(
        typed.metadata.creation_timestamp.unwrap().0.as_second(),
        1_700_000_000
    );
    assert_eq!(typed.event_time.unwrap().0.subsec_microsecond(), 123_456);
}

#[test]
fn scale_replicas_zero_is_omitted_like_go() {
    // autoscaling/v1 ScaleSpec.replicas is a plain `int32 omitempty` in Go: 0 is not shown.
    for (replicas, spec) in [(0, json!({})), (3, json!({"replicas": 3}))] {
        let scale = autoscaling::Scale {
            metadata: go_meta("web", "default"),
            spec: Some(autoscaling::ScaleSpec {
                replicas: Some(replicas),
            }),
            status: Some(autoscaling::ScaleStatus {
                replicas: Some(0),
                selector: s(""),
            }),
        };
        let object = decode_json(&body("autoscaling/v1", "Scale", &scale));
        assert_eq!(object["spec"], spec);
        // `replicas` in the status has no omitempty.
        assert_eq!(object["status"], json!({"replicas": 0}));
    }
}

#[test]
fn secret_bytes_are_base64() {
    let secret = core::Secret {
        metadata: go_meta("creds", "default"),
        data: [("token".to_string(), b"s3cr\xffet".to_vec())].into(),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let object = decode_json(&body("v1", "Secret", &secret));
    assert_eq!(object["data"], json!({"token": "czNjcv9ldA=="}));
    let typed: core_json::Secret = serde_json::from_value(object).unwrap();
    assert_eq!(typed.data.unwrap()["token"].0, b"s3cr\xffet");
}

#[test]
fn node_status_quantities_and_addresses() {
    let node = core::Node {
        metadata: go_meta("node-1", ""),
        spec: Some(core::NodeSpec {
            pod_cidr: s("10.244.1.0/24"),
            pod_cid_rs: strings(&["10.244.1.0/24"]),
            unschedulable: Some(false),
            ..Default::default()
        }),
        status: Some(core::NodeStatus {
            capacity: quantities(&[("cpu", "2"), ("pods", "110")]),
            addresses: vec![core::NodeAddress {
                r#type: s("InternalIP"),
                address: s("10.0.0.1"),
            }],
            conditions: vec![core::NodeCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_heartbeat_time: time(1_700_000_000),
                last_transition_time: time(1_700_000_000),
                reason: s("KubeletReady"),
                message: s(""),
            }],
            daemon_endpoints: Some(core::NodeDaemonEndpoints {
                kubelet_endpoint: Some(core::DaemonEndpoint { port: Some(10250) }),
            }),
            ..Default::default()
        }),
    };
    let object = decode_json(&body("v1", "Node", &node));
    assert_eq!(
        object["spec"],
        json!({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]})
    );
    assert_eq!(
        object["status"],
        json!({
            "capacity": {"cpu": "2", "pods": "110"},
            "conditions": [{
                "type": "Ready", "status": "True",
                "lastHeartbeatTime": "2023-11-14T22:13:20Z", "lastTransitionTime": "2023-11-14T22:13:20Z",
                "reason": "KubeletReady",
            }],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        })
    );
    let typed: core_json::Node = serde_json::from_value(object).unwrap();
    assert_eq!(
        typed
            .status
            .unwrap()
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port,
        10250
    );
}

#[test]
fn binding_and_endpoints() {
    let binding = core::Binding {
        metadata: go_meta("web-0", "default"),
        target: Some(core::ObjectReference {
            kind: s("Node"),
            name: s("node-1"),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode_json(&body("v1", "Binding", &binding))["target"],
        json!({"kind": "Node", "name": "node-1"})
    );

    let endpoints = core::Endpoints {
        metadata: go_meta("web", "default"),
        subsets: vec![core::EndpointSubset {
            addresses: vec![core::EndpointAddress {
                ip: s("10.244.1.5"),
                hostname: s(""),
                node_name: s("node-1"),
                target_ref: None,
            }],
            not_ready_addresses: vec![],
            ports: vec![core::EndpointPort {
                name: s(""),
                port: Some(8080),
                protocol: s("TCP"),
                app_protocol: None,
            }],
        }],
    };
    let object = decode_json(&body("v1", "Endpoints", &endpoints));
    assert_eq!(
        object["subsets"],
        json!([{"addresses": [{"ip": "10.244.1.5", "nodeName": "node-1"}], "ports": [{"port": 8080, "protocol": "TCP"}]}])
    );
    let _: core_json::Endpoints = serde_json::from_value(object).unwrap();
}

#[test]
fn repeated_message_occurrences_merge() {
    // Protobuf merges a singular message that occurs twice; Go's decoder does too.
    let first = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("a"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let second = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            labels: map(&[("x", "y")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut raw = first.encode_to_vec();
    raw.extend(second.encode_to_vec());
    assert_eq!(
        decode_json(&envelope("v1", "Namespace", raw))["metadata"],
        json!({"name": "a", "labels": {"x": "y"}})
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let mut raw = core::Namespace {
        metadata: go_meta("a", ""),
        ..Default::default()
    }
    .encode_to_vec();
    prost::encoding::string::encode(999, &"from the future".to_string(), &mut raw);
    prost::encoding::uint64::encode(998, &7, &mut raw);
    assert_eq!(
        decode_json(&envelope("v1", "Namespace", raw)),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "creationTimestamp": null}})
    );
}

#[test]
fn errors_name_what_failed() {
    assert_eq!(
        decode(b"{\"kind\":\"Pod\"}"),
        Err(DecodeError::MagicMissing)
    );
    assert_eq!(
        decode(&body("v1", "Widget", &core::Namespace::default())),
        Err(DecodeError::UnsupportedKind {
            api_version: "v1".into(),
            kind: "Widget".into()
        })
    );
    assert_eq!(
        decode(&body("apps/v1", "Service", &service())),
        Err(DecodeError::UnsupportedKind {
            api_version: "apps/v1".into(),
            kind: "Service".into()
        })
    );

    let mut truncated = body("v1", "Service", &service());
    truncated.truncate(truncated.len() - 3);
    assert!(matches!(
        decode(&truncated),
        Err(DecodeError::EnvelopeMalformed { .. })
    ));

    let mut raw = service().encode_to_vec();
    raw.truncate(raw.len() - 3);
    assert!(matches!(
        decode(&envelope("v1", "Service", raw)),
        Err(DecodeError::WireMalformed { .. })
    ));

    // spec.ports[0].port sent as a string.
    let mut port = Vec::new();
    prost::encoding::string::encode(3, &"80".to_string(), &mut port);
    let mut spec = Vec::new();
    prost::encoding::bytes::encode(1, &port, &mut spec);
    let mut svc = Vec::new();
    prost::encoding::bytes::encode(2, &spec, &mut svc);
    let err = decode(&envelope("v1", "Service", svc)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::WireTypeMismatch {
            path: "spec.ports[0].port".into(),
            message: "core.v1.ServicePort",
            number: 3,
            found: "length-delimited",
            expected: "varint",
        }
    );
    assert_eq!(
        err.to_string(),
        "\"spec.ports[0].port\" (core.v1.ServicePort field 3) has wire type length-delimited, expected varint"
    );

    let bad_target = core::Service {
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                target_port: Some(IntOrString {
                    r#type: Some(7),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        decode(&body("v1", "Service", &bad_target)),
        Err(DecodeError::ValueInvalid { path, .. }) if path == "spec.ports[0].targetPort"
    ));

    let gzipped = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("Namespace"),
        }),
        raw: Some(vec![]),
        content_encoding: s("gzip"),
        content_type: None,
    };
    let mut body = MAGIC.to_vec();
    body.extend(gzipped.encode_to_vec());
    assert_eq!(
        decode(&body),
        Err(DecodeError::ContentEncodingUnsupported("gzip".into()))
    );
}
