//! Custom objects of one served CRD version, as apiextensions-apiserver's `customresource`
//! strategy and its `crdHandler` treat them: on write, unknown fields pruned (reported per
//! `fieldValidation`), `default`s filled, the schema validated with apiextensions' messages,
//! `status` split off the main resource when the status subresource is on
//! (`customResourceStrategy.PrepareForCreate/PrepareForUpdate`), stored in the storage
//! version. Conversion is `None`: a version differs from another only in `apiVersion`.
//!
//! Each version's [`ResourceInfo`] is interned ([`info_for`]): its strings and the info itself
//! are leaked once per distinct (CRD name, version, names, scope, subresources), and its
//! [`CustomStrategy`] holds the version's current schema, printer columns and scale paths
//! behind a lock, replaced when the CRD changes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};
use svcnet_api::apiextensions::schema;
use svcnet_api::field::{ErrorList, Path};
use svcnet_api::validation::meta::{validate_object_meta, validate_object_meta_update};
use svcnet_api::validation::names::name_is_dns_subdomain;

use super::columns::PrinterColumn;
use crate::resources::ResourceInfo;
use crate::strategy::{Decoded, Strategy};

/// Where `kubectl scale` reads and writes (`subresources.scale`).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// What one served version of a CRD currently is.
#[derive(Clone, Debug, Default)]
pub struct CustomVersion {
    /// `group/version` of the version stored (every version is stored as it).
    pub storage_api_version: String,
    /// `openAPIV3Schema` (`Null`: none, everything is kept).
    pub schema: Value,
    pub columns: Vec<PrinterColumn>,
    pub scale: Option<ScalePaths>,
    pub status: bool,
    pub namespaced: bool,
}

/// The [`Strategy`] of one CRD version's objects.
#[derive(Default)]
pub struct CustomStrategy {
    version: RwLock<Arc<CustomVersion>>,
}

impl CustomStrategy {
    pub fn current(&self) -> Arc<CustomVersion> {
        self.version.read().expect("custom version").clone()
    }

    fn set(&self, v: CustomVersion) {
        *self.version.write().expect("custom version") = Arc::new(v);
    }
}

fn meta_of(obj: &Value) -> ObjectMeta {
    obj.get("metadata")
        .cloned()
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default()
}

impl Strategy for CustomStrategy {
    fn decode(&self, obj: &Value) -> Result<Decoded, String> {
        let v = self.current();
        let mut value = obj.clone();
        if !value.get("metadata").is_none_or(Value::is_object) {
            return Err("metadata: expected an object".into());
        }
        let unknown_fields = if v.schema.is_null() {
            Vec::new()
        } else {
            schema::prune(&v.schema, &mut value)
        };
        Ok(Decoded {
            value,
            unknown_fields,
        })
    }

    fn default(&self, obj: &mut Value) -> Result<(), String> {
        let v = self.current();
        if !v.schema.is_null() {
            schema::default(&v.schema, obj);
        }
        Ok(())
    }

    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), String> {
        if self.current().status {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        Ok(())
    }

    fn validate_create(&self, obj: &Value) -> Result<ErrorList, String> {
        let v = self.current();
        let mut errs = validate_object_meta(
            &meta_of(obj),
            v.namespaced,
            name_is_dns_subdomain,
            &Path::new("metadata"),
        );
        if !v.schema.is_null() {
            errs.extend(schema::validate(&v.schema, obj));
        }
        Ok(errs)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Result<ErrorList, String> {
        let v = self.current();
        let mut errs =
            validate_object_meta_update(&meta_of(new), &meta_of(old), &Path::new("metadata"));
        if !v.schema.is_null() {
            errs.extend(schema::validate(&v.schema, new));
        }
        Ok(errs)
    }

    fn validate_status_update(&self, new: &Value, old: &Value) -> Result<ErrorList, String> {
        self.validate_update(new, old)
    }

    fn fill_go_zero(&self, _: &mut Value) {}

    fn custom(&self) -> Option<&CustomStrategy> {
        Some(self)
    }
}

/// What a custom resource's interned info is keyed by: everything its [`ResourceInfo`] holds.
#[derive(Clone, PartialEq, Eq, Hash)]
struct InfoKey {
    crd: String,
    group: String,
    version: String,
    plural: String,
    singular: String,
    kind: String,
    list_kind: String,
    short_names: Vec<String>,
    categories: Vec<String>,
    namespaced: bool,
    status: bool,
    scale: bool,
}

static INTERNED: LazyLock<Mutex<HashMap<InfoKey, &'static ResourceInfo>>> =
    LazyLock::new(Default::default);
static STRINGS: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);

/// One leaked copy of `s` for the life of the process.
fn intern(s: &str) -> &'static str {
    let mut set = STRINGS.lock().expect("interned strings");
    if let Some(found) = set.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

fn intern_list(v: &[String]) -> &'static [&'static str] {
    if v.is_empty() {
        return &[];
    }
    Box::leak(
        v.iter()
            .map(|s| intern(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

const CRUD: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];

/// The interned info of `key`, made on first use.
fn info_for(key: InfoKey) -> &'static ResourceInfo {
    let mut interned = INTERNED.lock().expect("interned infos");
    if let Some(info) = interned.get(&key) {
        return info;
    }
    let subresources: &'static [&'static str] = match (key.status, key.scale) {
        (true, true) => &["status", "scale"],
        (true, false) => &["status"],
        (false, true) => &["scale"],
        (false, false) => &[],
    };
    let strategy: &'static CustomStrategy = Box::leak(Box::default());
    let info: &'static ResourceInfo = Box::leak(Box::new(ResourceInfo {
        group: intern(&key.group),
        version: intern(&key.version),
        kind: intern(&key.kind),
        list_kind: intern(&key.list_kind),
        plural: intern(&key.plural),
        singular: intern(&key.singular),
        short_names: intern_list(&key.short_names),
        categories: intern_list(&key.categories),
        namespaced: key.namespaced,
        // Kubernetes' layout: `/registry/<group>/<plural>`, shared by every version.
        key_prefix: intern(&format!("/registry/{}/{}", key.group, key.plural)),
        subresources,
        verbs: CRUD,
        allow_create_on_update: false,
        has_generation: true,
        field_labels: &[],
        strategy,
        view: None,
    }));
    interned.insert(key, info);
    info
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The version names of a CRD in Kubernetes' version priority (`version.CompareKubeAwareVersionStrings`):
/// GA before beta before alpha, higher numbers first, other names last alphabetically.
pub fn by_priority(mut names: Vec<String>) -> Vec<String> {
    fn rank(v: &str) -> (u8, i64, i64, String) {
        let parse = |s: &str| -> Option<(i64, u8, i64)> {
            let s = s.strip_prefix('v')?;
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            let major: i64 = digits.parse().ok()?;
            let rest = &s[digits.len()..];
            if rest.is_empty() {
                return Some((major, 0, 0));
            }
            for (word, class) in [("beta", 1u8), ("alpha", 2u8)] {
                if let Some(n) = rest.strip_prefix(word) {
                    return Some((major, class, n.parse().ok()?));
                }
            }
            None
        };
        match parse(v) {
            Some((major, class, minor)) => (class, -major, -minor, String::new()),
            None => (3, 0, 0, v.to_string()),
        }
    }
    names.sort_by_key(|n| rank(n));
    names
}

/// Serve the versions of `crd` (its accepted names, every served version): the interned info
/// of each, its strategy updated to the CRD's current schema, columns and scale.
pub fn infos(crd: &Value) -> Vec<&'static ResourceInfo> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let spec = &crd["spec"];
    let names = &crd["status"]["acceptedNames"];
    let s = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let group = s(spec, "group");
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage = versions
        .iter()
        .find(|v| v["storage"] == true)
        .map(|v| s(v, "name"))
        .unwrap_or_default();
    let served: Vec<String> = versions
        .iter()
        .filter(|v| v["served"] == true)
        .map(|v| s(v, "name"))
        .collect();
    let mut out = Vec::new();
    for vname in by_priority(served) {
        let Some(v) = versions.iter().find(|v| v["name"] == vname.as_str()) else {
            continue;
        };
        let status = v
            .pointer("/subresources/status")
            .is_some_and(Value::is_object);
        let scale = v
            .pointer("/subresources/scale")
            .filter(|s| s.is_object())
            .map(|sc| ScalePaths {
                spec_replicas: s(sc, "specReplicasPath"),
                status_replicas: s(sc, "statusReplicasPath"),
                label_selector: sc
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        let key = InfoKey {
            crd: name.to_string(),
            group: group.clone(),
            version: vname.clone(),
            plural: s(names, "plural"),
            singular: s(names, "singular"),
            kind: s(names, "kind"),
            list_kind: s(names, "listKind"),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            namespaced: s(spec, "scope") == "Namespaced",
            status,
            scale: scale.is_some(),
        };
        let info = info_for(key);
        let strategy = info
            .strategy
            .custom()
            .expect("a custom resource's strategy");
        strategy.set(CustomVersion {
            storage_api_version: format!("{group}/{storage}"),
            schema: v
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or(Value::Null),
            columns: super::columns::of_version(v),
            scale,
            status,
            namespaced: info.namespaced,
        });
        out.push(info);
    }
    out
}

/// The object as `api_version` serves it (conversion `None`: only `apiVersion` changes).
pub fn with_api_version(obj: &Value, api_version: &str) -> Value {
    let mut out = obj.clone();
    if let Some(o) = out.as_object_mut() {
        o.insert("apiVersion".into(), json!(api_version));
    }
    out
}

impl CustomVersion {
    /// The autoscaling/v1 Scale of `obj` (`scale.go`'s `scaleFromCustomResource`).
    pub fn scale(&self, obj: &Value) -> Option<(i64, i64, String)> {
        let paths = self.scale.as_ref()?;
        let at = |p: &str| super::columns::lookup(obj, p).into_iter().next();
        let spec = at(&paths.spec_replicas)
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let status = at(&paths.status_replicas)
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let selector = paths
            .label_selector
            .as_deref()
            .and_then(at)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Some((spec, status, selector))
    }

    /// Set the spec replicas of `obj` (the Scale's update).
    pub fn set_replicas(&self, obj: &mut Value, replicas: i64) {
        let Some(paths) = &self.scale else { return };
        let mut cur = obj;
        let segs: Vec<&str> = paths
            .spec_replicas
            .trim_start_matches('.')
            .split('.')
            .collect();
        for (i, seg) in segs.iter().enumerate() {
            if i + 1 == segs.len() {
                cur[*seg] = json!(replicas);
            } else {
                if !cur[*seg].is_object() {
                    cur[*seg] = json!({});
                }
                cur = &mut cur[*seg];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_kubernetes_priority() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            by_priority(v(&["v1alpha1", "foo", "v1", "v2beta1", "v1beta2", "v2"])),
            v(&["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"])
        );
    }

    fn crd(kind: &str) -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}}}]},
            "status": {"acceptedNames": {"plural": "widgets", "singular": "widget", "kind": kind, "listKind": format!("{kind}List")}},
        })
    }

    /// A hostile client re-creating one CRD cannot grow memory: the same names give the same
    /// leaked info.
    #[test]
    fn infos_are_interned() {
        let a = infos(&crd("Widget"));
        let b = infos(&crd("Widget"));
        assert!(std::ptr::eq(a[0], b[0]));
        assert_eq!(a[0].key_prefix, "/registry/example.com/widgets");
        assert!(a[0].has_status());
        let c = infos(&crd("Gadget"));
        assert!(!std::ptr::eq(a[0], c[0]));
    }
}
