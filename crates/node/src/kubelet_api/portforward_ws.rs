//! `portForward` over WebSocket (the kubelet's `pkg/kubelet/cri/streaming/portforward`
//! `websocket.go`), for clients that speak only WebSocket (the Python client, kube-rs'
//! `Api::portforward`, kubectl before SPDY). The ports come in the `port` query parameter (the
//! API server turns `pods/{name}/portforward?ports=` into it); each gets a pair of channels, data
//! `2i` and error `2i+1`, whose first frame is the port as two little-endian bytes. One
//! connection per port is forwarded into the pod's network namespace (as over SPDY,
//! [`super::portforward`]); the session closes once all of them have ended.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::httpstream::http_error;
use super::portforward::{port_forward, PodSandbox};
use super::stream::{self, ChannelSocket, Negotiated, StreamProtocol};

/// The subprotocols of WebSocket port forwarding (`websocket.go`'s `NewConn`): v4, binary or
/// base64 (and none, binary).
const PROTOCOLS: [Negotiated; 2] = [
    Negotiated::new("v4.channel.k8s.io", StreamProtocol::V4, false),
    Negotiated::new("v4.base64.channel.k8s.io", StreamProtocol::V4, true),
];

/// The ports of a WebSocket port-forward request (`NewV4Options`): every `port` parameter, each
/// a comma-separated list; `Err` is the 400's message.
pub fn ports_of(query: Option<&str>) -> Result<Vec<u16>, String> {
    let values: Vec<String> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "port")
        .map(|(_, v)| v.into_owned())
        .collect();
    if values.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    let mut ports = Vec::new();
    for value in &values {
        if value.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in value.split(',') {
            let port: u16 = p.parse().map_err(|_| {
                let why = if p.is_empty() || p.bytes().any(|b| !b.is_ascii_digit()) {
                    "invalid syntax"
                } else {
                    "value out of range"
                };
                format!(
                    "unable to parse {value:?} as a port: strconv.ParseUint: parsing {p:?}: {why}"
                )
            })?;
            if port < 1 {
                return Err(format!("port {value:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Answer a WebSocket port-forward request (`handleWebSocketStreams`).
pub(super) fn upgrade(
    ws: WebSocketUpgrade,
    headers: &HeaderMap,
    query: Option<&str>,
    sandbox: PodSandbox,
) -> Response {
    let ports = match ports_of(query) {
        Ok(p) => p,
        Err(msg) => return http_error(StatusCode::BAD_REQUEST, &msg),
    };
    stream::upgrade_among(ws, headers, &PROTOCOLS, move |socket, _| {
        serve(socket, ports, sandbox)
    })
}

/// One session: a forwarded connection per port, spliced to its channels.
async fn serve(socket: ChannelSocket, ports: Vec<u16>, sandbox: PodSandbox) {
    let ChannelSocket { socket, base64 } = socket;
    let frame = move |channel: usize, data: &[u8]| stream::frame(base64, channel as u8, data);
    let (mut sink, mut incoming) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.flush().await;
    });

    let sandbox = Arc::new(sandbox);
    let mut to_pods = Vec::with_capacity(ports.len());
    let mut forwards = Vec::with_capacity(ports.len());
    for (i, &port) in ports.iter().enumerate() {
        let (data, error) = (2 * i, 2 * i + 1);
        // Each channel first says which port it carries.
        let _ = out_tx.send(frame(data, &port.to_le_bytes())).await;
        let _ = out_tx.send(frame(error, &port.to_le_bytes())).await;
        // The data channel as a stream: its client side is written from the socket's frames
        // and read into frames for the socket.
        let (mut pod_side, client_side) = tokio::io::duplex(64 * 1024);
        let (mut from_pod, to_pod) = tokio::io::split(client_side);
        to_pods.push(Some(to_pod));
        let tx = out_tx.clone();
        let pump = tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n @ 1..) = from_pod.read(&mut buf).await {
                if tx.send(frame(data, &buf[..n])).await.is_err() {
                    break;
                }
            }
        });
        let (sb, tx) = (sandbox.clone(), out_tx.clone());
        forwards.push(tokio::spawn(async move {
            let result = port_forward(&sb, port, &mut pod_side).await;
            let _ = pod_side.shutdown().await;
            drop(pod_side);
            let _ = pump.await;
            if let Err(e) = result {
                let msg = format!(
                    "error forwarding port {port} to pod {}, uid : {e}",
                    sb.netns
                );
                tracing::warn!("{msg}");
                let _ = tx.send(frame(error, msg.as_bytes())).await;
            }
        }));
    }

    // Client → pods, until the client closes (which ends every data stream's input).
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = incoming.next().await {
            let data: Bytes = match msg {
                Message::Binary(d) => d,
                Message::Text(t) => t.into(),
                Message::Close(_) => break,
                _ => continue,
            };
            let Ok(Some((channel, payload))) =
                stream::parse_frame(base64, StreamProtocol::V4, &data)
            else {
                continue;
            };
            // Only data channels are read; an error channel's input is dropped.
            let i = usize::from(channel);
            if i % 2 != 0 || payload.is_empty() {
                continue;
            }
            if let Some(slot) = to_pods.get_mut(i / 2) {
                if let Some(w) = slot {
                    if w.write_all(&payload).await.is_err() {
                        *slot = None;
                    }
                }
            }
        }
    });
    let reader_abort = reader.abort_handle();
    for f in forwards {
        let _ = f.await;
    }
    let _ = out_tx
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
    drop(out_tx);
    let _ = writer.await;
    reader_abort.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_as_the_kubelet_reads_them() {
        assert_eq!(ports_of(Some("port=80")), Ok(vec![80]));
        assert_eq!(ports_of(Some("port=80,8080&port=9")), Ok(vec![80, 8080, 9]));
        assert_eq!(
            ports_of(None),
            Err("query parameter \"port\" is required".into())
        );
        assert_eq!(
            ports_of(Some("port=")),
            Err("query parameter \"port\" cannot be empty".into())
        );
        assert_eq!(
            ports_of(Some("port=http")),
            Err("unable to parse \"http\" as a port: strconv.ParseUint: parsing \"http\": invalid syntax".into())
        );
        assert_eq!(
            ports_of(Some("port=70000")),
            Err("unable to parse \"70000\" as a port: strconv.ParseUint: parsing \"70000\": value out of range".into())
        );
        assert_eq!(
            ports_of(Some("port=0")),
            Err("port \"0\" must be > 0".into())
        );
    }
}
