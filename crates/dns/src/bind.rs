//! UDP sockets bound inside the node's network namespace when there is one (a node of
//! `svcnet up`), else in this process's: the listener's ([`crate::transport`]) and the
//! forwarder's ([`crate::forward`]), so that queries arrive at and leave from the node. The TCP
//! counterpart is `svcnet_netns::tokio_listener`.

use std::net::{SocketAddr, UdpSocket};

use crate::DnsError;

/// A non-blocking UDP socket on `addr`, inside the named namespace (`None`: this process's).
pub fn udp(netns: Option<&str>, addr: SocketAddr) -> Result<UdpSocket, DnsError> {
    match netns {
        Some(ns) => svcnet_netns::NetNs::open(ns)
            .and_then(|n| n.udp_bind(addr))
            .map_err(|e| DnsError::BindFailed {
                addr,
                source: std::io::Error::other(e),
            }),
        None => {
            let bind_err = |source| DnsError::BindFailed { addr, source };
            let s = UdpSocket::bind(addr).map_err(bind_err)?;
            s.set_nonblocking(true).map_err(bind_err)?;
            Ok(s)
        }
    }
}
