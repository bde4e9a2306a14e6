//! Stale UDP conntrack entries with real packets: a client namespace sends from one fixed
//! source port to a UDP Service through a `node` namespace running the nftables rules. After
//! the Service's endpoint moves from backend A to backend B, conntrack keeps sending the
//! client's flow to A until [`flush`] of [`stale_entries`] deletes it.

use std::net::SocketAddr;
use std::time::Duration;

use svcnet_netns::testing::{can_run, Topology};
use svcnet_proxy::conntrack::{flush, stale_entries, Flush};
use svcnet_proxy::model::{Protocol, ServicePort, State};
use svcnet_proxy::nftables::{apply, cleanup, render_full};
use svcnet_proxy::testing::{add, ep, nft_cfg, service, topology_node};
use tokio::net::UdpSocket;

/// The UDP Service `dns` (10.97.1.10:53).
fn dns() -> ServicePort {
    service("dns", "10.97.1.10", 53, Protocol::Udp)
}

/// `dns` with one endpoint, `backend_ip`:5353.
fn state_with(backend_ip: &str) -> State {
    let mut st = State::default();
    add(&mut st, dns(), vec![ep(backend_ip, 5353, "node")]);
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
    if !can_run(&["nft", "conntrack"]) {
        return;
    }
    // The standard topology with backends A (b2) and B (b3), each answering UDP :5353 with its
    // letter.
    let t = Topology::with_backends("tct", 2);
    let (client, node) = (t.client(), t.node());
    let mut servers = Vec::new();
    for (b, answer) in t.ns[2..].iter().zip(["A", "B"]) {
        let s = UdpSocket::from_std(b.udp_bind("0.0.0.0:5353".parse().unwrap()).unwrap()).unwrap();
        servers.push(tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((_, from)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(answer.as_bytes(), from).await;
            }
        }));
    }

    let (info, cfg) = (topology_node(), nft_cfg());
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
