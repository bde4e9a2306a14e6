//! The kubelet API as the API server sees it: routes, the bearer token, errors as `Status`,
//! and logs served and followed through a fake [`PodRuntime`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::cri_log::SAMPLE_LOG as LOG;

/// The token the tests' API server presents.
const T: Option<&str> = Some("sekret");

fn auth() -> Authenticator {
    Authenticator::bearer_token("sekret").unwrap()
}

/// One container, `default/p/c`, with a log in a temp dir.
struct Fake {
    log: PathBuf,
    previous: Option<PathBuf>,
    running: AtomicBool,
}

impl Fake {
    /// The container, running or not, with [`LOG`] as its log (written in `dir`).
    fn with_log(dir: &std::path::Path, running: bool) -> Arc<Fake> {
        let log = dir.join("0.log");
        std::fs::write(&log, LOG).unwrap();
        Arc::new(Fake {
            log,
            previous: None,
            running: AtomicBool::new(running),
        })
    }
}

impl PodRuntime for Fake {
    fn container(&self, ns: &str, pod: &str, c: &str) -> Option<ContainerHandle> {
        ((ns, pod, c) == ("default", "p", "c")).then(|| ContainerHandle {
            log_path: self.log.clone(),
            previous_log_path: self.previous.clone(),
            running: self.running.load(Ordering::SeqCst),
            ..Default::default()
        })
    }
}

async fn get(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, String, String) {
    let mut req = http::Request::get(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes();
    (status, ctype, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn serves_logs_with_auth_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::with_log(dir.path(), false);
    let app = router(auth(), fake.clone());
    let t = T;

    assert_eq!(get(&app, "/healthz", None).await.2, "ok");
    let (status, _, _) = get(&app, "/containerLogs/default/p/c", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get(&app, "/containerLogs/default/p/c", Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get(&app, "/exec/default/p/c?command=ls&stdout=1", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, ctype, body) = get(&app, "/containerLogs/default/p/c?tailLines=1", t).await;
    assert_eq!(
        (status, ctype.as_str(), body.as_str()),
        (StatusCode::OK, "text/plain", "last\n")
    );

    let (status, _, body) = get(&app, "/containerLogs/default/p/c?previous=true", t).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        "previous terminated container \"c\" in pod \"p\" not found"
    );

    let (status, _, body) = get(&app, "/containerLogs/default/p/nope", t).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("\"nope\""), "{body}");

    let (status, _, body) = get(&app, "/containerLogs/default/p/c?limitBytes=x", t).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // exec without a WebSocket upgrade; attach to a container that does not run, to a pod
    // that is not here, without a stream (the kubelet's answers).
    let (status, _, _) = get(&app, "/exec/default/p/c?command=ls&stdout=1", t).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, body) = get(&app, "/attach/default/p/c?stdout=1", t).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "container c not found in pod p_default"
        )
    );
    let (status, _, body) = get(&app, "/attach/default/nope/c?stdout=1", t).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "pod does not exist")
    );
    let (status, _, body) = get(&app, "/attach/default/p/c?tty=1&stderr=1", t).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 of stdin, stdout, stderr"
        )
    );

    // Kubernetes clients (asking for JSON) get errors as a Status.
    let req = http::Request::get("/containerLogs/default/p/c?previous=true")
        .header(header::ACCEPT, "application/json, */*")
        .header(header::AUTHORIZATION, "Bearer sekret")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["reason"].as_str(), v["code"].as_u64()),
        (Some("Status"), Some("BadRequest"), Some(400))
    );
    assert_eq!(
        v["message"],
        "previous terminated container \"c\" in pod \"p\" not found"
    );
}

#[test]
fn no_authenticator_no_kubelet_api() {
    let dir = tempfile::tempdir().unwrap();
    let err = Authenticator::from_token_file(None).unwrap_err();
    assert_eq!(err.to_string(), "No authentication method configured");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").unwrap();
    assert!(matches!(
        Authenticator::from_token_file(Some(&empty)),
        Err(AuthError::EmptyToken(_))
    ));
    assert!(matches!(
        Authenticator::from_token_file(Some(&dir.path().join("missing"))),
        Err(AuthError::TokenFileFailed(..))
    ));
    assert!(Authenticator::bearer_token("  ").is_none());
    let file = dir.path().join("token");
    std::fs::write(&file, "sekret\n").unwrap();
    let a = Authenticator::from_token_file(Some(&file)).unwrap();
    assert_eq!(format!("{a:?}"), "Authenticator { token: <redacted> }");
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, "Bearer sekret".parse().unwrap());
    assert!(a.authenticates(&h));
    h.insert(header::AUTHORIZATION, "Bearer sekreT".parse().unwrap());
    assert!(!a.authenticates(&h));
}

#[tokio::test]
async fn previous_log_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let prev = dir.path().join("0.log");
    std::fs::write(&prev, "2026-01-02T03:04:05Z stdout F before the restart\n").unwrap();
    let fake = Arc::new(Fake {
        log: dir.path().join("1.log"),
        previous: Some(prev),
        running: AtomicBool::new(true),
    });
    let app = router(auth(), fake);
    let (status, _, body) = get(&app, "/containerLogs/default/p/c?previous=1&follow=1", T).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "before the restart\n")
    );
}

#[tokio::test]
async fn follows_until_the_container_stops() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::with_log(dir.path(), true);
    let app = router(auth(), fake.clone());
    let log = fake.log.clone();
    let writer = tokio::spawn(async move {
        use std::io::Write;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        // A line written in two pieces, as a reader may see it.
        f.write_all(b"2026-01-02T03:05:00Z stdout F la").unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        f.write_all(b"ter\n2026-01-02T03:05:01Z stderr P end")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        fake.running.store(false, Ordering::SeqCst);
    });
    let (status, _, body) = get(
        &app,
        "/containerLogs/default/p/c?follow=true&tailLines=1&timestamps=1",
        T,
    )
    .await;
    writer.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "2026-01-02T03:04:09.000000005Z last\n2026-01-02T03:05:00Z later\n2026-01-02T03:05:01Z end"
    );
}

#[tokio::test]
async fn follow_stops_at_the_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::with_log(dir.path(), true);
    let app = router(auth(), fake);
    let (_, _, body) = get(
        &app,
        "/containerLogs/default/p/c?follow=true&limitBytes=5",
        T,
    )
    .await;
    assert_eq!(body, "first");
}
