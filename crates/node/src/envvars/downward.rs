//! Downward-API values of a container's environment (`valueFrom.fieldRef` and
//! `valueFrom.resourceFieldRef`): the kubelet's `podFieldSelectorRuntimeValue`
//! (`pkg/fieldpath`) and `containerResourceRuntimeValue`
//! (`resource.ExtractContainerResourceValue`), with the exact quantity arithmetic they need.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

/// `podFieldSelectorRuntimeValue` + `fieldpath.ExtractFieldPathAsString`.
pub(super) fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
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
pub(super) fn resource_value(
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

#[cfg(test)]
mod tests {
    use super::*;

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
