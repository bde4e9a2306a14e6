//! `svcnet up` with containers from images: the seeds' images (busybox, nginx, built from
//! Debian's packages) pushed to Debian's docker-registry on loopback, which `svcnet up
//! --private-registry` mirrors docker.io to. Nothing contacts the internet
//! (`--disable-default-registry-endpoint`).

use std::path::Path;

use super::cluster::Cluster;

/// Whether this machine can run image containers (root, runc, docker-registry, the packages
/// the images are built from, kubectl, curl); says what is missing when not.
pub fn can_run_images() -> bool {
    let missing: Vec<&str> = [
        "/usr/bin/runc",
        svcnet_images::testing::DOCKER_REGISTRY,
        "/bin/busybox",
        "/usr/sbin/nginx",
    ]
    .into_iter()
    .filter(|p| !Path::new(p).is_file())
    .collect();
    if !missing.is_empty() || !svcnet_netns::testing::can_run(&["kubectl", "curl"]) {
        eprintln!("skipped: needs root, kubectl, curl and {missing:?}");
        return false;
    }
    true
}

/// The registry with the seeds' images, and `svcnet up --nodes N` mirroring docker.io to it.
pub fn cluster_with_registry(
    nodes: usize,
) -> (svcnet_images::testing::Registry, Cluster, tempfile::TempDir) {
    let registry = svcnet_images::testing::Registry::start().expect("docker-registry");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.push_seeds())
        .expect("pushing the seeds' images");
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("registries.yaml");
    std::fs::write(&yaml, registry.mirror_yaml("")).unwrap();
    let c = Cluster::up_with(
        nodes,
        &[
            "--private-registry",
            yaml.to_str().unwrap(),
            "--disable-default-registry-endpoint",
        ],
    );
    (registry, c, dir)
}
