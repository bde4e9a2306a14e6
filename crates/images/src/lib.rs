//! Container images for svcnet's node agents, as containerd's CRI image service with k3s's
//! registry configuration and air-gapped archives, and the kubelet's pull policy.
//!
//! Start at [`Puller`] (pull and `EnsureImageExists`) over a [`Store`] (the content-addressed
//! store shared by every node of a host); [`Registries`] reads k3s's `registries.yaml`;
//! [`Keyring`] holds `imagePullSecrets`; [`reference`] normalises names as Docker does;
//! [`policy`] is `imagePullPolicy`; [`Store::gc`] (all unused images) and
//! [`Store::garbage_collect`] (the kubelet's, by disk thresholds, over the refs every node
//! publishes, [`image_gc`]) are image garbage collection; [`Store::import_archives`] is k3s's
//! `agent/images/` import; [`build`] makes images from the host's
//! files (`svcnet images build-seeds`). Feature `testing`: a loopback docker-registry and the
//! test images.

pub mod archive;
pub mod build;
mod error;
mod gc;
pub mod image_gc;
mod ingest;
pub mod manifest;
pub mod policy;
mod pull;
pub mod reference;
pub mod registries;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod unpack;

pub use error::{ImportError, PullError, StoreError};
pub use gc::GcReport;
pub use image_gc::{FsStats, GcOutcome, ImageGcPolicy};
pub use policy::{default_pull_policy, PullPolicy};
pub use pull::{Ensured, PullOptions, Puller};
pub use reference::Reference;
pub use registries::{Credentials, Keyring, Registries};
pub use store::{ConfigFile, Image, ImageConfig, LockGuard, Store};
