use super::*;
use crate::field::Path;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
    Requirement {
        key: key.to_string(),
        operator,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn parse_err(s: &str) -> String {
    LabelSelector::parse(s).unwrap_err().0
}

const NAME_PART_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

// labels/selector_test.go TestSetSelectorParser: input, expected requirements (sorted by key).
#[test]
fn parses_upstream_good_cases() {
    use Operator::*;
    let cases: Vec<(&str, Vec<Requirement>)> = vec![
        ("", vec![]),
        ("   ", vec![]),
        ("\rx", vec![req("x", Exists, &[])]),
        (
            "this-is-a-dns.domain.com/key-with-dash",
            vec![req("this-is-a-dns.domain.com/key-with-dash", Exists, &[])],
        ),
        (
            "this-is-another-dns.domain.com/key-with-dash in (so,what)",
            vec![req(
                "this-is-another-dns.domain.com/key-with-dash",
                In,
                &["so", "what"],
            )],
        ),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
            vec![req(
                "0.1.2.domain/99",
                NotIn,
                &["10.10.100.1", "tick.tack.clock"],
            )],
        ),
        ("foo  in\t (abc)", vec![req("foo", In, &["abc"])]),
        ("x notin\n (abc)", vec![req("x", NotIn, &["abc"])]),
        (
            "x  notin\t\t(abc,def)",
            vec![req("x", NotIn, &["abc", "def"])],
        ),
        ("x in (abc,def)", vec![req("x", In, &["abc", "def"])]),
        ("x in (abc,)", vec![req("x", In, &["", "abc"])]),
        ("x in ()", vec![req("x", In, &[""])]),
        (
            "x notin (abc,,def),bar,z in (),w",
            vec![
                req("bar", Exists, &[]),
                req("w", Exists, &[]),
                req("x", NotIn, &["", "abc", "def"]),
                req("z", In, &[""]),
            ],
        ),
        (
            "x,y in (a)",
            vec![req("x", Exists, &[]), req("y", In, &["a"])],
        ),
        ("x=a", vec![req("x", Equals, &["a"])]),
        ("x==a", vec![req("x", DoubleEquals, &["a"])]),
        ("x>1", vec![req("x", GreaterThan, &["1"])]),
        ("x<7", vec![req("x", LessThan, &["7"])]),
        (
            "x=a,y!=b",
            vec![req("x", Equals, &["a"]), req("y", NotEquals, &["b"])],
        ),
        (
            "x=a,y!=b,z in (h,i,j)",
            vec![
                req("x", Equals, &["a"]),
                req("y", NotEquals, &["b"]),
                req("z", In, &["h", "i", "j"]),
            ],
        ),
        ("x notin ( )", vec![req("x", NotIn, &[""])]),
        ("x notin (, a)", vec![req("x", NotIn, &["", "a"])]),
        ("a ", vec![req("a", Exists, &[])]),
        (
            "a in (x,y,notin, z,in)",
            vec![req("a", In, &["in", "notin", "x", "y", "z"])],
        ),
        ("x=", vec![req("x", Equals, &[""])]),
        ("x= ", vec![req("x", Equals, &[""])]),
        (
            "x=,z= ",
            vec![req("x", Equals, &[""]), req("z", Equals, &[""])],
        ),
        ("!x", vec![req("x", DoesNotExist, &[])]),
        (
            "x>1,z<5",
            vec![req("x", GreaterThan, &["1"]), req("z", LessThan, &["5"])],
        ),
        // "in" and "notin" are identifiers where a key or a value is expected.
        ("in=notin", vec![req("in", Equals, &["notin"])]),
        ("in in (in)", vec![req("in", In, &["in"])]),
        ("x in (b,a,b)", vec![req("x", In, &["a", "b"])]),
        (
            "app.kubernetes.io/name=web",
            vec![req("app.kubernetes.io/name", Equals, &["web"])],
        ),
    ];
    for (input, want) in cases {
        let got = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(got.requirements, want, "{input:?}");
    }
}

#[test]
fn rejects_upstream_bad_cases_with_upstream_messages() {
    let cases: &[(&str, &str)] = &[
        ("x,,y", "found ',', expected: identifier after ','"),
        (",x,y", "found ',', expected: !, identifier, or 'end of string'"),
        (
            "x nott in (y)",
            "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("a in (xyz),", "found '', expected: identifier after ','"),
        (
            "a in (xyz)b notin ()",
            "found 'b', expected: ',' or 'end of string'",
        ),
        (
            "a in (xyz abc)",
            "unable to parse requirement: found 'abc', expected: ',' or ')'",
        ),
        (
            "a notin(",
            "unable to parse requirement: found '', expected: ',', ')' or identifier",
        ),
        (
            "a (",
            "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("(", "found '(', expected: !, identifier, or 'end of string'"),
        (
            "x==a==b",
            "found '==', expected: ',' or 'end of string'",
        ),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        (
            "x in a",
            "unable to parse requirement: found 'a' expected: '('",
        ),
        (
            "x in (a",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        (
            "x=(",
            "unable to parse requirement: found '(', expected: identifier",
        ),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        (
            "x<a",
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(&parse_err(input), want, "{input:?}");
    }
}

#[test]
fn validates_keys_and_values_like_new_requirement() {
    assert_eq!(
        parse_err("-x=a"),
        format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {NAME_PART_ERR}")
    );
    assert_eq!(
        parse_err("x=a||y"),
        format!(
            "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {LABEL_VALUE_MSG}"
        )
    );
    assert_eq!(
        parse_err("Example.com/x"),
        "unable to parse requirement: <nil>: Invalid value: \"Example.com/x\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    assert_eq!(
        parse_err("/x"),
        "unable to parse requirement: <nil>: Invalid value: \"/x\": prefix part must be non-empty"
    );
    assert_eq!(
        parse_err("a/"),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; {NAME_PART_ERR}"
        )
    );
    assert!(parse_err("a/b/c").contains(
        "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    ));
    let long = "a".repeat(64);
    assert_eq!(
        parse_err(&long),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 characters"
        )
    );
    assert_eq!(
        parse_err(&format!("x={long}")),
        format!(
            "unable to parse requirement: values[0][x]: Invalid value: \"{long}\": must be no more than 63 characters"
        )
    );
    // 63 characters are fine.
    LabelSelector::parse(&format!("{}={}", &long[1..], &long[1..])).unwrap();
}

// labels/selector_test.go TestToString.
#[test]
fn prints_canonical_strings() {
    use Operator::*;
    let cases: Vec<(Vec<Requirement>, &str)> = vec![
        (
            vec![
                req("x", In, &["abc", "def"]),
                req("y", NotIn, &["jkl"]),
                req("z", Exists, &[]),
            ],
            "x in (abc,def),y notin (jkl),z",
        ),
        (
            vec![
                req("x", NotIn, &["abc", "def"]),
                req("y", NotEquals, &["jkl"]),
                req("z", DoesNotExist, &[]),
            ],
            "x notin (abc,def),y!=jkl,!z",
        ),
        (
            vec![
                req("x", NotIn, &["abc"]),
                req("y", In, &["jkl", "mno"]),
                req("z", NotIn, &[""]),
            ],
            "x notin (abc),y in (jkl,mno),z notin ()",
        ),
        (
            vec![
                req("x", Equals, &["abc"]),
                req("y", DoubleEquals, &["jkl"]),
                req("z", NotEquals, &["a"]),
                req("z", Exists, &[]),
            ],
            "x=abc,y==jkl,z!=a,z",
        ),
        (
            vec![
                req("x", GreaterThan, &["2"]),
                req("y", LessThan, &["8"]),
                req("z", Exists, &[]),
            ],
            "x>2,y<8,z",
        ),
        // Values print sorted without the selector being changed.
        (vec![req("x", In, &["b", "a"])], "x in (a,b)"),
    ];
    for (reqs, want) in cases {
        let sel = LabelSelector { requirements: reqs };
        assert_eq!(sel.to_string(), want);
    }
    // Parsing sorts by key; printing round-trips.
    let sel = LabelSelector::parse("z in (b, a),!y,x==1,w").unwrap();
    assert_eq!(sel.to_string(), "w,x==1,!y,z in (a,b)");
    assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap(), sel);
}

// labels/selector_test.go TestSelectorMatches / TestRequirementSelectorMatching.
#[test]
fn matches_like_upstream() {
    let l = labels(&[("x", "y"), ("z", "w"), ("n", "5")]);
    for s in [
        "",
        "x=y",
        "x==y",
        "x=y,z=w",
        "x!=z",
        "x in (y,a)",
        "x notin (a)",
        "a notin (b)",
        "x",
        "!a",
        "n>4",
        "n<6",
        "x=y,n>1,!q",
    ] {
        assert!(LabelSelector::parse(s).unwrap().matches(&l), "{s:?}");
    }
    for s in [
        "x=z",
        "x!=y",
        "a=b",
        "x in (a)",
        "a in (b)",
        "x notin (y)",
        "a",
        "!x",
        "n>5",
        "n<5",
        "x>1",
        "q>1",
        "x=y,z=v",
    ] {
        assert!(!LabelSelector::parse(s).unwrap().matches(&l), "{s:?}");
    }
    assert!(LabelSelector::parse("x")
        .unwrap()
        .matches(&labels(&[("x", "")])));
    assert!(!LabelSelector::parse("x=").unwrap().matches(&labels(&[])));
    assert!(LabelSelector::parse("x=")
        .unwrap()
        .matches(&labels(&[("x", "")])));
}

#[test]
fn from_map_is_selector_from_set() {
    let sel = LabelSelector::from_map(&labels(&[("b", "2"), ("a", "1")]));
    assert_eq!(sel.to_string(), "a=1,b=2");
    assert!(sel.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
    assert!(!sel.matches(&labels(&[("a", "1")])));
    let empty = LabelSelector::from_map(&BTreeMap::new());
    assert!(empty.is_empty());
    assert!(empty.matches(&labels(&[("a", "1")])));
    assert_eq!(sel.exact("a"), Some("1"));
    assert_eq!(sel.exact("c"), None);
}

fn meta(
    match_labels: &[(&str, &str)],
    exprs: &[(&str, &str, Option<&[&str]>)],
) -> MetaLabelSelector {
    MetaLabelSelector {
        match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
        match_expressions: (!exprs.is_empty()).then(|| {
            exprs
                .iter()
                .map(|(k, op, vals)| LabelSelectorRequirement {
                    key: k.to_string(),
                    operator: op.to_string(),
                    values: vals.map(|v| v.iter().map(|s| s.to_string()).collect()),
                })
                .collect()
        }),
    }
}

#[test]
fn from_meta_is_label_selector_as_selector() {
    let sel = LabelSelector::from_meta(&meta(
        &[("app", "web")],
        &[
            ("tier", "In", Some(&["b", "a"])),
            ("env", "NotIn", Some(&["dev"])),
            ("canary", "DoesNotExist", None),
            ("track", "Exists", Some(&[])),
        ],
    ))
    .unwrap();
    assert_eq!(
        sel.to_string(),
        "app=web,!canary,env notin (dev),tier in (a,b),track"
    );
    assert!(sel.matches(&labels(&[("app", "web"), ("tier", "a"), ("track", "x")])));
    assert!(!sel.matches(&labels(&[
        ("app", "web"),
        ("tier", "a"),
        ("track", "x"),
        ("canary", "1")
    ])));

    let empty = LabelSelector::from_meta(&MetaLabelSelector::default()).unwrap();
    assert!(empty.is_empty());
    assert!(empty.matches(&labels(&[("anything", "at-all")])));
}

#[test]
fn from_meta_errors_are_upstreams() {
    let e = |m: MetaLabelSelector| LabelSelector::from_meta(&m).unwrap_err().0;
    assert_eq!(
        e(meta(&[], &[("a", "Equals", Some(&["b"]))])),
        "\"Equals\" is not a valid label selector operator"
    );
    assert_eq!(
        e(meta(&[], &[("a", "In", None)])),
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
    );
    assert_eq!(
        e(meta(&[], &[("a", "NotIn", Some(&[]))])),
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
    );
    assert_eq!(
        e(meta(&[], &[("a", "Exists", Some(&["x"]))])),
        "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"
    );
    assert_eq!(
        e(meta(&[("-a", "b")], &[])),
        format!("key: Invalid value: \"-a\": {NAME_PART_ERR}")
    );
    assert_eq!(
        e(meta(&[("a", "b c")], &[])),
        format!("values[0][a]: Invalid value: \"b c\": {LABEL_VALUE_MSG}")
    );
    // Several errors aggregate as Go's ErrorList.ToAggregate().
    assert_eq!(
        e(meta(&[], &[("-a", "In", Some(&["-"]))])),
        format!(
            "[key: Invalid value: \"-a\": {NAME_PART_ERR}, values[0][-a]: Invalid value: \"-\": {LABEL_VALUE_MSG}]"
        )
    );
}

#[test]
fn requirement_constructor_checks_value_counts() {
    let e = |op, vals: &[&str]| {
        Requirement::new("x", op, vals.iter().map(|s| s.to_string()).collect(), None)
            .unwrap_err()
            .0
    };
    assert_eq!(
        e(Operator::Equals, &["a", "b"]),
        "values: Invalid value: []string{\"a\", \"b\"}: exact-match compatibility requires one single value"
    );
    assert_eq!(
        e(Operator::GreaterThan, &[]),
        "values: Invalid value: []string(nil): for 'Gt', 'Lt' operators, exactly one value is required"
    );
    assert_eq!(
        e(Operator::LessThan, &["1", "x"]),
        "[values: Invalid value: []string{\"1\", \"x\"}: for 'Gt', 'Lt' operators, exactly one value is required, values[1]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer]"
    );
    let p = Path::new("spec").child("selector");
    assert_eq!(
        Requirement::new("-", Operator::Exists, vec![], Some(&p))
            .unwrap_err()
            .0,
        format!("spec.selector.key: Invalid value: \"-\": {NAME_PART_ERR}")
    );
    assert!(Requirement::new("x", Operator::GreaterThan, vec!["3".into()], None).is_ok());
    // A negative number is an integer but not a valid label value.
    assert!(Requirement::new("x", Operator::GreaterThan, vec!["-3".into()], None).is_err());
}
