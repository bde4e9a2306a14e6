//! Bodies captured from the real kubectl v1.32.4, checked against kubectl's own JSON for
//! the same command.
//!
//! tests/kubectl/NAME.pb is the request body `kubectl create ...` sent (Content-Type
//! application/vnd.kubernetes.protobuf) to a local TLS listener; NAME.json is what
//! `kubectl create ... --dry-run=client -o json` printed: Go's JSON encoding of the same
//! object, so an independent oracle. tests/kubectl/capture.py has the commands and
//! re-captures both.

use std::fs;
use std::path::Path;

use pretty_assertions::assert_eq;
use serde_json::Value;

#[test]
fn kubectl_create_bodies_decode_to_kubectls_own_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kubectl");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "pb") {
            continue;
        }
        let body = fs::read(&path).unwrap();
        let expected: Value =
            serde_json::from_slice(&fs::read(path.with_extension("json")).unwrap()).unwrap();
        let decoded =
            svcnet_protobuf::decode(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(decoded.object, expected, "{}", path.display());
        assert_eq!(decoded.kind, expected["kind"]);
        checked += 1;
    }
    assert!(
        checked >= 12,
        "only {checked} captured bodies found in {}",
        dir.display()
    );
}
