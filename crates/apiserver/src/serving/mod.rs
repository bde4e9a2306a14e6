//! Serving connections: the accept loop, each connection's life, and the limits that keep
//! hostile or broken clients from taking the server down. The model is kube-apiserver's secure
//! serving (`staging/src/k8s.io/apiserver/pkg/server/secure_serving.go`): Go's `http.Server`
//! with `ReadHeaderTimeout` 32 s, `IdleTimeout` 90 s (HTTP/2 too), `MaxHeaderBytes` 1 MiB,
//! HTTP/2 with 100 streams per connection and 256 KiB frames and stream windows, and the
//! `WithMaxInFlightLimit` filter. Values and flags are in [`crate::config::ServingConfig`].
//!
//! - [`serve`], the accept loop: an accept error (EMFILE, ENFILE, ECONNABORTED, ...) backs off
//!   5 ms, doubling to 1 s, as Go's `http.Server.Serve` does, instead of retrying at once; the
//!   error is logged at most once a second with how many were not ([`RateLimitedLog`]).
//! - [`connections`]: a cap on open connections (below the open-file limit) where a flood of
//!   connections that never send a request gives way to new clients, and never to served ones.
//! - [`deadline`]: the TLS handshake (10 s), request header and idle timeouts.
//! - [`body`]: HTTP/2 request bodies drained after an early answer, so the client reads it.
//! - [`inflight`]: `--max-requests-inflight` / `--max-mutating-requests-inflight`.
//!
//! Hand-written, because hyper leaves it to the server: hyper has a header timeout but no idle
//! timeout, no connection cap and no accept loop (see each module for what it does instead).
//!
//! Known limit: `http::Uri` (and so hyper and h2) refuses request targets over 65,534 bytes.
//! HTTP/1.1 answers those 414 URI Too Long; HTTP/2 resets the stream (PROTOCOL_ERROR). Go takes
//! up to `MaxHeaderBytes` (1 MiB). Query strings up to 64 KiB work over both.

pub mod body;
pub mod connections;
pub mod deadline;
pub mod inflight;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::config::ServingConfig;
use crate::state::ConnectionAbort;
use body::{Drain, Finished, Guarded, Kept};
use connections::{Admitted, Connections};
use deadline::{ConnState, Deadline, Timeouts, Watched};

/// Go's `http.Server.Serve`: the first retry after an accept error.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// ... doubling up to this.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// kube-apiserver's `resourceBody99Percentile`: HTTP/2 frames and per-stream windows.
const HTTP2_FRAME_AND_STREAM_WINDOW: u32 = 256 * 1024;
/// Go's `http2.Server` adds room for ten fields' overhead to `MaxHeaderBytes`
/// (`typicalHeaders * perFieldOverhead`) when it advertises its max header list size.
const HTTP2_HEADER_LIST_OVERHEAD: usize = 10 * 32;
/// Go's HTTP/1.1 server reads `MaxHeaderBytes` + 4096 before it gives up on a request head.
const HTTP1_HEAD_SLACK: usize = 4096;
/// How long a drained HTTP/2 request body may take (see [`body`]).
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);
/// How long a closing connection gets to say goodbye (HTTP/2 GOAWAY) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Open files kept for the server itself under the open-file limit: at least this many...
const RESERVED_FILES_MIN: u64 = 64;
/// ... or this fraction of the limit.
const RESERVED_FILES_DIVISOR: u64 = 10;

/// What every listener of one server shares: the application, the TLS configuration, the
/// connection cap and the log limits.
pub struct Serving {
    app: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    config: ServingConfig,
    drain_max_bytes: usize,
    connections: Arc<Connections>,
    accept_errors: RateLimitedLog,
    refusals: RateLimitedLog,
}

impl Serving {
    pub fn new(
        app: Router,
        tls: Arc<rustls::ServerConfig>,
        config: &ServingConfig,
        max_request_body_bytes: usize,
    ) -> Arc<Self> {
        let cap = config.max_connections.unwrap_or_else(connection_cap);
        tracing::info!(max_connections = cap, "serving");
        Arc::new(Serving {
            app,
            acceptor: tokio_rustls::TlsAcceptor::from(tls),
            config: config.clone(),
            drain_max_bytes: max_request_body_bytes,
            connections: Connections::new(cap),
            accept_errors: RateLimitedLog::new(),
            refusals: RateLimitedLog::new(),
        })
    }

    /// The connection cap in force.
    pub fn max_connections(&self) -> usize {
        self.connections.limit()
    }

    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let c = &self.config;
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1()
            // Ours, in `deadline`: hyper's would count idle time as header time.
            .header_read_timeout(None)
            .max_buf_size((c.max_header_bytes + HTTP1_HEAD_SLACK).max(8192));
        let streams = c.http2_max_streams_per_connection.max(1);
        b.http2()
            .max_header_list_size(
                u32::try_from(c.max_header_bytes + HTTP2_HEADER_LIST_OVERHEAD).unwrap_or(u32::MAX),
            )
            .max_concurrent_streams(streams)
            .max_frame_size(HTTP2_FRAME_AND_STREAM_WINDOW)
            .initial_stream_window_size(HTTP2_FRAME_AND_STREAM_WINDOW)
            .initial_connection_window_size(HTTP2_FRAME_AND_STREAM_WINDOW.saturating_mul(streams));
        b
    }
}

/// Listen on `addr` with the longest accept queue the kernel allows (`net.core.somaxconn`), as
/// Go's `net.Listen` does. tokio's `TcpListener::bind` asks for 128: during a flood the queue
/// overflows and a new client's SYN waits for its retransmission (1 s, then 3 s, ...).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // The kernel caps this at net.core.somaxconn.
    socket.listen(u32::from(u16::MAX))
}

/// The default cap: the open-file limit less what the server keeps for itself.
fn connection_cap() -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    let soft = soft.min(1 << 22);
    let reserved = (soft / RESERVED_FILES_DIVISOR)
        .max(RESERVED_FILES_MIN)
        .min(soft / 2);
    usize::try_from(soft - reserved)
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Accept connections on `listener` until `shutdown` changes, serving each on its own task.
pub async fn serve(
    listener: TcpListener,
    serving: Arc<Serving>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => {
                delay = Duration::ZERO;
                a
            }
            Err(e) => {
                delay = (delay * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                if let Some(suppressed) = serving.accept_errors.allow() {
                    tracing::warn!(error = %e, retry_in = ?delay, suppressed, "accept failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        let Some(admitted) = serving.connections.admit() else {
            if let Some(suppressed) = serving.refusals.allow() {
                tracing::warn!(
                    %peer,
                    max_connections = serving.connections.limit(),
                    suppressed,
                    "connection limit reached with every connection serving: closing a new connection"
                );
            }
            continue;
        };
        if admitted.replaced_another {
            if let Some(suppressed) = serving.refusals.allow() {
                tracing::warn!(
                    max_connections = serving.connections.limit(),
                    suppressed,
                    "connection limit reached: closing the oldest connection that has sent no request"
                );
            }
        }
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(
            tcp,
            peer,
            admitted,
            serving.clone(),
            shutdown.clone(),
        ));
    }
}

/// One connection: the TLS handshake, then HTTP until the client leaves, a deadline passes,
/// a newer connection takes its place, or the server stops.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    serving: Arc<Serving>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Admitted { slot, evicted, .. } = admitted;
    let c = &serving.config;
    let handshake = tokio::time::timeout(c.tls_handshake_timeout, serving.acceptor.accept(tcp));
    let tls = tokio::select! {
        r = handshake => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        _ = evicted.cancelled() => return,
        _ = shutdown.changed() => return,
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let timeouts = Timeouts {
        read_header: c.read_header_timeout,
        idle: c.idle_timeout,
    };
    let state = ConnState::new(slot, h2, timeouts);
    let abort = ConnectionAbort::default();
    let service = ConnService {
        app: serving.app.clone(),
        state: state.clone(),
        abort: abort.clone(),
        drain: h2.then_some(Drain {
            max_bytes: serving.drain_max_bytes,
            max_time: DRAIN_MAX_TIME,
        }),
    };
    let builder = serving.builder();
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(Watched::new(tls, state.clone())), service);
    tokio::pin!(conn);
    let deadline = Deadline::new(state);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = abort.aborted() => {
            // A handler gave up on this connection (an unresponsive watch): no graceful
            // shutdown, which would wait for the response its client does not read.
            tracing::debug!(%peer, "connection closed by its handler");
            return;
        }
        _ = deadline => tracing::debug!(%peer, "closing a connection past its deadline"),
        _ = evicted.cancelled() => tracing::debug!(%peer, "closing a connection for a newer one"),
        _ = shutdown.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
}

/// The application as one connection serves it: each request marks the connection busy until
/// its response has been sent (and, on HTTP/2, its unread body drained).
struct ConnService {
    app: Router,
    state: Arc<ConnState>,
    /// Given to each request, so that a handler can close the connection it came on.
    abort: ConnectionAbort,
    drain: Option<Drain>,
}

type ConnFuture =
    Pin<Box<dyn Future<Output = Result<Response<Guarded<Finished>>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Guarded<Finished>>;
    type Error = Infallible;
    type Future = ConnFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let active = self.state.request_started();
        let (mut parts, incoming) = req.into_parts();
        parts.extensions.insert(self.abort.clone());
        let (body, leftover) = match self.drain {
            Some(limits) => {
                let (kept, leftover) = Kept::new(incoming);
                (Body::new(kept), Some((leftover, limits)))
            }
            None => (Body::new(incoming), None),
        };
        let app = self.app.clone();
        Box::pin(async move {
            let resp = app
                .oneshot(Request::from_parts(parts, body))
                .await
                .unwrap_or_else(|never| match never {});
            Ok(resp.map(|b| Guarded::new(b, Finished::new(active, leftover))))
        })
    }
}

/// At most one line a second; the next line says how many were left out.
pub struct RateLimitedLog {
    every: Duration,
    inner: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedLog {
    pub fn new() -> Self {
        RateLimitedLog {
            every: Duration::from_secs(1),
            inner: Mutex::default(),
        }
    }

    /// `Some(lines left out since the last one)` when a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        match inner.0 {
            Some(last) if now.duration_since(last) < self.every => {
                inner.1 += 1;
                None
            }
            _ => {
                inner.0 = Some(now);
                Some(std::mem::take(&mut inner.1))
            }
        }
    }
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_at_most_once_a_second() {
        let log = RateLimitedLog::new();
        assert_eq!(log.allow(), Some(0));
        for _ in 0..1000 {
            assert_eq!(log.allow(), None);
        }
        std::thread::sleep(Duration::from_millis(1010));
        assert_eq!(log.allow(), Some(1000));
    }

    #[test]
    fn the_cap_leaves_room_under_the_file_limit() {
        let cap = connection_cap() as u64;
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert!(
            cap + RESERVED_FILES_MIN.min(soft / 2) <= soft,
            "{cap} of {soft}"
        );
    }
}
