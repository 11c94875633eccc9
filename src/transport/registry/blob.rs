//! Blob bytes on the wire: a registry blob read only when a sink needs it,
//! any blob as an upload stream, checked against its digest as it goes.

use super::client::{backoff, RETRIES};
use super::pool::runtime;
use super::repo::Repo;
use crate::digest::{Digest, Hasher};
use crate::image::{self, Blob};
use crate::progress::Bar;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

/// A blob's bytes as a stream, wherever the blob is.
pub(super) async fn open_stream(blob: &Blob) -> Result<BoxStream<'static, io::Result<Bytes>>> {
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
pub(super) struct Verified {
    inner: BoxStream<'static, io::Result<Bytes>>,
    hasher: Option<Hasher>,
    blob: Blob,
    digest: Digest,
    mismatch: Arc<Mutex<Option<String>>>,
    bar: Bar,
}

impl Verified {
    /// `inner`, checked against `digest` and `blob`'s size; a mismatch is
    /// also left in `mismatch` for the upload's error.
    pub(super) fn new(
        inner: BoxStream<'static, io::Result<Bytes>>,
        blob: &Blob,
        digest: &Digest,
        mismatch: Arc<Mutex<Option<String>>>,
        bar: Bar,
    ) -> Verified {
        Verified {
            inner,
            hasher: Some(Hasher::default()),
            blob: blob.clone(),
            digest: digest.clone(),
            mismatch,
            bar,
        }
    }

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
    pub(super) repo: Repo,
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
pub(super) fn remote(blob: &Blob) -> Option<&RemoteBlob> {
    match blob {
        Blob::Fetched(f) => f.as_any().downcast_ref(),
        _ => None,
    }
}

pub(super) struct RemoteReader {
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
