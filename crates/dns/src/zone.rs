//! The cluster zone (pure, no I/O): Services, EndpointSlices, Namespaces (and Pods, for
//! `pods verified`) in, an index of every name the Kubernetes DNS specification (schema 1.1.0)
//! defines out, answered in O(1) per query. Where the specification is silent the answers are
//! CoreDNS's kubernetes plugin's (NXDOMAIN vs NODATA, SRV weights, endpoint names from IPs).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The schema version served at `dns-version.<domain>` (TXT).
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// SOA timers, as CoreDNS's (refresh, retry, expire).
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;
/// The cluster DNS Service, whose addresses `ns.dns.<domain>` (the zone's NS) has.
pub const DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");
/// How many CNAMEs inside the zone are followed.
const MAX_CNAME_CHAIN: usize = 8;

/// `--pods`: the `<a-b-c-d>.<ns>.pod.<domain>` records (CoreDNS's `pods` option).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodMode {
    /// No pod records (NXDOMAIN), CoreDNS's default.
    #[default]
    Disabled,
    /// Any well-formed address in an existing namespace answers (kube-dns compatible).
    Insecure,
    /// Only addresses of pods that exist in that namespace answer.
    Verified,
}

/// Parsing a [`PodMode`] failed: not one of its names.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown pods mode {0:?}: use disabled, insecure or verified")]
pub struct UnknownPodMode(pub String);

impl std::str::FromStr for PodMode {
    type Err = UnknownPodMode;

    fn from_str(s: &str) -> Result<Self, UnknownPodMode> {
        match s {
            "disabled" => Ok(PodMode::Disabled),
            "insecure" => Ok(PodMode::Insecure),
            "verified" => Ok(PodMode::Verified),
            other => Err(UnknownPodMode(other.to_string())),
        }
    }
}

/// What the zone is built with.
#[derive(Clone, Debug)]
pub struct ZoneConfig {
    /// The cluster domain, without a trailing dot (`cluster.local`).
    pub domain: String,
    /// TTL of every record (and the SOA's minimum).
    pub ttl: u32,
    pub pods: PodMode,
    /// The SOA serial (CoreDNS: the time of the last change).
    pub serial: u32,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        ZoneConfig {
            domain: svcnet_cluster::defaults::CLUSTER_DOMAIN.into(),
            ttl: 5,
            pods: PodMode::Disabled,
            serial: 0,
        }
    }
}

/// The records of one owner name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Node {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    /// (port, target) — weights are computed per answer, as CoreDNS does.
    srv: Vec<(u16, Name)>,
    cname: Option<Name>,
    txt: Option<String>,
}

impl Node {
    fn add_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) if !self.v4.contains(&a) => self.v4.push(a),
            IpAddr::V6(a) if !self.v6.contains(&a) => self.v6.push(a),
            _ => {}
        }
    }
}

/// An answer of the zone (the response's sections and code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    /// The answer ends in a CNAME to a name outside the zone: the handler resolves that name
    /// (same type) and appends its records, as CoreDNS does for ExternalName Services.
    pub chase: Option<Name>,
}

impl Answer {
    fn new(rcode: ResponseCode) -> Self {
        Answer {
            rcode,
            authoritative: true,
            answers: vec![],
            authority: vec![],
            additional: vec![],
            chase: None,
        }
    }
}

/// The cluster zone, indexed: every owner name (lowercase, fully qualified, no trailing dot)
/// to its records, and every published IP to its PTR targets.
#[derive(Clone, Debug)]
pub struct ClusterZone {
    cfg: ZoneConfig,
    /// `cluster.local.`
    origin: Name,
    /// The origin's SOA MNAME (`ns.dns.<domain>.`, also its NS) and RNAME
    /// (`hostmaster.<domain>.`), made once rather than per negative answer.
    mname: Name,
    rname: Name,
    names: Sharded<String, Node>,
    ptr: Sharded<IpAddr, Vec<Name>>,
    namespaces: Arc<HashSet<String>>,
    /// (namespace, pod IP) for `pods verified`.
    pod_ips: Arc<HashSet<(String, IpAddr)>>,
}

/// The SOA MNAME and RNAME of `zone`: `ns.dns.<zone>` and `hostmaster.<zone>`.
fn soa_names(zone: &Name) -> (Name, Name) {
    let under = |label: &str| {
        Name::from_ascii(label)
            .and_then(|n| n.append_domain(zone))
            .unwrap_or_else(|_| zone.clone())
    };
    (under("ns.dns"), under("hostmaster"))
}

fn fqdn(s: &str) -> Name {
    // Every name built here is made of validated Kubernetes names; a failure is a bug in the
    // inputs' validation, so fall back to the root rather than panic in a server.
    Name::from_ascii(format!("{s}.")).unwrap_or_else(|_| Name::root())
}

/// `_tcp`, `_udp`, `_sctp`.
fn proto_label(p: Option<&str>) -> String {
    format!("_{}", p.unwrap_or("TCP").to_ascii_lowercase())
}

/// CoreDNS's name for an endpoint without a hostname: its IP with `.`/`:` replaced by `-`.
pub fn dashed_ip(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string().replace('.', "-"),
        IpAddr::V6(a) => a.to_string().replace(':', "-"),
    }
}

/// The IP a pod-record label names (`10-244-1-3`, or `fd00--1` for IPv6).
fn undashed_ip(label: &str) -> Option<IpAddr> {
    if let Ok(a) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(a));
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The key of a name in the index: lowercase, no trailing dot.
fn key_of(name: &Name) -> String {
    let mut s = name.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

struct SvcPort {
    name: String,
    proto: String,
    port: u16,
}

/// How many shards the index has: an update clones only the shards it touches, so a change
/// costs O(its names) plus a copy of this many pointers, not a copy of the zone.
const SHARDS: usize = 64;

/// The shards' hasher: foldhash (several times cheaper than SipHash on the short keys of a
/// query, which hashes twice), seeded at random per map as std's.
type Hasher = foldhash::fast::RandomState;

/// Which shard a key is in: the same for every map (a fixed seed; only the spread matters).
const SHARD_HASHER: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x5eed);

/// A hash map split into shards behind `Arc`s: cloning is cheap, and a write copies only the
/// shard it lands in when that shard is shared (with the zone queries are reading).
#[derive(Clone, Debug)]
struct Sharded<K, V> {
    shards: Vec<Arc<HashMap<K, V, Hasher>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Sharded<K, V> {
    fn new() -> Self {
        Sharded {
            shards: (0..SHARDS)
                .map(|_| Arc::new(HashMap::with_hasher(Hasher::default())))
                .collect(),
        }
    }

    fn shard_of<Q: Hash + ?Sized>(k: &Q) -> usize {
        (SHARD_HASHER.hash_one(k) % SHARDS as u64) as usize
    }

    fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[Self::shard_of(k)].get(k)
    }

    fn shard_mut(&mut self, i: usize) -> &mut HashMap<K, V, Hasher> {
        Arc::make_mut(&mut self.shards[i])
    }

    fn insert(&mut self, k: K, v: V) {
        let i = Self::shard_of(&k);
        self.shard_mut(i).insert(k, v);
    }

    fn remove<Q>(&mut self, k: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = Self::shard_of(k);
        if self.shards[i].contains_key(k) {
            self.shard_mut(i).remove(k);
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }
}

/// What one Service puts in the zone: owner names with their records, and PTR targets.
#[derive(Debug, Default)]
struct Contribution {
    names: Vec<(String, Node)>,
    ptrs: Vec<(IpAddr, Name)>,
}

/// What a Service's records depend on: its resourceVersion and its slices' (None when an
/// object has none, e.g. in tests: then it is always rebuilt).
type Fingerprint = Option<(String, Vec<(String, String)>)>;

fn fingerprint(s: &Service, slices: &[&EndpointSlice]) -> Fingerprint {
    let rv = s.metadata.resource_version.clone()?;
    let mut sl = Vec::with_capacity(slices.len());
    for x in slices {
        sl.push((
            x.metadata.name.clone().unwrap_or_default(),
            x.metadata.resource_version.clone()?,
        ));
    }
    sl.sort();
    Some((rv, sl))
}

/// What a Service added, to take it out again: (fingerprint, owner names, PTRs).
type Added = (Fingerprint, Vec<String>, Vec<(IpAddr, Name)>);

/// Keeps the last zone and what each Service contributed to it, so an update rebuilds only
/// the Services whose object or EndpointSlices changed (by resourceVersion), and the new zone
/// shares every untouched shard with the previous one.
pub struct ZoneBuilder {
    zone: ClusterZone,
    /// (namespace, name) → (fingerprint, the names and PTRs it added).
    contrib: HashMap<(String, String), Added>,
}

impl ZoneBuilder {
    pub fn new(cfg: ZoneConfig) -> Self {
        let domain = cfg.domain.trim_end_matches('.').to_ascii_lowercase();
        let cfg = ZoneConfig { domain, ..cfg };
        let d = cfg.domain.clone();
        let origin = fqdn(&d);
        let (mname, rname) = soa_names(&origin);
        let mut z = ClusterZone {
            mname,
            rname,
            origin,
            names: Sharded::new(),
            ptr: Sharded::new(),
            namespaces: Arc::new(HashSet::new()),
            pod_ips: Arc::new(HashSet::new()),
            cfg,
        };
        z.names.insert(d.clone(), Node::default());
        z.names.insert(format!("svc.{d}"), Node::default());
        z.names.insert(
            format!("dns-version.{d}"),
            Node {
                txt: Some(SCHEMA_VERSION.into()),
                ..Default::default()
            },
        );
        if z.cfg.pods != PodMode::Disabled {
            z.names.insert(format!("pod.{d}"), Node::default());
        }
        ZoneBuilder {
            zone: z,
            contrib: HashMap::new(),
        }
    }

    /// The zone for the current objects (with SOA serial `serial`).
    pub fn update(
        &mut self,
        serial: u32,
        services: &[&Service],
        slices: &[&EndpointSlice],
        namespaces: &[&Namespace],
        pods: &[&Pod],
    ) -> ClusterZone {
        let z = &mut self.zone;
        z.cfg.serial = serial;
        let d = z.cfg.domain.clone();
        // Namespaces: those that exist, and those of Services.
        let mut nss: HashSet<String> = namespaces
            .iter()
            .filter_map(|n| n.metadata.name.as_deref().map(str::to_ascii_lowercase))
            .collect();
        nss.extend(
            services
                .iter()
                .filter_map(|s| s.metadata.namespace.as_deref().map(str::to_ascii_lowercase)),
        );
        let pods_on = z.cfg.pods != PodMode::Disabled;
        for ns in nss.difference(&z.namespaces) {
            z.names.insert(format!("{ns}.svc.{d}"), Node::default());
            if pods_on {
                z.names.insert(format!("{ns}.pod.{d}"), Node::default());
            }
        }
        for ns in z.namespaces.difference(&nss) {
            z.names.remove(format!("{ns}.svc.{d}").as_str());
            z.names.remove(format!("{ns}.pod.{d}").as_str());
        }
        if *z.namespaces != nss {
            z.namespaces = Arc::new(nss);
        }
        if z.cfg.pods == PodMode::Verified {
            let mut ips = HashSet::new();
            for p in pods {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let Some(st) = &p.status else { continue };
                let all = st
                    .pod_ip
                    .iter()
                    .chain(st.pod_ips.iter().flatten().map(|i| &i.ip));
                for ip in all {
                    if let Ok(ip) = ip.parse::<IpAddr>() {
                        ips.insert((ns.clone(), ip));
                    }
                }
            }
            z.pod_ips = Arc::new(ips);
        }
        // EndpointSlices by (namespace, service).
        let mut by_svc: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for s in slices {
            let ns = s.metadata.namespace.as_deref().unwrap_or_default();
            if let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                by_svc.entry((ns, svc.as_str())).or_default().push(s);
            }
        }
        let mut seen: HashSet<(String, String)> = HashSet::with_capacity(services.len());
        for s in services {
            let (Some(name), Some(ns)) = (&s.metadata.name, &s.metadata.namespace) else {
                continue;
            };
            let sl = by_svc
                .get(&(ns.as_str(), name.as_str()))
                .map(|v| v.as_slice())
                .unwrap_or(&[]);
            let fp = fingerprint(s, sl);
            let key = (ns.to_ascii_lowercase(), name.to_ascii_lowercase());
            if let Some((old_fp, _, _)) = self.contrib.get(&key) {
                if fp.is_some() && *old_fp == fp {
                    seen.insert(key);
                    continue;
                }
            }
            if let Some((_, names, ptrs)) = self.contrib.remove(&key) {
                remove_contribution(z, &names, &ptrs);
            }
            let c = service_records(&d, &key.0, &key.1, s, sl);
            let names: Vec<String> = c.names.iter().map(|(k, _)| k.clone()).collect();
            for (k, node) in c.names {
                z.names.insert(k, node);
            }
            for (ip, t) in &c.ptrs {
                let i = Sharded::<IpAddr, Vec<Name>>::shard_of(ip);
                z.ptr.shard_mut(i).entry(*ip).or_default().push(t.clone());
            }
            self.contrib.insert(key.clone(), (fp, names, c.ptrs));
            seen.insert(key);
        }
        let gone: Vec<(String, String)> = self
            .contrib
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some((_, names, ptrs)) = self.contrib.remove(&k) {
                remove_contribution(z, &names, &ptrs);
            }
        }
        self.zone.clone()
    }
}

fn remove_contribution(z: &mut ClusterZone, names: &[String], ptrs: &[(IpAddr, Name)]) {
    for k in names {
        z.names.remove(k.as_str());
    }
    for (ip, t) in ptrs {
        let i = Sharded::<IpAddr, Vec<Name>>::shard_of(ip);
        if let Some(v) = z.ptr.shards[i].get(ip) {
            let pos = v.iter().position(|x| x == t);
            let m = z.ptr.shard_mut(i);
            if let (Some(pos), Some(v)) = (pos, m.get_mut(ip)) {
                v.remove(pos);
                if v.is_empty() {
                    m.remove(ip);
                }
            }
        }
    }
}

impl ClusterZone {
    /// Build the zone from the watched objects (from scratch; [`ZoneBuilder`] updates).
    pub fn build(
        cfg: ZoneConfig,
        services: &[&Service],
        slices: &[&EndpointSlice],
        namespaces: &[&Namespace],
        pods: &[&Pod],
    ) -> ClusterZone {
        let serial = cfg.serial;
        ZoneBuilder::new(cfg).update(serial, services, slices, namespaces, pods)
    }

    /// How many owner names the zone has (for logs and metrics).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.len() == 0
    }

    /// Whether `name` is in one of the zones this server is authoritative for: the cluster
    /// domain (always) or a reverse zone (only for addresses the cluster publishes; the rest
    /// falls through to the upstream resolvers, as CoreDNS's `fallthrough in-addr.arpa
    /// ip6.arpa`).
    pub fn is_cluster_name(&self, name: &Name) -> bool {
        self.origin.zone_of(name)
    }

    /// The SOA of `zone`, as CoreDNS writes it.
    pub fn soa(&self, zone: &Name) -> Record {
        let ttl = self.cfg.ttl;
        let (mname, rname) = if *zone == self.origin {
            (self.mname.clone(), self.rname.clone())
        } else {
            soa_names(zone)
        };
        Record::from_rdata(
            zone.clone(),
            ttl,
            RData::SOA(SOA::new(
                mname,
                rname,
                self.cfg.serial,
                SOA_REFRESH,
                SOA_RETRY,
                SOA_EXPIRE,
                ttl,
            )),
        )
    }

    fn negative(&self, rcode: ResponseCode, zone: &Name) -> Answer {
        let mut a = Answer::new(rcode);
        a.authority.push(self.soa(zone));
        a
    }

    /// Answer a question, or None when the name is not ours (forward it).
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Option<Answer> {
        if self.origin.zone_of(qname) {
            return Some(self.answer_cluster(qname, qtype, 0));
        }
        self.answer_reverse(qname, qtype)
    }

    fn answer_reverse(&self, qname: &Name, qtype: RecordType) -> Option<Answer> {
        let net = qname.parse_arpa_name().ok()?;
        let full = match net {
            ipnet::IpNet::V4(n) => n.prefix_len() == 32,
            ipnet::IpNet::V6(n) => n.prefix_len() == 128,
        };
        if !full {
            return None;
        }
        let targets = self.ptr.get(&net.addr())?;
        let zone = if net.addr().is_ipv4() {
            Name::from_ascii("in-addr.arpa.")
        } else {
            Name::from_ascii("ip6.arpa.")
        }
        .ok()?;
        if qtype != RecordType::PTR {
            return Some(self.negative(ResponseCode::NoError, &zone));
        }
        let mut a = Answer::new(ResponseCode::NoError);
        for t in targets {
            a.answers.push(Record::from_rdata(
                qname.clone(),
                self.cfg.ttl,
                RData::PTR(PTR(t.clone())),
            ));
        }
        Some(a)
    }

    fn answer_cluster(&self, qname: &Name, qtype: RecordType, depth: usize) -> Answer {
        let key = key_of(qname);
        let ttl = self.cfg.ttl;
        let Some(node) = self.names.get(key.as_str()) else {
            if let Some(a) = self.answer_pod(qname, &key, qtype) {
                return a;
            }
            return self.negative(ResponseCode::NXDomain, &self.origin);
        };
        let mut a = Answer::new(ResponseCode::NoError);
        if let Some(target) = &node.cname {
            a.answers.push(Record::from_rdata(
                qname.clone(),
                ttl,
                RData::CNAME(CNAME(target.clone())),
            ));
            if qtype == RecordType::CNAME {
                return a;
            }
            if self.origin.zone_of(target) {
                if depth < MAX_CNAME_CHAIN {
                    let rest = self.answer_cluster(target, qtype, depth + 1);
                    a.answers.extend(rest.answers);
                    a.additional.extend(rest.additional);
                    a.chase = rest.chase;
                }
            } else {
                a.chase = Some(target.clone());
            }
            return a;
        }
        match qtype {
            RecordType::A => {
                for ip in &node.v4 {
                    a.answers.push(Record::from_rdata(
                        qname.clone(),
                        ttl,
                        RData::A((*ip).into()),
                    ));
                }
            }
            RecordType::AAAA => {
                for ip in &node.v6 {
                    a.answers.push(Record::from_rdata(
                        qname.clone(),
                        ttl,
                        RData::AAAA((*ip).into()),
                    ));
                }
            }
            RecordType::SRV if !node.srv.is_empty() => {
                // CoreDNS: priority 0, weight 100 / (records at that priority), rounded.
                let weight = (100.0 / node.srv.len() as f64).round() as u16;
                let mut seen = HashSet::new();
                for (port, target) in &node.srv {
                    a.answers.push(Record::from_rdata(
                        qname.clone(),
                        ttl,
                        RData::SRV(SRV::new(0, weight, *port, target.clone())),
                    ));
                    if seen.insert(target.clone()) {
                        if let Some(t) = self.names.get(key_of(target).as_str()) {
                            for ip in &t.v4 {
                                a.additional.push(Record::from_rdata(
                                    target.clone(),
                                    ttl,
                                    RData::A((*ip).into()),
                                ));
                            }
                            for ip in &t.v6 {
                                a.additional.push(Record::from_rdata(
                                    target.clone(),
                                    ttl,
                                    RData::AAAA((*ip).into()),
                                ));
                            }
                        }
                    }
                }
            }
            RecordType::TXT => {
                if let Some(t) = &node.txt {
                    a.answers.push(Record::from_rdata(
                        qname.clone(),
                        ttl,
                        RData::TXT(TXT::new(vec![t.clone()])),
                    ));
                }
            }
            RecordType::SOA if key == self.cfg.domain => {
                let mut soa = self.soa(&self.origin);
                soa.name = qname.clone();
                a.answers.push(soa);
            }
            RecordType::NS if key == self.cfg.domain => {
                let ns = self.mname.clone();
                if let Some(glue) = self.names.get(key_of(&ns).as_str()) {
                    for ip in &glue.v4 {
                        a.additional.push(Record::from_rdata(
                            ns.clone(),
                            ttl,
                            RData::A((*ip).into()),
                        ));
                    }
                    for ip in &glue.v6 {
                        a.additional.push(Record::from_rdata(
                            ns.clone(),
                            ttl,
                            RData::AAAA((*ip).into()),
                        ));
                    }
                }
                a.answers
                    .push(Record::from_rdata(qname.clone(), ttl, RData::NS(NS(ns))));
            }
            _ => {}
        }
        if a.answers.is_empty() {
            // The name exists, the type does not: NODATA.
            a.authority.push(self.soa(&self.origin));
        }
        a
    }

    /// `<a-b-c-d>.<ns>.pod.<domain>` (not in the index: computed from the name).
    fn answer_pod(&self, qname: &Name, key: &str, qtype: RecordType) -> Option<Answer> {
        if self.cfg.pods == PodMode::Disabled {
            return None;
        }
        let rest = key.strip_suffix(&format!(".pod.{}", self.cfg.domain))?;
        let (label, ns) = rest.split_once('.')?;
        if ns.contains('.') || !self.namespaces.contains(ns) {
            return None;
        }
        let ip = undashed_ip(label)?;
        if self.cfg.pods == PodMode::Verified && !self.pod_ips.contains(&(ns.to_string(), ip)) {
            return None;
        }
        let mut a = Answer::new(ResponseCode::NoError);
        let rdata = match (qtype, ip) {
            (RecordType::A, IpAddr::V4(v4)) => Some(RData::A(v4.into())),
            (RecordType::AAAA, IpAddr::V6(v6)) => Some(RData::AAAA(v6.into())),
            _ => None,
        };
        match rdata {
            Some(r) => a
                .answers
                .push(Record::from_rdata(qname.clone(), self.cfg.ttl, r)),
            None => a.authority.push(self.soa(&self.origin)),
        }
        Some(a)
    }
}

/// The records one Service contributes to the zone (`d`: the cluster domain).
fn service_records(
    d: &str,
    ns: &str,
    name: &str,
    s: &Service,
    slices: &[&EndpointSlice],
) -> Contribution {
    let mut c = Contribution::default();
    c.add_service(d, ns, name, s, slices);
    c
}

impl Contribution {
    fn add_service(
        &mut self,
        d: &str,
        ns: &str,
        name: &str,
        s: &Service,
        slices: &[&EndpointSlice],
    ) {
        let Some(spec) = &s.spec else { return };
        let base = format!("{name}.{ns}.svc.{d}");
        let target = fqdn(&base);
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(ext) = &spec.external_name {
                let ext = ext.trim_end_matches('.');
                if let Ok(n) = Name::from_ascii(format!("{ext}.")) {
                    self.names.push((
                        base,
                        Node {
                            cname: Some(n),
                            ..Default::default()
                        },
                    ));
                }
            }
            return;
        }
        let mut ips: Vec<IpAddr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect();
        ips.dedup();
        let headless = spec.cluster_ip.as_deref() == Some("None");
        if !headless {
            if ips.is_empty() {
                return; // not allocated yet
            }
            let ports: Vec<SvcPort> = spec
                .ports
                .iter()
                .flatten()
                .map(|p| SvcPort {
                    name: p.name.clone().unwrap_or_default(),
                    proto: proto_label(p.protocol.as_deref()),
                    port: p.port as u16,
                })
                .collect();
            let mut node = Node::default();
            for ip in &ips {
                node.add_ip(*ip);
                self.ptrs.push((*ip, target.clone()));
            }
            if (ns, name) == DNS_SERVICE {
                // The zone's name server (CoreDNS answers its own Service's address there).
                let ns_node = Node {
                    v4: node.v4.clone(),
                    v6: node.v6.clone(),
                    ..Default::default()
                };
                self.names.push((format!("ns.dns.{d}"), ns_node));
            }
            for p in &ports {
                node.srv.push((p.port, target.clone()));
            }
            for p in ports.iter().filter(|p| !p.name.is_empty()) {
                let mut n = Node {
                    v4: node.v4.clone(),
                    v6: node.v6.clone(),
                    ..Default::default()
                };
                n.srv.push((p.port, target.clone()));
                self.names
                    .push((format!("_{}.{}.{base}", p.name, p.proto), n));
            }
            self.names.push((base, node));
            return;
        }
        // Headless: every ready endpoint (all of them with publishNotReadyAddresses).
        let publish_all = spec.publish_not_ready_addresses == Some(true);
        let mut svc_node = Node::default();
        let mut named: HashMap<String, Node> = HashMap::new();
        let mut hosts: HashMap<String, Node> = HashMap::new();
        let mut seen: HashSet<IpAddr> = HashSet::new();
        for sl in slices {
            let ports: Vec<SvcPort> = sl
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(SvcPort {
                        name: p.name.clone().unwrap_or_default(),
                        proto: proto_label(p.protocol.as_deref()),
                        port: p.port? as u16,
                    })
                })
                .collect();
            for ep in &sl.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready && !publish_all {
                    continue;
                }
                for addr in &ep.addresses {
                    let Ok(ip) = addr.parse::<IpAddr>() else {
                        continue;
                    };
                    if !seen.insert(ip) {
                        continue; // the same address in two slices (during a move)
                    }
                    let host = ep
                        .hostname
                        .clone()
                        .unwrap_or_else(|| dashed_ip(&ip))
                        .to_ascii_lowercase();
                    let host_name = format!("{host}.{base}");
                    let host_target = fqdn(&host_name);
                    svc_node.add_ip(ip);
                    hosts.entry(host_name).or_default().add_ip(ip);
                    self.ptrs.push((ip, host_target.clone()));
                    for p in &ports {
                        svc_node.srv.push((p.port, host_target.clone()));
                        if !p.name.is_empty() {
                            let n = named
                                .entry(format!("_{}.{}.{base}", p.name, p.proto))
                                .or_default();
                            n.add_ip(ip);
                            n.srv.push((p.port, host_target.clone()));
                        }
                    }
                }
            }
        }
        if svc_node.v4.is_empty() && svc_node.v6.is_empty() {
            return; // no ready endpoints: NXDOMAIN
        }
        self.names.extend(named);
        self.names.extend(hosts);
        self.names.push((base, svc_node));
    }
}

#[cfg(test)]
mod tests;
