//! `metav1.Table` responses for `kubectl get` (columns and cells from `svcnet-printers`) and
//! `PartialObjectMetadata` for metadata-only clients.

use serde_json::{json, Value};

use crate::resources::ResourceInfo;

pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

pub fn partial_object_metadata_list<'a>(
    objs: impl Iterator<Item = &'a Value>,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let items: Vec<Value> = objs.map(partial_object_metadata).collect();
    let mut meta = json!({ "resourceVersion": resource_version });
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    json!({ "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items })
}

/// A Table of `objs`. `include_object` is the `includeObject` query parameter
/// (`None`, `Metadata` (default), `Object`); `with_headers` = include column definitions.
pub fn table<'a>(
    info: &ResourceInfo,
    objs: impl Iterator<Item = &'a Value>,
    resource_version: Option<&str>,
    continue_token: Option<&str>,
    with_headers: bool,
    include_object: &str,
) -> Value {
    let now = jiff::Timestamp::now();
    // A CRD's kinds print their `additionalPrinterColumns` (crate::crd::columns).
    let custom = info.strategy.custom().map(|c| c.current());
    let columns: Vec<Value> = if let Some(c) = custom.as_ref().filter(|_| with_headers) {
        crate::crd::columns::definitions(&c.columns)
    } else if with_headers && custom.is_none() {
        svcnet_printers::columns(info.group, info.plural)
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objs
        .map(|obj| {
            let cells = match &custom {
                Some(c) => crate::crd::columns::cells(&c.columns, obj, now),
                None => svcnet_printers::cells(info.group, info.plural, obj, now),
            };
            let mut row = json!({ "cells": cells });
            let conditions = svcnet_printers::row_conditions(info.group, info.plural, obj);
            if !conditions.is_empty() {
                row["conditions"] = Value::Array(conditions);
            }
            match include_object {
                "None" => {}
                "Object" => row["object"] = obj.clone(),
                _ => row["object"] = partial_object_metadata(obj),
            }
            row
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = resource_version {
        meta["resourceVersion"] = json!(rv);
    }
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}
