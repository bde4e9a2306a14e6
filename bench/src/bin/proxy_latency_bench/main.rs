//! First-packet latency through a ClusterIP (issue 5 (a)): the time of a TCP `connect()` from a
//! client namespace through a node namespace holding the proxy's rules to a server namespace,
//! with 10 / 1k / 10k / 30k Services present (10 endpoints each), in nftables and iptables
//! modes, compared connect by connect with a pod IP through the same node, through a
//! conntrack-only node and through a rule-free router ("direct pod IP", the reference). How the
//! paths, baselines and `--ablate` work: bench/README.md. The rooms: `topology` builds the
//! namespaces and the server, `rules` loads what is measured against, `measure` times the
//! connects, `report` prints.
//!
//! `cargo build --release -p svcnet-bench --bin proxy-latency-bench &&
//!  ./target/release/proxy-latency-bench [--sizes 10,1000,10000,30000] [--connects 2000]
//!  [--max-iptables 10000] [--ablate]`

mod measure;
mod report;
mod rules;
mod topology;

use std::time::Duration;

use clap::Parser;
use svcnet_proxy::backend::Backend;
use svcnet_proxy::server::{self, Mode};

use measure::{check_conntrack, measure, pod_source_check, Samples};
use report::{describe, r50, Point, Run};
use rules::{listing, load, nft, options, state, CtOnly, ABLATIONS, CT_TABLE};
use topology::{Scratch, POD_CLIENT};

#[derive(Parser)]
struct Args {
    /// Numbers of Services present (the measured one included).
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000,30000")]
    sizes: Vec<usize>,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Connects measured per point (and as many to the pod IP, interleaved).
    #[arg(long, default_value_t = 2000)]
    connects: usize,
    /// Skip iptables points with more Services than this.
    #[arg(long, default_value_t = 10_000)]
    max_iptables: usize,
    /// Give up a rule load after this many seconds (that mode's larger sizes are skipped).
    #[arg(long, default_value_t = 600)]
    load_timeout: u64,
    /// Stop measuring one point after this many seconds (fewer connects are reported).
    #[arg(long, default_value_t = 60)]
    point_timeout: u64,
    /// At the first nftables point, also measure with parts of the node's table flushed
    /// (see bench/README.md).
    #[arg(long)]
    ablate: bool,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    svcnet_netns::check_privileges().map_err(anyhow::Error::msg)?;
    svcnet_bench::report::header();
    let s = Scratch::new(a.endpoints)?;
    s.delete_on_ctrl_c();
    let limit = Duration::from_secs(a.point_timeout);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    eprintln!(
        "kernel {}, {} connects per point, namespaces {:?}",
        kernel.trim(),
        a.connects,
        s.names
    );

    let (from_pod, from_off_cluster) = pod_source_check(&s, a.endpoints, limit)?;
    let src_cost = r50(&from_pod, &from_off_cluster);
    eprintln!(
        "pod address {POD_CLIENT} reaches the pods through the node (no rule in it); pod IP through the node from the pod address / from the off-cluster address, p50: {src_cost:.2}x"
    );
    // Conntrack on in the conntrack-only node, for the whole run.
    let ct_table = CtOnly::load(&s.ct_node, true)?;
    let calib = measure_without_rules(&s, &a, limit)?;
    let nat = measure_empty_nat_chains(&s, &a, limit)?;
    let run = measure_modes(&s, &a, limit)?;
    report::print(&run, a.endpoints, a.connects, src_cost, &calib, &nat);
    drop(ct_table);
    drop(s);
    Ok(())
}

/// The paths with nothing in the node (the conntrack-only node's table loaded).
fn measure_without_rules(s: &Scratch, a: &Args, limit: Duration) -> anyhow::Result<Samples> {
    let calib = measure(s, a.endpoints, a.connects, limit, false)?;
    eprintln!("no rules in the node: {}", describe(&calib));
    check_conntrack(&calib);
    Ok(calib)
}

/// The paths with a table of empty nat chains only in the node (deleted, and checked gone,
/// before the proxy's rules come, also when the measurement fails).
fn measure_empty_nat_chains(s: &Scratch, a: &Args, limit: Duration) -> anyhow::Result<Samples> {
    let nat_only = CtOnly::load(&s.node, false)?;
    let nat = measure(s, a.endpoints, a.connects, limit, false)?;
    nat_only.delete()?;
    eprintln!(
        "empty nat chains only in the node (table {CT_TABLE}): {}; table deleted",
        describe(&nat)
    );
    check_conntrack(&nat);
    Ok(nat)
}

/// Every size in nftables, then iptables mode, each loaded by the proxy's own backend, and the
/// first size again at the end (a drift check).
fn measure_modes(s: &Scratch, a: &Args, limit: Duration) -> anyhow::Result<Run> {
    let mut run = Run::default();
    for (mode, mname) in [(Mode::Nftables, "nftables"), (Mode::Iptables, "iptables")] {
        measure_mode(s, a, mode, mname, limit, &mut run)?;
    }
    Ok(run)
}

/// One mode's points. After a load timeout that mode's larger sizes are skipped, as are
/// iptables sizes over `--max-iptables`.
fn measure_mode(
    s: &Scratch,
    a: &Args,
    mode: Mode,
    mname: &'static str,
    limit: Duration,
    run: &mut Run,
) -> anyhow::Result<()> {
    let load_timeout = Duration::from_secs(a.load_timeout);
    let mut backend = Some(server::backend(&options(mode, &s.node)));
    let mut dead = false;
    let mut sizes: Vec<(usize, bool)> = a.sizes.iter().map(|&n| (n, false)).collect();
    if let Some(&first) = a.sizes.first() {
        sizes.push((first, true));
    }
    for (size, again) in sizes {
        let measured = run.points.iter().filter(|p| p.mode == mname).count();
        if again && (dead || measured < 2) {
            continue;
        }
        if dead {
            run.skipped
                .push(format!("{mname} {size}: skipped after a load timeout"));
            continue;
        }
        if mode == Mode::Iptables && size > a.max_iptables {
            run.skipped.push(format!(
                "{mname} {size}: skipped (--max-iptables {})",
                a.max_iptables
            ));
            continue;
        }
        eprintln!(
            "{mname}: loading {size} Services × {} endpoints ...",
            a.endpoints
        );
        let st = state(size, a.endpoints);
        let (b, loaded) = load(backend.take().unwrap(), st, &s.node, load_timeout);
        backend = b;
        match &loaded {
            Ok(d) => eprintln!("{mname}: loaded {size} in {:.1} s", d.as_secs_f64()),
            Err(e) => eprintln!("{mname}: {size}: {e}"),
        }
        if let Err(e) = &loaded {
            run.skipped.push(format!("{mname} {size}: {e}"));
            dead = true;
            backend = None;
            continue;
        }
        let samples = measure(s, a.endpoints, a.connects, limit, true)?;
        eprintln!("{mname} {size}: {}", describe(&samples));
        check_conntrack(&samples);
        run.points.push(Point {
            mode: mname,
            services: size,
            again,
            load: loaded,
            samples,
        });
        if a.ablate && mode == Mode::Nftables && measured == 0 && !again {
            ablate(s, a, mname, size, limit, &mut backend, run)?;
        }
    }
    // Leave nothing for the next mode (its backend removes this mode's rules anyway).
    match backend {
        Some(mut b) => {
            let _ = b.cleanup();
        }
        None => {
            let _ = svcnet_proxy::nftables::cleanup(Some(s.node.name()));
            let _ = svcnet_proxy::iptables::cleanup(Some(s.node.name()));
        }
    }
    Ok(())
}

/// `--ablate`: the point just measured again with parts of the node's table flushed, one edit
/// at a time, the full rules restored in between by a full sync through the same backend (and
/// the table's listing checked to be what it was).
fn ablate(
    s: &Scratch,
    a: &Args,
    mname: &str,
    size: usize,
    limit: Duration,
    backend: &mut Option<Box<dyn Backend>>,
    run: &mut Run,
) -> anyhow::Result<()> {
    let load_timeout = Duration::from_secs(a.load_timeout);
    let full = listing(&s.node)?;
    for (label, chains, vip) in ABLATIONS {
        let script: String = chains
            .iter()
            .map(|c| format!("flush chain {} {c}\n", svcnet_proxy::nftables::FAMILY_TABLE))
            .collect();
        nft(&s.node, &script)?;
        let x = measure(s, a.endpoints, a.connects, limit, vip)?;
        eprintln!("{mname} {size}, ablation {label}: {}", describe(&x));
        check_conntrack(&x);
        run.ablations.push((label, size, x));
        // The full rules back, by the same call that loaded the point.
        let b = backend
            .take()
            .ok_or_else(|| anyhow::anyhow!("no backend to restore the rules"))?;
        let (b, r) = load(b, state(size, a.endpoints), &s.node, load_timeout);
        *backend = b;
        r.map_err(|e| anyhow::anyhow!("restoring the rules after {label}: {e}"))?;
        if listing(&s.node)? != full {
            eprintln!("WARNING: after {label}, the restored table differs from the one measured");
            run.restore_mismatch.push(label);
        }
    }
    Ok(())
}
