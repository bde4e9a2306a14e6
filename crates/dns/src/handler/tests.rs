//! The request handler's answers over the whole path (bytes in, bytes out): header bits,
//! SERVFAIL before sync, malformed requests, truncation, EDNS0 — and the packet cache against
//! the full path.

use super::*;
use crate::zone::{ClusterZone, ZoneConfig};
use hickory_proto::rr::{Name, RData, Record};
use k8s_openapi::api::core::v1::Service;
use std::sync::atomic::Ordering;

fn handler(ready: bool) -> Handler {
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "nginx", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [{"port": 80}]},
    }))
    .unwrap();
    let zone = ClusterZone::build(ZoneConfig::default(), &[&svc], &[], &[], &[]);
    let metrics = Arc::new(Metrics::default());
    metrics.ready.store(ready, Ordering::Release);
    Handler {
        zone: ZoneHandle::new(zone),
        forwarder: Forwarder::new(vec![], None, 10, metrics.clone()).unwrap(),
        metrics,
        packet_cache: PacketCache::default(),
    }
}

fn query(name: &str, t: RecordType) -> Message {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m
}

async fn ask(s: &Handler, m: &Message, proto: Proto) -> Message {
    let out = s.handle(&m.to_vec().unwrap(), proto).await.unwrap();
    Message::from_vec(&out).unwrap()
}

#[tokio::test]
async fn answers_with_aa_rd_copied_and_the_question_echoed() {
    let s = handler(true);
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
    let s = handler(false);
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
    let s = handler(true);
    let r = ask(&s, &query("example.org.", RecordType::A), Proto::Udp).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn malformed_requests() {
    let s = handler(true);
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
    let s = handler(true);
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

/// The packet cache against the full path: every kind of answer of the fixture zone.
mod packet_cache {
    use super::*;
    use crate::testing::{
        fixture_handler, fixture_handler_with, fixture_objects, FIXTURE_NAMES, FIXTURE_TYPES,
    };
    use crate::zone::{ClusterZone, PodMode, ZoneConfig};

    /// More spellings of the fixture's names (the packet cache keys the case as sent) and the
    /// PTR name of the dual-stack Service's IPv6 address.
    const MORE_NAMES: &[&str] = &[
        "nGiNx.dEfAuLt.svc.CLUSTER.local.",
        "_http._tcp.NGINX.default.svc.cluster.local.",
        "Headless.Default.svc.cluster.local.",
        "Inside.default.svc.cluster.local.",
        "MISSING.default.svc.cluster.local.",
        "Cluster.Local.",
        "DNS-Version.cluster.local.",
        "20.0.96.10.IN-ADDR.ARPA.",
        "1.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
    ];

    /// The fixture's question types but AXFR (refused with NOTIMP, never from the zone, so
    /// never cached).
    fn types() -> impl Iterator<Item = RecordType> {
        FIXTURE_TYPES
            .iter()
            .copied()
            .filter(|t| *t != RecordType::AXFR)
    }

    /// (EDNS payload size, DO bit); None: no EDNS.
    const EDNS: &[Option<(u16, bool)>] = &[
        None,
        Some((512, false)),
        Some((1232, true)),
        // hickory writes at least 512: this is 512 with DO.
        Some((100, true)),
        Some((600, true)),
        Some((4096, false)),
        Some((65535, true)),
    ];

    fn packet(
        id: u16,
        name: &str,
        t: RecordType,
        rd: bool,
        cd: bool,
        edns: Option<(u16, bool)>,
    ) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = rd;
        m.metadata.checking_disabled = cd;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if let Some((size, dnssec_ok)) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            e.set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn reply(s: &Handler, p: &[u8], proto: Proto) -> Option<Vec<u8>> {
        match s.handle_now(p, proto) {
            Step::Reply(r) => r,
            Step::Later(_) => None,
        }
    }

    #[test]
    fn hits_are_byte_identical_to_the_full_path() {
        let cached = fixture_handler();
        let uncached = fixture_handler_with(PacketCache::new(0));
        let (mut hits, mut truncated, mut cased) = (0u64, 0, 0);
        let mut rcodes = std::collections::HashSet::new();
        for name in FIXTURE_NAMES.iter().chain(MORE_NAMES) {
            for t in types() {
                for &edns in EDNS {
                    for (rd, cd) in [(true, false), (false, false), (true, true)] {
                        for proto in [Proto::Udp, Proto::Tcp] {
                            let first = packet(0x0101, name, t, rd, cd, edns);
                            let second = packet(0xfe02, name, t, rd, cd, edns);
                            let before = cached.metrics.packet_cache_hits.get();
                            let miss = reply(&cached, &first, proto);
                            assert_eq!(cached.metrics.packet_cache_hits.get(), before);
                            let hit = reply(&cached, &second, proto);
                            let full = reply(&uncached, &second, proto);
                            let what = format!("{name} {t} rd={rd} cd={cd} {edns:?} {proto:?}");
                            assert_eq!(hit, full, "{what}");
                            let Some(full) = full else {
                                // Waits on upstreams: never cached.
                                assert!(
                                    !name.ends_with("cluster.local.") || name.starts_with("ext.")
                                );
                                assert!(miss.is_none(), "{what}");
                                continue;
                            };
                            let miss = miss.unwrap();
                            assert_eq!(&miss[..2], &[0x01, 0x01], "{what}");
                            assert_eq!(miss[2..], full[2..], "{what}");
                            // Every local answer here is from the zone: the second is a hit.
                            assert_eq!(
                                cached.metrics.packet_cache_hits.get(),
                                before + 1,
                                "{what}"
                            );
                            hits += 1;
                            let m = Message::from_vec(&full).unwrap();
                            assert_eq!(m.metadata.id, 0xfe02);
                            assert_eq!(m.queries[0].name().to_ascii(), *name, "{what}");
                            truncated += m.metadata.truncation as usize;
                            cased += name.bytes().any(|b| b.is_ascii_uppercase()) as usize;
                            rcodes.insert(u16::from(m.metadata.response_code));
                        }
                    }
                }
            }
        }
        assert!(hits > 3000, "{hits} hits");
        assert!(truncated > 0 && cased > 0);
        // NOERROR and NXDOMAIN, both cached.
        assert!(rcodes.contains(&0) && rcodes.contains(&3), "{rcodes:?}");
        // Every query is still counted.
        let text = cached.metrics.text();
        assert!(text.contains(&format!("svcnet_dns_packet_cache_hits_total {hits}")));
    }

    /// Why the key keeps the name's case: the encoder's compression is case-sensitive, so the
    /// same answer to a differently-cased question is laid out differently.
    #[test]
    fn the_layout_depends_on_the_question_case() {
        let s = fixture_handler_with(PacketCache::new(0));
        let ask = |name| {
            reply(
                &s,
                &packet(1, name, RecordType::A, true, false, None),
                Proto::Udp,
            )
            .unwrap()
        };
        // NXDOMAIN with the SOA of `cluster.local.`: its owner is a pointer into the question
        // only when the question spells the suffix the same way.
        let lower = ask("missing.default.svc.cluster.local.");
        let upper = ask("missing.default.svc.CLUSTER.local.");
        assert_ne!(lower.len(), upper.len());
    }

    fn zone_of(
        services: &[k8s_openapi::api::core::v1::Service],
        slices: &[k8s_openapi::api::discovery::v1::EndpointSlice],
    ) -> ClusterZone {
        let (_, _, nss) = fixture_objects();
        ClusterZone::build(
            ZoneConfig {
                pods: PodMode::Insecure,
                ..ZoneConfig::default()
            },
            &services.iter().collect::<Vec<_>>(),
            &slices.iter().collect::<Vec<_>>(),
            &nss.iter().collect::<Vec<_>>(),
            &[],
        )
    }

    fn answers(s: &Handler, name: &str, t: RecordType) -> (ResponseCode, usize) {
        let out = reply(
            s,
            &packet(9, name, t, true, false, Some((4096, false))),
            Proto::Udp,
        )
        .unwrap();
        let m = Message::from_vec(&out).unwrap();
        (m.metadata.response_code, m.answers.len())
    }

    #[test]
    fn a_zone_change_invalidates() {
        let s = fixture_handler();
        let (mut services, mut slices, _) = fixture_objects();
        let headless = "headless.default.svc.cluster.local.";
        let nginx = "nginx.default.svc.cluster.local.";
        // 36 ready endpoints; asked twice (the second from the cache).
        for _ in 0..2 {
            assert_eq!(
                answers(&s, headless, RecordType::A),
                (ResponseCode::NoError, 36)
            );
            assert_eq!(
                answers(&s, nginx, RecordType::A),
                (ResponseCode::NoError, 1)
            );
        }
        let hits = s.metrics.packet_cache_hits.get();
        assert_eq!(hits, 2);
        // An endpoint more.
        slices[0].endpoints.push(
            serde_json::from_value(serde_json::json!({"addresses": ["10.244.3.1"]})).unwrap(),
        );
        s.zone.swap(zone_of(&services, &slices));
        assert_eq!(
            answers(&s, headless, RecordType::A),
            (ResponseCode::NoError, 37)
        );
        // The Service deleted.
        services.retain(|x| x.metadata.name.as_deref() != Some("nginx"));
        s.zone.swap(zone_of(&services, &slices));
        assert_eq!(answers(&s, nginx, RecordType::A).0, ResponseCode::NXDomain);
        assert_eq!(answers(&s, nginx, RecordType::A).0, ResponseCode::NXDomain);
        assert_eq!(
            answers(&s, headless, RecordType::A),
            (ResponseCode::NoError, 37)
        );
        // One hit since: the repeated NXDOMAIN (every other answer was computed afresh after
        // each swap, the unchanged headless one included).
        assert_eq!(s.metrics.packet_cache_hits.get(), hits + 1);
    }

    #[test]
    fn edge_packets_take_the_full_path() {
        let cached = fixture_handler();
        let uncached = fixture_handler_with(PacketCache::new(0));
        let plain = packet(
            0x1234,
            "nginx.default.svc.cluster.local.",
            RecordType::A,
            true,
            false,
            None,
        );
        // A compression pointer in the question, to the name of the same question's first
        // label: "nginx" then a pointer back to offset 12 (a loop) — and one to a valid name.
        let mut looped = plain[..12].to_vec();
        looped.extend_from_slice(&[5, b'n', b'g', b'i', b'n', b'x', 0xc0, 12, 0, 1, 0, 1]);
        // QDCOUNT 2: the same question twice, the second as a pointer.
        let mut two = plain.clone();
        two[5] = 2;
        two.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        // An answer record in the query.
        let mut with_answer = plain.clone();
        with_answer[7] = 1;
        with_answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
        // EDNS with a cookie option.
        let mut cookie = packet(
            0x1234,
            "nginx.default.svc.cluster.local.",
            RecordType::A,
            true,
            false,
            Some((1232, false)),
        );
        let n = cookie.len();
        cookie[n - 1] = 12;
        cookie.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        let truncated = plain[..plain.len() - 3].to_vec();
        for p in [looped, two, with_answer, cookie, truncated] {
            for proto in [Proto::Udp, Proto::Tcp] {
                for _ in 0..3 {
                    assert_eq!(
                        reply(&cached, &p, proto),
                        reply(&uncached, &p, proto),
                        "{p:02x?}"
                    );
                }
            }
        }
        assert_eq!(cached.metrics.packet_cache_hits.get(), 0);
        assert_eq!(cached.metrics.packet_cache_misses.get(), 0);
        assert!(cached.packet_cache.is_empty());
    }

    #[test]
    fn servfail_before_sync_is_not_cached() {
        let s = fixture_handler();
        s.metrics
            .ready
            .store(false, std::sync::atomic::Ordering::Release);
        let p = packet(
            1,
            "nginx.default.svc.cluster.local.",
            RecordType::A,
            true,
            false,
            None,
        );
        for _ in 0..2 {
            let m = Message::from_vec(&reply(&s, &p, Proto::Udp).unwrap()).unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        }
        assert!(s.packet_cache.is_empty());
        s.metrics
            .ready
            .store(true, std::sync::atomic::Ordering::Release);
        let m = Message::from_vec(&reply(&s, &p, Proto::Udp).unwrap()).unwrap();
        assert_eq!(
            (m.metadata.response_code, m.answers.len()),
            (ResponseCode::NoError, 1)
        );
    }
}
