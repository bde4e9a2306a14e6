//! A CRD version's kinds in the OpenAPI documents, as apiextensions-apiserver's
//! `controller/openapi/builder` writes them: the definition is named by the reversed group
//! (`com.example.stable.v1.CronTab`), holds the version's `openAPIV3Schema` with `apiVersion`,
//! `kind` and `metadata` (a `$ref` to ObjectMeta) filled in, and carries
//! `x-kubernetes-group-version-kind`; the list kind holds `items` of it. In v2, `nullable` is
//! dropped (v2 has none), as upstream's v2 conversion does.

use serde_json::{json, Value};

use super::Flavor;
use crate::resources::ResourceInfo;

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const API_VERSION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const LIST_METADATA: &str = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// The definition names of a custom resource's kind and list kind (`None`: a built-in).
pub fn names(r: &ResourceInfo) -> Option<(String, String)> {
    r.strategy.custom()?;
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    let base = format!("{}.{}", reversed.join("."), r.version);
    Some((
        format!("{base}.{}", r.kind),
        format!("{base}.{}", r.list_kind),
    ))
}

fn drop_nullable(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("nullable");
            for (k, x) in m.iter_mut() {
                if !k.starts_with("x-") && k != "default" && k != "enum" && k != "example" {
                    drop_nullable(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nullable),
        _ => {}
    }
}

/// The definitions of a custom resource (none for a built-in), in the flavor's form.
pub fn definitions(r: &ResourceInfo, flavor: Flavor) -> Vec<(String, Value)> {
    let (Some((kind_name, list_name)), Some(custom)) = (names(r), r.strategy.custom()) else {
        return Vec::new();
    };
    let v = custom.current();
    let mut schema = match &v.schema {
        Value::Object(_) => v.schema.clone(),
        _ => json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true }),
    };
    let reference = |name: &str| format!("#/definitions/{name}");
    if !schema["properties"].is_object() {
        schema["properties"] = json!({});
    }
    let props = &mut schema["properties"];
    props["apiVersion"] = json!({ "type": "string", "description": API_VERSION });
    props["kind"] = json!({ "type": "string", "description": KIND });
    props["metadata"] =
        json!({ "$ref": reference(&format!("{META}.ObjectMeta")), "description": METADATA });
    schema["x-kubernetes-group-version-kind"] =
        json!([{ "group": r.group, "kind": r.kind, "version": r.version }]);
    let list = json!({
        "description": format!("{} is a list of {}", r.list_kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": { "type": "string", "description": API_VERSION },
            "items": {
                "type": "array",
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/api-conventions.md", r.plural),
                "items": { "$ref": reference(&kind_name) },
            },
            "kind": { "type": "string", "description": KIND },
            "metadata": { "$ref": reference(&format!("{META}.ListMeta")), "description": LIST_METADATA },
        },
        "x-kubernetes-group-version-kind": [{ "group": r.group, "kind": r.list_kind, "version": r.version }],
    });
    match flavor {
        Flavor::V2 => {
            drop_nullable(&mut schema);
            vec![(kind_name, schema), (list_name, list)]
        }
        Flavor::V3 => vec![
            (kind_name, svcnet_openapi::to_v3(&schema)),
            (list_name, svcnet_openapi::to_v3(&list)),
        ],
    }
}
