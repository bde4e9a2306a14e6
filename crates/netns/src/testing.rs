//! What every test and benchmark that builds networks shares (feature `testing`): scratch
//! namespaces deleted however the test ends, names unique per test, the skip check for tests
//! that need root and tools, and the standard topology of the proxy's real-traffic tests — a
//! client, a `node` routing for it, and backends on a bridge — as kube-proxy's tests build one
//! network per case. Everything here is made inside namespaces it creates.

use std::net::SocketAddr;
use std::ops::Deref;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{NetNs, NetnsError, Result};

/// `svcnet-t-<pid>-<nanos>-<tag>`: unique between the tests of a run and between runs, short
/// enough for `ip netns` (and a `-<suffix>` more).
pub fn unique_name(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 100_000)
        .unwrap_or(0);
    format!("svcnet-t-{}-{nanos}-{tag}", std::process::id())
}

/// Whether a test that needs root (and these programs on PATH) can run here; when not, it says
/// `skipped: needs ...` and the test returns early.
pub fn can_run(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| crate::which(p).is_none())
        .collect();
    if crate::check_privileges().is_err() || !missing.is_empty() {
        let mut need = vec!["root"];
        need.extend(missing);
        eprintln!("skipped: needs {}", need.join(" and "));
        return false;
    }
    true
}

/// Namespaces (by name) deleted when the guard drops, however the test ends; for namespaces
/// made by something else (a cluster, a topology built by hand).
#[derive(Debug, Default)]
pub struct NetnsGuard(pub Vec<String>);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = NetNs::delete(n);
        }
    }
}

/// A namespace made for one test (named by [`unique_name`]), deleted when it drops.
#[derive(Debug)]
pub struct ScratchNetns {
    ns: NetNs,
    _guard: NetnsGuard,
}

impl ScratchNetns {
    pub fn new(tag: &str) -> Result<ScratchNetns> {
        Self::named(unique_name(tag))
    }

    /// A scratch namespace with this exact name.
    pub fn named(name: String) -> Result<ScratchNetns> {
        let ns = NetNs::create(&name)?;
        Ok(ScratchNetns {
            ns,
            _guard: NetnsGuard(vec![name]),
        })
    }
}

impl Deref for ScratchNetns {
    type Target = NetNs;
    fn deref(&self) -> &NetNs {
        &self.ns
    }
}

/// The standard topology: `client` (198.51.100.2, default route via the node), `node`
/// (198.51.100.1 towards the client, 10.244.0.1 on bridge `br0`, forwarding, a route for the
/// Service range 10.96.0.0/12 so its own connections to ClusterIPs reach the NAT rules), and
/// backends `b2`.. (10.244.0.2.. on the bridge) each answering TCP connections on :8080 with its
/// name. Everything is deleted when it drops.
pub struct Topology {
    pub names: Vec<String>,
    pub ns: Vec<NetNs>,
    pub servers: Vec<tokio::task::JoinHandle<()>>,
    _guard: NetnsGuard,
}

impl Topology {
    /// Three backends b2, b3, b4; namespace names `svcnet-t-<pid>-<nanos>-<prefix>-<role>`.
    /// Needs a tokio runtime (the backends' servers are tasks).
    pub fn new(prefix: &str) -> Topology {
        Self::with_backends(prefix, 3)
    }

    pub fn with_backends(prefix: &str, backends: u8) -> Topology {
        let tag = unique_name(prefix);
        let mut roles = vec!["client".to_string(), "node".to_string()];
        roles.extend((0..backends).map(|i| format!("b{}", i + 2)));
        let names: Vec<String> = roles.iter().map(|r| format!("{tag}-{r}")).collect();
        let guard = NetnsGuard(names.clone());
        let ns: Vec<NetNs> = names
            .iter()
            .map(|n| NetNs::create(n).expect("create a network namespace"))
            .collect();
        let (client, node) = (&ns[0], &ns[1]);
        node.ip_batch(&format!(
            "link add cl0 type veth peer name eth0 netns {}\n\
             link set cl0 up\n\
             addr add 198.51.100.1/24 dev cl0\n\
             link add br0 type bridge\n\
             link set br0 up\n\
             addr add 10.244.0.1/24 dev br0\n\
             route add 10.96.0.0/12 dev br0\n",
            names[0]
        ))
        .expect("wire the node");
        node.sysctls(&[("net.ipv4.ip_forward", "1")])
            .expect("forwarding on the node");
        client
            .ip_batch(
                "link set eth0 up\naddr add 198.51.100.2/24 dev eth0\nroute add default via 198.51.100.1\n",
            )
            .expect("wire the client");
        let mut servers = Vec::new();
        for (i, b) in ns[2..].iter().enumerate() {
            let n = i + 2;
            node.ip_batch(&format!(
                "link add vb{n} type veth peer name eth0 netns {}\nlink set vb{n} master br0\nlink set vb{n} up\n",
                b.name()
            ))
            .expect("wire a backend");
            b.ip_batch(&format!(
                "link set eth0 up\naddr add 10.244.0.{n}/24 dev eth0\nroute add default via 10.244.0.1\n"
            ))
            .expect("address a backend");
            let l = tokio::net::TcpListener::from_std(
                b.tcp_listen("0.0.0.0:8080".parse().expect("valid"))
                    .expect("listen in a backend"),
            )
            .expect("a tokio listener");
            let name = format!("b{n}");
            servers.push(tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    let _ = s.write_all(name.as_bytes()).await;
                }
            }));
        }
        Topology {
            names,
            ns,
            servers,
            _guard: guard,
        }
    }

    pub fn client(&self) -> &NetNs {
        &self.ns[0]
    }

    pub fn node(&self) -> &NetNs {
        &self.ns[1]
    }
}

/// What the server at `addr` answers (a Topology backend: its name), asked from `client`.
pub async fn ask(client: &NetNs, addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let mut s = client
        .tcp_connect(addr, Duration::from_secs(3))
        .await
        .map_err(|e| match e {
            NetnsError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        })?;
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("read timed out"))??;
    Ok(buf)
}
