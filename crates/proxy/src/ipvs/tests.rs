use super::*;
use crate::testing::fixtures::{ipvs_node as node, ipvs_sample as sample};
use crate::testing::{add, ep, id_in, sp};

#[test]
fn golden_restore() {
    let text = render(&sample(), &node(), &Config::default());
    crate::testing::golden("ipvs-restore.txt", &text);
    let lc = Config {
        scheduler: Scheduler::LeastConnection,
    };
    assert!(render(&sample(), &node(), &lc).contains("-A -t 10.97.1.4:80 -s lc -p 10800\n"));
}

#[test]
fn golden_list() {
    let text = list(&sample(), &node(), "rr", &Connections::default());
    crate::testing::golden("ipvs-list.txt", &text);
}

/// The header and a real-server line exactly as in a captured `ipvsadm -Ln`.
#[test]
fn list_layout_matches_ipvsadm() {
    let mut st = State::default();
    add(
        &mut st,
        sp(
            &id_in("kube-system", "kube-dns", "dns", Protocol::Udp),
            "10.96.0.10",
            53,
        ),
        vec![ep("10.244.52.213", 53, "n"), ep("10.244.52.218", 53, "n")],
    );
    let captured = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
UDP  10.96.0.10:53 rr
  -> 10.244.52.213:53             Masq    1      0          0
  -> 10.244.52.218:53             Masq    1      0          0
";
    assert_eq!(
        list(&st, &NodeInfo::default(), "rr", &Connections::default()),
        captured
    );
}

/// ActiveConn / InActConn from conntrack: per virtual server (original destination) and real
/// server (reply source), established TCP active, the rest inactive.
#[test]
fn list_counts_connections() {
    let mut st = State::default();
    let mut web = sp(&id_in("default", "web", "", Protocol::Tcp), "10.97.1.1", 80);
    web.node_port = 30080;
    add(
        &mut st,
        web,
        vec![ep("10.244.0.2", 8080, "n"), ep("10.244.0.3", 8080, "n")],
    );
    let node = NodeInfo {
        name: "n".into(),
        node_ips: vec!["198.51.100.1".parse().unwrap()],
        zone: None,
    };
    let entries = crate::conntrack::parse_entries(
        "\
tcp 6 431999 ESTABLISHED src=198.51.100.2 dst=10.97.1.1 sport=1 dport=80 src=10.244.0.2 dst=198.51.100.2 sport=8080 dport=1 [ASSURED] use=1
tcp 6 431999 ESTABLISHED src=198.51.100.2 dst=10.97.1.1 sport=2 dport=80 src=10.244.0.2 dst=198.51.100.2 sport=8080 dport=2 [ASSURED] use=1
tcp 6 119 TIME_WAIT src=198.51.100.2 dst=10.97.1.1 sport=3 dport=80 src=10.244.0.3 dst=198.51.100.2 sport=8080 dport=3 [ASSURED] use=1
tcp 6 431999 ESTABLISHED src=198.51.100.9 dst=198.51.100.1 sport=4 dport=30080 src=10.244.0.3 dst=198.51.100.1 sport=8080 dport=4 [ASSURED] use=1
tcp 6 431999 ESTABLISHED src=10.244.0.2 dst=10.244.0.3 sport=5 dport=8080 src=10.244.0.3 dst=10.244.0.2 sport=8080 dport=5 [ASSURED] use=1
",
    );
    let text = list(&st, &node, "rr", &Connections::from_conntrack(&entries));
    let want = "\
TCP  198.51.100.1:30080 rr
  -> 10.244.0.2:8080              Masq    1      0          0
  -> 10.244.0.3:8080              Masq    1      1          0
TCP  10.97.1.1:80 rr
  -> 10.244.0.2:8080              Masq    1      2          0
  -> 10.244.0.3:8080              Masq    1      0          1
";
    assert!(text.ends_with(want), "{text}");
}

#[test]
fn dummy_addresses() {
    assert_eq!(
        render_dummy_addresses(&sample()),
        [
            "10.97.0.10",
            "10.97.1.1",
            "10.97.1.2",
            "10.97.1.3",
            "10.97.1.4",
            "10.97.1.5",
            "198.51.100.20",
            "203.0.113.10",
        ]
        .map(|ip| format!("ip addr add {ip}/32 dev kube-ipvs0"))
    );
}

#[test]
fn ipv6_and_internal_traffic_policy_local() {
    let mut st = State::default();
    let mut v6 = sp(&id_in("d", "v6", "", Protocol::Tcp), "fd00::10", 443);
    v6.internal_local = true;
    v6.node_port = 30443;
    let eps = vec![
        ep("fd00:10:244::1", 8443, "node-1"),
        ep("fd00:10:244::2", 8443, "node-2"),
    ];
    add(&mut st, v6, eps);
    let node = NodeInfo {
        name: "node-1".into(),
        // The IPv4 node IP gets no virtual server for an IPv6-only Service.
        node_ips: vec![
            "192.168.1.10".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ],
        zone: None,
    };
    // ClusterIP: internal policy Local; node port: Cluster. fd00:: sorts before 2001:: (modulo
    // 2^32, as libipvs compares).
    assert_eq!(
        render(&st, &node, &Config::default()),
        "\
-A -t [fd00::10]:443 -s rr
-a -t [fd00::10]:443 -r [fd00:10:244::1]:8443 -m -w 1
-A -t [2001:db8::1]:30443 -s rr
-a -t [2001:db8::1]:30443 -r [fd00:10:244::1]:8443 -m -w 1
-a -t [2001:db8::1]:30443 -r [fd00:10:244::2]:8443 -m -w 1
"
    );
    assert_eq!(
        render_dummy_addresses(&st),
        ["ip addr add fd00::10/128 dev kube-ipvs0"]
    );
}

#[test]
fn libipvs_address_order() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // Modulo 2^32: 192.168/16 and 172.16/12 sort before 10/8, as real listings show.
    assert!(cmp_addr(&ip("192.168.1.10"), &ip("10.96.0.1")) < 0);
    assert!(cmp_addr(&ip("172.17.0.1"), &ip("192.168.1.10")) < 0);
    assert!(cmp_addr(&ip("10.244.2.2"), &ip("10.244.10.2")) < 0);
    // A cyclic set (10 < 127 < 172 < 10) sorts deterministically, without panicking.
    let mut v = vec![
        (ip("172.17.0.1"), 1),
        (ip("10.0.2.15"), 1),
        (ip("127.0.0.1"), 1),
    ];
    glibc_msort(&mut v, &cmp_dests);
    assert_eq!(v.len(), 3);
}

#[test]
fn schedulers_parse() {
    for s in Scheduler::ALL {
        assert_eq!(s.name().parse::<Scheduler>(), Ok(s));
    }
    assert_eq!("".parse::<Scheduler>(), Ok(Scheduler::RoundRobin));
    assert!("bogus".parse::<Scheduler>().is_err());
}
