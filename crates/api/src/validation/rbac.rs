//! rbac.authorization.k8s.io/v1 validation: mirrors `pkg/apis/rbac/validation/validation.go`
//! (`ValidateRole`, `ValidateClusterRole`, `ValidatePolicyRule`, `ValidateRoleBinding`,
//! `ValidateClusterRoleBinding`, `ValidateRoleBindingSubject` and their updates). Names of
//! roles and bindings are path segments, not DNS names (`ValidateRBACName`).

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::apps::validate_label_selector;
use super::gofmt::strings;
use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::name_is_dns_subdomain;
use crate::field::{go_quote, BadValue, Error, ErrorList, Path};

/// `rbac.GroupName`.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// `ValidateRBACName` = `path.IsValidPathSegmentName`.
pub fn name_is_path_segment(name: &str, _prefix: bool) -> Vec<String> {
    for illegal in [".", ".."] {
        if name == illegal {
            return vec![format!("may not be '{illegal}'")];
        }
    }
    ["/", "%"]
        .into_iter()
        .filter(|c| name.contains(c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

fn meta(m: &ObjectMeta, namespaced: bool) -> ErrorList {
    validate_object_meta(m, namespaced, name_is_path_segment, &Path::new("metadata"))
}

fn rules(rules: &[PolicyRule], namespaced: bool) -> ErrorList {
    let p = Path::new("rules");
    rules
        .iter()
        .enumerate()
        .flat_map(|(i, r)| validate_policy_rule(r, namespaced, &p.index(i)))
        .collect()
}

/// `ValidateRole`.
pub fn validate_role(role: &Role) -> ErrorList {
    let mut errs = meta(&role.metadata, true);
    errs.extend(rules(role.rules.as_deref().unwrap_or_default(), true));
    errs
}

/// `ValidateRoleUpdate`.
pub fn validate_role_update(new: &Role, old: &Role) -> ErrorList {
    let mut errs = validate_role(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs
}

/// `ValidateClusterRole`: its rules, and an aggregation rule's selectors.
pub fn validate_cluster_role(role: &ClusterRole) -> ErrorList {
    let mut errs = meta(&role.metadata, false);
    errs.extend(rules(role.rules.as_deref().unwrap_or_default(), false));
    if let Some(agg) = &role.aggregation_rule {
        let p = Path::new("aggregationRule").child("clusterRoleSelectors");
        let selectors = agg.cluster_role_selectors.as_deref().unwrap_or_default();
        if selectors.is_empty() {
            errs.push(Error::required(
                &p,
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, sel) in selectors.iter().enumerate() {
            errs.extend(validate_label_selector(sel, &p.index(i)));
        }
    }
    errs
}

/// `ValidateClusterRoleUpdate`.
pub fn validate_cluster_role_update(new: &ClusterRole, old: &ClusterRole) -> ErrorList {
    let mut errs = validate_cluster_role(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs
}

/// `ValidatePolicyRule`: verbs always; then either non-resource URLs (cluster rules only,
/// alone) or API groups and resources.
pub fn validate_policy_rule(rule: &PolicyRule, namespaced: bool, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let empty = |v: &Option<Vec<String>>| v.as_ref().is_none_or(Vec::is_empty);
    if rule.verbs.is_empty() {
        errs.push(Error::required(
            &path.child("verbs"),
            "verbs must contain at least one value",
        ));
    }
    if let Some(urls) = rule.non_resource_urls.as_ref().filter(|u| !u.is_empty()) {
        if namespaced {
            errs.push(Error::invalid(
                &path.child("nonResourceURLs"),
                strings(urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !empty(&rule.api_groups) || !empty(&rule.resources) || !empty(&rule.resource_names) {
            errs.push(Error::invalid(
                &path.child("nonResourceURLs"),
                strings(urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errs;
    }
    if empty(&rule.api_groups) {
        errs.push(Error::required(
            &path.child("apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if empty(&rule.resources) {
        errs.push(Error::required(
            &path.child("resources"),
            "resource rules must supply at least one resource",
        ));
    }
    errs
}

/// The role reference and subjects a RoleBinding (`namespaced`) or ClusterRoleBinding has.
fn binding(role_ref: &RoleRef, subjects: &[Subject], namespaced: bool) -> ErrorList {
    let mut errs = Vec::new();
    let p = Path::new("roleRef");
    if role_ref.api_group != GROUP {
        errs.push(Error::not_supported(
            &p.child("apiGroup"),
            role_ref.api_group.as_str(),
            &[GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&role_ref.kind.as_str()) {
        errs.push(Error::not_supported(
            &p.child("kind"),
            role_ref.kind.as_str(),
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errs.push(Error::required(&p.child("name"), ""));
    } else {
        for m in name_is_path_segment(&role_ref.name, false) {
            errs.push(Error::invalid(&p.child("name"), role_ref.name.as_str(), m));
        }
    }
    let p = Path::new("subjects");
    for (i, s) in subjects.iter().enumerate() {
        errs.extend(validate_subject(s, namespaced, &p.index(i)));
    }
    errs
}

/// `ValidateRoleBindingSubject`.
pub fn validate_subject(subject: &Subject, namespaced: bool, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let api_group = subject.api_group.as_deref().unwrap_or("");
    if subject.name.is_empty() {
        errs.push(Error::required(&path.child("name"), ""));
    }
    match subject.kind.as_str() {
        "ServiceAccount" => {
            if !subject.name.is_empty() {
                for m in name_is_dns_subdomain(&subject.name, false) {
                    errs.push(Error::invalid(
                        &path.child("name"),
                        subject.name.as_str(),
                        m,
                    ));
                }
            }
            if !api_group.is_empty() {
                errs.push(Error::not_supported(
                    &path.child("apiGroup"),
                    api_group,
                    &[""],
                ));
            }
            if !namespaced && subject.namespace.as_deref().unwrap_or("").is_empty() {
                errs.push(Error::required(&path.child("namespace"), ""));
            }
        }
        "User" | "Group" => {
            if api_group != GROUP {
                errs.push(Error::not_supported(
                    &path.child("apiGroup"),
                    api_group,
                    &[GROUP],
                ));
            }
        }
        other => errs.push(Error::not_supported(
            &path.child("kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errs
}

/// Go's `%#v` of the internal `rbac.RoleRef`, as "cannot change roleRef" prints it.
fn role_ref_go(r: &RoleRef) -> BadValue {
    BadValue::Raw(format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        go_quote(&r.api_group),
        go_quote(&r.kind),
        go_quote(&r.name)
    ))
}

fn role_ref_unchanged(new: &RoleRef, old: &RoleRef) -> ErrorList {
    if new == old {
        return Vec::new();
    }
    vec![Error::invalid(
        &Path::new("roleRef"),
        role_ref_go(new),
        "cannot change roleRef",
    )]
}

/// `ValidateRoleBinding`.
pub fn validate_role_binding(b: &RoleBinding) -> ErrorList {
    let mut errs = meta(&b.metadata, true);
    errs.extend(binding(
        &b.role_ref,
        b.subjects.as_deref().unwrap_or_default(),
        true,
    ));
    errs
}

/// `ValidateRoleBindingUpdate`: the role reference is immutable.
pub fn validate_role_binding_update(new: &RoleBinding, old: &RoleBinding) -> ErrorList {
    let mut errs = validate_role_binding(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs.extend(role_ref_unchanged(&new.role_ref, &old.role_ref));
    errs
}

/// `ValidateClusterRoleBinding`.
pub fn validate_cluster_role_binding(b: &ClusterRoleBinding) -> ErrorList {
    let mut errs = meta(&b.metadata, false);
    errs.extend(binding(
        &b.role_ref,
        b.subjects.as_deref().unwrap_or_default(),
        false,
    ));
    errs
}

/// `ValidateClusterRoleBindingUpdate`: the role reference is immutable.
pub fn validate_cluster_role_binding_update(
    new: &ClusterRoleBinding,
    old: &ClusterRoleBinding,
) -> ErrorList {
    let mut errs = validate_cluster_role_binding(new);
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs.extend(role_ref_unchanged(&new.role_ref, &old.role_ref));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_namespaced_rule_cannot_name_urls_and_rules_need_verbs() {
        let role: Role = serde_json::from_value(json!({
            "metadata": {"name": "r", "namespace": "ns"},
            "rules": [
                {"verbs": ["get"], "nonResourceURLs": ["/metrics"]},
                {"verbs": [], "apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["get"]},
            ]
        }))
        .unwrap();
        assert_eq!(
            texts(&validate_role(&role)),
            [
                r#"rules[0].nonResourceURLs: Invalid value: []string{"/metrics"}: namespaced rules cannot apply to non-resource URLs"#,
                "rules[1].verbs: Required value: verbs must contain at least one value",
                "rules[2].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[2].resources: Required value: resource rules must supply at least one resource",
            ]
        );
        let cluster: ClusterRole = serde_json::from_value(json!({
            "metadata": {"name": "system:metrics"},
            "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}]
        }))
        .unwrap();
        assert!(validate_cluster_role(&cluster).is_empty());
    }

    #[test]
    fn names_are_path_segments() {
        assert_eq!(name_is_path_segment("..", false), ["may not be '..'"]);
        assert_eq!(
            name_is_path_segment("a/b%", false),
            ["may not contain '/'", "may not contain '%'"]
        );
        assert!(name_is_path_segment("system:node:a", false).is_empty());
    }

    #[test]
    fn bindings_check_role_ref_and_subjects() {
        let b: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "default"},
                {"kind": "User", "name": "alice"},
                {"kind": "Robot", "name": "r2"},
            ]
        }))
        .unwrap();
        assert_eq!(
            texts(&validate_cluster_role_binding(&b)),
            [
                r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#,
                "subjects[0].namespace: Required value",
                r#"subjects[1].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io""#,
                r#"subjects[2].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#,
            ]
        );
    }

    #[test]
    fn the_role_ref_is_immutable() {
        let old: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": "ns", "resourceVersion": "1"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        }))
        .unwrap();
        let mut new = old.clone();
        new.role_ref.name = "edit".into();
        assert_eq!(
            texts(&validate_role_binding_update(&new, &old)),
            [
                r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef"#
            ]
        );
    }
}
