//! The apimachinery types whose JSON is not a plain object of their protobuf fields,
//! encoded as their Go `MarshalJSON` methods do (k8s.io/apimachinery, pkg/apis/meta/v1
//! time.go, micro_time.go, duration.go, fields; pkg/util/intstr; pkg/api/resource;
//! pkg/runtime). Each takes the bytes of the message.

use serde_json::Value;

use crate::error::DecodeError;
use crate::schema::Special;
use crate::wire::{self, Fields};

/// Seconds from the Unix epoch to Go's zero `time.Time` (0001-01-01T00:00:00Z), which
/// `metav1.Time` encodes as JSON null.
const GO_ZERO_TIME: i64 = -62_135_596_800;

pub(crate) fn decode(special: Special, bytes: &[u8], depth: usize) -> Result<Value, DecodeError> {
    match special {
        // An empty message is Go's zero time: `Time.Unmarshal` leaves it zero, and
        // `MarshalJSON` writes null (what `"creationTimestamp": null` comes from).
        Special::Time | Special::MicroTime if bytes.is_empty() => Ok(Value::Null),
        Special::Time => {
            // Time's protobuf carries nanos, but `Time.Unmarshal` drops them: JSON has
            // whole seconds only.
            let seconds = varint(bytes, 1)?.unwrap_or(0) as i64;
            timestamp(seconds, 0, false)
        }
        Special::MicroTime => {
            let seconds = varint(bytes, 1)?.unwrap_or(0) as i64;
            let nanos = i64::from(varint(bytes, 2)?.unwrap_or(0) as i32);
            timestamp(
                seconds + nanos.div_euclid(1_000_000_000),
                nanos.rem_euclid(1_000_000_000),
                true,
            )
        }
        Special::Duration => Ok(Value::String(go_duration(
            varint(bytes, 1)?.unwrap_or(0) as i64
        ))),
        Special::IntOrString => {
            let kind = varint(bytes, 1)?.unwrap_or(0) as i64;
            match kind {
                0 => Ok(Value::from(varint(bytes, 2)?.unwrap_or(0) as i32)),
                1 => Ok(Value::String(string(bytes, 3)?.unwrap_or_default())),
                other => Err(DecodeError::invalid(format!(
                    "IntOrString has type {other}, not 0 (int) or 1 (string)"
                ))),
            }
        }
        // `Quantity.Unmarshal` parses the string; an empty message is the zero quantity.
        Special::Quantity => Ok(Value::String(
            string(bytes, 1)?.unwrap_or_else(|| "0".into()),
        )),
        Special::RawExtension | Special::FieldsV1 => match length_delimited(bytes, 1)? {
            None | Some([]) => Ok(Value::Null),
            Some(raw) if raw.starts_with(crate::MAGIC) => {
                // An object embedded in protobuf form rather than JSON.
                Ok(Value::Object(
                    crate::decode_at_depth(raw, depth + 1)?.into_json(),
                ))
            }
            Some(raw) => serde_json::from_slice(raw).map_err(|e| {
                DecodeError::invalid(format!("the embedded raw bytes are not JSON: {e}"))
            }),
        },
    }
}

/// The last occurrence of field `number`, proto style.
fn last(bytes: &[u8], number: u32) -> Result<Option<wire::Value<'_>>, DecodeError> {
    let mut found = None;
    for field in Fields::new(bytes) {
        let (n, value) = field.map_err(|e| DecodeError::invalid(e.reason()))?;
        if n == number {
            found = Some(value);
        }
    }
    Ok(found)
}

fn varint(bytes: &[u8], number: u32) -> Result<Option<u64>, DecodeError> {
    match last(bytes, number)? {
        None => Ok(None),
        Some(wire::Value::Varint(v)) => Ok(Some(v)),
        Some(other) => Err(DecodeError::invalid(format!(
            "field {number} has wire type {}, expected varint",
            other.wire_type()
        ))),
    }
}

fn length_delimited(bytes: &[u8], number: u32) -> Result<Option<&[u8]>, DecodeError> {
    match last(bytes, number)? {
        None => Ok(None),
        Some(wire::Value::Bytes(b)) => Ok(Some(b)),
        Some(other) => Err(DecodeError::invalid(format!(
            "field {number} has wire type {}, expected length-delimited",
            other.wire_type()
        ))),
    }
}

fn string(bytes: &[u8], number: u32) -> Result<Option<String>, DecodeError> {
    Ok(length_delimited(bytes, number)?.map(|b| String::from_utf8_lossy(b).into_owned()))
}

/// RFC 3339 in UTC: `2006-01-02T15:04:05Z`, or with `micros` `2006-01-02T15:04:05.000000Z`
/// (truncated, as Go's formatting does).
fn timestamp(seconds: i64, nanos: i64, micros: bool) -> Result<Value, DecodeError> {
    if seconds == GO_ZERO_TIME && nanos == 0 {
        return Ok(Value::Null);
    }
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return Err(DecodeError::invalid(format!(
            "time {seconds}s after the epoch is outside years 0-9999"
        )));
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
    if micros {
        text += &format!(".{:06}", nanos / 1000);
    }
    text.push('Z');
    Ok(Value::String(text))
}

/// (year, month, day) of a day number counted from 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Go's `time.Duration.String()`: "0s", "1.5µs", "300ms", "1h2m3.5s", "-90s" -> "-1m30s".
fn go_duration(nanos: i64) -> String {
    // The fraction v mod 10^prec as ".123" without trailing zeros (or nothing), and v / 10^prec.
    fn split(v: u64, prec: u32) -> (String, u64) {
        let scale = 10u64.pow(prec);
        let frac = v % scale;
        let text = if frac == 0 {
            String::new()
        } else {
            format!(".{frac:0width$}", width = prec as usize)
                .trim_end_matches('0')
                .to_string()
        };
        (text, v / scale)
    }
    let u = nanos.unsigned_abs();
    let text = if u == 0 {
        return "0s".into();
    } else if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (frac, whole) = split(u, prec);
        format!("{whole}{frac}{unit}")
    } else {
        let (frac, secs) = split(u, 9);
        let (minutes, hours) = (secs / 60 % 60, secs / 3600);
        match (hours, secs / 60) {
            (0, 0) => format!("{}{frac}s", secs % 60),
            (0, _) => format!("{minutes}m{}{frac}s", secs % 60),
            _ => format!("{hours}h{minutes}m{}{frac}s", secs % 60),
        }
    };
    if nanos < 0 {
        format!("-{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Encodes `(field, varint)` pairs.
    fn varints(fields: &[(u8, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(n, mut v) in fields {
            out.push(n << 3);
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
        }
        out
    }

    fn special(s: Special, bytes: &[u8]) -> Value {
        decode(s, bytes, 0).unwrap()
    }

    #[test]
    fn time_is_rfc3339_seconds_in_utc() {
        assert_eq!(
            special(Special::Time, &varints(&[(1, 1_700_000_000)])),
            json!("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            special(Special::Time, &varints(&[(1, 1_700_000_000), (2, 999)])),
            json!("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            special(Special::Time, &varints(&[(1, 951_782_400)])),
            json!("2000-02-29T00:00:00Z")
        );
        assert_eq!(
            special(Special::Time, &varints(&[(1, 0)])),
            json!("1970-01-01T00:00:00Z")
        );
        assert_eq!(
            special(Special::Time, &varints(&[(1, (-1i64) as u64)])),
            json!("1969-12-31T23:59:59Z")
        );
        assert_eq!(
            special(Special::Time, &varints(&[(1, 253_402_300_799)])),
            json!("9999-12-31T23:59:59Z")
        );
        assert!(decode(Special::Time, &varints(&[(1, 253_402_300_800)]), 0).is_err());
    }

    #[test]
    fn zero_time_is_null() {
        assert_eq!(special(Special::Time, &[]), Value::Null);
        assert_eq!(special(Special::MicroTime, &[]), Value::Null);
        assert_eq!(
            special(Special::Time, &varints(&[(1, GO_ZERO_TIME as u64)])),
            Value::Null
        );
    }

    #[test]
    fn micro_time_has_six_truncated_digits() {
        let t = varints(&[(1, 1_700_000_000), (2, 123_456_789)]);
        assert_eq!(
            special(Special::MicroTime, &t),
            json!("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(
            special(Special::MicroTime, &varints(&[(1, 1_700_000_000)])),
            json!("2023-11-14T22:13:20.000000Z")
        );
    }

    #[test]
    fn duration_is_go_duration_string() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (300_000_000, "300ms"),
            (1_000_000_000, "1s"),
            (90_000_000_000, "1m30s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (7_200_000_000_000, "2h0m0s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(go_duration(nanos), text, "{nanos}");
        }
    }

    #[test]
    fn int_or_string() {
        assert_eq!(
            special(Special::IntOrString, &varints(&[(1, 0), (2, 8080)])),
            json!(8080)
        );
        assert_eq!(special(Special::IntOrString, &[]), json!(0));
        let mut named = varints(&[(1, 1)]);
        named.extend([0x1a, 4, b'h', b't', b't', b'p']);
        assert_eq!(special(Special::IntOrString, &named), json!("http"));
        assert!(decode(Special::IntOrString, &varints(&[(1, 2)]), 0).is_err());
    }

    #[test]
    fn quantity_and_raw_json() {
        assert_eq!(
            special(Special::Quantity, &[0x0a, 3, b'1', b'0', b'0']),
            json!("100")
        );
        assert_eq!(special(Special::Quantity, &[]), json!("0"));
        let raw = br#"{"f:metadata":{}}"#;
        let mut bytes = vec![0x0a, raw.len() as u8];
        bytes.extend_from_slice(raw);
        assert_eq!(
            special(Special::FieldsV1, &bytes),
            json!({"f:metadata": {}})
        );
        assert_eq!(special(Special::RawExtension, &[]), Value::Null);
        assert!(decode(Special::RawExtension, &[0x0a, 1, b'{'], 0).is_err());
    }
}
