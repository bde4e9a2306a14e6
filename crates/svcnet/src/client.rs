//! A client for the API server, from an explicit kubeconfig or kube-rs' defaults.

use std::path::Path;

use anyhow::Context;

/// `kubeconfig`: the file to read (`svcnet up`'s admin kubeconfig, `--kubeconfig`); `None`: kube-rs'
/// inference ($KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}
