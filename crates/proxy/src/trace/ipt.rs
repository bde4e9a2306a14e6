//! The same for `iptables-restore` input as [`crate::iptables::render_with`] writes it, with
//! the jumps from the built-in chains that [`crate::iptables::ensure_jumps`] installs.
//!
//! `-m statistic --mode random` is emulated deterministically: in one trace the first
//! [`IptTracer::pick`] statistic matches fail and the next one matches (so `pick = k` takes
//! the k-th endpoint of a `KUBE-SVC-*` chain); `-m recent` lists are kept in the tracer with a
//! clock, as the kernel keeps them.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::Protocol;

use super::packet::{is_local, Packet, ParseFailed, Trace, Verdict, Walk, MAX_DEPTH};

/// The jumps from built-in chains (kube-proxy's `iptablesJumpChains`, as
/// `crate::iptables::JUMPS` lists them), in `-A` form.
const BUILTIN_JUMPS: &str = "\
*filter
-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES
-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD
-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
COMMIT
*nat
-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING
COMMIT
";

const BUILTIN: [(&str, &str); 6] = [
    ("filter", "INPUT"),
    ("filter", "FORWARD"),
    ("filter", "OUTPUT"),
    ("nat", "PREROUTING"),
    ("nat", "OUTPUT"),
    ("nat", "POSTROUTING"),
];

#[derive(Clone, Debug, PartialEq)]
enum M {
    Src { neg: bool, net: Ipv4Net },
    Dst { neg: bool, net: Ipv4Net },
    Proto(Protocol),
    Dport(u16),
    AddrLocal { src: bool },
    CtState(Vec<String>),
    Mark { neg: bool, value: u32, mask: u32 },
    Statistic(f64),
    RecentCheck { name: String, seconds: u64 },
    RecentSet { name: String },
}

#[derive(Clone, Debug, PartialEq)]
enum T {
    Jump(String),
    Return,
    Accept,
    Drop,
    Reject,
    MarkOr(u32),
    MarkXor(u32),
    Masquerade,
    Dnat(Ipv4Addr, u16),
}

#[derive(Clone, Debug, PartialEq)]
pub struct IRule {
    pub text: String,
    matches: Vec<M>,
    target: Option<T>,
}

/// Tables (`filter`, `nat`) of chains of rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IptRules {
    pub tables: BTreeMap<String, BTreeMap<String, Vec<IRule>>>,
}

/// Split like a shell: whitespace, double quotes.
fn words(line: &str) -> Result<Vec<String>, ParseFailed> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err(fail!("unbalanced quote in {line:?}"));
    }
    if any {
        out.push(cur);
    }
    Ok(out)
}

fn net(s: &str) -> Result<Ipv4Net, ParseFailed> {
    if s.contains('/') {
        let n: Ipv4Net = s.parse().map_err(|e| fail!("{s:?}: {e}"))?;
        if n.trunc() != n {
            return Err(fail!("{s} has host bits set"));
        }
        Ok(n)
    } else {
        let a: Ipv4Addr = s.parse().map_err(|e| fail!("{s:?}: {e}"))?;
        Ok(Ipv4Net::new(a, 32).unwrap())
    }
}

fn num(s: &str) -> Result<u32, ParseFailed> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| fail!("bad number {s:?}: {e}"))
}

/// One `-A CHAIN ...` line's options after the chain.
fn parse_rule(line: &str, w: &[String]) -> Result<IRule, ParseFailed> {
    let mut i = 0;
    let mut matches = Vec::new();
    let mut target = None;
    let mut neg = false;
    let next = |i: &mut usize| -> Result<&str, ParseFailed> {
        let t = w.get(*i).ok_or("unexpected end of rule")?;
        *i += 1;
        Ok(t.as_str())
    };
    while i < w.len() {
        let opt = next(&mut i)?;
        if opt == "!" {
            neg = true;
            continue;
        }
        let was_neg = std::mem::take(&mut neg);
        let allow_neg = matches!(opt, "-s" | "-d");
        if was_neg && !allow_neg {
            return Err(fail!("unsupported negation of {opt}"));
        }
        match opt {
            "-s" => matches.push(M::Src {
                neg: was_neg,
                net: net(next(&mut i)?)?,
            }),
            "-d" => matches.push(M::Dst {
                neg: was_neg,
                net: net(next(&mut i)?)?,
            }),
            "-p" => matches.push(M::Proto(match next(&mut i)? {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                p => return Err(fail!("unknown protocol {p}")),
            })),
            "-m" => match next(&mut i)? {
                "comment" => {
                    if next(&mut i)? != "--comment" {
                        return Err("-m comment without --comment".into());
                    }
                    next(&mut i)?;
                }
                p @ ("tcp" | "udp" | "sctp") => {
                    let proto_ok = matches
                        .iter()
                        .any(|m| matches!(m, M::Proto(x) if x.lower() == p));
                    if !proto_ok {
                        return Err(fail!("-m {p} without -p {p}"));
                    }
                    if w.get(i).map(String::as_str) == Some("--dport") {
                        i += 1;
                        let port = next(&mut i)?;
                        matches.push(M::Dport(
                            port.parse().map_err(|e| fail!("port {port:?}: {e}"))?,
                        ));
                    }
                }
                "addrtype" => {
                    let src = match next(&mut i)? {
                        "--src-type" => true,
                        "--dst-type" => false,
                        o => return Err(fail!("unknown addrtype option {o}")),
                    };
                    if next(&mut i)? != "LOCAL" {
                        return Err("addrtype other than LOCAL".into());
                    }
                    matches.push(M::AddrLocal { src });
                }
                "conntrack" => {
                    if next(&mut i)? != "--ctstate" {
                        return Err("-m conntrack without --ctstate".into());
                    }
                    let states: Vec<String> =
                        next(&mut i)?.split(',').map(str::to_string).collect();
                    for s in &states {
                        if !["NEW", "ESTABLISHED", "RELATED", "INVALID"].contains(&s.as_str()) {
                            return Err(fail!("unknown ctstate {s}"));
                        }
                    }
                    matches.push(M::CtState(states));
                }
                "mark" => {
                    let mut mneg = false;
                    if w.get(i).map(String::as_str) == Some("!") {
                        mneg = true;
                        i += 1;
                    }
                    if next(&mut i)? != "--mark" {
                        return Err("-m mark without --mark".into());
                    }
                    let v = next(&mut i)?;
                    let (value, mask) = match v.split_once('/') {
                        Some((a, b)) => (num(a)?, num(b)?),
                        None => (num(v)?, u32::MAX),
                    };
                    matches.push(M::Mark {
                        neg: mneg,
                        value,
                        mask,
                    });
                }
                "statistic" => {
                    let (a, b, c) = (next(&mut i)?, next(&mut i)?, next(&mut i)?);
                    if (a, b, c) != ("--mode", "random", "--probability") {
                        return Err(fail!("unsupported statistic {a} {b} {c}"));
                    }
                    let p = next(&mut i)?;
                    let p: f64 = p.parse().map_err(|e| fail!("probability {p:?}: {e}"))?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(fail!("probability {p}"));
                    }
                    matches.push(M::Statistic(p));
                }
                "recent" => {
                    let (mut check, mut set, mut seconds, mut name) = (false, false, None, None);
                    let (mut mask, mut rsource) = (false, false);
                    while let Some(o) = w.get(i).filter(|o| o.starts_with("--")) {
                        i += 1;
                        match o.as_str() {
                            "--rcheck" => check = true,
                            "--set" => set = true,
                            "--reap" => {}
                            "--rsource" => rsource = true,
                            "--seconds" => {
                                seconds = Some(u64::from(num(next(&mut i)?)?));
                            }
                            "--name" => name = Some(next(&mut i)?.to_string()),
                            "--mask" => {
                                mask = next(&mut i)? == "255.255.255.255";
                            }
                            o => return Err(fail!("unknown recent option {o}")),
                        }
                    }
                    let name = name.ok_or("-m recent without --name")?;
                    if !mask || !rsource {
                        return Err("-m recent other than by full source address".into());
                    }
                    match (check, set, seconds) {
                        (true, false, Some(seconds)) => {
                            matches.push(M::RecentCheck { name, seconds })
                        }
                        (false, true, None) => matches.push(M::RecentSet { name }),
                        _ => return Err("unsupported -m recent".into()),
                    }
                }
                m => return Err(fail!("unknown match module {m}")),
            },
            "-j" => {
                let t = next(&mut i)?;
                let mut opt = |want: &str| -> Result<String, ParseFailed> {
                    let o = next(&mut i)?;
                    if o != want {
                        return Err(fail!("-j {t}: expected {want}, found {o}"));
                    }
                    Ok(next(&mut i)?.to_string())
                };
                target = Some(match t {
                    "RETURN" => T::Return,
                    "ACCEPT" => T::Accept,
                    "DROP" => T::Drop,
                    "REJECT" => {
                        let with = opt("--reject-with")?;
                        if with != "icmp-port-unreachable" {
                            return Err(fail!("REJECT with {with}"));
                        }
                        T::Reject
                    }
                    "MARK" => {
                        let o = next(&mut i)?;
                        let v = num(next(&mut i)?)?;
                        match o {
                            "--or-mark" => T::MarkOr(v),
                            "--xor-mark" => T::MarkXor(v),
                            o => return Err(fail!("MARK {o}")),
                        }
                    }
                    "MASQUERADE" => {
                        if w.get(i).map(String::as_str) == Some("--random-fully") {
                            i += 1;
                        }
                        T::Masquerade
                    }
                    "DNAT" => {
                        let to = opt("--to-destination")?;
                        let (a, p) = to.split_once(':').ok_or_else(|| fail!("DNAT to {to}"))?;
                        T::Dnat(
                            a.parse().map_err(|e| fail!("{a:?}: {e}"))?,
                            p.parse().map_err(|e| fail!("{p:?}: {e}"))?,
                        )
                    }
                    c if c.starts_with("KUBE-") => T::Jump(c.to_string()),
                    c => return Err(fail!("unknown target {c}")),
                });
                if i < w.len() {
                    return Err(fail!("options after the target: {:?}", &w[i..]));
                }
            }
            o => return Err(fail!("unknown option {o}")),
        }
    }
    Ok(IRule {
        text: line.to_string(),
        matches,
        target,
    })
}

impl IptRules {
    /// The built-in chains with kube-proxy's jumps, and no chains of ours.
    pub fn new() -> IptRules {
        let mut r = IptRules::default();
        for (t, c) in BUILTIN {
            r.tables
                .entry(t.to_string())
                .or_default()
                .insert(c.to_string(), Vec::new());
        }
        for c in [
            "KUBE-SERVICES",
            "KUBE-EXTERNAL-SERVICES",
            "KUBE-NODEPORTS",
            "KUBE-FORWARD",
            "KUBE-PROXY-FIREWALL",
        ] {
            r.tables
                .get_mut("filter")
                .unwrap()
                .insert(c.to_string(), Vec::new());
        }
        for c in ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING"] {
            r.tables
                .get_mut("nat")
                .unwrap()
                .insert(c.to_string(), Vec::new());
        }
        r.restore(BUILTIN_JUMPS).expect("the built-in jumps");
        // `ensure_jumps` inserts each jump at the top (`-I`), so the last listed is first.
        for (t, c) in BUILTIN {
            r.tables.get_mut(t).unwrap().get_mut(c).unwrap().reverse();
        }
        r
    }

    /// `iptables-restore --noflush`: declared chains are created or flushed, rules
    /// appended, `-X` chains deleted; all or nothing.
    pub fn restore(&mut self, input: &str) -> Result<(), ParseFailed> {
        let mut next = self.clone();
        let mut table: Option<String> = None;
        for (n, line) in input.lines().enumerate() {
            let err = |e: ParseFailed| fail!("line {}: {line:?}: {e}", n + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(t) = line.strip_prefix('*') {
                if !["filter", "nat"].contains(&t) {
                    return Err(err("unknown table".into()));
                }
                next.tables.entry(t.to_string()).or_default();
                table = Some(t.to_string());
                continue;
            }
            let t = table.clone().ok_or_else(|| err("outside a table".into()))?;
            if line == "COMMIT" {
                table = None;
                continue;
            }
            let chains = next.tables.get_mut(&t).unwrap();
            if let Some(decl) = line.strip_prefix(':') {
                let name = decl
                    .strip_suffix(" - [0:0]")
                    .ok_or_else(|| err("bad chain declaration".into()))?;
                chains.insert(name.to_string(), Vec::new());
                continue;
            }
            let w = words(line).map_err(err)?;
            match w.first().map(String::as_str) {
                Some("-A") => {
                    let chain = w.get(1).ok_or_else(|| err("no chain".into()))?;
                    let rule = parse_rule(line, &w[2..]).map_err(err)?;
                    if let Some(T::Jump(to)) = &rule.target {
                        if !chains.contains_key(to) {
                            return Err(err(fail!("no chain {to}")));
                        }
                    }
                    chains
                        .get_mut(chain)
                        .ok_or_else(|| err(fail!("no chain {chain}")))?
                        .push(rule);
                }
                Some("-X") if w.len() == 2 => {
                    let name = &w[1];
                    match chains.get(name) {
                        None => return Err(err("no such chain".into())),
                        Some(r) if !r.is_empty() => return Err(err("chain not empty".into())),
                        _ => {}
                    }
                    let used = chains
                        .values()
                        .flatten()
                        .any(|r| r.target == Some(T::Jump(name.clone())));
                    if used {
                        return Err(err("chain in use".into()));
                    }
                    chains.remove(name);
                }
                _ => return Err(err("unknown line".into())),
            }
        }
        if table.is_some() {
            return Err("missing COMMIT".into());
        }
        *self = next;
        Ok(())
    }
}

/// An [`IptRules`] and the kernel's state between packets.
pub struct IptTracer {
    pub rules: IptRules,
    pub local_ips: Vec<Ipv4Addr>,
    /// Which endpoint the statistic rules pick (see the module doc).
    pub pick: usize,
    pub now: u64,
    /// `-m recent` lists: name → source → last seen.
    recent: HashMap<String, HashMap<Ipv4Addr, u64>>,
}

struct ICtx {
    walk: Walk,
    skips: usize,
}

impl std::ops::Deref for ICtx {
    type Target = Walk;
    fn deref(&self) -> &Walk {
        &self.walk
    }
}

impl std::ops::DerefMut for ICtx {
    fn deref_mut(&mut self) -> &mut Walk {
        &mut self.walk
    }
}

impl IptTracer {
    pub fn from_restore(input: &str, local_ips: &[Ipv4Addr]) -> IptTracer {
        let mut rules = IptRules::new();
        rules
            .restore(input)
            .unwrap_or_else(|e| panic!("{e}\n{input}"));
        IptTracer {
            rules,
            local_ips: local_ips.to_vec(),
            pick: 0,
            now: 0,
            recent: HashMap::new(),
        }
    }

    fn is_local(&self, ip: Ipv4Addr) -> bool {
        is_local(&self.local_ips, ip)
    }

    pub fn trace(&mut self, p: Packet) -> Trace {
        let mut ctx = ICtx {
            walk: Walk::new(&p),
            skips: self.pick,
        };
        let mut delivered_locally = false;
        let run = |me: &mut Self, ctx: &mut ICtx, table: &str, chain: &str| -> Verdict {
            if table == "nat" && !ctx.new {
                return Verdict::Accept;
            }
            me.run_chain(table, chain, ctx)
        };
        let verdict = 'walk: {
            if p.local {
                for (t, c) in [
                    ("nat", "OUTPUT"),
                    ("filter", "OUTPUT"),
                    ("nat", "POSTROUTING"),
                ] {
                    let v = run(self, &mut ctx, t, c);
                    if v != Verdict::Accept {
                        break 'walk v;
                    }
                }
                if self.is_local(ctx.daddr) {
                    delivered_locally = true;
                    let v = run(self, &mut ctx, "filter", "INPUT");
                    if v != Verdict::Accept {
                        break 'walk v;
                    }
                }
                Verdict::Accept
            } else {
                let v = run(self, &mut ctx, "nat", "PREROUTING");
                if v != Verdict::Accept {
                    break 'walk v;
                }
                let rest: &[(&str, &str)] = if self.is_local(ctx.daddr) {
                    delivered_locally = true;
                    &[("filter", "INPUT")]
                } else {
                    &[("filter", "FORWARD"), ("nat", "POSTROUTING")]
                };
                for (t, c) in rest {
                    let v = run(self, &mut ctx, t, c);
                    if v != Verdict::Accept {
                        break 'walk v;
                    }
                }
                Verdict::Accept
            }
        };
        ctx.walk.into_trace(verdict, delivered_locally)
    }

    fn matches(&mut self, m: &M, ctx: &mut ICtx) -> bool {
        match m {
            M::Src { neg, net } => net.contains(&ctx.saddr) != *neg,
            M::Dst { neg, net } => net.contains(&ctx.daddr) != *neg,
            M::Proto(p) => *p == ctx.proto,
            M::Dport(p) => *p == ctx.dport,
            M::AddrLocal { src } => self.is_local(if *src { ctx.saddr } else { ctx.daddr }),
            M::CtState(s) => s
                .iter()
                .any(|s| s == if ctx.new { "NEW" } else { "ESTABLISHED" }),
            M::Mark { neg, value, mask } => (ctx.mark & mask == *value) != *neg,
            M::Statistic(_) => {
                ctx.random = true;
                if ctx.skips == 0 {
                    true
                } else {
                    ctx.skips -= 1;
                    false
                }
            }
            M::RecentCheck { name, seconds } => self
                .recent
                .get(name)
                .and_then(|l| l.get(&ctx.saddr))
                .is_some_and(|t| self.now < t + seconds),
            M::RecentSet { name } => {
                self.recent
                    .entry(name.clone())
                    .or_default()
                    .insert(ctx.saddr, self.now);
                true
            }
        }
    }

    fn run_chain(&mut self, table: &str, base: &str, ctx: &mut ICtx) -> Verdict {
        let mut stack: Vec<(String, usize)> = Vec::new();
        let mut cur = (base.to_string(), 0usize);
        ctx.chains.push(format!("{table}/{base}"));
        loop {
            let rule = self.rules.tables[table]
                .get(&cur.0)
                .unwrap_or_else(|| panic!("no chain {table}/{}", cur.0))
                .get(cur.1)
                .cloned();
            let Some(rule) = rule else {
                match stack.pop() {
                    Some(c) => {
                        cur = c;
                        continue;
                    }
                    None => return Verdict::Accept,
                }
            };
            cur.1 += 1;
            // Matches in order, stopping at the first that fails (as the kernel does,
            // which matters for `-m recent --set` and the statistic emulation).
            if !rule.matches.iter().all(|m| self.matches(m, ctx)) {
                continue;
            }
            match rule.target {
                None => {}
                Some(T::MarkOr(v)) => ctx.mark |= v,
                Some(T::MarkXor(v)) => ctx.mark ^= v,
                Some(T::Accept) => return Verdict::Accept,
                Some(T::Drop) => return Verdict::Drop,
                Some(T::Reject) => return Verdict::Reject { tcp_reset: false },
                Some(T::Masquerade) => {
                    assert_eq!(table, "nat", "{}", rule.text);
                    ctx.masqueraded = true;
                    return Verdict::Accept;
                }
                Some(T::Dnat(ip, port)) => {
                    assert_eq!(table, "nat", "{}", rule.text);
                    ctx.daddr = ip;
                    ctx.dport = port;
                    ctx.dnat = Some((ip, port));
                    return Verdict::Accept;
                }
                Some(T::Return) => match stack.pop() {
                    Some(c) => cur = c,
                    None => return Verdict::Accept,
                },
                Some(T::Jump(to)) => {
                    assert!(stack.len() < MAX_DEPTH, "jump loop: {:?}", ctx.chains);
                    ctx.chains.push(to.clone());
                    stack.push(std::mem::replace(&mut cur, (to, 0)));
                }
            }
        }
    }

    pub fn advance(&mut self, secs: u64) {
        self.now += secs;
    }

    /// The probabilities of the statistic rules of every chain that has them.
    pub fn probabilities(&self) -> BTreeMap<String, (Vec<f64>, usize)> {
        let mut out = BTreeMap::new();
        for (name, rules) in &self.rules.tables["nat"] {
            let ps: Vec<f64> = rules
                .iter()
                .flat_map(|r| r.matches.iter())
                .filter_map(|m| match m {
                    M::Statistic(p) => Some(*p),
                    _ => None,
                })
                .collect();
            // Rules leading to endpoints without affinity checks.
            let n = rules
                .iter()
                .filter(|r| {
                    matches!(&r.target, Some(T::Jump(t)) if t.starts_with("KUBE-SEP-"))
                        && !r.matches.iter().any(|m| matches!(m, M::RecentCheck { .. }))
                })
                .count();
            if n > 0 {
                out.insert(name.clone(), (ps, n));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_unknown_syntax_fails_loudly() {
        let bad = [
            "*nat\n-A KUBE-SERVICES -m set --match-set x src -j ACCEPT\nCOMMIT\n",
            "*nat\n-A KUBE-SERVICES -j KUBE-NOPE\nCOMMIT\n",
            "*nat\n-A KUBE-SERVICES -j SNAT --to-source 1.2.3.4\nCOMMIT\n",
            "*nat\n-A KUBE-SERVICES -m tcp --dport 80 -j ACCEPT\nCOMMIT\n",
            "*nat\n-A KUBE-SERVICES -p tcp -m statistic --mode nth --every 2 -j ACCEPT\nCOMMIT\n",
            "*nat\n-A KUBE-SERVICES -j ACCEPT\n",
            "*mangle\nCOMMIT\n",
            "*nat\n-I KUBE-SERVICES -j ACCEPT\nCOMMIT\n",
            "*nat\n-X KUBE-SERVICES\nCOMMIT\n",
        ];
        for input in bad {
            let mut r = IptRules::new();
            assert!(r.restore(input).is_err(), "accepted:\n{input}");
        }
    }
}
