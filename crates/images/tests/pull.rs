//! Pulls from a real docker-registry on loopback (Debian's, started per test), through a
//! registries.yaml mirror of docker.io with the default endpoint disabled: nothing leaves the
//! machine.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::{Duration, Instant};

use svcnet_images::build::{Compression, ImageBuilder, LayerBuilder};
use svcnet_images::testing::{self, Registry};
use svcnet_images::{Keyring, PullError, PullOptions, PullPolicy, Puller, Registries, Store};

fn setup() -> Option<(Registry, tempfile::TempDir)> {
    if !testing::available() {
        eprintln!("skipped: {} not installed", testing::DOCKER_REGISTRY);
        return None;
    }
    Some((Registry::start().unwrap(), tempfile::tempdir().unwrap()))
}

/// Nothing half-written: no work directories left, and no layer of a failed pull.
fn assert_clean(root: &std::path::Path) {
    let tmp: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "left in tmp: {tmp:?}");
    let layers: Vec<_> = std::fs::read_dir(root.join("layers/sha256"))
        .unwrap()
        .collect();
    assert!(layers.is_empty(), "layers left: {layers:?}");
    let images: Vec<_> = std::fs::read_dir(root.join("images")).unwrap().collect();
    assert!(images.is_empty(), "images left: {images:?}");
}

#[tokio::test]
async fn pull_by_tag_and_by_digest() {
    let Some((reg, root)) = setup() else { return };
    let built = testing::small_image("hello\n").unwrap();
    reg.push(&built, "library/small", "v1").await.unwrap();
    let p = testing::puller(&reg.mirror_yaml(""), root.path());

    let image = p.pull("small:v1", &Keyring::empty()).await.unwrap();
    let manifest_digest = &built.manifest_descriptor.digest;
    assert_eq!(image.id, built.config_descriptor.digest);
    assert_eq!(image.repo_tags, ["docker.io/library/small:v1"]);
    assert_eq!(
        image.image_ref(),
        format!("docker.io/library/small@{manifest_digest}")
    );
    assert_eq!(
        image.config.cmd.as_deref(),
        Some(&["/hello".to_string()][..])
    );
    assert_eq!(image.layers.len(), 1);
    let layer = &image.layers[0];
    assert_eq!(
        std::fs::read_to_string(layer.join("hello")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_link(layer.join("greeting")).unwrap().to_str(),
        Some("/hello")
    );
    let (a, b) = (
        std::fs::metadata(layer.join("hello")).unwrap(),
        std::fs::metadata(layer.join("hello-again")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hard link");
    let motd = std::fs::metadata(layer.join("etc/motd")).unwrap();
    assert_eq!(motd.mode() & 0o7777, 0o600);
    assert_eq!(motd.mtime(), 1_700_000_000);
    let expected_size = built.config.len() + built.layers[0].blob.len();
    assert_eq!(image.size, expected_size as u64);

    // By digest, and the store finds it under both names.
    let by_digest = format!("small@{manifest_digest}");
    let again = p.pull(&by_digest, &Keyring::empty()).await.unwrap();
    assert_eq!(again.id, image.id);
    assert_eq!(
        p.store().get("docker.io/library/small:v1").unwrap().id,
        image.id
    );
    assert_eq!(p.store().get(&by_digest).unwrap().id, image.id);
    assert_eq!(p.store().get(&image.id).unwrap().id, image.id);
}

#[tokio::test]
async fn mirror_rewrite_docker_schema2_and_zstd() {
    let Some((reg, root)) = setup() else { return };
    let mut b = ImageBuilder::new(Default::default());
    let mut l = LayerBuilder::new();
    l.file("docker", 0o644, b"schema 2\n").unwrap();
    b = b.layer(l.finish().unwrap());
    b.docker_media_types = true;
    let docker = b.build().unwrap();
    reg.push(&docker, "mirrored/app", "v1").await.unwrap();
    let mut b = ImageBuilder::new(Default::default());
    let mut l = LayerBuilder::new();
    l.file("zstd", 0o644, b"zstd layer\n").unwrap();
    b = b.layer(l.finish().unwrap());
    b.compression = Compression::Zstd;
    let zstd = b.build().unwrap();
    reg.push(&zstd, "mirrored/zstd", "v1").await.unwrap();

    let yaml = reg.mirror_yaml("    rewrite:\n      \"^library/(.*)\": \"mirrored/$1\"\n");
    let p = testing::puller(&yaml, root.path());
    let image = p.pull("app:v1", &Keyring::empty()).await.unwrap();
    assert_eq!(image.id, docker.config_descriptor.digest);
    assert_eq!(image.repo_tags, ["docker.io/library/app:v1"]);
    assert!(image.layers[0].join("docker").is_file());
    let image = p
        .pull("docker.io/library/zstd:v1", &Keyring::empty())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(image.layers[0].join("zstd")).unwrap(),
        "zstd layer\n"
    );
}

#[tokio::test]
async fn index_picks_linux_amd64_and_arm64_only_fails() {
    let Some((reg, root)) = setup() else { return };
    let amd64 = testing::small_image("amd64\n").unwrap();
    let mut arm = ImageBuilder::new(Default::default());
    let mut l = LayerBuilder::new();
    l.file("hello", 0o644, b"arm64\n").unwrap();
    arm = arm.layer(l.finish().unwrap());
    arm.architecture = "arm64".into();
    let arm64 = arm.build().unwrap();
    let index_digest = reg
        .push_index(&[&arm64, &amd64], "library/multi", "v1")
        .await
        .unwrap();
    reg.push_index(&[&arm64], "library/armonly", "v1")
        .await
        .unwrap();

    let p = testing::puller(&reg.mirror_yaml(""), root.path());
    let image = p.pull("multi:v1", &Keyring::empty()).await.unwrap();
    assert_eq!(image.id, amd64.config_descriptor.digest);
    assert_eq!(
        image.image_ref(),
        format!("docker.io/library/multi@{index_digest}")
    );
    assert_eq!(
        std::fs::read_to_string(image.layers[0].join("hello")).unwrap(),
        "amd64\n"
    );

    let err = p.pull("armonly:v1", &Keyring::empty()).await.unwrap_err();
    assert!(
        matches!(err, PullError::NoMatchingPlatform { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.cri_message(),
        "rpc error: code = NotFound desc = failed to pull and unpack image \
         \"docker.io/library/armonly:v1\": no match for platform in manifest: not found"
    );
}

#[tokio::test]
async fn missing_image_is_not_found() {
    let Some((reg, root)) = setup() else { return };
    let p = testing::puller(&reg.mirror_yaml(""), root.path());
    let err = p.pull("nope", &Keyring::empty()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to pull and unpack image \"docker.io/library/nope:latest\": failed to resolve \
         reference \"docker.io/library/nope:latest\": docker.io/library/nope:latest: not found"
    );
    assert_eq!(err.waiting_reason(), "ErrImagePull");
    assert_clean(root.path());
}

#[tokio::test]
async fn corrupt_layer_is_a_digest_mismatch_and_leaves_nothing() {
    let Some((reg, root)) = setup() else { return };
    let built = testing::small_image("intact\n").unwrap();
    reg.push(&built, "library/corrupt", "v1").await.unwrap();
    // Tamper with the layer in the registry's storage: same length, other bytes.
    let layer = &built.layers[0].descriptor.digest;
    let path = reg.blob_data_path(layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    bytes[n - 9] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let p = testing::puller(&reg.mirror_yaml(""), root.path());
    let err = p.pull("corrupt:v1", &Keyring::empty()).await.unwrap_err();
    let PullError::DigestMismatch { expected, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(expected, layer);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "failed to pull and unpack image \"docker.io/library/corrupt:v1\": failed to copy: \
             failed commit on ref \"layer-{layer}\": unexpected commit digest sha256:"
        )) && text.ends_with(&format!(", expected {layer}: failed precondition")),
        "{text}"
    );
    assert_clean(root.path());
    assert!(!p.store().has_blob(layer));
}

#[tokio::test]
async fn registry_down_or_silent_fails_within_a_bound() {
    if !testing::available() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // Down: nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!("mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:{port}\"]\n");
    let p = testing::puller(&yaml, root.path());
    let start = Instant::now();
    let err = p.pull("nginx", &Keyring::empty()).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(30));
    let text = err.to_string();
    assert!(
        text.starts_with(
            "failed to pull and unpack image \"docker.io/library/nginx:latest\": failed to \
             resolve reference \"docker.io/library/nginx:latest\": failed to do request: Get \
             \"http://127.0.0.1:"
        ) && text.contains("Connection refused"),
        "{text}"
    );

    // Silent: accepts and never answers; the progress timeout (lowered to 1 s) ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let yaml = format!(
        "mirrors:\n  docker.io:\n    endpoint: [\"http://{}\"]\n",
        silent.local_addr().unwrap()
    );
    let registries = Registries::parse(&yaml)
        .unwrap()
        .disable_default_endpoint(true);
    let options = PullOptions {
        progress_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let p = Puller::new(Store::open(root.path()).unwrap(), registries, options);
    let start = Instant::now();
    let err = p.pull("nginx", &Keyring::empty()).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("(timeout)"), "{err}");
    drop(silent);
    assert_clean(root.path());
}

#[tokio::test]
async fn basic_auth_from_registries_yaml_and_from_a_pull_secret() {
    if !testing::available() {
        return;
    }
    let reg = Registry::start_with_htpasswd("svcnet", "s3cret").unwrap();
    let root = tempfile::tempdir().unwrap();
    reg.push(
        &testing::small_image("private\n").unwrap(),
        "library/private",
        "v1",
    )
    .await
    .unwrap();

    // Anonymous: refused, with the registry's status.
    let p = testing::puller(&reg.mirror_yaml(""), root.path());
    let err = p.pull("private:v1", &Keyring::empty()).await.unwrap_err();
    assert!(err.to_string().contains("401 Unauthorized"), "{err}");

    // registries.yaml `configs.<host>.auth`.
    let yaml = format!(
        "{}configs:\n  \"{}\":\n    auth:\n      username: svcnet\n      password: s3cret\n",
        reg.mirror_yaml(""),
        reg.host()
    );
    let p = testing::puller(&yaml, root.path());
    p.pull("private:v1", &Keyring::empty()).await.unwrap();

    // An imagePullSecret (dockerconfigjson) for the registry itself.
    let mut keyring = Keyring::empty();
    keyring
        .add_docker_config_json(
            format!(
                r#"{{"auths": {{"{}": {{"auth": "c3ZjbmV0OnMzY3JldA=="}}}}}}"#,
                reg.host()
            )
            .as_bytes(),
        )
        .unwrap();
    let root2 = tempfile::tempdir().unwrap();
    let p = testing::puller("", root2.path());
    let image = format!("{}/library/private:v1", reg.host());
    let err = p.pull(&image, &Keyring::empty()).await.unwrap_err();
    assert!(err.to_string().contains("401 Unauthorized"), "{err}");
    p.pull(&image, &keyring).await.unwrap();
}

#[tokio::test]
async fn ensure_follows_the_pull_policy() {
    let Some((reg, root)) = setup() else { return };
    reg.push(&testing::small_image("x\n").unwrap(), "library/pol", "v1")
        .await
        .unwrap();
    let p = testing::puller(&reg.mirror_yaml(""), root.path());
    let err = p
        .ensure("pol:v1", PullPolicy::Never, &Keyring::empty())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Container image \"pol:v1\" is not present with pull policy of Never"
    );
    assert_eq!(err.waiting_reason(), "ErrImageNeverPull");
    let e = p
        .ensure("pol:v1", PullPolicy::IfNotPresent, &Keyring::empty())
        .await
        .unwrap();
    assert!(e.pulled_in.is_some());
    drop(reg); // present now: IfNotPresent and Never need no registry
    for policy in [PullPolicy::IfNotPresent, PullPolicy::Never] {
        let e = p.ensure("pol:v1", policy, &Keyring::empty()).await.unwrap();
        assert!(e.pulled_in.is_none());
    }
    assert!(p
        .ensure("pol:v1", PullPolicy::Always, &Keyring::empty())
        .await
        .is_err());
    let err = p
        .ensure("Bad Name", PullPolicy::Always, &Keyring::empty())
        .await
        .unwrap_err();
    assert_eq!(err.waiting_reason(), "InvalidImageName");
}

#[tokio::test]
async fn whiteouts_and_opaque_dirs() {
    let Some((reg, root)) = setup() else { return };
    reg.push(&testing::whiteout_image().unwrap(), "library/wh", "v1")
        .await
        .unwrap();
    let p = testing::puller(&reg.mirror_yaml(""), root.path());
    let image = p.pull("wh:v1", &Keyring::empty()).await.unwrap();
    let (lower, upper) = (&image.layers[0], &image.layers[1]);
    assert!(lower.join("a/gone").is_file() && lower.join("d/old").is_file());
    let wh = std::fs::symlink_metadata(upper.join("a/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!upper.join(".wh.gone").exists() && !upper.join("a/.wh.gone").exists());
    assert_eq!(
        xattr::get(upper.join("d"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!upper.join("d/.wh..wh..opq").exists());

    // What a container sees: overlayfs over the two layers, in a scratch mount namespace.
    let mnt = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t overlay overlay -o lowerdir={}:{} {} && cd {} && find . | sort",
            upper.display(),
            lower.display(),
            mnt.path().display(),
            mnt.path().display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        ".\n./a\n./a/keep\n./d\n./d/new\n./top\n"
    );
}

#[tokio::test]
async fn token_auth_as_docker_hub() {
    if !testing::available() {
        return;
    }
    let reg = Registry::start_with_token("svcnet", "t0ken").unwrap();
    let root = tempfile::tempdir().unwrap();
    // The push itself went through the token dance (push scope).
    reg.push(
        &testing::small_image("behind a token\n").unwrap(),
        "library/tok",
        "v1",
    )
    .await
    .unwrap();

    let p = testing::puller(&reg.mirror_yaml(""), root.path());
    let err = p.pull("tok:v1", &Keyring::empty()).await.unwrap_err();
    assert!(err.to_string().contains("401 Unauthorized"), "{err}");
    assert_clean(root.path());

    let yaml = format!(
        "{}configs:\n  \"{}\":\n    auth:\n      username: svcnet\n      password: t0ken\n",
        reg.mirror_yaml(""),
        reg.host()
    );
    let image = testing::puller(&yaml, root.path())
        .pull("tok:v1", &Keyring::empty())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(image.layers[0].join("hello")).unwrap(),
        "behind a token\n"
    );
}
