//! The request handler (hickory's `server/request_handler.rs`): what to answer, for UDP and TCP
//! alike, without a socket — the transports ([`crate::transport`]) hand it bytes and send back
//! what it returns. A question in the cluster zone is answered from the current
//! [`crate::ClusterZone`] (SERVFAIL until the watches have synced); everything else goes to the
//! [`Forwarder`]. Over UDP a response is cut to the client's EDNS0 payload size (512 without
//! EDNS0): the longest prefix of answers, then authority, then additional records, and only
//! dropping answers or authority sets TC (as miekg/dns's `Truncate`, which CoreDNS uses); TCP
//! gets it all. Answers from the zone to plain queries are kept, encoded, in the packet cache
//! ([`crate::packet_cache`]) and a repeated query is answered from there without being parsed.
//!
//! The path is split at its first wait: [`Handler::handle_now`] (parse, answer from the zone,
//! encode; no I/O — what the UDP workers run per packet and the fuzz target feeds) and
//! [`Handler::complete`] (only for names forwarded upstream or ExternalName targets outside the
//! zone).

use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::forward::Forwarder;
use crate::metrics::{Metrics, Proto, TypeLabel};
use crate::packet_cache::{self, PacketCache};
use crate::watch::ZoneHandle;

/// The EDNS0 payload size this server advertises and the most it sends over UDP.
pub const MAX_UDP_PAYLOAD: u16 = 4096;
/// The UDP size without EDNS0 (RFC 1035).
pub const MIN_UDP_PAYLOAD: u16 = 512;

/// The request handler (hickory's `RequestHandler`): everything a query needs to be answered —
/// the current zone, the forwarder, the metrics and the packet cache — and nothing of sockets.
pub struct Handler {
    pub zone: ZoneHandle,
    pub forwarder: Forwarder,
    pub metrics: Arc<Metrics>,
    /// Encoded answers from the zone to plain queries ([`crate::packet_cache`]).
    pub packet_cache: PacketCache,
}

fn error_reply(req: &Message, rcode: ResponseCode) -> Message {
    let mut m = Message::error_msg(req.metadata.id, req.metadata.op_code, rcode);
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.checking_disabled = req.metadata.checking_disabled;
    m.add_queries(req.queries.iter().cloned());
    if req.edns.is_some() {
        m.set_edns(our_edns());
    }
    m
}

fn our_edns() -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(MAX_UDP_PAYLOAD);
    e
}

/// Encode `m` to fit `limit` bytes as miekg/dns's `Truncate` (which CoreDNS uses): keep the
/// longest prefix of the answers, then of the authority, then of the additional records that
/// fits; TC is set only when answer or authority records were dropped. OPT is always kept.
pub fn encode_within(mut m: Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = m.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    let answers = std::mem::take(&mut m.answers);
    let authority = std::mem::take(&mut m.authorities);
    let additional = std::mem::take(&mut m.additionals);
    let n_ans = longest_prefix(&mut m, limit, &answers, |m, v| m.answers = v)?;
    let n_auth = if n_ans == answers.len() {
        longest_prefix(&mut m, limit, &authority, |m, v| m.authorities = v)?
    } else {
        0
    };
    if n_ans == answers.len() && n_auth == authority.len() {
        longest_prefix(&mut m, limit, &additional, |m, v| m.additionals = v)?;
    } else {
        m.metadata.truncation = true;
    }
    m.to_vec().ok()
}

/// The longest prefix of `all` that, set with `set`, keeps `m` within `limit` (binary search);
/// leaves `m` with that prefix set.
fn longest_prefix(
    m: &mut Message,
    limit: usize,
    all: &[hickory_proto::rr::Record],
    set: impl Fn(&mut Message, Vec<hickory_proto::rr::Record>),
) -> Option<usize> {
    let (mut lo, mut hi) = (0usize, all.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        set(m, all[..mid].to_vec());
        if m.to_vec().ok()?.len() <= limit {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    set(m, all[..lo].to_vec());
    Some(lo)
}

/// What the synchronous part of the query path ([`Handler::handle_now`]) decided.
pub enum Step {
    /// The encoded answer (None: nothing to send back, e.g. a response or a runt).
    Reply(Option<Vec<u8>>),
    /// The answer needs the upstream resolvers (a name outside the zone, or the target of an
    /// ExternalName): finish it with [`Handler::complete`].
    Later(Box<Pending>),
}

/// A query waiting on the forwarder.
pub struct Pending {
    req: Message,
    proto: Proto,
    qtype: RecordType,
    started: Instant,
    wait: Wait,
}

enum Wait {
    /// Forward the question as it is.
    Forward,
    /// This local answer ends in a CNAME to `target` outside the zone: resolve it and append.
    Chase(Box<Message>, Name),
}

impl Handler {
    /// Answer one wire-format request (None: nothing to send back, e.g. a response or garbage).
    pub async fn handle(&self, req: &[u8], proto: Proto) -> Option<Vec<u8>> {
        match self.handle_now(req, proto) {
            Step::Reply(r) => r,
            Step::Later(p) => self.complete(*p).await,
        }
    }

    /// The query path up to the first wait, without I/O: parse `req`, answer it from the
    /// cluster zone and encode the answer — or say that it needs the forwarder. This is what
    /// the UDP workers run for every packet (and what the fuzz target feeds).
    ///
    /// A plain query (see [`crate::packet_cache`]) is first looked up in the packet cache; a hit is
    /// counted in the same metrics as a full answer and sent without parsing anything.
    pub fn handle_now(&self, req: &[u8], proto: Proto) -> Step {
        let started = Instant::now();
        let key = if self.packet_cache.is_enabled() {
            packet_cache::key(req)
        } else {
            None
        };
        if let Some(k) = key {
            if let Some(hit) = self.packet_cache.get(proto, k, req, self.zone.generation()) {
                self.metrics.packet_cache_hits.inc();
                self.metrics.request(proto, hit.qtype).inc();
                self.metrics.count_response(hit.rcode);
                self.metrics
                    .duration(hit.qtype)
                    .observe(started.elapsed().as_secs_f64());
                return Step::Reply(Some(hit.bytes));
            }
            self.metrics.packet_cache_misses.inc();
        }
        let req = match Message::from_vec(req) {
            Ok(m) => m,
            Err(_) if req.len() >= 12 && req[2] & 0x80 == 0 => {
                let id = u16::from_be_bytes([req[0], req[1]]);
                let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
                self.count(&m, TypeLabel::Other, started);
                return Step::Reply(m.to_vec().ok());
            }
            Err(_) => return Step::Reply(None),
        };
        if req.metadata.message_type != MessageType::Query {
            return Step::Reply(None);
        }
        let qtype = req
            .queries
            .first()
            .map(|q| q.query_type())
            .unwrap_or(RecordType::Unknown(0));
        self.metrics.request(proto, TypeLabel::of(qtype)).inc();
        match self.respond_now(&req) {
            Ok((resp, from_zone)) => {
                let rcode = resp.metadata.response_code;
                let out = self.finish(&req, resp, proto, qtype, started);
                if let (Some(k), Some(generation), Some(bytes)) = (key, from_zone, &out) {
                    let t = TypeLabel::of(qtype);
                    self.packet_cache
                        .insert(proto, k, generation, bytes, rcode, t);
                }
                Step::Reply(out)
            }
            Err(wait) => Step::Later(Box::new(Pending {
                req,
                proto,
                qtype,
                started,
                wait,
            })),
        }
    }

    /// Finish a query that [`Handler::handle_now`] left waiting on the forwarder.
    pub async fn complete(&self, p: Pending) -> Option<Vec<u8>> {
        let req = &p.req;
        let dnssec_ok = req.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let q = &req.queries[0];
        let resp = match p.wait {
            Wait::Forward => self.forward(req, q, dnssec_ok).await,
            Wait::Chase(mut m, target) => {
                let tq = Query::query(target, q.query_type());
                if let Ok(up) = self.forwarder.resolve(&tq, dnssec_ok).await {
                    m.answers.extend(up.answers);
                    if up.metadata.response_code == ResponseCode::NXDomain {
                        m.metadata.response_code = ResponseCode::NXDomain;
                    }
                }
                *m
            }
        };
        self.finish(req, resp, p.proto, p.qtype, p.started)
    }

    /// Count the response and encode it within the transport's limit.
    fn finish(
        &self,
        req: &Message,
        resp: Message,
        proto: Proto,
        qtype: RecordType,
        started: Instant,
    ) -> Option<Vec<u8>> {
        let limit = match proto {
            Proto::Tcp => u16::MAX as usize,
            Proto::Udp => req
                .edns
                .as_ref()
                .map(|e| e.max_payload().clamp(MIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD))
                .unwrap_or(MIN_UDP_PAYLOAD) as usize,
        };
        self.count(&resp, TypeLabel::of(qtype), started);
        encode_within(resp, limit)
    }

    fn count(&self, m: &Message, qtype: TypeLabel, started: Instant) {
        self.metrics.count_response(m.metadata.response_code);
        self.metrics
            .duration(qtype)
            .observe(started.elapsed().as_secs_f64());
    }

    /// The answer from the zone, or what it waits for; with the zone's generation when the
    /// answer was computed from the zone alone (what the packet cache may keep).
    fn respond_now(&self, req: &Message) -> Result<(Message, Option<u64>), Wait> {
        let error = |rcode| Ok((error_reply(req, rcode), None));
        if req.metadata.op_code != OpCode::Query {
            return error(ResponseCode::NotImp);
        }
        if req.queries.len() != 1 {
            return error(ResponseCode::FormErr);
        }
        if req.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return error(ResponseCode::BADVERS);
        }
        let q = &req.queries[0];
        let (zone, generation) = self.zone.current_with_generation();
        if zone.is_cluster_name(q.name()) && !self.metrics.is_ready() {
            return error(ResponseCode::ServFail);
        }
        let local = if q.query_class() == DNSClass::IN
            && !matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
        {
            zone.answer(q.name(), q.query_type())
        } else if zone.is_cluster_name(q.name()) {
            return error(ResponseCode::NotImp);
        } else {
            None
        };
        drop(zone);
        let Some(a) = local else {
            return Err(Wait::Forward);
        };
        let mut m = error_reply(req, a.rcode);
        m.metadata.authoritative = a.authoritative;
        m.answers = a.answers;
        m.authorities = a.authority;
        m.additionals = a.additional;
        match a.chase {
            Some(target) => Err(Wait::Chase(Box::new(m), target)),
            None => Ok((m, Some(generation))),
        }
    }

    async fn forward(&self, req: &Message, q: &Query, dnssec_ok: bool) -> Message {
        match self.forwarder.resolve(q, dnssec_ok).await {
            Ok(up) => {
                let mut m = error_reply(req, up.metadata.response_code);
                m.metadata.recursion_available = up.metadata.recursion_available;
                m.metadata.authentic_data = up.metadata.authentic_data;
                m.metadata.authoritative = up.metadata.authoritative;
                // The question as the client asked it (case included).
                m.answers = up.answers;
                m.authorities = up.authorities;
                m.additionals = up.additionals;
                m
            }
            Err(e) => {
                tracing::debug!(question = %q, error = %e, "forwarding failed");
                error_reply(req, ResponseCode::ServFail)
            }
        }
    }
}

#[cfg(test)]
mod tests;
