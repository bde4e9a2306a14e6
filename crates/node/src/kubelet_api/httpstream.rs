//! The kubelet's `httpstream` handshake, what port-forward and exec/attach over SPDY share:
//! the `X-Stream-Protocol-Version` negotiation (`httpstream.Handshake`), Go's `http.Error`
//! answers, header token checks, and the stream creation timeout.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};

/// How long the streams of one request may take to arrive
/// (`remotecommandconsts.DefaultStreamCreationTimeout`, 30 s).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Go's `http.Error`: text, a newline, `nosniff`.
pub fn http_error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{msg}\n"),
    )
        .into_response()
}

/// `httpstream.Handshake`: the first of the client's `X-Stream-Protocol-Version`s that we
/// accept (`accepted`, ours newest first), or the kubelet's refusal — 400 when the client
/// offers none, 403 with `X-Accepted-Stream-Protocol-Versions` when none fits.
pub fn handshake(
    headers: &HeaderMap,
    accepted: &[&'static str],
) -> Result<&'static str, Box<Response>> {
    let offered = client_protocols(headers);
    if offered.is_empty() {
        return Err(Box::new(http_error(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required",
        )));
    }
    if let Some(p) = offered
        .iter()
        .find_map(|o| accepted.iter().find(|a| *a == o))
    {
        return Ok(p);
    }
    let mut resp = http_error(
        StatusCode::FORBIDDEN,
        &format!(
            "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
            offered.join(" "),
            accepted.join(" ")
        ),
    );
    for p in accepted {
        resp.headers_mut().append(
            "x-accepted-stream-protocol-versions",
            HeaderValue::from_static(p),
        );
    }
    Err(Box::new(resp))
}

/// The client's `X-Stream-Protocol-Version`s (comma-separated, any number of headers).
fn client_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

pub fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains(token))
}
