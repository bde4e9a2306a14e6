use super::*;
use crate::backend::{Changed, SyncResult};
use crate::model::{Endpoint, Protocol, ServicePort};
use crate::testing::{self, id_in};

fn sp(name: &str) -> ServicePort {
    testing::sp(&id_in("d", name, "", Protocol::Tcp), "10.96.0.9", 80)
}

#[test]
fn full_syncs_hourly_not_every_sync_period() {
    let s = SyncSettings::default();
    let secs = Duration::from_secs;
    assert!(s.full_due(false, secs(0)), "nothing programmed yet");
    assert!(
        !s.full_due(true, secs(31)),
        "a sync period is not a full sync"
    );
    assert!(!s.full_due(true, secs(3599)));
    assert!(s.full_due(true, secs(3600)));
    assert_eq!(s.idle_wait(secs(10)), secs(30));
    assert_eq!(s.idle_wait(secs(3590)), secs(10), "wakes for the full sync");
    assert_eq!(s.idle_wait(secs(4000)), secs(0));
}

#[test]
fn changes_name_only_what_moved() {
    let mut a = State::default();
    for n in ["x", "y", "z"] {
        let s = sp(n);
        a.endpoints.insert(s.id.clone(), vec![]);
        a.services.insert(s.id.clone(), s);
    }
    let mut b = a.clone();
    assert!(changed(&a, &b).is_empty());
    let y = sp("y").id;
    let ep = Endpoint {
        node_name: None,
        ..testing::ep("10.244.0.2", 80, "")
    };
    b.endpoints.insert(y.clone(), vec![ep]);
    let z = sp("z").id;
    b.services.remove(&z);
    b.endpoints.remove(&z);
    assert_eq!(changed(&a, &b), [y, z].into_iter().collect());
}

/// A backend that records what the loop asked of it, and fails when told to.
#[derive(Clone, Default)]
struct Fake {
    calls: std::sync::Arc<std::sync::Mutex<Vec<Call>>>,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    /// A full sync of this many Service ports.
    Full(usize),
    /// A partial sync of these Service ports (by name).
    Partial(Vec<String>),
}

impl Fake {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }

    fn record(&self, c: Call) -> SyncResult {
        self.calls.lock().unwrap().push(c);
        if self.fail.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(backend::Error::IptablesFailed(
                crate::iptables::Error::CommandFailed {
                    command: "fake".into(),
                    stderr: "told to fail".into(),
                },
            ));
        }
        Ok(())
    }
}

impl Backend for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn full(&mut self, state: &State) -> SyncResult {
        self.record(Call::Full(state.services.len()))
    }

    fn partial(&mut self, _old: &State, _state: &State, changed: &Changed) -> SyncResult {
        self.record(Call::Partial(
            changed.iter().map(|id| id.name.clone()).collect(),
        ))
    }

    fn cleanup(&mut self) -> SyncResult {
        Ok(())
    }
}

fn apply(tracker: &mut ChangeTracker, name: &str, port: u16) {
    use crate::change_tracker::Change;
    let mut s = sp(name);
    s.port = port;
    tracker.apply(Update::Service(Change::Apply(
        ("d".into(), name.into()),
        vec![s],
    )));
}

/// A synced tracker with Services x and y, and a syncer over `fake`.
fn start(fake: &Fake, settings: SyncSettings) -> (ChangeTracker, Syncer) {
    use crate::change_tracker::Change;
    let mut tracker = ChangeTracker::default();
    apply(&mut tracker, "x", 80);
    apply(&mut tracker, "y", 80);
    tracker.apply(Update::Service(Change::InitDone));
    tracker.apply(Update::Slice(Change::InitDone));
    assert!(tracker.synced());
    let syncer = Syncer::new(Box::new(fake.clone()), settings, Arc::default());
    (tracker, syncer)
}

#[test]
fn full_at_start_partial_for_changes_full_after_a_failure() {
    let fake = Fake::default();
    let (mut tracker, mut syncer) = start(&fake, SyncSettings::default());
    let t0 = Instant::now();
    let secs = Duration::from_secs;
    assert_eq!(syncer.sync(&mut tracker, t0).ok(), Some(Synced::Full));
    assert_eq!(fake.take(), [Call::Full(2)]);

    // Nothing touched: nothing asked of the backend.
    assert_eq!(
        syncer.sync(&mut tracker, t0 + secs(1)).ok(),
        Some(Synced::Nothing)
    );
    assert_eq!(fake.take(), []);

    // A change: a partial sync naming only that Service port.
    apply(&mut tracker, "y", 81);
    assert_eq!(
        syncer.sync(&mut tracker, t0 + secs(2)).ok(),
        Some(Synced::Partial)
    );
    assert_eq!(fake.take(), [Call::Partial(vec!["y".into()])]);

    // Touched and changed back before the sync: nothing differs.
    apply(&mut tracker, "x", 81);
    apply(&mut tracker, "x", 80);
    assert_eq!(
        syncer.sync(&mut tracker, t0 + secs(3)).ok(),
        Some(Synced::Nothing)
    );
    assert_eq!(fake.take(), []);

    // A failed partial sync: the next one is full, whatever changed since.
    apply(&mut tracker, "x", 82);
    fake.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(syncer.sync(&mut tracker, t0 + secs(4)).is_err());
    assert_eq!(fake.take(), [Call::Partial(vec!["x".into()])]);
    assert_eq!(
        syncer.sync(&mut tracker, t0 + secs(5)).ok(),
        Some(Synced::Full)
    );
    assert_eq!(fake.take(), [Call::Full(2)]);
    assert_eq!(syncer.metrics.sync_failures.get(), 1);

    // And partial syncs again after it.
    apply(&mut tracker, "y", 83);
    assert_eq!(
        syncer.sync(&mut tracker, t0 + secs(6)).ok(),
        Some(Synced::Partial)
    );
    assert_eq!(fake.take(), [Call::Partial(vec!["y".into()])]);
}

#[test]
fn full_sync_period_and_min_sync_period() {
    let fake = Fake::default();
    let settings = SyncSettings {
        min_sync_period: Duration::from_secs(10),
        ..SyncSettings::default()
    };
    let (mut tracker, mut syncer) = start(&fake, settings);
    let t0 = Instant::now();
    let secs = Duration::from_secs;
    assert_eq!(
        syncer.min_sync_wait(t0),
        Duration::ZERO,
        "the first sync waits for nothing"
    );
    assert_eq!(syncer.sync(&mut tracker, t0).ok(), Some(Synced::Full));
    // An event 1 s later waits out the rest of --min-sync-period.
    assert_eq!(syncer.min_sync_wait(t0 + secs(1)), secs(9));
    assert_eq!(syncer.min_sync_wait(t0 + secs(10)), Duration::ZERO);
    assert_eq!(syncer.min_sync_wait(t0 + secs(30)), Duration::ZERO);
    // With nothing changing the loop sleeps --sync-period, then until the full sync.
    assert_eq!(syncer.idle_wait(t0 + secs(1)), secs(30));
    // (The hour counts from the end of the full sync: a moment after t0.)
    let wait = syncer.idle_wait(t0 + secs(3590));
    assert!(wait >= secs(10) && wait < secs(11), "{wait:?}");
    assert_eq!(
        syncer.sync(&mut tracker, t0 + secs(3599)).ok(),
        Some(Synced::Nothing)
    );
    assert_eq!(
        syncer.sync(&mut tracker, t0 + secs(3601)).ok(),
        Some(Synced::Full)
    );
    assert_eq!(fake.take(), [Call::Full(2), Call::Full(2)]);
}
