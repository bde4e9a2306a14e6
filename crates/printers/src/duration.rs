//! `k8s.io/apimachinery/pkg/util/duration.HumanDuration` and the `translateTimestampSince`
//! helpers of `pkg/printers/internalversion`.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::json::time_at;

const NS_PER_SECOND: i128 = 1_000_000_000;
const NS_PER_MINUTE: i128 = 60 * NS_PER_SECOND;
const NS_PER_HOUR: i128 = 60 * NS_PER_MINUTE;

/// `HumanDuration` of a signed duration in nanoseconds (negative when the timestamp lies in
/// the future, e.g. clock skew): ~2-3 significant figures.
pub(crate) fn human_nanos(d: i128) -> String {
    // Allow deviation no more than 2 seconds (excluded) to tolerate machine time
    // inconsistence; it can be considered as almost now. Integer division truncates toward
    // zero like Go's int(d.Seconds()).
    let seconds = d / NS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / NS_PER_MINUTE;
    if minutes < 10 {
        let s = (d / NS_PER_SECOND) % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / NS_PER_HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{h}h", hours / 24)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{dy}d", hours / 24 / 365)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// `translateTimestampSince` / `translateMicroTimestampSince`: `<unknown>` for the zero time,
/// otherwise the human duration from `t` to `now`.
pub(crate) fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        None => "<unknown>".to_string(),
        Some(t) => human_nanos(now.as_nanosecond() - t.as_nanosecond()),
    }
}

/// The AGE cell: [`since`] the object's `metadata.creationTimestamp`.
pub(crate) fn age(obj: &Value, now: Timestamp) -> Value {
    json!(since(time_at(obj, &["metadata", "creationTimestamp"]), now))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pretty_assertions::assert_eq;

    use super::human_nanos;
    use crate::human_duration;

    #[test]
    fn human_duration_upstream_cases() {
        let s = Duration::from_secs;
        let h = |n: u64| Duration::from_secs(n * 3600);
        let cases = [
            (s(1), "1s"),
            (s(70), "70s"),
            (s(190), "3m10s"),
            (s(70 * 60), "70m"),
            (h(47), "47h"),
            (h(49), "2d1h"),
            (h(8 * 24 + 2), "8d"),
            (h(367 * 24), "367d"),
            (h(365 * 2 * 24 + 25), "2y1d"),
            (h(365 * 8 * 24 + 2), "8y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn human_duration_upstream_boundaries() {
        const MS: i128 = 1_000_000;
        const S: i128 = 1_000 * MS;
        const M: i128 = 60 * S;
        const H: i128 = 60 * M;
        const D: i128 = 24 * H;
        const Y: i128 = 365 * D;
        let cases: &[(i128, &str)] = &[
            (-2 * S, "<invalid>"),
            (-2 * S + 1, "0s"),
            (0, "0s"),
            (S - MS, "0s"),
            (2 * M - MS, "119s"),
            (2 * M, "2m"),
            (2 * M + S, "2m1s"),
            (10 * M - MS, "9m59s"),
            (10 * M, "10m"),
            (10 * M + S, "10m"),
            (3 * H - MS, "179m"),
            (3 * H, "3h"),
            (3 * H + M, "3h1m"),
            (8 * H - MS, "7h59m"),
            (8 * H, "8h"),
            (8 * H + 59 * M, "8h"),
            (2 * D - MS, "47h"),
            (2 * D, "2d"),
            (2 * D + H, "2d1h"),
            (8 * D - MS, "7d23h"),
            (8 * D, "8d"),
            (8 * D + 23 * H, "8d"),
            (2 * Y - MS, "729d"),
            (2 * Y, "2y"),
            (2 * Y + 23 * H, "2y"),
            (2 * Y + 23 * H + 59 * M, "2y"),
            (2 * Y + D - MS, "2y"),
            (2 * Y + D, "2y1d"),
            (3 * Y, "3y"),
            (4 * Y, "4y"),
            (5 * Y, "5y"),
            (6 * Y, "6y"),
            (7 * Y, "7y"),
            (8 * Y - MS, "7y364d"),
            (8 * Y, "8y"),
            (8 * Y + 364 * D, "8y"),
            (9 * Y, "9y"),
        ];
        for &(d, want) in cases {
            assert_eq!(human_nanos(d), want, "{d}ns");
        }
    }

    #[test]
    fn human_duration_seed_ages() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(s(2 * 86400 + 18 * 3600 + 5)), "2d18h");
        assert_eq!(human_duration(s(4 * 60 + 42)), "4m42s");
        assert_eq!(human_duration(s(108)), "108s");
        assert_eq!(human_duration(s(18 * 3600 + 30 * 60)), "18h");
    }
}
