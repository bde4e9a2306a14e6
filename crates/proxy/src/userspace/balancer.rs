//! Which endpoint a new connection goes to (`--userspace-algorithm`), with sessionAffinity,
//! and the order in which the others are tried when it fails (kube-proxy's userspace
//! `LoadBalancerRR`, with least-connections and random as well).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// `--userspace-algorithm`: how an endpoint is chosen for a new connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    #[default]
    RoundRobin,
    LeastConnections,
    Random,
}

/// `--userspace-algorithm` names none of the algorithms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown userspace algorithm {0:?}: use round-robin, least-connections or random")]
pub struct ParseAlgorithmError(pub String);

impl FromStr for Algorithm {
    type Err = ParseAlgorithmError;

    fn from_str(s: &str) -> Result<Self, ParseAlgorithmError> {
        match s {
            "round-robin" | "roundrobin" | "rr" | "" => Ok(Algorithm::RoundRobin),
            "least-connections" | "leastconn" | "lc" => Ok(Algorithm::LeastConnections),
            "random" => Ok(Algorithm::Random),
            other => Err(ParseAlgorithmError(other.to_string())),
        }
    }
}

/// One Service port's load balancer: its endpoints, the algorithm's state, the connections open
/// per endpoint and the ClientIP affinity table.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    endpoints: Vec<SocketAddr>,
    next: usize,
    rng: u64,
    active: HashMap<SocketAddr, usize>,
    affinity: Option<Duration>,
    sticky: HashMap<IpAddr, (SocketAddr, Instant)>,
}

impl Balancer {
    pub fn new(algorithm: Algorithm) -> Balancer {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Balancer {
            algorithm,
            endpoints: Vec::new(),
            next: 0,
            rng: seed | 1,
            active: HashMap::new(),
            affinity: None,
            sticky: HashMap::new(),
        }
    }

    /// Replace the endpoints (in place: open connections and affinities to endpoints that stay
    /// are kept) and the affinity timeout (None: no affinity).
    pub fn set_endpoints(&mut self, endpoints: Vec<SocketAddr>, affinity: Option<Duration>) {
        if affinity.is_none() {
            self.sticky.clear();
        }
        self.sticky.retain(|_, (ep, _)| endpoints.contains(ep));
        self.endpoints = endpoints;
        self.affinity = affinity;
    }

    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// Connections open to `ep` (through this balancer).
    pub fn active(&self, ep: SocketAddr) -> usize {
        self.active.get(&ep).copied().unwrap_or(0)
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The endpoints to try for a new connection from `client`, in order: the chosen one (the
    /// affinity's, else the algorithm's) first, then the others (the retries), each once.
    pub fn order(&mut self, client: IpAddr, now: Instant) -> Vec<SocketAddr> {
        let n = self.endpoints.len();
        if n == 0 {
            return Vec::new();
        }
        let mut start = None;
        if let Some(timeout) = self.affinity {
            if self.sticky.len() > 4096 {
                self.sticky
                    .retain(|_, (_, t)| now.saturating_duration_since(*t) < timeout);
            }
            if let Some((ep, t)) = self.sticky.get(&client) {
                if now.saturating_duration_since(*t) < timeout {
                    start = self.endpoints.iter().position(|e| e == ep);
                }
            }
        }
        let start = match start {
            Some(s) => s,
            None => match self.algorithm {
                Algorithm::RoundRobin => {
                    let s = self.next % n;
                    self.next = s + 1;
                    s
                }
                Algorithm::LeastConnections => {
                    // The fewest open connections; ties rotate (round robin among the idlest).
                    let from = self.next % n;
                    let s = (0..n)
                        .map(|k| (from + k) % n)
                        .min_by_key(|&i| self.active(self.endpoints[i]))
                        .unwrap_or(from);
                    self.next = s + 1;
                    s
                }
                Algorithm::Random => (self.random() % n as u64) as usize,
            },
        };
        (0..n).map(|k| self.endpoints[(start + k) % n]).collect()
    }

    /// A connection from `client` to `ep` was established: count it and (with affinity)
    /// remember the endpoint for the client.
    pub fn connected(&mut self, client: IpAddr, ep: SocketAddr, now: Instant) {
        *self.active.entry(ep).or_default() += 1;
        if self.affinity.is_some() {
            self.sticky.insert(client, (ep, now));
        }
    }

    /// A connection to `ep` ended.
    pub fn released(&mut self, ep: SocketAddr) {
        if let Some(c) = self.active.get_mut(&ep) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.active.remove(&ep);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(n: u8) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| SocketAddr::from(([10, 244, 0, i], 8080)))
            .collect()
    }

    fn client(i: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, i])
    }

    #[test]
    fn round_robin_order_and_retries() {
        let mut b = Balancer::new(Algorithm::RoundRobin);
        b.set_endpoints(eps(3), None);
        let now = Instant::now();
        let e = eps(3);
        // Each new connection starts at the next endpoint; the rest follow as retries.
        assert_eq!(b.order(client(2), now), vec![e[0], e[1], e[2]]);
        assert_eq!(b.order(client(2), now), vec![e[1], e[2], e[0]]);
        assert_eq!(b.order(client(3), now), vec![e[2], e[0], e[1]]);
        assert_eq!(b.order(client(2), now)[0], e[0]);
        // Endpoints updated in place: the rotation continues over the new list.
        b.set_endpoints(eps(2), None);
        let firsts: Vec<_> = (0..4).map(|_| b.order(client(2), now)[0]).collect();
        assert!(firsts.contains(&e[0]) && firsts.contains(&e[1]));
        b.set_endpoints(vec![], None);
        assert!(b.order(client(2), now).is_empty());
    }

    #[test]
    fn least_connections_prefers_the_idle_one() {
        let mut b = Balancer::new(Algorithm::LeastConnections);
        b.set_endpoints(eps(3), None);
        let e = eps(3);
        let now = Instant::now();
        b.connected(client(2), e[0], now);
        b.connected(client(2), e[0], now);
        b.connected(client(2), e[2], now);
        for _ in 0..3 {
            let o = b.order(client(2), now);
            assert_eq!(o[0], e[1]);
            assert_eq!(o.len(), 3);
        }
        b.connected(client(2), e[1], now);
        b.connected(client(2), e[1], now);
        assert_eq!(b.order(client(2), now)[0], e[2]);
        b.released(e[0]);
        b.released(e[0]);
        assert_eq!(b.order(client(2), now)[0], e[0]);
        assert_eq!(b.active(e[0]), 0);
        assert_eq!(b.active(e[1]), 2);
    }

    #[test]
    fn random_spreads() {
        let mut b = Balancer::new(Algorithm::Random);
        b.set_endpoints(eps(4), None);
        let mut counts: HashMap<SocketAddr, usize> = HashMap::new();
        let now = Instant::now();
        for _ in 0..4000 {
            let o = b.order(client(2), now);
            assert_eq!(o.len(), 4);
            *counts.entry(o[0]).or_default() += 1;
        }
        assert_eq!(counts.len(), 4);
        for (ep, c) in counts {
            assert!((700..1300).contains(&c), "{ep}: {c}");
        }
    }

    #[test]
    fn affinity_sticks_until_timeout_and_retries_rebind() {
        let mut b = Balancer::new(Algorithm::RoundRobin);
        b.set_endpoints(eps(3), Some(Duration::from_secs(10)));
        let e = eps(3);
        let t0 = Instant::now();
        let first = b.order(client(2), t0)[0];
        b.connected(client(2), first, t0);
        for s in 1..5 {
            assert_eq!(b.order(client(2), t0 + Duration::from_secs(s))[0], first);
        }
        // The chosen endpoint failed, the retry connected elsewhere: that one sticks now.
        let o = b.order(client(2), t0);
        b.connected(client(2), o[1], t0);
        assert_eq!(b.order(client(2), t0)[0], o[1]);
        // Expired: the algorithm chooses again.
        let later = t0 + Duration::from_secs(11);
        let firsts: Vec<_> = (0..3).map(|_| b.order(client(2), later)[0]).collect();
        assert_eq!(firsts.len(), 3);
        assert!(e.iter().all(|x| firsts.contains(x)));
        // The sticky endpoint went away: chosen anew.
        b.connected(client(3), e[2], t0);
        b.set_endpoints(eps(2), Some(Duration::from_secs(10)));
        assert_ne!(b.order(client(3), t0)[0], e[2]);
    }

    #[test]
    fn algorithm_parses() {
        assert_eq!("random".parse::<Algorithm>(), Ok(Algorithm::Random));
        assert_eq!(
            "least-connections".parse::<Algorithm>(),
            Ok(Algorithm::LeastConnections)
        );
        assert_eq!("".parse::<Algorithm>(), Ok(Algorithm::RoundRobin));
        assert!("wrr".parse::<Algorithm>().is_err());
    }
}
