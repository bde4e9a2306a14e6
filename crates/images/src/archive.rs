//! Air-gapped images: every image archive in a directory imported into the store, as k3s does
//! with `agent/images/*.tar` at start.
//!
//! Upstream: k3s `pkg/agent/containerd` (`preloadImages`: files ending `.tar`, `.tar.gz`,
//! `.tgz`, `.tar.zst`, `.tzst` are imported, each on its own; a broken one is logged and the
//! rest go on) and containerd's `images/archive` importer, which reads both formats skopeo
//! writes: `oci-archive` (an OCI image layout: `oci-layout`, `index.json`, `blobs/`) with the
//! name in `io.containerd.image.name` or a qualified `org.opencontainers.image.ref.name`, and
//! `docker-archive` (`manifest.json` with `Config`, `RepoTags`, `Layers`), for which a Docker
//! schema 2 manifest is made, as containerd does.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::build::{CONTAINERD_IMAGE_NAME, OCI_REF_NAME};
use crate::error::{ImportError, StoreError};
use crate::ingest::{ingest_layer, IngestError};
use crate::manifest::{
    self, Descriptor, Parsed, RawManifest, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR,
    DOCKER_MANIFEST,
};
use crate::reference::Reference;
use crate::store::{ConfigFile, Image, ImageRecord, Store};
use crate::unpack::{decompress, sha256_digest};

/// The file names k3s imports.
pub const ARCHIVE_SUFFIXES: &[&str] = &[".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"];

/// What importing a directory did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub images: Vec<Image>,
    /// One per archive that could not be imported (the others still are).
    pub errors: Vec<ImportError>,
}

#[derive(Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

impl Store {
    /// Imports every archive in `dir` (a missing directory imports nothing).
    pub fn import_archives(&self, dir: &Path) -> ImportReport {
        let mut report = ImportReport::default();
        let Ok(entries) = fs::read_dir(dir) else {
            return report;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                p.is_file() && ARCHIVE_SUFFIXES.iter().any(|s| name.ends_with(s))
            })
            .collect();
        paths.sort();
        for path in paths {
            match self.import_archive(&path) {
                Ok(images) => report.images.extend(images),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "image archive not imported");
                    report.errors.push(e);
                }
            }
        }
        report
    }

    /// Imports one docker-archive or oci-archive (optionally gzip- or zstd-compressed).
    pub fn import_archive(&self, path: &Path) -> Result<Vec<Image>, ImportError> {
        let _shared = self.lock_shared()?;
        let fail = |cause: String| ImportError::Archive {
            path: path.to_path_buf(),
            cause,
        };
        let work = self.work_dir()?;
        let root = work.path().join("archive");
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let mut outer =
            tar::Archive::new(decompress(BufReader::new(file)).map_err(|e| fail(e.to_string()))?);
        outer
            .unpack(&root)
            .map_err(|e| fail(format!("failed to read the archive: {e}")))?;
        let ids = if root.join("index.json").is_file() {
            self.import_oci_layout(&root).map_err(fail)?
        } else if root.join("manifest.json").is_file() {
            self.import_docker(&root).map_err(fail)?
        } else {
            return Err(fail(
                "neither an OCI layout (index.json) nor a docker-archive (manifest.json)".into(),
            ));
        };
        Ok(ids.iter().filter_map(|id| self.get(id)).collect())
    }

    fn import_oci_layout(&self, root: &Path) -> Result<Vec<String>, String> {
        let index: RawManifest = read_json(&root.join("index.json"))?;
        let blob_path = |d: &str| {
            root.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:"))
        };
        let mut ids = Vec::new();
        for entry in index.manifests.unwrap_or_default() {
            let annotations = entry.annotations.clone().unwrap_or_default();
            let name = annotations
                .get(CONTAINERD_IMAGE_NAME)
                .or_else(|| {
                    annotations
                        .get(OCI_REF_NAME)
                        .filter(|n| n.contains(['/', ':', '@']))
                })
                .and_then(|n| Reference::parse_docker_ref(n).ok());
            let mut manifests = Vec::new();
            let mut desc = entry.clone();
            let (config, layers) = loop {
                let bytes = read_verified(&blob_path(&desc.digest), &desc.digest)?;
                manifests.push((desc.digest.clone(), bytes.clone()));
                match manifest::parse(&bytes)? {
                    Parsed::Image { config, layers } => break (config, layers),
                    Parsed::Index(entries) => {
                        desc = manifest::select_platform(&entries)
                            .cloned()
                            .ok_or("no match for platform in manifest: not found")?;
                    }
                }
            };
            let config_bytes = read_verified(&blob_path(&config.digest), &config.digest)?;
            let layer_files = layers.iter().map(|l| blob_path(&l.digest)).collect();
            let names = name_pair(name.as_ref(), &entry.digest);
            ids.push(self.import_image(
                config,
                &config_bytes,
                layers,
                layer_files,
                manifests,
                names,
            )?);
        }
        Ok(ids)
    }

    fn import_docker(&self, root: &Path) -> Result<Vec<String>, String> {
        let entries: Vec<DockerManifestEntry> = read_json(&root.join("manifest.json"))?;
        let mut ids = Vec::new();
        for entry in entries {
            let config_bytes = fs::read(root.join(&entry.config)).map_err(|e| e.to_string())?;
            let config = Descriptor {
                media_type: DOCKER_CONFIG.to_string(),
                digest: sha256_digest(&config_bytes),
                size: config_bytes.len() as i64,
                ..Default::default()
            };
            let mut layers = Vec::new();
            let mut files = Vec::new();
            for l in &entry.layers {
                let path = root.join(l);
                let bytes = fs::read(&path).map_err(|e| format!("{l}: {e}"))?;
                let media_type = if bytes.starts_with(&[0x1f, 0x8b]) {
                    DOCKER_LAYER_GZIP
                } else {
                    DOCKER_LAYER_TAR
                };
                layers.push(Descriptor {
                    media_type: media_type.to_string(),
                    digest: sha256_digest(&bytes),
                    size: bytes.len() as i64,
                    ..Default::default()
                });
                files.push(path);
            }
            let manifest = serde_json::to_vec(&RawManifest {
                schema_version: 2,
                media_type: Some(DOCKER_MANIFEST.to_string()),
                config: Some(config.clone()),
                layers: Some(layers.clone()),
                ..Default::default()
            })
            .expect("manifest serialises");
            let manifest_digest = sha256_digest(&manifest);
            let mut names = Vec::new();
            for tag in entry.repo_tags.unwrap_or_default() {
                let r = Reference::parse_docker_ref(&tag).map_err(|e| format!("{tag}: {e}"))?;
                names.extend(name_pair(Some(&r), &manifest_digest));
            }
            names.dedup();
            let manifests = vec![(manifest_digest, manifest)];
            ids.push(self.import_image(config, &config_bytes, layers, files, manifests, names)?);
        }
        Ok(ids)
    }

    fn import_image(
        &self,
        config: Descriptor,
        config_bytes: &[u8],
        layers: Vec<Descriptor>,
        layer_files: Vec<PathBuf>,
        manifests: Vec<(String, Vec<u8>)>,
        names: Vec<String>,
    ) -> Result<String, String> {
        let config_file: ConfigFile = serde_json::from_slice(config_bytes)
            .map_err(|e| format!("failed to unmarshal image config: {e}"))?;
        let diff_ids = config_file.rootfs.diff_ids.clone();
        if diff_ids.len() != layers.len() {
            return Err("mismatched image rootfs and manifest layers".into());
        }
        for ((desc, file), diff_id) in layers.iter().zip(&layer_files).zip(&diff_ids) {
            if self.has_layer(diff_id) {
                continue;
            }
            let _lock = self.lock_digest(diff_id).map_err(|e| e.to_string())?;
            if self.has_layer(diff_id) {
                continue;
            }
            let src = File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
            ingest_layer(self, src, Some(&desc.digest), diff_id).map_err(|e| match e {
                IngestError::DigestMismatch { expected, actual } => format!(
                    "failed commit on ref \"layer-{expected}\": unexpected commit digest {actual}, expected {expected}: failed precondition"
                ),
                IngestError::DiffIdMismatch { actual } => {
                    format!("failed to extract layer {diff_id}: wrong diff id calculated on extraction {actual:?}")
                }
                IngestError::Unpack(e) => format!("failed to extract layer {diff_id}: {e}"),
                IngestError::Store(e) => e.to_string(),
            })?;
        }
        let store_err = |e: StoreError| e.to_string();
        self.put_blob(&config.digest, config_bytes)
            .map_err(store_err)?;
        for (d, b) in &manifests {
            self.put_blob(d, b).map_err(store_err)?;
        }
        let size =
            config.size.max(0) as u64 + layers.iter().map(|l| l.size.max(0) as u64).sum::<u64>();
        let record = ImageRecord {
            id: config.digest.clone(),
            config: config_file.config.unwrap_or_default(),
            diff_ids,
            layer_blobs: layers.iter().map(|l| l.digest.clone()).collect(),
            manifests: manifests.into_iter().map(|(d, _)| d).collect(),
            size,
            // As k3s pins what it imports from agent/images (k3s#8781).
            pinned: true,
        };
        self.write_image(record, &names).map_err(store_err)?;
        Ok(config.digest)
    }
}

/// A repo tag and the repo digest (`name@digest`) for an imported image.
fn name_pair(name: Option<&Reference>, digest: &str) -> Vec<String> {
    let Some(r) = name else {
        return Vec::new();
    };
    let mut names = vec![r.with_digest(digest).to_string()];
    if r.digest.is_none() {
        names.push(r.to_string());
    }
    names
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_verified(path: &Path, digest: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| format!("blob {digest}: {e}"))?;
    let actual = sha256_digest(&bytes);
    if actual != digest {
        return Err(format!(
            "unexpected commit digest {actual}, expected {digest}: failed precondition"
        ));
    }
    Ok(bytes)
}
