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
