//! Framing (round trips, header compression as one zlib stream per direction, frames split
//! across reads, another zlib's output), sessions (streams, FIN, resets, PING, GOAWAY, idle
//! timeout) and flow control as spdystream does it, over an in-memory pipe and over WebSocket
//! messages.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

use crate::frame::*;
use crate::*;

const T: Duration = Duration::from_secs(10);

fn roundtrip(frames: Vec<Frame>) -> Vec<Frame> {
    let (mut enc, mut dec) = (FrameEncoder::default(), FrameDecoder::default());
    let mut buf = BytesMut::new();
    for f in frames {
        enc.encode(f, &mut buf).unwrap();
    }
    let mut out = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty());
    out
}

fn pf_headers(ty: &str) -> Headers {
    Headers::from([("streamType", ty), ("port", "8080"), ("requestID", "0")])
}

#[test]
fn every_frame_round_trips() {
    let frames = vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 3,
            slot: 0,
            flags: FLAG_FIN,
            headers: pf_headers("error"),
        },
        Frame::SynReply {
            stream_id: 1,
            flags: 0,
            headers: Headers::new(),
        },
        Frame::Headers {
            stream_id: 1,
            flags: FLAG_FIN,
            headers: Headers::from([("a", "1"), ("a", "2")]),
        },
        Frame::RstStream {
            stream_id: 3,
            status: rst::CANCEL,
        },
        Frame::Settings {
            flags: 0,
            entries: vec![Setting {
                flags: 1,
                id: 7,
                value: 65536,
            }],
        },
        Frame::Ping { id: 2 },
        Frame::GoAway {
            last_good_stream_id: 5,
            status: goaway::OK,
        },
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 1 << 20,
        },
        Frame::Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::from_static(b"hello"),
        },
        Frame::Data {
            stream_id: 1,
            flags: FLAG_FIN,
            data: Bytes::new(),
        },
    ];
    assert_eq!(roundtrip(frames.clone()), frames);
}

#[test]
fn wire_layout_of_control_and_data_frames() {
    let mut buf = BytesMut::new();
    let mut enc = FrameEncoder::default();
    enc.encode(
        Frame::RstStream {
            stream_id: 5,
            status: rst::CANCEL,
        },
        &mut buf,
    )
    .unwrap();
    enc.encode(
        Frame::Data {
            stream_id: 5,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"ab"),
        },
        &mut buf,
    )
    .unwrap();
    assert_eq!(
        &buf[..],
        &[
            0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 5, // RST_STREAM 5 CANCEL
            0, 0, 0, 5, 1, 0, 0, 2, b'a', b'b', // DATA 5 FIN "ab"
        ]
    );
}

#[test]
fn header_blocks_lowercase_names_and_join_values_with_nul() {
    let mut h = Headers::new();
    h.add("StreamType", "data").add("X", "1").add("x", "2");
    let raw = encode_header_block(&h);
    let mut expected = vec![0, 0, 0, 2, 0, 0, 0, 10];
    expected.extend_from_slice(b"streamtype");
    expected.extend_from_slice(&[0, 0, 0, 4]);
    expected.extend_from_slice(b"data");
    expected.extend_from_slice(&[0, 0, 0, 1, b'x', 0, 0, 0, 3, b'1', 0, b'2']);
    assert_eq!(raw, expected);
    let back = decode_header_block(&raw).unwrap();
    assert_eq!(back.get("streamType"), Some("data"));
    assert_eq!(back, h);
    assert!(decode_header_block(&raw[..raw.len() - 1]).is_err());
}

/// One zlib stream per direction: the second block is compressed against the first (much
/// smaller), and a decoder that did not see the first cannot read it.
#[test]
fn header_compression_is_one_stream_across_frames() {
    let mut enc = FrameEncoder::default();
    let (mut first, mut second) = (BytesMut::new(), BytesMut::new());
    for (buf, id) in [(&mut first, 1), (&mut second, 3)] {
        enc.encode(
            Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers: pf_headers("data"),
            },
            buf,
        )
        .unwrap();
    }
    assert!(second.len() < first.len() / 2, "{second:?} vs {first:?}");
    // zlib header: deflate, FDICT set, DICTID = the dictionary's Adler-32.
    assert_eq!(&first[18..24], &[0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2]);

    let mut dec = FrameDecoder::default();
    let mut both = first.clone();
    both.extend_from_slice(&second);
    let got: Vec<_> = std::iter::from_fn(|| dec.decode(&mut both).unwrap()).collect();
    assert_eq!(got.len(), 2);
    assert!(FrameDecoder::default().decode(&mut second.clone()).is_err());
}

/// Header blocks from another zlib (C zlib, through Python's `zlib.compressobj(9, zdict=...)`
/// with sync flushes) decode: the dictionary and the shared stream are the protocol's, not an
/// artefact of our compressor.
#[test]
fn decodes_blocks_compressed_by_c_zlib() {
    let blocks = [
        "78f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c6061606100a4398b20d198094ade8c0600000000ffff",
        "c2aa19540e2512d60b000000ffff",
    ];
    let mut buf = BytesMut::new();
    for (i, hex) in blocks.iter().enumerate() {
        let block: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|j| u8::from_str_radix(&hex[j..j + 2], 16).unwrap())
            .collect();
        buf.extend_from_slice(&[0x80, 3, 0, 1, 0, 0, 0, (10 + block.len()) as u8]);
        buf.extend_from_slice(&[0, 0, 0, (1 + 2 * i) as u8, 0, 0, 0, 0, 0, 0]);
        buf.extend_from_slice(&block);
    }
    let mut dec = FrameDecoder::default();
    for (id, ty) in [(1, "error"), (3, "data")] {
        match dec.decode(&mut buf).unwrap() {
            Some(Frame::SynStream {
                stream_id, headers, ..
            }) => {
                assert_eq!(stream_id, id);
                assert_eq!(headers.get("streamtype"), Some(ty));
                assert_eq!(headers.get("port"), Some("8080"));
                assert_eq!(headers.get("requestid"), Some("0"));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn frames_split_across_reads_wait_for_the_rest() {
    let mut enc = FrameEncoder::default();
    let mut whole = BytesMut::new();
    enc.encode(
        Frame::SynReply {
            stream_id: 1,
            flags: 0,
            headers: pf_headers("data"),
        },
        &mut whole,
    )
    .unwrap();
    let mut dec = FrameDecoder::default();
    let mut partial = BytesMut::new();
    for (i, b) in whole.iter().enumerate() {
        assert!(dec.decode(&mut partial).unwrap().is_none(), "at {i}");
        partial.extend_from_slice(&[*b]);
    }
    assert!(matches!(
        dec.decode(&mut partial).unwrap(),
        Some(Frame::SynReply { stream_id: 1, .. })
    ));
}

#[test]
fn bad_frames_are_errors_unknown_types_are_not() {
    let mut dec = FrameDecoder::default();
    // PING with 3 bytes of payload.
    let mut b = BytesMut::from(&[0x80, 3, 0, 6, 0, 0, 0, 3, 0, 0, 1][..]);
    assert!(dec.decode(&mut b).is_err());
    // DATA on stream 0.
    let mut b = BytesMut::from(&[0, 0, 0, 0, 0, 0, 0, 1, b'x'][..]);
    assert!(matches!(
        FrameDecoder::default().decode(&mut b),
        Err(FrameError::ZeroStreamId)
    ));
    // Type 10 (CREDENTIAL, unused) is skipped, not fatal.
    let mut b = BytesMut::from(&[0x80, 3, 0, 10, 0, 0, 0, 2, 1, 2][..]);
    assert!(matches!(
        FrameDecoder::default().decode(&mut b).unwrap(),
        Some(Frame::Unknown { frame_type: 10, .. })
    ));
}

/// A client and a server session over an in-memory pipe.
fn pair() -> ((Connection, Incoming), (Connection, Incoming)) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (
        Connection::new(a, Role::Client),
        Connection::new(b, Role::Server),
    )
}

async fn read_all(s: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut v = Vec::new();
    timeout(T, s.read_to_end(&mut v)).await.unwrap().unwrap();
    v
}

#[tokio::test]
async fn streams_carry_data_both_ways_and_end_with_fin() {
    let ((client, _), (_server, mut incoming)) = pair();
    let open = tokio::spawn(async move {
        let s = client.open(pf_headers("data")).await.unwrap();
        (client, s)
    });
    let pending = timeout(T, incoming.next()).await.unwrap().unwrap();
    assert_eq!(pending.id(), 1);
    assert_eq!(pending.headers().get("streamType"), Some("data"));
    let mut srv = pending.accept().await.unwrap();
    let (client, mut cli) = open.await.unwrap();

    cli.write_all(b"ping").await.unwrap();
    cli.shutdown().await.unwrap();
    assert_eq!(read_all(&mut srv).await, b"ping");
    srv.write_all(b"pong").await.unwrap();
    srv.shutdown().await.unwrap();
    assert_eq!(read_all(&mut cli).await, b"pong");
    assert!(cli.write_all(b"late").await.is_err(), "written after FIN");

    // The next stream gets the next odd id.
    let open = tokio::spawn(async move { client.open(Headers::new()).await.map(|s| s.id()) });
    let p = timeout(T, incoming.next()).await.unwrap().unwrap();
    assert_eq!(p.id(), 3);
    p.accept().await.unwrap();
    assert_eq!(open.await.unwrap().unwrap(), 3);
}

#[tokio::test]
async fn a_rejected_stream_fails_to_open() {
    let ((client, _), (_server, mut incoming)) = pair();
    let open = tokio::spawn(async move { client.open(Headers::new()).await.err() });
    timeout(T, incoming.next()).await.unwrap().unwrap().reject();
    assert!(matches!(
        open.await.unwrap(),
        Some(Error::Reset(rst::CANCEL))
    ));
}

#[tokio::test]
async fn a_reset_ends_the_peers_reads_and_writes() {
    let ((client, _), (_server, mut incoming)) = pair();
    let open = tokio::spawn(async move { (client.open(Headers::new()).await.unwrap(), client) });
    let mut srv = timeout(T, incoming.next())
        .await
        .unwrap()
        .unwrap()
        .accept()
        .await
        .unwrap();
    let (mut cli, _client) = open.await.unwrap();
    cli.reset();
    timeout(T, srv.reset_by_peer()).await.unwrap();
    assert!(read_all(&mut srv).await.is_empty());
    assert!(srv.write_all(b"x").await.is_err());
}

#[tokio::test]
async fn pings_are_answered_by_the_peer() {
    let ((client, _), (server, _incoming)) = pair();
    timeout(T, client.ping()).await.unwrap().unwrap();
    timeout(T, server.ping()).await.unwrap().unwrap();
}

#[tokio::test]
async fn closing_resets_streams_and_the_peer_sees_the_end() {
    let ((client, _), (server, mut incoming)) = pair();
    let open = tokio::spawn(async move { (client.open(Headers::new()).await.unwrap(), client) });
    let mut srv = timeout(T, incoming.next())
        .await
        .unwrap()
        .unwrap()
        .accept()
        .await
        .unwrap();
    let (mut cli, client) = open.await.unwrap();
    server.close();
    timeout(T, client.closed()).await.unwrap();
    timeout(T, server.closed()).await.unwrap();
    assert!(read_all(&mut cli).await.is_empty());
    assert!(read_all(&mut srv).await.is_empty());
    assert!(matches!(
        client.open(Headers::new()).await,
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn an_idle_session_closes() {
    let ((client, _), (server, _incoming)) = pair();
    server.set_idle_timeout(Duration::from_millis(200));
    timeout(T, server.closed()).await.unwrap();
    timeout(T, client.closed()).await.unwrap();
}

/// Write frames straight to a session, as a peer would.
async fn raw_peer(
    role: Role,
) -> (
    (Connection, Incoming),
    FramedRead<tokio::io::ReadHalf<tokio::io::DuplexStream>, FrameDecoder>,
    FramedWrite<tokio::io::WriteHalf<tokio::io::DuplexStream>, FrameEncoder>,
) {
    let (a, b) = tokio::io::duplex(8 * 1024);
    let (r, w) = tokio::io::split(b);
    (
        Connection::new(a, role),
        FramedRead::new(r, FrameDecoder::default()),
        FramedWrite::new(w, FrameEncoder::default()),
    )
}

/// spdystream sends no WINDOW_UPDATE, so a stream must be able to send far past SPDY/3.1's
/// 64 KiB initial window without one; WINDOW_UPDATE and SETTINGS received change nothing.
#[tokio::test]
async fn no_spdy_window_limits_sending() {
    let ((_server, mut incoming), mut rd, mut wr) = raw_peer(Role::Server).await;
    wr.send(Frame::Settings {
        flags: 0,
        entries: vec![Setting {
            flags: 0,
            id: 7,
            value: 1024,
        }],
    })
    .await
    .unwrap();
    wr.send(Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        priority: 0,
        slot: 0,
        flags: 0,
        headers: Headers::new(),
    })
    .await
    .unwrap();
    wr.send(Frame::WindowUpdate {
        stream_id: 1,
        delta: 1,
    })
    .await
    .unwrap();
    let mut s = timeout(T, incoming.next())
        .await
        .unwrap()
        .unwrap()
        .accept()
        .await
        .unwrap();
    let sender = tokio::spawn(async move {
        s.write_all(&vec![7u8; 1 << 20]).await.unwrap();
        s.shutdown().await.unwrap();
        s
    });
    let mut got = 0;
    loop {
        match timeout(T, rd.next()).await.unwrap().unwrap().unwrap() {
            Frame::SynReply { .. } => {}
            Frame::Data { data, flags, .. } => {
                assert!(data.len() <= stream::MAX_DATA_FRAME);
                got += data.len();
                if flags & FLAG_FIN != 0 {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, 1 << 20);
    sender.await.unwrap();
}

/// Back-pressure as spdystream's: a stream whose reader is behind stops the session from
/// reading (the peer's writes stall, memory stays bounded), and reading resumes the flow; a
/// stream whose reading side is closed holds nothing up.
#[tokio::test]
async fn a_slow_reader_holds_the_session_and_a_closed_one_does_not() {
    let ((_server, mut incoming), _rd, mut wr) = raw_peer(Role::Server).await;
    for id in [1, 3] {
        wr.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: Headers::new(),
        })
        .await
        .unwrap();
    }
    let mut slow = incoming.next().await.unwrap().accept().await.unwrap();
    let mut other = incoming.next().await.unwrap().accept().await.unwrap();

    // 1000 frames of 1 KiB to the slow stream: the session buffers STREAM_QUEUE of them, the
    // pipe 8 KiB more, and then the writer waits.
    let frame = |id| Frame::Data {
        stream_id: id,
        flags: 0,
        data: Bytes::from(vec![1u8; 1024]),
    };
    let writer = tokio::spawn(async move {
        for _ in 0..1000 {
            wr.send(frame(1)).await.unwrap();
        }
        wr.send(frame(3)).await.unwrap();
        wr
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "the peer was never held back");

    // Reading the slow stream lets everything through, the other stream's frame included.
    let mut buf = vec![0u8; 1000 * 1024];
    timeout(T, slow.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let mut wr = timeout(T, writer).await.unwrap().unwrap();
    let mut b = [0u8; 1024];
    timeout(T, other.read_exact(&mut b)).await.unwrap().unwrap();

    // With its reading side closed, a stream's frames are dropped and the session goes on.
    slow.close_read();
    for _ in 0..1000 {
        timeout(T, wr.send(frame(1))).await.unwrap().unwrap();
    }
    wr.send(frame(3)).await.unwrap();
    timeout(T, other.read_exact(&mut b)).await.unwrap().unwrap();
}

#[tokio::test]
async fn goaway_from_the_peer_ends_the_session() {
    let ((client, _), mut rd, mut wr) = raw_peer(Role::Client).await;
    let open = tokio::spawn(async move { (client.open(Headers::new()).await, client) });
    assert!(matches!(
        timeout(T, rd.next()).await.unwrap().unwrap().unwrap(),
        Frame::SynStream { stream_id: 1, .. }
    ));
    wr.send(Frame::GoAway {
        last_good_stream_id: 0,
        status: goaway::OK,
    })
    .await
    .unwrap();
    let (opened, client) = timeout(T, open).await.unwrap().unwrap();
    assert!(matches!(opened, Err(Error::Closed)));
    timeout(T, client.closed()).await.unwrap();
}

#[tokio::test]
async fn streams_opened_out_of_order_are_refused() {
    let ((_server, mut incoming), mut rd, mut wr) = raw_peer(Role::Server).await;
    for id in [5, 3] {
        wr.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: Headers::new(),
        })
        .await
        .unwrap();
    }
    assert_eq!(incoming.next().await.unwrap().id(), 5);
    loop {
        match timeout(T, rd.next()).await.unwrap().unwrap().unwrap() {
            Frame::RstStream {
                stream_id: 3,
                status,
            } => {
                assert_eq!(status, rst::PROTOCOL_ERROR);
                break;
            }
            Frame::RstStream { stream_id: 5, .. } => {} // the dropped pending stream
            other => panic!("{other:?}"),
        }
    }
}

/// One end of a WebSocket-like message pipe: a stream of received payloads and a sink of
/// payloads to send.
struct MessagePipe {
    tx: futures::channel::mpsc::Sender<Bytes>,
    rx: futures::channel::mpsc::Receiver<Bytes>,
}

impl futures::Stream for MessagePipe {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_next_unpin(cx).map(|m| m.map(Ok))
    }
}

impl futures::Sink<Bytes> for MessagePipe {
    type Error = std::io::Error;
    fn poll_ready(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.tx.poll_ready_unpin(cx).map_err(std::io::Error::other)
    }
    fn start_send(mut self: std::pin::Pin<&mut Self>, item: Bytes) -> Result<(), Self::Error> {
        // One write, one message: frames are not cut at message boundaries.
        self.tx
            .start_send_unpin(item)
            .map_err(std::io::Error::other)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.tx.poll_flush_unpin(cx).map_err(std::io::Error::other)
    }
    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.tx.poll_close_unpin(cx).map_err(std::io::Error::other)
    }
}

/// A session whose transport is WebSocket-style messages, as SPDY tunneled through a
/// WebSocket.
#[tokio::test]
async fn sessions_run_over_websocket_messages() {
    let (a_tx, b_rx) = futures::channel::mpsc::channel(4);
    let (b_tx, a_rx) = futures::channel::mpsc::channel(4);
    let a = MessageIo::new(MessagePipe { tx: a_tx, rx: a_rx });
    let b = MessageIo::new(MessagePipe { tx: b_tx, rx: b_rx });
    let (client, _) = Connection::new(a, Role::Client);
    let (_server, mut incoming) = Connection::new(b, Role::Server);
    let open =
        tokio::spawn(async move { (client.open(pf_headers("data")).await.unwrap(), client) });
    let mut srv = timeout(T, incoming.next())
        .await
        .unwrap()
        .unwrap()
        .accept()
        .await
        .unwrap();
    let (mut cli, _client) = open.await.unwrap();
    cli.write_all(&vec![9u8; 100_000]).await.unwrap();
    cli.shutdown().await.unwrap();
    assert_eq!(read_all(&mut srv).await, vec![9u8; 100_000]);
}
