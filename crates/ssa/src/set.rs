//! Sets of field paths, as structured-merge-diff's `fieldpath.Set`, and their `fieldsV1`
//! encoding (what `metadata.managedFields[].fieldsV1` holds).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::path::{Path, PathElement};

/// A set of paths, as a tree: `members` are paths that end here, `children` continue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    pub fn new() -> Set {
        Set::default()
    }

    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Set {
        let mut s = Set::new();
        for p in paths {
            s.insert(p);
        }
        s
    }

    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [pe] => {
                self.members.insert(pe.clone());
            }
            [pe, rest @ ..] => self.children.entry(pe.clone()).or_default().insert(rest),
        }
    }

    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [pe] => self.members.contains(pe),
            [pe, rest @ ..] => self.children.get(pe).is_some_and(|c| c.has(rest)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// The paths below `pe` (SMD `WithPrefix`).
    pub fn with_prefix(&self, pe: &PathElement) -> Set {
        self.children.get(pe).cloned().unwrap_or_default()
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let mut out = Set::new();
        out.members = self.members.intersection(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            if let Some(o) = other.children.get(pe) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(pe.clone(), i);
                }
            }
        }
        out
    }

    /// Members of `self` that are not members of `other`; children likewise.
    pub fn difference(&self, other: &Set) -> Set {
        let mut out = Set::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            let d = match other.children.get(pe) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    /// Every path in the set: a node's members, then its children's (SMD `Iterate`).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(p);
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Adds every field that has children as a member too (SMD `EnsureNamedFieldsAreMembers`:
    /// svcnet's schema treats every object as a struct, so every field is a named one).
    pub fn with_named_fields(&self) -> Set {
        let mut out = Set::new();
        out.members = self.members.clone();
        for (pe, c) in &self.children {
            if matches!(pe, PathElement::Field(_)) && !c.is_empty() {
                out.members.insert(pe.clone());
            }
            out.children.insert(pe.clone(), c.with_named_fields());
        }
        out
    }

    /// Removes every path that has a prefix in `prefixes` (SMD `NewExcludeFilter`).
    pub fn exclude_prefixes(&self, prefixes: &Set) -> Set {
        let mut out = Set::new();
        for pe in &self.members {
            if !prefixes.members.contains(pe) {
                out.members.insert(pe.clone());
            }
        }
        for (pe, c) in &self.children {
            if prefixes.members.contains(pe) {
                continue;
            }
            let kept = match prefixes.children.get(pe) {
                Some(p) => c.exclude_prefixes(p),
                None => c.clone(),
            };
            if !kept.is_empty() {
                out.children.insert(pe.clone(), kept);
            }
        }
        out
    }

    /// The `fieldsV1` JSON of the set (SMD `Set.ToJSON`): a member with children also gets
    /// `".": {}` inside its object.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut m = Map::new();
        if include_self {
            m.insert(".".to_string(), Value::Object(Map::new()));
        }
        for pe in &self.members {
            if !self.children.contains_key(pe) {
                m.insert(pe.to_fields_key(), Value::Object(Map::new()));
            }
        }
        for (pe, c) in &self.children {
            if c.is_empty() {
                continue;
            }
            let inner = c.emit(self.members.contains(pe));
            m.insert(pe.to_fields_key(), Value::Object(inner));
        }
        m
    }

    /// Parses `fieldsV1` (SMD `Set.FromJSON`).
    pub fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let Value::Object(m) = v else {
            return Err("expected an object".to_string());
        };
        let mut s = Set::new();
        for (k, inner) in m {
            if k == "." {
                continue;
            }
            let pe = PathElement::from_fields_key(k)
                .map_err(|e| format!("parsing key as path element: {e}"))?;
            let Value::Object(im) = inner else {
                return Err(format!("expected an object at {k}"));
            };
            if im.is_empty() || im.contains_key(".") {
                s.members.insert(pe.clone());
            }
            let child = Set::from_fields_v1(inner)?;
            if !child.is_empty() {
                s.children.insert(pe, child);
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &[&str]) -> Path {
        s.iter()
            .map(|k| PathElement::from_fields_key(k).unwrap())
            .collect()
    }

    // Ported from SMD fieldpath/set_test.go and serialize_test.go.
    #[test]
    fn set_operations() {
        let a = Set::from_paths(&[p(&["f:a"]), p(&["f:b", "f:c"]), p(&["f:b", "f:d"])]);
        let b = Set::from_paths(&[p(&["f:a"]), p(&["f:b", "f:c"]), p(&["f:e"])]);
        assert_eq!(
            a.union(&b),
            Set::from_paths(&[
                p(&["f:a"]),
                p(&["f:b", "f:c"]),
                p(&["f:b", "f:d"]),
                p(&["f:e"])
            ])
        );
        assert_eq!(
            a.intersection(&b),
            Set::from_paths(&[p(&["f:a"]), p(&["f:b", "f:c"])])
        );
        assert_eq!(a.difference(&b), Set::from_paths(&[p(&["f:b", "f:d"])]));
        assert!(a.difference(&a).is_empty());
        assert!(a.has(&p(&["f:b", "f:d"])));
        assert!(!a.has(&p(&["f:b"])));
        assert_eq!(a.with_prefix(&PathElement::field("b")).paths().len(), 2);
        // A member of one set and a parent in the other stays a member in the difference.
        let parent = Set::from_paths(&[p(&["f:b"])]);
        assert_eq!(parent.difference(&a), parent);
    }

    #[test]
    fn fields_v1_round_trips() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:ports": {
                    "k:{\"port\":80,\"protocol\":\"TCP\"}": {
                        ".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}
                    }
                },
                "f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}},
                "f:selector": {}
            }
        });
        let s = Set::from_fields_v1(&v).unwrap();
        assert!(s.has(&p(&["f:metadata", "f:labels"])));
        assert!(s.has(&p(&["f:metadata", "f:labels", "f:app"])));
        assert!(!s.has(&p(&["f:metadata"])));
        assert!(s.has(&p(&[
            "f:spec",
            "f:ports",
            r#"k:{"port":80,"protocol":"TCP"}"#,
            "f:targetPort"
        ])));
        assert!(s.has(&p(&["f:spec", "f:selector"])));
        assert_eq!(s.to_fields_v1(), v);
        assert_eq!(s.paths().len(), 9);
    }

    #[test]
    fn exclude_prefixes() {
        let s = Set::from_paths(&[p(&["f:spec", "f:a"]), p(&["f:status", "f:b"]), p(&["f:c"])]);
        let out = s.exclude_prefixes(&Set::from_paths(&[p(&["f:status"])]));
        assert_eq!(out, Set::from_paths(&[p(&["f:spec", "f:a"]), p(&["f:c"])]));
    }

    #[test]
    fn named_fields_become_members() {
        let s = Set::from_paths(&[p(&["f:spec", "f:ports", r#"k:{"port":80}"#, "f:name"])]);
        let n = s.with_named_fields();
        assert!(n.has(&p(&["f:spec"])));
        assert!(n.has(&p(&["f:spec", "f:ports"])));
        assert!(!n.has(&p(&["f:spec", "f:ports", r#"k:{"port":80}"#])));
    }
}
