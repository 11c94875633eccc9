//! One registry host: its HTTP client (TLS as configured), credentials and
//! tokens, and requests with bounded retries.

use super::auth::{self, AuthFile, Challenge, Credential};
use super::tls::Trust;
use crate::exit::Answered;
use crate::progress::{trace, warn};
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Attempts per request beyond the first, for 429, 5xx and broken connections.
pub const RETRIES: u32 = 5;

/// How to reach one side (source or destination) of a copy.
#[derive(Debug, Clone)]
pub struct Access {
    pub tls_verify: bool,
    pub plain_http: bool,
    pub cert_dir: Option<PathBuf>,
    pub credential: Option<Credential>,
    /// Where to look for credentials when `credential` is none.
    pub auth_file: Option<AuthFile>,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            tls_verify: true,
            plain_http: false,
            cert_dir: None,
            credential: None,
            auth_file: None,
        }
    }
}

pub struct Registry {
    /// The name in references (`docker.io`, `127.0.0.1:5000`).
    pub host: String,
    /// Where the API is (`registry-1.docker.io` for Docker Hub).
    api_host: String,
    http: reqwest::Client,
    access: Access,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `https://host` or `http://host`, known after the first request.
    base: Option<String>,
    challenge: Option<Challenge>,
    scopes: BTreeMap<String, BTreeSet<&'static str>>,
    /// A bearer token and the scopes it was issued for.
    token: Option<(String, Vec<String>)>,
}

/// The CA and client-certificate directories docker and podman read for `host`.
fn cert_dirs(host: &str, extra: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = vec![
        Path::new("/etc/containers/certs.d").join(host),
        Path::new("/etc/docker/certs.d").join(host),
    ];
    dirs.extend(extra.map(Path::to_path_buf));
    dirs
}

impl Registry {
    pub fn new(host: &str, mut access: Access) -> Result<Registry> {
        if access.credential.is_none() {
            access.credential = auth::lookup(host, access.auth_file.as_ref())?;
        }
        let api_host = match host {
            "docker.io" => "registry-1.docker.io",
            h => h,
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("harden/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            // A stalled transfer fails (and is retried) instead of hanging.
            .read_timeout(Duration::from_secs(60));
        let mut trust = Trust::default();
        for dir in cert_dirs(api_host, access.cert_dir.as_deref()) {
            trust.add_dir(&dir)?;
        }
        if !access.tls_verify {
            eprintln!(
                "harden: warning: TLS certificates of {host} are not verified (--tls-verify=false)"
            );
        }
        builder = builder.tls_backend_preconfigured(trust.client_config(access.tls_verify)?);
        Ok(Registry {
            host: host.to_string(),
            api_host: api_host.to_string(),
            http: builder.build().context("cannot set up the HTTP client")?,
            access,
            state: Default::default(),
        })
    }

    /// Asks for `actions` on `repo` in every token from now on. All scopes go
    /// into one token, so a cross-repository mount has pull on the source.
    pub async fn want(&self, repo: &str, actions: &[&'static str]) {
        let mut state = self.state.lock().await;
        let set = state.scopes.entry(repo.to_string()).or_default();
        set.extend(actions);
    }

    /// Sends the request `build` makes (given the base URL), with the
    /// Authorization header; retries transient failures when `retry`, and
    /// re-authenticates once on 401.
    pub async fn send(
        &self,
        what: &str,
        retry: bool,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response> {
        let mut reauthenticated = false;
        loop {
            let (base, authorization) = self.authorize().await?;
            let attempts = if retry { RETRIES } else { 0 };
            let response = self
                .retrying(what, attempts, || {
                    let mut r = build(&self.http, &base);
                    if let Some(a) = &authorization {
                        r = r.header(AUTHORIZATION, a.clone());
                    }
                    r.send()
                })
                .await?;
            if response.status() == StatusCode::UNAUTHORIZED && !reauthenticated {
                reauthenticated = true;
                let mut state = self.state.lock().await;
                state.token = None;
                if let Some(c) = challenge_of(&response) {
                    state.challenge = Some(c);
                }
                continue;
            }
            return Ok(response);
        }
    }

    /// One attempt, for a request whose body can be sent only once; the
    /// inner error is the reqwest error, for the caller to judge.
    pub async fn send_once(
        &self,
        build: impl FnOnce(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Result<Response>> {
        let (_, authorization) = self.authorize().await?;
        let mut r = build(&self.http);
        if let Some(a) = authorization {
            r = r.header(AUTHORIZATION, a);
        }
        let answer = r.send().await;
        trace(|| match &answer {
            Ok(r) => format!("upload -> {} ({})", r.status(), r.url()),
            Err(e) => format!("upload -> {}", error_chain(e)),
        });
        Ok(answer.map_err(anyhow::Error::from))
    }

    /// Runs `attempt` until it gives an answer that is not 429/5xx, retrying
    /// broken connections and timeouts too, with exponential backoff.
    async fn retrying<F, Fut>(&self, what: &str, retries: u32, mut attempt: F) -> Result<Response>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = reqwest::Result<Response>>,
    {
        let mut n = 0;
        loop {
            let answer = attempt().await;
            trace(|| match &answer {
                Ok(r) => format!("{what} -> {} ({})", r.status(), r.url()),
                Err(e) => format!("{what} -> {}", error_chain(e)),
            });
            let (wait, why) = match answer {
                Ok(r) if retryable_status(r.status()) && n < retries => (
                    retry_after(&r).unwrap_or_else(|| backoff(n)),
                    format!("the registry answered {}", r.status()),
                ),
                Ok(r) => return Ok(r),
                Err(e) if transient(&e) && n < retries => (backoff(n), root_cause(&e)),
                Err(e) => return Err(self.explain(e, what)),
            };
            // Said without -v: a registry that is down would otherwise mean
            // silence through every delay.
            warn(&format!(
                "{what}: {why}; retry {} of {retries} in {:.1} s",
                n + 1,
                wait.as_secs_f64()
            ));
            n += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// The base URL and the Authorization header for the next request.
    async fn authorize(&self) -> Result<(String, Option<HeaderValue>)> {
        let mut state = self.state.lock().await;
        if state.base.is_none() {
            let (base, challenge) = self.ping().await?;
            state.base = Some(base);
            state.challenge = Some(challenge);
        }
        let base = state.base.clone().unwrap_or_default();
        let header = match state.challenge.clone().unwrap_or(Challenge::None) {
            Challenge::None => None,
            Challenge::Basic => match &self.access.credential {
                Some(Credential::Basic { user, password }) => {
                    let raw = format!("{user}:{password}");
                    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                    Some(HeaderValue::from_str(&format!("Basic {encoded}"))?)
                }
                _ => None,
            },
            Challenge::Bearer { realm, service } => {
                let scopes = auth::scope_strings(&state.scopes);
                let current = state.token.as_ref().filter(|(_, s)| *s == scopes);
                let token = match current {
                    Some((t, _)) => t.clone(),
                    None => {
                        let t = auth::fetch_token(
                            &self.http,
                            &self.host,
                            &realm,
                            service.as_deref(),
                            &scopes,
                            self.access.credential.as_ref(),
                        )
                        .await?;
                        state.token = Some((t.clone(), scopes));
                        t
                    }
                };
                let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
                    .context("the token server sent a token that is not a header value")?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok((base, header))
    }

    /// `GET /v2/`: finds the scheme and how the registry wants to be authenticated.
    async fn ping(&self) -> Result<(String, Challenge)> {
        let mut schemes = vec!["https"];
        if self.access.plain_http {
            schemes = vec!["http"];
        } else if !self.access.tls_verify {
            // As skopeo and podman: --tls-verify=false also allows plain HTTP.
            schemes.push("http");
        }
        let mut last = None;
        for scheme in schemes {
            let base = format!("{scheme}://{}", self.api_host);
            let url = format!("{base}/v2/");
            match self
                .retrying(&format!("GET {url}"), RETRIES, || {
                    self.http.get(&url).timeout(Duration::from_secs(30)).send()
                })
                .await
            {
                Ok(r) => {
                    let challenge = match r.status() {
                        s if s.is_success() => Challenge::None,
                        StatusCode::UNAUTHORIZED => challenge_of(&r).with_context(|| {
                            format!(
                                "{} asks for authentication in a way harden does not know",
                                self.host
                            )
                        })?,
                        s => bail!("{} does not answer as a registry: {s} for {url}", self.host),
                    };
                    return Ok((base, challenge));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("one scheme at least"))
    }

    /// A reqwest error in words a user can act on.
    fn explain(&self, e: reqwest::Error, what: &str) -> anyhow::Error {
        let host = &self.api_host;
        let chain = error_chain(&e);
        if is_tls_failure(&chain) {
            anyhow::anyhow!(
                "TLS with {host} failed ({chain}): for a private CA put it in \
                 /etc/containers/certs.d/{host}/ca.crt or a --cert-dir; for a plain-HTTP \
                 registry pass --plain-http; --tls-verify=false skips the check"
            )
        } else {
            anyhow::anyhow!("{what}: cannot reach {host}: {chain}")
        }
    }
}

/// TLS failures are not worth retrying: the next handshake fails the same way.
fn is_tls_failure(chain: &str) -> bool {
    [
        "certificate",
        "UnknownIssuer",
        "InvalidContentType",
        "CorruptMessage",
        "tls",
    ]
    .iter()
    .any(|w| chain.contains(w))
}

fn challenge_of(r: &Response) -> Option<Challenge> {
    r.headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(auth::parse_challenge)
        // Prefer bearer when a registry offers both.
        .max_by_key(|c| matches!(c, Challenge::Bearer { .. }))
}

fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// Connection refused/reset, timeouts, a body cut short: worth another try.
pub fn transient(e: &reqwest::Error) -> bool {
    (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode())
        && !is_tls_failure(&error_chain(e))
}

/// The innermost cause ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(c) = cause.source() {
        cause = c;
    }
    cause.to_string()
}

/// An error and its causes on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// 0.5 s, 1 s, 2 s, … up to 8 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64 << attempt.min(4))
}

/// `Retry-After: SECONDS`, capped so that a registry cannot stall harden for long.
fn retry_after(r: &Response) -> Option<Duration> {
    let secs: u64 = r
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

/// Turns an unsuccessful answer into an error that names what failed and why.
pub async fn check(response: Response, host: &str, what: &str) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let detail = registry_errors(&body);
    let message = match status {
        StatusCode::UNAUTHORIZED => format!(
            "authentication failed at {host} ({what}: 401{detail}); check --creds, auth.json or docker config.json"
        ),
        StatusCode::FORBIDDEN => format!("{host} denied access ({what}: 403{detail})"),
        StatusCode::NOT_FOUND => format!("{what}: not found at {host}{detail}"),
        s => format!("{what}: {host} answered {s}{detail}"),
    };
    Err(Answered {
        status: status.as_u16(),
        message,
    }
    .into())
}

/// The `errors` array of a distribution error body, as `: CODE message; …`.
fn registry_errors(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return String::new();
    };
    let list: Vec<String> = v
        .get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let message = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            format!("{code} {message}").trim().to_string()
        })
        .collect();
    if list.is_empty() {
        String::new()
    } else {
        format!(": {}", list.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), Duration::from_secs(8));
    }

    #[test]
    fn error_bodies_are_summarized() {
        assert_eq!(
            registry_errors(
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            ": MANIFEST_UNKNOWN manifest unknown"
        );
        assert_eq!(registry_errors("<html>"), "");
    }
}
