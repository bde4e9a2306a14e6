//! The programs `svcnet up` runs, checked before it creates anything, as kubeadm's preflight
//! checks (`InPathCheck`: "conntrack not found in system path") but fatal and all named at
//! once, each with the Debian package that has it.

use std::path::Path;

use svcnet_proxy::server::Mode;

/// A program `up` runs: its names (any one will do; a path is checked as it is) and the
/// Debian package that has it.
struct Program {
    names: Vec<String>,
    package: &'static str,
}

fn program(names: &[&str], package: &'static str) -> Program {
    Program {
        names: names.iter().map(|n| n.to_string()).collect(),
        package,
    }
}

/// What a cluster in `mode` (and `--store`) runs: `ip` for namespaces, links and routes; `nft`
/// for the proxy's rules (every mode removes the other modes' rules); `conntrack` for the
/// proxy's flushes of stale UDP flows; `arping` for the speaker's announcements; runc for
/// containers from images; the iptables tools in the iptables mode; etcd for `--store etcd`.
fn needed(mode: Mode, store: Option<&str>) -> Vec<Program> {
    let mut p = vec![
        program(&["ip"], "iproute2"),
        program(&["nft"], "nftables"),
        program(&["conntrack"], "conntrack"),
        program(&["arping"], "iputils-arping"),
        program(&[svcnet_node::container::RUNC], "runc"),
    ];
    if mode == Mode::Iptables {
        p.push(program(&["iptables-nft", "iptables"], "iptables"));
        p.push(program(
            &["iptables-nft-restore", "iptables-restore"],
            "iptables",
        ));
        p.push(program(&["iptables-nft-save", "iptables-save"], "iptables"));
    }
    if store == Some("etcd") {
        let etcd = svcnet_store::etcd::local::etcd_binary();
        p.push(Program {
            names: vec![etcd.to_string_lossy().into_owned()],
            package: "etcd-server",
        });
    }
    p
}

fn found(name: &str) -> bool {
    if name.contains('/') {
        Path::new(name).is_file()
    } else {
        svcnet_netns::which(name).is_some()
    }
}

/// `name (apt install package)` for each program none of whose names is found.
fn missing(programs: &[Program], found: impl Fn(&str) -> bool) -> Vec<String> {
    programs
        .iter()
        .filter(|p| !p.names.iter().any(|n| found(n)))
        .map(|p| format!("{} (apt install {})", p.names.join(" or "), p.package))
        .collect()
}

/// Fails, naming every missing program and its package, unless all that `up` runs is here.
pub fn check(mode: Mode, store: Option<&str>) -> anyhow::Result<()> {
    let missing = missing(&needed(mode, store), found);
    if !missing.is_empty() {
        anyhow::bail!(
            "svcnet up needs programs not found in system path: {}",
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_missing_program_with_its_package() {
        let have =
            |n: &str| !["conntrack", "iptables-nft-restore", "iptables-restore"].contains(&n);
        assert!(
            missing(&needed(Mode::Nftables, None), have) == ["conntrack (apt install conntrack)"]
        );
        assert_eq!(
            missing(&needed(Mode::Iptables, Some("etcd")), have),
            [
                "conntrack (apt install conntrack)",
                "iptables-nft-restore or iptables-restore (apt install iptables)"
            ]
        );
        assert!(missing(&needed(Mode::Userspace, None), |_| true).is_empty());
    }
}
