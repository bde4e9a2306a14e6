//! The query path on arbitrary bytes, for the fuzz target (`crates/dns/fuzz`, cargo fuzz) and
//! for a bounded deterministic test run in CI: a [`Handler`] over a small fixed zone (every
//! record kind: ClusterIP with named ports, dual-stack, headless with and without hostnames,
//! ExternalName in and out of the zone, pod records), and [`check_query`], which feeds one
//! packet through [`Handler::handle_now`] — what the UDP workers run per packet, packet cache
//! included — over UDP and TCP and checks what comes out.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use crate::forward::Forwarder;
use crate::handler::{Handler, Step, MAX_UDP_PAYLOAD};
use crate::metrics::{Metrics, Proto};
use crate::packet_cache::PacketCache;
use crate::watch::ZoneHandle;
use crate::zone::{ClusterZone, PodMode, ZoneConfig, SERVICE_NAME_LABEL};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("fixture object")
}

/// The fixed zone's handler (no upstreams: forwarded names stop at [`Step::Later`]), with the
/// default packet cache. Needs no runtime.
pub fn fixture_handler() -> Handler {
    fixture_handler_with(PacketCache::default())
}

/// The fixed zone (of [`fixture_objects`], pod records `insecure`).
pub fn fixture_zone() -> ClusterZone {
    let (services, slices, nss) = fixture_objects();
    let cfg = ZoneConfig {
        pods: PodMode::Insecure,
        ..ZoneConfig::default()
    };
    ClusterZone::build(
        cfg,
        &services.iter().collect::<Vec<_>>(),
        &slices.iter().collect::<Vec<_>>(),
        &nss.iter().collect::<Vec<_>>(),
        &[],
    )
}

/// The fixed zone's handler with `packet_cache` (e.g. `PacketCache::new(0)`: none).
pub fn fixture_handler_with(packet_cache: PacketCache) -> Handler {
    let metrics = Arc::new(Metrics::default());
    metrics.ready.store(true, Ordering::Release);
    Handler {
        zone: ZoneHandle::new(fixture_zone()),
        forwarder: Forwarder::new(vec![], None, 16, metrics.clone())
            .expect("a forwarder without upstreams"),
        metrics,
        packet_cache,
    }
}

/// The fixture's objects: Services, their EndpointSlices, Namespaces.
pub fn fixture_objects() -> (Vec<Service>, Vec<EndpointSlice>, Vec<Namespace>) {
    let services: Vec<Service> = vec![
        obj(
            json!({"metadata": {"name": "nginx", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"}, {"port": 8080}]}}),
        ),
        obj(json!({"metadata": {"name": "dual", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.21", "clusterIPs": ["10.96.0.21", "fd00::21"],
                     "ports": [{"name": "http", "port": 80}]}})),
        obj(
            json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}),
        ),
        obj(
            json!({"metadata": {"name": "headless", "namespace": "default"},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"],
                     "ports": [{"name": "http", "port": 80}]}}),
        ),
        obj(json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.org"}})),
        obj(
            json!({"metadata": {"name": "inside", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "nginx.default.svc.cluster.local"}}),
        ),
    ];
    let mut eps: Vec<serde_json::Value> = (1..=40)
        .map(|i| json!({"addresses": [format!("10.244.1.{i}")], "conditions": {"ready": i % 7 != 0}}))
        .collect();
    eps.push(
        json!({"addresses": ["10.244.2.1"], "hostname": "web-0", "conditions": {"ready": true}}),
    );
    let slices: Vec<EndpointSlice> = vec![obj(json!({
        "metadata": {"name": "headless-1", "namespace": "default",
                     "labels": {SERVICE_NAME_LABEL: "headless"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps}))];
    let nss: Vec<Namespace> = ["default", "kube-system"]
        .iter()
        .map(|n| obj(json!({"metadata": {"name": n}})))
        .collect();
    (services, slices, nss)
}

/// Questions for the fixture zone: every kind of name it answers (a case-mixed one among them),
/// names it does not have, and one outside it (forwarded).
pub const FIXTURE_NAMES: &[&str] = &[
    "nginx.default.svc.cluster.local.",
    "NGINX.Default.SVC.cluster.local.",
    "_http._tcp.nginx.default.svc.cluster.local.",
    "_dns._udp.nginx.default.svc.cluster.local.",
    "dual.default.svc.cluster.local.",
    "headless.default.svc.cluster.local.",
    "_http._tcp.headless.default.svc.cluster.local.",
    "web-0.headless.default.svc.cluster.local.",
    "10-244-1-3.headless.default.svc.cluster.local.",
    "ext.default.svc.cluster.local.",
    "inside.default.svc.cluster.local.",
    "missing.default.svc.cluster.local.",
    "default.svc.cluster.local.",
    "svc.cluster.local.",
    "cluster.local.",
    "ns.dns.cluster.local.",
    "dns-version.cluster.local.",
    "10-244-1-3.default.pod.cluster.local.",
    "fd00--1.default.pod.cluster.local.",
    "20.0.96.10.in-addr.arpa.",
    "1.2.244.10.in-addr.arpa.",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
    "example.org.",
];

/// Question types for the fixture zone: those it has records of, the meta types, and MX (which
/// no cluster name has).
pub const FIXTURE_TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::CNAME,
    RecordType::TXT,
    RecordType::SOA,
    RecordType::NS,
    RecordType::ANY,
    RecordType::AXFR,
    RecordType::MX,
];

/// Feed `packet` through the query path over UDP and TCP; panic if what comes back is not a
/// well-formed response to it: decodable, the request's ID, QR set, and within the UDP size
/// limit (4096, the most this server accepts from EDNS0) over UDP. Each packet is asked twice
/// (the second time possibly from the packet cache): the answers must be the same bytes.
pub fn check_query(handler: &Handler, packet: &[u8]) {
    for proto in [Proto::Udp, Proto::Tcp] {
        let Step::Reply(Some(out)) = handler.handle_now(packet, proto) else {
            continue; // nothing to send, or waiting on upstreams (none here)
        };
        match handler.handle_now(packet, proto) {
            Step::Reply(Some(again)) => assert_eq!(
                again, out,
                "the same request answered differently: {packet:02x?}"
            ),
            _ => panic!("the same request answered once only: {packet:02x?}"),
        }
        let m = Message::from_vec(&out)
            .unwrap_or_else(|e| panic!("undecodable response {out:02x?} to {packet:02x?}: {e}"));
        assert_eq!(
            m.metadata.id,
            u16::from_be_bytes([packet[0], packet[1]]),
            "response ID"
        );
        assert_eq!(
            m.metadata.message_type,
            hickory_proto::op::MessageType::Response
        );
        if proto == Proto::Udp {
            assert!(
                out.len() <= MAX_UDP_PAYLOAD as usize,
                "{} bytes over UDP",
                out.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, MessageType, OpCode, Query};
    use hickory_proto::rr::{DNSClass, Name};

    /// xorshift64: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn valid(r: &mut Rng) -> Vec<u8> {
        let mut m = Message::new(r.next() as u16, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = r.next().is_multiple_of(2);
        let mut q = Query::query(
            Name::from_ascii(FIXTURE_NAMES[r.below(FIXTURE_NAMES.len())]).unwrap(),
            FIXTURE_TYPES[r.below(FIXTURE_TYPES.len())],
        );
        if r.next().is_multiple_of(10) {
            q.set_query_class(DNSClass::CH);
        }
        m.add_query(q);
        if r.next().is_multiple_of(2) {
            let mut e = Edns::new();
            e.set_max_payload([0, 100, 512, 1232, 4096, 65535][r.below(6)]);
            e.set_dnssec_ok(r.next().is_multiple_of(3));
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn mutate(r: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
        for _ in 0..1 + r.below(4) {
            match r.below(5) {
                0 if !b.is_empty() => {
                    let i = r.below(b.len());
                    b[i] ^= 1 << r.below(8);
                }
                1 if !b.is_empty() => {
                    let i = r.below(b.len());
                    b[i] = r.next() as u8;
                }
                2 => b.truncate(r.below(b.len() + 1)),
                3 => {
                    let i = r.below(b.len() + 1);
                    b.insert(i, r.next() as u8);
                }
                _ => {
                    // Duplicate a run (compression pointers and counts going astray).
                    let i = r.below(b.len() + 1);
                    let j = (i + r.below(16)).min(b.len());
                    let run = b[i..j].to_vec();
                    b.extend_from_slice(&run);
                }
            }
        }
        b
    }

    /// The query path over a few thousand garbage, mutated and valid packets (the bounded,
    /// deterministic stand-in for the fuzz target; CI runs the real fuzzer when available).
    #[test]
    fn query_path_survives_garbage() {
        let handler = fixture_handler();
        let uncached = fixture_handler_with(PacketCache::new(0));
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..6000 {
            let packet = match i % 3 {
                0 => {
                    let n = r.below(600);
                    let mut p: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
                    if p.len() > 2 && r.next().is_multiple_of(2) {
                        p[2] &= 0x7f; // a query header: FORMERR rather than silence
                    }
                    p
                }
                1 => {
                    let v = valid(&mut r);
                    mutate(&mut r, v)
                }
                _ => valid(&mut r),
            };
            check_query(&handler, &packet);
            // And the same bytes as a handler without the packet cache.
            for proto in [Proto::Udp, Proto::Tcp] {
                let reply = |s: &Handler| match s.handle_now(&packet, proto) {
                    Step::Reply(r) => Some(r),
                    Step::Later(_) => None,
                };
                assert_eq!(reply(&handler), reply(&uncached), "{packet:02x?}");
            }
        }
        // The valid and some mutated packets went through the cache.
        assert!(handler.metrics.packet_cache_hits.get() > 2000);
        assert!(uncached.metrics.packet_cache_hits.get() == 0);
    }

    /// Every valid question of the fixture gets an answer from the zone itself (only names
    /// outside it and the ExternalName target outside wait on upstreams).
    #[test]
    fn fixture_answers_locally() {
        let handler = fixture_handler();
        let mut r = Rng(7);
        for _ in 0..500 {
            let p = valid(&mut r);
            check_query(&handler, &p);
        }
        let mut m = Message::new(1, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("headless.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let Step::Reply(Some(out)) = handler.handle_now(&m.to_vec().unwrap(), Proto::Udp) else {
            panic!("no local answer");
        };
        // 35 ready endpoints do not fit in 512 bytes: truncated, TC set.
        let r = Message::from_vec(&out).unwrap();
        assert!(r.metadata.truncation && out.len() <= 512);
    }
}
