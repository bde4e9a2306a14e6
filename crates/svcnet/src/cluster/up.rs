//! `svcnet up`: everything, in the foreground, until Ctrl-C / SIGTERM; then what `down` does.
//! [`run_cluster`] reads as the order things start in: the namespaces, the API server, the
//! controllers, each node (agent, proxy, speaker), cluster DNS, the host forwarders, then the
//! wait for every node to be Ready.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, Client};
use svcnet_cluster::{ports, ClusterNetwork};
use svcnet_netns::NetNs;
use svcnet_node::layout;
use svcnet_proxy::server::Mode;
use tokio::task::JoinSet;

use super::down::teardown;
use super::layout::{hosts_file, Layout, CP_IP, MAX_NODES, OUTSIDE_IP, PREFIX_LEN};
use super::{deps, dns, etcd, forward};

pub struct UpOptions {
    pub nodes: usize,
    pub data_dir: PathBuf,
    pub proxy_mode: String,
    pub apiserver_port: u16,
    /// `--host-ports`: the host's loopback forwarders (`forward.rs`).
    pub host_ports: bool,
    /// The cluster's facts (the LoadBalancer pool is set by `up`: it is on the node network).
    pub network: ClusterNetwork,
    /// `--store`: None = SQLite in the data dir; "etcd" = a local etcd (`etcd.rs`).
    pub store: Option<String>,
    /// `--private-registry`: k3s's registries.yaml for the nodes' pulls.
    pub private_registry: Option<PathBuf>,
    /// `--disable-default-registry-endpoint`: mirrors only.
    pub disable_default_registry_endpoint: bool,
}

/// `svcnet up`: everything, in the foreground, until Ctrl-C / SIGTERM; then `down`.
pub async fn up(o: UpOptions) -> anyhow::Result<()> {
    svcnet_netns::check_privileges().map_err(|e| {
        anyhow::anyhow!("svcnet up needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN): {e}")
    })?;
    if o.nodes == 0 || o.nodes > MAX_NODES {
        bail!("--nodes must be between 1 and {MAX_NODES}");
    }
    let mode: Mode = o.proxy_mode.parse().map_err(anyhow::Error::msg)?;
    deps::check(mode, o.store.as_deref())?;
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
    let result = run_cluster(&l, &o, mode, started).await;
    eprintln!("stopping: removing namespaces and processes");
    let removed = teardown(&l);
    let _ = std::fs::remove_file(l.data_dir.join("up.pid"));
    drop(lock);
    result?;
    removed?;
    Ok(())
}

async fn run_cluster(
    l: &Layout,
    o: &UpOptions,
    mode: Mode,
    started: Instant,
) -> anyhow::Result<()> {
    let net = &o.network;
    create_network(l, o.nodes, net)?;
    std::fs::write(l.hosts(), hosts_file(o.nodes))?;
    let control_plane = start_apiserver(l, o).await?;
    let client = control_plane.client.clone();
    let mut components = JoinSet::new();
    start_controllers(&mut components, &client, net);
    let node = NodeSettings::new(l, mode, o)?;
    for i in 1..=o.nodes {
        start_node(&mut components, &client, l, net, &node, i);
    }
    start_control_plane_routes(&mut components, &client, l);
    dns::start_cluster_dns(&client, l, o.nodes, net).await?;
    if o.host_ports {
        forward::start_forwarders(&mut components, &client, l);
    }

    println!("export KUBECONFIG={}", control_plane.kubeconfig().display());
    wait_ready(&client, o.nodes).await?;
    println!(
        "ready: {} node(s) in {:.2}s",
        o.nodes,
        started.elapsed().as_secs_f64()
    );
    crate::signal::wait_for_signal().await;
    // The API server's clients stop before it does, as a cluster's nodes and controllers go
    // before its control plane: none of them is left to report losing it (what they spawned
    // themselves stays quiet: `main.rs` makes their messages after a signal debug).
    components.shutdown().await;
    control_plane.stop().await;
    Ok(())
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
fn create_network(l: &Layout, nodes: usize, cluster: &ClusterNetwork) -> anyhow::Result<()> {
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

/// The running API server (and the local etcd it stores in, if `--store etcd`), and a client
/// for it. Dropping it stops the server, then etcd.
struct ControlPlane {
    server: svcnet_apiserver::Server,
    client: Client,
    _etcd: Option<svcnet_store::etcd::local::LocalEtcd>,
}

impl ControlPlane {
    fn kubeconfig(&self) -> &Path {
        &self.server.kubeconfig_path
    }

    /// Stop serving, then stop etcd.
    async fn stop(self) {
        self.server.shutdown().await;
    }
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

/// The API server: on 127.0.0.1 for kubectl, and on the control plane's address for the cluster.
async fn start_apiserver(l: &Layout, o: &UpOptions) -> anyhow::Result<ControlPlane> {
    let cp = NetNs::open(&l.cp())?;
    let mut config = svcnet_apiserver::Config::new(l.data_dir.clone()).with_network(&o.network);
    config.secure_port = o.apiserver_port;
    config.advertise_address = Some(CP_IP);
    let etcd = etcd::select_store(&l.data_dir, o.store.as_deref(), &mut config)?;
    let cp_listener = cp.tcp_listen(SocketAddr::from((CP_IP, ports::APISERVER)))?;
    let options = svcnet_apiserver::ServerOptions {
        dialer: Arc::new(CpDialer(l.cp())),
        extra_listeners: vec![cp_listener],
    };
    let server = svcnet_apiserver::Server::start_with(config, options).await?;
    write_internal_kubeconfig(&server.kubeconfig_path, &l.internal_kubeconfig())?;
    let client = crate::client::client(Some(&server.kubeconfig_path)).await?;
    Ok(ControlPlane {
        server,
        client,
        _etcd: etcd,
    })
}

/// The admin kubeconfig with the API server at the control plane's address (in its serving
/// certificate), which the nodes and the outside client reach: `svcnet exec --node`'s
/// `KUBECONFIG`, as kind's `get kubeconfig --internal`.
fn write_internal_kubeconfig(admin: &Path, internal: &Path) -> anyhow::Result<()> {
    let mut kc = kube::config::Kubeconfig::read_from(admin)?;
    for c in kc.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        c.server = Some(format!("https://{CP_IP}:{}", ports::APISERVER));
    }
    svcnet_apiserver::tls::write_private(internal, serde_json::to_string_pretty(&kc)?.as_bytes())?;
    Ok(())
}

/// Every controller, in-process, as `svcnet controller-manager` runs them.
fn start_controllers(tasks: &mut JoinSet<()>, client: &Client, net: &ClusterNetwork) {
    let config = svcnet_controllers::Config::default().with_network(net);
    tasks.spawn(svcnet_controllers::run(client.clone(), config));
}

/// What every node's components share.
struct NodeSettings {
    proxy_mode: Mode,
    /// Who may call the kubelet API: the API server, by the token it presents.
    kubelet_auth: svcnet_node::kubelet_api::Authenticator,
    /// This binary: the agent starts container shims with it.
    exe: PathBuf,
    /// The image store every node shares: `<data-dir>/images`, also k3s's drop directory
    /// for image archives (imported here, at start).
    image_store: PathBuf,
    registries: svcnet_images::Registries,
}

impl NodeSettings {
    fn new(l: &Layout, proxy_mode: Mode, o: &UpOptions) -> anyhow::Result<NodeSettings> {
        let image_store = l.data_dir.join("images");
        let store = svcnet_images::Store::open(&image_store)?;
        let report = store.import_archives(&image_store);
        for e in &report.errors {
            eprintln!("warning: importing an image archive: {e}");
        }
        Ok(NodeSettings {
            image_store,
            registries: match &o.private_registry {
                Some(p) => svcnet_images::Registries::load(p)?,
                None => svcnet_images::Registries::none(),
            }
            .disable_default_endpoint(o.disable_default_registry_endpoint),
            proxy_mode,
            // Written by the API server as it started: without it, no node starts.
            kubelet_auth: svcnet_node::kubelet_api::Authenticator::from_token_file(Some(
                &l.data_dir.join("kubelet-client.token"),
            ))?,
            exe: std::env::current_exe()?,
        })
    }
}

/// Node `i`: its agent (a kubelet for process pods), its service proxy and its LoadBalancer
/// speaker, each in the node's namespace.
fn start_node(
    tasks: &mut JoinSet<()>,
    client: &Client,
    l: &Layout,
    net: &ClusterNetwork,
    s: &NodeSettings,
    i: usize,
) {
    tasks.spawn(agent(client, l, net, s, i));
    tasks.spawn(proxy(client, l, net, s.proxy_mode, i));
    tasks.spawn(speaker(client, l, net, i));
}

/// Node `i`'s agent.
fn agent(
    client: &Client,
    l: &Layout,
    net: &ClusterNetwork,
    s: &NodeSettings,
    i: usize,
) -> impl Future<Output = ()> + Send + 'static {
    let cfg = svcnet_node::agent::AgentConfig {
        node_name: Layout::node_name(i),
        node_netns: Some(l.node_ns(i)),
        node_ip: Layout::node_ip(i),
        data_dir: layout::node_dir(&l.data_dir, &Layout::node_name(i)),
        kubelet_port: ports::KUBELET,
        kubelet_auth: s.kubelet_auth.clone(),
        network: net.clone(),
        pod_cidr: None,
        exe: s.exe.clone(),
        heartbeat: Duration::from_secs(10),
        labels: Default::default(),
        netns_prefix: l.prefix.clone(),
        // Added at creation too (`create_network`); put back after a link flap.
        routes: vec![net.service_route("eth0")],
        image_store: Some(s.image_store.clone()),
        registries: s.registries.clone(),
        // The kubelet's defaults (`svcnet node` has its flags).
        image_gc: Default::default(),
    };
    let c = client.clone();
    async move {
        let name = cfg.node_name.clone();
        if let Err(e) = svcnet_node::agent::run(c, cfg).await {
            tracing::error!(node = %name, error = %e, "node agent stopped");
        }
    }
}

/// The node's service proxy.
fn proxy(
    client: &Client,
    l: &Layout,
    net: &ClusterNetwork,
    mode: Mode,
    i: usize,
) -> impl Future<Output = ()> + Send + 'static {
    let opts = svcnet_proxy::server::Options {
        mode,
        netns: Some(l.node_ns(i)),
        node_name: Layout::node_name(i),
        node_ips: vec![IpAddr::V4(Layout::node_ip(i))],
        cluster_cidr: Some(net.cluster_cidr.into()),
        metrics_addr: Some(SocketAddr::from((Layout::node_ip(i), ports::PROXY_METRICS))),
        health_bind: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        settings: Default::default(),
        userspace_algorithm: Default::default(),
    };
    let c = client.clone();
    async move {
        if let Err(e) = svcnet_proxy::server::run(c, opts).await {
            tracing::error!(error = %e, "service proxy stopped");
        }
    }
}

/// Node `i`'s LoadBalancer speaker (MetalLB layer 2) on the node's eth0.
fn speaker(
    client: &Client,
    l: &Layout,
    net: &ClusterNetwork,
    i: usize,
) -> impl Future<Output = ()> + Send + 'static {
    let mut cfg =
        svcnet_speaker::SpeakerConfig::new(&Layout::node_name(i), Some(l.node_ns(i)), "eth0");
    cfg.stale_ranges = net
        .loadbalancer_ip_ranges
        .iter()
        .filter_map(|r| svcnet_speaker::parse_range(r).ok())
        .collect();
    let c = client.clone();
    async move {
        if let Err(e) = svcnet_speaker::run(c, cfg).await {
            tracing::error!(node = i, error = %e, "LoadBalancer speaker stopped");
        }
    }
}

/// The control plane reaches pods (services/proxy, pods/proxy) through routes to every node.
fn start_control_plane_routes(tasks: &mut JoinSet<()>, client: &Client, l: &Layout) {
    tasks.spawn(svcnet_node::agent::node::sync_routes(
        client.clone(),
        Some(l.cp()),
        None,
        Vec::new(),
    ));
}

/// Wait (at most 60 s) until `nodes` nodes are Ready.
async fn wait_ready(client: &Client, nodes: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !all_nodes_ready(client, nodes).await {
        if Instant::now() > deadline {
            bail!("nodes did not become Ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
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
