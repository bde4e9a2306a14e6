//! `svcnet exec`: run a command inside a pod, a node, or the outside client of a running
//! `svcnet up`, as `kubectl exec` would but from the host (the pod's namespace, hostname and
//! bind-mounted files, from the node agent's layout).

use std::path::Path;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt};
use svcnet_netns::NetNs;
use svcnet_node::layout;

use super::layout::Layout;

/// Where `svcnet exec` runs a command.
pub enum ExecTarget {
    Node(String),
    Outside,
    Pod { name: String, namespace: String },
}

/// `svcnet exec`: run `argv` inside a node, the outside client, or a pod; returns its exit code.
pub async fn exec(data_dir: &Path, target: ExecTarget, argv: &[String]) -> anyhow::Result<i32> {
    let l = Layout::new(data_dir)?;
    let (ns, hostname, binds) = match target {
        ExecTarget::Outside => (l.outside(), None, Vec::new()),
        ExecTarget::Node(name) => {
            let i: usize = name
                .strip_prefix("node-")
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("no node {name:?} (nodes are node-1, node-2, ...)"))?;
            (l.node_ns(i), None, Vec::new())
        }
        ExecTarget::Pod { name, namespace } => {
            let client = crate::client::client(Some(&l.kubeconfig())).await?;
            let pod: Pod = Api::namespaced(client, &namespace)
                .get(&name)
                .await
                .with_context(|| format!("pod {namespace}/{name}"))?;
            let uid = pod.uid().unwrap_or_default();
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .with_context(|| format!("pod {name} is not scheduled"))?;
            let node_dir = layout::node_dir(&l.data_dir, &node);
            let binds = layout::pod_file_binds(&layout::pod_dir(&node_dir, &uid));
            (
                layout::pod_netns(&l.prefix, &uid),
                Some(svcnet_node::agent::pods::hostname(&pod)),
                binds,
            )
        }
    };
    let netns = NetNs::open(&ns).with_context(|| {
        format!(
            "namespace {ns} (is `svcnet up` running on {}?)",
            l.data_dir.display()
        )
    })?;
    let (program, args) = argv.split_first().context("a command to run")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    svcnet_netns::enter_on_exec(&mut cmd, &netns, hostname.as_deref(), &binds)?;
    let status = tokio::task::spawn_blocking(move || cmd.status()).await??;
    Ok(status.code().unwrap_or(128))
}
