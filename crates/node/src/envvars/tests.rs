//! The environment of a container: its own `env` in order, expanded, with downward-API values,
//! ConfigMap and Secret references, then the Service variables.

use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, HostIP,
    ObjectFieldSelector, PodIP, PodSpec, PodStatus, ResourceFieldSelector, ResourceRequirements,
    SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::objects::Fixed;

fn s(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn from(name: &str, src: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(src),
        ..Default::default()
    }
}

fn field(name: &str, path: &str) -> EnvVar {
    from(
        name,
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web-0".into()),
            namespace: Some("ns1".into()),
            uid: Some("1234-abcd".into()),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            annotations: Some([("note".to_string(), "hi \"there\"".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-1".into()),
            service_account_name: Some("sa".into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            host_ip: Some("192.168.1.2".into()),
            host_ips: Some(vec![
                HostIP {
                    ip: "192.168.1.2".into(),
                },
                HostIP {
                    ip: "fd00::2".into(),
                },
            ]),
            pod_ip: Some("10.244.1.5".into()),
            pod_ips: Some(vec![
                PodIP {
                    ip: "10.244.1.5".into(),
                },
                PodIP {
                    ip: "fd00:10::5".into(),
                },
            ]),
            ..Default::default()
        }),
    }
}

static NONE: Fixed = Fixed {
    config_maps: Vec::new(),
    secrets: Vec::new(),
};

#[test]
fn container_env_order_expansion_and_services() {
    let services = s(&[("KUBERNETES_SERVICE_HOST", "10.96.0.1"), ("X", "svc")]);
    let c = Container {
        name: "c".into(),
        env: Some(vec![
            var("GREETING", "hello $(POD_NAME)"),
            field("POD_NAME", "metadata.name"),
            var(
                "URL",
                "https://$(KUBERNETES_SERVICE_HOST):443/$(POD_NAME)/$(NOPE)",
            ),
            var("X", "mine"),
            var("MONEY", "$$(X) costs $$5"),
            var("SELF", "[$(X)]"),
            var("EMPTY", ""),
        ]),
        ..Default::default()
    };
    let env = container_env(&pod(), &c, &services, &NONE).unwrap();
    assert_eq!(
        env,
        s(&[
            ("GREETING", "hello $(POD_NAME)"),
            ("POD_NAME", "web-0"),
            ("URL", "https://10.96.0.1:443/web-0/$(NOPE)"),
            ("X", "mine"),
            ("MONEY", "$(X) costs $5"),
            ("SELF", "[mine]"),
            ("EMPTY", ""),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ])
    );
}

#[test]
fn field_refs() {
    let c = Container {
        name: "c".into(),
        env: Some(vec![
            field("NAME", "metadata.name"),
            field("NS", "metadata.namespace"),
            field("UID", "metadata.uid"),
            field("APP", "metadata.labels['app']"),
            field("MISSING", "metadata.labels['nope']"),
            field("NOTE", "metadata.annotations['note']"),
            field("LABELS", "metadata.labels"),
            field("ANN", "metadata.annotations"),
            field("NODE", "spec.nodeName"),
            field("SA", "spec.serviceAccountName"),
            field("HOST_IP", "status.hostIP"),
            field("HOST_IPS", "status.hostIPs"),
            field("POD_IP", "status.podIP"),
            field("POD_IPS", "status.podIPs"),
        ]),
        ..Default::default()
    };
    let env = container_env(&pod(), &c, &[], &NONE).unwrap();
    assert_eq!(
        env,
        s(&[
            ("NAME", "web-0"),
            ("NS", "ns1"),
            ("UID", "1234-abcd"),
            ("APP", "web"),
            ("MISSING", ""),
            ("NOTE", "hi \"there\""),
            ("LABELS", "app=\"web\""),
            ("ANN", "note=\"hi \\\"there\\\"\""),
            ("NODE", "node-1"),
            ("SA", "sa"),
            ("HOST_IP", "192.168.1.2"),
            ("HOST_IPS", "192.168.1.2,fd00::2"),
            ("POD_IP", "10.244.1.5"),
            ("POD_IPS", "10.244.1.5,fd00:10::5"),
        ])
    );
    let bad = Container {
        name: "c".into(),
        env: Some(vec![field("X", "spec.hostname")]),
        ..Default::default()
    };
    assert_eq!(
        container_env(&pod(), &bad, &[], &NONE).unwrap_err(),
        "unsupported fieldPath: spec.hostname"
    );
}

#[test]
fn config_maps_and_secrets() {
    let cm = |optional| {
        from(
            "CM",
            EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "cfg".into(),
                    key: "k".into(),
                    optional,
                }),
                ..Default::default()
            },
        )
    };
    let secret = |optional| {
        from(
            "S",
            EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "creds".into(),
                    key: "k".into(),
                    optional,
                }),
                ..Default::default()
            },
        )
    };
    let mk = |env: Vec<EnvVar>, env_from: Option<Vec<EnvFromSource>>| Container {
        name: "c".into(),
        env: Some(env),
        env_from,
        ..Default::default()
    };
    let p = pod();
    assert_eq!(
        container_env(&p, &mk(vec![cm(None)], None), &[], &NONE).unwrap_err(),
        "configmap \"cfg\" not found"
    );
    assert_eq!(
        container_env(&p, &mk(vec![secret(Some(false))], None), &[], &NONE).unwrap_err(),
        "secret \"creds\" not found"
    );
    let ok = container_env(
        &p,
        &mk(
            vec![cm(Some(true)), secret(Some(true)), var("A", "1")],
            None,
        ),
        &[],
        &NONE,
    )
    .unwrap();
    assert_eq!(ok, s(&[("A", "1")]));

    let env_from = |optional| {
        Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "bulk".into(),
                optional,
            }),
            ..Default::default()
        }])
    };
    assert_eq!(
        container_env(&p, &mk(vec![], env_from(None)), &[], &NONE).unwrap_err(),
        "configmap \"bulk\" not found"
    );
    assert!(
        container_env(&p, &mk(vec![], env_from(Some(true))), &[], &NONE)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn resource_field_refs() {
    let rf = |name: &str, resource: &str, divisor: Option<&str>| {
        from(
            name,
            EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    resource: resource.into(),
                    divisor: divisor.map(|d| Quantity(d.into())),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
    };
    let c = Container {
        name: "c".into(),
        resources: Some(ResourceRequirements {
            limits: Some(
                [
                    ("cpu".to_string(), Quantity("1500m".into())),
                    ("memory".to_string(), Quantity("128Mi".into())),
                ]
                .into(),
            ),
            requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
            ..Default::default()
        }),
        env: Some(vec![
            rf("CPU_LIMIT", "limits.cpu", None),
            rf("CPU_LIMIT_M", "limits.cpu", Some("1m")),
            rf("CPU_REQ", "requests.cpu", None),
            rf("CPU_REQ_M", "requests.cpu", Some("1m")),
            rf("MEM_LIMIT", "limits.memory", None),
            rf("MEM_LIMIT_MI", "limits.memory", Some("1Mi")),
            rf("MEM_REQ", "requests.memory", Some("1Mi")),
            rf("EPH", "requests.ephemeral-storage", None),
        ]),
        ..Default::default()
    };
    let env = container_env(&pod(), &c, &[], &NONE).unwrap();
    assert_eq!(
        env,
        s(&[
            ("CPU_LIMIT", "2"),
            ("CPU_LIMIT_M", "1500"),
            ("CPU_REQ", "1"),
            ("CPU_REQ_M", "250"),
            ("MEM_LIMIT", "134217728"),
            ("MEM_LIMIT_MI", "128"),
            ("MEM_REQ", "128"),
            ("EPH", "0"),
        ])
    );
    let unset = Container {
        name: "c".into(),
        env: Some(vec![
            rf("CPU", "limits.cpu", None),
            rf("MEM", "limits.memory", None),
        ]),
        ..Default::default()
    };
    let env = container_env(&pod(), &unset, &[], &NONE).unwrap();
    assert!(env[0].1.parse::<u64>().unwrap() >= 1);
    assert!(env[1].1.parse::<u64>().unwrap() > 0);
}

/// Present objects: `envFrom` with a prefix (invalid names skipped and reported as the kubelet's
/// event says), `configMapKeyRef`/`secretKeyRef` values, a missing key, `env` over `envFrom`.
#[test]
fn values_from_config_maps_and_secrets() {
    let objects = Fixed {
        config_maps: vec![serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns1", "name": "cfg"},
            "data": {"mode": "fast", "1bad": "x", "level": "3"},
        }))
        .unwrap()],
        secrets: vec![serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns1", "name": "creds"},
            "data": {"password": "czNjcmV0"},
        }))
        .unwrap()],
    };
    let c: Container = serde_json::from_value(serde_json::json!({
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cfg"}}, {"prefix": "DB_", "secretRef": {"name": "creds"}}],
        "env": [
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "mode", "value": "$(level)x"},
            {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": true}}},
        ],
    }))
    .unwrap();
    let env = container_env(&pod(), &c, &[], &objects).unwrap();
    assert_eq!(
        env,
        s(&[
            ("level", "3"),
            ("mode", "3x"),
            ("DB_password", "s3cret"),
            ("PASS", "s3cret")
        ])
    );
    assert_eq!(
        invalid_env_from_keys(&pod(), &c, &objects),
        ["Keys [1bad] from the EnvFrom configMap ns1/cfg were skipped since they are considered invalid environment variable names."]
    );
    let missing: Container = serde_json::from_value(serde_json::json!({"name": "c",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]}))
    .unwrap();
    assert_eq!(
        container_env(&pod(), &missing, &[], &objects).unwrap_err(),
        "couldn't find key nope in ConfigMap ns1/cfg"
    );
}
