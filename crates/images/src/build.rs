//! Building small images from the host's own files, with no registry and no internet: the
//! seeds' `busybox` and `nginx` from Debian's busybox-static and nginx-light
//! (`svcnet images build-seeds --out DIR` writes them as oci-archives for `<data-dir>/images/`),
//! and the test images of the `testing` fixture.
//!
//! Hand-written because no crate assembles an OCI image from files (the `tar`, `flate2` and
//! `zstd` crates do the formats); pushing goes through oci-client.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::manifest::{Descriptor, Platform, RawManifest, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use crate::store::{ConfigFile, ImageConfig, RootFs};
use crate::unpack::sha256_digest;

/// The annotation containerd names an imported image by.
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI layout's reference annotation.
pub const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One layer being written as a tar stream: parents are added before children, owners 0:0.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
    dirs: BTreeSet<String>,
    mtime: u64,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn clean(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

impl LayerBuilder {
    pub fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        Self {
            tar,
            dirs: BTreeSet::new(),
            mtime: 1_700_000_000,
        }
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        let mut cur = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(part);
            if !self.dirs.contains(&cur) {
                self.dir(&cur.clone(), 0o755)?;
            }
        }
        Ok(())
    }

    /// A directory (and its parents).
    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<&mut Self> {
        let path = clean(path);
        if self.dirs.contains(&path) {
            return Ok(self);
        }
        self.parents(&path)?;
        let mut h = self.header(tar::EntryType::Directory, mode, 0);
        self.tar
            .append_data(&mut h, format!("{path}/"), io::empty())?;
        self.dirs.insert(path);
        Ok(self)
    }

    /// A regular file with `data`.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<&mut Self> {
        let path = clean(path);
        self.parents(&path)?;
        let mut h = self.header(tar::EntryType::Regular, mode, data.len() as u64);
        self.tar.append_data(&mut h, path, data)?;
        Ok(self)
    }

    /// The host's file at `host` (symlinks followed) as `path`, with its mode.
    pub fn host_file(&mut self, path: &str, host: &Path) -> io::Result<&mut Self> {
        use std::os::unix::fs::PermissionsExt;
        let data = fs::read(host).map_err(|e| with_path(e, host))?;
        let mode = fs::metadata(host)?.permissions().mode() & 0o7777;
        self.file(path, mode, &data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<&mut Self> {
        let path = clean(path);
        self.parents(&path)?;
        let mut h = self.header(tar::EntryType::Symlink, 0o777, 0);
        self.tar.append_link(&mut h, path, target)?;
        Ok(self)
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> io::Result<&mut Self> {
        let path = clean(path);
        self.parents(&path)?;
        let mut h = self.header(tar::EntryType::Link, 0o644, 0);
        self.tar.append_link(&mut h, path, clean(target))?;
        Ok(self)
    }

    /// Deletes `path` of the layers below (an OCI whiteout, `.wh.<name>`).
    pub fn whiteout(&mut self, path: &str) -> io::Result<&mut Self> {
        let path = clean(path);
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, 0o644, b"")
    }

    /// Hides everything the layers below have in `dir` (`.wh..wh..opq`).
    pub fn opaque(&mut self, dir: &str) -> io::Result<&mut Self> {
        self.dir(dir, 0o755)?;
        self.file(&format!("{}/.wh..wh..opq", clean(dir)), 0o644, b"")
    }

    /// The uncompressed tar.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        self.tar.into_inner()
    }
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// How layers are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
}

/// An image being assembled.
pub struct ImageBuilder {
    pub config: ImageConfig,
    pub architecture: String,
    pub layers: Vec<Vec<u8>>,
    pub compression: Compression,
    /// Docker image manifest v2 schema 2 media types instead of OCI's (gzip only).
    pub docker_media_types: bool,
}

/// A built layer: its uncompressed tar and the blob as pushed.
pub struct BuiltLayer {
    pub tar: Vec<u8>,
    pub diff_id: String,
    pub blob: Vec<u8>,
    pub descriptor: Descriptor,
}

/// A built image: config, layers, manifest, each with its digest.
pub struct BuiltImage {
    pub config: Vec<u8>,
    pub config_descriptor: Descriptor,
    pub layers: Vec<BuiltLayer>,
    pub manifest: Vec<u8>,
    pub manifest_descriptor: Descriptor,
}

impl ImageBuilder {
    pub fn new(config: ImageConfig) -> Self {
        Self {
            config,
            architecture: "amd64".to_string(),
            layers: Vec::new(),
            compression: Compression::Gzip,
            docker_media_types: false,
        }
    }

    pub fn layer(mut self, tar: Vec<u8>) -> Self {
        self.layers.push(tar);
        self
    }

    pub fn build(self) -> io::Result<BuiltImage> {
        let mut layers = Vec::new();
        for tar in self.layers {
            let (blob, media_type) = match self.compression {
                Compression::Gzip => {
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    enc.write_all(&tar)?;
                    let media_type = if self.docker_media_types {
                        crate::manifest::DOCKER_LAYER_GZIP
                    } else {
                        crate::manifest::OCI_LAYER_GZIP
                    };
                    (enc.finish()?, media_type)
                }
                Compression::Zstd => (
                    zstd::stream::encode_all(&tar[..], 3)?,
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
            };
            layers.push(BuiltLayer {
                diff_id: sha256_digest(&tar),
                descriptor: descriptor(media_type, &blob),
                tar,
                blob,
            });
        }
        let config_file = ConfigFile {
            architecture: self.architecture.clone(),
            os: "linux".to_string(),
            config: Some(self.config),
            rootfs: RootFs {
                kind: "layers".to_string(),
                diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
            },
        };
        let config = serde_json::to_vec(&config_file).expect("config serialises");
        let (config_type, manifest_type) = if self.docker_media_types {
            (
                crate::manifest::DOCKER_CONFIG,
                crate::manifest::DOCKER_MANIFEST,
            )
        } else {
            (OCI_CONFIG, OCI_MANIFEST)
        };
        let config_descriptor = descriptor(config_type, &config);
        let manifest = serde_json::to_vec(&RawManifest {
            schema_version: 2,
            media_type: Some(manifest_type.to_string()),
            config: Some(config_descriptor.clone()),
            layers: Some(layers.iter().map(|l| l.descriptor.clone()).collect()),
            ..Default::default()
        })
        .expect("manifest serialises");
        let mut manifest_descriptor = descriptor(manifest_type, &manifest);
        manifest_descriptor.platform = Some(Platform {
            architecture: self.architecture,
            os: "linux".to_string(),
            variant: None,
        });
        Ok(BuiltImage {
            config,
            config_descriptor,
            layers,
            manifest,
            manifest_descriptor,
        })
    }
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: sha256_digest(bytes),
        size: bytes.len() as i64,
        ..Default::default()
    }
}

/// An OCI index over built images (e.g. amd64 + arm64 of one name).
pub fn index(images: &[&BuiltImage]) -> (Vec<u8>, Descriptor) {
    let index = RawManifest {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: Some(
            images
                .iter()
                .map(|i| i.manifest_descriptor.clone())
                .collect(),
        ),
        ..Default::default()
    };
    let bytes = serde_json::to_vec(&index).expect("index serialises");
    let d = descriptor(OCI_INDEX, &bytes);
    (bytes, d)
}

fn append(tar: &mut tar::Builder<fs::File>, path: &str, data: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    tar.append_data(&mut h, path, data)
}

impl BuiltImage {
    /// skopeo's `oci-archive:`: an OCI image layout in a tar, the manifest annotated with
    /// `name` (qualified, e.g. `docker.io/library/nginx:latest`) both as containerd and as OCI.
    pub fn write_oci_archive(&self, path: &Path, name: &str) -> io::Result<()> {
        self.write_oci_archive_named(path, &[name])
    }

    /// [`BuiltImage::write_oci_archive`] with one index entry per name (as `ctr images export`
    /// of several tags of one image), all for the same manifest.
    pub fn write_oci_archive_named(&self, path: &Path, names: &[&str]) -> io::Result<()> {
        let mut tar = tar::Builder::new(fs::File::create(path).map_err(|e| with_path(e, path))?);
        append(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let entries = names
            .iter()
            .map(|name| {
                let mut entry = self.manifest_descriptor.clone();
                entry.annotations = Some(
                    [
                        (CONTAINERD_IMAGE_NAME.to_string(), name.to_string()),
                        (OCI_REF_NAME.to_string(), name.to_string()),
                    ]
                    .into(),
                );
                entry
            })
            .collect();
        let index = RawManifest {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            manifests: Some(entries),
            ..Default::default()
        };
        append(&mut tar, "index.json", &serde_json::to_vec(&index)?)?;
        let blob = |d: &Descriptor| format!("blobs/sha256/{}", &d.digest["sha256:".len()..]);
        append(&mut tar, &blob(&self.manifest_descriptor), &self.manifest)?;
        append(&mut tar, &blob(&self.config_descriptor), &self.config)?;
        for l in &self.layers {
            append(&mut tar, &blob(&l.descriptor), &l.blob)?;
        }
        tar.into_inner()?.sync_all()
    }

    /// skopeo's `docker-archive:` (`docker save`): `manifest.json`, the config, and each layer
    /// as an uncompressed `<n>/layer.tar`.
    pub fn write_docker_archive(&self, path: &Path, repo_tag: &str) -> io::Result<()> {
        let mut tar = tar::Builder::new(fs::File::create(path).map_err(|e| with_path(e, path))?);
        let config_name = format!("{}.json", &self.config_descriptor.digest["sha256:".len()..]);
        append(&mut tar, &config_name, &self.config)?;
        let mut layer_names = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let name = format!("{i}/layer.tar");
            append(&mut tar, &name, &l.tar)?;
            layer_names.push(name);
        }
        let manifest =
            json!([{ "Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names }]);
        append(&mut tar, "manifest.json", &serde_json::to_vec(&manifest)?)?;
        tar.into_inner()?.sync_all()
    }

    /// Pushes config, layers and manifest to `reference` with `client` (anonymous or with the
    /// auth the client already holds).
    pub async fn push(
        &self,
        client: &oci_client::Client,
        reference: &oci_client::Reference,
        auth: &oci_client::secrets::RegistryAuth,
    ) -> Result<(), oci_client::errors::OciDistributionError> {
        client
            .auth(reference, auth, oci_client::RegistryOperation::Push)
            .await?;
        for l in &self.layers {
            client
                .push_blob(reference, l.blob.clone(), &l.descriptor.digest)
                .await?;
        }
        client
            .push_blob(
                reference,
                self.config.clone(),
                &self.config_descriptor.digest,
            )
            .await?;
        client
            .push_manifest_raw(
                reference,
                self.manifest.clone(),
                http::HeaderValue::from_str(&self.manifest_descriptor.media_type)
                    .expect("media type is a header value"),
            )
            .await?;
        Ok(())
    }
}

/// The seeds' images from Debian's packages on this host.
pub mod seeds {
    use super::*;

    /// `PATH` of the images (Docker's default).
    pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// busybox-static's /bin/busybox with its applets as symlinks in /bin, /etc/passwd and
    /// /etc/group, /tmp; `CMD ["sh"]` as the Docker Hub image.
    pub fn busybox() -> io::Result<ImageBuilder> {
        let config = ImageConfig {
            env: Some(vec![PATH_ENV.to_string()]),
            cmd: Some(vec!["sh".to_string()]),
            ..Default::default()
        };
        Ok(ImageBuilder::new(config).layer(busybox_layer()?))
    }

    /// The busybox image's one layer (also the nginx image's base: Docker Hub's nginx has a
    /// shell, which the seeds' `kubectl exec ... -- sh -c 'echo ... > index.html'` needs).
    fn busybox_layer() -> io::Result<Vec<u8>> {
        let busybox = Path::new("/bin/busybox");
        let out = std::process::Command::new(busybox).arg("--list").output()?;
        if !out.status.success() {
            return Err(io::Error::other("busybox --list failed"));
        }
        let mut l = LayerBuilder::new();
        l.dir("bin", 0o755)?;
        l.host_file("bin/busybox", busybox)?;
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            let applet = applet.trim();
            if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
                l.symlink(&format!("bin/{applet}"), "busybox")?;
            }
        }
        base_files(&mut l, "")?;
        l.finish()
    }

    fn base_files(l: &mut LayerBuilder, extra_passwd: &str) -> io::Result<()> {
        l.dir("tmp", 0o1777)?;
        l.dir("etc", 0o755)?;
        l.dir("root", 0o700)?;
        for d in ["proc", "sys", "dev", "run", "var"] {
            l.dir(d, 0o755)?;
        }
        let passwd = format!(
            "root:x:0:0:root:/root:/bin/sh\n{extra_passwd}nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        );
        l.file("etc/passwd", 0o644, passwd.as_bytes())?;
        let group = if extra_passwd.contains("www-data") {
            "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"
        } else {
            "root:x:0:\nnogroup:x:65534:\n"
        };
        l.file("etc/group", 0o644, group.as_bytes())?;
        Ok(())
    }

    /// Debian's `nginx.conf`, unchanged but for its comments.
    pub const NGINX_CONF: &str = "user www-data;\nworker_processes auto;\npid /run/nginx.pid;\n\
error_log /var/log/nginx/error.log;\ninclude /etc/nginx/modules-enabled/*.conf;\n\n\
events {\n\tworker_connections 768;\n}\n\n\
http {\n\tsendfile on;\n\ttcp_nopush on;\n\ttypes_hash_max_size 2048;\n\
\tinclude /etc/nginx/mime.types;\n\tdefault_type application/octet-stream;\n\
\tssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n\tssl_prefer_server_ciphers on;\n\
\taccess_log /var/log/nginx/access.log;\n\tgzip on;\n\
\tinclude /etc/nginx/conf.d/*.conf;\n\tinclude /etc/nginx/sites-enabled/*;\n}\n";

    /// Debian's default site, serving /usr/share/nginx/html as the Docker Hub image does.
    pub const NGINX_DEFAULT_SITE: &str = "server {\n\tlisten 80 default_server;\n\
\tlisten [::]:80 default_server;\n\troot /usr/share/nginx/html;\n\
\tindex index.html index.htm;\n\tserver_name _;\n\tlocation / {\n\t\ttry_files $uri $uri/ =404;\n\t}\n}\n";

    /// nginx-light's /usr/sbin/nginx with the libraries `ldd` names, Debian's configuration
    /// with the default site on /usr/share/nginx/html (nginx's stock "Welcome to nginx!"
    /// page from nginx-common), logs to the container's stdout/stderr as the Docker Hub image,
    /// www-data in passwd/group; `CMD ["nginx", "-g", "daemon off;"]`; on the busybox layer
    /// (a shell and the usual tools, as the Docker Hub image's Debian base has).
    pub fn nginx() -> io::Result<ImageBuilder> {
        let nginx = Path::new("/usr/sbin/nginx");
        let mut l = LayerBuilder::new();
        l.host_file("usr/sbin/nginx", nginx)?;
        for lib in ldd(nginx)? {
            let p = lib.to_string_lossy().into_owned();
            l.host_file(&p, &lib)?;
        }
        base_files(
            &mut l,
            "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n",
        )?;
        l.file("etc/nginx/nginx.conf", 0o644, NGINX_CONF.as_bytes())?;
        l.host_file("etc/nginx/mime.types", Path::new("/etc/nginx/mime.types"))?;
        l.dir("etc/nginx/conf.d", 0o755)?;
        l.dir("etc/nginx/modules-enabled", 0o755)?;
        l.file(
            "etc/nginx/sites-available/default",
            0o644,
            NGINX_DEFAULT_SITE.as_bytes(),
        )?;
        l.symlink(
            "etc/nginx/sites-enabled/default",
            "/etc/nginx/sites-available/default",
        )?;
        l.host_file(
            "usr/share/nginx/html/index.html",
            Path::new("/usr/share/nginx/html/index.html"),
        )?;
        l.dir("var/log/nginx", 0o755)?;
        l.symlink("var/log/nginx/access.log", "/dev/stdout")?;
        l.symlink("var/log/nginx/error.log", "/dev/stderr")?;
        l.dir("var/lib/nginx", 0o755)?;
        l.dir("var/www", 0o755)?;
        let config = ImageConfig {
            env: Some(vec![PATH_ENV.to_string()]),
            cmd: Some(vec![
                "nginx".to_string(),
                "-g".to_string(),
                "daemon off;".to_string(),
            ]),
            exposed_ports: Some([("80/tcp".to_string(), json!({}))].into()),
            stop_signal: Some("SIGQUIT".to_string()),
            ..Default::default()
        };
        Ok(ImageBuilder::new(config)
            .layer(busybox_layer()?)
            .layer(l.finish()?))
    }

    /// The shared libraries `ldd` names for `binary` (with the loader); none for a static one.
    pub fn ldd(binary: &Path) -> io::Result<Vec<PathBuf>> {
        let out = std::process::Command::new("ldd").arg(binary).output()?;
        let said = [&out.stdout[..], &out.stderr[..]].concat();
        if String::from_utf8_lossy(&said).contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        if !out.status.success() {
            return Err(io::Error::other(format!("ldd {} failed", binary.display())));
        }
        let mut libs = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/')) {
                libs.push(PathBuf::from(p));
            }
        }
        Ok(libs)
    }

    /// The seeds' nginx tags: the Docker Hub default and the one `Service-Env.yaml` names.
    pub const NGINX_TAGS: [&str; 2] = ["latest", "1.23.1"];

    /// The agnhost image's name: what the seeds' `shield-app.yml` runs (a web app on 8080).
    pub const SCALING_IMAGE: &str = "quay.io/mask365/scaling:latest";

    /// An agnhost image (as Kubernetes' registry.k8s.io/e2e-test-images/agnhost) from the
    /// `svcnet` binary at `svcnet`: the binary, without its debug sections when binutils'
    /// `objcopy` is there (a fifth of the size), at /usr/local/bin/svcnet with the libraries
    /// `ldd` names; `ENTRYPOINT ["svcnet", "agnhost", "netexec", "--http-port=8080"]`, whose
    /// `/` answers with the pod's IP. Zstd layer: a debug build is ~100 MB, which gzip takes
    /// seconds to compress and zstd a fraction of one.
    pub fn agnhost(svcnet: &Path) -> io::Result<ImageBuilder> {
        let mut l = LayerBuilder::new();
        let stripped = tempfile::Builder::new()
            .prefix("svcnet-agnhost-")
            .tempfile()?;
        let objcopy = std::process::Command::new("objcopy")
            .arg("--strip-debug")
            .arg(svcnet)
            .arg(stripped.path())
            .status();
        let binary = match objcopy {
            Ok(s) if s.success() => stripped.path(),
            _ => svcnet,
        };
        let data = fs::read(binary).map_err(|e| with_path(e, binary))?;
        l.file("usr/local/bin/svcnet", 0o755, &data)?;
        drop(data);
        for lib in ldd(svcnet)? {
            let p = lib.to_string_lossy().into_owned();
            l.host_file(&p, &lib)?;
        }
        base_files(&mut l, "")?;
        let config = ImageConfig {
            env: Some(vec![PATH_ENV.to_string()]),
            entrypoint: Some(
                ["svcnet", "agnhost", "netexec", "--http-port=8080"]
                    .map(String::from)
                    .to_vec(),
            ),
            exposed_ports: Some([("8080/tcp".to_string(), json!({}))].into()),
            ..Default::default()
        };
        let mut image = ImageBuilder::new(config).layer(l.finish()?);
        image.compression = Compression::Zstd;
        Ok(image)
    }

    /// Writes `busybox.tar`, `nginx.tar` (oci-archives named `docker.io/library/busybox:latest`
    /// and `docker.io/library/nginx:` each of [`NGINX_TAGS`]) and, given the `svcnet` binary,
    /// `scaling.tar` ([`agnhost`] named [`SCALING_IMAGE`]) into `out`, for `<data-dir>/images/`
    /// of an air-gapped machine (or `skopeo copy oci-archive:... docker://` into a registry).
    pub fn build_seeds(out: &Path, svcnet: Option<&Path>) -> io::Result<Vec<PathBuf>> {
        fs::create_dir_all(out)?;
        let mut written = Vec::new();
        let nginx_names = NGINX_TAGS.map(|t| format!("docker.io/library/nginx:{t}"));
        let mut images = vec![
            (
                "busybox.tar",
                vec!["docker.io/library/busybox:latest".to_string()],
                busybox()?,
            ),
            ("nginx.tar", nginx_names.to_vec(), nginx()?),
        ];
        if let Some(svcnet) = svcnet {
            images.push((
                "scaling.tar",
                vec![SCALING_IMAGE.to_string()],
                agnhost(svcnet)?,
            ));
        }
        for (file, names, builder) in images {
            let path = out.join(file);
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            builder.build()?.write_oci_archive_named(&path, &names)?;
            written.push(path);
        }
        Ok(written)
    }
}
