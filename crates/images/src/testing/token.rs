//! A token server for the registry's `auth.token` (the Docker Registry v2 token protocol that
//! Docker Hub speaks): the registry answers 401 with `WWW-Authenticate: Bearer realm=...,
//! service=..., scope=...`; the client asks the realm for a token with its basic credentials;
//! the token is a JWT (ES256) whose `access` grants the scope, signed by a key whose
//! self-signed certificate is both the `x5c` header and the registry's `rootcertbundle`.
//!
//! Test support only: the registry's side is the real docker-registry; this plays Docker Hub's
//! auth.docker.io on loopback. Hand-written because the protocol is small and no crate serves it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

/// The registry's `auth.token.service` and `issuer`.
pub const SERVICE: &str = "svcnet-test-registry";
pub const ISSUER: &str = "svcnet-test-token-issuer";

struct Signer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    credentials: (String, String),
}

/// A running token server; stops when dropped.
pub struct TokenServer {
    pub addr: SocketAddr,
    /// The signing certificate, PEM (the registry's `rootcertbundle`).
    pub cert_pem: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    /// Serves tokens to clients presenting `user`/`password` (anonymous requests get 401).
    pub fn start(user: &str, password: &str) -> std::io::Result<Self> {
        let key_pair = rcgen::KeyPair::generate().map_err(std::io::Error::other)?;
        let params = rcgen::CertificateParams::new(vec!["svcnet-token-signer".to_string()])
            .map_err(std::io::Error::other)?;
        let cert = params
            .self_signed(&key_pair)
            .map_err(std::io::Error::other)?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key_pair.serialize_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let signer = Arc::new(Signer {
            key,
            cert_der: cert.der().to_vec(),
            credentials: (user.to_string(), password.to_string()),
        });
        // Its own thread and runtime, so it starts and stops the same from sync and async tests.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .route("/token", get(token))
            .with_state(signer);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await;
            })
        });
        Ok(Self {
            addr,
            cert_pem: cert.pem(),
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The registry's `auth.token.realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    service: Option<String>,
}

async fn token(
    State(signer): State<Arc<Signer>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> axum::response::Response {
    let presented = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (user, password) = &signer.credentials;
    if presented.as_deref() != Some(&format!("{user}:{password}")) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"details": "incorrect username or password"})),
        )
            .into_response();
    }
    // `repository:library/x:pull,push` → the access entry it asks for.
    let access: Vec<_> = q
        .scope
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let header = json!({"alg": "ES256", "typ": "JWT", "x5c": [STANDARD.encode(&signer.cert_der)]});
    let claims = json!({
        "iss": ISSUER,
        "sub": user,
        "aud": q.service.unwrap_or_else(|| SERVICE.to_string()),
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let Ok(sig) = signer
        .key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    Json(json!({"token": jwt, "access_token": jwt, "expires_in": 300})).into_response()
}
