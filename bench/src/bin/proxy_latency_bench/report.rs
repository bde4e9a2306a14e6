//! The report: per-measurement lines for stderr, and the tables and summary printed at the end.

use std::time::Duration;

use svcnet_bench::report::nearest_rank;

use crate::measure::Samples;
use crate::topology::{CLUSTER_CIDR, OFF_CLUSTER_CLIENT, POD_CLIENT};

/// Percentile `p` of the samples (nearest rank).
pub fn pct(v: &[Duration], p: f64) -> Duration {
    nearest_rank(v, p)
}

pub fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

pub struct Point {
    pub mode: &'static str,
    pub services: usize,
    /// The smallest size measured again after the largest (drift check).
    pub again: bool,
    pub load: Result<Duration, String>,
    pub samples: Samples,
}

pub fn p50(v: &[Duration]) -> f64 {
    pct(v, 0.5).as_secs_f64()
}

/// p50(a) / p50(b).
pub fn r50(a: &[Duration], b: &[Duration]) -> f64 {
    p50(a) / p50(b)
}

/// One measurement, for stderr.
pub fn describe(x: &Samples) -> String {
    let vip = if x.cluster.is_empty() {
        String::new()
    } else {
        format!(
            "ClusterIP from a pod p50 {} p99 {} (server saw the pod source {}/{}) | ClusterIP p50 {} p99 {} (masqueraded {}/{}) | ",
            us(pct(&x.pod_cluster, 0.5)),
            us(pct(&x.pod_cluster, 0.99)),
            x.seen_pod.0,
            x.seen_pod.1,
            us(pct(&x.cluster, 0.5)),
            us(pct(&x.cluster, 0.99)),
            x.seen_masq.0,
            x.seen_masq.1
        )
    };
    format!(
        "{vip}pod IP via the node p50 {} | via the conntrack-only node p50 {} | via the router p50 {} ({} connects each; conntrack entries: node {}, conntrack-only node {}, router {})",
        us(pct(&x.via_node, 0.5)),
        us(pct(&x.via_ct, 0.5)),
        us(pct(&x.reference, 0.5)),
        x.reference.len(),
        x.entries[0],
        x.entries[1],
        x.entries[2]
    )
}

/// The pod-IP paths of a measurement without ClusterIP, for the report.
pub fn paths(x: &Samples) -> String {
    format!(
        "pod IP through the node p50 {}, through the conntrack-only node p50 {}, through the rule-free router p50 {} (node / router {:.2}x, conntrack-only node / router {:.2}x, node / conntrack-only node {:.2}x); conntrack entries afterwards: node {}, conntrack-only node {}, router {}",
        us(pct(&x.via_node, 0.5)),
        us(pct(&x.via_ct, 0.5)),
        us(pct(&x.reference, 0.5)),
        r50(&x.via_node, &x.reference),
        r50(&x.via_ct, &x.reference),
        r50(&x.via_node, &x.via_ct),
        x.entries[0],
        x.entries[1],
        x.entries[2]
    )
}

/// What the modes' measurements gave: the points, the `--ablate` measurements (label, size,
/// samples), the edits after which the restored table differed, and what was skipped.
#[derive(Default)]
pub struct Run {
    pub points: Vec<Point>,
    pub ablations: Vec<(&'static str, usize, Samples)>,
    pub restore_mismatch: Vec<&'static str>,
    pub skipped: Vec<String>,
}

/// The whole report, on stdout: what was measured, the baselines, the table of points, the
/// summary per mode, what was skipped and the ablations.
pub fn print(
    run: &Run,
    endpoints: usize,
    connects: usize,
    src_cost: f64,
    calib: &Samples,
    nat: &Samples,
) {
    print_intro(endpoints, connects, src_cost, calib, nat);
    print_points(&run.points);
    for mode in ["nftables", "iptables"] {
        print_summary(&run.points, mode);
    }
    for s in &run.skipped {
        println!("- {s}");
    }
    if !run.ablations.is_empty() {
        print_ablations(run);
    }
}

/// What each round measures, and the measurements before any of the proxy's rules.
fn print_intro(endpoints: usize, connects: usize, src_cost: f64, calib: &Samples, nat: &Samples) {
    println!(
        "First-packet (TCP connect) latency: client ns → node ns (the rules) → server ns; {} endpoints per Service; {} connects per point. Each round: a ClusterIP connect from a pod address ({POD_CLIENT}, inside the cluster CIDR {CLUSTER_CIDR}: DNAT, no masquerade; the kernel picks it as the source by the client's policy routing for that socket's owner uid, so the connect is the same call as the others), a ClusterIP connect from the off-cluster client address ({OFF_CLUSTER_CLIENT}: DNAT and masquerade), then from the off-cluster address a connect to a pod IP through the same node (its rules do not match), one to the pod through a conntrack-only node (conntrack on, no rule on the path) and one through a router namespace without any rule (\"direct pod IP\", the reference), so machine noise hits all five alike.\n",
        endpoints, connects
    );
    println!(
        "The pod source by itself (before any rule, conntrack off in the node; pod IP through the node from the pod address / from the off-cluster address, interleaved, p50): {src_cost:.2}x.\n"
    );
    println!(
        "Before any rule was loaded in the node (conntrack-only node's table loaded): {}.\n",
        paths(calib)
    );
    println!(
        "Empty nat chains only in the node (a table of empty nat chains — prerouting and output at -100, postrouting at 100 — and nothing else; deleted before the proxy's rules were loaded): {}.\n",
        paths(nat)
    );
}

/// One row per point: every path's percentiles and the ratios between them.
fn print_points(points: &[Point]) {
    println!("| mode | Services | rules load | ClusterIP p50 | p90 | p99 | direct pod IP p50 | p99 | ClusterIP / direct (p50) | pod IP through the node p50 | pod IP through a conntrack-only node p50 | ClusterIP / conntrack-only node (p50) | pod IP through the node / conntrack-only node (p50) | ClusterIP from a pod p50 | ClusterIP from a pod / direct (router) (p50) | ClusterIP from a pod / conntrack-only node (p50) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in points {
        let x = &p.samples;
        println!(
            "| {} | {} | {:.1} s | {} | {} | {} | {} | {} | {:.2}x | {} | {} | {:.2}x | {:.2}x | {} | {:.2}x | {:.2}x |",
            p.mode,
            if p.again {
                format!("{} (again, last)", p.services)
            } else {
                p.services.to_string()
            },
            p.load.as_ref().map(|d| d.as_secs_f64()).unwrap_or(f64::NAN),
            us(pct(&x.cluster, 0.5)),
            us(pct(&x.cluster, 0.9)),
            us(pct(&x.cluster, 0.99)),
            us(pct(&x.reference, 0.5)),
            us(pct(&x.reference, 0.99)),
            r50(&x.cluster, &x.reference),
            us(pct(&x.via_node, 0.5)),
            us(pct(&x.via_ct, 0.5)),
            r50(&x.cluster, &x.via_ct),
            r50(&x.via_node, &x.via_ct),
            us(pct(&x.pod_cluster, 0.5)),
            r50(&x.pod_cluster, &x.reference),
            r50(&x.pod_cluster, &x.via_ct),
        );
    }
    println!();
}

/// The ratios a reader looks for, per mode: how ClusterIP latency grows with the Services
/// present, against each baseline, and from a pod.
fn print_summary(points: &[Point], mode: &str) {
    let mine: Vec<&Point> = points
        .iter()
        .filter(|p| p.mode == mode && !p.again)
        .collect();
    let again = points.iter().find(|p| p.mode == mode && p.again);
    let target = |t: &str| {
        if mode == "nftables" {
            format!(" (target ≤ {t})")
        } else {
            String::new()
        }
    };
    let rel = |p: &Point| r50(&p.samples.cluster, &p.samples.reference);
    if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
        if first.services != last.services {
            let r = |q| {
                pct(&last.samples.cluster, q).as_secs_f64()
                    / pct(&first.samples.cluster, q).as_secs_f64()
            };
            println!(
                "- {mode}: ClusterIP with {} Services / with {}: p50 {:.2}x, p99 {:.2}x; normalised by the direct connects of the same point (machine drift removed): {:.2}x{}",
                last.services,
                first.services,
                r(0.5),
                r(0.99),
                rel(last) / rel(first),
                target("1.1x")
            );
            if let Some(ag) = again {
                println!(
                    "- {mode}: the same against the {}-Service point measured again at the end: p50 {:.2}x; normalised {:.2}x",
                    ag.services,
                    p50(&last.samples.cluster) / p50(&ag.samples.cluster),
                    rel(last) / rel(ag)
                );
            }
        }
        let worst = mine.iter().map(|p| rel(p)).fold(0.0f64, f64::max);
        let worst_node = mine
            .iter()
            .map(|p| r50(&p.samples.cluster, &p.samples.via_node))
            .fold(0.0f64, f64::max);
        println!(
            "- {mode}: worst p50 ClusterIP / direct pod IP {:.2}x{}; ClusterIP / pod IP through the same node (conntrack on in both) {:.2}x",
            worst,
            target("1.2x"),
            worst_node
        );
        let range = |f: &dyn Fn(&Samples) -> f64| {
            let v: Vec<f64> = mine.iter().map(|p| f(&p.samples)).collect();
            (
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(0.0f64, f64::max),
            )
        };
        let (ct_lo, ct_hi) = range(&|x| r50(&x.cluster, &x.via_ct));
        let (node_lo, node_hi) = range(&|x| r50(&x.via_node, &x.via_ct));
        let (ctr_lo, ctr_hi) = range(&|x| r50(&x.via_ct, &x.reference));
        println!(
            "- {mode}: worst p50 ClusterIP / pod IP through a conntrack-only node (conntrack on, no rule on the path; interleaved, within each point) {ct_hi:.2}x (per point {ct_lo:.2}–{ct_hi:.2}x); pod IP through the node / through the conntrack-only node {node_lo:.2}–{node_hi:.2}x; conntrack-only node / router {ctr_lo:.2}–{ctr_hi:.2}x"
        );
        let (pr_lo, pr_hi) = range(&|x| r50(&x.pod_cluster, &x.reference));
        let (pc_lo, pc_hi) = range(&|x| r50(&x.pod_cluster, &x.via_ct));
        let (pn_lo, pn_hi) = range(&|x| r50(&x.pod_cluster, &x.via_node));
        let (pm_lo, pm_hi) = range(&|x| r50(&x.pod_cluster, &x.cluster));
        println!(
            "- {mode}: ClusterIP from a pod (source {POD_CLIENT}, in the cluster CIDR: not masqueraded): worst p50 / direct pod IP (router) {pr_hi:.2}x (per point {pr_lo:.2}–{pr_hi:.2}x){}; worst p50 / pod IP through a conntrack-only node {pc_hi:.2}x (per point {pc_lo:.2}–{pc_hi:.2}x); / pod IP through the same node {pn_lo:.2}–{pn_hi:.2}x; / ClusterIP from the off-cluster address (masqueraded) {pm_lo:.2}–{pm_hi:.2}x",
            target("1.2x")
        );
        if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
            if first.services != last.services {
                let prel = |p: &Point| r50(&p.samples.pod_cluster, &p.samples.reference);
                println!(
                    "- {mode}: ClusterIP from a pod with {} Services / with {}: p50 {:.2}x; normalised by the direct connects of the same point: {:.2}x{}",
                    last.services,
                    first.services,
                    p50(&last.samples.pod_cluster) / p50(&first.samples.pod_cluster),
                    prel(last) / prel(first),
                    target("1.1x")
                );
            }
        }
        let unseen: usize = mine
            .iter()
            .chain(again.iter())
            .map(|p| p.samples.seen_pod.1.saturating_sub(p.samples.seen_pod.0))
            .sum();
        let (seen_n, sent_n) = mine.iter().chain(again.iter()).fold((0, 0), |(a, b), p| {
            (a + p.samples.seen_pod.0, b + p.samples.seen_pod.1)
        });
        println!(
            "- {mode}: the server saw the pod source address on {seen_n} connects for {sent_n} ClusterIP connects from the pod (DNATed, not masqueraded){}",
            if unseen == 0 { "" } else { " — WARNING: some were not" }
        );
    }
}

/// `--ablate`: the first nftables point with parts of the node's table flushed.
fn print_ablations(run: &Run) {
    let size = run.ablations[0].1;
    println!(
        "\nAblation (--ablate), nftables {size} Services: the node's table edited, one edit at a time (full rules restored by a full sync in between{}); rounds as above (without ClusterIP where it no longer works).\n",
        if run.restore_mismatch.is_empty() {
            ", the table's listing checked identical".to_string()
        } else {
            format!(", BUT the restored listing differed after {:?}", run.restore_mismatch)
        }
    );
    println!("| node's table | ClusterIP p50 | pod IP through the node p50 | conntrack-only node p50 | router p50 | node / conntrack-only node | node / router | conntrack-only node / router | ClusterIP / conntrack-only node | ClusterIP / router | ClusterIP from a pod p50 | ClusterIP from a pod / conntrack-only node | ClusterIP from a pod / router |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let full = run
        .points
        .iter()
        .find(|p| p.mode == "nftables" && p.services == size && !p.again)
        .map(|p| ("full rules (the point above)", &p.samples));
    for (label, x) in full
        .into_iter()
        .chain(run.ablations.iter().map(|(l, _, x)| (*l, x)))
    {
        let (vip, vct, vr) = if x.cluster.is_empty() {
            ("—".to_string(), "—".to_string(), "—".to_string())
        } else {
            (
                us(pct(&x.cluster, 0.5)),
                format!("{:.2}x", r50(&x.cluster, &x.via_ct)),
                format!("{:.2}x", r50(&x.cluster, &x.reference)),
            )
        };
        let (pvip, pvct, pvr) = if x.pod_cluster.is_empty() {
            ("—".to_string(), "—".to_string(), "—".to_string())
        } else {
            (
                us(pct(&x.pod_cluster, 0.5)),
                format!("{:.2}x", r50(&x.pod_cluster, &x.via_ct)),
                format!("{:.2}x", r50(&x.pod_cluster, &x.reference)),
            )
        };
        println!(
            "| {label} | {vip} | {} | {} | {} | {:.2}x | {:.2}x | {:.2}x | {vct} | {vr} | {pvip} | {pvct} | {pvr} |",
            us(pct(&x.via_node, 0.5)),
            us(pct(&x.via_ct, 0.5)),
            us(pct(&x.reference, 0.5)),
            r50(&x.via_node, &x.via_ct),
            r50(&x.via_node, &x.reference),
            r50(&x.via_ct, &x.reference),
        );
    }
}
