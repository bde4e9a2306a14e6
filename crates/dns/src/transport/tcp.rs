//! DNS over TCP (hickory's `server/transport/tcp`, miekg/dns's `serveTCP` as CoreDNS runs it):
//! length-prefixed messages, several per connection, each answered through the handler's whole
//! path before the next is read.
//!
//! A connection cannot hold the server: as miekg/dns's `readTCP`, one deadline covers a whole
//! message, its length prefix and its body — [`TcpConfig::read_timeout`] for the first message
//! of a connection, [`TcpConfig::idle_timeout`] for each one after it — and an answer must be
//! written within [`TcpConfig::write_timeout`]. Better than miekg/dns (which allocates the
//! announced length before reading it), the body's buffer grows with the bytes that arrive, so
//! a client announcing 65,535 bytes and sending one costs a few bytes, not 64 KiB. At most
//! [`TcpConfig::max_connections`] are open at once (`conns.rs`: the oldest idle one makes
//! room, a new one is refused when none is idle). The accept loop backs off on errors as Go's
//! `http.Server.Serve` does (5 ms, doubling to 1 s; reset by a successful accept) instead of
//! spinning when the process is out of file descriptors, and logs at most one line per 10 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::conns::{Admission, Conns, Slot};
use crate::handler::Handler;
use crate::metrics::{Metrics, Proto};

/// The limits of DNS over TCP: CoreDNS's server defaults (`core/dnsserver/server.go`, set by
/// the `timeouts` plugin's `read`, `write`, `idle`) and its `max_connections` default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// The first message of a connection must arrive whole within this of the accept
    /// (CoreDNS's `ReadTimeout`, 3 s; miekg/dns's own default is 2 s).
    pub read_timeout: Duration,
    /// Each later message must arrive whole within this of the previous answer (CoreDNS's
    /// `IdleTimeout`, 10 s; miekg/dns's `tcpIdleTimeout` is 8 s).
    pub idle_timeout: Duration,
    /// An answer must be written within this (CoreDNS's `WriteTimeout`, 5 s).
    pub write_timeout: Duration,
    /// Open connections at most (CoreDNS's `max_connections` of its DNS-over-HTTPS, gRPC and
    /// QUIC servers, `DefaultHTTPSMaxConnections` = 200; plain DNS over TCP has none there).
    pub max_connections: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            read_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            max_connections: 200,
        }
    }
}

/// Go's `http.Server.Serve` back-off after a failed accept: 5 ms, doubled each time, at most 1 s.
const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line about failed accepts per this.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serve DNS over TCP on `listener` until the process ends (length-prefixed messages, several
/// per connection, answered in order), within `cfg`'s limits.
pub fn spawn(handler: Arc<Handler>, listener: TcpListener, cfg: TcpConfig) {
    let metrics = handler.metrics.clone();
    let conns = Conns::new(cfg.max_connections, metrics.tcp_connections.clone());
    tokio::spawn(async move {
        let mut backoff = Duration::ZERO;
        let mut log = AcceptLog::default();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // EMFILE / ENFILE (out of file descriptors) and the rest alike: the
                    // pending connection stays queued, so retrying at once would spin.
                    metrics.tcp_accept_errors.inc();
                    backoff = (backoff * 2).clamp(BACKOFF_FIRST, BACKOFF_MAX);
                    log.failed(&e, backoff);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            backoff = Duration::ZERO;
            match conns.admit() {
                Admission::Admitted {
                    slot,
                    evicted,
                    evict,
                } => {
                    if evicted {
                        metrics.tcp_closed.with_label_values(&["evicted"]).inc();
                    }
                    tokio::spawn(serve(handler.clone(), stream, slot, evict, cfg));
                }
                Admission::Refused => {
                    metrics.tcp_refused.inc();
                    drop(stream);
                }
            }
        }
    });
}

/// Why the server closed a connection (the `reason` of `svcnet_dns_tcp_connections_closed_total`).
#[derive(Clone, Copy, Debug)]
enum Closed {
    ReadTimeout,
    IdleTimeout,
    WriteTimeout,
}

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Closed::ReadTimeout => "read_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::WriteTimeout => "write_timeout",
        }
    }
}

/// One connection, until the client closes it, a limit closes it, or it is evicted.
async fn serve(
    handler: Arc<Handler>,
    mut stream: TcpStream,
    slot: Slot,
    evict: oneshot::Receiver<()>,
    cfg: TcpConfig,
) {
    let metrics: Arc<Metrics> = handler.metrics.clone();
    tokio::select! {
        // Evicted: counted where it was decided; the socket closes as this returns.
        _ = evict => {}
        closed = converse(&handler, &mut stream, &slot, cfg) => {
            if let Some(why) = closed {
                metrics.tcp_closed.with_label_values(&[why.label()]).inc();
            }
        }
    }
}

/// Read, answer and write messages in order. `Some` when a limit ended the connection, `None`
/// when the client closed it or the socket failed.
async fn converse(
    handler: &Handler,
    stream: &mut TcpStream,
    slot: &Slot,
    cfg: TcpConfig,
) -> Option<Closed> {
    let (mut limit, mut why) = (cfg.read_timeout, Closed::ReadTimeout);
    loop {
        slot.idle();
        let deadline = tokio::time::Instant::now() + limit;
        let msg = match tokio::time::timeout_at(deadline, read_message(stream, slot)).await {
            Err(_) => return Some(why),
            Ok(Ok(Some(msg))) => msg,
            Ok(_) => return None,
        };
        (limit, why) = (cfg.idle_timeout, Closed::IdleTimeout);
        // Boxed: the query path's state (1.7 KiB) is held only while a query is answered, not
        // by every idle connection.
        let Some(resp) = Box::pin(handler.handle(&msg, Proto::Tcp)).await else {
            continue;
        };
        drop(msg);
        let mut framed = Vec::with_capacity(resp.len() + 2);
        framed.extend_from_slice(&(resp.len() as u16).to_be_bytes());
        framed.extend_from_slice(&resp);
        match tokio::time::timeout(cfg.write_timeout, stream.write_all(&framed)).await {
            Err(_) => return Some(Closed::WriteTimeout),
            Ok(Err(_)) => return None,
            Ok(Ok(())) => {}
        }
    }
}

/// One length-prefixed message; `None` if the client closed the connection before it was
/// whole. The slot turns busy at the message's first byte, and the body's buffer grows with
/// what arrives (never the announced length up front).
async fn read_message(stream: &mut TcpStream, slot: &Slot) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read(&mut len).await? {
        0 => return Ok(None),
        1 => {
            slot.busy();
            if stream.read(&mut len[1..]).await? == 0 {
                return Ok(None);
            }
        }
        _ => slot.busy(),
    }
    let len = u64::from(u16::from_be_bytes(len));
    let mut body = Vec::new();
    (&mut *stream).take(len).read_to_end(&mut body).await?;
    Ok((body.len() as u64 == len).then_some(body))
}

/// Failed accepts, logged at most once per [`ACCEPT_LOG_EVERY`] with how many failed since.
#[derive(Default)]
struct AcceptLog {
    last: Option<Instant>,
    failed: u64,
}

impl AcceptLog {
    fn failed(&mut self, e: &std::io::Error, retry_in: Duration) {
        self.failed += 1;
        if self.last.is_some_and(|t| t.elapsed() < ACCEPT_LOG_EVERY) {
            return;
        }
        tracing::warn!(
            error = %e,
            ?retry_in,
            failed = self.failed,
            "DNS over TCP: accept failed; backing off (at most one line per 10s)"
        );
        self.last = Some(Instant::now());
        self.failed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_as_go() {
        let mut b = Duration::ZERO;
        let mut seen = vec![];
        for _ in 0..10 {
            b = (b * 2).clamp(BACKOFF_FIRST, BACKOFF_MAX);
            seen.push(b.as_millis());
        }
        assert_eq!(seen, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    }

    #[test]
    fn accept_log_is_rate_limited() {
        let mut log = AcceptLog::default();
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        log.failed(&e, BACKOFF_FIRST);
        let first = log.last;
        for _ in 0..1000 {
            log.failed(&e, BACKOFF_FIRST);
        }
        assert_eq!(log.last, first, "no second line within 10s");
        assert_eq!(log.failed, 1000);
    }
}
