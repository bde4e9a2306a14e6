//! Waiting for the signals that stop a foreground `svcnet` command. Only the binary waits for
//! signals: the libraries it runs offer a way to stop (a future to drop, `Server::shutdown`).

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a stopping signal arrived (the logs' filter in `main.rs` reads it).
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    STOPPING.store(true, Ordering::Relaxed);
}

/// Whether a stopping signal arrived.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}
