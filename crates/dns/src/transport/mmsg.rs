//! Batched UDP I/O for the workers: `recvmmsg` (waiting for the first packet only) and
//! `sendmmsg`, so a burst of queries costs two system calls rather than two per query.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

/// Packets per system call.
pub const BATCH: usize = 32;
/// The largest UDP payload (a bigger datagram is cut, and its request answered as garbage).
const MAX_PACKET: usize = 65535;

/// Receive buffers and headers for [`BATCH`] packets, reused for every call.
pub struct Batch {
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// The raw pointers inside point into the struct's own vectors only.
unsafe impl Send for Batch {}

impl Batch {
    pub fn new() -> Self {
        Batch {
            bufs: vec![0u8; BATCH * MAX_PACKET],
            // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs; all-zero is valid.
            addrs: vec![unsafe { zeroed() }; BATCH],
            iovs: vec![unsafe { zeroed() }; BATCH],
            hdrs: vec![unsafe { zeroed() }; BATCH],
        }
    }

    /// Block until at least one packet arrives, take what else is queued (up to [`BATCH`]);
    /// returns how many. Packet `i` is [`Batch::packet`].
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * MAX_PACKET..].as_mut_ptr().cast(),
                iov_len: MAX_PACKET,
            };
            let h = &mut self.hdrs[i];
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the sizes given, owned by `self`.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Packet `i` of the last [`Batch::recv`]: its bytes and sender (None: not an IP sender).
    pub fn packet(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let len = (self.hdrs[i].msg_len as usize).min(MAX_PACKET);
        let bytes = &self.bufs[i * MAX_PACKET..i * MAX_PACKET + len];
        (bytes, from_storage(&self.addrs[i]))
    }
}

fn from_storage(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_storage(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage; the casts write the family's own layout,
    // which fits in sockaddr_storage by definition.
    unsafe {
        let mut s: libc::sockaddr_storage = zeroed();
        match a {
            SocketAddr::V4(v4) => {
                let p = (&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                (*p).sin_family = libc::AF_INET as libc::sa_family_t;
                (*p).sin_port = v4.port().to_be();
                (*p).sin_addr.s_addr = u32::from(*v4.ip()).to_be();
                (s, size_of::<libc::sockaddr_in>() as libc::socklen_t)
            }
            SocketAddr::V6(v6) => {
                let p = (&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                (*p).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*p).sin6_port = v6.port().to_be();
                (*p).sin6_addr.s6_addr = v6.ip().octets();
                (*p).sin6_flowinfo = v6.flowinfo();
                (*p).sin6_scope_id = v6.scope_id();
                (s, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
            }
        }
    }
}

/// Send every `(bytes, to)` with as few `sendmmsg` calls as it takes; a datagram the kernel
/// refuses is dropped (UDP promises no delivery), the rest still go.
pub fn send_all(sock: &UdpSocket, out: &[(Vec<u8>, SocketAddr)]) {
    let mut addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
        out.iter().map(|(_, to)| to_storage(to)).collect();
    let mut iovs: Vec<libc::iovec> = out
        .iter()
        .map(|(b, _)| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: all-zero is a valid mmsghdr; the pointers set below stay valid during the calls.
    let mut hdrs: Vec<libc::mmsghdr> = (0..out.len()).map(|_| unsafe { zeroed() }).collect();
    for (i, h) in hdrs.iter_mut().enumerate() {
        h.msg_hdr.msg_name = (&mut addrs[i].0 as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = addrs[i].1;
        h.msg_hdr.msg_iov = &mut iovs[i];
        h.msg_hdr.msg_iovlen = 1;
    }
    let mut start = 0;
    while start < hdrs.len() {
        // SAFETY: hdrs[start..] are initialised headers pointing at live buffers.
        let n = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                hdrs[start..].as_mut_ptr(),
                (hdrs.len() - start) as libc::c_uint,
                0,
            )
        };
        if n <= 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            start += 1; // this one cannot go; try the rest
        } else {
            start += n as usize;
        }
    }
}
