//! `svcnet dns` as a process on a loopback port, and `dig` to ask it: what the DNS tests
//! (`dns_conformance`, `dns_hostile`) share.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, SVCNET};

/// A free port on 127.0.0.1 for both UDP and TCP.
pub fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running `svcnet dns` on 127.0.0.1, killed on drop.
pub struct Dns {
    pub child: Child,
    pub port: u16,
    pub metrics: SocketAddr,
    pub log: std::path::PathBuf,
}

impl Dns {
    /// `svcnet dns` on 127.0.0.1:`port` (metrics on `metrics`), its log in `dir`; not waited for.
    pub fn spawn(
        kubeconfig: &Path,
        dir: &Path,
        tag: &str,
        port: u16,
        metrics: SocketAddr,
        args: &[&str],
    ) -> Dns {
        Dns::spawn_with(kubeconfig, dir, tag, (port, metrics), args, None)
    }

    /// [`Dns::spawn`], with the server's limit of open files set to `nofile` when given
    /// ([`super::commands::with_open_file_limit`]).
    pub fn spawn_with(
        kubeconfig: &Path,
        dir: &Path,
        tag: &str,
        (port, metrics): (u16, SocketAddr),
        args: &[&str],
        nofile: Option<u64>,
    ) -> Dns {
        let log = dir.join(format!("dns-{tag}.log"));
        let mut cmd = super::commands::with_open_file_limit(SVCNET, nofile);
        cmd.arg("dns")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-addr", &metrics.to_string()])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("starting svcnet dns");
        Dns {
            child,
            port,
            metrics,
            log,
        }
    }

    /// [`Dns::spawn`] on free ports, waiting until it answers.
    pub fn start(kubeconfig: &Path, dir: &Path, tag: &str, args: &[&str]) -> Dns {
        Dns::start_with(kubeconfig, dir, tag, args, None)
    }

    /// [`Dns::spawn_with`] on free ports, waiting until it answers.
    pub fn start_with(
        kubeconfig: &Path,
        dir: &Path,
        tag: &str,
        args: &[&str],
        nofile: Option<u64>,
    ) -> Dns {
        let metrics: SocketAddr = ("127.0.0.1".parse::<IpAddr>().unwrap(), free_port()).into();
        let d = Dns::spawn_with(kubeconfig, dir, tag, (free_port(), metrics), args, nofile);
        // Listening: a name of its own domain gets an answer (SERVFAIL until synced).
        let domain = args
            .iter()
            .position(|a| *a == "--cluster-domain")
            .map(|i| args[i + 1])
            .unwrap_or("cluster.local");
        let probe = format!("dns-version.{domain}");
        eventually(Duration::from_secs(20), "svcnet dns listening", || {
            (!dig(d.port, &[&probe, "TXT"]).status.is_empty()).then_some(())
        });
        d
    }

    /// Start and wait until the watches have synced (/ready).
    pub fn start_ready(kubeconfig: &Path, dir: &Path, tag: &str, args: &[&str]) -> Dns {
        let d = Dns::start(kubeconfig, dir, tag, args);
        eventually(Duration::from_secs(30), "svcnet dns ready", || {
            (d.http("/ready").0 == 200).then_some(())
        });
        d
    }

    pub fn http(&self, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}"])
            .arg(format!("http://{}{path}", self.metrics))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What dig printed: status, header flags, and the sections (one normalised line per RR:
/// `owner ttl class type rdata`, single spaces).
#[derive(Debug, Default)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    pub raw: String,
}

impl Dig {
    /// The answer section without owner and TTL: `TYPE rdata`.
    pub fn data(&self) -> Vec<String> {
        self.answer
            .iter()
            .map(|l| l.split(' ').skip(3).collect::<Vec<_>>().join(" "))
            .collect()
    }

    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    /// NOERROR, no answer, the cluster SOA in authority.
    pub fn assert_nodata(&self) {
        self.assert_negative("NOERROR");
    }

    pub fn assert_nxdomain(&self) {
        self.assert_negative("NXDOMAIN");
    }

    /// `status`, no answer, the cluster SOA in authority, authoritative.
    pub fn assert_negative(&self, status: &str) {
        assert_eq!(self.status, status, "{}", self.raw);
        assert!(self.answer.is_empty(), "{}", self.raw);
        assert!(
            self.authority.len() == 1 && self.authority[0].contains(" SOA "),
            "{}",
            self.raw
        );
        assert!(self.has_flag("aa"), "{}", self.raw);
    }
}

pub fn dig(port: u16, args: &[&str]) -> Dig {
    dig_in(None, port, args)
}

/// [`dig`] run inside the named network namespace (None: here).
pub fn dig_in(netns: Option<&str>, port: u16, args: &[&str]) -> Dig {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "dig"]);
            c
        }
        None => Command::new("dig"),
    };
    let out = cmd
        .args(["@127.0.0.1", "-p", &port.to_string()])
        .args(["+norec", "+time=2", "+tries=1", "+nocookie"])
        .args(args)
        .output()
        .expect("running dig");
    parse_dig(&String::from_utf8_lossy(&out.stdout))
}

pub fn parse_dig(text: &str) -> Dig {
    let mut d = Dig {
        raw: text.to_string(),
        ..Default::default()
    };
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or("").to_string();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            d.flags = rest
                .split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect();
        }
        if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = "additional";
        } else if line.trim().is_empty() || line.starts_with(';') {
            if line.trim().is_empty() {
                section = "";
            }
        } else {
            let norm = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match section {
                "answer" => d.answer.push(norm),
                "authority" => d.authority.push(norm),
                "additional" => d.additional.push(norm),
                _ => {}
            }
        }
    }
    d
}
