//! rbac.authorization.k8s.io/v1 defaults (`pkg/apis/rbac/v1/defaults.go`): a binding's
//! `roleRef.apiGroup` and a User or Group subject's `apiGroup` are the RBAC group.

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};

use crate::validation::rbac::GROUP;

fn role_ref(r: &mut RoleRef) {
    if r.api_group.is_empty() {
        r.api_group = GROUP.to_string();
    }
}

/// `SetDefaults_Subject`.
fn subjects(subjects: Option<&mut Vec<Subject>>) {
    for s in subjects.into_iter().flatten() {
        if s.api_group.as_deref().unwrap_or("").is_empty()
            && matches!(s.kind.as_str(), "User" | "Group")
        {
            s.api_group = Some(GROUP.to_string());
        }
    }
}

pub fn default_role_binding(b: &mut RoleBinding) {
    role_ref(&mut b.role_ref);
    subjects(b.subjects.as_mut());
}

pub fn default_cluster_role_binding(b: &mut ClusterRoleBinding) {
    role_ref(&mut b.role_ref);
    subjects(b.subjects.as_mut());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_and_groups_get_the_rbac_group() {
        let mut b: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "default"}]
        }))
        .unwrap();
        default_role_binding(&mut b);
        assert_eq!(b.role_ref.api_group, GROUP);
        let s = b.subjects.unwrap();
        assert_eq!(s[0].api_group.as_deref(), Some(GROUP));
        assert_eq!(s[1].api_group, None);
    }
}
