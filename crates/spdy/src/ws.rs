//! A byte stream over WebSocket binary messages, as client-go's `TunnelingConnection` makes
//! one for SPDY tunneled through a WebSocket (`SPDY/3.1+portforward.k8s.io`, KEP-4006): each
//! write is one binary message; reads run across message boundaries.
//!
//! It takes any `Stream` of received payloads and `Sink` of payloads to send, so it is tied
//! to no WebSocket library: map the library's messages to `Bytes` (binary messages only; end
//! the stream at a close message) on the way in, and wrap `Bytes` in binary messages on the way
//! out.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `AsyncRead + AsyncWrite` over a stream and sink of WebSocket binary payloads.
pub struct MessageIo<S> {
    inner: S,
    unread: Bytes,
}

impl<S> MessageIo<S> {
    pub fn new(inner: S) -> MessageIo<S> {
        MessageIo {
            inner,
            unread: Bytes::new(),
        }
    }
}

fn other<E: Into<Box<dyn std::error::Error + Send + Sync>>>(e: E) -> io::Error {
    io::Error::other(e)
}

impl<S, E> AsyncRead for MessageIo<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        crate::shared::poll_read_chunks(&mut this.unread, buf, cx, |cx| {
            Pin::new(&mut this.inner)
                .poll_next(cx)
                .map(|b| b.map(|r| r.map_err(other)))
        })
    }
}

impl<S, E> AsyncWrite for MessageIo<S>
where
    S: Sink<Bytes, Error = E> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut sink = Pin::new(&mut self.inner);
        ready!(sink.as_mut().poll_ready(cx)).map_err(other)?;
        sink.start_send(Bytes::copy_from_slice(buf))
            .map_err(other)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx).map_err(other)
    }
}
