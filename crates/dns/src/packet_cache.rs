//! The packet cache (as PowerDNS's): complete encoded responses to plain queries, keyed by the
//! request's bytes, served with only the ID patched — no hickory parse, zone lookup, record
//! building or encode on a hit.
//!
//! # Why
//!
//! With about one core for the server, the full query path (parse, a zone lookup that builds
//! `Record`s, the encoder's compression tables, the truncation check) is mostly allocator and
//! hickory time. A cluster's clients ask the same few questions over and over, and between two
//! zone changes the answer to the same request is the same bytes.
//!
//! # Why a hit is byte-identical to the full path
//!
//! The key is the whole request except its 2-byte ID (bytes `2..`: flags, counts, question with
//! the name's case as sent, the OPT record) plus the transport. Two requests with the same key
//! therefore differ only in their ID, and the full path ([`crate::handler::Handler::handle_now`])
//! is a function of the request bytes, the zone and the transport that copies the ID into the
//! response's first two bytes and uses it nowhere else. So the cached bytes with the ID
//! replaced are what the full path would have sent, as long as the zone is the one the entry
//! was computed from — which the generation guarantees (below).
//!
//! The name is deliberately *not* lower-cased in the key: the full path echoes the query's
//! case in the question and in every owner name, and hickory's name compression compares
//! labels byte for byte (case-sensitively), so the layout of a response — which names become
//! pointers, hence its length — depends on the case pattern (e.g. the SOA owner
//! `cluster.local.` of an NXDOMAIN is a pointer into the question
//! `missing.default.svc.cluster.local.` but partly written out after
//! `missing.default.svc.CLUSTER.local.`; see the handler's packet cache tests). Patching the
//! case of a cached response would not be what the full path sends; a differently-cased query
//! is simply another entry.
//!
//! Only *plain* queries are looked up or stored ([`key`]): QR = 0, opcode QUERY, one question
//! whose name is written out label by label (no compression pointer, no extended label
//! types), no answer or authority records, and at most one additional record, an OPT of EDNS
//! version 0 with no options (a cookie, TSIG, ECS or anything else goes the full path), and
//! nothing after it. That also bounds a key to 12 + 255 + 4 + 11 bytes.
//!
//! Only answers computed from the cluster zone are stored (the caller decides: positive,
//! NXDOMAIN and NODATA with SOA, truncated or not); forwarded answers (with their own TTL cache
//! in `forward.rs`), ExternalName targets resolved upstream, SERVFAIL before the first sync
//! and error replies never are. The zone answers are deterministic (no rotation or shuffle),
//! so caching them changes no behaviour.
//!
//! # Invalidation
//!
//! [`crate::watch::ZoneHandle`] numbers its zones: every swap increments a generation,
//! published together with the zone. An answer is stored with the generation of the zone it
//! was computed from, and a lookup passes the current generation: each shard keeps entries of
//! exactly one generation; a lookup with another generation misses, and an insert of a newer
//! generation first clears the shard (an insert computed from an older zone is dropped). So
//! once a new zone is swapped in no query is answered from an older one, including by a
//! worker that was still computing from the old zone during the swap.
//!
//! # Size and contention
//!
//! An entry is one allocation (key and response together) in a map by the key's 64-bit hash,
//! so a hit costs one hash of the key and about three cache lines (map control bytes, bucket,
//! entry) — with tens of thousands of entries those are memory misses, which dominated the
//! hit in a profile with separate key and value allocations. [`SHARDS`] shards, each behind
//! its own mutex (held only to look up and copy, or to insert), picked by the key's hash, so
//! the UDP worker threads and TCP connections rarely meet on one. Each shard holds at most `capacity / SHARDS` entries per transport and
//! [`MAX_BYTES`]` / SHARDS` bytes; a full shard is cleared (amortised O(1) per insert, no
//! eviction bookkeeping).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;

use hickory_proto::op::ResponseCode;

use crate::metrics::{Proto, TypeLabel, TYPE_LABELS};

/// Shards of the cache (a power of two).
pub const SHARDS: usize = 16;
/// The default number of entries (the benchmark's ~50k distinct questions fit).
pub const DEFAULT_CAPACITY: usize = 65_536;
/// The most bytes of entries the cache holds (with responses of up to 64 KiB over TCP, and
/// any number of case variants of a name, an entry count alone would not bound memory).
pub const MAX_BYTES: usize = 32 << 20;

/// The header is 12 bytes; a key leaves out the 2-byte ID.
const HEADER: usize = 12;
/// The OPT record of a plain query: root name, type, class, TTL, RDLENGTH 0.
const OPT_LEN: usize = 11;
/// The most a wire name takes (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;

/// The cache key of `packet` (its bytes after the ID) if it is a plain query (see the module
/// documentation); None: not cacheable, take the full path. Walks the header and question only.
pub fn key(packet: &[u8]) -> Option<&[u8]> {
    if packet.len() < HEADER + 1 + 4 || packet.len() > HEADER + MAX_NAME + 4 + OPT_LEN {
        return None;
    }
    // QR (0x80) clear, opcode (0x78) QUERY; the other flag bits are part of the key.
    if packet[2] & 0xf8 != 0 {
        return None;
    }
    let count = |i: usize| u16::from_be_bytes([packet[i], packet[i + 1]]);
    let additional = count(10);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || additional > 1 {
        return None;
    }
    // The question name: length-prefixed labels up to the root label.
    let mut i = HEADER;
    loop {
        let len = *packet.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // a compression pointer or an extended label type
        }
        i += len;
        if i - HEADER >= MAX_NAME {
            return None; // no room left for the root label
        }
    }
    i += 4; // QTYPE, QCLASS
    let end = if additional == 0 {
        i
    } else {
        // OPT: root owner, TYPE 41, CLASS (payload size), TTL (extended rcode, version,
        // flags), RDLENGTH 0. Version 0 only (others get BADVERS on the full path).
        let opt = packet.get(i..i + OPT_LEN)?;
        if opt[0] != 0 || opt[1..3] != [0, 41] || opt[6] != 0 || opt[9..11] != [0, 0] {
            return None;
        }
        i + OPT_LEN
    };
    (end == packet.len()).then(|| &packet[2..])
}

/// A cached entry, one allocation (so a hit touches one more cache line or two, not a key and
/// a value apart): `[rcode: u16][type label: u8][key length: u16][key][response]`.
type Entry = Box<[u8]>;
const ENTRY_HEADER: usize = 5;

/// Entries by the 64-bit hash of their key (the key itself is checked in the entry: a hash
/// collision is a miss, and the later insert replaces the entry).
type Map = HashMap<u64, Entry, BuildHasherDefault<Prehashed>>;

/// The map's hasher: the key is already a hash.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; anything else still works, just slower.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Shard {
    /// The zone generation every entry here was computed from.
    generation: u64,
    /// By transport: UDP, TCP (their size limits differ).
    maps: [Map; 2],
    /// The bytes of the entries in `maps`.
    bytes: usize,
}

impl Shard {
    fn clear(&mut self) {
        self.maps.iter_mut().for_each(Map::clear);
        self.bytes = 0;
    }
}

/// A hit: the response with the request's ID, and what the metrics count.
pub struct Hit {
    pub bytes: Vec<u8>,
    pub rcode: ResponseCode,
    pub qtype: TypeLabel,
}

/// The packet cache; see the module documentation.
pub struct PacketCache {
    shards: Vec<Mutex<Shard>>,
    /// Entries per shard and transport (0: the cache is disabled).
    per_shard: usize,
    /// Hashes keys (seeded at random, as std's maps).
    hasher: foldhash::fast::RandomState,
}

fn transport(proto: Proto) -> usize {
    match proto {
        Proto::Udp => 0,
        Proto::Tcp => 1,
    }
}

impl Default for PacketCache {
    fn default() -> Self {
        PacketCache::new(DEFAULT_CAPACITY)
    }
}

impl PacketCache {
    /// A cache of about `capacity` entries per transport (0: disabled, every lookup misses).
    pub fn new(capacity: usize) -> Self {
        PacketCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        generation: 0,
                        maps: Default::default(),
                        bytes: 0,
                    })
                })
                .collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: Default::default(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.per_shard > 0
    }

    /// The key's hash and its shard, locked. The shard is picked with bits the map uses for
    /// neither its bucket index (low bits) nor its tags (top 7 bits).
    fn shard(&self, key: &[u8]) -> (u64, std::sync::MutexGuard<'_, Shard>) {
        let h = self.hasher.hash_one(key);
        let i = (h >> 32) as usize & (SHARDS - 1);
        let g = match self.shards[i].lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        (h, g)
    }

    /// The cached response to `packet` (whose [`key`] is `key`) computed from zone
    /// `generation`, with `packet`'s ID.
    pub fn get(&self, proto: Proto, key: &[u8], packet: &[u8], generation: u64) -> Option<Hit> {
        if !self.is_enabled() {
            return None;
        }
        let (mut bytes, rcode, qtype) = {
            let (h, shard) = self.shard(key);
            if shard.generation != generation {
                return None;
            }
            let e = shard.maps[transport(proto)].get(&h)?;
            let key_len = u16::from_be_bytes([e[3], e[4]]) as usize;
            let stored = &e[ENTRY_HEADER..ENTRY_HEADER + key_len];
            if stored != key {
                return None;
            }
            (
                e[ENTRY_HEADER + key_len..].to_vec(),
                u16::from_be_bytes([e[0], e[1]]),
                e[2],
            )
        };
        bytes[..2].copy_from_slice(&packet[..2]);
        Some(Hit {
            bytes,
            rcode: <ResponseCode as From<u16>>::from(rcode),
            qtype: match qtype as usize {
                i if i < TYPE_LABELS.len() => TypeLabel::Known(i),
                _ => TypeLabel::Other,
            },
        })
    }

    /// Remember `response` to the request with key `key`, computed from zone `generation`.
    pub fn insert(
        &self,
        proto: Proto,
        key: &[u8],
        generation: u64,
        response: &[u8],
        rcode: ResponseCode,
        qtype: TypeLabel,
    ) {
        if !self.is_enabled() || response.len() < HEADER || key.len() > u16::MAX as usize {
            return;
        }
        let (h, mut shard) = self.shard(key);
        if generation < shard.generation {
            return; // computed from a zone that has been replaced since
        }
        if generation > shard.generation {
            shard.generation = generation;
            shard.clear();
        }
        let size = ENTRY_HEADER + key.len() + response.len();
        let map = &shard.maps[transport(proto)];
        let full = map.len() >= self.per_shard && !map.contains_key(&h);
        if full || shard.bytes + size > MAX_BYTES / SHARDS {
            shard.clear();
        }
        let mut e = Vec::with_capacity(size);
        e.extend_from_slice(&u16::from(rcode).to_be_bytes());
        e.push(qtype.index() as u8);
        e.extend_from_slice(&(key.len() as u16).to_be_bytes());
        e.extend_from_slice(key);
        e.extend_from_slice(response);
        shard.bytes += size;
        if let Some(old) = shard.maps[transport(proto)].insert(h, e.into_boxed_slice()) {
            shard.bytes -= old.len();
        }
    }

    /// Entries of every generation and transport (for tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(g) => g.maps.iter().map(Map::len).sum::<usize>(),
                Err(p) => p.into_inner().maps.iter().map(Map::len).sum(),
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};

    fn packet(name: &str, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn plain_queries_have_a_key_and_the_rest_none() {
        let p = packet("Nginx.default.svc.cluster.local.", None);
        assert_eq!(key(&p), Some(&p[2..]));
        let e = packet("nginx.default.svc.cluster.local.", Some(1232));
        assert_eq!(key(&e), Some(&e[2..]));
        // The root name, and the longest name (255 bytes on the wire).
        assert!(key(&packet(".", None)).is_some());
        let longest = format!("{0}.{0}.{0}.{1}.", "a".repeat(63), "b".repeat(61));
        let l = packet(&longest, Some(4096));
        assert_eq!(l.len(), HEADER + MAX_NAME + 4 + OPT_LEN);
        assert!(key(&l).is_some());
        // One byte more: a label that leaves no room for the root.
        let mut over = l[..HEADER + MAX_NAME - 1].to_vec();
        let last = HEADER + 3 * 64;
        over[last] = 62;
        over.extend_from_slice(&[b'b', 0, 0, 1, 0, 1]);
        assert_eq!(key(&over), None);
        // Truncated anywhere: none.
        for n in 0..p.len() {
            assert_eq!(key(&p[..n]), None, "cut at {n}");
        }
        for n in 0..e.len() {
            assert_eq!(key(&e[..n]), None, "cut at {n}");
        }
        // Trailing bytes.
        let mut t = p.clone();
        t.push(0);
        assert_eq!(key(&t), None);
        // A response, another opcode.
        let mut r = p.clone();
        r[2] |= 0x80;
        assert_eq!(key(&r), None);
        let mut n = p.clone();
        n[2] |= 4 << 3;
        assert_eq!(key(&n), None);
        // QDCOUNT 2, an answer record, an authority record, two additional.
        for (at, v) in [(5, 2u8), (7, 1), (9, 1), (11, 2)] {
            let mut c = e.clone();
            c[at] = v;
            assert_eq!(key(&c), None, "count at {at}");
        }
        // A compression pointer in the question (to the header, the rest of the name dropped).
        let mut c = p[..12].to_vec();
        c.extend_from_slice(&[5, b'N', b'g', b'i', b'n', b'x', 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(key(&c), None);
        // An extended label type.
        let mut x = p.clone();
        x[12] = 0x41;
        assert_eq!(key(&x), None);
        // EDNS version 1, an OPT with an option (a cookie), an OPT with an owner name.
        let opt = e.len() - OPT_LEN;
        let mut v = e.clone();
        v[opt + 6] = 1;
        assert_eq!(key(&v), None);
        let mut o = e.clone();
        o[opt + 10] = 12;
        o.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(key(&o), None);
        let mut w = e.clone();
        w[opt] = 1;
        assert_eq!(key(&w), None);
        // Not an OPT in additional.
        let mut a = e.clone();
        a[opt + 2] = 1;
        assert_eq!(key(&a), None);
    }

    #[test]
    fn hits_patch_the_id_and_follow_generations() {
        let c = PacketCache::new(64);
        let p = packet("a.cluster.local.", None);
        let k = key(&p).unwrap();
        let resp = {
            let mut r = p.clone();
            r[2] |= 0x80;
            r
        };
        assert!(c.get(Proto::Udp, k, &p, 1).is_none());
        c.insert(
            Proto::Udp,
            k,
            1,
            &resp,
            ResponseCode::NoError,
            TypeLabel::of(RecordType::A),
        );
        let mut q = p.clone();
        q[..2].copy_from_slice(&[0xbe, 0xef]);
        let hit = c.get(Proto::Udp, key(&q).unwrap(), &q, 1).unwrap();
        assert_eq!(&hit.bytes[..2], &[0xbe, 0xef]);
        assert_eq!(hit.bytes[2..], resp[2..]);
        assert_eq!(hit.rcode, ResponseCode::NoError);
        // Another transport, another generation: misses.
        assert!(c.get(Proto::Tcp, k, &p, 1).is_none());
        assert!(c.get(Proto::Udp, k, &p, 2).is_none());
        // An insert from an older zone after a newer one is dropped; a newer one clears.
        c.insert(
            Proto::Udp,
            k,
            2,
            &resp,
            ResponseCode::NoError,
            TypeLabel::Other,
        );
        c.insert(
            Proto::Udp,
            k,
            1,
            &p,
            ResponseCode::NoError,
            TypeLabel::Other,
        );
        assert_eq!(c.get(Proto::Udp, k, &p, 2).unwrap().bytes[2..], resp[2..]);
        assert!(c.get(Proto::Udp, k, &p, 1).is_none());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn bounded_and_disabled() {
        let c = PacketCache::new(SHARDS * 4);
        for i in 0..10_000 {
            let p = packet(&format!("n{i}.cluster.local."), None);
            c.insert(
                Proto::Udp,
                key(&p).unwrap(),
                1,
                &p,
                ResponseCode::NoError,
                TypeLabel::Other,
            );
            assert!(c.len() <= SHARDS * 4);
        }
        // Large responses: bounded by bytes too.
        let c = PacketCache::new(1 << 20);
        let big = vec![0u8; 60_000];
        for i in 0..2_000 {
            let p = packet(&format!("n{i}.cluster.local."), None);
            let k = key(&p).unwrap();
            c.insert(
                Proto::Tcp,
                k,
                1,
                &big,
                ResponseCode::NoError,
                TypeLabel::Other,
            );
            assert!(c.get(Proto::Tcp, k, &p, 1).is_some());
        }
        assert!(c.len() * big.len() <= MAX_BYTES, "{} entries", c.len());
        let off = PacketCache::new(0);
        let p = packet("a.cluster.local.", None);
        off.insert(
            Proto::Udp,
            key(&p).unwrap(),
            1,
            &p,
            ResponseCode::NoError,
            TypeLabel::Other,
        );
        assert!(off.is_empty() && off.get(Proto::Udp, key(&p).unwrap(), &p, 1).is_none());
    }
}
