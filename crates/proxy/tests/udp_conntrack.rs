//! Stale UDP conntrack entries with real packets: a client namespace sends from one fixed
//! source port to a UDP Service through a `node` namespace running the nftables rules. After
//! the Service's endpoint moves from backend A to backend B, conntrack keeps sending the
//! client's flow to A until [`flush`] of [`stale_entries`] deletes it.

use std::net::SocketAddr;
use std::time::Duration;

use svcnet_netns::NetNs;
use svcnet_proxy::conntrack::{flush, stale_entries, Flush};
use svcnet_proxy::model::{Endpoint, Protocol, ServicePort, ServicePortName, State};
use svcnet_proxy::nftables::{apply, cleanup, render_full, Config, NodeInfo};
use tokio::net::UdpSocket;

/// Namespaces made by the test, deleted however it ends.
struct Guard(Vec<String>);
impl Drop for Guard {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = NetNs::delete(n);
        }
    }
}

fn dns() -> ServicePort {
    ServicePort {
        id: ServicePortName {
            namespace: "default".into(),
            name: "dns".into(),
            port: String::new(),
            protocol: Protocol::Udp,
        },
        cluster_ips: vec!["10.97.1.10".parse().unwrap()],
        port: 53,
        protocol: Protocol::Udp,
        node_port: 0,
        external_ips: vec![],
        load_balancer_ips: vec![],
        load_balancer_source_ranges: vec![],
        affinity_timeout: None,
        external_local: false,
        internal_local: false,
        health_check_node_port: 0,
    }
}

fn state_with(backend_ip: &str) -> State {
    let s = dns();
    let mut st = State::default();
    st.endpoints.insert(
        s.id.clone(),
        vec![Endpoint {
            ip: backend_ip.parse().unwrap(),
            port: 5353,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some("node".into()),
            zone: None,
            hint_zones: None,
        }],
    );
    st.services.insert(s.id.clone(), s);
    st
}

/// One datagram to the Service and the answer (the answering backend's name).
async fn ask(sock: &UdpSocket) -> String {
    let to: SocketAddr = "10.97.1.10:53".parse().unwrap();
    sock.send_to(b"who", to).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .expect("an answer within 3s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_moves_udp_flow_to_new_endpoint() {
    if svcnet_netns::check_privileges().is_err()
        || svcnet_netns::which("nft").is_none()
        || svcnet_netns::which("conntrack").is_none()
    {
        eprintln!("skipped: needs root, nft and conntrack");
        return;
    }
    let tag = format!(
        "svcnet-tct-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 100_000
    );
    let names: Vec<String> = ["client", "node", "a", "b"]
        .iter()
        .map(|n| format!("{tag}-{n}"))
        .collect();
    let _guard = Guard(names.clone());
    let ns: Vec<NetNs> = names.iter().map(|n| NetNs::create(n).unwrap()).collect();
    let (client, node) = (&ns[0], &ns[1]);

    node.ip_batch(&format!(
        "link add cl0 type veth peer name eth0 netns {}\n\
         link set cl0 up\n\
         addr add 198.51.100.1/24 dev cl0\n\
         link add br0 type bridge\n\
         link set br0 up\n\
         addr add 10.244.0.1/24 dev br0\n\
         route add 10.96.0.0/12 dev br0\n",
        names[0]
    ))
    .unwrap();
    node.sysctls(&[("net.ipv4.ip_forward", "1")]).unwrap();
    client
        .ip_batch(
            "link set eth0 up\naddr add 198.51.100.2/24 dev eth0\nroute add default via 198.51.100.1\n",
        )
        .unwrap();
    let mut servers = Vec::new();
    for (i, (b, answer)) in ns[2..].iter().zip(["A", "B"]).enumerate() {
        let n = i + 2;
        node.ip_batch(&format!(
            "link add vb{n} type veth peer name eth0 netns {}\nlink set vb{n} master br0\nlink set vb{n} up\n",
            b.name()
        ))
        .unwrap();
        b.ip_batch(&format!(
            "link set eth0 up\naddr add 10.244.0.{n}/24 dev eth0\nroute add default via 10.244.0.1\n"
        ))
        .unwrap();
        let s = UdpSocket::from_std(b.udp_bind("0.0.0.0:5353".parse().unwrap()).unwrap()).unwrap();
        servers.push(tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((_, from)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(answer.as_bytes(), from).await;
            }
        }));
    }

    let info = NodeInfo {
        name: "node".into(),
        node_ips: vec!["198.51.100.1".parse().unwrap()],
        zone: None,
    };
    let cfg = Config {
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        random: false,
    };
    let (on_a, on_b) = (state_with("10.244.0.2"), state_with("10.244.0.3"));
    apply(Some(node.name()), &render_full(&on_a, &info, &cfg)).unwrap();

    // One fixed source port throughout: every datagram is the same conntrack flow.
    let sock = UdpSocket::from_std(
        client
            .udp_bind("198.51.100.2:40053".parse().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ask(&sock).await, "A");
    assert_eq!(ask(&sock).await, "A");

    // The endpoint moves to B: the rules say B, but the cached flow still goes to A.
    apply(Some(node.name()), &render_full(&on_b, &info, &cfg)).unwrap();
    assert_eq!(ask(&sock).await, "A", "conntrack keeps the old DNAT");

    let stale = stale_entries(&on_a, &on_b, "node");
    assert_eq!(
        stale,
        vec![Flush::Endpoint {
            proto: Protocol::Udp,
            orig_dst: "10.97.1.10".parse().unwrap(),
            port: 53,
            dst_nat: "10.244.0.2".parse().unwrap(),
        }]
    );
    flush(Some(node.name()), &stale).unwrap();
    assert_eq!(ask(&sock).await, "B", "the next datagram reaches B at once");
    assert_eq!(ask(&sock).await, "B");
    // Nothing left to delete is not an error.
    flush(Some(node.name()), &stale).unwrap();

    cleanup(Some(node.name())).unwrap();
    for s in servers {
        s.abort();
    }
}
