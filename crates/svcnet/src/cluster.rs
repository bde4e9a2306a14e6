//! `svcnet up`, `svcnet down` and `svcnet exec`: a whole cluster on one machine, inside network
//! namespaces only.
//!
//! ```text
//!   host (untouched but for loopback listeners: the API server, NodePort forwarders,
//!         LoadBalancer forwarders on 127.b.c.d for a.b.c.d)
//!   svcnet-<id>-net       the bridge br0 linking everything below (172.28.0.0/24)
//!   svcnet-<id>-cp        the control plane's address 172.28.0.2 (API server for pods, proxy dialer)
//!   svcnet-<id>-node-N    node N at 172.28.0.(10+N); its pods' veths; its kubelet API on :10250;
//!                         the LoadBalancer addresses (172.28.0.200-249) it is elected for, as /32s
//!   svcnet-<id>-outside   an external client at 172.28.0.254 (`svcnet exec --outside`)
//!   svcnet-<id>-pod-<uid> one per pod
//! ```
//! `<id>` comes from the data directory, so `svcnet down` finds everything `up` made, also after
//! a crash.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use svcnet_cluster::{ports, ClusterNetwork};
use svcnet_netns::NetNs;
use svcnet_node::layout;

pub const CP_IP: Ipv4Addr = Ipv4Addr::new(172, 28, 0, 2);
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(172, 28, 0, 254);
const PREFIX_LEN: u8 = 24;
/// LoadBalancer addresses, on the node network (announced by the node that serves each).
pub const LB_POOL: &str = "172.28.0.200-172.28.0.249";
pub const MAX_NODES: usize = 200;

/// Names and addresses of one cluster (one data directory).
#[derive(Clone, Debug)]
pub struct Layout {
    pub data_dir: PathBuf,
    pub prefix: String,
}

impl Layout {
    pub fn new(data_dir: &Path) -> anyhow::Result<Layout> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let canonical = data_dir.canonicalize()?;
        // FNV-1a of the path: short, stable, different per data directory.
        let h = const_fnv1a_hash::fnv1a_hash_str_32(&canonical.to_string_lossy());
        Ok(Layout {
            data_dir: canonical,
            prefix: format!("svcnet-{:06x}-", h & 0xffffff),
        })
    }

    pub fn net(&self) -> String {
        format!("{}net", self.prefix)
    }
    pub fn cp(&self) -> String {
        format!("{}cp", self.prefix)
    }
    pub fn outside(&self) -> String {
        format!("{}outside", self.prefix)
    }
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}node-{i}", self.prefix)
    }
    pub fn node_name(i: usize) -> String {
        format!("node-{i}")
    }
    pub fn node_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(172, 28, 0, 10 + i as u8)
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }
}

/// Link namespace `member` to the bridge with `ip`.
fn attach(net: &NetNs, member: &NetNs, veth: &str, ip: Ipv4Addr) -> anyhow::Result<()> {
    net.ip_batch(&format!(
        "link add {veth} type veth peer name eth0 netns {m}\nlink set {veth} master br0\nlink set {veth} up\n",
        m = member.name()
    ))?;
    member.ip_batch(&format!(
        "link set lo up\naddr add {ip}/{PREFIX_LEN} dev eth0\nlink set eth0 up\n"
    ))?;
    Ok(())
}

/// Create the namespaces and the bridge for `nodes` nodes.
pub fn create_network(l: &Layout, nodes: usize, cluster: &ClusterNetwork) -> anyhow::Result<()> {
    let net = NetNs::create(&l.net())?;
    net.ip_batch("link set lo up\nlink add br0 type bridge\nlink set br0 up\n")?;
    let cp = NetNs::create(&l.cp())?;
    attach(&net, &cp, "vcp", CP_IP)?;
    let out = NetNs::create(&l.outside())?;
    attach(&net, &out, "vout", OUTSIDE_IP)?;
    for i in 1..=nodes {
        let n = NetNs::create(&l.node_ns(i))?;
        attach(&net, &n, &format!("vn{i}"), Layout::node_ip(i))?;
        // The node's own connections to ClusterIPs need a route before the proxy's NAT
        // rewrites them (route lookup happens first).
        n.ip_batch(&format!("route add {}\n", cluster.service_route("eth0")))?;
    }
    Ok(())
}

/// Every process whose command line shows it belongs to `l` (container shims carry the data
/// directory in their spec).
fn shim_pids(l: &Layout) -> Vec<i32> {
    let needle = l.data_dir.to_string_lossy().to_string();
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("\0shim\0") && cmd.contains(&needle)
        })
        .collect()
}

/// Remove every namespace (and so every link and rule in them) and every process of `l`.
pub fn teardown(l: &Layout) -> anyhow::Result<usize> {
    for pid in shim_pids(l) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let names = NetNs::list(&l.prefix);
    let mut errors = Vec::new();
    // Pods first, then nodes, then the rest (a veth's peer goes with either end).
    let mut ordered = names.clone();
    ordered.sort_by_key(|n| (!n.contains("-pod-"), !n.contains("-node-"), n.clone()));
    for n in &ordered {
        if let Err(e) = NetNs::delete(n) {
            errors.push(format!("{n}: {e}"));
        }
    }
    // Pods' state refers to namespaces that are gone now: their agents start them afresh.
    let _ = std::fs::remove_dir_all(l.data_dir.join("nodes"));
    if !errors.is_empty() {
        bail!("could not remove: {}", errors.join("; "));
    }
    Ok(names.len())
}

/// The API server's proxy dials pods and kubelets from the control plane's namespace.
struct CpDialer(String);

impl svcnet_apiserver::proxy::Dialer for CpDialer {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<'static, std::io::Result<tokio::net::TcpStream>> {
        let ns = self.0.clone();
        Box::pin(async move {
            let ns = NetNs::open(&ns).map_err(std::io::Error::other)?;
            ns.tcp_connect(addr, Duration::from_secs(10))
                .await
                .map_err(std::io::Error::other)
        })
    }
}

pub struct UpOptions {
    pub nodes: usize,
    pub data_dir: PathBuf,
    pub proxy_mode: String,
    pub apiserver_port: u16,
    /// The cluster's facts (the LoadBalancer pool is set by `up`: it is on the node network).
    pub network: ClusterNetwork,
    /// `--store`: None = SQLite in the data dir; "etcd" = a local etcd (crate::etcd).
    pub store: Option<String>,
}

/// Forward 127.0.0.1:<nodePort> on the host to node 1's NodePort (TCP), for every NodePort
/// Service, so `curl 127.0.0.1:30002` works as `curl node:30002` does in the seeds.
async fn nodeport_forwarders(client: Client, outside: String) {
    use std::collections::HashMap;
    let mut open: HashMap<u16, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let api: Api<Service> = Api::all(client.clone());
        if let Ok(list) = api.list(&ListParams::default()).await {
            let want: Vec<u16> = list
                .items
                .iter()
                .flat_map(|s| s.spec.iter().flat_map(|sp| sp.ports.iter().flatten()))
                .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                .filter_map(|p| p.node_port.map(|n| n as u16))
                .collect();
            open.retain(|port, h| {
                let keep = want.contains(port);
                if !keep {
                    h.abort();
                }
                keep
            });
            for port in want {
                if open.contains_key(&port) {
                    continue;
                }
                let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else {
                    continue;
                };
                let target = SocketAddr::from((Layout::node_ip(1), port));
                open.insert(
                    port,
                    tokio::spawn(forward(listener, outside.clone(), target)),
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Accept on `listener` (on the host) and relay every connection to `target`, dialled from
/// the outside client's namespace `outside`.
async fn forward(listener: tokio::net::TcpListener, outside: String, target: SocketAddr) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        let outside = outside.clone();
        tokio::spawn(async move {
            let Ok(ns) = NetNs::open(&outside) else {
                return;
            };
            if let Ok(mut out) = ns.tcp_connect(target, Duration::from_secs(5)).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            }
        });
    }
}

/// The host's loopback stand-in for a LoadBalancer address a.b.c.d: 127.b.c.d (all of
/// 127.0.0.0/8 is local on Linux, so nothing is added to the host).
pub fn loopback_for(ip: Ipv4Addr) -> Ipv4Addr {
    let [_, b, c, d] = ip.octets();
    Ipv4Addr::new(127, b, c, d)
}

/// Forward 127.b.c.d:port on the host to a.b.c.d:port through the outside namespace, for every
/// LoadBalancer ingress address and TCP port, so `curl 127.28.0.200` reaches 172.28.0.200
/// as an external client would.
async fn loadbalancer_forwarders(client: Client, outside: String) {
    use std::collections::HashMap;
    let mut open: HashMap<SocketAddr, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut warned = std::collections::HashSet::new();
    loop {
        let api: Api<Service> = Api::all(client.clone());
        if let Ok(list) = api.list(&ListParams::default()).await {
            let want: Vec<SocketAddr> = list
                .items
                .iter()
                .flat_map(|s| {
                    let ports: Vec<u16> = s
                        .spec
                        .iter()
                        .flat_map(|sp| sp.ports.iter().flatten())
                        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                        .map(|p| p.port as u16)
                        .collect();
                    svcnet_speaker::ingress_ipv4(s)
                        .into_iter()
                        .flat_map(move |ip| {
                            ports
                                .clone()
                                .into_iter()
                                .map(move |p| SocketAddr::from((ip, p)))
                        })
                })
                .collect();
            open.retain(|target, h| {
                let keep = want.contains(target);
                if !keep {
                    h.abort();
                }
                keep
            });
            for target in want {
                if open.contains_key(&target) {
                    continue;
                }
                let SocketAddr::V4(t) = target else { continue };
                let local = SocketAddr::from((loopback_for(*t.ip()), t.port()));
                let listener = match tokio::net::TcpListener::bind(local).await {
                    Ok(l) => l,
                    Err(e) => {
                        if warned.insert(local) {
                            tracing::warn!(error = %e, "cannot forward {local} to LoadBalancer {target}");
                        }
                        continue;
                    }
                };
                tracing::info!("forwarding {local} on the host to LoadBalancer {target}");
                open.insert(
                    target,
                    tokio::spawn(forward(listener, outside.clone(), target)),
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Node `i`'s LoadBalancer speaker (MetalLB layer 2) on the node's eth0.
fn start_speaker(client: &Client, l: &Layout, i: usize, net: &ClusterNetwork) {
    let mut cfg =
        svcnet_speaker::SpeakerConfig::new(&Layout::node_name(i), Some(l.node_ns(i)), "eth0");
    cfg.stale_ranges = net
        .loadbalancer_ip_ranges
        .iter()
        .filter_map(|r| svcnet_speaker::parse_range(r).ok())
        .collect();
    let c = client.clone();
    tokio::spawn(async move {
        if let Err(e) = svcnet_speaker::run(c, cfg).await {
            tracing::error!(node = i, error = %e, "LoadBalancer speaker stopped");
        }
    });
}

/// Cluster DNS: a DNS server (svcnet-dns) on port 53 of every node's address, behind the
/// `kube-system/kube-dns` Service at `--cluster-dns` (the nameserver of the pods' resolv.conf).
/// The Service has no selector: its Endpoints list the nodes (the controllers mirror them into
/// an EndpointSlice), so the proxies balance pods' queries over the nodes' servers. Names outside
/// the cluster are forwarded only to what a node's namespace can reach (no route leaves the
/// cluster's namespaces: `--upstream` of `svcnet dns` is for real networks).
async fn cluster_dns(client: &Client, l: &Layout, o: &UpOptions) -> anyhow::Result<()> {
    let net = &o.network;
    use k8s_openapi::api::core::v1::Endpoints;
    use kube::api::{Patch, PatchParams, PostParams};
    for i in 1..=o.nodes {
        let cfg = svcnet_dns::Config {
            listen: SocketAddr::from((Layout::node_ip(i), ports::DNS)),
            metrics_addr: Some(SocketAddr::from((Layout::node_ip(i), ports::DNS_METRICS))),
            netns: Some(l.node_ns(i)),
            cluster_domain: net.cluster_domain.clone(),
            ..Default::default()
        };
        svcnet_dns::start(client.clone(), cfg)
            .await
            .with_context(|| format!("starting cluster DNS on {}", Layout::node_name(i)))?;
    }
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": net.cluster_dns.to_string(), "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}
    }))?;
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    match services.create(&PostParams::default(), &svc).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("creating kube-system/kube-dns"),
    }
    let addresses: Vec<serde_json::Value> = (1..=o.nodes)
        .map(|i| {
            serde_json::json!({"ip": Layout::node_ip(i).to_string(),
                               "nodeName": Layout::node_name(i)})
        })
        .collect();
    let eps = serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns"}},
        "subsets": [{"addresses": addresses, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "metrics", "port": 9153, "protocol": "TCP"}]}]
    });
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "kube-system");
    let written = match endpoints
        .create(
            &PostParams::default(),
            &serde_json::from_value(eps.clone())?,
        )
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 409 => endpoints
            .patch("kube-dns", &PatchParams::default(), &Patch::Merge(eps))
            .await
            .map(|_| ()),
        other => other.map(|_| ()),
    };
    written.context("writing kube-system/kube-dns Endpoints")
}

async fn client_for(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    Ok(Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?)
}

async fn all_nodes_ready(client: &Client, n: usize) -> bool {
    let api: Api<Node> = Api::all(client.clone());
    let Ok(list) = api.list(&ListParams::default()).await else {
        return false;
    };
    list.items
        .iter()
        .filter(|n| svcnet_informer::conditions::node_ready(n))
        .count()
        >= n
}

/// `svcnet up`: everything, in the foreground, until Ctrl-C / SIGTERM; then `down`.
pub async fn up(o: UpOptions) -> anyhow::Result<()> {
    svcnet_netns::check_privileges().map_err(|e| {
        anyhow::anyhow!("svcnet up needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN): {e}")
    })?;
    if o.nodes == 0 || o.nodes > MAX_NODES {
        bail!("--nodes must be between 1 and {MAX_NODES}");
    }
    let l = Layout::new(&o.data_dir)?;
    let lock_path = l.data_dir.join("up.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .read(true)
        .open(&lock_path)?;
    if lock.try_lock().is_err() {
        let pid = std::fs::read_to_string(l.data_dir.join("up.pid")).unwrap_or_default();
        bail!(
            "another `svcnet up` is running on {} (pid {}); stop it first or use another --data-dir",
            l.data_dir.display(),
            pid.trim()
        );
    }
    std::fs::write(l.data_dir.join("up.pid"), std::process::id().to_string())?;
    // For tools (and tests) that look for this cluster's namespaces.
    std::fs::write(l.data_dir.join("netns-prefix"), &l.prefix)?;
    let started = Instant::now();
    // Whatever a crashed `up` left behind goes first.
    teardown(&l)?;
    let result = run_cluster(&l, &o, started).await;
    eprintln!("stopping: removing namespaces and processes");
    let removed = teardown(&l);
    let _ = std::fs::remove_file(l.data_dir.join("up.pid"));
    drop(lock);
    result?;
    removed?;
    Ok(())
}

async fn run_cluster(l: &Layout, o: &UpOptions, started: Instant) -> anyhow::Result<()> {
    let mode: svcnet_proxy::server::Mode = o.proxy_mode.parse().map_err(anyhow::Error::msg)?;
    let net = &o.network;
    create_network(l, o.nodes, net)?;
    let cp = NetNs::open(&l.cp())?;

    // The API server: on 127.0.0.1 for kubectl, and on the control plane's address for the cluster.
    let mut config = svcnet_apiserver::Config::new(l.data_dir.clone()).with_network(net);
    config.secure_port = o.apiserver_port;
    config.advertise_address = Some(CP_IP);
    let _etcd = crate::etcd::select_store(&l.data_dir, o.store.as_deref(), &mut config)?;
    let cp_listener = cp.tcp_listen(SocketAddr::from((CP_IP, ports::APISERVER)))?;
    let options = svcnet_apiserver::ServerOptions {
        dialer: Arc::new(CpDialer(l.cp())),
        extra_listeners: vec![cp_listener],
    };
    let server = svcnet_apiserver::Server::start_with(config, options).await?;
    let client = client_for(&server.kubeconfig_path).await?;

    // Controllers.
    let (cc, cc_net) = (client.clone(), net.clone());
    tokio::spawn(async move {
        let config = svcnet_controllers::Config::default().with_network(&cc_net);
        svcnet_controllers::run(cc, config).await
    });

    // Nodes.
    let token = std::fs::read_to_string(l.data_dir.join("kubelet-client.token"))
        .ok()
        .map(|t| t.trim().to_string());
    let exe = std::env::current_exe()?;
    for i in 1..=o.nodes {
        let cfg = svcnet_node::agent::AgentConfig {
            node_name: Layout::node_name(i),
            node_netns: Some(l.node_ns(i)),
            node_ip: Layout::node_ip(i),
            data_dir: layout::node_dir(&l.data_dir, &Layout::node_name(i)),
            kubelet_port: ports::KUBELET,
            kubelet_token: token.clone(),
            network: net.clone(),
            pod_cidr: None,
            exe: exe.clone(),
            heartbeat: Duration::from_secs(10),
            labels: Default::default(),
            netns_prefix: l.prefix.clone(),
            // Added at creation too (`create_network`); put back after a link flap.
            routes: vec![net.service_route("eth0")],
        };
        let c = client.clone();
        tokio::spawn(async move {
            let name = cfg.node_name.clone();
            if let Err(e) = svcnet_node::agent::run(c, cfg).await {
                tracing::error!(node = %name, error = %e, "node agent stopped");
            }
        });
        // The node's service proxy, in the node's namespace.
        let opts = svcnet_proxy::server::Options {
            mode,
            netns: Some(l.node_ns(i)),
            node_name: Layout::node_name(i),
            node_ips: vec![std::net::IpAddr::V4(Layout::node_ip(i))],
            cluster_cidr: Some(net.cluster_cidr.into()),
            metrics_addr: Some(SocketAddr::from((Layout::node_ip(i), ports::PROXY_METRICS))),
            health_bind: Some(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            settings: Default::default(),
            userspace_algorithm: Default::default(),
        };
        let c = client.clone();
        tokio::spawn(async move {
            if let Err(e) = svcnet_proxy::server::run(c, opts).await {
                tracing::error!(error = %e, "service proxy stopped");
            }
        });
        start_speaker(&client, l, i, net);
    }
    // The control plane reaches pods (services/proxy, pods/proxy) through routes to every node.
    tokio::spawn(svcnet_node::agent::node::sync_routes(
        client.clone(),
        Some(l.cp()),
        None,
        Vec::new(),
    ));
    tokio::spawn(nodeport_forwarders(client.clone(), l.outside()));
    cluster_dns(&client, l, o).await?;
    tokio::spawn(loadbalancer_forwarders(client.clone(), l.outside()));

    println!("export KUBECONFIG={}", server.kubeconfig_path.display());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !all_nodes_ready(&client, o.nodes).await {
        if Instant::now() > deadline {
            bail!("nodes did not become Ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "ready: {} node(s) in {:.2}s",
        o.nodes,
        started.elapsed().as_secs_f64()
    );
    crate::signal::wait_for_signal().await;
    drop(server);
    Ok(())
}

/// `svcnet down`.
pub fn down(data_dir: &Path) -> anyhow::Result<()> {
    let l = Layout::new(data_dir)?;
    if let Ok(pid) = std::fs::read_to_string(l.data_dir.join("up.pid")) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // A running `up` tears down itself on SIGTERM; give it a moment.
            if nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            )
            .is_ok()
            {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline
                    && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    let n = teardown(&l)?;
    let _ = std::fs::remove_file(l.data_dir.join("up.pid"));
    println!(
        "removed {n} network namespace(s) of {}",
        l.data_dir.display()
    );
    Ok(())
}

/// Where `svcnet exec` runs a command.
pub enum ExecTarget {
    Node(String),
    Outside,
    Pod { name: String, namespace: String },
}

/// `svcnet exec`: run `argv` inside a node, the outside client, or a pod; returns its exit code.
pub async fn exec(data_dir: &Path, target: ExecTarget, argv: &[String]) -> anyhow::Result<i32> {
    let l = Layout::new(data_dir)?;
    let (ns, hostname, binds) = match target {
        ExecTarget::Outside => (l.outside(), None, Vec::new()),
        ExecTarget::Node(name) => {
            let i: usize = name
                .strip_prefix("node-")
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("no node {name:?} (nodes are node-1, node-2, ...)"))?;
            (l.node_ns(i), None, Vec::new())
        }
        ExecTarget::Pod { name, namespace } => {
            let client = client_for(&l.kubeconfig()).await?;
            let pod: Pod = Api::namespaced(client, &namespace)
                .get(&name)
                .await
                .with_context(|| format!("pod {namespace}/{name}"))?;
            let uid = pod.uid().unwrap_or_default();
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .with_context(|| format!("pod {name} is not scheduled"))?;
            let node_dir = layout::node_dir(&l.data_dir, &node);
            let binds = layout::pod_file_binds(&layout::pod_dir(&node_dir, &uid));
            (
                layout::pod_netns(&l.prefix, &uid),
                Some(svcnet_node::agent::pods::hostname(&pod)),
                binds,
            )
        }
    };
    let netns = NetNs::open(&ns).with_context(|| {
        format!(
            "namespace {ns} (is `svcnet up` running on {}?)",
            l.data_dir.display()
        )
    })?;
    let (program, args) = argv.split_first().context("a command to run")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    svcnet_netns::enter_on_exec(&mut cmd, &netns, hostname.as_deref(), &binds)?;
    let status = tokio::task::spawn_blocking(move || cmd.status()).await??;
    Ok(status.code().unwrap_or(128))
}
