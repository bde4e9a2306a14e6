//! DNS over UDP (hickory's `server/transport/udp`): worker threads on the shared socket, each
//! receiving a batch (`mmsg.rs`), answering what it can at once through the handler and sending
//! the answers back in one batch; only a query that waits on the forwarder becomes a task.

use std::sync::Arc;

use super::mmsg;
use crate::handler::{Handler, Step};
use crate::metrics::Proto;

/// Serve UDP on `sock` until the process ends: `workers` OS threads loop on the shared socket —
/// a blocking `recvmmsg` that returns as soon as one packet is there with whatever else is
/// queued (up to 32), the answers, one `sendmmsg` — and answer cluster names right there,
/// without a task, a wakeup or a copy per packet; only a query that waits on the forwarder
/// becomes a task on the runtime this is called from. Must be called inside a tokio runtime.
pub fn spawn(
    handler: Arc<Handler>,
    sock: std::net::UdpSocket,
    workers: usize,
) -> std::io::Result<()> {
    sock.set_nonblocking(false)?;
    let sock = Arc::new(sock);
    let rt = tokio::runtime::Handle::current();
    for i in 0..workers.max(1) {
        let (handler, sock, rt) = (handler.clone(), sock.clone(), rt.clone());
        std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || worker(&handler, &sock, &rt))?;
    }
    Ok(())
}

fn worker(handler: &Arc<Handler>, sock: &Arc<std::net::UdpSocket>, rt: &tokio::runtime::Handle) {
    let mut batch = mmsg::Batch::new();
    let mut out = Vec::with_capacity(mmsg::BATCH);
    loop {
        let n = match batch.recv(sock) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "udp receive");
                continue;
            }
        };
        for i in 0..n {
            let (req, from) = batch.packet(i);
            let Some(from) = from else { continue };
            match handler.handle_now(req, Proto::Udp) {
                Step::Reply(Some(resp)) => out.push((resp, from)),
                Step::Reply(None) => {}
                Step::Later(p) => {
                    let (handler, sock) = (handler.clone(), sock.clone());
                    rt.spawn(async move {
                        if let Some(resp) = handler.complete(*p).await {
                            // A UDP send does not wait for the peer; at worst for buffer space.
                            let _ = sock.send_to(&resp, from);
                        }
                    });
                }
            }
        }
        mmsg::send_all(sock, &out);
        out.clear();
    }
}
