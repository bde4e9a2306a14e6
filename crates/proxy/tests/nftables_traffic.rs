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
