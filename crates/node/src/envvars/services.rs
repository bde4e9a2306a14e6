//! The Service variables every container gets (the kubelet's `getServiceEnvVarMap` and
//! `pkg/kubelet/envvars.FromServices`): `<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT[_<PORT>]`
//! and the Docker-link variables `<SVC>_PORT_<port>_<PROTO>...`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

/// The name of the master service, whose variables every pod gets.
const MASTER_SERVICE: &str = "kubernetes";
const MASTER_NAMESPACE: &str = "default";

/// The Service variables of a pod in `pod_namespace`, sorted by name.
///
/// `services` may hold the Services of any namespaces (the cluster's whole list is fine): the
/// master service `default/kubernetes` is always included; the Services of `pod_namespace` only
/// with `enable_service_links` (a pod's `spec.enableServiceLinks`, default true), in which case a
/// same-named Service of the pod's namespace wins over the master one. Services without a
/// cluster IP (headless, ExternalName) are skipped.
pub fn service_env(
    services: &[Service],
    pod_namespace: &str,
    enable_service_links: bool,
) -> Vec<(String, String)> {
    // kubelet.getServiceEnvVarMap
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services {
        if cluster_ip(svc).is_none() {
            continue;
        }
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
        if ns == MASTER_NAMESPACE && name == MASTER_SERVICE {
            chosen.entry(name).or_insert(svc);
        } else if ns == pod_namespace && enable_service_links {
            chosen.insert(name, svc);
        }
    }
    let mut out = BTreeMap::new();
    for (name, svc) in chosen {
        let ip = cluster_ip(svc).expect("filtered above");
        from_service(name, ip, svc, &mut out);
    }
    out.into_iter().collect()
}

/// The cluster IP of a Service whose IP is set (`IsServiceIPSet`).
fn cluster_ip(svc: &Service) -> Option<&str> {
    let ip = svc.spec.as_ref()?.cluster_ip.as_deref()?;
    (!ip.is_empty() && ip != "None").then_some(ip)
}

/// `makeEnvVariableName`: upper case, `-` → `_`.
fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// `envvars.FromServices` for one Service.
fn from_service(name: &str, ip: &str, svc: &Service, out: &mut BTreeMap<String, String>) {
    let prefix = env_name(name);
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    out.insert(format!("{prefix}_SERVICE_HOST"), ip.to_string());
    // The kubelet indexes the first port unconditionally; a Service with a cluster IP always has
    // one (validation), but do not panic on a malformed object.
    let Some(first) = ports.first() else {
        return;
    };
    let port_var = format!("{prefix}_SERVICE_PORT");
    out.insert(port_var.clone(), first.port.to_string());
    for sp in ports {
        if let Some(pn) = sp.name.as_deref().filter(|n| !n.is_empty()) {
            out.insert(format!("{port_var}_{}", env_name(pn)), sp.port.to_string());
        }
    }
    // Docker-link variables (makeLinkVariables).
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    for (i, sp) in ports.iter().enumerate() {
        let proto = sp.protocol.as_deref().unwrap_or("TCP");
        let (lower, upper) = (proto.to_lowercase(), proto.to_uppercase());
        let url = format!("{lower}://{host}:{}", sp.port);
        if i == 0 {
            out.insert(format!("{prefix}_PORT"), url.clone());
        }
        let pp = format!("{prefix}_PORT_{}_{upper}", sp.port);
        out.insert(format!("{pp}_PROTO"), lower);
        out.insert(format!("{pp}_PORT"), sp.port.to_string());
        out.insert(format!("{pp}_ADDR"), ip.to_string());
        out.insert(pp, url);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn svc(ns: &str, name: &str, ip: &str, ports: &[(&str, i32, Option<&str>)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| ServicePort {
                            name: (!n.is_empty()).then(|| n.to_string()),
                            port: *p,
                            protocol: proto.map(str::to_string),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn master() -> Service {
        svc(
            "default",
            "kubernetes",
            "10.96.0.1",
            &[("https", 443, None)],
        )
    }

    #[test]
    fn two_named_ports() {
        let s = svc(
            "ns1",
            "my-svc",
            "10.96.5.7",
            &[("http", 80, Some("TCP")), ("dns-udp", 53, Some("UDP"))],
        );
        let env = service_env(&[s], "ns1", true);
        let want: Vec<(String, String)> = [
            ("MY_SVC_PORT", "tcp://10.96.5.7:80"),
            ("MY_SVC_PORT_53_UDP", "udp://10.96.5.7:53"),
            ("MY_SVC_PORT_53_UDP_ADDR", "10.96.5.7"),
            ("MY_SVC_PORT_53_UDP_PORT", "53"),
            ("MY_SVC_PORT_53_UDP_PROTO", "udp"),
            ("MY_SVC_PORT_80_TCP", "tcp://10.96.5.7:80"),
            ("MY_SVC_PORT_80_TCP_ADDR", "10.96.5.7"),
            ("MY_SVC_PORT_80_TCP_PORT", "80"),
            ("MY_SVC_PORT_80_TCP_PROTO", "tcp"),
            ("MY_SVC_SERVICE_HOST", "10.96.5.7"),
            ("MY_SVC_SERVICE_PORT", "80"),
            ("MY_SVC_SERVICE_PORT_DNS_UDP", "53"),
            ("MY_SVC_SERVICE_PORT_HTTP", "80"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, want);
    }

    #[test]
    fn unnamed_port_defaults_to_tcp_and_ipv6_is_bracketed() {
        let s = svc("ns1", "v6", "fd00::1", &[("", 8080, None)]);
        let env = service_env(&[s], "ns1", true);
        assert_eq!(get(&env, "V6_SERVICE_HOST"), Some("fd00::1"));
        assert_eq!(get(&env, "V6_SERVICE_PORT"), Some("8080"));
        assert_eq!(get(&env, "V6_PORT"), Some("tcp://[fd00::1]:8080"));
        assert_eq!(get(&env, "V6_PORT_8080_TCP"), Some("tcp://[fd00::1]:8080"));
        assert_eq!(get(&env, "V6_PORT_8080_TCP_ADDR"), Some("fd00::1"));
        assert!(env.iter().all(|(k, _)| !k.starts_with("V6_SERVICE_PORT_")));
    }

    #[test]
    fn headless_and_external_name_are_skipped() {
        let headless = svc("ns1", "headless", "None", &[("", 80, None)]);
        let mut ext = svc("ns1", "ext", "", &[]);
        ext.spec.as_mut().unwrap().cluster_ip = None;
        ext.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        let empty = svc("ns1", "empty", "", &[("", 80, None)]);
        assert!(service_env(&[headless, ext, empty], "ns1", true).is_empty());
    }

    #[test]
    fn master_service_always_other_namespaces_never() {
        let services = [
            master(),
            svc("ns1", "a", "10.96.0.10", &[("", 80, None)]),
            svc("ns2", "b", "10.96.0.11", &[("", 80, None)]),
            svc("default", "c", "10.96.0.12", &[("", 80, None)]),
        ];
        let env = service_env(&services, "ns1", true);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(
            get(&env, "KUBERNETES_PORT_443_TCP"),
            Some("tcp://10.96.0.1:443")
        );
        assert_eq!(get(&env, "A_SERVICE_HOST"), Some("10.96.0.10"));
        assert_eq!(get(&env, "B_SERVICE_HOST"), None);
        assert_eq!(get(&env, "C_SERVICE_HOST"), None);
        let names: Vec<&String> = env.iter().map(|(k, _)| k).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);

        // A pod of `default` gets the other Services of `default` too.
        let env = service_env(&services, "default", true);
        assert_eq!(get(&env, "C_SERVICE_HOST"), Some("10.96.0.12"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
    }

    #[test]
    fn links_disabled_keeps_only_master() {
        let services = [
            svc("ns1", "a", "10.96.0.10", &[("", 80, None)]),
            master(),
            svc("ns1", "kubernetes", "10.96.9.9", &[("", 80, None)]),
        ];
        let env = service_env(&services, "ns1", false);
        assert!(env.iter().all(|(k, _)| k.starts_with("KUBERNETES_")));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));

        // With links, the pod namespace's `kubernetes` wins, whatever the order.
        let env = service_env(&services, "ns1", true);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.9.9"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), None);
        let mut rev = services.to_vec();
        rev.reverse();
        let env = service_env(&rev, "ns1", true);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.9.9"));
    }
}
