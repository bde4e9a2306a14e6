/// Why a protobuf request body could not be turned into JSON.
///
/// `path` fields point into the object in JSON terms (`spec.ports[0].targetPort`), so an
/// API server can put them in a 400 response the client's user can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("the body does not start with the Kubernetes protobuf magic \"k8s\\x00\"")]
    MagicMissing,
    #[error("the runtime.Unknown envelope is malformed: {reason}")]
    EnvelopeMalformed { reason: String },
    #[error("the protobuf envelope's content encoding {0:?} is not supported")]
    ContentEncodingUnsupported(String),
    #[error("the protobuf envelope's content type {0:?} is not supported")]
    ContentTypeUnsupported(String),
    #[error("protobuf is not supported for apiVersion {api_version:?}, kind {kind:?}")]
    UnsupportedKind { api_version: String, kind: String },
    #[error("malformed protobuf at {path:?} ({message}): {reason}")]
    WireMalformed {
        path: String,
        message: &'static str,
        reason: String,
    },
    #[error("{path:?} ({message} field {number}) has wire type {found}, expected {expected}")]
    WireTypeMismatch {
        path: String,
        message: &'static str,
        number: u32,
        found: &'static str,
        expected: &'static str,
    },
    #[error("{path:?}: {reason}")]
    ValueInvalid { path: String, reason: String },
    #[error("objects are nested deeper than {0} levels")]
    NestingTooDeep(usize),
}

impl DecodeError {
    /// Prefixes the error's path with one step (a JSON key, or `[3]` / `[key]`), as the
    /// error travels up from a nested value to the object that holds it.
    pub(crate) fn within(mut self, step: &str) -> Self {
        if let DecodeError::WireMalformed { path, .. }
        | DecodeError::WireTypeMismatch { path, .. }
        | DecodeError::ValueInvalid { path, .. } = &mut self
        {
            if step.is_empty() {
                return self;
            }
            *path = match path.as_str() {
                "" => step.to_string(),
                p if p.starts_with('[') => format!("{step}{p}"),
                p => format!("{step}.{p}"),
            };
        }
        self
    }

    /// Bytes that are not protobuf's wire format, inside a message of type `message`.
    pub(crate) fn malformed(message: &'static str, reason: impl Into<String>) -> Self {
        DecodeError::WireMalformed {
            path: String::new(),
            message,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        DecodeError::ValueInvalid {
            path: String::new(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_from_the_inside_out() {
        let e = DecodeError::invalid("bad")
            .within("targetPort")
            .within("[0]")
            .within("ports")
            .within("spec");
        assert_eq!(e.to_string(), "\"spec.ports[0].targetPort\": bad");
    }
}
