//! Small predicates on API objects that several components need (the scheduler, the
//! LoadBalancer speakers, `svcnet up`'s readiness wait): client-go's `podutil` / `nodeutil`.

use k8s_openapi::api::core::v1::Node;

/// Whether the Node's `Ready` condition is `True` (kubernetes/pkg/util/node's IsNodeReady).
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_a_true_ready_condition() {
        let node = |conds: serde_json::Value| -> Node {
            serde_json::from_value(serde_json::json!({"status": {"conditions": conds}})).unwrap()
        };
        assert!(node_ready(&node(
            serde_json::json!([{"type": "Ready", "status": "True"}])
        )));
        assert!(!node_ready(&node(
            serde_json::json!([{"type": "Ready", "status": "Unknown"}])
        )));
        assert!(!node_ready(&node(
            serde_json::json!([{"type": "MemoryPressure", "status": "True"}])
        )));
        assert!(!node_ready(&Node::default()));
    }
}
