//! `rbac.authorization.k8s.io` printers: `printRoleBinding` and `printClusterRoleBinding`
//! (Roles and ClusterRoles print the default name and creation time, as upstream's
//! `printRole`).

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::age;
use crate::json::{arr_at, name, str_at};

/// A binding's row: name, `Kind/name` of its role, age, then (wide) its users, groups and
/// service accounts (`namespace/name`) joined by ", ", as `rbac.SubjectsStrings`.
pub(crate) fn role_binding(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in arr_at(obj, &["subjects"]) {
        let n = str_at(s, &["name"]);
        match str_at(s, &["kind"]) {
            "User" => users.push(n.to_string()),
            "Group" => groups.push(n.to_string()),
            "ServiceAccount" => sas.push(format!("{}/{n}", str_at(s, &["namespace"]))),
            _ => {}
        }
    }
    vec![
        json!(name(obj)),
        json!(format!(
            "{}/{}",
            str_at(obj, &["roleRef", "kind"]),
            str_at(obj, &["roleRef", "name"])
        )),
        age(obj, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::columns;
    use crate::testing::{json_row, meta, row};

    #[test]
    fn role_bindings() {
        let names: Vec<&str> = columns("rbac.authorization.k8s.io", "rolebindings")
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
        );
        let obj = json!({"metadata": meta("read", 90),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [
                {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
                {"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"},
                {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "web"}]});
        assert_eq!(
            row("rbac.authorization.k8s.io", "clusterrolebindings", &obj),
            json_row(r#"["read", "ClusterRole/view", "90s", "alice, bob", "devs", "web/default"]"#)
        );
        let roles = columns("rbac.authorization.k8s.io", "roles");
        assert_eq!(roles[1].name, "Created At");
    }
}
