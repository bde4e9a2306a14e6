//! The rules a measurement runs against: the proxy's own backends loading a synthetic state
//! (bounded in time), the reference table of empty nat chains (with or without the rule that
//! turns conntrack on), and the `--ablate` edits of the node's table.

use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use svcnet_bench::state::{add_service, nth, ready_endpoint};
use svcnet_netns::NetNs;
use svcnet_proxy::backend::Backend;
use svcnet_proxy::model::State;
use svcnet_proxy::server::{Mode, Options};

use crate::topology::{endpoint_ip, CLUSTER_CIDR, PORT, VIP};

/// The reference table: the proxy's nat hooks, empty (and, for "conntrack only", a chain
/// nothing jumps to whose one rule uses conntrack, which turns it on). Loaded into the
/// conntrack-only node for the whole run; without its `ct` rule, into the node for one
/// measurement before the proxy's rules.
pub const CT_TABLE: &str = "svcnet-bench-ct";

/// `nft -f -` with `script` inside `ns` (the proxy's own `nftables::apply`).
pub fn nft(ns: &NetNs, script: &str) -> anyhow::Result<()> {
    Ok(svcnet_proxy::nftables::apply(Some(ns.name()), script)?)
}

/// The reference table, loaded into a namespace; deleted on drop (early returns, panics).
pub struct CtOnly<'a> {
    node: &'a NetNs,
    loaded: bool,
}

impl<'a> CtOnly<'a> {
    pub fn load(node: &'a NetNs, conntrack: bool) -> anyhow::Result<Self> {
        // (`nft -f` is atomic; the guard exists first all the same.)
        let g = CtOnly { node, loaded: true };
        // Never jumped to: no packet sees its rule; its loading turns conntrack on.
        let ct_on = if conntrack {
            "\tchain ct-on { ct state established accept; }\n"
        } else {
            ""
        };
        nft(
            node,
            &format!(
                "table ip {CT_TABLE} {{\n\
                 \tchain nat-prerouting {{ type nat hook prerouting priority -100; policy accept; }}\n\
                 \tchain nat-output {{ type nat hook output priority -100; policy accept; }}\n\
                 \tchain nat-postrouting {{ type nat hook postrouting priority 100; policy accept; }}\n\
                 {ct_on}}}\n"
            ),
        )?;
        Ok(g)
    }

    /// Delete the table, and check it is gone.
    pub fn delete(mut self) -> anyhow::Result<()> {
        nft(
            self.node,
            &format!("table ip {CT_TABLE} {{}}\ndelete table ip {CT_TABLE}\n"),
        )?;
        self.loaded = false;
        let listed = self
            .node
            .command("nft")
            .args(["list", "table", "ip", CT_TABLE])
            .output()?;
        anyhow::ensure!(
            !listed.status.success(),
            "table {CT_TABLE} still in {}",
            self.node.name()
        );
        Ok(())
    }
}

impl Drop for CtOnly<'_> {
    fn drop(&mut self) {
        if self.loaded {
            let _ = nft(
                self.node,
                &format!("table ip {CT_TABLE} {{}}\ndelete table ip {CT_TABLE}\n"),
            );
        }
    }
}

/// `services` Services × `endpoints` endpoints; the last (by name) is the measured one. The
/// other Services' endpoints are addresses nothing answers on; they are never connected to.
/// The measured Service sorts last (`bench/zz-measured`), iptables' worst case.
pub fn state(services: usize, endpoints: usize) -> State {
    let mut st = State::default();
    let ready = |ip| ready_endpoint(ip, PORT, "node");
    add_service(
        &mut st,
        "bench",
        "zz-measured",
        VIP,
        (0..endpoints).map(|i| ready(endpoint_ip(i))).collect(),
    );
    for i in 0..services.saturating_sub(1) {
        let eps = (0..endpoints)
            .map(|e| ready(nth(Ipv4Addr::new(10, 128, 0, 0), i * endpoints + e)))
            .collect();
        let vip = nth(Ipv4Addr::new(10, 96, 0, 10), i);
        add_service(&mut st, "bench", &format!("svc-{i:05}"), vip, eps);
    }
    st
}

pub fn options(mode: Mode, node: &NetNs) -> Options {
    Options {
        mode,
        netns: Some(node.name().to_string()),
        node_name: "node".into(),
        node_ips: vec!["198.51.100.1".parse().unwrap()],
        cluster_cidr: Some(CLUSTER_CIDR.parse().unwrap()),
        metrics_addr: None,
        health_bind: None,
        settings: Default::default(),
        userspace_algorithm: Default::default(),
    }
}

/// `backend.full(state)` on a thread, bounded: on timeout the loader processes in the node
/// namespace are killed and None is returned (the backend is lost with its thread).
pub fn load(
    mut backend: Box<dyn Backend>,
    state: State,
    node: &NetNs,
    timeout: Duration,
) -> (Option<Box<dyn Backend>>, Result<Duration, String>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = backend
            .full(&state)
            .map(|_| t.elapsed())
            .map_err(|e| e.to_string());
        let _ = tx.send((backend, r));
    });
    match rx.recv_timeout(timeout) {
        Ok((b, r)) => (Some(b), r),
        Err(_) => {
            for pid in NetNs::pids(node.name()) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
            // Let the thread see its child die.
            let _ = rx.recv_timeout(Duration::from_secs(30));
            (
                None,
                Err(format!("load took more than {} s", timeout.as_secs())),
            )
        }
    }
}

/// `nft list table ip svcnet` in `ns`.
pub fn listing(ns: &NetNs) -> anyhow::Result<String> {
    let out = ns
        .command("nft")
        .args(["list", "table", "ip", svcnet_proxy::nftables::TABLE])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "nft list table in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `--ablate` edits: a label, the chains of `ip svcnet` flushed, whether ClusterIP still
/// works (and is measured).
pub const ABLATIONS: [(&str, &[&str], bool); 4] = {
    use svcnet_proxy::nftables::*;
    [
        (
            "(a) filter base chains flushed (filter-prerouting, -input, -forward, -output, -output-post-dnat)",
            &[FILTER_PREROUTING, FILTER_INPUT, FILTER_FORWARD, FILTER_OUTPUT, FILTER_OUTPUT_POST_DNAT],
            true,
        ),
        ("(b) nat-postrouting flushed", &[NAT_POSTROUTING], true),
        ("(c) nat-prerouting and nat-output flushed (no ClusterIP)", &[NAT_PREROUTING, NAT_OUTPUT], false),
        (
            "(d) all eight base chains flushed (no ClusterIP)",
            &[
                FILTER_PREROUTING,
                FILTER_INPUT,
                FILTER_FORWARD,
                FILTER_OUTPUT,
                FILTER_OUTPUT_POST_DNAT,
                NAT_POSTROUTING,
                NAT_PREROUTING,
                NAT_OUTPUT,
            ],
            false,
        ),
    ]
};
