//! EtcdStore against a real etcd (Debian's 3.4 binary) started per test on loopback.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::local::LocalEtcd;
use super::*;
use crate::conformance::{collect_until, event_revisions, must_txn, put};

/// A fresh one-member etcd in a temp dir, and a store on it. Both go away on drop (etcd is
/// killed before the temp dir is removed: fields drop in order).
pub(crate) struct Guard {
    pub etcd: LocalEtcd,
    _dir: tempfile::TempDir,
}

async fn start(members: usize) -> (Guard, Arc<EtcdStore>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let etcd = tokio::task::spawn_blocking(move || LocalEtcd::start(&d, members))
        .await
        .unwrap()
        .expect("starting etcd");
    let config = EtcdConfig {
        endpoints: etcd.endpoints(),
        ..Default::default()
    };
    let store = EtcdStore::connect(&config).await.expect("connecting");
    (Guard { etcd, _dir: dir }, Arc::new(store))
}

async fn open_dyn() -> (Guard, Arc<dyn Store>) {
    let (g, s) = start(1).await;
    (g, s)
}

crate::conformance::conformance_tests!(open_dyn, 500);

#[test]
fn parses_store_urls() {
    let c = EtcdConfig::parse_url("etcd://10.0.0.1:2379,10.0.0.2:2379").unwrap();
    assert_eq!(c.endpoints, vec!["10.0.0.1:2379", "10.0.0.2:2379"]);
    assert!(EtcdConfig::parse_url("etcd://").is_err());
    assert!(EtcdConfig::parse_url("etcd://host").is_err());
    assert!(EtcdConfig::parse_url("sqlite:///x").is_err());
}

#[test]
fn range_bounds_cover_prefix_and_paging() {
    assert_eq!(range_bounds("", None), (vec![0], vec![0]));
    assert_eq!(
        range_bounds("/a/", None),
        (b"/a/".to_vec(), b"/a0".to_vec())
    );
    assert_eq!(
        range_bounds("/a/", Some("/a/x")),
        (b"/a/x\0".to_vec(), b"/a0".to_vec())
    );
    // start_after before the prefix: the prefix.
    assert_eq!(
        range_bounds("/b/", Some("/a")),
        (b"/b/".to_vec(), b"/b0".to_vec())
    );
}

#[tokio::test]
async fn connect_fails_cleanly_when_nothing_listens() {
    let port = local::free_port().unwrap();
    let config = EtcdConfig {
        endpoints: vec![format!("127.0.0.1:{port}")],
        connect_timeout: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    match EtcdStore::connect(&config).await {
        Err(StoreError::OpenFailed(msg)) => assert!(msg.contains("did not answer"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

/// Two stores (as two API servers) on one etcd: a write through one is seen by the other's
/// watch, and compacting through one is reported by the other.
#[tokio::test]
async fn two_clients_share_revisions_watches_and_compaction() {
    let (g, a) = start(1).await;
    let b = EtcdStore::connect(&EtcdConfig {
        endpoints: g.etcd.endpoints(),
        ..Default::default()
    })
    .await
    .unwrap();
    let base = a.current_revision().await.unwrap();
    let mut w = b.watch("/registry/", base + 1).await.unwrap();
    let r = must_txn(
        a.as_ref(),
        vec![Compare::Absent("/registry/k".into())],
        vec![put("/registry/k", "v")],
    )
    .await;
    let items = collect_until(&mut w, r).await;
    assert_eq!(event_revisions(&items), vec![r]);
    assert_eq!(b.current_revision().await.unwrap(), r);
    for i in 0..5 {
        must_txn(a.as_ref(), vec![], vec![put("/registry/k", &i.to_string())]).await;
    }
    a.compact(r + 2).await.unwrap();
    assert_eq!(b.compacted_revision().await.unwrap(), r + 2);
    assert!(matches!(
        b.watch("/registry/", r).await,
        Err(StoreError::Compacted { compacted, .. }) if compacted == r + 2
    ));
}

/// An open watch whose start is compacted away before it catches up ends with `Compacted`.
#[tokio::test]
async fn watch_behind_compaction_reports_compacted() {
    let (_g, s) = start(1).await;
    let base = s.current_revision().await.unwrap();
    for i in 0..20 {
        must_txn(s.as_ref(), vec![], vec![put("/z/k", &i.to_string())]).await;
    }
    // The watch is created at base+1; compact immediately past it.
    let mut w = s.watch("/z/", base + 1).await.unwrap();
    s.compact(base + 15).await.unwrap();
    // Either it replayed everything before the compaction (etcd sends history quickly), or it
    // reports the compaction: never a silent gap.
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
        {
            Some(Ok(WatchResponse::Events { revision, .. })) => {
                seen.push(revision);
                if revision == base + 20 {
                    break;
                }
            }
            Some(Ok(WatchResponse::Progress { .. })) => {}
            Some(Err(StoreError::Compacted { compacted, .. })) => {
                assert_eq!(compacted, base + 15);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    if seen.last() == Some(&(base + 20)) {
        assert_eq!(seen, (base + 1..=base + 20).collect::<Vec<_>>());
    }
}

/// A three-member cluster keeps taking writes with one member killed. If the killed member was
/// the leader, a write in flight during the election may fail with etcd's "request timed out"
/// (its outcome unknown, as etcd says); these puts are idempotent, so such a write is re-sent
/// (at most 3 times in the whole test); every other error fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_continue_with_one_of_three_members_killed() {
    let (mut g, s) = start(3).await;
    let r0 = must_txn(s.as_ref(), vec![], vec![put("/m/k", "0")]).await;
    g.etcd.kill(0);
    let mut last = r0;
    let mut ambiguous = 0;
    for i in 1..=50 {
        loop {
            let r = tokio::time::timeout(
                Duration::from_secs(20),
                s.txn(vec![], vec![put("/m/k", &i.to_string())]),
            )
            .await
            .expect("write stalled with one member down");
            match r {
                Ok(r) => {
                    assert!(r.succeeded && r.revision > last);
                    last = r.revision;
                    break;
                }
                Err(StoreError::Backend(m)) if m.contains("request timed out") && ambiguous < 3 => {
                    ambiguous += 1;
                }
                Err(e) => panic!("write {i} failed with one member down: {e}"),
            }
        }
    }
    assert_eq!(s.get("/m/k").await.unwrap().0.unwrap().value, "50");
}

/// An etcd process started by hand (for options `LocalEtcd` does not take), killed on drop.
struct RawEtcd(std::process::Child);

impl Drop for RawEtcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Write a CA, an etcd serving certificate for 127.0.0.1 and a client certificate into `dir`.
fn write_pki(dir: &std::path::Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "etcd-test-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    for (name, usage) in [
        ("server", ExtendedKeyUsagePurpose::ServerAuth),
        ("client", ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// `--etcd-cafile/--etcd-certfile/--etcd-keyfile`: an etcd that requires client certificates
/// accepts the store with them, and refuses it without a client certificate or without TLS.
#[tokio::test]
async fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_pki(d);
    let (client, peer) = (local::free_port().unwrap(), local::free_port().unwrap());
    let url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(d.join("etcd.log")).unwrap();
    let _etcd = RawEtcd(
        std::process::Command::new(local::etcd_binary())
            .args(["--name", "tls", "--data-dir"])
            .arg(d.join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("tls={peer_url}")])
            .arg("--cert-file")
            .arg(d.join("server.crt"))
            .arg("--key-file")
            .arg(d.join("server.key"))
            .arg("--trusted-ca-file")
            .arg(d.join("ca.crt"))
            .arg("--client-cert-auth")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let endpoint = format!("127.0.0.1:{client}");
    let with = |tls: EtcdTls| EtcdConfig {
        endpoints: vec![endpoint.clone()],
        tls,
        connect_timeout: Some(Duration::from_secs(15)),
    };
    let full = EtcdTls {
        ca_file: Some(d.join("ca.crt")),
        cert_file: Some(d.join("client.crt")),
        key_file: Some(d.join("client.key")),
    };
    let store = match EtcdStore::connect(&with(full)).await {
        Ok(s) => s,
        Err(e) => panic!(
            "TLS connect failed: {e}\n{}",
            std::fs::read_to_string(d.join("etcd.log")).unwrap_or_default()
        ),
    };
    let r = must_txn(
        &store,
        vec![Compare::Absent("/t".into())],
        vec![put("/t", "v")],
    )
    .await;
    assert_eq!(store.get("/t").await.unwrap().0.unwrap().mod_revision, r);

    let short = |tls: EtcdTls| EtcdConfig {
        connect_timeout: Some(Duration::from_secs(2)),
        ..with(tls)
    };
    let no_client_cert = EtcdTls {
        ca_file: Some(d.join("ca.crt")),
        ..Default::default()
    };
    assert!(EtcdStore::connect(&short(no_client_cert)).await.is_err());
    assert!(EtcdStore::connect(&short(EtcdTls::default()))
        .await
        .is_err());
    // A certificate without its key is a configuration error, reported as such.
    let half = EtcdTls {
        ca_file: Some(d.join("ca.crt")),
        cert_file: Some(d.join("client.crt")),
        key_file: None,
    };
    assert!(matches!(
        EtcdStore::connect(&short(half)).await,
        Err(StoreError::OpenFailed(m)) if m.contains("go together")
    ));
}
