//! `containerLogs`: a container's CRI log as `kubectl logs` prints it (the kubelet's
//! `pkg/kubelet/kuberuntime/logs`: `PodLogOptions` applied to the parsed lines — stream,
//! since, tail, timestamps, byte limit — and `follow` polling the file until the container
//! stops).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use jiff::Timestamp;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{not_found, parse_bool, query_pairs, text_response, AppState, ParamError};
use crate::cri_log::{CriParser, LogLine, LogStream};

/// The options of a log request (`PodLogOptions` as query parameters).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last N lines (of those the other filters keep).
    pub tail_lines: Option<usize>,
    /// Prefix each line with its RFC3339Nano timestamp and a space.
    pub timestamps: bool,
    /// Only lines logged at or after this time (`sinceSeconds` or `sinceTime`).
    pub since: Option<Timestamp>,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<usize>,
    /// The previous instance's log.
    pub previous: bool,
    /// Only this stream (`stream=Stdout|Stderr`; all by default).
    pub stream: Option<LogStream>,
}

impl LogOptions {
    /// Parse the query string of a `containerLogs` request.
    pub fn from_query(query: Option<&str>) -> Result<LogOptions, ParamError> {
        let mut o = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "follow" => o.follow = parse_bool(&k, &v)?,
                "timestamps" => o.timestamps = parse_bool(&k, &v)?,
                "previous" => o.previous = parse_bool(&k, &v)?,
                "tailLines" => {
                    let n = number("tailLines", &v)?;
                    o.tail_lines = (n >= 0).then_some(n as usize);
                }
                "limitBytes" => {
                    let n = number("limitBytes", &v)?;
                    if n < 1 {
                        return Err(ParamError::NotPositive("limitBytes"));
                    }
                    o.limit_bytes = Some(n as usize);
                }
                "sinceSeconds" => {
                    let n = number("sinceSeconds", &v)?;
                    if n < 1 {
                        return Err(ParamError::NotPositive("sinceSeconds"));
                    }
                    since_seconds = Some(n);
                }
                "sinceTime" => {
                    since_time =
                        Some(
                            v.parse::<Timestamp>()
                                .map_err(|source| ParamError::NotATime {
                                    value: v.clone(),
                                    source,
                                })?,
                        );
                }
                "stream" => {
                    o.stream = match v.as_str() {
                        "Stdout" => Some(LogStream::Stdout),
                        "Stderr" => Some(LogStream::Stderr),
                        "All" | "" => None,
                        _ => return Err(ParamError::UnknownStream(v)),
                    }
                }
                _ => {}
            }
        }
        o.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => return Err(ParamError::SinceTimeAndSeconds),
            (Some(s), None) => Some(
                Timestamp::now()
                    .checked_sub(jiff::SignedDuration::from_secs(s))
                    .unwrap_or(Timestamp::MIN),
            ),
            (None, t) => t,
        };
        Ok(o)
    }
}

/// An integer parameter.
fn number(name: &'static str, v: &str) -> Result<i64, ParamError> {
    v.parse().map_err(|_| ParamError::NotANumber {
        name,
        value: v.to_string(),
    })
}

/// Whether `line` passes `opts`' stream and since filters.
fn keep(line: &LogLine, opts: &LogOptions) -> bool {
    opts.stream.is_none_or(|s| s == line.stream)
        && opts
            .since
            .is_none_or(|since| line.time().is_none_or(|t| t >= since))
}

/// `line` as `kubectl logs` prints it: its text, after its timestamp with `timestamps`.
fn render(line: &LogLine, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        out.extend_from_slice(line.timestamp.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&line.text);
}

/// Render `lines` (already filtered) with `opts`' tail, timestamps and remaining byte budget.
fn render_lines(lines: &[LogLine], opts: &LogOptions, budget: &mut Option<usize>) -> Vec<u8> {
    let skip = opts
        .tail_lines
        .map(|n| lines.len().saturating_sub(n))
        .unwrap_or(0);
    let mut out = Vec::new();
    for l in &lines[skip..] {
        render(l, opts.timestamps, &mut out);
    }
    if let Some(b) = budget {
        out.truncate(*b);
        *b -= out.len();
    }
    out
}

/// The log in `path` with `opts` (all but `follow`): what `kubectl logs` prints. A missing file
/// is an empty log.
pub fn read_log(path: &Path, opts: &LogOptions) -> io::Result<Vec<u8>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut parser = CriParser::default();
    let mut lines = Vec::new();
    parser.feed(&bytes, &mut lines);
    parser.flush(&mut lines);
    lines.retain(|l| keep(l, opts));
    Ok(render_lines(&lines, opts, &mut opts.limit_bytes.clone()))
}

pub(super) async fn get_container_logs(
    State(st): State<Arc<AppState>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let opts = match LogOptions::from_query(query.as_deref()) {
        Ok(o) => o,
        Err(e) => return text_response(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Some(handle) = st.runtime.container(&ns, &pod, &container) else {
        return not_found(&ns, &pod, &container);
    };
    let path = if opts.previous {
        match handle.previous_log_path.clone() {
            Some(p) if p.exists() => p,
            _ => {
                return text_response(
                    StatusCode::BAD_REQUEST,
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                )
            }
        }
    } else {
        handle.log_path.clone()
    };
    let plain = [(header::CONTENT_TYPE, "text/plain")];
    // A previous container's log is complete: nothing to follow.
    if !opts.follow || opts.previous {
        let path2 = path.clone();
        let opts2 = opts.clone();
        return match tokio::task::spawn_blocking(move || read_log(&path2, &opts2)).await {
            Ok(Ok(bytes)) => (plain, bytes).into_response(),
            Ok(Err(e)) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading log {}: {e}", path.display()),
            ),
            Err(e) => text_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let runtime = st.runtime.clone();
    tokio::spawn(async move {
        let running = move || {
            runtime
                .container(&ns, &pod, &container)
                .is_some_and(|h| h.running)
        };
        if let Err(e) = follow_log(&path, &opts, running, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    (plain, body).into_response()
}

/// How often a followed log is polled.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Stream the log at `path` to `tx`, then what is appended to it, until `running()` says the
/// container stopped and everything it wrote was sent, the byte limit is reached, or the
/// receiver is gone.
async fn follow_log(
    path: &Path,
    opts: &LogOptions,
    running: impl Fn() -> bool,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let mut budget = opts.limit_bytes;
    let mut parser = CriParser::default();
    let mut file: Option<tokio::fs::File> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = true;
    loop {
        // Checked before reading: once the container is not running, its log is complete.
        let alive = running();
        if file.is_none() {
            match tokio::fs::File::open(path).await {
                Ok(f) => file = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut lines = Vec::new();
        if let Some(f) = file.as_mut() {
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                parser.feed(&buf[..n], &mut lines);
            }
        }
        if !alive {
            parser.flush(&mut lines);
        }
        lines.retain(|l| keep(l, opts));
        // The tail applies to what was there when the request came; later lines all stream.
        let tail_opts = LogOptions {
            tail_lines: if first { opts.tail_lines } else { None },
            ..opts.clone()
        };
        first = false;
        let out = render_lines(&lines, &tail_opts, &mut budget);
        if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
            return Ok(());
        }
        if !alive || budget == Some(0) {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tx.closed() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri_log::SAMPLE_LOG as LOG;
    use crate::kubelet_api::ExecOptions;

    fn log_of(text: &str, query: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, text).unwrap();
        let opts = LogOptions::from_query(Some(query)).unwrap();
        String::from_utf8(read_log(&path, &opts).unwrap()).unwrap()
    }

    #[test]
    fn cri_logs_are_parsed_joined_and_cut() {
        assert_eq!(
            log_of(LOG, ""),
            "first line\nan error\npartial line\nlast\n"
        );
        assert_eq!(
            log_of(LOG, "timestamps=true&tailLines=2"),
            "2026-01-02T03:04:07.000000003Z partial line\n2026-01-02T03:04:09.000000005Z last\n"
        );
        assert_eq!(log_of(LOG, "tailLines=0"), "");
        assert_eq!(log_of(LOG, "tailLines=100").lines().count(), 4);
        assert_eq!(log_of(LOG, "limitBytes=13"), "first line\nan");
        assert_eq!(log_of(LOG, "tailLines=1&limitBytes=2"), "la");
        assert_eq!(
            log_of(LOG, "sinceTime=2026-01-02T03:04:07Z"),
            "partial line\nlast\n"
        );
        assert_eq!(log_of(LOG, "stream=Stderr"), "an error\n");
        // A line still partial when the writer stopped: its text, without a newline.
        assert_eq!(
            log_of("2026-01-02T03:04:05Z stdout P no newline\n", ""),
            "no newline"
        );
        // An empty full line, and garbage, which is skipped.
        assert_eq!(
            log_of(
                "2026-01-02T03:04:05Z stdout F \ngarbage\n2026-01-02T03:04:05Z stdout F\n",
                ""
            ),
            "\n\n"
        );
        // A missing log is empty.
        let opts = LogOptions::default();
        assert!(read_log(Path::new("/nonexistent/0.log"), &opts)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn log_options() {
        assert_eq!(
            LogOptions::from_query(Some("follow=1&previous=false&tailLines=-1")).unwrap(),
            LogOptions {
                follow: true,
                ..Default::default()
            }
        );
        assert!(LogOptions::from_query(Some("limitBytes=0")).is_err());
        assert!(LogOptions::from_query(Some("follow=maybe")).is_err());
        assert!(
            LogOptions::from_query(Some("sinceSeconds=5&sinceTime=2026-01-02T03:04:05Z")).is_err()
        );
        let since = LogOptions::from_query(Some("sinceSeconds=60"))
            .unwrap()
            .since
            .unwrap();
        assert!(
            since < Timestamp::now()
                && since > Timestamp::now() - jiff::SignedDuration::from_secs(70)
        );
    }

    #[test]
    fn parameter_errors_read_as_the_kubelets() {
        let err = |q: &str| LogOptions::from_query(Some(q)).unwrap_err().to_string();
        assert_eq!(err("limitBytes=0"), "limitBytes: must be greater than 0");
        assert_eq!(
            err("follow=maybe"),
            "invalid value \"maybe\" for follow: not a boolean"
        );
        assert_eq!(err("tailLines=x"), "invalid value \"x\" for tailLines");
        assert_eq!(err("stream=Both"), "invalid value \"Both\" for stream");
        assert_eq!(
            err("sinceSeconds=5&sinceTime=2026-01-02T03:04:05Z"),
            "at most one of sinceTime or sinceSeconds may be specified"
        );
        assert_eq!(
            ExecOptions::from_query(Some("stdout=1"))
                .unwrap_err()
                .to_string(),
            "you must specify at least 1 command"
        );
    }
}
