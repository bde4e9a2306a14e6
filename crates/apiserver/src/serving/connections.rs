//! The connection cap, and which connection gives way when it is reached.
//!
//! Go's `http.Server` (and so kube-apiserver) has no cap: a flood of idle connections takes the
//! process to its open-file limit, after which nothing is accepted, not even from the clients
//! the server already knows. Here connections are counted, and the cap leaves room under the
//! limit for what the server opens itself (the store, logs, connections to nodes).
//!
//! A connection is *pending* from its accept until its first request's headers have arrived
//! (TLS handshake, first request line) and *serving* after. When the cap is reached, a new
//! connection takes the place of the oldest pending one, which is closed: a flood of connections
//! that never send a request can delay a new client but never shut it out, and never touches a
//! client that has already been served (its keep-alive connection, its watches). When every
//! connection is serving, the new one is closed at once — accepted and closed rather than left
//! in the kernel's backlog, so the client learns at once instead of hanging, and the listener
//! never stays readable with nothing to do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// How many connections may be open at once, and who is pending.
pub struct Connections {
    limit: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    open: usize,
    next_id: u64,
    /// Pending connections by age (ids grow); cancelling a token closes its connection.
    pending: BTreeMap<u64, CancellationToken>,
}

/// A new connection's place under the cap.
pub struct Admitted {
    pub slot: Slot,
    /// Cancelled when a newer connection takes this one's place (only while pending).
    pub evicted: CancellationToken,
    /// This connection took the place of an older pending one.
    pub replaced_another: bool,
}

/// A connection's place under the cap, given back when dropped. The connection holds it as long
/// as its socket is open (after an HTTP upgrade, the upgraded stream holds it).
pub struct Slot {
    conns: Arc<Connections>,
    id: u64,
    serving: std::sync::atomic::AtomicBool,
}

impl Connections {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Connections {
            limit: limit.max(1),
            inner: Mutex::default(),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.lock().unwrap().open
    }

    /// Admit a new connection, closing the oldest pending one if the cap is reached; `None`
    /// when every connection is serving (the caller closes the new one).
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut inner = self.inner.lock().unwrap();
        let replaced_another = if inner.open < self.limit {
            inner.open += 1;
            false
        } else {
            // The oldest pending connection's place goes to the new one: `open` stays.
            let (_, oldest) = inner.pending.pop_first()?;
            oldest.cancel();
            true
        };
        let id = inner.next_id;
        inner.next_id += 1;
        let evicted = CancellationToken::new();
        inner.pending.insert(id, evicted.clone());
        Some(Admitted {
            slot: Slot {
                conns: self.clone(),
                id,
                serving: false.into(),
            },
            evicted,
            replaced_another,
        })
    }
}

impl Slot {
    /// The connection's first request has arrived: it is no longer the one to give way.
    pub fn serving(&self) {
        use std::sync::atomic::Ordering;
        if self.serving.load(Ordering::Relaxed) {
            return;
        }
        let mut inner = self.conns.inner.lock().unwrap();
        // Not pending any more = it was just replaced; it closes, its place is taken.
        if inner.pending.remove(&self.id).is_some() {
            self.serving.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.conns.inner.lock().unwrap();
        let pending = inner.pending.remove(&self.id).is_some();
        // A replaced connection's place was handed over when it was replaced.
        if pending || *self.serving.get_mut() {
            inner.open -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_pending_connection_gives_way() {
        let conns = Connections::new(2);
        let a = conns.admit().unwrap();
        let b = conns.admit().unwrap();
        assert!(!a.replaced_another && !b.replaced_another);
        a.slot.serving();
        // Full: the new one takes b's place (a is serving).
        let c = conns.admit().unwrap();
        assert!(c.replaced_another);
        assert!(b.evicted.is_cancelled() && !a.evicted.is_cancelled());
        assert_eq!(conns.open(), 2);
        drop(b); // its place went to c
        assert_eq!(conns.open(), 2);
        c.slot.serving();
        // Every connection serving: the new one is refused.
        assert!(conns.admit().is_none());
        drop(a);
        assert_eq!(conns.open(), 1);
        let d = conns.admit().unwrap();
        assert!(!d.replaced_another);
        drop(c);
        drop(d);
        assert_eq!(conns.open(), 0);
    }

    #[test]
    fn a_replaced_connection_does_not_become_serving() {
        let conns = Connections::new(1);
        let a = conns.admit().unwrap();
        let b = conns.admit().unwrap();
        a.slot.serving(); // too late: it was replaced
        drop(a);
        assert_eq!(conns.open(), 1);
        drop(b);
        assert_eq!(conns.open(), 0);
    }
}
