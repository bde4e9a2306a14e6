//! The sockets: a listener per Service port (TCP accept loop, UDP sessions per client) proxying
//! to the endpoints its [`Balancer`] orders, and the [`Dialer`] that makes sockets towards
//! endpoints inside the node's namespace (kube-proxy's userspace `proxysocket.go`).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use svcnet_netns::NetNs;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use super::balancer::Balancer;

/// How long connecting to one endpoint may take before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// A UDP session without traffic this long is ended.
pub const UDP_IDLE: Duration = Duration::from_secs(30);

pub(super) type Shared = Arc<Mutex<Balancer>>;

/// Counts a connection as open while alive.
pub(super) struct Active {
    bal: Shared,
    ep: SocketAddr,
}

impl Active {
    fn new(bal: &Shared, client: IpAddr, ep: SocketAddr) -> Active {
        lock(bal).connected(client, ep, Instant::now());
        Active {
            bal: bal.clone(),
            ep,
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        lock(&self.bal).released(self.ep);
    }
}

pub(super) fn lock(b: &Shared) -> std::sync::MutexGuard<'_, Balancer> {
    b.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) enum Req {
    Tcp(bool, tokio::sync::oneshot::Sender<io::Result<TcpSocket>>),
    Udp(
        bool,
        tokio::sync::oneshot::Sender<io::Result<std::net::UdpSocket>>,
    ),
}

pub(super) fn make(req: Req) {
    match req {
        Req::Tcp(v6, tx) => {
            let _ = tx.send(if v6 {
                TcpSocket::new_v6()
            } else {
                TcpSocket::new_v4()
            });
        }
        Req::Udp(v6, tx) => {
            let any: SocketAddr = if v6 {
                "[::]:0".parse().expect("address")
            } else {
                "0.0.0.0:0".parse().expect("address")
            };
            let _ = tx.send(std::net::UdpSocket::bind(any).and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            }));
        }
    }
}

/// Makes the sockets towards endpoints inside the node's namespace (one thread living there),
/// or in this process's namespace.
#[derive(Clone)]
pub(super) struct Dialer {
    tx: Option<std::sync::mpsc::Sender<Req>>,
}

impl Dialer {
    pub(super) fn new(netns: Option<&str>) -> Dialer {
        let Some(name) = netns else {
            return Dialer { tx: None };
        };
        let (tx, rx) = std::sync::mpsc::channel::<Req>();
        let name = name.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("userspace-{name}"))
            .spawn(move || {
                let r = NetNs::open(&name).and_then(|ns| {
                    ns.run(move || {
                        while let Ok(req) = rx.recv() {
                            make(req);
                        }
                    })
                });
                if let Err(e) = r {
                    tracing::warn!(netns = %name, error = %e, "userspace proxy dialer");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "starting the userspace proxy dialer");
        }
        Dialer { tx: Some(tx) }
    }

    async fn socket<T>(
        &self,
        req: impl FnOnce(tokio::sync::oneshot::Sender<io::Result<T>>) -> Req,
    ) -> io::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match &self.tx {
            None => make(req(tx)),
            Some(s) => s
                .send(req(tx))
                .map_err(|_| io::Error::other("userspace proxy dialer gone"))?,
        }
        rx.await
            .map_err(|_| io::Error::other("userspace proxy dialer gone"))?
    }

    async fn tcp(&self, ep: SocketAddr) -> io::Result<TcpStream> {
        let sock = self.socket(|tx| Req::Tcp(ep.is_ipv6(), tx)).await?;
        let s = tokio::time::timeout(CONNECT_TIMEOUT, sock.connect(ep))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    async fn udp(&self, ep: SocketAddr) -> io::Result<UdpSocket> {
        let std = self.socket(|tx| Req::Udp(ep.is_ipv6(), tx)).await?;
        let s = UdpSocket::from_std(std)?;
        s.connect(ep).await?;
        Ok(s)
    }
}

pub(super) async fn serve_tcp(l: TcpListener, bal: Shared, dialer: Dialer) {
    loop {
        match l.accept().await {
            Ok((client, peer)) => {
                tokio::spawn(proxy_tcp(client, peer, bal.clone(), dialer.clone()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "userspace proxy accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

pub(super) async fn proxy_tcp(
    mut client: TcpStream,
    peer: SocketAddr,
    bal: Shared,
    dialer: Dialer,
) {
    let order = lock(&bal).order(peer.ip(), Instant::now());
    for ep in order {
        match dialer.tcp(ep).await {
            Ok(mut up) => {
                let _active = Active::new(&bal, peer.ip(), ep);
                let _ = client.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                return;
            }
            Err(e) => {
                tracing::debug!(endpoint = %ep, error = %e, "endpoint failed; trying the next")
            }
        }
    }
    // No endpoint (left): reset the client's connection. (A zero linger never blocks on drop:
    // the connection is aborted with an RST at once, which is what this wants.)
    #[allow(deprecated)]
    let _ = client.set_linger(Some(Duration::ZERO));
}

pub(super) struct Session {
    sock: Arc<UdpSocket>,
    last: Mutex<Instant>,
}

pub(super) type Sessions = Arc<Mutex<HashMap<SocketAddr, Arc<Session>>>>;

pub(super) async fn serve_udp(l: Arc<UdpSocket>, bal: Shared, dialer: Dialer) {
    let sessions: Sessions = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = match l.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "userspace proxy recv");
                continue;
            }
        };
        let existing = sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .cloned();
        let session = match existing {
            Some(s) => s,
            None => {
                let order = lock(&bal).order(peer.ip(), Instant::now());
                let mut made = None;
                for ep in order {
                    match dialer.udp(ep).await {
                        Ok(s) => {
                            made = Some((ep, s));
                            break;
                        }
                        Err(e) => tracing::debug!(endpoint = %ep, error = %e, "udp endpoint"),
                    }
                }
                let Some((ep, sock)) = made else { continue };
                let s = Arc::new(Session {
                    sock: Arc::new(sock),
                    last: Mutex::new(Instant::now()),
                });
                sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(peer, s.clone());
                let active = Active::new(&bal, peer.ip(), ep);
                tokio::spawn(udp_replies(
                    l.clone(),
                    s.clone(),
                    peer,
                    sessions.clone(),
                    active,
                ));
                s
            }
        };
        *session.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        if let Err(e) = session.sock.send(&buf[..n]).await {
            tracing::debug!(error = %e, "udp to endpoint");
        }
    }
}

/// Copies an endpoint's replies to the client until the session is idle or the endpoint fails.
pub(super) async fn udp_replies(
    l: Arc<UdpSocket>,
    s: Arc<Session>,
    peer: SocketAddr,
    sessions: Sessions,
    _active: Active,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let idle_for = s.last.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
        if idle_for >= UDP_IDLE {
            break;
        }
        match tokio::time::timeout(UDP_IDLE - idle_for, s.sock.recv(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(n)) => {
                let _ = l.send_to(&buf[..n], peer).await;
            }
            // E.g. refused (ICMP port unreachable): end it; the next datagram picks anew.
            Ok(Err(_)) => break,
        }
    }
    let mut m = sessions.lock().unwrap_or_else(|e| e.into_inner());
    if m.get(&peer).is_some_and(|x| Arc::ptr_eq(x, &s)) {
        m.remove(&peer);
    }
}

pub(super) struct Listener {
    pub(super) port: u16,
    pub(super) balancer: Shared,
    pub(super) task: JoinHandle<()>,
}
