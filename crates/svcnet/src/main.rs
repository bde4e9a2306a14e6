//! `svcnet`: one binary, one subcommand per component. A thin front end: flags in, the crates
//! do the work.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

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
    /// Run the Kubernetes-compatible API server.
    Apiserver(ApiserverArgs),
    /// Run the controllers (EndpointSlices, Endpoints, Deployments, ReplicaSets, garbage
    /// collector, scheduler) against an API server (svcnet's or a real Kubernetes one).
    ControllerManager(ControllerManagerArgs),
    /// A test backend, like Kubernetes' agnhost: serves its pod IP / hostname over HTTP and
    /// echoes TCP and UDP (pods in svcnet run host processes; this gives them real servers).
    #[command(subcommand)]
    Agnhost(AgnhostCommand),
    /// Internal: the per-container shim the node agent starts (spec as JSON).
    #[command(hide = true)]
    Shim { spec: String },
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
    /// Controllers to run (comma-separated; default all): endpointslice, endpointslicemirroring, endpoints,
    /// replicaset, deployment, garbagecollector, scheduler; `none` runs the informers only.
    #[arg(long, value_delimiter = ',')]
    controllers: Vec<String>,
}

#[derive(Args)]
struct ApiserverArgs {
    /// Directory for the store, certificates, tokens and the admin kubeconfig.
    #[arg(long, default_value = "./.svcnet")]
    data_dir: PathBuf,
    /// Where objects are stored: sqlite://PATH (default: <data-dir>/state.db).
    #[arg(long)]
    store: Option<String>,
    /// The port to serve HTTPS on.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// The IP address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind_address: IpAddr,
    /// The address pods reach the API server at (the `kubernetes` Service's endpoint).
    #[arg(long)]
    advertise_address: Option<Ipv4Addr>,
    /// CIDR from which Service ClusterIPs are allocated.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: ipnet::Ipv4Net,
    /// Port range reserved for NodePort Services (LOW-HIGH, inclusive).
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Bearer tokens, in kube-apiserver's CSV format (token,user,uid,"group1,group2").
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Events the watch cache keeps; watches from older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 100_000)]
    watch_cache_size: usize,
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
    if let Some(s) = a.store {
        config.store =
            Some(svcnet_apiserver::config::StoreUrl::parse(&s).map_err(anyhow::Error::msg)?);
    }
    svcnet_apiserver::run(config).await.context("apiserver")
}

/// A client for the API server from an explicit kubeconfig or kube-rs' defaults.
async fn client(kubeconfig: Option<PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(&path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

async fn controller_manager(a: ControllerManagerArgs) -> anyhow::Result<()> {
    let client = client(a.kubeconfig).await?;
    let config = svcnet_controllers::Config {
        max_endpoints_per_slice: a.max_endpoints_per_slice,
        concurrent_service_endpoint_syncs: a.concurrent_service_endpoint_syncs,
        concurrent_deployment_syncs: a.concurrent_deployment_syncs,
        concurrent_replicaset_syncs: a.concurrent_replicaset_syncs,
        controllers: a.controllers,
        ..Default::default()
    };
    tokio::select! {
        _ = svcnet_controllers::run(client, config) => Ok(()),
        _ = svcnet_apiserver::server::wait_for_signal() => Ok(()),
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
    init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.command {
            Command::Apiserver(a) => apiserver(a).await,
            Command::ControllerManager(a) => controller_manager(a).await,
            Command::Shim { .. } => unreachable!("handled before the runtime starts"),
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
