//! Why a pull, an import or a store operation failed, in containerd's words.
//!
//! Upstream: containerd's CRI `PullImage` wraps every failure as `failed to pull and unpack
//! image "<ref>": <cause>`, with causes from `remotes/docker/resolver.go` (`failed to resolve
//! reference "<ref>": <ref>: not found`), `images/image.go` (`no match for platform in
//! manifest: not found`), `content/local/writer.go` (`failed commit on ref "layer-sha256:...":
//! unexpected commit digest ..., expected ...: failed precondition`) and the unpacker (`failed to
//! extract layer ...`). The kubelet shows them behind `rpc error: code = <Code> desc = `
//! ([`PullError::cri_message`]).

use crate::reference::ImageNameError;

/// A failed pull. `Display` is containerd's message; [`PullError::waiting_reason`] is the
/// kubelet's container waiting reason.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The image name does not parse (kubelet: `InvalidImageName`).
    #[error(transparent)]
    InvalidImageName(#[from] ImageNameError),
    /// The image is absent and the policy is `Never` (kubelet: `ErrImageNeverPull`).
    #[error("Container image {image:?} is not present with pull policy of Never")]
    NeverPull { image: String },
    /// No endpoint knows the reference.
    #[error("failed to pull and unpack image {reference:?}: failed to resolve reference {reference:?}: {reference}: not found")]
    NotFound { reference: String },
    /// An index without a linux/amd64 entry.
    #[error("failed to pull and unpack image {reference:?}: no match for platform in manifest: not found")]
    NoMatchingPlatform { reference: String },
    /// The registry could not be asked (refused, timed out, TLS, 401/403, 5xx).
    #[error("failed to pull and unpack image {reference:?}: failed to resolve reference {reference:?}: {cause}")]
    Resolve { reference: String, cause: String },
    /// A blob could not be fetched.
    #[error("failed to pull and unpack image {reference:?}: failed to copy: {cause}")]
    Fetch { reference: String, cause: String },
    /// A blob's content does not hash to its digest (`ref_key`: `layer-sha256:...`).
    #[error("failed to pull and unpack image {reference:?}: failed to copy: failed commit on ref {ref_key:?}: unexpected commit digest {actual}, expected {expected}: failed precondition")]
    DigestMismatch {
        reference: String,
        ref_key: String,
        expected: String,
        actual: String,
    },
    /// A manifest or config that cannot be used.
    #[error("failed to pull and unpack image {reference:?}: {cause}")]
    Manifest { reference: String, cause: String },
    /// A layer could not be unpacked (also: its uncompressed digest is not the config's diff ID).
    #[error(
        "failed to pull and unpack image {reference:?}: failed to extract layer {layer}: {cause}"
    )]
    Unpack {
        reference: String,
        layer: String,
        cause: String,
    },
    /// The store could not be written.
    #[error("failed to pull and unpack image {reference:?}: {source}")]
    Store {
        reference: String,
        source: StoreError,
    },
}

impl PullError {
    /// The gRPC code containerd's CRI answers with (`errdefs.ToGRPC`).
    pub fn grpc_code(&self) -> &'static str {
        match self {
            PullError::NotFound { .. } | PullError::NoMatchingPlatform { .. } => "NotFound",
            PullError::DigestMismatch { .. } => "FailedPrecondition",
            PullError::InvalidImageName(_) => "InvalidArgument",
            _ => "Unknown",
        }
    }

    /// What the kubelet puts in the `Failed` event after `Failed to pull image "x": `.
    pub fn cri_message(&self) -> String {
        match self {
            PullError::NeverPull { .. } | PullError::InvalidImageName(_) => self.to_string(),
            _ => format!("rpc error: code = {} desc = {self}", self.grpc_code()),
        }
    }

    /// The kubelet's waiting reason for this failure.
    pub fn waiting_reason(&self) -> &'static str {
        use crate::policy::reasons;
        match self {
            PullError::NeverPull { .. } => reasons::ERR_IMAGE_NEVER_PULL,
            PullError::InvalidImageName(_) => reasons::INVALID_IMAGE_NAME,
            _ => reasons::ERR_IMAGE_PULL,
        }
    }
}

/// A failed operation on the image store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt image record {path}: {source}")]
    Record {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    /// The kubelet's own errors (e.g. "invalid capacity 0 on image filesystem").
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    pub(crate) fn io(
        op: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| StoreError::Io { op, path, source }
    }
}

/// A failed import of an image archive.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("failed to import {path}: {cause}")]
    Archive {
        path: std::path::PathBuf,
        cause: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}
