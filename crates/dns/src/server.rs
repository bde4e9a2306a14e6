//! The DNS server: UDP and TCP listeners, one query path for both. A question in the cluster
//! zone is answered from the current [`ClusterZone`] (SERVFAIL until the watches have synced);
//! everything else goes to the [`Forwarder`]. Over UDP a response is cut to the client's EDNS0
//! payload size (512 without EDNS0): additional records go first, then answers, and only
//! dropping answers sets TC (as miekg/dns's `Truncate`, which CoreDNS uses); TCP gets it all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::watch::ZoneHandle;

/// The EDNS0 payload size this server advertises and the most it sends over UDP.
pub const MAX_UDP_PAYLOAD: u16 = 4096;
/// The UDP size without EDNS0 (RFC 1035).
pub const MIN_UDP_PAYLOAD: u16 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// Everything a query needs.
pub struct Server {
    pub zone: ZoneHandle,
    pub forwarder: Forwarder,
    pub metrics: Arc<Metrics>,
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

/// What the synchronous part of the query path ([`Server::handle_now`]) decided.
pub enum Step {
    /// The encoded answer (None: nothing to send back, e.g. a response or a runt).
    Reply(Option<Vec<u8>>),
    /// The answer needs the upstream resolvers (a name outside the zone, or the target of an
    /// ExternalName): finish it with [`Server::complete`].
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

impl Server {
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
    pub fn handle_now(&self, req: &[u8], proto: Proto) -> Step {
        let started = Instant::now();
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
            Ok(resp) => Step::Reply(self.finish(&req, resp, proto, qtype, started)),
            Err(wait) => Step::Later(Box::new(Pending {
                req,
                proto,
                qtype,
                started,
                wait,
            })),
        }
    }

    /// Finish a query that [`Server::handle_now`] left waiting on the forwarder.
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

    /// The answer from the zone, or what it waits for.
    fn respond_now(&self, req: &Message) -> Result<Message, Wait> {
        if req.metadata.op_code != OpCode::Query {
            return Ok(error_reply(req, ResponseCode::NotImp));
        }
        if req.queries.len() != 1 {
            return Ok(error_reply(req, ResponseCode::FormErr));
        }
        if req.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Ok(error_reply(req, ResponseCode::BADVERS));
        }
        let q = &req.queries[0];
        let zone = self.zone.current();
        if zone.is_cluster_name(q.name()) && !self.metrics.is_ready() {
            return Ok(error_reply(req, ResponseCode::ServFail));
        }
        let local = if q.query_class() == DNSClass::IN
            && !matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
        {
            zone.answer(q.name(), q.query_type())
        } else if zone.is_cluster_name(q.name()) {
            return Ok(error_reply(req, ResponseCode::NotImp));
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
            None => Ok(m),
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

/// The rcode as CoreDNS labels it (miekg/dns's `RcodeToString`).
pub fn rcode_label(r: ResponseCode) -> String {
    match r {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::BADVERS | ResponseCode::BADSIG => "BADVERS".into(),
        other => u16::from(other).to_string(),
    }
}

/// The `type` label of the request metrics (CoreDNS's: the common types by name, the rest
/// `other`), as an index so the metric children are resolved once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeLabel {
    Known(usize),
    Other,
}

/// The types with a label of their own, in [`TypeLabel::Known`] order.
pub const TYPE_LABELS: [RecordType; 12] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::MX,
    RecordType::NS,
    RecordType::PTR,
    RecordType::SOA,
    RecordType::SRV,
    RecordType::TXT,
    RecordType::ANY,
    RecordType::AXFR,
    RecordType::IXFR,
];

impl TypeLabel {
    pub fn of(t: RecordType) -> Self {
        match TYPE_LABELS.iter().position(|x| *x == t) {
            Some(i) => TypeLabel::Known(i),
            None => TypeLabel::Other,
        }
    }

    /// The slot of this label (0..=12).
    pub fn index(self) -> usize {
        match self {
            TypeLabel::Known(i) => i,
            TypeLabel::Other => TYPE_LABELS.len(),
        }
    }

    pub fn name(self) -> String {
        match self {
            TypeLabel::Known(i) => TYPE_LABELS[i].to_string(),
            TypeLabel::Other => "other".into(),
        }
    }
}

/// Serve UDP on `sock` until the process ends: `workers` OS threads loop on the shared socket —
/// a blocking `recvmmsg` that returns as soon as one packet is there with whatever else is
/// queued (up to 32), the answers, one `sendmmsg` — and answer cluster names right there,
/// without a task, a wakeup or a copy per packet; only a query that waits on the forwarder
/// becomes a task on the runtime this is called from. Must be called inside a tokio runtime.
pub fn spawn_udp(
    server: Arc<Server>,
    sock: std::net::UdpSocket,
    workers: usize,
) -> std::io::Result<()> {
    sock.set_nonblocking(false)?;
    let sock = Arc::new(sock);
    let rt = tokio::runtime::Handle::current();
    for i in 0..workers.max(1) {
        let (server, sock, rt) = (server.clone(), sock.clone(), rt.clone());
        std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || udp_worker(&server, &sock, &rt))?;
    }
    Ok(())
}

fn udp_worker(server: &Arc<Server>, sock: &Arc<std::net::UdpSocket>, rt: &tokio::runtime::Handle) {
    let mut batch = crate::udp::Batch::new();
    let mut out = Vec::with_capacity(crate::udp::BATCH);
    loop {
        let n = match batch.recv(sock) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "udp receive");
                continue;
            }
        };
        for i in 0..n {
            let (req, from) = batch.packet(i);
            let Some(from) = from else { continue };
            match server.handle_now(req, Proto::Udp) {
                Step::Reply(Some(resp)) => out.push((resp, from)),
                Step::Reply(None) => {}
                Step::Later(p) => {
                    let (server, sock) = (server.clone(), sock.clone());
                    rt.spawn(async move {
                        if let Some(resp) = server.complete(*p).await {
                            // A UDP send does not wait for the peer; at worst for buffer space.
                            let _ = sock.send_to(&resp, from);
                        }
                    });
                }
            }
        }
        crate::udp::send_all(sock, &out);
        out.clear();
    }
}

/// Serve DNS over TCP on `listener` until the process ends (length-prefixed messages, several
/// per connection, answered in order).
pub fn spawn_tcp(server: Arc<Server>, listener: TcpListener) {
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _peer)) = listener.accept().await else {
                continue;
            };
            let server = server.clone();
            tokio::spawn(async move {
                loop {
                    let idle =
                        tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_u16());
                    let Ok(Ok(len)) = idle.await else { return };
                    let mut buf = vec![0u8; len as usize];
                    if conn.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let Some(resp) = server.handle(&buf, Proto::Tcp).await else {
                        continue;
                    };
                    let mut framed = (resp.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&resp);
                    if conn.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// The address a listener ended up on (for `:0`).
pub fn local_addr(sock: &UdpSocket) -> Option<SocketAddr> {
    sock.local_addr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::{ClusterZone, ZoneConfig};
    use hickory_proto::rr::{Name, RData, Record};
    use k8s_openapi::api::core::v1::Service;
    use std::sync::atomic::Ordering;

    fn server(ready: bool) -> Server {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "nginx", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [{"port": 80}]},
        }))
        .unwrap();
        let zone = ClusterZone::build(ZoneConfig::default(), &[&svc], &[], &[], &[]);
        let metrics = Arc::new(Metrics::default());
        metrics.ready.store(ready, Ordering::Release);
        Server {
            zone: ZoneHandle::new(zone),
            forwarder: Forwarder::new(vec![], None, 10, metrics.clone()).unwrap(),
            metrics,
        }
    }

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m
    }

    async fn ask(s: &Server, m: &Message, proto: Proto) -> Message {
        let out = s.handle(&m.to_vec().unwrap(), proto).await.unwrap();
        Message::from_vec(&out).unwrap()
    }

    #[tokio::test]
    async fn answers_with_aa_rd_copied_and_the_question_echoed() {
        let s = server(true);
        let r = ask(
            &s,
            &query("Nginx.Default.svc.cluster.local.", RecordType::A),
            Proto::Udp,
        )
        .await;
        assert_eq!(r.metadata.id, 7);
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert!(r.metadata.authoritative && r.metadata.recursion_desired);
        assert!(!r.metadata.recursion_available);
        assert_eq!(
            r.queries[0].name().to_ascii(),
            "Nginx.Default.svc.cluster.local."
        );
        assert_eq!(r.answers.len(), 1);
        assert_eq!(
            r.answers[0].name.to_ascii(),
            "Nginx.Default.svc.cluster.local."
        );
    }

    #[tokio::test]
    async fn servfail_for_cluster_names_until_synced() {
        let s = server(false);
        let r = ask(
            &s,
            &query("nginx.default.svc.cluster.local.", RecordType::A),
            Proto::Tcp,
        )
        .await;
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        assert!(r.answers.is_empty());
    }

    #[tokio::test]
    async fn no_upstream_is_servfail() {
        let s = server(true);
        let r = ask(&s, &query("example.org.", RecordType::A), Proto::Udp).await;
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    }

    #[tokio::test]
    async fn malformed_requests() {
        let s = server(true);
        let mut two = query("a.cluster.local.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("b.cluster.local.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(
            ask(&s, &two, Proto::Udp).await.metadata.response_code,
            ResponseCode::FormErr
        );
        let mut notify = query("cluster.local.", RecordType::SOA);
        notify.metadata.op_code = OpCode::Notify;
        assert_eq!(
            ask(&s, &notify, Proto::Udp).await.metadata.response_code,
            ResponseCode::NotImp
        );
        let mut v1 = query("cluster.local.", RecordType::SOA);
        let mut e = Edns::new();
        e.set_version(1);
        v1.set_edns(e);
        // BADVERS is 16 (shared with BADSIG, which is how hickory decodes it).
        let code = ask(&s, &v1, Proto::Udp).await.metadata.response_code;
        assert_eq!(u16::from(code), 16);
        // A header and garbage: FORMERR with the ID; a response or a runt: no answer at all.
        let mut garbage = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        garbage.extend_from_slice(&[0xff; 5]);
        let r = Message::from_vec(&s.handle(&garbage, Proto::Udp).await.unwrap()).unwrap();
        assert_eq!(
            (r.metadata.id, r.metadata.response_code),
            (0x1234, ResponseCode::FormErr)
        );
        assert!(s.handle(&[1, 2, 3], Proto::Udp).await.is_none());
        let mut resp = query("cluster.local.", RecordType::SOA);
        resp.metadata.message_type = MessageType::Response;
        assert!(s
            .handle(&resp.to_vec().unwrap(), Proto::Udp)
            .await
            .is_none());
    }

    fn big(n: u8, extra: u8) -> Message {
        let mut m = query("big.cluster.local.", RecordType::A);
        m.metadata.message_type = MessageType::Response;
        let owner = Name::from_ascii("big.cluster.local.").unwrap();
        for i in 0..n {
            m.add_answer(Record::from_rdata(
                owner.clone(),
                5,
                RData::A(std::net::Ipv4Addr::new(10, 0, 0, i).into()),
            ));
        }
        for i in 0..extra {
            let t = Name::from_ascii(format!("t{i}.cluster.local.")).unwrap();
            m.add_additional(Record::from_rdata(
                t,
                5,
                RData::A(std::net::Ipv4Addr::new(10, 1, 0, i).into()),
            ));
        }
        m
    }

    #[test]
    fn truncation_keeps_what_fits_and_sets_tc_only_for_answers() {
        let out = encode_within(big(100, 0), 512).unwrap();
        let m = Message::from_vec(&out).unwrap();
        assert!(out.len() <= 512 && m.metadata.truncation);
        assert!(!m.answers.is_empty() && m.answers.len() < 100);
        // Only the additional section overflows: cut, no TC.
        let out = encode_within(big(10, 40), 512).unwrap();
        let m = Message::from_vec(&out).unwrap();
        assert!(out.len() <= 512 && !m.metadata.truncation);
        assert_eq!(m.answers.len(), 10);
        assert!(m.additionals.len() < 40);
        // Fits: untouched.
        let m = Message::from_vec(&encode_within(big(3, 3), 512).unwrap()).unwrap();
        assert_eq!(
            (m.answers.len(), m.additionals.len(), m.metadata.truncation),
            (3, 3, false)
        );
    }

    #[tokio::test]
    async fn edns0_is_answered_with_opt() {
        let s = server(true);
        // An EDNS0 query gets OPT back, with the size this server accepts.
        let mut q = query("cluster.local.", RecordType::SOA);
        let mut e = Edns::new();
        e.set_max_payload(1232);
        q.set_edns(e);
        let r = ask(&s, &q, Proto::Udp).await;
        assert_eq!(
            r.edns.as_ref().map(|e| e.max_payload()),
            Some(MAX_UDP_PAYLOAD)
        );
        assert_eq!(r.answers.len(), 1);
    }
}
