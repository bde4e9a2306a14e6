//! Forwarding of names outside the cluster zone to the upstream resolvers (CoreDNS's
//! `forward . /etc/resolv.conf`), behind a small TTL-respecting cache (CoreDNS's `cache`).
//!
//! One connected UDP socket per upstream, created once (inside the node's network namespace
//! when there is one, so forwarded queries leave from the node); responses are matched to
//! queries by message ID and question, and an ICMP "port unreachable" fails the upstream's
//! pending queries at once. A truncated upstream answer is asked again over TCP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::DnsError;

/// How long one upstream gets before the next is tried.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a positive / negative answer is cached (CoreDNS's cache defaults).
const MAX_SUCCESS_TTL: u32 = 3600;
const MAX_DENIAL_TTL: u32 = 1800;

/// The nameservers of a resolv.conf, port 53.
pub fn resolv_conf_nameservers(path: &Path) -> Vec<SocketAddr> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next())
                .flatten()
                .and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok())
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The resolv.conf of a named network namespace (`ip netns exec`'s convention:
/// `/etc/netns/<name>/resolv.conf` when it exists), else `/etc/resolv.conf`.
pub fn default_upstreams(netns: Option<&str>) -> Vec<SocketAddr> {
    if let Some(ns) = netns {
        let p = Path::new("/etc/netns").join(ns).join("resolv.conf");
        if p.exists() {
            return resolv_conf_nameservers(&p);
        }
    }
    resolv_conf_nameservers(Path::new("/etc/resolv.conf"))
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    name: String,
    qtype: RecordType,
    class: DNSClass,
    /// Answers to DNSSEC-OK queries carry signatures the others must not get.
    dnssec_ok: bool,
}

struct CacheEntry {
    msg: Message,
    stored: Instant,
    expires: Instant,
}

/// A bounded cache of upstream answers; each lives for its smallest TTL (negative answers: the
/// SOA's minimum), and is served with its TTLs counted down.
pub struct Cache {
    cap: usize,
    map: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl Cache {
    pub fn new(cap: usize) -> Self {
        Cache {
            cap,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn key(q: &Query, dnssec_ok: bool) -> CacheKey {
        CacheKey {
            dnssec_ok,
            name: q.name().to_ascii().to_ascii_lowercase(),
            qtype: q.query_type(),
            class: q.query_class(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached answer to `q`, TTLs lowered by its age.
    pub fn get(&self, q: &Query, dnssec_ok: bool, now: Instant) -> Option<Message> {
        let mut map = self.map.lock().ok()?;
        let k = Self::key(q, dnssec_ok);
        let e = map.get(&k)?;
        if e.expires <= now {
            map.remove(&k);
            return None;
        }
        let age = now.duration_since(e.stored).as_secs() as u32;
        let mut msg = e.msg.clone();
        for r in msg
            .answers
            .iter_mut()
            .chain(msg.authorities.iter_mut())
            .chain(msg.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(msg)
    }

    /// How long `msg` may be cached (None: not at all).
    pub fn ttl_of(msg: &Message) -> Option<u32> {
        match msg.metadata.response_code {
            ResponseCode::NoError if !msg.answers.is_empty() => msg
                .answers
                .iter()
                .map(|r| r.ttl)
                .min()
                .map(|t| t.min(MAX_SUCCESS_TTL)),
            ResponseCode::NoError | ResponseCode::NXDomain => {
                msg.authorities.iter().find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(r.ttl.min(soa.minimum).min(MAX_DENIAL_TTL)),
                    _ => None,
                })
            }
            _ => None,
        }
    }

    pub fn put(&self, q: &Query, dnssec_ok: bool, msg: &Message, now: Instant) {
        let Some(ttl) = Self::ttl_of(msg).filter(|t| *t > 0) else {
            return;
        };
        let Ok(mut map) = self.map.lock() else { return };
        if map.len() >= self.cap {
            map.retain(|_, e| e.expires > now);
        }
        if map.len() >= self.cap {
            // Still full of live entries: drop one (any) to stay bounded.
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
        map.insert(
            Self::key(q, dnssec_ok),
            CacheEntry {
                msg: msg.clone(),
                stored: now,
                expires: now + Duration::from_secs(ttl as u64),
            },
        );
    }
}

type Pending = Arc<Mutex<HashMap<u16, oneshot::Sender<Vec<u8>>>>>;

struct Sock {
    sock: Arc<UdpSocket>,
    pending: Pending,
}

/// The forwarder: upstream resolvers, tried in order, with a cache in front.
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    netns: Option<String>,
    /// One connected UDP socket per upstream, so an ICMP "port unreachable" fails the
    /// upstream's pending queries at once instead of after the timeout.
    socks: Vec<Sock>,
    pub cache: Cache,
    metrics: Arc<Metrics>,
}

fn spawn_receiver(sock: Arc<UdpSocket>, pending: Pending) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let n = match sock.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        // Nobody listens there: fail everything waiting on this upstream.
                        if let Ok(mut p) = pending.lock() {
                            p.clear();
                        }
                    } else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
            };
            if n < 12 {
                continue;
            }
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            let tx = pending.lock().ok().and_then(|mut p| p.remove(&id));
            if let Some(tx) = tx {
                let _ = tx.send(buf[..n].to_vec());
            }
        }
    });
}

impl Forwarder {
    /// Must be called inside a tokio runtime.
    pub fn new(
        upstreams: Vec<SocketAddr>,
        netns: Option<String>,
        cache_size: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DnsError> {
        let mut socks = Vec::new();
        let mut reachable = Vec::new();
        for up in &upstreams {
            let any: SocketAddr = if up.is_ipv4() {
                "0.0.0.0:0".parse().expect("valid")
            } else {
                "[::]:0".parse().expect("valid")
            };
            let std = crate::bind::udp(netns.as_deref(), any)?;
            if let Err(e) = std.connect(up) {
                // No route from this namespace (a resolver of the host seen from a node of
                // `svcnet up`): names outside the cluster get SERVFAIL rather than no server.
                tracing::warn!(upstream = %up, error = %e, "upstream unreachable from here; not forwarding to it");
                continue;
            }
            reachable.push(*up);
            let sock = Arc::new(
                UdpSocket::from_std(std)
                    .map_err(|source| DnsError::BindFailed { addr: *up, source })?,
            );
            let pending: Pending = Default::default();
            spawn_receiver(sock.clone(), pending.clone());
            socks.push(Sock { sock, pending });
        }
        Ok(Forwarder {
            socks,
            cache: Cache::new(cache_size),
            metrics,
            netns,
            upstreams: reachable,
        })
    }

    /// Resolve `q` upstream (or from the cache). Err: no upstream answered (SERVFAIL).
    pub async fn resolve(&self, q: &Query, dnssec_ok: bool) -> Result<Message, DnsError> {
        let now = Instant::now();
        if let Some(m) = self.cache.get(q, dnssec_ok, now) {
            self.metrics.cache_hits.inc();
            return Ok(m);
        }
        self.metrics.cache_misses.inc();
        let mut last = DnsError::NoUpstream;
        for (i, up) in self.upstreams.iter().enumerate() {
            self.metrics.forward_requests.inc();
            match self.ask(i, *up, q, dnssec_ok).await {
                Ok(m)
                    if m.metadata.response_code == ResponseCode::ServFail
                        || m.metadata.response_code == ResponseCode::Refused =>
                {
                    last = DnsError::upstream_failed(*up, m.metadata.response_code);
                }
                Ok(m) => {
                    self.cache.put(q, dnssec_ok, &m, Instant::now());
                    self.metrics.cache_entries.set(self.cache.len() as i64);
                    return Ok(m);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn ask(
        &self,
        i: usize,
        up: SocketAddr,
        q: &Query,
        dnssec_ok: bool,
    ) -> Result<Message, DnsError> {
        let fail = |reason: String| DnsError::upstream_failed(up, reason);
        let s = self.socks.get(i).ok_or(DnsError::NoUpstream)?;
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut p = s.pending.lock().map_err(|_| fail("lock".into()))?;
            let mut id: u16 = rand::random();
            while p.contains_key(&id) {
                id = rand::random();
            }
            p.insert(id, tx);
            id
        };
        let bytes = query_bytes(id, q, dnssec_ok).map_err(|e| fail(e.to_string()))?;
        let sent = s.sock.send(&bytes).await;
        let got = match sent {
            Ok(_) => tokio::time::timeout(UPSTREAM_TIMEOUT, rx).await,
            Err(e) => {
                s.pending.lock().ok().map(|mut p| p.remove(&id));
                return Err(fail(e.to_string()));
            }
        };
        let raw = match got {
            Ok(Ok(raw)) => raw,
            Ok(Err(_)) => return Err(fail("refused".into())),
            Err(_) => {
                s.pending.lock().ok().map(|mut p| p.remove(&id));
                return Err(fail("timed out".into()));
            }
        };
        let m = Message::from_vec(&raw).map_err(|e| fail(e.to_string()))?;
        if m.queries
            .first()
            .map(|x| x.name() != q.name() || x.query_type() != q.query_type())
            != Some(false)
        {
            return Err(fail("answer to another question".into()));
        }
        if m.metadata.truncation {
            return self.ask_tcp(up, q, dnssec_ok).await;
        }
        Ok(m)
    }

    async fn ask_tcp(
        &self,
        up: SocketAddr,
        q: &Query,
        dnssec_ok: bool,
    ) -> Result<Message, DnsError> {
        let fail = |reason: String| DnsError::upstream_failed(up, reason);
        let work = async {
            let mut conn = match &self.netns {
                Some(ns) => svcnet_netns::NetNs::open(ns)
                    .map_err(|e| fail(e.to_string()))?
                    .tcp_connect(up, UPSTREAM_TIMEOUT)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
                None => tokio::net::TcpStream::connect(up)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
            };
            let id: u16 = rand::random();
            let bytes = query_bytes(id, q, dnssec_ok).map_err(|e| fail(e.to_string()))?;
            let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            conn.write_all(&framed)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let len = conn.read_u16().await.map_err(|e| fail(e.to_string()))?;
            let mut buf = vec![0u8; len as usize];
            conn.read_exact(&mut buf)
                .await
                .map_err(|e| fail(e.to_string()))?;
            Message::from_vec(&buf).map_err(|e| fail(e.to_string()))
        };
        tokio::time::timeout(UPSTREAM_TIMEOUT, work)
            .await
            .map_err(|_| fail("timed out over TCP".into()))?
    }
}

/// A recursive query for `q` with EDNS0 (payload 1232, the DNS flag day's size).
pub fn query_bytes(
    id: u16,
    q: &Query,
    dnssec_ok: bool,
) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(q.clone());
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(dnssec_ok);
    m.set_edns(e);
    m.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::SOA;
    use hickory_proto::rr::{Name, Record};

    fn q(name: &str) -> Query {
        Query::query(Name::from_ascii(name).unwrap(), RecordType::A)
    }

    fn answer(ttl: u32) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(
            Name::from_ascii("a.example.").unwrap(),
            ttl,
            RData::A(std::net::Ipv4Addr::new(192, 0, 2, 1).into()),
        ));
        m
    }

    fn nxdomain(soa_ttl: u32, minimum: u32) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = ResponseCode::NXDomain;
        let zone = Name::from_ascii("example.").unwrap();
        m.add_authority(Record::from_rdata(
            zone.clone(),
            soa_ttl,
            RData::SOA(SOA::new(zone.clone(), zone, 1, 1, 1, 1, minimum)),
        ));
        m
    }

    #[test]
    fn cached_answers_count_their_ttl_down_and_expire() {
        let c = Cache::new(10);
        let t0 = Instant::now();
        c.put(&q("a.example."), false, &answer(30), t0);
        let hit = c
            .get(&q("A.Example."), false, t0 + Duration::from_secs(10))
            .unwrap();
        assert_eq!(hit.answers[0].ttl, 20, "case-insensitive key, TTL lowered");
        assert!(
            c.get(&q("a.example."), true, t0).is_none(),
            "DO=1 is another key"
        );
        assert!(c
            .get(&q("a.example."), false, t0 + Duration::from_secs(31))
            .is_none());
        assert!(c.is_empty(), "expired entries are dropped when met");
    }

    #[test]
    fn negative_answers_live_for_the_soa_minimum_and_failures_not_at_all() {
        assert_eq!(Cache::ttl_of(&nxdomain(300, 60)), Some(60));
        assert_eq!(Cache::ttl_of(&nxdomain(30, 60)), Some(30));
        assert_eq!(Cache::ttl_of(&answer(999_999)), Some(3600));
        let mut fail = answer(30);
        fail.metadata.response_code = ResponseCode::ServFail;
        assert_eq!(Cache::ttl_of(&fail), None);
        let c = Cache::new(10);
        c.put(&q("a.example."), false, &answer(0), Instant::now());
        assert!(c.is_empty(), "TTL 0 is not cached");
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = Cache::new(3);
        let t0 = Instant::now();
        for i in 0..10 {
            c.put(&q(&format!("n{i}.example.")), false, &answer(60), t0);
        }
        assert_eq!(c.len(), 3);
        assert!(
            c.get(&q("n9.example."), false, t0).is_some(),
            "the newest is kept"
        );
    }

    #[test]
    fn nameservers_from_resolv_conf() {
        let dir = std::env::temp_dir().join(format!("svcnet-dns-resolv-{}", std::process::id()));
        std::fs::write(
            &dir,
            "# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\noptions ndots:5\n",
        )
        .unwrap();
        let got = resolv_conf_nameservers(&dir);
        let _ = std::fs::remove_file(&dir);
        assert_eq!(
            got,
            [
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
