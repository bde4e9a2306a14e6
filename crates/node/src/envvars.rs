//! What the kubelet puts in a container's environment: the container's own `env` (with
//! `$(VAR)` references expanded and downward-API values filled in) followed by the Service
//! variables (`KUBERNETES_SERVICE_HOST`, `MY_SVC_PORT_80_TCP_ADDR`, ...).
//!
//! Mirrors `kubelet.getServiceEnvVarMap`, `pkg/kubelet/envvars.FromServices`,
//! `kubelet.makeEnvironmentVariables` (without ConfigMaps and Secrets, which svcnet does not
//! serve) and `third_party/forked/golang/expansion`.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod, Service};

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

/// The environment of `container` of `pod`: its `env` in declared order, then the variables of
/// `service_env` (see [`service_env`]) it does not set itself.
///
/// - `value`s have `$(VAR)` references expanded against the variables defined before them and
///   the Service variables (see [`expand`]);
/// - `valueFrom.fieldRef`: `metadata.name`, `metadata.namespace`, `metadata.uid`,
///   `metadata.labels['k']`, `metadata.annotations['k']` (also the whole maps, as `k="v"` lines),
///   `spec.nodeName`, `spec.serviceAccountName`, `status.hostIP`, `status.hostIPs`,
///   `status.podIP`, `status.podIPs` (comma-joined). The IPs are read from `pod.status`, so the
///   caller fills it (pod IPs from the sandbox, host IPs from the node) before calling;
/// - `valueFrom.resourceFieldRef`: `limits.*`/`requests.*` of the named container (default
///   this one) divided by `divisor` and rounded up, as the kubelet does. Differences: an unset
///   `limits.cpu`/`limits.memory` is the node's CPU count / `MemTotal` (the kubelet uses the
///   node's allocatable), any other unset value is `"0"` (an unset request takes the limit,
///   as API defaulting would);
/// - `valueFrom.configMapKeyRef`/`secretKeyRef` and `envFrom`: svcnet serves no ConfigMaps or
///   Secrets, so these fail as the kubelet does when the object is missing
///   (`configmap "x" not found`), unless marked `optional`, in which case they are skipped.
///
/// A variable declared twice keeps its first position and takes the last value.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    service_env: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    for from in container.env_from.as_deref().unwrap_or_default() {
        if let Some(cm) = &from.config_map_ref {
            if !cm.optional.unwrap_or(false) {
                return Err(format!("configmap {:?} not found", cm.name));
            }
        }
        if let Some(s) = &from.secret_ref {
            if !s.optional.unwrap_or(false) {
                return Err(format!("secret {:?} not found", s.name));
            }
        }
    }

    let services: HashMap<&str, &str> = service_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for var in container.env.as_deref().unwrap_or_default() {
        let mut value = var.value.clone().unwrap_or_default();
        if !value.is_empty() {
            value = expand_with(&value, |name| {
                index
                    .get(name)
                    .map(|&i| out[i].1.as_str())
                    .or_else(|| services.get(name).copied())
            });
        }
        if let Some(src) = &var.value_from {
            if let Some(f) = &src.field_ref {
                value = field_value(pod, &f.field_path)?;
            } else if let Some(r) = &src.resource_field_ref {
                value = resource_value(pod, container, r)?;
            } else if let Some(cm) = &src.config_map_key_ref {
                if cm.optional.unwrap_or(false) {
                    continue;
                }
                return Err(format!("configmap {:?} not found", cm.name));
            } else if let Some(s) = &src.secret_key_ref {
                if s.optional.unwrap_or(false) {
                    continue;
                }
                return Err(format!("secret {:?} not found", s.name));
            }
        }
        match index.get(&var.name) {
            Some(&i) => out[i].1 = value,
            None => {
                index.insert(var.name.clone(), out.len());
                out.push((var.name.clone(), value));
            }
        }
    }
    for (k, v) in service_env {
        if !index.contains_key(k) {
            index.insert(k.clone(), out.len());
            out.push((k.clone(), v.clone()));
        }
    }
    Ok(out)
}

/// `podFieldSelectorRuntimeValue` + `fieldpath.ExtractFieldPathAsString`.
fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let md = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let v = match path {
        "metadata.name" => md.name.clone().unwrap_or_default(),
        "metadata.namespace" => md.namespace.clone().unwrap_or_default(),
        "metadata.uid" => md.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(md.labels.as_ref()),
        "metadata.annotations" => format_map(md.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status
            .and_then(|s| {
                s.host_ip
                    .clone()
                    .or_else(|| s.host_ips.as_ref()?.first().map(|h| h.ip.clone()))
            })
            .unwrap_or_default(),
        "status.hostIPs" => status
            .map(|s| match s.host_ips.as_deref() {
                Some(ips) if !ips.is_empty() => ips
                    .iter()
                    .map(|h| h.ip.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                _ => s.host_ip.clone().unwrap_or_default(),
            })
            .unwrap_or_default(),
        "status.podIP" => status
            .and_then(|s| {
                s.pod_ip
                    .clone()
                    .or_else(|| s.pod_ips.as_ref()?.first().map(|p| p.ip.clone()))
            })
            .unwrap_or_default(),
        "status.podIPs" => status
            .map(|s| match s.pod_ips.as_deref() {
                Some(ips) if !ips.is_empty() => ips
                    .iter()
                    .map(|p| p.ip.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                _ => s.pod_ip.clone().unwrap_or_default(),
            })
            .unwrap_or_default(),
        _ => {
            if let Some(key) = subscript(path, "metadata.labels") {
                md.labels
                    .as_ref()
                    .and_then(|m| m.get(key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = subscript(path, "metadata.annotations") {
                md.annotations
                    .as_ref()
                    .and_then(|m| m.get(key).cloned())
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath: {path}"));
            }
        }
    };
    Ok(v)
}

/// `metadata.labels['key']` → `key` (`fieldpath.SplitMaybeSubscriptedPath`).
fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    let inner = rest.strip_prefix('[')?.strip_suffix(']')?;
    inner.strip_prefix('\'')?.strip_suffix('\'')
}

/// `fieldpath.FormatMap`: sorted `key="value"` lines.
fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// `containerResourceRuntimeValue` / `resource.ExtractContainerResourceValue`.
fn resource_value(
    pod: &Pod,
    container: &Container,
    sel: &k8s_openapi::api::core::v1::ResourceFieldSelector,
) -> Result<String, String> {
    let target = match sel.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => container,
        Some(name) if name == container.name => container,
        Some(name) => pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
            .ok_or_else(|| format!("container {name:?} not found in pod"))?,
    };
    let (kind, resource) = sel
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {}", sel.resource))?;
    if !matches!(kind, "limits" | "requests")
        || !(matches!(resource, "cpu" | "memory" | "ephemeral-storage")
            || resource.starts_with("hugepages-"))
    {
        return Err(format!("unsupported container resource : {}", sel.resource));
    }
    let res = target.resources.as_ref();
    let limit = res
        .and_then(|r| r.limits.as_ref())
        .and_then(|m| m.get(resource));
    let request = res
        .and_then(|r| r.requests.as_ref())
        .and_then(|m| m.get(resource));
    let quantity = match kind {
        "limits" => limit,
        _ => request.or(limit),
    };
    let divisor = match sel.divisor.as_ref() {
        Some(d) => parse_quantity(&d.0).ok_or_else(|| format!("invalid divisor {:?}", d.0))?,
        None => Rational::ONE,
    };
    let cpu = resource == "cpu";
    let value = match quantity {
        Some(q) => parse_quantity(&q.0).ok_or_else(|| format!("invalid quantity {:?}", q.0))?,
        None if kind == "limits" && cpu => {
            Rational::int(std::thread::available_parallelism().map_or(1, |n| n.get()) as i128)
        }
        None if kind == "limits" && resource == "memory" => Rational::int(mem_total()),
        None => Rational::ZERO,
    };
    Ok(if cpu {
        // convertResourceCPUToString: ceil(milli / divisor milli), at least 1 core for
        // anything positive.
        let m = value.milli_ceil();
        let d = divisor.milli_ceil().max(1);
        ceil_div(m, d).to_string()
    } else {
        let v = value.ceil();
        let d = divisor.ceil().max(1);
        ceil_div(v, d).to_string()
    })
}

fn mem_total() -> i128 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let kb = l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
                kb.trim().parse::<i128>().ok()
            })
        })
        .map_or(0, |kb| kb * 1024)
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) {
        q + 1
    } else {
        q
    }
}

/// An exact quantity `num / den` (`den` > 0).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rational {
    num: i128,
    den: i128,
}

impl Rational {
    const ZERO: Rational = Rational { num: 0, den: 1 };
    const ONE: Rational = Rational { num: 1, den: 1 };
    fn int(n: i128) -> Rational {
        Rational { num: n, den: 1 }
    }
    fn ceil(self) -> i128 {
        ceil_div(self.num, self.den)
    }
    fn milli_ceil(self) -> i128 {
        ceil_div(self.num * 1000, self.den)
    }
}

/// A Kubernetes quantity (`500m`, `1.5Gi`, `2e3`, `128M`).
fn parse_quantity(s: &str) -> Option<Rational> {
    let s = s.trim();
    let (sign, s) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(end);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') || number.len() > 30 {
        return None;
    }
    let mut num: i128 = format!("{int}{frac}").parse().ok()?;
    let mut den: i128 = 10i128.checked_pow(frac.len() as u32)?;
    let (base, exp): (i128, u32) = match suffix {
        "" => (10, 0),
        "m" => {
            den = den.checked_mul(1000)?;
            (10, 0)
        }
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" => (2, 10),
        "Mi" => (2, 20),
        "Gi" => (2, 30),
        "Ti" => (2, 40),
        "Pi" => (2, 50),
        "Ei" => (2, 60),
        _ => {
            let e = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let e: i32 = e.parse().ok()?;
            if e >= 0 {
                (10, e as u32)
            } else {
                den = den.checked_mul(10i128.checked_pow(e.unsigned_abs())?)?;
                (10, 0)
            }
        }
    };
    num = num.checked_mul(base.checked_pow(exp)?)?;
    Some(Rational {
        num: sign * num,
        den,
    })
}

/// Expands `$(VAR)` references in `s` (a command or an argument) against `env` as the kubelet
/// does: `$(NAME)` becomes the value of `NAME` when `env` defines it (the last definition wins)
/// and stays as written otherwise; `$$` becomes `$`; any other `$` is kept.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    expand_with(s, |name| map.get(name).copied())
}

/// `expansion.Expand` with a lookup; unknown names are left as `$(NAME)`.
fn expand_with<'a>(s: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if after.is_empty() {
            // A trailing `$` is kept.
            out.push('$');
            rest = after;
            break;
        }
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(close) => {
                    let name = &tail[..close];
                    match lookup(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[close + 1..];
                }
                None => {
                    // An unclosed reference is kept as written.
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, HostIP,
        ObjectFieldSelector, PodIP, PodSpec, PodStatus, ResourceFieldSelector,
        ResourceRequirements, SecretKeySelector, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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

    fn s(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion() {
        let env = s(&[("A", "alpha"), ("B", "$(A)"), ("EMPTY", "")]);
        assert_eq!(expand("$(A)-$(A)", &env), "alpha-alpha");
        assert_eq!(expand("x$(UNKNOWN)y", &env), "x$(UNKNOWN)y");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$$$(A)", &env), "$alpha");
        assert_eq!(expand("a$$b", &env), "a$b");
        assert_eq!(expand("$A $", &env), "$A $");
        assert_eq!(expand("$(A", &env), "$(A");
        assert_eq!(expand("$(EMPTY)|", &env), "|");
        assert_eq!(expand("$()", &env), "$()");
        assert_eq!(expand("é$é$(A)", &env), "é$éalpha");
        // No recursive expansion.
        assert_eq!(expand("$(B)", &env), "$(A)");
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
        let env = container_env(&pod(), &c, &services).unwrap();
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
        let env = container_env(&pod(), &c, &[]).unwrap();
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
            container_env(&pod(), &bad, &[]).unwrap_err(),
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
            container_env(&p, &mk(vec![cm(None)], None), &[]).unwrap_err(),
            "configmap \"cfg\" not found"
        );
        assert_eq!(
            container_env(&p, &mk(vec![secret(Some(false))], None), &[]).unwrap_err(),
            "secret \"creds\" not found"
        );
        let ok = container_env(
            &p,
            &mk(
                vec![cm(Some(true)), secret(Some(true)), var("A", "1")],
                None,
            ),
            &[],
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
            container_env(&p, &mk(vec![], env_from(None)), &[]).unwrap_err(),
            "configmap \"bulk\" not found"
        );
        assert!(container_env(&p, &mk(vec![], env_from(Some(true))), &[])
            .unwrap()
            .is_empty());
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
        let env = container_env(&pod(), &c, &[]).unwrap();
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
        let env = container_env(&pod(), &unset, &[]).unwrap();
        assert!(env[0].1.parse::<u64>().unwrap() >= 1);
        assert!(env[1].1.parse::<u64>().unwrap() > 0);
    }

    #[test]
    fn quantities() {
        let q = |s: &str| parse_quantity(s).map(|r| (r.milli_ceil(), r.ceil()));
        assert_eq!(q("500m"), Some((500, 1)));
        assert_eq!(q("0.5"), Some((500, 1)));
        assert_eq!(q("2"), Some((2000, 2)));
        assert_eq!(q("1Ki"), Some((1024000, 1024)));
        assert_eq!(q("1.5Gi"), Some((1610612736000, 1610612736)));
        assert_eq!(q("1e3"), Some((1000000, 1000)));
        assert_eq!(q("1k"), Some((1000000, 1000)));
        assert_eq!(q("1.1m"), Some((2, 1)));
        assert_eq!(q("bogus"), None);
        assert_eq!(q("1Xi"), None);
    }
}
