//! The open DNS over TCP connections and the cap on them. CoreDNS has no cap on plain DNS over
//! TCP; its DNS-over-HTTPS, gRPC and QUIC servers cap connections at `max_connections` (default
//! 200, `DefaultHTTPSMaxConnections`) with Go's `netutil.LimitListener`, which stops accepting
//! while full, so an idle flood holds every slot until it times out. Here a full table makes
//! room instead: the connection idle the longest (waiting for the first byte of its next
//! message) is closed for the new one; if none is idle (every connection is mid-message,
//! being answered or written to), the new connection is refused (closed at once).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use prometheus::IntGauge;
use tokio::sync::oneshot;

/// The table of open connections.
pub(super) struct Conns {
    max: usize,
    open_gauge: IntGauge,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Bumped each time a connection turns idle: orders [`Inner::idle`] oldest first.
    next_idle: u64,
    open: HashMap<u64, Entry>,
    /// Idle connections by when they turned idle (the key of [`Entry::idle_since`]) → id.
    idle: BTreeMap<u64, u64>,
}

struct Entry {
    idle_since: Option<u64>,
    /// Dropped (or fired) to tell the connection's task to close.
    evict: oneshot::Sender<()>,
}

/// Whether a new connection got a slot.
pub(super) enum Admission {
    /// Served; `evicted` says whether an idle connection was closed to make room. The receiver
    /// fires if this connection is evicted in turn.
    Admitted {
        slot: Slot,
        evicted: bool,
        evict: oneshot::Receiver<()>,
    },
    /// The table is full of busy connections.
    Refused,
}

impl Conns {
    /// A table of at most `max` connections (at least 1), counting them in `open_gauge`.
    pub(super) fn new(max: usize, open_gauge: IntGauge) -> Arc<Conns> {
        Arc::new(Conns {
            max: max.max(1),
            open_gauge,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Take a slot for a new connection (idle until it sends), closing the oldest idle
    /// connection if the table is full.
    pub(super) fn admit(self: &Arc<Self>) -> Admission {
        let mut inner = self.inner.lock().expect("conns lock");
        let mut evicted = false;
        if inner.open.len() >= self.max {
            let Some((_, oldest)) = inner.idle.pop_first() else {
                return Admission::Refused;
            };
            // Dropping the sender wakes the connection's task, which closes its socket.
            inner.open.remove(&oldest);
            evicted = true;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let (tx, rx) = oneshot::channel();
        inner.open.insert(
            id,
            Entry {
                idle_since: None,
                evict: tx,
            },
        );
        inner.set_idle(id, true);
        self.open_gauge.set(inner.open.len() as i64);
        Admission::Admitted {
            slot: Slot {
                conns: self.clone(),
                id,
            },
            evicted,
            evict: rx,
        }
    }

    /// How many connections are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().expect("conns lock").open.len()
    }
}

impl Inner {
    fn set_idle(&mut self, id: u64, idle: bool) {
        let Some(e) = self.open.get_mut(&id) else {
            return;
        };
        match (e.idle_since, idle) {
            (None, true) => {
                let k = self.next_idle;
                self.next_idle += 1;
                e.idle_since = Some(k);
                self.idle.insert(k, id);
            }
            (Some(k), false) => {
                e.idle_since = None;
                self.idle.remove(&k);
            }
            _ => {}
        }
    }
}

/// One connection's place in the table, given back when dropped.
pub(super) struct Slot {
    conns: Arc<Conns>,
    id: u64,
}

impl Slot {
    /// Waiting for the first byte of the next message: may be closed to make room.
    pub(super) fn idle(&self) {
        self.set(true);
    }

    /// Reading a message, answering it or writing the answer: kept.
    pub(super) fn busy(&self) {
        self.set(false);
    }

    fn set(&self, idle: bool) {
        self.conns
            .inner
            .lock()
            .expect("conns lock")
            .set_idle(self.id, idle);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.conns.inner.lock().expect("conns lock");
        inner.set_idle(self.id, false);
        if let Some(e) = inner.open.remove(&self.id) {
            drop(e.evict);
        }
        self.conns.open_gauge.set(inner.open.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: Admission) -> (Slot, bool, oneshot::Receiver<()>) {
        match a {
            Admission::Admitted {
                slot,
                evicted,
                evict,
            } => (slot, evicted, evict),
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn full_table_closes_the_oldest_idle_then_refuses() {
        let gauge = IntGauge::new("open", "open").unwrap();
        let conns = Conns::new(2, gauge.clone());
        let (a, _, mut a_evict) = admitted(conns.admit());
        let (b, _, mut b_evict) = admitted(conns.admit());
        assert_eq!(gauge.get(), 2);
        // b turns busy then idle again: a is now the oldest idle.
        b.busy();
        b.idle();
        let (c, evicted, _c_evict) = admitted(conns.admit());
        assert!(evicted);
        assert!(a_evict.try_recv().is_err(), "a told to close");
        assert!(matches!(
            b_evict.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        assert_eq!(conns.len(), 2);
        // Everyone busy: the next one is refused.
        b.busy();
        c.busy();
        assert!(matches!(conns.admit(), Admission::Refused));
        // a's task ends: nothing changes (its slot was already taken back).
        drop(a);
        assert_eq!(conns.len(), 2);
        drop(c);
        assert_eq!(gauge.get(), 1);
        let (_d, evicted, _) = admitted(conns.admit());
        assert!(!evicted);
        assert_eq!(gauge.get(), 2);
    }
}
