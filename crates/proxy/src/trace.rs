//! A packet tracer over the `nft -f` scripts [`crate::nftables`] renders (as kube-proxy's
//! `pkg/proxy/nftables/helpers_test.go` `tracePacket`): the script is parsed into a
//! [`Ruleset`] and a packet is walked through its base chains in the kernel's hook order,
//! giving the verdict, the DNAT destination, whether it was masqueraded, and the chains
//! visited.
//!
//! Only the syntax the renderer emits is understood; anything else is a parse error, so that a
//! change of the renderer is noticed here rather than silently ignored. Partial-sync scripts
//! ([`crate::nftables::render_changes`]) are applied to a parsed ruleset with
//! [`Ruleset::apply`], with nft's checks (a deleted element, chain or map must exist; a chain
//! or map still referenced cannot be deleted; a rule may only refer to existing chains and
//! maps).
//!
//! State that the kernel keeps between packets is kept in the [`Tracer`]: the `numgen inc`
//! counter of every rule (so consecutive traces round-robin), and the elements of dynamic
//! maps (sessionAffinity), with a clock ([`Tracer::advance`]) for their timeouts. `numgen
//! random` takes [`Tracer::random_pick`] (0 by default) and the trace says it was random.
//!
//! Hooks, as the kernel runs them: a packet arriving (from a pod or from outside) passes
//! prerouting (filter -110, nat -100), the routing decision on its (translated) destination,
//! then input, or forward and postrouting; a packet the node sends passes output (filter -110,
//! nat -100, filter -90), postrouting, and input when it is for the node. NAT chains see only
//! the first packet of a connection ([`Packet::established`] skips them).
//!
//! [`ipt`] is the same for the iptables mode's `iptables-restore` input.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::Protocol;

const TABLE: &str = "ip svcnet";
/// The kernel's limit of nested jumps.
const MAX_DEPTH: usize = 16;

/// A component of a set/map key or a compared value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    Ip(Ipv4Addr),
    Net(Ipv4Net),
    Num(u32),
    /// A protocol name (`tcp`, `udp`, `sctp`).
    Name(String),
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Ip(a) => write!(f, "{a}"),
            Atom::Net(n) => write!(f, "{n}"),
            Atom::Num(n) => write!(f, "{n}"),
            Atom::Name(s) => f.write_str(s),
        }
    }
}

fn parse_atom(s: &str) -> Result<Atom, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Ok(Atom::Ip(ip));
    }
    if s.contains('/') {
        let n: Ipv4Net = s.parse().map_err(|e| format!("bad prefix {s:?}: {e}"))?;
        if n.trunc() != n {
            return Err(format!("prefix {s} has host bits set (nft refuses it)"));
        }
        return Ok(Atom::Net(n));
    }
    if let Some(h) = s.strip_prefix("0x") {
        return u32::from_str_radix(h, 16)
            .map(Atom::Num)
            .map_err(|e| format!("bad number {s:?}: {e}"));
    }
    if let Ok(n) = s.parse::<u32>() {
        return Ok(Atom::Num(n));
    }
    match s {
        "tcp" | "udp" | "sctp" => Ok(Atom::Name(s.to_string())),
        _ => Err(format!("unknown value {s:?}")),
    }
}

/// Whether `value` (from the packet) matches `pattern` (a prefix matches its addresses).
fn atom_matches(pattern: &Atom, value: &Atom) -> bool {
    match (pattern, value) {
        (Atom::Net(n), Atom::Ip(a)) => n.contains(a),
        _ => pattern == value,
    }
}

/// A verdict as rules and verdict maps state it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
}

impl Target {
    fn target(&self) -> Option<&str> {
        match self {
            Target::Jump(c) | Target::Goto(c) => Some(c),
            _ => None,
        }
    }
}

fn parse_jump(s: &str) -> Result<Target, String> {
    let t: Vec<&str> = s.split_whitespace().collect();
    match t.as_slice() {
        ["accept"] => Ok(Target::Accept),
        ["drop"] => Ok(Target::Drop),
        ["return"] => Ok(Target::Return),
        ["jump", c] => Ok(Target::Jump(c.to_string())),
        ["goto", c] => Ok(Target::Goto(c.to_string())),
        _ => Err(format!("unknown verdict {s:?}")),
    }
}

/// What a map's elements map to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataKind {
    /// A set.
    None,
    Verdict,
    Mark,
    /// `ipv4_addr . inet_service`.
    AddrPort,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Data {
    None,
    Verdict(Target),
    Mark(u32),
    AddrPort(Ipv4Addr, u16),
}

/// A named set or map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    kind: DataKind,
    arity: usize,
    dynamic: bool,
    /// Element key → (data, expiry time for dynamic elements).
    elems: BTreeMap<Vec<Atom>, (Data, Option<u64>)>,
}

impl Map {
    fn parse_key(&self, s: &str) -> Result<Vec<Atom>, String> {
        let key: Vec<Atom> = s.split(" . ").map(parse_atom).collect::<Result<_, _>>()?;
        if key.len() != self.arity {
            return Err(format!(
                "key {s:?} has {} parts, want {}",
                key.len(),
                self.arity
            ));
        }
        if key.iter().any(|a| matches!(a, Atom::Net(_))) {
            return Err(format!(
                "interval element {s:?} in a set without flags interval"
            ));
        }
        Ok(key)
    }

    fn parse_element(&self, s: &str) -> Result<(Vec<Atom>, Data), String> {
        let (k, d) = match (self.kind, s.split_once(" : ")) {
            (DataKind::None, None) => return Ok((self.parse_key(s)?, Data::None)),
            (DataKind::None, Some(_)) => return Err(format!("set element with data: {s:?}")),
            (_, None) => return Err(format!("map element without data: {s:?}")),
            (_, Some(kd)) => kd,
        };
        let key = self.parse_key(k)?;
        let data = match self.kind {
            DataKind::Verdict => Data::Verdict(parse_jump(d)?),
            DataKind::Mark => match parse_atom(d)? {
                Atom::Num(n) => Data::Mark(n),
                _ => return Err(format!("bad mark {d:?}")),
            },
            DataKind::AddrPort => match d.split(" . ").collect::<Vec<_>>().as_slice() {
                [a, p] => Data::AddrPort(
                    a.parse().map_err(|e| format!("bad address {a:?}: {e}"))?,
                    p.parse().map_err(|e| format!("bad port {p:?}: {e}"))?,
                ),
                _ => return Err(format!("bad address . port {d:?}")),
            },
            DataKind::None => unreachable!(),
        };
        Ok((key, data))
    }

    fn get(&self, key: &[Atom], now: u64) -> Option<&Data> {
        match self.elems.get(key) {
            Some((d, exp)) if exp.is_none_or(|e| e > now) => Some(d),
            _ => None,
        }
    }

    /// The live elements' keys, as text.
    pub fn keys(&self, now: u64) -> Vec<String> {
        self.elems
            .iter()
            .filter(|(_, (_, exp))| exp.is_none_or(|e| e > now))
            .map(|(k, _)| {
                k.iter()
                    .map(Atom::to_string)
                    .collect::<Vec<_>>()
                    .join(" . ")
            })
            .collect()
    }
}

/// A packet field or generator a rule reads.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Saddr,
    Daddr,
    L4proto,
    Dport,
    CtMark,
    MetaMark,
    Numgen {
        random: bool,
        modulus: u32,
        offset: u32,
        /// Identifies this expression's counter (a new rule restarts it, as in the kernel).
        id: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MarkOp {
    Or,
    Xor,
}

/// One expression or statement of a rule, evaluated in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Cmp {
        expr: Expr,
        neg: bool,
        value: Atom,
    },
    AnonSet {
        expr: Expr,
        neg: bool,
        elems: Vec<Atom>,
    },
    Lookup {
        key: Vec<Expr>,
        set: String,
    },
    MaskCmp {
        expr: Expr,
        mask: u32,
        value: u32,
    },
    FibLocal {
        saddr: bool,
    },
    CtStateNew,
    Vmap {
        key: Vec<Expr>,
        map: String,
    },
    SetCtMark(Expr),
    SetCtMarkMap {
        key: Vec<Expr>,
        map: String,
    },
    SetMetaMark {
        op: MarkOp,
        value: u32,
    },
    Update {
        map: String,
        key: Vec<Expr>,
        timeout: u64,
        data: u32,
    },
    Dnat {
        key: Vec<Expr>,
        map: String,
    },
    Masquerade,
    Reject {
        tcp_reset: bool,
    },
    Verdict(Target),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub text: String,
    items: Vec<Item>,
}

impl Rule {
    fn chains(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|i| match i {
            Item::Verdict(j) => j.target(),
            _ => None,
        })
    }

    fn maps(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|i| match i {
            Item::Lookup { set: m, .. }
            | Item::Vmap { map: m, .. }
            | Item::SetCtMarkMap { map: m, .. }
            | Item::Update { map: m, .. }
            | Item::Dnat { map: m, .. } => Some(m.as_str()),
            _ => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// `(type, hook, priority)` of a base chain.
    pub hook: Option<(String, String, i32)>,
    pub rules: Vec<Rule>,
}

/// The parsed `ip svcnet` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: BTreeMap<String, Chain>,
    pub maps: BTreeMap<String, Map>,
    /// Numbers numgen expressions.
    next_id: usize,
}

/// Token cursor over one rule.
struct Toks<'a> {
    t: Vec<&'a str>,
    i: usize,
}

impl<'a> Toks<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.t.get(self.i).copied()
    }
    fn peek2(&self) -> Option<&'a str> {
        self.t.get(self.i + 1).copied()
    }
    fn next(&mut self) -> Result<&'a str, String> {
        let t = self.peek().ok_or("unexpected end of rule")?;
        self.i += 1;
        Ok(t)
    }
    fn expect(&mut self, want: &str) -> Result<(), String> {
        let t = self.next()?;
        if t != want {
            return Err(format!("expected {want:?}, found {t:?}"));
        }
        Ok(())
    }
    fn eat(&mut self, want: &str) -> bool {
        if self.peek() == Some(want) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn name(&mut self) -> Result<String, String> {
        let t = self.next()?;
        t.strip_prefix('@')
            .map(str::to_string)
            .ok_or_else(|| format!("expected @name, found {t:?}"))
    }
    fn num(&mut self) -> Result<u32, String> {
        match parse_atom(self.next()?)? {
            Atom::Num(n) => Ok(n),
            a => Err(format!("expected a number, found {a}")),
        }
    }
    /// `{ a, b, ... }` (the `{` already taken).
    fn anon_set(&mut self) -> Result<Vec<Atom>, String> {
        let mut out = Vec::new();
        loop {
            let t = self.next()?;
            if t == "}" {
                break;
            }
            out.push(parse_atom(t.trim_end_matches(','))?);
        }
        if out.is_empty() {
            return Err("empty anonymous set".into());
        }
        Ok(out)
    }
}

impl Ruleset {
    fn parse_primary(&mut self, t: &mut Toks) -> Result<Expr, String> {
        let a = t.next()?;
        Ok(match (a, t.next()?) {
            ("ip", "saddr") => Expr::Saddr,
            ("ip", "daddr") => Expr::Daddr,
            ("meta", "l4proto") => Expr::L4proto,
            ("meta", "mark") => Expr::MetaMark,
            ("th", "dport") => Expr::Dport,
            ("ct", "mark") => Expr::CtMark,
            ("numgen", g @ ("inc" | "random")) => {
                t.expect("mod")?;
                let modulus = t.num()?;
                if modulus == 0 {
                    return Err("numgen mod 0".into());
                }
                let offset = if t.eat("offset") { t.num()? } else { 0 };
                self.next_id += 1;
                Expr::Numgen {
                    random: g == "random",
                    modulus,
                    offset,
                    id: self.next_id,
                }
            }
            (a, b) => return Err(format!("unknown expression {a:?} {b:?}")),
        })
    }

    fn parse_concat(&mut self, t: &mut Toks) -> Result<Vec<Expr>, String> {
        let mut out = vec![self.parse_primary(t)?];
        while t.eat(".") {
            out.push(self.parse_primary(t)?);
        }
        Ok(out)
    }

    /// An expression followed by how it is used: a comparison, a set lookup or a verdict map.
    fn parse_relational(&mut self, t: &mut Toks) -> Result<Item, String> {
        let mut key = self.parse_concat(t)?;
        let tok = t.peek().ok_or("expression without use")?;
        if tok.starts_with('@') {
            let set = t.name()?;
            return Ok(Item::Lookup { key, set });
        }
        if tok == "vmap" {
            t.next()?;
            let map = t.name()?;
            return Ok(Item::Vmap { key, map });
        }
        if key.len() != 1 {
            return Err(format!("concatenation followed by {tok:?}"));
        }
        let expr = key.remove(0);
        if tok == "&" {
            t.next()?;
            let mask = t.num()?;
            t.expect("==")?;
            let value = t.num()?;
            return Ok(Item::MaskCmp { expr, mask, value });
        }
        let neg = if t.eat("!=") {
            true
        } else {
            t.eat("==");
            false
        };
        if t.eat("{") {
            let elems = t.anon_set()?;
            return Ok(Item::AnonSet { expr, neg, elems });
        }
        let value = parse_atom(t.next()?)?;
        Ok(Item::Cmp { expr, neg, value })
    }

    fn parse_rule(&mut self, text: &str) -> Result<Rule, String> {
        let mut t = Toks {
            t: text.split_whitespace().collect(),
            i: 0,
        };
        let mut items = Vec::new();
        while let Some(tok) = t.peek() {
            let item = match (tok, t.peek2()) {
                ("ct", Some("state")) => {
                    t.next()?;
                    t.next()?;
                    t.expect("new")?;
                    Item::CtStateNew
                }
                ("ct", Some("mark")) if t.t.get(t.i + 2) == Some(&"set") => {
                    t.i += 3;
                    if t.peek() == Some("numgen") {
                        let e = self.parse_primary(&mut t)?;
                        if t.peek() == Some("map") {
                            return Err("numgen map in ct mark set".into());
                        }
                        Item::SetCtMark(e)
                    } else {
                        let key = self.parse_concat(&mut t)?;
                        t.expect("map")?;
                        let map = t.name()?;
                        Item::SetCtMarkMap { key, map }
                    }
                }
                ("meta", Some("mark")) if t.t.get(t.i + 2) == Some(&"set") => {
                    t.i += 3;
                    t.expect("meta")?;
                    t.expect("mark")?;
                    let op = match t.next()? {
                        "|" => MarkOp::Or,
                        "^" => MarkOp::Xor,
                        o => return Err(format!("unknown mark operation {o:?}")),
                    };
                    let value = t.num()?;
                    Item::SetMetaMark { op, value }
                }
                ("ip" | "meta" | "th" | "ct", _) => self.parse_relational(&mut t)?,
                ("fib", _) => {
                    t.next()?;
                    let saddr = match t.next()? {
                        "saddr" => true,
                        "daddr" => false,
                        o => return Err(format!("unknown fib key {o:?}")),
                    };
                    t.expect("type")?;
                    t.expect("local")?;
                    Item::FibLocal { saddr }
                }
                ("update", _) => {
                    t.next()?;
                    let map = t.name()?;
                    t.expect("{")?;
                    let key = self.parse_concat(&mut t)?;
                    t.expect("timeout")?;
                    let to = t.next()?;
                    let timeout = to
                        .strip_suffix('s')
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| format!("bad timeout {to:?}"))?;
                    t.expect(":")?;
                    let data = t.num()?;
                    t.expect("}")?;
                    Item::Update {
                        map,
                        key,
                        timeout,
                        data,
                    }
                }
                ("dnat", _) => {
                    t.next()?;
                    t.expect("ip")?;
                    t.expect("to")?;
                    let key = self.parse_concat(&mut t)?;
                    t.expect("map")?;
                    let map = t.name()?;
                    Item::Dnat { key, map }
                }
                ("masquerade", _) => {
                    t.next()?;
                    t.eat("fully-random");
                    Item::Masquerade
                }
                ("reject", _) => {
                    t.next()?;
                    let tcp_reset = if t.eat("with") {
                        t.expect("tcp")?;
                        t.expect("reset")?;
                        true
                    } else {
                        false
                    };
                    Item::Reject { tcp_reset }
                }
                ("jump" | "goto", _) => {
                    let v = t.next()?;
                    let c = t.next()?;
                    Item::Verdict(parse_jump(&format!("{v} {c}"))?)
                }
                ("accept" | "drop" | "return", _) => Item::Verdict(parse_jump(t.next()?)?),
                _ => return Err(format!("unknown syntax at {tok:?}")),
            };
            let terminal = matches!(
                item,
                Item::Verdict(_) | Item::Reject { .. } | Item::Masquerade | Item::Dnat { .. }
            );
            items.push(item);
            if terminal && t.peek().is_some() {
                return Err(format!("statement after the verdict: {:?}", t.peek()));
            }
        }
        if items.is_empty() {
            return Err("empty rule".into());
        }
        let rule = Rule {
            text: text.trim().to_string(),
            items,
        };
        for c in rule.chains() {
            if !self.chains.contains_key(c) {
                return Err(format!("rule refers to chain {c} which does not exist"));
            }
        }
        for m in rule.maps() {
            if !self.maps.contains_key(m) {
                return Err(format!("rule refers to @{m} which does not exist"));
            }
        }
        Ok(rule)
    }

    fn declare_map(&mut self, name: &str, set: bool, lines: &[&str]) -> Result<(), String> {
        let mut decl: Option<(DataKind, usize)> = None;
        let mut dynamic = false;
        let mut elements = Vec::new();
        for line in lines {
            if let Some(rest) = line.strip_prefix("elements = {") {
                let rest = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("bad elements line {line:?}"))?;
                elements.extend(rest.split(',').map(str::trim).filter(|s| !s.is_empty()));
                continue;
            }
            for clause in line.split(';').map(str::trim).filter(|c| !c.is_empty()) {
                if let Some(flags) = clause.strip_prefix("flags ") {
                    for f in flags.split(',') {
                        match f.trim() {
                            "dynamic" | "timeout" => dynamic = true,
                            f => return Err(format!("unknown flag {f:?}")),
                        }
                    }
                    continue;
                }
                let spec = clause
                    .strip_prefix("typeof ")
                    .or_else(|| clause.strip_prefix("type "))
                    .ok_or_else(|| format!("unknown declaration {clause:?} in {name}"))?;
                let (key, data) = match spec.split_once(" : ") {
                    Some((k, d)) => (k, Some(d)),
                    None => (spec, None),
                };
                let kind = match (set, data) {
                    (true, None) => DataKind::None,
                    (false, Some("verdict")) => DataKind::Verdict,
                    (false, Some("mark")) => DataKind::Mark,
                    (
                        false,
                        Some(
                            "ipv4_addr . inet_service"
                            | "ip daddr . th dport"
                            | "ip daddr . tcp dport",
                        ),
                    ) => DataKind::AddrPort,
                    _ => return Err(format!("unsupported declaration {clause:?} of {name}")),
                };
                for part in key.split(" . ") {
                    match part {
                        "ipv4_addr" | "inet_proto" | "inet_service" | "mark" | "ct mark" => {}
                        p if p.starts_with("numgen ") => {}
                        p => return Err(format!("unsupported key type {p:?} of {name}")),
                    }
                }
                decl = Some((kind, key.split(" . ").count()));
            }
        }
        let (kind, arity) = decl.ok_or_else(|| format!("{name} without a type"))?;
        let mut map = Map {
            kind,
            arity,
            dynamic,
            elems: BTreeMap::new(),
        };
        if let Some(old) = self.maps.get(name) {
            if (old.kind, old.arity, old.dynamic) != (kind, arity, dynamic) {
                return Err(format!("{name} redeclared with another type"));
            }
            return Ok(());
        }
        for e in elements {
            let (k, d) = map.parse_element(e)?;
            map.elems.insert(k, (d, None));
        }
        self.maps.insert(name.to_string(), map);
        Ok(())
    }

    /// A `table ip svcnet { ... }` block's lines (without the braces of the table). As nft
    /// does, the block's sets, maps and chains are created before its rules are added, so a
    /// rule may refer to a chain declared further down.
    fn table_block(&mut self, lines: &[&str]) -> Result<(), String> {
        let mut objects = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let end = lines[i..]
                .iter()
                .position(|l| *l == "}")
                .map(|p| i + p)
                .ok_or_else(|| format!("unterminated {line:?}"))?;
            let body = &lines[i + 1..end];
            let head = line
                .strip_suffix(" {")
                .ok_or_else(|| format!("unknown line in table: {line:?}"))?;
            match head.split_once(' ') {
                Some(("map", name)) => self.declare_map(name, false, body)?,
                Some(("set", name)) => self.declare_map(name, true, body)?,
                Some(("chain", name)) => {
                    let mut rules = body;
                    let mut hook = None;
                    if let Some(first) = body.first() {
                        if first.starts_with("type ") {
                            hook = Some(parse_hook(first)?);
                            rules = &body[1..];
                        }
                    }
                    let chain = self.chains.entry(name.to_string()).or_insert(Chain {
                        hook: hook.clone(),
                        rules: Vec::new(),
                    });
                    if chain.hook != hook && hook.is_some() {
                        return Err(format!("chain {name} redeclared with another hook"));
                    }
                    objects.push((name, rules));
                }
                _ => return Err(format!("unknown object in table: {line:?}")),
            }
            i = end + 1;
        }
        for (name, rules) in objects {
            for r in rules {
                let rule = self
                    .parse_rule(r)
                    .map_err(|e| format!("{name}: {r}: {e}"))?;
                self.chains.get_mut(name).unwrap().rules.push(rule);
            }
        }
        Ok(())
    }

    fn referenced_chain(&self, name: &str) -> Option<String> {
        for (c, ch) in &self.chains {
            if ch.rules.iter().any(|r| r.chains().any(|t| t == name)) {
                return Some(format!("a rule of {c}"));
            }
        }
        for (m, map) in &self.maps {
            if map
                .elems
                .values()
                .any(|(d, _)| matches!(d, Data::Verdict(j) if j.target() == Some(name)))
            {
                return Some(format!("an element of {m}"));
            }
        }
        None
    }

    /// Apply an `nft -f` script as the renderer writes them, in one transaction: on error the
    /// ruleset is unchanged.
    pub fn apply(&mut self, script: &str) -> Result<(), String> {
        let mut next = self.clone();
        next.apply_inner(script)?;
        *self = next;
        Ok(())
    }

    fn apply_inner(&mut self, script: &str) -> Result<(), String> {
        let lines: Vec<&str> = script.lines().map(str::trim).collect();
        let block_end = |from: usize| -> Result<usize, String> {
            // Blocks end at a `}` alone in the first column of the script.
            script
                .lines()
                .enumerate()
                .skip(from)
                .find(|(_, l)| *l == "}")
                .map(|(i, _)| i)
                .ok_or_else(|| format!("unterminated block at line {}", from + 1))
        };
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let ln = i + 1;
            let err = move |e: String| format!("line {ln}: {line:?}: {e}");
            if line.is_empty() || line == format!("table {TABLE} {{}}") {
                i += 1;
                continue;
            }
            if line == format!("delete table {TABLE}") {
                *self = Ruleset {
                    next_id: self.next_id,
                    ..Ruleset::default()
                };
                i += 1;
                continue;
            }
            if line == format!("table {TABLE} {{") {
                let end = block_end(i + 1)?;
                self.table_block(&lines[i + 1..end]).map_err(err)?;
                i = end + 1;
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let table_ok = words.get(2..4) == Some(&["ip", "svcnet"][..]);
            if !table_ok {
                return Err(err("not our table".into()));
            }
            match (words[0], words[1], &words[4..]) {
                (op @ ("add" | "delete"), "element", [name, "{"]) => {
                    let end = block_end(i + 1)?;
                    let map = self
                        .maps
                        .get(*name)
                        .ok_or_else(|| err(format!("no map {name}")))?
                        .clone();
                    let mut map = map;
                    for e in &lines[i + 1..end] {
                        let e = e
                            .strip_suffix(',')
                            .ok_or_else(|| err(format!("element {e:?} without comma")))?;
                        if op == "add" {
                            let (k, d) = map.parse_element(e).map_err(err)?;
                            if let Data::Verdict(j) = &d {
                                if let Some(c) = j.target() {
                                    if !self.chains.contains_key(c) {
                                        return Err(err(format!("element {e:?}: no chain {c}")));
                                    }
                                }
                            }
                            match map.elems.get(&k) {
                                Some((old, _)) if *old != d => {
                                    return Err(err(format!("element {e:?} exists with {old:?}")))
                                }
                                _ => {
                                    map.elems.insert(k, (d, None));
                                }
                            }
                        } else {
                            let k = map.parse_key(e).map_err(err)?;
                            if map.elems.remove(&k).is_none() {
                                return Err(err(format!("delete of absent element {e:?}")));
                            }
                        }
                    }
                    self.maps.insert(name.to_string(), map);
                    i = end + 1;
                    continue;
                }
                ("flush", "chain", [name]) => {
                    self.chains
                        .get_mut(*name)
                        .ok_or_else(|| err("no such chain".into()))?
                        .rules
                        .clear();
                }
                ("delete", "chain", [name]) => {
                    let ch = self
                        .chains
                        .get(*name)
                        .ok_or_else(|| err("no such chain".into()))?;
                    if !ch.rules.is_empty() {
                        return Err(err("chain not empty".into()));
                    }
                    if let Some(by) = self.referenced_chain(name) {
                        return Err(err(format!("chain in use by {by}")));
                    }
                    self.chains.remove(*name);
                }
                ("delete", "map" | "set", [name]) => {
                    if !self.maps.contains_key(*name) {
                        return Err(err("no such map".into()));
                    }
                    for (c, ch) in &self.chains {
                        if ch.rules.iter().any(|r| r.maps().any(|m| m == *name)) {
                            return Err(err(format!("map in use by a rule of {c}")));
                        }
                    }
                    self.maps.remove(*name);
                }
                ("add", "chain", [name]) => {
                    self.chains.entry(name.to_string()).or_insert(Chain {
                        hook: None,
                        rules: Vec::new(),
                    });
                }
                ("add", "rule", [chain, rest @ ..]) if !rest.is_empty() => {
                    if !self.chains.contains_key(*chain) {
                        return Err(err("no such chain".into()));
                    }
                    let rule = self.parse_rule(&rest.join(" ")).map_err(err)?;
                    self.chains.get_mut(*chain).unwrap().rules.push(rule);
                }
                _ => return Err(err("unknown command".into())),
            }
            i += 1;
        }
        Ok(())
    }

    /// Parse a complete script.
    pub fn parse(script: &str) -> Result<Ruleset, String> {
        let mut r = Ruleset::default();
        r.apply(script)?;
        Ok(r)
    }

    /// The table as text independent of how it was built (rules and elements; no counters).
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for (name, c) in &self.chains {
            out.push_str(&format!("chain {name} {:?}\n", c.hook));
            for r in &c.rules {
                out.push_str(&format!("\t{}\n", r.text));
            }
        }
        for (name, m) in &self.maps {
            out.push_str(&format!(
                "map {name} {:?} {} {}\n",
                m.kind, m.arity, m.dynamic
            ));
            for (k, (d, _)) in &m.elems {
                let k: Vec<String> = k.iter().map(Atom::to_string).collect();
                out.push_str(&format!("\t{} : {d:?}\n", k.join(" . ")));
            }
        }
        out
    }
}

fn parse_hook(line: &str) -> Result<(String, String, i32), String> {
    let t: Vec<&str> = line.split_whitespace().collect();
    match t.as_slice() {
        ["type", ty @ ("filter" | "nat"), "hook", hook @ ("prerouting" | "input" | "forward" | "output" | "postrouting"), "priority", prio, "policy", "accept;"] =>
        {
            let prio = prio
                .strip_suffix(';')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("bad priority in {line:?}"))?;
            Ok((ty.to_string(), hook.to_string(), prio))
        }
        _ => Err(format!("unsupported base chain declaration {line:?}")),
    }
}

/// A packet to trace: the first packet of a connection unless `new` is false.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub dport: u16,
    pub proto: Protocol,
    /// Sent by the node itself (output path) rather than arriving (from a pod or outside).
    pub local: bool,
    pub new: bool,
}

impl Packet {
    pub fn new(proto: Protocol, src: &str, dst: &str, dport: u16) -> Packet {
        Packet {
            src: src.parse().expect("source address"),
            dst: dst.parse().expect("destination address"),
            dport,
            proto,
            local: false,
            new: true,
        }
    }
    pub fn tcp(src: &str, dst: &str, dport: u16) -> Packet {
        Packet::new(Protocol::Tcp, src, dst, dport)
    }
    pub fn udp(src: &str, dst: &str, dport: u16) -> Packet {
        Packet::new(Protocol::Udp, src, dst, dport)
    }
    /// Sent by the node.
    pub fn sent_by_node(self) -> Packet {
        Packet {
            local: true,
            ..self
        }
    }
    /// A packet of an established connection.
    pub fn established(self) -> Packet {
        Packet { new: false, ..self }
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {}:{}{}{}",
            self.proto.lower(),
            self.src,
            self.dst,
            self.dport,
            if self.local { " (from the node)" } else { "" },
            if self.new { "" } else { " (established)" }
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Reject { tcp_reset: bool },
}

/// What happened to a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub verdict: Verdict,
    pub dnat: Option<(Ipv4Addr, u16)>,
    pub masqueraded: bool,
    /// A `numgen random` chose ([`Tracer::random_pick`]).
    pub random: bool,
    /// Routed to the node itself (input) rather than forwarded.
    pub delivered_locally: bool,
    /// `hook:chain` of every chain entered, in order.
    pub chains: Vec<String>,
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.verdict)?;
        if let Some((ip, port)) = self.dnat {
            write!(f, ", DNAT to {ip}:{port}")?;
        }
        if self.masqueraded {
            f.write_str(", masqueraded")?;
        }
        if self.random {
            f.write_str(", random pick")?;
        }
        write!(f, "; via {}", self.chains.join(" > "))
    }
}

/// The packet as the rules see it while it is traced.
struct Ctx {
    saddr: Ipv4Addr,
    daddr: Ipv4Addr,
    dport: u16,
    proto: Protocol,
    new: bool,
    mark: u32,
    ctmark: u32,
    dnat: Option<(Ipv4Addr, u16)>,
    masqueraded: bool,
    random: bool,
    chains: Vec<String>,
}

enum Outcome {
    /// The rule did not match (or a lookup missed): on to the next rule.
    Next,
    Jump(Target),
    /// A NAT statement: accepted for this base chain.
    Nat,
    Reject {
        tcp_reset: bool,
    },
}

/// A ruleset and the state the kernel keeps between packets.
pub struct Tracer {
    pub ruleset: Ruleset,
    /// The node's own addresses (`fib ... type local`; 127.0.0.0/8 is always local).
    pub local_ips: Vec<Ipv4Addr>,
    /// The index `numgen random mod N` returns (modulo N).
    pub random_pick: u32,
    /// The clock of dynamic elements' timeouts, in seconds.
    pub now: u64,
    counters: HashMap<usize, u32>,
}

impl Tracer {
    pub fn new(ruleset: Ruleset, local_ips: &[Ipv4Addr]) -> Tracer {
        Tracer {
            ruleset,
            local_ips: local_ips.to_vec(),
            random_pick: 0,
            now: 0,
            counters: HashMap::new(),
        }
    }

    /// Parse `script` (panicking with the parse error).
    pub fn from_script(script: &str, local_ips: &[Ipv4Addr]) -> Tracer {
        let rs = Ruleset::parse(script).unwrap_or_else(|e| panic!("{e}\n{script}"));
        Tracer::new(rs, local_ips)
    }

    pub fn advance(&mut self, secs: u64) {
        self.now += secs;
    }

    fn is_local(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.local_ips.contains(&ip)
    }

    /// Walk `p` through the hooks in the kernel's order.
    pub fn trace(&mut self, p: Packet) -> Trace {
        let mut ctx = Ctx {
            saddr: p.src,
            daddr: p.dst,
            dport: p.dport,
            proto: p.proto,
            new: p.new,
            mark: 0,
            ctmark: 0,
            dnat: None,
            masqueraded: false,
            random: false,
            chains: Vec::new(),
        };
        let mut delivered_locally = false;
        let hooks: Vec<&str> = if p.local {
            // OUTPUT, routing, POSTROUTING (and INPUT over lo when the destination is local).
            vec!["output", "postrouting", "input?"]
        } else {
            vec!["prerouting", "route"]
        };
        let mut verdict = Verdict::Accept;
        let mut queue: std::collections::VecDeque<&str> = hooks.into();
        while let Some(h) = queue.pop_front() {
            let hook = match h {
                "route" => {
                    if self.is_local(ctx.daddr) {
                        queue.push_back("input");
                    } else {
                        queue.push_back("forward");
                        queue.push_back("postrouting");
                    }
                    continue;
                }
                "input?" => {
                    if !self.is_local(ctx.daddr) {
                        continue;
                    }
                    "input"
                }
                h => h,
            };
            if hook == "input" {
                delivered_locally = true;
            }
            match self.run_hook(hook, &mut ctx) {
                Verdict::Accept => {}
                v => {
                    verdict = v;
                    break;
                }
            }
        }
        Trace {
            verdict,
            dnat: ctx.dnat,
            masqueraded: ctx.masqueraded,
            random: ctx.random,
            delivered_locally,
            chains: ctx.chains,
        }
    }

    fn run_hook(&mut self, hook: &str, ctx: &mut Ctx) -> Verdict {
        let mut base: Vec<(i32, String, String)> = self
            .ruleset
            .chains
            .iter()
            .filter_map(|(n, c)| {
                let (ty, h, prio) = c.hook.as_ref()?;
                (h == hook).then(|| (*prio, ty.clone(), n.clone()))
            })
            .collect();
        base.sort();
        for (_, ty, name) in base {
            // NAT chains see only the first packet of a connection.
            if ty == "nat" && !ctx.new {
                continue;
            }
            ctx.chains.push(format!("{hook}:{name}"));
            match self.run_chain(&name, ctx) {
                Verdict::Accept => {}
                v => return v,
            }
        }
        Verdict::Accept
    }

    fn run_chain(&mut self, base: &str, ctx: &mut Ctx) -> Verdict {
        let mut stack: Vec<(String, usize)> = Vec::new();
        let mut cur = (base.to_string(), 0usize);
        loop {
            let Some(chain) = self.ruleset.chains.get(&cur.0) else {
                panic!("chain {} vanished", cur.0);
            };
            let Some(rule) = chain.rules.get(cur.1) else {
                // End of a chain: return, or the base chain's policy (accept).
                match stack.pop() {
                    Some(c) => {
                        cur = c;
                        continue;
                    }
                    None => return Verdict::Accept,
                }
            };
            let rule = rule.clone();
            cur.1 += 1;
            let enter = |to: &str, ctx: &mut Ctx, depth: usize| {
                assert!(depth < MAX_DEPTH, "jump loop: {:?}", ctx.chains);
                ctx.chains.push(to.to_string());
            };
            match self.eval(&rule, ctx) {
                Outcome::Next => {}
                Outcome::Nat => return Verdict::Accept,
                Outcome::Reject { tcp_reset } => return Verdict::Reject { tcp_reset },
                Outcome::Jump(j) => match j {
                    Target::Accept => return Verdict::Accept,
                    Target::Drop => return Verdict::Drop,
                    Target::Return => match stack.pop() {
                        Some(c) => cur = c,
                        None => return Verdict::Accept,
                    },
                    Target::Jump(to) => {
                        enter(&to, ctx, stack.len() + 1);
                        stack.push(std::mem::replace(&mut cur, (to, 0)));
                    }
                    Target::Goto(to) => {
                        enter(&to, ctx, stack.len());
                        cur = (to, 0);
                    }
                },
            }
        }
    }

    fn value(&mut self, e: &Expr, ctx: &mut Ctx) -> Atom {
        match e {
            Expr::Saddr => Atom::Ip(ctx.saddr),
            Expr::Daddr => Atom::Ip(ctx.daddr),
            Expr::L4proto => Atom::Name(ctx.proto.lower().to_string()),
            Expr::Dport => Atom::Num(u32::from(ctx.dport)),
            Expr::CtMark => Atom::Num(ctx.ctmark),
            Expr::MetaMark => Atom::Num(ctx.mark),
            Expr::Numgen {
                random,
                modulus,
                offset,
                id,
            } => {
                if *random {
                    ctx.random = true;
                    return Atom::Num(self.random_pick % modulus + offset);
                }
                // The kernel's nft_ng_inc_gen: the counter is advanced, then returned.
                let c = self.counters.entry(*id).or_insert(0);
                *c = if *c + 1 < *modulus { *c + 1 } else { 0 };
                Atom::Num(*c + offset)
            }
        }
    }

    fn key(&mut self, k: &[Expr], ctx: &mut Ctx) -> Vec<Atom> {
        k.iter().map(|e| self.value(e, ctx)).collect()
    }

    fn lookup(&self, map: &str, key: &[Atom]) -> Option<Data> {
        self.ruleset.maps[map].get(key, self.now).cloned()
    }

    fn eval(&mut self, rule: &Rule, ctx: &mut Ctx) -> Outcome {
        for item in &rule.items {
            match item {
                Item::Cmp { expr, neg, value } => {
                    let v = self.value(expr, ctx);
                    if atom_matches(value, &v) == *neg {
                        return Outcome::Next;
                    }
                }
                Item::AnonSet { expr, neg, elems } => {
                    let v = self.value(expr, ctx);
                    if elems.iter().any(|p| atom_matches(p, &v)) == *neg {
                        return Outcome::Next;
                    }
                }
                Item::Lookup { key, set } => {
                    let k = self.key(key, ctx);
                    if self.lookup(set, &k).is_none() {
                        return Outcome::Next;
                    }
                }
                Item::MaskCmp { expr, mask, value } => {
                    let Atom::Num(v) = self.value(expr, ctx) else {
                        unreachable!("a mask of a non-number");
                    };
                    if v & mask != *value {
                        return Outcome::Next;
                    }
                }
                Item::FibLocal { saddr } => {
                    let a = if *saddr { ctx.saddr } else { ctx.daddr };
                    if !self.is_local(a) {
                        return Outcome::Next;
                    }
                }
                Item::CtStateNew => {
                    if !ctx.new {
                        return Outcome::Next;
                    }
                }
                Item::Vmap { key, map } => {
                    let k = self.key(key, ctx);
                    match self.lookup(map, &k) {
                        Some(Data::Verdict(j)) => return Outcome::Jump(j),
                        Some(d) => panic!("vmap @{map} holds {d:?}"),
                        None => return Outcome::Next,
                    }
                }
                Item::SetCtMark(e) => {
                    let Atom::Num(v) = self.value(e, ctx) else {
                        unreachable!();
                    };
                    ctx.ctmark = v;
                }
                Item::SetCtMarkMap { key, map } => {
                    let k = self.key(key, ctx);
                    match self.lookup(map, &k) {
                        Some(Data::Mark(m)) => ctx.ctmark = m,
                        Some(d) => panic!("mark map @{map} holds {d:?}"),
                        None => return Outcome::Next,
                    }
                }
                Item::SetMetaMark { op, value } => match op {
                    MarkOp::Or => ctx.mark |= value,
                    MarkOp::Xor => ctx.mark ^= value,
                },
                Item::Update {
                    map,
                    key,
                    timeout,
                    data,
                } => {
                    let k = self.key(key, ctx);
                    let exp = self.now + timeout;
                    let m = self.ruleset.maps.get_mut(map).expect("map of a rule");
                    assert!(m.dynamic, "update of @{map}, which is not dynamic");
                    m.elems.insert(k, (Data::Mark(*data), Some(exp)));
                }
                Item::Dnat { key, map } => {
                    let k = self.key(key, ctx);
                    match self.lookup(map, &k) {
                        Some(Data::AddrPort(ip, port)) => {
                            ctx.daddr = ip;
                            ctx.dport = port;
                            ctx.dnat = Some((ip, port));
                            return Outcome::Nat;
                        }
                        Some(d) => panic!("dnat map @{map} holds {d:?}"),
                        None => return Outcome::Next,
                    }
                }
                Item::Masquerade => {
                    ctx.masqueraded = true;
                    return Outcome::Nat;
                }
                Item::Reject { tcp_reset } => {
                    assert!(
                        !*tcp_reset || ctx.proto == Protocol::Tcp,
                        "tcp reset of a non-TCP packet: {}",
                        rule.text
                    );
                    return Outcome::Reject {
                        tcp_reset: *tcp_reset,
                    };
                }
                Item::Verdict(j) => return Outcome::Jump(j.clone()),
            }
        }
        Outcome::Next
    }
}

/// The same for `iptables-restore` input as [`crate::iptables::render_with`] writes it, with
/// the jumps from the built-in chains that [`crate::iptables::ensure_jumps`] installs.
///
/// `-m statistic --mode random` is emulated deterministically: in one trace the first
/// [`IptTracer::pick`] statistic matches fail and the next one matches (so `pick = k` takes
/// the k-th endpoint of a `KUBE-SVC-*` chain); `-m recent` lists are kept in the tracer with a
/// clock, as the kernel keeps them.
pub mod ipt {
    use super::*;

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
    fn words(line: &str) -> Result<Vec<String>, String> {
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
            return Err(format!("unbalanced quote in {line:?}"));
        }
        if any {
            out.push(cur);
        }
        Ok(out)
    }

    fn net(s: &str) -> Result<Ipv4Net, String> {
        if s.contains('/') {
            let n: Ipv4Net = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
            if n.trunc() != n {
                return Err(format!("{s} has host bits set"));
            }
            Ok(n)
        } else {
            let a: Ipv4Addr = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
            Ok(Ipv4Net::new(a, 32).unwrap())
        }
    }

    fn num(s: &str) -> Result<u32, String> {
        match s.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16),
            None => s.parse(),
        }
        .map_err(|e| format!("bad number {s:?}: {e}"))
    }

    /// One `-A CHAIN ...` line's options after the chain.
    fn parse_rule(line: &str, w: &[String]) -> Result<IRule, String> {
        let mut i = 0;
        let mut matches = Vec::new();
        let mut target = None;
        let mut neg = false;
        let next = |i: &mut usize| -> Result<&str, String> {
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
                return Err(format!("unsupported negation of {opt}"));
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
                    p => return Err(format!("unknown protocol {p}")),
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
                            return Err(format!("-m {p} without -p {p}"));
                        }
                        if w.get(i).map(String::as_str) == Some("--dport") {
                            i += 1;
                            let port = next(&mut i)?;
                            matches.push(M::Dport(
                                port.parse().map_err(|e| format!("port {port:?}: {e}"))?,
                            ));
                        }
                    }
                    "addrtype" => {
                        let src = match next(&mut i)? {
                            "--src-type" => true,
                            "--dst-type" => false,
                            o => return Err(format!("unknown addrtype option {o}")),
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
                                return Err(format!("unknown ctstate {s}"));
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
                            return Err(format!("unsupported statistic {a} {b} {c}"));
                        }
                        let p = next(&mut i)?;
                        let p: f64 = p.parse().map_err(|e| format!("probability {p:?}: {e}"))?;
                        if !(0.0..=1.0).contains(&p) {
                            return Err(format!("probability {p}"));
                        }
                        matches.push(M::Statistic(p));
                    }
                    "recent" => {
                        let (mut check, mut set, mut seconds, mut name) =
                            (false, false, None, None);
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
                                o => return Err(format!("unknown recent option {o}")),
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
                    m => return Err(format!("unknown match module {m}")),
                },
                "-j" => {
                    let t = next(&mut i)?;
                    let mut opt = |want: &str| -> Result<String, String> {
                        let o = next(&mut i)?;
                        if o != want {
                            return Err(format!("-j {t}: expected {want}, found {o}"));
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
                                return Err(format!("REJECT with {with}"));
                            }
                            T::Reject
                        }
                        "MARK" => {
                            let o = next(&mut i)?;
                            let v = num(next(&mut i)?)?;
                            match o {
                                "--or-mark" => T::MarkOr(v),
                                "--xor-mark" => T::MarkXor(v),
                                o => return Err(format!("MARK {o}")),
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
                            let (a, p) =
                                to.split_once(':').ok_or_else(|| format!("DNAT to {to}"))?;
                            T::Dnat(
                                a.parse().map_err(|e| format!("{a:?}: {e}"))?,
                                p.parse().map_err(|e| format!("{p:?}: {e}"))?,
                            )
                        }
                        c if c.starts_with("KUBE-") => T::Jump(c.to_string()),
                        c => return Err(format!("unknown target {c}")),
                    });
                    if i < w.len() {
                        return Err(format!("options after the target: {:?}", &w[i..]));
                    }
                }
                o => return Err(format!("unknown option {o}")),
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
        pub fn restore(&mut self, input: &str) -> Result<(), String> {
            let mut next = self.clone();
            let mut table: Option<String> = None;
            for (n, line) in input.lines().enumerate() {
                let err = |e: String| format!("line {}: {line:?}: {e}", n + 1);
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
                                return Err(err(format!("no chain {to}")));
                            }
                        }
                        chains
                            .get_mut(chain)
                            .ok_or_else(|| err(format!("no chain {chain}")))?
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
        saddr: Ipv4Addr,
        daddr: Ipv4Addr,
        dport: u16,
        proto: Protocol,
        new: bool,
        mark: u32,
        skips: usize,
        dnat: Option<(Ipv4Addr, u16)>,
        masqueraded: bool,
        random: bool,
        chains: Vec<String>,
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
            ip.is_loopback() || self.local_ips.contains(&ip)
        }

        pub fn trace(&mut self, p: Packet) -> Trace {
            let mut ctx = ICtx {
                saddr: p.src,
                daddr: p.dst,
                dport: p.dport,
                proto: p.proto,
                new: p.new,
                mark: 0,
                skips: self.pick,
                dnat: None,
                masqueraded: false,
                random: false,
                chains: Vec::new(),
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
            Trace {
                verdict,
                dnat: ctx.dnat,
                masqueraded: ctx.masqueraded,
                random: ctx.random,
                delivered_locally,
                chains: ctx.chains,
            }
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
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::model::{Endpoint, ServicePortName, State};
    use crate::nftables::tests::{add, cfg, ep, fixture, id, node, sp, with_changes};
    use crate::nftables::{render_changes, render_full, render_full_with, Config, Numbering};

    /// A pod on this node (in the cluster CIDR) that is no endpoint.
    const POD: &str = "10.244.0.9";
    /// A pod on another node.
    const REMOTE_POD: &str = "10.244.1.20";
    const OUTSIDE: &str = "203.0.113.7";
    /// The node's address.
    const NODE: &str = "198.51.100.1";
    /// Inside the load balancer's source ranges.
    const LB_CLIENT: &str = "198.51.100.5";

    const WEB: &[&str] = &["10.244.0.2:8080", "10.244.0.3:8080", "10.244.1.4:8080"];
    const LOCAL_BOTH: &[&str] = &["10.244.0.2:8080", "10.244.1.4:8080"];
    const E02: &[&str] = &["10.244.0.2:8080"];
    const REMOTE: &[&str] = &["10.244.1.4:8080"];
    const LB_EP: &[&str] = &["10.244.0.3:8443"];

    fn v4s(ips: &[IpAddr]) -> Vec<Ipv4Addr> {
        ips.iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect()
    }

    fn local_ips() -> Vec<Ipv4Addr> {
        v4s(&node().node_ips)
    }

    fn tracer(st: &State) -> Tracer {
        Tracer::from_script(&render_full(st, &node(), &cfg()), &local_ips())
    }

    /// The fixture plus an external IP under the Cluster policy, internalTrafficPolicy Local
    /// (with and without a local endpoint), sessionAffinity with a NodePort, and two Service
    /// ports with two endpoints each.
    fn extended() -> State {
        let mut st = fixture();
        let mut ext = sp(&id("ext", "", Protocol::Tcp), "10.97.1.11", 80);
        ext.external_ips = vec!["203.0.113.50".parse().unwrap()];
        add(&mut st, ext, vec![ep("10.244.1.4", 8080, "node-2")]);
        let mut itp = sp(&id("itp", "", Protocol::Tcp), "10.97.1.8", 80);
        itp.internal_local = true;
        add(
            &mut st,
            itp,
            vec![
                ep("10.244.0.3", 8080, "node-1"),
                ep("10.244.1.4", 8080, "node-2"),
            ],
        );
        let mut itp_remote = sp(&id("itp-remote", "", Protocol::Tcp), "10.97.1.10", 80);
        itp_remote.internal_local = true;
        add(&mut st, itp_remote, vec![ep("10.244.1.4", 8080, "node-2")]);
        let mut sticky = sp(&id("sticky-np", "", Protocol::Tcp), "10.97.1.12", 80);
        sticky.node_port = 30091;
        sticky.affinity_timeout = Some(60);
        add(
            &mut st,
            sticky,
            vec![
                ep("10.244.2.2", 80, "node-3"),
                ep("10.244.0.2", 80, "node-1"),
            ],
        );
        // Terminating endpoints: used only when no endpoint is ready, and only if serving.
        let terminating = |ip: &str, serving: bool| Endpoint {
            ready: false,
            serving,
            terminating: true,
            ..ep(ip, 8080, "node-1")
        };
        add(
            &mut st,
            sp(&id("term", "", Protocol::Tcp), "10.97.1.13", 80),
            vec![
                ep("10.244.0.2", 8080, "node-1"),
                terminating("10.244.0.3", true),
            ],
        );
        add(
            &mut st,
            sp(&id("term-only", "", Protocol::Tcp), "10.97.1.14", 80),
            vec![terminating("10.244.0.3", true)],
        );
        add(
            &mut st,
            sp(&id("term-gone", "", Protocol::Tcp), "10.97.1.16", 80),
            vec![terminating("10.244.0.3", false)],
        );
        add(
            &mut st,
            sp(&id("sctp", "", Protocol::Sctp), "10.97.1.15", 9999),
            vec![ep("10.244.0.2", 9999, "node-1")],
        );
        for (name, ip) in [("two-a", "10.97.2.1"), ("two-b", "10.97.2.2")] {
            add(
                &mut st,
                sp(&id(name, "", Protocol::Tcp), ip, 80),
                vec![
                    ep("10.244.0.2", 80, "node-1"),
                    ep("10.244.1.4", 80, "node-2"),
                ],
            );
        }
        st
    }

    #[derive(Debug)]
    enum Want {
        /// Accepted, DNATed to one of these, masqueraded or not.
        To(&'static [&'static str], bool),
        Reject {
            tcp_reset: bool,
        },
        Drop,
        /// Accepted untouched.
        Pass,
    }

    fn check(t: &mut Tracer, name: &str, p: Packet, want: &Want) -> Trace {
        let tr = t.trace(p);
        let ctx = format!("{name}: {p}\n  got {tr}\n  want {want:?}");
        assert_trace(&tr, want, &ctx);
        tr
    }

    /// That `tr` is what `want` says (for either tracer).
    fn assert_trace(tr: &Trace, want: &Want, ctx: &str) {
        match want {
            Want::To(eps, masq) => {
                assert_eq!(tr.verdict, Verdict::Accept, "{ctx}");
                let (ip, port) = tr.dnat.unwrap_or_else(|| panic!("no DNAT: {ctx}"));
                assert!(eps.contains(&format!("{ip}:{port}").as_str()), "{ctx}");
                assert_eq!(tr.masqueraded, *masq, "masquerade: {ctx}");
            }
            Want::Reject { tcp_reset } => {
                assert_eq!(
                    tr.verdict,
                    Verdict::Reject {
                        tcp_reset: *tcp_reset
                    },
                    "{ctx}"
                );
                assert_eq!(tr.dnat, None, "{ctx}");
            }
            Want::Drop => assert_eq!(tr.verdict, Verdict::Drop, "{ctx}"),
            Want::Pass => {
                assert_eq!(tr.verdict, Verdict::Accept, "{ctx}");
                assert_eq!((tr.dnat, tr.masqueraded), (None, false), "{ctx}");
            }
        }
    }

    fn tcp(src: &str, dst: &str, port: u16) -> Packet {
        Packet::tcp(src, dst, port)
    }

    fn udp(src: &str, dst: &str, port: u16) -> Packet {
        Packet::udp(src, dst, port)
    }

    /// Every feature of the service proxy, one packet each.
    #[rustfmt::skip]
    fn cases() -> Vec<(&'static str, Packet, Want)> {
        use Want::*;
        let node = |p: Packet| p.sent_by_node();
        vec![
            // ClusterIP, TCP and UDP, from pods (not masqueraded), outside and the node.
            ("clusterip tcp from a pod", tcp(POD, "10.97.1.1", 80), To(WEB, false)),
            ("clusterip tcp from another node's pod", tcp(REMOTE_POD, "10.97.1.1", 80), To(WEB, false)),
            ("clusterip tcp from outside", tcp(OUTSIDE, "10.97.1.1", 80), To(WEB, true)),
            ("clusterip tcp from the node", node(tcp(NODE, "10.97.1.1", 80)), To(WEB, true)),
            ("clusterip udp from a pod", udp(POD, "10.97.1.1", 53), To(&["10.244.0.2:5353"], false)),
            ("clusterip udp from outside", udp(OUTSIDE, "10.97.1.1", 53), To(&["10.244.0.2:5353"], true)),
            ("clusterip udp from the node", node(udp(NODE, "10.97.1.1", 53)), To(&["10.244.0.2:5353"], true)),
            // Unknown port of a ClusterIP: rejected.
            ("unknown tcp port", tcp(POD, "10.97.1.1", 81), Reject { tcp_reset: true }),
            ("unknown udp port", udp(POD, "10.97.1.1", 80), Reject { tcp_reset: false }),
            ("unknown port from outside", tcp(OUTSIDE, "10.97.1.2", 8080), Reject { tcp_reset: true }),
            ("unknown port from the node", node(tcp(NODE, "10.97.1.1", 81)), Reject { tcp_reset: true }),
            // No endpoints: rejected with a TCP reset.
            ("no endpoints from a pod", tcp(POD, "10.97.1.3", 80), Reject { tcp_reset: true }),
            ("no endpoints from outside", tcp(OUTSIDE, "10.97.1.3", 80), Reject { tcp_reset: true }),
            ("no endpoints from the node", node(tcp(NODE, "10.97.1.3", 80)), Reject { tcp_reset: true }),
            // NodePort (Cluster policy): masqueraded whoever sends.
            ("nodeport from outside", tcp(OUTSIDE, NODE, 30080), To(E02, true)),
            ("nodeport from a pod", tcp(POD, NODE, 30080), To(E02, true)),
            ("nodeport from the node", node(tcp(NODE, NODE, 30080)), To(E02, true)),
            ("nodeport's clusterip", tcp(POD, "10.97.1.2", 80), To(E02, false)),
            ("not a nodeport", tcp(OUTSIDE, NODE, 30099), Pass),
            ("nodeport port on a non-node address", tcp(OUTSIDE, "198.51.100.2", 30080), Pass),
            ("nodeport over udp", udp(OUTSIDE, NODE, 30080), Pass),
            // externalTrafficPolicy Local: local endpoints only, source kept.
            ("etp local nodeport from outside", tcp(OUTSIDE, NODE, 30081), To(E02, false)),
            ("etp local external ip from outside", tcp(OUTSIDE, "198.51.100.50", 80), To(E02, false)),
            ("etp local external ip from a pod", tcp(POD, "198.51.100.50", 80), To(LOCAL_BOTH, false)),
            ("etp local nodeport from the node", node(tcp(NODE, NODE, 30081)), To(LOCAL_BOTH, true)),
            ("etp local clusterip from outside", tcp(OUTSIDE, "10.97.1.5", 80), To(LOCAL_BOTH, true)),
            ("etp local clusterip from a pod", tcp(POD, "10.97.1.5", 80), To(LOCAL_BOTH, false)),
            ("etp local without local endpoints: nodeport", tcp(OUTSIDE, NODE, 30083), Drop),
            ("etp local without local endpoints: clusterip", tcp(POD, "10.97.1.7", 80), To(REMOTE, false)),
            // LoadBalancer with source ranges.
            ("lb from an allowed source", tcp(LB_CLIENT, "198.51.100.100", 443), To(LB_EP, true)),
            ("lb from another source", tcp(OUTSIDE, "198.51.100.100", 443), Drop),
            ("lb from a pod outside the ranges", tcp(POD, "198.51.100.100", 443), Drop),
            ("lb from the node (inside the ranges)", node(tcp(NODE, "198.51.100.100", 443)), To(LB_EP, true)),
            ("lb's other port", tcp(LB_CLIENT, "198.51.100.100", 444), Pass),
            ("lb's clusterip ignores the ranges", tcp(POD, "10.97.1.6", 443), To(LB_EP, false)),
            ("lb's nodeport ignores the ranges", tcp(OUTSIDE, NODE, 30082), To(LB_EP, true)),
            // External IPs (Cluster policy).
            ("external ip from outside", tcp(OUTSIDE, "203.0.113.50", 80), To(REMOTE, true)),
            ("external ip from a pod", tcp(POD, "203.0.113.50", 80), To(REMOTE, true)),
            ("external ip from the node", node(tcp(NODE, "203.0.113.50", 80)), To(REMOTE, true)),
            ("external ip's other port", tcp(OUTSIDE, "203.0.113.50", 81), Pass),
            // sessionAffinity (the picks themselves: `affinity_sticks`).
            ("affinity clusterip from a pod", tcp(POD, "10.97.1.4", 80), To(&["10.244.0.2:8080", "10.244.0.3:8080"], false)),
            ("affinity nodeport from outside", tcp(OUTSIDE, NODE, 30091), To(&["10.244.2.2:80", "10.244.0.2:80"], true)),
            // Hairpin: an endpoint reaching itself through its Service is masqueraded.
            ("hairpin", tcp("10.244.0.2", "10.97.1.2", 80), To(E02, true)),
            ("hairpin udp", udp("10.244.0.2", "10.97.1.1", 53), To(&["10.244.0.2:5353"], true)),
            ("no hairpin from another pod", tcp("10.244.0.3", "10.97.1.2", 80), To(E02, false)),
            // internalTrafficPolicy Local.
            ("itp local from a pod", tcp(POD, "10.97.1.8", 80), To(&["10.244.0.3:8080"], false)),
            ("itp local from outside", tcp(OUTSIDE, "10.97.1.8", 80), To(&["10.244.0.3:8080"], true)),
            ("itp local from the node", node(tcp(NODE, "10.97.1.8", 80)), To(&["10.244.0.3:8080"], true)),
            ("itp local without local endpoints", tcp(POD, "10.97.1.10", 80), Drop),
            ("itp local without local endpoints from the node", node(tcp(NODE, "10.97.1.10", 80)), Drop),
            // Terminating endpoints, SCTP.
            ("terminating endpoint not used while one is ready", tcp(POD, "10.97.1.13", 80), To(E02, false)),
            ("terminating serving endpoint used when none is ready", tcp(POD, "10.97.1.14", 80), To(&["10.244.0.3:8080"], false)),
            ("no endpoints: terminating and not serving", tcp(POD, "10.97.1.16", 80), Reject { tcp_reset: true }),
            ("sctp clusterip from a pod", Packet::new(Protocol::Sctp, POD, "10.97.1.15", 9999), To(&["10.244.0.2:9999"], false)),
            ("sctp clusterip from the node", Packet::new(Protocol::Sctp, NODE, "10.97.1.15", 9999).sent_by_node(), To(&["10.244.0.2:9999"], true)),
            ("unknown sctp port", Packet::new(Protocol::Sctp, POD, "10.97.1.15", 9998), Reject { tcp_reset: false }),
            // Traffic that is not for a Service, and established connections.
            ("pod to pod", tcp(POD, "10.244.1.4", 8080), Pass),
            ("outside to the node", tcp(OUTSIDE, NODE, 22), Pass),
            ("established clusterip", tcp(POD, "10.97.1.1", 80).established(), Pass),
            ("established no endpoints", tcp(POD, "10.97.1.3", 80).established(), Pass),
            ("established lb from another source", tcp(OUTSIDE, "198.51.100.100", 443).established(), Pass),
        ]
    }

    #[test]
    fn every_feature() {
        let mut t = tracer(&extended());
        for (name, p, want) in cases() {
            // Several times: every pick of a round-robin must satisfy the case.
            for _ in 0..4 {
                check(&mut t, name, p, &want);
            }
        }
    }

    #[test]
    fn every_feature_in_a_fresh_tracer() {
        // Each case alone, as the first packet the ruleset sees.
        for (name, p, want) in cases() {
            let mut t = tracer(&extended());
            let tr = check(&mut t, name, p, &want);
            assert!(!tr.random, "{name}");
        }
    }

    #[test]
    fn paths_through_the_hooks() {
        let mut t = tracer(&fixture());
        let tr = t.trace(tcp(OUTSIDE, "10.97.1.1", 80));
        assert!(!tr.delivered_locally);
        assert_eq!(
            tr.chains,
            [
                "prerouting:filter-prerouting",
                "firewall-check",
                "prerouting:nat-prerouting",
                "services",
                "cluster-3",
                "mark-for-masquerade",
                "pick-3",
                "forward:filter-forward",
                "service-endpoints-check",
                "cluster-ips-check",
                "postrouting:nat-postrouting",
                "masquerading",
            ],
            "{tr}"
        );
        // ETP Local without a local endpoint: external clients are dropped in the external
        // chain (which keeps the pods' and the node's shortcuts).
        let tr = t.trace(tcp(OUTSIDE, NODE, 30083));
        assert_eq!(tr.verdict, Verdict::Drop, "{tr}");
        assert!(
            tr.chains.contains(&"ext-default/remote/tcp".to_string()),
            "{tr}"
        );
        let tr = t.trace(tcp(NODE, "10.97.1.1", 81).sent_by_node());
        assert_eq!(
            tr.chains
                .iter()
                .filter(|c| c.contains(':'))
                .collect::<Vec<_>>(),
            [
                "output:filter-output",
                "output:nat-output",
                "output:filter-output-post-dnat"
            ],
            "{tr}"
        );
    }

    #[test]
    fn round_robin() {
        let mut t = tracer(&extended());
        for (src, masq) in [(POD, false), (OUTSIDE, true)] {
            let picks: Vec<Trace> = (0..3).map(|_| t.trace(tcp(src, "10.97.1.1", 80))).collect();
            let eps: BTreeSet<_> = picks.iter().map(|tr| tr.dnat.unwrap()).collect();
            assert_eq!(eps.len(), 3, "{picks:#?}");
            assert!(picks.iter().all(|tr| tr.masqueraded == masq));
        }
        // Six more: each endpoint twice.
        let mut count: BTreeMap<(Ipv4Addr, u16), usize> = BTreeMap::new();
        for _ in 0..6 {
            *count
                .entry(t.trace(tcp(POD, "10.97.1.1", 80)).dnat.unwrap())
                .or_default() += 1;
        }
        assert!(
            count.len() == 3 && count.values().all(|n| *n == 2),
            "{count:?}"
        );
        // A Service port with chains of its own (ETP Local's ClusterIP) cycles too.
        let eps: BTreeSet<_> = (0..2)
            .map(|_| t.trace(tcp(POD, "10.97.1.5", 80)).dnat.unwrap())
            .collect();
        assert_eq!(eps.len(), 2, "{eps:?}");
        // And a Service port of two endpoints on the shared path.
        let eps: BTreeSet<_> = (0..2)
            .map(|_| t.trace(tcp(POD, "10.97.2.1", 80)).dnat.unwrap())
            .collect();
        assert_eq!(eps.len(), 2, "{eps:?}");
    }

    #[test]
    fn affinity_sticks() {
        let mut t = tracer(&extended());
        let aff = "aff-default/sticky/tcp";
        let first = t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap();
        // Other clients move the counter; the first one keeps its endpoint.
        let mut others = BTreeSet::new();
        for i in 1..=6 {
            let other = format!("203.0.113.{}", 100 + i);
            others.insert(t.trace(tcp(&other, "10.97.1.4", 80)).dnat.unwrap());
        }
        assert_eq!(others.len(), 2, "other clients spread: {others:?}");
        for _ in 0..3 {
            assert_eq!(t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap(), first);
        }
        assert_eq!(t.ruleset.maps[aff].keys(t.now).len(), 7);
        // Still within the timeout (300 s), refreshed by every connection.
        t.advance(299);
        assert_eq!(t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap(), first);
        t.advance(2);
        assert_eq!(t.ruleset.maps[aff].keys(t.now), [OUTSIDE]);
        // After the timeout the client is picked afresh (the counter's next value).
        t.advance(300);
        assert!(t.ruleset.maps[aff].keys(t.now).is_empty());
        let fresh: BTreeSet<_> = (0..2)
            .map(|_| {
                t.advance(301);
                t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap()
            })
            .collect();
        assert_eq!(fresh.len(), 2, "{fresh:?}");
        // One affinity map per Service port: the ClusterIP and the NodePort share it.
        let via_ip = t.trace(tcp(OUTSIDE, "10.97.1.12", 80)).dnat.unwrap();
        for _ in 0..3 {
            assert_eq!(t.trace(tcp(OUTSIDE, NODE, 30091)).dnat.unwrap(), via_ip);
        }
    }

    #[test]
    fn random_and_no_node_ips_or_cidr() {
        let st = fixture();
        let bare = crate::model::NodeInfo {
            node_ips: vec![],
            ..node()
        };
        let cfg = Config {
            cluster_cidr: None,
            random: true,
        };
        let mut t = Tracer::from_script(&render_full(&st, &bare, &cfg), &local_ips());
        let tr = check(
            &mut t,
            "random",
            tcp(POD, "10.97.1.1", 80),
            &Want::To(WEB, true),
        );
        assert!(tr.random, "{tr}");
        assert_eq!(tr.dnat, Some(("10.244.0.2".parse().unwrap(), 8080)));
        t.random_pick = 2;
        let tr = t.trace(tcp(POD, "10.97.1.1", 80));
        assert_eq!(tr.dnat, Some(("10.244.1.4".parse().unwrap(), 8080)), "{tr}");
        // NodePorts on every local address but loopback (`fib daddr type local`).
        check(
            &mut t,
            "nodeport",
            tcp(OUTSIDE, NODE, 30080),
            &Want::To(E02, true),
        );
        check(
            &mut t,
            "loopback",
            tcp("127.0.0.1", "127.0.0.1", 30080).sent_by_node(),
            &Want::Pass,
        );
        check(&mut t, "etp drop", tcp(OUTSIDE, NODE, 30083), &Want::Drop);
        let tr = check(
            &mut t,
            "affinity",
            tcp(OUTSIDE, "10.97.1.4", 80),
            &Want::To(&["10.244.0.2:8080", "10.244.0.3:8080"], true),
        );
        assert!(tr.random);
    }

    #[test]
    fn ipv6_is_skipped() {
        let t = tracer(&fixture());
        let all = t.ruleset.canonical();
        assert!(!all.contains("fd00"), "{all}");
        assert!(!all.contains("v6"), "{all}");
    }

    #[test]
    fn unknown_syntax_fails_loudly() {
        let ok = render_full(&fixture(), &node(), &cfg());
        Ruleset::parse(&ok).unwrap();
        let table = |body: &str| format!("table ip svcnet {{\n{body}\n}}\n");
        let chain = |rule: &str| table(&format!("\tchain c {{\n\t\t{rule}\n\t}}"));
        let bad = [
            chain("ip saddr 10.0.0.1 counter accept"),
            chain("tcp dport 80 accept"),
            chain("ip daddr 10.0.0.1 dnat to 10.0.0.2"),
            chain("jump nowhere"),
            chain("ip daddr @nowhere accept"),
            chain("accept drop"),
            chain("meta mark set 0x1"),
            chain("ip saddr 10.0.0.1/8 accept"),
            table("\tmap m {\n\t\ttype ipv4_addr : counter;\n\t}"),
            table("\tset s {\n\t\ttype ipv4_addr;\n\t\tflags interval;\n\t}"),
            table("\tchain c {\n\t\ttype route hook output priority 0; policy accept;\n\t}"),
            table("\tflowtable f {\n\t}"),
            format!("{}add element ip svcnet s {{\n\t10.0.0.1 . 10.0.0.2,\n}}\n", table("\tset s {\n\t\ttype ipv4_addr;\n\t}")),
            format!("{}delete element ip svcnet s {{\n\t10.0.0.1,\n}}\n", table("\tset s {\n\t\ttype ipv4_addr;\n\t}")),
            format!("{}add element ip svcnet m {{\n\t10.0.0.1 : goto x,\n}}\n", table("\tmap m {\n\t\ttype ipv4_addr : verdict;\n\t}")),
            format!("{}delete chain ip svcnet a\n", table("\tchain a {\n\t}\n\tchain b {\n\t\tjump a\n\t}")),
            format!("{}delete map ip svcnet m\n", table("\tmap m {\n\t\ttype ipv4_addr : verdict;\n\t}\n\tchain b {\n\t\tip daddr vmap @m\n\t}")),
            "flush chain ip svcnet nope\n".to_string(),
            "insert rule ip svcnet c accept\n".to_string(),
            "add rule ip other c accept\n".to_string(),
            "table ip svcnet {\n\tchain c {\n".to_string(),
        ];
        for script in bad {
            assert!(Ruleset::parse(&script).is_err(), "accepted:\n{script}");
        }
        // A failed script changes nothing.
        let mut rs = Ruleset::parse(&ok).unwrap();
        let before = rs.clone();
        assert!(rs
            .apply("flush chain ip svcnet services\nflush chain ip svcnet nope\n")
            .is_err());
        assert_eq!(rs, before);
    }

    /// Incremental changes: nftables' golden ones, and more: `(name, old, new, ids)`.
    fn changes() -> Vec<(&'static str, State, State, Vec<ServicePortName>)> {
        let st = fixture();
        let web = id("web", "http", Protocol::Tcp);
        let np = id("np", "", Protocol::Tcp);
        // Off the shared path and back (sessionAffinity), and endpoints all gone.
        let mut sticky = st.clone();
        sticky.services.get_mut(&web).unwrap().affinity_timeout = Some(10);
        let mut drained = st.clone();
        drained.endpoints.insert(web.clone(), Vec::new());
        let local = id("local", "", Protocol::Tcp);
        let mut policy = st.clone();
        policy.services.get_mut(&local).unwrap().external_local = false;
        policy.services.get_mut(&np).unwrap().external_local = true;
        let everything: Vec<ServicePortName> = st.services.keys().cloned().collect();
        let mut out = crate::nftables::tests::changes();
        out.extend([
            ("affinity", st.clone(), sticky, vec![web.clone()]),
            ("drained", st.clone(), drained, vec![web]),
            ("policy", st.clone(), policy, vec![local, np]),
            ("everything", st, State::default(), everything),
        ]);
        out
    }

    /// Packets probing every address and port of `states`' Service ports.
    fn probes(states: &[&State]) -> Vec<Packet> {
        let mut out = Vec::new();
        for st in states {
            for s in st.services.values() {
                let p = |src: &str, dst: Ipv4Addr, port: u16| {
                    Packet::new(s.protocol, src, &dst.to_string(), port)
                };
                let node: Ipv4Addr = NODE.parse().unwrap();
                for ip in v4s(&s.cluster_ips) {
                    for src in [POD, OUTSIDE, "10.244.0.2"] {
                        out.push(p(src, ip, s.port));
                    }
                    out.push(p(NODE, ip, s.port).sent_by_node());
                    out.push(p(POD, ip, s.port + 1));
                }
                for ip in v4s(&s.external_ips)
                    .into_iter()
                    .chain(v4s(&s.load_balancer_ips))
                {
                    for src in [POD, OUTSIDE, LB_CLIENT] {
                        out.push(p(src, ip, s.port));
                    }
                    out.push(p(NODE, ip, s.port).sent_by_node());
                }
                if s.node_port != 0 {
                    for src in [POD, OUTSIDE] {
                        out.push(p(src, node, s.node_port));
                    }
                    out.push(p(NODE, node, s.node_port).sent_by_node());
                }
            }
        }
        out.sort_by_key(|p| format!("{p}"));
        out.dedup();
        out
    }

    /// Both tracers treat every probe alike, several connections each.
    fn same_routes(name: &str, a: &mut Tracer, b: &mut Tracer, probes: &[Packet]) {
        for p in probes {
            for _ in 0..3 {
                let (x, y) = (a.trace(*p), b.trace(*p));
                assert_eq!(
                    (x.verdict, x.dnat, x.masqueraded),
                    (y.verdict, y.dnat, y.masqueraded),
                    "{name}: {p}\n  partial: {x}\n  full:    {y}"
                );
            }
        }
    }

    #[test]
    fn partial_syncs_route_like_full_ones() {
        for (name, old, new, ids) in changes() {
            for (from, to) in [(&old, &new), (&new, &old)] {
                let mut num = Numbering::default();
                let full = render_full_with(from, &node(), &cfg(), &mut num);
                let mut partial = Tracer::from_script(&full, &local_ips());
                let script = render_changes(from, to, &ids, &node(), &cfg(), &mut num);
                partial
                    .ruleset
                    .apply(&script)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
                let mut fresh = Tracer::from_script(
                    &render_full_with(to, &node(), &cfg(), &mut num.clone()),
                    &local_ips(),
                );
                same_routes(name, &mut partial, &mut fresh, &probes(&[from, to]));
            }
        }
    }

    #[test]
    fn partial_syncs_build_the_full_table() {
        // Unused `pick-N` chains may stay after a partial sync; everything else is the same.
        let strip = |rs: &Ruleset| {
            let mut rs = rs.clone();
            loop {
                let used: BTreeSet<String> = rs
                    .chains
                    .values()
                    .flat_map(|c| c.rules.iter().flat_map(|r| r.chains().map(str::to_string)))
                    .chain(rs.maps.values().flat_map(|m| {
                        m.elems.values().filter_map(|(d, _)| match d {
                            Data::Verdict(j) => j.target().map(str::to_string),
                            _ => None,
                        })
                    }))
                    .collect();
                let before = rs.chains.len();
                rs.chains.retain(|n, _| {
                    used.contains(n)
                        || !["cluster-", "external-", "pick-"]
                            .iter()
                            .any(|p| n.starts_with(p))
                });
                if rs.chains.len() == before {
                    break;
                }
            }
            rs.canonical()
        };
        for (name, old, new, ids) in changes() {
            for (from, to) in [(&old, &new), (&new, &old)] {
                let mut num = Numbering::default();
                let mut rs =
                    Ruleset::parse(&render_full_with(from, &node(), &cfg(), &mut num)).unwrap();
                let script = render_changes(from, to, &ids, &node(), &cfg(), &mut num);
                rs.apply(&script)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
                let full = Ruleset::parse(&render_full_with(to, &node(), &cfg(), &mut num.clone()))
                    .unwrap();
                pretty_assertions::assert_eq!(strip(&rs), strip(&full), "{name}\n{script}");
            }
        }
    }

    #[test]
    fn a_chain_of_partial_syncs() {
        // Each change on top of the previous ones, against one ruleset kept all along (with
        // its counters and affinity state), then compared with a full render.
        let mut cur = fixture();
        let mut num = Numbering::default();
        let mut t = Tracer::from_script(
            &render_full_with(&cur, &node(), &cfg(), &mut num),
            &local_ips(),
        );
        for (name, _, new, ids) in changes() {
            if name == "everything" {
                continue;
            }
            let next = with_changes(&cur, &new, &ids);
            let script = render_changes(&cur, &next, &ids, &node(), &cfg(), &mut num);
            t.ruleset
                .apply(&script)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{script}"));
            // Traffic in between, as on a live node.
            for p in probes(&[&next]) {
                t.trace(p);
            }
            cur = next;
        }
        // Last: web drained, its UDP port gone, lb drained, np back on 30080 with ETP Local,
        // local with ETP Cluster.
        let c = &mut t;
        check(
            c,
            "web drained",
            tcp(OUTSIDE, "10.97.1.1", 80),
            &Want::Reject { tcp_reset: true },
        );
        check(
            c,
            "port removed",
            udp(POD, "10.97.1.1", 53),
            &Want::Reject { tcp_reset: false },
        );
        check(
            c,
            "drained lb",
            tcp(LB_CLIENT, "198.51.100.100", 443),
            &Want::Reject { tcp_reset: true },
        );
        check(
            c,
            "np local",
            tcp(OUTSIDE, NODE, 30080),
            &Want::To(E02, false),
        );
        check(c, "np's other port", tcp(OUTSIDE, NODE, 30085), &Want::Pass);
        check(
            c,
            "local cluster",
            tcp(OUTSIDE, NODE, 30081),
            &Want::To(LOCAL_BOTH, true),
        );
        let mut fresh = Tracer::from_script(
            &render_full_with(&cur, &node(), &cfg(), &mut num.clone()),
            &local_ips(),
        );
        // Fresh counters and affinity on both sides before comparing.
        let mut again = Tracer::new(t.ruleset.clone(), &local_ips());
        for m in again.ruleset.maps.values_mut() {
            if m.dynamic {
                m.elems.clear();
            }
        }
        same_routes(
            "chain",
            &mut again,
            &mut fresh,
            &probes(&[&cur, &fixture()]),
        );
    }

    // iptables mode: the same cases through `iptables::render`.

    use super::ipt::IptTracer;

    fn ipt_cfg() -> crate::iptables::Config {
        crate::iptables::Config {
            cluster_cidr: cfg().cluster_cidr,
            masquerade_bit: 14,
        }
    }

    fn ipt_tracer(st: &State) -> IptTracer {
        IptTracer::from_restore(
            &crate::iptables::render(st, &node(), &ipt_cfg()),
            &local_ips(),
        )
    }

    /// Where iptables mode is meant to differ from nftables mode (kube-proxy's iptables mode
    /// differs there too).
    fn ipt_want(name: &str, want: Want) -> Want {
        match name {
            // As kube-proxy's iptables mode: no rule for ports that are not Service ports.
            n if n.starts_with("unknown") => Want::Pass,
            // REJECT --reject-with icmp-port-unreachable, for TCP too (as kube-proxy).
            n if n.starts_with("no endpoints") => Want::Reject { tcp_reset: false },
            _ => want,
        }
    }

    fn ipt_check(t: &mut IptTracer, name: &str, p: Packet, want: &Want) -> Trace {
        let tr = t.trace(p);
        let ctx = format!(
            "iptables {name}: {p} (pick {})\n  got {tr}\n  want {want:?}",
            t.pick
        );
        assert_trace(&tr, want, &ctx);
        tr
    }

    #[test]
    fn iptables_every_feature() {
        for (name, p, want) in cases() {
            let want = ipt_want(name, want);
            // Every branch of the statistic rules, each in a fresh tracer (no affinity yet).
            let mut seen = BTreeSet::new();
            for pick in 0..4 {
                let mut t = ipt_tracer(&extended());
                t.pick = pick;
                seen.insert(ipt_check(&mut t, name, p, &want).dnat);
            }
            if let Want::To(eps, _) = want {
                assert_eq!(seen.len(), eps.len(), "iptables {name}: {seen:?}");
            }
        }
    }

    #[test]
    fn iptables_paths_and_probabilities() {
        let mut t = ipt_tracer(&extended());
        let tr = t.trace(tcp(OUTSIDE, "10.97.1.1", 80));
        let hooks: Vec<&String> = tr.chains.iter().filter(|c| c.contains('/')).collect();
        assert_eq!(
            hooks,
            ["nat/PREROUTING", "filter/FORWARD", "nat/POSTROUTING"],
            "{tr}"
        );
        assert!(tr.random, "{tr}");
        // Uniform: the i-th of n endpoints is taken with probability 1/(n-i).
        let probs = t.probabilities();
        assert!(probs.len() > 5, "{probs:?}");
        for (chain, (ps, n)) in probs {
            assert_eq!(ps.len(), n - 1, "{chain}");
            for (i, p) in ps.iter().enumerate() {
                let want = 1.0 / (n - i) as f64;
                assert!((p - want).abs() < 1e-9, "{chain}: rule {i}: {p} != {want}");
            }
        }
    }

    #[test]
    fn iptables_affinity_sticks() {
        let mut t = ipt_tracer(&extended());
        t.pick = 1;
        let first = t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap();
        let mut others = BTreeSet::new();
        for pick in 0..2 {
            t.pick = pick;
            let other = format!("203.0.113.{}", 100 + pick);
            others.insert(t.trace(tcp(&other, "10.97.1.4", 80)).dnat.unwrap());
            assert_eq!(t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap(), first);
        }
        assert_eq!(others.len(), 2, "{others:?}");
        t.advance(299);
        assert_eq!(t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap(), first);
        // Past the timeout (300 s) since the last connection: picked afresh.
        t.advance(301);
        t.pick = 0;
        assert_ne!(t.trace(tcp(OUTSIDE, "10.97.1.4", 80)).dnat.unwrap(), first);
        // The ClusterIP and the NodePort share the recent lists of the endpoints.
        t.pick = 1;
        let via_ip = t.trace(tcp(OUTSIDE, "10.97.1.12", 80)).dnat.unwrap();
        t.pick = 0;
        assert_eq!(t.trace(tcp(OUTSIDE, NODE, 30091)).dnat.unwrap(), via_ip);
    }

    #[test]
    fn iptables_changes_route_like_full_renders() {
        for (name, old, new, _) in changes() {
            for (from, to) in [(&old, &new), (&new, &old)] {
                let (first, chains) =
                    crate::iptables::render_with(&BTreeSet::new(), from, &node(), &ipt_cfg());
                let mut t = IptTracer::from_restore(&first, &local_ips());
                let (second, _) = crate::iptables::render_with(&chains, to, &node(), &ipt_cfg());
                t.rules
                    .restore(&second)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{second}"));
                let mut fresh = ipt_tracer(to);
                for p in probes(&[from, to]) {
                    for pick in 0..3 {
                        t.pick = pick;
                        fresh.pick = pick;
                        let (x, y) = (t.trace(p), fresh.trace(p));
                        assert_eq!(
                            (x.verdict, x.dnat, x.masqueraded),
                            (y.verdict, y.dnat, y.masqueraded),
                            "{name}: {p}\n  incremental: {x}\n  full: {y}"
                        );
                    }
                }
                // No chain of `from` left behind that `to` does not have.
                let fresh_chains: BTreeSet<&String> = fresh.rules.tables["nat"].keys().collect();
                let kept: BTreeSet<&String> = t.rules.tables["nat"].keys().collect();
                assert_eq!(kept, fresh_chains, "{name}");
            }
        }
    }

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
            let mut r = ipt::IptRules::new();
            assert!(r.restore(input).is_err(), "accepted:\n{input}");
        }
    }

    /// Where the nftables mode once differed from kube-proxy (and from our iptables mode), found
    /// with these tracers and fixed; the expectations are kube-proxy's.
    #[rustfmt::skip]
    fn nft_divergences() -> Vec<(&'static str, Packet, Want)> {
        use Want::*;
        vec![
            // externalTrafficPolicy Local without local endpoints: pods and the node itself
            // still reach the Service through its external addresses (kube-proxy keeps the
            // EXT chain's short-circuit rules whenever the Service has endpoints anywhere);
            // nftables has no `ext-X` chain then, and `no-endpoint-nodeports` drops.
            ("etp local without local endpoints: nodeport from a pod", tcp(POD, NODE, 30083), To(REMOTE, false)),
            ("etp local without local endpoints: nodeport from the node", tcp(NODE, NODE, 30083).sent_by_node(), To(REMOTE, true)),
            // loadBalancerSourceRanges containing the node's IP also allow the load-balancer
            // IPs themselves as sources (a node reaching a VIP bound locally has the VIP as
            // its source); `fw-X` lists only the ranges.
            ("lb from its own IP (node inside the ranges)", tcp("198.51.100.100", "198.51.100.100", 443).sent_by_node(), To(LB_EP, true)),
        ]
    }

    #[test]
    fn nft_as_kube_proxy_where_it_once_diverged() {
        let mut failed = Vec::new();
        for (name, p, want) in nft_divergences() {
            let mut t = tracer(&extended());
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                check(&mut t, name, p, &want);
            }));
            if r.is_err() {
                failed.push(name);
            }
        }
        assert!(failed.is_empty(), "{failed:?}");
    }

    #[test]
    fn iptables_as_kube_proxy_where_nft_diverges() {
        for (name, p, want) in nft_divergences() {
            for pick in 0..2 {
                let mut t = ipt_tracer(&extended());
                t.pick = pick;
                ipt_check(&mut t, name, p, &want);
            }
        }
    }

    #[test]
    fn topology_hints() {
        // Hints are honoured when every endpoint has them and some are for this node's zone.
        let mut st = State::default();
        let hinted = |ip: &str, zone: &str| Endpoint {
            hint_zones: Some(vec![zone.to_string()]),
            ..ep(ip, 8080, "node-x")
        };
        add(
            &mut st,
            sp(&id("hints", "", Protocol::Tcp), "10.97.3.1", 80),
            vec![hinted("10.244.5.1", "a"), hinted("10.244.5.2", "b")],
        );
        let mut partial = vec![hinted("10.244.6.1", "a")];
        partial.push(ep("10.244.6.2", 8080, "node-x"));
        add(
            &mut st,
            sp(&id("some-hints", "", Protocol::Tcp), "10.97.3.2", 80),
            partial,
        );
        let zoned = crate::model::NodeInfo {
            zone: Some("a".into()),
            ..node()
        };
        let mut t = Tracer::from_script(&render_full(&st, &zoned, &cfg()), &local_ips());
        let mut ipt = IptTracer::from_restore(
            &crate::iptables::render(&st, &zoned, &ipt_cfg()),
            &local_ips(),
        );
        let cases = [
            (
                tcp(POD, "10.97.3.1", 80),
                Want::To(&["10.244.5.1:8080"], false),
            ),
            (
                tcp(POD, "10.97.3.2", 80),
                Want::To(&["10.244.6.1:8080", "10.244.6.2:8080"], false),
            ),
        ];
        for (p, want) in &cases {
            for pick in 0..2 {
                check(&mut t, "hints", *p, want);
                ipt.pick = pick;
                ipt_check(&mut ipt, "hints", *p, want);
            }
        }
    }

    #[test]
    fn partial_sync_comparison_has_teeth() {
        // A partial script missing its last block of element adds routes differently, and the
        // comparison says so.
        for (name, old, new, ids) in changes() {
            if name == "drained" {
                // Its last block is the `no-endpoint-services` reject of web's ClusterIP port,
                // which `cluster-ips-check` rejects alike without it.
                continue;
            }
            let mut num = Numbering::default();
            let full = render_full_with(&old, &node(), &cfg(), &mut num);
            let script = render_changes(&old, &new, &ids, &node(), &cfg(), &mut num);
            let Some(cut) = script.rfind("add element ") else {
                continue;
            };
            let mut partial = Tracer::from_script(&full, &local_ips());
            partial.ruleset.apply(&script[..cut]).unwrap();
            let mut fresh = Tracer::from_script(
                &render_full_with(&new, &node(), &cfg(), &mut num.clone()),
                &local_ips(),
            );
            let probes = probes(&[&old, &new]);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                same_routes(name, &mut partial, &mut fresh, &probes)
            }));
            assert!(r.is_err(), "{name}: no probe noticed\n{}", &script[cut..]);
        }
    }
}
