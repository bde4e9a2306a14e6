//! Manifests, indexes and their media types, read the same way for a registry pull and an
//! archive import (OCI image spec `manifest.md` / `image-index.md`; Docker's image manifest v2
//! schema 2 and manifest list).

use serde::{Deserialize, Serialize};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The media types a pull accepts, index types first (containerd's resolver `Accept`).
pub const ACCEPT: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// The platform svcnet runs (containerd's `platforms.DefaultSpec()` on this host).
pub const PLATFORM_OS: &str = "linux";
pub const PLATFORM_ARCH: &str = "amd64";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A manifest or an index, whichever the bytes are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// What a manifest document is.
pub enum Parsed {
    Index(Vec<Descriptor>),
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// Reads a manifest or index; the error is the cause containerd would give.
pub fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let m: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("failed to unmarshal manifest: {e}"))?;
    let media_type = m.media_type.clone().unwrap_or_default();
    if m.schema_version == 1 || media_type == DOCKER_SCHEMA1 {
        return Err(format!(
            "media type {DOCKER_SCHEMA1:?} is no longer supported since containerd v2.1, please \
             rebuild the image as {DOCKER_MANIFEST:?} or {OCI_MANIFEST:?}"
        ));
    }
    let is_index = media_type == OCI_INDEX
        || media_type == DOCKER_LIST
        || (media_type.is_empty() && m.manifests.is_some());
    if is_index {
        return Ok(Parsed::Index(m.manifests.unwrap_or_default()));
    }
    match (m.config, m.layers) {
        (Some(config), Some(layers)) => {
            for l in &layers {
                if !is_layer_type(&l.media_type) {
                    return Err(format!("unsupported layer media type {:?}", l.media_type));
                }
            }
            Ok(Parsed::Image { config, layers })
        }
        _ => Err(format!("unexpected media type {media_type:?}")),
    }
}

/// Layer media types an unpacker reads (tar, gzip or zstd; the compression is sniffed).
fn is_layer_type(mt: &str) -> bool {
    mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.")
}

/// containerd's default platform matcher for linux/amd64: the first entry for it.
pub fn select_platform(entries: &[Descriptor]) -> Option<&Descriptor> {
    entries.iter().find(|e| {
        e.platform
            .as_ref()
            .is_some_and(|p| p.os == PLATFORM_OS && p.architecture == PLATFORM_ARCH)
    })
}
