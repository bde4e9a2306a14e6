//! The DNS server's metrics, with CoreDNS's names and labels, and the label tables (`proto`,
//! `type`, `rcode`) the query path and the packet cache count with — kept here as CoreDNS keeps
//! them in `plugin/metrics/vars`, so everything that counts imports this module and this module
//! imports nothing of the crate. Also the HTTP side: `/metrics` (Prometheus text), `/health`
//! (200 while the process serves) and `/ready` (200 once the watches have synced, 503 before,
//! as CoreDNS's `ready`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The transport a query came over: the `proto` label of `coredns_dns_requests_total`.
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

/// Label slots: every [`TypeLabel`] (the known types and `other`).
const TYPES: usize = TYPE_LABELS.len() + 1;
/// The rcodes with a slot of their own (the rest are looked up by label).
const RCODES: [ResponseCode; 7] = [
    ResponseCode::NoError,
    ResponseCode::FormErr,
    ResponseCode::ServFail,
    ResponseCode::NXDomain,
    ResponseCode::NotImp,
    ResponseCode::Refused,
    ResponseCode::BADVERS,
];

/// The DNS server's metrics.
pub struct Metrics {
    pub registry: Registry,
    /// `coredns_dns_requests_total{proto,type}`
    pub requests: IntCounterVec,
    /// `coredns_dns_responses_total{rcode}`
    pub responses: IntCounterVec,
    /// `coredns_dns_request_duration_seconds{type}`
    pub duration: HistogramVec,
    /// `coredns_cache_hits_total` / `coredns_cache_misses_total` (the forwarder's cache)
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    /// `coredns_cache_entries`
    pub cache_entries: IntGauge,
    /// `coredns_forward_requests_total`
    pub forward_requests: IntCounter,
    /// `svcnet_dns_zone_names`: owner names in the cluster zone.
    pub zone_names: IntGauge,
    /// `svcnet_dns_packet_cache_hits_total` / `svcnet_dns_packet_cache_misses_total`: plain
    /// queries answered from the packet cache ([`crate::packet_cache`]) / looked up there and not
    /// found (every query is still counted in the `coredns_dns_*` metrics).
    pub packet_cache_hits: IntCounter,
    pub packet_cache_misses: IntCounter,
    /// DNS over TCP (`transport/tcp.rs`); CoreDNS counts nothing of its connections, so
    /// these are svcnet's: `svcnet_dns_tcp_connections` (open now),
    /// `svcnet_dns_tcp_connections_closed_total{reason}` (closed by the server: `read_timeout`,
    /// `idle_timeout`, `write_timeout`, `evicted` to make room under the cap),
    /// `svcnet_dns_tcp_connections_refused_total` (closed at once: the cap was reached and none
    /// was idle), `svcnet_dns_tcp_accept_errors_total` (failed accepts, e.g. out of file
    /// descriptors).
    pub tcp_connections: IntGauge,
    pub tcp_closed: IntCounterVec,
    pub tcp_refused: IntCounter,
    pub tcp_accept_errors: IntCounter,
    /// Set once the watches have synced (`/ready`).
    pub ready: AtomicBool,
    /// The labelled children the query path uses, each resolved on first use (so `/metrics`
    /// lists only the label values seen, as `with_label_values` on every query would) and then
    /// reached without hashing labels.
    requests_by: [[OnceLock<IntCounter>; TYPES]; 2],
    responses_by: [OnceLock<IntCounter>; RCODES.len()],
    duration_by: [OnceLock<Histogram>; TYPES],
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    counter_in(r, "coredns", name, help)
}

fn counter_in(r: &Registry, namespace: &str, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(name, help).namespace(namespace)).expect("valid");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "requests_total",
                "Counter of DNS requests made per protocol and type.",
            )
            .namespace("coredns")
            .subsystem("dns"),
            &["proto", "type"],
        )
        .expect("valid");
        r.register(Box::new(requests.clone())).expect("unique");
        let responses = IntCounterVec::new(
            Opts::new("responses_total", "Counter of response status codes.")
                .namespace("coredns")
                .subsystem("dns"),
            &["rcode"],
        )
        .expect("valid");
        r.register(Box::new(responses.clone())).expect("unique");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Histogram of the time (in seconds) each request took.",
            )
            .namespace("coredns")
            .subsystem("dns")
            .buckets(prometheus::exponential_buckets(0.00025, 2.0, 16).expect("valid")),
            &["type"],
        )
        .expect("valid");
        r.register(Box::new(duration.clone())).expect("unique");
        let cache_entries = IntGauge::with_opts(
            Opts::new("cache_entries", "The number of elements in the cache.").namespace("coredns"),
        )
        .expect("valid");
        r.register(Box::new(cache_entries.clone())).expect("unique");
        let zone_names = IntGauge::with_opts(
            Opts::new("dns_zone_names", "Owner names in the cluster zone.").namespace("svcnet"),
        )
        .expect("valid");
        r.register(Box::new(zone_names.clone())).expect("unique");
        let tcp_connections = IntGauge::with_opts(
            Opts::new("dns_tcp_connections", "Open DNS over TCP connections.").namespace("svcnet"),
        )
        .expect("valid");
        r.register(Box::new(tcp_connections.clone()))
            .expect("unique");
        let tcp_closed = IntCounterVec::new(
            Opts::new(
                "dns_tcp_connections_closed_total",
                "DNS over TCP connections closed by the server, by reason.",
            )
            .namespace("svcnet"),
            &["reason"],
        )
        .expect("valid");
        r.register(Box::new(tcp_closed.clone())).expect("unique");
        Metrics {
            cache_hits: counter(&r, "cache_hits_total", "The count of cache hits."),
            cache_misses: counter(&r, "cache_misses_total", "The count of cache misses."),
            forward_requests: counter(
                &r,
                "forward_requests_total",
                "Counter of requests made to upstream resolvers.",
            ),
            packet_cache_hits: counter_in(
                &r,
                "svcnet",
                "dns_packet_cache_hits_total",
                "Queries answered from the packet cache.",
            ),
            packet_cache_misses: counter_in(
                &r,
                "svcnet",
                "dns_packet_cache_misses_total",
                "Cacheable queries not found in the packet cache.",
            ),
            tcp_refused: counter_in(
                &r,
                "svcnet",
                "dns_tcp_connections_refused_total",
                "DNS over TCP connections closed at once: the cap was reached and none was idle.",
            ),
            tcp_accept_errors: counter_in(
                &r,
                "svcnet",
                "dns_tcp_accept_errors_total",
                "Failed accepts of DNS over TCP connections.",
            ),
            tcp_connections,
            tcp_closed,
            requests,
            responses,
            duration,
            cache_entries,
            zone_names,
            ready: AtomicBool::new(false),
            registry: r,
            requests_by: Default::default(),
            responses_by: Default::default(),
            duration_by: Default::default(),
        }
    }
}

impl Metrics {
    pub fn text(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// `coredns_dns_requests_total{proto, type}`.
    pub fn request(&self, proto: Proto, t: TypeLabel) -> &IntCounter {
        let p = match proto {
            Proto::Udp => 0,
            Proto::Tcp => 1,
        };
        self.requests_by[p][t.index()].get_or_init(|| {
            self.requests
                .with_label_values(&[proto.label(), t.name().as_str()])
        })
    }

    /// Count a response in `coredns_dns_responses_total{rcode}`.
    pub fn count_response(&self, rcode: ResponseCode) {
        match RCODES.iter().position(|r| *r == rcode) {
            Some(i) => self.responses_by[i]
                .get_or_init(|| {
                    self.responses
                        .with_label_values(&[rcode_label(rcode).as_str()])
                })
                .inc(),
            None => self
                .responses
                .with_label_values(&[rcode_label(rcode).as_str()])
                .inc(),
        }
    }

    /// `coredns_dns_request_duration_seconds{type}`.
    pub fn duration(&self, t: TypeLabel) -> &Histogram {
        self.duration_by[t.index()]
            .get_or_init(|| self.duration.with_label_values(&[t.name().as_str()]))
    }
}

/// Serve `/metrics`, `/health` and `/ready` on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let m1 = metrics.clone();
    let app = Router::new()
        .route("/metrics", get(move || async move { m1.text() }))
        .route("/health", get(|| async { "OK" }))
        .route(
            "/ready",
            get(move || async move {
                if metrics.is_ready() {
                    (StatusCode::OK, "OK")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the watches have not synced",
                    )
                }
            }),
        );
    axum::serve(listener, app).await
}
