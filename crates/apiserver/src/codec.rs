//! Request decoding and response encoding: media types (JSON, YAML, `as=Table`,
//! `as=PartialObjectMetadata`), bodies, and the query parameters of the Kubernetes REST API.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// What representation the client asked for in `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    Json,
    Yaml,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io`
    Table,
    /// `application/json;as=PartialObjectMetadata(List);v=v1;g=meta.k8s.io`
    PartialObjectMetadata,
}

struct MediaRange<'a> {
    essence: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

fn parse_media_ranges(accept: &str) -> Vec<MediaRange<'_>> {
    accept
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';').map(str::trim);
            let essence = pieces.next()?;
            if essence.is_empty() {
                return None;
            }
            let params = pieces
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            Some(MediaRange { essence, params })
        })
        .collect()
}

/// Choose the representation for a response from the `Accept` header, in the client's order.
/// `list` says whether the response is a list (for `as=...List` variants).
pub fn negotiate(headers: &HeaderMap) -> ApiResult<Representation> {
    let accept = match headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        Some(a) if !a.trim().is_empty() => a,
        _ => return Ok(Representation::Json),
    };
    for mr in parse_media_ranges(accept) {
        let param = |k: &str| mr.params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        match mr.essence {
            "application/json" | "application/*" | "*/*" | "application/json-seq" => {
                match (param("as"), param("g"), param("v")) {
                    (None, _, _) => return Ok(Representation::Json),
                    (Some("Table"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) => {
                        return Ok(Representation::Table)
                    }
                    (
                        Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                        Some("meta.k8s.io"),
                        Some("v1"),
                    ) => return Ok(Representation::PartialObjectMetadata),
                    // Unknown `as=` targets (e.g. aggregated discovery elsewhere): try the next range.
                    _ => continue,
                }
            }
            "application/yaml" => return Ok(Representation::Yaml),
            // We do not speak protobuf or CBOR; a client listing JSON after them gets JSON.
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(&[
        "application/json",
        "application/yaml",
    ]))
}

/// Encode `value` with status `code` in the negotiated plain representation (JSON or YAML).
/// YAML keys stay sorted, as sigs.k8s.io/yaml writes them.
pub fn respond(code: StatusCode, value: &Value, rep: Representation) -> Response {
    let (ct, body) = match rep {
        Representation::Yaml => (
            "application/yaml",
            Bytes::from(serde_yaml::to_string(value).unwrap_or_default()),
        ),
        // Kubernetes' key order and final newline (`svcnet_store::encode`).
        _ => (
            "application/json",
            Bytes::from(svcnet_store::encode::body(value)),
        ),
    };
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from(body))
        .expect("static response parts are valid")
}

/// Respond with JSON bytes built elsewhere (e.g. a list assembled from cached encodings),
/// adding the final newline Go's `json.Encoder` writes.
pub fn respond_json_bytes(code: StatusCode, mut body: Vec<u8>) -> Response {
    body.push(b'\n');
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("static response parts are valid")
}

const BODY_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// The body formats accepted for create/update: JSON, YAML, and Kubernetes protobuf (what
/// client-go's typed clients send).
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let essence = ct.split(';').next().unwrap_or("").trim();
    match essence {
        "application/json" | "" | "*/*" => decode_json(body),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body),
        svcnet_protobuf::MEDIA_TYPE => match svcnet_protobuf::decode(body) {
            Ok(d) => Ok(d.object),
            Err(svcnet_protobuf::DecodeError::UnsupportedKind { .. }) => {
                Err(ApiError::unsupported_media_type(BODY_TYPES))
            }
            Err(e) => Err(ApiError::bad_request(format!(
                "error decoding protobuf body: {e}"
            ))),
        },
        _ => Err(ApiError::unsupported_media_type(BODY_TYPES)),
    }
}

pub fn decode_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

pub fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    Ok(v)
}

/// The query parameters of the Kubernetes REST API that this server honours.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<i64>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub watch: bool,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout_seconds: Option<u64>,
    pub dry_run: bool,
    pub field_validation: Option<String>,
    pub field_manager: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub include_object: Option<String>,
    pub force: bool,
}

fn parse_bool(v: &str) -> bool {
    matches!(v, "true" | "1" | "True" | "TRUE")
}

impl Query {
    pub fn parse(raw: Option<&str>) -> ApiResult<Query> {
        let mut q = Query::default();
        let Some(raw) = raw else { return Ok(q) };
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "labelSelector" => q.label_selector = Some(v),
                "fieldSelector" => q.field_selector = Some(v),
                "limit" => {
                    q.limit = Some(
                        v.parse()
                            .map_err(|_| ApiError::bad_request(format!("invalid limit: {v:?}")))?,
                    )
                }
                "continue" => q.continue_token = Some(v).filter(|s| !s.is_empty()),
                "resourceVersion" => q.resource_version = Some(v),
                "resourceVersionMatch" => {
                    q.resource_version_match = Some(v).filter(|s| !s.is_empty())
                }
                "watch" => q.watch = parse_bool(&v),
                "allowWatchBookmarks" => q.allow_watch_bookmarks = parse_bool(&v),
                "sendInitialEvents" => q.send_initial_events = Some(parse_bool(&v)),
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(v.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid timeoutSeconds: {v:?}"))
                    })?)
                }
                "dryRun" => {
                    if v == "All" {
                        q.dry_run = true
                    } else if !v.is_empty() {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dryRun value: {v:?}: supported values: \"All\""
                        )));
                    }
                }
                "fieldValidation" => q.field_validation = Some(v),
                "fieldManager" => q.field_manager = Some(v),
                "gracePeriodSeconds" => {
                    q.grace_period_seconds = Some(v.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid gracePeriodSeconds: {v:?}"))
                    })?)
                }
                "propagationPolicy" => q.propagation_policy = Some(v),
                "orphanDependents" => q.orphan_dependents = Some(parse_bool(&v)),
                "includeObject" => q.include_object = Some(v),
                "force" => q.force = parse_bool(&v),
                _ => {}
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(s: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, s.parse().unwrap());
        h
    }

    #[test]
    fn negotiates_what_kubectl_sends() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(&accept(kubectl_get)).unwrap(),
            Representation::Table
        );
        assert_eq!(
            negotiate(&accept("application/json, */*")).unwrap(),
            Representation::Json
        );
        assert_eq!(
            negotiate(&accept(
                "application/vnd.kubernetes.protobuf, application/json"
            ))
            .unwrap(),
            Representation::Json
        );
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), Representation::Json);
        assert_eq!(
            negotiate(&accept("application/yaml")).unwrap(),
            Representation::Yaml
        );
        assert_eq!(
            negotiate(&accept(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
            ))
            .unwrap(),
            Representation::PartialObjectMetadata
        );
        assert_eq!(
            negotiate(&accept("application/vnd.kubernetes.protobuf"))
                .unwrap_err()
                .code,
            406
        );
    }

    #[test]
    fn parses_query() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb&limit=500&watch=true&dryRun=All&resourceVersion=0",
        ))
        .unwrap();
        assert_eq!(q.label_selector.as_deref(), Some("app=web"));
        assert_eq!(q.limit, Some(500));
        assert!(q.watch && q.dry_run);
        assert_eq!(q.resource_version.as_deref(), Some("0"));
        assert_eq!(Query::parse(Some("dryRun=Some")).unwrap_err().code, 400);
    }
}
