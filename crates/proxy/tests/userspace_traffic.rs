//! Real traffic through the userspace proxy: a client namespace, a `node` namespace routing
//! between the client (198.51.100.0/24) and three backend namespaces (10.244.0.0/24 on a
//! bridge); the [`Userspace`] backend runs in this test's tokio runtime with its listeners and
//! its nftables table in `node`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use svcnet_netns::NetNs;
use svcnet_proxy::model::{Endpoint, Protocol, ServicePort, ServicePortName, State};
use svcnet_proxy::runtime::Backend;
use svcnet_proxy::userspace::{Algorithm, Userspace};
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

fn sp(name: &str, cluster_ip: &str, port: u16, protocol: Protocol) -> ServicePort {
    ServicePort {
        id: ServicePortName {
            namespace: "default".into(),
            name: name.into(),
            port: String::new(),
            protocol,
        },
        cluster_ips: vec![cluster_ip.parse().unwrap()],
        port,
        protocol,
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

fn backends(ids: &[u8], port: u16) -> Vec<Endpoint> {
    ids.iter()
        .map(|i| Endpoint {
            ip: format!("10.244.0.{i}").parse().unwrap(),
            port,
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
async fn round_robin_retry_udp_affinity() {
    if svcnet_netns::check_privileges().is_err() || svcnet_netns::which("nft").is_none() {
        eprintln!("skipped: needs root and nft");
        return;
    }
    let tag = format!(
        "svcnet-tus-{}-{}",
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

    let mut st = State::default();
    add(
        &mut st,
        sp("web", "10.97.1.1", 80, Protocol::Tcp),
        backends(&[2, 3, 4], 8080),
    );
    let mut np = sp("np", "10.97.1.2", 80, Protocol::Tcp);
    np.node_port = 30080;
    add(&mut st, np, backends(&[2, 3, 4], 8080));
    add(&mut st, sp("empty", "10.97.1.3", 80, Protocol::Tcp), vec![]);
    let mut sticky = sp("sticky", "10.97.1.4", 80, Protocol::Tcp);
    sticky.affinity_timeout = Some(300);
    add(&mut st, sticky, backends(&[2, 3, 4], 8080));
    add(
        &mut st,
        sp("dns", "10.97.1.5", 53, Protocol::Udp),
        backends(&[2], 5353),
    );

    let mut proxy = Userspace::new(
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
    let web = st
        .services
        .keys()
        .find(|k| k.name == "web")
        .unwrap()
        .clone();
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
