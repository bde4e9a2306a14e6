//! A reflector store that wakes one loop on every change: the shape of a component that
//! recomputes everything it serves from a few kinds (the cluster DNS zone, the speaker's
//! elections), as kube-runtime's `reflector` + `touched_objects` feeding a `Notify`.

use std::ops::ControlFlow;
use std::sync::Arc;

use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::Api;
use tokio::sync::Notify;

use crate::watch::{self, Watched};

/// Keep a store of `api`'s objects (filtered by `config`) and `notify_one` `wake` after every
/// event, also after a failed watch (the store is unchanged then, a wake-up is harmless).
/// `what` names the component in the debug line a failed watch writes.
pub fn spawn_waking<K: Watched>(
    api: Api<K>,
    config: watcher::Config,
    wake: Arc<Notify>,
    what: &'static str,
) -> Store<K> {
    let (store, mut writer) = reflector::store();
    watch::spawn(api, config, move |ev| {
        match ev {
            Ok(ev) => writer.apply_watcher_event(&ev),
            Err(e) => tracing::debug!(error = %e, "{what} watch"),
        }
        wake.notify_one();
        ControlFlow::Continue(())
    });
    store
}

/// A store of `api`'s objects kept current, for a component that only reads it when it needs
/// to (the node agent's Services, for pods' environment variables).
pub fn spawn<K: Watched>(api: Api<K>, config: watcher::Config, what: &'static str) -> Store<K> {
    spawn_waking(api, config, Arc::new(Notify::new()), what)
}
