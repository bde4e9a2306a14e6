//! Starting what a bench measures against: the API server in this process (with an admin
//! client), the `svcnet` binary next to the bench's own, and `svcnet up` as a child that is
//! stopped and torn down when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `svcnet` binary next to this bench's (`cargo build --release -p svcnet` puts it there).
pub fn svcnet_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("svcnet");
    anyhow::ensure!(
        exe.exists(),
        "{} not found: build it with `cargo build --release -p svcnet`",
        exe.display()
    );
    Ok(exe)
}

/// A kube-rs client from a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    Ok(kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?)
}

/// The API server running in this process on a free loopback port, its data in a temporary
/// directory, and an admin client for it. Dropped: the server stops, then the directory goes.
pub struct ApiServer {
    pub server: svcnet_apiserver::Server,
    pub client: kube::Client,
    _dir: tempfile::TempDir,
}

impl ApiServer {
    /// On SQLite in its data directory, or on `store`.
    pub async fn start(store: Option<svcnet_apiserver::config::StoreUrl>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = svcnet_apiserver::Config::new(dir.path().to_path_buf());
        config.secure_port = 0;
        config.store = store;
        let server = svcnet_apiserver::Server::start(config).await?;
        let client = client(&server.kubeconfig_path).await?;
        Ok(ApiServer {
            server,
            client,
            _dir: dir,
        })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.server.kubeconfig_path
    }

    /// Stop the server and wait until its tasks have ended.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// A running `svcnet up`, stopped (SIGTERM, its own teardown, then `svcnet down`) on drop.
pub struct Up {
    child: Child,
    data: PathBuf,
}

impl Up {
    /// Start `svcnet up --nodes n` on `data`; returns it once it printed `ready`, with the time
    /// that took.
    pub fn start(n: usize, data: &Path) -> anyhow::Result<(Up, Duration)> {
        Self::start_with(n, data, &[])
    }

    /// [`Up::start`] with more flags of `svcnet up` (e.g. `--private-registry FILE`).
    pub fn start_with(n: usize, data: &Path, extra: &[&str]) -> anyhow::Result<(Up, Duration)> {
        let start = Instant::now();
        let mut child = Command::new(svcnet_exe()?)
            .args([
                "up",
                "--apiserver-port",
                "0",
                "--nodes",
                &n.to_string(),
                "--data-dir",
            ])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = child.stdout.take().expect("piped");
        let up = Up {
            child,
            data: data.to_path_buf(),
        };
        for line in BufReader::new(out).lines() {
            if line?.starts_with("ready") {
                return Ok((up, start.elapsed()));
            }
        }
        anyhow::bail!("svcnet up exited before it was ready")
    }
}

impl Up {
    /// The process id of `svcnet up` (its node agents run inside it).
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(exe) = svcnet_exe() {
            let _ = Command::new(exe)
                .arg("down")
                .arg("--data-dir")
                .arg(&self.data)
                .output();
        }
    }
}
