//! certificates.k8s.io/v1 CertificateSigningRequest validation: mirrors
//! `pkg/apis/certificates/validation/validation.go` (`validateCertificateSigningRequest`,
//! `validateConditions`, `validateCertificateSigningRequestUpdate` with the options of the main
//! resource, `/status` and `/approval`). The request must be a PEM `CERTIFICATE REQUEST` whose
//! signature checks (x509-parser), an issued certificate PEM `CERTIFICATE` blocks.

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::is_dns1123_label;
use crate::field::{BadValue, Error, ErrorList, Path};

/// `allValidUsages`, sorted as `sets.String.List()` returns them.
const USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// `certificates.LegacyUnknownSignerName`, refused by the v1 API.
const LEGACY_SIGNER: &str = "kubernetes.io/legacy-unknown";

/// What a write may change, as upstream's `certificateValidationOptions` (the options that
/// tolerate bad stored data are derived from the old object).
#[derive(Default, Clone, Copy)]
struct Options {
    setting_approval_conditions: bool,
    setting_certificate: bool,
    both_approved_and_denied: bool,
    duplicate_condition_types: bool,
    arbitrary_certificate: bool,
    unknown_usages: bool,
    duplicate_usages: bool,
}

fn options(new: &CertificateSigningRequest, old: Option<&CertificateSigningRequest>) -> Options {
    let Some(old) = old else {
        return Options::default();
    };
    let has = |t: &str| conditions(old).iter().any(|c| c.type_ == t);
    let mut seen = Vec::new();
    let dup_types = conditions(old).iter().any(|c| {
        let d = seen.contains(&&c.type_);
        seen.push(&c.type_);
        d
    });
    let mut seen = Vec::new();
    let dup_usages = old.spec.usages.iter().flatten().any(|u| {
        let d = seen.contains(&u);
        seen.push(u);
        d
    });
    Options {
        both_approved_and_denied: has("Approved") && has("Denied"),
        duplicate_condition_types: dup_types,
        arbitrary_certificate: certificate(new) == certificate(old)
            || check_certificate(certificate(old)).is_err(),
        unknown_usages: old
            .spec
            .usages
            .iter()
            .flatten()
            .any(|u| !USAGES.contains(&u.as_str())),
        duplicate_usages: dup_usages,
        ..Options::default()
    }
}

fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn certificate(csr: &CertificateSigningRequest) -> &[u8] {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .map(|b| b.0.as_slice())
        .unwrap_or_default()
}

/// `certificates.ParseCSR` + `CheckSignature`.
fn check_request(pem: &[u8]) -> Result<(), String> {
    let block = Pem::iter_from_buffer(pem)
        .next()
        .and_then(Result::ok)
        .filter(|b| b.label == "CERTIFICATE REQUEST")
        .ok_or("PEM block type must be CERTIFICATE REQUEST")?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    csr.verify_signature()
        .map_err(|_| "x509: ECDSA verification failure".to_string())
}

/// `validateCertificate`: empty, or only CERTIFICATE blocks, each parsing (x509-parser's PEM
/// reader has no block headers to refuse).
fn check_certificate(pem: &[u8]) -> Result<(), String> {
    if pem.is_empty() {
        return Ok(());
    }
    let mut blocks = 0;
    for block in Pem::iter_from_buffer(pem) {
        let Ok(block) = block else { break };
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                block.label
            ));
        }
        x509_parser::parse_x509_certificate(&block.contents)
            .map_err(|e| format!("x509: malformed certificate: {e}"))?;
        blocks += 1;
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    Ok(())
}

/// Go's `%#v` of a `[]byte`, as `field.Invalid(spec.request, ...)` prints it.
fn go_bytes(b: &[u8]) -> BadValue {
    let items: Vec<String> = b.iter().map(|x| format!("0x{x:x}")).collect();
    BadValue::Raw(format!("[]byte{{{}}}", items.join(", ")))
}

/// `ValidateSignerName` (`pkg/apis/core/validation`): `<domain>/<path>`, the domain made of
/// DNS labels with at least one dot.
fn validate_signer_name(path: &Path, signer: &str) -> ErrorList {
    if signer.is_empty() {
        return vec![Error::required(path, "")];
    }
    let Some((domain, name)) = signer.split_once('/').filter(|(_, n)| !n.contains('/')) else {
        return vec![Error::invalid(
            path,
            signer,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )];
    };
    let mut errs = Vec::new();
    if domain.len() > 253 {
        errs.push(Error::too_long(path, 253));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if let Some((label, msgs)) = labels
        .iter()
        .map(|l| (l, is_dns1123_label(l)))
        .find(|(_, m)| !m.is_empty())
    {
        for m in msgs {
            errs.push(Error::invalid(
                path,
                domain,
                format!("validating label {label:?}: {m}"),
            ));
        }
    }
    if labels.len() < 2 {
        errs.push(Error::invalid(
            path,
            domain,
            "should be a domain with at least two segments separated by dots",
        ));
    }
    if name.is_empty() {
        errs.push(Error::invalid(
            path,
            name,
            "validating path segment: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    errs
}

fn validate(csr: &CertificateSigningRequest, o: Options) -> ErrorList {
    let mut errs = validate_object_meta(
        &csr.metadata,
        false,
        |_, _| Vec::new(),
        &Path::new("metadata"),
    );
    let spec = Path::new("spec");
    if let Err(e) = check_request(&csr.spec.request.0) {
        errs.push(Error::invalid(
            &spec.child("request"),
            go_bytes(&csr.spec.request.0),
            e,
        ));
    }
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    if usages.is_empty() {
        errs.push(Error::required(&spec.child("usages"), ""));
    }
    for (i, u) in usages.iter().enumerate() {
        if !o.unknown_usages && !USAGES.contains(&u.as_str()) {
            errs.push(Error::not_supported(
                &spec.child("usages").index(i),
                u.as_str(),
                USAGES,
            ));
        }
        if !o.duplicate_usages && usages[..i].contains(u) {
            errs.push(Error::duplicate(&spec.child("usages").index(i), u.as_str()));
        }
    }
    if csr.spec.signer_name == LEGACY_SIGNER {
        errs.push(Error::invalid(
            &spec.child("signerName"),
            csr.spec.signer_name.as_str(),
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        errs.extend(validate_signer_name(
            &spec.child("signerName"),
            &csr.spec.signer_name,
        ));
    }
    if let Some(s) = csr.spec.expiration_seconds.filter(|s| *s < 600) {
        errs.push(Error::invalid(
            &spec.child("expirationSeconds"),
            i64::from(s),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    errs.extend(validate_conditions(csr, o));
    if !o.arbitrary_certificate {
        if let Err(e) = check_certificate(certificate(csr)) {
            errs.push(Error::invalid(
                &Path::new("status").child("certificate"),
                "<certificate data>",
                e,
            ));
        }
    }
    errs
}

/// `validateConditions`: a type and status each; Approved, Denied and Failed only `True`;
/// Approved and Denied exclusive; no type twice.
fn validate_conditions(csr: &CertificateSigningRequest, o: Options) -> ErrorList {
    let p = Path::new("status").child("conditions");
    let mut errs = Vec::new();
    let (mut approved, mut denied) = (false, false);
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in conditions(csr).iter().enumerate() {
        let p = p.index(i);
        if c.type_.is_empty() {
            errs.push(Error::required(&p.child("type"), ""));
        }
        let allowed: &[&str] = if ["Approved", "Denied", "Failed"].contains(&c.type_.as_str()) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if c.status.is_empty() {
            errs.push(Error::required(&p.child("status"), ""));
        } else if !allowed.contains(&c.status.as_str()) {
            errs.push(Error::not_supported(
                &p.child("status"),
                c.status.as_str(),
                allowed,
            ));
        }
        if !o.both_approved_and_denied {
            let clash = match c.type_.as_str() {
                "Approved" => {
                    approved = true;
                    denied
                }
                "Denied" => {
                    denied = true;
                    approved
                }
                _ => false,
            };
            if clash {
                errs.push(Error::invalid(
                    &p.child("type"),
                    c.type_.as_str(),
                    "Approved and Denied conditions are mutually exclusive",
                ));
            }
        }
        if !o.duplicate_condition_types && seen.contains(&c.type_.as_str()) {
            errs.push(Error::duplicate(&p.child("type"), c.type_.as_str()));
        }
        seen.push(&c.type_);
    }
    errs
}

fn of_type<'a>(
    csr: &'a CertificateSigningRequest,
    t: &str,
) -> Vec<&'a CertificateSigningRequestCondition> {
    conditions(csr).iter().filter(|c| c.type_ == t).collect()
}

fn validate_update_with(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
    o: Options,
) -> ErrorList {
    let mut errs = validate(new, o);
    let p = Path::new("status").child("conditions");
    for t in ["Approved", "Denied", "Failed"] {
        if of_type(new, t).len() < of_type(old, t).len() {
            errs.push(Error::forbidden(
                &p,
                format!("updates may not remove a condition of type {t:?}"),
            ));
        }
    }
    if !o.setting_approval_conditions {
        for t in ["Approved", "Denied"] {
            let (n, o) = (of_type(new, t), of_type(old, t));
            if n.len() > o.len() {
                errs.push(Error::forbidden(
                    &p,
                    format!("updates may not add a condition of type {t:?}"),
                ));
            } else if n.len() == o.len() && n != o {
                errs.push(Error::forbidden(
                    &p,
                    format!("updates may not modify a condition of type {t:?}"),
                ));
            }
        }
    }
    if certificate(new) != certificate(old) {
        if !o.setting_certificate {
            errs.push(Error::forbidden(
                &Path::new("status").child("certificate"),
                "updates may not set certificate content",
            ));
        } else if !certificate(old).is_empty() {
            errs.push(Error::forbidden(
                &Path::new("status").child("certificate"),
                "updates may not modify existing certificate content",
            ));
        }
    }
    errs.extend(validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    ));
    errs
}

/// `ValidateCertificateSigningRequestCreate`.
pub fn validate_create(csr: &CertificateSigningRequest) -> ErrorList {
    validate(csr, options(csr, None))
}

/// `ValidateCertificateSigningRequestUpdate` (the main resource).
pub fn validate_update(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
) -> ErrorList {
    validate_update_with(new, old, options(new, Some(old)))
}

/// `ValidateCertificateSigningRequestStatusUpdate`: the signer may set the certificate.
pub fn validate_status_update(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
) -> ErrorList {
    let o = Options {
        setting_certificate: true,
        ..options(new, Some(old))
    };
    validate_update_with(new, old, o)
}

/// `ValidateCertificateSigningRequestApprovalUpdate`: Approved / Denied may be added.
pub fn validate_approval_update(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
) -> ErrorList {
    let o = Options {
        setting_approval_conditions: true,
        ..options(new, Some(old))
    };
    validate_update_with(new, old, o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A CSR for CN=angela made by openssl (the one kube-rs's own test submits).
    const REQUEST: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQ1ZqQ0NBVDRDQVFBd0VURVBNQTBHQTFVRUF3d0dZVzVuWld4aE1JSUJJakFOQmdrcWhraUc5dzBCQVFFRgpBQU9DQVE4QU1JSUJDZ0tDQVFFQTByczhJTHRHdTYxakx2dHhWTTJSVlRWMDNHWlJTWWw0dWluVWo4RElaWjBOCnR2MUZtRVFSd3VoaUZsOFEzcWl0Qm0wMUFSMkNJVXBGd2ZzSjZ4MXF3ckJzVkhZbGlBNVhwRVpZM3ExcGswSDQKM3Z3aGJlK1o2MVNrVHF5SVBYUUwrTWM5T1Nsbm0xb0R2N0NtSkZNMUlMRVI3QTVGZnZKOEdFRjJ6dHBoaUlFMwpub1dtdHNZb3JuT2wzc2lHQ2ZGZzR4Zmd4eW8ybmlneFNVekl1bXNnVm9PM2ttT0x1RVF6cXpkakJ3TFJXbWlECklmMXBMWnoyalVnald4UkhCM1gyWnVVV1d1T09PZnpXM01LaE8ybHEvZi9DdS8wYk83c0x0MCt3U2ZMSU91TFcKcW90blZtRmxMMytqTy82WDNDKzBERHk5aUtwbXJjVDBnWGZLemE1dHJRSURBUUFCb0FBd0RRWUpLb1pJaHZjTgpBUUVMQlFBRGdnRUJBR05WdmVIOGR4ZzNvK21VeVRkbmFjVmQ1N24zSkExdnZEU1JWREkyQTZ1eXN3ZFp1L1BVCkkwZXpZWFV0RVNnSk1IRmQycVVNMjNuNVJsSXJ3R0xuUXFISUh5VStWWHhsdnZsRnpNOVpEWllSTmU3QlJvYXgKQVlEdUI5STZXT3FYbkFvczFqRmxNUG5NbFpqdU5kSGxpT1BjTU1oNndLaTZzZFhpVStHYTJ2RUVLY01jSVUyRgpvU2djUWdMYTk0aEpacGk3ZnNMdm1OQUxoT045UHdNMGM1dVJVejV4T0dGMUtCbWRSeEgvbUNOS2JKYjFRQm1HCkkwYitEUEdaTktXTU0xMzhIQXdoV0tkNjVoVHdYOWl4V3ZHMkh4TG1WQzg0L1BHT0tWQW9FNkpsYWFHdTlQVmkKdjlOSjVaZlZrcXdCd0hKbzZXdk9xVlA3SVFjZmg3d0drWm89Ci0tLS0tRU5EIENFUlRJRklDQVRFIFJFUVVFU1QtLS0tLQo=";

    fn csr(v: serde_json::Value) -> CertificateSigningRequest {
        serde_json::from_value(v).unwrap()
    }

    fn valid() -> CertificateSigningRequest {
        csr(
            json!({"metadata": {"name": "angela", "resourceVersion": "1"},
            "spec": {"request": REQUEST, "signerName": "kubernetes.io/kube-apiserver-client",
                "expirationSeconds": 86400, "usages": ["client auth"]}}),
        )
    }

    fn texts(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_real_request_is_valid() {
        assert_eq!(texts(&validate_create(&valid())), Vec::<String>::new());
    }

    #[test]
    fn bad_requests_usages_signers_and_durations() {
        let bad = csr(json!({"metadata": {"name": "x"},
            "spec": {"request": "aGVsbG8=", "signerName": "example",
                "expirationSeconds": 60, "usages": ["client auth", "flying", "client auth"]}}));
        assert_eq!(
            texts(&validate_create(&bad)),
            [
                "spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f}: PEM block type must be CERTIFICATE REQUEST",
                &format!("spec.usages[1]: Unsupported value: \"flying\": supported values: {}", USAGES.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ")),
                "spec.usages[2]: Duplicate value: \"client auth\"",
                "spec.signerName: Invalid value: \"example\": must be a fully qualified domain and path of the form 'example.com/signer-name'",
                "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)",
            ]
        );
    }

    #[test]
    fn approval_only_through_the_approval_subresource() {
        let old = valid();
        let mut new = old.clone();
        new.status = Some(
            serde_json::from_value(json!({"conditions": [
            {"type": "Approved", "status": "True", "reason": "AdminApproved"}]}))
            .unwrap(),
        );
        assert_eq!(
            texts(&validate_status_update(&new, &old)),
            ["status.conditions: Forbidden: updates may not add a condition of type \"Approved\""]
        );
        assert!(validate_approval_update(&new, &old).is_empty());
        // Once approved, never un-approved; Denied may not join Approved.
        let mut denied = new.clone();
        denied.status.as_mut().unwrap().conditions = Some(vec![serde_json::from_value(
            json!({"type": "Denied", "status": "True"}),
        )
        .unwrap()]);
        assert_eq!(
            texts(&validate_approval_update(&denied, &new)),
            ["status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""]
        );
        // A custom condition type (kube-rs's test approves with "ApprovedFake") is accepted.
        let mut fake = old.clone();
        fake.status = Some(
            serde_json::from_value(json!({"conditions": [
            {"type": "ApprovedFake", "status": "True"}]}))
            .unwrap(),
        );
        assert!(validate_approval_update(&fake, &old).is_empty());
    }
}
