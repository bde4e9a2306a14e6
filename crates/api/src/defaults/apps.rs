//! apps/v1 defaulting: mirrors `SetDefaults_Deployment`, `SetDefaults_ReplicaSet` and
//! `SetDefaults_DaemonSet` of
//! `pkg/apis/apps/v1/defaults.go`, plus the pod template defaults
//! ([`super::core::default_pod_template_spec`]).

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy, ReplicaSet,
    RollingUpdateDaemonSet, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::core::default_pod_template_spec;

/// `replicas: 1`, strategy `RollingUpdate` with `maxUnavailable`/`maxSurge` 25%,
/// `revisionHistoryLimit: 10`, `progressDeadlineSeconds: 600`, template defaults.
pub fn default_deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    if strategy.type_.as_deref().unwrap_or("").is_empty() {
        strategy.type_ = Some("RollingUpdate".into());
    }
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        ru.max_unavailable
            .get_or_insert_with(|| IntOrString::String("25%".into()));
        ru.max_surge
            .get_or_insert_with(|| IntOrString::String("25%".into()));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    default_pod_template_spec(&mut spec.template);
}

/// `replicas: 1` and template defaults.
pub fn default_replicaset(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    // The v1 template is a struct, not a pointer: an absent one is defaulted like an empty one.
    default_pod_template_spec(spec.template.get_or_insert_with(Default::default));
}

/// `SetDefaults_DaemonSet`: update strategy `RollingUpdate` with `maxUnavailable: 1` and
/// `maxSurge: 0`, `revisionHistoryLimit: 10`, template defaults.
pub fn default_daemonset(ds: &mut DaemonSet) {
    let spec = ds.spec.get_or_insert_with(Default::default);
    let strategy = spec
        .update_strategy
        .get_or_insert_with(DaemonSetUpdateStrategy::default);
    if strategy.type_.as_deref().unwrap_or("").is_empty() {
        strategy.type_ = Some("RollingUpdate".into());
    }
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDaemonSet::default);
        ru.max_unavailable.get_or_insert(IntOrString::Int(1));
        ru.max_surge.get_or_insert(IntOrString::Int(0));
    }
    spec.revision_history_limit.get_or_insert(10);
    default_pod_template_spec(&mut spec.template);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_defaults() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
        }))
        .unwrap();
        default_deployment(&mut d);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["spec"]["replicas"], json!(1));
        assert_eq!(
            v["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(v["spec"]["revisionHistoryLimit"], json!(10));
        assert_eq!(v["spec"]["progressDeadlineSeconds"], json!(600));
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], json!("Always"));
        assert_eq!(pod["containers"][0]["imagePullPolicy"], json!("Always"));
        assert_eq!(pod.get("enableServiceLinks"), None, "Pod-only default");
        let mut d: Deployment =
            serde_json::from_value(json!({"spec": {"selector": {}, "template": {},
            "strategy": {"type": "Recreate"}}}))
            .unwrap();
        default_deployment(&mut d);
        assert_eq!(d.spec.unwrap().strategy.unwrap().rolling_update, None);
    }

    #[test]
    fn replicaset_defaults() {
        let mut rs: ReplicaSet = serde_json::from_value(json!({"spec": {"selector": {}}})).unwrap();
        default_replicaset(&mut rs);
        assert_eq!(rs.spec.unwrap().replicas, Some(1));
    }

    #[test]
    fn daemonset_defaults() {
        let mut ds: DaemonSet =
            serde_json::from_value(json!({"spec": {"selector": {}, "template": {}}})).unwrap();
        default_daemonset(&mut ds);
        let v = serde_json::to_value(&ds).unwrap();
        assert_eq!(
            v["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(v["spec"]["revisionHistoryLimit"], json!(10));
        assert_eq!(
            v["spec"]["template"]["spec"]["restartPolicy"],
            json!("Always")
        );
    }
}
