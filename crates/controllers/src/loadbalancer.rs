//! LoadBalancer address allocation (the IPAM half of MetalLB / k3s servicelb; the node side,
//! announcing the address on the node network, is `svcnet-speaker`): every `type: LoadBalancer`
//! Service of ours (no `spec.loadBalancerClass`, or [`LB_CLASS`]) gets an address from the pools
//! of `--loadbalancer-ip-range` in `status.loadBalancer.ingress[].ip`.
//!
//! - A requested `spec.loadBalancerIP` is honoured when it is in a pool and free; otherwise the
//!   Service stays pending with a Warning Event and the condition [`CONDITION`] saying why.
//! - An address already in the status is kept while it is valid (so restarts change nothing).
//! - The addresses in use are read from every Service's status, and one worker allocates, waiting
//!   until its own write is in the cache before the next allocation: an address is never handed
//!   to two Services, also across restarts (the statuses are the record).
//! - A Service that stops being a LoadBalancer loses its address (one of another class is left
//!   alone); a deleted one
//!   frees it, and pending Services are retried whenever an address may have been freed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::events::{NORMAL, WARNING};
use crate::Context;
use svcnet_informer::{run_workers, Change, Key, Queue};

/// The `spec.loadBalancerClass` this controller serves (besides an unset class).
pub const LB_CLASS: &str = "svcnet.io/loadbalancer";
/// The Service status condition reporting whether an address could be allocated.
pub const CONDITION: &str = "LoadBalancerIPAllocated";

/// Address pools: inclusive IPv4 ranges, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pools(Vec<(Ipv4Addr, Ipv4Addr)>);

impl Pools {
    /// Parse `--loadbalancer-ip-range` values: `a.b.c.d-e.f.g.h`, a CIDR (its host addresses),
    /// or one address; several per value separated by commas.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Pools, String> {
        let mut out = Vec::new();
        for v in values {
            for part in v
                .as_ref()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                let range = if let Some((a, b)) = part.split_once('-') {
                    let a: Ipv4Addr = a.trim().parse().map_err(|_| bad(part))?;
                    let b: Ipv4Addr = b.trim().parse().map_err(|_| bad(part))?;
                    if u32::from(a) > u32::from(b) {
                        return Err(bad(part));
                    }
                    (a, b)
                } else if part.contains('/') {
                    let net: ipnet::Ipv4Net = part.parse().map_err(|_| bad(part))?;
                    let mut hosts = net.hosts();
                    let first = hosts.next().ok_or_else(|| bad(part))?;
                    let last = hosts.next_back().unwrap_or(first);
                    (first, last)
                } else {
                    let a: Ipv4Addr = part.parse().map_err(|_| bad(part))?;
                    (a, a)
                };
                out.push(range);
            }
        }
        Ok(Pools(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let x = u32::from(ip);
        self.0
            .iter()
            .any(|(a, b)| (u32::from(*a)..=u32::from(*b)).contains(&x))
    }

    /// The first address of the pools not in `used`.
    pub fn first_free(&self, used: &BTreeMap<Ipv4Addr, String>) -> Option<Ipv4Addr> {
        self.0.iter().find_map(|(a, b)| {
            (u32::from(*a)..=u32::from(*b))
                .map(Ipv4Addr::from)
                .find(|ip| !used.contains_key(ip))
        })
    }
}

fn bad(part: &str) -> String {
    format!("invalid load-balancer IP range {part:?}: use a.b.c.d-e.f.g.h, a CIDR or an address")
}

/// Whether this controller handles `svc`.
pub fn is_ours(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec
            .load_balancer_class
            .as_deref()
            .is_none_or(|c| c == LB_CLASS)
}

/// The IPv4 ingress addresses in `svc`'s status.
pub fn ingress_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .iter()
        .filter_map(|s| s.load_balancer.as_ref())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

fn key_of(svc: &Service) -> String {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

/// The addresses our Services hold, by holder (`ns/name`), other than `except`.
fn used(services: &[Arc<Service>], except: &str) -> BTreeMap<Ipv4Addr, String> {
    let mut out = BTreeMap::new();
    for s in services {
        let k = key_of(s);
        if k == except || !is_ours(s) {
            continue;
        }
        for ip in ingress_ips(s) {
            out.entry(ip).or_insert_with(|| k.clone());
        }
    }
    out
}

/// What the Service's status should be.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep what is there.
    Keep,
    /// Set this address.
    Assign(Ipv4Addr),
    /// Leave it pending: `(reason, message)`.
    Pending(&'static str, String),
    /// Not (or no longer) ours: remove any address.
    Release,
}

/// Decide for `svc` given the addresses held by the others.
pub fn decide(svc: &Service, pools: &Pools, used: &BTreeMap<Ipv4Addr, String>) -> Decision {
    if !is_ours(svc) {
        let load_balancer =
            svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        // Another implementation's Service (its class) is left alone; one that is no longer a
        // LoadBalancer loses its address.
        return if load_balancer || ingress_ips(svc).is_empty() {
            Decision::Keep
        } else {
            Decision::Release
        };
    }
    let me = key_of(svc);
    let current = ingress_ips(svc);
    let requested = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref())
        .filter(|s| !s.is_empty());
    if let Some(req) = requested {
        let Ok(ip) = req.parse::<Ipv4Addr>() else {
            return Decision::Pending(
                "InvalidAddress",
                format!("Failed to allocate IP for {me:?}: {req:?} is not an IPv4 address"),
            );
        };
        if !pools.contains(ip) {
            return Decision::Pending(
                "AddressNotInPool",
                format!("Failed to allocate IP for {me:?}: {req:?} is not allowed in config"),
            );
        }
        if let Some(other) = used.get(&ip) {
            return Decision::Pending(
                "AddressInUse",
                format!("Failed to allocate IP for {me:?}: {req:?} is already in use by {other}"),
            );
        }
        return if current == [ip] {
            Decision::Keep
        } else {
            Decision::Assign(ip)
        };
    }
    if let [ip] = current[..] {
        if pools.contains(ip) && !used.contains_key(&ip) {
            return Decision::Keep;
        }
    }
    match pools.first_free(used) {
        Some(ip) => Decision::Assign(ip),
        None => Decision::Pending(
            "PoolExhausted",
            format!("Failed to allocate IP for {me:?}: no available IPs"),
        ),
    }
}

pub async fn run(ctx: Arc<Context>) {
    let pools = match Pools::parse(&ctx.config.loadbalancer_ip_ranges) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "loadbalancer controller not started");
            return;
        }
    };
    let queue = Queue::new();
    let q = queue.clone();
    let c = ctx.clone();
    let mut services = ctx.informers.services.subscribe();
    tokio::spawn(async move {
        // Pending Services, retried when an address may have been freed.
        let pending = |c: &Context, q: &Queue| {
            for s in c.informers.services.store().state() {
                if is_ours(&s) && ingress_ips(&s).is_empty() {
                    q.add(Key::of(&*s));
                }
            }
        };
        while let Some(ch) = services.recv().await {
            match ch {
                Change::Applied { old, new } => {
                    q.add(Key::of(&*new));
                    let freed = old.is_some_and(|o| {
                        !ingress_ips(&o).is_empty()
                            && (!is_ours(&new) || ingress_ips(&new) != ingress_ips(&o))
                    });
                    if freed {
                        pending(&c, &q);
                    }
                }
                Change::Deleted(old) => {
                    if !ingress_ips(&old).is_empty() {
                        pending(&c, &q);
                    }
                }
                Change::Resync => {
                    for s in c.informers.services.store().state() {
                        q.add(Key::of(&*s));
                    }
                }
            }
        }
    });
    for s in ctx.informers.services.store().state() {
        queue.add(Key::of(&*s));
    }
    // One worker: allocations must not race each other.
    let pools = Arc::new(pools);
    run_workers("loadbalancer", queue, 1, move |key| {
        let ctx = ctx.clone();
        let pools = pools.clone();
        async move { sync(&ctx, &pools, &key).await }
    })
    .await;
}

fn condition(status: &str, reason: &str, message: &str) -> serde_json::Value {
    json!([{
        "type": CONDITION,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": crate::util::now(),
    }])
}

async fn sync(ctx: &Context, pools: &Pools, key: &Key) -> Result<Option<Duration>, kube::Error> {
    let ns = key.namespace.clone().unwrap_or_default();
    let Some(svc) = ctx
        .informers
        .services
        .store()
        .get(&ObjectRef::<Service>::new(&key.name).within(&ns))
    else {
        return Ok(None);
    };
    let all = ctx.informers.services.store().state();
    let me = key_of(&svc);
    let decision = decide(&svc, pools, &used(&all, &me));
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PatchParams::default();
    let has_condition = |reason: &str| {
        svc.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == CONDITION && c.reason == reason)
            })
    };
    match decision {
        Decision::Keep => Ok(None),
        Decision::Release => {
            let p = json!({"status": {"loadBalancer": {"ingress": null}, "conditions": null}});
            api.patch_status(&key.name, &pp, &Patch::Merge(p)).await?;
            Ok(None)
        }
        Decision::Assign(ip) => {
            let p = json!({"status": {
                "loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]},
                "conditions": condition("True", "IPAllocated", &format!("Assigned IP {ip}")),
            }});
            api.patch_status(&key.name, &pp, &Patch::Merge(p)).await?;
            ctx.recorder.event(
                &*svc,
                NORMAL,
                "IPAllocated",
                format!("Assigned IP [\"{ip}\"]"),
            );
            // The cache shows the allocation before the next Service is looked at (one worker,
            // and `used` reads the cache): wait for it so two Services never get one address.
            for _ in 0..200 {
                let now = ctx.informers.services.store().state();
                if used(&now, "").get(&ip) == Some(&me) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(None)
        }
        Decision::Pending(reason, message) => {
            if !has_condition(reason) {
                let p = json!({"status": {
                    "loadBalancer": {"ingress": null},
                    "conditions": condition("False", reason, &message),
                }});
                api.patch_status(&key.name, &pp, &Patch::Merge(p)).await?;
                ctx.recorder
                    .event(&*svc, WARNING, "AllocationFailed", message);
            }
            // Retried when an address is freed; also now and then.
            Ok(Some(Duration::from_secs(30)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    fn svc(name: &str, ty: &str, ip: Option<&str>, requested: Option<&str>) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("default".into());
        s.spec = Some(ServiceSpec {
            type_: Some(ty.into()),
            load_balancer_ip: requested.map(str::to_string),
            ..Default::default()
        });
        if let Some(ip) = ip {
            s.status = Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        ip: Some(ip.into()),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            });
        }
        s
    }

    fn pools() -> Pools {
        Pools::parse(&["172.28.0.200-172.28.0.201", "10.0.0.8/31"]).unwrap()
    }

    #[test]
    fn parses_ranges_cidrs_and_addresses() {
        let p = Pools::parse(&["10.0.0.1-10.0.0.3, 10.0.1.0/30", "10.0.2.9"]).unwrap();
        assert!(p.contains("10.0.0.2".parse().unwrap()));
        assert!(p.contains("10.0.1.1".parse().unwrap()));
        assert!(p.contains("10.0.1.2".parse().unwrap()));
        assert!(!p.contains("10.0.1.3".parse().unwrap()), "broadcast");
        assert!(p.contains("10.0.2.9".parse().unwrap()));
        assert!(Pools::parse(&["10.0.0.3-10.0.0.1"]).is_err());
        assert!(Pools::parse(&["nope"]).unwrap_err().contains("\"nope\""));
    }

    #[test]
    fn allocates_the_first_free_address_in_pool_order() {
        let p = pools();
        let mut used = BTreeMap::new();
        let a = svc("a", "LoadBalancer", None, None);
        assert_eq!(
            decide(&a, &p, &used),
            Decision::Assign("172.28.0.200".parse().unwrap())
        );
        used.insert("172.28.0.200".parse().unwrap(), "default/x".into());
        used.insert("172.28.0.201".parse().unwrap(), "default/y".into());
        assert_eq!(
            decide(&a, &p, &used),
            Decision::Assign("10.0.0.8".parse().unwrap())
        );
        used.insert("10.0.0.8".parse().unwrap(), "default/z".into());
        used.insert("10.0.0.9".parse().unwrap(), "default/w".into());
        match decide(&a, &p, &used) {
            Decision::Pending("PoolExhausted", m) => {
                assert_eq!(
                    m,
                    "Failed to allocate IP for \"default/a\": no available IPs"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keeps_a_valid_address_and_replaces_a_taken_one() {
        let p = pools();
        let mut used = BTreeMap::new();
        let a = svc("a", "LoadBalancer", Some("172.28.0.201"), None);
        assert_eq!(decide(&a, &p, &used), Decision::Keep);
        used.insert("172.28.0.201".parse().unwrap(), "default/b".into());
        assert_eq!(
            decide(&a, &p, &used),
            Decision::Assign("172.28.0.200".parse().unwrap())
        );
        let outside = svc("c", "LoadBalancer", Some("192.0.2.1"), None);
        assert_eq!(
            decide(&outside, &p, &BTreeMap::new()),
            Decision::Assign("172.28.0.200".parse().unwrap())
        );
    }

    #[test]
    fn honours_or_refuses_a_requested_address() {
        let p = pools();
        let mut used = BTreeMap::new();
        let a = svc("a", "LoadBalancer", None, Some("172.28.0.201"));
        assert_eq!(
            decide(&a, &p, &used),
            Decision::Assign("172.28.0.201".parse().unwrap())
        );
        used.insert("172.28.0.201".parse().unwrap(), "default/b".into());
        assert!(matches!(
            decide(&a, &p, &used),
            Decision::Pending("AddressInUse", m) if m.contains("default/b")
        ));
        let far = svc("a", "LoadBalancer", None, Some("192.0.2.1"));
        assert!(matches!(
            decide(&far, &p, &used),
            Decision::Pending("AddressNotInPool", _)
        ));
    }

    #[test]
    fn releases_when_no_longer_ours() {
        let p = pools();
        let used = BTreeMap::new();
        let np = svc("a", "NodePort", Some("172.28.0.200"), None);
        assert_eq!(decide(&np, &p, &used), Decision::Release);
        assert_eq!(
            decide(&svc("b", "ClusterIP", None, None), &p, &used),
            Decision::Keep
        );
        let mut other = svc("c", "LoadBalancer", Some("203.0.113.9"), None);
        other.spec.as_mut().unwrap().load_balancer_class = Some("example.com/lb".into());
        assert_eq!(
            decide(&other, &p, &used),
            Decision::Keep,
            "not our class: untouched"
        );
        other.spec.as_mut().unwrap().load_balancer_class = Some(LB_CLASS.into());
        assert_eq!(
            decide(&other, &p, &used),
            Decision::Assign("172.28.0.200".parse().unwrap())
        );
        // Others' holdings: only our Services count.
        let all = vec![
            Arc::new(svc("x", "LoadBalancer", Some("172.28.0.200"), None)),
            Arc::new(np),
        ];
        assert_eq!(
            used_keys(&all),
            vec![("172.28.0.200".parse().unwrap(), "default/x".to_string())]
        );
    }

    fn used_keys(all: &[Arc<Service>]) -> Vec<(Ipv4Addr, String)> {
        used(all, "").into_iter().collect()
    }
}
