//! How HTTP and TCP probes reach their target: a [`Connector`] opens the TCP connection from
//! the node (the kubelet's `pkg/probe` dialer), and failures read as Go's `dial tcp` errors.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpStream;

/// The connect timeout inside a namespace (the probe's own timeout applies on top; this only
/// bounds the helper thread a blocking connect occupies).
const NETNS_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens the TCP connections of HTTP and TCP probes.
pub trait Connector: Send + Sync {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>>;
}

/// Connects from the agent's own network namespace.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectConnector;

impl Connector for DirectConnector {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> {
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            let _ = s.set_nodelay(true);
            Ok(s)
        })
    }
}

/// Connects from inside the named network namespace (`/run/netns/<netns>`).
#[derive(Clone, Debug)]
pub struct NetnsConnector {
    pub netns: String,
}

impl Connector for NetnsConnector {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> {
        let name = self.netns.clone();
        Box::pin(async move {
            let ns = svcnet_netns::NetNs::open(&name).map_err(netns_io)?;
            ns.tcp_connect(addr, NETNS_CONNECT_TIMEOUT)
                .await
                .map_err(netns_io)
        })
    }
}

pub(super) fn netns_io(e: svcnet_netns::NetnsError) -> io::Error {
    match e {
        svcnet_netns::NetnsError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// `host:port`, bracketing IPv6 addresses (`net.JoinHostPort`).
pub(super) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The address to dial for `host` (an IP, or a name resolved by the node's resolver). The
/// error is Go's `dial tcp ...` message.
pub(super) async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    match tokio::net::lookup_host((bare, port)).await {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("dial tcp: lookup {bare}: no such host")),
        Err(e) => Err(format!("dial tcp: lookup {bare}: {e}")),
    }
}

/// The tail of Go's dial error for a connect error: `connect: connection refused`.
pub(super) fn dial_error(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        return "i/o timeout".into();
    }
    match e.raw_os_error() {
        Some(n) => {
            let desc = nix::errno::Errno::from_raw(n).desc();
            let mut chars = desc.chars();
            let lower: String = match chars.next() {
                Some(c) => c.to_lowercase().chain(chars).collect(),
                None => String::new(),
            };
            format!("connect: {lower}")
        }
        None => e.to_string(),
    }
}
