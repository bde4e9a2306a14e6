//! SPDY/3.1 as Kubernetes' streaming uses it (kubectl and client-go, the kubelet, CRI
//! runtimes: all on moby/spdystream and Go's vendored `spdy` framer).
//!
//! - [`frame`]: frames, header blocks and their zlib compression with SPDY/3's
//!   [`dictionary`], as tokio codecs.
//! - [`Connection`] ([`session`]): a session over any `AsyncRead + AsyncWrite` — an upgraded
//!   HTTP/1.1 connection (`Upgrade: SPDY/3.1`), or [`MessageIo`] ([`ws`]) over WebSocket
//!   binary messages for SPDY tunneled through a WebSocket.
//! - [`Stream`] ([`stream`]): a stream, `AsyncRead + AsyncWrite`.
//!
//! Hand-written: the one Rust SPDY/3.1 crate (spdy-mux 0.1) is a client for pooled WebSocket
//! transports and cannot accept streams; the kubelet's side needs a server. The subset is what
//! spdystream uses: no server push, no SPDY-level flow control (see [`session`]), no CREDENTIAL.

pub mod dictionary;
pub mod frame;
pub mod session;
mod shared;
pub mod stream;
pub mod ws;

#[cfg(test)]
mod tests;

pub use frame::{Frame, FrameError, Headers};
pub use session::{Connection, Error, Incoming, Role};
pub use stream::{PendingStream, Stream};
pub use ws::MessageIo;

/// The value of `Upgrade` for SPDY (apimachinery's `HeaderSpdy31`).
pub const HEADER_SPDY31: &str = "SPDY/3.1";
