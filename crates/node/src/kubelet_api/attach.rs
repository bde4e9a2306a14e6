//! `attach` over WebSocket: a running container's stdio (the kubelet's `getAttach` and
//! `ServeAttach`, containerd's CRI `Attach`). The container's shim holds its stdin and
//! broadcasts its output ([`crate::shim::stdio`]); a session here is one connection to the
//! shim's attach socket ([`crate::shim::wire`]) carried over the channel protocols of
//! [`super::stream`]. Whether the container has a terminal is the container's (`tty` in its
//! spec), as the kubelet decides; the request's `tty` only drops the stderr stream.
//!
//! Answers as the kubelet's: a pod not on this node is 404 `pod does not exist`; a container
//! that does not run (yet, or any more) is 500 `container X not found in pod NAME_NAMESPACE`
//! (`GetAttach`, whose `findContainer` sees running containers only; kubectl shows it as
//! `unable to upgrade connection: ...` and `kubectl run` then falls back to the logs); a session
//! ending with the container is a `Success` status (v4+).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::Response;
use futures::FutureExt;
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy_streams::{self, SpdyUpgrade};
use super::stream::{self, StreamOptions, StreamProtocol, Streams};
use super::{text_response, AppState};
use crate::shim::wire::{self, AttachRequest};

/// How long an attach waits for the socket of a container whose shim is starting (svcnet's
/// own: the kubelet reports a container running only once the runtime has started it).
const SHIM_START_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn get_attach(
    State(st): State<Arc<AppState>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    spdy: SpdyUpgrade,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let opts = match StreamOptions::from_query(query.as_deref()) {
        Ok(o) => o,
        Err(e) => return text_response(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if st.runtime.sandbox(&ns, &pod).is_none()
        && st.runtime.container(&ns, &pod, &container).is_none()
    {
        return text_response(StatusCode::NOT_FOUND, "pod does not exist");
    }
    let not_running = || {
        text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("container {container} not found in pod {pod}_{ns}"),
        )
    };
    // Reached before the upgrade, so that a container that just ended is an HTTP error. A
    // container whose shim is still starting has no socket yet: waited for.
    let deadline = tokio::time::Instant::now() + SHIM_START_TIMEOUT;
    let conn = loop {
        let Some(handle) = st
            .runtime
            .container(&ns, &pod, &container)
            .filter(|h| h.running)
        else {
            return not_running();
        };
        match wire::connect(&handle.dir) {
            Ok(conn) => break conn,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(_) => return not_running(),
        }
    };
    if spdy.requested() {
        return spdy.upgrade(&headers, move |session, protocol| async move {
            let streams = attach_streams(protocol, opts, conn).map_err(attach_error);
            spdy_streams::serve(session, protocol, opts, streams).await
        });
    }
    stream::upgrade(ws, &headers, "attach", move |socket, protocol| async move {
        let streams = attach_streams(protocol, opts, conn).map_err(attach_error);
        stream::serve(socket, protocol, streams).await
    })
}

/// The error stream's `Status` when the shim's socket fails.
fn attach_error(e: std::io::Error) -> Vec<u8> {
    let msg = format!("error attaching to container: {e}");
    serde_json::to_vec(&serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": msg,
        "reason": "InternalError",
        "code": 500,
    }))
    .expect("serializable")
}

/// A session on the shim's attach socket, as [`Streams`].
fn attach_streams(
    protocol: StreamProtocol,
    opts: StreamOptions,
    conn: std::os::unix::net::UnixStream,
) -> std::io::Result<Streams> {
    conn.set_nonblocking(true)?;
    let (mut rd, mut wr) = tokio::net::UnixStream::from_std(conn)?.into_split();
    let mut request = serde_json::to_vec(&AttachRequest {
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
    })
    .expect("serializable");
    request.push(b'\n');

    // Agent → shim: the request, then stdin (its end as a close frame) and resizes.
    let (stdin_tx, mut stdin_rx) = mpsc::channel::<Bytes>(32);
    let (resize_tx, mut resize_rx) = mpsc::channel::<(u16, u16)>(8);
    let input = tokio::spawn(async move {
        if wr.write_all(&request).await.is_err() {
            return;
        }
        let mut stdin_open = opts.stdin;
        loop {
            let frame = tokio::select! {
                d = stdin_rx.recv(), if stdin_open => match d {
                    Some(d) => wire::encode(wire::STDIN, &d),
                    None => {
                        stdin_open = false;
                        wire::encode(wire::CLOSE, &[])
                    }
                },
                r = resize_rx.recv() => match r {
                    Some((w, h)) => wire::encode(wire::RESIZE, &wire::resize_payload(w, h)),
                    None => break,
                },
            };
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    // Shim → agent: the output, until the shim closes the session.
    let (out_tx, output) = mpsc::channel::<(u8, Bytes)>(32);
    let pump = tokio::spawn(async move {
        let mut head = [0u8; 5];
        while rd.read_exact(&mut head).await.is_ok() {
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if len > wire::MAX_FRAME {
                break;
            }
            let mut data = vec![0u8; len];
            if rd.read_exact(&mut data).await.is_err() {
                break;
            }
            let channel = match head[0] {
                wire::STDOUT => stream::CH_STDOUT,
                wire::STDERR => stream::CH_STDERR,
                _ => continue,
            };
            if out_tx.send((channel, Bytes::from(data))).await.is_err() {
                break;
            }
        }
    });
    let (input_abort, pump_abort) = (input.abort_handle(), pump.abort_handle());
    Ok(Streams {
        stdin: opts.stdin.then_some(stdin_tx),
        resize: Some(Box::new(move |w, h| {
            let _ = resize_tx.try_send((w, h));
        })),
        output,
        done: async move { stream::success_status(protocol) }.boxed(),
        // The session's end reaches the shim as the end of its stream.
        on_client_gone: Box::new(move || {
            input_abort.abort();
            pump_abort.abort();
        }),
    })
}
