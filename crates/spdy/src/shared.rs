//! What a session's streams share with it: its state (the streams by id, ids, pings), the
//! writer's queues and the close signal; and the session's public `Role` and `Error`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::frame::{self, Frame};

/// Which end of the connection this is: the client opens odd streams and pings, the server
/// even ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// Why a stream could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connection closed")]
    Closed,
    #[error("stream reset by the peer (status {0})")]
    Reset(u32),
    #[error("timed out waiting for the peer to accept the stream")]
    Timeout,
    #[error("no stream ids left on this connection")]
    StreamIdsExhausted,
}

pub(crate) enum Out {
    Frame(Frame),
    /// Write what is queued, then close the connection.
    Shutdown,
}

pub(crate) struct Slot {
    /// Where received DATA goes; `None` once the peer sent FIN.
    pub(crate) data: Option<mpsc::Sender<Bytes>>,
    /// The opener waiting for SYN_REPLY.
    pub(crate) reply: Option<oneshot::Sender<Result<(), Error>>>,
    /// Cancelled when the peer resets the stream or the connection closes.
    pub(crate) reset: CancellationToken,
    pub(crate) local_fin: bool,
}

pub(crate) struct State {
    pub(crate) streams: HashMap<u32, Slot>,
    pub(crate) next_local_id: u32,
    /// The smallest id the peer may open next.
    pub(crate) next_remote_id: u32,
    pub(crate) going_away: bool,
}

pub(crate) struct Shared {
    pub(crate) role: Role,
    pub(crate) state: Mutex<State>,
    pub(crate) ctrl: mpsc::Sender<Out>,
    pub(crate) data: mpsc::Sender<Frame>,
    pub(crate) pings: Mutex<HashMap<u32, oneshot::Sender<()>>>,
    pub(crate) next_ping: AtomicU32,
    pub(crate) closed: CancellationToken,
    pub(crate) started: Instant,
    pub(crate) last_activity_ms: AtomicU64,
}

impl Shared {
    pub(crate) fn touch(&self) {
        self.last_activity_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn last_activity(&self) -> Instant {
        self.started + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed))
    }

    /// Queue a control frame without waiting; false when the queue is full or closed.
    pub(crate) fn send_now(&self, frame: Frame) -> bool {
        self.ctrl.try_send(Out::Frame(frame)).is_ok()
    }

    pub(crate) fn remove(&self, id: u32) {
        self.state.lock().expect("session lock").streams.remove(&id);
    }

    /// This side sent FIN on `id`: the stream is gone once the peer has too.
    pub(crate) fn local_finished(&self, id: u32) {
        let mut st = self.state.lock().expect("session lock");
        let done = match st.streams.get_mut(&id) {
            Some(slot) => {
                slot.local_fin = true;
                slot.data.is_none()
            }
            None => false,
        };
        if done {
            st.streams.remove(&id);
        }
    }

    pub(crate) fn remote_finished(&self, id: u32) {
        let mut st = self.state.lock().expect("session lock");
        let done = match st.streams.get_mut(&id) {
            Some(slot) => {
                slot.data = None;
                slot.local_fin
            }
            None => false,
        };
        if done {
            st.streams.remove(&id);
        }
    }

    pub(crate) fn close(&self) {
        if self.closed.is_cancelled() {
            return;
        }
        let (slots, last_good) = {
            let mut st = self.state.lock().expect("session lock");
            if st.going_away {
                return;
            }
            st.going_away = true;
            let last_good = st.next_remote_id.saturating_sub(2);
            (std::mem::take(&mut st.streams), last_good)
        };
        let mut queued = true;
        for (id, slot) in slots {
            slot.reset.cancel();
            queued &= self.send_now(Frame::RstStream {
                stream_id: id,
                status: frame::rst::CANCEL,
            });
        }
        queued &= self.send_now(Frame::GoAway {
            last_good_stream_id: last_good,
            status: frame::goaway::OK,
        });
        if !queued || self.ctrl.try_send(Out::Shutdown).is_err() {
            self.closed.cancel();
        }
    }

    /// The session ended: every stream sees EOF and reset.
    pub(crate) fn ended(&self) {
        self.closed.cancel();
        let slots = std::mem::take(&mut self.state.lock().expect("session lock").streams);
        for (_, mut slot) in slots {
            slot.reset.cancel();
            if let Some(reply) = slot.reply.take() {
                let _ = reply.send(Err(Error::Closed));
            }
        }
        self.pings.lock().expect("pings lock").clear();
    }
}

/// `poll_read` over a source of chunks: what is left of the last chunk (`unread`) first, then
/// the next from `next` (`None`: the end).
pub(crate) fn poll_read_chunks(
    unread: &mut Bytes,
    buf: &mut tokio::io::ReadBuf<'_>,
    cx: &mut std::task::Context<'_>,
    mut next: impl FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<std::io::Result<Bytes>>>,
) -> std::task::Poll<std::io::Result<()>> {
    use std::task::Poll;
    loop {
        if !unread.is_empty() {
            let n = unread.len().min(buf.remaining());
            buf.put_slice(&unread.split_to(n));
            return Poll::Ready(Ok(()));
        }
        match std::task::ready!(next(cx)) {
            Some(Ok(b)) => *unread = b,
            Some(Err(e)) => return Poll::Ready(Err(e)),
            None => return Poll::Ready(Ok(())),
        }
    }
}
