//! `/openapi/v2` and `/openapi/v3/<group-version>` with Kubernetes' own schemas of every served
//! kind (from svcnet-openapi), as kube-openapi's `handler` (v2) and `handler3` (v3) serve them.
//!
//! The documents follow what the server serves ([`Catalog`]): each built-in kind's definition is
//! found by its group/version/kind in Kubernetes' published spec, so a kind added to the table
//! is described without a change here; a CRD's kinds are described by their
//! `openAPIV3Schema` under upstream's names (`com.example.stable.v1.CronTab`, as
//! apiextensions-apiserver's `openapi/builder`). They are built on the first request after the
//! served set changes ([`Cache`]) and served from memory with kube-openapi's caching: an `ETag` that is the SHA-512 of the body in upper-case
//! hex, `If-None-Match` answered 304, the v3 index's `serverRelativeURL` carrying that hash
//! (`?hash=`), and a request naming the current hash is `Cache-Control: public, immutable` for a
//! year while a stale hash is redirected (301) to the current one.
//!
//! kubectl's `--validate=strict` asks the PATCH operation of a kind whether it accepts
//! `fieldValidation`; it does, so kubectl leaves validation to the server. `kubectl explain`
//! reads the v3 document of the kind's group-version; `kubectl apply` computes its strategic
//! merge patch from the v3 schema's `x-kubernetes-patch-*` extensions.
//!
//! `/openapi/v2` is also served as gnostic protobuf
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, the only type client-go's
//! `OpenAPISchema` accepts), under the JSON's ETag as kube-openapi does. Deviation: v3 has no
//! protobuf (no client asks for it); a request accepting only that is answered 406, as
//! kube-openapi answers an Accept it cannot serve.

mod custom;
mod paths;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::resources::ResourceInfo;
pub use paths::Flavor;

/// A document as it is served: the body and its hash.
pub struct Served {
    pub body: bytes::Bytes,
    /// SHA-512 of `body` in upper-case hex (kube-openapi's `computeETag`).
    pub hash: String,
}

impl Served {
    fn new(doc: &Value) -> Self {
        let body = serde_json::to_vec(doc).expect("serializable");
        let hash = Sha512::digest(&body)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        Served {
            body: body.into(),
            hash,
        }
    }
}

/// The documents of one served set.
pub struct Documents {
    v2: Served,
    /// `v2` as gnostic protobuf, served under `v2`'s hash.
    v2_protobuf: bytes::Bytes,
    v3_index: Served,
    /// By group-version path (`api/v1`, `apis/apps/v1`).
    v3: BTreeMap<String, Served>,
    /// When the documents were built: their `Last-Modified`.
    built: String,
}

/// The documents of a server, rebuilt when its catalog's generation moves (a CRD changed).
#[derive(Default)]
pub struct Cache(Mutex<Option<(u64, Arc<Documents>)>>);

impl Cache {
    pub fn documents(&self, catalog: &Catalog) -> Arc<Documents> {
        let generation = catalog.generation();
        let mut cached = self.0.lock().expect("openapi cache");
        match &*cached {
            Some((g, d)) if *g == generation => d.clone(),
            _ => {
                let d = Arc::new(build(catalog));
                *cached = Some((generation, d.clone()));
                d
            }
        }
    }
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn info() -> Value {
    json!({ "title": "Kubernetes", "version": crate::version::GIT_VERSION })
}

/// The definitions `roots` reach, each in the flavor's form.
fn schemas(roots: &BTreeSet<String>, flavor: Flavor) -> Map<String, Value> {
    svcnet_openapi::closure(roots.iter().map(String::as_str))
        .into_iter()
        .filter_map(|name| {
            let schema = match flavor {
                Flavor::V2 => svcnet_openapi::definition(name)?.clone(),
                Flavor::V3 => svcnet_openapi::definition_v3(name)?,
            };
            Some((name.to_string(), schema))
        })
        .collect()
}

/// The OpenAPI v3 document of one group-version.
pub fn v3_document(catalog: &Catalog, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut roots = BTreeSet::new();
    let served = served(catalog, group, version);
    for r in &served {
        paths.extend(paths::operations(r, Flavor::V3, &mut roots));
    }
    let mut schemas = schemas(&roots, Flavor::V3);
    for r in &served {
        schemas.extend(custom::definitions(r, Flavor::V3));
    }
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// The OpenAPI v2 document of every served kind.
pub fn v2_document(catalog: &Catalog) -> Value {
    let mut paths = Map::new();
    let mut roots = BTreeSet::new();
    let all = catalog.all();
    for r in &all {
        paths.extend(paths::operations(r, Flavor::V2, &mut roots));
    }
    let mut definitions = schemas(&roots, Flavor::V2);
    for r in &all {
        definitions.extend(custom::definitions(r, Flavor::V2));
    }
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths,
        "definitions": definitions,
    })
}

fn served(catalog: &Catalog, group: &str, version: &str) -> Vec<&'static ResourceInfo> {
    catalog
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

fn build(catalog: &Catalog) -> Documents {
    let mut v3 = BTreeMap::new();
    let mut index = Map::new();
    for (g, v) in catalog.group_versions() {
        let path = gv_path(g, v);
        let doc = Served::new(&v3_document(catalog, g, v));
        index.insert(
            path.clone(),
            json!({ "serverRelativeURL": relative_url(&path, &doc.hash) }),
        );
        v3.insert(path, doc);
    }
    let built = jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let v2 = v2_document(catalog);
    Documents {
        v2_protobuf: svcnet_openapi::proto_v2::encode(&v2).into(),
        v2: Served::new(&v2),
        v3_index: Served::new(&json!({ "paths": index })),
        v3,
        built,
    }
}

/// kube-openapi's `constructServerRelativeURL`.
fn relative_url(gv_path: &str, hash: &str) -> String {
    format!("/openapi/v3/{gv_path}?hash={hash}")
}

/// The first of `offered` (application/<subtype>) that an Accept clause admits, clauses in
/// the client's order, as kube-openapi's goautoneg loop decides; no header is `*/*`.
fn negotiate(headers: &HeaderMap, offered: &[&'static str]) -> Option<&'static str> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    accept.split(',').find_map(|clause| {
        let media = clause.split(';').next().unwrap_or("").trim();
        let (ty, sub) = media.split_once('/').unwrap_or((media, ""));
        if ty != "application" && ty != "*" {
            return None;
        }
        offered.iter().copied().find(|o| sub == *o || sub == "*")
    })
}

fn accepts_json(headers: &HeaderMap) -> bool {
    negotiate(headers, &["json"]).is_some()
}

const V2_PROTOBUF: &str = "com.github.proto-openapi.spec.v2@v1.0+protobuf";
const V2_PROTOBUF_NEW: &str = "com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `http.ServeContent` with an ETag: the body, or 304 when `If-None-Match` names it.
fn serve(
    doc: &Served,
    built: &str,
    headers: &HeaderMap,
    mut extra: Vec<(header::HeaderName, String)>,
) -> Response {
    let etag = format!("\"{}\"", doc.hash);
    extra.push((header::ETAG, etag.clone()));
    extra.push((header::LAST_MODIFIED, built.to_string()));
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = doc.body.clone().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().append(name, v);
        }
    }
    resp
}

fn not_acceptable() -> Response {
    (StatusCode::NOT_ACCEPTABLE, [(header::VARY, "Accept")]).into_response()
}

/// `GET /openapi/v2`: JSON, or gnostic protobuf (content type
/// `application/com.github.proto-openapi.spec.v2.v1.0+protobuf`, as kube-openapi answers).
pub fn v2(docs: &Documents, headers: &HeaderMap) -> Response {
    let vary = vec![(header::VARY, "Accept".to_string())];
    match negotiate(headers, &["json", V2_PROTOBUF, V2_PROTOBUF_NEW]) {
        Some("json") => serve(&docs.v2, &docs.built, headers, vary),
        Some(_) => {
            let doc = Served {
                body: docs.v2_protobuf.clone(),
                hash: docs.v2.hash.clone(),
            };
            let mut resp = serve(&doc, &docs.built, headers, vary);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                ),
            );
            resp
        }
        None => not_acceptable(),
    }
}

/// `GET /openapi/v3`
pub fn index(docs: &Documents, headers: &HeaderMap) -> Response {
    serve(&docs.v3_index, &docs.built, headers, Vec::new())
}

/// `GET /openapi/v3/{api/v1 | apis/G/V}[?hash=H]`
pub fn group_version(
    docs: &Documents,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let path = path.trim_matches('/');
    let Some(doc) = docs.v3.get(path) else {
        return ApiError::path_not_found().into_response();
    };
    if !accepts_json(headers) {
        return not_acceptable();
    }
    let hash = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "hash")
        .map(|(_, v)| v.into_owned())
        .filter(|h| !h.is_empty());
    let mut extra = vec![(header::VARY, "Accept".to_string())];
    if let Some(hash) = hash {
        if hash != doc.hash {
            let to = relative_url(path, &doc.hash);
            return (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, to)]).into_response();
        }
        let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(365 * 24);
        extra.push((header::CACHE_CONTROL, "public, immutable".into()));
        extra.push((
            header::EXPIRES,
            expires.strftime("%a, %d %b %Y %H:%M:%S UTC").to_string(),
        ));
    }
    serve(doc, &docs.built, headers, extra)
}

/// The sizes of the served documents in bytes: v2, the v3 index, and each v3 group-version.
pub fn sizes(d: &Documents) -> Vec<(String, usize)> {
    let mut out = vec![
        ("v2".to_string(), d.v2.body.len()),
        ("v2 (protobuf)".to_string(), d.v2_protobuf.len()),
        ("v3".to_string(), d.v3_index.body.len()),
    ];
    out.extend(d.v3.iter().map(|(k, v)| (format!("v3/{k}"), v.body.len())));
    out
}

#[cfg(test)]
mod tests;
