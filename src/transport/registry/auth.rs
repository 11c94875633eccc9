//! Registry credentials (the files docker and podman users already have) and
//! the token dance of the distribution spec (WWW-Authenticate bearer realm).

use crate::exit::AuthError;
use anyhow::{bail, Context, Result};
use docker_credential::{CredentialRetrievalError as CredErr, DockerCredential};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone)]
pub enum Credential {
    Basic {
        user: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in config.json).
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { user, .. } => write!(f, "Basic({user}, ****)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(****)"),
        }
    }
}

impl Credential {
    /// `USER:PASS` from the command line.
    pub fn parse(s: &str, flag: &str) -> Result<Credential> {
        match s.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Credential::Basic {
                user: user.into(),
                password: password.into(),
            }),
            _ => bail!("{flag} must be USER:PASSWORD"),
        }
    }
}

/// The keys a registry may be filed under in auth.json / config.json.
fn config_keys(host: &str) -> Vec<String> {
    if host == "docker.io" {
        return [
            "docker.io",
            "https://index.docker.io/v1/",
            "index.docker.io",
            "registry-1.docker.io",
        ]
        .map(String::from)
        .to_vec();
    }
    vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
    ]
}

/// An auth file named on the command line (`--authfile`, as skopeo and
/// podman take it): read and checked once at start, so that a wrong path
/// fails before anything is pulled instead of silently going anonymous.
#[derive(Clone)]
pub struct AuthFile {
    path: PathBuf,
    contents: Arc<[u8]>,
}

impl std::fmt::Debug for AuthFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthFile({})", self.path.display())
    }
}

impl AuthFile {
    pub fn read(path: &Path, flag: &str) -> Result<AuthFile> {
        let contents = std::fs::read(path)
            .with_context(|| format!("{flag} {}: cannot read it", path.display()))?;
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&contents)
            .with_context(|| {
                format!(
                    "{flag} {}: not an auth.json (a JSON object)",
                    path.display()
                )
            })?;
        Ok(AuthFile {
            path: path.to_path_buf(),
            contents: contents.into(),
        })
    }
}

/// Looks `host` up in `auth_file` when one was given, else as podman does
/// (auth.json: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`);
/// then as docker does (`$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`, with credHelpers and credsStore), as
/// containers/image does after an `--authfile` too. No entry anywhere means
/// anonymous access.
pub fn lookup(host: &str, auth_file: Option<&AuthFile>) -> Result<Option<Credential>> {
    type Lookup<'a> = &'a dyn Fn(&str) -> std::result::Result<DockerCredential, CredErr>;
    let podman = |key: &str| match auth_file {
        Some(f) => docker_credential::get_credential_from_reader(&f.contents[..], key),
        None => docker_credential::get_podman_credential(key),
    };
    let podman_name = match auth_file {
        Some(f) => f.path.display().to_string(),
        None => "auth.json".into(),
    };
    let files: [(&str, Lookup); 2] = [
        (&podman_name, &podman),
        ("docker config.json", &docker_credential::get_credential),
    ];
    for (file, get) in files {
        for key in config_keys(host) {
            match get(&key) {
                Ok(DockerCredential::UsernamePassword(user, password)) => {
                    return Ok(Some(Credential::Basic { user, password }))
                }
                Ok(DockerCredential::IdentityToken(t)) => {
                    return Ok(Some(Credential::IdentityToken(t)))
                }
                Err(
                    CredErr::NoCredentialConfigured
                    | CredErr::ConfigNotFound
                    | CredErr::ConfigReadError,
                ) => {}
                // A helper that has no entry answers with an error too.
                Err(CredErr::HelperFailure { .. } | CredErr::HelperCommunicationError) => {}
                Err(e) => bail!("the {file} entry for {key}: {e}"),
            }
        }
    }
    Ok(None)
}

/// What a registry's 401 asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        }),
        _ => None,
    }
}

/// `key="value", key=value` pairs; values may hold commas inside quotes.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c)
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &q[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = next.trim_start().trim_start_matches(',');
    }
    out
}

/// Scopes as the token server wants them: `repository:NAME:pull,push`.
pub fn scope_strings(scopes: &BTreeMap<String, BTreeSet<&'static str>>) -> Vec<String> {
    scopes
        .iter()
        .map(|(repo, actions)| {
            let actions: Vec<&str> = actions.iter().copied().collect();
            format!("repository:{repo}:{}", actions.join(","))
        })
        .collect()
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Fetches a bearer token for `scopes` from the realm, with the credential
/// when there is one (anonymous otherwise, as for public images).
pub async fn fetch_token(
    http: &reqwest::Client,
    host: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credential: Option<&Credential>,
) -> Result<String> {
    let url = reqwest::Url::parse(realm)
        .with_context(|| format!("{host} sent an invalid token realm {realm:?}"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        bail!("{host} sent a token realm that is not http(s): {realm:?}");
    }
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = service {
        query.push(("service", s));
    }
    let request = match credential {
        Some(Credential::IdentityToken(refresh)) => {
            // OAuth2 refresh-token grant, as docker does with an identity token.
            let mut form = query.clone();
            form.push(("grant_type", "refresh_token"));
            form.push(("client_id", "harden"));
            form.push(("refresh_token", refresh));
            let joined = scopes.join(" ");
            form.push(("scope", &joined));
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            http.post(url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
        }
        other => {
            for s in scopes {
                query.push(("scope", s));
            }
            let mut r = http.get(url).query(&query);
            if let Some(Credential::Basic { user, password }) = other {
                r = r
                    .query(&[("account", user)])
                    .basic_auth(user, Some(password));
            }
            r
        }
    };
    let response = request
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .with_context(|| format!("cannot reach the token server of {host} ({realm})"))?;
    let status = response.status();
    if status == 401 || status == 403 {
        return Err(AuthError(format!(
            "authentication failed at {host}: the token server refused the {} ({status})",
            if credential.is_some() {
                "credentials"
            } else {
                "anonymous request; log in or pass --creds"
            }
        ))
        .into());
    }
    if !status.is_success() {
        bail!("the token server of {host} answered {status}");
    }
    let body = response.bytes().await?;
    let t: TokenResponse = serde_json::from_slice(&body)
        .with_context(|| format!("the token server of {host} sent an invalid answer"))?;
    t.token
        .or(t.access_token)
        .filter(|t| !t.is_empty())
        .with_context(|| format!("the token server of {host} sent no token"))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm=https://ghcr.io/token"#),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: None
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="test""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn scopes_join_actions_per_repository() {
        let mut s = BTreeMap::new();
        s.entry("a/src".to_string())
            .or_insert_with(BTreeSet::new)
            .insert("pull");
        let d = s.entry("a/dst".to_string()).or_insert_with(BTreeSet::new);
        d.insert("push");
        d.insert("pull");
        assert_eq!(
            scope_strings(&s),
            ["repository:a/dst:pull,push", "repository:a/src:pull"]
        );
    }

    #[test]
    fn parses_creds_flag() {
        assert!(matches!(
            Credential::parse("u:p:q", "--creds").unwrap(),
            Credential::Basic { user, password } if user == "u" && password == "p:q"
        ));
        assert!(Credential::parse("nopass", "--creds").is_err());
        assert!(Credential::parse(":p", "--creds").is_err());
    }
}
