//! The node agent proper (`svcnet node`, and one per node in `svcnet up`): registers the Node
//! and keeps it Ready, gets a pod CIDR, runs a [`pods::Worker`] for every pod bound to it, serves
//! the kubelet API (logs, exec) on the node's address, and keeps routes to the other nodes.

pub mod image_gc;
pub mod images;
pub mod node;
pub mod pods;
pub mod status;
pub mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use crate::kubelet_api::portforward::PodSandbox;
use crate::kubelet_api::{ContainerHandle, PodRuntime};
use crate::layout;
use crate::sandbox::{Ipam, Sandbox};

/// How a node agent is set up.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub node_name: String,
    /// The node's network namespace (`None`: the agent's own).
    pub node_netns: Option<String>,
    /// The node's InternalIP (the kubelet API listens there).
    pub node_ip: Ipv4Addr,
    /// Where pods' state, logs and the IPAM file live.
    pub data_dir: PathBuf,
    pub kubelet_port: u16,
    /// Who may call the kubelet API (the API server, by its bearer token).
    pub kubelet_auth: crate::kubelet_api::Authenticator,
    /// The cluster's facts: the nameserver and search path of pods with dnsPolicy ClusterFirst
    /// (`--cluster-dns`, `--cluster-domain`).
    pub network: svcnet_cluster::ClusterNetwork,
    /// A fixed pod CIDR (`--pod-cidr`); `None`: wait for the node IPAM controller.
    pub pod_cidr: Option<Ipv4Net>,
    /// The svcnet binary, for container shims.
    pub exe: PathBuf,
    /// How often the Node's status is posted.
    pub heartbeat: Duration,
    pub labels: BTreeMap<String, String>,
    /// Prefix of the network namespaces of this agent's pods (so `svcnet down` finds them).
    pub netns_prefix: String,
    /// Routes the agent keeps in the node's namespace besides those to other nodes' pods
    /// (`ip route` arguments), put back when they go (a link flap deletes the routes through
    /// the link).
    pub routes: Vec<String>,
    /// The image store shared by the host's nodes (`svcnet up`: `<data-dir>/images`); `None`:
    /// pods without `runtimeClassName: svcnet-process` cannot run.
    pub image_store: Option<PathBuf>,
    /// Registry mirrors, auth and TLS (k3s's `registries.yaml`).
    pub registries: svcnet_images::Registries,
    /// The kubelet's image GC policy (`--image-gc-high-threshold`, `--image-gc-low-threshold`,
    /// `--image-minimum-gc-age`).
    pub image_gc: svcnet_images::ImageGcPolicy,
}

/// A pod as the kubelet API sees it.
struct Registered {
    netns: String,
    hostname: String,
    binds: Vec<(PathBuf, PathBuf)>,
    /// name → (state dir, restart count, running)
    containers: HashMap<String, (PathBuf, i32, bool)>,
    env: HashMap<String, Vec<(String, String)>>,
    /// A started host-process container's binds (the pod's files and its volumes), for exec.
    container_binds: HashMap<String, Vec<(PathBuf, PathBuf)>>,
    workdirs: HashMap<String, Option<PathBuf>>,
}

/// What every pod worker shares.
pub struct Shared {
    pub client: Client,
    pub cfg: AgentConfig,
    pub cidr: Ipv4Net,
    pub ipam: Mutex<Ipam>,
    services: Store<Service>,
    /// ConfigMaps and Secrets pods consume (env, volumes); see [`crate::objects`].
    config_maps: Store<ConfigMap>,
    secrets: Store<Secret>,
    registry: Mutex<HashMap<(String, String), Registered>>,
    pub connector: Arc<dyn crate::probe::Connector>,
    /// Pulls into the host's image store (`None`: no store configured or it cannot be opened).
    pub images: Option<svcnet_images::Puller>,
    /// Events as the kubelet records them (`source.component: kubelet`, `host`: the node).
    pub recorder: svcnet_informer::events::Recorder,
    /// Serialises this node's writes of its image refs (`image_gc`).
    pub image_refs: Mutex<()>,
}

impl Shared {
    pub fn services(&self) -> Vec<Service> {
        self.services
            .state()
            .iter()
            .map(|s| (**s).clone())
            .collect()
    }

    /// PATH for containers that do not set one: the svcnet binary's directory first, so
    /// `command: ["svcnet", "agnhost", ...]` works.
    pub fn path_env(&self) -> String {
        let dir = self
            .cfg
            .exe
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!("{dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    }

    fn register(
        &self,
        ns: &str,
        name: &str,
        sb: Option<&Sandbox>,
        pod: &Pod,
        containers: pods::ContainerList,
    ) {
        let Some(sb) = sb else { return };
        let mut r = self.registry.lock().expect("registry lock");
        let e = r
            .entry((ns.to_string(), name.to_string()))
            .or_insert_with(|| Registered {
                netns: sb.netns.clone(),
                hostname: pods::hostname(pod),
                binds: layout::etc_binds(&sb.dir),
                containers: HashMap::new(),
                env: HashMap::new(),
                container_binds: HashMap::new(),
                workdirs: pod
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter())
                    .map(|c| (c.name.clone(), c.working_dir.clone().map(PathBuf::from)))
                    .collect(),
            });
        e.containers = containers
            .into_iter()
            .map(|(n, d, r, run)| (n, (d, r, run)))
            .collect();
    }

    fn set_env(
        &self,
        ns: &str,
        name: &str,
        container: &str,
        env: Vec<(String, String)>,
        binds: Vec<(PathBuf, PathBuf)>,
    ) {
        if let Some(e) = self
            .registry
            .lock()
            .expect("registry lock")
            .get_mut(&(ns.to_string(), name.to_string()))
        {
            e.env.insert(container.to_string(), env);
            e.container_binds.insert(container.to_string(), binds);
        }
    }

    fn unregister(&self, ns: &str, name: &str) {
        self.registry
            .lock()
            .expect("registry lock")
            .remove(&(ns.to_string(), name.to_string()));
    }
}

impl crate::objects::Objects for Shared {
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.config_maps
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))
    }
}

/// The kubelet API's view of this node's pods.
struct Runtime(Arc<Shared>);

impl PodRuntime for Runtime {
    fn container(&self, namespace: &str, pod: &str, container: &str) -> Option<ContainerHandle> {
        let r = self.0.registry.lock().expect("registry lock");
        let p = r.get(&(namespace.to_string(), pod.to_string()))?;
        let (dir, restarts, running) = p.containers.get(container)?.clone();
        Some(ContainerHandle {
            log_path: layout::container_log(&dir, restarts),
            previous_log_path: (restarts > 0).then(|| layout::container_log(&dir, restarts - 1)),
            netns: p.netns.clone(),
            hostname: Some(p.hostname.clone()),
            binds: p.container_binds.get(container).unwrap_or(&p.binds).clone(),
            env: p.env.get(container).cloned().unwrap_or_default(),
            workdir: p.workdirs.get(container).cloned().flatten(),
            running,
            oci: crate::container::OciHandle::load(&dir),
            dir,
        })
    }

    fn sandbox(&self, namespace: &str, pod: &str) -> Option<PodSandbox> {
        let r = self.0.registry.lock().expect("registry lock");
        let p = r.get(&(namespace.to_string(), pod.to_string()))?;
        Some(PodSandbox {
            netns: p.netns.clone(),
            running: p.containers.values().any(|(_, _, running)| *running),
        })
    }
}

/// Run the agent until the process ends (pods keep running when it stops; a new agent adopts them).
pub async fn run(client: Client, cfg: AgentConfig) -> anyhow::Result<()> {
    let node_ns = match &cfg.node_netns {
        Some(n) => Some(svcnet_netns::NetNs::open(n)?),
        None => None,
    };
    // The API server may be busy or just started: a few retries before giving up.
    let mut tries = 0;
    loop {
        let r = match node::register(&client, &cfg).await {
            Ok(()) => node::post_status(&client, &cfg, false)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => break,
            Err(e) if tries < 20 => {
                tries += 1;
                tracing::debug!(error = %e, "registering the node; retrying");
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
            }
            Err(e) => return Err(e),
        }
    }
    let cidr = node::wait_for_pod_cidr(&client, &cfg).await?;
    crate::sandbox::prepare_node(node_ns.as_ref(), cidr)?;
    layout::prepare_node_dir(&cfg.data_dir)?;
    let ipam = Ipam::open(cidr, &layout::ipam_file(&cfg.data_dir))?;

    // Services, for the pods' environment variables.
    let services = svcnet_informer::reflector::spawn(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        "service",
    );

    let config_maps = svcnet_informer::reflector::spawn(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default(),
        "configmap",
    );
    let secrets = svcnet_informer::reflector::spawn(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default(),
        "secret",
    );
    // A pod must not see a ConfigMap as missing because the first list has not arrived.
    let ready = async {
        let _ = config_maps.wait_until_ready().await;
        let _ = secrets.wait_until_ready().await;
    };
    if tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .is_err()
    {
        tracing::warn!("ConfigMaps or Secrets not listed within 30s; starting pods anyway");
    }

    let connector: Arc<dyn crate::probe::Connector> = match &cfg.node_netns {
        Some(n) => Arc::new(crate::probe::NetnsConnector { netns: n.clone() }),
        None => Arc::new(crate::probe::DirectConnector),
    };
    let images = match &cfg.image_store {
        Some(root) => match svcnet_images::Store::open(root) {
            Ok(store) => Some(svcnet_images::Puller::new(
                store,
                cfg.registries.clone(),
                svcnet_images::PullOptions::default(),
            )),
            Err(e) => {
                tracing::error!(error = %e, "opening the image store; pods from images cannot run");
                None
            }
        },
        None => None,
    };
    let recorder = svcnet_informer::events::Recorder::with_host(
        client.clone(),
        "kubelet",
        Some(cfg.node_name.clone()),
    );
    let shared = Arc::new(Shared {
        images,
        recorder,
        client: client.clone(),
        cfg: cfg.clone(),
        cidr,
        ipam: Mutex::new(ipam),
        services,
        config_maps,
        secrets,
        registry: Mutex::new(HashMap::new()),
        connector,
        image_refs: Mutex::new(()),
    });
    tokio::spawn(image_gc::run(shared.clone()));

    // The kubelet API, on the node's address, inside the node's namespace.
    let addr = SocketAddr::from((cfg.node_ip, cfg.kubelet_port));
    let listener = svcnet_netns::tokio_listener(cfg.node_netns.as_deref(), addr)?;
    let rt: Arc<dyn PodRuntime> = Arc::new(Runtime(shared.clone()));
    let auth = cfg.kubelet_auth.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::kubelet_api::serve(listener, auth, rt).await {
            tracing::error!(error = %e, "kubelet API stopped");
        }
    });

    // Routes to the other nodes' pods, and the node's own.
    tokio::spawn(node::sync_routes(
        client.clone(),
        cfg.node_netns.clone(),
        Some(cfg.node_name.clone()),
        cfg.routes.clone(),
    ));

    // Heartbeat (the loop below retries a failed one).
    if let Err(e) = node::post_status(&client, &cfg, true).await {
        tracing::warn!(error = %e, "node status");
    }
    let (c2, cfg2) = (client.clone(), cfg.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(cfg2.heartbeat).await;
            if let Err(e) = node::post_status(&c2, &cfg2, true).await {
                tracing::warn!(error = %e, "node status");
            }
        }
    });

    run_pods(shared).await
}

/// Watch this node's pods; one worker each.
async fn run_pods(shared: Arc<Shared>) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.cfg.node_name));
    let mut workers: HashMap<String, watch::Sender<Option<Arc<Pod>>>> = HashMap::new();
    let mut seen_in_list: Vec<String> = Vec::new();
    let mut stream = Box::pin(watcher(api, cfg).default_backoff());
    let dispatch = |pod: Pod, workers: &mut HashMap<String, watch::Sender<Option<Arc<Pod>>>>| {
        let Some(uid) = pod.uid() else { return };
        let pod = Arc::new(pod);
        if let Some(tx) = workers.get(&uid) {
            let _ = tx.send(Some(pod));
            return;
        }
        let (tx, rx) = watch::channel(Some(pod));
        if let Some(w) = pods::Worker::new(shared.clone(), rx) {
            tokio::spawn(w.run());
            workers.insert(uid, tx);
        }
    };
    while let Some(ev) = stream.try_next().await? {
        match ev {
            Event::Apply(p) => dispatch(p, &mut workers),
            Event::Delete(p) => {
                if let Some(tx) = p.uid().and_then(|u| workers.remove(&u)) {
                    let _ = tx.send(None);
                }
            }
            Event::Init => seen_in_list.clear(),
            Event::InitApply(p) => {
                seen_in_list.extend(p.uid());
                dispatch(p, &mut workers);
            }
            Event::InitDone => {
                // Pods deleted while we were away: stop what they left.
                for (uid, tx) in workers.iter() {
                    if !seen_in_list.contains(uid) {
                        let _ = tx.send(None);
                    }
                }
                workers.retain(|uid, _| seen_in_list.contains(uid));
                if let Ok(entries) = std::fs::read_dir(layout::pods_dir(&shared.cfg.data_dir)) {
                    for e in entries.flatten() {
                        let uid = e.file_name().to_string_lossy().to_string();
                        if !workers.contains_key(&uid) {
                            tracing::info!(%uid, "removing what a deleted pod left behind");
                            pods::cleanup_orphan(&shared, &uid);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
