//! SPDY/3.1 frames (draft-mbelshe-httpbis-spdy-00 section 2.2 and 2.6; 3.1 adds session-level
//! WINDOW_UPDATE) and their encoding, as Go's `spdy` package (vendored in moby/spdystream)
//! reads and writes them: header names lowercased, several values of one name joined by NUL,
//! header blocks compressed with one zlib stream per direction for the whole session, primed
//! with [`DICTIONARY`] and sync-flushed after each block.
//!
//! [`FrameDecoder`] and [`FrameEncoder`] are tokio codecs: each owns its direction's zlib
//! stream, so a connection has exactly one of each.
//!
//! Where Go's framer fails a frame, this one is lenient when nothing is lost: an uppercase
//! header name is lowercased, a repeated name adds values, the version field is not checked,
//! and an unknown control frame is skipped (as the specification says) instead of ending the
//! session.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio_util::codec::{Decoder, Encoder};

use crate::dictionary::DICTIONARY;

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;

/// The largest payload a frame can carry (24-bit length).
pub const MAX_FRAME_LENGTH: usize = (1 << 24) - 1;

/// The most a header block may decompress to. Go's framer has no limit; this is
/// kube-apiserver's `maxHeaderBytes` for tunneled upgrade responses (1 MiB).
pub const MAX_HEADER_BLOCK: usize = 1 << 20;

/// FLAG_FIN: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL (SYN_STREAM): the receiver must not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes (section 2.6.3).
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const UNSUPPORTED_VERSION: u32 = 4;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
}

/// GOAWAY status codes (section 2.6.6).
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INTERNAL_ERROR: u32 = 2;
}

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// A header block: names (lowercase) with one or more values each, in insertion order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<String>)>);

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Add `value` to `name` (lowercased).
    pub fn add(&mut self, name: &str, value: &str) -> &mut Headers {
        let name = name.to_ascii_lowercase();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, vs)) => vs.push(value.to_string()),
            None => self.0.push((name, vec![value.to_string()])),
        }
        self
    }

    /// `name`'s first value (names compare case-insensitively, as `http.Header.Get`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, vs)| vs.first())
            .map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(n, vs)| (n.as_str(), vs.as_slice()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const N: usize> From<[(&str, &str); N]> for Headers {
    fn from(pairs: [(&str, &str); N]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.add(n, v);
        }
        h
    }
}

/// One SETTINGS entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A frame, decoded (header blocks decompressed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        /// 0 (highest) to 7.
        priority: u8,
        slot: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type this crate does not know (skipped by the session).
    Unknown {
        frame_type: u16,
        flags: u8,
        payload: Bytes,
    },
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("invalid control frame (type {frame_type}): {reason}")]
    InvalidControlFrame {
        frame_type: u16,
        reason: &'static str,
    },
    #[error("stream id zero is disallowed")]
    ZeroStreamId,
    #[error("invalid header block: {0}")]
    HeaderBlock(&'static str),
    #[error("header block larger than {MAX_HEADER_BLOCK} bytes")]
    HeaderBlockTooLarge,
    #[error("decompressing a header block: {0}")]
    Decompress(#[from] flate2::DecompressError),
    #[error("compressing a header block: {0}")]
    Compress(#[from] flate2::CompressError),
    #[error("frame payload of {0} bytes is over the 24-bit limit")]
    TooLarge(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serialize a header block (uncompressed): count, then each name and its NUL-joined values,
/// every length 32-bit big-endian.
pub fn encode_header_block(headers: &Headers) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u32(headers.0.len() as u32);
    for (name, values) in &headers.0 {
        b.put_u32(name.len() as u32);
        b.put_slice(name.as_bytes());
        let v = values.join("\0");
        b.put_u32(v.len() as u32);
        b.put_slice(v.as_bytes());
    }
    b
}

/// Parse a header block (uncompressed).
pub fn decode_header_block(mut b: &[u8]) -> Result<Headers, FrameError> {
    fn string<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], FrameError> {
        if b.remaining() < 4 {
            return Err(FrameError::HeaderBlock("truncated length"));
        }
        let n = b.get_u32() as usize;
        if b.remaining() < n {
            return Err(FrameError::HeaderBlock("truncated string"));
        }
        let (s, rest) = b.split_at(n);
        *b = rest;
        Ok(s)
    }
    if b.remaining() < 4 {
        return Err(FrameError::HeaderBlock("truncated count"));
    }
    let count = b.get_u32();
    let mut h = Headers::new();
    for _ in 0..count {
        let name = String::from_utf8_lossy(string(&mut b)?).into_owned();
        let value = String::from_utf8_lossy(string(&mut b)?).into_owned();
        for v in value.split('\0') {
            h.add(&name, v);
        }
    }
    Ok(h)
}

/// The sending side's header compression: one zlib stream for the whole session.
pub struct HeaderCompressor(Compress);

impl Default for HeaderCompressor {
    fn default() -> Self {
        // Go's framer: zlib.NewWriterLevelDict(buf, zlib.BestCompression, headerDictionary).
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(&DICTIONARY)
            .expect("zlib-rs takes a preset dictionary");
        HeaderCompressor(z)
    }
}

impl HeaderCompressor {
    /// Compress `block`, sync-flushed, appending to `out`.
    pub fn compress(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let start = self.0.total_in();
        loop {
            out.reserve(block.len() / 2 + 64);
            let done = (self.0.total_in() - start) as usize;
            self.0
                .compress_vec(&block[done..], out, FlushCompress::Sync)?;
            let done = (self.0.total_in() - start) as usize;
            if done == block.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

/// The receiving side's header decompression: one zlib stream for the whole session.
pub struct HeaderDecompressor(Decompress);

impl Default for HeaderDecompressor {
    fn default() -> Self {
        HeaderDecompressor(Decompress::new(true))
    }
}

impl HeaderDecompressor {
    /// Decompress one header block (all of `input`), at most [`MAX_HEADER_BLOCK`] bytes.
    pub fn decompress(&mut self, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let start = self.0.total_in();
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        loop {
            let done = (self.0.total_in() - start) as usize;
            match self
                .0
                .decompress_vec(&input[done..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0.set_dictionary(&DICTIONARY)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let done = (self.0.total_in() - start) as usize;
            if done == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if out.len() >= MAX_HEADER_BLOCK {
                return Err(FrameError::HeaderBlockTooLarge);
            }
            out.reserve(out.capacity());
        }
    }
}

/// Reads frames (a tokio [`Decoder`]); holds the receiving zlib stream.
#[derive(Default)]
pub struct FrameDecoder {
    headers: HeaderDecompressor,
}

fn invalid(frame_type: u16, reason: &'static str) -> FrameError {
    FrameError::InvalidControlFrame { frame_type, reason }
}

impl FrameDecoder {
    fn header_block(&mut self, raw: &[u8]) -> Result<Headers, FrameError> {
        decode_header_block(&self.headers.decompress(raw)?)
    }

    fn control(&mut self, ty: u16, flags: u8, mut p: Bytes) -> Result<Frame, FrameError> {
        let need = |n: usize, exact: bool, p: &Bytes| {
            if p.len() < n || (exact && p.len() != n) {
                Err(invalid(ty, "wrong length"))
            } else {
                Ok(())
            }
        };
        let stream_id = |id: u32| match id & 0x7fff_ffff {
            0 => Err(FrameError::ZeroStreamId),
            id => Ok(id),
        };
        Ok(match ty {
            TYPE_SYN_STREAM => {
                need(10, false, &p)?;
                let id = stream_id(p.get_u32())?;
                let associated_to = p.get_u32() & 0x7fff_ffff;
                let priority = p.get_u8() >> 5;
                let slot = p.get_u8();
                Frame::SynStream {
                    stream_id: id,
                    associated_to,
                    priority,
                    slot,
                    flags,
                    headers: self.header_block(&p)?,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                need(4, false, &p)?;
                let id = stream_id(p.get_u32())?;
                let headers = self.header_block(&p)?;
                if ty == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id: id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id: id,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                need(8, true, &p)?;
                let id = stream_id(p.get_u32())?;
                let status = p.get_u32();
                if status == 0 {
                    return Err(invalid(ty, "status 0"));
                }
                Frame::RstStream {
                    stream_id: id,
                    status,
                }
            }
            TYPE_SETTINGS => {
                need(4, false, &p)?;
                let n = p.get_u32() as usize;
                if p.len() != n.saturating_mul(8) {
                    return Err(invalid(ty, "wrong number of entries"));
                }
                let entries = (0..n)
                    .map(|_| {
                        let fid = p.get_u32();
                        Setting {
                            flags: (fid >> 24) as u8,
                            id: fid & 0xff_ffff,
                            value: p.get_u32(),
                        }
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                need(4, true, &p)?;
                Frame::Ping { id: p.get_u32() }
            }
            TYPE_GOAWAY => {
                need(8, true, &p)?;
                Frame::GoAway {
                    last_good_stream_id: p.get_u32() & 0x7fff_ffff,
                    status: p.get_u32(),
                }
            }
            TYPE_WINDOW_UPDATE => {
                need(8, true, &p)?;
                Frame::WindowUpdate {
                    stream_id: p.get_u32() & 0x7fff_ffff,
                    delta: p.get_u32() & 0x7fff_ffff,
                }
            }
            _ => Frame::Unknown {
                frame_type: ty,
                flags,
                payload: p,
            },
        })
    }
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 8 {
            src.reserve(8);
            return Ok(None);
        }
        let word = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let flags = src[4];
        let len = u32::from_be_bytes([0, src[5], src[6], src[7]]) as usize;
        if src.len() < 8 + len {
            src.reserve(8 + len - src.len());
            return Ok(None);
        }
        src.advance(8);
        let payload = src.split_to(len).freeze();
        if word & 0x8000_0000 != 0 {
            self.control((word & 0xffff) as u16, flags, payload)
                .map(Some)
        } else {
            let stream_id = word & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(FrameError::ZeroStreamId);
            }
            Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: payload,
            }))
        }
    }
}

/// Writes frames (a tokio [`Encoder`]); holds the sending zlib stream.
#[derive(Default)]
pub struct FrameEncoder {
    headers: HeaderCompressor,
}

fn control_header(dst: &mut BytesMut, ty: u16, flags: u8, len: usize) -> Result<(), FrameError> {
    if len > MAX_FRAME_LENGTH {
        return Err(FrameError::TooLarge(len));
    }
    dst.reserve(8 + len);
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(ty);
    dst.put_u32(((flags as u32) << 24) | len as u32);
    Ok(())
}

impl FrameEncoder {
    fn compressed(&mut self, headers: &Headers) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        self.headers
            .compress(&encode_header_block(headers), &mut out)?;
        Ok(out)
    }
}

impl Encoder<Frame> for FrameEncoder {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let nonzero = |id: u32| {
            if id & 0x7fff_ffff == 0 {
                Err(FrameError::ZeroStreamId)
            } else {
                Ok(())
            }
        };
        match frame {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                flags,
                headers,
            } => {
                nonzero(stream_id)?;
                let block = self.compressed(&headers)?;
                control_header(dst, TYPE_SYN_STREAM, flags, 10 + block.len())?;
                dst.put_u32(stream_id);
                dst.put_u32(associated_to);
                dst.put_u8(priority << 5);
                dst.put_u8(slot);
                dst.put_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                nonzero(stream_id)?;
                let block = self.compressed(&headers)?;
                control_header(dst, TYPE_SYN_REPLY, flags, 4 + block.len())?;
                dst.put_u32(stream_id);
                dst.put_slice(&block);
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                nonzero(stream_id)?;
                let block = self.compressed(&headers)?;
                control_header(dst, TYPE_HEADERS, flags, 4 + block.len())?;
                dst.put_u32(stream_id);
                dst.put_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                nonzero(stream_id)?;
                control_header(dst, TYPE_RST_STREAM, 0, 8)?;
                dst.put_u32(stream_id);
                dst.put_u32(status);
            }
            Frame::Settings { flags, entries } => {
                control_header(dst, TYPE_SETTINGS, flags, 4 + 8 * entries.len())?;
                dst.put_u32(entries.len() as u32);
                for e in entries {
                    dst.put_u32(((e.flags as u32) << 24) | (e.id & 0xff_ffff));
                    dst.put_u32(e.value);
                }
            }
            Frame::Ping { id } => {
                control_header(dst, TYPE_PING, 0, 4)?;
                dst.put_u32(id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(dst, TYPE_GOAWAY, 0, 8)?;
                dst.put_u32(last_good_stream_id);
                dst.put_u32(status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(dst, TYPE_WINDOW_UPDATE, 0, 8)?;
                dst.put_u32(stream_id);
                dst.put_u32(delta);
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                nonzero(stream_id)?;
                if data.len() > MAX_FRAME_LENGTH {
                    return Err(FrameError::TooLarge(data.len()));
                }
                dst.reserve(8 + data.len());
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u32(((flags as u32) << 24) | data.len() as u32);
                dst.put_slice(&data);
            }
            Frame::Unknown {
                frame_type,
                flags,
                payload,
            } => {
                control_header(dst, frame_type, flags, payload.len())?;
                dst.put_slice(&payload);
            }
        }
        Ok(())
    }
}
