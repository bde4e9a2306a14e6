//! exec and attach over SPDY/3.1, what kubectl up to 1.29 speaks (and later ones with
//! `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`): the kubelet's `createHTTPStreamStreams` — the
//! `X-Stream-Protocol-Version` handshake (`v4.channel.k8s.io` down to `channel.k8s.io`; v5 is
//! WebSocket only), then the client opens one SPDY stream per channel, named by its
//! `streamType` header (`error`, `stdin`, `stdout`, `stderr`, `resize`), waited for up to the
//! kubelet's 30 s stream creation timeout. Data on a stream is the channel's bytes as they are
//! (no channel byte), the end of the stdin stream is stdin's EOF, the resize stream carries one
//! JSON `TerminalSize` after another, and the error stream gets what the session ends with.
//! The same [`Streams`] as the WebSocket sessions drive it.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use svcnet_spdy::{Connection, Role, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::httpstream::{handshake, has_token, http_error, STREAM_CREATION_TIMEOUT};
use super::stream::{StreamOptions, StreamProtocol, Streams, CH_STDERR, CH_STDOUT};

/// How long the client may take to read the end and close the connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The protocols exec and attach speak over SPDY (`remotecommandconsts.SupportedStreamingProtocols`),
/// newest first.
const SPDY_PROTOCOLS: [StreamProtocol; 4] = [
    StreamProtocol::V4,
    StreamProtocol::V3,
    StreamProtocol::V2,
    StreamProtocol::V1,
];

/// A request's SPDY upgrade, when it asks for one (taken before axum's WebSocket extractor, which
/// leaves the upgrade alone when the request is not a WebSocket one).
pub(super) struct SpdyUpgrade(Option<OnUpgrade>);

impl<S: Send + Sync> FromRequestParts<S> for SpdyUpgrade {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let spdy = has_token(&parts.headers, header::UPGRADE, "spdy/3.1");
        Ok(SpdyUpgrade(
            spdy.then(|| parts.extensions.remove::<OnUpgrade>())
                .flatten(),
        ))
    }
}

impl SpdyUpgrade {
    pub(super) fn requested(&self) -> bool {
        self.0.is_some()
    }

    /// The handshake (`httpstream.Handshake`, the SPDY `UpgradeResponse`) and `session` run on
    /// the upgraded connection; or the kubelet's answer when the client's protocols do not fit.
    pub(super) fn upgrade<F, Fut>(self, headers: &HeaderMap, session: F) -> Response
    where
        F: FnOnce(SpdySession, StreamProtocol) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let Some(on_upgrade) = self.0 else {
            return http_error(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: not a SPDY upgrade",
            );
        };
        let accepted = SPDY_PROTOCOLS.map(StreamProtocol::name);
        let protocol = match handshake(headers, &accepted) {
            Ok(name) => SPDY_PROTOCOLS
                .into_iter()
                .find(|p| p.name() == name)
                .expect("one of ours"),
            Err(refused) => return *refused,
        };
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let (conn, incoming) = Connection::new(TokioIo::new(upgraded), Role::Server);
                    session(SpdySession { conn, incoming }, protocol).await
                }
                Err(e) => tracing::debug!(error = %e, "exec/attach SPDY upgrade failed"),
            }
        });
        let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let h = resp.headers_mut();
        h.insert(
            "x-stream-protocol-version",
            HeaderValue::from_static(protocol.name()),
        );
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(
            header::UPGRADE,
            HeaderValue::from_static(svcnet_spdy::HEADER_SPDY31),
        );
        resp
    }
}

/// An upgraded SPDY connection and the streams its client opens.
pub(super) struct SpdySession {
    conn: Connection,
    incoming: svcnet_spdy::session::Incoming,
}

/// The streams of one session, as the client opened them.
#[derive(Default)]
struct Opened {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

impl Opened {
    fn complete(&self, opts: StreamOptions, resize: bool) -> bool {
        self.error.is_some()
            && (!opts.stdin || self.stdin.is_some())
            && (!opts.stdout || self.stdout.is_some())
            && (!opts.stderr || self.stderr.is_some())
            && (!resize || self.resize.is_some())
    }
}

/// Run a session on a SPDY connection (the kubelet's `waitStreamReply` for the streams `opts`
/// asks for, then the session); `Err` is a message for the error stream.
pub(super) async fn serve(
    session: SpdySession,
    protocol: StreamProtocol,
    opts: StreamOptions,
    streams: Result<Streams, Vec<u8>>,
) {
    let SpdySession { conn, mut incoming } = session;
    let want_resize = opts.tty && protocol >= StreamProtocol::V3;
    let mut opened = Opened::default();
    let deadline = tokio::time::sleep(STREAM_CREATION_TIMEOUT);
    tokio::pin!(deadline);
    while !opened.complete(opts, want_resize) {
        let pending = tokio::select! {
            p = incoming.next() => p,
            _ = &mut deadline => {
                tracing::warn!("timed out waiting for client to create streams");
                conn.close();
                return;
            }
        };
        let Some(pending) = pending else {
            return;
        };
        let kind = pending
            .headers()
            .get("streamType")
            .unwrap_or_default()
            .to_string();
        let Ok(stream) = pending.accept().await else {
            return;
        };
        let slot = match kind.as_str() {
            "error" => &mut opened.error,
            "stdin" => &mut opened.stdin,
            "stdout" => &mut opened.stdout,
            "stderr" => &mut opened.stderr,
            "resize" => &mut opened.resize,
            other => {
                tracing::debug!(stream_type = other, "unexpected exec/attach stream");
                continue;
            }
        };
        *slot = Some(stream);
    }
    let mut error = opened.error.take().expect("complete");
    match streams {
        Err(msg) => {
            let _ = error.write_all(&msg).await;
        }
        Ok(streams) => {
            tokio::select! {
                msg = run(streams, &mut opened) => {
                    if let Some(msg) = msg {
                        let _ = error.write_all(&msg).await;
                    }
                }
                _ = conn.closed() => return,
            }
        }
    }
    let Opened {
        stdin,
        stdout,
        stderr,
        resize,
        ..
    } = &mut opened;
    for s in [stdout, stderr, stdin, resize]
        .into_iter()
        .filter_map(Option::as_mut)
        .chain([&mut error])
    {
        let _ = s.shutdown().await;
    }
    // The client reads to the end, then closes the connection.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.closed()).await;
    conn.close();
}

/// Pump the session's streams until its output ends; what it ends with.
async fn run(streams: Streams, opened: &mut Opened) -> Option<Vec<u8>> {
    let Streams {
        stdin: stdin_tx,
        resize,
        mut output,
        done,
        on_client_gone,
    } = streams;
    let Opened {
        stdin,
        stdout,
        stderr,
        resize: sizes,
        ..
    } = opened;
    // Client → container: stdin until its stream ends (EOF), resizes as they come.
    let input = async move {
        let (Some(from), Some(to)) = (stdin.as_mut(), stdin_tx) else {
            return std::future::pending::<()>().await;
        };
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            if to.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                break;
            }
        }
        // The container's stdin ends; the stream stays open for the session.
        drop(to);
        std::future::pending::<()>().await
    };
    // `resize` lives as long as the session: dropping it ends an attach's input to the shim.
    let resize = &resize;
    let resizes = async move {
        let (Some(from), Some(resize)) = (sizes.as_mut(), resize.as_ref()) else {
            return std::future::pending::<()>().await;
        };
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Size {
            width: u16,
            height: u16,
        }
        let mut pending = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            pending.extend_from_slice(&buf[..n]);
            let mut sizes = serde_json::Deserializer::from_slice(&pending).into_iter::<Size>();
            let mut used = 0;
            while let Some(Ok(size)) = sizes.next() {
                resize(size.width, size.height);
                used = sizes.byte_offset();
            }
            pending.drain(..used);
        }
        std::future::pending::<()>().await
    };
    // Container → client.
    let outputs = async move {
        while let Some((channel, data)) = output.recv().await {
            let to = match channel {
                CH_STDOUT => stdout.as_mut(),
                CH_STDERR => stderr.as_mut(),
                _ => None,
            };
            if let Some(to) = to {
                if to.write_all(&data).await.is_err() {
                    return false;
                }
            }
        }
        true
    };
    tokio::select! {
        ended = outputs => {
            if ended {
                done.await
            } else {
                on_client_gone();
                None
            }
        }
        _ = input => None,
        _ = resizes => None,
    }
}
