use super::*;
use crate::field::messages;

const LABEL_REGEX_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_REGEX_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_REGEX_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QNAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

type Check = fn(&str) -> Vec<String>;

#[test]
fn dns_labels_and_subdomains() {
    let cases: &[(&str, Check, Vec<&str>)] = &[
        ("my-name", is_dns1123_label, vec![]),
        ("123-abc", is_dns1123_label, vec![]),
        ("My_Name", is_dns1123_label, vec![LABEL_REGEX_MSG]),
        ("-a", is_dns1123_label, vec![LABEL_REGEX_MSG]),
        ("", is_dns1123_label, vec![LABEL_REGEX_MSG]),
        ("a.b", is_dns1123_label, vec!["must not contain dots"]),
        ("example.com", is_dns1123_subdomain, vec![]),
        (
            "Example.com",
            is_dns1123_subdomain,
            vec![SUBDOMAIN_REGEX_MSG],
        ),
        ("a..b", is_dns1123_subdomain, vec![SUBDOMAIN_REGEX_MSG]),
        ("web", is_dns1035_label, vec![]),
        ("1web", is_dns1035_label, vec![DNS1035_REGEX_MSG]),
        ("my_svc", is_dns1035_label, vec![DNS1035_REGEX_MSG]),
    ];
    for (value, f, want) in cases {
        assert_eq!(f(value), *want, "{value:?}");
    }
    let long = "a".repeat(64);
    assert_eq!(
        is_dns1123_label(&long),
        vec!["must be no more than 63 characters"]
    );
    assert_eq!(
        is_dns1035_label(&long),
        vec!["must be no more than 63 characters"]
    );
}

#[test]
fn qualified_names_and_label_values() {
    assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
    assert!(is_qualified_name("MyName").is_empty());
    assert_eq!(is_qualified_name("-bad"), vec![QNAME_PART_MSG]);
    assert_eq!(
        is_qualified_name("/x"),
        vec!["prefix part must be non-empty"]
    );
    assert_eq!(
        is_qualified_name("a/"),
        vec!["name part must be non-empty", QNAME_PART_MSG]
    );
    assert_eq!(
        is_qualified_name("Bad_Prefix/x"),
        vec![format!("prefix part {SUBDOMAIN_REGEX_MSG}")]
    );
    assert_eq!(
        is_qualified_name("a/b/c"),
        vec!["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    );
    assert!(is_valid_label_value("").is_empty());
    assert!(is_valid_label_value("v1.2_x").is_empty());
    assert_eq!(
        is_valid_label_value("bad value"),
        vec!["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
    );
}

#[test]
fn port_names_and_numbers() {
    assert!(is_valid_port_name("http").is_empty());
    assert!(is_valid_port_name("dns-tcp").is_empty());
    assert_eq!(
        is_valid_port_name("Http"),
        vec!["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]
    );
    assert_eq!(
        is_valid_port_name("8080"),
        vec!["must contain at least one letter (a-z)"]
    );
    assert_eq!(
        is_valid_port_name("a--b"),
        vec!["must not contain consecutive hyphens"]
    );
    assert_eq!(
        is_valid_port_name("-http"),
        vec!["must not begin or end with a hyphen"]
    );
    assert_eq!(
        is_valid_port_name("a-very-long-port-name"),
        vec!["must be no more than 15 characters"]
    );
    assert!(is_valid_port_num(1).is_empty());
    assert_eq!(
        is_valid_port_num(65536),
        vec!["must be between 1 and 65535, inclusive"]
    );
}

#[test]
fn ips_and_cidrs() {
    assert!(is_valid_ip("10.0.0.1").is_empty());
    assert!(is_valid_ip("010.000.0.1").is_empty(), "sloppy IPv4");
    assert!(is_valid_ip("2001:db8::1").is_empty());
    assert_eq!(
        is_valid_ip("10.0.0.256"),
        vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    );
    assert!(is_valid_cidr("10.0.0.0/8").is_empty());
    assert_eq!(
        is_valid_cidr("10.0.0.0/33"),
        vec!["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    );
    let p = Path::new("spec").child("externalIPs").index(0);
    let msgs = messages(&validate_non_special_ip("127.0.0.1", &p));
    assert_eq!(
        msgs,
        vec![
            r#"spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)"#
        ]
    );
    let msgs = messages(&validate_non_special_ip("0.0.0.0", &p));
    assert_eq!(
        msgs,
        vec![r#"spec.externalIPs[0]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)"#]
    );
    assert_eq!(
        validate_non_special_ip("169.254.1.1", &p)[0].detail,
        "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    );
    assert_eq!(
        validate_non_special_ip("224.0.0.5", &p)[0].detail,
        "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
    );
}

#[test]
fn object_names_with_generate_name_prefixes() {
    assert!(name_is_dns_subdomain("web-", true).is_empty());
    assert!(!name_is_dns_subdomain("web-", false).is_empty());
    assert!(name_is_dns1035_label("web-", true).is_empty());
    assert!(name_is_dns_label("ns-", true).is_empty());
    assert_eq!(name_is_dns1035_label("Web", false), vec![DNS1035_REGEX_MSG]);
}

#[test]
fn misc_formats() {
    assert!(is_valid_percent("25%").is_empty());
    assert_eq!(
        is_valid_percent("25"),
        vec!["a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"]
    );
    assert!(is_relaxed_env_var_name("MY VAR.1").is_empty());
    assert_eq!(
        is_relaxed_env_var_name("A=B"),
        vec!["a valid environment variable name must consist only of printable ASCII characters other than '='"]
    );
    assert_eq!(
        is_env_var_name("1A"),
        vec!["a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"]
    );
    assert_eq!(is_config_map_key(".."), vec!["must not be '..'"]);
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), "bad value".to_string());
    let errs = validate_labels(Some(&labels), &Path::new("metadata").child("labels"));
    assert_eq!(errs.len(), 1);
    assert!(errs[0]
        .to_string()
        .starts_with(r#"metadata.labels: Invalid value: "bad value": a valid label must be"#));
    let big: BTreeMap<String, String> =
        [("a".to_string(), "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B))].into();
    assert_eq!(
        validate_annotations(Some(&big), &Path::new("metadata").child("annotations"))[0]
            .to_string(),
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    );
}
