//! OpenAPI with Kubernetes' own schemas, read by the real kubectl: `kubectl explain` of every
//! served kind (its top level and nested fields, `--recursive`), and the documents' caching as
//! kube-openapi serves them.

mod support;

use support::ApiServer;

/// The served resources as kubectl discovers them, each with its group/version (`services v1`,
/// `deployments apps/v1`, ...), so a kind added to the server is explained here without a
/// change to this test. kubectl explain takes the group from `--api-version`: a dotted
/// `events.events.k8s.io` reads as core `events` and a field path, against Kubernetes too.
fn served_resources(s: &ApiServer) -> Vec<(String, String)> {
    s.kubectl_ok(&["api-resources", "--no-headers"])
        .lines()
        .map(|l| {
            // NAME [SHORTNAMES] APIVERSION NAMESPACED KIND
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0].to_string(), cols[cols.len() - 3].to_string())
        })
        .collect()
}

#[test]
fn explain_every_served_kind_and_a_nested_field() {
    let s = ApiServer::start();
    let resources = served_resources(&s);
    assert!(resources.len() >= 10, "{resources:?}");
    for (r, gv) in &resources {
        let api_version = format!("--api-version={gv}");
        let top = s.kubectl_ok(&["explain", r, &api_version]);
        assert!(
            top.starts_with("GROUP:") || top.starts_with("KIND:"),
            "{r}: {top}"
        );
        assert!(top.contains("\nFIELDS:\n"), "{r}: {top}");
        assert!(top.contains("  metadata\t<ObjectMeta>"), "{r}: {top}");
        let nested = s.kubectl_ok(&["explain", &format!("{r}.metadata.labels"), &api_version]);
        assert!(
            nested.contains("FIELD: labels <map[string]string>"),
            "{r}: {nested}"
        );
    }
}

#[test]
fn explain_service_spec_ports() {
    let s = ApiServer::start();
    let out = s.kubectl_ok(&["explain", "service.spec.ports"]);
    assert!(
        out.starts_with("KIND:       Service\nVERSION:    v1\n"),
        "{out}"
    );
    assert!(out.contains("FIELD: ports <[]ServicePort>"), "{out}");
    assert!(
        out.contains("The list of ports that are exposed by this service."),
        "{out}"
    );
    assert!(out.contains("  port\t<integer> -required-"), "{out}");
    assert!(out.contains("  protocol\t<string>"), "{out}");
    // v3 describes IntOrString as oneOf integer/string, so kubectl names the type.
    assert!(out.contains("  targetPort\t<IntOrString>"), "{out}");
}

#[test]
fn explain_deployment_recursive_and_pod_container_image() {
    let s = ApiServer::start();
    let out = s.kubectl_ok(&["explain", "deployment", "--recursive"]);
    assert!(
        out.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n"),
        "{out}"
    );
    for line in [
        "  spec\t<DeploymentSpec>",
        "    replicas\t<integer>",
        "    template\t<PodTemplateSpec> -required-",
        "        containers\t<[]Container> -required-",
        "          image\t<string>",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }

    let out = s.kubectl_ok(&["explain", "pods.spec.containers.image"]);
    assert!(out.contains("FIELD: image <string>"), "{out}");
    assert!(out.contains("Container image name."), "{out}");

    let err = s.kubectl_err(&["explain", "pods.spec.nosuchfield"]);
    assert!(
        err.contains("field \"nosuchfield\" does not exist"),
        "{err}"
    );
}

#[test]
fn documents_are_cached_as_kube_openapi_serves_them() {
    let s = ApiServer::start();
    let (code, index) = s.curl_auth(&[], "/openapi/v3");
    assert_eq!(code, 200, "{index}");
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    let url = index["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    let hash = url.split_once("?hash=").unwrap().1;
    assert_eq!(hash.len(), 128, "{url}");

    let (code, headers) = s.curl_auth(&["-D", "-"], url);
    assert_eq!(code, 200);
    let headers = headers.to_ascii_lowercase();
    assert!(
        headers.contains("cache-control: public, immutable"),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("etag: \"{}\"", hash.to_ascii_lowercase())),
        "{headers}"
    );

    let (code, _) = s.curl_auth(&[], "/openapi/v3/api/v1?hash=STALE");
    assert_eq!(code, 301);

    let (code, v2) = s.curl_auth(&[], "/openapi/v2");
    assert_eq!(code, 200);
    let v2: serde_json::Value = serde_json::from_str(&v2).unwrap();
    assert_eq!(v2["swagger"], "2.0");
    let ports = &v2["definitions"]["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        serde_json::json!(["port", "protocol"])
    );
}

/// client-go's `OpenAPISchema` accepts only gnostic protobuf: kubectl's v2 explain reads it.
#[test]
fn explain_from_openapi_v2_protobuf() {
    let s = ApiServer::start();
    let out = s.kubectl_ok(&[
        "explain",
        "--output",
        "plaintext-openapiv2",
        "service.spec.ports",
    ]);
    assert!(
        out.starts_with("KIND:     Service\nVERSION:  v1\n"),
        "{out}"
    );
    assert!(out.contains("RESOURCE: ports <[]Object>"), "{out}");
    assert!(out.contains("   port\t<integer> -required-"), "{out}");
    let out = s.kubectl_ok(&[
        "explain",
        "--output",
        "plaintext-openapiv2",
        "deployments.spec.template.spec.containers",
    ]);
    assert!(out.contains("VERSION:  apps/v1"), "{out}");
    assert!(out.contains("   image\t<string>"), "{out}");
}
