//! The protobuf wire format, just enough of it: a reader over one message's fields.
//!
//! Kubernetes' messages are proto2 and use only varints, length-delimited fields and (in
//! principle) fixed-width numbers; groups never occur and are rejected.

/// One field's raw value as found on the wire, before the schema gives it a meaning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Value<'_> {
    /// The wire type's name, for error messages.
    pub(crate) fn wire_type(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "fixed64",
            Value::Bytes(_) => "length-delimited",
            Value::Fixed32(_) => "fixed32",
        }
    }
}

/// Why the bytes are not a protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireError {
    Truncated,
    VarintTooLong,
    FieldNumberZero,
    GroupsUnsupported,
    UnknownWireType(u8),
}

impl WireError {
    pub(crate) fn reason(self) -> String {
        match self {
            WireError::Truncated => "the message ends inside a field".into(),
            WireError::VarintTooLong => "a varint is longer than 10 bytes".into(),
            WireError::FieldNumberZero => "field number 0".into(),
            WireError::GroupsUnsupported => "proto2 groups are not used by Kubernetes".into(),
            WireError::UnknownWireType(t) => format!("unknown wire type {t}"),
        }
    }
}

/// Iterates over `(field number, value)` of one message, in wire order.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        read_varint(self.buf, &mut self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| WireError::Truncated)?;
        if number == 0 {
            return Err(WireError::FieldNumberZero);
        }
        let value = match (key & 7) as u8 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                Value::Bytes(self.take(len)?)
            }
            3 | 4 => return Err(WireError::GroupsUnsupported),
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            other => return Err(WireError::UnknownWireType(other)),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let item = self.field();
        if item.is_err() {
            self.pos = self.buf.len(); // stop after the first error
        }
        Some(item)
    }
}

/// Reads a base-128 varint at `*pos`, advancing it.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = *buf.get(*pos).ok_or(WireError::Truncated)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(WireError::VarintTooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8]) -> Result<Vec<(u32, Value<'_>)>, WireError> {
        Fields::new(buf).collect()
    }

    #[test]
    fn reads_each_wire_type() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x12, 0x02, b'h', b'i', // 2: "hi"
            0x19, 1, 0, 0, 0, 0, 0, 0, 0, // 3: fixed64 1
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        assert_eq!(
            all(&buf).unwrap(),
            vec![
                (1, Value::Varint(150)),
                (2, Value::Bytes(b"hi")),
                (3, Value::Fixed64(1)),
                (4, Value::Fixed32(2)),
            ]
        );
    }

    #[test]
    fn negative_int32_is_a_ten_byte_varint() {
        let buf = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(all(&buf).unwrap(), vec![(1, Value::Varint(u64::MAX))]);
        assert_eq!(u64::MAX as i32, -1);
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(all(&[0x12, 0x05, b'a']), Err(WireError::Truncated));
        assert_eq!(all(&[0x08]), Err(WireError::Truncated));
        assert_eq!(
            all(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(WireError::VarintTooLong)
        );
        assert_eq!(all(&[0x00, 0x00]), Err(WireError::FieldNumberZero));
        assert_eq!(all(&[0x0b]), Err(WireError::GroupsUnsupported));
        assert_eq!(all(&[0x0e]), Err(WireError::UnknownWireType(6)));
    }
}
