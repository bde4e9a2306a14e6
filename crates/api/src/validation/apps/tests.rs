use super::*;
use crate::defaults::apps::{default_deployment, default_replicaset};
use crate::field::messages;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};

fn deployment(spec: Value) -> Deployment {
    let mut d: Deployment = serde_json::from_value(
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
    )
    .unwrap();
    default_deployment(&mut d);
    d
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
}

#[test]
fn valid_deployment() {
    let d =
        deployment(json!({"selector": {"matchLabels": {"app": "web"}}, "template": template()}));
    assert_eq!(validate_deployment_create(&d), vec![]);
    let d = deployment(
        json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}, "template": template()}),
    );
    assert_eq!(validate_deployment_create(&d), vec![]);
}

#[test]
fn deployment_errors_match_kubernetes() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"selector": {"matchLabels": {"app": "api"}}, "template": template()}),
            vec![r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#],
        ),
        (
            json!({"template": template()}),
            vec![
                "spec.selector: Required value",
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#,
            ],
        ),
        (
            json!({"selector": {"matchLabels": {}}, "template": template()}),
            vec!["spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}: empty selector is invalid for deployment"],
        ),
        (
            json!({"replicas": -1, "selector": {"matchLabels": {"app": "web"}}, "template": template()}),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(), "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}),
            vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"],
        ),
        (
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(), "strategy": {"rollingUpdate": {"maxSurge": "x%", "maxUnavailable": "120%"}}}),
            vec![
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: x%: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 120%: must not be greater than 100%",
            ],
        ),
        (
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(), "strategy": {"type": "Recreate", "rollingUpdate": {}}}),
            vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"],
        ),
        (
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(), "strategy": {"type": "BlueGreen"}}),
            vec![r#"spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", "RollingUpdate""#],
        ),
        (
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(), "progressDeadlineSeconds": 5, "minReadySeconds": 10}),
            vec!["spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"],
        ),
        (
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "web", "image": "nginx"}]}}}),
            vec![r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#],
        ),
        (
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web"}]}}}),
            vec!["spec.template.spec.containers[0].image: Required value"],
        ),
        (
            json!({"selector": {"matchExpressions": [{"key": "app", "operator": "Like", "values": ["web"]}]}, "template": template()}),
            vec![
                r#"spec.selector.matchExpressions[0].operator: Invalid value: "Like": not a valid selector operator"#,
                "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:app,Operator:Like,Values:[web],},},}: invalid label selector",
            ],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(
            messages(&validate_deployment_create(&deployment(spec.clone()))),
            want,
            "{spec}"
        );
    }
}

#[test]
fn deployment_update_and_status() {
    let mut old =
        deployment(json!({"selector": {"matchLabels": {"app": "web"}}, "template": template()}));
    old.metadata.resource_version = Some("7".into());
    let mut new = old.clone();
    new.spec.as_mut().unwrap().selector =
        serde_json::from_value(json!({"matchLabels": {"app": "web", "tier": "x"}})).unwrap();
    let template_labels = new
        .spec
        .as_mut()
        .and_then(|s| s.template.metadata.as_mut())
        .and_then(|m| m.labels.as_mut())
        .unwrap();
    template_labels.insert("tier".into(), "x".into());
    assert_eq!(
        messages(&validate_deployment_update(&new, &old)),
        vec!["spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{app: web,tier: x,},MatchExpressions:[]LabelSelectorRequirement{},}: field is immutable"]
    );
    let mut new = old.clone();
    new.status = Some(
        serde_json::from_value(json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": 3}))
            .unwrap(),
    );
    assert_eq!(
        messages(&validate_deployment_status_update(&new, &old)),
        vec![
            "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
            "status.availableReplicas: Invalid value: 3: cannot be greater than status.replicas",
            "status.availableReplicas: Invalid value: 3: cannot be greater than readyReplicas",
        ]
    );
}

#[test]
fn replicasets_and_scale() {
    let mut rs: ReplicaSet = serde_json::from_value(
        json!({"metadata": {"name": "web-abc", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}}),
    )
    .unwrap();
    default_replicaset(&mut rs);
    assert_eq!(validate_replicaset_create(&rs), vec![]);
    let mut bad = rs.clone();
    bad.spec.as_mut().unwrap().selector =
        serde_json::from_value(json!({"matchLabels": {}})).unwrap();
    assert_eq!(
        messages(&validate_replicaset_create(&bad)),
        vec!["spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}: empty selector is invalid for deployment"]
    );
    assert_eq!(
        messages(&validate_scale(-2)),
        vec!["spec.replicas: Invalid value: -2: must be greater than or equal to 0"]
    );
    assert_eq!(validate_scale(0), vec![]);
}
