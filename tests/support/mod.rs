//! Shared harness of the end-to-end tests: start the real `svcnet` binary in a temporary data
//! dir, drive it with the real `kubectl` (and kube-rs), and stop it however the test ends.
//!
//! `apiserver`: a `svcnet apiserver` (and controller-manager) per test; `cluster`: a whole
//! `svcnet up`; `images`: one whose containers come from the seeds' images in a loopback
//! registry; `commands`: the binaries, the seed manifests, kubectl's tables; `poll`: waiting
//! for a condition; `kubelet`: a stand-in node agent for tests without nodes; `dns`: a `svcnet
//! dns` process and `dig`. This file only names them.
#![allow(dead_code)]

pub mod apiserver;
pub mod cluster;
pub mod commands;
pub mod dns;
pub mod kubelet;
pub mod poll;

// Each test uses some of these; the rest would warn as unused in its binary.
#[allow(unused_imports)]
pub use apiserver::{distinct_allocations, test_store_is_etcd, ApiServer};
#[allow(unused_imports)]
pub use commands::{assert_success, cells, seed, stdout, table, Row, SERVICE_SEEDS, SVCNET};
#[allow(unused_imports)]
pub use kubelet::{fake_kubelet, set_pod_status};
#[allow(unused_imports)]
pub use poll::{eventually, wait_for};
