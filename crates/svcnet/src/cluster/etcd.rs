//! `svcnet up --store etcd`: run a one-member etcd (Debian's etcd-server) in the data dir, on
//! loopback, for as long as the cluster runs, and point the API server at it.

use std::path::Path;

use anyhow::Context;
use svcnet_apiserver::config::StoreUrl;
use svcnet_store::etcd::local::{free_port, LocalEtcd, MemberPorts};

/// The file that keeps the local etcd's ports, so a restarted `up` finds its member again.
const PORTS_FILE: &str = "ports";

/// Ports used last time (if still free), else new free ones.
fn ports_for(dir: &Path) -> anyhow::Result<MemberPorts> {
    let saved = std::fs::read_to_string(dir.join(PORTS_FILE))
        .ok()
        .and_then(|s| {
            let (c, p) = s.trim().split_once(' ')?;
            Some(MemberPorts {
                client: c.parse().ok()?,
                peer: p.parse().ok()?,
            })
        });
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    if let Some(p) = saved.filter(|p| free(p.client) && free(p.peer)) {
        return Ok(p);
    }
    let client = free_port()?;
    let mut peer = free_port()?;
    while peer == client {
        peer = free_port()?;
    }
    Ok(MemberPorts { client, peer })
}

/// Apply `up --store`: `None`/`sqlite` keep the default; `etcd` starts a local etcd under
/// `<data-dir>/etcd` (returned: it is killed when dropped); anything else is a store URL.
pub fn select_store(
    data_dir: &Path,
    store: Option<&str>,
    config: &mut svcnet_apiserver::Config,
) -> anyhow::Result<Option<LocalEtcd>> {
    match store {
        None | Some("sqlite") => Ok(None),
        Some("etcd") => {
            let dir = data_dir.join("etcd");
            std::fs::create_dir_all(&dir)?;
            let ports = ports_for(&dir)?;
            eprintln!(
                "starting etcd on 127.0.0.1:{} (data in {})",
                ports.client,
                dir.display()
            );
            let etcd = LocalEtcd::start_on(&dir, &[ports]).context("starting a local etcd")?;
            std::fs::write(
                dir.join(PORTS_FILE),
                format!("{} {}\n", ports.client, ports.peer),
            )?;
            config.store = Some(StoreUrl::parse(&etcd.store_url()).map_err(anyhow::Error::msg)?);
            Ok(Some(etcd))
        }
        Some(url) => {
            config.store = Some(StoreUrl::parse(url).map_err(anyhow::Error::msg)?);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use svcnet_store::Store;

    #[test]
    fn sqlite_and_urls_need_no_local_etcd() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = svcnet_apiserver::Config::new(dir.path().into());
        assert!(select_store(dir.path(), None, &mut config)
            .unwrap()
            .is_none());
        assert_eq!(config.store, None);
        assert!(
            select_store(dir.path(), Some("etcd://127.0.0.1:1"), &mut config)
                .unwrap()
                .is_none()
        );
        assert!(matches!(config.store, Some(StoreUrl::Etcd(_))));
        assert!(select_store(dir.path(), Some("nope://x"), &mut config).is_err());
    }

    /// `--store etcd` starts etcd, the API server's config points at it, and a second start
    /// on the same data dir reuses the member (its data survives).
    #[tokio::test]
    async fn local_etcd_starts_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = svcnet_apiserver::Config::new(dir.path().into());
        let etcd = select_store(dir.path(), Some("etcd"), &mut config)
            .unwrap()
            .unwrap();
        let Some(StoreUrl::Etcd(ec)) = config.store.clone() else {
            panic!("store not set: {:?}", config.store)
        };
        assert_eq!(ec.endpoints, etcd.endpoints());
        let store = svcnet_store::etcd::EtcdStore::connect(&ec).await.unwrap();
        let r = store
            .txn(
                vec![],
                vec![svcnet_store::Op::Put {
                    key: "/registry/k".into(),
                    value: "v".into(),
                }],
            )
            .await
            .unwrap();
        assert!(r.succeeded);
        drop(store);
        drop(etcd);

        let mut config = svcnet_apiserver::Config::new(dir.path().into());
        let _etcd = select_store(dir.path(), Some("etcd"), &mut config)
            .unwrap()
            .unwrap();
        let Some(StoreUrl::Etcd(ec2)) = config.store.clone() else {
            panic!()
        };
        assert_eq!(ec2.endpoints, ec.endpoints, "same ports again");
        let store = svcnet_store::etcd::EtcdStore::connect(&ec2).await.unwrap();
        let (kv, _) = store.get("/registry/k").await.unwrap();
        assert_eq!(kv.unwrap().value, "v");
    }
}
