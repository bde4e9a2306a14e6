//! The scripts (pure: plans in, `nft -f` text out, golden-tested): a full sync as one script
//! ([`render_full`]) or as structure plus typed shared elements ([`render_full_sync`], which
//! [`super::kernel`] applies in three transactions), and a partial sync naming only the changed
//! Service ports ([`render_changes`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::model::{NodeInfo, ServicePortName, State};

use super::elements::{element_id, Commented, Elem};
use super::names::*;
use super::plan::*;

pub(super) fn push_elements(out: &mut String, name: &str, elems: &[String]) {
    if elems.is_empty() {
        return;
    }
    let _ = writeln!(out, "add element {FAMILY_TABLE} {name} {{");
    for e in elems {
        let _ = writeln!(out, "\t{e},");
    }
    out.push_str("}\n");
}

pub(super) fn push_chain(out: &mut String, name: &str, rules: &[String]) {
    let _ = writeln!(out, "\tchain {name} {{");
    for r in rules {
        let _ = writeln!(out, "\t\t{r}");
    }
    out.push_str("\t}\n");
}

/// The per-service maps and chains of `p` inside a `table ip svcnet { ... }` block.
pub(super) fn push_objects(out: &mut String, p: &Plan) {
    for (name, decl, _) in &p.maps {
        let _ = writeln!(out, "\tmap {name} {{\n\t\t{decl}\n\t}}");
    }
    for (name, rules) in &p.chains {
        push_chain(out, name, rules);
    }
}

pub(super) fn push_map_elements(out: &mut String, p: &Plan) {
    for (name, _, elems) in &p.maps {
        push_elements(out, name, elems);
    }
}

/// A complete `nft -f` script for `state`: the table replaced in one transaction, Service ports
/// numbered afresh.
pub fn render_full(state: &State, node: &NodeInfo, cfg: &Config) -> String {
    render_full_with(state, node, cfg, &mut Numbering::default())
}

/// [`render_full`], keeping the numbers `num` has for the Service ports still on the shared
/// dispatch path, and leaving `num` describing the new table.
pub fn render_full_with(
    state: &State,
    node: &NodeInfo,
    cfg: &Config,
    num: &mut Numbering,
) -> String {
    let full = render_full_sync(state, node, cfg, num);
    let mut out = String::with_capacity(full.structure.len() + 64);
    let _ = writeln!(out, "table {FAMILY_TABLE} {{}}");
    let _ = writeln!(out, "delete table {FAMILY_TABLE}");
    out.push_str(&full.structure);
    for (name, elems) in &full.shared {
        let mut text: Vec<String> = elems
            .iter()
            .map(|(e, c)| e.text_commented(c.as_deref()))
            .collect();
        text.sort_unstable();
        push_elements(&mut out, name, &text);
    }
    out
}

/// A full sync in two parts, so that the bulk of it — the shared maps' and sets' elements —
/// can go to the kernel without nft parsing it ([`Session::apply_full_sync`](super::Session::apply_full_sync)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FullSync {
    /// The `table ip svcnet { ... }` block (set declarations, every chain with its rules) and
    /// the elements of the Service ports' own maps.
    pub structure: String,
    /// The shared maps' and sets' elements (each once), with their comments.
    pub(crate) shared: Vec<(&'static str, Vec<Commented>)>,
    /// The names of the chains `structure` declares.
    pub chains: BTreeSet<String>,
    /// The sessionAffinity maps `structure` declares (client → endpoint, filled by traffic).
    pub affinity: BTreeSet<String>,
}

/// [`render_full_with`] as a [`FullSync`].
pub fn render_full_sync(
    state: &State,
    node: &NodeInfo,
    cfg: &Config,
    num: &mut Numbering,
) -> FullSync {
    let gone: Vec<ServicePortName> = num
        .ids
        .keys()
        .filter(|id| !state.services.get(*id).is_some_and(shared_dispatch))
        .cloned()
        .collect();
    for id in &gone {
        num.release(id);
    }
    let all: Vec<Plan> = state
        .services
        .keys()
        .filter_map(|id| plan_in(state, id, node, cfg, num))
        .collect();
    num.dispatch = all.iter().filter_map(|p| p.dispatch).collect();
    let mut out = String::new();
    let mut chains = BTreeSet::new();
    let _ = writeln!(out, "table {FAMILY_TABLE} {{");
    // The shared elements (and how many Service ports have each).
    let mut all = all;
    let mut shared = Vec::with_capacity(all.len());
    num.refs.clear();
    for p in &mut all {
        let mine = std::mem::take(&mut p.shared);
        for (name, list) in mine.counted() {
            for e in list {
                *num.refs.entry(element_id(name, e)).or_default() += 1;
            }
        }
        shared.push(mine);
    }
    let lists = merge(shared);
    // Shared sets and maps, sized for their elements: a hash table that grows while it is
    // filled costs the kernel a third more (NOTES.md). `size` is also a limit: a partial sync
    // that outgrows it fails, and the full sync that follows sizes the set anew.
    let decls: [(&str, &str, &str); 10] = [
        ("map", ENDPOINTS, ENDPOINTS_DECL),
        ("map", SERVICE_IDS, IDS_KEY3),
        ("map", SERVICE_IPS, VERDICT_KEY3),
        ("map", NODEPORT_IDS, IDS_KEY2),
        ("map", SERVICE_NODEPORTS, VERDICT_KEY2),
        ("map", NO_ENDPOINT_SERVICES, VERDICT_KEY3),
        ("map", NO_ENDPOINT_NODEPORTS, VERDICT_KEY2),
        ("map", FIREWALL_IPS, VERDICT_KEY3),
        ("set", CLUSTER_IPS, "type ipv4_addr;"),
        ("set", HAIRPIN, "type ipv4_addr . ipv4_addr;"),
    ];
    for (kind, name, decl) in decls {
        let count = lists
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, l)| l.len());
        let size = if count >= SIZED_FROM {
            format!(" size {};", (count * 4).next_power_of_two())
        } else {
            String::new()
        };
        let _ = writeln!(out, "	{kind} {name} {{\n\t\t{decl}{size}\n\t}}");
    }
    let node_ips: BTreeSet<Ipv4Addr> = node.node_ips.iter().filter_map(v4).collect();
    if !node_ips.is_empty() {
        let list: Vec<String> = node_ips.iter().map(Ipv4Addr::to_string).collect();
        let _ = writeln!(
            out,
            "\tset {NODEPORT_IPS} {{\n\t\ttype ipv4_addr;\n\t\telements = {{ {} }}\n\t}}",
            list.join(", ")
        );
    }
    // Fixed chains.
    let nodeport_dest = if node_ips.is_empty() {
        "fib daddr type local ip daddr != 127.0.0.0/8".to_string()
    } else {
        format!("ip daddr @{NODEPORT_IPS}")
    };
    let mut chain =
        |out: &mut String, name: &str, hook: Option<(&str, &str, i32)>, rules: &[String]| {
            chains.insert(name.to_string());
            let _ = writeln!(out, "\tchain {name} {{");
            if let Some((ty, hook, prio)) = hook {
                let _ = writeln!(
                    out,
                    "\t\ttype {ty} hook {hook} priority {prio}; policy accept;"
                );
            }
            for r in rules {
                let _ = writeln!(out, "\t\t{r}");
            }
            out.push_str("\t}\n");
        };
    chain(
        &mut out,
        MARK_FOR_MASQUERADE,
        None,
        &[format!("meta mark set meta mark | {MASQ_MARK}")],
    );
    chain(
        &mut out,
        MASQUERADING,
        None,
        &[
            format!("ip saddr . ip daddr @{HAIRPIN} jump {MARK_FOR_MASQUERADE}"),
            format!("meta mark & {MASQ_MARK} == 0 return"),
            format!("meta mark set meta mark ^ {MASQ_MARK}"),
            "masquerade fully-random".to_string(),
        ],
    );
    chain(
        &mut out,
        REJECT_CHAIN,
        None,
        &[
            "meta l4proto tcp reject with tcp reset".to_string(),
            "reject".to_string(),
        ],
    );
    chain(
        &mut out,
        FIREWALL_CHECK,
        None,
        &[format!(
            "ip daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}"
        )],
    );
    chain(
        &mut out,
        SERVICE_ENDPOINTS_CHECK,
        None,
        &[format!(
            "ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"
        )],
    );
    chain(
        &mut out,
        NODEPORT_ENDPOINTS_CHECK,
        None,
        &[format!(
            "{nodeport_dest} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"
        )],
    );
    chain(
        &mut out,
        CLUSTER_IPS_CHECK,
        None,
        &[format!("ip daddr @{CLUSTER_IPS} goto {REJECT_CHAIN}")],
    );
    let new = "ct state new jump";
    chain(
        &mut out,
        FILTER_PREROUTING,
        Some(("filter", "prerouting", -110)),
        &[format!("{new} {FIREWALL_CHECK}")],
    );
    chain(
        &mut out,
        FILTER_INPUT,
        Some(("filter", "input", -110)),
        &[
            format!("{new} {NODEPORT_ENDPOINTS_CHECK}"),
            format!("{new} {SERVICE_ENDPOINTS_CHECK}"),
        ],
    );
    chain(
        &mut out,
        FILTER_FORWARD,
        Some(("filter", "forward", -110)),
        &[
            format!("{new} {SERVICE_ENDPOINTS_CHECK}"),
            format!("{new} {CLUSTER_IPS_CHECK}"),
        ],
    );
    chain(
        &mut out,
        FILTER_OUTPUT,
        Some(("filter", "output", -110)),
        &[
            format!("{new} {SERVICE_ENDPOINTS_CHECK}"),
            format!("{new} {FIREWALL_CHECK}"),
        ],
    );
    chain(
        &mut out,
        FILTER_OUTPUT_POST_DNAT,
        Some(("filter", "output", -90)),
        &[format!("{new} {CLUSTER_IPS_CHECK}")],
    );
    for n in &num.dispatch {
        for (name, rules) in dispatch_chains(*n, cfg) {
            chain(&mut out, &name, None, &rules);
        }
    }
    chain(
        &mut out,
        SERVICES,
        None,
        &[
            format!("ct mark set ip daddr . meta l4proto . th dport map @{SERVICE_IDS}"),
            format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
            format!("{nodeport_dest} ct mark set meta l4proto . th dport map @{NODEPORT_IDS}"),
            format!("{nodeport_dest} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
        ],
    );
    chain(
        &mut out,
        NAT_PREROUTING,
        Some(("nat", "prerouting", -100)),
        &[format!("jump {SERVICES}")],
    );
    chain(
        &mut out,
        NAT_OUTPUT,
        Some(("nat", "output", -100)),
        &[format!("jump {SERVICES}")],
    );
    chain(
        &mut out,
        NAT_POSTROUTING,
        Some(("nat", "postrouting", 100)),
        &[format!("jump {MASQUERADING}")],
    );
    // Per-service maps and chains.
    for p in &all {
        push_objects(&mut out, p);
        chains.extend(p.chains.iter().map(|(name, _)| name.clone()));
    }
    out.push_str("}\n");
    // Their maps' elements.
    for p in &all {
        push_map_elements(&mut out, p);
    }
    let affinity = all
        .iter()
        .flat_map(|p| &p.maps)
        .filter(|(_, decl, _)| *decl == AFF_DECL)
        .map(|(name, _, _)| name.clone())
        .collect();
    FullSync {
        structure: out,
        shared: lists,
        chains,
        affinity,
    }
}

/// An incremental sync from `old` (what the table holds, as [`render_full_with`] of `old` or
/// earlier partial syncs left it, with `num` describing it) to `new`, for the Service ports
/// `ids` (the ones that differ; others must be equal in both states). One transaction that:
///
/// - deletes from the shared maps and sets exactly the elements the `old` Service ports put
///   there and that nothing in `new` still needs (an element shared with another Service port,
///   such as a ClusterIP of a multi-port Service or an endpoint's `hairpin` entry, stays),
/// - empties the Service ports' own chains and replaces their own maps, deleting what `new` no
///   longer uses,
/// - creates the `pick-N` chains of endpoint counts not in use before,
/// - adds the shared elements `new` has and `old` had not.
///
/// For a Service port on the shared dispatch path in both states, that is elements only. Its
/// cost depends on the changed Service ports, not on the size of the table. Not idempotent:
/// apply it once, against the table `old` describes; `num` then describes the new table.
/// sessionAffinity state of these Service ports restarts.
pub fn render_changes<'a>(
    old: &State,
    new: &State,
    ids: impl IntoIterator<Item = &'a ServicePortName>,
    node: &NodeInfo,
    cfg: &Config,
    num: &mut Numbering,
) -> String {
    let ids: BTreeSet<&ServicePortName> = ids.into_iter().collect();
    let (old_eps, old_counts, theirs, _) = plans_of(old, &ids, node, cfg, num);
    // Numbers of Service ports leaving the shared path are released after this transaction, so
    // no number is both deleted and added in it.
    let leaving: Vec<&ServicePortName> = ids
        .iter()
        .filter(|id| !new.services.get(**id).is_some_and(shared_dispatch))
        .copied()
        .collect();
    let (new_eps, new_counts, mine, comments) = plans_of(new, &ids, node, cfg, num);

    // A shared element goes when no Service port has it any more, and comes when the first one
    // does; `endpoints` elements belong to one Service port each.
    let mut delta: BTreeMap<(&'static str, Elem), i64> = new_counts;
    for (k, c) in old_counts {
        *delta.entry(k).or_default() -= c;
    }
    let mut gone: BTreeSet<(&'static str, Elem)> = BTreeSet::new();
    let mut come: BTreeSet<(&'static str, Elem)> = BTreeSet::new();
    for (k, d) in delta {
        if d == 0 {
            continue;
        }
        let id = element_id(k.0, &k.1);
        let before = i64::from(num.refs.get(&id).copied().unwrap_or(0));
        let after = (before + d).max(0);
        match (before > 0, after > 0) {
            (true, false) => gone.insert(k.clone()),
            (false, true) => come.insert(k.clone()),
            _ => false,
        };
        if after == 0 {
            num.refs.remove(&id);
        } else {
            num.refs
                .insert(id, u32::try_from(after).unwrap_or(u32::MAX));
        }
    }
    gone.extend(old_eps.difference(&new_eps).map(|e| (ENDPOINTS, e.clone())));
    come.extend(new_eps.difference(&old_eps).map(|e| (ENDPOINTS, e.clone())));

    // By map, as nft writes them (keys only for deletes), sorted by that text.
    let group = |set: BTreeSet<(&'static str, Elem)>, text: &dyn Fn(&(&str, Elem)) -> String| {
        let mut by_map: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for k in set {
            by_map.entry(k.0).or_default().push(text(&k));
        }
        for v in by_map.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        by_map
    };
    let deletes = group(gone, &|(_, e)| e.key_text());
    let adds = group(come, &|k| k.1.text_commented(comments.get(k).map(|c| &**c)));

    let mut out = String::new();
    // 1. Shared elements that go (they may reference chains deleted below).
    for (name, keys) in &deletes {
        let _ = writeln!(out, "delete element {FAMILY_TABLE} {name} {{");
        for k in keys {
            let _ = writeln!(out, "\t{k},");
        }
        out.push_str("}\n");
    }
    // 2. Empty the Service ports' own chains (they may jump to each other), then delete the ones
    // `new` does not use and the old maps (replaced rather than flushed: nft, reading a `typeof`
    // map back from the kernel, refuses a `tcp` rule on it).
    let has_chain =
        |p: Option<&Plan>, c: &str| p.is_some_and(|p| p.chains.iter().any(|(n, _)| n == c));
    for p in theirs.values() {
        for (c, _) in &p.chains {
            let _ = writeln!(out, "flush chain {FAMILY_TABLE} {c}");
        }
    }
    for (id, p) in &theirs {
        for (c, _) in &p.chains {
            if !has_chain(mine.get(id), c) {
                let _ = writeln!(out, "delete chain {FAMILY_TABLE} {c}");
            }
        }
        for (m, _, _) in &p.maps {
            let _ = writeln!(out, "delete map {FAMILY_TABLE} {m}");
        }
    }
    // 3. New dispatch chains, the Service ports' chains' rules and their maps' elements.
    let fresh: Vec<usize> = mine
        .values()
        .filter_map(|p| p.dispatch)
        .filter(|n| !num.dispatch.contains(n))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !fresh.is_empty()
        || mine
            .values()
            .any(|p| !p.chains.is_empty() || !p.maps.is_empty())
    {
        let _ = writeln!(out, "table {FAMILY_TABLE} {{");
        for n in fresh {
            for (name, rules) in dispatch_chains(n, cfg) {
                push_chain(&mut out, &name, &rules);
            }
            num.dispatch.insert(n);
        }
        for p in mine.values() {
            push_objects(&mut out, p);
        }
        out.push_str("}\n");
    }
    for p in mine.values() {
        push_map_elements(&mut out, p);
    }
    // 4. Shared elements that come.
    for (name, elems) in &adds {
        push_elements(&mut out, name, elems);
    }
    for id in leaving {
        num.release(id);
    }
    out
}
