//! Making an address reachable on the node network: a /32 on the node's interface (so the
//! kernel answers ARP for it and delivers its packets locally, to the proxy's rules) and
//! unsolicited ARP (so neighbours that cached the previous node's MAC switch at once).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// An inclusive IPv4 range (`a-b` or a CIDR, as `--loadbalancer-ip-range`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl IpRange {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }
}

pub fn parse_range(s: &str) -> Result<IpRange, String> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let first: Ipv4Addr = a.trim().parse().map_err(|e| format!("{s}: {e}"))?;
        let last: Ipv4Addr = b.trim().parse().map_err(|e| format!("{s}: {e}"))?;
        if first > last {
            return Err(format!("{s}: first address after last"));
        }
        return Ok(IpRange { first, last });
    }
    let net: ipnet::Ipv4Net = s.parse().map_err(|e| format!("{s}: {e}"))?;
    Ok(IpRange {
        first: net.network(),
        last: net.broadcast(),
    })
}

/// `ip -o -4 addr show` output → (address, prefix length, carries `label`).
fn parse_addrs(text: &str, label: &str) -> Vec<(Ipv4Addr, String, bool)> {
    let mut found = Vec::new();
    for line in text.lines() {
        // "2: eth0    inet 172.28.0.200/32 scope global eth0:lb\       valid_lft ..."
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(i) = words.iter().position(|w| *w == "inet") else {
            continue;
        };
        let Some((addr, len)) = words.get(i + 1).and_then(|a| a.split_once('/')) else {
            continue;
        };
        let Ok(addr) = addr.parse::<Ipv4Addr>() else {
            continue;
        };
        let labelled = words.iter().any(|w| w.trim_end_matches('\\') == label);
        found.push((addr, len.to_string(), labelled));
    }
    found
}

#[cfg(test)]
#[test]
fn parses_ip_addr_output() {
    let text = "2: eth0    inet 172.28.0.11/24 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet 172.28.0.200/32 scope global eth0:lb\\       valid_lft forever preferred_lft forever
";
    let got = parse_addrs(text, "eth0:lb");
    assert_eq!(
        got,
        vec![
            ("172.28.0.11".parse().unwrap(), "24".to_string(), false),
            ("172.28.0.200".parse().unwrap(), "32".to_string(), true),
        ]
    );
}

/// The addresses this speaker put on its interface; all removed on drop.
pub struct Announcer {
    netns: Option<String>,
    interface: String,
    label: String,
    announced: BTreeSet<Ipv4Addr>,
}

impl Announcer {
    pub fn new(netns: Option<String>, interface: &str) -> Announcer {
        // Addresses carry the label `<if>:lb` (at most 15 bytes), so a restarted speaker
        // finds the ones a crashed one left.
        let mut label = format!("{interface}:lb");
        if label.len() > 15 {
            label = format!("{}:lb", &interface[..12.min(interface.len())]);
        }
        Announcer {
            netns,
            interface: interface.to_string(),
            label,
            announced: BTreeSet::new(),
        }
    }

    pub fn announced(&self) -> &BTreeSet<Ipv4Addr> {
        &self.announced
    }

    fn ip(&self, commands: &str) -> Result<(), String> {
        svcnet_netns::ip_batch(self.netns.as_deref(), commands).map_err(|e| e.to_string())
    }

    fn in_ns(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    /// The IPv4 addresses on the interface: (address, prefix length, carries our label).
    fn list(&self) -> Vec<(Ipv4Addr, String, bool)> {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["-n", ns]);
                c
            }
            None => Command::new("ip"),
        };
        c.args(["-o", "-4", "addr", "show", "dev", &self.interface]);
        let Ok(out) = c.stderr(Stdio::null()).output() else {
            return Vec::new();
        };
        parse_addrs(&String::from_utf8_lossy(&out.stdout), &self.label)
    }

    /// Remove the /32s on the interface that a previous speaker left: those with our label,
    /// and any /32 inside `ranges` (the LoadBalancer pools).
    pub fn remove_stale(&self, ranges: &[IpRange]) -> Vec<Ipv4Addr> {
        let stale: Vec<Ipv4Addr> = self
            .list()
            .into_iter()
            .filter(|(addr, len, labelled)| {
                *labelled || (len == "32" && ranges.iter().any(|r| r.contains(*addr)))
            })
            .map(|(addr, _, _)| addr)
            .collect();
        for ip in &stale {
            if let Err(e) = self.ip(&format!("addr del {ip}/32 dev {}\n", self.interface)) {
                tracing::warn!(%ip, error = %e, "removing a stale LoadBalancer address");
            } else {
                tracing::info!(%ip, "removed a stale LoadBalancer address");
            }
        }
        stale
    }

    /// Put back (and announce again) the addresses this speaker added that someone removed.
    pub fn restore_missing(&mut self) {
        let present: BTreeSet<Ipv4Addr> = self.list().into_iter().map(|(a, _, _)| a).collect();
        let missing: Vec<Ipv4Addr> = self.announced.difference(&present).copied().collect();
        for ip in missing {
            tracing::warn!(%ip, interface = %self.interface, "LoadBalancer address removed behind the speaker's back: adding it again");
            if let Err(e) = self.add(ip) {
                tracing::warn!(%ip, error = %e, "adding a LoadBalancer address again");
            }
        }
    }

    /// Put `ip` on the interface and tell the neighbours (unsolicited ARP, in the background).
    pub fn add(&mut self, ip: Ipv4Addr) -> Result<(), String> {
        self.ip(&format!(
            "addr replace {ip}/32 dev {} label {}\n",
            self.interface, self.label
        ))?;
        self.announced.insert(ip);
        let mut arping = self.in_ns("arping");
        arping
            .args(["-U", "-c", "2", "-I", &self.interface, &ip.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        std::thread::spawn(move || match arping.output() {
            Ok(o) if o.status.success() => {}
            // iputils' arping exits 1 when no reply came, which unsolicited ARP never gets.
            Ok(o) if o.status.code() == Some(1) && o.stderr.is_empty() => {}
            Ok(o) => {
                tracing::warn!(%ip, stderr = %String::from_utf8_lossy(&o.stderr).trim(), "arping failed")
            }
            Err(e) => tracing::warn!(%ip, error = %e, "arping (iputils-arping) could not run"),
        });
        Ok(())
    }

    pub fn remove(&mut self, ip: Ipv4Addr) -> Result<(), String> {
        self.announced.remove(&ip);
        self.ip(&format!("addr del {ip}/32 dev {}\n", self.interface))
    }

    /// Remove every address this speaker added.
    pub fn clear(&mut self) {
        for ip in std::mem::take(&mut self.announced) {
            if let Err(e) = self.ip(&format!("addr del {ip}/32 dev {}\n", self.interface)) {
                tracing::debug!(%ip, error = %e, "removing a LoadBalancer address");
            }
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.clear();
    }
}
