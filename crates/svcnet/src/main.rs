//! `svcnet`: one binary, one subcommand per component. A thin front end: flags in, the crates
//! do the work.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use svcnet_cluster::{defaults, ports, ClusterNetwork};

mod client;
mod cluster;
mod images;
mod signal;

use client::client;

#[derive(Parser)]
#[command(
    name = "svcnet",
    version,
    about = "Kubernetes Services, complete, in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a whole cluster on this machine, in network namespaces: the API server, the
    /// controllers and N nodes running pods from their images. In the foreground until Ctrl-C.
    Up(UpArgs),
    /// Remove every namespace, link, rule and process `svcnet up` made (also after a crash).
    Down {
        #[arg(long, default_value = "./.svcnet")]
        data_dir: PathBuf,
    },
    /// Run a command inside a pod, a node, or the outside client of a running `svcnet up`.
    Exec(ExecArgs),
    /// Run a node agent: register a Node and run the pods bound to it.
    Node(NodeArgs),
    /// Run the service proxy (kube-proxy): Services and EndpointSlices to nftables or iptables
    /// rules, or userspace proxying, on this node (also against a real cluster with
    /// --kubeconfig).
    Proxy(ProxyArgs),
    /// Run the cluster DNS server (CoreDNS's kubernetes plugin): the cluster domain from
    /// Service / EndpointSlice watches, everything else forwarded (also against a real cluster
    /// with --kubeconfig).
    Dns(DnsArgs),
    /// Announce LoadBalancer addresses from this node (MetalLB's layer-2 mode): the addresses
    /// this node is elected for go on --interface as /32s, with unsolicited ARP.
    Speaker(SpeakerArgs),
    /// Run the Kubernetes-compatible API server.
    Apiserver(ApiserverArgs),
    /// Run the controllers (EndpointSlices, Endpoints, Deployments, ReplicaSets,
    /// ReplicationControllers, garbage collector, scheduler) against an API server (svcnet's or a real Kubernetes one).
    ControllerManager(ControllerManagerArgs),
    /// A test backend, like Kubernetes' agnhost: serves its pod IP / hostname over HTTP and
    /// echoes TCP and UDP (pods in svcnet run host processes; this gives them real servers).
    #[command(subcommand)]
    Agnhost(AgnhostCommand),
    /// The image store: build the seeds' images for an air-gapped machine, import, pull, list.
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// Internal: the per-container shim the node agent starts (spec as JSON).
    #[command(hide = true)]
    Shim { spec: String },
    /// Internal: the process holding a pod's UTS and IPC namespaces (Kubernetes' pause).
    #[command(hide = true)]
    Pause {
        #[arg(long)]
        hostname: String,
        /// Hold the pod's PID namespace too (`shareProcessNamespace: true`).
        #[arg(long)]
        share_pid: bool,
        /// Be PID 1 of that namespace (started by the holder itself).
        #[arg(long, hide = true)]
        pid_ns_init: bool,
        /// The pod's directory (names the process, for `svcnet down` and the agent).
        #[arg(long)]
        pod_dir: PathBuf,
    },
}

#[derive(Args)]
struct UpArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Where the cluster's state, kubeconfig and logs live.
    #[arg(long, default_value = "./.svcnet")]
    data_dir: PathBuf,
    /// The service proxy's mode: nftables, iptables or userspace. (ipvs is refused: svcnet
    /// renders it, `svcnet proxy --list`, but does not program it; it needs the kernel's ip_vs.)
    #[arg(long, default_value = "nftables")]
    proxy_mode: String,
    /// The API server's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = ports::APISERVER)]
    apiserver_port: u16,
    /// Forward NodePorts (127.0.0.1:<nodePort>) and LoadBalancer addresses (a.b.c.d on
    /// 127.b.c.d) from the host's loopback into the cluster; `--host-ports=false` for a second
    /// cluster on the machine, whose ports would be taken.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    host_ports: bool,
    /// The nameserver of pods with dnsPolicy ClusterFirst (the kube-dns Service's ClusterIP).
    #[arg(long, default_value = defaults::CLUSTER_DNS)]
    cluster_dns: Ipv4Addr,
    /// Where objects are stored: sqlite (default, <data-dir>/state.db), `etcd` (starts a local
    /// etcd in <data-dir>/etcd on loopback), or a URL as for `svcnet apiserver --store`.
    #[arg(long)]
    store: Option<String>,
    /// A registries.yaml in k3s's format (mirrors, rewrites, auth, TLS) for the nodes' image
    /// pulls; k3s's flag name.
    #[arg(long)]
    private_registry: Option<PathBuf>,
    /// Pull from the registries.yaml mirrors only, never from a mirrored registry itself
    /// (k3s's flag; an air-gapped site).
    #[arg(long)]
    disable_default_registry_endpoint: bool,
}

#[derive(Args)]
struct ExecArgs {
    /// The pod to run in (default: see --node / --outside).
    pod: Option<String>,
    /// The pod's namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Run on this node instead (as if logged in to it).
    #[arg(long, conflicts_with_all = ["pod", "outside"])]
    node: Option<String>,
    /// Run in the client namespace outside every node (the "external user").
    #[arg(long, conflicts_with = "pod")]
    outside: bool,
    /// The cluster's data dir (default: $KUBECONFIG's directory if `svcnet up` made it, else
    /// ./.svcnet if a cluster runs there, else the only cluster running on this machine).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Args)]
struct ProxyArgs {
    /// kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// nftables (default), iptables or userspace. (ipvs is refused: svcnet renders it, see
    /// --list, but does not program it; it needs the kernel's ip_vs.)
    #[arg(long, default_value = "nftables")]
    proxy_mode: String,
    /// The node's network namespace (default: this process's).
    #[arg(long)]
    netns: Option<String>,
    /// This node's name (endpoints on it are "local"; default: the hostname, as kube-proxy).
    #[arg(long)]
    hostname_override: Option<String>,
    /// The node's addresses, where NodePorts are served (repeatable; default: every local
    /// address, and for --list the Node's InternalIP and the node's addresses).
    #[arg(long = "node-ip")]
    node_ips: Vec<IpAddr>,
    /// Traffic to ClusterIPs from outside this range is masqueraded.
    #[arg(long)]
    cluster_cidr: Option<ipnet::IpNet>,
    /// Where /metrics and /healthz are served.
    #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::LOCALHOST, ports::PROXY_METRICS)))]
    metrics_bind_address: SocketAddr,
    /// Seconds between syncs when nothing changes (a sync with nothing to do does nothing, unless
    /// a full sync is due).
    #[arg(long, default_value_t = 30)]
    sync_period: u64,
    /// Seconds between full syncs, which rewrite every rule (kube-proxy's fixed one hour).
    #[arg(long, default_value_t = 3600)]
    full_sync_period: u64,
    /// Minimum milliseconds between syncs (0: as soon as a change arrives).
    #[arg(long, default_value_t = 0)]
    min_sync_period_ms: u64,
    /// How the userspace mode balances: round-robin, least-connections or random.
    #[arg(long, default_value = "round-robin")]
    userspace_algorithm: String,
    /// Remove this proxy's rules (both modes) and exit.
    #[arg(long)]
    cleanup: bool,
    /// Print the virtual servers (ClusterIPs, NodePorts, external and load-balancer IPs), their
    /// backends and live connections as `ipvsadm -Ln` does for kube-proxy's ipvs mode (in any
    /// mode), and exit.
    #[arg(long)]
    list: bool,
}

#[derive(Args)]
struct SpeakerArgs {
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// This node's name (its Node object carries the speaker's lease).
    #[arg(long)]
    node: String,
    /// The node's network namespace (default: this process's).
    #[arg(long)]
    netns: Option<String>,
    /// The interface on the network the addresses are announced on.
    #[arg(long, default_value = "eth0")]
    interface: String,
    /// The LoadBalancer pools (`a-b` or CIDR, repeatable): /32s inside them left on the
    /// interface by a crashed speaker are removed at start.
    #[arg(long = "loadbalancer-ip-range")]
    ranges: Vec<String>,
}

#[derive(Args)]
struct DnsArgs {
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Where DNS is served, over UDP and TCP.
    #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::UNSPECIFIED, ports::DNS)))]
    listen: SocketAddr,
    #[arg(long, default_value = defaults::CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// TTL of the cluster records, in seconds.
    #[arg(long, default_value_t = 5)]
    ttl: u32,
    /// Upstream resolvers for names outside the cluster domain, IP or IP:PORT (repeatable;
    /// default: the nameservers of the namespace's resolv.conf).
    #[arg(long = "upstream")]
    upstreams: Vec<String>,
    /// Pod records `a-b-c-d.<ns>.pod.<domain>`: disabled, insecure or verified.
    #[arg(long, default_value = "disabled")]
    pods: String,
    /// Entries of the forwarding cache.
    #[arg(long, default_value_t = 10_000)]
    cache_size: usize,
    /// Where /metrics, /health and /ready are served.
    #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::LOCALHOST, ports::DNS_METRICS)))]
    metrics_addr: SocketAddr,
    /// A named network namespace to serve (and forward) from (default: this process's).
    #[arg(long)]
    netns: Option<String>,
    /// Seconds for the first message of a TCP connection to arrive whole (CoreDNS's `timeouts`
    /// `read`).
    #[arg(long, default_value_t = 3)]
    read_timeout: u64,
    /// Seconds for each later message on a TCP connection to arrive whole (`timeouts` `idle`).
    #[arg(long, default_value_t = 10)]
    idle_timeout: u64,
    /// Seconds for an answer to be written over TCP (`timeouts` `write`).
    #[arg(long, default_value_t = 5)]
    write_timeout: u64,
    /// Open TCP connections at most: when full, the one idle the longest is closed, or the new
    /// one is refused if none is idle (CoreDNS's `max_connections` of DoH, gRPC and DoQ).
    #[arg(long, default_value_t = 200)]
    max_connections: usize,
}

#[derive(Args)]
struct NodeArgs {
    /// kubeconfig of the API server.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The Node's name.
    #[arg(long)]
    node_name: String,
    /// The node's network namespace (default: this process's).
    #[arg(long)]
    netns: Option<String>,
    /// The node's InternalIP (the kubelet API listens there).
    #[arg(long)]
    node_ip: Ipv4Addr,
    /// Where pods' state and logs live.
    #[arg(long, default_value = "./.svcnet-node")]
    data_dir: PathBuf,
    #[arg(long, default_value_t = ports::KUBELET)]
    port: u16,
    /// File with the bearer token the API server presents to the kubelet API (`<apiserver data
    /// dir>/kubelet-client.token`). Required: the kubelet API serves logs and exec to no one
    /// else.
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[arg(long, default_value = defaults::CLUSTER_DNS)]
    cluster_dns: Ipv4Addr,
    #[arg(long, default_value = defaults::CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// A fixed pod CIDR (default: the one the node IPAM controller assigns).
    #[arg(long)]
    pod_cidr: Option<ipnet::Ipv4Net>,
    /// Seconds between node status updates.
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
    /// Prefix of the pods' network namespaces.
    #[arg(long, default_value = "svcnet-")]
    netns_prefix: String,
    /// The image store (default: <data-dir>/images).
    #[arg(long)]
    image_store: Option<PathBuf>,
    /// A registries.yaml in k3s's format (mirrors, rewrites, auth, TLS); k3s's flag name.
    #[arg(long)]
    private_registry: Option<PathBuf>,
    /// The percent of the image store's filesystem in use after which image garbage
    /// collection always runs (the kubelet's flag and default; 100 disables it).
    #[arg(long, default_value_t = 85)]
    image_gc_high_threshold: u32,
    /// The percent of the filesystem in use down to which image garbage collection frees (the
    /// kubelet's flag and default).
    #[arg(long, default_value_t = 80)]
    image_gc_low_threshold: u32,
    /// Minimum age of an unused image before it is garbage collected (the kubelet's flag and
    /// default; a Go duration).
    #[arg(long, default_value = "2m", value_parser = svcnet_images::image_gc::parse_go_duration)]
    image_minimum_gc_age: std::time::Duration,
}

#[derive(Subcommand)]
enum AgnhostCommand {
    /// HTTP (`/` = pod IP, `/hostname`, `/clientip`, `/echo?msg=`, `/healthz`, `/readyz`), UDP and
    /// TCP echo servers.
    Netexec {
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
        #[arg(long)]
        udp_port: Option<u16>,
        #[arg(long)]
        tcp_port: Option<u16>,
        /// Body for `/` instead of the pod IP.
        #[arg(long)]
        body: Option<String>,
    },
    /// Answer every request with the hostname (HTTP on --port, and UDP on the same port).
    ServeHostname {
        #[arg(long, default_value_t = 9376)]
        port: u16,
    },
}

#[derive(Args)]
struct ControllerManagerArgs {
    /// kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The maximum number of endpoints in one EndpointSlice.
    #[arg(long, default_value_t = 100)]
    max_endpoints_per_slice: usize,
    /// Workers of the EndpointSlice and Endpoints controllers.
    #[arg(long, default_value_t = 5)]
    concurrent_service_endpoint_syncs: usize,
    /// Workers of the Deployment controller.
    #[arg(long, default_value_t = 5)]
    concurrent_deployment_syncs: usize,
    /// Workers of the ReplicaSet controller.
    #[arg(long, default_value_t = 5)]
    concurrent_replicaset_syncs: usize,
    /// Workers of the ReplicationController controller (the replication manager).
    #[arg(long, default_value_t = 5)]
    concurrent_rc_syncs: usize,
    /// The pods' address range, split into per-node blocks by the node IPAM controller.
    #[arg(long, default_value = defaults::CLUSTER_CIDR)]
    cluster_cidr: ipnet::Ipv4Net,
    /// The size of each node's block of --cluster-cidr.
    #[arg(long, default_value_t = defaults::NODE_CIDR_MASK_SIZE)]
    node_cidr_mask_size: u8,
    /// Seconds without a status from a node's agent before the node is marked Unknown.
    #[arg(long, default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Addresses for LoadBalancer Services (repeatable or comma-separated): a.b.c.d-e.f.g.h, a
    /// CIDR or an address. Without it, LoadBalancer Services stay <pending>.
    #[arg(long = "loadbalancer-ip-range")]
    loadbalancer_ip_ranges: Vec<String>,
    /// Controllers to run (comma-separated; default all): endpointslice, endpointslicemirroring, endpoints,
    /// replicaset, replicationcontroller, deployment, disruption, garbagecollector, scheduler, nodeipam, nodelifecycle,
    /// loadbalancer; `none` runs the informers only.
    #[arg(long, value_delimiter = ',')]
    controllers: Vec<String>,
}

#[derive(Args)]
struct ApiserverArgs {
    /// Directory for the store, certificates, tokens and the admin kubeconfig.
    #[arg(long, default_value = "./.svcnet")]
    data_dir: PathBuf,
    /// Where objects are stored: sqlite://PATH (default: <data-dir>/state.db) or
    /// etcd://HOST:PORT[,HOST:PORT...] (etcd v3; several API servers may share it).
    #[arg(long)]
    store: Option<String>,
    /// CA bundle to verify etcd's serving certificate (enables TLS to etcd).
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd (with --etcd-keyfile).
    #[arg(long)]
    etcd_certfile: Option<PathBuf>,
    /// Client key for etcd (with --etcd-certfile).
    #[arg(long)]
    etcd_keyfile: Option<PathBuf>,
    /// The port to serve HTTPS on.
    #[arg(long, default_value_t = ports::APISERVER)]
    secure_port: u16,
    /// The IP address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind_address: IpAddr,
    /// The address pods reach the API server at (the `kubernetes` Service's endpoint).
    #[arg(long)]
    advertise_address: Option<Ipv4Addr>,
    /// CIDR from which Service ClusterIPs are allocated.
    #[arg(long, default_value = defaults::SERVICE_CIDR)]
    service_cluster_ip_range: ipnet::Ipv4Net,
    /// Port range reserved for NodePort Services (LOW-HIGH, inclusive).
    #[arg(long, default_value = defaults::NODE_PORT_RANGE)]
    service_node_port_range: String,
    /// Bearer tokens, in kube-apiserver's CSV format (token,user,uid,"group1,group2").
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Events the watch cache keeps; watches from older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 100_000)]
    watch_cache_size: usize,
    /// Read-only requests (get, list) served at once; more get 429 Too Many Requests (0 = no
    /// limit). Watches, logs, exec, attach, port-forward and proxy are not counted, nor are
    /// members of system:masters once the limit is reached.
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Mutating requests (create, update, patch, delete) served at once; more get 429 (0 = no
    /// limit).
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// Streams a client may open at once on one HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    http2_max_streams_per_connection: u32,
    /// Tests only: the TLS handshake timeout (default 10 s), in milliseconds.
    #[arg(long, hide = true)]
    tls_handshake_timeout_ms: Option<u64>,
    /// Tests only: the request header timeout (default 32 s), in milliseconds.
    #[arg(long, hide = true)]
    read_header_timeout_ms: Option<u64>,
    /// Tests only: the idle connection timeout (default 90 s), in milliseconds.
    #[arg(long, hide = true)]
    idle_timeout_ms: Option<u64>,
    /// Tests only: the connection cap (default: from the open-file limit).
    #[arg(long, hide = true)]
    max_connections: Option<usize>,
    /// Seconds a watch lasts at least when the client sets no timeoutSeconds (or 0): a random
    /// time between this and twice this, as kube-apiserver's --min-request-timeout.
    #[arg(long, default_value_t = 1800)]
    min_request_timeout: u64,
    /// Microseconds each open watch adds to the window in which a watcher that just wrote
    /// holds its next write and sends what arrived meanwhile in one write (0: no holding).
    #[arg(long, default_value_t = svcnet_apiserver::config::WATCH_COALESCING_PER_WATCHER.as_micros() as u64)]
    watch_coalescing_per_watcher_us: u64,
}

fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let verbose = filter
        .max_level_hint()
        .is_some_and(|l| l >= tracing::level_filters::LevelFilter::DEBUG);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs redirected to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt.with_filter(QuietWhenStopping { verbose }))
        .init();
}

/// Once a signal asked a command to stop, the messages of the components it runs are debug
/// (shown only when RUST_LOG enables debug): they lose their API server, namespaces and peers
/// on purpose then, as a Go component's goroutines end with its process and say nothing. The
/// binary's own messages (the `svcnet` target) still show.
struct QuietWhenStopping {
    verbose: bool,
}

impl<S> tracing_subscriber::layer::Filter<S> for QuietWhenStopping {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let own = meta.target() == "svcnet" || meta.target().starts_with("svcnet::");
        self.verbose || own || !signal::stopping()
    }

    fn callsite_enabled(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Decided per event: the answer changes when a signal arrives.
        tracing::subscriber::Interest::sometimes()
    }
}

/// Raise the soft open-file limit to the hard one, as every Go program does at start (Go 1.19's
/// `os` package): the 1024 most systems give by default are a few hundred clients.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "could not raise the open-file limit");
            }
        }
    }
}

async fn apiserver(a: ApiserverArgs) -> anyhow::Result<()> {
    let mut config = svcnet_apiserver::Config::new(a.data_dir);
    config.secure_port = a.secure_port;
    config.bind_address = a.bind_address;
    config.advertise_address = a.advertise_address;
    config.service_cluster_ip_range = a.service_cluster_ip_range;
    config.service_node_port_range =
        svcnet_apiserver::config::parse_port_range(&a.service_node_port_range)
            .map_err(anyhow::Error::msg)?;
    config.token_auth_file = a.token_auth_file;
    config.watch_cache_size = a.watch_cache_size;
    let serving = &mut config.serving;
    serving.max_requests_inflight = a.max_requests_inflight;
    serving.max_mutating_requests_inflight = a.max_mutating_requests_inflight;
    serving.http2_max_streams_per_connection = a.http2_max_streams_per_connection;
    let ms = std::time::Duration::from_millis;
    if let Some(t) = a.tls_handshake_timeout_ms {
        serving.tls_handshake_timeout = ms(t);
    }
    if let Some(t) = a.read_header_timeout_ms {
        serving.read_header_timeout = ms(t);
    }
    if let Some(t) = a.idle_timeout_ms {
        serving.idle_timeout = ms(t);
    }
    serving.max_connections = a.max_connections;
    raise_open_file_limit();
    config.min_request_timeout = std::time::Duration::from_secs(a.min_request_timeout);
    config.watch_coalescing_per_watcher =
        std::time::Duration::from_micros(a.watch_coalescing_per_watcher_us);
    if let Some(s) = a.store {
        config.store =
            Some(svcnet_apiserver::config::StoreUrl::parse(&s).map_err(anyhow::Error::msg)?);
    }
    let tls = svcnet_store::etcd::EtcdTls {
        ca_file: a.etcd_cafile,
        cert_file: a.etcd_certfile,
        key_file: a.etcd_keyfile,
    };
    match &mut config.store {
        Some(svcnet_apiserver::config::StoreUrl::Etcd(etcd)) => etcd.tls = tls,
        _ if !tls.is_empty() => {
            anyhow::bail!("--etcd-cafile/--etcd-certfile/--etcd-keyfile need --store etcd://...")
        }
        _ => {}
    }
    let server = svcnet_apiserver::Server::start(config)
        .await
        .context("apiserver")?;
    signal::wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn controller_manager(a: ControllerManagerArgs) -> anyhow::Result<()> {
    let client = client(a.kubeconfig.as_deref()).await?;
    let config = svcnet_controllers::Config {
        max_endpoints_per_slice: a.max_endpoints_per_slice,
        concurrent_service_endpoint_syncs: a.concurrent_service_endpoint_syncs,
        concurrent_deployment_syncs: a.concurrent_deployment_syncs,
        concurrent_replicaset_syncs: a.concurrent_replicaset_syncs,
        concurrent_rc_syncs: a.concurrent_rc_syncs,
        controllers: a.controllers,
        cluster_cidr: a.cluster_cidr,
        node_cidr_mask_size: a.node_cidr_mask_size,
        node_monitor_grace_period: std::time::Duration::from_secs(a.node_monitor_grace_period),
        loadbalancer_ip_ranges: a.loadbalancer_ip_ranges,
        ..Default::default()
    };
    svcnet_controllers::loadbalancer::Pools::parse(&config.loadbalancer_ip_ranges)
        .map_err(anyhow::Error::msg)?;
    tokio::select! {
        _ = svcnet_controllers::run(client, config) => Ok(()),
        _ = signal::wait_for_signal() => Ok(()),
    }
}

async fn node(a: NodeArgs) -> anyhow::Result<()> {
    // The kubelet checks its configuration first.
    let image_gc = svcnet_images::ImageGcPolicy {
        high_threshold_percent: a.image_gc_high_threshold,
        low_threshold_percent: a.image_gc_low_threshold,
        min_age: a.image_minimum_gc_age,
    };
    image_gc.validate().map_err(anyhow::Error::msg)?;
    let kubelet_auth =
        svcnet_node::kubelet_api::Authenticator::from_token_file(a.token_file.as_deref()).context(
            "the kubelet API needs authentication: --token-file FILE, the bearer token the \
                 API server presents to kubelets (<apiserver data dir>/kubelet-client.token)",
        )?;
    svcnet_netns::check_privileges().map_err(|e| {
        anyhow::anyhow!("svcnet node needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN): {e}")
    })?;
    let client = client(a.kubeconfig.as_deref()).await?;
    svcnet_node::layout::prepare_node_dir(&a.data_dir)
        .with_context(|| format!("--data-dir {}", a.data_dir.display()))?;
    let cfg = svcnet_node::agent::AgentConfig {
        node_name: a.node_name,
        node_netns: a.netns,
        node_ip: a.node_ip,
        data_dir: a.data_dir.canonicalize()?,
        kubelet_port: a.port,
        kubelet_auth,
        network: ClusterNetwork {
            cluster_dns: a.cluster_dns,
            cluster_domain: a.cluster_domain,
            ..Default::default()
        },
        pod_cidr: a.pod_cidr,
        exe: std::env::current_exe()?,
        heartbeat: std::time::Duration::from_secs(a.heartbeat_seconds),
        labels: Default::default(),
        netns_prefix: a.netns_prefix,
        routes: Vec::new(),
        image_store: Some(a.image_store.unwrap_or_else(|| a.data_dir.join("images"))),
        registries: match &a.private_registry {
            Some(p) => svcnet_images::Registries::load(p)?,
            None => svcnet_images::Registries::none(),
        },
        image_gc,
    };
    tokio::select! {
        r = svcnet_node::agent::run(client, cfg) => r,
        _ = signal::wait_for_signal() => Ok(()),
    }
}

async fn proxy(a: ProxyArgs) -> anyhow::Result<()> {
    let mode: svcnet_proxy::server::Mode = a.proxy_mode.parse().map_err(anyhow::Error::msg)?;
    if a.cleanup {
        let _ = svcnet_proxy::nftables::cleanup(a.netns.as_deref());
        let _ = svcnet_proxy::iptables::cleanup(a.netns.as_deref());
        let _ = svcnet_proxy::userspace::cleanup(a.netns.as_deref());
        return Ok(());
    }
    let client = client(a.kubeconfig.as_deref()).await?;
    if a.list {
        let o = svcnet_proxy::list::ListOptions {
            netns: a.netns,
            hostname_override: a.hostname_override,
            node_ips: a.node_ips,
            scheduler: Default::default(),
        };
        print!("{}", svcnet_proxy::list::list(client, &o).await?);
        return Ok(());
    }
    let node_name = svcnet_proxy::list::hostname(a.hostname_override.as_deref())?;
    let opts = svcnet_proxy::server::Options {
        mode,
        netns: a.netns,
        node_name,
        node_ips: a.node_ips,
        cluster_cidr: a.cluster_cidr,
        metrics_addr: Some(a.metrics_bind_address),
        health_bind: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        settings: svcnet_proxy::syncer::SyncSettings {
            min_sync_period: std::time::Duration::from_millis(a.min_sync_period_ms),
            sync_period: std::time::Duration::from_secs(a.sync_period),
            full_sync_period: std::time::Duration::from_secs(a.full_sync_period),
        },
        userspace_algorithm: a
            .userspace_algorithm
            .parse()
            .map_err(|e| anyhow::anyhow!("--userspace-algorithm: {e}"))?,
    };
    tokio::select! {
        r = svcnet_proxy::server::run(client, opts) => r.map_err(anyhow::Error::msg),
        _ = signal::wait_for_signal() => Ok(()),
    }
}

async fn speaker(a: SpeakerArgs) -> anyhow::Result<()> {
    let mut cfg = svcnet_speaker::SpeakerConfig::new(&a.node, a.netns, &a.interface);
    cfg.stale_ranges = a
        .ranges
        .iter()
        .map(|r| svcnet_speaker::parse_range(r))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--loadbalancer-ip-range {e}"))?;
    let client = client(a.kubeconfig.as_deref()).await?;
    // On a signal the speaker's future is dropped, which removes every address it added; then
    // the lease is given up so other nodes take over at once.
    tokio::select! {
        r = svcnet_speaker::run(client.clone(), cfg) => r,
        _ = signal::wait_for_signal() => {
            if let Err(e) = svcnet_speaker::release(client, &a.node).await {
                tracing::warn!(error = %e, "giving up the speaker lease");
            }
            Ok(())
        }
    }
}

async fn dns(a: DnsArgs) -> anyhow::Result<()> {
    let upstreams = a
        .upstreams
        .iter()
        .map(|u| {
            u.parse::<SocketAddr>()
                .or_else(|_| {
                    u.parse::<IpAddr>()
                        .map(|ip| SocketAddr::new(ip, ports::DNS))
                })
                .map_err(|_| anyhow::anyhow!("--upstream {u:?}: want IP or IP:PORT"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cfg = svcnet_dns::Config {
        listen: a.listen,
        cluster_domain: a.cluster_domain,
        ttl: a.ttl,
        pods: a.pods.parse().map_err(|e| anyhow::anyhow!("--pods: {e}"))?,
        upstreams,
        cache_size: a.cache_size,
        metrics_addr: Some(a.metrics_addr),
        netns: a.netns,
        tcp: svcnet_dns::transport::TcpConfig {
            read_timeout: std::time::Duration::from_secs(a.read_timeout),
            idle_timeout: std::time::Duration::from_secs(a.idle_timeout),
            write_timeout: std::time::Duration::from_secs(a.write_timeout),
            max_connections: a.max_connections,
        },
    };
    let client = client(a.kubeconfig.as_deref()).await?;
    tokio::select! {
        r = svcnet_dns::run(client, cfg) => r.context("dns"),
        _ = signal::wait_for_signal() => Ok(()),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The shim runs without a tokio runtime or logging: it only starts, pipes and waits.
    if let Command::Shim { spec } = &cli.command {
        let spec: svcnet_node::shim::ShimSpec = serde_json::from_str(spec).context("shim spec")?;
        let code = svcnet_node::shim::run(&spec)?;
        std::process::exit(code);
    }
    if let Command::Pause {
        hostname,
        share_pid,
        pid_ns_init,
        ..
    } = &cli.command
    {
        if *pid_ns_init {
            svcnet_node::container::pause::pid_ns_init()?;
        } else {
            svcnet_node::container::pause::main(hostname, *share_pid)?;
        }
        return Ok(());
    }
    init_logging();
    // The proxy runs on one thread: its work is one sync loop fed by two watches, and one
    // thread keeps one allocator arena (the memory a list freed is what the full sync reuses).
    let rt = if matches!(cli.command, Command::Proxy(_)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    rt.block_on(async {
        match cli.command {
            Command::Apiserver(a) => apiserver(a).await,
            Command::ControllerManager(a) => controller_manager(a).await,
            Command::Up(a) => {
                cluster::up::up(cluster::up::UpOptions {
                    nodes: a.nodes,
                    data_dir: a.data_dir,
                    proxy_mode: a.proxy_mode,
                    apiserver_port: a.apiserver_port,
                    host_ports: a.host_ports,
                    network: ClusterNetwork {
                        cluster_dns: a.cluster_dns,
                        loadbalancer_ip_ranges: vec![cluster::layout::LB_POOL.to_string()],
                        ..Default::default()
                    },
                    store: a.store,
                    private_registry: a.private_registry,
                    disable_default_registry_endpoint: a.disable_default_registry_endpoint,
                })
                .await
            }
            Command::Down { data_dir } => cluster::down::down(&data_dir),
            Command::Exec(a) => {
                let target = match (a.pod, a.node, a.outside) {
                    (_, Some(n), _) => cluster::exec::ExecTarget::Node(n),
                    (_, _, true) => cluster::exec::ExecTarget::Outside,
                    (Some(name), _, _) => cluster::exec::ExecTarget::Pod {
                        name,
                        namespace: a.namespace,
                    },
                    _ => anyhow::bail!("say where: a POD, --node NAME or --outside"),
                };
                let data_dir = cluster::find::data_dir(a.data_dir.as_deref())?;
                let code = cluster::exec::exec(&data_dir, target, &a.command).await?;
                std::process::exit(code);
            }
            Command::Node(a) => node(a).await,
            Command::Proxy(a) => proxy(a).await,
            Command::Dns(a) => dns(a).await,
            Command::Speaker(a) => speaker(a).await,
            Command::Shim { .. } | Command::Pause { .. } => {
                unreachable!("handled before the runtime starts")
            }
            Command::Images(c) => images::run(c).await,
            Command::Agnhost(a) => {
                let opts = match a {
                    AgnhostCommand::Netexec {
                        http_port,
                        udp_port,
                        tcp_port,
                        body,
                    } => svcnet_agnhost::Options {
                        http_port: Some(http_port),
                        udp_port,
                        tcp_port,
                        body,
                    },
                    AgnhostCommand::ServeHostname { port } => svcnet_agnhost::Options {
                        http_port: Some(port),
                        udp_port: Some(port),
                        body: Some(
                            std::fs::read_to_string("/proc/sys/kernel/hostname")
                                .unwrap_or_default()
                                .trim()
                                .to_string(),
                        ),
                        ..Default::default()
                    },
                };
                svcnet_agnhost::run(opts).await.context("agnhost")
            }
        }
    })
}
