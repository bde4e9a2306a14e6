//! The content-addressed image store under one root directory, shared by every node agent of a
//! host (`svcnet up` passes `<data-dir>/images`).
//!
//! Upstream: containerd's content store (`blobs/sha256/<hex>`), its overlay snapshotter (one
//! directory per layer, used as an overlayfs `lowerdir`; keyed here by diff ID, which for a
//! stack of separate lower directories identifies the same content as a chain ID) and its
//! image store (name → target). Layout:
//!
//! ```text
//! <root>/blobs/sha256/<hex>            manifests, indexes, configs, compressed layers (verified)
//! <root>/layers/sha256/<diff-id hex>/  one unpacked layer (a lowerdir)
//! <root>/images/<config hex>.json      an image: config, diff IDs, blobs, size
//! <root>/names/<sha256 of name>.json   a name (repo tag or repo digest) → image ID
//! <root>/locks/                        flock(2) files: `store` (shared by pulls and imports,
//!                                      exclusive for GC) and one per digest
//! <root>/tmp/<pid>-*/                  work in progress, renamed into place when complete;
//!                                      left-overs of dead processes are removed on open
//! ```
//!
//! Every write lands by `rename(2)` of a complete file or directory, under the digest's lock,
//! so processes and tasks pulling the same image at once unpack each layer once and nothing
//! half-written is ever visible.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::reference::Reference;
use crate::unpack::sha256_digest;

/// The part of an image config the runtime uses (Docker's and OCI's `config` object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
}

/// An image config file (`application/vnd.oci.image.config.v1+json` or Docker's).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<ImageConfig>,
    pub rootfs: RootFs,
}

/// `rootfs` of a config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// An image in the store, as the runtime uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image ID: the config's digest (`sha256:...`), CRI's `Image.id`.
    pub id: String,
    /// `docker.io/library/nginx:latest`.
    pub repo_tags: Vec<String>,
    /// `docker.io/library/nginx@sha256:...` (the digest the tag resolved to).
    pub repo_digests: Vec<String>,
    pub config: ImageConfig,
    /// Unpacked layer directories, bottom → top (overlayfs takes `lowerdir` top first).
    pub layers: Vec<PathBuf>,
    pub diff_ids: Vec<String>,
    /// Bytes of the image's blobs (config + compressed layers), as containerd reports it.
    pub size: u64,
}

impl Image {
    /// What the kubelet reports as `imageID`: the first repo digest
    /// (`docker.io/library/nginx@sha256:...`), else the image ID.
    pub fn image_ref(&self) -> String {
        self.repo_digests
            .first()
            .cloned()
            .unwrap_or_else(|| self.id.clone())
    }
}

/// What `images/<id>.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub id: String,
    pub config: ImageConfig,
    pub diff_ids: Vec<String>,
    /// Compressed layer digests, bottom → top.
    pub layer_blobs: Vec<String>,
    /// Manifests and indexes that lead to this image.
    pub manifests: Vec<String>,
    pub size: u64,
    /// Imported from an air-gapped archive: never removed by the kubelet's image GC (k3s pins
    /// such images with containerd's `io.cri-containerd.pinned` label; the kubelet skips
    /// pinned images). Kept when the image is pulled again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NameRecord {
    name: String,
    id: String,
}

/// A held flock(2); released on drop.
pub struct LockGuard(#[allow(dead_code)] Flock<File>);

/// The store; cheap to clone, every operation goes to the filesystem.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

impl Store {
    /// Opens (creating) the store at `root` and removes work left by dead processes.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for dir in [
            "blobs/sha256",
            "layers/sha256",
            "images",
            "names",
            "locks",
            "tmp",
        ] {
            let p = root.join(dir);
            fs::create_dir_all(&p).map_err(StoreError::io("create", &p))?;
        }
        let store = Store {
            root: root.to_path_buf(),
        };
        store.remove_dead_work();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn remove_dead_work(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|pid| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            });
            if !alive {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex_of(digest))
    }

    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers/sha256").join(hex_of(diff_id))
    }

    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A fresh work directory, removed on drop unless its contents were moved out.
    pub(crate) fn work_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let tmp = self.root.join("tmp");
        tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .tempdir_in(&tmp)
            .map_err(StoreError::io("create a work directory in", &tmp))
    }

    fn lock(&self, name: &str, arg: FlockArg) -> Result<LockGuard, StoreError> {
        let path = self.root.join("locks").join(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        Flock::lock(file, arg)
            .map(LockGuard)
            .map_err(|(_, e)| StoreError::Io {
                op: "lock",
                path,
                source: e.into(),
            })
    }

    /// Held by pulls and imports for their whole length; GC takes it exclusively. Blocks.
    pub fn lock_shared(&self) -> Result<LockGuard, StoreError> {
        self.lock("store", FlockArg::LockShared)
    }

    pub(crate) fn lock_exclusive(&self) -> Result<LockGuard, StoreError> {
        self.lock("store", FlockArg::LockExclusive)
    }

    /// Serialises the work on one digest across tasks and processes. Blocks.
    pub fn lock_digest(&self, digest: &str) -> Result<LockGuard, StoreError> {
        self.lock(hex_of(digest), FlockArg::LockExclusive)
    }

    /// Writes `bytes` as the blob `digest` (the caller verified it) unless present.
    pub(crate) fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        if path.is_file() {
            return Ok(());
        }
        self.write_atomic(&path, bytes)
    }

    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.root.join("tmp");
        let mut f = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .tempfile_in(&tmp)
            .map_err(StoreError::io("create a file in", &tmp))?;
        f.write_all(bytes)
            .map_err(StoreError::io("write", f.path()))?;
        f.persist(path).map_err(|e| StoreError::Io {
            op: "rename into",
            path: path.to_path_buf(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Moves an unpacked layer (and its blob, if kept) into place.
    pub(crate) fn commit_layer(
        &self,
        diff_id: &str,
        dir: &Path,
        blob: Option<(&str, &Path)>,
    ) -> Result<(), StoreError> {
        if let Some((digest, path)) = blob {
            let to = self.blob_path(digest);
            if !to.exists() {
                fs::rename(path, &to).map_err(StoreError::io("rename into", &to))?;
            }
        }
        let to = self.layer_dir(diff_id);
        fs::rename(dir, &to).map_err(StoreError::io("rename into", &to))
    }

    pub(crate) fn read_record(&self, id: &str) -> Result<Option<ImageRecord>, StoreError> {
        let path = self
            .root
            .join("images")
            .join(format!("{}.json", hex_of(id)));
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StoreError::Record { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", &path)(e)),
        }
    }

    /// Records an image (merged with what is recorded for the same ID) and points `names` at it.
    pub(crate) fn write_image(
        &self,
        mut record: ImageRecord,
        names: &[String],
    ) -> Result<(), StoreError> {
        let _lock = self.lock_digest(&record.id)?;
        if let Some(old) = self.read_record(&record.id)? {
            record.pinned |= old.pinned;
            for m in old.manifests {
                if !record.manifests.contains(&m) {
                    record.manifests.push(m);
                }
            }
        }
        let path = self
            .root
            .join("images")
            .join(format!("{}.json", hex_of(&record.id)));
        let json = serde_json::to_vec_pretty(&record).expect("record serialises");
        self.write_atomic(&path, &json)?;
        for name in names {
            let rec = NameRecord {
                name: name.clone(),
                id: record.id.clone(),
            };
            let json = serde_json::to_vec(&rec).expect("name serialises");
            self.write_atomic(&self.name_path(name), &json)?;
        }
        Ok(())
    }

    fn name_path(&self, name: &str) -> PathBuf {
        let key = hex_of(&sha256_digest(name.as_bytes())).to_string();
        self.root.join("names").join(format!("{key}.json"))
    }

    fn names(&self) -> Vec<(PathBuf, NameRecord)> {
        let Ok(entries) = fs::read_dir(self.root.join("names")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let bytes = fs::read(e.path()).ok()?;
                Some((e.path(), serde_json::from_slice(&bytes).ok()?))
            })
            .collect()
    }

    /// The image ID `s` names: an ID (`sha256:<hex>` or the bare hex), a repo tag or a repo
    /// digest, short (`nginx`) or qualified.
    pub fn resolve(&self, s: &str) -> Option<String> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let id = format!("sha256:{hex}");
            return self.read_record(&id).ok().flatten().map(|_| id);
        }
        let r = Reference::parse_docker_ref(s).ok()?;
        let name = match &r.digest {
            Some(d) => r.with_digest(d).to_string(),
            None => r.to_string(),
        };
        let bytes = fs::read(self.name_path(&name)).ok()?;
        let rec: NameRecord = serde_json::from_slice(&bytes).ok()?;
        // A name whose image was collected is no name.
        self.read_record(&rec.id).ok().flatten().map(|_| rec.id)
    }

    /// The image `s` names (see [`Store::resolve`]), if present and complete.
    pub fn get(&self, s: &str) -> Option<Image> {
        let id = self.resolve(s)?;
        self.image(&id)
    }

    fn image(&self, id: &str) -> Option<Image> {
        let rec = self.read_record(id).ok().flatten()?;
        let layers: Vec<PathBuf> = rec.diff_ids.iter().map(|d| self.layer_dir(d)).collect();
        if !layers.iter().all(|l| l.is_dir()) {
            return None;
        }
        let (mut repo_tags, mut repo_digests) = (Vec::new(), Vec::new());
        for (_, n) in self.names() {
            if n.id == rec.id {
                if n.name.contains('@') {
                    repo_digests.push(n.name);
                } else {
                    repo_tags.push(n.name);
                }
            }
        }
        repo_tags.sort();
        repo_digests.sort();
        Some(Image {
            id: rec.id,
            repo_tags,
            repo_digests,
            config: rec.config,
            layers,
            diff_ids: rec.diff_ids,
            size: rec.size,
        })
    }

    /// Every complete image.
    pub fn list(&self) -> Vec<Image> {
        self.record_ids()
            .iter()
            .filter_map(|id| self.image(id))
            .collect()
    }

    pub(crate) fn record_ids(&self) -> BTreeSet<String> {
        let Ok(entries) = fs::read_dir(self.root.join("images")) else {
            return BTreeSet::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(|h| format!("sha256:{h}"))
            })
            .collect()
    }

    pub(crate) fn name_records(&self) -> Vec<(PathBuf, String)> {
        self.names().into_iter().map(|(p, n)| (p, n.id)).collect()
    }
}
