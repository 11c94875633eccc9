//! Blob uploads: a blob streamed and checked against its digest as it goes,
//! and a layer streamed while harden still gzips it.

use super::blob::{open_stream, Verified};
use super::client::{backoff, check, transient, RETRIES};
use super::repo::{location, with_query, Repo};
use crate::compress::Growing;
use crate::digest::Digest;
use crate::image::Blob;
use crate::progress::Bar;
use anyhow::{bail, Result};
use futures_util::future::{self, Either};
use futures_util::stream::{self, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use std::io;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy)]
pub(super) enum Outcome {
    Skipped,
    Mounted,
    Uploaded(u64),
}

impl Repo {
    /// Uploads `blob` in one PUT, streamed and verified on the way; a failed
    /// attempt cancels its session and starts over, a bounded number of times.
    pub(super) async fn upload(&self, digest: &Digest, blob: &Blob, bar: &Bar) -> Result<()> {
        let size = blob.len();
        let mut attempt = 0;
        loop {
            let location = self.start_upload().await?;
            let mismatch = Arc::new(Mutex::new(None));
            bar.restart();
            let outcome = match open_stream(blob).await {
                Ok(source) => {
                    let body = reqwest::Body::wrap_stream(Verified::new(
                        source,
                        blob,
                        digest,
                        mismatch.clone(),
                        bar.clone(),
                    ));
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
    pub(super) async fn stream_upload(&self, g: &Arc<Growing>, bar: &Bar) -> Result<Outcome> {
        let location = self.start_upload().await?;
        let outcome = self.stream_into(&location, g, bar).await;
        if !matches!(outcome, Ok(Outcome::Uploaded(_))) {
            self.cancel_upload(&location).await;
        }
        outcome
    }

    pub(super) async fn stream_into(
        &self,
        session: &str,
        g: &Arc<Growing>,
        bar: &Bar,
    ) -> Result<Outcome> {
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
}
