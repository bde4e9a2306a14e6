//! CustomResourceDefinitions themselves: defaulting (`apis/apiextensions/v1/defaults.go`) and
//! validation (`apis/apiextensions/validation/validation.go`: names, group, scope, versions
//! with exactly one storage version, subresources, printer columns, and the structural-schema
//! rules of `pkg/apiserver/schema/validation.go` that matter to serving: a type everywhere it
//! is specified, `object` at the root, `metadata` at the root restricted to `name` and
//! `generateName`).

use serde_json::{json, Value};

use crate::field::{BadValue, Error, ErrorList, Path};
use crate::validation::names::{is_dns1035_label, is_dns1123_subdomain};

/// `SetDefaults_CustomResourceDefinition` and its spec's: `singular` is the lower-cased kind,
/// `listKind` is `<kind>List`, conversion is `None`.
pub fn default(crd: &mut Value) {
    let spec = &mut crd["spec"];
    if !spec.is_object() {
        return;
    }
    let kind = spec["names"]["kind"].as_str().unwrap_or("").to_string();
    let names = &mut spec["names"];
    if names
        .get("singular")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names
        .get("listKind")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && !kind.is_empty()
    {
        names["listKind"] = json!(format!("{kind}List"));
    }
    if spec.get("conversion").is_none_or(Value::is_null) {
        spec["conversion"] = json!({ "strategy": "None" });
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// `ValidateCustomResourceDefinition` (create and update share it here; on update the group,
/// scope and names of an established CRD are checked by the caller's immutability rules).
pub fn validate(crd: &Value) -> ErrorList {
    let mut errs = Vec::new();
    let spec = &crd["spec"];
    let name = s(crd, "/metadata/name");
    let group = s(spec, "/group");
    let plural = s(spec, "/names/plural");
    if name != format!("{plural}.{group}") {
        errs.push(Error::invalid(
            &Path::new("metadata").child("name"),
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let sp = Path::new("spec");
    if group.is_empty() {
        errs.push(Error::required(&sp.child("group"), ""));
    } else {
        for m in is_dns1123_subdomain(group) {
            errs.push(Error::invalid(&sp.child("group"), group, m));
        }
        if group.split('.').count() < 2 {
            errs.push(Error::invalid(
                &sp.child("group"),
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    match s(spec, "/scope") {
        "Cluster" | "Namespaced" => {}
        "" => errs.push(Error::required(&sp.child("scope"), "")),
        other => errs.push(Error::not_supported(
            &sp.child("scope"),
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    errs.extend(validate_names(&spec["names"], &sp.child("names")));
    errs.extend(validate_versions(spec, &sp));
    let strategy = s(spec, "/conversion/strategy");
    if !strategy.is_empty() && strategy != "None" && strategy != "Webhook" {
        errs.push(Error::not_supported(
            &sp.child("conversion").child("strategy"),
            strategy,
            &["None", "Webhook"],
        ));
    }
    errs
}

/// `ValidateCustomResourceDefinitionNames`.
fn validate_names(names: &Value, p: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut label = |field: &str, value: &str, required: bool| {
        if value.is_empty() {
            if required {
                errs.push(Error::required(&p.child(field), ""));
            }
            return;
        }
        for m in is_dns1035_label(value) {
            errs.push(Error::invalid(&p.child(field), value, m));
        }
    };
    label("plural", s(names, "/plural"), true);
    label("singular", s(names, "/singular"), false);
    let kind = s(names, "/kind");
    let list_kind = s(names, "/listKind");
    if kind.is_empty() {
        errs.push(Error::required(&p.child("kind"), ""));
    } else {
        for m in is_dns1035_label(&kind.to_lowercase()) {
            errs.push(Error::invalid(&p.child("kind"), kind, m));
        }
    }
    if !list_kind.is_empty() {
        for m in is_dns1035_label(&list_kind.to_lowercase()) {
            errs.push(Error::invalid(&p.child("listKind"), list_kind, m));
        }
        if list_kind == kind {
            errs.push(Error::invalid(
                &p.child("listKind"),
                list_kind,
                "kind and listKind may not be the same",
            ));
        }
    }
    for (field, each) in [("shortNames", "shortNames"), ("categories", "categories")] {
        for (i, v) in names[field].as_array().into_iter().flatten().enumerate() {
            let v = v.as_str().unwrap_or("");
            for m in is_dns1035_label(v) {
                errs.push(Error::invalid(&p.child(each).index(i), v, m));
            }
        }
    }
    errs
}

/// The versions, as Go prints `[]apiextensions.CustomResourceDefinitionVersion` in a field
/// error: shortened to the names, which is what a reader needs.
fn versions_value(spec: &Value) -> BadValue {
    let names: Vec<&str> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| s(v, "/name"))
        .collect();
    BadValue::Raw(format!("{names:?}"))
}

fn validate_versions(spec: &Value, sp: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let vp = sp.child("versions");
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(Error::required(
            &vp,
            "must have exactly one version marked as storage version",
        ));
        return errs;
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut storage = 0;
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let p = vp.index(i);
        let name = s(v, "/name");
        if seen.contains(&name) {
            unique = false;
        }
        seen.push(name);
        if v["storage"].as_bool() == Some(true) {
            storage += 1;
        }
        for m in is_dns1035_label(name) {
            errs.push(Error::invalid(&p.child("name"), name, m));
        }
        let schema = v.pointer("/schema/openAPIV3Schema");
        match schema {
            Some(sc) if sc.is_object() => {
                errs.extend(validate_structural(
                    sc,
                    &p.child("schema").child("openAPIV3Schema"),
                ));
            }
            _ => errs.push(Error::required(
                &p.child("schema").child("openAPIV3Schema"),
                "schemas are required",
            )),
        }
        if let Some(scale) = v.pointer("/subresources/scale").filter(|s| s.is_object()) {
            let sp = p.child("subresources").child("scale");
            for (field, under) in [
                ("specReplicasPath", Some(".spec.")),
                ("statusReplicasPath", Some(".status.")),
                ("labelSelectorPath", None),
            ] {
                let path = s(scale, &format!("/{field}"));
                if path.is_empty() {
                    if field != "labelSelectorPath" {
                        errs.push(Error::required(&sp.child(field), ""));
                    }
                    continue;
                }
                let ok = match under {
                    Some(prefix) => path.starts_with(prefix),
                    None => path.starts_with(".spec.") || path.starts_with(".status."),
                };
                if !ok {
                    let detail = match under {
                        Some(".spec.") => "should be a json path under .spec",
                        Some(_) => "should be a json path under .status",
                        None => "should be a json path under either .spec or .status",
                    };
                    errs.push(Error::invalid(&sp.child(field), path, detail));
                }
            }
        }
        for (j, c) in v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let cp = p.child("additionalPrinterColumns").index(j);
            if s(c, "/name").is_empty() {
                errs.push(Error::required(&cp.child("name"), ""));
            }
            match s(c, "/type") {
                "integer" | "number" | "string" | "boolean" | "date" => {}
                "" => errs.push(Error::required(&cp.child("type"), "")),
                other => errs.push(Error::not_supported(
                    &cp.child("type"),
                    other,
                    &["integer", "number", "string", "boolean", "date"],
                )),
            }
            if s(c, "/jsonPath").is_empty() {
                errs.push(Error::required(&cp.child("JSONPath"), ""));
            }
        }
    }
    if !unique {
        errs.push(Error::invalid(
            &vp,
            versions_value(spec),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(Error::invalid(
            &vp,
            versions_value(spec),
            "must have exactly one version marked as storage version",
        ));
    }
    errs
}

const TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

/// The structural-schema rules (`schema.ValidateStructural`) that serving relies on.
pub fn validate_structural(schema: &Value, p: &Path) -> ErrorList {
    let mut errs = Vec::new();
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {}
        Some(t) => errs.push(Error::invalid(
            &p.child("type"),
            t,
            "must be object at the root",
        )),
        None if schema.get("x-kubernetes-preserve-unknown-fields").is_some() => {}
        None => errs.push(Error::required(
            &p.child("type"),
            "must not be empty at the root",
        )),
    }
    if let Some(meta) = schema.pointer("/properties/metadata") {
        let mp = p.child("properties").key("metadata");
        if meta
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "object")
        {
            errs.push(Error::invalid(
                &mp.child("type"),
                s(meta, "/type"),
                "must be object",
            ));
        }
        for k in meta["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if k != "name" && k != "generateName" {
                errs.push(Error::forbidden(
                    &mp.child("properties").key(k),
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                ));
            }
        }
    }
    walk_structural(schema, p, true, &mut errs);
    errs
}

fn walk_structural(schema: &Value, p: &Path, root: bool, errs: &mut ErrorList) {
    let ty = schema.get("type").and_then(Value::as_str);
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    match ty {
        None if !root && !int_or_string && !preserve => errs.push(Error::required(
            &p.child("type"),
            "must not be empty for specified object fields",
        )),
        Some(t) if !TYPES.contains(&t) => {
            errs.push(Error::not_supported(&p.child("type"), t, TYPES))
        }
        _ => {}
    }
    if let Some(pat) = schema.get("pattern").and_then(Value::as_str) {
        if let Err(e) = regex::Regex::new(pat) {
            errs.push(Error::invalid(
                &p.child("pattern"),
                pat,
                format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        if ty.is_some_and(|t| t != "object") {
            errs.push(Error::forbidden(
                &p.child("properties"),
                "must be empty for types other than object",
            ));
        }
        for (k, sub) in props {
            if root && k == "metadata" {
                continue;
            }
            walk_structural(sub, &p.child("properties").key(k), false, errs);
        }
    }
    if let Some(sub) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        if schema.get("properties").is_some() {
            errs.push(Error::forbidden(
                &p.child("additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        walk_structural(sub, &p.child("additionalProperties"), false, errs);
    }
    match (ty, schema.get("items")) {
        (Some("array"), Some(items)) if items.is_object() => {
            walk_structural(items, &p.child("items"), false, errs)
        }
        (Some("array"), _) => errs.push(Error::required(&p.child("items"), "must be specified")),
        _ => {}
    }
}

/// `status.acceptedNames` once the names are accepted: the spec's names as defaulted.
pub fn accepted_names(crd: &Value) -> Value {
    let mut names = crd["spec"]["names"].clone();
    if let Value::Object(m) = &mut names {
        m.retain(|_, v| !v.is_null());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::messages;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com",
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}}}]
            }
        })
    }

    #[test]
    fn a_valid_crd_defaulted() {
        let mut c = crd();
        default(&mut c);
        assert_eq!(c["spec"]["names"]["singular"], "crontab");
        assert_eq!(c["spec"]["names"]["listKind"], "CronTabList");
        assert!(validate(&c).is_empty(), "{:?}", messages(&validate(&c)));
    }

    #[test]
    fn name_group_scope_and_storage_versions() {
        let mut c = crd();
        c["metadata"]["name"] = json!("crontab.stable.example.com");
        c["spec"]["scope"] = json!("Global");
        c["spec"]["versions"][0]["storage"] = json!(false);
        let m = messages(&validate(&c));
        assert_eq!(
            m,
            [
                r#"metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group"#,
                r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
                r#"spec.versions: Invalid value: ["v1"]: must have exactly one version marked as storage version"#,
            ]
        );
    }

    #[test]
    fn structural_schema_rules() {
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["x"] = json!({"description": "no type"});
        let m = messages(&validate(&c));
        assert_eq!(
            m,
            ["spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].type: Required value: must not be empty for specified object fields"]
        );
        c["spec"]["versions"][0]["schema"] = Value::Null;
        let m = messages(&validate(&c));
        assert_eq!(
            m,
            ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
        );
    }
}
