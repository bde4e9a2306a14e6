//! `UIDTrackingControllerExpectations`: the pods a controller has asked to create or delete and
//! not yet seen through its informer. A controller does not act on an owner whose expectations
//! are pending — its cache would make it create or delete the same pods twice.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use svcnet_informer::Key;

/// After this long, expectations are assumed lost (a watch event missed) and dropped.
const TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Default)]
struct Expect {
    adds: i64,
    deletes: HashSet<String>,
    at: Option<Instant>,
}

#[derive(Default)]
pub struct Expectations {
    by_owner: Mutex<HashMap<Key, Expect>>,
}

impl Expectations {
    /// Whether the owner's cache can be trusted (nothing pending, or pending for too long).
    pub fn satisfied(&self, owner: &Key) -> bool {
        let m = self.by_owner.lock().expect("expectations lock");
        match m.get(owner) {
            None => true,
            Some(e) => {
                (e.adds <= 0 && e.deletes.is_empty()) || e.at.is_some_and(|t| t.elapsed() > TTL)
            }
        }
    }

    pub fn expect_creations(&self, owner: &Key, n: usize) {
        let mut m = self.by_owner.lock().expect("expectations lock");
        let e = m.entry(owner.clone()).or_default();
        e.adds = n as i64;
        e.deletes.clear();
        e.at = Some(Instant::now());
    }

    /// `pods` are the keys (`namespace/name`) of the pods being deleted.
    pub fn expect_deletions(&self, owner: &Key, pods: impl IntoIterator<Item = String>) {
        let mut m = self.by_owner.lock().expect("expectations lock");
        let e = m.entry(owner.clone()).or_default();
        e.adds = 0;
        e.deletes = pods.into_iter().collect();
        e.at = Some(Instant::now());
    }

    pub fn creation_observed(&self, owner: &Key) {
        if let Some(e) = self
            .by_owner
            .lock()
            .expect("expectations lock")
            .get_mut(owner)
        {
            e.adds -= 1;
        }
    }

    pub fn deletion_observed(&self, owner: &Key, pod: &str) {
        if let Some(e) = self
            .by_owner
            .lock()
            .expect("expectations lock")
            .get_mut(owner)
        {
            e.deletes.remove(pod);
        }
    }

    pub fn forget(&self, owner: &Key) {
        self.by_owner
            .lock()
            .expect("expectations lock")
            .remove(owner);
    }

    /// The informer relisted: its cache is fresh, nothing is pending any more.
    pub fn clear(&self) {
        self.by_owner.lock().expect("expectations lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_until_observed() {
        let e = Expectations::default();
        let k = Key::new(Some("ns"), "rs");
        assert!(e.satisfied(&k));
        e.expect_creations(&k, 2);
        assert!(!e.satisfied(&k));
        e.creation_observed(&k);
        assert!(!e.satisfied(&k));
        e.creation_observed(&k);
        assert!(e.satisfied(&k));
        e.expect_deletions(&k, ["ns/a".to_string()]);
        e.deletion_observed(&k, "ns/b");
        assert!(!e.satisfied(&k));
        e.deletion_observed(&k, "ns/a");
        assert!(e.satisfied(&k));
    }
}
