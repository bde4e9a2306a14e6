//! Cluster DNS conformance, black box: a real `svcnet apiserver`, `svcnet dns` as a process on
//! a loopback port, queried with `dig` (Debian's dnsutils) over UDP and TCP and with
//! hickory-resolver. Organised by section of kubernetes/dns docs/specification.md (schema
//! 1.1.0), then CoreDNS's behaviour where the specification is silent (NXDOMAIN vs NODATA,
//! truncation, forwarding, SERVFAIL before sync).
//!
//! Forwarding never leaves the machine: the upstream is a second `svcnet dns` on loopback,
//! authoritative for `example.org` (its cluster domain), whose own upstream is a closed port.

mod support;

use std::net::{IpAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::Resolver;
use support::dns::{dig, dig_in, free_port, Dig, Dns};
use support::{eventually, ApiServer};
use svcnet_netns::testing;

/// Run dig over UDP and over TCP; both must agree. Returns the UDP one.
fn dig_both(port: u16, args: &[&str]) -> Dig {
    let udp = dig(port, args);
    let mut t = args.to_vec();
    t.push("+tcp");
    let tcp = dig(port, &t);
    assert_eq!(
        udp.status, tcp.status,
        "UDP vs TCP: {}\n{}",
        udp.raw, tcp.raw
    );
    let mut a = udp.answer.clone();
    let mut b = tcp.answer.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "UDP vs TCP answers");
    udp
}

/// A hickory resolver talking to `dns` over `proto` ("udp" / "tcp"), with `search` and ndots 5
/// as a pod's resolv.conf has.
fn resolver(dns: &Dns, proto: &str, search: &[&str]) -> Resolver<TokioRuntimeProvider> {
    let mut conn = if proto == "tcp" {
        ConnectionConfig::tcp()
    } else {
        ConnectionConfig::udp()
    };
    conn.port = dns.port;
    let mut cfg = ResolverConfig::default();
    cfg.name_servers = vec![NameServerConfig::new(
        "127.0.0.1".parse().unwrap(),
        true,
        vec![conn],
    )];
    cfg.search = search
        .iter()
        .map(|s| Name::from_ascii(s).unwrap())
        .collect();
    let mut b = Resolver::builder_with_config(cfg, TokioRuntimeProvider::default());
    let o: &mut ResolverOpts = b.options_mut();
    o.ndots = 5;
    o.cache_size = 0;
    o.attempts = 1;
    o.timeout = Duration::from_secs(2);
    b.build().unwrap()
}

/// One raw query with hickory-proto (for header bits and EDNS sizes dig does not expose).
fn raw_udp(port: u16, name: &str, t: RecordType, edns_payload: Option<u16>) -> (Message, usize) {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(p) = edns_payload {
        let mut e = Edns::new();
        e.set_max_payload(p);
        m.set_edns(e);
    }
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.send_to(&m.to_vec().unwrap(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let n = s.recv(&mut buf).unwrap();
    (Message::from_vec(&buf[..n]).unwrap(), n)
}

/// The common cluster: an API server with the fixture objects, an upstream for example.org and
/// the server under test (its upstream: the first).
struct Fixture {
    api: ApiServer,
    upstream: Dns,
    dns: Dns,
}

/// The fixture objects: Services of every kind (ClusterIP, headless with and without
/// hostnames, headless with only not-ready endpoints, published or not, ExternalName in and
/// out of the zone), their EndpointSlices, and an empty Namespace.
fn fixture() -> String {
    [
        FIXTURE_HEAD,
        &headless_not_ready("notready", "10.244.1.9", false),
        &headless_not_ready("published", "10.244.2.9", true),
        &external_name("ext", "far.default.svc.example.org"),
        &external_name("alias", "nginx.default.svc.cluster.local"),
        FIXTURE_TAIL,
    ]
    .concat()
}

const FIXTURE_HEAD: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: default}
spec:
  clusterIP: 10.96.0.20
  ports:
  - {name: http, port: 80, protocol: TCP}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [10.244.1.2]
  hostname: web-0
  conditions: {ready: true}
- addresses: [10.244.1.3]
  conditions: {ready: true}
- addresses: [10.244.1.4]
  conditions: {ready: false}
ports: [{name: http, port: 8080, protocol: TCP}]
---
"#;

/// A headless Service on port 80 whose one endpoint, `ip`, is not ready, with
/// `publishNotReadyAddresses` when `publish`.
fn headless_not_ready(name: &str, ip: &str, publish: bool) -> String {
    let publish = if publish {
        "\n  publishNotReadyAddresses: true"
    } else {
        ""
    };
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  clusterIP: None{publish}
  ports: [{{port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-abc
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
endpoints:
- addresses: [{ip}]
  conditions: {{ready: false}}
ports: [{{port: 80}}]
---
"#
    )
}

/// An ExternalName Service pointing at `target`.
fn external_name(name: &str, target: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  type: ExternalName
  externalName: {target}
---
"#
    )
}

const FIXTURE_TAIL: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: quiet}
---
apiVersion: v1
kind: Service
metadata: {name: far, namespace: default}
spec:
  clusterIP: 10.96.0.30
  ports: [{port: 80}]
"#;

/// An API server holding the [`fixture`] objects.
fn api_with_fixture() -> ApiServer {
    let api = ApiServer::start();
    let out = api.kubectl_stdin(&["create", "-f", "-"], &fixture());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    api
}

impl Fixture {
    fn new(dns_args: &[&str]) -> Fixture {
        let api = api_with_fixture();
        let dir = api.dir.path().to_path_buf();
        let closed = format!("127.0.0.1:{}", free_port());
        let upstream = Dns::start_ready(
            &api.kubeconfig,
            &dir,
            "upstream",
            &["--cluster-domain", "example.org", "--upstream", &closed],
        );
        let up = format!("127.0.0.1:{}", upstream.port);
        let mut args = vec!["--upstream", up.as_str()];
        args.extend_from_slice(dns_args);
        let dns = Dns::start_ready(&api.kubeconfig, &dir, "main", &args);
        Fixture { api, upstream, dns }
    }

    fn dig(&self, args: &[&str]) -> Dig {
        dig_both(self.dns.port, args)
    }
}

#[test]
fn spec_2_2_schema_version_txt() {
    let f = Fixture::new(&[]);
    let d = f.dig(&["dns-version.cluster.local", "TXT"]);
    assert_eq!(d.status, "NOERROR");
    assert!(d.has_flag("aa") && d.has_flag("qr"), "{}", d.raw);
    assert_eq!(
        d.answer,
        ["dns-version.cluster.local. 5 IN TXT \"1.1.0\""],
        "{}",
        d.raw
    );
}

#[test]
fn spec_2_3_cluster_ip_a_srv_ptr() {
    let f = Fixture::new(&[]);
    let p = f.dns.port;
    // 2.3.1 A
    let d = f.dig(&["nginx.default.svc.cluster.local", "A"]);
    assert_eq!(
        d.answer,
        ["nginx.default.svc.cluster.local. 5 IN A 10.96.0.20"]
    );
    assert!(d.has_flag("aa"));
    dig(p, &["nginx.default.svc.cluster.local", "AAAA"]).assert_nodata();
    // 2.3.2 SRV, per named port and protocol
    let d = f.dig(&["_http._tcp.nginx.default.svc.cluster.local", "SRV"]);
    assert_eq!(d.data(), ["SRV 0 100 80 nginx.default.svc.cluster.local."]);
    assert_eq!(
        d.additional,
        ["nginx.default.svc.cluster.local. 5 IN A 10.96.0.20"]
    );
    let d = f.dig(&["_dns._udp.nginx.default.svc.cluster.local", "SRV"]);
    assert_eq!(d.data(), ["SRV 0 100 53 nginx.default.svc.cluster.local."]);
    dig(p, &["_dns._tcp.nginx.default.svc.cluster.local", "SRV"]).assert_nxdomain();
    // 2.3.3 PTR
    let d = f.dig(&["-x", "10.96.0.20"]);
    assert_eq!(
        d.answer,
        ["20.0.96.10.in-addr.arpa. 5 IN PTR nginx.default.svc.cluster.local."]
    );
    assert!(d.has_flag("aa"));

    // The same through hickory-resolver, over UDP and TCP.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for proto in ["udp", "tcp"] {
            let r = resolver(&f.dns, proto, &[]);
            let ips: Vec<IpAddr> = r
                .lookup_ip("nginx.default.svc.cluster.local.")
                .await
                .unwrap()
                .iter()
                .collect();
            assert_eq!(ips, ["10.96.0.20".parse::<IpAddr>().unwrap()], "{proto}");
            let srv = r
                .srv_lookup("_http._tcp.nginx.default.svc.cluster.local.")
                .await
                .unwrap();
            let got: Vec<String> = srv.answers().iter().map(|r| r.data.to_string()).collect();
            assert_eq!(
                got,
                ["0 100 80 nginx.default.svc.cluster.local."],
                "{proto}"
            );
            let ptr = r
                .reverse_lookup(Name::from("10.96.0.20".parse::<IpAddr>().unwrap()))
                .await
                .unwrap();
            assert_eq!(
                ptr.answers()[0].data.to_string(),
                "nginx.default.svc.cluster.local."
            );
        }
    });
}

#[test]
fn spec_2_4_headless_a_srv_ptr() {
    let f = Fixture::new(&[]);
    let p = f.dns.port;
    // 2.4.1: one A per ready endpoint; a name per endpoint (hostname, else from the IP).
    let mut d = f.dig(&["web.default.svc.cluster.local", "A"]).data();
    d.sort();
    assert_eq!(d, ["A 10.244.1.2", "A 10.244.1.3"]);
    assert_eq!(
        f.dig(&["web-0.web.default.svc.cluster.local"]).data(),
        ["A 10.244.1.2"]
    );
    assert_eq!(
        f.dig(&["10-244-1-3.web.default.svc.cluster.local"]).data(),
        ["A 10.244.1.3"]
    );
    dig(p, &["10-244-1-4.web.default.svc.cluster.local"]).assert_nxdomain();
    // No ready endpoints: NXDOMAIN; all of them with publishNotReadyAddresses.
    dig(p, &["notready.default.svc.cluster.local"]).assert_nxdomain();
    assert_eq!(
        f.dig(&["published.default.svc.cluster.local"]).data(),
        ["A 10.244.2.9"]
    );
    // 2.4.2: SRV per ready endpoint × named port, targeting the endpoint's name.
    let d = f.dig(&["_http._tcp.web.default.svc.cluster.local", "SRV"]);
    let mut srv = d.data();
    srv.sort();
    assert_eq!(
        srv,
        [
            "SRV 0 50 8080 10-244-1-3.web.default.svc.cluster.local.",
            "SRV 0 50 8080 web-0.web.default.svc.cluster.local.",
        ]
    );
    assert_eq!(d.additional.len(), 2, "{}", d.raw);
    // 2.4.3: PTR per endpoint IP.
    assert_eq!(
        f.dig(&["-x", "10.244.1.2"]).data(),
        ["PTR web-0.web.default.svc.cluster.local."]
    );
    assert_eq!(
        f.dig(&["-x", "10.244.1.3"]).data(),
        ["PTR 10-244-1-3.web.default.svc.cluster.local."]
    );
}

#[test]
fn spec_2_5_external_name_cname() {
    let f = Fixture::new(&[]);
    // The target is outside the cluster zone: CNAME, then the target's records from the
    // upstream (here authoritative for example.org).
    let d = f.dig(&["ext.default.svc.cluster.local", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert_eq!(
        d.data(),
        ["CNAME far.default.svc.example.org.", "A 10.96.0.30"],
        "{}",
        d.raw
    );
    assert_eq!(
        f.dig(&["ext.default.svc.cluster.local", "CNAME"]).data(),
        ["CNAME far.default.svc.example.org."]
    );
    // Inside the zone: followed locally.
    assert_eq!(
        f.dig(&["alias.default.svc.cluster.local"]).data(),
        ["CNAME nginx.default.svc.cluster.local.", "A 10.96.0.20"]
    );
}

#[test]
fn coredns_nxdomain_vs_nodata_and_case() {
    let f = Fixture::new(&[]);
    let p = f.dns.port;
    for name in [
        "cluster.local",
        "svc.cluster.local",
        "default.svc.cluster.local",
        "quiet.svc.cluster.local",
    ] {
        dig(p, &[name, "A"]).assert_nodata();
        dig(p, &[name, "A", "+tcp"]).assert_nodata();
    }
    for name in [
        "nope.default.svc.cluster.local",
        "nginx.nope.svc.cluster.local",
        "nope.svc.cluster.local",
        "foo.cluster.local",
        "10-244-1-2.default.pod.cluster.local",
    ] {
        dig(p, &[name, "A"]).assert_nxdomain();
    }
    let d = dig(p, &["nope.cluster.local"]);
    let soa = d.authority[0].clone();
    assert!(
        soa.starts_with("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. ")
            && soa.ends_with(" 7200 1800 86400 5"),
        "{soa}"
    );
    // Case-insensitive, the answer echoes the question's case.
    let d = f.dig(&["NGINX.Default.Svc.CLUSTER.local", "A"]);
    assert_eq!(
        d.answer,
        ["NGINX.Default.Svc.CLUSTER.local. 5 IN A 10.96.0.20"]
    );
    // No recursion on cluster names (as CoreDNS: no RA), AA set.
    assert!(d.has_flag("aa") && !d.has_flag("ra"), "{}", d.raw);
    // hickory-proto: exact header.
    let (m, _) = raw_udp(p, "nginx.default.svc.cluster.local.", RecordType::A, None);
    assert_eq!(m.metadata.id, 4242);
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn truncation_over_udp_full_answer_over_tcp() {
    let f = Fixture::new(&[]);
    let p = f.dns.port;
    let endpoints: Vec<String> = (0..100)
        .map(|i| {
            format!(
                "- addresses: [10.244.{}.{}]\n  conditions: {{ready: true}}",
                10 + i / 200,
                i % 200 + 1
            )
        })
        .collect();
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: big, namespace: default}}\nspec:\n  clusterIP: None\n  ports: [{{name: http, port: 80}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: big-abc\n  namespace: default\n  labels: {{kubernetes.io/service-name: big}}\naddressType: IPv4\nendpoints:\n{}\nports: [{{name: http, port: 80, protocol: TCP}}]\n",
        endpoints.join("\n")
    );
    let out = f.api.kubectl_stdin(&["create", "-f", "-"], &yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(Duration::from_secs(10), "the big service", || {
        (dig(p, &["big.default.svc.cluster.local", "+tcp"])
            .answer
            .len()
            == 100)
            .then_some(())
    });
    // Without EDNS0: 512 bytes, TC set, the answers that fit.
    let (m, n) = raw_udp(p, "big.default.svc.cluster.local.", RecordType::A, None);
    assert!(m.metadata.truncation, "TC");
    assert!(n <= 512, "{n} bytes");
    assert!(m.answers.len() < 100);
    // EDNS0 with 4096: the 100 A records (1.6 kB) fit.
    let (m, n) = raw_udp(
        p,
        "big.default.svc.cluster.local.",
        RecordType::A,
        Some(4096),
    );
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 100, "{n} bytes");
    assert!(m.edns.is_some(), "EDNS0 answered with OPT");
    // SRV with 100 targets: ~6 kB (SRV targets are never compressed, RFC 2782). At 4096 the
    // answers that fit, TC set; the additional section goes first.
    let (m, n) = raw_udp(
        p,
        "_http._tcp.big.default.svc.cluster.local.",
        RecordType::SRV,
        Some(4096),
    );
    assert!(m.metadata.truncation, "TC at {n} bytes");
    assert!(n <= 4096 && n > 3000, "{n} bytes");
    assert!(!m.answers.is_empty() && m.answers.len() < 100);
    assert!(m.additionals.is_empty());
    let d = dig(
        p,
        &[
            "_http._tcp.big.default.svc.cluster.local",
            "SRV",
            "+ignore",
            "+bufsize=1232",
        ],
    );
    assert!(d.has_flag("tc"), "{}", d.raw);
    let d = dig(
        p,
        &["_http._tcp.big.default.svc.cluster.local", "SRV", "+tcp"],
    );
    assert!(!d.has_flag("tc"));
    assert_eq!(d.answer.len(), 100);
    assert_eq!(
        d.additional.iter().filter(|l| l.contains(" IN A ")).count(),
        100
    );
    // dig without +ignore retries over TCP itself and gets everything.
    let d = dig(p, &["_http._tcp.big.default.svc.cluster.local", "SRV"]);
    assert_eq!(d.answer.len(), 100, "{}", d.raw);
}

#[test]
fn forwarding_with_a_cache() {
    let f = Fixture::new(&[]);
    let p = f.dns.port;
    // Outside the cluster domain: forwarded (the upstream is authoritative for example.org).
    let d = dig(p, &["nginx.default.svc.example.org", "A"]);
    assert_eq!(d.status, "NOERROR", "{}\n{}", d.raw, f.dns.log());
    assert_eq!(d.data(), ["A 10.96.0.20"]);
    let d = dig(p, &["nope.default.svc.example.org", "A", "+tcp"]);
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);
    // A second query is served from the cache, its TTL counting down.
    let before = f.dns.http("/metrics").1;
    let hits = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("coredns_cache_hits_total "))
            .and_then(|l| l.split(' ').nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let d = dig(p, &["nginx.default.svc.example.org", "A"]);
    assert_eq!(d.data(), ["A 10.96.0.20"]);
    let after = f.dns.http("/metrics").1;
    assert!(hits(&after) > hits(&before), "{after}");
    // The upstream does not answer: SERVFAIL for forwarded names; cluster names unaffected.
    drop(f.upstream);
    let t = Instant::now();
    let d = dig(p, &["gone.example.net", "A", "+time=5"]);
    assert_eq!(d.status, "SERVFAIL", "{}", d.raw);
    // A closed port refuses (ICMP) and the connected upstream socket hears it: no timeout.
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        dig(p, &["nginx.default.svc.cluster.local"]).data(),
        ["A 10.96.0.20"]
    );
    // hickory-resolver through the forwarder (cached answer from above).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = resolver(&f.dns, "udp", &[]);
        let ips: Vec<IpAddr> = r
            .lookup_ip("nginx.default.svc.example.org.")
            .await
            .unwrap()
            .iter()
            .collect();
        assert_eq!(ips, ["10.96.0.20".parse::<IpAddr>().unwrap()]);
    });
}

#[test]
fn servfail_until_the_watches_have_synced() {
    // An API server that never answers: the watches never sync.
    let dir = tempfile::tempdir().unwrap();
    let dead = TcpListener::bind("127.0.0.1:0").unwrap(); // accepts, never speaks TLS
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: x}}\n",
            dead.local_addr().unwrap()
        ),
    )
    .unwrap();
    let closed = format!("127.0.0.1:{}", free_port());
    let d = Dns::start(&kc, dir.path(), "unsynced", &["--upstream", &closed]);
    let out = dig(d.port, &["nginx.default.svc.cluster.local"]);
    assert_eq!(out.status, "SERVFAIL", "{}", out.raw);
    assert_eq!(
        dig(d.port, &["dns-version.cluster.local", "TXT", "+tcp"]).status,
        "SERVFAIL"
    );
    assert_eq!(d.http("/ready").0, 503);
    assert_eq!(d.http("/health").0, 200);
}

#[test]
fn updates_are_answered_within_100ms() {
    let f = Fixture::new(&[]);
    let p = f.dns.port;
    let name = "late.default.svc.cluster.local";
    dig(p, &[name]).assert_nxdomain();
    let started = Instant::now();
    f.api.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "late",
        "--tcp=80:80",
        "--clusterip=10.96.0.40",
    ]);
    let created = started.elapsed();
    let seen = eventually(Duration::from_secs(5), "the new Service in DNS", || {
        let d = dig(p, &[name]);
        (d.data() == ["A 10.96.0.40"]).then(|| started.elapsed())
    });
    println!(
        "create: kubectl returned after {created:?}, answered after {seen:?} ({:?} after kubectl)",
        seen.saturating_sub(created)
    );
    let started = Instant::now();
    f.api.kubectl_ok(&["delete", "service", "late"]);
    let deleted = started.elapsed();
    let gone = eventually(Duration::from_secs(5), "the Service gone from DNS", || {
        (dig(p, &[name]).status == "NXDOMAIN").then(|| started.elapsed())
    });
    println!(
        "delete: kubectl returned after {deleted:?}, NXDOMAIN after {gone:?} ({:?} after kubectl)",
        gone.saturating_sub(deleted)
    );
}

#[test]
fn search_path_from_a_pods_resolv_conf() {
    let f = Fixture::new(&[]);
    // A pod's resolv.conf (the kubelet's), the nameserver on our port.
    let conf = "nameserver 127.0.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";
    let (mut cfg, opts) = hickory_resolver::system_conf::parse_resolv_conf(conf).unwrap();
    assert_eq!(opts.ndots, 5);
    for ns in &mut cfg.name_servers {
        for c in &mut ns.connections {
            c.port = f.dns.port;
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut b = Resolver::builder_with_config(cfg, TokioRuntimeProvider::default());
        *b.options_mut() = opts;
        b.options_mut().cache_size = 0;
        let r = b.build().unwrap();
        for short in [
            "nginx",
            "nginx.default",
            "nginx.default.svc",
            "NGINX.Default",
        ] {
            let ips: Vec<IpAddr> = r.lookup_ip(short).await.unwrap().iter().collect();
            assert_eq!(ips, ["10.96.0.20".parse::<IpAddr>().unwrap()], "{short}");
        }
        let web: Vec<IpAddr> = r.lookup_ip("web-0.web").await.unwrap().iter().collect();
        assert_eq!(web, ["10.244.1.2".parse::<IpAddr>().unwrap()]);
        // Every search-path expansion of an unknown name is NXDOMAIN here (the bare name goes
        // upstream, which in this test has no root to ask).
        let e = r
            .lookup_ip("nope.default.svc.cluster.local.")
            .await
            .unwrap_err();
        assert!(e.is_nx_domain(), "{e}");
        assert!(r.lookup_ip("nope").await.is_err());
    });
}

#[test]
fn pod_records_behind_the_flag() {
    let f = Fixture::new(&["--pods", "insecure"]);
    let p = f.dns.port;
    assert_eq!(
        f.dig(&["10-244-1-2.default.pod.cluster.local"]).data(),
        ["A 10.244.1.2"]
    );
    dig(p, &["10-244-1-2.nope.pod.cluster.local"]).assert_nxdomain();
    dig(p, &["10-244-1-2.default.pod.cluster.local", "AAAA"]).assert_nodata();
}

#[test]
fn pod_hostname_and_subdomain_through_the_endpointslice_controller() {
    let mut api = ApiServer::start();
    api.start_controllers(&[]);
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-x, namespace: default, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  nodeName: n1
  containers: [{name: c, image: postgres}]
"#;
    let out = api.kubectl_stdin(&["create", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(api.client());
    // Spawned on `rt`, whose workers keep running it between the blocking calls below.
    let kubelet = {
        let _guard = rt.enter();
        support::fake_kubelet(client)
    };
    let closed = format!("127.0.0.1:{}", free_port());
    let dir = api.dir.path().to_path_buf();
    let dns = Dns::start_ready(&api.kubeconfig, &dir, "main", &["--upstream", &closed]);
    let ip = eventually(Duration::from_secs(30), "db-0.db answering", || {
        let d = dig(dns.port, &["db-0.db.default.svc.cluster.local"]);
        (d.status == "NOERROR" && d.answer.len() == 1).then(|| d.data()[0].clone())
    });
    assert!(ip.starts_with("A 10.244."), "{ip}");
    let d = dig(dns.port, &["_pg._tcp.db.default.svc.cluster.local", "SRV"]);
    assert_eq!(
        d.data(),
        ["SRV 0 100 5432 db-0.db.default.svc.cluster.local."]
    );
    kubelet.abort();
}

#[test]
fn metrics_health_and_ready() {
    let f = Fixture::new(&[]);
    assert_eq!(f.dns.http("/ready").0, 200);
    assert_eq!(f.dns.http("/health").0, 200);
    dig(f.dns.port, &["nginx.default.svc.cluster.local"]);
    dig(f.dns.port, &["nope.default.svc.cluster.local"]);
    let (code, text) = f.dns.http("/metrics");
    assert_eq!(code, 200);
    for want in [
        "coredns_dns_requests_total{proto=\"udp\",type=\"A\"}",
        "coredns_dns_responses_total{rcode=\"NOERROR\"}",
        "coredns_dns_responses_total{rcode=\"NXDOMAIN\"}",
        "coredns_dns_request_duration_seconds_bucket",
        "coredns_cache_hits_total",
        "coredns_cache_misses_total",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
}

/// `svcnet dns --netns`: the listeners and the forwarder's sockets live in a named network
/// namespace (as on a node of `svcnet up`), while the watches reach the API server from here.
#[test]
fn serves_and_forwards_inside_a_named_network_namespace() {
    if !testing::can_run(&["ip", "dig", "curl"]) {
        return;
    }
    // Deleted (with whatever still runs in it) however the test ends.
    let scratch = testing::ScratchNetns::new("dns").expect("creating the test namespace");
    let ns = scratch.name().to_string();
    let api = api_with_fixture();
    let dir = api.dir.path().to_path_buf();
    let spawn = |tag: &str, port: u16, args: &[&str]| {
        let args = [&["--netns", ns.as_str()], args].concat();
        let metrics = ([127, 0, 0, 1], port + 1).into();
        Dns::spawn(&api.kubeconfig, &dir, tag, port, metrics, &args)
    };
    // Inside the namespace every port is free: no host port is used.
    let upstream = spawn(
        "upstream",
        5301,
        &[
            "--cluster-domain",
            "example.org",
            "--upstream",
            "127.0.0.1:9",
        ],
    );
    let dns = spawn("main", 53, &["--upstream", "127.0.0.1:5301"]);
    let dig_in = |port: u16, args: &[&str]| dig_in(Some(&ns), port, args);
    for (d, name) in [
        (&upstream, "dns-version.example.org"),
        (&dns, "dns-version.cluster.local"),
    ] {
        eventually(
            Duration::from_secs(30),
            "synced inside the namespace",
            || (dig_in(d.port, &[name, "TXT"]).status == "NOERROR").then_some(()),
        );
    }
    assert_eq!(
        dig_in(53, &["nginx.default.svc.cluster.local"]).data(),
        ["A 10.96.0.20"],
        "{}",
        dns.log()
    );
    assert_eq!(
        dig_in(53, &["nginx.default.svc.example.org", "+tcp"]).data(),
        ["A 10.96.0.20"],
        "forwarded from inside the namespace:\n{}",
        dns.log()
    );
    let ready = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "curl",
            "-s",
            "http://127.0.0.1:54/ready",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ready.stdout), "OK");
}
