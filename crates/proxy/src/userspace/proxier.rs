//! The userspace mode's proxier: a listener per Service port, kept across syncs, and the
//! table that sends the Service's traffic to it.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use svcnet_netns::NetNs;
use tokio::net::{TcpListener, UdpSocket};

use crate::backend::{Backend, SyncResult};
use crate::model::{categorize, Protocol, ServicePort, ServicePortName, State};
use crate::nftables;

use super::balancer::{Algorithm, Balancer};
use super::error::Error;
use super::listener::{lock, serve_tcp, serve_udp, Dialer, Listener, Shared};
use super::rules::{cleanup, render, v4s, Redirect};

/// The userspace proxy backend (kube-proxy's userspace `Proxier`).
pub struct Proxier {
    netns: Option<String>,
    node_ips: Vec<IpAddr>,
    algorithm: Algorithm,
    port_range: Option<RangeInclusive<u16>>,
    dialer: Option<Dialer>,
    listeners: BTreeMap<ServicePortName, Listener>,
}

impl Proxier {
    pub fn new(netns: Option<String>, node_ips: Vec<IpAddr>, algorithm: Algorithm) -> Proxier {
        Proxier {
            netns,
            node_ips,
            algorithm,
            port_range: None,
            dialer: None,
            listeners: BTreeMap::new(),
        }
    }

    /// Listen on ports from `range` instead of ephemeral ones.
    pub fn with_port_range(mut self, range: RangeInclusive<u16>) -> Proxier {
        self.port_range = Some(range);
        self
    }

    /// The listener port of a Service port, if it has one.
    pub fn listener_port(&self, id: &ServicePortName) -> Option<u16> {
        self.listeners.get(id).map(|l| l.port)
    }

    fn bind_tcp(&self, port: u16) -> io::Result<std::net::TcpListener> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        match &self.netns {
            Some(ns) => NetNs::open(ns)
                .and_then(|n| n.tcp_listen(addr))
                .map_err(|e| io::Error::other(e.to_string())),
            None => {
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok(l)
            }
        }
    }

    fn bind_udp(&self, port: u16) -> io::Result<std::net::UdpSocket> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        match &self.netns {
            Some(ns) => NetNs::open(ns)
                .and_then(|n| n.udp_bind(addr))
                .map_err(|e| io::Error::other(e.to_string())),
            None => {
                let s = std::net::UdpSocket::bind(addr)?;
                s.set_nonblocking(true)?;
                Ok(s)
            }
        }
    }

    /// A new listener for `sp` (on the first free port of the range, or an ephemeral one).
    fn open(
        &mut self,
        sp: &ServicePort,
        handle: &tokio::runtime::Handle,
    ) -> Result<Listener, Error> {
        let dialer = self
            .dialer
            .get_or_insert_with(|| Dialer::new(self.netns.as_deref()))
            .clone();
        let ports: Vec<u16> = match &self.port_range {
            Some(r) => {
                let used: Vec<u16> = self.listeners.values().map(|l| l.port).collect();
                r.clone().filter(|p| !used.contains(p)).collect()
            }
            None => vec![0],
        };
        let balancer: Shared = Arc::new(Mutex::new(Balancer::new(self.algorithm)));
        let mut last_err = Error::NoFreePort;
        for port in ports {
            let _enter = handle.enter();
            let r = match sp.protocol {
                Protocol::Tcp => self.bind_tcp(port).and_then(|l| {
                    let l = TcpListener::from_std(l)?;
                    let port = l.local_addr()?.port();
                    let task = handle.spawn(serve_tcp(l, balancer.clone(), dialer.clone()));
                    Ok((port, task))
                }),
                Protocol::Udp => self.bind_udp(port).and_then(|s| {
                    let s = UdpSocket::from_std(s)?;
                    let port = s.local_addr()?.port();
                    let task =
                        handle.spawn(serve_udp(Arc::new(s), balancer.clone(), dialer.clone()));
                    Ok((port, task))
                }),
                Protocol::Sctp => return Err(Error::SctpNotProxied),
            };
            match r {
                Ok((port, task)) => {
                    return Ok(Listener {
                        port,
                        balancer,
                        task,
                    })
                }
                Err(source) => {
                    last_err = Error::ListenFailed {
                        id: sp.id.clone(),
                        source,
                    }
                }
            }
        }
        Err(last_err)
    }
}

impl Drop for Proxier {
    fn drop(&mut self) {
        for l in self.listeners.values() {
            l.task.abort();
        }
    }
}

impl Backend for Proxier {
    fn name(&self) -> &'static str {
        "userspace"
    }

    fn full(&mut self, state: &State) -> SyncResult {
        let handle = tokio::runtime::Handle::try_current().map_err(Error::NoRuntime)?;
        let wanted = |sp: &ServicePort| {
            sp.protocol != Protocol::Sctp && v4s(&sp.cluster_ips).next().is_some()
        };
        self.listeners.retain(|id, l| {
            let keep = state.services.get(id).is_some_and(wanted);
            if !keep {
                l.task.abort();
            }
            keep
        });
        let mut redirects = Vec::new();
        let mut errors = Vec::new();
        for (id, sp) in &state.services {
            if !wanted(sp) {
                continue;
            }
            if !self.listeners.contains_key(id) {
                match self.open(sp, &handle) {
                    Ok(l) => {
                        self.listeners.insert(id.clone(), l);
                    }
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
            }
            let l = &self.listeners[id];
            let eps = state.endpoints.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let (cluster, _) = categorize(sp, eps, "", None);
            let addrs: Vec<SocketAddr> = cluster
                .iter()
                .map(|e| SocketAddr::new(e.ip, e.port))
                .collect();
            let has = !addrs.is_empty();
            lock(&l.balancer).set_endpoints(
                addrs,
                sp.affinity_timeout
                    .map(|s| Duration::from_secs(u64::from(s))),
            );
            redirects.push(Redirect {
                service: sp.clone(),
                listener: has.then_some(l.port),
            });
        }
        nftables::apply(self.netns.as_deref(), &render(&redirects, &self.node_ips))
            .map_err(Error::ApplyFailed)?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::ListenersFailed(errors).into())
        }
    }

    fn cleanup(&mut self) -> SyncResult {
        for l in self.listeners.values() {
            l.task.abort();
        }
        self.listeners.clear();
        cleanup(self.netns.as_deref()).map_err(Error::ApplyFailed)?;
        Ok(())
    }
}
