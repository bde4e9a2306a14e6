//! The CRI container log format, as the kubelet reads it (`pkg/kubelet/kuberuntime/logs`) and
//! containerd writes it: one line per line of output,
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <text>`, where `P` (partial) says the text
//! continues on the next line of the same stream and `F` (full) ends it.
//!
//! The writer is [`crate::shim`] (each container's shim appends its output); the reader is
//! the kubelet API's `containerLogs` ([`crate::kubelet_api`]), through [`CriParser`].

/// Which output stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    /// The stream's tag in a CRI line.
    pub fn tag(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    /// The stream a CRI line's tag names.
    pub fn from_tag(tag: &[u8]) -> Option<LogStream> {
        match tag {
            b"stdout" => Some(LogStream::Stdout),
            b"stderr" => Some(LogStream::Stderr),
            _ => None,
        }
    }
}

/// One CRI line for `text` (without its newline) of `stream` at `timestamp`: `F` when
/// `complete`, else `P` (the text goes on in the next line of the stream).
pub fn encode_line(timestamp: &str, stream: LogStream, complete: bool, text: &[u8]) -> Vec<u8> {
    let tag = if complete { "F" } else { "P" };
    let mut out = format!("{timestamp} {} {tag} ", stream.tag()).into_bytes();
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// Now, as the log's timestamps are written (RFC3339 with nanoseconds, UTC).
pub fn now_rfc3339_nano() -> String {
    // Formatted from SystemTime without pulling a date library into the shim.
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Howard Hinnant's days-to-civil-date algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One logical log line: a full CRI line, or partial ones joined.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// The timestamp as written (of the first part of the line).
    pub timestamp: String,
    pub stream: LogStream,
    /// The text, with its newline when the line is complete.
    pub text: Vec<u8>,
}

impl LogLine {
    pub fn time(&self) -> Option<jiff::Timestamp> {
        self.timestamp.parse().ok()
    }
}

/// An incremental parser of CRI log files.
#[derive(Debug, Default)]
pub struct CriParser {
    /// Bytes of a line not yet terminated by a newline.
    raw: Vec<u8>,
    /// A partial (`P`) line per stream, waiting for its continuation.
    pending: [Option<LogLine>; 2],
}

impl CriParser {
    /// Parse `bytes` (the next bytes of the file); complete logical lines go to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<LogLine>) {
        self.raw.extend_from_slice(bytes);
        let raw = std::mem::take(&mut self.raw);
        let mut start = 0;
        while let Some(i) = raw[start..].iter().position(|b| *b == b'\n') {
            self.line(&raw[start..start + i], out);
            start += i + 1;
        }
        self.raw = raw[start..].to_vec();
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<LogLine>) {
        let mut parts = line.splitn(4, |b| *b == b' ');
        let (Some(ts), Some(stream), Some(tags)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let text = parts.next().unwrap_or_default();
        let Some(stream) = LogStream::from_tag(stream) else {
            return;
        };
        let partial = tags.split(|b| *b == b':').next() == Some(b"P");
        let slot = &mut self.pending[stream as usize];
        let mut l = slot.take().unwrap_or_else(|| LogLine {
            timestamp: String::from_utf8_lossy(ts).into_owned(),
            stream,
            text: Vec::new(),
        });
        l.text.extend_from_slice(text);
        if partial {
            *slot = Some(l);
        } else {
            l.text.push(b'\n');
            out.push(l);
        }
    }

    /// The partial lines left (the writer stopped mid-line), without their newline.
    pub fn flush(&mut self, out: &mut Vec<LogLine>) {
        // An unterminated last line (the writer stopped mid-write) is taken as it is.
        let raw = std::mem::take(&mut self.raw);
        if !raw.is_empty() {
            self.line(&raw, out);
        }
        let mut rest: Vec<LogLine> = self.pending.iter_mut().filter_map(Option::take).collect();
        rest.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        out.extend(rest);
    }
}

/// A log of six lines, two of them partial, as tests of the reader use it.
#[cfg(test)]
pub(crate) const SAMPLE_LOG: &str = "\
2026-01-02T03:04:05.000000001Z stdout F first line
2026-01-02T03:04:06.000000002Z stderr F an error
2026-01-02T03:04:07.000000003Z stdout P par
2026-01-02T03:04:07.500000000Z stdout P tial
2026-01-02T03:04:08.000000004Z stdout F  line
2026-01-02T03:04:09.000000005Z stdout F last
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_nano() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20779), (2026, 11, 22));
        let ts = now_rfc3339_nano();
        assert_eq!(ts.len(), "2026-11-22T09:00:00.123456789Z".len(), "{ts}");
    }

    #[test]
    fn cri_parser_takes_lines_split_across_reads() {
        let mut p = CriParser::default();
        let mut out = Vec::new();
        let (a, b) = SAMPLE_LOG.split_at(57);
        p.feed(a.as_bytes(), &mut out);
        assert_eq!(out.len(), 1);
        p.feed(b.as_bytes(), &mut out);
        let texts: Vec<String> = out
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect();
        assert_eq!(
            texts,
            ["first line\n", "an error\n", "partial line\n", "last\n"]
        );
        assert_eq!(out[2].timestamp, "2026-01-02T03:04:07.000000003Z");
        assert_eq!(out[1].stream, LogStream::Stderr);
    }
}
