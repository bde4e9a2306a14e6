//! A work queue of object keys, as client-go's: a key is queued at most once, processed by one
//! worker at a time (a key added while it is processed is processed again afterwards), and
//! retried with exponential backoff after an error.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// `namespace/name` (or `name` for cluster-scoped objects).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: Option<String>,
    pub name: String,
}

impl Key {
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        Key {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        Key::new(
            obj.meta().namespace.as_deref(),
            obj.meta().name.as_deref().unwrap_or(""),
        )
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Key>,
    queued: HashSet<Key>,
    active: HashSet<Key>,
    /// Added while active: queue again when done.
    dirty: HashSet<Key>,
    failures: HashMap<Key, u32>,
    shut_down: bool,
}

#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
    notify: Notify,
}

impl Queue {
    pub fn new() -> Arc<Self> {
        Arc::new(Queue::default())
    }

    pub fn add(&self, key: Key) {
        let mut s = self.state.lock().expect("queue lock");
        if s.shut_down || s.queued.contains(&key) {
            return;
        }
        if s.active.contains(&key) {
            s.dirty.insert(key);
            return;
        }
        s.queued.insert(key.clone());
        s.queue.push_back(key);
        drop(s);
        self.notify.notify_one();
    }

    /// Add `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: Key, delay: Duration) {
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// The next key to work on; `None` after `shut_down`.
    pub async fn next(&self) -> Option<Key> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock().expect("queue lock");
                if let Some(k) = s.queue.pop_front() {
                    s.queued.remove(&k);
                    s.active.insert(k.clone());
                    if !s.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(k);
                }
                if s.shut_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The worker finished `key`; `Err` = retry it with backoff (5 ms doubling, up to 5 min).
    pub fn done(self: &Arc<Self>, key: &Key, result: Result<Option<Duration>, ()>) {
        let mut s = self.state.lock().expect("queue lock");
        s.active.remove(key);
        let requeue_now = s.dirty.remove(key);
        let retry = match result {
            Ok(after) => {
                s.failures.remove(key);
                after
            }
            Err(()) => {
                let n = s.failures.entry(key.clone()).or_insert(0);
                *n += 1;
                Some(
                    Duration::from_millis(5u64.saturating_mul(1 << (*n - 1).min(16)))
                        .min(Duration::from_secs(300)),
                )
            }
        };
        drop(s);
        if requeue_now {
            self.add(key.clone());
        } else if let Some(d) = retry {
            self.add_after(key.clone(), d);
        }
    }

    pub fn shut_down(&self) {
        self.state.lock().expect("queue lock").shut_down = true;
        self.notify.notify_waiters();
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("queue lock").queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Work `queue` with `workers` concurrent workers until it shuts down. `reconcile` returns
/// `Ok(Some(d))` to be called again after `d`, `Ok(None)` when done, `Err` to retry with backoff.
pub async fn run_workers<F, Fut, E>(
    name: &'static str,
    queue: Arc<Queue>,
    workers: usize,
    reconcile: F,
) where
    F: Fn(Key) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>, E>> + Send,
    E: fmt::Display,
{
    let reconcile = Arc::new(reconcile);
    let mut handles = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let reconcile = reconcile.clone();
        handles.push(tokio::spawn(async move {
            while let Some(key) = queue.next().await {
                let result = reconcile(key.clone()).await;
                let outcome = match result {
                    Ok(after) => Ok(after),
                    Err(e) => {
                        tracing::warn!(controller = name, %key, error = %e, "reconcile failed; will retry");
                        Err(())
                    }
                };
                queue.done(&key, outcome);
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn dedups_and_serializes_per_key() {
        let q = Queue::new();
        let k = Key::new(Some("ns"), "a");
        q.add(k.clone());
        q.add(k.clone());
        assert_eq!(q.len(), 1);
        let got = q.next().await.unwrap();
        // Added again while active: queued after done, not handed to another worker now.
        q.add(k.clone());
        assert_eq!(q.len(), 0);
        q.done(&got, Ok(None));
        assert_eq!(q.len(), 1);
    }

    #[tokio::test]
    async fn retries_errors_with_backoff() {
        let q = Queue::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        q.add(Key::new(None, "x"));
        let worker = tokio::spawn(run_workers("test", q.clone(), 2, move |_k| {
            let c = c.clone();
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst);
                if n < 3 {
                    Err("not yet")
                } else {
                    Ok(None)
                }
            }
        }));
        for _ in 0..200 {
            if calls.load(Ordering::SeqCst) >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "three failures, then success"
        );
        q.shut_down();
        worker.await.unwrap();
    }
}
