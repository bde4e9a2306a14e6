//! nf_tables over netlink, for the one thing `nft` is slow at: loading hundreds of thousands of
//! set and map elements. nft parses and evaluates every element of a script (about 5 µs each,
//! 1.3 s for the 230,000 elements of 10,000 Services × 10 endpoints) before the kernel sees
//! any of them; here the caller hands over elements already encoded as the kernel stores them,
//! and a [`Batch`] sends them in one transaction (`NFNL_MSG_BATCH_BEGIN` ... `END`), all or
//! nothing, as nft's own batches are.
//!
//! Everything else — tables, chains, rules, set declarations — stays with nft, which compiles
//! rules; this crate only flushes sets, adds elements, and lists a table's chains and sets
//! (names and shapes, never their elements) so a caller knows what a table holds.
//!
//! The message formats are the kernel's (`include/uapi/linux/netfilter/nf_tables.h`,
//! `nfnetlink.h`): a netlink header, an `nfgenmsg`, then attributes.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, sendmsg, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr,
    SockFlag, SockProtocol, SockType,
};
use nix::sys::time::TimeVal;

/// `NFPROTO_IPV4`: the family of `table ip ...`.
pub const FAMILY_IPV4: u8 = 2;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
/// libnftnl's `NFTNL_UDATA_SET_ELEM_COMMENT`: the TLV type nft stores an element's `comment`
/// under in its user data (and reads back for `nft list`).
const NFTNL_UDATA_SET_ELEM_COMMENT: u8 = 0;
/// libnftnl's `NFTNL_UDATA_COMMENT_MAXLEN`: nft refuses longer comments.
pub const COMMENT_MAX: usize = 128;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_DESC_SIZE: u16 = 1;

/// `NFT_SET_ANONYMOUS`: a set nft made for a rule's `{ a, b }`.
pub const SET_ANONYMOUS: u32 = 0x1;

/// One message's attributes stay under the 64 KiB an attribute length can say; the kernel
/// takes a batch of any number of them.
const MESSAGE_LIMIT: usize = 60 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink socket: {0}")]
    Socket(#[from] nix::Error),
    #[error("nf_tables refused the batch: {}", describe(*.errno, .set.as_deref()))]
    Refused {
        errno: nix::errno::Errno,
        /// The set whose message the kernel refused, when it was one of the batch's.
        set: Option<String>,
    },
    #[error("malformed netlink reply: {0}")]
    Malformed(&'static str),
}

fn describe(errno: nix::errno::Errno, set: Option<&str>) -> String {
    match set {
        Some(s) => format!("{errno} (set {s})"),
        None => errno.to_string(),
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A map element's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data<'a> {
    /// Bytes as the map's data type stores them.
    Value(&'a [u8]),
    Verdict(Verdict<'a>),
}

/// A verdict map element's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    Accept,
    Drop,
    Return,
    Jump(&'a str),
    Goto(&'a str),
}

impl Verdict<'_> {
    /// `NF_DROP`, `NF_ACCEPT`, `NFT_RETURN`, `NFT_JUMP`, `NFT_GOTO`.
    fn code(&self) -> i32 {
        match self {
            Verdict::Drop => 0,
            Verdict::Accept => 1,
            Verdict::Return => -5,
            Verdict::Jump(_) => -3,
            Verdict::Goto(_) => -4,
        }
    }
}

/// A chain or set of a table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Objects {
    pub chains: Vec<String>,
    pub sets: Vec<SetInfo>,
}

/// A set's shape as the kernel holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetInfo {
    pub name: String,
    /// `NFT_SET_*` flags ([`SET_ANONYMOUS`], ...).
    pub flags: u32,
    pub key_len: u32,
    pub data_len: u32,
    /// The declared `size`, if any.
    pub size: Option<u32>,
}

/// Appends netlink messages to a buffer.
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Start a message; returns its offset (for [`Writer::end_message`]).
    fn message(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        at
    }

    fn end_message(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(&mut self, ty: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let len = 4 + s.len() + 1;
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// `NFTA_SET_ELEM_USERDATA` with one TLV (type, length, value): the comment, its
    /// terminating NUL included, as libnftnl's `nftnl_udata_put_strz` writes it.
    fn comment(&mut self, c: &str) {
        let mut end = c.len().min(COMMENT_MAX);
        while !c.is_char_boundary(end) {
            end -= 1;
        }
        let c = &c.as_bytes()[..end];
        let len = 4 + 2 + c.len() + 1;
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf
            .extend_from_slice(&NFTA_SET_ELEM_USERDATA.to_ne_bytes());
        self.buf.push(NFTNL_UDATA_SET_ELEM_COMMENT);
        self.buf.push((c.len() + 1) as u8);
        self.buf.extend_from_slice(c);
        self.buf.push(0);
        self.pad();
    }

    fn nest(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end_nest(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

/// One transaction's worth of set changes, applied by [`Socket::commit`]: all or none.
///
/// Each message is kept in a buffer of its own (under 64 KiB, so from the heap, where memory
/// the caller frees while filling the batch — its elements' text, say — is reused) and the
/// buffers go to the kernel together in one `sendmsg`.
pub struct Batch {
    /// The buffers of the messages before the one being written.
    done: Vec<Vec<u8>>,
    /// The message being written.
    w: Writer,
    family: u8,
    table: String,
    /// (sequence number, set) of each message, to name the set of a refused one.
    messages: Vec<(u32, String)>,
    /// The open `NEWSETELEM` message: (its offset, the elements attribute's offset).
    open: Option<(usize, usize)>,
    seq: u32,
}

impl Batch {
    /// A batch on the table `family` `table` (e.g. [`FAMILY_IPV4`], "svcnet").
    pub fn new(family: u8, table: &str) -> Batch {
        let mut w = Writer {
            buf: Vec::with_capacity(64 * 1024),
        };
        let at = w.message(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            0,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        w.end_message(at);
        Batch {
            done: Vec::new(),
            w,
            family,
            table: table.to_string(),
            messages: Vec::new(),
            open: None,
            seq: 0,
        }
    }

    fn next_seq(&mut self, set: &str) -> u32 {
        self.seq += 1;
        self.messages.push((self.seq, set.to_string()));
        self.seq
    }

    fn close(&mut self) {
        if let Some((msg, elems)) = self.open.take() {
            self.w.end_nest(elems);
            self.w.end_message(msg);
        }
    }

    fn set_message(&mut self, ty: u16, set: &str) -> usize {
        self.close();
        if !self.w.buf.is_empty() {
            let full = std::mem::replace(
                &mut self.w.buf,
                Vec::with_capacity(MESSAGE_LIMIT + 8 * 1024),
            );
            self.done.push(full);
        }
        let seq = self.next_seq(set);
        let flags = NLM_F_REQUEST
            | if ty == NFT_MSG_NEWSETELEM {
                NLM_F_CREATE
            } else {
                0
            };
        let at = self
            .w
            .message(NFNL_SUBSYS_NFTABLES << 8 | ty, flags, seq, self.family, 0);
        let table = self.table.clone();
        self.w.attr_str(NFTA_SET_ELEM_LIST_TABLE, &table);
        self.w.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        at
    }

    /// Remove every element of `set`.
    pub fn flush_set(&mut self, set: &str) {
        let at = self.set_message(NFT_MSG_DELSETELEM, set);
        self.w.end_message(at);
    }

    /// Add one element to `set`: `key` (and `data`, for a map) as the set's types store them,
    /// and a `comment` as nft writes one (`NFTA_SET_ELEM_USERDATA` holding libnftnl's comment
    /// TLV, so `nft list` prints it; cut to [`COMMENT_MAX`] bytes). Consecutive elements of one
    /// set share messages.
    pub fn add_element(
        &mut self,
        set: &str,
        key: &[u8],
        data: Option<Data<'_>>,
        comment: Option<&str>,
    ) {
        let same_set = self.open.is_some()
            && self.messages.last().is_some_and(|(_, s)| s == set)
            && self.w.buf.len() - self.open.map_or(0, |(m, _)| m) < MESSAGE_LIMIT;
        if !same_set {
            let at = self.set_message(NFT_MSG_NEWSETELEM, set);
            let elems = self.w.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            self.open = Some((at, elems));
        }
        let w = &mut self.w;
        let elem = w.nest(NFTA_LIST_ELEM);
        let k = w.nest(NFTA_SET_ELEM_KEY);
        w.attr(NFTA_DATA_VALUE, key);
        w.end_nest(k);
        match data {
            None => {}
            Some(Data::Value(v)) => {
                let d = w.nest(NFTA_SET_ELEM_DATA);
                w.attr(NFTA_DATA_VALUE, v);
                w.end_nest(d);
            }
            Some(Data::Verdict(v)) => {
                let d = w.nest(NFTA_SET_ELEM_DATA);
                let vn = w.nest(NFTA_DATA_VERDICT);
                w.attr(NFTA_VERDICT_CODE, &v.code().to_be_bytes());
                if let Verdict::Jump(c) | Verdict::Goto(c) = v {
                    w.attr_str(NFTA_VERDICT_CHAIN, c);
                }
                w.end_nest(vn);
                w.end_nest(d);
            }
        }
        if let Some(c) = comment {
            w.comment(c);
        }
        w.end_nest(elem);
    }

    /// The batch's size in bytes so far.
    pub fn len(&self) -> usize {
        self.done.iter().map(Vec::len).sum::<usize>() + self.w.buf.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The finished batch: the last message asks for an acknowledgement, END closes it.
    pub fn finish(mut self) -> Finished {
        self.close();
        if !self.messages.is_empty() {
            // The last message starts the buffer being written.
            let b = &mut self.w.buf;
            let flags = u16::from_ne_bytes(b[6..8].try_into().unwrap());
            b[6..8].copy_from_slice(&(flags | NLM_F_ACK).to_ne_bytes());
        }
        let at = self.w.message(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.seq + 1,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        self.w.end_message(at);
        let mut buffers = self.done;
        buffers.push(self.w.buf);
        Finished {
            buffers,
            messages: self.messages,
        }
    }
}

/// A [`Batch`] ready to send (any number of times: [`Socket::commit`] does not consume it).
pub struct Finished {
    buffers: Vec<Vec<u8>>,
    /// (sequence number, set) of each message between BEGIN and END.
    messages: Vec<(u32, String)>,
}

/// A netlink socket to nf_tables in the network namespace of the thread that opened it.
pub struct Socket {
    fd: OwnedFd,
    buf: Vec<u8>,
}

/// One reply message: type, sequence number, payload after the netlink header.
struct Reply<'a> {
    ty: u16,
    seq: u32,
    payload: &'a [u8],
}

fn replies(mut b: &[u8]) -> impl Iterator<Item = Result<Reply<'_>>> {
    std::iter::from_fn(move || {
        if b.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
        if len < 16 || len > b.len() {
            b = &[];
            return Some(Err(Error::Malformed("message length")));
        }
        let r = Reply {
            ty: u16::from_ne_bytes(b[4..6].try_into().unwrap()),
            seq: u32::from_ne_bytes(b[8..12].try_into().unwrap()),
            payload: &b[16..len],
        };
        b = &b[(len + 3) & !3..];
        Some(Ok(r))
    })
}

/// The attributes in `b`: (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes(b[0..2].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes(b[2..4].try_into().unwrap()) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((ty, payload))
    })
}

fn string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn be32(b: &[u8]) -> u32 {
    b.get(..4)
        .map_or(0, |x| u32::from_be_bytes(x.try_into().unwrap()))
}

impl Socket {
    /// Open a socket in this thread's network namespace.
    pub fn open() -> Result<Socket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        // Refused messages come back whole; room for many of them.
        setsockopt(&fd, sockopt::RcvBufForce, &(16 << 20))?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &TimeVal::from(libc_timeval(30)),
        )?;
        Ok(Socket {
            fd,
            buf: vec![0; 256 * 1024],
        })
    }

    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_buffers(&[msg])
    }

    /// Drop whatever an earlier exchange left unread (after a timeout, say), so that no old
    /// answer is taken for one to the next request: batches number their messages from 1.
    fn drain(&mut self) {
        while let Ok(n) = recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
            if n == 0 {
                break;
            }
        }
    }

    /// Send `buffers` as one datagram (the kernel reads a batch from one).
    fn send_buffers(&mut self, buffers: &[&[u8]]) -> Result<()> {
        self.drain();
        let total: usize = buffers.iter().map(|b| b.len()).sum();
        if total > 200 * 1024 {
            setsockopt(&self.fd, sockopt::SndBufForce, &(total + 64 * 1024))?;
        }
        // At most UIO_MAXIOV (1024) pieces: beyond that, neighbours are joined.
        let joined: Vec<Vec<u8>>;
        let buffers: Vec<&[u8]> = if buffers.len() > 1024 {
            let per = buffers.len().div_ceil(1024);
            joined = buffers.chunks(per).map(|c| c.concat()).collect();
            joined.iter().map(Vec::as_slice).collect()
        } else {
            buffers.to_vec()
        };
        let iov: Vec<std::io::IoSlice> = buffers.iter().map(|b| std::io::IoSlice::new(b)).collect();
        let n = sendmsg::<NetlinkAddr>(self.fd.as_raw_fd(), &iov, &[], MsgFlags::empty(), None)?;
        if n != total {
            return Err(Error::Malformed("short send"));
        }
        Ok(())
    }

    /// Apply `batch` in one transaction. On error nothing of it was applied.
    pub fn commit(&mut self, batch: &Finished) -> Result<()> {
        let messages = &batch.messages;
        if messages.is_empty() {
            return Ok(());
        }
        let last = messages.last().map_or(0, |m| m.0);
        let buffers: Vec<&[u8]> = batch.buffers.iter().map(Vec::as_slice).collect();
        self.send_buffers(&buffers)?;
        let mut failure: Option<Error> = None;
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty())?;
            for r in replies(&self.buf[..n]) {
                let r = r?;
                if r.ty != NLMSG_ERROR {
                    continue;
                }
                let code = r
                    .payload
                    .get(..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                    .ok_or(Error::Malformed("error message"))?;
                if code != 0 && failure.is_none() {
                    failure = Some(Error::Refused {
                        errno: nix::errno::Errno::from_raw(-code),
                        set: messages
                            .iter()
                            .find(|(s, _)| *s == r.seq)
                            .map(|(_, set)| set.clone()),
                    });
                }
                // The last message's answer closes the batch; an answer about the batch
                // header (seq 0) means the batch as a whole failed.
                if r.seq == last || r.seq == 0 {
                    return failure.map_or(Ok(()), Err);
                }
            }
        }
    }

    fn dump(&mut self, ty: u16, family: u8, table_attr: u16, table: &str) -> Result<Vec<Vec<u8>>> {
        let mut w = Writer { buf: Vec::new() };
        let at = w.message(
            NFNL_SUBSYS_NFTABLES << 8 | ty,
            NLM_F_REQUEST | NLM_F_DUMP,
            1,
            family,
            0,
        );
        w.attr_str(table_attr, table);
        w.end_message(at);
        self.send(&w.buf)?;
        let mut out = Vec::new();
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty())?;
            for r in replies(&self.buf[..n]) {
                let r = r?;
                match r.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = r
                            .payload
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                        // A table that does not exist holds nothing.
                        if code == -(nix::errno::Errno::ENOENT as i32) {
                            return Ok(Vec::new());
                        }
                        return Err(Error::Refused {
                            errno: nix::errno::Errno::from_raw(-code),
                            set: None,
                        });
                    }
                    // The attributes follow the 4-byte nfgenmsg.
                    _ => out.push(r.payload.get(4..).unwrap_or_default().to_vec()),
                }
            }
        }
    }

    /// The chains and sets (names and shapes, no elements) of `table`; empty when the table does
    /// not exist.
    pub fn objects(&mut self, family: u8, table: &str) -> Result<Objects> {
        let mut o = Objects::default();
        for msg in self.dump(NFT_MSG_GETCHAIN, family, NFTA_CHAIN_TABLE, table)? {
            let (mut t, mut name) = (String::new(), String::new());
            for (ty, p) in attrs(&msg) {
                match ty {
                    NFTA_CHAIN_TABLE => t = string(p),
                    NFTA_CHAIN_NAME => name = string(p),
                    _ => {}
                }
            }
            if t == table {
                o.chains.push(name);
            }
        }
        for msg in self.dump(NFT_MSG_GETSET, family, NFTA_SET_TABLE, table)? {
            let mut t = String::new();
            let mut s = SetInfo::default();
            for (ty, p) in attrs(&msg) {
                match ty {
                    NFTA_SET_TABLE => t = string(p),
                    NFTA_SET_NAME => s.name = string(p),
                    NFTA_SET_FLAGS => s.flags = be32(p),
                    NFTA_SET_KEY_LEN => s.key_len = be32(p),
                    NFTA_SET_DATA_LEN => s.data_len = be32(p),
                    NFTA_SET_DESC => {
                        for (dt, dp) in attrs(p) {
                            if dt == NFTA_SET_DESC_SIZE {
                                s.size = Some(be32(dp));
                            }
                        }
                    }
                    _ => {}
                }
            }
            if t == table {
                o.sets.push(s);
            }
        }
        o.chains.sort();
        o.sets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(o)
    }
}

fn libc_timeval(secs: i64) -> nix::libc::timeval {
    nix::libc::timeval {
        tv_sec: secs,
        tv_usec: 0,
    }
}

/// Encoders for the kernel's representation of nft's data types in set keys and data: each
/// field of a concatenation takes a whole number of 32-bit registers.
pub mod encode {
    use std::net::Ipv4Addr;

    /// `ipv4_addr`: 4 bytes, network order.
    pub fn ipv4(out: &mut Vec<u8>, ip: Ipv4Addr) {
        out.extend_from_slice(&ip.octets());
    }

    /// `inet_proto`: 1 byte, padded to a register.
    pub fn proto(out: &mut Vec<u8>, p: u8) {
        out.extend_from_slice(&[p, 0, 0, 0]);
    }

    /// `inet_service` (a port): 2 bytes, network order, padded to a register.
    pub fn port(out: &mut Vec<u8>, p: u16) {
        out.extend_from_slice(&p.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
    }

    /// `mark` and other host-order 32-bit integers (`ct mark`, `numgen`).
    pub fn host32(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_framed_and_split() {
        let mut b = Batch::new(FAMILY_IPV4, "t");
        b.flush_set("s");
        for i in 0..5000u32 {
            let mut k = Vec::new();
            encode::host32(&mut k, i);
            b.add_element("s", &k, Some(Data::Verdict(Verdict::Goto("c"))), None);
        }
        b.add_element("other", &[1, 2, 3, 4], None, Some("ns/svc:http"));
        let f = b.finish();
        assert!(f.buffers.len() > 3, "a buffer per message");
        let (buf, messages) = (f.buffers.concat(), f.messages);
        let all: Vec<Reply> = replies(&buf).map(|r| r.unwrap()).collect();
        // BEGIN, flush, several NEWSETELEM for "s", one for "other", END.
        assert_eq!(all.first().unwrap().ty, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(all.last().unwrap().ty, NFNL_MSG_BATCH_END);
        assert_eq!(all.len(), messages.len() + 2);
        assert!(messages.len() > 3, "5000 elements need several messages");
        let mut counted = 0;
        for r in &all[1..all.len() - 1] {
            assert!(r.payload.len() < 64 * 1024);
            for (ty, p) in attrs(&r.payload[4..]) {
                if ty == NFTA_SET_ELEM_LIST_ELEMENTS {
                    counted += attrs(p).count();
                }
            }
        }
        assert_eq!(counted, 5001);
        // Only the last message asks for an acknowledgement.
        let flags_of = |seq: u32| -> u16 {
            let mut at = 0;
            while at < buf.len() {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
                if u32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap()) == seq {
                    return u16::from_ne_bytes(buf[at + 6..at + 8].try_into().unwrap());
                }
                at += len;
            }
            0
        };
        let last = messages.last().unwrap().0;
        assert_ne!(flags_of(last) & NLM_F_ACK, 0);
        assert_eq!(flags_of(messages[0].0) & NLM_F_ACK, 0);
    }

    /// The user data of the element `e` (in a NEWSETELEM message's payload).
    fn userdata_of(payload: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (ty, p) in attrs(&payload[4..]) {
            if ty == NFTA_SET_ELEM_LIST_ELEMENTS {
                for (_, elem) in attrs(p) {
                    for (ty, p) in attrs(elem) {
                        if ty == NFTA_SET_ELEM_USERDATA {
                            out.push(p.to_vec());
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn comments_are_libnftnl_user_data() {
        let mut b = Batch::new(FAMILY_IPV4, "t");
        b.add_element("s", &[1, 2, 3, 4], None, Some("ns/svc:http"));
        b.add_element("s", &[1, 2, 3, 5], None, None);
        let long = "n".repeat(300);
        b.add_element("s", &[1, 2, 3, 6], None, Some(&long));
        let f = b.finish();
        let buf = f.buffers.concat();
        let msg = replies(&buf).map(|r| r.unwrap()).nth(1).unwrap();
        let got = userdata_of(msg.payload);
        let mut want = vec![NFTNL_UDATA_SET_ELEM_COMMENT, 12];
        want.extend_from_slice(b"ns/svc:http\0");
        assert_eq!(
            got.len(),
            2,
            "the element without a comment has no user data"
        );
        assert_eq!(got[0], want);
        // Cut to nft's limit, NUL-terminated.
        assert_eq!(got[1].len(), 2 + COMMENT_MAX + 1);
        assert_eq!(usize::from(got[1][1]), COMMENT_MAX + 1);
        assert_eq!(got[1].last(), Some(&0));
    }
}
