//! A protobuf message, read through its schema table, as Kubernetes' JSON object.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::DecodeError;
use crate::schema::{Field, Message, Presence, Shape, Type};
use crate::special;
use crate::wire::{self, Fields};

/// Deep enough for any Kubernetes object; a bound so hostile input cannot overflow the stack.
pub(crate) const MAX_DEPTH: usize = 64;

pub(crate) fn message(
    msg: &'static Message,
    bytes: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::NestingTooDeep(MAX_DEPTH));
    }
    // Every occurrence of each known field, in wire order; unknown fields are skipped, as
    // protobuf readers do (a newer client may send fields this schema does not know).
    let mut occurrences: Vec<Vec<wire::Value<'_>>> = vec![Vec::new(); msg.fields.len()];
    for item in Fields::new(bytes) {
        let (number, value) = item.map_err(|e| DecodeError::malformed(msg.name, e.reason()))?;
        if let Ok(i) = msg.fields.binary_search_by_key(&number, |f| f.number) {
            occurrences[i].push(value);
        }
    }
    let mut object = Map::new();
    for (field, values) in msg.fields.iter().zip(&occurrences) {
        let json = match field.shape {
            Shape::One(ty) => one(msg, field, ty, values, depth),
            Shape::Repeated(ty) => repeated(msg, field, ty, values, depth),
            Shape::Map(ty) => map(msg, field, ty, values, depth),
        }
        .map_err(|e| e.within(field.json))?;
        match json {
            Some(Value::Object(inner)) if field.presence == Presence::Inline => {
                object.extend(inner)
            }
            Some(value) => {
                object.insert(field.json.to_string(), value);
            }
            None => {}
        }
    }
    Ok(object)
}

/// A singular field: the last scalar occurrence wins; message occurrences merge, which
/// for protobuf is decoding their concatenation.
fn one(
    msg: &'static Message,
    field: &Field,
    ty: Type,
    values: &[wire::Value<'_>],
    depth: usize,
) -> Result<Option<Value>, DecodeError> {
    if let Type::Nested(_) | Type::Special(_) = ty {
        if values.is_empty() {
            return Ok(None);
        }
        let mut parts = Vec::with_capacity(values.len());
        for value in values {
            parts.push(length_delimited(msg, field, value)?);
        }
        return nested(ty, &parts.concat(), depth).map(Some);
    }
    let Some(last) = values.last() else {
        return Ok((field.presence == Presence::Always).then(|| zero(ty)));
    };
    let value = scalar(msg, field, ty, last)?;
    Ok((field.presence != Presence::OmitZero || !is_zero(&value)).then_some(value))
}

/// A repeated field; numeric ones may arrive packed (one length-delimited run) or not.
fn repeated(
    msg: &'static Message,
    field: &Field,
    ty: Type,
    values: &[wire::Value<'_>],
    depth: usize,
) -> Result<Option<Value>, DecodeError> {
    if values.is_empty() {
        return Ok((field.presence == Presence::Always).then_some(Value::Null));
    }
    let mut items = Vec::with_capacity(values.len());
    for value in values {
        let index = items.len();
        let at = |e: DecodeError| e.within(&format!("[{index}]"));
        match (ty, value) {
            (Type::Nested(_) | Type::Special(_), _) => {
                let bytes = length_delimited(msg, field, value)?;
                items.push(nested(ty, bytes, depth).map_err(at)?);
            }
            (Type::Int32 | Type::Int64 | Type::Bool | Type::Double, wire::Value::Bytes(packed)) => {
                for item in unpack(msg, field, ty, packed)? {
                    items.push(item);
                }
            }
            _ => items.push(scalar(msg, field, ty, value).map_err(at)?),
        }
    }
    Ok(Some(Value::Array(items)))
}

/// A map field: repeated `{key = 1, value = 2}` entries, the last of equal keys winning.
fn map(
    msg: &'static Message,
    field: &Field,
    ty: Type,
    values: &[wire::Value<'_>],
    depth: usize,
) -> Result<Option<Value>, DecodeError> {
    static ENTRY: Message = Message {
        name: "map entry",
        fields: &[],
    };
    if values.is_empty() {
        return Ok((field.presence == Presence::Always).then_some(Value::Null));
    }
    let mut object = Map::new();
    for value in values {
        let entry = length_delimited(msg, field, value)?;
        let (mut key, mut val) = (None, None);
        for item in Fields::new(entry) {
            let (number, v) = item.map_err(|e| DecodeError::malformed(ENTRY.name, e.reason()))?;
            match number {
                1 => key = Some(v),
                2 => val = Some(v),
                _ => {}
            }
        }
        let key = match key {
            None => String::new(),
            Some(wire::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(other) => return Err(mismatch(&ENTRY, 1, &other, "length-delimited")),
        };
        let json = match (ty, val) {
            (Type::Nested(_) | Type::Special(_), None) => nested(ty, &[], depth),
            (Type::Nested(_) | Type::Special(_), Some(wire::Value::Bytes(b))) => {
                nested(ty, b, depth)
            }
            (Type::Nested(_) | Type::Special(_), Some(other)) => {
                Err(mismatch(&ENTRY, 2, &other, "length-delimited"))
            }
            (_, None) => Ok(zero(ty)),
            (_, Some(v)) => scalar(
                &ENTRY,
                &Field::new(2, "", field.shape, Presence::Present),
                ty,
                &v,
            ),
        }
        .map_err(|e| e.within(&format!("[{key}]")))?;
        object.insert(key, json);
    }
    Ok(Some(Value::Object(object)))
}

fn nested(ty: Type, bytes: &[u8], depth: usize) -> Result<Value, DecodeError> {
    match ty {
        Type::Nested(inner) => message(inner, bytes, depth + 1).map(Value::Object),
        Type::Special(s) => special::decode(s, bytes, depth),
        _ => unreachable!("nested() is only called for message types"),
    }
}

fn scalar(
    msg: &'static Message,
    field: &Field,
    ty: Type,
    value: &wire::Value<'_>,
) -> Result<Value, DecodeError> {
    Ok(match (ty, *value) {
        (Type::String, wire::Value::Bytes(b)) => {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
        (Type::Bytes, wire::Value::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        // int32 is sign-extended to 64 bits on the wire; the low 32 bits are the value.
        (Type::Int32, wire::Value::Varint(v)) => Value::from(v as i32),
        (Type::Int64, wire::Value::Varint(v)) => Value::from(v as i64),
        (Type::Bool, wire::Value::Varint(v)) => Value::Bool(v != 0),
        (Type::Double, wire::Value::Fixed64(bits)) => double(f64::from_bits(bits))?,
        (ty, other) => {
            let expected = match ty {
                Type::Double => "fixed64",
                Type::Int32 | Type::Int64 | Type::Bool => "varint",
                _ => "length-delimited",
            };
            return Err(mismatch(msg, field.number, &other, expected));
        }
    })
}

fn unpack(
    msg: &'static Message,
    field: &Field,
    ty: Type,
    mut packed: &[u8],
) -> Result<Vec<Value>, DecodeError> {
    let malformed = |e: wire::WireError| {
        DecodeError::malformed(
            msg.name,
            format!("packed field {}: {}", field.number, e.reason()),
        )
    };
    let mut out = Vec::new();
    while !packed.is_empty() {
        let value = if let Type::Double = ty {
            let (bits, rest) = packed
                .split_first_chunk::<8>()
                .ok_or(malformed(wire::WireError::Truncated))?;
            packed = rest;
            wire::Value::Fixed64(u64::from_le_bytes(*bits))
        } else {
            let mut pos = 0;
            let v = wire::read_varint(packed, &mut pos).map_err(malformed)?;
            packed = &packed[pos..];
            wire::Value::Varint(v)
        };
        out.push(
            scalar(msg, field, ty, &value).map_err(|e| e.within(&format!("[{}]", out.len())))?,
        );
    }
    Ok(out)
}

/// Go's encoding/json writes integral floats without a fraction (`2`, not `2.0`) and
/// refuses NaN and infinities.
fn double(f: f64) -> Result<Value, DecodeError> {
    if !f.is_finite() {
        return Err(DecodeError::invalid(format!("{f} has no JSON encoding")));
    }
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return Ok(Value::from(f as i64));
    }
    Ok(Value::from(f))
}

fn zero(ty: Type) -> Value {
    match ty {
        Type::String | Type::Bytes => Value::String(String::new()),
        Type::Int32 | Type::Int64 | Type::Double => Value::from(0),
        Type::Bool => Value::Bool(false),
        Type::Nested(_) | Type::Special(_) => Value::Null,
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        _ => false,
    }
}

fn length_delimited<'a>(
    msg: &'static Message,
    field: &Field,
    value: &wire::Value<'a>,
) -> Result<&'a [u8], DecodeError> {
    match value {
        wire::Value::Bytes(b) => Ok(b),
        other => Err(mismatch(msg, field.number, other, "length-delimited")),
    }
}

fn mismatch(
    msg: &'static Message,
    number: u32,
    found: &wire::Value<'_>,
    expected: &'static str,
) -> DecodeError {
    DecodeError::WireTypeMismatch {
        path: String::new(),
        message: msg.name,
        number,
        found: found.wire_type(),
        expected,
    }
}
