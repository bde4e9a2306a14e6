//! The in-flight request limit, as kube-apiserver's `WithMaxInFlightLimit`
//! (`staging/src/k8s.io/apiserver/pkg/server/filters/maxinflight.go`): read-only requests
//! (verbs get, list) and mutating ones (the rest) each have a number of slots
//! (`--max-requests-inflight` 400, `--max-mutating-requests-inflight` 200; 0 = no limit). A
//! request that finds its slots taken gets 429 with `Retry-After: 1` at once — no queueing.
//!
//! Not counted, as upstream: long-running requests (`BasicLongRunningRequestCheck` with verbs
//! watch, proxy and subresources attach, exec, proxy, log, portforward, as kube-apiserver
//! configures it), and members of `system:masters` once the slots are taken ("A system:master
//! is so powerful that they should always get an answer"). Also not counted: /healthz, /livez,
//! /readyz, which kube-apiserver's default API Priority and Fairness configuration exempts (the
//! `probes` FlowSchema), so a health check answers under load.
//!
//! Deviations: upstream writes the 429 as plain text ("Too many requests, please try again
//! later.", via `http.Error`); we send it as a `Status` with that message, reason
//! `TooManyRequests` and `retryAfterSeconds: 1` — what client-go turns the plain-text answer
//! into anyway. The limits are the two pools of `--enable-priority-and-fairness=false`;
//! Priority and Fairness (upstream's default, where the two flags are summed into one
//! concurrency budget shared by priority levels) is not implemented. A slot is held until the
//! response body has been sent, as upstream holds it for `ServeHTTP`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, Uri};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::body::Guarded;
use crate::auth::User;
use crate::config::ServingConfig;
use crate::error::{ApiError, Details};

/// `longRunningSubresources` of kube-apiserver's `BasicLongRunningRequestCheck`.
const LONG_RUNNING_SUBRESOURCES: &[&str] = &["attach", "exec", "proxy", "log", "portforward"];
/// Health checks: never limited (APF's `probes` FlowSchema).
const PROBES: &[&str] = &["/healthz", "/livez", "/readyz"];
/// `user.SystemPrivilegedGroup`.
const PRIVILEGED_GROUP: &str = "system:masters";

/// The two pools of slots and their metrics.
pub struct InflightLimits {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    current: IntGaugeVec,
    dropped: IntCounterVec,
    /// What is served: a custom resource's watch is long-running too.
    catalog: Arc<crate::catalog::Catalog>,
}

/// What the limit sees of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Not limited: long-running, or a health check.
    Exempt,
    ReadOnly,
    Mutating,
}

impl Kind {
    /// The `request_kind` label of upstream's metrics.
    fn label(self) -> &'static str {
        match self {
            Kind::Mutating => "mutating",
            _ => "readOnly",
        }
    }
}

impl InflightLimits {
    pub fn new(
        config: &ServingConfig,
        registry: &Registry,
        catalog: Arc<crate::catalog::Catalog>,
    ) -> Arc<Self> {
        let pool = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        let current = IntGaugeVec::new(
            Opts::new(
                "apiserver_current_inflight_requests",
                "Number of requests of each kind being served, against --max-requests-inflight \
                 and --max-mutating-requests-inflight.",
            ),
            &["request_kind"],
        )
        .expect("valid metric");
        let dropped = IntCounterVec::new(
            Opts::new(
                "apiserver_dropped_requests_total",
                "Number of requests answered 429 because their kind's in-flight limit was reached.",
            ),
            &["request_kind"],
        )
        .expect("valid metric");
        // A second server in the same process (tests) has its own registry; ignore a clash.
        let _ = registry.register(Box::new(current.clone()));
        let _ = registry.register(Box::new(dropped.clone()));
        Arc::new(InflightLimits {
            read_only: pool(config.max_requests_inflight),
            mutating: pool(config.max_mutating_requests_inflight),
            current,
            dropped,
            catalog,
        })
    }

    fn pool(&self, kind: Kind) -> Option<&Arc<Semaphore>> {
        match kind {
            Kind::Exempt => None,
            Kind::ReadOnly => self.read_only.as_ref(),
            Kind::Mutating => self.mutating.as_ref(),
        }
    }
}

/// kube-apiserver's RequestInfo reduced to what the limit needs, with its
/// `BasicLongRunningRequestCheck`.
pub fn classify(method: &Method, uri: &Uri, catalog: &crate::catalog::Catalog) -> Kind {
    let path = uri.path();
    if PROBES
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
    {
        return Kind::Exempt;
    }
    let read = method == Method::GET || method == Method::HEAD;
    if let Ok(Some(t)) = crate::request::parse(path, catalog) {
        if t.subresource
            .as_deref()
            .is_some_and(|s| LONG_RUNNING_SUBRESOURCES.contains(&s))
        {
            return Kind::Exempt;
        }
        let watch = t.legacy_watch
            || (t.name.is_none() && crate::codec::Query::parse(uri.query()).is_ok_and(|q| q.watch));
        if read && watch {
            return Kind::Exempt;
        }
    }
    if read {
        Kind::ReadOnly
    } else {
        Kind::Mutating
    }
}

/// The filter (an axum middleware inside authentication, which puts the [`User`] on the
/// request).
pub async fn middleware(
    State(limits): State<Arc<InflightLimits>>,
    req: Request,
    next: Next,
) -> Response {
    let kind = classify(req.method(), req.uri(), &limits.catalog);
    let Some(pool) = limits.pool(kind) else {
        return next.run(req).await;
    };
    match pool.clone().try_acquire_owned() {
        Ok(permit) => {
            let gauge = limits.current.with_label_values(&[kind.label()]);
            gauge.inc();
            let slot = Slot {
                _permit: permit,
                gauge,
            };
            next.run(req)
                .await
                .map(|b| Body::new(Guarded::new(b, slot)))
        }
        Err(_) if privileged(&req) => next.run(req).await,
        Err(_) => {
            limits.dropped.with_label_values(&[kind.label()]).inc();
            too_many_requests().into_response()
        }
    }
}

fn privileged(req: &Request) -> bool {
    req.extensions()
        .get::<User>()
        .is_some_and(|u| u.groups.iter().any(|g| g == PRIVILEGED_GROUP))
}

/// An in-flight slot, held until the response has been sent.
struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// 429 with `Retry-After: 1` (upstream's `tooManyRequests`).
pub fn too_many_requests() -> ApiError {
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: "Too many requests, please try again later.".into(),
        details: Box::new(Details {
            retry_after_seconds: Some(1),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: Method, uri: &str) -> Kind {
        classify(
            &method,
            &uri.parse().unwrap(),
            &crate::catalog::Catalog::default(),
        )
    }

    #[test]
    fn classifies_as_kube_apiserver() {
        use Kind::*;
        let cases = [
            (Method::GET, "/api/v1/namespaces/default/services", ReadOnly),
            (
                Method::GET,
                "/api/v1/namespaces/default/services/web",
                ReadOnly,
            ),
            (Method::GET, "/api/v1/services?watch=true", Exempt),
            (
                Method::GET,
                "/api/v1/services?watch=1&resourceVersion=5",
                Exempt,
            ),
            (Method::GET, "/api/v1/services?watch=false", ReadOnly),
            (
                Method::GET,
                "/api/v1/watch/namespaces/default/services",
                Exempt,
            ),
            (Method::GET, "/api/v1/namespaces/default/pods/p/log", Exempt),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/p/exec",
                Exempt,
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/pods/p/exec",
                Exempt,
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/p/proxy/x",
                Exempt,
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/services/s/proxy",
                Exempt,
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/services",
                Mutating,
            ),
            (
                Method::PATCH,
                "/api/v1/namespaces/default/services/web",
                Mutating,
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/default/services",
                Mutating,
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/default/services/web/status",
                Mutating,
            ),
            (Method::GET, "/api", ReadOnly),
            (Method::GET, "/version", ReadOnly),
            (Method::GET, "/metrics", ReadOnly),
            (Method::POST, "/bogus", Mutating),
            (Method::GET, "/healthz", Exempt),
            (Method::GET, "/readyz/ping", Exempt),
            (Method::GET, "/healthzz", ReadOnly),
        ];
        for (m, uri, want) in cases {
            assert_eq!(kind(m.clone(), uri), want, "{m} {uri}");
        }
    }

    #[test]
    fn answers_429_as_a_status() {
        let e = too_many_requests();
        let s = e.to_status();
        assert_eq!(s["code"], 429);
        assert_eq!(s["reason"], "TooManyRequests");
        assert_eq!(s["message"], "Too many requests, please try again later.");
        assert_eq!(s["details"]["retryAfterSeconds"], 1);
        let resp = e.into_response();
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "1");
    }
}
