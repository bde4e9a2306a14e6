use super::*;
use crate::field::messages;
use crate::validation::names::{name_is_dns1035_label, name_is_dns_label, name_is_dns_subdomain};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: (!name.is_empty()).then(|| name.to_string()),
        namespace: ns.map(str::to_string),
        ..Default::default()
    }
}

#[test]
fn create_rules() {
    let p = Path::new("metadata");
    assert!(validate_object_meta(
        &meta("web", Some("default")),
        true,
        name_is_dns1035_label,
        &p
    )
    .is_empty());
    assert_eq!(
        messages(&validate_object_meta(
            &meta("", Some("default")),
            true,
            name_is_dns_subdomain,
            &p
        )),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
    assert_eq!(
        messages(&validate_object_meta(
            &meta("web", None),
            true,
            name_is_dns_subdomain,
            &p
        )),
        vec!["metadata.namespace: Required value"]
    );
    assert_eq!(
        messages(&validate_object_meta(
            &meta("web", Some("x")),
            false,
            name_is_dns_label,
            &p
        )),
        vec!["metadata.namespace: Forbidden: not allowed on this type"]
    );
    assert_eq!(
        messages(&validate_object_meta(
            &meta("1web", Some("default")),
            true,
            name_is_dns1035_label,
            &p
        )),
        vec![
            r#"metadata.name: Invalid value: "1web": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#
        ]
    );
    let mut m = meta("", Some("default"));
    m.generate_name = Some("Web-".into());
    let got = messages(&validate_object_meta(&m, true, name_is_dns1035_label, &p));
    assert_eq!(got.len(), 2);
    assert!(got[0].starts_with(r#"metadata.generateName: Invalid value: "Web-": a DNS-1035 label"#));
    assert_eq!(
        got[1],
        "metadata.name: Required value: name or generateName is required"
    );

    let mut m = meta("web", Some("default"));
    m.finalizers = Some(vec![
        "custom".into(),
        "example.com/x".into(),
        "kubernetes".into(),
    ]);
    assert_eq!(
        messages(&validate_object_meta(&m, true, name_is_dns_subdomain, &p)),
        vec![
            r#"metadata.finalizers[0]: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified"#
        ]
    );
    m.finalizers = Some(vec!["orphan".into(), "foregroundDeletion".into()]);
    assert_eq!(
        messages(&validate_object_meta(&m, true, name_is_dns_subdomain, &p)),
        vec![
            r#"metadata.finalizers: Invalid value: []string{"orphan", "foregroundDeletion"}: finalizer orphan and foregroundDeletion cannot be both set"#
        ]
    );
    let mut m = meta("web", Some("default"));
    m.generation = Some(-1);
    m.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "".into(),
        uid: "u".into(),
        ..Default::default()
    }]);
    assert_eq!(
        messages(&validate_object_meta(&m, true, name_is_dns_subdomain, &p)),
        vec![
            "metadata.generation: Invalid value: -1: must be greater than or equal to 0",
            r#"metadata.ownerReferences.name: Invalid value: "": must not be empty"#,
        ]
    );
}

#[test]
fn update_rules() {
    let p = Path::new("metadata");
    let mut old = meta("web", Some("default"));
    old.resource_version = Some("5".into());
    old.uid = Some("u1".into());
    old.creation_timestamp = Some(Time("2024-05-01T10:00:00Z".parse().unwrap()));
    let mut new = old.clone();
    assert!(validate_object_meta_update(&new, &old, &p).is_empty());
    new.name = Some("web2".into());
    new.uid = Some("u2".into());
    new.resource_version = None;
    new.creation_timestamp = Some(Time("2024-05-02T10:00:00Z".parse().unwrap()));
    assert_eq!(
        messages(&validate_object_meta_update(&new, &old, &p)),
        vec![
            r#"metadata.resourceVersion: Invalid value: "": must be specified for an update"#,
            r#"metadata.name: Invalid value: "web2": field is immutable"#,
            r#"metadata.uid: Invalid value: "u2": field is immutable"#,
            "metadata.creationTimestamp: Invalid value: 2024-05-02 10:00:00 +0000 UTC: field is immutable",
        ]
    );
    let mut old = meta("web", Some("default"));
    old.resource_version = Some("5".into());
    old.deletion_timestamp = Some(Time("2024-05-01T10:00:00Z".parse().unwrap()));
    let mut new = old.clone();
    new.finalizers = Some(vec!["example.com/a".into()]);
    assert_eq!(
        messages(&validate_object_meta_update(&new, &old, &p)),
        vec![
            r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"example.com/a"}"#
        ]
    );
}
