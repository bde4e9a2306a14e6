//! A SPDY/3.1 session over any byte stream, with moby/spdystream's behaviour (what kubectl,
//! client-go and the kubelet run on): streams opened by SYN_STREAM and accepted by SYN_REPLY,
//! ended by a FIN on each side or a RST_STREAM, PINGs answered, GOAWAY ending the session, an
//! optional idle timeout.
//!
//! Flow control is spdystream's, which is to say none at the SPDY level: it sends no
//! WINDOW_UPDATE and ignores those and SETTINGS it receives, so neither does this session (a
//! peer holding to SPDY/3.1's 64 KiB initial window would stall against spdystream anyway).
//! Back-pressure is TCP's: a stream buffers [`STREAM_QUEUE`] received frames, and when its
//! reader falls behind the session stops reading the connection until it catches up — as
//! spdystream's frame workers block on a stream's unbuffered data channel. A stream whose
//! reader is gone ([`crate::Stream::close_read`], or dropped) never blocks the session: its
//! frames are dropped.
//!
//! One task reads frames, one writes them; streams and the [`Connection`] hand frames to the
//! writer through two bounded queues, control frames first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::frame::{self, Frame, FrameDecoder, FrameEncoder, Headers};
pub use crate::shared::{Error, Role};
use crate::shared::{Out, Shared, Slot, State};
use crate::stream::{PendingStream, Stream};

/// How long [`Connection::open`] waits for the peer's SYN_REPLY (apimachinery's
/// `createStreamResponseTimeout`, 30 s).
pub const CREATE_STREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Received DATA frames a stream holds before the session waits for its reader.
pub const STREAM_QUEUE: usize = 16;

/// Frames queued for the writer (each of the control and the data queue).
const WRITE_QUEUE: usize = 64;

/// A SPDY session. Dropping it closes it ([`Connection::close`]).
pub struct Connection {
    shared: Arc<Shared>,
}

/// Streams the peer opens, to accept or reject.
pub struct Incoming(mpsc::Receiver<PendingStream>);

impl Incoming {
    /// The next stream the peer opened; `None` once the session ended.
    pub async fn next(&mut self) -> Option<PendingStream> {
        self.0.recv().await
    }
}

impl Connection {
    /// Start a session on `io` (an upgraded HTTP connection, or [`crate::MessageIo`] over a
    /// WebSocket).
    pub fn new<T>(io: T, role: Role) -> (Connection, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(io);
        let (ctrl_tx, ctrl_rx) = mpsc::channel(WRITE_QUEUE);
        let (data_tx, data_rx) = mpsc::channel(WRITE_QUEUE);
        let (incoming_tx, incoming_rx) = mpsc::channel(8);
        let (local, remote, ping) = match role {
            Role::Client => (1, 2, 1),
            Role::Server => (2, 1, 2),
        };
        let shared = Arc::new(Shared {
            role,
            state: Mutex::new(State {
                streams: HashMap::new(),
                next_local_id: local,
                next_remote_id: remote,
                going_away: false,
            }),
            ctrl: ctrl_tx,
            data: data_tx,
            pings: Mutex::new(HashMap::new()),
            next_ping: AtomicU32::new(ping),
            closed: CancellationToken::new(),
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
        });
        tokio::spawn(read_loop(
            shared.clone(),
            FramedRead::new(r, FrameDecoder::default()),
            incoming_tx,
        ));
        tokio::spawn(write_loop(
            shared.clone(),
            FramedWrite::new(w, FrameEncoder::default()),
            ctrl_rx,
            data_rx,
        ));
        (Connection { shared }, Incoming(incoming_rx))
    }

    /// Open a stream with `headers` and wait (at most [`CREATE_STREAM_RESPONSE_TIMEOUT`]) for
    /// the peer to accept it.
    pub async fn open(&self, headers: Headers) -> Result<Stream, Error> {
        let sh = &self.shared;
        let permit = sh.ctrl.reserve().await.map_err(|_| Error::Closed)?;
        let (reply_tx, reply_rx) = oneshot::channel();
        let (data_tx, data_rx) = mpsc::channel(STREAM_QUEUE);
        let reset = CancellationToken::new();
        let id = {
            let mut st = sh.state.lock().expect("session lock");
            if st.going_away || sh.closed.is_cancelled() {
                return Err(Error::Closed);
            }
            let id = st.next_local_id;
            if id > 0x7fff_ffff {
                return Err(Error::StreamIdsExhausted);
            }
            st.next_local_id += 2;
            st.streams.insert(
                id,
                Slot {
                    data: Some(data_tx),
                    reply: Some(reply_tx),
                    reset: reset.clone(),
                    local_fin: false,
                },
            );
            // Under the lock, so SYN_STREAMs leave in id order.
            permit.send(Out::Frame(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers: headers.clone(),
            }));
            id
        };
        let replied = tokio::select! {
            r = tokio::time::timeout(CREATE_STREAM_RESPONSE_TIMEOUT, reply_rx) => r,
            _ = sh.closed.cancelled() => return Err(Error::Closed),
        };
        match replied {
            Ok(Ok(Ok(()))) => Ok(Stream::new(id, headers, sh.clone(), data_rx, reset)),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                sh.remove(id);
                Err(Error::Timeout)
            }
        }
    }

    /// Send a PING and wait for its echo.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let sh = &self.shared;
        let id = sh.next_ping.fetch_add(2, Ordering::Relaxed) & 0x7fff_ffff;
        let (tx, rx) = oneshot::channel();
        sh.pings.lock().expect("pings lock").insert(id, tx);
        let start = Instant::now();
        sh.ctrl
            .send(Out::Frame(Frame::Ping { id }))
            .await
            .map_err(|_| Error::Closed)?;
        tokio::select! {
            r = rx => r.map(|_| start.elapsed()).map_err(|_| Error::Closed),
            _ = sh.closed.cancelled() => Err(Error::Closed),
        }
    }

    /// Close the session after `timeout` without a frame read or written (spdystream's
    /// `SetIdleTimeout`; the kubelet sets `--streaming-connection-idle-timeout`).
    pub fn set_idle_timeout(&self, timeout: Duration) {
        let sh = Arc::downgrade(&self.shared);
        let closed = self.shared.closed.clone();
        tokio::spawn(async move {
            loop {
                let Some(deadline) = sh.upgrade().map(|s| s.last_activity() + timeout) else {
                    return;
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                    _ = closed.cancelled() => return,
                }
                match sh.upgrade() {
                    Some(s) if s.last_activity() + timeout <= Instant::now() => {
                        tracing::debug!(?timeout, "SPDY session idle; closing");
                        s.close();
                        return;
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        });
    }

    /// Resolves when the session has ended (the peer closed it, sent GOAWAY, an I/O error, an
    /// idle timeout, or [`Connection::close`]).
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Reset every stream, send GOAWAY and close the connection (apimachinery's
    /// `connection.Close`: all streams reset first, then spdystream's `Close`).
    pub fn close(&self) {
        self.shared.close();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.close();
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    sh: Arc<Shared>,
    mut frames: FramedRead<R, FrameDecoder>,
    incoming: mpsc::Sender<PendingStream>,
) {
    loop {
        let frame = tokio::select! {
            f = frames.next() => f,
            _ = sh.closed.cancelled() => break,
        };
        let frame = match frame {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "SPDY frame read error");
                break;
            }
            None => break,
        };
        sh.touch();
        if !handle(&sh, frame, &incoming).await {
            break;
        }
    }
    sh.ended();
}

/// Act on one received frame; false ends the session.
async fn handle(sh: &Arc<Shared>, frame: Frame, incoming: &mpsc::Sender<PendingStream>) -> bool {
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => {
            let (data_tx, data_rx) = mpsc::channel(STREAM_QUEUE);
            let reset = CancellationToken::new();
            {
                let mut st = sh.state.lock().expect("session lock");
                if st.going_away {
                    return true;
                }
                if stream_id < st.next_remote_id {
                    drop(st);
                    sh.send_now(Frame::RstStream {
                        stream_id,
                        status: frame::rst::PROTOCOL_ERROR,
                    });
                    return true;
                }
                st.next_remote_id = stream_id + 2;
                st.streams.insert(
                    stream_id,
                    Slot {
                        data: (flags & frame::FLAG_FIN == 0).then_some(data_tx),
                        reply: None,
                        reset: reset.clone(),
                        local_fin: flags & frame::FLAG_UNIDIRECTIONAL != 0,
                    },
                );
            }
            let pending = PendingStream::new(stream_id, headers, sh.clone(), data_rx, reset);
            if let Err(refused) = incoming.send(pending).await {
                refused.0.refuse();
            }
        }
        Frame::SynReply {
            stream_id, flags, ..
        } => {
            let reply = sh
                .state
                .lock()
                .expect("session lock")
                .streams
                .get_mut(&stream_id)
                .and_then(|s| s.reply.take());
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            if flags & frame::FLAG_FIN != 0 {
                sh.remote_finished(stream_id);
            }
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            let tx = sh
                .state
                .lock()
                .expect("session lock")
                .streams
                .get(&stream_id)
                .and_then(|s| s.data.clone());
            if let (Some(tx), false) = (tx, data.is_empty()) {
                // Waits while the stream's reader is behind; fails (and drops the frame) when
                // the reader is gone.
                let _ = tx.send(data).await;
            }
            if flags & frame::FLAG_FIN != 0 {
                sh.remote_finished(stream_id);
            }
        }
        Frame::RstStream { stream_id, status } => {
            let slot = sh
                .state
                .lock()
                .expect("session lock")
                .streams
                .remove(&stream_id);
            if let Some(mut slot) = slot {
                slot.reset.cancel();
                if let Some(reply) = slot.reply.take() {
                    let _ = reply.send(Err(Error::Reset(status)));
                }
            }
        }
        Frame::Headers {
            stream_id, flags, ..
        } => {
            if flags & frame::FLAG_FIN != 0 {
                sh.remote_finished(stream_id);
            }
        }
        Frame::Ping { id } => {
            let ours = match sh.role {
                Role::Client => 1,
                Role::Server => 0,
            };
            if id % 2 != ours {
                if sh.ctrl.send(Out::Frame(Frame::Ping { id })).await.is_err() {
                    return false;
                }
            } else if let Some(tx) = sh.pings.lock().expect("pings lock").remove(&id) {
                let _ = tx.send(());
            }
        }
        Frame::GoAway { .. } => {
            // spdystream stops reading at GOAWAY and ends the session.
            sh.state.lock().expect("session lock").going_away = true;
            return false;
        }
        Frame::Settings { .. } | Frame::WindowUpdate { .. } | Frame::Unknown { .. } => {}
    }
    true
}

async fn write_loop<W: AsyncWrite + Unpin>(
    sh: Arc<Shared>,
    mut frames: FramedWrite<W, FrameEncoder>,
    mut ctrl: mpsc::Receiver<Out>,
    mut data: mpsc::Receiver<Frame>,
) {
    'outer: loop {
        let out = tokio::select! {
            biased;
            o = ctrl.recv() => o,
            f = data.recv() => f.map(Out::Frame),
            _ = sh.closed.cancelled() => break,
        };
        let mut next = out;
        // Feed everything queued, control frames first, then flush once.
        loop {
            match next {
                Some(Out::Frame(f)) => {
                    if let Err(e) = frames.feed(f).await {
                        tracing::debug!(error = %e, "SPDY frame write error");
                        break 'outer;
                    }
                }
                Some(Out::Shutdown) | None => break 'outer,
            }
            next = match ctrl.try_recv() {
                Ok(o) => Some(o),
                Err(_) => match data.try_recv() {
                    Ok(f) => Some(Out::Frame(f)),
                    Err(_) => break,
                },
            };
        }
        if frames.flush().await.is_err() {
            break;
        }
        sh.touch();
    }
    let _ = frames.close().await;
    sh.ended();
}
