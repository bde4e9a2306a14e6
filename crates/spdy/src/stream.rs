//! One stream of a session: [`PendingStream`] until this side accepts what the peer opened,
//! then a [`Stream`] — `AsyncRead` of the peer's DATA until its FIN (or a reset), `AsyncWrite`
//! as DATA frames, `shutdown` sending FIN (spdystream's `Close`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, PollSender};

use crate::frame::{self, Frame, Headers};
use crate::shared::{Error, Out, Shared};

/// The largest DATA frame a stream writes: Go's `io.Copy` buffer (32 KiB), what kubectl's and
/// the kubelet's copies produce.
pub const MAX_DATA_FRAME: usize = 32 * 1024;

/// A stream the peer opened, not yet answered. Dropping it rejects it.
pub struct PendingStream {
    inner: Option<Stream>,
}

impl PendingStream {
    pub(crate) fn new(
        id: u32,
        headers: Headers,
        shared: Arc<Shared>,
        data: mpsc::Receiver<Bytes>,
        reset: CancellationToken,
    ) -> PendingStream {
        PendingStream {
            inner: Some(Stream::new(id, headers, shared, data, reset)),
        }
    }

    fn stream(&self) -> &Stream {
        self.inner.as_ref().expect("pending until answered")
    }

    pub fn id(&self) -> u32 {
        self.stream().id
    }

    /// The headers of the peer's SYN_STREAM.
    pub fn headers(&self) -> &Headers {
        &self.stream().headers
    }

    /// Accept the stream: SYN_REPLY with no headers (apimachinery's `newSpdyStream`).
    pub async fn accept(mut self) -> Result<Stream, Error> {
        let s = self.inner.take().expect("pending until answered");
        s.shared
            .ctrl
            .send(Out::Frame(Frame::SynReply {
                stream_id: s.id,
                flags: 0,
                headers: Headers::new(),
            }))
            .await
            .map_err(|_| Error::Closed)?;
        Ok(s)
    }

    /// Reject the stream: RST_STREAM CANCEL (spdystream's `Reset`, what apimachinery does when
    /// the stream handler refuses a stream).
    pub fn reject(mut self) {
        if let Some(mut s) = self.inner.take() {
            s.reset_with(frame::rst::CANCEL);
        }
    }

    /// RST_STREAM REFUSED_STREAM: nobody takes new streams.
    pub(crate) fn refuse(mut self) {
        if let Some(mut s) = self.inner.take() {
            s.reset_with(frame::rst::REFUSED_STREAM);
        }
    }
}

impl Drop for PendingStream {
    fn drop(&mut self) {
        if let Some(mut s) = self.inner.take() {
            s.reset_with(frame::rst::CANCEL);
        }
    }
}

/// An open stream.
pub struct Stream {
    pub(crate) id: u32,
    pub(crate) headers: Headers,
    pub(crate) shared: Arc<Shared>,
    data: mpsc::Receiver<Bytes>,
    unread: Bytes,
    reset: CancellationToken,
    out: PollSender<Frame>,
    local_fin: bool,
}

impl Stream {
    pub(crate) fn new(
        id: u32,
        headers: Headers,
        shared: Arc<Shared>,
        data: mpsc::Receiver<Bytes>,
        reset: CancellationToken,
    ) -> Stream {
        let out = PollSender::new(shared.data.clone());
        Stream {
            id,
            headers,
            shared,
            data,
            unread: Bytes::new(),
            reset,
            out,
            local_fin: false,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers the stream was opened with.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Resolves when the peer resets the stream or the session ends.
    pub async fn reset_by_peer(&self) {
        self.reset.cancelled().await
    }

    /// Stop reading: what the peer sends from now on is dropped, so an unread stream never
    /// holds up the session.
    pub fn close_read(&mut self) {
        self.data.close();
        self.unread = Bytes::new();
    }

    /// Close both directions at once (RST_STREAM CANCEL, spdystream's `Reset`).
    pub fn reset(&mut self) {
        self.reset_with(frame::rst::CANCEL);
    }

    fn reset_with(&mut self, status: u32) {
        // As spdystream: no RST after this side's FIN, nor after the peer's RST.
        if !self.local_fin && !self.reset.is_cancelled() {
            self.shared.send_now(Frame::RstStream {
                stream_id: self.id,
                status,
            });
        }
        self.local_fin = true;
        self.reset.cancel();
        self.data.close();
        self.shared.remove(self.id);
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.local_fin && !self.reset.is_cancelled() {
            self.reset();
        } else {
            self.shared.remove(self.id);
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // `None`: the peer's FIN, a reset, or the session's end.
        crate::shared::poll_read_chunks(&mut this.unread, buf, cx, |cx| {
            this.data.poll_recv(cx).map(|b| b.map(Ok))
        })
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "SPDY connection closed")
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.local_fin {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write on closed stream",
            )));
        }
        if self.reset.is_cancelled() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "stream reset",
            )));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.out.poll_reserve(cx)).map_err(|_| closed())?;
        let n = buf.len().min(MAX_DATA_FRAME);
        let frame = Frame::Data {
            stream_id: self.id,
            flags: 0,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        self.out.send_item(frame).map_err(|_| closed())?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// FIN: an empty DATA frame with FLAG_FIN.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.local_fin {
            return Poll::Ready(Ok(()));
        }
        if self.reset.is_cancelled() {
            self.local_fin = true;
            return Poll::Ready(Ok(()));
        }
        ready!(self.out.poll_reserve(cx)).map_err(|_| closed())?;
        let frame = Frame::Data {
            stream_id: self.id,
            flags: frame::FLAG_FIN,
            data: Bytes::new(),
        };
        self.out.send_item(frame).map_err(|_| closed())?;
        self.local_fin = true;
        self.shared.local_finished(self.id);
        Poll::Ready(Ok(()))
    }
}
