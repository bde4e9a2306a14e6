//! Kubernetes protobuf request bodies, decoded into Kubernetes' JSON.
//!
//! kubectl's typed commands (`kubectl create namespace`, `create service`, `create
//! deployment`, ...) and every client-go program send request bodies as
//! `application/vnd.kubernetes.protobuf`. svcnet's API server works on JSON, so it turns
//! such a body into exactly the JSON the same object has in Kubernetes' JSON encoding
//! with [`decode`], and carries on as if the client had sent that JSON.
//!
//! Start at [`decode`]. The body is the magic `k8s\0` followed by a `runtime.Unknown`
//! envelope whose TypeMeta names the object and whose `raw` holds the object's own
//! message. That message is read generically (`wire.rs`) through a table of the
//! Kubernetes message types (`schema.rs`, generated into `schema_generated.rs` by
//! `gen/gen_schema.py` -- see gen/README.md), with the apimachinery types that have their
//! own JSON form (`Time`, `IntOrString`, `Quantity`, ...) in `special.rs`.
//!
//! What "the JSON the object has" means, as Go does it: a field is present when Go's
//! JSON encoder would write it. Go's protobuf encoder writes every non-pointer scalar,
//! so a `clusterIP: ""` or `nodePort: 0` on the wire is dropped again (those fields are
//! `omitempty`), while a pointer such as `replicas: 0` or `gracePeriodSeconds: 0` is kept.
//! Struct fields Go always writes arrive and are kept as they are: an unset `targetPort`
//! is `0` and an unset `creationTimestamp` is `null`, as in client-go's own JSON.
//!
//! So the caller gets what client-go would have sent as JSON, Go-isms included, and must
//! read it as Kubernetes does: `targetPort: 0` means "same as port", and an
//! autoscaling/v1 Scale asking for 0 replicas has no `spec.replicas` at all (a plain
//! `int32 omitempty` in Go). tests/kubectl/ holds bodies captured from kubectl v1.32 and
//! kubectl's own JSON for them; the decoder reproduces that JSON exactly.

mod decode;
mod error;
mod schema;
#[rustfmt::skip] // generated; gen/gen_schema.py writes it the way it should stay
mod schema_generated;
mod special;
mod wire;

pub use error::DecodeError;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\x00";

/// A decoded object: its TypeMeta, and its JSON including `apiVersion` and `kind`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub api_version: String,
    pub kind: String,
    pub object: serde_json::Value,
}

impl Decoded {
    fn into_json(self) -> serde_json::Map<String, serde_json::Value> {
        match self.object {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("decode() always returns an object"),
        }
    }
}

/// Decodes a Kubernetes protobuf body (`"k8s\0"` magic + `runtime.Unknown` envelope)
/// into the JSON the same object has in Kubernetes' JSON encoding.
///
/// Kinds without a schema (see `KINDS` in schema_generated.rs) are
/// [`DecodeError::UnsupportedKind`]; the caller can answer 415 for those.
pub fn decode(body: &[u8]) -> Result<Decoded, DecodeError> {
    decode_at_depth(body, 0)
}

fn decode_at_depth(body: &[u8], depth: usize) -> Result<Decoded, DecodeError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(DecodeError::MagicMissing)?;
    let unknown = Unknown::parse(envelope)?;
    if !unknown.content_encoding.is_empty() {
        return Err(DecodeError::ContentEncodingUnsupported(
            unknown.content_encoding,
        ));
    }
    if !unknown.content_type.is_empty() && unknown.content_type != MEDIA_TYPE {
        return Err(DecodeError::ContentTypeUnsupported(unknown.content_type));
    }
    let schema = schema_generated::KINDS
        .iter()
        .find(|(version, kind, _)| {
            (*version == "*" || *version == unknown.api_version) && *kind == unknown.kind
        })
        .map(|(_, _, schema)| *schema)
        .ok_or_else(|| DecodeError::UnsupportedKind {
            api_version: unknown.api_version.clone(),
            kind: unknown.kind.clone(),
        })?;
    let mut object = serde_json::Map::new();
    object.insert("apiVersion".into(), unknown.api_version.clone().into());
    object.insert("kind".into(), unknown.kind.clone().into());
    object.extend(decode::message(schema, unknown.raw, depth)?);
    Ok(Decoded {
        api_version: unknown.api_version,
        kind: unknown.kind,
        object: serde_json::Value::Object(object),
    })
}

/// `runtime.Unknown`: `typeMeta = 1 {apiVersion = 1, kind = 2}`, `raw = 2`,
/// `contentEncoding = 3`, `contentType = 4`.
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

impl<'a> Unknown<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut unknown = Unknown {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
            content_type: String::new(),
        };
        for (number, value) in Self::fields(bytes)? {
            match number {
                1 => {
                    for (number, value) in Self::fields(value)? {
                        match number {
                            1 => unknown.api_version = String::from_utf8_lossy(value).into_owned(),
                            2 => unknown.kind = String::from_utf8_lossy(value).into_owned(),
                            _ => {}
                        }
                    }
                }
                2 => unknown.raw = value,
                3 => unknown.content_encoding = String::from_utf8_lossy(value).into_owned(),
                4 => unknown.content_type = String::from_utf8_lossy(value).into_owned(),
                _ => {}
            }
        }
        Ok(unknown)
    }

    /// The length-delimited fields of a message (all of the envelope's fields are).
    fn fields(bytes: &'a [u8]) -> Result<Vec<(u32, &'a [u8])>, DecodeError> {
        let malformed = |reason: String| DecodeError::EnvelopeMalformed { reason };
        let mut out = Vec::new();
        for item in wire::Fields::new(bytes) {
            match item.map_err(|e| malformed(e.reason()))? {
                (number, wire::Value::Bytes(b)) => out.push((number, b)),
                (number, other) => {
                    return Err(malformed(format!(
                        "field {number} has wire type {}",
                        other.wire_type()
                    )));
                }
            }
        }
        Ok(out)
    }
}
