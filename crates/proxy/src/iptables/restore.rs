//! What talks to the kernel: `iptables-restore` / `iptables-save` (the nft variants when
//! installed) and `iptables` for the jumps from the built-in chains, inside the node's network
//! namespace.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use super::names::*;

/// Why an iptables command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// It ran and failed.
    #[error("`{command}` failed: {stderr}")]
    CommandFailed { command: String, stderr: String },
    /// It could not be run.
    #[error("running `{command}`: {source}")]
    SpawnFailed {
        command: String,
        source: std::io::Error,
    },
}

/// `iptables-nft-<suffix>` when installed, else `iptables-<suffix>` (suffix "" for plain).
pub(super) fn binary(suffix: &str) -> String {
    let nft = format!("iptables-nft{suffix}");
    if svcnet_netns::which(&nft).is_some() {
        nft
    } else {
        format!("iptables{suffix}")
    }
}

pub(super) fn command(netns: Option<&str>, program: &str, args: &[&str]) -> Command {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    };
    c.args(args);
    c
}

/// Run a command, with `stdin` as its input; its stdout on success.
pub(super) fn run(mut cmd: Command, stdin: Option<&str>) -> Result<String, Error> {
    let desc = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let spawn_err = |source| Error::SpawnFailed {
        command: desc.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: desc,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Load `input` with `iptables-restore --noflush` (the nft variant when installed), inside
/// the network namespace `netns` (None: our own).
pub fn apply(netns: Option<&str>, input: &str) -> Result<(), Error> {
    run(
        command(netns, &binary("-restore"), &["-w", "--noflush"]),
        Some(input),
    )
    .map(|_| ())
}

/// Check `input` with `iptables-restore --test --noflush` without loading it.
pub fn test_input(netns: Option<&str>, input: &str) -> Result<(), Error> {
    run(
        command(netns, &binary("-restore"), &["-w", "--noflush", "--test"]),
        Some(input),
    )
    .map(|_| ())
}

/// `iptables-save` of one table.
pub fn save(netns: Option<&str>, table: &str) -> Result<String, Error> {
    run(command(netns, &binary("-save"), &["-t", table]), None)
}

/// The per-Service chains (`KUBE-SVC-`, `KUBE-SEP-`, ...) present in the nat table: what to
/// pass to [`render_with`](super::render_with) as `prev_chains` after a restart.
pub fn existing_chains(netns: Option<&str>) -> Result<BTreeSet<String>, Error> {
    Ok(chains_in(&save(netns, "nat")?)
        .into_iter()
        .filter(|c| SERVICE_CHAIN_PREFIXES.iter().any(|p| c.starts_with(p)))
        .collect())
}

pub(super) fn chains_in(saved: &str) -> Vec<String> {
    saved
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

pub(super) fn jump_args<'a>(extra: &[&'a str], comment: &'a str, target: &'a str) -> Vec<&'a str> {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["-m", "comment", "--comment", comment, "-j", target]);
    args
}

/// Create our fixed chains (when missing) and insert the jumps to them from the built-in
/// chains (when missing), as kube-proxy: `-C`, then `-I`. Idempotent.
pub fn ensure_jumps(netns: Option<&str>) -> Result<(), Error> {
    let ipt = binary("");
    for (table, chains) in [("nat", &NAT_CHAINS[..]), ("filter", &FILTER_CHAINS[..])] {
        for chain in chains {
            if let Err(e) = run(
                command(netns, &ipt, &["-w", "-t", table, "-N", chain]),
                None,
            ) {
                match &e {
                    Error::CommandFailed { stderr, .. } if stderr.contains("exists") => {}
                    _ => return Err(e),
                }
            }
        }
    }
    for (table, builtin, extra, comment, target) in JUMPS {
        let rule = jump_args(extra, comment, target);
        let mut check = vec!["-w", "-t", table, "-C", builtin];
        check.extend(&rule);
        if run(command(netns, &ipt, &check), None).is_ok() {
            continue;
        }
        let mut insert = vec!["-w", "-t", table, "-I", builtin];
        insert.extend(&rule);
        run(command(netns, &ipt, &insert), None)?;
    }
    Ok(())
}

/// Remove our jumps from the built-in chains, then flush and delete all our chains.
pub fn cleanup(netns: Option<&str>) -> Result<(), Error> {
    let ipt = binary("");
    for (table, builtin, extra, comment, target) in JUMPS {
        let rule = jump_args(extra, comment, target);
        let mut del = vec!["-w", "-t", table, "-D", builtin];
        del.extend(&rule);
        // Delete every copy; stop when none is left (or the chain is gone).
        for _ in 0..16 {
            if run(command(netns, &ipt, &del), None).is_err() {
                break;
            }
        }
    }
    let mut input = String::new();
    for (table, fixed) in [("filter", &FILTER_CHAINS[..]), ("nat", &NAT_CHAINS[..])] {
        let present = chains_in(&save(netns, table)?);
        let ours: Vec<&String> = present
            .iter()
            .filter(|c| {
                fixed.contains(&c.as_str())
                    || SERVICE_CHAIN_PREFIXES.iter().any(|p| c.starts_with(p))
            })
            .collect();
        if ours.is_empty() {
            continue;
        }
        let _ = writeln!(input, "*{table}");
        for c in &ours {
            let _ = writeln!(input, ":{c} - [0:0]");
        }
        for c in &ours {
            let _ = writeln!(input, "-X {c}");
        }
        input.push_str("COMMIT\n");
    }
    if input.is_empty() {
        return Ok(());
    }
    apply(netns, &input)
}
