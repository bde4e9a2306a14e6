//! A minimal OpenAPI v3 document per group/version: the operations with their
//! `x-kubernetes-group-version-kind` and the `fieldValidation` parameter.
//!
//! kubectl's default validation (`--validate=strict`) first asks the server's OpenAPI v3 whether
//! the PATCH operation of a kind accepts `fieldValidation`; if it does, kubectl leaves validation
//! to the server (which here rejects unknown fields with `fieldValidation=Strict`) instead of
//! downloading the full schema. Schemas are not served: kubectl falls back to its compiled-in
//! types for strategic merge (`kubectl apply`), as it does against servers without OpenAPI.

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::resources::{self, ResourceInfo};

const VERSION_HASH: &str = "svcnet-1";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`
pub fn index() -> Response {
    let mut paths = Map::new();
    for (g, v) in resources::group_versions() {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{p}?hash={VERSION_HASH}") }),
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "paths": paths }).to_string(),
    )
        .into_response()
}

fn params(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| json!({ "name": n, "in": "query", "schema": { "type": "string", "uniqueItems": true } }))
            .collect(),
    )
}

fn operations(r: &ResourceInfo) -> Map<String, Value> {
    let gvk = json!({ "group": r.group, "version": r.version, "kind": r.kind });
    let base = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let scope = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{base}/{}", r.plural)
    };
    let write = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
    let op = |id: &str, p: &[&str]| {
        json!({
            "operationId": id,
            "x-kubernetes-action": id,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params(p),
            "responses": { "200": { "description": "OK" } },
        })
    };
    let mut paths = Map::new();
    paths.insert(
        scope.clone(),
        json!({
            "get": op("list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"]),
            "post": op("post", &write),
            "delete": op("deletecollection", &["labelSelector", "fieldSelector", "dryRun"]),
        }),
    );
    let item = format!("{scope}/{{name}}");
    paths.insert(
        item.clone(),
        json!({
            "get": op("get", &["pretty"]),
            "put": op("put", &write),
            "patch": op("patch", &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]),
            "delete": op("delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
        }),
    );
    for sub in r.subresources {
        if matches!(*sub, "status" | "scale") {
            paths.insert(
                format!("{item}/{sub}"),
                json!({
                    "get": op("get", &["pretty"]),
                    "put": op("put", &write),
                    "patch": op("patch", &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]),
                }),
            );
        }
    }
    paths
}

/// `GET /openapi/v3/{api/v1 | apis/G/V}`
pub fn group_version(path: &str) -> Response {
    let path = path.trim_matches('/');
    let Some((g, v)) = resources::group_versions()
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == path)
    else {
        return ApiError::path_not_found().into_response();
    };
    let mut paths = Map::new();
    for r in resources::ALL
        .iter()
        .filter(|r| r.group == g && r.version == v)
    {
        paths.extend(operations(r));
    }
    let doc = json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": crate::version::GIT_VERSION },
        "paths": paths,
        "components": { "schemas": {} },
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_carry_field_validation() {
        let ops = operations(&resources::SERVICES);
        let patch = &ops["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Service");
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
    }
}
