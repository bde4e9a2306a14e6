//! The nft tracer (kube-proxy's `tracePacket` in `pkg/proxy/nftables/helpers_test.go`): a
//! packet walked through a [`Ruleset`]'s base chains in the kernel's hook order, with the state
//! the kernel keeps between packets (`numgen inc` counters, dynamic maps with timeouts).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::model::Protocol;

use super::packet::{is_local, Packet, Trace, Verdict, Walk, MAX_DEPTH};
use super::ruleset::*;

/// The packet as the rules see it while it is traced.
pub(crate) struct Ctx {
    walk: Walk,
    ctmark: u32,
}

impl std::ops::Deref for Ctx {
    type Target = Walk;
    fn deref(&self) -> &Walk {
        &self.walk
    }
}

impl std::ops::DerefMut for Ctx {
    fn deref_mut(&mut self) -> &mut Walk {
        &mut self.walk
    }
}

pub(crate) enum Outcome {
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
    pub(crate) counters: HashMap<usize, u32>,
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

    pub(crate) fn is_local(&self, ip: Ipv4Addr) -> bool {
        is_local(&self.local_ips, ip)
    }

    /// Walk `p` through the hooks in the kernel's order.
    pub fn trace(&mut self, p: Packet) -> Trace {
        let mut ctx = Ctx {
            walk: Walk::new(&p),
            ctmark: 0,
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
        ctx.walk.into_trace(verdict, delivered_locally)
    }

    pub(crate) fn run_hook(&mut self, hook: &str, ctx: &mut Ctx) -> Verdict {
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

    pub(crate) fn run_chain(&mut self, base: &str, ctx: &mut Ctx) -> Verdict {
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

    pub(crate) fn value(&mut self, e: &Expr, ctx: &mut Ctx) -> Atom {
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

    pub(crate) fn key(&mut self, k: &[Expr], ctx: &mut Ctx) -> Vec<Atom> {
        k.iter().map(|e| self.value(e, ctx)).collect()
    }

    pub(crate) fn lookup(&self, map: &str, key: &[Atom]) -> Option<Data> {
        self.ruleset.maps[map].get(key, self.now).cloned()
    }

    pub(crate) fn eval(&mut self, rule: &Rule, ctx: &mut Ctx) -> Outcome {
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
