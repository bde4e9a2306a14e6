//! What `exec` and `attach` share (the kubelet's `pkg/kubelet/cri/streaming/remotecommand`
//! `createStreams` + `websocket.go`): the channel protocols over WebSocket, `channel.k8s.io` ..
//! `v5.channel.k8s.io` (a frame is one channel byte and its data: 0 stdin, 1 stdout, 2 stderr,
//! 3 error/status, 4 resize, 255 close) and their base64 variants (`base64.channel.k8s.io`,
//! `v4.base64.channel.k8s.io`, `v5.base64.channel.k8s.io`: text frames, the channel as an ASCII
//! digit and the data in base64, as `k8s.io/apiserver/pkg/util/wsstream`'s base64 codec), the
//! WebSocket upgrade and one session loop over
//! `Streams` — where the client's input goes and the output comes from, which is all that
//! differs between a command started for `exec` ([`super::exec`]) and a running container's
//! stdio for `attach` ([`super::attach`]).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use tokio::sync::mpsc;

use super::{parse_bool, query_pairs, text_response, ParamError};

/// The stream protocols of exec and attach over WebSocket, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamProtocol {
    /// `channel.k8s.io`: error channel as text.
    V1,
    /// `v2.channel.k8s.io`.
    V2,
    /// `v3.channel.k8s.io`: adds the resize channel.
    V3,
    /// `v4.channel.k8s.io`: error channel carries a JSON `Status` with the exit code.
    V4,
    /// `v5.channel.k8s.io`: adds the close channel (255) to close stdin.
    V5,
}

impl StreamProtocol {
    pub const ALL: [StreamProtocol; 5] = [
        StreamProtocol::V5,
        StreamProtocol::V4,
        StreamProtocol::V3,
        StreamProtocol::V2,
        StreamProtocol::V1,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StreamProtocol::V1 => "channel.k8s.io",
            StreamProtocol::V2 => "v2.channel.k8s.io",
            StreamProtocol::V3 => "v3.channel.k8s.io",
            StreamProtocol::V4 => "v4.channel.k8s.io",
            StreamProtocol::V5 => "v5.channel.k8s.io",
        }
    }

    /// The first protocol the client offers (in `Sec-WebSocket-Protocol`) that we support
    /// (wsstream's `handshake`), with whether it is a base64 variant. `Ok(None)` when it offers
    /// none (the default channel protocol applies), `Err` with the offered list when none is
    /// supported.
    pub fn negotiate(headers: &HeaderMap) -> Result<Option<Negotiated>, String> {
        negotiate_among(headers, &WEBSOCKET_PROTOCOLS)
    }
}

/// The first protocol in `Sec-WebSocket-Protocol` that is one of `supported`, as
/// [`StreamProtocol::negotiate`].
pub(super) fn negotiate_among(
    headers: &HeaderMap,
    supported: &[Negotiated],
) -> Result<Option<Negotiated>, String> {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(None);
    }
    offered
        .iter()
        .find_map(|p| supported.iter().find(|s| s.name == p).copied())
        .map(Some)
        .ok_or_else(|| offered.join(", "))
}

/// A channel protocol agreed on for a WebSocket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Its `Sec-WebSocket-Protocol` name.
    pub name: &'static str,
    pub protocol: StreamProtocol,
    /// Text frames: the channel as `'0' + channel`, the data in base64.
    pub base64: bool,
}

/// The subprotocols exec and attach take over WebSocket: the kubelet's
/// (`remotecommand/websocket.go`: the binary and base64 variants of the v1, v4 and v5 names), and
/// the SPDY names v2 and v3 (binary), which some clients offer over WebSocket too.
const WEBSOCKET_PROTOCOLS: [Negotiated; 8] = {
    use Negotiated as N;
    let p = N::new;
    [
        p("v5.channel.k8s.io", StreamProtocol::V5, false),
        p("v5.base64.channel.k8s.io", StreamProtocol::V5, true),
        p("v4.channel.k8s.io", StreamProtocol::V4, false),
        p("v4.base64.channel.k8s.io", StreamProtocol::V4, true),
        p("v3.channel.k8s.io", StreamProtocol::V3, false),
        p("v2.channel.k8s.io", StreamProtocol::V2, false),
        p("channel.k8s.io", StreamProtocol::V1, false),
        p("base64.channel.k8s.io", StreamProtocol::V1, true),
    ]
};

impl Negotiated {
    pub const fn new(name: &'static str, protocol: StreamProtocol, base64: bool) -> Negotiated {
        Negotiated {
            name,
            protocol,
            base64,
        }
    }
}

/// A WebSocket speaking a channel protocol, binary or base64 (wsstream's `Conn` codec).
pub struct ChannelSocket {
    pub(super) socket: WebSocket,
    pub(super) base64: bool,
}

impl ChannelSocket {
    pub fn new(socket: WebSocket, base64: bool) -> ChannelSocket {
        ChannelSocket { socket, base64 }
    }
}

/// The streams an exec or attach request asks for (the kubelet's `remotecommand.NewOptions`:
/// with a terminal there is no stderr stream; at least one stream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    /// The stream parameters of `query` (others, such as exec's `command`, are not read).
    pub fn from_query(query: Option<&str>) -> Result<StreamOptions, ParamError> {
        let mut o = StreamOptions::default();
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "stdin" | "input" => o.stdin = parse_bool(&k, &v)?,
                "stdout" | "output" => o.stdout = parse_bool(&k, &v)?,
                "stderr" => o.stderr = parse_bool(&k, &v)?,
                "tty" => o.tty = parse_bool(&k, &v)?,
                _ => {}
            }
        }
        if o.tty {
            // A terminal has one output: stderr goes to it too.
            o.stderr = false;
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(ParamError::NoStream);
        }
        Ok(o)
    }
}

/// The channels of the stream protocols.
pub(super) const CH_STDIN: u8 = 0;
pub(super) const CH_STDOUT: u8 = 1;
pub(super) const CH_STDERR: u8 = 2;
pub(super) const CH_ERROR: u8 = 3;
pub(super) const CH_RESIZE: u8 = 4;
pub(super) const CH_CLOSE: u8 = 255;

/// The WebSocket upgrade of an exec or attach request (`what`), with the protocol the client
/// and we agree on selected, and `session` run on the socket; or the answer to give instead.
pub(super) fn upgrade<F, Fut>(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &HeaderMap,
    what: &str,
    session: F,
) -> Response
where
    F: FnOnce(ChannelSocket, StreamProtocol) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Ok(ws) = ws else {
        return text_response(
            StatusCode::BAD_REQUEST,
            format!("{what} needs a WebSocket (v5.channel.k8s.io) or SPDY/3.1 upgrade"),
        );
    };
    upgrade_among(ws, headers, &WEBSOCKET_PROTOCOLS, session)
}

/// The upgrade of `ws` with one of `supported` selected (the default, binary `V1` when the
/// client offers none), and `session` run on the socket.
pub(super) fn upgrade_among<F, Fut>(
    mut ws: WebSocketUpgrade,
    headers: &HeaderMap,
    supported: &[Negotiated],
    session: F,
) -> Response
where
    F: FnOnce(ChannelSocket, StreamProtocol) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let protocol = match negotiate_among(headers, supported) {
        Ok(p) => p,
        Err(offered) => {
            return text_response(
                StatusCode::BAD_REQUEST,
                format!("none of the requested subprotocols are supported: {offered}"),
            )
        }
    };
    if let Some(p) = protocol {
        ws.set_selected_protocol(HeaderValue::from_static(p.name));
    }
    let base64 = protocol.is_some_and(|p| p.base64);
    let protocol = protocol.map_or(StreamProtocol::V1, |p| p.protocol);
    ws.on_upgrade(move |socket| session(ChannelSocket::new(socket, base64), protocol))
}

/// A frame on `channel`: binary, or (`base64`) text with the channel as a digit.
pub fn frame(base64: bool, channel: u8, data: &[u8]) -> Message {
    if base64 {
        use base64::Engine;
        let mut s = String::with_capacity(data.len() * 4 / 3 + 4);
        s.push(char::from(b'0'.wrapping_add(channel)));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
        return Message::Text(s.into());
    }
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// What a client's frame says: `(channel, data)`, `Ok(None)` for a frame to skip, `Err` for one
/// that ends the session (wsstream's `Conn.handle`). Text and binary frames are read alike (Go's
/// `websocket.Message.Receive` does not tell them apart: the Python client writes `str` data as
/// text frames); v5's close signal (255 and the channel) comes before the codec.
pub fn parse_frame(
    base64: bool,
    protocol: StreamProtocol,
    data: &[u8],
) -> Result<Option<(u8, Vec<u8>)>, String> {
    let Some((&first, rest)) = data.split_first() else {
        return Ok(None);
    };
    if protocol >= StreamProtocol::V5 && first == CH_CLOSE {
        if rest.len() != 1 {
            return Err(format!(
                "Single channel byte should follow stream close signal. Got {} bytes",
                rest.len()
            ));
        }
        return Ok(Some((CH_CLOSE, rest.to_vec())));
    }
    if !base64 {
        return Ok(Some((first, rest.to_vec())));
    }
    use base64::Engine;
    let channel = first.wrapping_sub(b'0');
    match base64::engine::general_purpose::STANDARD.decode(rest) {
        Ok(d) => Ok(Some((channel, d))),
        // wsstream: "Unable to write frame": the frame is dropped, the session goes on.
        Err(_) => Ok(None),
    }
}

/// What the error channel says when a session ended well: nothing before v4, a `Success`
/// `Status` from v4 on (the kubelet's `writeStatus`).
pub(super) fn success_status(protocol: StreamProtocol) -> Option<Vec<u8>> {
    (protocol >= StreamProtocol::V4).then(|| {
        serde_json::to_vec(&serde_json::json!({"metadata": {}, "status": "Success"}))
            .expect("serializable")
    })
}

/// One session's plumbing, as [`serve`] drives it.
pub(super) struct Streams {
    /// Where the client's stdin goes; dropped at its end (v5's close frame, or the client
    /// gone). `None`: stdin is not taken.
    pub stdin: Option<mpsc::Sender<Bytes>>,
    /// What a resize (`Width`, `Height`) does, if anything.
    pub resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>,
    /// The output, `(channel, data)`, until it ends.
    pub output: mpsc::Receiver<(u8, Bytes)>,
    /// After the output ended: what goes on the error channel.
    pub done: BoxFuture<'static, Option<Vec<u8>>>,
    /// The client went away before the end.
    pub on_client_gone: Box<dyn FnOnce() + Send>,
}

/// How long the end of a session (the last frames, the close handshake) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Run a session on `socket`; `Err` is a message for the error channel (nothing could be
/// started), after which the session closes.
pub(super) async fn serve(
    socket: ChannelSocket,
    protocol: StreamProtocol,
    streams: Result<Streams, Vec<u8>>,
) {
    let ChannelSocket { socket, base64 } = socket;
    let frame = move |channel: u8, data: &[u8]| frame(base64, channel, data);
    let (mut sink, mut stream) = socket.split();
    // One writer owns the socket's sending half; everything else queues frames for it.
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.flush().await;
    });

    let (end, reader) = match streams {
        Err(msg) => (Some(Some(msg)), None),
        Ok(Streams {
            stdin,
            resize,
            mut output,
            done,
            on_client_gone,
        }) => {
            // Client → container: stdin through a queue (so a process that does not read does
            // not stop us from reading the socket), resizes applied directly.
            let mut stdin = stdin;
            let mut reader = tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let data: Bytes = match msg {
                        Message::Binary(d) => d,
                        Message::Text(t) => t.into(),
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    // An empty message has no channel: skipped, as wsstream's `handle`.
                    let (channel, payload) = match parse_frame(base64, protocol, &data) {
                        Ok(Some(f)) => f,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::debug!("exec/attach session: {e}");
                            break;
                        }
                    };
                    match (channel, payload.as_slice()) {
                        (CH_STDIN, payload) if !payload.is_empty() => {
                            if let Some(tx) = &stdin {
                                if tx.send(Bytes::copy_from_slice(payload)).await.is_err() {
                                    stdin = None;
                                }
                            }
                        }
                        (CH_RESIZE, payload) => {
                            #[derive(serde::Deserialize)]
                            #[serde(rename_all = "PascalCase")]
                            struct Size {
                                width: u16,
                                height: u16,
                            }
                            if let (Some(resize), Ok(size)) =
                                (&resize, serde_json::from_slice::<Size>(payload))
                            {
                                resize(size.width, size.height);
                            }
                        }
                        (CH_CLOSE, [CH_STDIN]) if protocol >= StreamProtocol::V5 => {
                            // EOF on stdin.
                            stdin = None;
                        }
                        _ => {}
                    }
                }
                // The client went away (or closed the connection).
            });
            // Container → client.
            let tx = out_tx.clone();
            let finished = async move {
                while let Some((channel, data)) = output.recv().await {
                    if tx.send(frame(channel, &data)).await.is_err() {
                        break;
                    }
                }
                done.await
            };
            tokio::select! {
                msg = finished => (Some(msg), Some(reader)),
                _ = &mut reader => {
                    on_client_gone();
                    (None, None)
                }
            }
        }
    };
    if let Some(msg) = end {
        if let Some(msg) = msg {
            let _ = out_tx.send(frame(CH_ERROR, &msg)).await;
        }
        let _ = out_tx
            .send(Message::Close(Some(CloseFrame {
                code: close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
    }
    drop(out_tx);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer).await;
    // Let the client answer the close before the connection goes (unread data would make
    // the close a reset, which can lose what was sent last).
    if let Some(mut reader) = reader {
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_options() {
        let o =
            StreamOptions::from_query(Some("stdin=true&stdout=1&stderr=true&tty=true")).unwrap();
        let want = StreamOptions {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        };
        assert_eq!(o, want);
        // `kubectl attach` without -i: output only.
        let o = StreamOptions::from_query(Some("stdout=true&stderr=true")).unwrap();
        assert!(!o.stdin && o.stdout && o.stderr);
        let e = StreamOptions::from_query(Some("tty=true&stderr=true")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert!(StreamOptions::from_query(Some("stdin=maybe")).is_err());
    }

    #[test]
    fn subprotocols() {
        let mut h = HeaderMap::new();
        assert_eq!(StreamProtocol::negotiate(&h), Ok(None));
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v4.channel.k8s.io, base64.channel.k8s.io"),
        );
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io"),
        );
        let n = StreamProtocol::negotiate(&h).unwrap().unwrap();
        assert_eq!(
            (n.name, n.protocol, n.base64),
            ("v4.channel.k8s.io", StreamProtocol::V4, false)
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("x.example, v5.base64.channel.k8s.io"),
        );
        let n = StreamProtocol::negotiate(&h).unwrap().unwrap();
        assert_eq!((n.protocol, n.base64), (StreamProtocol::V5, true));
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("SPDY/3.1"),
        );
        assert!(StreamProtocol::negotiate(&h).is_err());
        assert_eq!(success_status(StreamProtocol::V3), None);
        let ok: serde_json::Value =
            serde_json::from_slice(&success_status(StreamProtocol::V5).unwrap()).unwrap();
        assert_eq!(ok, serde_json::json!({"metadata": {}, "status": "Success"}));
    }

    #[test]
    fn frames_binary_and_base64() {
        let Message::Binary(b) = frame(false, CH_STDOUT, b"hi") else {
            panic!("binary")
        };
        assert_eq!(&b[..], b"\x01hi");
        let Message::Text(t) = frame(true, CH_ERROR, b"hi\n") else {
            panic!("text")
        };
        assert_eq!(t.as_str(), "3aGkK");
        let v4 = StreamProtocol::V4;
        let v5 = StreamProtocol::V5;
        // What the Python client writes: `str` data in a text frame, channel byte first.
        assert_eq!(
            parse_frame(false, v5, b"\x00ls\n"),
            Ok(Some((CH_STDIN, b"ls\n".to_vec())))
        );
        assert_eq!(
            parse_frame(true, v4, b"0bHMK"),
            Ok(Some((CH_STDIN, b"ls\n".to_vec())))
        );
        assert_eq!(parse_frame(true, v4, b"0!!"), Ok(None));
        assert_eq!(parse_frame(false, v4, b""), Ok(None));
        // v5's close signal; before v5, 255 is just a channel nobody reads.
        assert_eq!(
            parse_frame(false, v5, &[CH_CLOSE, CH_STDIN]),
            Ok(Some((CH_CLOSE, vec![CH_STDIN])))
        );
        assert_eq!(
            parse_frame(true, v5, &[CH_CLOSE, CH_STDIN]),
            Ok(Some((CH_CLOSE, vec![CH_STDIN])))
        );
        assert!(parse_frame(false, v5, &[CH_CLOSE, 0, 1]).is_err());
        assert_eq!(
            parse_frame(false, v4, &[CH_CLOSE, CH_STDIN]),
            Ok(Some((CH_CLOSE, vec![CH_STDIN])))
        );
    }
}
