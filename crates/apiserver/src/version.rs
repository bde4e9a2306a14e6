//! What `/version` reports. kubectl's dispatcher on this machine picks the kubectl closest to the
//! server's version, so we report the Kubernetes API level we implement.

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};

pub const MAJOR: &str = "1";
pub const MINOR: &str = "32";
pub const GIT_VERSION: &str = "v1.32.0";

/// apimachinery's `version.Info`, its fields in Go's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    major: &'static str,
    minor: &'static str,
    git_version: &'static str,
    git_commit: &'static str,
    git_tree_state: &'static str,
    build_date: &'static str,
    go_version: &'static str,
    compiler: &'static str,
    platform: String,
}

fn info() -> Info {
    Info {
        major: MAJOR,
        minor: MINOR,
        git_version: GIT_VERSION,
        git_commit: concat!("svcnet-", env!("CARGO_PKG_VERSION")),
        git_tree_state: "clean",
        build_date: "1970-01-01T00:00:00Z",
        go_version: "rust",
        compiler: "rustc",
        platform: format!(
            "{}/{}",
            std::env::consts::OS,
            if cfg!(target_arch = "x86_64") {
                "amd64"
            } else {
                std::env::consts::ARCH
            }
        ),
    }
}

/// `GET /version` (and `/version/`: go-restful's route matching ignores the trailing slash).
/// kube-apiserver writes it with `responsewriters.WriteRawJSON`: indented by two spaces, no
/// final newline.
pub fn respond() -> Response {
    let body = serde_json::to_vec_pretty(&info()).expect("version info serializes");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
