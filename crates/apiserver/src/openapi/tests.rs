use super::*;
use crate::resources;

fn docs() -> Documents {
    build(&Catalog::default())
}

fn gv_of(r: &ResourceInfo) -> Value {
    v3_document(&Catalog::default(), r.group, r.version)
}

#[test]
fn every_served_kind_has_its_kubernetes_definition_in_v2_and_v3() {
    let v2 = v2_document(&Catalog::default());
    for r in resources::ALL {
        let name = svcnet_openapi::definition_name(r.group, r.version, r.kind)
            .unwrap_or_else(|| panic!("{} has no definition in Kubernetes' spec", r.kind));
        let v3 = gv_of(r);
        let schema = &v3["components"]["schemas"][name];
        let gvk = &schema["x-kubernetes-group-version-kind"];
        assert!(
            gvk.as_array()
                .unwrap()
                .iter()
                .any(|g| g["kind"] == r.kind && g["group"] == r.group && g["version"] == r.version),
            "{name}: {gvk}"
        );
        assert!(v2["definitions"][name].is_object(), "{name} missing in v2");
        let list = svcnet_openapi::definition_name(r.group, r.version, r.list_kind).unwrap();
        assert!(v3["components"]["schemas"][list].is_object(), "{list}");
    }
}

/// Every `$ref` of every document names a schema of the same document.
#[test]
fn refs_resolve_within_each_document() {
    fn walk<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| match (k.as_str(), v) {
                ("$ref", Value::String(r)) => out.push(r),
                _ => walk(v, out),
            }),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut docs: Vec<(Value, &str, &str)> = resources::group_versions()
        .into_iter()
        .map(|(g, v)| {
            (
                v3_document(&Catalog::default(), g, v),
                "#/components/schemas/",
                "components",
            )
        })
        .collect();
    docs.push((
        v2_document(&Catalog::default()),
        "#/definitions/",
        "definitions",
    ));
    for (doc, prefix, section) in &docs {
        let mut refs = Vec::new();
        walk(doc, &mut refs);
        assert!(refs.len() > 10);
        for r in refs {
            let name = r.strip_prefix(prefix).unwrap_or_else(|| panic!("{r}"));
            let defs = match *section {
                "components" => &doc["components"]["schemas"],
                _ => &doc["definitions"],
            };
            assert!(defs[name].is_object(), "{r} does not resolve");
        }
    }
}

#[test]
fn service_ports_carry_the_list_extensions_in_v3() {
    let doc = v3_document(&Catalog::default(), "", "v1");
    let ports =
        &doc["components"]["schemas"]["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-list-type"], "map");
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        json!(["port", "protocol"])
    );
    assert_eq!(ports["x-kubernetes-patch-merge-key"], "port");
    assert_eq!(ports["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(
        ports["items"]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.ServicePort"
    );
    let selector =
        &doc["components"]["schemas"]["io.k8s.api.core.v1.ServiceSpec"]["properties"]["selector"];
    assert_eq!(selector["x-kubernetes-map-type"], "atomic");
}

#[test]
fn patch_operations_carry_field_validation() {
    let ops = paths::operations(&resources::SERVICES, Flavor::V3, &mut BTreeSet::new());
    let patch = &ops["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Service");
    assert!(patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "fieldValidation"));
}

#[test]
fn a_group_version_holds_only_what_its_kinds_reach() {
    let apps = v3_document(&Catalog::default(), "apps", "v1");
    let schemas = apps["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("io.k8s.api.apps.v1.Deployment"));
    assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
    assert!(schemas.contains_key("io.k8s.api.core.v1.PodSpec"));
    assert!(!schemas.contains_key("io.k8s.api.core.v1.Service"));
}

#[test]
fn index_names_each_group_version_with_its_hash() {
    let d = docs();
    let index: Value = serde_json::from_slice(&d.v3_index.body).unwrap();
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    let hash = &d.v3["apis/apps/v1"].hash;
    assert_eq!(url, format!("/openapi/v3/apis/apps/v1?hash={hash}"));
    assert_eq!(hash.len(), 128);
    assert!(hash
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
}

#[test]
fn caching_follows_kube_openapi() {
    let d = docs();
    let doc = &d.v3["api/v1"];
    let none = HeaderMap::new();
    let plain = group_version(&d, "api/v1", None, &none);
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(plain.headers()[header::ETAG], format!("\"{}\"", doc.hash));
    assert!(plain.headers().get(header::CACHE_CONTROL).is_none());

    let q = format!("hash={}", doc.hash);
    let pinned = group_version(&d, "api/v1", Some(&q), &none);
    assert_eq!(pinned.headers()[header::CACHE_CONTROL], "public, immutable");
    assert!(pinned.headers().get(header::EXPIRES).is_some());

    let stale = group_version(&d, "api/v1", Some("hash=0BAD"), &none);
    assert_eq!(stale.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        stale.headers()[header::LOCATION],
        format!("/openapi/v3/api/v1?hash={}", doc.hash)
    );

    let mut cond = HeaderMap::new();
    cond.insert(
        header::IF_NONE_MATCH,
        format!("\"{}\"", doc.hash).parse().unwrap(),
    );
    assert_eq!(
        group_version(&d, "api/v1", None, &cond).status(),
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(v2(&d, &cond).status(), StatusCode::OK);

    let mut pb = HeaderMap::new();
    pb.insert(
        header::ACCEPT,
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
            .parse()
            .unwrap(),
    );
    let proto = v2(&d, &pb);
    assert_eq!(proto.status(), StatusCode::OK);
    assert_eq!(
        proto.headers()[header::CONTENT_TYPE],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    assert_eq!(proto.headers()[header::ETAG], format!("\"{}\"", d.v2.hash));
    assert_eq!(
        group_version(&d, "api/v1", None, &pb).status(),
        StatusCode::NOT_ACCEPTABLE
    );
    assert_eq!(
        group_version(&d, "apis/nope/v1", None, &none).status(),
        StatusCode::NOT_FOUND
    );
}

/// The cost: built once, and how large each document is (printed with `--nocapture`).
#[test]
fn document_sizes() {
    let start = std::time::Instant::now();
    let d = docs();
    eprintln!("built in {:?}", start.elapsed());
    let sizes = sizes(&d);
    for (doc, n) in &sizes {
        eprintln!("/openapi/{doc}: {n} bytes");
    }
    assert!(sizes[0].1 > 100_000);
}
