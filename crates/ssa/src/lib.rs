//! Server-side apply as Kubernetes defines it: structured-merge-diff
//! (`sigs.k8s.io/structured-merge-diff`: [`path`] and [`set`] are its `fieldpath`, [`typed`]
//! its `typed`, [`update`] its `merge`) and the API server's FieldManager
//! (`k8s.io/apimachinery/pkg/util/managedfields`: [`managed`]). Pure: JSON values in and
//! out, no I/O; the API server gives each kind's [`schema::Type`].
//!
//! Where svcnet differs: one API version per kind (no conversions); every object is treated
//! as a struct (each key a named field), which is what Kubernetes' schemas say for every
//! served kind but differs for maps whose values are maps; the last-applied-annotation
//! managers and the cap of 10 Update managers are not done (see [`managed`]).

pub mod managed;
pub mod path;
pub mod schema;
pub mod set;
pub mod typed;
pub mod update;

pub use managed::{manager_or_user_agent, ApplyError, FieldManager};
pub use path::{path_string, Path, PathElement};
pub use schema::{ListType, MapType, Type};
pub use set::Set;
pub use update::{Conflict, Conflicts, ManagedFields, Manager, Operation, Updater, VersionedSet};
