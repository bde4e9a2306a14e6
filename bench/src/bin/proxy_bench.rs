//! Proxy sync benchmark (issue 5 (b)): a full sync of S Services × E endpoints, then one-Service
//! changes, in nftables and iptables modes (each other's reference) — render plus kernel load,
//! in a scratch network namespace. Needs root. Details: bench/README.md.
//!
//! `cargo build --release -p svcnet-bench && ./target/release/proxy-bench [--services 10000] [--endpoints 10]`

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use clap::Parser;
use svcnet_bench::report::{self, median};
use svcnet_bench::state::{add_service, nth, ready_endpoint};
use svcnet_netns::testing::ScratchNetns;
use svcnet_proxy::model::{ServicePortName, State};
use svcnet_proxy::{iptables, nftables};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Nodes the endpoints are spread over (the proxy runs on node-1; 1 = every endpoint is
    /// local, the worst case for the hairpin set).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// One-Service changes timed (median reported).
    #[arg(long, default_value_t = 5)]
    changes: usize,
    /// Skip the iptables reference (at 10k Services iptables-nft-restore takes minutes).
    #[arg(long)]
    skip_iptables: bool,
    /// Also write the full script and the first change script to this directory.
    #[arg(long)]
    dump_scripts: Option<std::path::PathBuf>,
}

fn state(services: usize, endpoints: usize, nodes: usize, salt: usize) -> State {
    let mut st = State::default();
    for i in 0..services {
        let eps = (0..endpoints)
            .map(|e| {
                let n = i * endpoints + e + salt;
                let node = format!("node-{}", 1 + n % nodes.max(1));
                ready_endpoint(nth(Ipv4Addr::new(10, 128, 0, 0), n), 8080, &node)
            })
            .collect();
        let vip = nth(Ipv4Addr::new(10, 96, 0, 10), i);
        add_service(&mut st, "bench", &format!("svc-{i}"), vip, eps);
    }
    st
}

fn ms(d: Duration) -> String {
    report::ms(d, 1)
}

/// Change one Service's endpoints in place (a different address for one of them).
fn with_change(st: &State, k: usize) -> (State, ServicePortName) {
    let mut next = st.clone();
    let id = next
        .services
        .keys()
        .nth(k % next.services.len())
        .expect("a service")
        .clone();
    if let Some(eps) = next.endpoints.get_mut(&id) {
        if let Some(e) = eps.first_mut() {
            e.ip = IpAddr::V4(Ipv4Addr::new(10, 200, (k / 256) as u8, (k % 256) as u8));
        }
    }
    (next, id)
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    svcnet_netns::check_privileges().map_err(anyhow::Error::msg)?;
    report::header();
    let scratch = ScratchNetns::new("pb")?;
    let ns = Some(scratch.name());
    let node_n = nftables::NodeInfo {
        name: "node-1".into(),
        node_ips: vec!["198.51.100.1".parse()?],
        zone: None,
    };
    let node_i = iptables::NodeInfo {
        name: "node-1".into(),
        node_ips: vec!["198.51.100.1".parse()?],
        zone: None,
    };
    let cfg_n = nftables::Config {
        cluster_cidr: Some("10.128.0.0/9".parse()?),
        random: false,
    };
    let cfg_i = iptables::Config {
        cluster_cidr: Some("10.128.0.0/9".parse()?),
        ..Default::default()
    };
    let st = state(a.services, a.endpoints, a.nodes, 0);
    let result = (|| -> anyhow::Result<()> {
        // nftables: full, then one-Service changes.
        let t = Instant::now();
        // As the proxy does: a libnftables session in the namespace (nft -f without it).
        let mut session = nftables::Session::open(ns);
        let mut num = nftables::Numbering::default();
        let full = nftables::render_full_sync(&st, &node_n, &cfg_n, &mut num);
        let render_n = t.elapsed();
        session.apply_full_sync(full)?;
        let full_n = t.elapsed();
        if let Some(dir) = &a.dump_scripts {
            // The same table as one nft script (the numbering starts afresh as it did above).
            let script = nftables::render_full(&st, &node_n, &cfg_n);
            std::fs::write(dir.join("full.nft"), script)?;
        }
        // The periodic resync: the same state again, over the table now in place.
        let t = Instant::now();
        let again = nftables::render_full_sync(&st, &node_n, &cfg_n, &mut num);
        session.apply_full_sync(again)?;
        let resync_n = t.elapsed();
        let mut part_n = Vec::new();
        let mut part_render_n = Vec::new();
        let mut cur = st.clone();
        for k in 0..a.changes {
            let (next, id) = with_change(&cur, k * 7919);
            let t = Instant::now();
            let s = nftables::render_changes(&cur, &next, [&id], &node_n, &cfg_n, &mut num);
            part_render_n.push(t.elapsed());
            if let (Some(dir), 0) = (&a.dump_scripts, k) {
                std::fs::write(dir.join("change.nft"), &s)?;
            }
            session.apply(&s)?;
            part_n.push(t.elapsed());
            cur = next;
        }
        nftables::cleanup(ns)?;

        let (mut render_i, mut full_i, mut part_i) =
            (Duration::ZERO, Duration::ZERO, vec![Duration::ZERO]);
        if !a.skip_iptables {
            // iptables: full, then the same changes (iptables-restore --noflush of the whole state).
            iptables::ensure_jumps(ns)?;
            let t = Instant::now();
            let (input, chains) = iptables::render_with(&BTreeSet::new(), &st, &node_i, &cfg_i);
            render_i = t.elapsed();
            iptables::apply(ns, &input)?;
            full_i = t.elapsed();
            part_i.clear();
            let mut cur = st.clone();
            let mut prev = chains;
            for k in 0..a.changes {
                let (next, _) = with_change(&cur, k * 7919);
                let t = Instant::now();
                let (input, chains) = iptables::render_with(&prev, &next, &node_i, &cfg_i);
                iptables::apply(ns, &input)?;
                part_i.push(t.elapsed());
                prev = chains;
                cur = next;
            }
            iptables::cleanup(ns)?;
        }
        let (pn, pi) = (median(part_n), median(part_i));
        println!(
            "## Proxy sync: {} Services × {} endpoints on {} node(s) (render + load into the kernel)\n",
            a.services, a.endpoints, a.nodes
        );
        println!("| sync | nftables | reference: iptables (iptables-restore) | ratio |");
        println!("|---|---|---|---|");
        let ref_ms = |d: Duration| {
            if a.skip_iptables {
                "skipped".to_string()
            } else {
                ms(d)
            }
        };
        let ratio = |x: Duration, y: Duration| {
            if a.skip_iptables {
                "—".to_string()
            } else {
                report::ratio(x.as_secs_f64(), y.as_secs_f64(), 2)
            }
        };
        println!(
            "| full (render only) | {} | {} | {} |",
            ms(render_n),
            ref_ms(render_i),
            ratio(render_n, render_i)
        );
        println!(
            "| full (render + load) | {} | {} | {} |",
            ms(full_n),
            ref_ms(full_i),
            ratio(full_n, full_i)
        );
        println!(
            "| full again, over the table in place (periodic resync) | {} | — | — |",
            ms(resync_n)
        );
        println!(
            "| one Service's endpoints changed (render only, median of {}) | {} | — | — |",
            a.changes,
            ms(median(part_render_n))
        );
        println!(
            "| one Service's endpoints changed (median of {}) | {} | {} | {} |",
            a.changes,
            ms(pn),
            ref_ms(pi),
            ratio(pn, pi)
        );
        Ok(())
    })();
    drop(scratch);
    result
}
