//! Container images for svcnet's node agents, as containerd's CRI image service with k3s's
//! registry configuration and air-gapped archives, and the kubelet's pull policy.
//!
//! Start at [`Puller`] (pull and `EnsureImageExists`) over a [`Store`] (the content-addressed
//! store shared by every node of a host); [`Registries`] reads k3s's `registries.yaml`;
//! [`Keyring`] holds `imagePullSecrets`; [`reference`] normalises names as Docker does;
//! [`policy`] is `imagePullPolicy`; [`Store::gc`] and [`Store::import_archives`] are image
//! garbage collection and k3s's `agent/images/` import; [`build`] makes images from the host's
//! files (`svcnet images build-seeds`). Feature `testing`: a loopback docker-registry and the
//! test images.

pub mod archive;
pub mod build;
mod error;
mod gc;
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
pub use policy::{default_pull_policy, PullPolicy};
pub use pull::{Ensured, PullOptions, Puller};
pub use reference::Reference;
pub use registries::{Credentials, Keyring, Registries};
pub use store::{ConfigFile, Image, ImageConfig, LockGuard, Store};
