//! A repository of a registry and the distribution API calls on it:
//! manifests, blobs (HEAD, GET, mount, upload), each with retries.

use super::client::{check, Registry};
use crate::digest::Digest;
use crate::image::MAX_MANIFEST;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::stream::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Response, StatusCode};
use std::sync::Arc;

/// A repository of a registry.
#[derive(Clone)]
pub struct Repo {
    pub(super) registry: Arc<Registry>,
    pub(super) name: String,
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
    pub(super) fn url(&self, base: &str, path: &str) -> String {
        format!("{base}/v2/{}/{path}", self.name)
    }

    pub(super) fn host(&self) -> &str {
        &self.registry.host
    }

    /// Asks for pull access to this repository in the tokens from now on.
    pub async fn want_pull(&self) {
        self.registry.want(&self.name, &["pull"]).await;
    }

    /// The manifest's bytes (capped); what it is, harden reads from its content.
    pub async fn manifest(&self, reference: &str) -> Result<Vec<u8>> {
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

    /// The digest the registry names for a tag (`HEAD`, Docker-Content-Digest);
    /// none when it sends no such header.
    pub async fn manifest_digest(&self, reference: &str) -> Result<Option<Digest>> {
        let what = format!("manifest {}:{reference}", self.name);
        let r = self
            .registry
            .send(&what, true, |http, base| {
                http.head(self.url(base, &format!("manifests/{reference}")))
                    .header(ACCEPT, MANIFEST_TYPES)
            })
            .await?;
        let r = check(r, self.host(), &what).await?;
        let header = r.headers().get("Docker-Content-Digest");
        Ok(header
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok()))
    }

    /// `GET tags/list`, with the client's query (`n`, `last`) as it was.
    pub async fn tags(&self, query: Option<&str>) -> Result<Response> {
        let what = format!("tags of {}", self.name);
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let r = self
            .registry
            .send(&what, true, |http, base| {
                http.get(self.url(base, &format!("tags/list{query}")))
            })
            .await?;
        check(r, self.host(), &what).await
    }

    /// `GET` a blob from byte `from` on (a resumed download asks for a range).
    pub async fn blob_response(&self, digest: &Digest, from: u64) -> Result<Response> {
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

    pub(super) async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(self.blob_size(digest).await?.is_some())
    }

    /// `HEAD` a blob: its size (Content-Length), none when the registry has
    /// no such blob.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let what = format!("HEAD blob {digest}");
        let r = self
            .registry
            .send(&what, true, |http, base| {
                http.head(self.url(base, &format!("blobs/{digest}")))
            })
            .await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let r = check(r, self.host(), &what).await?;
        let size = r.headers().get(CONTENT_LENGTH);
        Ok(Some(
            size.and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or_default(),
        ))
    }

    /// Cross-repository mount; false when the registry starts an upload
    /// instead (202), which is cancelled here.
    pub(super) async fn mount(&self, digest: &Digest, from: &Repo) -> Result<bool> {
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
    pub(super) async fn start_upload(&self) -> Result<String> {
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
    pub(super) async fn cancel_upload(&self, location: &str) {
        let _ = self
            .registry
            .send("cancel upload", false, |http, _| http.delete(location))
            .await;
    }

    /// PUT a manifest under `reference` (a tag, or its own digest).
    pub(super) async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<()> {
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

pub(super) fn location(r: &Response) -> Option<String> {
    let l = r.headers().get(LOCATION)?.to_str().ok()?;
    // Relative locations are relative to the request URL.
    r.url().join(l).ok().map(String::from)
}

pub(super) fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

pub async fn read_capped(r: Response, cap: u64, what: &str) -> Result<Vec<u8>> {
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
