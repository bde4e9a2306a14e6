//! Bearer-token authentication. The admin token is generated into `<data-dir>/admin.token`;
//! more tokens come from `--token-auth-file` (kube-apiserver's CSV: `token,user,uid,"g1,g2"`).
//! Requests without a valid token get 401, except the public health and version endpoints
//! (what Kubernetes' default `system:public-info-viewer` role allows anonymously).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Tokens {
    by_token: HashMap<String, User>,
}

impl Tokens {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, token: String, user: User) {
        self.by_token.insert(token, user);
    }

    pub fn lookup(&self, token: &str) -> Option<&User> {
        self.by_token.get(token)
    }

    /// Read a `--token-auth-file`.
    pub fn load_csv(&mut self, path: &Path) -> io::Result<()> {
        let text = std::fs::read_to_string(path)?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}:{}: expected token,user,uid[,\"groups\"]",
                        path.display(),
                        n + 1
                    ),
                ));
            }
            let groups = fields
                .get(3)
                .map(|g| g.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default();
            self.insert(
                fields[0].clone(),
                User {
                    name: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                },
            );
        }
        Ok(())
    }
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

/// The admin token of a data dir, created on first use (random, 256 bits).
pub fn admin_token(data_dir: &Path) -> io::Result<String> {
    token_file(data_dir, "admin.token")
}

/// A random token kept in `data_dir/file`, created on first use.
pub fn token_file(data_dir: &Path, file: &str) -> io::Result<String> {
    let path = data_dir.join(file);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    use rand::Rng;
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::tls::write_private(&path, token.as_bytes())?;
    Ok(token)
}

const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

/// The authentication filter (kube-apiserver's `WithAuthentication`): it needs the tokens
/// alone, not the server's state, so the state can hold them without a circle.
pub async fn middleware(State(tokens): State<Arc<Tokens>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if PUBLIC_PATHS
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match token.and_then(|t| tokens.lookup(t)) {
        Some(user) => {
            // Filters after this one (the in-flight limit) need the user.
            let user = user.clone();
            let mut req = req;
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_csv() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.csv");
        std::fs::write(
            &p,
            "abc,alice,1,\"system:masters,dev\"\n# comment\ndef,bob,2\n",
        )
        .unwrap();
        let mut t = Tokens::new();
        t.load_csv(&p).unwrap();
        assert_eq!(
            t.lookup("abc").unwrap().groups,
            vec!["system:masters", "dev"]
        );
        assert_eq!(t.lookup("def").unwrap().name, "bob");
        assert!(t.lookup("zzz").is_none());
        let a = admin_token(dir.path()).unwrap();
        assert_eq!(
            a,
            admin_token(dir.path()).unwrap(),
            "stable across restarts"
        );
        assert_eq!(a.len(), 64);
    }
}
