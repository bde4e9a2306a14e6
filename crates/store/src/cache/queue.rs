//! What the dispatcher hands each watcher through: a bounded queue of shared events (kube-apiserver's
//! `cacheWatcher` input channel, bounded by bytes as well as by count) and the time budget the
//! dispatcher may spend waiting for full queues (the cacher's `dispatchTimeoutBudget`).
//!
//! A queue holds `Arc`s of the cache's events: N watchers of one event hold N references to one
//! object, never N copies. A queue is *full* once it holds more than its event limit, or more than
//! its byte limit in objects (always room for one event, whatever its size). The dispatcher never
//! waits while it holds the cache lock: it appends to every queue (so a full queue may exceed its
//! limits by the events of one store revision), then, after the lock, waits for the full ones
//! within the time budget, as kube-apiserver's `dispatchEvent` does after its non-blocking pass.
//! A queue still full when the budget runs out is closed: its events are dropped at once and its
//! reader gets [`super::CacheError::Lagged`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::CacheEvent;

/// kube-apiserver's `eventFreshDuration`: the watch channel should hold about one second of the
/// window, which holds this long of history.
const EVENT_FRESH_DURATION_SECS: usize = 75;
/// kube-apiserver's `minWatchChanSize`.
const MIN_WATCH_CHAN_SIZE: usize = 10;
/// kube-apiserver's `maxWatchChanSizeWithoutIndex` (this cache has no trigger index).
const MAX_WATCH_CHAN_SIZE: usize = 100;

/// kube-apiserver's `suggestedWatchChannelSize` for a cacher without an index: the window's
/// capacity over 75 s, between 10 and 100.
pub fn suggested_watch_chan_size(capacity: usize) -> usize {
    capacity
        .div_ceil(EVENT_FRESH_DURATION_SECS)
        .clamp(MIN_WATCH_CHAN_SIZE, MAX_WATCH_CHAN_SIZE)
}

/// The objects an event keeps alive while queued, in bytes of JSON (the parsed form roughly
/// doubles it): the new state and, for updates and deletes, the previous one.
pub fn event_bytes(e: &CacheEvent) -> usize {
    e.object.json.len() + e.prev.as_ref().map_or(0, |p| p.json.len())
}

/// Why a queue stopped taking events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Closed by the dispatcher: still full when the time budget ran out. Queued events are
    /// dropped.
    Unresponsive,
    /// The cache shut down; what is queued is still delivered.
    CacheStopped,
    /// The watch was dropped.
    Dropped,
}

/// The result of [`WatcherQueue::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Queued, and the queue is now over its limits: the dispatcher waits for room.
    Full,
    /// The queue is closed; the dispatcher forgets it.
    Closed,
}

/// What the reader takes from a queue.
pub enum Popped {
    Event(Arc<CacheEvent>),
    Empty,
    Closed(Closed),
}

/// How a watcher names itself in the log line of a forced close (kube-apiserver's
/// `groupResource` and `identifier`).
#[derive(Debug)]
pub struct WatcherLabel {
    pub resource: String,
    pub identifier: String,
}

type Hook = Box<dyn FnOnce() + Send>;

struct State {
    events: VecDeque<Arc<CacheEvent>>,
    bytes: usize,
    closed: Option<Closed>,
}

pub struct WatcherQueue {
    state: Mutex<State>,
    max_events: usize,
    max_bytes: usize,
    /// Wakes the reader: an event was queued, or the queue closed.
    readable: Notify,
    /// Wakes a dispatcher waiting for room.
    writable: Notify,
    label: OnceLock<WatcherLabel>,
    on_forced_close: Mutex<Option<Hook>>,
}

impl WatcherQueue {
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        WatcherQueue {
            state: Mutex::new(State {
                events: VecDeque::new(),
                bytes: 0,
                closed: None,
            }),
            max_events: max_events.max(1),
            max_bytes,
            readable: Notify::new(),
            writable: Notify::new(),
            label: OnceLock::new(),
            on_forced_close: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn over_limits(&self, s: &State) -> bool {
        s.events.len() > self.max_events || (s.bytes > self.max_bytes && s.events.len() > 1)
    }

    /// Append `event` (whatever the limits: the caller holds the cache lock and must not wait).
    pub fn push(&self, event: &Arc<CacheEvent>) -> Pushed {
        let mut s = self.lock();
        if s.closed.is_some() {
            return Pushed::Closed;
        }
        s.bytes += event_bytes(event);
        s.events.push_back(event.clone());
        let full = self.over_limits(&s);
        drop(s);
        self.readable.notify_one();
        if full {
            Pushed::Full
        } else {
            Pushed::Queued
        }
    }

    /// Take the next event.
    pub fn pop(&self) -> Popped {
        let mut s = self.lock();
        match s.events.pop_front() {
            Some(e) => {
                s.bytes -= event_bytes(&e);
                drop(s);
                self.writable.notify_one();
                Popped::Event(e)
            }
            None => match s.closed {
                Some(c) => Popped::Closed(c),
                None => Popped::Empty,
            },
        }
    }

    /// Wait until [`pop`](Self::pop) may have something new.
    pub async fn readable(&self) {
        self.readable.notified().await
    }

    /// Wait until the queue is within its limits again (true) or `deadline` passes while it is
    /// still over them (false). A closed queue needs no room.
    pub async fn wait_for_room(&self, deadline: Instant) -> bool {
        loop {
            {
                let s = self.lock();
                if s.closed.is_some() || !self.over_limits(&s) {
                    return true;
                }
            }
            // `notify_one` keeps a permit when nobody waits, so a pop between the check and
            // here is not missed.
            if tokio::time::timeout_at(deadline, self.writable.notified())
                .await
                .is_err()
            {
                let s = self.lock();
                return s.closed.is_some() || !self.over_limits(&s);
            }
        }
    }

    /// Close the queue of an unresponsive watcher: drop what it holds, wake its reader, log
    /// kube-apiserver's line and run the hook set by [`on_forced_close`](Self::on_forced_close).
    pub fn force_close(&self, prefix: &str) {
        if self.is_closed() {
            return;
        }
        // The hook first: whoever sees the queue closed may rely on it having run.
        let hook = self
            .on_forced_close
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(hook) = hook {
            hook();
        }
        let (len, bytes) = {
            let mut s = self.lock();
            if s.closed.is_some() {
                return;
            }
            s.closed = Some(Closed::Unresponsive);
            let held = (s.events.len(), s.bytes);
            s.events = VecDeque::new();
            s.bytes = 0;
            held
        };
        self.readable.notify_one();
        let (resource, identifier) = match self.label.get() {
            Some(l) => (l.resource.as_str(), l.identifier.as_str()),
            None => (prefix, ""),
        };
        tracing::info!(
            "Forcing {resource} watcher close due to unresponsiveness: {identifier}. len(input) = {len}, bytes(input) = {bytes}"
        );
    }

    /// Close for another reason: a dropped watch lets go of its events; a cache shutdown leaves
    /// them to be read.
    pub fn close(&self, why: Closed) {
        {
            let mut s = self.lock();
            if s.closed.is_some() {
                return;
            }
            s.closed = Some(why);
            if why != Closed::CacheStopped {
                s.events = VecDeque::new();
                s.bytes = 0;
            }
        }
        self.on_forced_close
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.readable.notify_one();
        self.writable.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    pub fn closed(&self) -> Option<Closed> {
        self.lock().closed
    }

    /// The revision of the oldest queued event; `Ok(None)` when empty and open.
    pub fn front_revision(&self) -> Result<Option<i64>, Closed> {
        let s = self.lock();
        match (s.events.front(), s.closed) {
            (Some(e), _) => Ok(Some(e.revision)),
            (None, Some(c)) => Err(c),
            (None, None) => Ok(None),
        }
    }

    /// (events, bytes) queued now.
    pub fn len_and_bytes(&self) -> (usize, usize) {
        let s = self.lock();
        (s.events.len(), s.bytes)
    }

    pub fn set_label(&self, label: WatcherLabel) {
        let _ = self.label.set(label);
    }

    pub fn set_on_forced_close(&self, hook: Hook) {
        if !self.is_closed() {
            *self
                .on_forced_close
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(hook);
        }
    }
}

/// The cacher's `timeBudget`: time the dispatcher may spend waiting for full queues, refilled at
/// `refresh` per second up to `max`, taken whole before a wait and given back unused after it.
/// Starts empty, as upstream's. (Refilled continuously when taken rather than by a 1 s ticker.)
#[derive(Debug)]
pub struct TimeBudget {
    budget: Duration,
    max: Duration,
    refresh: Duration,
    refilled_at: Instant,
}

impl TimeBudget {
    pub fn new(refresh_per_second: Duration, max: Duration) -> Self {
        TimeBudget {
            budget: Duration::ZERO,
            max,
            refresh: refresh_per_second,
            refilled_at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let earned = self
            .refresh
            .mul_f64(now.duration_since(self.refilled_at).as_secs_f64());
        self.budget = (self.budget + earned).min(self.max);
        self.refilled_at = now;
    }

    pub fn take_available(&mut self) -> Duration {
        self.refill();
        std::mem::take(&mut self.budget)
    }

    pub fn return_unused(&mut self, unused: Duration) {
        self.refill();
        self.budget = (self.budget + unused).min(self.max);
    }
}
