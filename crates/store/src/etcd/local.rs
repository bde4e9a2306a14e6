//! Start etcd (Debian's `etcd` 3.4 binary) on loopback: one member for `svcnet up --store etcd`
//! and the tests, or a small cluster for the several-API-server tests. Every member is killed
//! when the [`LocalEtcd`] is dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary: `$SVCNET_ETCD_BIN`, else `etcd` from PATH.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("SVCNET_ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

#[derive(Debug, thiserror::Error)]
pub enum LocalEtcdError {
    #[error("preparing {0}: {1}")]
    DirFailed(PathBuf, std::io::Error),
    #[error("finding a free loopback port: {0}")]
    PortFailed(std::io::Error),
    #[error("starting {0}: {1} (install Debian's etcd-server)")]
    SpawnFailed(PathBuf, std::io::Error),
    #[error("etcd member {name} exited early ({status}); log:\n{log}")]
    ExitedEarly {
        name: String,
        status: String,
        log: String,
    },
    #[error("etcd member {name} was not healthy within {waited:?}; log:\n{log}")]
    NotHealthy {
        name: String,
        waited: Duration,
        log: String,
    },
}

/// Ports for one member. Fixed ports let a restarted etcd keep its addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberPorts {
    pub client: u16,
    pub peer: u16,
}

struct Member {
    name: String,
    ports: MemberPorts,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Running etcd members on 127.0.0.1, killed on drop.
pub struct LocalEtcd {
    members: Vec<Member>,
    initial_cluster: String,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, LocalEtcdError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(LocalEtcdError::PortFailed)?;
    Ok(l.local_addr().map_err(LocalEtcdError::PortFailed)?.port())
}

fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// GET /health on a member's client URL: true once the member serves with a leader.
fn healthy(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

impl LocalEtcd {
    /// Start a cluster of `n` members with data under `dir` (`dir/<name>`), on free ports.
    pub fn start(dir: &Path, n: usize) -> Result<Self, LocalEtcdError> {
        let mut ports = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while ports.len() < n {
            let (client, peer) = (free_port()?, free_port()?);
            if client != peer && seen.insert(client) && seen.insert(peer) {
                ports.push(MemberPorts { client, peer });
            }
        }
        Self::start_on(dir, &ports)
    }

    /// Start one member per entry of `ports` (the data dir is kept across restarts).
    pub fn start_on(dir: &Path, ports: &[MemberPorts]) -> Result<Self, LocalEtcdError> {
        std::fs::create_dir_all(dir).map_err(|e| LocalEtcdError::DirFailed(dir.into(), e))?;
        let members: Vec<Member> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let name = format!("m{i}");
                Member {
                    data_dir: dir.join(&name),
                    log: dir.join(format!("{name}.log")),
                    name,
                    ports: *p,
                    child: None,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.ports.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = LocalEtcd {
            members,
            initial_cluster,
        };
        for i in 0..etcd.members.len() {
            etcd.spawn(i)?;
        }
        for i in 0..etcd.members.len() {
            etcd.wait_healthy(i, Duration::from_secs(30))?;
        }
        Ok(etcd)
    }

    fn spawn(&mut self, i: usize) -> Result<(), LocalEtcdError> {
        let cluster = self.initial_cluster.clone();
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(|e| LocalEtcdError::DirFailed(m.log.clone(), e))?;
        let client = format!("http://127.0.0.1:{}", m.ports.client);
        let peer = format!("http://127.0.0.1:{}", m.ports.peer);
        let bin = etcd_binary();
        let child = Command::new(&bin)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--logger=zap", "--log-outputs=stderr"])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster])
            .args(["--initial-cluster-token", "svcnet-local"])
            .args(["--initial-cluster-state", "new"])
            .env("ETCDCTL_API", "3")
            // Its own process group: a terminal's Ctrl-C reaches the process that started
            // it (`svcnet up`), which stops its API server before etcd, not etcd first.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| LocalEtcdError::SpawnFailed(bin.clone(), e))?;
        m.child = Some(child);
        Ok(())
    }

    fn wait_healthy(&mut self, i: usize, timeout: Duration) -> Result<(), LocalEtcdError> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = &mut self.members[i];
            if healthy(m.ports.client) {
                return Ok(());
            }
            if let Some(c) = m.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    m.child = None;
                    return Err(LocalEtcdError::ExitedEarly {
                        name: m.name.clone(),
                        status: status.to_string(),
                        log: tail(&m.log),
                    });
                }
            }
            if Instant::now() > deadline {
                return Err(LocalEtcdError::NotHealthy {
                    name: m.name.clone(),
                    waited: timeout,
                    log: tail(&m.log),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT` of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.ports.client))
            .collect()
    }

    /// `etcd://127.0.0.1:P1,127.0.0.1:P2,...` for `--store`.
    pub fn store_url(&self) -> String {
        format!("etcd://{}", self.endpoints().join(","))
    }

    pub fn ports(&self) -> Vec<MemberPorts> {
        self.members.iter().map(|m| m.ports).collect()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// SIGKILL member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start member `i` again (after [`kill`](Self::kill)) on its data dir and ports.
    pub fn restart(&mut self, i: usize) -> Result<(), LocalEtcdError> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_healthy(i, Duration::from_secs(30))
    }

    /// The PID of member `i`, if running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(|c| c.id())
    }

    /// The last lines of member `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        tail(&self.members[i].log)
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
