//! The network of one run, all in namespaces made here (deleted on exit, also on panic or
//! Ctrl-C):
//!
//! ```text
//! client 198.51.100.2 and 10.244.200.2 ("a pod") → node (198.51.100.1 | 10.244.0.1, the
//!   proxy's rules; route 10.244.200.0/24 via 198.51.100.2) → server 10.244.0.2-11 (one
//!   listener on :8080, ten addresses: the measured Service's ten endpoints)
//! client 198.51.102.2 → conntrack-only node (198.51.102.1 | 10.246.0.1) → server 10.246.0.2
//! client 198.51.101.2 → router (198.51.101.1 | 10.245.0.1, no rules) → server 10.245.0.2
//! ```
//!
//! The same listener answers on every path and counts, by source, what reached it through the
//! node ([`seen`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use svcnet_netns::testing::{unique_name, NetnsGuard};
use svcnet_netns::NetNs;

/// The measured Service's ClusterIP, and the port its ten endpoints listen on.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 5);
pub const PORT: u16 = 8080;
/// The server's address on the reference path (through the rule-free router).
pub const REFERENCE: Ipv4Addr = Ipv4Addr::new(10, 245, 0, 2);
/// The server's address on the path through the conntrack-only node.
pub const CT_REFERENCE: Ipv4Addr = Ipv4Addr::new(10, 246, 0, 2);
/// The cluster CIDR the proxy is configured with (`Options::cluster_cidr`).
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The client's second address, "a pod": inside [`CLUSTER_CIDR`], outside the server's
/// 10.244.0.0/24 (the measured endpoints) and every other range used here. On the client's
/// link to the node (as a /32); the node routes [`POD_CLIENT_NET`] back to the client.
pub const POD_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 200, 2);
pub const POD_CLIENT_NET: &str = "10.244.200.0/24";
/// The off-cluster client address (masqueraded on its way to a ClusterIP).
pub const OFF_CLUSTER_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The node's address on the server link: the source the server sees for masqueraded
/// connects.
pub const NODE_SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

/// What the server accepted on the node's link (10.244.0.2-11), by source: the pod address
/// (so the ClusterIP connect from the pod was DNATed, not masqueraded), the node's address
/// (masqueraded ClusterIP connects), the off-cluster client (pod-IP connects through the node).
pub static SEEN_POD: AtomicUsize = AtomicUsize::new(0);
pub static SEEN_MASQ: AtomicUsize = AtomicUsize::new(0);
pub static SEEN_OFF_CLUSTER: AtomicUsize = AtomicUsize::new(0);

/// The accept counters: (pod source, masqueraded, off-cluster source).
pub fn seen() -> (usize, usize, usize) {
    (
        SEEN_POD.load(Ordering::SeqCst),
        SEEN_MASQ.load(Ordering::SeqCst),
        SEEN_OFF_CLUSTER.load(Ordering::SeqCst),
    )
}

/// The fsuid the client's connect thread takes (outside the timed window) for a ClusterIP
/// connect "from a pod": a uid-range policy rule in the client namespace sends its sockets'
/// route lookups to a table whose default route has the pod address as its preferred
/// source. So the kernel picks the pod address at `connect()` as it picks the off-cluster one
/// for the other connects, and every connect is the same `TcpStream::connect_timeout` (a
/// `bind()` before `connect()` would add syscalls to the pod connects' timed window only).
pub const POD_UID: u32 = 64_200;
/// The client namespace's routing table for [`POD_UID`].
pub const POD_TABLE: u32 = 200;

/// The namespaces of one run: the client, the node holding the proxy's rules, the server behind
/// it, a conntrack-only node and a rule-free router on two more paths to the same server.
/// Deleted when dropped (also on panics); [`Scratch::delete_on_ctrl_c`] covers Ctrl-C.
pub struct Scratch {
    pub client: NetNs,
    pub node: NetNs,
    /// Forwards like `router`, with conntrack on (once its table is loaded) and no rule.
    pub ct_node: NetNs,
    pub router: NetNs,
    pub names: Vec<String>,
    _guard: NetnsGuard,
}

/// The server's address `i` on the node's link, 10.244.0.(2+i): the measured Service's
/// endpoint `i`.
pub fn endpoint_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 0, 2 + i as u8)
}

/// Path `n` (1, 2) from the client to the server through `via`, which only forwards: links
/// `cl<n>` / `eth<n>`, client side 198.51.(100+n).0/24, server side 10.(244+n).0.0/24 (the
/// server answers on 10.(244+n).0.2). `names`: the client's and the server's namespaces.
fn side_path(
    client: &NetNs,
    via: &NetNs,
    server: &NetNs,
    names: (&str, &str),
    n: u8,
) -> anyhow::Result<()> {
    let (c, s) = (100 + n, 244 + n);
    via.ip_batch(&format!(
        "link add cl{n} type veth peer name eth{n} netns {}\n\
         link set cl{n} up\n\
         addr add 198.51.{c}.1/24 dev cl{n}\n\
         link add sv{n} type veth peer name eth{n} netns {}\n\
         link set sv{n} up\n\
         addr add 10.{s}.0.1/24 dev sv{n}\n",
        names.0, names.1
    ))?;
    via.sysctls(&[("net.ipv4.ip_forward", "1")])?;
    client.ip_batch(&format!(
        "link set eth{n} up\naddr add 198.51.{c}.2/24 dev eth{n}\nroute add 10.{s}.0.0/24 via 198.51.{c}.1\n"
    ))?;
    server.ip_batch(&format!(
        "link set eth{n} up\naddr add 10.{s}.0.2/24 dev eth{n}\nroute add 198.51.{c}.0/24 via 10.{s}.0.1\n"
    ))?;
    Ok(())
}

impl Scratch {
    /// Build the topology (see the module doc) with `endpoints` addresses on the server, and start
    /// the server's accept loop (counting sources, [`seen`]).
    pub fn new(endpoints: usize) -> anyhow::Result<Scratch> {
        let tag = unique_name("plb");
        let names: Vec<String> = ["c", "n", "s", "r", "t"]
            .iter()
            .map(|n| format!("{tag}-{n}"))
            .collect();
        // The guard exists before the first namespace does.
        let guard = NetnsGuard(names.clone());
        let client = NetNs::create(&names[0])?;
        let node = NetNs::create(&names[1])?;
        let server = NetNs::create(&names[2])?;
        let router = NetNs::create(&names[3])?;
        let ct_node = NetNs::create(&names[4])?;
        node.ip_batch(&format!(
            "link add cl0 type veth peer name eth0 netns {}\n\
         link set cl0 up\n\
         addr add 198.51.100.1/24 dev cl0\n\
         link add sv0 type veth peer name eth0 netns {}\n\
         link set sv0 up\n\
         addr add 10.244.0.1/24 dev sv0\n",
            names[0], names[2]
        ))?;
        node.sysctls(&[("net.ipv4.ip_forward", "1")])?;
        client.ip_batch(
        "link set eth0 up\naddr add 198.51.100.2/24 dev eth0\nroute add default via 198.51.100.1\n",
    )?;
        // "A pod": a second client address inside the cluster CIDR, on the same link, the source
        // of the sockets made under POD_UID (by routing: the default route of their table prefers
        // it); the node routes it back there.
        client.ip_batch(&format!(
            "addr add {POD_CLIENT}/32 dev eth0\n\
         route add default via 198.51.100.1 dev eth0 src {POD_CLIENT} table {POD_TABLE}\n\
         rule add uidrange {POD_UID}-{POD_UID} lookup {POD_TABLE} priority 100\n"
        ))?;
        node.ip_batch(&format!(
            "route add {POD_CLIENT_NET} via {OFF_CLUSTER_CLIENT} dev cl0\n"
        ))?;
        let mut cmds = String::from("link set eth0 up\n");
        for i in 0..endpoints {
            cmds.push_str(&format!("addr add {}/24 dev eth0\n", endpoint_ip(i)));
        }
        cmds.push_str("route add default via 10.244.0.1\n");
        server.ip_batch(&cmds)?;
        // The reference path: client → a router namespace without any rule → the same server
        // (the same listener) on 10.245.0.2; and the conntrack-only path, wired alike, on
        // 10.246.0.2.
        side_path(&client, &router, &server, (&names[0], &names[2]), 1)?;
        side_path(&client, &ct_node, &server, (&names[0], &names[2]), 2)?;
        let l = server.tcp_listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT))?;
        l.set_nonblocking(false)?;
        std::thread::spawn(move || {
            // Accept and close at once; the client resets anyway. Count by source what came
            // in on the node's link.
            while let Ok((c, peer)) = l.accept() {
                let on_node_link = matches!(
                    c.local_addr().map(|a| a.ip()),
                    Ok(IpAddr::V4(ip)) if ip.octets()[..3] == [10, 244, 0]
                );
                if on_node_link {
                    match peer.ip() {
                        IpAddr::V4(ip) if ip == POD_CLIENT => {
                            SEEN_POD.fetch_add(1, Ordering::SeqCst);
                        }
                        IpAddr::V4(ip) if ip == NODE_SERVER_SIDE => {
                            SEEN_MASQ.fetch_add(1, Ordering::SeqCst);
                        }
                        IpAddr::V4(ip) if ip == OFF_CLUSTER_CLIENT => {
                            SEEN_OFF_CLUSTER.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                }
                drop(c);
            }
        });
        Ok(Scratch {
            client,
            node,
            ct_node,
            router,
            names,
            _guard: guard,
        })
    }

    /// On Ctrl-C, delete the namespaces and exit (130).
    pub fn delete_on_ctrl_c(&self) {
        let names = self.names.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let _ = tokio::signal::ctrl_c().await;
                });
                for n in &names {
                    let _ = NetNs::delete(n);
                }
                std::process::exit(130);
            }
        });
    }
}

/// The node's rp_filter settings and its route to the pod address, for error messages.
pub fn node_routing(node: &NetNs) -> String {
    let rp = |dev: &str| {
        let path = format!("/proc/sys/net/ipv4/conf/{dev}/rp_filter");
        node.run(move || std::fs::read_to_string(path))
            .ok()
            .and_then(|r| r.ok())
            .map_or_else(|| "?".to_string(), |s| s.trim().to_string())
    };
    let route = node
        .command("ip")
        .args(["route", "get", &POD_CLIENT.to_string()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "rp_filter all {} cl0 {}; route to the pod address: {route}",
        rp("all"),
        rp("cl0")
    )
}
