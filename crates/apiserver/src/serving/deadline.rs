//! A connection's deadline, as Go's `http.Server` sets its read deadlines:
//!
//! - HTTP/1.1: the first request's headers must arrive within `ReadHeaderTimeout` of the
//!   handshake; after a response, the connection may sit idle for `IdleTimeout`; once a byte of
//!   the next request arrives, its headers must follow within `ReadHeaderTimeout`.
//! - HTTP/2 (`http2.Server.IdleTimeout`, which Go takes from `http.Server.IdleTimeout`): a
//!   connection with no stream open is closed after `IdleTimeout`; frames that open no stream
//!   (PING, SETTINGS) do not keep it open.
//! - While a request is in flight (a watch, an exec session, a slow upload) there is no
//!   deadline.
//!
//! hyper's own `header_read_timeout` starts when hyper begins to wait for a request, idle time
//! included, so it would close idle keep-alive connections after the header timeout instead of
//! the idle one; and hyper has no idle timeout. Hence this: the connection's requests and reads
//! move one deadline, and the connection task waits on it ([`Deadline`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::connections::Slot;

/// The timeouts a connection's deadline is made of.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub read_header: Duration,
    pub idle: Duration,
}

/// What a connection is doing, as far as its deadline goes.
pub struct ConnState {
    slot: Slot,
    h2: bool,
    timeouts: Timeouts,
    inner: Mutex<Inner>,
    /// Idle HTTP/1.1 connection: the next byte read starts the header timeout.
    awaiting_head: AtomicBool,
    /// The connection task, woken when the deadline moves.
    task: AtomicWaker,
}

struct Inner {
    /// Requests in flight (HTTP/2: open streams, and request bodies being drained).
    active: usize,
    deadline: Option<Instant>,
}

impl ConnState {
    /// A connection whose TLS handshake has just finished.
    pub fn new(slot: Slot, h2: bool, timeouts: Timeouts) -> Arc<Self> {
        let first = if h2 {
            timeouts.idle
        } else {
            timeouts.read_header
        };
        Arc::new(ConnState {
            slot,
            h2,
            timeouts,
            inner: Mutex::new(Inner {
                active: 0,
                deadline: Some(Instant::now() + first),
            }),
            awaiting_head: AtomicBool::new(false),
            task: AtomicWaker::new(),
        })
    }

    /// A request's headers have arrived: no deadline until it is done.
    pub fn request_started(self: &Arc<Self>) -> Active {
        self.slot.serving();
        self.awaiting_head.store(false, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap();
        inner.active += 1;
        inner.deadline = None;
        Active(self.clone())
    }

    /// Bytes arrived (HTTP/1.1): on an idle connection they begin the next request.
    fn bytes_read(&self) {
        if self.h2 || !self.awaiting_head.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut inner = self.inner.lock().unwrap();
        if inner.active == 0 {
            inner.deadline = Some(Instant::now() + self.timeouts.read_header);
            drop(inner);
            self.task.wake();
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.inner.lock().unwrap().deadline
    }
}

/// A request in flight; when the last one ends, the connection is idle.
pub struct Active(Arc<ConnState>);

impl Drop for Active {
    fn drop(&mut self) {
        let state = &self.0;
        let mut inner = state.inner.lock().unwrap();
        inner.active -= 1;
        if inner.active == 0 {
            inner.deadline = Some(Instant::now() + state.timeouts.idle);
            state.awaiting_head.store(true, Ordering::Relaxed);
            drop(inner);
            state.task.wake();
        }
    }
}

/// Resolves when the connection's deadline passes.
pub struct Deadline {
    state: Arc<ConnState>,
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Deadline {
    pub fn new(state: Arc<ConnState>) -> Self {
        Deadline {
            state,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
        }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.state.task.register(cx.waker());
        let Some(at) = self.state.deadline() else {
            return Poll::Pending;
        };
        if self.armed != Some(at) {
            self.armed = Some(at);
            self.sleep.as_mut().reset(at);
        }
        self.sleep.as_mut().poll(cx)
    }
}

/// The connection's stream, telling its state when bytes arrive.
pub struct Watched<IO> {
    io: IO,
    state: Arc<ConnState>,
}

impl<IO> Watched<IO> {
    pub fn new(io: IO, state: Arc<ConnState>) -> Self {
        Watched { io, state }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_read();
        }
        res
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::super::connections::Connections;
    use super::*;

    const T: Timeouts = Timeouts {
        read_header: Duration::from_secs(32),
        idle: Duration::from_secs(90),
    };

    fn state(h2: bool, t: Timeouts) -> Arc<ConnState> {
        let conns = Connections::new(10);
        ConnState::new(conns.admit().unwrap().slot, h2, t)
    }

    fn left(s: &ConnState) -> Option<Duration> {
        s.deadline().map(|d| d - Instant::now())
    }

    #[tokio::test]
    async fn http1_header_then_idle_then_header() {
        let s = state(false, T);
        assert!(left(&s).unwrap() <= T.read_header);
        s.bytes_read(); // part of the first request's headers: the deadline stays
        assert!(left(&s).unwrap() <= T.read_header);
        let req = s.request_started();
        assert_eq!(left(&s), None);
        s.bytes_read(); // body bytes
        assert_eq!(left(&s), None);
        drop(req);
        assert!(left(&s).unwrap() > T.read_header, "idle: {:?}", left(&s));
        s.bytes_read(); // the next request begins
        assert!(left(&s).unwrap() <= T.read_header);
    }

    #[tokio::test]
    async fn http2_is_idle_without_streams() {
        let s = state(true, T);
        assert!(left(&s).unwrap() > T.read_header);
        let a = s.request_started();
        let b = s.request_started();
        drop(a);
        assert_eq!(left(&s), None);
        drop(b);
        s.bytes_read(); // a PING opens no stream
        assert!(left(&s).unwrap() > T.read_header);
    }

    #[tokio::test]
    async fn deadline_waits_for_requests_then_fires() {
        let short = Timeouts {
            read_header: Duration::from_millis(20),
            idle: Duration::from_millis(20),
        };
        let s = state(false, short);
        let d = Deadline::new(s.clone());
        tokio::pin!(d);
        // A request in flight: no deadline however long it takes.
        let req = s.request_started();
        let waited = tokio::time::timeout(Duration::from_millis(200), d.as_mut()).await;
        assert!(waited.is_err());
        drop(req);
        tokio::time::timeout(Duration::from_secs(10), d.as_mut())
            .await
            .expect("idle deadline");
    }
}
