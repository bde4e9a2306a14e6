//! Pod sandboxes: a network namespace per pod, linked to the node by a veth pair.
//!
//! Addressing (routed, as Calico does it, rather than a node bridge): the pod's `eth0` has its IP
//! from the node's podCIDR with the CIDR's prefix, and a default route via the CIDR's first
//! address; the node side of the veth has no address of its own but answers ARP for everything
//! (proxy_arp) and the node routes `<podIP>/32` to it. Pod-to-pod traffic on one node, pod to
//! Service and back all cross the node's IP stack, where the service proxy's rules are — no
//! bridge, so no br_netfilter and no un-DNAT bypass for clients on the same L2 segment.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use svcnet_netns::{NetNs, NetnsError};

use crate::layout;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no free address left in the pod CIDR {0}")]
    AddressesExhausted(Ipv4Net),
    #[error("setting up the pod network: {0}")]
    NetworkFailed(#[from] NetnsError),
    #[error("writing pod files under {0}: {1}")]
    FilesFailed(PathBuf, std::io::Error),
    #[error("reading or writing the address allocations in {0}: {1}")]
    IpamFailed(PathBuf, String),
}

pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// Pod addresses from the node's podCIDR, persisted so a restarted agent keeps them.
/// `.0` (network), `.1` (the pods' gateway) and the broadcast address are never handed out.
pub struct Ipam {
    cidr: Ipv4Net,
    path: PathBuf,
    /// address → pod UID
    used: BTreeMap<Ipv4Addr, String>,
}

impl Ipam {
    pub fn open(cidr: Ipv4Net, path: &Path) -> Result<Ipam> {
        let used = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| SandboxError::IpamFailed(path.into(), e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(SandboxError::IpamFailed(path.into(), e.to_string())),
        };
        Ok(Ipam {
            cidr,
            path: path.into(),
            used,
        })
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 1)
    }

    /// The address held by `uid`, or a new one.
    pub fn allocate(&mut self, uid: &str) -> Result<Ipv4Addr> {
        self.allocate_preferring(uid, None)
    }

    /// [`Ipam::allocate`], giving `preferred` (the pod's address before its sandbox was lost)
    /// when it is in the range and free.
    pub fn allocate_preferring(
        &mut self,
        uid: &str,
        preferred: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        if let Some((ip, _)) = self.used.iter().find(|(_, u)| *u == uid) {
            return Ok(*ip);
        }
        let first = u32::from(self.cidr.network()) + 2;
        let last = u32::from(self.cidr.broadcast()).saturating_sub(1);
        let ip = preferred
            .filter(|ip| (first..=last).contains(&u32::from(*ip)))
            .into_iter()
            .chain((first..=last).map(Ipv4Addr::from))
            .find(|ip| !self.used.contains_key(ip))
            .ok_or(SandboxError::AddressesExhausted(self.cidr))?;
        self.used.insert(ip, uid.to_string());
        self.save()?;
        Ok(ip)
    }

    pub fn release(&mut self, uid: &str) -> Result<()> {
        let before = self.used.len();
        self.used.retain(|_, u| u != uid);
        if self.used.len() != before {
            self.save()?;
        }
        Ok(())
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec(&self.used).expect("serializable");
        layout::write_file(&self.path, &bytes)
            .map_err(|e| SandboxError::IpamFailed(self.path.clone(), e.to_string()))
    }
}

/// What a pod's sandbox is, persisted next to it so a restarted agent can re-adopt it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Network namespace name.
    pub netns: String,
    /// The node side of the veth.
    pub host_veth: String,
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    /// Where resolv.conf, hosts and hostname live.
    pub dir: PathBuf,
}

/// The files a pod's processes see as /etc/resolv.conf, /etc/hosts and /etc/hostname.
#[derive(Clone, Debug, Default)]
pub struct PodFiles {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
    pub hostname: String,
    /// Extra /etc/hosts lines (`ip name...`), e.g. from `hostAliases`.
    pub host_aliases: Vec<String>,
    /// `<hostname>.<subdomain>.<ns>.svc.<domain>` when the pod has a subdomain.
    pub fqdn: Option<String>,
}

impl PodFiles {
    pub fn resolv_conf(&self) -> String {
        let mut s = String::new();
        if !self.searches.is_empty() {
            s.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            s.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }

    /// As the kubelet writes it: localhost lines, then the pod's own address and names.
    pub fn hosts(&self, ip: Ipv4Addr) -> String {
        let mut s = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        match &self.fqdn {
            Some(f) => s.push_str(&format!("{ip}\t{f}\t{}\n", self.hostname)),
            None => s.push_str(&format!("{ip}\t{}\n", self.hostname)),
        }
        if !self.host_aliases.is_empty() {
            s.push_str("\n# Entries added by HostAliases.\n");
            for l in &self.host_aliases {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

/// Prepare the node for pods of `cidr`: forwarding on, and the pods' gateway (the CIDR's first
/// address) as a local address of the node (on `lo`; Linux answers ARP for any local address,
/// so the pods' default route resolves through their veth).
pub fn prepare_node(node_ns: Option<&NetNs>, cidr: Ipv4Net) -> Result<()> {
    let gateway = Ipv4Addr::from(u32::from(cidr.network()) + 1);
    svcnet_netns::ip_batch(
        node_ns.map(|n| n.name()),
        &format!(
            "addr replace {gateway}/32 dev lo
"
        ),
    )?;
    let settings = [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
    ];
    match node_ns {
        Some(n) => n.sysctls(&settings)?,
        None => svcnet_netns::sysctls_here(&settings)?,
    }
    Ok(())
}

/// A name of at most 15 bytes (an interface name) that identifies `uid`.
pub fn veth_name(uid: &str) -> String {
    let hex: String = uid
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(11)
        .collect();
    format!("veth{hex}")
}

/// What a pod's sandbox is made from.
pub struct SandboxSpec<'a> {
    pub netns: &'a str,
    pub uid: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub ip: Ipv4Addr,
    pub cidr: Ipv4Net,
    pub files: &'a PodFiles,
    pub dir: &'a Path,
}

/// Create (or re-create) a pod's sandbox: namespace, veth, address, routes, files.
/// `node_ns` is the node's own namespace (`None` = the caller's).
pub fn create(spec: &SandboxSpec, node_ns: Option<&NetNs>) -> Result<Sandbox> {
    let SandboxSpec {
        netns: netns_name,
        uid,
        namespace,
        name,
        ip,
        cidr,
        files,
        dir,
    } = *spec;
    layout::create_dir(dir).map_err(|e| SandboxError::FilesFailed(dir.into(), e))?;
    let write = |f: &str, s: String| {
        layout::write_file_mode(&dir.join(f), s.as_bytes(), layout::POD_FILE_MODE)
            .map_err(|e| SandboxError::FilesFailed(dir.join(f), e))
    };
    write(layout::RESOLV_CONF, files.resolv_conf())?;
    write(layout::HOSTS, files.hosts(ip))?;
    write(layout::HOSTNAME, format!("{}\n", files.hostname))?;

    let gateway = Ipv4Addr::from(u32::from(cidr.network()) + 1);
    let host_veth = veth_name(uid);
    let pod = NetNs::create(netns_name)?;
    // Start clean if a previous attempt left a half-made veth behind.
    let _ = svcnet_netns::ip_batch(
        node_ns.map(|n| n.name()),
        &format!("link del {host_veth}\n"),
    );
    svcnet_netns::ip_batch(
        node_ns.map(|n| n.name()),
        &format!(
            "link add {host_veth} type veth peer name eth0 netns {netns_name}\n\
             link set {host_veth} up\n\
             route replace {ip}/32 dev {host_veth}\n"
        ),
    )?;
    let sysctl_dir = format!("net.ipv4.conf.{host_veth}");
    let node_sysctls = [
        (format!("{sysctl_dir}.proxy_arp"), "1"),
        (format!("{sysctl_dir}.forwarding"), "1"),
    ];
    let node_sysctls: Vec<(&str, &str)> =
        node_sysctls.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    match node_ns {
        Some(n) => n.sysctls(&node_sysctls)?,
        None => svcnet_netns::sysctls_here(&node_sysctls)?,
    }
    pod.ip_batch(&format!(
        "link set eth0 up\n\
         addr add {ip}/{prefix} dev eth0\n\
         route add default via {gateway} dev eth0 onlink\n",
        prefix = cidr.prefix_len()
    ))?;
    Ok(Sandbox {
        uid: uid.into(),
        namespace: namespace.into(),
        name: name.into(),
        netns: netns_name.into(),
        host_veth,
        ip,
        gateway,
        prefix_len: cidr.prefix_len(),
        dir: dir.into(),
    })
}

/// Tear a sandbox down: processes in it are killed, the namespace (and so the veth) and the
/// node's route go away, its files are removed.
pub fn destroy(sb: &Sandbox, node_ns: Option<&NetNs>) -> Result<()> {
    NetNs::delete(&sb.netns)?;
    let _ = svcnet_netns::ip_batch(
        node_ns.map(|n| n.name()),
        &format!("route del {}/32\n", sb.ip),
    );
    let _ = std::fs::remove_dir_all(&sb.dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use svcnet_netns::testing::{can_run, unique_name, NetnsGuard, ScratchNetns};

    use super::*;

    #[test]
    fn ipam_skips_network_gateway_broadcast_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let cidr: Ipv4Net = "10.244.1.0/30".parse().unwrap();
        let path = dir.path().join("ipam.json");
        let mut ipam = Ipam::open(cidr, &path).unwrap();
        assert_eq!(ipam.gateway(), Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(
            ipam.allocate("a").unwrap(),
            Ipv4Addr::new(10, 244, 1, 2),
            "same pod, same address"
        );
        assert_eq!(
            ipam.allocate_preferring("a", Some(Ipv4Addr::new(10, 244, 1, 3)))
                .unwrap(),
            Ipv4Addr::new(10, 244, 1, 2),
            "an address held is kept"
        );
        assert!(matches!(
            ipam.allocate("b"),
            Err(SandboxError::AddressesExhausted(_))
        ));
        let mut again = Ipam::open(cidr, &path).unwrap();
        assert_eq!(again.in_use(), 1, "allocations survive a restart");
        again.release("a").unwrap();
        assert_eq!(again.allocate("b").unwrap(), Ipv4Addr::new(10, 244, 1, 2));
    }

    #[test]
    fn ipam_gives_a_pod_its_previous_address_when_free() {
        let dir = tempfile::tempdir().unwrap();
        let cidr: Ipv4Net = "10.244.1.0/29".parse().unwrap();
        let mut ipam = Ipam::open(cidr, &dir.path().join("ipam.json")).unwrap();
        let ip = |d| Some(Ipv4Addr::new(10, 244, 1, d));
        assert_eq!(ipam.allocate_preferring("a", ip(5)).ok(), ip(5));
        assert_eq!(ipam.allocate_preferring("b", ip(5)).ok(), ip(2), "taken");
        assert_eq!(
            ipam.allocate_preferring("c", ip(7)).ok(),
            ip(3),
            "broadcast"
        );
        assert_eq!(ipam.allocate_preferring("d", ip(9)).ok(), ip(4), "outside");
    }

    #[test]
    fn files_as_the_seeds_show() {
        let f = PodFiles {
            nameservers: vec!["10.96.0.10".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
                "cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
            hostname: "web-0".into(),
            host_aliases: vec![],
            fqdn: Some("web-0.web.default.svc.cluster.local".into()),
        };
        assert_eq!(
            f.resolv_conf(),
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        assert!(f
            .hosts("10.244.1.5".parse().unwrap())
            .ends_with("10.244.1.5\tweb-0.web.default.svc.cluster.local\tweb-0\n"));
        assert_eq!(
            veth_name("3f1c0a9e-1b2c-4d5e-8f90-123456789abc"),
            "veth3f1c0a9e1b2"
        );
        assert!(veth_name("3f1c0a9e-1b2c-4d5e-8f90-123456789abc").len() <= 15);
    }

    #[tokio::test]
    async fn sandbox_in_a_test_node_namespace() {
        if !can_run(&[]) {
            return;
        }
        let node = ScratchNetns::new("node").unwrap();
        // The sandbox makes the pod's namespace; the guard removes it however the test ends.
        let pod_name = unique_name("pod");
        let _pod = NetnsGuard(vec![pod_name.clone()]);
        let dir = tempfile::tempdir().unwrap();
        let cidr: Ipv4Net = "10.244.7.0/24".parse().unwrap();
        prepare_node(Some(&node), cidr).unwrap();
        let files = PodFiles {
            hostname: "p".into(),
            nameservers: vec!["10.96.0.10".into()],
            ..Default::default()
        };
        let pod_dir = dir.path().join("p");
        let spec = SandboxSpec {
            netns: &pod_name,
            uid: "uid-1",
            namespace: "default",
            name: "p",
            ip: "10.244.7.2".parse().unwrap(),
            cidr,
            files: &files,
            dir: &pod_dir,
        };
        let sb = create(&spec, Some(&node)).unwrap();
        // The node reaches the pod at its address; the pod's default route goes via the node.
        let listener = NetNs::open(&pod_name)
            .unwrap()
            .tcp_listen("10.244.7.2:8080".parse().unwrap())
            .unwrap();
        let l = tokio::net::TcpListener::from_std(listener).unwrap();
        let accept = tokio::spawn(async move { l.accept().await.unwrap().1 });
        let _c = node
            .tcp_connect(
                "10.244.7.2:8080".parse().unwrap(),
                std::time::Duration::from_secs(2),
            )
            .await
            .unwrap();
        let peer = accept.await.unwrap();
        assert_eq!(
            peer.ip().to_string(),
            "10.244.7.1",
            "the node speaks from the pods' gateway address"
        );
        destroy(&sb, Some(&node)).unwrap();
        assert!(!NetNs::exists(&pod_name));
        let routes = String::from_utf8(node.exec(&["ip", "route"]).unwrap().stdout).unwrap();
        assert!(!routes.contains("10.244.7.2"), "{routes}");
    }
}
