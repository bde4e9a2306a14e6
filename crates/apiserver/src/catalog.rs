//! The resources a server serves right now: the built-in table ([`resources::ALL`]) and the
//! custom resources of its established CustomResourceDefinitions, as kube-apiserver's handler
//! chain ends in apiextensions-apiserver's `crdHandler` for any group/version it does not
//! serve itself. Routing, discovery, OpenAPI and the namespace controller all ask the catalog,
//! so a CRD's kinds appear and disappear everywhere at once.
//!
//! The REST layer holds resources as `&'static ResourceInfo`. A custom resource's info is
//! therefore leaked, but interned ([`crate::crd::custom::info_for`]) by the CRD's name, version
//! and names: creating and deleting the same CRD again and again reuses one allocation, so a
//! client cannot grow memory without bound by repeating CRD writes; only distinct CRDs add one
//! small entry each, for the life of the process.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::resources::{self, ResourceInfo};

/// The custom resources served, by CRD name; each CRD's versions in priority order.
#[derive(Default)]
pub struct Catalog {
    custom: RwLock<Custom>,
}

#[derive(Default)]
struct Custom {
    /// Each CRD's served versions, and the resourceVersion of the CRD they were made from.
    by_crd: BTreeMap<String, (i64, Arc<Vec<&'static ResourceInfo>>)>,
    /// Bumped on every change: OpenAPI documents are rebuilt when it moves.
    generation: u64,
}

impl Catalog {
    /// Every served resource: the built-ins in discovery order, then custom resources by CRD.
    pub fn all(&self) -> Vec<&'static ResourceInfo> {
        let custom = self.custom.read().expect("catalog");
        let mut out: Vec<&'static ResourceInfo> = resources::ALL.to_vec();
        for (_, infos) in custom.by_crd.values() {
            out.extend(infos.iter().copied());
        }
        out
    }

    /// The resource of `/apis/<group>/<version>/<plural>`.
    pub fn lookup(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static ResourceInfo> {
        if let Some(r) = resources::lookup(group, version, plural) {
            return Some(r);
        }
        let custom = self.custom.read().expect("catalog");
        custom
            .by_crd
            .values()
            .flat_map(|(_, v)| v.iter().copied())
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The served group/versions: ("", "v1") first, then named groups, a group's versions in
    /// priority order (the first is the preferred one).
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = resources::group_versions();
        let custom = self.custom.read().expect("catalog");
        for r in custom.by_crd.values().flat_map(|(_, v)| v.iter()) {
            if !out.contains(&(r.group, r.version)) {
                out.push((r.group, r.version));
            }
        }
        out
    }

    /// Serve `infos` (one per served version) for the CRD `name` at resourceVersion `rv`,
    /// replacing what it served.
    pub fn set(&self, name: &str, rv: i64, infos: Vec<&'static ResourceInfo>) {
        let mut custom = self.custom.write().expect("catalog");
        let unchanged = custom.by_crd.get(name).is_some_and(|(old_rv, old)| {
            *old_rv == rv
                && old.len() == infos.len()
                && old.iter().zip(&infos).all(|(a, b)| std::ptr::eq(*a, *b))
        });
        if !unchanged {
            custom
                .by_crd
                .insert(name.to_string(), (rv, Arc::new(infos)));
            custom.generation += 1;
        }
    }

    /// The CRDs whose kinds are served.
    pub fn crd_names(&self) -> Vec<String> {
        let custom = self.custom.read().expect("catalog");
        custom.by_crd.keys().cloned().collect()
    }

    /// Stop serving the CRD `name`'s resources.
    pub fn remove(&self, name: &str) {
        let mut custom = self.custom.write().expect("catalog");
        if custom.by_crd.remove(name).is_some() {
            custom.generation += 1;
        }
    }

    /// The resources the CRD `name` serves.
    pub fn of_crd(&self, name: &str) -> Vec<&'static ResourceInfo> {
        let custom = self.custom.read().expect("catalog");
        custom
            .by_crd
            .get(name)
            .map(|(_, v)| v.to_vec())
            .unwrap_or_default()
    }

    /// Moves whenever the served set (or a served schema) changes.
    pub fn generation(&self) -> u64 {
        self.custom.read().expect("catalog").generation
    }
}
