//! The cluster CA and the API server's serving certificate, kept in the data dir, and the
//! data dir's own modes.
//!
//! The CA key and certificate are created once (`ca.key`, `ca.crt`); the serving certificate is
//! re-issued at every start so its names always match the current flags. Private files (keys,
//! tokens, the kubeconfig) are created with mode 0600 and the data dir with 0700 (as kubeadm
//! keeps `/etc/kubernetes/pki` keys and kubeconfigs); [`secure_data_dir`] also tightens them
//! on a data dir an older version left readable. Certificates stay world-readable.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub struct TlsMaterial {
    /// PEM of the CA certificate (goes into the kubeconfig).
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// The API server's private files in its data dir (the store's files are the store's).
const PRIVATE_FILES: &[&str] = &[
    "ca.key",
    "apiserver.key",
    "admin.token",
    "kubelet-client.token",
    "kubeconfig",
    "apiserver.lock",
];

/// Create the data dir (mode 0700) or tighten it to 0700, and tighten the private files an
/// earlier start left there to 0600.
pub fn secure_data_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        r => r?,
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for f in PRIVATE_FILES {
        match std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            r => r?,
        }
    }
    Ok(())
}

pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // `mode` applies only to a file it creates: a leftover temporary keeps its own.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn tls_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "svcnet-ca");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    p
}

/// Load or create the CA in `dir`, issue a serving certificate for `dns_names` and `ips`.
pub fn load_or_create(dir: &Path, dns_names: &[String], ips: &[IpAddr]) -> io::Result<TlsMaterial> {
    let key_path = dir.join("ca.key");
    let crt_path = dir.join("ca.crt");
    let ca_key = match std::fs::read_to_string(&key_path) {
        Ok(pem) => KeyPair::from_pem(&pem).map_err(tls_err)?,
        Err(_) => {
            let k = KeyPair::generate().map_err(tls_err)?;
            write_private(&key_path, k.serialize_pem().as_bytes())?;
            let _ = std::fs::remove_file(&crt_path);
            k
        }
    };
    let ca_pem = match std::fs::read_to_string(&crt_path) {
        Ok(pem) => pem,
        Err(_) => {
            let cert = ca_params().self_signed(&ca_key).map_err(tls_err)?;
            let pem = cert.pem();
            std::fs::write(&crt_path, &pem)?;
            pem
        }
    };
    // Re-created from the same parameters and key, the issuer signs certificates that verify
    // against the stored CA certificate.
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut leaf = CertificateParams::new(dns_names.to_vec()).map_err(tls_err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    for ip in ips {
        leaf.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = rcgen::date_time_ymd(2024, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let leaf_key = KeyPair::generate().map_err(tls_err)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(tls_err)?;
    std::fs::write(dir.join("apiserver.crt"), leaf_cert.pem())?;
    write_private(
        &dir.join("apiserver.key"),
        leaf_key.serialize_pem().as_bytes(),
    )?;

    let chain = vec![leaf_cert.der().clone()];
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).map_err(tls_err)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_err)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(tls_err)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem,
        server_config: Arc::new(cfg),
    })
}

/// The kubeconfig for the admin: server, CA and bearer token, usable by kubectl as is.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: svcnet
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: svcnet
  context:
    cluster: svcnet
    user: admin
    namespace: default
current-context: svcnet
preferences: {{}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn ca_survives_restart_and_leaf_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string()];
        let ips = vec![IpAddr::from([127, 0, 0, 1])];
        let a = load_or_create(dir.path(), &names, &ips).unwrap();
        let b = load_or_create(dir.path(), &names, &ips).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem, "the CA is kept");
        for f in ["ca.key", "apiserver.key"] {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(dir.path().join(f)).unwrap().permissions();
            assert_eq!(m.mode() & 0o777, 0o600, "{f}");
        }
        // The re-issued leaf verifies against the stored CA.
        let ca_der = rustls_pemfile::certs(&mut a.ca_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_der).unwrap();
        let leaf_pem = std::fs::read(dir.path().join("apiserver.crt")).unwrap();
        let leaf = rustls_pemfile::certs(&mut leaf_pem.as_slice())
            .next()
            .unwrap()
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], rustls::pki_types::UnixTime::now())
            .expect("leaf verifies against the CA");
    }
}
