//! API discovery: `/api`, `/apis` (plain, and aggregated `apidiscovery.k8s.io/v2` as kubectl
//! 1.32 asks for first), `/api/v1`, `/apis/{group}`, `/apis/{group}/{version}`.

use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{header, StatusCode};
use serde_json::{json, Value};

use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::resources::ResourceInfo;

fn subresource_verbs(sub: &str) -> &'static [&'static str] {
    match sub {
        "binding" | "eviction" => &["create"],
        "log" => &["get"],
        "exec" | "attach" | "portforward" => &["create", "get"],
        "proxy" => &["create", "delete", "get", "patch", "update"],
        "finalize" => &["update"],
        _ => &["get", "patch", "update"],
    }
}

fn subresource_kind(info: &ResourceInfo, sub: &str) -> (&'static str, &'static str, &'static str) {
    match sub {
        "scale" => ("autoscaling", "v1", "Scale"),
        "binding" => ("", "v1", "Binding"),
        "eviction" => ("policy", "v1", "Eviction"),
        "log" | "proxy" => (info.group, info.version, info.kind),
        "exec" => ("", "v1", "PodExecOptions"),
        "attach" => ("", "v1", "PodAttachOptions"),
        "portforward" => ("", "v1", "PodPortForwardOptions"),
        _ => (info.group, info.version, info.kind),
    }
}

fn resource_list(catalog: &Catalog, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in catalog
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let (g, v, k) = subresource_kind(r, sub);
            let mut e = json!({
                "name": format!("{}/{}", r.plural, sub),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": subresource_verbs(sub),
            });
            if (g, v) != (r.group, r.version) {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            resources.push(e);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources })
}

fn group_entry(catalog: &Catalog, group: &str) -> Value {
    let versions: Vec<Value> = catalog
        .group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({ "groupVersion": format!("{g}/{v}"), "version": v }))
        .collect();
    json!({ "name": group, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null) })
}

fn aggregated(catalog: &Catalog, core: bool, api_version: &str) -> Value {
    let all = catalog.all();
    let mut items = Vec::new();
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in catalog.group_versions() {
        if (g.is_empty() == core) && !groups.contains(&g) {
            groups.push(g);
        }
    }
    for g in groups {
        let versions: Vec<Value> = catalog
            .group_versions()
            .into_iter()
            .filter(|(gg, _)| *gg == g)
            .map(|(_, v)| {
                let res: Vec<Value> = all
                    .iter()
                    .filter(|r| r.group == g && r.version == v)
                    .map(|r| {
                        let mut e = json!({
                            "resource": r.plural,
                            "responseKind": { "group": r.group, "version": r.version, "kind": r.kind },
                            "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                            "singularResource": r.singular,
                            "verbs": r.verbs,
                        });
                        if !r.short_names.is_empty() {
                            e["shortNames"] = json!(r.short_names);
                        }
                        if !r.categories.is_empty() {
                            e["categories"] = json!(r.categories);
                        }
                        if !r.subresources.is_empty() {
                            e["subresources"] = Value::Array(
                                r.subresources
                                    .iter()
                                    .map(|s| {
                                        let (sg, sv, sk) = subresource_kind(r, s);
                                        json!({
                                            "subresource": s,
                                            "responseKind": { "group": sg, "version": sv, "kind": sk },
                                            "verbs": subresource_verbs(s),
                                        })
                                    })
                                    .collect(),
                            );
                        }
                        e
                    })
                    .collect();
                json!({ "version": v, "resources": res, "freshness": "Current" })
            })
            .collect();
        let mut meta = json!({ "creationTimestamp": null });
        if !g.is_empty() {
            meta["name"] = json!(g);
        }
        items.push(json!({ "metadata": meta, "versions": versions }));
    }
    json!({ "kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items })
}

/// The aggregated-discovery version the client accepts, if any (`v2` preferred).
fn wants_aggregated(parts: &Parts) -> Option<&'static str> {
    let accept = parts.headers.get(header::ACCEPT)?.to_str().ok()?;
    for range in accept.split(',') {
        if range.contains("as=APIGroupDiscoveryList") && range.contains("g=apidiscovery.k8s.io") {
            if range.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if range.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

fn json_response(v: &Value, content_type: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type.to_string())],
        svcnet_store::encode::body(v),
    )
        .into_response()
}

/// Serve a discovery path (anything under /api or /apis that is not a resource path).
pub async fn handle(parts: &Parts, catalog: &Catalog) -> Response {
    let segs: Vec<&str> = parts
        .uri
        .path()
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["api"] | ["apis"] => {
            let core = segs[0] == "api";
            if let Some(v) = wants_aggregated(parts) {
                let api_version = format!("apidiscovery.k8s.io/{v}");
                let ct = format!(
                    "application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"
                );
                return json_response(&aggregated(catalog, core, &api_version), &ct);
            }
            if core {
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                json_response(
                    &json!({
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": host }],
                    }),
                    "application/json",
                )
            } else {
                let mut groups: Vec<Value> = Vec::new();
                let mut seen: Vec<&str> = Vec::new();
                for (g, _) in catalog.group_versions() {
                    if !g.is_empty() && !seen.contains(&g) {
                        seen.push(g);
                        groups.push(group_entry(catalog, g));
                    }
                }
                json_response(
                    &json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }),
                    "application/json",
                )
            }
        }
        ["api", "v1"] => json_response(&resource_list(catalog, "", "v1"), "application/json"),
        ["apis", group] if catalog.group_versions().iter().any(|(g, _)| g == group) => {
            let mut e = group_entry(catalog, group);
            e["kind"] = json!("APIGroup");
            e["apiVersion"] = json!("v1");
            json_response(&e, "application/json")
        }
        ["apis", group, version] if catalog.group_versions().contains(&(group, version)) => {
            json_response(&resource_list(catalog, group, version), "application/json")
        }
        _ => ApiError::path_not_found().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_list_has_short_names_and_subresources() {
        let c = Catalog::default();
        let l = resource_list(&c, "", "v1");
        let svc = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "services")
            .unwrap();
        assert_eq!(svc["shortNames"], json!(["svc"]));
        assert_eq!(svc["categories"], json!(["all"]));
        let apps = resource_list(&c, "apps", "v1");
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(
            (scale["group"].as_str(), scale["kind"].as_str()),
            (Some("autoscaling"), Some("Scale"))
        );
    }

    #[test]
    fn aggregated_lists_every_group() {
        let c = Catalog::default();
        let core = aggregated(&c, true, "apidiscovery.k8s.io/v2");
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        let named = aggregated(&c, false, "apidiscovery.k8s.io/v2");
        let names: Vec<&str> = named["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![
                "discovery.k8s.io",
                "apps",
                "batch",
                "policy",
                "coordination.k8s.io",
                "node.k8s.io",
                "events.k8s.io",
                "rbac.authorization.k8s.io",
                "certificates.k8s.io",
                "apiregistration.k8s.io",
                "apiextensions.k8s.io"
            ]
        );
    }
}
