//! `harden serve`: a read-only registry that answers the hardened variant of
//! an upstream image. A manifest request reads the upstream manifest and
//! configs, hardens them with the code `rewrite` uses and answers the result;
//! the new configs and layers are held in a bounded cache, base layers are
//! streamed from the upstream and never stored. The output is deterministic,
//! so replicas agree on every digest without sharing state.

mod clients;
mod made;
mod metrics;
pub mod route;
pub mod upstream;

use crate::digest::Digest;
use crate::registry::{runtime, Registries, Repo};
use crate::run::{self, Hardening};
use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use made::{Cache, Document, Key, Made};
use oci_spec::distribution::Reference as ImageReference;
use route::{Name, Reference, Route};
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use upstream::Upstream;

/// Options for the repositories a pattern matches (`*` matches any text,
/// `/` included), tried in order before the command line's.
pub struct Rule {
    pub pattern: String,
    pub hardening: Hardening,
}

pub struct Config {
    pub listen: String,
    pub upstreams: Vec<(Upstream, Registries)>,
    pub rules: Vec<Rule>,
    pub default: Hardening,
    /// The upstream of paths whose first component names none
    /// (`/v2/library/redis/…`, as Docker's registry-mirrors send).
    pub mirror_of: Option<String>,
    /// Bytes of hardened manifests, configs and layers held.
    pub cache_bytes: usize,
    /// Requests to upstreams at once (manifest reads, blob streams).
    pub upstream_concurrency: usize,
    /// A certificate chain and its key (PEM): serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Users who may pull (bcrypt htpasswd); none: anyone who reaches serve.
    pub htpasswd: Option<PathBuf>,
}

struct State {
    upstreams: HashMap<String, (Upstream, Arc<Registries>)>,
    rules: Vec<Rule>,
    default: Hardening,
    mirror_of: Option<String>,
    cache: Cache,
    metrics: metrics::Metrics,
    permits: Arc<Semaphore>,
    clients: Option<clients::Htpasswd>,
    /// One hardening per key at a time: concurrent cold pulls of one tag wait
    /// for the first instead of each reading the upstream.
    flights: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, io::Error>;

/// Runs the server until the process is stopped.
pub fn serve(config: Config) -> Result<()> {
    let tls = config
        .tls
        .as_ref()
        .map(|(c, k)| tls_acceptor(c, k))
        .transpose()?;
    let clients = config
        .htpasswd
        .as_deref()
        .map(clients::Htpasswd::read)
        .transpose()?;
    let names: Vec<String> = config
        .upstreams
        .iter()
        .map(|(u, _)| {
            let scheme = if u.plain_http { "http" } else { "https" };
            format!("{}={scheme}://{}", u.name, u.host)
        })
        .collect();
    let state = Arc::new(State {
        upstreams: config
            .upstreams
            .into_iter()
            .map(|(u, r)| (u.name.clone(), (u, Arc::new(r))))
            .collect(),
        rules: config.rules,
        default: config.default,
        mirror_of: config.mirror_of,
        cache: Cache::new(config.cache_bytes),
        metrics: Default::default(),
        permits: Arc::new(Semaphore::new(config.upstream_concurrency.max(1))),
        clients,
        flights: Default::default(),
    });
    runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!(
            "harden serve: listening on {scheme}://{} (upstreams: {})",
            listener.local_addr()?,
            names.join(", ")
        );
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    eprintln!("harden serve: warning: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (state, tls) = (state.clone(), tls.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req| answer(state.clone(), peer, req));
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30));
                let _ = match tls {
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        match tokio::time::timeout(Duration::from_secs(10), handshake).await {
                            Ok(Ok(s)) => {
                                http.serve_connection(hyper_util::rt::TokioIo::new(s), service)
                                    .await
                            }
                            _ => return,
                        }
                    }
                    None => {
                        http.serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await
                    }
                };
            });
        }
    })
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("--tls-cert {}: no PEM certificates", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("--tls-key {}: no PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("--tls-cert and --tls-key do not make a certificate and its key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// What a request is answered with, before it becomes a response.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Payload,
}

enum Payload {
    Bytes(Bytes),
    /// Upstream bytes of a known length, holding an upstream permit.
    Stream(
        BoxStream<'static, io::Result<Bytes>>,
        Option<u64>,
        OwnedSemaphorePermit,
    ),
}

impl Answer {
    fn bytes(status: u16, headers: Vec<(&'static str, String)>, body: Bytes) -> Answer {
        Answer {
            status,
            headers,
            body: Payload::Bytes(body),
        }
    }

    /// A distribution error body.
    fn error(status: u16, code: &str, message: &str) -> Answer {
        let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
        Answer::bytes(
            status,
            vec![("Content-Type", "application/json".into())],
            Bytes::from(body.to_string()),
        )
    }

    fn document(doc: &Document, digest: &Digest) -> Answer {
        Answer::bytes(
            200,
            vec![
                ("Content-Type", doc.media_type.clone()),
                ("Docker-Content-Digest", digest.to_string()),
                ("ETag", format!("\"{digest}\"")),
            ],
            doc.bytes.clone(),
        )
    }
}

/// An upstream failure as the client gets it: the upstream's status (401,
/// 403, 404, 429, 5xx) is kept; no answer at all is 502.
fn upstream_failure(state: &State, e: &anyhow::Error, not_found: &str) -> Answer {
    state
        .metrics
        .upstream_errors
        .fetch_add(1, Ordering::Relaxed);
    let message = format!("{e:#}");
    match crate::exit::answered(e) {
        Some(404) => Answer::error(404, not_found, &message),
        Some(401) => Answer::error(401, "UNAUTHORIZED", &message),
        Some(403) => Answer::error(403, "DENIED", &message),
        Some(429) => Answer::error(429, "TOOMANYREQUESTS", &message),
        Some(s) if (400..600).contains(&s) => Answer::error(s, "UNKNOWN", &message),
        _ => Answer::error(502, "UNAVAILABLE", &message),
    }
}

async fn answer(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    state.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let head = req.method() == hyper::Method::HEAD;
    let route = route::parse(req.method().as_str(), req.uri().path());
    let kind = match &route {
        Ok(Route::Base) => "base",
        Ok(Route::Manifest { .. }) => "manifest",
        Ok(Route::Blob { .. }) => "blob",
        Ok(Route::Tags { .. }) => "tags",
        Ok(Route::Health) => "healthz",
        Ok(Route::Metrics) => "metrics",
        Err(_) => "other",
    };
    // Made first, so that a request whose client leaves before the answer
    // (a cold hardening) is logged and counted too, as nginx's 499.
    let mut log = Log {
        state: state.clone(),
        peer,
        line: format!("{} {}", req.method(), req.uri()),
        kind,
        status: 499,
        start: Instant::now(),
        sent: 0,
        expected: None,
    };
    // Health and metrics answer anyone: probes and scrapers carry no credentials.
    let open = matches!(route, Ok(Route::Health | Route::Metrics));
    let allowed = open || state.clients.is_none() || {
        let authorization = req.headers().get(hyper::header::AUTHORIZATION);
        let authorization = authorization
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let state = state.clone();
        let check = move || {
            let clients = state.clients.as_ref().expect("checked above");
            clients.allows(authorization.as_deref())
        };
        tokio::task::spawn_blocking(check).await.unwrap_or(false)
    };
    let answer = match route {
        _ if !allowed => {
            let mut a = Answer::error(401, "UNAUTHORIZED", "authentication required");
            a.headers
                .push(("WWW-Authenticate", "Basic realm=\"harden serve\"".into()));
            a
        }
        Err(r) => Answer::error(r.status, r.code, &r.message),
        Ok(route) => state.route(route, &req, head).await,
    };
    log.status = answer.status;
    let mut response = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(*name, value);
    }
    let (stream, length, permit) = match answer.body {
        Payload::Bytes(b) => {
            let len = b.len() as u64;
            let chunk = stream::once(std::future::ready(Ok(b))).boxed();
            (chunk, Some(len), None)
        }
        Payload::Stream(s, len, permit) => (s, len, Some(permit)),
    };
    if let Some(len) = length {
        response = response.header("Content-Length", len);
    }
    if answer.status < 300 || answer.status == 401 {
        response = response.header("Docker-Distribution-API-Version", "registry/2.0");
    }
    let mut sent = Sent {
        inner: stream,
        log,
        _permit: permit,
    };
    let body = if head {
        // Headers only: an empty body, which ends (and frees its permit) at once.
        sent.inner = stream::empty().boxed();
        sent.log.expected = Some(0);
        StreamBody::new(sent).boxed_unsync()
    } else {
        sent.log.expected = length;
        StreamBody::new(sent).boxed_unsync()
    };
    Ok(response.body(body).expect("valid response parts"))
}

impl State {
    /// A name whose first component is no upstream's is a repository of
    /// the mirrored upstream, when there is one.
    fn resolve(&self, name: Name) -> Name {
        match &self.mirror_of {
            Some(m) if !self.upstreams.contains_key(&name.upstream) => Name {
                upstream: m.clone(),
                repository: format!("{}/{}", name.upstream, name.repository),
            },
            _ => name,
        }
    }

    async fn route(&self, route: Route, req: &Request<Incoming>, head: bool) -> Answer {
        let route = match route {
            Route::Manifest { name, reference } => Route::Manifest {
                name: self.resolve(name),
                reference,
            },
            Route::Blob { name, digest } => Route::Blob {
                name: self.resolve(name),
                digest,
            },
            Route::Tags { name } => Route::Tags {
                name: self.resolve(name),
            },
            other => other,
        };
        match route {
            Route::Base => Answer::bytes(
                200,
                vec![("Content-Type", "application/json".into())],
                Bytes::from_static(b"{}"),
            ),
            Route::Health => Answer::bytes(200, vec![], Bytes::from_static(b"ok\n")),
            Route::Metrics => Answer::bytes(
                200,
                vec![("Content-Type", "text/plain; version=0.0.4".into())],
                Bytes::from(self.metrics.render(self.cache.usage())),
            ),
            Route::Manifest {
                name,
                reference: Reference::Tag(tag),
            } => match self.hardened(&name, &tag).await {
                Ok(made) => Answer::document(&made.manifests[&made.top], &made.top),
                Err(answer) => answer,
            },
            Route::Manifest {
                name,
                reference: Reference::Digest(digest),
            } => match self.cache.manifest(&name, &digest) {
                Some(doc) => Answer::document(&doc, &digest),
                None => Answer::error(
                    404,
                    "MANIFEST_UNKNOWN",
                    &format!(
                        "{name}@{digest}: not a manifest this server hardened (ask for a tag: \
                         serve answers the digests of what it hardened)"
                    ),
                ),
            },
            Route::Blob { name, digest } => self.blob(&name, &digest, req, head).await,
            Route::Tags { name } => self.tags(&name, req.uri().query()).await,
        }
    }

    /// The upstream registry of `name`, the reference `name` is there (its
    /// tag `latest`: callers name what they ask for) and its repository.
    fn upstream(&self, name: &Name) -> Result<(Arc<Registries>, ImageReference, Repo), Answer> {
        let Some((upstream, registries)) = self.upstreams.get(&name.upstream) else {
            let mut known: Vec<&str> = self.upstreams.keys().map(String::as_str).collect();
            known.sort();
            return Err(Answer::error(
                404,
                "NAME_UNKNOWN",
                &format!(
                    "{name}: no upstream named {:?} (this server has {})",
                    name.upstream,
                    known.join(", ")
                ),
            ));
        };
        let text = format!("{}/{}", upstream.host, name.repository);
        let reference = crate::transport::parse_reference(&text)
            .map_err(|e| Answer::error(400, "NAME_INVALID", &format!("{e:#}")))?;
        let repo = registries
            .repo(&reference)
            .map_err(|e| Answer::error(502, "UNAVAILABLE", &format!("{e:#}")))?;
        Ok((registries.clone(), reference, repo))
    }

    /// The rule for `name` (its index; the command line's is `rules.len()`).
    fn rule(&self, name: &Name) -> (usize, &Hardening) {
        let full = name.to_string();
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| glob(&r.pattern, &full))
            .map(|(i, r)| (i, &r.hardening))
            .unwrap_or((self.rules.len(), &self.default))
    }

    /// The hardened image or index for `name:tag`: from the cache when the
    /// upstream tag still names the manifest it was made from.
    async fn hardened(&self, name: &Name, tag: &str) -> Result<Arc<Made>, Answer> {
        let (registries, base, repo) = self.upstream(name)?;
        let reference = ImageReference::with_tag(
            base.registry().to_string(),
            base.repository().to_string(),
            tag.to_string(),
        );
        let (rule, hardening) = self.rule(name);
        repo.want_pull().await;
        let fail = |e: anyhow::Error| upstream_failure(self, &e, "MANIFEST_UNKNOWN");
        let current = {
            let _permit = self.permits.acquire().await.expect("never closed");
            repo.manifest_digest(tag).await.map_err(fail)?
        };
        let key = current.map(|d| (name.clone(), d, rule));
        let flight = key.as_ref().map(|k| self.flight(k));
        // Waiting for another request's hardening holds no upstream slot.
        let _turn = match &flight {
            Some(f) => Some(f.lock().await),
            None => None,
        };
        if let Some(made) = key.as_ref().and_then(|k| self.cache.get(k)) {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(made);
        }
        let permit = self.permits.acquire().await.expect("never closed");
        let made = self
            .make(registries, reference, hardening.clone(), &repo)
            .await;
        drop(permit);
        if let Some(k) = &key {
            self.flights
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(k);
        }
        let (source, made) = made?;
        let made = Arc::new(made);
        if let Some(source) = source {
            self.cache
                .insert((name.clone(), source, rule), made.clone());
        }
        Ok(made)
    }

    fn flight(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        flights.entry(key.clone()).or_default().clone()
    }

    /// Reads and hardens `reference`; checks that the upstream holds every
    /// blob the result names and serve does not hold itself.
    async fn make(
        &self,
        registries: Arc<Registries>,
        reference: ImageReference,
        hardening: Hardening,
        repo: &Repo,
    ) -> Result<(Option<Digest>, Made), Answer> {
        let text = reference.to_string();
        let work = tokio::task::spawn_blocking(move || {
            let content =
                crate::registry::read(&reference, &registries).map_err(Failure::Upstream)?;
            let hardened = run::harden_content(&hardening, &content).map_err(Failure::Harden)?;
            for d in &hardened.dropped {
                eprintln!(
                    "harden serve: {reference}: left out {} ({}): {}",
                    d.platform, d.digest, d.reason
                );
            }
            Ok((hardened.source_digest.clone(), Made::of(&hardened.content)))
        });
        let (source, made) = match work.await {
            Ok(Ok(made)) => made,
            Ok(Err(Failure::Upstream(e))) => {
                return Err(upstream_failure(self, &e, "MANIFEST_UNKNOWN"))
            }
            Ok(Err(Failure::Harden(e))) => {
                return Err(Answer::error(
                    500,
                    "UNSUPPORTED",
                    &format!("harden cannot harden {text}: {e:#}"),
                ))
            }
            Err(e) => return Err(Answer::error(500, "UNKNOWN", &format!("{text}: {e}"))),
        };
        self.metrics.hardened.fetch_add(1, Ordering::Relaxed);
        // Never answer a manifest whose blobs cannot be had.
        let checks = stream::iter(made.upstream_blobs.clone())
            .map(|d| {
                let repo = repo.clone();
                async move {
                    let found = repo.blob_size(&d).await;
                    (d, found)
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        for (digest, found) in checks {
            match found {
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(Answer::error(
                        502,
                        "BLOB_UNKNOWN",
                        &format!(
                            "{text}: the upstream does not have blob {digest} its manifest names"
                        ),
                    ));
                }
                Err(e) => return Err(upstream_failure(self, &e, "BLOB_UNKNOWN")),
            }
        }
        Ok((source, made))
    }

    /// A blob serve made, or the upstream's, streamed (a `Range: bytes=N-`
    /// is passed on, as clients resume downloads with it).
    async fn blob(
        &self,
        name: &Name,
        digest: &Digest,
        req: &Request<Incoming>,
        head: bool,
    ) -> Answer {
        // Upstream blobs take `Range: bytes=N-` (passed on); serve's own are small.
        let headers = |ranges: bool| {
            let mut h = vec![
                ("Content-Type", "application/octet-stream".to_string()),
                ("Docker-Content-Digest", digest.to_string()),
            ];
            h.extend(ranges.then(|| ("Accept-Ranges", "bytes".to_string())));
            h
        };
        if let Some(bytes) = self.cache.blob(name, digest) {
            return Answer::bytes(200, headers(false), bytes);
        }
        let (_, _, repo) = match self.upstream(name) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        repo.want_pull().await;
        if head {
            return match repo.blob_size(digest).await {
                Ok(Some(size)) => Answer {
                    status: 200,
                    headers: headers(true),
                    body: Payload::Stream(stream::empty().boxed(), Some(size), permit),
                },
                Ok(None) => Answer::error(
                    404,
                    "BLOB_UNKNOWN",
                    &format!("{name}@{digest}: not found upstream"),
                ),
                Err(e) => upstream_failure(self, &e, "BLOB_UNKNOWN"),
            };
        }
        let from = req
            .headers()
            .get("Range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.strip_suffix('-'))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        match repo.blob_response(digest, from).await {
            Ok(r) => {
                let mut h = headers(true);
                if let Some(range) = r
                    .headers()
                    .get("Content-Range")
                    .and_then(|v| v.to_str().ok())
                {
                    h.push(("Content-Range", range.to_string()));
                }
                let (length, status) = (r.content_length(), r.status().as_u16());
                let body = r.bytes_stream().map_err(io::Error::other).boxed();
                Answer {
                    status,
                    headers: h,
                    body: Payload::Stream(body, length, permit),
                }
            }
            Err(e) => upstream_failure(self, &e, "BLOB_UNKNOWN"),
        }
    }

    /// The upstream's tag list under serve's name for the repository.
    async fn tags(&self, name: &Name, query: Option<&str>) -> Answer {
        let (_, reference, repo) = match self.upstream(name) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let _permit = self.permits.acquire().await.expect("never closed");
        repo.want_pull().await;
        let fail = |e: anyhow::Error| upstream_failure(self, &e, "NAME_UNKNOWN");
        let r = match repo.tags(tags_query(query).as_deref()).await {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        // The next page's link names the upstream's path: give serve's.
        let upstream_path = format!("/v2/{}/", reference.repository());
        let link = r
            .headers()
            .get("Link")
            .and_then(|v| v.to_str().ok())
            .map(|l| l.replace(&upstream_path, &format!("/v2/{name}/")));
        let body = match crate::registry::read_capped(r, 16 << 20, "tag list").await {
            Ok(b) => b,
            Err(e) => return fail(e),
        };
        let mut list: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return Answer::error(502, "UNKNOWN", &format!("the upstream's tag list: {e}"))
            }
        };
        list["name"] = name.to_string().into();
        let mut headers = vec![("Content-Type", "application/json".to_string())];
        headers.extend(link.map(|l| ("Link", l)));
        Answer::bytes(200, headers, Bytes::from(list.to_string()))
    }
}

/// The paging parameters of a tag list (`n`, `last`), checked; nothing
/// else of the client's query reaches the upstream.
fn tags_query(query: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some(("n", v)) => !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()),
            Some(("last", v)) => v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            _ => false,
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

enum Failure {
    Upstream(anyhow::Error),
    Harden(anyhow::Error),
}

/// `*` matches any text, `/` included; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(text) = text.strip_prefix(head) else {
                return false;
            };
            (0..=text.len())
                .filter(|i| text.is_char_boundary(*i))
                .any(|i| glob(rest, &text[i..]))
        }
    }
}

/// One log line per request, written when its body ends or the client
/// leaves (method, path, status, bytes sent, time); counts it in the metrics.
struct Log {
    state: Arc<State>,
    peer: SocketAddr,
    line: String,
    kind: &'static str,
    status: u16,
    start: Instant,
    sent: u64,
    expected: Option<u64>,
}

impl Drop for Log {
    fn drop(&mut self) {
        let metrics = &self.state.metrics;
        let cut = self.expected.is_some_and(|e| self.sent < e);
        if cut {
            metrics.cut.fetch_add(1, Ordering::Relaxed);
        }
        metrics.count(self.kind, self.status);
        metrics
            .response_bytes
            .fetch_add(self.sent, Ordering::Relaxed);
        metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        eprintln!(
            "harden serve: {} {} {} {} {:.3}s{}",
            self.peer,
            self.line,
            self.status,
            self.sent,
            self.start.elapsed().as_secs_f64(),
            if cut { " (client left)" } else { "" }
        );
    }
}

/// A response body that counts what it sends for the log; dropping it (the
/// client left) drops the upstream stream and releases its permit.
struct Sent {
    inner: BoxStream<'static, io::Result<Bytes>>,
    log: Log,
    _permit: Option<OwnedSemaphorePermit>,
}

impl futures_util::Stream for Sent {
    type Item = io::Result<Frame<Bytes>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.log.sent += chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_paging_reaches_the_upstream_tag_list() {
        use super::tags_query;
        assert_eq!(
            tags_query(Some("n=10&last=v1.2")).as_deref(),
            Some("n=10&last=v1.2")
        );
        assert_eq!(
            tags_query(Some("n=10&x=1&last=a%26b")).as_deref(),
            Some("n=10")
        );
        assert_eq!(tags_query(Some("n=-1")), None);
        assert_eq!(tags_query(None), None);
    }

    #[test]
    fn globs() {
        assert!(super::glob(
            "docker.io/library/*",
            "docker.io/library/redis"
        ));
        assert!(super::glob("*/postgres", "local/library/postgres"));
        assert!(super::glob("*", "a/b"));
        assert!(!super::glob("docker.io/library/*", "ghcr.io/library/redis"));
        assert!(super::glob("a*b*c", "aXbYc"));
        assert!(!super::glob("a*b*c", "aXbY"));
        assert!(super::glob("exact", "exact"));
    }
}
