//! `svcnet exec`: run a command inside a pod, a node, or the outside client of a running
//! `svcnet up`, as `kubectl exec` would but from the host (the pod's namespace, hostname and
//! bind-mounted files, from the node agent's layout). On a node it is as if logged in to it:
//! the node's hostname, the cluster's /etc/hosts (node names resolve), `KUBECONFIG` for the
//! API server as the node reaches it, and `svcnet` on PATH; the outside client gets the same
//! but for the hostname.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let in_cluster = !matches!(target, ExecTarget::Pod { .. });
    let (ns, hostname, binds) = match target {
        ExecTarget::Outside => (l.outside(), None, hosts_bind(&l)),
        ExecTarget::Node(name) => {
            let i: usize = name
                .strip_prefix("node-")
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("no node {name:?} (nodes are node-1, node-2, ...)"))?;
            (l.node_ns(i), Some(name), hosts_bind(&l))
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
    let mut cmd = Command::new(program);
    cmd.args(args);
    if in_cluster {
        login_env(&mut cmd, &l)?;
    }
    svcnet_netns::enter_on_exec(&mut cmd, &netns, hostname.as_deref(), &binds)?;
    let status = match tokio::task::spawn_blocking(move || cmd.status()).await? {
        Ok(s) => s,
        Err(e) => return not_started(program, &e),
    };
    // Killed by a signal: 128 + its number, as a shell says it.
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// The cluster's hosts file over /etc/hosts (in the command's own mount namespace: the host's
/// file is untouched); none for a cluster started before `up` wrote one.
fn hosts_bind(l: &Layout) -> Vec<(PathBuf, PathBuf)> {
    let hosts = l.hosts();
    if hosts.is_file() {
        vec![(hosts, "/etc/hosts".into())]
    } else {
        Vec::new()
    }
}

/// A node's (or the outside client's) login environment: `KUBECONFIG` for the API server as
/// the nodes reach it, unless it names another cluster's (this cluster's own admin kubeconfig
/// names the host's loopback, which a node does not reach); and this binary's directory first
/// on PATH, so `svcnet proxy --list` there is this `svcnet` talking to this cluster.
fn login_env(cmd: &mut Command, l: &Layout) -> anyhow::Result<()> {
    let ours =
        |k: &OsString| Path::new(k).canonicalize().ok() == l.kubeconfig().canonicalize().ok();
    match std::env::var_os("KUBECONFIG") {
        Some(k) if !ours(&k) => {}
        _ => {
            cmd.env("KUBECONFIG", l.internal_kubeconfig());
        }
    }
    let exe = std::env::current_exe()?;
    let mut path: Vec<PathBuf> = exe.parent().map(Path::to_path_buf).into_iter().collect();
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH")
            .unwrap_or_else(|| OsString::from("/usr/sbin:/usr/bin:/sbin:/bin")),
    ));
    cmd.env("PATH", std::env::join_paths(path)?);
    Ok(())
}

/// A command that could not start: runc's message naming the program (as `kubectl exec`
/// prints it), and the exit code a shell and the docker CLI (`toStatusError`) give: 127 for a
/// program not found, 126 for one that cannot be executed.
fn not_started(program: &str, e: &std::io::Error) -> anyhow::Result<i32> {
    let code = match e.kind() {
        std::io::ErrorKind::NotFound => 127,
        std::io::ErrorKind::PermissionDenied => 126,
        _ => return Err(anyhow::anyhow!("running {program:?}: {e}")),
    };
    let message = svcnet_node::kubelet_api::exec::start_error(program, e);
    eprintln!("svcnet {message}");
    Ok(code)
}
