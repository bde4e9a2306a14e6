//! Where to pull from and with which credentials: k3s's `registries.yaml` and the kubelet's
//! `imagePullSecrets` (`kubernetes.io/dockerconfigjson`).
//!
//! Upstream: k3s `pkg/agent/templates` + `docs/registries.yaml` (mirrors with `endpoint` lists
//! tried in order then the registry itself, `rewrite` rules applied on mirrors only, a `"*"`
//! mirror for every registry, `configs` keyed by endpoint host with `auth` and `tls`);
//! containerd's defaults (Docker Hub's endpoint is `registry-1.docker.io`; a loopback registry
//! is plain HTTP); the kubelet's credential keyring (pkg/credentialprovider/keyring.go:
//! keys match by host with `*` globs, port and path prefix, `index.docker.io/v1/` is Docker Hub).
//!
//! Deviations, because oci-client builds its URLs as `scheme://host/v2/...`: an endpoint may
//! not carry a path other than `/` or `/v2`; TLS client certificates (`cert_file`,
//! `key_file`) and `identitytoken` are read but not used (a warning is logged).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use regex::Regex;
use serde::Deserialize;

use crate::reference::{Reference, DEFAULT_DOMAIN};

/// Docker Hub's API endpoint (containerd's `DefaultHost` rewrite of docker.io).
pub const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

/// A registries.yaml error.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to parse registries config: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("invalid rewrite {pattern:?} for registry {registry:?}: {source}")]
    Rewrite {
        registry: String,
        pattern: String,
        source: regex::Error,
    },
    #[error("invalid endpoint {endpoint:?} for registry {registry:?}: {reason}")]
    Endpoint {
        registry: String,
        endpoint: String,
        reason: &'static str,
    },
    #[error("failed to parse dockerconfigjson: {0}")]
    DockerConfig(String),
}

/// k3s's `registries.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistriesConfig {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

/// `mirrors.<registry>`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Regular expression → replacement (`$1`) on the repository path.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// `configs.<host>`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistryConfig {
    pub auth: Option<AuthConfig>,
    pub tls: Option<TlsConfig>,
}

/// `configs.<host>.auth`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthConfig {
    pub username: Option<String>,
    pub password: Option<String>,
    /// base64 of `username:password`.
    pub auth: Option<String>,
    pub identitytoken: Option<String>,
}

/// `configs.<host>.tls`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A username and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// One place to try, in order: a mirror or the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as oci-client puts it in URLs.
    pub host: String,
    pub plain_http: bool,
    /// The repository path on this endpoint (after a mirror's rewrite).
    pub repository: String,
    /// Whether this is the registry itself rather than a mirror.
    pub is_default: bool,
    pub credentials: Option<Credentials>,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// Compiled registries.yaml.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    config: RegistriesConfig,
    rewrites: BTreeMap<String, Vec<(Regex, String)>>,
    disable_default_endpoint: bool,
}

impl Registries {
    /// No mirrors, no credentials: every image from its own registry.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads `registries.yaml`; a missing file is no configuration, as in k3s.
    pub fn load(path: &Path) -> Result<Self, RegistriesError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::none()),
            Err(source) => Err(RegistriesError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn parse(yaml: &str) -> Result<Self, RegistriesError> {
        let config: RegistriesConfig = if yaml.trim().is_empty() {
            RegistriesConfig::default()
        } else {
            serde_yaml::from_str(yaml)?
        };
        let mut rewrites = BTreeMap::new();
        for (registry, mirror) in &config.mirrors {
            let mut compiled = Vec::new();
            for (pattern, replacement) in &mirror.rewrite {
                let re = Regex::new(pattern).map_err(|source| RegistriesError::Rewrite {
                    registry: registry.clone(),
                    pattern: pattern.clone(),
                    source,
                })?;
                compiled.push((re, replacement.clone()));
            }
            rewrites.insert(registry.clone(), compiled);
            for endpoint in &mirror.endpoint {
                parse_endpoint(endpoint).map_err(|reason| RegistriesError::Endpoint {
                    registry: registry.clone(),
                    endpoint: endpoint.clone(),
                    reason,
                })?;
            }
        }
        Ok(Self {
            config,
            rewrites,
            disable_default_endpoint: false,
        })
    }

    /// k3s's `--disable-default-registry-endpoint`: a registry with a mirror is pulled from its
    /// mirror endpoints only, never from the registry itself (an air-gapped site, a test).
    pub fn disable_default_endpoint(mut self, disable: bool) -> Self {
        self.disable_default_endpoint = disable;
        self
    }

    pub fn config(&self) -> &RegistriesConfig {
        &self.config
    }

    /// The endpoints to try for `reference`, in order: the mirror's endpoints (the registry's
    /// own entry, else `"*"`), with the mirror's rewrites applied, then the registry itself.
    /// Credentials from `keyring` (`imagePullSecrets`) go to the registry itself only, before
    /// its registries.yaml auth, as containerd's CRI does; a mirror uses its own `configs`.
    pub fn endpoints(&self, reference: &Reference, keyring: &Keyring) -> Vec<Endpoint> {
        let registry = reference.domain.as_str();
        let (mirror_key, mirror) = match self.config.mirrors.get_key_value(registry) {
            Some((k, m)) => (Some(k.as_str()), Some(m)),
            None => match self.config.mirrors.get_key_value("*") {
                Some((k, m)) => (Some(k.as_str()), Some(m)),
                None => (None, None),
            },
        };
        let mut out = Vec::new();
        if let (Some(key), Some(mirror)) = (mirror_key, mirror) {
            let repository = self.rewrite(key, &reference.path);
            for endpoint in &mirror.endpoint {
                let Ok((host, plain_http)) = parse_endpoint(endpoint) else {
                    continue;
                };
                if host == default_host(registry) {
                    // The registry itself listed as a mirror: tried below, in its place.
                    continue;
                }
                let credentials = self.auth_for(&host);
                out.push(self.endpoint(host, plain_http, repository.clone(), false, credentials));
            }
        }
        if mirror.is_some() && self.disable_default_endpoint {
            return out;
        }
        let host = default_host(registry);
        let plain_http = is_loopback_host(&host);
        // containerd's CRI: the pull secret first, then the registry's configured auth.
        let credentials = keyring
            .lookup(reference)
            .or_else(|| self.auth_for(&host))
            .or_else(|| self.auth_for(registry));
        out.push(self.endpoint(host, plain_http, reference.path.clone(), true, credentials));
        out
    }

    fn endpoint(
        &self,
        host: String,
        plain_http: bool,
        repository: String,
        is_default: bool,
        credentials: Option<Credentials>,
    ) -> Endpoint {
        let tls = self.config.configs.get(&host).and_then(|c| c.tls.clone());
        if let Some(tls) = &tls {
            if tls.cert_file.is_some() || tls.key_file.is_some() {
                tracing::warn!(%host, "TLS client certificates in registries.yaml are not supported; ignored");
            }
        }
        Endpoint {
            host,
            plain_http,
            repository,
            is_default,
            credentials,
            ca_file: tls.as_ref().and_then(|t| t.ca_file.clone()),
            insecure_skip_verify: tls.map(|t| t.insecure_skip_verify).unwrap_or(false),
        }
    }

    fn rewrite(&self, mirror_key: &str, path: &str) -> String {
        for (re, replacement) in self.rewrites.get(mirror_key).into_iter().flatten() {
            if re.is_match(path) {
                return re.replace_all(path, replacement.as_str()).into_owned();
            }
        }
        path.to_string()
    }

    fn auth_for(&self, host: &str) -> Option<Credentials> {
        let auth = self.config.configs.get(host)?.auth.as_ref()?;
        if auth.identitytoken.is_some() {
            tracing::warn!(%host, "identitytoken in registries.yaml is not supported; ignored");
        }
        if let (Some(u), Some(p)) = (&auth.username, &auth.password) {
            return Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            });
        }
        auth.auth.as_deref().and_then(decode_auth)
    }
}

/// The host containerd talks to for a registry name.
fn default_host(registry: &str) -> String {
    if registry == DEFAULT_DOMAIN {
        DOCKER_HUB_ENDPOINT.to_string()
    } else {
        registry.to_string()
    }
}

/// containerd treats `localhost` and loopback addresses as plain-HTTP registries.
fn is_loopback_host(host: &str) -> bool {
    let h = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// `http://127.0.0.1:5000` → (`127.0.0.1:5000`, plain HTTP); no scheme means https.
fn parse_endpoint(endpoint: &str) -> Result<(String, bool), &'static str> {
    let (plain_http, rest) = if let Some(rest) = endpoint.strip_prefix("http://") {
        (true, rest)
    } else if let Some(rest) = endpoint.strip_prefix("https://") {
        (false, rest)
    } else if endpoint.contains("://") {
        return Err("the scheme must be http or https");
    } else {
        (false, endpoint)
    };
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !matches!(path.trim_end_matches('/'), "" | "v2") {
        return Err("an endpoint path other than /v2 is not supported");
    }
    Ok((host.to_string(), plain_http))
}

fn decode_auth(auth: &str) -> Option<Credentials> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials {
        username: u.to_string(),
        password: p.trim_end_matches('\0').to_string(),
    })
}

/// Credentials from `kubernetes.io/dockerconfigjson` (and `.dockercfg`) Secrets, as the
/// kubelet's `BasicDockerKeyring`.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    entries: Vec<(KeyPattern, Credentials)>,
}

#[derive(Debug, Clone)]
struct KeyPattern {
    host: String,
    port: Option<String>,
    path: String,
}

#[derive(Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, DockerConfigEntry>,
}

#[derive(Deserialize)]
struct DockerConfigEntry {
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
}

impl Keyring {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds a Secret's `.dockerconfigjson` (`{"auths": {...}}`) or legacy `.dockercfg`
    /// (the map alone).
    pub fn add_docker_config_json(&mut self, json: &[u8]) -> Result<(), RegistriesError> {
        let value: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| RegistriesError::DockerConfig(e.to_string()))?;
        let auths = if value.get("auths").is_some() {
            serde_json::from_value::<DockerConfigJson>(value)
                .map_err(|e| RegistriesError::DockerConfig(e.to_string()))?
                .auths
        } else {
            serde_json::from_value::<BTreeMap<String, DockerConfigEntry>>(value)
                .map_err(|e| RegistriesError::DockerConfig(e.to_string()))?
        };
        for (key, entry) in auths {
            let creds = match (entry.username, entry.password) {
                (Some(username), Some(password)) if !username.is_empty() => {
                    Credentials { username, password }
                }
                _ => match entry.auth.as_deref().and_then(decode_auth) {
                    Some(c) => c,
                    None => continue,
                },
            };
            self.entries.push((KeyPattern::parse(&key), creds));
        }
        // Most specific first: the kubelet sorts keys in reverse lexicographic order.
        self.entries.sort_by(|a, b| {
            (b.0.host.len() + b.0.path.len()).cmp(&(a.0.host.len() + a.0.path.len()))
        });
        Ok(())
    }

    /// The first credentials whose key matches the image (the kubelet tries each in turn;
    /// we use the most specific).
    pub fn lookup(&self, reference: &Reference) -> Option<Credentials> {
        let (host, port) = split_port(&reference.domain);
        let hosts: Vec<&str> = if reference.domain == DEFAULT_DOMAIN {
            vec![DEFAULT_DOMAIN, "index.docker.io", DOCKER_HUB_ENDPOINT]
        } else {
            vec![host]
        };
        self.entries
            .iter()
            .find(|(k, _)| {
                hosts.iter().any(|h| glob_host_match(&k.host, h))
                    && k.port.as_deref() == port
                    && (k.path.is_empty() || k.path == "v1" || reference.path.starts_with(&k.path))
            })
            .map(|(_, c)| c.clone())
    }
}

impl KeyPattern {
    /// `ParseSchemelessURL`: scheme dropped, host split from port and path.
    fn parse(key: &str) -> Self {
        let rest = key.split_once("://").map(|(_, r)| r).unwrap_or(key);
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = split_port(hostport);
        let host = if host == "index.docker.io" {
            DEFAULT_DOMAIN
        } else {
            host
        };
        KeyPattern {
            host: host.to_string(),
            port: port.map(str::to_string),
            path: path.trim_end_matches('/').to_string(),
        }
    }
}

fn split_port(hostport: &str) -> (&str, Option<&str>) {
    match hostport.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (hostport, None),
    }
}

/// `URLsMatch`'s host part: dot-separated labels, `*` matching one label.
fn glob_host_match(pattern: &str, host: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p.len() == h.len() && p.iter().zip(&h).all(|(p, h)| *p == "*" || p == h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse_docker_ref(s).unwrap()
    }

    #[test]
    fn mirrors_in_order_then_the_registry_with_rewrites() {
        let regs = Registries::parse(
            r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
      - "https://mirror.example.com"
    rewrite:
      "^library/(.*)": "hub/$1"
configs:
  "mirror.example.com":
    auth: {username: u, password: p}
    tls: {insecure_skip_verify: true}
"#,
        )
        .unwrap();
        let eps = regs.endpoints(&r("nginx"), &Keyring::empty());
        let hosts: Vec<_> = eps
            .iter()
            .map(|e| (e.host.as_str(), e.plain_http, e.repository.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("127.0.0.1:5000", true, "hub/nginx"),
                ("mirror.example.com", false, "hub/nginx"),
                ("registry-1.docker.io", false, "library/nginx"),
            ]
        );
        assert_eq!(eps[1].credentials.as_ref().unwrap().username, "u");
        assert!(eps[1].insecure_skip_verify);
        assert!(eps[2].is_default);
        // Another registry has no mirror.
        let eps = regs.endpoints(&r("quay.io/a/b"), &Keyring::empty());
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].host, "quay.io");
    }

    #[test]
    fn wildcard_mirror_and_loopback_is_plain_http() {
        let regs =
            Registries::parse("mirrors:\n  \"*\":\n    endpoint: [\"http://127.0.0.1:1\"]\n")
                .unwrap();
        let eps = regs.endpoints(&r("localhost:5000/x"), &Keyring::empty());
        assert_eq!(eps[0].host, "127.0.0.1:1");
        assert_eq!(eps[1].host, "localhost:5000");
        assert!(eps[1].plain_http);
    }

    #[test]
    fn bad_config_is_rejected() {
        let err =
            Registries::parse("mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n").unwrap_err();
        assert!(
            err.to_string().contains("the scheme must be http or https"),
            "{err}"
        );
        assert!(Registries::parse("mirrors:\n  docker.io:\n    rewrite: {\"(\": x}\n").is_err());
    }

    #[test]
    fn auth_field_is_base64_user_colon_password() {
        let regs = Registries::parse("configs:\n  quay.io:\n    auth: {auth: dTpwOnE=}\n").unwrap();
        let eps = regs.endpoints(&r("quay.io/a"), &Keyring::empty());
        let c = eps[0].credentials.clone().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:q"));
    }

    #[test]
    fn keyring_matches_as_the_kubelet() {
        let mut k = Keyring::empty();
        k.add_docker_config_json(
            br#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOnB3"},
                "127.0.0.1:5000": {"username": "a", "password": "b"},
                "*.example.com/team": {"auth": "dDpw"}
            }}"#,
        )
        .unwrap();
        assert_eq!(k.lookup(&r("nginx")).unwrap().username, "hub");
        assert_eq!(k.lookup(&r("127.0.0.1:5000/x")).unwrap().username, "a");
        assert!(k.lookup(&r("127.0.0.1:5001/x")).is_none());
        assert_eq!(k.lookup(&r("r.example.com/team/x")).unwrap().username, "t");
        assert!(k.lookup(&r("r.example.com/other/x")).is_none());
        assert!(k.add_docker_config_json(b"not json").is_err());
    }
}
