//! The Leases kube-controller-manager and kube-scheduler hold in `kube-system` (their leader
//! election locks, named `kube-controller-manager` and `kube-scheduler`), renewed while this
//! process runs (they expire when it stops). svcnet runs one controller manager, so it renews
//! without electing; the API server's ComponentStatuses read these Leases as the components'
//! health, and `kubectl get leases -n kube-system` shows them as on a kubeadm cluster.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use svcnet_informer::lease::LeaseHolder;

use crate::Context;

/// client-go's leader election defaults: a 15 s lease renewed every 2 s.
const LEASE_SECONDS: i64 = 15;
const RETRY: Duration = Duration::from_secs(2);

/// Renew `names` (one per component this process runs) until the process ends.
pub async fn run(ctx: Arc<Context>, names: Vec<&'static str>) {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-system");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let holders: Vec<LeaseHolder> = names
        .into_iter()
        .map(|name| LeaseHolder {
            name: name.to_string(),
            holder: format!("{}_{}", host.trim(), std::process::id()),
            labels: BTreeMap::new(),
            duration_seconds: LEASE_SECONDS,
        })
        .collect();
    let mut tick = tokio::time::interval(RETRY);
    loop {
        tick.tick().await;
        for h in &holders {
            if let Err(e) = h.renew(&leases).await {
                tracing::debug!(lease = %h.name, error = %e, "renewing lease");
            }
        }
    }
}
