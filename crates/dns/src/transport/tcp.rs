//! DNS over TCP (hickory's `server/transport/tcp`): length-prefixed messages, several per
//! connection, each answered through the handler's whole path before the next is read.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::handler::Handler;
use crate::metrics::Proto;

/// Serve DNS over TCP on `listener` until the process ends (length-prefixed messages, several
/// per connection, answered in order).
pub fn spawn(handler: Arc<Handler>, listener: TcpListener) {
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _peer)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                loop {
                    let idle =
                        tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_u16());
                    let Ok(Ok(len)) = idle.await else { return };
                    let mut buf = vec![0u8; len as usize];
                    if conn.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let Some(resp) = handler.handle(&buf, Proto::Tcp).await else {
                        continue;
                    };
                    let mut framed = (resp.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&resp);
                    if conn.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}
