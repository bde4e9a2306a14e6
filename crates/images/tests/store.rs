//! The shared store: concurrent pulls of one image (tasks and processes), garbage collection
//! (all unused images, and the kubelet's by disk usage over the nodes' refs), and air-gapped
//! archive import.

use std::path::Path;

use svcnet_images::build::{ImageBuilder, LayerBuilder};
use svcnet_images::testing::{self, Registry};
use svcnet_images::{FsStats, ImageGcPolicy, Keyring, Store};

const CHILD_ROOT: &str = "SVCNET_IMAGES_TEST_ROOT";
const CHILD_YAML: &str = "SVCNET_IMAGES_TEST_YAML";

/// Run by `concurrent_pulls_of_one_image_share_one_unpack` as a separate process.
#[tokio::test]
#[ignore = "child process of concurrent_pulls_of_one_image_share_one_unpack"]
async fn child_pull() {
    let (Ok(root), Ok(yaml)) = (std::env::var(CHILD_ROOT), std::env::var(CHILD_YAML)) else {
        return;
    };
    testing::puller(&yaml, Path::new(&root))
        .pull("shared:v1", &Keyring::empty())
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_share_one_unpack() {
    if !testing::available() {
        return;
    }
    let reg = Registry::start().unwrap();
    let root = tempfile::tempdir().unwrap();
    let built = testing::bench_image(4 << 20).unwrap();
    reg.push(&built, "library/shared", "v1").await.unwrap();
    let yaml = reg.mirror_yaml("");

    // Two processes and four tasks (each its own Store handle, as separate node agents).
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--ignored", "--exact", "child_pull", "--nocapture"])
                .env(CHILD_ROOT, root.path())
                .env(CHILD_YAML, &yaml)
                .spawn()
                .unwrap()
        })
        .collect();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let p = testing::puller(&yaml, root.path());
            tokio::spawn(async move { p.pull("shared:v1", &Keyring::empty()).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap().id);
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    ids.dedup();
    assert_eq!(ids, std::slice::from_ref(&built.config_descriptor.digest));

    let store = Store::open(root.path()).unwrap();
    let image = store.get("shared:v1").unwrap();
    assert_eq!(image.layers.len(), 4);
    let layers = std::fs::read_dir(root.path().join("layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(layers, 4);
    assert_eq!(
        std::fs::read_dir(root.path().join("tmp")).unwrap().count(),
        0
    );
    // Every file of every layer is the registry's: spot-check sizes of the first layer.
    for l in &built.layers {
        assert!(store.has_blob(&l.descriptor.digest));
    }
}

fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut l = LayerBuilder::new();
    for (path, text) in files {
        l.file(path, 0o644, text.as_bytes()).unwrap();
    }
    l.finish().unwrap()
}

/// Images `<name>:v1` of two layers each, the lower one (`/base`) the same in all, pushed to a
/// new registry and pulled into a new store: the registry, the store's directory, the puller
/// and the images in `names`' order.
async fn pulled_sharing_a_base(
    names: &[&str],
) -> (
    Registry,
    tempfile::TempDir,
    svcnet_images::Puller,
    Vec<svcnet_images::Image>,
) {
    let reg = Registry::start().unwrap();
    let root = tempfile::tempdir().unwrap();
    let base = layer(&[("base", "shared\n")]);
    for name in names {
        let image = ImageBuilder::new(Default::default())
            .layer(base.clone())
            .layer(layer(&[(name, &format!("{name}\n"))]))
            .build()
            .unwrap();
        reg.push(&image, &format!("library/{name}"), "v1")
            .await
            .unwrap();
    }
    let p = testing::puller(&reg.mirror_yaml(""), root.path());
    let mut pulled = Vec::new();
    for name in names {
        let image = p.pull(&format!("{name}:v1"), &Keyring::empty()).await;
        pulled.push(image.unwrap());
    }
    (reg, root, p, pulled)
}

#[tokio::test]
async fn gc_removes_unused_images_and_keeps_shared_layers() {
    if !testing::available() {
        return;
    }
    let (_reg, root, p, pulled) = pulled_sharing_a_base(&["a", "b"]).await;
    let (ia, ib) = (&pulled[0], &pulled[1]);
    assert_eq!(
        ia.layers[0], ib.layers[0],
        "the base layer is unpacked once"
    );
    let store = p.store();
    assert_eq!(store.list().len(), 2);

    let report = store.gc(&["docker.io/library/a:v1"]).unwrap();
    assert_eq!(report.images, std::slice::from_ref(&ib.id));
    assert_eq!(report.layers, 1);
    // b's config, manifest and top layer blob.
    assert_eq!(report.blobs, 3);
    assert!(store.get("b:v1").is_none());
    let kept = store.get("a:v1").unwrap();
    assert!(kept.layers.iter().all(|l| l.is_dir()));
    assert!(!ib.layers[1].exists());

    // By image ID too; then nothing in use removes everything.
    assert!(store.gc(&[&ia.id]).unwrap().images.is_empty());
    let report = store.gc(&[]).unwrap();
    assert_eq!(report.images, std::slice::from_ref(&ia.id));
    assert!(store.list().is_empty());
    for dir in ["layers/sha256", "blobs/sha256", "images", "names"] {
        assert_eq!(
            std::fs::read_dir(root.path().join(dir)).unwrap().count(),
            0,
            "{dir}"
        );
    }
}

#[test]
fn import_oci_and_docker_archives() {
    let root = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let oci = testing::small_image("from an oci-archive\n").unwrap();
    oci.write_oci_archive(
        &images.path().join("small.tar"),
        "docker.io/library/small:v1",
    )
    .unwrap();
    let docker = testing::whiteout_image().unwrap();
    docker
        .write_docker_archive(&images.path().join("wh.tar"), "example.com/team/wh:v2")
        .unwrap();
    std::fs::write(images.path().join("broken.tar"), b"not a tar").unwrap();
    std::fs::write(images.path().join("ignored.txt"), b"not an archive name").unwrap();

    let store = Store::open(root.path()).unwrap();
    let report = store.import_archives(images.path());
    assert_eq!(report.images.len(), 2, "{:?}", report.errors);
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].to_string().contains("broken.tar"),
        "{}",
        report.errors[0]
    );

    let small = store.get("small:v1").unwrap();
    assert_eq!(small.id, oci.config_descriptor.digest);
    assert_eq!(
        small.image_ref(),
        format!("docker.io/library/small@{}", oci.manifest_descriptor.digest)
    );
    assert_eq!(
        std::fs::read_to_string(small.layers[0].join("hello")).unwrap(),
        "from an oci-archive\n"
    );
    let wh = store.get("example.com/team/wh:v2").unwrap();
    assert_eq!(wh.id, docker.config_descriptor.digest);
    assert_eq!(wh.layers.len(), 2);
    assert!(wh.image_ref().starts_with("example.com/team/wh@sha256:"));

    // Importing again at the next start changes nothing.
    let again = store.import_archives(images.path());
    assert_eq!(again.images, report.images);
    assert_eq!(
        std::fs::read_dir(root.path().join("tmp")).unwrap().count(),
        0
    );
}

/// The kubelet's GC over real pulls: two nodes' refs keep their images (and a layer shared
/// with a removed image), the rest goes, layers and blobs with it.
#[tokio::test]
async fn kubelet_gc_keeps_what_any_node_uses() {
    if !testing::available() {
        return;
    }
    let (_reg, root, _p, pulled) = pulled_sharing_a_base(&["a", "b", "c"]).await;
    // Node agents of one host, each with its own handle on the store.
    let node1 = Store::open(root.path()).unwrap();
    let node2 = Store::open(root.path()).unwrap();
    let now = std::time::SystemTime::now();
    assert!(node1.add_ref("node-1", "a:v1", now).unwrap());
    assert!(node2.add_ref("node-2", &pulled[1].id, now).unwrap());
    let (policy, full) = (ANY_AGE, FULL);
    let out = node1.garbage_collect(&policy, full, now).unwrap();
    let removed: Vec<&str> = out.removed.iter().map(|r| r.image_id.as_str()).collect();
    assert_eq!(removed, [pulled[2].id.as_str()]);
    assert!(out.shortfall().is_some(), "a full disk stays short");
    assert!(node1.get("c:v1").is_none());
    assert!(!pulled[2].layers[1].exists(), "c's own layer is gone");
    assert!(pulled[2].layers[0].is_dir(), "the shared base stays");
    for image in &pulled[..2] {
        assert!(image.layers.iter().all(|l| l.is_dir()));
    }
    // Under the high threshold nothing is touched, used or not.
    node2.set_refs("node-2", &Default::default(), now).unwrap();
    let fine = FsStats {
        capacity: 1 << 30,
        available: 1 << 29,
    };
    assert!(node2
        .garbage_collect(&policy, fine, now)
        .unwrap()
        .removed
        .is_empty());
    assert!(node2.get("b:v1").is_some());
    // Once node-2 no longer uses b, a full disk takes it.
    let out = node2.garbage_collect(&policy, full, now).unwrap();
    assert_eq!(out.removed.len(), 1);
    assert!(node2.get("b:v1").is_none() && node2.get("a:v1").is_some());
}

/// The kubelet's GC policy but for the minimum age, and a full 1 GiB disk.
const ANY_AGE: ImageGcPolicy = ImageGcPolicy {
    high_threshold_percent: 85,
    low_threshold_percent: 80,
    min_age: std::time::Duration::ZERO,
};
const FULL: FsStats = FsStats {
    capacity: 1 << 30,
    available: 0,
};

/// Whether Debian's nginx-light and busybox-static are installed (the seeds' images).
fn seeds_packages() -> bool {
    let there = Path::new("/usr/sbin/nginx").is_file() && Path::new("/bin/busybox").is_file();
    if !there {
        eprintln!("skipped: nginx-light or busybox-static not installed");
    }
    there
}

#[test]
fn seeds_build_and_import() {
    if !seeds_packages() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let written = svcnet_images::build::seeds::build_seeds(out.path(), None).unwrap();
    assert_eq!(written.len(), 2);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let report = store.import_archives(out.path());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let nginx = store.get("nginx").unwrap();
    assert_eq!(nginx.layers.len(), 2, "busybox below, nginx above");
    assert!(nginx.layers[0].join("bin/busybox").is_file());
    let fs = &nginx.layers[1];
    assert!(fs.join("usr/sbin/nginx").is_file());
    assert!(fs.join("lib64/ld-linux-x86-64.so.2").is_file());
    let page = std::fs::read_to_string(fs.join("usr/share/nginx/html/index.html")).unwrap();
    assert!(page.contains("Welcome to nginx!"));
    assert_eq!(
        nginx.config.cmd.as_deref().unwrap(),
        ["nginx", "-g", "daemon off;"]
    );
    assert!(std::fs::read_to_string(fs.join("etc/passwd"))
        .unwrap()
        .contains("www-data:x:33:33"));
    let busybox = store.get("busybox:latest").unwrap();
    let fs = &busybox.layers[0];
    assert_eq!(
        std::fs::read_link(fs.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert_eq!(
        std::fs::read_link(fs.join("bin/nslookup"))
            .unwrap()
            .to_str(),
        Some("busybox")
    );
    assert_eq!(busybox.config.cmd.as_deref().unwrap(), ["sh"]);
    // Service-Env.yaml's tag names the same image.
    assert_eq!(
        store.get("docker.io/library/nginx:1.23.1").unwrap().id,
        nginx.id
    );
    // Imported images are pinned: the kubelet's GC leaves them even on a full disk.
    let (policy, full) = (ANY_AGE, FULL);
    let out = store
        .garbage_collect(&policy, full, std::time::SystemTime::now())
        .unwrap();
    assert!(out.removed.is_empty(), "{out:?}");
    assert_eq!(store.list().len(), 2);
}

#[test]
fn seeds_with_the_agnhost_image() {
    if !seeds_packages() {
        return;
    }
    // Any binary stands in for svcnet here: the image's layout and configuration are checked.
    let out = tempfile::tempdir().unwrap();
    let written =
        svcnet_images::build::seeds::build_seeds(out.path(), Some(Path::new("/bin/busybox")))
            .unwrap();
    assert_eq!(written.len(), 3);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let report = store.import_archives(out.path());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let scaling = store
        .get(svcnet_images::build::seeds::SCALING_IMAGE)
        .unwrap();
    assert_eq!(
        scaling.config.entrypoint.as_deref().unwrap(),
        ["svcnet", "agnhost", "netexec", "--http-port=8080"]
    );
    assert!(scaling.layers[0].join("usr/local/bin/svcnet").is_file());
    assert!(scaling.layers[0].join("etc/passwd").is_file());
}
