//! `svcnet down`: remove every namespace (and so every link and rule in them) and every process
//! a `svcnet up` of this data directory made, also after a crash; `up` runs the same teardown
//! before it starts and when it stops.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use svcnet_netns::NetNs;

use super::layout::Layout;

/// Every process whose command line shows it belongs to `l`: container shims (their spec
/// carries the data directory) and pods' pause processes (`--pod-dir` under it).
fn cluster_pids(l: &Layout) -> Vec<i32> {
    let needle = l.data_dir.to_string_lossy().to_string();
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            (cmd.contains("\0shim\0") || cmd.contains("\0pause\0")) && cmd.contains(&needle)
        })
        .collect()
}

/// Remove every namespace (and so every link and rule in them) and every process of `l`.
pub fn teardown(l: &Layout) -> anyhow::Result<usize> {
    kill_all(l);
    // Containers from images: the runtime stops them and removes their state and cgroups.
    if let Ok(nodes) = std::fs::read_dir(l.data_dir.join("nodes")) {
        for n in nodes.flatten() {
            svcnet_node::container::cleanup_node(&n.path());
        }
    }
    let names = NetNs::list(&l.prefix);
    let mut errors = Vec::new();
    // Pods first, then nodes, then the rest (a veth's peer goes with either end).
    let mut ordered = names.clone();
    ordered.sort_by_key(|n| (!n.contains("-pod-"), !n.contains("-node-"), n.clone()));
    for n in &ordered {
        if let Err(e) = NetNs::delete(n) {
            errors.push(format!("{n}: {e}"));
        }
    }
    // A pause process an agent started while its pod's namespace was going holds that
    // namespace alone (`up` tears down while its agents still run): once more.
    kill_all(l);
    // Pods' state refers to namespaces that are gone now: their agents start them afresh.
    let _ = std::fs::remove_dir_all(l.data_dir.join("nodes"));
    if !errors.is_empty() {
        bail!("could not remove: {}", errors.join("; "));
    }
    Ok(names.len())
}

fn kill_all(l: &Layout) {
    for pid in cluster_pids(l) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// `svcnet down`.
pub fn down(data_dir: &Path) -> anyhow::Result<()> {
    let l = Layout::new(data_dir)?;
    if let Ok(pid) = std::fs::read_to_string(l.data_dir.join("up.pid")) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // A running `up` tears down itself on SIGTERM; give it a moment.
            if nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            )
            .is_ok()
            {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline
                    && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    let n = teardown(&l)?;
    let _ = std::fs::remove_file(l.data_dir.join("up.pid"));
    println!(
        "removed {n} network namespace(s) of {}",
        l.data_dir.display()
    );
    Ok(())
}
