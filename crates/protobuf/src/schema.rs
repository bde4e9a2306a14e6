//! The shape of the schema tables in `schema_generated.rs`: per message, per field
//! number, the JSON name, the type, and when Kubernetes' JSON would show the field.

/// One protobuf message type (a Go struct of k8s.io/api or k8s.io/apimachinery).
#[derive(Debug)]
pub(crate) struct Message {
    /// `<group>.<version>.<Type>`, for error messages.
    pub name: &'static str,
    /// Sorted by field number.
    pub fields: &'static [Field],
}

#[derive(Debug)]
pub(crate) struct Field {
    pub number: u32,
    /// The JSON key, which is also the field's name in Kubernetes' .proto files
    /// (empty for an inline field).
    pub json: &'static str,
    pub shape: Shape,
    pub presence: Presence,
}

impl Field {
    pub(crate) const fn new(
        number: u32,
        json: &'static str,
        shape: Shape,
        presence: Presence,
    ) -> Self {
        Field {
            number,
            json,
            shape,
            presence,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// `optional T`: the last occurrence wins (messages: occurrences merge).
    One(Type),
    /// `repeated T`: a JSON array; scalars may be packed or not.
    Repeated(Type),
    /// `map<string, T>` (repeated `{key = 1, value = 2}` entries): a JSON object.
    Map(Type),
}

/// Variants not reachable from today's kinds stay, so that the generator can describe
/// any Kubernetes field when kinds are added.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Type {
    String,
    Int32,
    Int64,
    Bool,
    Double,
    /// JSON: a base64 string, like Go's `[]byte`.
    Bytes,
    Nested(&'static Message),
    Special(Special),
}

/// apimachinery types whose JSON is not their protobuf message's fields.
#[allow(dead_code)] // see Type
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    /// `{seconds, nanos}` -> "2006-01-02T15:04:05Z" (whole seconds), or null if empty.
    Time,
    /// `{seconds, nanos}` -> "2006-01-02T15:04:05.000000Z", or null if empty.
    MicroTime,
    /// `{duration}` nanoseconds -> Go's `time.Duration.String()`, e.g. "1m30s".
    Duration,
    /// `{type, intVal, strVal}` -> a JSON number or string.
    IntOrString,
    /// `{string}` -> the string.
    Quantity,
    /// `{raw}` bytes holding JSON -> that JSON.
    RawExtension,
    /// `{raw}` bytes holding JSON -> that JSON.
    FieldsV1,
}

/// When Kubernetes' JSON encoding shows a field, given what the protobuf holds.
///
/// Go's protobuf encoder writes every non-pointer scalar field, zero or not, so a zero on
/// the wire does not mean the client set it; Go's JSON encoder then drops the zeros of
/// `omitempty` fields. Pointers, lists, maps and messages are written only when set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Shown when on the wire, whatever its value (Go pointers, lists, maps, messages).
    /// An absent message stays absent even when Go's JSON would show `{}` or `null`:
    /// Go clients always send struct fields, and absent means the same to every reader.
    Present,
    /// A Go value tagged `omitempty`: shown only when not zero / empty.
    OmitZero,
    /// A Go value without `omitempty`: always shown, as its zero (lists and maps: null)
    /// when absent.
    Always,
    /// A Go struct embedded with `json:",inline"`: its fields join the parent's object.
    Inline,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Every message reachable from the kinds, each once.
    fn all_messages() -> Vec<&'static Message> {
        let mut seen = HashSet::new();
        let mut todo: Vec<&'static Message> =
            crate::schema_generated::KINDS.iter().map(|k| k.2).collect();
        let mut out = Vec::new();
        while let Some(msg) = todo.pop() {
            if !seen.insert(msg.name) {
                continue;
            }
            out.push(msg);
            for field in msg.fields {
                if let Shape::One(Type::Nested(m))
                | Shape::Repeated(Type::Nested(m))
                | Shape::Map(Type::Nested(m)) = field.shape
                {
                    todo.push(m);
                }
            }
        }
        out
    }

    /// The decoder finds fields by binary search and builds objects keyed by JSON name.
    #[test]
    fn fields_are_sorted_and_names_unique() {
        let messages = all_messages();
        assert!(messages.len() > 150, "{} messages", messages.len());
        for msg in messages {
            assert!(
                msg.fields.windows(2).all(|w| w[0].number < w[1].number),
                "{} is not sorted",
                msg.name
            );
            let mut names = HashSet::new();
            for field in msg.fields {
                assert_eq!(
                    field.json.is_empty(),
                    field.presence == Presence::Inline,
                    "{}.{}",
                    msg.name,
                    field.number
                );
                assert!(
                    field.json.is_empty() || names.insert(field.json),
                    "{}.{} twice",
                    msg.name,
                    field.json
                );
            }
        }
    }
}
