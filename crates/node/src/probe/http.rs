//! The HTTP GET probe, as the kubelet's `pkg/probe/http`: keep-alives off, same-host redirects
//! followed, a redirect elsewhere taken as the answer, 2xx and 3xx a success, Go's messages.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::HTTPGetAction;
use tokio_util::task::AbortOnDropHandle;

use super::context::{ProbeContext, ProbeResult};
use super::dial::{dial_error, join_host_port, resolve};

/// The `User-Agent` of HTTP probes, unless the probe sets one.
pub const USER_AGENT: &str = "kube-probe/1.32";
/// How much of a response body is read (`pkg/probe/http`'s `maxRespBodyLength`).
const MAX_BODY: usize = 10 * 1024;
/// How many requests an HTTP probe makes following same-host redirects.
const MAX_REQUESTS: usize = 10;

/// Where an HTTP probe is, for the timeout message.
struct HttpProgress {
    url: String,
    reading_body: bool,
}

pub(super) async fn http_probe(
    action: &HTTPGetAction,
    ctx: &ProbeContext,
    timeout: Duration,
) -> ProbeResult {
    let scheme = action
        .scheme
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("HTTP")
        .to_lowercase();
    let (host, port) = match ctx.target(action.host.as_deref(), &action.port) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut path = action.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let display = format!("{scheme}://{}{path}", join_host_port(&host, port));
    match scheme.as_str() {
        "http" => {}
        "https" => return ProbeResult::Unknown("HTTPS probes are not supported".into()),
        other => {
            return ProbeResult::Unknown(format!(
                "Get {display:?}: unsupported protocol scheme {other:?}"
            ))
        }
    }
    let url = match url::Url::parse(&display) {
        Ok(u) => u,
        Err(e) => return ProbeResult::Unknown(format!("parse {display:?}: {e}")),
    };
    let headers: Vec<(String, String)> = action
        .http_headers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let mut progress = HttpProgress {
        url: display.clone(),
        reading_body: false,
    };
    let result = tokio::time::timeout(
        timeout,
        http_get(url, display, &headers, ctx, &mut progress),
    )
    .await;
    match result {
        Ok(r) => r,
        Err(_) if progress.reading_body => ProbeResult::Failure(
            "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
                .into(),
        ),
        Err(_) => ProbeResult::Failure(format!(
            "Get {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            progress.url
        )),
    }
}

/// The host and port a URL dials, and its `Host` header.
fn url_authority(url: &url::Url) -> Option<(String, u16, String)> {
    let host = url.host_str()?.to_string();
    let port = url.port_or_known_default()?;
    let header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    Some((host, port, header))
}

/// The kubelet's HTTP GET: keep-alives off, same-host redirects followed (10 requests at
/// most), a redirect elsewhere taken as the answer, 10 KiB of body read.
async fn http_get(
    first: url::Url,
    display: String,
    headers: &[(String, String)],
    ctx: &ProbeContext,
    progress: &mut HttpProgress,
) -> ProbeResult {
    let mut url = first.clone();
    // The Host header of the first request is the URL's authority as written (Go keeps `:80`).
    let mut host_header = display
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    let mut referer: Option<String> = None;
    let mut requests = 0;
    loop {
        requests += 1;
        let Some((host, port, _)) = url_authority(&url) else {
            return ProbeResult::Failure(format!("Get {:?}: no Host in request URL", progress.url));
        };
        let addr = match resolve(&host, port).await {
            Ok(a) => a,
            Err(e) => return ProbeResult::Failure(format!("Get {:?}: {e}", progress.url)),
        };
        let stream = match ctx.connector.connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                return ProbeResult::Failure(format!(
                    "Get {:?}: dial tcp {addr}: {}",
                    progress.url,
                    dial_error(&e)
                ))
            }
        };
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(x) => x,
                Err(e) => return ProbeResult::Failure(format!("Get {:?}: {e}", progress.url)),
            };
        let _conn = AbortOnDropHandle::new(tokio::spawn(async move {
            let _ = conn.await;
        }));

        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let mut req = hyper::Request::get(target);
        let mut has_ua = false;
        let mut has_accept = false;
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("host") {
                host_header = value.clone();
                continue;
            }
            if name.eq_ignore_ascii_case("user-agent") {
                has_ua = true;
            } else if name.eq_ignore_ascii_case("accept") {
                has_accept = true;
            }
            // Go sends no User-Agent or Accept set to "".
            if value.is_empty()
                && (name.eq_ignore_ascii_case("user-agent") || name.eq_ignore_ascii_case("accept"))
            {
                continue;
            }
            req = req.header(name.as_str(), value.as_str());
        }
        if !has_ua {
            req = req.header(hyper::header::USER_AGENT, USER_AGENT);
        }
        if !has_accept {
            req = req.header(hyper::header::ACCEPT, "*/*");
        }
        if let Some(r) = &referer {
            req = req.header(hyper::header::REFERER, r.as_str());
        }
        req = req
            .header(hyper::header::HOST, host_header.as_str())
            .header(hyper::header::CONNECTION, "close");
        let req = match req.body(Empty::<Bytes>::new()) {
            Ok(r) => r,
            Err(e) => return ProbeResult::Unknown(format!("Get {:?}: {e}", progress.url)),
        };
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                let msg = if e.is_incomplete_message() {
                    "EOF".to_string()
                } else {
                    e.to_string()
                };
                return ProbeResult::Failure(format!("Get {:?}: {msg}", progress.url));
            }
        };
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .filter(|l| !l.is_empty())
            .map(str::to_string);
        if let (true, Some(loc)) = (
            matches!(status, 301 | 302 | 303 | 307 | 308),
            location.as_deref(),
        ) {
            let next = match url.join(loc) {
                Ok(n) => n,
                Err(e) => {
                    return ProbeResult::Failure(format!(
                        "Get {:?}: failed to parse Location header {loc:?}: {e}",
                        progress.url
                    ))
                }
            };
            if next.host_str() != first.host_str() {
                // http.ErrUseLastResponse: the redirect itself is the answer (a success).
                return ProbeResult::Success;
            }
            if requests >= MAX_REQUESTS {
                return ProbeResult::Failure(format!("Get {loc:?}: stopped after 10 redirects"));
            }
            match next.scheme() {
                "http" => {}
                "https" => {
                    return ProbeResult::Unknown("HTTPS probes are not supported".into());
                }
                other => {
                    return ProbeResult::Failure(format!(
                        "Get {loc:?}: unsupported protocol scheme {other:?}"
                    ))
                }
            }
            referer = Some(url.to_string());
            host_header = url_authority(&next).map(|a| a.2).unwrap_or_default();
            progress.url = next.to_string();
            url = next;
            continue;
        }

        progress.reading_body = true;
        let mut body = resp.into_body();
        let mut read = 0;
        while read < MAX_BODY {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        read += data.len();
                    }
                }
                Some(Err(e)) => return ProbeResult::Failure(e.to_string()),
            }
        }
        return if (200..400).contains(&status) {
            ProbeResult::Success
        } else {
            ProbeResult::Failure(format!("HTTP probe failed with statuscode: {status}"))
        };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU16;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::{ContainerPort, HTTPHeader};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use tokio::net::TcpListener;

    use crate::probe::testing::{closed_port, ctx, http_probe_spec, server, LOCALHOST};
    use crate::probe::{run_once, ProbeContext, ProbeResult};

    #[tokio::test]
    async fn http_statuses_and_redirects() {
        let port = server(Arc::new(AtomicU16::new(200))).await;
        let c = ctx(vec![]);
        let p = |path: &str| http_probe_spec(IntOrString::Int(port.into()), path);
        assert_eq!(run_once(&p("/ok"), &c).await, ProbeResult::Success);
        assert_eq!(
            run_once(&p("/fail"), &c).await,
            ProbeResult::Failure("HTTP probe failed with statuscode: 503".into())
        );
        assert_eq!(
            run_once(&p("/nope"), &c).await,
            ProbeResult::Failure("HTTP probe failed with statuscode: 404".into())
        );
        assert_eq!(run_once(&p("/redirect"), &c).await, ProbeResult::Success);
        assert_eq!(
            run_once(&p("/redirect-fail"), &c).await,
            ProbeResult::Failure("HTTP probe failed with statuscode: 503".into())
        );
        assert_eq!(run_once(&p("/away"), &c).await, ProbeResult::Success);
        assert_eq!(
            run_once(&p("/loop"), &c).await,
            ProbeResult::Failure("Get \"/loop\": stopped after 10 redirects".into())
        );
        assert_eq!(run_once(&p("/big"), &c).await, ProbeResult::Success);
        // No leading slash, as the kubelet's URL formatting allows.
        assert_eq!(run_once(&p("ok"), &c).await, ProbeResult::Success);
    }

    #[tokio::test]
    async fn http_headers_named_ports_and_schemes() {
        let port = server(Arc::new(AtomicU16::new(200))).await;
        let c = ctx(vec![ContainerPort {
            name: Some("http".into()),
            container_port: port.into(),
            ..Default::default()
        }]);
        let mut p = http_probe_spec(IntOrString::String("http".into()), "/headers");
        p.http_get.as_mut().unwrap().http_headers = Some(vec![HTTPHeader {
            name: "X-Test".into(),
            value: "yes".into(),
        }]);
        assert_eq!(run_once(&p, &c).await, ProbeResult::Success);

        let mut p = http_probe_spec(IntOrString::String(port.to_string()), "/custom-headers");
        p.http_get.as_mut().unwrap().http_headers = Some(vec![
            HTTPHeader {
                name: "user-agent".into(),
                value: "mine".into(),
            },
            HTTPHeader {
                name: "Accept".into(),
                value: "".into(),
            },
            HTTPHeader {
                name: "Host".into(),
                value: "example.test".into(),
            },
        ]);
        assert_eq!(run_once(&p, &c).await, ProbeResult::Success);

        let p = http_probe_spec(IntOrString::String("metrics".into()), "/ok");
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Unknown("strconv.Atoi: parsing \"metrics\": invalid syntax".into())
        );
        let p = http_probe_spec(IntOrString::Int(0), "/ok");
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Unknown("invalid port number: 0".into())
        );
        let mut p = http_probe_spec(IntOrString::Int(port.into()), "/ok");
        p.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Unknown("HTTPS probes are not supported".into())
        );
        // An explicit host.
        let mut p = http_probe_spec(IntOrString::Int(port.into()), "/ok");
        p.http_get.as_mut().unwrap().host = Some("127.0.0.1".into());
        let other = ProbeContext {
            pod_ip: "192.0.2.1".parse().unwrap(),
            ..c.clone()
        };
        assert_eq!(run_once(&p, &other).await, ProbeResult::Success);
    }

    #[tokio::test]
    async fn http_refused_and_timeouts() {
        let c = ctx(vec![]);
        let port = closed_port().await;
        let p = http_probe_spec(IntOrString::Int(port.into()), "/healthz");
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Failure(format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );

        // A listener that accepts (in the kernel) but never answers.
        let silent = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        let sport = silent.local_addr().unwrap().port();
        let p = http_probe_spec(IntOrString::Int(sport.into()), "/healthz");
        let start = Instant::now();
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Failure(format!(
                "Get \"http://127.0.0.1:{sport}/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3));

        let port = server(Arc::new(AtomicU16::new(200))).await;
        let p = http_probe_spec(IntOrString::Int(port.into()), "/slow-body");
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Failure(
                "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
                    .into()
            )
        );
        drop(silent);
    }
}
