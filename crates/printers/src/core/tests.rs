//! The core printers' tables: the seed documents' `kubectl get` outputs and cases from
//! upstream's `printers_test.go`, per printer.

use pretty_assertions::assert_eq;
use serde_json::{json, Value};

use crate::testing::{ago, json_row, meta, row};

#[test]
fn services() {
    let cases: Vec<(&str, Value, Vec<Value>)> = vec![
        (
            "seed: kubernetes",
            json!({
                "metadata": meta("kubernetes", 2 * 86400 + 18 * 3600 + 60),
                "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            }),
            json_row(
                r#"["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP", "2d18h", "<none>"]"#,
            ),
        ),
        (
            "seed: service-clusterip",
            json!({
                "metadata": meta("service-clusterip", 4 * 60 + 42),
                "spec": {"selector": {"app": "service-env"}, "clusterIP": "10.97.1.1",
                         "clusterIPs": ["10.97.1.1"], "type": "ClusterIP",
                         "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]},
            }),
            json_row(
                r#"["service-clusterip", "ClusterIP", "10.97.1.1", "<none>", "80/TCP", "4m42s", "app=service-env"]"#,
            ),
        ),
        (
            "seed: headless",
            json!({
                "metadata": meta("service-headliness", 43),
                "spec": {"selector": {"app": "service-env"}, "clusterIP": "None", "clusterIPs": ["None"],
                         "type": "ClusterIP", "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]},
            }),
            json_row(
                r#"["service-headliness", "ClusterIP", "None", "<none>", "80/TCP", "43s", "app=service-env"]"#,
            ),
        ),
        (
            "seed: service-nodeport",
            json!({
                "metadata": meta("service-nodeport", 20),
                "spec": {"selector": {"app": "service-env"}, "type": "NodePort",
                         "clusterIP": "10.101.89.79", "clusterIPs": ["10.101.89.79"],
                         "ports": [{"port": 80, "nodePort": 30002, "targetPort": 80, "protocol": "TCP"}]},
            }),
            json_row(
                r#"["service-nodeport", "NodePort", "10.101.89.79", "<none>", "80:30002/TCP", "20s", "app=service-env"]"#,
            ),
        ),
        (
            "seed: service-externalname",
            json!({
                "metadata": meta("service-externalname", 5),
                "spec": {"type": "ExternalName", "externalName": "www.baidu.com"},
            }),
            json_row(
                r#"["service-externalname", "ExternalName", "<none>", "www.baidu.com", "<none>", "5s", "<none>"]"#,
            ),
        ),
        (
            "seed: nginx NodePort from kubectl expose",
            json!({
                "metadata": meta("nginx", 5),
                "spec": {"type": "NodePort", "clusterIP": "10.0.0.112",
                         "ports": [{"port": 80, "nodePort": 31230, "protocol": "TCP"}],
                         "selector": {"run": "nginx"}},
            }),
            json_row(
                r#"["nginx", "NodePort", "10.0.0.112", "<none>", "80:31230/TCP", "5s", "run=nginx"]"#,
            ),
        ),
        (
            "seed: the-bus NodePort 8080",
            json!({
                "metadata": meta("the-bus", 3600),
                "spec": {"type": "NodePort", "clusterIPs": ["10.96.69.229"],
                         "ports": [{"port": 8080, "nodePort": 31112, "targetPort": 8080, "protocol": "TCP"}],
                         "selector": {"env": "marvel"}},
            }),
            json_row(
                r#"["the-bus", "NodePort", "10.96.69.229", "<none>", "8080:31112/TCP", "60m", "env=marvel"]"#,
            ),
        ),
        (
            "load balancer with multiple ingress IPs, sorted",
            json!({
                "metadata": {"name": "service1"},
                "spec": {"clusterIPs": ["1.2.3.4"], "type": "LoadBalancer",
                         "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "3.4.5.6"}, {"ip": "2.3.4.5"}]}},
            }),
            json_row(
                r#"["service1", "LoadBalancer", "1.2.3.4", "2.3.4.5,3.4.5.6", "80:31000/TCP", "<unknown>", "<none>"]"#,
            ),
        ),
        (
            "load balancer pending, several protocols",
            json!({
                "metadata": {"name": "service2"},
                "spec": {"clusterIPs": ["1.3.4.5"], "type": "LoadBalancer",
                         "ports": [{"port": 80, "protocol": "TCP"}, {"port": 8090, "protocol": "UDP"},
                                   {"port": 8000, "protocol": "TCP"}, {"port": 7777, "protocol": "SCTP"}]},
            }),
            json_row(
                r#"["service2", "LoadBalancer", "1.3.4.5", "<pending>", "80/TCP,8090/UDP,8000/TCP,7777/SCTP", "<unknown>", "<none>"]"#,
            ),
        ),
        (
            "load balancer: wide output is not elided; hostname when no IP; dedup",
            json!({
                "metadata": {"name": "service4"},
                "spec": {"clusterIPs": ["1.5.6.7"], "type": "LoadBalancer",
                         "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"foo": "bar"}},
                "status": {"loadBalancer": {"ingress": [
                    {"ip": "2.3.4.5"}, {"ip": "3.4.5.6"}, {"ip": "5.6.7.8", "hostname": "host5678"},
                    {"hostname": "lb.example.com"}, {"ip": "2.3.4.5"}]}},
            }),
            json_row(
                r#"["service4", "LoadBalancer", "1.5.6.7", "2.3.4.5,3.4.5.6,5.6.7.8,lb.example.com", "80/TCP", "<unknown>", "foo=bar"]"#,
            ),
        ),
        (
            "load balancer with ingress and external IPs",
            json!({
                "metadata": {"name": "lb"},
                "spec": {"clusterIPs": ["10.0.0.9"], "type": "LoadBalancer", "externalIPs": ["9.9.9.9"]},
                "status": {"loadBalancer": {"ingress": [{"ip": "8.8.8.8"}]}},
            }),
            json_row(
                r#"["lb", "LoadBalancer", "10.0.0.9", "8.8.8.8,9.9.9.9", "<none>", "<unknown>", "<none>"]"#,
            ),
        ),
        (
            "cluster IP with external IPs, multiple ports, selector keys sorted, defaults",
            json!({
                "metadata": {"name": "web"},
                "spec": {"clusterIP": "10.0.0.3", "externalIPs": ["1.1.1.1", "2.2.2.2"],
                         "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}],
                         "selector": {"tier": "web", "app": "shop"}},
            }),
            json_row(
                r#"["web", "ClusterIP", "10.0.0.3", "1.1.1.1,2.2.2.2", "80/TCP,53/UDP", "<unknown>", "app=shop,tier=web"]"#,
            ),
        ),
        (
            "unknown type",
            json!({"metadata": {"name": "x"}, "spec": {"type": "Weird"}}),
            json_row(r#"["x", "Weird", "<none>", "<unknown>", "<none>", "<unknown>", "<none>"]"#),
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(row("", "services", &obj), want, "{name}");
    }
}

#[test]
fn endpoints() {
    let addrs = |ips: &[&str]| Value::Array(ips.iter().map(|ip| json!({"ip": ip})).collect());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("no subsets", json!({}), "<none>"),
        (
            "seed: three pods on port 80",
            json!({"subsets": [{"addresses": addrs(&["10.244.52.222", "10.244.67.79", "10.244.67.84"]),
                                "ports": [{"port": 80, "protocol": "TCP"}]}]}),
            "10.244.52.222:80,10.244.67.79:80,10.244.67.84:80",
        ),
        (
            "more than three",
            json!({"subsets": [{"addresses": addrs(&["10.244.0.5", "10.244.1.3"]), "ports": [{"port": 80}]},
                               {"addresses": addrs(&["10.244.2.2", "10.244.2.3", "10.244.2.4"]),
                                "ports": [{"port": 80}]}]}),
            "10.244.0.5:80,10.244.1.3:80,10.244.2.2:80 + 2 more...",
        ),
        (
            "two ports per address count twice",
            json!({"subsets": [{"addresses": addrs(&["10.244.0.5", "10.244.1.3"]),
                                "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}]}),
            "10.244.0.5:80,10.244.1.3:80,10.244.0.5:443 + 1 more...",
        ),
        (
            "headless without ports",
            json!({"subsets": [{"addresses": addrs(&["10.244.0.5", "10.244.1.3"])}]}),
            "10.244.0.5,10.244.1.3",
        ),
        (
            "IPv6 is bracketed",
            json!({"subsets": [{"addresses": addrs(&["fd00::5"]), "ports": [{"port": 8080}]}]}),
            "[fd00::5]:8080",
        ),
        (
            "only not-ready addresses",
            json!({"subsets": [{"notReadyAddresses": addrs(&["10.244.0.5"]), "ports": [{"port": 80}]}]}),
            "",
        ),
    ];
    for (name, mut obj, want) in cases {
        obj["metadata"] = meta("web", 90);
        assert_eq!(
            row("", "endpoints", &obj),
            vec![json!("web"), json!(want), json!("90s")],
            "{name}"
        );
    }
}

#[test]
fn nodes() {
    let ready = |s: &str| json!({"conditions": [{"type": "Ready", "status": s}]});
    let cases: Vec<(&str, Value, Vec<Value>)> = vec![
        (
            "ready, control plane, wide info",
            json!({"metadata": {"name": "master.host.com", "creationTimestamp": ago(2 * 86400 + 18 * 3600),
                                "labels": {"node-role.kubernetes.io/control-plane": "",
                                           "kubernetes.io/hostname": "master.host.com"}},
                   "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                             {"type": "Ready", "status": "True"}],
                              "addresses": [{"type": "InternalIP", "address": "192.16.1.10"},
                                            {"type": "Hostname", "address": "master.host.com"}],
                              "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Ubuntu 24.04 LTS",
                                           "kernelVersion": "6.8.0", "containerRuntimeVersion": "svcnet://0.1.0"}}}),
            json_row(
                r#"["master.host.com", "Ready", "control-plane", "2d18h", "v1.32.0", "192.16.1.10", "<none>", "Ubuntu 24.04 LTS", "6.8.0", "svcnet://0.1.0"]"#,
            ),
        ),
        (
            "ready and cordoned",
            json!({"metadata": {"name": "foo2"}, "spec": {"unschedulable": true}, "status": ready("True")}),
            json_row(
                r#"["foo2", "Ready,SchedulingDisabled", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]"#,
            ),
        ),
        (
            "not ready",
            json!({"metadata": {"name": "foo4"}, "status": ready("False")}),
            json_row(
                r#"["foo4", "NotReady", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]"#,
            ),
        ),
        (
            "unknown ready status is NotReady",
            json!({"metadata": {"name": "foo4u"}, "status": ready("Unknown")}),
            json_row(
                r#"["foo4u", "NotReady", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]"#,
            ),
        ),
        (
            "no Ready condition, cordoned",
            json!({"metadata": {"name": "foo8"}, "spec": {"unschedulable": true},
                   "status": {"conditions": [{"type": "InvalidValue", "status": "True"}]}}),
            json_row(
                r#"["foo8", "Unknown,SchedulingDisabled", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]"#,
            ),
        ),
        (
            "roles from both label forms, sorted; first addresses of each type",
            json!({"metadata": {"name": "foo10",
                                "labels": {"node-role.kubernetes.io/master": "", "node-role.kubernetes.io/control-plane": "",
                                           "node-role.kubernetes.io/proxy": "", "kubernetes.io/role": "node",
                                           "node-role.kubernetes.io/": ""}},
                   "status": {"addresses": [{"type": "ExternalIP", "address": "2.2.2.2"},
                                            {"type": "InternalIP", "address": "3.3.3.3"},
                                            {"type": "ExternalIP", "address": "4.4.4.4"}]}}),
            json_row(
                r#"["foo10", "Unknown", "control-plane,master,node,proxy", "<unknown>", "", "3.3.3.3", "2.2.2.2", "<unknown>", "<unknown>", "<unknown>"]"#,
            ),
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(row("", "nodes", &obj), want, "{name}");
    }
}

#[test]
fn namespaces() {
    let cases = [
        (
            json!({"metadata": meta("default", 86400 * 3), "status": {"phase": "Active"}}),
            "Active",
            "3d",
        ),
        (
            json!({"metadata": meta("going", 60), "status": {"phase": "Terminating"}}),
            "Terminating",
            "60s",
        ),
        (json!({"metadata": meta("fresh", 0)}), "Active", "0s"),
    ];
    for (obj, phase, age) in cases {
        let got = row("", "namespaces", &obj);
        assert_eq!(got[1..], [json!(phase), json!(age)], "{obj}");
    }
}

#[test]
fn events() {
    let cases: Vec<(&str, Value, Vec<Value>)> = vec![
        (
            "classic event",
            json!({"metadata": meta("web.17a", 300),
                   "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{nginx}"},
                   "reason": "Pulled", "message": "  Container image already present  \n", "type": "Normal",
                   "source": {"component": "kubelet", "host": "work1.host.com"},
                   "firstTimestamp": ago(300), "lastTimestamp": ago(20), "count": 4}),
            json_row(
                r#"["20s", "Normal", "Pulled", "pod/web-1", "spec.containers{nginx}", "kubelet, work1.host.com", "Container image already present", "5m", 4, "web.17a"]"#,
            ),
        ),
        (
            "new-style event: eventTime, reporting controller, no count",
            json!({"metadata": meta("svc.1", 90),
                   "involvedObject": {"kind": "Service", "name": "web"},
                   "reason": "Allocated", "message": "ok", "type": "Normal",
                   "eventTime": "2024-06-01T11:58:30.000000Z",
                   "reportingComponent": "svcnet-controller", "reportingInstance": ""}),
            json_row(
                r#"["90s", "Normal", "Allocated", "service/web", "", "svcnet-controller", "ok", "90s", 1, "svc.1"]"#,
            ),
        ),
        (
            "series",
            json!({"metadata": meta("x", 9000),
                   "involvedObject": {"kind": "Node"},
                   "type": "Warning", "reason": "Flapping",
                   "firstTimestamp": ago(9000), "lastTimestamp": ago(8000), "count": 2,
                   "series": {"count": 7, "lastObservedTime": "2024-06-01T11:59:00.000000Z"}}),
            json_row(r#"["60s", "Warning", "Flapping", "node", "", "", "", "150m", 7, "x"]"#),
        ),
        (
            "no timestamps at all",
            json!({"metadata": {"name": "bare"}}),
            json_row(r#"["<unknown>", "", "", "", "", "", "", "<unknown>", 1, "bare"]"#),
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(row("", "events", &obj), want, "{name}");
    }
}

/// `TestPrintConfigMap`/`TestPrintSecret`'s shape: DATA counts keys.
#[test]
fn config_maps_and_secrets() {
    let cm = json!({"metadata": meta("cfg", 90), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        row("", "configmaps", &cm),
        [json!("cfg"), json!(3), json!("90s")]
    );
    assert_eq!(
        row("", "configmaps", &json!({"metadata": meta("empty", 90)})),
        [json!("empty"), json!(0), json!("90s")]
    );
    let s = json!({"metadata": meta("tls", 90), "type": "kubernetes.io/tls",
        "data": {"tls.crt": "eA==", "tls.key": "eA=="}});
    assert_eq!(
        row("", "secrets", &s),
        [
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("90s")
        ]
    );
}
