//! The elements of the shared maps and sets, typed. A full sync encodes them straight into a
//! netlink batch (no text written and parsed back), and compares them with what the kernel
//! lists; scripts and partial syncs write them as nft text ([`Elem::write_commented`]).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use svcnet_nfnetlink::{encode, Data};

use crate::model::Protocol;

/// `ip daddr . meta l4proto . th dport`: a ClusterIP, external or load-balancer IP's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Dest {
    pub ip: Ipv4Addr,
    pub proto: Protocol,
    pub port: u16,
}

/// `meta l4proto . th dport`: a node port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct NodePort {
    pub proto: Protocol,
    pub port: u16,
}

/// A verdict map element's verdict (the two kinds the shared maps hold).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Verdict {
    Drop,
    Goto(Box<str>),
}

impl Verdict {
    pub fn goto(chain: impl Into<Box<str>>) -> Verdict {
        Verdict::Goto(chain.into())
    }

    fn write(&self, out: &mut String) {
        match self {
            Verdict::Drop => out.push_str("drop"),
            Verdict::Goto(c) => {
                out.push_str("goto ");
                out.push_str(c);
            }
        }
    }

    fn data(&self) -> Data<'_> {
        Data::Verdict(match self {
            Verdict::Drop => svcnet_nfnetlink::Verdict::Drop,
            Verdict::Goto(c) => svcnet_nfnetlink::Verdict::Goto(c),
        })
    }
}

/// One element of a shared map or set (which one is kept beside it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Elem {
    /// `endpoints`: `number . index : ip . port`.
    Endpoint {
        number: u32,
        index: u32,
        ip: Ipv4Addr,
        port: u16,
    },
    /// `service-ips`, `no-endpoint-services`, `firewall-ips`.
    DestVerdict(Dest, Verdict),
    /// `service-ids`: the Service port's number on the shared dispatch path.
    DestNumber(Dest, u32),
    /// `service-nodeports`, `no-endpoint-nodeports`.
    PortVerdict(NodePort, Verdict),
    /// `nodeport-ids`.
    PortNumber(NodePort, u32),
    /// `cluster-ips`.
    Ip(Ipv4Addr),
    /// `hairpin`: `source . destination`.
    IpPair(Ipv4Addr, Ipv4Addr),
}

/// What an element is written with: the `namespace/name:port` of the Service port that put it
/// there (kube-proxy's `svcPortNameString` on its map elements), shared by all its elements.
/// Not part of the element's identity: two Service ports claiming one key are one element.
pub(crate) type Comment = Option<Arc<str>>;

/// An element and its comment.
pub(crate) type Commented = (Elem, Comment);

/// ` comment "c"` as nft writes it, cut to nft's 128 bytes.
pub(crate) fn push_comment(out: &mut String, c: &str) {
    let mut end = c.len().min(svcnet_nfnetlink::COMMENT_MAX);
    while !c.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(" comment \"");
    out.push_str(&c[..end]);
    out.push('"');
}

fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

impl Elem {
    /// The key as nft writes it (what `delete element` names).
    pub fn write_key(&self, out: &mut String) {
        let dest = |out: &mut String, d: &Dest| {
            push_ip(out, IpAddr::V4(d.ip));
            out.push_str(" . ");
            out.push_str(d.proto.lower());
            out.push_str(" . ");
            push_number(out, u32::from(d.port));
        };
        let node_port = |out: &mut String, p: &NodePort| {
            out.push_str(p.proto.lower());
            out.push_str(" . ");
            push_number(out, u32::from(p.port));
        };
        match self {
            Elem::Endpoint { number, index, .. } => {
                push_number(out, *number);
                out.push_str(" . ");
                push_number(out, *index);
            }
            Elem::DestVerdict(d, _) | Elem::DestNumber(d, _) => dest(out, d),
            Elem::PortVerdict(p, _) | Elem::PortNumber(p, _) => node_port(out, p),
            Elem::Ip(ip) => push_ip(out, IpAddr::V4(*ip)),
            Elem::IpPair(a, b) => {
                push_ip(out, IpAddr::V4(*a));
                out.push_str(" . ");
                push_ip(out, IpAddr::V4(*b));
            }
        }
    }

    /// The element as nft writes it: `key` or `key : value`, with a comment `key comment "c" :
    /// value`.
    pub fn write_commented(&self, out: &mut String, comment: Option<&str>) {
        self.write_key(out);
        if let Some(c) = comment {
            push_comment(out, c);
        }
        match self {
            Elem::Endpoint { ip, port, .. } => {
                out.push_str(" : ");
                push_ip(out, IpAddr::V4(*ip));
                out.push_str(" . ");
                push_number(out, u32::from(*port));
            }
            Elem::DestVerdict(_, v) | Elem::PortVerdict(_, v) => {
                out.push_str(" : ");
                v.write(out);
            }
            Elem::DestNumber(_, n) | Elem::PortNumber(_, n) => {
                out.push_str(" : ");
                push_number(out, *n);
            }
            Elem::Ip(_) | Elem::IpPair(..) => {}
        }
    }

    /// The element without a comment, as nft writes it.
    #[cfg(test)]
    pub fn text(&self) -> String {
        self.text_commented(None)
    }

    /// [`Elem::write_commented`] into a new string.
    pub fn text_commented(&self, comment: Option<&str>) -> String {
        let mut s = String::with_capacity(64);
        self.write_commented(&mut s, comment);
        s
    }

    /// [`Elem::write_key`] into a new string.
    pub fn key_text(&self) -> String {
        let mut s = String::with_capacity(24);
        self.write_key(&mut s);
        s
    }

    /// The key (into `key`) and data (in `data`, or the verdict) as the kernel stores them: the
    /// types the shared maps and sets are declared with in `render_full_sync`.
    pub fn encode<'a>(&'a self, key: &mut Vec<u8>, data: &'a mut Vec<u8>) -> Option<Data<'a>> {
        key.clear();
        data.clear();
        let dest = |key: &mut Vec<u8>, d: &Dest| {
            encode::ipv4(key, d.ip);
            encode::proto(key, proto_number(d.proto));
            encode::port(key, d.port);
        };
        let node_port = |key: &mut Vec<u8>, p: &NodePort| {
            encode::proto(key, proto_number(p.proto));
            encode::port(key, p.port);
        };
        match self {
            Elem::Endpoint {
                number,
                index,
                ip,
                port,
            } => {
                encode::host32(key, *number);
                encode::host32(key, *index);
                encode::ipv4(data, *ip);
                encode::port(data, *port);
                Some(Data::Value(data))
            }
            Elem::DestVerdict(d, v) => {
                dest(key, d);
                Some(v.data())
            }
            Elem::DestNumber(d, n) => {
                dest(key, d);
                encode::host32(data, *n);
                Some(Data::Value(data))
            }
            Elem::PortVerdict(p, v) => {
                node_port(key, p);
                Some(v.data())
            }
            Elem::PortNumber(p, n) => {
                node_port(key, p);
                encode::host32(data, *n);
                Some(Data::Value(data))
            }
            Elem::Ip(ip) => {
                encode::ipv4(key, *ip);
                None
            }
            Elem::IpPair(a, b) => {
                encode::ipv4(key, *a);
                encode::ipv4(key, *b);
                None
            }
        }
    }
}

fn hash128(v: impl std::hash::Hash + Copy) -> u128 {
    use std::hash::BuildHasher;
    let a = foldhash::quality::FixedState::with_seed(0x243f_6a88_85a3_08d3).hash_one(v);
    let b = foldhash::quality::FixedState::with_seed(0x1319_8a2e_0370_7344).hash_one(v);
    (u128::from(a) << 64) | u128::from(b)
}

/// A shared element's identity in the reference counts of `Numbering`: two fixed-seed 64-bit
/// hashes of (set, element) rather than a copy of the element. A collision among a table's
/// elements (about 1e-29 at 230k) would at worst keep or drop one element until the next full
/// sync.
pub(crate) fn element_id(set: &str, e: &Elem) -> u128 {
    hash128((set, e))
}

/// `n` in decimal, without the formatting machinery: a full sync's script (tests, dumps) and
/// partial syncs write many element numbers and addresses.
pub(crate) fn push_number(out: &mut String, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|&b| char::from(b)));
}

/// An address as nft writes it (dotted quad for IPv4), as [`push_number`].
pub(crate) fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_number(out, u32::from(o));
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(ip: &str, proto: Protocol, port: u16) -> Dest {
        Dest {
            ip: ip.parse().unwrap(),
            proto,
            port,
        }
    }

    #[test]
    fn numbers_and_addresses_as_display_writes_them() {
        for n in [0u32, 7, 10, 99, 100, 65535, 4_000_000_000, u32::MAX] {
            let mut s = String::new();
            push_number(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for ip in ["0.0.0.0", "10.96.0.1", "255.255.255.255", "fd00::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
    }

    #[test]
    fn text_as_nft_writes_elements() {
        let d = dest("10.96.0.1", Protocol::Tcp, 80);
        let np = NodePort {
            proto: Protocol::Udp,
            port: 30002,
        };
        let cases = [
            (
                Elem::Endpoint {
                    number: 3,
                    index: 1,
                    ip: "10.244.1.5".parse().unwrap(),
                    port: 8080,
                },
                "3 . 1 : 10.244.1.5 . 8080",
                "3 . 1",
            ),
            (
                Elem::DestVerdict(d, Verdict::goto("cluster-3")),
                "10.96.0.1 . tcp . 80 : goto cluster-3",
                "10.96.0.1 . tcp . 80",
            ),
            (
                Elem::DestNumber(dest("10.96.0.1", Protocol::Sctp, 9), 12),
                "10.96.0.1 . sctp . 9 : 12",
                "10.96.0.1 . sctp . 9",
            ),
            (
                Elem::PortVerdict(np, Verdict::Drop),
                "udp . 30002 : drop",
                "udp . 30002",
            ),
            (Elem::PortNumber(np, 4), "udp . 30002 : 4", "udp . 30002"),
            (
                Elem::Ip("10.96.0.10".parse().unwrap()),
                "10.96.0.10",
                "10.96.0.10",
            ),
            (
                Elem::IpPair("10.244.0.2".parse().unwrap(), "10.244.0.2".parse().unwrap()),
                "10.244.0.2 . 10.244.0.2",
                "10.244.0.2 . 10.244.0.2",
            ),
        ];
        for (e, text, key) in cases {
            assert_eq!(e.text(), text);
            assert_eq!(e.key_text(), key);
        }
        // kube-proxy's `add element ... { 172.30.0.44 . tcp . 80 comment "ns4/svc4:p80" : ... }`.
        let e = Elem::DestVerdict(d, Verdict::goto("cluster-3"));
        assert_eq!(
            e.text_commented(Some("ns1/svc1:p80")),
            "10.96.0.1 . tcp . 80 comment \"ns1/svc1:p80\" : goto cluster-3"
        );
        let long = "x".repeat(200);
        assert_eq!(e.text_commented(Some(&long)).matches('x').count(), 128);
    }

    #[test]
    fn encoding_pads_each_field_to_a_register() {
        let (mut k, mut d) = (Vec::new(), Vec::new());
        let e = Elem::DestVerdict(dest("10.96.0.1", Protocol::Udp, 53), Verdict::goto("c"));
        let data = e.encode(&mut k, &mut d);
        assert_eq!(k, [10, 96, 0, 1, 17, 0, 0, 0, 0, 53, 0, 0]);
        assert_eq!(
            data,
            Some(Data::Verdict(svcnet_nfnetlink::Verdict::Goto("c")))
        );
        let e = Elem::Endpoint {
            number: 1,
            index: 2,
            ip: "10.0.0.9".parse().unwrap(),
            port: 8080,
        };
        let data = e.encode(&mut k, &mut d).map(|d| format!("{d:?}"));
        let mut want = 1u32.to_ne_bytes().to_vec();
        want.extend(2u32.to_ne_bytes());
        assert_eq!(k, want);
        assert_eq!(
            data,
            Some(format!(
                "{:?}",
                Data::Value(&[10, 0, 0, 9, 0x1f, 0x90, 0, 0])
            ))
        );
        assert_eq!(
            Elem::Ip("1.2.3.4".parse().unwrap()).encode(&mut k, &mut d),
            None
        );
        assert_eq!(k, [1, 2, 3, 4]);
    }
}
