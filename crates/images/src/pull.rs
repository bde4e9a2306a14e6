//! Pulling an image from a registry into the [`Store`], as containerd's CRI `PullImage`, and
//! the kubelet's `EnsureImageExists` around it ([`Puller::ensure`]).
//!
//! Upstream: containerd `remotes/docker/resolver.go` (endpoints tried in order; a 404 goes on
//! to the next, the first other failure is what is reported, all 404 is "not found"),
//! `images/image.go` + `platforms` (an index resolves to its linux/amd64 manifest), the CRI's
//! `PullImage` (names: the repo tag and `name@<resolved digest>`). The registry protocol,
//! bearer-token challenge included, is oci-client's.
//!
//! Timeouts, as containerd: connecting 30 s (Go's `net.Dialer` in `http.DefaultTransport`), and
//! no byte for `image_pull_progress_timeout` (5 min) cancels the pull; layers are fetched 3 at a
//! time (`max_concurrent_downloads`).

use std::sync::Once;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use tokio::sync::mpsc;

use crate::error::PullError;
use crate::ingest::{ingest_layer, IngestError};
use crate::manifest::{self, Descriptor, Parsed, ACCEPT};
use crate::policy::PullPolicy;
use crate::reference::{apply_default_image_tag, ImageNameError, Reference};
use crate::registries::{Endpoint, Keyring, Registries};
use crate::store::{ConfigFile, Image, ImageRecord, Store};
use crate::unpack::sha256_digest;

/// Pull tuning; the defaults are containerd's.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Connecting to an endpoint (Go's `net.Dialer.Timeout` in `http.DefaultTransport`: 30 s).
    pub connect_timeout: Duration,
    /// No byte received for this long fails the pull (containerd's
    /// `image_pull_progress_timeout`: 5 min).
    pub progress_timeout: Duration,
    /// Layers fetched at once (containerd's `max_concurrent_downloads`: 3).
    pub max_concurrent_downloads: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            progress_timeout: Duration::from_secs(300),
            max_concurrent_downloads: 3,
        }
    }
}

/// What [`Puller::ensure`] did.
#[derive(Debug, Clone)]
pub struct Ensured {
    pub image: Image,
    /// How long the pull took, when one was made (the kubelet's `Pulled` event).
    pub pulled_in: Option<Duration>,
}

/// Pulls into one store with one registries configuration; cheap to clone.
#[derive(Debug, Clone)]
pub struct Puller {
    store: Store,
    registries: Registries,
    options: PullOptions,
}

/// The endpoint a reference resolved on, and what it resolved to.
struct Resolved {
    client: oci_client::Client,
    oci_ref: oci_client::Reference,
    /// The digest the reference points at (an index's, or the manifest's).
    digest: String,
    manifest_digests: Vec<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

static CRYPTO: Once = Once::new();

impl Puller {
    pub fn new(store: Store, registries: Registries, options: PullOptions) -> Self {
        CRYPTO.call_once(|| {
            // reqwest is built without a rustls provider; the workspace's is ring.
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        Self {
            store,
            registries,
            options,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The kubelet's `EnsureImageExists`: the image named in the pod spec, pulled if `policy`
    /// says so. `Never` and absent is [`PullError::NeverPull`].
    pub async fn ensure(
        &self,
        image: &str,
        policy: PullPolicy,
        keyring: &Keyring,
    ) -> Result<Ensured, PullError> {
        let with_tag = apply_default_image_tag(image)?;
        let present = self.store.get(&with_tag);
        if !policy.should_pull(present.is_some()) {
            return match present {
                Some(image) => Ok(Ensured {
                    image,
                    pulled_in: None,
                }),
                None => Err(PullError::NeverPull {
                    image: image.to_string(),
                }),
            };
        }
        let start = Instant::now();
        let image = self.pull(&with_tag, keyring).await?;
        Ok(Ensured {
            image,
            pulled_in: Some(start.elapsed()),
        })
    }

    /// containerd's `PullImage`: resolves `image` on its endpoints, fetches what the store
    /// lacks, verifies every blob, unpacks each layer once, and names the image.
    pub async fn pull(&self, image: &str, keyring: &Keyring) -> Result<Image, PullError> {
        let reference = Reference::parse_docker_ref(image).map_err(|source| ImageNameError {
            image: image.to_string(),
            source,
        })?;
        let name = reference.to_string();
        let store = self.store.clone();
        let _shared = blocking(move || store.lock_shared())
            .await
            .map_err(|source| PullError::Store {
                reference: name.clone(),
                source,
            })?;
        let resolved = self.resolve(&reference, &name, keyring).await?;
        self.fetch(&reference, &name, resolved).await
    }

    async fn resolve(
        &self,
        reference: &Reference,
        name: &str,
        keyring: &Keyring,
    ) -> Result<Resolved, PullError> {
        let mut first_err = None;
        for endpoint in self.registries.endpoints(reference, keyring) {
            match self.resolve_on(reference, name, &endpoint).await {
                Ok(r) => return Ok(r),
                Err(PullError::NotFound { .. }) => {
                    tracing::debug!(host = %endpoint.host, %name, "not found; trying next host")
                }
                Err(e) => {
                    tracing::debug!(host = %endpoint.host, %name, error = %e, "trying next host");
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| PullError::NotFound {
            reference: name.to_string(),
        }))
    }

    fn client(&self, endpoint: &Endpoint) -> Result<oci_client::Client, String> {
        let mut config = ClientConfig {
            protocol: if endpoint.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: endpoint.insecure_skip_verify,
            platform_resolver: None,
            connect_timeout: Some(self.options.connect_timeout),
            read_timeout: Some(self.options.progress_timeout),
            max_concurrent_download: self.options.max_concurrent_downloads,
            ..Default::default()
        };
        if let Some(ca) = &endpoint.ca_file {
            let data =
                std::fs::read(ca).map_err(|e| format!("failed to read {}: {e}", ca.display()))?;
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        oci_client::Client::try_from(config).map_err(|e| e.to_string())
    }

    async fn resolve_on(
        &self,
        reference: &Reference,
        name: &str,
        endpoint: &Endpoint,
    ) -> Result<Resolved, PullError> {
        let resolve_err = |cause: String| PullError::Resolve {
            reference: name.to_string(),
            cause,
        };
        let client = self.client(endpoint).map_err(resolve_err)?;
        let oci_ref = match (&reference.digest, &reference.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(
                endpoint.host.clone(),
                endpoint.repository.clone(),
                d.clone(),
            ),
            (None, Some(t)) => oci_client::Reference::with_tag(
                endpoint.host.clone(),
                endpoint.repository.clone(),
                t.clone(),
            ),
            (None, None) => unreachable!("parse_docker_ref adds a tag"),
        };
        let auth = match &endpoint.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let (bytes, digest) = client
            .pull_manifest_raw(&oci_ref, &auth, ACCEPT)
            .await
            .map_err(|e| classify(name, e, "manifest"))?;
        let mut manifest_digests = vec![digest.clone()];
        let mut blobs = vec![(digest.clone(), bytes.clone())];
        let manifest_err = |cause: String| PullError::Manifest {
            reference: name.to_string(),
            cause,
        };
        let (config, layers) = match manifest::parse(&bytes).map_err(manifest_err)? {
            Parsed::Image { config, layers } => (config, layers),
            Parsed::Index(entries) => {
                let entry = manifest::select_platform(&entries).ok_or_else(|| {
                    PullError::NoMatchingPlatform {
                        reference: name.to_string(),
                    }
                })?;
                let by_digest = oci_ref.clone_with_digest(entry.digest.clone());
                let (bytes, d) = client
                    .pull_manifest_raw(&by_digest, &auth, ACCEPT)
                    .await
                    .map_err(|e| classify(name, e, "manifest"))?;
                manifest_digests.push(d.clone());
                blobs.push((d, bytes.clone()));
                match manifest::parse(&bytes).map_err(manifest_err)? {
                    Parsed::Image { config, layers } => (config, layers),
                    Parsed::Index(_) => {
                        return Err(manifest_err("unexpected nested index".to_string()))
                    }
                }
            }
        };
        for (d, b) in blobs {
            self.store
                .put_blob(&d, &b)
                .map_err(|source| PullError::Store {
                    reference: name.to_string(),
                    source,
                })?;
        }
        Ok(Resolved {
            client,
            oci_ref,
            digest,
            manifest_digests,
            config,
            layers,
        })
    }

    async fn fetch(
        &self,
        reference: &Reference,
        name: &str,
        r: Resolved,
    ) -> Result<Image, PullError> {
        let store_err = |source| PullError::Store {
            reference: name.to_string(),
            source,
        };
        // The config: small, read whole, verified here as well as by oci-client.
        let mut config_bytes = Vec::new();
        r.client
            .pull_blob(&r.oci_ref, &oci_descriptor(&r.config), &mut config_bytes)
            .await
            .map_err(|e| classify(name, e, "config"))?;
        let actual = sha256_digest(&config_bytes);
        if actual != r.config.digest {
            return Err(PullError::DigestMismatch {
                reference: name.to_string(),
                ref_key: format!("config-{}", r.config.digest),
                expected: r.config.digest.clone(),
                actual,
            });
        }
        let config: ConfigFile =
            serde_json::from_slice(&config_bytes).map_err(|e| PullError::Manifest {
                reference: name.to_string(),
                cause: format!("failed to unmarshal image config: {e}"),
            })?;
        if config.rootfs.diff_ids.len() != r.layers.len() {
            return Err(PullError::Manifest {
                reference: name.to_string(),
                cause: format!(
                    "mismatched image rootfs and manifest layers: {} diff IDs, {} layers",
                    config.rootfs.diff_ids.len(),
                    r.layers.len()
                ),
            });
        }
        self.store
            .put_blob(&r.config.digest, &config_bytes)
            .map_err(store_err)?;

        // Collected first: a stream over a closure's futures is not `Send` (rust#89976).
        let jobs: Vec<_> = r
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(desc, diff_id)| self.fetch_layer(name, &r, desc, diff_id))
            .collect();
        futures::stream::iter(jobs)
            .buffer_unordered(self.options.max_concurrent_downloads.max(1))
            .try_collect::<Vec<()>>()
            .await?;

        let size = r.config.size.max(0) as u64
            + r.layers.iter().map(|l| l.size.max(0) as u64).sum::<u64>();
        let record = ImageRecord {
            id: r.config.digest.clone(),
            config: config.config.unwrap_or_default(),
            diff_ids: config.rootfs.diff_ids.clone(),
            layer_blobs: r.layers.iter().map(|l| l.digest.clone()).collect(),
            manifests: r.manifest_digests.clone(),
            size,
            pinned: false,
        };
        let mut names = vec![reference.with_digest(&r.digest).to_string()];
        if reference.digest.is_none() {
            names.push(reference.to_string());
        }
        let store = self.store.clone();
        let id = record.id.clone();
        blocking(move || store.write_image(record, &names))
            .await
            .map_err(store_err)?;
        self.store.get(&id).ok_or_else(|| PullError::Manifest {
            reference: name.to_string(),
            cause: "image vanished from the store after the pull".to_string(),
        })
    }

    /// One layer: skipped when unpacked already (by anyone), else fetched and unpacked under
    /// its diff ID's lock.
    async fn fetch_layer(
        &self,
        name: &str,
        r: &Resolved,
        desc: &Descriptor,
        diff_id: &str,
    ) -> Result<(), PullError> {
        if self.store.has_layer(diff_id) {
            return Ok(());
        }
        let store = self.store.clone();
        let id = diff_id.to_string();
        let lock = blocking(move || store.lock_digest(&id))
            .await
            .map_err(|source| PullError::Store {
                reference: name.to_string(),
                source,
            })?;
        if self.store.has_layer(diff_id) {
            return Ok(());
        }
        let mut stream = r
            .client
            .pull_blob_stream(&r.oci_ref, &oci_descriptor(desc))
            .await
            .map_err(|e| classify(name, e, "layer"))?;
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
        let store = self.store.clone();
        let (digest, id) = (desc.digest.clone(), diff_id.to_string());
        let unpack = tokio::task::spawn_blocking(move || {
            let _lock = lock;
            ingest_layer(&store, ChannelReader::new(rx), Some(&digest), &id)
        });
        let mut fetch_err = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => {
                    if tx.send(Ok(b)).await.is_err() {
                        break;
                    }
                }
                // oci-client's own check at the end of the stream: ours says the same with
                // both digests.
                Err(e) if is_digest_error(&e) => break,
                Err(e) => {
                    fetch_err = Some(format!("failed to copy {}: {}", desc.digest, chain(&e)));
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
        drop(tx);
        let outcome = unpack.await.expect("layer unpack task panicked");
        if let Some(cause) = fetch_err {
            return Err(PullError::Fetch {
                reference: name.to_string(),
                cause,
            });
        }
        outcome.map(|_| ()).map_err(|e| match e {
            IngestError::DigestMismatch { expected, actual } => PullError::DigestMismatch {
                reference: name.to_string(),
                ref_key: format!("layer-{expected}"),
                expected,
                actual,
            },
            IngestError::DiffIdMismatch { actual } => PullError::Unpack {
                reference: name.to_string(),
                layer: diff_id.to_string(),
                cause: format!("wrong diff id calculated on extraction {actual:?}"),
            },
            IngestError::Unpack(e) => PullError::Unpack {
                reference: name.to_string(),
                layer: diff_id.to_string(),
                cause: e.to_string(),
            },
            IngestError::Store(source) => PullError::Store {
                reference: name.to_string(),
                source,
            },
        })
    }
}

fn oci_descriptor(d: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        ..Default::default()
    }
}

async fn blocking<T: Send + 'static, E: Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking store task panicked")
}

fn is_digest_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| {
        inner.is::<oci_client::errors::DigestError>()
            || inner.to_string().contains("Invalid digest")
    })
}

/// An error and its causes, joined as Go wraps them (`a: b: c`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// An oci-client failure in containerd's words. `what`: manifest, config or layer.
fn classify(name: &str, e: OciDistributionError, what: &str) -> PullError {
    let not_found = PullError::NotFound {
        reference: name.to_string(),
    };
    let cause = match &e {
        OciDistributionError::RegistryError { envelope, url } => {
            let codes: Vec<_> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) && what == "manifest"
            {
                return not_found;
            }
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Denied | OciErrorCode::Unauthorized))
            {
                format!(
                    "pull access denied, repository does not exist or may require authorization: \
                     unexpected status from GET request to {url}: {}",
                    envelope
                        .errors
                        .iter()
                        .map(|e| e.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            } else {
                format!("unexpected status from GET request to {url}: {e}")
            }
        }
        OciDistributionError::ServerError { code: 404, .. } if what == "manifest" => {
            return not_found
        }
        OciDistributionError::ServerError { code, url, .. } => {
            format!(
                "unexpected status from GET request to {url}: {code} {}",
                status_text(*code)
            )
        }
        OciDistributionError::UnauthorizedError { url } => format!(
            "pull access denied, repository does not exist or may require authorization: \
             unexpected status from GET request to {url}: 401 Unauthorized"
        ),
        OciDistributionError::AuthenticationFailure(reason) => {
            format!(
                "failed to authorize: failed to fetch oauth token: {}",
                reason.trim()
            )
        }
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => {
            return PullError::DigestMismatch {
                reference: name.to_string(),
                ref_key: format!("{what}-{expected}"),
                expected: expected.clone(),
                actual: actual.clone(),
            }
        }
        OciDistributionError::RequestError(re) => {
            let url = re.url().map(|u| u.to_string()).unwrap_or_default();
            let kind = if re.is_timeout() { " (timeout)" } else { "" };
            format!("failed to do request: Get {url:?}{kind}: {}", chain(re))
        }
        other => chain(other),
    };
    if what == "manifest" {
        PullError::Resolve {
            reference: name.to_string(),
            cause,
        }
    } else {
        PullError::Fetch {
            reference: name.to_string(),
            cause,
        }
    }
}

fn status_text(code: u16) -> &'static str {
    http_reason(code).unwrap_or("")
}

fn http_reason(code: u16) -> Option<&'static str> {
    Some(match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return None,
    })
}

/// The bytes of an async stream as a blocking `Read` (for the tar unpacker's thread).
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> Self {
        Self {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}
