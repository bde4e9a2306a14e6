//! Real packets through the nftables rules: a client namespace, a `node` namespace routing
//! between the client (198.51.100.0/24) and three backend namespaces (10.244.0.0/24 on a
//! bridge), with [`render_full_with`] applied in `node`.

use std::time::{Duration, Instant};
use svcnet_netns::testing::{ask, can_run, Topology};
use svcnet_proxy::testing::{backends, id, nft_cfg, topology_node, topology_services};

use svcnet_proxy::model::Protocol;
use svcnet_proxy::nftables::{apply, cleanup, render_changes, render_full_with, Numbering};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_reject_nodeport_affinity() {
    if !can_run(&["nft"]) {
        return;
    }
    let t = Topology::new("nftt");
    let (client, node) = (t.client(), t.node());

    let mut st = topology_services();
    let (info, cfg) = (topology_node(), nft_cfg());
    let mut num = Numbering::default();
    apply(
        Some(node.name()),
        &render_full_with(&st, &info, &cfg, &mut num),
    )
    .unwrap();

    // Round-robin: three consecutive connections reach three different backends.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(ask(client, "10.97.1.1:80").await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, ["b2", "b3", "b4"]);

    // No endpoints, and a ClusterIP port that is no Service port: refused, quickly.
    for addr in ["10.97.1.3:80", "10.97.1.1:81"] {
        let t = Instant::now();
        let err = ask(client, addr).await.unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{addr}: {err}"
        );
        assert!(t.elapsed() < Duration::from_secs(1), "{addr}");
    }

    // NodePort on the node's address.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(ask(client, "198.51.100.1:30080").await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, ["b2", "b3", "b4"]);

    // Affinity: every connection of this client sticks to one backend.
    let first = ask(client, "10.97.1.4:80").await.unwrap();
    for _ in 0..5 {
        assert_eq!(ask(client, "10.97.1.4:80").await.unwrap(), first);
    }

    // A partial sync: `empty` gets an endpoint, `web` is removed.
    let old = st.clone();
    st.endpoints.insert(
        id("empty", "", Protocol::Tcp),
        backends(&[2, 3, 4], 8080)[..1].to_vec(),
    );
    let web = id("web", "", Protocol::Tcp);
    st.services.remove(&web);
    st.endpoints.remove(&web);
    let empty = id("empty", "", Protocol::Tcp);
    let script = render_changes(&old, &st, [&empty, &web], &info, &cfg, &mut num);
    apply(Some(node.name()), &script).unwrap();
    assert_eq!(ask(client, "10.97.1.3:80").await.unwrap(), "b2");
    let err = ask(client, "10.97.1.1:80").await.unwrap_err();
    assert_ne!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    cleanup(Some(node.name())).unwrap();
    for s in &t.servers {
        s.abort();
    }
}

/// `svcnet proxy --list`'s connection counts with real packets: a connection held open through
/// a ClusterIP and one through a NodePort show as ActiveConn 1 on their backend, as
/// `ipvsadm -Ln` shows an IPVS connection; once closed they are InActConn (TIME_WAIT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_counts_live_connections() {
    use svcnet_proxy::ipvs::{list, Connections};
    if !can_run(&["nft", "conntrack"]) {
        return;
    }
    let t = Topology::new("nftc");
    let (client, node) = (t.client(), t.node());
    // A backend on b2 that keeps its connections open until the client closes.
    let l = tokio::net::TcpListener::from_std(
        t.ns[2].tcp_listen("0.0.0.0:9090".parse().unwrap()).unwrap(),
    )
    .unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            open.push(s);
        }
    });
    let mut st = topology_services();
    let mut svc = svcnet_proxy::testing::service("held", "10.97.1.9", 90, Protocol::Tcp);
    svc.node_port = 30090;
    svcnet_proxy::testing::add(&mut st, svc, backends(&[2], 9090));
    let (info, cfg) = (topology_node(), nft_cfg());
    apply(
        Some(node.name()),
        &render_full_with(&st, &info, &cfg, &mut Numbering::default()),
    )
    .unwrap();

    let listing = || {
        let entries = svcnet_proxy::conntrack::list(Some(node.name())).unwrap();
        list(&st, &info, "rr", &Connections::from_conntrack(&entries))
    };
    let real_server = |text: &str, vs: &str| -> String {
        let mut lines = text.lines().skip_while(|l| !l.starts_with(vs));
        lines.next().unwrap_or_else(|| panic!("{vs} in {text}"));
        lines.next().unwrap().to_string()
    };
    let connect = |addr: &str| client.tcp_connect(addr.parse().unwrap(), Duration::from_secs(3));
    let a = connect("10.97.1.9:90").await.unwrap();
    let b = connect("198.51.100.1:30090").await.unwrap();
    let text = listing();
    let active = "  -> 10.244.0.2:9090              Masq    1      1          0";
    assert_eq!(real_server(&text, "TCP  10.97.1.9:90 rr"), active, "{text}");
    assert_eq!(
        real_server(&text, "TCP  198.51.100.1:30090 rr"),
        active,
        "{text}"
    );
    // Another Service's backend saw nothing.
    assert!(
        text.contains("  -> 10.244.0.2:8080              Masq    1      0          0"),
        "{text}"
    );

    // Closed (by both ends): TIME_WAIT, counted as InActConn.
    drop((a, b));
    held.abort();
    let inactive = "  -> 10.244.0.2:9090              Masq    1      0          1";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = listing();
        if real_server(&text, "TCP  10.97.1.9:90 rr") == inactive {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cleanup(Some(node.name())).unwrap();
    for s in &t.servers {
        s.abort();
    }
}
