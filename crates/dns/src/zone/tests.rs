//! The zone's answers, by section of kubernetes/dns docs/specification.md (schema 1.1.0), then
//! the cases where CoreDNS's behaviour fills what the specification leaves open.

use super::*;

use serde_json::json;

fn svc(v: serde_json::Value) -> Service {
    serde_json::from_value(v).unwrap()
}

fn cluster_ip(ns: &str, name: &str, ips: &[&str], ports: serde_json::Value) -> Service {
    svc(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "ClusterIP", "clusterIP": ips[0], "clusterIPs": ips, "ports": ports},
    }))
}

fn headless(ns: &str, name: &str, publish_not_ready: bool) -> Service {
    svc(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"], "publishNotReadyAddresses": publish_not_ready,
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }))
}

/// A slice of `svc`: endpoints as (ip, hostname, ready).
fn slice(
    ns: &str,
    svc: &str,
    n: usize,
    eps: &[(&str, Option<&str>, bool)],
    ports: serde_json::Value,
) -> EndpointSlice {
    let family = if eps.first().is_some_and(|e| e.0.contains(':')) {
        "IPv6"
    } else {
        "IPv4"
    };
    serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-{n}"), "namespace": ns,
                     "labels": {SERVICE_NAME_LABEL: svc}},
        "addressType": family,
        "endpoints": eps.iter().map(|(ip, host, ready)| {
            let mut e = json!({"addresses": [ip], "conditions": {"ready": ready}});
            if let Some(h) = host { e["hostname"] = json!(h); }
            e
        }).collect::<Vec<_>>(),
        "ports": ports,
    }))
    .unwrap()
}

fn ns(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn zone_with(
    cfg: ZoneConfig,
    services: &[Service],
    slices: &[EndpointSlice],
    pods: &[Pod],
) -> ClusterZone {
    let nss = [ns("default"), ns("kube-system"), ns("empty")];
    ClusterZone::build(
        cfg,
        &services.iter().collect::<Vec<_>>(),
        &slices.iter().collect::<Vec<_>>(),
        &nss.iter().collect::<Vec<_>>(),
        &pods.iter().collect::<Vec<_>>(),
    )
}

/// The standard fixture: a ClusterIP Service with a named and an unnamed port, a dual-stack
/// one, a headless one with 3 endpoints (2 ready, one with a hostname), an empty headless one,
/// and an ExternalName one pointing outside and one pointing inside the zone.
fn zone() -> ClusterZone {
    zone_with(ZoneConfig::default(), &services(), &slices(), &[])
}

fn services() -> Vec<Service> {
    vec![
        cluster_ip(
            "default",
            "nginx",
            &["10.96.0.20"],
            json!([{"name": "http", "port": 80, "protocol": "TCP"},
                   {"name": "dns", "port": 53, "protocol": "UDP"},
                   {"port": 8080}]),
        ),
        cluster_ip(
            "default",
            "dual",
            &["10.96.0.21", "fd00:10:96::21"],
            json!([{"port": 80}]),
        ),
        headless("default", "web", false),
        headless("default", "empty", false),
        headless("default", "starting", true),
        svc(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "www.example.org"},
        })),
        svc(json!({
            "metadata": {"name": "alias", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "nginx.default.svc.cluster.local"},
        })),
    ]
}

fn slices() -> Vec<EndpointSlice> {
    let http = json!([{"name": "http", "port": 8080, "protocol": "TCP"}]);
    vec![
        slice(
            "default",
            "web",
            0,
            &[
                ("10.244.1.2", Some("web-0"), true),
                ("10.244.1.3", None, true),
                ("10.244.1.4", None, false),
            ],
            http.clone(),
        ),
        slice(
            "default",
            "empty",
            0,
            &[("10.244.1.9", None, false)],
            http.clone(),
        ),
        slice(
            "default",
            "starting",
            0,
            &[("10.244.2.9", None, false)],
            http,
        ),
    ]
}

fn ask(z: &ClusterZone, q: &str, t: RecordType) -> Answer {
    z.answer(&name(q), t)
        .unwrap_or_else(|| panic!("{q} {t} is in the zone"))
}

/// The answer section as text (`owner TYPE rdata`).
fn rrs(a: &Answer) -> Vec<String> {
    a.answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

fn assert_nxdomain(z: &ClusterZone, q: &str, t: RecordType) {
    let a = ask(z, q, t);
    assert_eq!(a.rcode, ResponseCode::NXDomain, "{q} {t}: {a:?}");
    assert!(a.answers.is_empty());
    assert_eq!(a.authority.len(), 1, "SOA in authority");
    assert_eq!(a.authority[0].record_type(), RecordType::SOA);
}

fn assert_nodata(z: &ClusterZone, q: &str, t: RecordType) {
    let a = ask(z, q, t);
    assert_eq!(a.rcode, ResponseCode::NoError, "{q} {t}: {a:?}");
    assert!(a.answers.is_empty(), "{q} {t}: {:?}", rrs(&a));
    assert_eq!(a.authority.len(), 1, "SOA in authority");
    assert_eq!(a.authority[0].record_type(), RecordType::SOA);
}

mod spec_2_2_schema_version {
    use super::*;

    #[test]
    fn dns_version_txt_is_1_1_0() {
        let a = ask(&zone(), "dns-version.cluster.local.", RecordType::TXT);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.authoritative);
        assert_eq!(rrs(&a), ["dns-version.cluster.local. TXT 1.1.0"]);
        assert_eq!(a.answers[0].ttl, 5);
    }

    #[test]
    fn other_types_are_nodata() {
        assert_nodata(&zone(), "dns-version.cluster.local.", RecordType::A);
    }
}

mod spec_2_3_1_a_records {
    use super::*;

    #[test]
    fn cluster_ip_service_has_an_a_record() {
        let a = ask(&zone(), "nginx.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.authoritative);
        assert_eq!(rrs(&a), ["nginx.default.svc.cluster.local. A 10.96.0.20"]);
        assert!(a.authority.is_empty());
    }

    #[test]
    fn dual_stack_service_has_a_and_aaaa() {
        let z = zone();
        assert_eq!(
            rrs(&ask(&z, "dual.default.svc.cluster.local.", RecordType::A)),
            ["dual.default.svc.cluster.local. A 10.96.0.21"]
        );
        assert_eq!(
            rrs(&ask(
                &z,
                "dual.default.svc.cluster.local.",
                RecordType::AAAA
            )),
            ["dual.default.svc.cluster.local. AAAA fd00:10:96::21"]
        );
    }

    #[test]
    fn aaaa_of_an_ipv4_only_service_is_nodata() {
        assert_nodata(
            &zone(),
            "nginx.default.svc.cluster.local.",
            RecordType::AAAA,
        );
    }

    #[test]
    fn ttl_is_configurable() {
        let z = zone_with(
            ZoneConfig {
                ttl: 30,
                ..Default::default()
            },
            &services(),
            &[],
            &[],
        );
        let a = ask(&z, "nginx.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.answers[0].ttl, 30);
    }

    #[test]
    fn cluster_domain_is_configurable() {
        let z = zone_with(
            ZoneConfig {
                domain: "example.internal".into(),
                ..Default::default()
            },
            &services(),
            &[],
            &[],
        );
        assert_eq!(
            rrs(&ask(
                &z,
                "nginx.default.svc.example.internal.",
                RecordType::A
            )),
            ["nginx.default.svc.example.internal. A 10.96.0.20"]
        );
        assert!(z
            .answer(&name("nginx.default.svc.cluster.local."), RecordType::A)
            .is_none());
    }

    #[test]
    fn a_service_without_an_allocated_ip_has_no_record() {
        let s = svc(json!({"metadata": {"name": "new", "namespace": "default"},
                           "spec": {"ports": [{"port": 80}]}}));
        let z = zone_with(ZoneConfig::default(), &[s], &[], &[]);
        assert_nxdomain(&z, "new.default.svc.cluster.local.", RecordType::A);
    }
}

mod spec_2_3_2_srv_records {
    use super::*;

    #[test]
    fn named_port_srv_targets_the_service() {
        let a = ask(
            &zone(),
            "_http._tcp.nginx.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(
            rrs(&a),
            ["_http._tcp.nginx.default.svc.cluster.local. SRV 0 100 80 nginx.default.svc.cluster.local."]
        );
        // The target's address, in the additional section (CoreDNS does the same).
        assert_eq!(a.additional.len(), 1);
        assert_eq!(a.additional[0].data.to_string(), "10.96.0.20");
    }

    #[test]
    fn protocol_is_part_of_the_name() {
        let z = zone();
        assert_eq!(
            rrs(&ask(&z, "_dns._udp.nginx.default.svc.cluster.local.", RecordType::SRV)),
            ["_dns._udp.nginx.default.svc.cluster.local. SRV 0 100 53 nginx.default.svc.cluster.local."]
        );
        assert_nxdomain(
            &z,
            "_dns._tcp.nginx.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_nxdomain(
            &z,
            "_nope._tcp.nginx.default.svc.cluster.local.",
            RecordType::SRV,
        );
    }

    #[test]
    fn srv_of_the_service_name_lists_every_port_coredns() {
        let a = ask(&zone(), "nginx.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(
            rrs(&a),
            [
                "nginx.default.svc.cluster.local. SRV 0 33 80 nginx.default.svc.cluster.local.",
                "nginx.default.svc.cluster.local. SRV 0 33 53 nginx.default.svc.cluster.local.",
                "nginx.default.svc.cluster.local. SRV 0 33 8080 nginx.default.svc.cluster.local.",
            ]
        );
        assert_eq!(a.additional.len(), 1, "one target, added once");
    }
}

mod spec_2_3_3_ptr_records {
    use super::*;

    #[test]
    fn cluster_ip_has_a_ptr() {
        let z = zone();
        let a = ask(&z, "20.0.96.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.authoritative);
        assert_eq!(
            rrs(&a),
            ["20.0.96.10.in-addr.arpa. PTR nginx.default.svc.cluster.local."]
        );
    }

    #[test]
    fn ipv6_cluster_ip_has_a_ptr() {
        let z = zone();
        let q = Name::from(IpAddr::from("fd00:10:96::21".parse::<Ipv6Addr>().unwrap()));
        let a = z.answer(&q, RecordType::PTR).unwrap();
        assert_eq!(a.answers.len(), 1);
        assert_eq!(
            a.answers[0].data.to_string(),
            "dual.default.svc.cluster.local."
        );
        assert!(q.to_ascii().ends_with("ip6.arpa."));
    }

    #[test]
    fn unknown_addresses_fall_through_to_the_upstreams() {
        let z = zone();
        assert!(z
            .answer(&name("1.1.168.192.in-addr.arpa."), RecordType::PTR)
            .is_none());
        assert!(z
            .answer(&name("96.10.in-addr.arpa."), RecordType::PTR)
            .is_none());
    }

    #[test]
    fn other_types_on_a_known_reverse_name_are_nodata() {
        let a = ask(&zone(), "20.0.96.10.in-addr.arpa.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.answers.is_empty());
        assert_eq!(a.authority[0].name.to_ascii(), "in-addr.arpa.");
    }
}

mod spec_2_4_1_headless_a_records {
    use super::*;

    #[test]
    fn one_a_record_per_ready_endpoint() {
        let a = ask(&zone(), "web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(
            rrs(&a),
            [
                "web.default.svc.cluster.local. A 10.244.1.2",
                "web.default.svc.cluster.local. A 10.244.1.3",
            ]
        );
    }

    #[test]
    fn every_endpoint_with_publish_not_ready_addresses() {
        let a = ask(
            &zone(),
            "starting.default.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(
            rrs(&a),
            ["starting.default.svc.cluster.local. A 10.244.2.9"]
        );
    }

    #[test]
    fn no_ready_endpoints_is_nxdomain() {
        let z = zone();
        assert_nxdomain(&z, "empty.default.svc.cluster.local.", RecordType::A);
        assert_nxdomain(
            &z,
            "_http._tcp.empty.default.svc.cluster.local.",
            RecordType::SRV,
        );
    }

    #[test]
    fn endpoint_hostname_record() {
        let a = ask(
            &zone(),
            "web-0.web.default.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(
            rrs(&a),
            ["web-0.web.default.svc.cluster.local. A 10.244.1.2"]
        );
    }

    #[test]
    fn endpoint_without_hostname_is_named_from_its_ip_coredns() {
        let z = zone();
        let a = ask(
            &z,
            "10-244-1-3.web.default.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(
            rrs(&a),
            ["10-244-1-3.web.default.svc.cluster.local. A 10.244.1.3"]
        );
        // Not-ready endpoints get no name; unknown ones neither.
        assert_nxdomain(
            &z,
            "10-244-1-4.web.default.svc.cluster.local.",
            RecordType::A,
        );
        assert_nxdomain(&z, "web-9.web.default.svc.cluster.local.", RecordType::A);
    }

    #[test]
    fn ipv6_endpoints_answer_aaaa_with_dashed_names() {
        let s = headless("default", "v6", false);
        let sl = slice("default", "v6", 0, &[("fd00::5", None, true)], json!([]));
        let z = zone_with(ZoneConfig::default(), &[s], &[sl], &[]);
        assert_eq!(
            rrs(&ask(&z, "v6.default.svc.cluster.local.", RecordType::AAAA)),
            ["v6.default.svc.cluster.local. AAAA fd00::5"]
        );
        assert_nodata(&z, "v6.default.svc.cluster.local.", RecordType::A);
        assert_eq!(
            rrs(&ask(
                &z,
                "fd00--5.v6.default.svc.cluster.local.",
                RecordType::AAAA
            )),
            ["fd00--5.v6.default.svc.cluster.local. AAAA fd00::5"]
        );
    }

    #[test]
    fn an_address_in_two_slices_is_answered_once() {
        let s = headless("default", "moving", false);
        let p = json!([{"name": "http", "port": 8080, "protocol": "TCP"}]);
        let a = slice(
            "default",
            "moving",
            0,
            &[("10.244.3.1", None, true)],
            p.clone(),
        );
        let b = slice("default", "moving", 1, &[("10.244.3.1", None, true)], p);
        let z = zone_with(ZoneConfig::default(), &[s], &[a, b], &[]);
        assert_eq!(
            rrs(&ask(&z, "moving.default.svc.cluster.local.", RecordType::A)).len(),
            1
        );
    }

    #[test]
    fn pod_hostname_and_subdomain_via_the_slice_hostname() {
        // A pod with hostname "db-0" and subdomain "db" behind the headless Service "db": the
        // EndpointSlice controller copies the hostname into the endpoint.
        let s = headless("default", "db", false);
        let sl = slice(
            "default",
            "db",
            0,
            &[("10.244.4.4", Some("db-0"), true)],
            json!([{"name": "http", "port": 80}]),
        );
        let z = zone_with(ZoneConfig::default(), &[s], &[sl], &[]);
        assert_eq!(
            rrs(&ask(
                &z,
                "db-0.db.default.svc.cluster.local.",
                RecordType::A
            )),
            ["db-0.db.default.svc.cluster.local. A 10.244.4.4"]
        );
    }
}

mod spec_2_4_2_headless_srv_records {
    use super::*;

    #[test]
    fn one_srv_per_ready_endpoint_and_named_port() {
        let a = ask(
            &zone(),
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(
            rrs(&a),
            [
                "_http._tcp.web.default.svc.cluster.local. SRV 0 50 8080 web-0.web.default.svc.cluster.local.",
                "_http._tcp.web.default.svc.cluster.local. SRV 0 50 8080 10-244-1-3.web.default.svc.cluster.local.",
            ]
        );
        let extra: Vec<String> = a
            .additional
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        assert_eq!(
            extra,
            [
                "web-0.web.default.svc.cluster.local. 10.244.1.2",
                "10-244-1-3.web.default.svc.cluster.local. 10.244.1.3",
            ]
        );
    }
}

mod spec_2_4_3_headless_ptr_records {
    use super::*;

    #[test]
    fn endpoint_ip_points_at_its_hostname() {
        let z = zone();
        assert_eq!(
            rrs(&ask(&z, "2.1.244.10.in-addr.arpa.", RecordType::PTR)),
            ["2.1.244.10.in-addr.arpa. PTR web-0.web.default.svc.cluster.local."]
        );
        assert_eq!(
            rrs(&ask(&z, "3.1.244.10.in-addr.arpa.", RecordType::PTR)),
            ["3.1.244.10.in-addr.arpa. PTR 10-244-1-3.web.default.svc.cluster.local."]
        );
        // Not ready: not published.
        assert!(z
            .answer(&name("4.1.244.10.in-addr.arpa."), RecordType::PTR)
            .is_none());
    }
}

mod spec_2_5_1_cname_records {
    use super::*;

    #[test]
    fn external_name_is_a_cname_chased_upstream() {
        let a = ask(&zone(), "ext.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(
            rrs(&a),
            ["ext.default.svc.cluster.local. CNAME www.example.org."]
        );
        assert_eq!(a.chase, Some(name("www.example.org.")));
    }

    #[test]
    fn a_cname_query_is_not_chased() {
        let a = ask(&zone(), "ext.default.svc.cluster.local.", RecordType::CNAME);
        assert_eq!(rrs(&a).len(), 1);
        assert_eq!(a.chase, None);
    }

    #[test]
    fn a_target_in_the_zone_is_followed() {
        let a = ask(&zone(), "alias.default.svc.cluster.local.", RecordType::A);
        assert_eq!(
            rrs(&a),
            [
                "alias.default.svc.cluster.local. CNAME nginx.default.svc.cluster.local.",
                "nginx.default.svc.cluster.local. A 10.96.0.20",
            ]
        );
        assert_eq!(a.chase, None);
    }
}

mod coredns_negative_answers {
    use super::*;

    #[test]
    fn structural_names_are_nodata() {
        let z = zone();
        assert_nodata(&z, "cluster.local.", RecordType::A);
        assert_nodata(&z, "svc.cluster.local.", RecordType::A);
        assert_nodata(&z, "default.svc.cluster.local.", RecordType::A);
        // An existing namespace without Services.
        assert_nodata(&z, "empty.svc.cluster.local.", RecordType::A);
    }

    #[test]
    fn wrong_names_are_nxdomain() {
        let z = zone();
        assert_nxdomain(&z, "nope.default.svc.cluster.local.", RecordType::A);
        assert_nxdomain(&z, "nope.svc.cluster.local.", RecordType::A);
        assert_nxdomain(&z, "nginx.nope.svc.cluster.local.", RecordType::A);
        assert_nxdomain(&z, "foo.cluster.local.", RecordType::A);
        assert_nxdomain(&z, "a.b.nginx.default.svc.cluster.local.", RecordType::A);
    }

    #[test]
    fn other_types_on_a_service_are_nodata() {
        let z = zone();
        assert_nodata(&z, "nginx.default.svc.cluster.local.", RecordType::TXT);
        assert_nodata(&z, "nginx.default.svc.cluster.local.", RecordType::MX);
    }

    #[test]
    fn soa_is_corednss() {
        let z = zone_with(
            ZoneConfig {
                serial: 1234,
                ..Default::default()
            },
            &[],
            &[],
            &[],
        );
        let a = ask(&z, "nope.cluster.local.", RecordType::A);
        assert_eq!(
            a.authority[0].to_string(),
            "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1234 7200 1800 86400 5"
        );
        let soa = ask(&z, "cluster.local.", RecordType::SOA);
        assert_eq!(soa.answers.len(), 1);
        assert!(soa.authority.is_empty());
        let ns = ask(&z, "cluster.local.", RecordType::NS);
        assert_eq!(rrs(&ns), ["cluster.local. NS ns.dns.cluster.local."]);
    }

    #[test]
    fn ns_has_the_dns_services_address_as_glue() {
        let dns = cluster_ip(
            "kube-system",
            "kube-dns",
            &["10.96.0.10"],
            json!([{"name": "dns", "port": 53, "protocol": "UDP"}]),
        );
        let z = zone_with(ZoneConfig::default(), &[dns], &[], &[]);
        let a = ask(&z, "cluster.local.", RecordType::NS);
        assert_eq!(rrs(&a), ["cluster.local. NS ns.dns.cluster.local."]);
        assert_eq!(a.additional.len(), 1);
        assert_eq!(
            a.additional[0].to_string(),
            "ns.dns.cluster.local. 5 IN A 10.96.0.10"
        );
        assert_eq!(
            rrs(&ask(&z, "ns.dns.cluster.local.", RecordType::A)),
            ["ns.dns.cluster.local. A 10.96.0.10"]
        );
        // Without that Service: no address (NXDOMAIN, as the name names no namespace).
        assert_nxdomain(&zone(), "ns.dns.cluster.local.", RecordType::A);
    }

    #[test]
    fn names_outside_the_zone_are_not_ours() {
        let z = zone();
        assert!(z.answer(&name("example.org."), RecordType::A).is_none());
        assert!(z.answer(&name("local."), RecordType::A).is_none());
    }
}

mod case_insensitivity {
    use super::*;

    #[test]
    fn any_case_matches_and_the_owner_echoes_the_question() {
        let a = ask(&zone(), "NGINX.Default.SVC.Cluster.Local.", RecordType::A);
        assert_eq!(rrs(&a), ["NGINX.Default.SVC.Cluster.Local. A 10.96.0.20"]);
        let a = ask(
            &zone(),
            "_HTTP._TCP.Web.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(a.answers.len(), 2);
    }

    #[test]
    fn upper_case_domain_configured() {
        let z = zone_with(
            ZoneConfig {
                domain: "Cluster.Local".into(),
                ..Default::default()
            },
            &services(),
            &[],
            &[],
        );
        assert_eq!(
            ask(&z, "nginx.default.svc.cluster.local.", RecordType::A)
                .answers
                .len(),
            1
        );
    }
}

mod pod_records {
    use super::*;

    fn pod(ns: &str, ip: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": ns},
                                      "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}))
        .unwrap()
    }

    fn with(mode: PodMode) -> ClusterZone {
        zone_with(
            ZoneConfig {
                pods: mode,
                ..Default::default()
            },
            &[],
            &[],
            &[pod("default", "10.244.1.7")],
        )
    }

    #[test]
    fn disabled_by_default_nxdomain() {
        assert_nxdomain(
            &with(PodMode::Disabled),
            "10-244-1-7.default.pod.cluster.local.",
            RecordType::A,
        );
    }

    #[test]
    fn insecure_answers_any_address_in_an_existing_namespace() {
        let z = with(PodMode::Insecure);
        assert_eq!(
            rrs(&ask(
                &z,
                "10-244-9-9.default.pod.cluster.local.",
                RecordType::A
            )),
            ["10-244-9-9.default.pod.cluster.local. A 10.244.9.9"]
        );
        assert_nodata(
            &z,
            "10-244-9-9.default.pod.cluster.local.",
            RecordType::AAAA,
        );
        assert_nxdomain(&z, "10-244-9-9.nope.pod.cluster.local.", RecordType::A);
        assert_nxdomain(&z, "not-an-ip.default.pod.cluster.local.", RecordType::A);
        assert_nodata(&z, "default.pod.cluster.local.", RecordType::A);
    }

    #[test]
    fn verified_answers_only_existing_pods() {
        let z = with(PodMode::Verified);
        assert_eq!(
            ask(&z, "10-244-1-7.default.pod.cluster.local.", RecordType::A)
                .answers
                .len(),
            1
        );
        assert_nxdomain(&z, "10-244-9-9.default.pod.cluster.local.", RecordType::A);
        assert_nxdomain(
            &z,
            "10-244-1-7.kube-system.pod.cluster.local.",
            RecordType::A,
        );
    }

    #[test]
    fn mode_parses_from_the_flag() {
        assert_eq!("insecure".parse::<PodMode>(), Ok(PodMode::Insecure));
        assert!("on".parse::<PodMode>().is_err());
    }
}

mod scale {
    use super::*;

    /// 10k Services (half headless, 5 endpoints each with a named port): the whole zone is
    /// rebuilt on every change, so its build time bounds how fast an update is answered.
    #[test]
    fn build_10k_services_50k_endpoints() {
        let mut svcs = vec![];
        let mut sls = vec![];
        for i in 0..10_000u32 {
            let name = format!("s{i}");
            let ports = json!([{"name": "http", "port": 80, "protocol": "TCP"}]);
            if i % 2 == 0 {
                let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
                svcs.push(cluster_ip("default", &name, &[&ip], ports));
            } else {
                svcs.push(headless("default", &name, false));
            }
            let eps: Vec<String> = (0..5u32)
                .map(|e| {
                    let n = i * 5 + e;
                    format!("10.{}.{}.{}", 100 + n / 65536, (n / 256) % 256, n % 256)
                })
                .collect();
            let eps: Vec<(&str, Option<&str>, bool)> =
                eps.iter().map(|ip| (ip.as_str(), None, true)).collect();
            sls.push(slice(
                "default",
                &name,
                0,
                &eps,
                json!([{"name": "http", "port": 8080}]),
            ));
        }
        for (i, s) in svcs.iter_mut().enumerate() {
            s.metadata.resource_version = Some(format!("{i}"));
        }
        for (i, s) in sls.iter_mut().enumerate() {
            s.metadata.resource_version = Some(format!("{i}"));
        }
        let nss = [ns("default"), ns("kube-system"), ns("empty")];
        let nss: Vec<&Namespace> = nss.iter().collect();
        let mut b = ZoneBuilder::new(ZoneConfig::default());
        let started = std::time::Instant::now();
        let z = b.update(
            0,
            &svcs.iter().collect::<Vec<_>>(),
            &sls.iter().collect::<Vec<_>>(),
            &nss,
            &[],
        );
        let took = started.elapsed();
        println!(
            "built {} names from 10k Services / 50k endpoints in {took:?}",
            z.len()
        );
        // One Service changes: only it is rebuilt.
        svcs[9998].metadata.resource_version = Some("changed".into());
        let started = std::time::Instant::now();
        let z2 = b.update(
            0,
            &svcs.iter().collect::<Vec<_>>(),
            &sls.iter().collect::<Vec<_>>(),
            &nss,
            &[],
        );
        println!("updated one Service in {:?}", started.elapsed());
        assert_eq!(z2.len(), z.len());
        // 5k ClusterIP (name + SRV name) + 5k headless (name + SRV name + 5 hosts) + fixed.
        // + apex, svc, dns-version and 3 namespaces.
        assert_eq!(z.len(), 5_000 * 2 + 5_000 * 7 + 6);
        assert_eq!(
            ask(&z, "s9999.default.svc.cluster.local.", RecordType::A)
                .answers
                .len(),
            5
        );
    }
}

mod incremental {
    use super::*;

    fn rv<
        T: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    >(
        mut o: T,
        v: &str,
    ) -> T {
        o.metadata_mut().resource_version = Some(v.into());
        o
    }

    /// Every answer the zone gives for these questions, as text.
    fn snapshot(z: &ClusterZone) -> Vec<String> {
        let qs = [
            ("nginx.default.svc.cluster.local.", RecordType::A),
            ("web.default.svc.cluster.local.", RecordType::A),
            ("web-0.web.default.svc.cluster.local.", RecordType::A),
            ("10-244-1-3.web.default.svc.cluster.local.", RecordType::A),
            ("10-244-1-5.web.default.svc.cluster.local.", RecordType::A),
            ("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV),
            ("2.1.244.10.in-addr.arpa.", RecordType::PTR),
            ("3.1.244.10.in-addr.arpa.", RecordType::PTR),
            ("5.1.244.10.in-addr.arpa.", RecordType::PTR),
            ("20.0.96.10.in-addr.arpa.", RecordType::PTR),
            ("other.svc.cluster.local.", RecordType::A),
            ("dual.default.svc.cluster.local.", RecordType::AAAA),
        ];
        qs.iter()
            .map(|(q, t)| match z.answer(&name(q), *t) {
                Some(a) => format!("{q} {t} {:?} {:?}", a.rcode, rrs(&a)),
                None => format!("{q} {t} not ours"),
            })
            .collect()
    }

    #[test]
    fn updates_equal_a_fresh_build() {
        let nss = [ns("default"), ns("other")];
        let nss: Vec<&Namespace> = nss.iter().collect();
        let mut svcs: Vec<Service> = services().into_iter().map(|s| rv(s, "1")).collect();
        let mut sls: Vec<EndpointSlice> = slices().into_iter().map(|s| rv(s, "1")).collect();
        let mut b = ZoneBuilder::new(ZoneConfig::default());
        let check =
            |b: &mut ZoneBuilder, svcs: &[Service], sls: &[EndpointSlice], nss: &[&Namespace]| {
                let svcs: Vec<&Service> = svcs.iter().collect();
                let sls: Vec<&EndpointSlice> = sls.iter().collect();
                let inc = b.update(0, &svcs, &sls, nss, &[]);
                let fresh = ClusterZone::build(ZoneConfig::default(), &svcs, &sls, nss, &[]);
                assert_eq!(snapshot(&inc), snapshot(&fresh));
                assert_eq!(inc.len(), fresh.len());
                inc
            };
        let first = check(&mut b, &svcs, &sls, &nss);
        assert_eq!(
            rrs(&ask(
                &first,
                "web.default.svc.cluster.local.",
                RecordType::A
            ))
            .len(),
            2
        );
        // An endpoint changes (10.244.1.3 → 10.244.1.5): the slice's resourceVersion moves.
        sls[0] = rv(
            slice(
                "default",
                "web",
                0,
                &[
                    ("10.244.1.2", Some("web-0"), true),
                    ("10.244.1.5", None, true),
                ],
                json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
            ),
            "2",
        );
        let z = check(&mut b, &svcs, &sls, &nss);
        assert_nxdomain(
            &z,
            "10-244-1-3.web.default.svc.cluster.local.",
            RecordType::A,
        );
        assert!(z
            .answer(&name("3.1.244.10.in-addr.arpa."), RecordType::PTR)
            .is_none());
        // The ClusterIP Service is deleted, a namespace goes away.
        svcs.retain(|s| s.metadata.name.as_deref() != Some("nginx"));
        let z = check(&mut b, &svcs, &sls, &nss[..1]);
        assert_nxdomain(&z, "nginx.default.svc.cluster.local.", RecordType::A);
        assert_nxdomain(&z, "other.svc.cluster.local.", RecordType::A);
        // An unchanged resourceVersion is not rebuilt: the old zone keeps answering, and the
        // one before the update is untouched by it (queries in flight see a whole zone).
        let before = b.update(
            0,
            &svcs.iter().collect::<Vec<_>>(),
            &sls.iter().collect::<Vec<_>>(),
            &nss,
            &[],
        );
        svcs.push(rv(
            cluster_ip("default", "late", &["10.96.0.99"], json!([])),
            "5",
        ));
        let after = check(&mut b, &svcs, &sls, &nss);
        assert_nxdomain(&before, "late.default.svc.cluster.local.", RecordType::A);
        assert_eq!(
            ask(&after, "late.default.svc.cluster.local.", RecordType::A)
                .answers
                .len(),
            1
        );
    }
}
