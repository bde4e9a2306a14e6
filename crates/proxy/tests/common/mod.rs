//! What the proxy's real-traffic tests share: a client namespace, a `node` namespace routing
//! between the client (198.51.100.0/24) and three backend namespaces b2..b4 (10.244.0.2-4 on a
//! bridge) that answer TCP connections on :8080 with their name; the model's small builders;
//! and a client that asks a server its name. Everything is deleted when the topology drops.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use svcnet_netns::NetNs;
use svcnet_proxy::model::{Endpoint, Protocol, ServicePort, ServicePortName, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Namespaces made by a test, deleted however it ends.
pub struct Guard(pub Vec<String>);

impl Drop for Guard {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = NetNs::delete(n);
        }
    }
}

pub fn sp(name: &str, cluster_ip: &str, port: u16, protocol: Protocol) -> ServicePort {
    ServicePort::new(
        ServicePortName {
            namespace: "default".into(),
            name: name.into(),
            port: String::new(),
            protocol,
        },
        cluster_ip.parse().unwrap(),
        port,
    )
}

/// Endpoints 10.244.0.<id>:<port> on node `node`.
pub fn backends(ids: &[u8], port: u16) -> Vec<Endpoint> {
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

pub fn add(st: &mut State, s: ServicePort, eps: Vec<Endpoint>) {
    st.endpoints.insert(s.id.clone(), eps);
    st.services.insert(s.id.clone(), s);
}

/// What the server at `addr` answers (its name), from the client namespace.
pub async fn ask(client: &NetNs, addr: &str) -> std::io::Result<String> {
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

/// The wired namespaces: `ns[0]` client, `ns[1]` node, `ns[2..]` backends b2, b3, b4.
pub struct Topology {
    pub names: Vec<String>,
    pub ns: Vec<NetNs>,
    pub servers: Vec<tokio::task::JoinHandle<()>>,
    _guard: Guard,
}

impl Topology {
    pub fn client(&self) -> &NetNs {
        &self.ns[0]
    }

    pub fn node(&self) -> &NetNs {
        &self.ns[1]
    }

    /// Build it, with namespace names starting `<prefix>-<pid>-`.
    pub fn new(prefix: &str) -> Topology {
        let tag = format!(
            "{}-{}-{}",
            prefix,
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
        let guard = Guard(names.clone());
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

        Topology {
            names,
            ns,
            servers,
            _guard: guard,
        }
    }
}
