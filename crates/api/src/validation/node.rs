//! Node validation: mirrors `ValidateNode` and `ValidateNodeUpdate` (which Kubernetes also runs
//! for status updates) of `pkg/apis/core/validation/validation.go`: name, taints, podCIDRs,
//! providerID, duplicate addresses.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};

use super::gofmt;
use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{
    is_valid_label_value, name_is_dns_subdomain, parse_cidr_sloppy, validate_cidr,
    validate_qualified_name,
};
use super::{s, TAINT_EFFECTS};
use crate::field::{go_quote, BadValue, Error, ErrorList, Path};

fn taint_go(t: &Taint) -> BadValue {
    BadValue::Raw(format!(
        "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:{}}}",
        go_quote(&t.key),
        go_quote(s(&t.value)),
        go_quote(&t.effect),
        if t.time_added.is_some() {
            "time.Date(...)"
        } else {
            "<nil>"
        }
    ))
}

/// `validateNodeTaints` (Kubernetes reports them under `metadata.taints`, sic).
fn validate_taints(taints: &[Taint], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, t) in taints.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_qualified_name(&t.key, &p.child("key")));
        let value = s(&t.value);
        let msgs = is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(Error::invalid(&p.child("value"), value, msgs.join(";")));
        }
        if t.effect.is_empty() {
            errs.push(Error::required(&p.child("effect"), ""));
        } else if !TAINT_EFFECTS.contains(&t.effect.as_str()) {
            errs.push(Error::not_supported(
                &p.child("effect"),
                t.effect.as_str(),
                TAINT_EFFECTS,
            ));
        }
        if !seen.insert((t.effect.clone(), t.key.clone())) {
            let mut e = Error::duplicate(&p, taint_go(t));
            e.detail = "taints must be unique by key and effect pair".into();
            errs.push(e);
        }
    }
    errs
}

fn pod_cidrs(spec: &NodeSpec) -> &[String] {
    spec.pod_cidrs.as_deref().unwrap_or_default()
}

/// `ValidateNode`
pub fn validate_create(node: &Node) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = validate_object_meta(&node.metadata, false, name_is_dns_subdomain, &meta_path);
    let spec = node.spec.clone().unwrap_or_default();
    errs.extend(validate_taints(
        spec.taints.as_deref().unwrap_or_default(),
        &meta_path.child("taints"),
    ));
    let cidrs = pod_cidrs(&spec);
    let p = Path::new("spec").child("podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        errs.extend(validate_cidr(c, &p.index(i)));
    }
    if cidrs.len() > 1 {
        let parsed: Vec<_> = cidrs.iter().filter_map(|c| parse_cidr_sloppy(c)).collect();
        let v6 = parsed.iter().filter(|(ip, _)| ip.is_ipv6()).count();
        let dual = parsed.len() == cidrs.len() && v6 > 0 && v6 < parsed.len();
        if !dual || cidrs.len() > 2 {
            errs.push(Error::invalid(
                &p,
                gofmt::strings(cidrs),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            if !seen.insert(c) {
                errs.push(Error::duplicate(&p.index(i), c.as_str()));
            }
        }
    }
    errs
}

/// `ValidateNodeUpdate`: podCIDRs and providerID may only be set once, addresses unique.
pub fn validate_update(new: &Node, old: &Node) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &meta_path);
    let ns = new.spec.clone().unwrap_or_default();
    let os = old.spec.clone().unwrap_or_default();
    let mut seen = BTreeSet::new();
    let addresses = new.status.as_ref().and_then(|s| s.addresses.clone());
    for (i, a) in addresses.iter().flatten().enumerate() {
        if !seen.insert((a.type_.clone(), a.address.clone())) {
            errs.push(Error::duplicate(
                &Path::new("status").child("addresses").index(i),
                BadValue::Raw(format!(
                    "core.NodeAddress{{Type:{}, Address:{}}}",
                    go_quote(&a.type_),
                    go_quote(&a.address)
                )),
            ));
        }
    }
    let (old_cidrs, new_cidrs) = (pod_cidrs(&os), pod_cidrs(&ns));
    if !old_cidrs.is_empty() {
        let forbidden = || {
            Error::forbidden(
                &Path::new("spec").child("podCIDRs"),
                "node updates may not change podCIDR except from \"\" to valid",
            )
        };
        if old_cidrs.len() != new_cidrs.len() {
            errs.push(forbidden());
        } else {
            for (o, n) in old_cidrs.iter().zip(new_cidrs) {
                if o != n {
                    errs.push(forbidden());
                }
            }
        }
    }
    let old_provider = s(&os.provider_id);
    if !old_provider.is_empty() && old_provider != s(&ns.provider_id) {
        errs.push(Error::forbidden(
            &Path::new("spec").child("providerID"),
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    errs.extend(validate_taints(
        ns.taints.as_deref().unwrap_or_default(),
        &meta_path.child("taints"),
    ));
    if s(&ns.external_id) != s(&os.external_id) {
        errs.push(Error::forbidden(
            &Path::new("spec").child("externalID"),
            "may not be updated",
        ));
    }
    errs
}

/// Node status updates use the same rules as updates in Kubernetes.
pub fn validate_status_update(new: &Node, old: &Node) -> ErrorList {
    validate_update(new, old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::messages;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn create_and_update() {
        let n =
            node(json!({"metadata": {"name": "node-1"}, "spec": {"podCIDRs": ["10.244.1.0/24"]}}));
        assert_eq!(validate_create(&n), vec![]);
        let bad = node(json!({"metadata": {"name": "Node_1", "namespace": "x"},
            "spec": {"podCIDRs": ["10.244.1.0/33", "10.244.2.0/24"], "taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}, {"key": "j", "effect": "Sometimes"}]}}));
        assert_eq!(
            messages(&validate_create(&bad)),
            vec![
                r#"metadata.name: Invalid value: "Node_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
                "metadata.namespace: Forbidden: not allowed on this type",
                r#"metadata.taints[1]: Duplicate value: core.Taint{Key:"k", Value:"", Effect:"NoSchedule", TimeAdded:<nil>}: taints must be unique by key and effect pair"#,
                r#"metadata.taints[2].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute""#,
                r#"spec.podCIDRs[0]: Invalid value: "10.244.1.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"#,
                r#"spec.podCIDRs: Invalid value: []string{"10.244.1.0/33", "10.244.2.0/24"}: may specify no more than one CIDR for each IP family"#,
            ]
        );
        let mut old = n.clone();
        old.metadata.resource_version = Some("1".into());
        let mut new = old.clone();
        new.spec.as_mut().unwrap().pod_cidrs = Some(vec!["10.244.9.0/24".into()]);
        assert_eq!(
            messages(&validate_update(&new, &old)),
            vec![
                r#"spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid"#
            ]
        );
        let mut unset = old.clone();
        unset.spec.as_mut().unwrap().pod_cidrs = None;
        assert_eq!(validate_update(&old, &unset), vec![]);
    }
}
