//! The DNS server's sockets (hickory's `server/transport/`): the UDP and TCP listeners on one
//! port, bound inside the node's network namespace when there is one, and the loops that read
//! queries from them, hand each to the [`Handler`] and write its answer back. Nothing here
//! decides what to answer, and the handler never sees a socket.

mod conns;
mod mmsg;
pub mod tcp;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

pub use tcp::TcpConfig;

use crate::handler::Handler;
use crate::DnsError;

/// The bound listeners, not yet served.
pub struct Listeners {
    udp: std::net::UdpSocket,
    tcp: tokio::net::TcpListener,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
}

impl Listeners {
    /// Bind UDP on `listen` and TCP on the same port (which matters with port 0), inside
    /// `netns` when given. Must be called inside a tokio runtime.
    pub fn bind(listen: SocketAddr, netns: Option<&str>) -> Result<Listeners, DnsError> {
        let bind_err = |addr, source| DnsError::BindFailed { addr, source };
        let udp = crate::bind::udp(netns, listen)?;
        let udp_addr = udp.local_addr().map_err(|e| bind_err(listen, e))?;
        let tcp =
            svcnet_netns::tokio_listener(netns, udp_addr).map_err(|e| bind_err(udp_addr, e))?;
        let tcp_addr = tcp.local_addr().map_err(|e| bind_err(udp_addr, e))?;
        Ok(Listeners {
            udp,
            tcp,
            udp_addr,
            tcp_addr,
        })
    }

    /// Where UDP is served.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// Where TCP is served.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Serve both until the process ends: UDP on one worker thread per core (at least 2, so a
    /// slow send never stalls the port), TCP on tasks of the current runtime within `tcp`'s
    /// limits.
    pub fn serve(self, handler: Arc<Handler>, tcp: TcpConfig) -> Result<(), DnsError> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
        udp::spawn(handler.clone(), self.udp, workers).map_err(|source| DnsError::BindFailed {
            addr: self.udp_addr,
            source,
        })?;
        tcp::spawn(handler, self.tcp, tcp);
        Ok(())
    }
}
