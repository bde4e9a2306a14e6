//! The names and addresses of one cluster (one data directory): its namespaces' prefix, the
//! node network's addresses (control plane, nodes, outside client), the LoadBalancer pool on
//! that network, where the admin kubeconfigs are, and the hosts file naming them all. Only
//! names: `up` creates them, `down` removes them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The control plane's address on the node network (the API server's second listener, and
/// where its proxy dials kubelets and pods from).
pub const CP_IP: Ipv4Addr = Ipv4Addr::new(172, 28, 0, 2);
/// The outside client's address (`svcnet exec --outside`, the host forwarders' dialer).
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(172, 28, 0, 254);
/// The node network's prefix length (172.28.0.0/24).
pub const PREFIX_LEN: u8 = 24;
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

    /// The bridge's namespace.
    pub fn net(&self) -> String {
        format!("{}net", self.prefix)
    }
    /// The control plane's namespace.
    pub fn cp(&self) -> String {
        format!("{}cp", self.prefix)
    }
    /// The outside client's namespace.
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
    /// The admin kubeconfig for use inside the cluster (on a node, the outside client): the
    /// API server at the control plane's address, as kind's `get kubeconfig --internal`.
    pub fn internal_kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig-internal")
    }
    /// The cluster's /etc/hosts (`svcnet exec --node/--outside` bind-mount it).
    pub fn hosts(&self) -> PathBuf {
        self.data_dir.join("hosts")
    }
}

/// The name of the control plane's address in [`hosts_file`].
pub const CP_NAME: &str = "control-plane";
/// The name of the outside client's address in [`hosts_file`].
pub const OUTSIDE_NAME: &str = "outside";

/// The cluster's hosts file: a Debian machine's localhost lines, then every address of the
/// node network by name (the nodes as in a kubeadm cluster, where each node's name resolves,
/// and the control plane and outside client as kind names its containers).
pub fn hosts_file(nodes: usize) -> String {
    let mut s = String::from(
        "# svcnet up: the cluster's names, over /etc/hosts in `svcnet exec --node/--outside`.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n\n",
    );
    s.push_str(&format!("{CP_IP}\t{CP_NAME}\n"));
    for i in 1..=nodes {
        s.push_str(&format!(
            "{}\t{}\n",
            Layout::node_ip(i),
            Layout::node_name(i)
        ));
    }
    s.push_str(&format!("{OUTSIDE_IP}\t{OUTSIDE_NAME}\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_names_every_address() {
        let h = hosts_file(2);
        assert!(h.contains("127.0.0.1\tlocalhost\n"), "{h}");
        assert!(h.ends_with(
            "172.28.0.2\tcontrol-plane\n172.28.0.11\tnode-1\n172.28.0.12\tnode-2\n\
             172.28.0.254\toutside\n"
        ));
    }
}
