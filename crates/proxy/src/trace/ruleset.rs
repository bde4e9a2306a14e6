//! The nft side of the tracer's input: an `nft -f` script (full or partial sync) parsed into
//! the `ip svcnet` [`Ruleset`], strictly (only the syntax the renderer emits), and partial-sync
//! scripts applied to it with nft's checks.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::packet::ParseFailed;

pub(crate) const TABLE: &str = "ip svcnet";

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

pub(crate) fn parse_atom(s: &str) -> Result<Atom, ParseFailed> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Ok(Atom::Ip(ip));
    }
    if s.contains('/') {
        let n: Ipv4Net = s.parse().map_err(|e| fail!("bad prefix {s:?}: {e}"))?;
        if n.trunc() != n {
            return Err(fail!("prefix {s} has host bits set (nft refuses it)"));
        }
        return Ok(Atom::Net(n));
    }
    if let Some(h) = s.strip_prefix("0x") {
        return u32::from_str_radix(h, 16)
            .map(Atom::Num)
            .map_err(|e| fail!("bad number {s:?}: {e}"));
    }
    if let Ok(n) = s.parse::<u32>() {
        return Ok(Atom::Num(n));
    }
    match s {
        "tcp" | "udp" | "sctp" => Ok(Atom::Name(s.to_string())),
        _ => Err(fail!("unknown value {s:?}")),
    }
}

/// `s` without its `comment "..."` (on a rule, at its end; on an element, after the key): what
/// nft keeps beside a rule or element and never matches a packet against.
pub(crate) fn without_comment(s: &str) -> Result<std::borrow::Cow<'_, str>, ParseFailed> {
    const START: &str = " comment \"";
    let Some(at) = s.find(START) else {
        return Ok(std::borrow::Cow::Borrowed(s));
    };
    let rest = &s[at + START.len()..];
    let end = rest
        .find('"')
        .ok_or_else(|| fail!("unterminated comment in {s:?}"))?;
    if rest[..end].is_empty() || rest[..end].len() > 128 {
        return Err(fail!("comment of {} bytes (nft: 1 to 128)", end));
    }
    Ok(format!("{}{}", &s[..at], &rest[end + 1..]).into())
}

/// Whether `value` (from the packet) matches `pattern` (a prefix matches its addresses).
pub(crate) fn atom_matches(pattern: &Atom, value: &Atom) -> bool {
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
    pub(crate) fn target(&self) -> Option<&str> {
        match self {
            Target::Jump(c) | Target::Goto(c) => Some(c),
            _ => None,
        }
    }
}

pub(crate) fn parse_jump(s: &str) -> Result<Target, ParseFailed> {
    let t: Vec<&str> = s.split_whitespace().collect();
    match t.as_slice() {
        ["accept"] => Ok(Target::Accept),
        ["drop"] => Ok(Target::Drop),
        ["return"] => Ok(Target::Return),
        ["jump", c] => Ok(Target::Jump(c.to_string())),
        ["goto", c] => Ok(Target::Goto(c.to_string())),
        _ => Err(fail!("unknown verdict {s:?}")),
    }
}

/// What a map's elements map to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataKind {
    /// A set.
    None,
    Verdict,
    Mark,
    /// `ipv4_addr . inet_service`.
    AddrPort,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Data {
    None,
    Verdict(Target),
    Mark(u32),
    AddrPort(Ipv4Addr, u16),
}

/// A named set or map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    pub(crate) kind: DataKind,
    pub(crate) arity: usize,
    pub(crate) dynamic: bool,
    /// Element key → (data, expiry time for dynamic elements).
    pub(crate) elems: BTreeMap<Vec<Atom>, (Data, Option<u64>)>,
}

impl Map {
    pub(crate) fn parse_key(&self, s: &str) -> Result<Vec<Atom>, ParseFailed> {
        let key: Vec<Atom> = s.split(" . ").map(parse_atom).collect::<Result<_, _>>()?;
        if key.len() != self.arity {
            return Err(fail!(
                "key {s:?} has {} parts, want {}",
                key.len(),
                self.arity
            ));
        }
        if key.iter().any(|a| matches!(a, Atom::Net(_))) {
            return Err(fail!(
                "interval element {s:?} in a set without flags interval"
            ));
        }
        Ok(key)
    }

    pub(crate) fn parse_element(&self, s: &str) -> Result<(Vec<Atom>, Data), ParseFailed> {
        let s = &*without_comment(s)?;
        let (k, d) = match (self.kind, s.split_once(" : ")) {
            (DataKind::None, None) => return Ok((self.parse_key(s)?, Data::None)),
            (DataKind::None, Some(_)) => return Err(fail!("set element with data: {s:?}")),
            (_, None) => return Err(fail!("map element without data: {s:?}")),
            (_, Some(kd)) => kd,
        };
        let key = self.parse_key(k)?;
        let data = match self.kind {
            DataKind::Verdict => Data::Verdict(parse_jump(d)?),
            DataKind::Mark => match parse_atom(d)? {
                Atom::Num(n) => Data::Mark(n),
                _ => return Err(fail!("bad mark {d:?}")),
            },
            DataKind::AddrPort => match d.split(" . ").collect::<Vec<_>>().as_slice() {
                [a, p] => Data::AddrPort(
                    a.parse().map_err(|e| fail!("bad address {a:?}: {e}"))?,
                    p.parse().map_err(|e| fail!("bad port {p:?}: {e}"))?,
                ),
                _ => return Err(fail!("bad address . port {d:?}")),
            },
            DataKind::None => unreachable!(),
        };
        Ok((key, data))
    }

    pub(crate) fn get(&self, key: &[Atom], now: u64) -> Option<&Data> {
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
pub(crate) enum Expr {
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
pub(crate) enum MarkOp {
    Or,
    Xor,
}

/// One expression or statement of a rule, evaluated in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
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
    pub(crate) items: Vec<Item>,
}

impl Rule {
    pub(crate) fn chains(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|i| match i {
            Item::Verdict(j) => j.target(),
            _ => None,
        })
    }

    pub(crate) fn maps(&self) -> impl Iterator<Item = &str> {
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
    pub(crate) next_id: usize,
}

/// Token cursor over one rule.
pub(crate) struct Toks<'a> {
    pub(crate) t: Vec<&'a str>,
    pub(crate) i: usize,
}

impl<'a> Toks<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.t.get(self.i).copied()
    }
    fn peek2(&self) -> Option<&'a str> {
        self.t.get(self.i + 1).copied()
    }
    fn next(&mut self) -> Result<&'a str, ParseFailed> {
        let t = self.peek().ok_or("unexpected end of rule")?;
        self.i += 1;
        Ok(t)
    }
    fn expect(&mut self, want: &str) -> Result<(), ParseFailed> {
        let t = self.next()?;
        if t != want {
            return Err(fail!("expected {want:?}, found {t:?}"));
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
    fn name(&mut self) -> Result<String, ParseFailed> {
        let t = self.next()?;
        t.strip_prefix('@')
            .map(str::to_string)
            .ok_or_else(|| fail!("expected @name, found {t:?}"))
    }
    fn num(&mut self) -> Result<u32, ParseFailed> {
        match parse_atom(self.next()?)? {
            Atom::Num(n) => Ok(n),
            a => Err(fail!("expected a number, found {a}")),
        }
    }
    /// `{ a, b, ... }` (the `{` already taken).
    fn anon_set(&mut self) -> Result<Vec<Atom>, ParseFailed> {
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
    pub(crate) fn parse_primary(&mut self, t: &mut Toks) -> Result<Expr, ParseFailed> {
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
            (a, b) => return Err(fail!("unknown expression {a:?} {b:?}")),
        })
    }

    pub(crate) fn parse_concat(&mut self, t: &mut Toks) -> Result<Vec<Expr>, ParseFailed> {
        let mut out = vec![self.parse_primary(t)?];
        while t.eat(".") {
            out.push(self.parse_primary(t)?);
        }
        Ok(out)
    }

    /// An expression followed by how it is used: a comparison, a set lookup or a verdict map.
    pub(crate) fn parse_relational(&mut self, t: &mut Toks) -> Result<Item, ParseFailed> {
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
            return Err(fail!("concatenation followed by {tok:?}"));
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

    pub(crate) fn parse_rule(&mut self, text: &str) -> Result<Rule, ParseFailed> {
        let text = &*without_comment(text)?;
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
                        o => return Err(fail!("unknown mark operation {o:?}")),
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
                        o => return Err(fail!("unknown fib key {o:?}")),
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
                        .ok_or_else(|| fail!("bad timeout {to:?}"))?;
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
                _ => return Err(fail!("unknown syntax at {tok:?}")),
            };
            let terminal = matches!(
                item,
                Item::Verdict(_) | Item::Reject { .. } | Item::Masquerade | Item::Dnat { .. }
            );
            items.push(item);
            if terminal && t.peek().is_some() {
                return Err(fail!("statement after the verdict: {:?}", t.peek()));
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
                return Err(fail!("rule refers to chain {c} which does not exist"));
            }
        }
        for m in rule.maps() {
            if !self.maps.contains_key(m) {
                return Err(fail!("rule refers to @{m} which does not exist"));
            }
        }
        Ok(rule)
    }

    pub(crate) fn declare_map(
        &mut self,
        name: &str,
        set: bool,
        lines: &[&str],
    ) -> Result<(), ParseFailed> {
        let mut decl: Option<(DataKind, usize)> = None;
        let mut dynamic = false;
        let mut elements = Vec::new();
        for line in lines {
            if let Some(rest) = line.strip_prefix("elements = {") {
                let rest = rest
                    .strip_suffix('}')
                    .ok_or_else(|| fail!("bad elements line {line:?}"))?;
                elements.extend(rest.split(',').map(str::trim).filter(|s| !s.is_empty()));
                continue;
            }
            for clause in line.split(';').map(str::trim).filter(|c| !c.is_empty()) {
                if let Some(flags) = clause.strip_prefix("flags ") {
                    for f in flags.split(',') {
                        match f.trim() {
                            "dynamic" | "timeout" => dynamic = true,
                            f => return Err(fail!("unknown flag {f:?}")),
                        }
                    }
                    continue;
                }
                let spec = clause
                    .strip_prefix("typeof ")
                    .or_else(|| clause.strip_prefix("type "))
                    .ok_or_else(|| fail!("unknown declaration {clause:?} in {name}"))?;
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
                    _ => return Err(fail!("unsupported declaration {clause:?} of {name}")),
                };
                for part in key.split(" . ") {
                    match part {
                        "ipv4_addr" | "inet_proto" | "inet_service" | "mark" | "ct mark" => {}
                        p if p.starts_with("numgen ") => {}
                        p => return Err(fail!("unsupported key type {p:?} of {name}")),
                    }
                }
                decl = Some((kind, key.split(" . ").count()));
            }
        }
        let (kind, arity) = decl.ok_or_else(|| fail!("{name} without a type"))?;
        let mut map = Map {
            kind,
            arity,
            dynamic,
            elems: BTreeMap::new(),
        };
        if let Some(old) = self.maps.get(name) {
            if (old.kind, old.arity, old.dynamic) != (kind, arity, dynamic) {
                return Err(fail!("{name} redeclared with another type"));
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
    pub(crate) fn table_block(&mut self, lines: &[&str]) -> Result<(), ParseFailed> {
        let mut objects = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let end = lines[i..]
                .iter()
                .position(|l| *l == "}")
                .map(|p| i + p)
                .ok_or_else(|| fail!("unterminated {line:?}"))?;
            let body = &lines[i + 1..end];
            let head = line
                .strip_suffix(" {")
                .ok_or_else(|| fail!("unknown line in table: {line:?}"))?;
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
                        return Err(fail!("chain {name} redeclared with another hook"));
                    }
                    objects.push((name, rules));
                }
                _ => return Err(fail!("unknown object in table: {line:?}")),
            }
            i = end + 1;
        }
        for (name, rules) in objects {
            for r in rules {
                let rule = self.parse_rule(r).map_err(|e| fail!("{name}: {r}: {e}"))?;
                self.chains.get_mut(name).unwrap().rules.push(rule);
            }
        }
        Ok(())
    }

    pub(crate) fn referenced_chain(&self, name: &str) -> Option<String> {
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
    pub fn apply(&mut self, script: &str) -> Result<(), ParseFailed> {
        let mut next = self.clone();
        next.apply_inner(script)?;
        *self = next;
        Ok(())
    }

    pub(crate) fn apply_inner(&mut self, script: &str) -> Result<(), ParseFailed> {
        let lines: Vec<&str> = script.lines().map(str::trim).collect();
        let block_end = |from: usize| -> Result<usize, ParseFailed> {
            // Blocks end at a `}` alone in the first column of the script.
            script
                .lines()
                .enumerate()
                .skip(from)
                .find(|(_, l)| *l == "}")
                .map(|(i, _)| i)
                .ok_or_else(|| fail!("unterminated block at line {}", from + 1))
        };
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let ln = i + 1;
            let err = move |e: ParseFailed| fail!("line {ln}: {line:?}: {e}");
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
                        .ok_or_else(|| err(fail!("no map {name}")))?
                        .clone();
                    let mut map = map;
                    for e in &lines[i + 1..end] {
                        let e = e
                            .strip_suffix(',')
                            .ok_or_else(|| err(fail!("element {e:?} without comma")))?;
                        if op == "add" {
                            let (k, d) = map.parse_element(e).map_err(err)?;
                            if let Data::Verdict(j) = &d {
                                if let Some(c) = j.target() {
                                    if !self.chains.contains_key(c) {
                                        return Err(err(fail!("element {e:?}: no chain {c}")));
                                    }
                                }
                            }
                            match map.elems.get(&k) {
                                Some((old, _)) if *old != d => {
                                    return Err(err(fail!("element {e:?} exists with {old:?}")))
                                }
                                _ => {
                                    map.elems.insert(k, (d, None));
                                }
                            }
                        } else {
                            let k = map.parse_key(e).map_err(err)?;
                            if map.elems.remove(&k).is_none() {
                                return Err(err(fail!("delete of absent element {e:?}")));
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
                        return Err(err(fail!("chain in use by {by}")));
                    }
                    self.chains.remove(*name);
                }
                ("delete", "map" | "set", [name]) => {
                    if !self.maps.contains_key(*name) {
                        return Err(err("no such map".into()));
                    }
                    for (c, ch) in &self.chains {
                        if ch.rules.iter().any(|r| r.maps().any(|m| m == *name)) {
                            return Err(err(fail!("map in use by a rule of {c}")));
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
    pub fn parse(script: &str) -> Result<Ruleset, ParseFailed> {
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

pub(crate) fn parse_hook(line: &str) -> Result<(String, String, i32), ParseFailed> {
    let t: Vec<&str> = line.split_whitespace().collect();
    match t.as_slice() {
        ["type", ty @ ("filter" | "nat"), "hook", hook @ ("prerouting" | "input" | "forward" | "output" | "postrouting"), "priority", prio, "policy", "accept;"] =>
        {
            let prio = prio
                .strip_suffix(';')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| fail!("bad priority in {line:?}"))?;
            Ok((ty.to_string(), hook.to_string(), prio))
        }
        _ => Err(fail!("unsupported base chain declaration {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nftables::render_full;
    use crate::testing::fixtures::{fixture, nft_cfg as cfg, node};

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
}
