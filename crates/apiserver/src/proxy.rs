//! Reaching backends from the API server: an upgrade-aware HTTP reverse proxy (as
//! kube-apiserver's UpgradeAwareHandler), SPDY tunneled through a WebSocket unwrapped on the way
//! (its TunnelingHandler), and the [`Dialer`] that opens their connections.
//!
//! The proxy does not speak the exec/attach protocols: on `101 Switching Protocols` it splices
//! the client's upgraded connection to the backend's, so WebSocket (`v5.channel.k8s.io`, what
//! kubectl 1.32 uses) and SPDY both pass through to the node agent unchanged. Port-forward from
//! kubectl 1.31+ is a WebSocket whose binary messages carry SPDY
//! (`SPDY/3.1+portforward.k8s.io`); [`forward_tunneled`] upgrades to plain SPDY towards the
//! kubelet and copies the bytes between the two, as kube-apiserver does.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{future, SinkExt, StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{ApiError, ApiResult};

/// Opens TCP connections to nodes and pods. `svcnet apiserver` dials directly; `svcnet up`
/// dials from inside the cluster network's namespace.
pub trait Dialer: Send + Sync {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>>;
}

/// Plain TCP from the API server's own network namespace.
pub struct DirectDialer;

impl Dialer for DirectDialer {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> {
        Box::pin(async move {
            let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, format!("dial {addr}: timed out"))
                })??;
            s.set_nodelay(true)?;
            Ok(s)
        })
    }
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && headers.contains_key(header::UPGRADE)
}

/// Forward `req` to `backend` as `path_and_query` (replacing the client's credentials with
/// `bearer`, if any) and stream the answer back; upgrades are spliced.
pub async fn forward(
    dialer: &Arc<dyn Dialer>,
    mut req: Request<Body>,
    backend: SocketAddr,
    path_and_query: &str,
    bearer: Option<&str>,
) -> ApiResult<Response> {
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(path_and_query);
    {
        let headers = out.headers_mut().expect("builder has headers");
        for (name, value) in parts.headers.iter() {
            let n = name.as_str();
            if n == "authorization" || n == "host" || (!upgrade && HOP_BY_HOP.contains(&n)) {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&backend.to_string()).expect("an address is a valid header"),
        );
        if let Some(token) = bearer {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
                headers.insert(header::AUTHORIZATION, v);
            }
        }
    }
    let out = out
        .body(body)
        .map_err(|e| ApiError::internal(format!("building proxy request: {e}")))?;
    let mut resp = send(dialer, backend, out).await?;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        let (rparts, _) = resp.into_parts();
        if let Some(client_upgrade) = client_upgrade {
            tokio::spawn(async move {
                let (Ok(client), Ok(backend)) = (client_upgrade.await, backend_upgrade.await)
                else {
                    return;
                };
                let mut client = TokioIo::new(client);
                let mut backend = TokioIo::new(backend);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
            });
        }
        let mut r = Response::from_parts(rparts, Body::empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        return Ok(r);
    }
    Ok(pass_through(resp))
}

/// Send `req` to `backend` over a new connection (kept for upgrades).
async fn send(
    dialer: &Arc<dyn Dialer>,
    backend: SocketAddr,
    req: Request<Body>,
) -> ApiResult<http::Response<hyper::body::Incoming>> {
    let stream = dialer.dial(backend).await.map_err(|e| {
        ApiError::service_unavailable(format!(
            "error trying to reach service: dial tcp {backend}: {e}"
        ))
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| {
            ApiError::service_unavailable(format!("error trying to reach service: {e}"))
        })?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| ApiError::service_unavailable(format!("error trying to reach service: {e}")))
}

/// The backend's answer as the client's, less hop-by-hop headers.
fn pass_through(resp: http::Response<hyper::body::Incoming>) -> Response {
    let (mut rparts, rbody) = resp.into_parts();
    for h in HOP_BY_HOP {
        rparts.headers.remove(HeaderName::from_static(h));
    }
    Response::from_parts(rparts, Body::new(rbody))
}

/// The WebSocket subprotocol prefix of SPDY tunneled through a WebSocket
/// (`portforward.WebsocketsSPDYTunnelingPrefix`).
pub const SPDY_TUNNELING_PREFIX: &str = "SPDY/3.1+";

/// Tunneled protocols are Kubernetes' (`portforward.KubernetesSuffix`).
const KUBERNETES_SUFFIX: &str = ".k8s.io";

/// The SPDY protocols a WebSocket request asks to tunnel, prefix removed
/// (`spdyProtocolsFromWebsocketProtocols`).
fn tunneled_spdy_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| p.ends_with(KUBERNETES_SUFFIX))
        .filter_map(|p| p.strip_prefix(SPDY_TUNNELING_PREFIX))
        .map(str::to_string)
        .collect()
}

/// A WebSocket upgrade asking for tunneled SPDY
/// (`portforward.IsWebSocketRequestWithTunnelingProtocol`).
pub fn is_tunneling_request(headers: &HeaderMap) -> bool {
    let websocket = is_upgrade(headers)
        && headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    websocket && !tunneled_spdy_protocols(headers).is_empty()
}

/// SPDY tunneled through a WebSocket, unwrapped towards `backend` (kube-apiserver's
/// `TunnelingHandler`): the backend gets a plain SPDY/3.1 upgrade (POST, `Upgrade: SPDY/3.1`,
/// the tunneled protocols as `X-Stream-Protocol-Version`); when it switches protocols, the
/// client's WebSocket is accepted with `SPDY/3.1+<the backend's protocol>` and each binary
/// message's bytes go to the backend, each read from the backend back as one message. Any
/// other answer goes back to the client as it is, which fails its WebSocket handshake, and
/// kubectl falls back to plain SPDY.
pub async fn forward_tunneled(
    dialer: &Arc<dyn Dialer>,
    req: Request<Body>,
    backend: SocketAddr,
    path_and_query: &str,
    bearer: Option<&str>,
) -> ApiResult<Response> {
    let protocols = tunneled_spdy_protocols(req.headers());
    if protocols.is_empty() {
        return Err(ApiError::bad_request(
            "unable to upgrade: no tunneling spdy protocols provided",
        ));
    }
    let (mut parts, _) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;

    // createSPDYRequest: the WebSocket headers out, the SPDY upgrade in.
    let mut out = Request::builder().method(Method::POST).uri(path_and_query);
    {
        let headers = out.headers_mut().expect("builder has headers");
        for (name, value) in parts.headers.iter() {
            let n = name.as_str();
            if n.starts_with("sec-websocket-")
                || matches!(
                    n,
                    "authorization"
                        | "host"
                        | "upgrade"
                        | "connection"
                        | "x-stream-protocol-version"
                )
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(
            header::UPGRADE,
            HeaderValue::from_static(svcnet_spdy::HEADER_SPDY31),
        );
        for p in &protocols {
            if let Ok(v) = HeaderValue::from_str(p) {
                headers.append("x-stream-protocol-version", v);
            }
        }
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&backend.to_string()).expect("an address is a valid header"),
        );
        if let Some(v) = bearer.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
            headers.insert(header::AUTHORIZATION, v);
        }
    }
    let out = out
        .body(Body::empty())
        .map_err(|e| ApiError::internal(format!("building proxy request: {e}")))?;
    let mut resp = send(dialer, backend, out).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(pass_through(resp));
    }
    let has = |name: HeaderName, token: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains(token))
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "spdy/3.1") {
        return Err(ApiError::internal_raw(
            "unable to upgrade: missing upgrade headers in response",
        ));
    }
    let chosen = resp
        .headers()
        .get("x-stream-protocol-version")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    let backend_upgrade = hyper::upgrade::on(&mut resp);
    let ws = if chosen.is_empty() {
        ws
    } else {
        ws.protocols([format!("{SPDY_TUNNELING_PREFIX}{chosen}")])
    };
    Ok(ws
        .on_upgrade(move |socket| async move {
            let Ok(backend) = backend_upgrade.await else {
                return;
            };
            let mut backend = TokioIo::new(backend);
            let mut client = svcnet_spdy::MessageIo::new(binary_messages(socket));
            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
        })
        .into_response())
}

/// A WebSocket as a stream of binary payloads (ending at a close message; other messages
/// skipped) and a sink of payloads sent as binary messages.
fn binary_messages(
    ws: WebSocket,
) -> impl futures::Stream<Item = Result<Bytes, axum::Error>>
       + futures::Sink<Bytes, Error = axum::Error>
       + Unpin {
    Box::pin(
        ws.with(|b: Bytes| future::ready(Ok::<_, axum::Error>(Message::Binary(b))))
            .take_while(|m| future::ready(!matches!(m, Ok(Message::Close(_)))))
            .try_filter_map(|m| {
                future::ready(Ok(match m {
                    Message::Binary(b) => Some(b),
                    _ => None,
                }))
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_plain_and_upgraded() {
        // A backend that answers GETs with the path and upgrades on request, then echoes bytes.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap();
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = req.split_whitespace().nth(1).unwrap().to_string();
                    assert!(
                        req.contains("authorization: Bearer node-token")
                            || req.contains("Authorization: Bearer node-token")
                    );
                    if req.to_ascii_lowercase().contains("upgrade: test") {
                        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n").await.unwrap();
                        let mut b = [0u8; 5];
                        s.read_exact(&mut b).await.unwrap();
                        s.write_all(&b).await.unwrap();
                    } else {
                        let body = format!("path={path}");
                        s.write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .await
                        .unwrap();
                    }
                });
            }
        });
        // The proxy, served by hyper with upgrades, as the API server does.
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        let dialer: Arc<dyn Dialer> = Arc::new(DirectDialer);
        tokio::spawn(async move {
            loop {
                let (s, _) = front.accept().await.unwrap();
                let dialer = dialer.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let dialer = dialer.clone();
                            async move {
                                let req = req.map(Body::new);
                                let pq = req.uri().path_and_query().unwrap().to_string();
                                Ok::<_, std::convert::Infallible>(
                                    forward(
                                        &dialer,
                                        req,
                                        addr,
                                        &format!("/backend{pq}"),
                                        Some("node-token"),
                                    )
                                    .await
                                    .unwrap(),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        let mut c = TcpStream::connect(front_addr).await.unwrap();
        c.write_all(b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer user\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = c.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("path=/backend/x?y=1"),
            "{text}"
        );

        let mut c = TcpStream::connect(front_addr).await.unwrap();
        c.write_all(b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
            .await
            .unwrap();
        let n = c.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
        c.write_all(b"hello").await.unwrap();
        let mut echo = [0u8; 5];
        c.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"hello");
    }
}
