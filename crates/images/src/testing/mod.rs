//! Test support: Debian's docker-registry (the CNCF distribution registry) on a free loopback
//! port, and the images tests push into it. Each [`Registry`] lives in its own temporary
//! directory; dropping it kills the registry and removes the directory.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

use crate::build::{seeds, BuiltImage, ImageBuilder, LayerBuilder};

mod token;
use crate::store::ImageConfig;
pub use token::TokenServer;

/// Debian's package installs the registry here.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// Whether the registry binary is installed (tests skip without it).
pub fn available() -> bool {
    Path::new(DOCKER_REGISTRY).is_file()
}

/// A running docker-registry on 127.0.0.1.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// The credentials pushes use (htpasswd's, or the token server's).
    pub credentials: Option<(String, String)>,
    token_server: Option<TokenServer>,
}

enum Auth {
    None,
    Htpasswd(String, String),
    Token(String, String),
}

impl Registry {
    /// An anonymous registry.
    pub fn start() -> io::Result<Self> {
        Self::start_with(Auth::None)
    }

    /// A registry with htpasswd auth (distribution's `auth.htpasswd`: HTTP basic; the registry
    /// needs no token server for it).
    pub fn start_with_htpasswd(user: &str, password: &str) -> io::Result<Self> {
        Self::start_with(Auth::Htpasswd(user.to_string(), password.to_string()))
    }

    /// A registry with token auth (distribution's `auth.token`, as Docker Hub): every request
    /// needs a bearer token from a [`TokenServer`] on loopback, which hands them to `user` with
    /// `password` only.
    pub fn start_with_token(user: &str, password: &str) -> io::Result<Self> {
        Self::start_with(Auth::Token(user.to_string(), password.to_string()))
    }

    fn start_with(auth: Auth) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("svcnet-registry-")
            .tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n  secret: svcnet-test\n",
            storage.display()
        );
        let (mut credentials, mut token_server) = (None, None);
        match auth {
            Auth::None => {}
            Auth::Htpasswd(user, password) => {
                let hash = bcrypt::hash_with_result(&password, 4)
                    .map_err(io::Error::other)?
                    .format_for_version(bcrypt::Version::TwoY);
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: svcnet-test\n    path: {}\n",
                    htpasswd.display()
                ));
                credentials = Some((user, password));
            }
            Auth::Token(user, password) => {
                let server = TokenServer::start(&user, &password)?;
                let bundle = dir.path().join("token-signer.pem");
                std::fs::write(&bundle, &server.cert_pem)?;
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                     rootcertbundle: {}\n",
                    server.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    bundle.display()
                ));
                credentials = Some((user, password));
                token_server = Some(server);
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let registry = Registry {
            child,
            dir,
            addr,
            credentials,
            token_server,
        };
        registry.wait_ready()?;
        Ok(registry)
    }

    fn wait_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::other(format!(
            "docker-registry did not listen on {} within 20s: {}",
            self.addr,
            self.log()
        )))
    }

    /// The token server, when started with [`Registry::start_with_token`].
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps a blob's bytes (to tamper with it).
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// registries.yaml mirroring quay.io and docker.io (and `extra`, k3s syntax appended under
    /// docker.io's mirror) to this registry over plain HTTP.
    pub fn mirror_yaml(&self, extra: &str) -> String {
        format!(
            "mirrors:\n  quay.io:\n    endpoint:\n      - \"http://{0}\"\n  \
             docker.io:\n    endpoint:\n      - \"http://{0}\"\n{extra}",
            self.host()
        )
    }

    fn client(&self) -> oci_client::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
    }

    fn auth(&self) -> RegistryAuth {
        match &self.credentials {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    fn reference(&self, repository: &str, tag: &str) -> oci_client::Reference {
        oci_client::Reference::with_tag(self.host(), repository.to_string(), tag.to_string())
    }

    /// Pushes `image` as `repository:tag` (oci-client, plain HTTP).
    pub async fn push(&self, image: &BuiltImage, repository: &str, tag: &str) -> io::Result<()> {
        image
            .push(
                &self.client(),
                &self.reference(repository, tag),
                &self.auth(),
            )
            .await
            .map_err(io::Error::other)
    }

    /// Pushes each image's blobs and manifest, then an OCI index over them as `repository:tag`.
    pub async fn push_index(
        &self,
        images: &[&BuiltImage],
        repository: &str,
        tag: &str,
    ) -> io::Result<String> {
        let client = self.client();
        for image in images {
            let by_digest = oci_client::Reference::with_digest(
                self.host(),
                repository.to_string(),
                image.manifest_descriptor.digest.clone(),
            );
            image
                .push(&client, &by_digest, &self.auth())
                .await
                .map_err(io::Error::other)?;
        }
        let (bytes, descriptor) = crate::build::index(images);
        client
            .push_manifest_raw(
                &self.reference(repository, tag),
                bytes,
                http::HeaderValue::from_static(crate::manifest::OCI_INDEX),
            )
            .await
            .map_err(io::Error::other)?;
        Ok(descriptor.digest)
    }

    /// Pushes the seeds' images as `library/busybox:latest` and `library/nginx:` each of
    /// [`seeds::NGINX_TAGS`] (so `busybox`, `nginx` and `docker.io/library/nginx:1.23.1`
    /// resolve here through a docker.io mirror).
    pub async fn push_seeds(&self) -> io::Result<()> {
        self.push(&seeds::busybox()?.build()?, "library/busybox", "latest")
            .await?;
        let nginx = seeds::nginx()?.build()?;
        self.push(&nginx, "library/nginx", seeds::NGINX_TAGS[0])
            .await?;
        for tag in &seeds::NGINX_TAGS[1..] {
            self.tag(&nginx, "library/nginx", tag).await?;
        }
        Ok(())
    }

    /// The agnhost image built from the `svcnet` binary ([`seeds::agnhost`]) as
    /// `mask365/scaling:latest` (the seeds' `quay.io/mask365/scaling:latest` through a quay.io
    /// mirror).
    pub async fn push_scaling(&self, svcnet: &Path) -> io::Result<()> {
        let svcnet = svcnet.to_path_buf();
        let image = tokio::task::spawn_blocking(move || seeds::agnhost(&svcnet)?.build())
            .await
            .map_err(io::Error::other)??;
        self.push(&image, "mask365/scaling", "latest").await
    }

    /// Another tag for an image already pushed to `repository`: its manifest only.
    pub async fn tag(&self, image: &BuiltImage, repository: &str, tag: &str) -> io::Result<()> {
        let client = self.client();
        let reference = self.reference(repository, tag);
        client
            .auth(
                &reference,
                &self.auth(),
                oci_client::RegistryOperation::Push,
            )
            .await
            .map_err(io::Error::other)?;
        client
            .push_manifest_raw(
                &reference,
                image.manifest.clone(),
                http::HeaderValue::from_str(&image.manifest_descriptor.media_type)
                    .map_err(io::Error::other)?,
            )
            .await
            .map_err(io::Error::other)?;
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A puller over a store at `root` with the registries of `yaml` (k3s syntax) only: the
/// default endpoint is disabled, so nothing but the test's registry is ever asked.
pub fn puller(yaml: &str, root: &Path) -> crate::Puller {
    let registries = crate::Registries::parse(yaml)
        .expect("registries.yaml")
        .disable_default_endpoint(true);
    crate::Puller::new(
        crate::Store::open(root).expect("store"),
        registries,
        crate::PullOptions::default(),
    )
}

/// A small image: `/hello` holding `text`, `/etc/motd`, a symlink and a hard link.
pub fn small_image(text: &str) -> io::Result<BuiltImage> {
    let mut l = LayerBuilder::new();
    l.file("hello", 0o644, text.as_bytes())?;
    l.file("etc/motd", 0o600, b"motd\n")?;
    l.symlink("greeting", "/hello")?;
    l.hardlink("hello-again", "hello")?;
    let config = ImageConfig {
        cmd: Some(vec!["/hello".to_string()]),
        env: Some(vec![seeds::PATH_ENV.to_string()]),
        working_dir: Some("/".to_string()),
        ..Default::default()
    };
    ImageBuilder::new(config).layer(l.finish()?).build()
}

/// Two layers: the lower one has `/a/keep`, `/a/gone`, `/d/old`; the upper one deletes
/// `/a/gone` (whiteout), makes `/d` opaque with `/d/new`, and adds `/top`.
pub fn whiteout_image() -> io::Result<BuiltImage> {
    let mut lower = LayerBuilder::new();
    lower.file("a/keep", 0o644, b"keep\n")?;
    lower.file("a/gone", 0o644, b"gone\n")?;
    lower.file("d/old", 0o644, b"old\n")?;
    let mut upper = LayerBuilder::new();
    upper.dir("a", 0o755)?;
    upper.whiteout("a/gone")?;
    upper.opaque("d")?;
    upper.file("d/new", 0o644, b"new\n")?;
    upper.file("top", 0o644, b"top\n")?;
    ImageBuilder::new(ImageConfig::default())
        .layer(lower.finish()?)
        .layer(upper.finish()?)
        .build()
}

/// The benchmark's image: real binaries and libraries of this host in four layers of about
/// `layer_bytes` uncompressed each (files taken in name order until the budget is spent).
pub fn bench_image(layer_bytes: u64) -> io::Result<BuiltImage> {
    let mut builder = ImageBuilder::new(ImageConfig {
        cmd: Some(vec!["/bin/sh".to_string()]),
        ..Default::default()
    });
    for dir in [
        "/usr/bin",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/gcc",
        "/usr/libexec",
    ] {
        let mut layer = LayerBuilder::new();
        let mut budget = layer_bytes;
        add_tree(&mut layer, Path::new(dir), &mut budget)?;
        builder = builder.layer(layer.finish()?);
    }
    builder.build()
}

fn add_tree(layer: &mut LayerBuilder, dir: &Path, budget: &mut u64) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if *budget == 0 {
            return Ok(());
        }
        let meta = std::fs::symlink_metadata(&path)?;
        let name = path.to_string_lossy().into_owned();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            layer.symlink(&name, &target.to_string_lossy())?;
        } else if meta.is_dir() {
            add_tree(layer, &path, budget)?;
        } else if meta.is_file() && meta.len() <= *budget && layer.host_file(&name, &path).is_ok() {
            *budget -= meta.len();
        }
    }
    Ok(())
}
