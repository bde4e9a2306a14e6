//! Resolving a request path to the resource it addresses, as kube-apiserver's
//! `RequestInfoFactory` does.

use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::resources::ResourceInfo;

/// What a resource request addresses.
#[derive(Clone)]
pub struct Target {
    pub info: &'static ResourceInfo,
    /// The namespace from the path (for namespaced resources; for `namespaces/{name}` too).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// Path segments after the subresource (`pods/x/proxy/<rest>`).
    pub rest: Vec<String>,
    /// The legacy `/watch/` path prefix was used.
    pub legacy_watch: bool,
}

/// Subresources of a namespace that are not resources inside it.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parse `/api/v1/...` or `/apis/{group}/{version}/...` into a [`Target`]. `Ok(None)` for
/// discovery paths (`/api`, `/api/v1`, `/apis/{group}`, ...), which the caller serves.
/// Resources are looked up in `catalog` (built-in and custom).
pub fn parse(path: &str, catalog: &Catalog) -> Result<Option<Target>, ApiError> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let (group, version, mut parts): (&str, &str, &[String]) =
        match segs.first().map(String::as_str) {
            Some("api") if segs.len() >= 3 => ("", segs[1].as_str(), &segs[2..]),
            Some("apis") if segs.len() >= 4 => (segs[1].as_str(), segs[2].as_str(), &segs[3..]),
            _ => return Ok(None),
        };
    let mut legacy_watch = false;
    if parts.first().map(String::as_str) == Some("watch") {
        legacy_watch = true;
        parts = &parts[1..];
    }
    if parts.is_empty() {
        return Err(ApiError::path_not_found());
    }
    let mut namespace = None;
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = Some(parts[1].clone());
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2].as_str()) {
            parts = &parts[2..];
        }
    }
    let info = catalog
        .lookup(group, version, &parts[0])
        .ok_or_else(ApiError::path_not_found)?;
    if info.namespaced && namespace.is_none() && parts.len() > 1 {
        // A namespaced resource addressed by name needs its namespace.
        return Err(ApiError::path_not_found());
    }
    let name = parts.get(1).cloned();
    let subresource = parts.get(2).cloned();
    if let Some(sub) = &subresource {
        if !info.has_subresource(sub) {
            return Err(ApiError::path_not_found());
        }
    }
    let rest = if parts.len() > 3 {
        parts[3..].to_vec()
    } else {
        Vec::new()
    };
    if !info.namespaced && info.plural != "namespaces" {
        namespace = None;
    }
    Ok(Some(Target {
        info,
        namespace,
        name,
        subresource,
        rest,
        legacy_watch,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> Target {
        super::parse(path, &Catalog::default()).unwrap().unwrap()
    }

    fn parse(path: &str) -> Result<Option<Target>, ApiError> {
        super::parse(path, &Catalog::default())
    }

    #[test]
    fn resolves_like_kube_apiserver() {
        let t = p("/api/v1/namespaces/default/services/web");
        assert_eq!(
            (t.info.plural, t.namespace.as_deref(), t.name.as_deref()),
            ("services", Some("default"), Some("web"))
        );
        let t = p("/api/v1/namespaces/default/services");
        assert_eq!((t.info.plural, t.name), ("services", None));
        let t = p("/api/v1/services");
        assert_eq!((t.info.plural, t.namespace), ("services", None));
        let t = p("/api/v1/namespaces/foo");
        assert_eq!(
            (t.info.plural, t.name.as_deref()),
            ("namespaces", Some("foo"))
        );
        let t = p("/api/v1/namespaces/foo/status");
        assert_eq!(
            (t.info.plural, t.name.as_deref(), t.subresource.as_deref()),
            ("namespaces", Some("foo"), Some("status"))
        );
        let t = p("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(
            (t.info.plural, t.subresource.as_deref()),
            ("deployments", Some("scale"))
        );
        let t = p("/api/v1/watch/namespaces/default/pods");
        assert!(t.legacy_watch);
        let t = p("/api/v1/nodes/n1/status");
        assert_eq!(
            (t.info.plural, t.name.as_deref(), t.namespace),
            ("nodes", Some("n1"), None)
        );
        assert!(parse("/api/v1").unwrap().is_none());
        assert!(parse("/apis/apps/v1").unwrap().is_none());
        assert!(parse("/api/v1/bogus").is_err());
        assert!(parse("/api/v1/namespaces/default/services/web/bogus").is_err());
    }
}
