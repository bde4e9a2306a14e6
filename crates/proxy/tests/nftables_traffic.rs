//! Real packets through the nftables rules: a client namespace, a `node` namespace routing
//! between the client (198.51.100.0/24) and three backend namespaces (10.244.0.0/24 on a
//! bridge), with [`render_full`] applied in `node`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use svcnet_netns::NetNs;
use svcnet_proxy::model::{Endpoint, Protocol, ServicePort, ServicePortName, State};
use svcnet_proxy::nftables::{apply, cleanup, render_full, render_service, Config, NodeInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Namespaces made by the test, deleted however it ends.
struct Guard(Vec<String>);
impl Drop for Guard {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = NetNs::delete(n);
        }
    }
}

fn sp(name: &str, cluster_ip: &str, port: u16) -> ServicePort {
    ServicePort {
        id: ServicePortName {
            namespace: "default".into(),
            name: name.into(),
            port: String::new(),
            protocol: Protocol::Tcp,
        },
        cluster_ips: vec![cluster_ip.parse().unwrap()],
        port,
        protocol: Protocol::Tcp,
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

fn backends() -> Vec<Endpoint> {
    (2..=4)
        .map(|i| Endpoint {
            ip: format!("10.244.0.{i}").parse().unwrap(),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some("node".into()),
            zone: None,
            hint_zones: None,
        })
        .collect()
}

fn add(st: &mut State, s: ServicePort, eps: Vec<Endpoint>) {
    st.endpoints.insert(s.id.clone(), eps);
    st.services.insert(s.id.clone(), s);
}

/// What the server at `addr` answers (its name), from the client namespace.
async fn ask(client: &NetNs, addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut s = client
        .tcp_connect(addr, Duration::from_secs(3))
        .await
        .map_err(|e| match e {
            svcnet_netns::NetnsError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        })?;
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("read timed out"))??;
    Ok(buf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_reject_nodeport_affinity() {
    if svcnet_netns::check_privileges().is_err() || svcnet_netns::which("nft").is_none() {
        eprintln!("skipped: needs root and nft");
        return;
    }
    let tag = format!(
        "svcnet-nftt-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 100_000
    );
    let names: Vec<String> = ["client", "node", "b2", "b3", "b4"]
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
    for (i, b) in ns[2..].iter().enumerate() {
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
        let l = tokio::net::TcpListener::from_std(
            b.tcp_listen("0.0.0.0:8080".parse().unwrap()).unwrap(),
        )
        .unwrap();
        let name = format!("b{n}");
        servers.push(tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(name.as_bytes()).await;
            }
        }));
    }

    let mut st = State::default();
    add(&mut st, sp("web", "10.97.1.1", 80), backends());
    add(&mut st, sp("empty", "10.97.1.3", 80), vec![]);
    let mut sticky = sp("sticky", "10.97.1.4", 80);
    sticky.affinity_timeout = Some(300);
    add(&mut st, sticky, backends());
    let mut np = sp("np", "10.97.1.2", 80);
    np.node_port = 30080;
    add(&mut st, np, backends());
    let info = NodeInfo {
        name: "node".into(),
        node_ips: vec!["198.51.100.1".parse().unwrap()],
        zone: None,
    };
    let cfg = Config {
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        random: false,
    };
    apply(Some(node.name()), &render_full(&st, &info, &cfg)).unwrap();

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
    st.endpoints.insert(
        st.services
            .keys()
            .find(|k| k.name == "empty")
            .unwrap()
            .clone(),
        backends()[..1].to_vec(),
    );
    let web = st
        .services
        .keys()
        .find(|k| k.name == "web")
        .unwrap()
        .clone();
    st.services.remove(&web);
    st.endpoints.remove(&web);
    for id in [
        st.services
            .keys()
            .find(|k| k.name == "empty")
            .unwrap()
            .clone(),
        web,
    ] {
        apply(Some(node.name()), &render_service(&st, &id, &info, &cfg)).unwrap();
    }
    assert_eq!(ask(client, "10.97.1.3:80").await.unwrap(), "b2");
    let err = ask(client, "10.97.1.1:80").await.unwrap_err();
    assert_ne!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    cleanup(Some(node.name())).unwrap();
    for s in servers {
        s.abort();
    }
}
