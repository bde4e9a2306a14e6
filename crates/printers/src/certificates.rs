//! `certificates.k8s.io` printer: `printCertificateSigningRequest`.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::{age, human_nanos};
use crate::json::{arr_at, opt_int_at, str_at};

/// Name, age, signer, requestor, requested duration, condition (`extractCSRStatus`).
pub(crate) fn certificate_signing_request(obj: &Value, now: Timestamp) -> Vec<Value> {
    let signer = match str_at(obj, &["spec", "signerName"]) {
        "" => "<none>",
        s => s,
    };
    let duration = match opt_int_at(obj, &["spec", "expirationSeconds"]) {
        Some(s) => human_nanos(i128::from(s) * 1_000_000_000),
        None => "<none>".to_string(),
    };
    vec![
        json!(crate::json::name(obj)),
        age(obj, now),
        json!(signer),
        json!(str_at(obj, &["spec", "username"])),
        json!(duration),
        json!(condition(obj)),
    ]
}

/// `extractCSRStatus`: Denied over Approved over Pending, then `,Failed`, then `,Issued`.
fn condition(obj: &Value) -> String {
    let has = |t: &str| {
        arr_at(obj, &["status", "conditions"])
            .iter()
            .any(|c| str_at(c, &["type"]) == t)
    };
    let mut s = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        s.push_str(",Failed");
    }
    if !str_at(obj, &["status", "certificate"]).is_empty() {
        s.push_str(",Issued");
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::columns;
    use crate::testing::{json_row, meta, row};

    #[test]
    fn certificate_signing_requests() {
        let names: Vec<&str> = columns("certificates.k8s.io", "certificatesigningrequests")
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Age",
                "SignerName",
                "Requestor",
                "RequestedDuration",
                "Condition"
            ]
        );
        let pending = json!({"metadata": meta("alice", 30), "spec": {"request": "",
            "signerName": "kubernetes.io/kube-apiserver-client", "username": "admin",
            "expirationSeconds": 86400, "usages": ["client auth"]}});
        assert_eq!(
            row(
                "certificates.k8s.io",
                "certificatesigningrequests",
                &pending
            ),
            json_row(
                r#"["alice", "30s", "kubernetes.io/kube-apiserver-client", "admin", "24h", "Pending"]"#
            )
        );
        let issued = json!({"metadata": meta("bob", 30), "spec": {"username": "admin"},
            "status": {"certificate": "LS0t", "conditions": [{"type": "Approved", "status": "True"}]}});
        assert_eq!(
            row("certificates.k8s.io", "certificatesigningrequests", &issued),
            json_row(r#"["bob", "30s", "<none>", "admin", "<none>", "Approved,Issued"]"#)
        );
    }
}
