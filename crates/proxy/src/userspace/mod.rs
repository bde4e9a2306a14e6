//! The userspace proxy mode (kube-proxy's old `userspace` mode, done well): for every Service
//! port the proxy opens a listener on the node (0.0.0.0, an ephemeral port or one from a fixed
//! range) and its own nftables table ([`FAMILY_TABLE`]) redirects the Service's ClusterIPs,
//! external / load-balancer IPs and NodePort to that listener. Connections are proxied in user
//! space (tokio) to an endpoint chosen by an [`Algorithm`]; when connecting to the chosen
//! endpoint fails (refused, or no answer within [`CONNECT_TIMEOUT`]) the next one is tried, up to
//! every endpoint once, so a dead backend does not fail the client — what kernel NAT cannot do.
//!
//! - TCP: each accepted connection is copied both ways (`copy_bidirectional`) to the endpoint.
//! - UDP: one session per client address (a socket towards the endpoint, ended after
//!   [`UDP_IDLE`] without traffic or when the endpoint refuses); replies leave from the
//!   listener socket, so conntrack turns them back into the ClusterIP's.
//! - `sessionAffinity: ClientIP`: the client IP's endpoint is remembered for the timeout.
//! - No endpoints: no redirect is installed; the table's filter chains REJECT the Service's
//!   traffic instead (ICMP port unreachable: a TCP client sees "connection refused" at once).
//!   The listener is kept so the Service port keeps its listener port. When every endpoint
//!   fails, the client's TCP connection is reset.
//! - Traffic policies and topology hints are not applied (as in kube-proxy's userspace mode):
//!   every usable endpoint of [`categorize`](crate::model::categorize)'s cluster set is a candidate. IPv4 only; SCTP
//!   Service ports are not proxied.
//!
//! Sockets towards endpoints are made inside the node's namespace by one long-lived thread
//! (`listener::Dialer`), so the tokio workers never change namespace. Listeners of unchanged Service
//! ports are kept across syncs (established connections survive); their endpoint lists are
//! updated in place.
//!
//! Files: `balancer.rs` (which endpoint), `listener.rs` (the sockets), `rules.rs` (the table,
//! pure but for [`cleanup`]), `error.rs`, `proxier.rs` (the mode's [`Proxier`]).

mod balancer;
mod error;
mod listener;
mod proxier;
mod rules;

pub use balancer::{Algorithm, Balancer, ParseAlgorithmError};
pub use error::Error;
pub use listener::{CONNECT_TIMEOUT, UDP_IDLE};
pub use proxier::Proxier;
pub use rules::{cleanup, render, Redirect, FAMILY_TABLE, TABLE};
