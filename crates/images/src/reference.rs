//! Image references as Docker and the kubelet read them.
//!
//! Upstream: `github.com/distribution/reference` (`ParseNormalizedNamed`, `splitDockerDomain`,
//! `Parse` and the grammar in `regexp.go`), `github.com/opencontainers/go-digest` (`Parse`),
//! containerd's `reference/docker.ParseDockerRef` (normalise, then `TagNameOnly`), and the
//! kubelet's `applyDefaultImageTag` (pkg/kubelet/images) with `ParseImageName`
//! (pkg/util/parsers). Error texts are upstream's, word for word.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// Docker Hub's canonical domain (`defaultDomain`).
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy Docker Hub domain canonicalised to [`DEFAULT_DOMAIN`] (`legacyDefaultDomain`).
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Docker Hub's namespace of official images (`officialRepoPrefix`).
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a reference without tag or digest gets (`parsers.DefaultImageTag`).
pub const DEFAULT_TAG: &str = "latest";
/// `NameTotalLengthMax`.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// `ReferenceRegexp` of distribution/reference, anchored; `\w` spelled as Go's ASCII class.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let path_component = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
    let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain_name = format!(r"{domain_component}(?:\.{domain_component})*");
    let host = format!(r"(?:{domain_name}|\[(?:[a-fA-F0-9:]+)\])");
    let domain_and_port = format!(r"{host}(?::[0-9]+)?");
    let name = format!(r"(?:{domain_and_port}/)?{path_component}(?:/{path_component})*");
    let tag = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
    Regex::new(&format!(r"^({name})(?::({tag}))?(?:@({digest}))?$")).expect("reference grammar")
});

/// `anchoredIdentifierRegexp`: a bare image ID is not a name.
static IDENTIFIER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[a-f0-9]{64}$").expect("identifier"));

/// Why a reference does not parse; `Display` is upstream's error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// `ErrReferenceInvalidFormat`.
    #[error("invalid reference format")]
    InvalidFormat,
    /// `ErrNameEmpty`.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// `ErrNameContainsUppercase`.
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// The check `ParseNormalizedNamed` makes before parsing.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    RemoteNameUppercase(String),
    /// `ErrNameTooLong`.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// A 64-hex image ID given as a name.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    Identifier(String),
    /// go-digest's `ErrDigestInvalidFormat`.
    #[error("invalid checksum digest format")]
    DigestInvalidFormat,
    /// go-digest's `ErrDigestInvalidLength`.
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    /// go-digest's `ErrDigestUnsupported`.
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
}

/// A normalised, named reference: `docker.io/library/nginx:1.27@sha256:...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry host (and port): `docker.io`, `localhost:5000`, `[::1]:5000`.
    pub domain: String,
    /// The repository path inside the registry: `library/nginx`.
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// `ParseNormalizedNamed`: familiar names become fully qualified (`nginx` →
    /// `docker.io/library/nginx`); no tag is added.
    pub fn parse_normalized(s: &str) -> Result<Self, ReferenceError> {
        if IDENTIFIER.is_match(s) {
            return Err(ReferenceError::Identifier(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = match remainder.find(':') {
            Some(i) => &remainder[..i],
            None => &remainder[..],
        };
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::RemoteNameUppercase(remote.to_string()));
        }
        parse(&format!("{domain}/{remainder}"))
    }

    /// containerd's `ParseDockerRef`: normalised, and `:latest` when neither tag nor digest
    /// is given (`TagNameOnly`). `nginx` → `docker.io/library/nginx:latest`.
    pub fn parse_docker_ref(s: &str) -> Result<Self, ReferenceError> {
        let mut r = Self::parse_normalized(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// `Named.Name()`: `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The same repository at `digest` (a repo digest: `docker.io/library/nginx@sha256:...`).
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `splitDockerDomain` (distribution/reference normalize.go).
fn split_docker_domain(name: &str) -> (String, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        return (
            DEFAULT_DOMAIN.to_string(),
            format!("{OFFICIAL_REPO_PREFIX}{name}"),
        );
    };
    let (domain, mut remote) = if maybe_domain == "localhost" {
        (maybe_domain.to_string(), maybe_remote.to_string())
    } else if maybe_domain == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN.to_string(), maybe_remote.to_string())
    } else if maybe_domain.contains(['.', ':']) || maybe_domain.to_lowercase() != maybe_domain {
        (maybe_domain.to_string(), maybe_remote.to_string())
    } else {
        (DEFAULT_DOMAIN.to_string(), name.to_string())
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        remote = format!("{OFFICIAL_REPO_PREFIX}{remote}");
    }
    (domain, remote)
}

/// `reference.Parse` on an already qualified string.
fn parse(s: &str) -> Result<Reference, ReferenceError> {
    let Some(caps) = REFERENCE.captures(s) else {
        if s.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        if REFERENCE.is_match(&s.to_lowercase()) {
            return Err(ReferenceError::NameContainsUppercase);
        }
        return Err(ReferenceError::InvalidFormat);
    };
    let name = &caps[1];
    if name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    let (domain, path) = match name.split_once('/') {
        // The grammar only lets a domain in front of a `/`; Parse splits on the domain regexp,
        // which after normalisation is always the first component.
        Some((d, p)) => (d.to_string(), p.to_string()),
        None => (String::new(), name.to_string()),
    };
    let digest = match caps.get(3) {
        Some(d) => {
            validate_digest(d.as_str())?;
            Some(d.as_str().to_string())
        }
        None => None,
    };
    Ok(Reference {
        domain,
        path,
        tag: caps.get(2).map(|t| t.as_str().to_string()),
        digest,
    })
}

/// go-digest's `Digest.Validate` for the algorithms it registers (sha256, sha384, sha512).
pub fn validate_digest(s: &str) -> Result<(), ReferenceError> {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return Err(ReferenceError::DigestInvalidFormat);
    };
    if algorithm.is_empty() || encoded.is_empty() {
        return Err(ReferenceError::DigestInvalidFormat);
    }
    let size = match algorithm {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => return Err(ReferenceError::DigestUnsupported),
    };
    if encoded.len() != size * 2 {
        return Err(ReferenceError::DigestInvalidLength);
    }
    if !encoded
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(ReferenceError::DigestInvalidFormat);
    }
    Ok(())
}

/// The kubelet's `ParseImageName` error: `couldn't parse image name "X": <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("couldn't parse image name {image:?}: {source}")]
pub struct ImageNameError {
    pub image: String,
    pub source: ReferenceError,
}

/// The kubelet's `ParseImageName`: (repository to pull, tag, digest); the tag is `latest`
/// when neither tag nor digest is given.
pub fn parse_image_name(image: &str) -> Result<(String, String, String), ImageNameError> {
    let r = Reference::parse_normalized(image).map_err(|source| ImageNameError {
        image: image.to_string(),
        source,
    })?;
    let digest = r.digest.clone().unwrap_or_default();
    let tag = match (&r.tag, &r.digest) {
        (Some(t), _) => t.clone(),
        (None, None) => DEFAULT_TAG.to_string(),
        (None, Some(_)) => String::new(),
    };
    Ok((r.name(), tag, digest))
}

/// The kubelet's `applyDefaultImageTag`: `nginx` → `nginx:latest`, everything else as written
/// (the kubelet keeps names short; the runtime qualifies them).
pub fn apply_default_image_tag(image: &str) -> Result<String, ImageNameError> {
    let (_, tag, digest) = parse_image_name(image)?;
    if digest.is_empty() && !tag.is_empty() && !image.ends_with(&format!(":{tag}")) {
        return Ok(format!("{image}:{tag}"));
    }
    Ok(image.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn familiar_names_are_qualified() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("user/x", "docker.io/user/x:latest"),
            ("index.docker.io/nginx", "docker.io/library/nginx:latest"),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b:v1"),
            ("Example.com/x", "Example.com/x:latest"),
            ("[::1]:5000/x", "[::1]:5000/x:latest"),
            ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
        ];
        for (input, want) in cases {
            let r = Reference::parse_docker_ref(input).unwrap();
            assert_eq!(r.to_string(), want, "{input}");
        }
    }

    #[test]
    fn digests_and_tag_plus_digest() {
        let r = Reference::parse_docker_ref(&format!("nginx@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/nginx@{D}"));
        assert_eq!(r.tag, None);
        let r = Reference::parse_docker_ref(&format!("nginx:1.27@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.27"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.name(), "docker.io/library/nginx");
    }

    #[test]
    fn invalid_references_fail_with_upstream_messages() {
        let msg = |s: &str| Reference::parse_normalized(s).unwrap_err().to_string();
        // "" normalises to "docker.io/library/", which is no reference.
        assert_eq!(msg(""), "invalid reference format");
        assert_eq!(msg("nginx:"), "invalid reference format");
        assert_eq!(msg("a//b"), "invalid reference format");
        assert_eq!(
            msg("busyBOX"),
            "invalid reference format: repository name (library/busyBOX) must be lowercase"
        );
        assert_eq!(
            msg(&"a".repeat(64)),
            format!(
                "invalid repository name ({}), cannot specify 64-byte hexadecimal strings",
                "a".repeat(64)
            )
        );
        assert_eq!(msg("nginx@sha256:abc"), "invalid reference format");
        assert_eq!(
            msg(&format!("nginx@sha256:{}", "0".repeat(40))),
            "invalid checksum digest length"
        );
        assert_eq!(
            msg(&format!("nginx@md5:{}", "0".repeat(32))),
            "unsupported digest algorithm"
        );
        assert_eq!(
            msg(&format!("x/{}", "a".repeat(260))),
            "repository name must not be more than 255 characters"
        );
    }

    #[test]
    fn kubelet_default_tag() {
        assert_eq!(apply_default_image_tag("nginx").unwrap(), "nginx:latest");
        assert_eq!(apply_default_image_tag("nginx:1.27").unwrap(), "nginx:1.27");
        let by_digest = format!("nginx@{D}");
        assert_eq!(apply_default_image_tag(&by_digest).unwrap(), by_digest);
        assert_eq!(
            apply_default_image_tag("localhost:5000/x").unwrap(),
            "localhost:5000/x:latest"
        );
        assert_eq!(
            apply_default_image_tag("THIS IS NOT VALID")
                .unwrap_err()
                .to_string(),
            "couldn't parse image name \"THIS IS NOT VALID\": invalid reference format: \
             repository name (library/THIS IS NOT VALID) must be lowercase"
        );
        assert_eq!(
            parse_image_name("nginx").unwrap(),
            (
                "docker.io/library/nginx".into(),
                "latest".into(),
                String::new()
            )
        );
    }
}
