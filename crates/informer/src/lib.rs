//! The client-side runtime that every svcnet component watching the API shares, à la carte as
//! kube-rs' `kube-runtime` (and client-go's `tools/cache`, `util/workqueue`,
//! `tools/leaderelection`): each piece works over any [`kube::Client`], so the components built
//! on it run unchanged against svcnet's API server and a real Kubernetes one.
//!
//! - [`watch::spawn`]: a kube-rs watcher on its own task, every event handed to a callback
//!   (the proxy converts objects on arrival with it);
//! - [`reflector::spawn_waking`]: a reflector store whose every change wakes one loop (the
//!   cluster DNS, the LoadBalancer speaker); [`reflector::spawn`] without the wake-up;
//! - [`Informer`]: list + watch one kind once, with namespace and label indexes and a change
//!   feed carrying the previous object (the controllers);
//! - [`Queue`] and [`run_workers`]: keys with per-key exclusivity, de-duplication and backoff;
//! - [`lease`]: renewing and releasing a coordination.k8s.io Lease (liveness, leader election);
//! - [`conditions`]: small predicates on API objects (a Node's readiness);
//! - [`events`]: a core/v1 Event recorder (the controllers, the node agent's kubelet events).
//!
//! Must never import the API server or the store: clients reach the API only through kube-rs.

pub mod conditions;
pub mod events;
mod informer;
pub mod lease;
mod queue;
pub mod reflector;
pub mod watch;

pub use informer::{Change, Informer, KeyFn, Subscription};
pub use queue::{run_workers, Key, Queue};
