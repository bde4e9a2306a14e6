//! One layer from a byte stream into the store: unpacked in a work directory, verified against
//! the blob digest and the diff ID, then renamed into place with its blob. Shared by registry
//! pulls and archive imports. Blocking; the caller holds the diff ID's lock.

use std::fs::File;
use std::io::Read;

use crate::error::StoreError;
use crate::store::Store;
use crate::unpack::{unpack_layer, Unpacked};

#[derive(Debug)]
pub(crate) enum IngestError {
    /// The blob does not hash to its digest.
    DigestMismatch {
        expected: String,
        actual: String,
    },
    /// The uncompressed tar does not hash to the config's diff ID.
    DiffIdMismatch {
        actual: String,
    },
    Unpack(std::io::Error),
    Store(StoreError),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        IngestError::Store(e)
    }
}

/// Unpacks `src` as the layer `diff_id` whose blob is `digest` (when known) into the store.
pub(crate) fn ingest_layer<R: Read>(
    store: &Store,
    src: R,
    digest: Option<&str>,
    diff_id: &str,
) -> Result<Unpacked, IngestError> {
    let work = store.work_dir()?;
    let fs_dir = work.path().join("fs");
    let blob_path = work.path().join("blob");
    let blob = File::create(&blob_path).map_err(StoreError::io("create", &blob_path))?;
    let unpacked = match unpack_layer(src, &fs_dir, Some(blob)) {
        Ok(u) => u,
        Err(e) => {
            return Err(match (digest, e.digest) {
                (Some(expected), Some(actual)) if expected != actual => {
                    IngestError::DigestMismatch {
                        expected: expected.to_string(),
                        actual,
                    }
                }
                _ => IngestError::Unpack(e.error),
            })
        }
    };
    if let Some(expected) = digest {
        if unpacked.digest != expected {
            return Err(IngestError::DigestMismatch {
                expected: expected.to_string(),
                actual: unpacked.digest,
            });
        }
    }
    if unpacked.diff_id != diff_id {
        return Err(IngestError::DiffIdMismatch {
            actual: unpacked.diff_id,
        });
    }
    store.commit_layer(diff_id, &fs_dir, Some((&unpacked.digest, &blob_path)))?;
    Ok(unpacked)
}
