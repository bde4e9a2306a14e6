//! The operations of one resource, as kube-openapi's builder lists them for a go-restful route:
//! `x-kubernetes-action`, `x-kubernetes-group-version-kind`, the query parameters, and the
//! request and response bodies as `$ref`s to Kubernetes' definitions.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// OpenAPI v2 (`/openapi/v2`) or v3 (`/openapi/v3/<gv>`): parameters and bodies are written
/// differently, the operations are the same.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    V2,
    V3,
}

impl Flavor {
    pub(super) fn reference(self, name: &str) -> Value {
        match self {
            Flavor::V2 => json!({ "$ref": format!("#/definitions/{name}") }),
            Flavor::V3 => json!({ "$ref": format!("#/components/schemas/{name}") }),
        }
    }

    fn params(self, names: &[&str]) -> Value {
        Value::Array(
            names
                .iter()
                .map(|n| match self {
                    Flavor::V2 => json!({ "name": n, "in": "query", "type": "string", "uniqueItems": true }),
                    Flavor::V3 => json!({ "name": n, "in": "query", "schema": { "type": "string", "uniqueItems": true } }),
                })
                .collect(),
        )
    }

    fn ok(self, schema: Value) -> Value {
        match self {
            Flavor::V2 => json!({ "200": { "description": "OK", "schema": schema } }),
            Flavor::V3 => json!({
                "200": {
                    "description": "OK",
                    "content": { "application/json": { "schema": schema } },
                },
            }),
        }
    }

    fn body(self, op: &mut Map<String, Value>, schema: Value) {
        match self {
            Flavor::V2 => {
                let params = op["parameters"].as_array_mut().expect("parameters");
                params.insert(
                    0,
                    json!({ "name": "body", "in": "body", "required": true, "schema": schema }),
                );
            }
            Flavor::V3 => {
                op.insert(
                    "requestBody".into(),
                    json!({ "content": { "*/*": { "schema": schema } }, "required": true }),
                );
            }
        }
    }
}

/// The paths of `r`, and the definitions they name (to be closed over by the caller).
pub fn operations(
    r: &ResourceInfo,
    flavor: Flavor,
    roots: &mut BTreeSet<String>,
) -> Map<String, Value> {
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
    let custom = super::custom::names(r);
    let kind = svcnet_openapi::definition_name(r.group, r.version, r.kind)
        .or(custom.as_ref().map(|(k, _)| k.as_str()));
    let list = svcnet_openapi::definition_name(r.group, r.version, r.list_kind)
        .or(custom.as_ref().map(|(_, l)| l.as_str()));
    if custom.is_some() {
        // What a custom kind's definitions name (added by the caller).
        roots.insert(format!("{META}.ObjectMeta"));
        roots.insert(format!("{META}.ListMeta"));
    } else {
        roots.extend(kind.iter().chain(list.iter()).map(|s| s.to_string()));
    }
    for common in ["Status", "DeleteOptions", "Patch", "WatchEvent"] {
        roots.insert(format!("{META}.{common}"));
    }
    let schema = |name: Option<&str>| match name {
        Some(n) => flavor.reference(n),
        None => json!({ "type": "object" }),
    };
    let status = schema(Some(&format!("{META}.Status")));
    let write = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
    let patch = [
        "dryRun",
        "fieldManager",
        "fieldValidation",
        "force",
        "pretty",
    ];
    let op_of = |gvk: &Value, action: &str, p: &[&str], response: &Value, body: Option<Value>| {
        let mut op = Map::new();
        op.insert("operationId".into(), json!(action));
        op.insert("x-kubernetes-action".into(), json!(action));
        op.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
        op.insert("parameters".into(), flavor.params(p));
        op.insert("responses".into(), flavor.ok(response.clone()));
        if let Some(body) = body {
            flavor.body(&mut op, body);
        }
        Value::Object(op)
    };
    let op = |action: &str, p: &[&str], response: &Value, body: Option<Value>| {
        op_of(&gvk, action, p, response, body)
    };
    let object = schema(kind);
    let patch_body = || Some(schema(Some(&format!("{META}.Patch"))));
    let mut paths = Map::new();
    paths.insert(
        scope.clone(),
        json!({
            "get": op("list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"], &schema(list), None),
            "post": op("post", &write, &object, Some(object.clone())),
            "delete": op("deletecollection", &["labelSelector", "fieldSelector", "dryRun"], &status, None),
        }),
    );
    let item = format!("{scope}/{{name}}");
    paths.insert(
        item.clone(),
        json!({
            "get": op("get", &["pretty"], &object, None),
            "put": op("put", &write, &object, Some(object.clone())),
            "patch": op("patch", &patch, &object, patch_body()),
            "delete": op("delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"], &status, None),
        }),
    );
    for sub in r.subresources {
        // The scale subresource is autoscaling/v1 Scale, as Kubernetes lists it.
        let (target, gvk) = match *sub {
            "status" | "ephemeralcontainers" => (object.clone(), gvk.clone()),
            "scale" => {
                roots.insert(SCALE.to_string());
                let gvk = json!({ "group": "autoscaling", "version": "v1", "kind": "Scale" });
                (schema(Some(SCALE)), gvk)
            }
            _ => continue,
        };
        paths.insert(
            format!("{item}/{sub}"),
            json!({
                "get": op_of(&gvk, "get", &["pretty"], &target, None),
                "put": op_of(&gvk, "put", &write, &target, Some(target.clone())),
                "patch": op_of(&gvk, "patch", &patch, &target, patch_body()),
            }),
        );
    }
    paths
}
