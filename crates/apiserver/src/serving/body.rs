//! Bodies that outlive their handler: a response body that holds something (a request's place
//! in flight, an in-flight permit) until it has been sent, and an HTTP/2 request body that the
//! connection drains after the response when the handler left it unread.
//!
//! Why drain: a handler that answers without reading the body (404 for an unserved path, 401,
//! 413 after the first 3 MiB, 429) lets go of it before the response is sent. HTTP/2 then
//! ends the stream with RST_STREAM while the client is still uploading — RFC 9113 §8.1 allows
//! that (with NO_ERROR, after a complete response), and Go's server does it too, but clients
//! such as curl report a stream error and drop the response they were sent. Reading the rest
//! of the body after the response, as Go's HTTP/1.1 server does for up to 256 KiB
//! (`maxPostHandlerReadBytes`), lets the upload finish and the client read its Status. The
//! drain is bounded: at most [`Drain::max_bytes`] within [`Drain::max_time`], then the stream is
//! reset as before. HTTP/1.1 needs none of this: hyper reads what has arrived and closes the
//! connection after the response, which clients handle.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};

use super::deadline::Active;

/// A response body that holds `guard` until its last frame has been taken, or it is dropped.
pub struct Guarded<G> {
    inner: Body,
    guard: Option<G>,
}

impl<G> Guarded<G> {
    pub fn new(inner: Body, guard: G) -> Self {
        Guarded {
            inner,
            guard: Some(guard),
        }
    }
}

impl<G: Unpin> hyper::body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(res, Poll::Ready(None)) {
            this.guard.take();
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How much of an unread HTTP/2 request body is drained after the response.
#[derive(Clone, Copy, Debug)]
pub struct Drain {
    /// The request body limit (`max_request_body_bytes`): a client within it always gets to
    /// finish its upload; one far beyond it is reset.
    pub max_bytes: usize,
    /// A client trickling its body does not hold the stream longer than this.
    pub max_time: Duration,
}

/// Where an HTTP/2 request body goes back when its handler drops it unread.
pub type Leftover = Arc<Mutex<Option<Incoming>>>;

/// The request body a handler sees on HTTP/2.
pub struct Kept {
    inner: Option<Incoming>,
    leftover: Leftover,
}

impl Kept {
    pub fn new(inner: Incoming) -> (Self, Leftover) {
        let leftover = Leftover::default();
        (
            Kept {
                inner: Some(inner),
                leftover: leftover.clone(),
            },
            leftover,
        )
    }
}

impl hyper::body::Body for Kept {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut().inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take().filter(|b| !b.is_end_stream()) {
            *self.leftover.lock().unwrap() = Some(body);
        }
    }
}

/// Held by a response body until it has been sent: then the request is done, after draining
/// what its handler left unread (HTTP/2).
pub struct Finished {
    active: Option<Active>,
    leftover: Option<(Leftover, Drain)>,
}

impl Finished {
    pub fn new(active: Active, leftover: Option<(Leftover, Drain)>) -> Self {
        Finished {
            active: Some(active),
            leftover,
        }
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        let Some((leftover, limits)) = self.leftover.take() else {
            return;
        };
        let Some(body) = leftover.lock().unwrap().take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            // The request stays in flight (the connection not idle) while it drains.
            rt.spawn(drain(body, limits, self.active.take()));
        }
    }
}

async fn drain(mut body: Incoming, limits: Drain, _active: Option<Active>) {
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > limits.max_bytes {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(limits.max_time, read).await;
}
