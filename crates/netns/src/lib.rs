//! Network namespaces, the way `ip netns` names them (`/run/netns/<name>`), and what svcnet
//! does with them: create and delete them, run code inside one (on a dedicated thread — never a
//! pooled runtime thread, which would carry the namespace into unrelated work), open sockets
//! inside one (a socket stays in the namespace it was created in, whichever thread uses it
//! later), and plumb links, addresses and routes with `ip -batch`.
//!
//! This crate holds the project's only `unsafe`: `pre_exec` hooks that move a child process into
//! a namespace before it runs.

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

#[cfg(feature = "testing")]
pub mod testing;

pub const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("creating network namespace {name}: {detail}")]
    CreateFailed { name: String, detail: String },
    #[error("deleting network namespace {name}: {detail}")]
    DeleteFailed { name: String, detail: String },
    #[error("opening network namespace {name}: {source}")]
    OpenFailed {
        name: String,
        source: std::io::Error,
    },
    #[error("entering network namespace {name}: {source}")]
    EnterFailed { name: String, source: nix::Error },
    #[error("`{command}` failed: {detail}")]
    CommandFailed { command: String, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the thread running inside {0} panicked")]
    ThreadPanicked(String),
}

pub type Result<T, E = NetnsError> = std::result::Result<T, E>;

/// Checks that we can manage network namespaces; the error names what is missing.
pub fn check_privileges() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        // Without root, CAP_NET_ADMIN and CAP_SYS_ADMIN (for setns and mounts) are needed.
        let caps = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let eff = caps
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        const CAP_NET_ADMIN: u64 = 1 << 12;
        const CAP_SYS_ADMIN: u64 = 1 << 21;
        let mut missing = Vec::new();
        if eff & CAP_NET_ADMIN == 0 {
            missing.push("CAP_NET_ADMIN");
        }
        if eff & CAP_SYS_ADMIN == 0 {
            missing.push("CAP_SYS_ADMIN");
        }
        if !missing.is_empty() {
            return Err(format!(
                "svcnet needs root (or {}) to create network namespaces; run it with sudo",
                missing.join(" and ")
            ));
        }
    }
    if which("ip").is_none() {
        return Err("the `ip` command (iproute2) is required; install the iproute2 package".into());
    }
    Ok(())
}

/// The path of an executable on PATH.
pub fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(cmd))
                .find(|p| p.is_file())
        })
        .unwrap_or(None)
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(NetnsError::CommandFailed {
            command: format!("{cmd:?}"),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// A named network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Create the namespace (or take the existing one of that name), with `lo` up.
    pub fn create(name: &str) -> Result<NetNs> {
        let ns = NetNs {
            name: name.to_string(),
        };
        if !ns.path().exists() {
            let out = Command::new("ip").args(["netns", "add", name]).output()?;
            if !out.status.success() && !ns.path().exists() {
                return Err(NetnsError::CreateFailed {
                    name: name.into(),
                    detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
        }
        ns.ip_batch("link set lo up\n")?;
        Ok(ns)
    }

    /// An existing namespace by name.
    pub fn open(name: &str) -> Result<NetNs> {
        let ns = NetNs {
            name: name.to_string(),
        };
        if !ns.path().exists() {
            return Err(NetnsError::OpenFailed {
                name: name.into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        Ok(ns)
    }

    pub fn exists(name: &str) -> bool {
        Path::new(NETNS_DIR).join(name).exists()
    }

    /// Names of existing namespaces starting with `prefix`.
    pub fn list(prefix: &str) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(NETNS_DIR)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(prefix))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Delete the namespace; processes still inside are killed first.
    pub fn delete(name: &str) -> Result<()> {
        if !Self::exists(name) {
            return Ok(());
        }
        for pid in Self::pids(name) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let out = Command::new("ip")
            .args(["netns", "delete", name])
            .output()?;
        if !out.status.success() && Self::exists(name) {
            return Err(NetnsError::DeleteFailed {
                name: name.into(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    /// Processes whose network namespace is this one.
    pub fn pids(name: &str) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    fn file(&self) -> Result<File> {
        File::open(self.path()).map_err(|source| NetnsError::OpenFailed {
            name: self.name.clone(),
            source,
        })
    }

    /// Run `f` on a new thread inside this namespace and return its result.
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = self.file()?;
        let name = self.name.clone();
        let handle = std::thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn(move || {
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|source| NetnsError::EnterFailed { name, source })?;
                Ok(f())
            })?;
        handle
            .join()
            .map_err(|_| NetnsError::ThreadPanicked(self.name.clone()))?
    }

    /// Start `f` on a new thread inside this namespace (a thread that serves the namespace for a
    /// long time, such as a netlink session).
    pub fn spawn<F>(&self, f: F) -> Result<std::thread::JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        let file = self.file()?;
        let name = self.name.clone();
        Ok(std::thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn(move || match setns(file.as_fd(), CloneFlags::CLONE_NEWNET) {
                Ok(()) => f(),
                Err(source) => {
                    tracing::error!(error = %NetnsError::EnterFailed { name, source }, "thread not started")
                }
            })?)
    }

    /// [`NetNs::run`] from async code, without blocking the runtime.
    pub async fn run_async<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = self.file()?;
        let name = self.name.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn(move || {
                let r = setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|source| NetnsError::EnterFailed { name, source })
                    .map(|_| f());
                let _ = tx.send(r);
            })?;
        rx.await
            .map_err(|_| NetnsError::ThreadPanicked(self.name.clone()))?
    }

    /// A TCP listener inside this namespace.
    pub fn tcp_listen(&self, addr: SocketAddr) -> Result<TcpListener> {
        Ok(self.run(move || {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(l)
        })??)
    }

    /// A UDP socket inside this namespace.
    pub fn udp_bind(&self, addr: SocketAddr) -> Result<UdpSocket> {
        Ok(self.run(move || {
            let s = UdpSocket::bind(addr)?;
            s.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(s)
        })??)
    }

    /// A TCP connection made from inside this namespace (non-blocking, for tokio).
    pub async fn tcp_connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<tokio::net::TcpStream> {
        let std = self
            .run_async(move || {
                let s = TcpStream::connect_timeout(&addr, timeout)?;
                s.set_nonblocking(true)?;
                s.set_nodelay(true)?;
                Ok::<_, std::io::Error>(s)
            })
            .await??;
        Ok(tokio::net::TcpStream::from_std(std)?)
    }

    /// Run `ip -n <ns> -batch -` with `commands` (one `ip` command per line, without `ip`).
    pub fn ip_batch(&self, commands: &str) -> Result<()> {
        ip_batch(Some(&self.name), commands)
    }

    /// Set sysctls inside this namespace (`net.ipv4.ip_forward=1`, ...).
    pub fn sysctls(&self, settings: &[(&str, &str)]) -> Result<()> {
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.run(move || {
            let refs: Vec<(&str, &str)> = settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            sysctls_here(&refs)
        })?
    }

    /// A command that runs inside this namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Run a command inside this namespace and return its output (error when it fails).
    pub fn exec(&self, argv: &[&str]) -> Result<Output> {
        let (program, args) = argv.split_first().expect("a command");
        run(self.command(program).args(args))
    }
}

/// Set sysctls in the caller's own namespace.
pub fn sysctls_here(settings: &[(&str, &str)]) -> Result<()> {
    for (k, v) in settings {
        let path = Path::new("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v.as_bytes()).map_err(|e| NetnsError::CommandFailed {
            command: format!("sysctl {k}={v}"),
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// `ip [-n ns] -batch -` with `commands` on stdin.
pub fn ip_batch(ns: Option<&str>, commands: &str) -> Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(commands.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(NetnsError::CommandFailed {
            command: format!(
                "ip {}-batch: {}",
                ns.map(|n| format!("-n {n} ")).unwrap_or_default(),
                commands.trim()
            ),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Prepare `cmd` so the child enters `netns` before it runs (and, with `hostname`, gets its own
/// UTS namespace with that hostname, and with `binds`, a private mount namespace with each
/// `(source, target)` bind-mounted — how a pod's process sees its own /etc/resolv.conf).
pub fn enter_on_exec(
    cmd: &mut Command,
    netns: &NetNs,
    hostname: Option<&str>,
    binds: &[(PathBuf, PathBuf)],
) -> Result<()> {
    prepare_on_exec(cmd, netns, hostname, false, binds)
}

/// [`enter_on_exec`] for the holder of a pod's namespaces (its pause process): a new UTS
/// namespace with `hostname` and a new IPC namespace, made before exec — so they exist once
/// `spawn` returns, with nothing to wait for.
pub fn enter_pod_on_exec(cmd: &mut Command, netns: &NetNs, hostname: &str) -> Result<()> {
    prepare_on_exec(cmd, netns, Some(hostname), true, &[])
}

fn prepare_on_exec(
    cmd: &mut Command,
    netns: &NetNs,
    hostname: Option<&str>,
    new_ipc: bool,
    binds: &[(PathBuf, PathBuf)],
) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let file = netns.file()?;
    let hostname = hostname.map(str::to_string);
    let binds = binds.to_vec();
    // SAFETY: the closure runs in the forked child before exec. It only makes system calls
    // (setns, unshare, mount, sethostname) on data prepared before the fork; it does not take
    // locks or touch the parent's runtime.
    unsafe {
        cmd.pre_exec(move || {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            let mut flags = CloneFlags::empty();
            if hostname.is_some() {
                flags |= CloneFlags::CLONE_NEWUTS;
            }
            if new_ipc {
                flags |= CloneFlags::CLONE_NEWIPC;
            }
            if !binds.is_empty() {
                flags |= CloneFlags::CLONE_NEWNS;
            }
            if !flags.is_empty() {
                nix::sched::unshare(flags).map_err(std::io::Error::from)?;
            }
            if let Some(h) = &hostname {
                nix::unistd::sethostname(h).map_err(std::io::Error::from)?;
            }
            if !binds.is_empty() {
                use nix::mount::{mount, MsFlags};
                // Keep our mounts from propagating back to the host.
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .map_err(std::io::Error::from)?;
                for (src, dst) in &binds {
                    mount(
                        Some(src.as_path()),
                        dst.as_path(),
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    )
                    .map_err(std::io::Error::from)?;
                }
            }
            Ok(())
        });
    }
    Ok(())
}

/// A tokio TCP listener on `addr` inside the named namespace (`None`: the caller's own).
/// Must be called from within a tokio runtime.
pub fn tokio_listener(
    netns: Option<&str>,
    addr: SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    let std = match netns {
        Some(ns) => NetNs::open(ns)
            .and_then(|n| n.tcp_listen(addr))
            .map_err(std::io::Error::other)?,
        None => {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            l
        }
    };
    tokio::net::TcpListener::from_std(std)
}

/// Make the child a session leader whose controlling terminal is its stdin (a pty slave set as
/// the command's fd 0) — what `kubectl exec -t` needs for job control and signals. Hooks run in
/// the order they were added: add this after [`enter_on_exec`].
pub fn controlling_tty_on_exec(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec and makes only system calls (setsid, an
    // ioctl on fd 0); it takes no locks and touches none of the parent's state.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Set a terminal's size (TIOCSWINSZ), e.g. a pty master's after a client's resize.
pub fn set_window_size(
    fd: std::os::fd::BorrowedFd<'_>,
    cols: u16,
    rows: u16,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let ws = nix::libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which is valid for the call.
    let r = unsafe {
        nix::libc::ioctl(
            fd.as_raw_fd(),
            nix::libc::TIOCSWINSZ,
            &ws as *const nix::libc::winsize,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::{unique_name as unique, NetnsGuard as Guard};

    #[test]
    fn plumb_two_namespaces_and_talk_over_tcp() {
        if check_privileges().is_err() {
            eprintln!("skipped: needs root");
            return;
        }
        let (a, b) = (unique("a"), unique("b"));
        let _g = Guard(vec![a.clone(), b.clone()]);
        let na = NetNs::create(&a).unwrap();
        let nb = NetNs::create(&b).unwrap();
        na.ip_batch(&format!(
            "link add va type veth peer name vb netns {b}\nlink set va up\naddr add 198.51.100.1/24 dev va\n"
        ))
        .unwrap();
        nb.ip_batch("link set vb up\naddr add 198.51.100.2/24 dev vb\n")
            .unwrap();
        let listener = nb.tcp_listen("198.51.100.2:7777".parse().unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            let server = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let (mut s, peer) = l.accept().await.unwrap();
                s.write_all(peer.ip().to_string().as_bytes()).await.unwrap();
            });
            let mut c = na
                .tcp_connect("198.51.100.2:7777".parse().unwrap(), Duration::from_secs(2))
                .await
                .unwrap();
            use tokio::io::AsyncReadExt;
            let mut buf = String::new();
            c.read_to_string(&mut buf).await.unwrap();
            assert_eq!(buf, "198.51.100.1", "the connection came from namespace a");
            server.await.unwrap();
        });
        // The host namespace never saw these addresses.
        let host = String::from_utf8(
            Command::new("ip")
                .args(["-o", "addr"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(!host.contains("198.51.100."));
        assert_eq!(NetNs::list(&a), vec![a.clone()]);
    }

    #[test]
    fn exec_enters_namespace_with_hostname_and_bind_mount() {
        if check_privileges().is_err() {
            eprintln!("skipped: needs root");
            return;
        }
        let n = unique("p");
        let _g = Guard(vec![n.clone()]);
        let ns = NetNs::create(&n).unwrap();
        let dir = std::env::temp_dir().join(format!("{n}-files"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), "nameserver 10.96.0.10\n").unwrap();
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "hostname; cat /etc/resolv.conf; cat /proc/net/dev | grep -c :",
        ]);
        enter_on_exec(
            &mut cmd,
            &ns,
            Some("my-pod"),
            &[(dir.join("resolv.conf"), "/etc/resolv.conf".into())],
        )
        .unwrap();
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, ["my-pod", "nameserver 10.96.0.10", "1"], "{text}");
        // The host's hostname and resolv.conf are untouched.
        assert_ne!(
            nix::unistd::gethostname().unwrap().to_string_lossy(),
            "my-pod"
        );
        assert!(!std::fs::read_to_string("/etc/resolv.conf")
            .unwrap()
            .contains("10.96.0.10"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
