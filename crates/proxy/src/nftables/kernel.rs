//! What talks to the kernel (the I/O layer; kube-proxy's knftables): scripts through
//! libnftables in-process or `nft -f` in a child, a full sync's shared elements through one
//! netlink batch ([`svcnet_nfnetlink`]), all inside the node's network namespace.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use super::elements::Commented;
use super::names::*;
use super::render::FullSync;

/// Why programming the table failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// nft (or libnftables) refused a script.
    #[error("nft -f failed{}: {stderr}", netns.as_deref().map(|n| format!(" in netns {n}")).unwrap_or_default())]
    ApplyFailed {
        netns: Option<String>,
        stderr: String,
    },
    #[error("running nft: {0}")]
    /// nft could not be run.
    RunFailed(#[from] std::io::Error),
    #[error("loading elements{}: {error}", netns.as_deref().map(|n| format!(" in netns {n}")).unwrap_or_default())]
    /// The kernel refused the netlink batch of shared elements.
    LoadFailed {
        netns: Option<String>,
        error: String,
    },
}

/// Where a backend's scripts go: a libnftables context kept open inside the node's namespace
/// (about 0.3 ms for a small change), or `nft -f` (about 20 ms: a process, a fresh read of the
/// ruleset, a socket close that waits for RCU) when the library cannot be loaded; and a netlink
/// socket for the shared elements of full syncs.
pub struct Session {
    netns: Option<String>,
    lib: Option<svcnet_libnftables::Nft>,
    netlink: Option<svcnet_nfnetlink::Socket>,
}

impl Session {
    pub fn open(netns: Option<&str>) -> Session {
        let lib = match svcnet_libnftables::Nft::open(netns) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::info!(error = %e, "using the nft command");
                None
            }
        };
        Session {
            netns: netns.map(str::to_string),
            lib,
            netlink: None,
        }
    }

    /// Apply `script` in one transaction (as [`apply`]).
    pub fn apply(&self, script: &str) -> Result<(), Error> {
        match &self.lib {
            Some(lib) => lib.run(script).map_err(|e| Error::ApplyFailed {
                netns: self.netns.clone(),
                stderr: e.to_string(),
            }),
            None => apply(self.netns.as_deref(), script),
        }
    }

    pub(super) fn netlink_error(&self, e: impl std::fmt::Display) -> Error {
        Error::LoadFailed {
            netns: self.netns.clone(),
            error: e.to_string(),
        }
    }

    /// The netlink socket, opened inside the namespace on first use.
    pub(super) fn netlink(&mut self) -> Result<&mut svcnet_nfnetlink::Socket, Error> {
        if self.netlink.is_none() {
            let socket = match &self.netns {
                Some(ns) => svcnet_netns::NetNs::open(ns)
                    .and_then(|ns| ns.run(svcnet_nfnetlink::Socket::open))
                    .map_err(|e| self.netlink_error(e))?,
                None => svcnet_nfnetlink::Socket::open(),
            };
            self.netlink = Some(socket.map_err(|e| self.netlink_error(e))?);
        }
        Ok(self.netlink.as_mut().expect("opened above"))
    }

    /// Apply a full sync as three transactions, so that nft parses only the structure and the
    /// shared elements (nearly all of a large table) go to the kernel already encoded:
    ///
    /// 1. the structure (nft): when the table exists, its chains are emptied and refilled and
    ///    the Service ports' own maps re-created, all in one transaction, while the shared maps
    ///    keep serving their elements; otherwise the table is created (replaced if it cannot be
    ///    updated in place: a set of another type, say);
    /// 2. the shared maps and sets (netlink): each flushed and refilled, in one transaction
    ///    (encoded from the typed elements, nothing parsed);
    /// 3. chains no longer used are deleted (nft), now that no element names them.
    ///
    /// Between 1 and 2 the old elements meet the new chains; a Service port whose own chain
    /// went away in 1 (deleted, or moved to the shared dispatch) has no DNAT for that moment.
    /// With the table unchanged, every step rewrites what was there and nothing is missed.
    pub fn apply_full_sync(&mut self, full: FullSync) -> Result<FullSyncKind, Error> {
        let objects = self
            .netlink()?
            .objects(svcnet_nfnetlink::FAMILY_IPV4, TABLE)
            .map_err(|e| self.netlink_error(e))?;
        if !objects.chains.is_empty() || !objects.sets.is_empty() {
            match self.full_sync_steps(&full, Some(&objects)) {
                Ok(()) => return Ok(FullSyncKind::InPlace),
                Err(e) => {
                    tracing::info!(error = %e, "updating the table in place failed; replacing it")
                }
            }
        }
        self.full_sync_steps(&full, None)?;
        Ok(FullSyncKind::Replaced)
    }

    /// The steps of [`Session::apply_full_sync`] on the table `existing` lists (None: replace
    /// the table).
    pub(super) fn full_sync_steps(
        &mut self,
        full: &FullSync,
        existing: Option<&svcnet_nfnetlink::Objects>,
    ) -> Result<(), Error> {
        let mut script = String::new();
        let mut stale = Vec::new();
        match existing {
            None => {
                let _ = writeln!(script, "table {FAMILY_TABLE} {{}}");
                let _ = writeln!(script, "delete table {FAMILY_TABLE}");
            }
            Some(o) => {
                let _ = writeln!(script, "add table {FAMILY_TABLE}");
                for c in &o.chains {
                    let used = full.chains.contains(c);
                    // Stale shared dispatch chains keep their rules until no element names them.
                    let dispatch = [CLUSTER_DISPATCH, EXTERNAL_DISPATCH, PICK].iter().any(|p| {
                        c.strip_prefix(p)
                            .is_some_and(|n| n.parse::<usize>().is_ok())
                    });
                    if used || !dispatch {
                        let _ = writeln!(script, "flush chain {FAMILY_TABLE} {c}");
                    }
                    if !used {
                        stale.push(c.as_str());
                    }
                }
                for set in &o.sets {
                    let anonymous = set.flags & svcnet_nfnetlink::SET_ANONYMOUS != 0;
                    if anonymous {
                        continue;
                    }
                    if set.name == NODEPORT_IPS {
                        let _ = writeln!(script, "flush set {FAMILY_TABLE} {NODEPORT_IPS}");
                    } else if full.affinity.contains(&set.name) {
                        // Clients keep their endpoints across resyncs, as with kube-proxy.
                    } else if !SHARED_SETS.contains(&set.name.as_str()) {
                        // A Service port's own map: re-created (or gone).
                        let _ = writeln!(script, "delete map {FAMILY_TABLE} {}", set.name);
                    }
                }
            }
        }
        script.push_str(&full.structure);
        if script.len() > IN_PROCESS_LIMIT {
            // Many Service ports with chains of their own: nft's parse of them (hundreds of MiB
            // for tens of thousands of chains) happens in a child and leaves this heap alone.
            apply(self.netns.as_deref(), &script)?;
        } else {
            self.apply(&script)?;
        }
        drop(script);

        let batch = shared_batch(&full.shared);
        self.netlink()?
            .commit(&batch)
            .map_err(|e| self.netlink_error(e))?;

        if !stale.is_empty() {
            let mut script = String::new();
            for c in &stale {
                let _ = writeln!(script, "flush chain {FAMILY_TABLE} {c}");
            }
            for c in &stale {
                let _ = writeln!(script, "delete chain {FAMILY_TABLE} {c}");
            }
            self.apply(&script)?;
        }
        Ok(())
    }
}

/// A batch that flushes every shared set and fills it with its elements of `shared`. (Sending
/// only the differences from what the kernel lists was measured slower: the kernel resumes a
/// set's dump from its first element for every 32 KiB message, so at 10k Services × 10
/// endpoints listing the 100k-element `endpoints` map alone took 0.87 s and the whole resync
/// 1.56 s, against 0.88 s to flush and refill all 230k shared elements.)
pub(super) fn shared_batch(
    shared: &[(&'static str, Vec<Commented>)],
) -> svcnet_nfnetlink::Finished {
    let mut batch = svcnet_nfnetlink::Batch::new(svcnet_nfnetlink::FAMILY_IPV4, TABLE);
    let (mut key, mut data) = (Vec::with_capacity(16), Vec::with_capacity(16));
    for (name, elems) in shared {
        // (A no-op on a set just created.)
        batch.flush_set(name);
        for (e, comment) in elems {
            let d = e.encode(&mut key, &mut data);
            batch.add_element(name, &key, d, comment.as_deref());
        }
    }
    batch.finish()
}

/// How [`Session::apply_full_sync`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullSyncKind {
    /// The table was there and was updated in place.
    InPlace,
    /// The table was created, or replaced.
    Replaced,
}

/// Structure scripts longer than this go to `nft -f` in a child rather than to the library.
pub(super) const IN_PROCESS_LIMIT: usize = 1 << 20;

/// The shared maps and sets: filled by [`Session::apply_full_sync`] over netlink, kept (with
/// their elements) when the table is updated in place.
pub(super) const SHARED_SETS: [&str; 10] = [
    ENDPOINTS,
    SERVICE_IDS,
    SERVICE_IPS,
    NODEPORT_IDS,
    SERVICE_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    NO_ENDPOINT_NODEPORTS,
    FIREWALL_IPS,
    CLUSTER_IPS,
    HAIRPIN,
];

pub(super) fn nft(netns: Option<&str>, args: &[&str], script: &str) -> Result<(), Error> {
    let mut cmd = Command::new("nft");
    if let Some(ns) = netns {
        // setns in the child rather than `ip netns exec`, which costs ~10 ms per run.
        let ns = svcnet_netns::NetNs::open(ns).map_err(|e| std::io::Error::other(e.to_string()))?;
        svcnet_netns::enter_on_exec(&mut cmd, &ns, None, &[])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Write from another thread: nft may report errors before it has read all of a big script.
    let script = script.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(Error::ApplyFailed {
            netns: netns.map(str::to_string),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// `nft -f -` with `script` (one transaction), inside `netns` when given.
pub fn apply(netns: Option<&str>, script: &str) -> Result<(), Error> {
    nft(netns, &["-f", "-"], script)
}

/// `nft -c -f -`: whether nft (and the kernel) would accept `script`, changing nothing.
pub fn check(netns: Option<&str>, script: &str) -> Result<(), Error> {
    nft(netns, &["-c", "-f", "-"], script)
}

/// Delete our table if present.
pub fn cleanup(netns: Option<&str>) -> Result<(), Error> {
    apply(
        netns,
        &format!("table {FAMILY_TABLE} {{}}\ndelete table {FAMILY_TABLE}\n"),
    )
}
