//! The `docker://` transport: registries that speak the distribution API.
//!
//! Reading fetches the manifest and the config; layers stay references to the
//! registry (`RemoteBlob`) until a sink needs them. Writing to a registry
//! HEADs each blob, mounts it across repositories of the same registry, and
//! uploads only what is missing (streamed, verified; a layer harden gzips is
//! streamed while it is compressed); the manifest (the tag) goes last.

mod auth;
mod client;
mod tls;

pub use auth::{AuthFile, Credential};
pub use client::Access;

use crate::compress::Growing;
use crate::digest::{Digest, Hasher};
use crate::image::{self, Blob, Content, Image, MAX_MANIFEST};
use crate::progress::{trace, Bar, Progress};
use crate::sink::{BlobSummary, Written};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use client::{backoff, check, transient, Registry, RETRIES};
use futures_util::future::{self, Either};
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use oci_spec::distribution::Reference;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Response, StatusCode};
use std::collections::HashMap;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

/// Blob transfers at once to a registry.
const PARALLEL_BLOBS: usize = 4;

pub use crate::exit::{AuthError, NotFound};

/// One runtime for the whole process; the file transports stay synchronous
/// and call in with `block_on`.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot start the async runtime")
    })
}

/// The registries of one run: one client (and one token) per host, so that a
/// copy within a registry can mount blobs across repositories.
pub struct Registries {
    source: Access,
    hosts: Mutex<HashMap<String, Arc<Registry>>>,
}

impl Registries {
    /// The hosts of `dests` get the destination's access settings; every
    /// other host the source's. A copy within one registry uses one client,
    /// with the destination's credentials.
    pub fn new(source: Access, dest: Access, dests: &[&Reference]) -> Result<Registries> {
        // ring: pure Rust and C without cmake, builds static everywhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let regs = Registries {
            source,
            hosts: Mutex::new(HashMap::new()),
        };
        for r in dests {
            if !regs.lock().contains_key(r.registry()) {
                let registry = Arc::new(Registry::new(r.registry(), dest.clone())?);
                regs.lock().insert(r.registry().to_string(), registry);
            }
        }
        Ok(regs)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Registry>>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn repo(&self, r: &Reference) -> Result<Repo> {
        let mut hosts = self.lock();
        let registry = match hosts.get(r.registry()) {
            Some(reg) => reg.clone(),
            None => {
                let reg = Arc::new(Registry::new(r.registry(), self.source.clone())?);
                hosts.insert(r.registry().to_string(), reg.clone());
                reg
            }
        };
        Ok(Repo {
            registry,
            name: r.repository().to_string(),
        })
    }
}

/// A repository of a registry.
#[derive(Clone)]
pub struct Repo {
    registry: Arc<Registry>,
    name: String,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry.host, self.name)
    }
}

const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

impl Repo {
    fn url(&self, base: &str, path: &str) -> String {
        format!("{base}/v2/{}/{path}", self.name)
    }

    fn host(&self) -> &str {
        &self.registry.host
    }

    /// The manifest's bytes (capped); what it is, harden reads from its content.
    async fn manifest(&self, reference: &str) -> Result<Vec<u8>> {
        let what = format!("manifest {}:{reference}", self.name);
        let r = self
            .registry
            .send(&what, true, |http, base| {
                http.get(self.url(base, &format!("manifests/{reference}")))
                    .header(ACCEPT, MANIFEST_TYPES)
            })
            .await?;
        let r = check(r, self.host(), &what).await?;
        read_capped(r, MAX_MANIFEST, &what).await
    }

    /// `GET` a blob from byte `from` on (a resumed download asks for a range).
    async fn blob_response(&self, digest: &Digest, from: u64) -> Result<Response> {
        let what = format!("blob {digest}");
        let r = self
            .registry
            .send(&what, true, |http, base| {
                let r = http.get(self.url(base, &format!("blobs/{digest}")));
                if from > 0 {
                    r.header(RANGE, format!("bytes={from}-"))
                } else {
                    r
                }
            })
            .await?;
        check(r, self.host(), &format!("{what} in {}", self.name)).await
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let what = format!("HEAD blob {digest}");
        let r = self
            .registry
            .send(&what, true, |http, base| {
                http.head(self.url(base, &format!("blobs/{digest}")))
            })
            .await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        check(r, self.host(), &what).await.map(|_| true)
    }

    /// Cross-repository mount; false when the registry starts an upload
    /// instead (202), which is cancelled here.
    async fn mount(&self, digest: &Digest, from: &Repo) -> Result<bool> {
        let what = format!("mount {digest} from {}", from.name);
        let r = self
            .registry
            .send(&what, true, |http, base| {
                http.post(self.url(base, "blobs/uploads/"))
                    .query(&[("mount", digest.as_str()), ("from", from.name.as_str())])
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        match r.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Some(location) = location(&r) {
                    self.cancel_upload(&location).await;
                }
                Ok(false)
            }
            _ => check(r, self.host(), &what).await.map(|_| false),
        }
    }

    /// Starts an upload session; returns its absolute URL.
    async fn start_upload(&self) -> Result<String> {
        let what = format!("start upload to {}", self.name);
        let r = self
            .registry
            .send(&what, true, |http, base| {
                http.post(self.url(base, "blobs/uploads/"))
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        let r = check(r, self.host(), &what).await?;
        location(&r).with_context(|| format!("{what}: the registry sent no Location"))
    }

    /// Ends a broken upload session so that the registry can drop it.
    async fn cancel_upload(&self, location: &str) {
        let _ = self
            .registry
            .send("cancel upload", false, |http, _| http.delete(location))
            .await;
    }

    /// Uploads `blob` in one PUT, streamed and verified on the way; a failed
    /// attempt cancels its session and starts over, a bounded number of times.
    async fn upload(&self, digest: &Digest, blob: &Blob, bar: &Bar) -> Result<()> {
        let size = blob.len();
        let mut attempt = 0;
        loop {
            let location = self.start_upload().await?;
            let mismatch = Arc::new(Mutex::new(None));
            bar.restart();
            let outcome = match open_stream(blob).await {
                Ok(source) => {
                    let body = reqwest::Body::wrap_stream(Verified {
                        inner: source,
                        hasher: Some(Hasher::default()),
                        blob: blob.clone(),
                        digest: digest.clone(),
                        mismatch: mismatch.clone(),
                        bar: bar.clone(),
                    });
                    let url = with_query(&location, "digest", digest.as_str());
                    self.registry
                        .send_once(|http| {
                            http.put(&url)
                                .header(CONTENT_LENGTH, size)
                                .header(CONTENT_TYPE, "application/octet-stream")
                                .body(body)
                        })
                        .await?
                }
                Err(e) => Err(e),
            };
            // Our own check of the bytes sent comes first: the registry may
            // answer (400 DIGEST_INVALID) before the body stream reports it.
            let mismatch = mismatch.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(m) = mismatch {
                self.cancel_upload(&location).await;
                bail!("{m}");
            }
            let retry = match outcome {
                Ok(r) if r.status() == StatusCode::CREATED => return Ok(()),
                Ok(r)
                    if r.status() == StatusCode::TOO_MANY_REQUESTS
                        || r.status().is_server_error() =>
                {
                    format!("answered {}", r.status())
                }
                Ok(r) => {
                    self.cancel_upload(&location).await;
                    return check(r, self.host(), &format!("upload {digest}"))
                        .await
                        .map(|_| ());
                }
                Err(e) => match e.downcast_ref::<reqwest::Error>() {
                    Some(re) if transient(re) => format!("{e:#}"),
                    _ => {
                        self.cancel_upload(&location).await;
                        return Err(e.context(format!("upload {digest}")));
                    }
                },
            };
            self.cancel_upload(&location).await;
            if attempt >= RETRIES {
                bail!(
                    "upload {digest} to {}: gave up after {} attempts: {retry}",
                    self.host(),
                    attempt + 1
                );
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// `ensure_growing`'s stream: an upload session fed from the growing file
    /// (`PATCH` without a length, so chunked), raced against a `HEAD` of the
    /// digest once the gzip ends; then the commit (`PUT ?digest=`). A session
    /// that is not committed is cancelled.
    async fn stream_upload(&self, g: &Arc<Growing>, bar: &Bar) -> Result<Outcome> {
        let location = self.start_upload().await?;
        let outcome = self.stream_into(&location, g, bar).await;
        if !matches!(outcome, Ok(Outcome::Uploaded(_))) {
            self.cancel_upload(&location).await;
        }
        outcome
    }

    async fn stream_into(&self, session: &str, g: &Arc<Growing>, bar: &Bar) -> Result<Outcome> {
        const CHUNK: usize = 256 << 10;
        let body = stream::try_unfold((g.clone(), 0), |(g, at)| async move {
            let chunk = g.read_at(at, CHUNK).await?;
            Ok::<_, io::Error>(chunk.map(|c| {
                let next = at + c.len() as u64;
                (c, (g, next))
            }))
        });
        let counter = bar.clone();
        let body = body.inspect_ok(move |c| counter.inc(c.len() as u64));
        let patch = self.registry.send_once(|http| {
            http.patch(session)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(reqwest::Body::wrap_stream(body))
        });
        // The gzip's digest and size once it has ended, unless the registry has it.
        let missing = async {
            let (digest, blob) = g.end().await?;
            let present = self.has_blob(&digest).await?;
            anyhow::Ok((!present).then_some((digest, blob.len())))
        };
        let (patch, missing) = (std::pin::pin!(patch), std::pin::pin!(missing));
        let (response, missing) = match future::select(patch, missing).await {
            Either::Left((r, missing)) => (r?, missing.await?),
            Either::Right((m, patch)) => match m? {
                None => return Ok(Outcome::Skipped),
                some => (patch.await?, some),
            },
        };
        let response = check(response?, self.host(), "streamed upload").await?;
        let Some((digest, len)) = missing else {
            return Ok(Outcome::Skipped);
        };
        let next = location(&response).unwrap_or_else(|| session.to_string());
        let url = with_query(&next, "digest", digest.as_str());
        let what = format!("commit upload {digest}");
        let r = self
            .registry
            .send(&what, true, |http, _| {
                http.put(&url).header(CONTENT_LENGTH, 0)
            })
            .await?;
        check(r, self.host(), &what).await?;
        Ok(Outcome::Uploaded(len))
    }

    /// PUT a manifest under `reference` (a tag, or its own digest).
    async fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<()> {
        let what = format!("push manifest {}:{reference}", self.name);
        let body = Bytes::copy_from_slice(bytes);
        let r = self
            .registry
            .send(&what, true, |http, base| {
                http.put(self.url(base, &format!("manifests/{reference}")))
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        let r = check(r, self.host(), &what).await?;
        let ours = Digest::of(bytes);
        if let Some(theirs) = r
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
        {
            if theirs != ours.as_str() {
                bail!("{what}: the registry stored digest {theirs}, harden computed {ours}");
            }
        }
        Ok(())
    }
}

fn location(r: &Response) -> Option<String> {
    let l = r.headers().get(LOCATION)?.to_str().ok()?;
    // Relative locations are relative to the request URL.
    r.url().join(l).ok().map(String::from)
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

async fn read_capped(r: Response, cap: u64, what: &str) -> Result<Vec<u8>> {
    if r.content_length().is_some_and(|n| n > cap) {
        bail!("{what} is larger than the {cap} bytes allowed");
    }
    let mut out = Vec::new();
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.with_context(|| format!("reading {what}"))?);
        if out.len() as u64 > cap {
            bail!("{what} is larger than the {cap} bytes allowed");
        }
    }
    Ok(out)
}

/// A blob's bytes as a stream, wherever the blob is.
async fn open_stream(blob: &Blob) -> Result<BoxStream<'static, io::Result<Bytes>>> {
    Ok(match blob {
        Blob::File {
            path, offset, len, ..
        } => {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut f = tokio::fs::File::open(path.as_path())
                .await
                .with_context(|| format!("cannot open {}", path.as_path().display()))?;
            f.seek(io::SeekFrom::Start(*offset)).await?;
            tokio_util::io::ReaderStream::with_capacity(f.take(*len), 256 << 10).boxed()
        }
        Blob::Bytes(b) => stream::once(std::future::ready(Ok(Bytes::copy_from_slice(b)))).boxed(),
        Blob::Fetched(f) => match remote(blob) {
            Some(rb) => rb
                .repo
                .blob_response(&rb.digest, 0)
                .await?
                .bytes_stream()
                .map_err(io::Error::other)
                .boxed(),
            None => bail!("cannot upload a blob {}", f.origin()),
        },
    })
}

/// Passes a blob's bytes to an upload, hashing them; fails the stream (and
/// so the upload, before the registry commits it) unless digest and size match.
struct Verified {
    inner: BoxStream<'static, io::Result<Bytes>>,
    hasher: Option<Hasher>,
    blob: Blob,
    digest: Digest,
    mismatch: Arc<Mutex<Option<String>>>,
    bar: Bar,
}

impl Verified {
    fn too_long(&self) -> String {
        format!(
            "blob {} is longer than its {} bytes",
            self.digest,
            self.blob.len()
        )
    }

    fn fail(&mut self, message: String) -> Poll<Option<io::Result<Bytes>>> {
        *self.mismatch.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
        Poll::Ready(Some(Err(io::Error::other(message))))
    }
}

impl futures_util::Stream for Verified {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let size = self.blob.len();
                let Some(hasher) = self.hasher.as_mut() else {
                    let m = self.too_long();
                    return self.fail(m);
                };
                hasher.update(&chunk);
                let count = hasher.count();
                if count > size {
                    let m = self.too_long();
                    return self.fail(m);
                }
                // With Content-Length the last chunk completes the request: check
                // the digest before handing it over, so a bad blob never lands.
                if count == size {
                    let hasher = self.hasher.take().expect("checked above");
                    if let Err(e) = self.blob.verify("blob", &self.digest, hasher.finish()) {
                        return self.fail(format!("{e:#}"));
                    }
                }
                self.bar.inc(chunk.len() as u64);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => match self.hasher.take() {
                // Ended before `size` bytes.
                Some(hasher) => {
                    let e = self.blob.verify("blob", &self.digest, hasher.finish());
                    let early = format!("blob {} ended early", self.digest);
                    self.fail(e.err().map_or(early, |e| format!("{e:#}")))
                }
                None => Poll::Ready(None),
            },
            other => other,
        }
    }
}

/// A blob in a registry, read only when a sink needs its bytes.
#[derive(Debug)]
pub struct RemoteBlob {
    repo: Repo,
    pub digest: Digest,
    pub size: u64,
}

impl image::Fetched for RemoteBlob {
    fn size(&self) -> u64 {
        self.size
    }

    /// The repository the blob is read from, for messages.
    fn origin(&self) -> String {
        format!("from {}/{}", self.repo.host(), self.repo.name)
    }

    /// A blocking reader that resumes (with a Range request) after a broken
    /// connection; the caller verifies the digest, as for every blob.
    fn reader(self: Arc<Self>) -> Box<dyn Read + Send> {
        Box::new(RemoteReader {
            blob: self,
            position: 0,
            body: None,
            chunk: Bytes::new(),
            failures: 0,
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The registry blob behind `blob`, when it is one.
fn remote(blob: &Blob) -> Option<&RemoteBlob> {
    match blob {
        Blob::Fetched(f) => f.as_any().downcast_ref(),
        _ => None,
    }
}

struct RemoteReader {
    blob: Arc<RemoteBlob>,
    position: u64,
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    chunk: Bytes,
    failures: u32,
}

impl RemoteReader {
    async fn next_chunk(&mut self) -> io::Result<()> {
        loop {
            if self.body.is_none() {
                let r = self
                    .blob
                    .repo
                    .blob_response(&self.blob.digest, self.position)
                    .await
                    .map_err(|e| io::Error::other(format!("{e:#}")))?;
                let mut skip = 0;
                if self.position > 0 && r.status() != StatusCode::PARTIAL_CONTENT {
                    // No range support: read from the start, drop what we have.
                    skip = self.position;
                }
                let mut body = r.bytes_stream();
                while skip > 0 {
                    match body.next().await {
                        Some(Ok(mut c)) => {
                            let n = skip.min(c.len() as u64);
                            skip -= n;
                            self.chunk = c.split_off(n as usize);
                        }
                        _ => break,
                    }
                }
                self.body = Some(body.boxed());
                if !self.chunk.is_empty() {
                    return Ok(());
                }
            }
            let body = self.body.as_mut().expect("set above");
            match body.next().await {
                Some(Ok(c)) => {
                    self.chunk = c;
                    return Ok(());
                }
                // A broken connection: resume from `position`.
                Some(Err(_)) if self.failures < RETRIES => {
                    self.body = None;
                    tokio::time::sleep(backoff(self.failures)).await;
                    self.failures += 1;
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
                None if self.position < self.blob.size && self.failures < RETRIES => {
                    self.body = None;
                    self.failures += 1;
                }
                None => return Ok(()),
            }
        }
    }
}

impl Read for RemoteReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.chunk.is_empty() {
            if self.position >= self.blob.size {
                return Ok(0);
            }
            runtime().block_on(self.next_chunk())?;
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        self.position += n as u64;
        Ok(n)
    }
}

/// Reads what `r` names: manifests and configs now, layers by reference.
pub fn read(r: &Reference, registries: &Registries) -> Result<Content> {
    let repo = registries.repo(r)?;
    let reference = r.digest().or(r.tag()).unwrap_or("latest").to_string();
    let bytes = runtime().block_on(async {
        repo.registry.want(&repo.name, &["pull"]).await;
        repo.manifest(&reference).await
    })?;
    let digest = Digest::of(&bytes);
    if let Some(wanted) = r.digest() {
        if wanted != digest.as_str() {
            bail!(
                "the registry sent a manifest that hashes to {digest}, not the {wanted} asked for"
            );
        }
    }
    let load = |child: &Digest, _size: u64| -> Result<Vec<u8>> {
        let bytes = runtime().block_on(repo.manifest(child.as_str()))?;
        let got = Digest::of(&bytes);
        if &got != child {
            bail!("the registry sent a manifest that hashes to {got}, not the {child} the index names");
        }
        Ok(bytes)
    };
    let blob = |digest: &Digest, size: u64| -> Result<Blob> {
        Ok(Blob::Fetched(Arc::new(RemoteBlob {
            repo: repo.clone(),
            digest: digest.clone(),
            size,
        })))
    };
    let mut content = crate::source::read_content(&bytes, digest, &load, &blob)?;
    let name = r
        .tag()
        .map(|t| format!("{}/{}:{t}", r.registry(), r.repository()));
    match &mut content {
        Content::Image(image) => image.name = name,
        Content::Index(index) => index
            .entries
            .iter_mut()
            .for_each(|e| e.image.name = name.clone()),
    }
    Ok(content)
}

#[derive(Clone, Copy)]
enum Outcome {
    Skipped,
    Mounted,
    Uploaded(u64),
}

/// Blobs whose push starts before the image is complete: the layers harden
/// gzips for a registry, each streamed into an upload while it is compressed
/// (as skopeo does). `write` waits for them instead of pushing them again.
/// With `write`'s own, at most PARALLEL_BLOBS run at once.
pub struct EarlyUploads {
    repo: Repo,
    limit: Arc<tokio::sync::Semaphore>,
    progress: Progress,
    running: Vec<(Arc<Growing>, tokio::task::JoinHandle<Result<Outcome>>)>,
    done: Vec<(Arc<Growing>, Outcome)>,
}

impl EarlyUploads {
    pub fn new(r: &Reference, registries: &Registries, progress: &Progress) -> Result<Self> {
        Ok(EarlyUploads {
            repo: registries.repo(r)?,
            limit: Arc::new(tokio::sync::Semaphore::new(PARALLEL_BLOBS)),
            progress: progress.clone(),
            running: Vec::new(),
            done: Vec::new(),
        })
    }

    /// Starts pushing the gzip `growing` as it is made; fails with the error
    /// of an earlier push, if one failed.
    pub fn push(&mut self, growing: &Arc<Growing>) -> Result<()> {
        let (ended, running) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|(_, task)| task.is_finished());
        self.running = running;
        for (g, task) in ended {
            let outcome = runtime()
                .block_on(task)
                .context("a blob upload panicked")??;
            self.done.push((g, outcome));
        }
        let (repo, limit, progress) =
            (self.repo.clone(), self.limit.clone(), self.progress.clone());
        let g = growing.clone();
        let task = runtime().spawn(async move {
            let _turn = limit.acquire_owned().await.expect("never closed");
            repo.registry.want(&repo.name, &["pull", "push"]).await;
            ensure_growing(&repo, &g, &progress).await
        });
        self.running.push((growing.clone(), task));
        Ok(())
    }

    /// The digests of the blobs pushed here (all known once the gzips end).
    fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        let done = self.done.iter().map(|(g, _)| g);
        done.chain(self.running.iter().map(|(g, _)| g))
            .filter_map(|g| g.digest())
    }

    /// Every outcome, once every push has ended; the first error stops the
    /// rest. With `stop` (the rest of the push failed) all are stopped.
    async fn finish(mut self, stop: bool) -> Result<Vec<Outcome>> {
        let mut outcomes: Vec<Outcome> = self.done.drain(..).map(|(_, o)| o).collect();
        let mut failed = None;
        for (_, task) in std::mem::take(&mut self.running) {
            if stop || failed.is_some() {
                task.abort();
                let _ = task.await;
                continue;
            }
            match task.await.context("a blob upload panicked").and_then(|r| r) {
                Ok(o) => outcomes.push(o),
                Err(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(outcomes), Err)
    }
}

impl Drop for EarlyUploads {
    /// Not finished (harden failed before the push): the uploads stop, and
    /// the temp files of their blobs go now rather than stay behind at exit.
    /// An upload whose gzip failed is given a moment to cancel its session
    /// (its stream has failed), so that the registry can drop the bytes sent.
    fn drop(&mut self) {
        let in_runtime = tokio::runtime::Handle::try_current().is_ok();
        for (g, mut task) in self.running.drain(..) {
            if !in_runtime && g.failed() {
                let wait = async { tokio::time::timeout(Duration::from_secs(2), &mut task).await };
                if runtime().block_on(wait).is_ok() {
                    continue; // ended
                }
            }
            task.abort();
            if !in_runtime {
                let _ = runtime().block_on(task);
            }
        }
    }
}

/// Pushes an image or an index as `r` (a tagged reference): every blob first
/// (waiting for those of `early`), then the manifests of an index's images by
/// digest, the tag last.
pub fn write(
    content: &Content,
    r: &Reference,
    registries: &Registries,
    progress: &Progress,
    early: Option<EarlyUploads>,
) -> Result<Written> {
    let tag = r
        .tag()
        .filter(|_| r.digest().is_none())
        .with_context(|| format!("the destination {r} must be a tag, not a digest"))?;
    let repo = registries.repo(r)?;
    let (images, top, top_type): (Vec<&Image>, Vec<u8>, &str) = match content {
        Content::Image(i) => (vec![i], i.manifest(), i.manifest_media_type()),
        Content::Index(x) => (
            x.entries.iter().map(|e| &e.image).collect(),
            x.manifest(),
            x.media_type(),
        ),
    };
    let mut blobs = blobs_of(&images);
    let others = match content {
        Content::Index(x) => x.others.as_slice(),
        Content::Image(_) => &[],
    };
    for (digest, blob) in others.iter().flat_map(|o| &o.blobs) {
        if !blobs.iter().any(|(d, ..)| d == digest) {
            blobs.push((digest.clone(), blob.clone(), BlobKind::Attached));
        }
    }
    if let Some(early) = &early {
        let sent: Vec<Digest> = early.digests().collect();
        blobs.retain(|(d, ..)| !sent.contains(d));
    }
    let outcomes = runtime().block_on(async {
        repo.registry.want(&repo.name, &["pull", "push"]).await;
        for (_, blob, _) in &blobs {
            if let Some(from) = mount_source(blob, &repo) {
                repo.registry.want(&from.name, &["pull"]).await;
            }
        }
        // The early pushes are tasks of their own: they go on meanwhile, and
        // take their turns from the same PARALLEL_BLOBS.
        let limit = early.as_ref().map_or_else(
            || Arc::new(tokio::sync::Semaphore::new(PARALLEL_BLOBS)),
            |e| e.limit.clone(),
        );
        let rest: Result<Vec<Outcome>> = stream::iter(&blobs)
            .map(|(digest, blob, kind)| {
                let (limit, repo) = (limit.clone(), &repo);
                async move {
                    let _turn = limit.acquire_owned().await.expect("never closed");
                    ensure_blob(repo, digest, blob, *kind, progress).await
                }
            })
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect()
            .await;
        let early = match early {
            Some(e) => e.finish(rest.is_err()).await?,
            None => Vec::new(),
        };
        let mut outcomes = rest?;
        outcomes.extend(early);
        if let Content::Index(_) = content {
            for image in &images {
                let m = image.manifest();
                let digest = Digest::of(&m);
                repo.put_manifest(digest.as_str(), image.manifest_media_type(), &m)
                    .await?;
            }
            for other in others {
                let digest = Digest::of(&other.manifest);
                repo.put_manifest(digest.as_str(), other.media_type(), &other.manifest)
                    .await?;
            }
        }
        repo.put_manifest(tag, top_type, &top).await?;
        anyhow::Ok(outcomes)
    })?;
    let mut summary = BlobSummary::default();
    for o in outcomes {
        match o {
            Outcome::Skipped => summary.skipped += 1,
            Outcome::Mounted => summary.mounted += 1,
            Outcome::Uploaded(n) => {
                summary.uploaded += 1;
                summary.uploaded_bytes += n;
            }
        }
    }
    Ok(Written {
        destination: format!("docker://{r}"),
        manifest_digest: Some(Digest::of(&top).to_string()),
        image_id: match content {
            Content::Image(i) => Some(i.config_digest().to_string()),
            Content::Index(_) => None,
        },
        blobs: Some(summary),
    })
}

/// What a blob is to the images pushed, as the progress lines say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    Config,
    Layer,
    /// A blob of an index entry that is not an image (an attestation, an artifact).
    Attached,
}

impl std::fmt::Display for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            BlobKind::Config => "config",
            BlobKind::Layer => "layer",
            BlobKind::Attached => "attached blob",
        })
    }
}

/// Every blob of `images` once: images may share layers, or list one twice.
fn blobs_of(images: &[&Image]) -> Vec<(Digest, Blob, BlobKind)> {
    let mut seen = std::collections::HashSet::new();
    let mut blobs = Vec::new();
    for image in images {
        let config = (
            image.config_digest(),
            Blob::Bytes(Arc::new(image.config.clone())),
            BlobKind::Config,
        );
        let layers =
            (image.layers.iter()).map(|l| (l.digest.clone(), l.blob.clone(), BlobKind::Layer));
        for (digest, blob, kind) in layers.chain([config]) {
            if seen.insert(digest.clone()) {
                blobs.push((digest, blob, kind));
            }
        }
    }
    blobs
}

/// What a push of `images` to `r` would do with each blob, found with HEAD
/// requests only (`--dry-run`): `(digest, kind, size, "present" | "mount from REPO" | "upload")`.
pub fn plan(
    images: &[&Image],
    r: &Reference,
    registries: &Registries,
) -> Result<Vec<(Digest, BlobKind, u64, String)>> {
    let repo = registries.repo(r)?;
    let blobs = blobs_of(images);
    runtime().block_on(async {
        repo.registry.want(&repo.name, &["pull"]).await;
        let mut plan = Vec::new();
        for (digest, blob, kind) in &blobs {
            let what = if repo.has_blob(digest).await? {
                "present".to_string()
            } else if let Some(from) = mount_source(blob, &repo) {
                format!("mount from {}", from.name)
            } else {
                "upload".to_string()
            };
            plan.push((digest.clone(), *kind, blob.len(), what));
        }
        Ok(plan)
    })
}

/// The repository to mount `blob` from: another repository of the same registry.
fn mount_source<'a>(blob: &'a Blob, dest: &Repo) -> Option<&'a Repo> {
    remote(blob)
        .filter(|rb| Arc::ptr_eq(&rb.repo.registry, &dest.registry) && rb.repo.name != dest.name)
        .map(|rb| &rb.repo)
}

async fn ensure_blob(
    repo: &Repo,
    digest: &Digest,
    blob: &Blob,
    kind: BlobKind,
    progress: &Progress,
) -> Result<Outcome> {
    let name = format!("{kind} {}", &digest.hex()[..12]);
    if repo.has_blob(digest).await? {
        progress.say(&format!("{name}: already in {}", repo.name));
        return Ok(Outcome::Skipped);
    }
    if let Some(from) = mount_source(blob, repo) {
        if repo.mount(digest, from).await? {
            progress.say(&format!("{name}: mounted from {}", from.name));
            return Ok(Outcome::Mounted);
        }
    }
    let bar = progress.bar(&name, Some(blob.len()));
    let uploaded = repo.upload(digest, blob, &bar).await;
    bar.done();
    uploaded?;
    let size = indicatif::HumanBytes(blob.len());
    progress.say(&format!("{name}: uploaded {size}"));
    Ok(Outcome::Uploaded(blob.len()))
}

/// Pushes a layer's gzip while it is made: its bytes go into one streamed
/// `PATCH` as they are written, committed under the digest once the gzip has
/// ended — unless the registry has that blob already (harden's gzip is
/// deterministic: the same layer pushed again), which ends the stream at
/// once. When the stream fails, the finished file is pushed as any other blob
/// (with retries); when the gzip fails, nothing is committed.
///
/// Its lines name the layer by its plain digest, the one name it has from the
/// start; the gzip's digest is said once it is known.
async fn ensure_growing(repo: &Repo, g: &Arc<Growing>, progress: &Progress) -> Result<Outcome> {
    let name = format!("{} {}", BlobKind::Layer, &g.plain.hex()[..12]);
    // The gzip's size is not known until it ends: a bar of bytes only.
    let bar = progress.bar(&format!("{name} push"), None);
    let streamed = repo.stream_upload(g, &bar).await;
    bar.done();
    let (digest, blob) = g.end().await?;
    let gzip = format!("gzip {}", &digest.hex()[..12]);
    match streamed {
        Ok(Outcome::Skipped) => {
            progress.say(&format!("{name}: already in {} as {gzip}", repo.name));
            Ok(Outcome::Skipped)
        }
        Ok(outcome) => {
            let size = indicatif::HumanBytes(blob.len());
            progress.say(&format!(
                "{name}: uploaded as {gzip}, {size}, while compressed"
            ));
            Ok(outcome)
        }
        Err(e) => {
            trace(|| format!("streamed upload of {digest} failed, pushing the file: {e:#}"));
            ensure_blob(repo, &digest, &blob, BlobKind::Layer, progress).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_joins() {
        assert_eq!(
            with_query("http://h/u?x=1", "digest", "d"),
            "http://h/u?x=1&digest=d"
        );
        assert_eq!(
            with_query("http://h/u", "digest", "d"),
            "http://h/u?digest=d"
        );
    }
}
