//! The per-container probe loop (the kubelet's `prober/worker.go`): a delay, a period, the
//! success and failure thresholds, and an update whenever the result changes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::context::{ProbeContext, ProbeResult};
use super::prober::run_once;

/// Which probe a result is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Readiness,
    Liveness,
    Startup,
}

/// The thresholds of a probe (the kubelet's `worker.doProbe` bookkeeping): the result only
/// changes after `successThreshold` (default 1) successes or `failureThreshold` (default 3)
/// failures in a row.
#[derive(Clone, Debug)]
pub struct ProbeState {
    kind: ProbeKind,
    result: bool,
    determined: bool,
    last: Option<bool>,
    run: i32,
}

impl ProbeState {
    /// Starts at the kubelet's initial value: not ready, live, not started.
    pub fn new(kind: ProbeKind) -> ProbeState {
        ProbeState {
            kind,
            result: kind == ProbeKind::Liveness,
            determined: false,
            last: None,
            run: 0,
        }
    }

    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The current result.
    pub fn result(&self) -> bool {
        self.result
    }

    /// Whether a threshold has been reached yet.
    pub fn determined(&self) -> bool {
        self.determined
    }

    /// Records one attempt; returns the new result when it changes — including, for readiness
    /// and startup, the first time a threshold is reached (the first failure verdict does not
    /// change the initial `false`, but it is news: the probe has run). After a liveness or
    /// startup failure the run restarts, as the kubelet's worker holds until the container is
    /// restarted.
    pub fn record(&mut self, r: &ProbeResult, probe: &Probe) -> Option<bool> {
        let ok = r.is_success();
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
        if (ok && self.run < success_threshold) || (!ok && self.run < failure_threshold) {
            return None;
        }
        let changed = self.result != ok || (!self.determined && self.kind != ProbeKind::Liveness);
        self.result = ok;
        self.determined = true;
        if !ok && self.kind != ProbeKind::Readiness {
            self.run = 0;
        }
        changed.then_some(ok)
    }
}

/// A change of a probe's result, from [`spawn_worker`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeUpdate {
    pub kind: ProbeKind,
    pub result: bool,
    /// The failure message of the attempt that made the result false (empty when true).
    pub message: String,
}

/// Probes periodically, for one container (instance): waits `initialDelaySeconds` (default
/// 0), then runs the probe every `periodSeconds` (default 10) and sends a [`ProbeUpdate`]
/// whenever [`ProbeState::record`] reports a change.
///
/// The worker ends when the handle is aborted or the receiver dropped, and by itself after a
/// startup success (startup probes stop once the container has started) or after reporting a
/// liveness or startup failure (the container is to be killed; the kubelet's worker holds until
/// it is restarted — start a new worker for the new container).
pub fn spawn_worker(
    probe: Probe,
    kind: ProbeKind,
    ctx: ProbeContext,
    tx: UnboundedSender<ProbeUpdate>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let work = async {
            let delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
            tokio::time::sleep(Duration::from_secs(delay)).await;
            let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut state = ProbeState::new(kind);
            loop {
                ticker.tick().await;
                let r = run_once(&probe, &ctx).await;
                let Some(result) = state.record(&r, &probe) else {
                    continue;
                };
                let update = ProbeUpdate {
                    kind,
                    result,
                    message: r.message().to_string(),
                };
                if tx.send(update).is_err() {
                    return;
                }
                match (kind, result) {
                    (ProbeKind::Startup, true) => return,
                    (ProbeKind::Liveness | ProbeKind::Startup, false) => return,
                    _ => {}
                }
            }
        };
        tokio::select! {
            _ = work => {}
            _ = tx.closed() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::Arc;

    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::*;
    use crate::probe::testing::{closed_port, ctx, http_probe_spec, server, tcp_probe_spec};

    fn fail() -> ProbeResult {
        ProbeResult::Failure("x".into())
    }

    #[test]
    fn thresholds() {
        let probe = Probe::default();
        // Readiness: starts false; the first verdict is reported even when it is false.
        let mut s = ProbeState::new(ProbeKind::Readiness);
        assert!(!s.result());
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&fail(), &probe), Some(false));
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), Some(true));
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(
            s.record(&ProbeResult::Unknown("grpc".into()), &probe),
            Some(false)
        );

        // successThreshold 2.
        let probe = Probe {
            success_threshold: Some(2),
            failure_threshold: Some(1),
            ..Default::default()
        };
        let mut s = ProbeState::new(ProbeKind::Readiness);
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), Some(true));
        assert_eq!(s.record(&fail(), &probe), Some(false));
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), Some(true));

        // Liveness: starts true, a success is no news; three failures are.
        let probe = Probe::default();
        let mut s = ProbeState::new(ProbeKind::Liveness);
        assert!(s.result());
        assert_eq!(s.record(&ProbeResult::Success, &probe), None);
        assert!(s.determined());
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&fail(), &probe), Some(false));
        assert!(!s.result());

        // Startup: starts false; the first success is reported.
        let mut s = ProbeState::new(ProbeKind::Startup);
        assert!(!s.result());
        assert_eq!(s.record(&fail(), &probe), None);
        assert_eq!(s.record(&ProbeResult::Success, &probe), Some(true));
    }

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<ProbeUpdate>) -> ProbeUpdate {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an update")
            .expect("the worker runs")
    }

    #[tokio::test]
    async fn worker_reports_changes() {
        let status = Arc::new(AtomicU16::new(200));
        let port = server(status.clone()).await;
        let mut probe = http_probe_spec(IntOrString::Int(port.into()), "/status");
        probe.period_seconds = Some(1);
        probe.failure_threshold = Some(1);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = spawn_worker(probe.clone(), ProbeKind::Readiness, ctx(vec![]), tx);
        let u = next(&mut rx).await;
        assert_eq!(
            u,
            ProbeUpdate {
                kind: ProbeKind::Readiness,
                result: true,
                message: String::new()
            }
        );
        status.store(503, Ordering::SeqCst);
        let u = next(&mut rx).await;
        assert!(!u.result);
        assert_eq!(u.message, "HTTP probe failed with statuscode: 503");
        status.store(200, Ordering::SeqCst);
        assert!(next(&mut rx).await.result);
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
        assert!(rx.recv().await.is_none());

        // Liveness: no news while live; a failure is reported, then the worker ends.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = spawn_worker(probe, ProbeKind::Liveness, ctx(vec![]), tx);
        assert!(tokio::time::timeout(Duration::from_millis(1500), rx.recv())
            .await
            .is_err());
        status.store(500, Ordering::SeqCst);
        let u = next(&mut rx).await;
        assert_eq!((u.kind, u.result), (ProbeKind::Liveness, false));
        assert!(rx.recv().await.is_none());
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn worker_stops_when_receiver_dropped() {
        let mut probe = tcp_probe_spec(closed_port().await.into());
        probe.period_seconds = Some(1);
        probe.failure_threshold = Some(2);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = spawn_worker(probe, ProbeKind::Readiness, ctx(vec![]), tx);
        // The first verdict (false, after two failures) is reported.
        let u = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(!u.result);
        assert!(u.message.ends_with("connect: connection refused"));
        drop(rx);
        tokio::time::timeout(Duration::from_secs(2), handle)
            .await
            .expect("the worker ends")
            .unwrap();
    }
}
