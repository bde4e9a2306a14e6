//! The ConfigMaps and Secrets pods consume, as the kubelet's configmap and secret managers
//! (`pkg/kubelet/configmap`, `pkg/kubelet/secret`) serve them to the env builder and the
//! volume plugins. The agent answers from watch-fed stores ([`crate::agent`]); tests from a
//! fixed list ([`Fixed`]).
//!
//! Deviation: the kubelet watches each object a pod on the node references (its
//! `Watch` change-detection strategy); the agent watches all of them, one watch per kind.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

/// Lookups by namespace and name; `Err` is the kubelet's message for a missing object
/// (`configmap "x" not found`, from its managers' `NewNotFound(Resource("configmap"), name)`).
pub trait Objects: Send + Sync {
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>>;
}

pub fn config_map_not_found(name: &str) -> String {
    format!("configmap {name:?} not found")
}

pub fn secret_not_found(name: &str) -> String {
    format!("secret {name:?} not found")
}

/// A fixed set of objects (also: none).
#[derive(Clone, Debug, Default)]
pub struct Fixed {
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
}

fn is(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ns: &str,
    name: &str,
) -> bool {
    meta.namespace.as_deref() == Some(ns) && meta.name.as_deref() == Some(name)
}

impl Objects for Fixed {
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.config_maps
            .iter()
            .find(|c| is(&c.metadata, namespace, name))
            .cloned()
            .map(Arc::new)
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets
            .iter()
            .find(|s| is(&s.metadata, namespace, name))
            .cloned()
            .map(Arc::new)
    }
}
