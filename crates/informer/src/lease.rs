//! Holding a coordination.k8s.io Lease: renewed by its holder, released on a clean stop (the
//! write half of client-go's `tools/leaderelection` resource lock, and of the kubelet's node
//! lease). The LoadBalancer speakers hold one per node as their liveness.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;

/// A Lease held by `holder`, as it is written at each renewal.
#[derive(Clone, Debug)]
pub struct LeaseHolder {
    pub name: String,
    pub holder: String,
    pub labels: BTreeMap<String, String>,
    /// How long a renewal is valid.
    pub duration_seconds: i64,
}

impl LeaseHolder {
    /// The Lease, renewed now.
    pub fn lease(&self, namespace: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(namespace.to_string()),
                labels: Some(self.labels.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.holder.clone()),
                lease_duration_seconds: Some(
                    i32::try_from(self.duration_seconds).unwrap_or(i32::MAX),
                ),
                renew_time: Some(MicroTime(jiff::Timestamp::now())),
                ..Default::default()
            }),
        }
    }

    /// Renew the Lease: a merge patch of its spec, or its creation when it is not there.
    pub async fn renew(&self, leases: &Api<Lease>) -> kube::Result<()> {
        let l = self.lease(leases.namespace().unwrap_or_default());
        let patch = serde_json::json!({ "spec": l.spec });
        match leases
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 404 => {
                leases.create(&PostParams::default(), &l).await.map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }
}

/// Give the Lease `name` up at once (a clean stop), so others need not wait for it to expire.
pub async fn release(leases: &Api<Lease>, name: &str) -> kube::Result<()> {
    match leases.delete(name, &DeleteParams::default()).await {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        r => r.map(|_| ()),
    }
}
