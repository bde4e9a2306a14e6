//! Connect timing: TCP connects from the client namespace to every path in turn (one connect
//! each per round, so the machine's drift hits them alike), each closed with a reset, the pod
//! connects made from the pod address by the client's policy routing; what the server saw and
//! the conntrack entry counts afterwards.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use svcnet_netns::NetNs;

use crate::topology::{
    endpoint_ip, node_routing, seen, Scratch, CT_REFERENCE, NODE_SERVER_SIDE, POD_CLIENT, POD_UID,
    PORT, REFERENCE, VIP,
};

/// Set this thread's fsuid (sockets created after take it as their owner uid); checked.
pub fn set_fsuid(uid: u32) -> std::io::Result<()> {
    use nix::unistd::{setfsuid, Uid};
    setfsuid(Uid::from_raw(uid));
    // An invalid uid changes nothing and returns the current one.
    let now = setfsuid(Uid::from_raw(u32::MAX)).as_raw();
    if now != uid {
        return Err(std::io::Error::other(format!(
            "setfsuid({uid}) left fsuid {now}"
        )));
    }
    Ok(())
}

/// A namespace's conntrack entry count (`net.netfilter.nf_conntrack_count`), if any.
pub fn ct_count(node: &NetNs) -> String {
    node.run(|| std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count"))
        .ok()
        .and_then(|r| r.ok())
        .map_or_else(|| "n/a".to_string(), |s| s.trim().to_string())
}

/// A connect target: whether from the pod address (the socket made under [`POD_UID`], so the
/// client's routing picks [`POD_CLIENT`] as its source), and the destination.
pub type Target = (bool, SocketAddr);

/// Connects from inside `client`, alternating over `targets` (one connect each in turn,
/// so any disturbance of the machine hits every target alike), until each target has `n`
/// or `limit` has passed; the connect times per target.
pub fn connects(
    client: &NetNs,
    targets: Vec<Target>,
    n: usize,
    limit: Duration,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let out = client.run(move || -> std::io::Result<Vec<Vec<Duration>>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let _enter = rt.enter();
        let mut out = vec![Vec::with_capacity(n); targets.len()];
        let start = Instant::now();
        for _ in 0..n {
            if start.elapsed() > limit {
                break;
            }
            for (k, (pod, addr)) in targets.iter().enumerate() {
                if *pod {
                    set_fsuid(POD_UID)?;
                }
                let t = Instant::now();
                let s = TcpStream::connect_timeout(addr, Duration::from_secs(2));
                let d = t.elapsed();
                if *pod {
                    set_fsuid(0)?;
                }
                let s = s?;
                if *pod {
                    // The source the kernel chose must be the pod address.
                    let src = s.local_addr()?.ip();
                    if src != IpAddr::V4(POD_CLIENT) {
                        return Err(std::io::Error::other(format!(
                            "a connect from the pod got source {src}, not {POD_CLIENT}"
                        )));
                    }
                }
                out[k].push(d);
                // Close with a reset: no TIME_WAIT, nothing left to skew the next connect.
                s.set_nonblocking(true)?;
                let s = tokio::net::TcpStream::from_std(s)?;
                s.set_zero_linger()?;
                drop(s);
            }
        }
        Ok(out)
    })??;
    Ok(out)
}

/// Connect times of one measurement.
#[derive(Default)]
pub struct Samples {
    /// To the ClusterIP from the pod address (inside the cluster CIDR: not masqueraded),
    /// through the node's rules.
    pub pod_cluster: Vec<Duration>,
    /// To the ClusterIP from the off-cluster address (masqueraded), through the node's rules.
    pub cluster: Vec<Duration>,
    /// To the pod IPs, through the node (its rules do not match).
    pub via_node: Vec<Duration>,
    /// To the pod, through the conntrack-only node (conntrack on, no rule on the path).
    pub via_ct: Vec<Duration>,
    /// To the pod, through a router namespace without any rule: "direct pod IP".
    pub reference: Vec<Duration>,
    /// Conntrack entries afterwards: node, conntrack-only node, router.
    pub entries: [String; 3],
    /// What the server accepted on the node's link during the measurement (warm-up
    /// included), against what was sent: (from the pod address, ClusterIP connects from
    /// it), (masqueraded, ClusterIP connects from the off-cluster address).
    pub seen_pod: (usize, usize),
    pub seen_masq: (usize, usize),
}

/// Rounds of (ClusterIP from the pod address, ClusterIP from the off-cluster address, pod IP
/// k through the node, pod through the conntrack-only node, pod through the rule-free
/// router) for k over the ten pod IPs, until `n` of each (or `limit`); without `vip`, no
/// ClusterIP (from either address).
pub fn measure(
    s: &Scratch,
    endpoints: usize,
    n: usize,
    limit: Duration,
    vip: bool,
) -> anyhow::Result<Samples> {
    let cluster = SocketAddr::new(IpAddr::V4(VIP), 80);
    let via_ct = SocketAddr::new(IpAddr::V4(CT_REFERENCE), PORT);
    let reference = SocketAddr::new(IpAddr::V4(REFERENCE), PORT);
    let mut targets: Vec<Target> = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..endpoints {
        if vip {
            targets.push((true, cluster));
            kinds.push(4);
            targets.push((false, cluster));
            kinds.push(0);
        }
        targets.push((false, SocketAddr::new(IpAddr::V4(endpoint_ip(i)), PORT)));
        kinds.push(1);
        targets.push((false, via_ct));
        kinds.push(2);
        targets.push((false, reference));
        kinds.push(3);
    }
    let before = seen();
    let mut sent = (0usize, 0usize);
    if vip {
        // The pod's ClusterIP connect must work before anything is measured.
        connects(&s.client, vec![(true, cluster)], 1, limit).map_err(|e| {
            anyhow::anyhow!(
                "ClusterIP {cluster} from the pod address {POD_CLIENT} (in the node: {}): {e}",
                node_routing(&s.node)
            )
        })?;
        sent.0 += 1;
    }
    // Warm up (ARP, routes, caches).
    let warm = connects(&s.client, targets.clone(), 5, limit)?;
    let rounds = n.div_ceil(endpoints);
    let got = connects(&s.client, targets, rounds, limit)?;
    let mut out = Samples::default();
    for (k, (w, v)) in kinds.into_iter().zip(warm.into_iter().zip(got)) {
        match k {
            4 => sent.0 += w.len() + v.len(),
            0 => sent.1 += w.len() + v.len(),
            _ => {}
        }
        match k {
            4 => out.pod_cluster.extend(v),
            0 => out.cluster.extend(v),
            1 => out.via_node.extend(v),
            2 => out.via_ct.extend(v),
            _ => out.reference.extend(v),
        }
    }
    out.entries = [ct_count(&s.node), ct_count(&s.ct_node), ct_count(&s.router)];
    // The server's accept loop may lag behind the client a little.
    let t = Instant::now();
    let mut now = seen();
    while (now.0 - before.0 < sent.0 || now.1 - before.1 < sent.1)
        && t.elapsed() < Duration::from_secs(2)
    {
        std::thread::sleep(Duration::from_millis(20));
        now = seen();
    }
    out.seen_pod = (now.0 - before.0, sent.0);
    out.seen_masq = (now.1 - before.1, sent.1);
    if vip && out.seen_pod.0 < sent.0 {
        eprintln!(
            "WARNING: the server saw {} connects from the pod address {POD_CLIENT} for {} ClusterIP connects from it: not all went through the node's DNAT unmasqueraded",
            out.seen_pod.0, sent.0
        );
    }
    if vip && out.seen_masq.0 < sent.1 {
        eprintln!(
            "WARNING: the server saw {} masqueraded connects (from {NODE_SERVER_SIDE}) for {} ClusterIP connects from the off-cluster address",
            out.seen_masq.0, sent.1
        );
    }
    Ok(out)
}

/// Say when the reference paths are not what they should be: the conntrack-only node must
/// track (its table turned conntrack on), the router must not.
pub fn check_conntrack(x: &Samples) {
    if x.entries[1] == "0" {
        eprintln!("WARNING: no conntrack entry in the conntrack-only node: its table did not turn conntrack on");
    }
    if x.entries[2] != "0" && x.entries[2] != "n/a" {
        eprintln!("WARNING: conntrack entries in the router: it is not rule-free");
    }
}

/// Before any rule: the pod address must reach a pod IP through the node and back (routing,
/// rp_filter), and the server must see it as the source. Then interleaved connects to the pod
/// IPs through the node from the pod address and from the off-cluster address, with no rule
/// and conntrack off in the node: their times (from the pod address, from the off-cluster
/// address), whose p50 ratio is what the pod source costs by itself (the uid switch is outside
/// the timed window; expected 1.00x).
pub fn pod_source_check(
    s: &Scratch,
    endpoints: usize,
    limit: Duration,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let before = seen();
    let first = SocketAddr::new(IpAddr::V4(endpoint_ip(0)), PORT);
    connects(&s.client, vec![(true, first)], 1, limit).map_err(|e| {
        anyhow::anyhow!(
            "the pod address {POD_CLIENT} does not reach the pod {first} through the node ({}): {e}",
            node_routing(&s.node)
        )
    })?;
    let mut targets: Vec<Target> = Vec::new();
    for i in 0..endpoints {
        let to = SocketAddr::new(IpAddr::V4(endpoint_ip(i)), PORT);
        targets.push((true, to));
        targets.push((false, to));
    }
    connects(&s.client, targets.clone(), 5, limit)?;
    let got = connects(&s.client, targets, 100, limit)?;
    let (mut pod, mut off) = (Vec::new(), Vec::new());
    for (k, v) in got.into_iter().enumerate() {
        if k % 2 == 0 {
            pod.extend(v);
        } else {
            off.extend(v);
        }
    }
    let sent = 1 + 5 * endpoints + pod.len();
    let t = Instant::now();
    while seen().0 - before.0 < sent && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = seen().0 - before.0;
    anyhow::ensure!(
        got >= sent,
        "the server saw {got} connects from the pod address {POD_CLIENT} for {sent} sent"
    );
    Ok((pod, off))
}
