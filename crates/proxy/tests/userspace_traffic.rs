//! Real traffic through the userspace proxy: a client namespace, a `node` namespace routing
//! between the client (198.51.100.0/24) and three backend namespaces (10.244.0.0/24 on a
//! bridge); the [`userspace::Proxier`] runs in this test's tokio runtime with its listeners and
//! its nftables table in `node`.

use std::net::SocketAddr;

use std::time::{Duration, Instant};
use svcnet_netns::testing::{ask, can_run, Topology};
use svcnet_proxy::testing::{add, backends, id, service, topology_services};

use svcnet_proxy::backend::Backend;
use svcnet_proxy::model::Protocol;
use svcnet_proxy::userspace::{self, Algorithm};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_retry_udp_affinity() {
    if !can_run(&["nft"]) {
        return;
    }
    let t = Topology::new("tus");
    let (client, node, ns, servers) = (t.client(), t.node(), &t.ns, &t.servers);

    // One UDP echo, on b2.
    let echo =
        tokio::net::UdpSocket::from_std(ns[2].udp_bind("0.0.0.0:5353".parse().unwrap()).unwrap())
            .unwrap();
    let echo_task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = echo.recv_from(&mut buf).await {
            let mut reply = b"b2:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = echo.send_to(&reply, from).await;
        }
    });

    let mut st = topology_services();
    add(
        &mut st,
        service("dns", "10.97.1.5", 53, Protocol::Udp),
        backends(&[2], 5353),
    );

    let mut proxy = userspace::Proxier::new(
        Some(node.name().to_string()),
        vec!["198.51.100.1".parse().unwrap()],
        Algorithm::RoundRobin,
    );
    proxy.full(&st).unwrap();

    // Round-robin: three consecutive connections reach three different backends.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(ask(client, "10.97.1.1:80").await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, ["b2", "b3", "b4"]);

    // NodePort on the node's address.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(ask(client, "198.51.100.1:30080").await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, ["b2", "b3", "b4"]);

    // No endpoints: refused, quickly.
    let t = Instant::now();
    let err = ask(client, "10.97.1.3:80").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(t.elapsed() < Duration::from_secs(1));

    // UDP through the ClusterIP.
    let u = tokio::net::UdpSocket::from_std(client.udp_bind("0.0.0.0:0".parse().unwrap()).unwrap())
        .unwrap();
    for msg in ["hello", "again"] {
        u.send_to(msg.as_bytes(), "10.97.1.5:53").await.unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = tokio::time::timeout(Duration::from_secs(3), u.recv_from(&mut buf))
            .await
            .expect("udp reply")
            .unwrap();
        assert_eq!(&buf[..n], format!("b2:{msg}").as_bytes());
        assert_eq!(from, "10.97.1.5:53".parse::<SocketAddr>().unwrap());
    }

    // Affinity: every connection of this client sticks to one backend.
    let first = ask(client, "10.97.1.4:80").await.unwrap();
    for _ in 0..5 {
        assert_eq!(ask(client, "10.97.1.4:80").await.unwrap(), first);
    }

    // A resync keeps the listeners (and so established connections).
    let web = id("web", "", Protocol::Tcp);
    let port = proxy.listener_port(&web).unwrap();
    proxy.full(&st).unwrap();
    assert_eq!(proxy.listener_port(&web), Some(port));

    // b3's server dies (its endpoint is still listed): every connection still succeeds,
    // retried to the others.
    servers[1].abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(ask(client, "10.97.1.1:80").await.unwrap());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["b2", "b4"]);

    // Endpoints updated in place: only b4 now.
    st.endpoints.insert(web.clone(), backends(&[4], 8080));
    proxy.full(&st).unwrap();
    assert_eq!(proxy.listener_port(&web), Some(port));
    for _ in 0..3 {
        assert_eq!(ask(client, "10.97.1.1:80").await.unwrap(), "b4");
    }

    proxy.cleanup().unwrap();
    let out = node.exec(&["nft", "list", "tables"]).unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("svcnet-userspace"));
    for s in servers {
        s.abort();
    }
    echo_task.abort();
}
