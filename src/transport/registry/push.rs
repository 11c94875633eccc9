//! Pushing an image or an index: blobs first (present, mounted or
//! uploaded, some while harden still gzips them), manifests after, the tag
//! last.

use super::blob::remote;
use super::pool::{runtime, Registries};
use super::repo::Repo;
use super::upload::Outcome;
use crate::compress::Growing;
use crate::digest::Digest;
use crate::image::{Blob, Content, Image};
use crate::progress::{trace, Progress};
use crate::transport::written::{BlobSummary, Written};
use anyhow::{Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use oci_spec::distribution::Reference;
use std::sync::Arc;
use std::time::Duration;

/// Blob transfers at once to a registry.
const PARALLEL_BLOBS: usize = 4;

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

/// A blob of a `--dry-run` plan: digest, kind, size, what would happen.
pub type PlannedBlob = (Digest, BlobKind, u64, String);

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
pub fn plan(images: &[&Image], r: &Reference, registries: &Registries) -> Result<Vec<PlannedBlob>> {
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
    use super::super::read::read;
    use super::super::testing::TestRegistry;
    use super::*;
    use crate::image::Family;
    use crate::transport::testing::{corrupted, image};

    fn at(reg: &TestRegistry, repo_tag: &str) -> Reference {
        crate::transport::parse_reference(&format!("{}/{repo_tag}", reg.addr)).unwrap()
    }

    fn quiet() -> Progress {
        Progress::new(true)
    }

    #[test]
    fn an_image_written_reads_back_the_same_and_the_tag_comes_last() {
        let reg = TestRegistry::start();
        let registries = reg.registries();
        let img = image(Family::Oci, &[("a", b"one"), ("b", b"two")]);
        let r = at(&reg, "app:1");
        let written = write(
            &Content::Image(img.clone()),
            &r,
            &registries,
            &quiet(),
            None,
        )
        .unwrap();
        let manifest = img.manifest();
        assert_eq!(
            written.manifest_digest,
            Some(Digest::of(&manifest).to_string())
        );
        let summary = written.blobs.unwrap();
        assert_eq!(
            (summary.uploaded, summary.skipped, summary.mounted),
            (3, 0, 0)
        );
        assert_eq!(reg.log().last().unwrap(), "PUT /v2/app/manifests/1");

        let Content::Image(back) = read(&r, &registries).unwrap() else {
            panic!("an image was written");
        };
        assert_eq!(back.manifest(), manifest);
        assert_eq!(back.config, img.config);
        for layer in &back.layers {
            layer
                .blob
                .read_verified(&layer.digest, 1 << 20, "layer")
                .unwrap();
        }
    }

    #[test]
    fn blobs_there_are_not_sent_and_other_repositories_mount_them() {
        let reg = TestRegistry::start();
        let registries = reg.registries();
        let img = Content::Image(image(Family::Docker, &[("a", b"base")]));
        write(&img, &at(&reg, "app:1"), &registries, &quiet(), None).unwrap();

        reg.clear_log();
        let again = write(&img, &at(&reg, "app:2"), &registries, &quiet(), None).unwrap();
        assert_eq!(again.blobs.unwrap().skipped, 2);
        assert!(
            !reg.log().iter().any(|l| l.contains("/blobs/uploads/")),
            "{:?}",
            reg.log()
        );

        // Read from app, written to other: each blob is mounted, none uploaded.
        let from_app = read(&at(&reg, "app:1"), &registries).unwrap();
        reg.clear_log();
        let other = write(&from_app, &at(&reg, "other:1"), &registries, &quiet(), None).unwrap();
        let summary = other.blobs.unwrap();
        // The config harden holds as bytes is uploaded; the layer is mounted.
        assert_eq!(
            (summary.mounted, summary.uploaded),
            (1, 1),
            "{:?}",
            reg.log()
        );
        assert!(
            !reg.log().iter().any(|l| l.starts_with("PATCH")),
            "{:?}",
            reg.log()
        );
    }

    #[test]
    fn a_blob_that_fails_its_digest_is_not_committed_and_no_tag_is_pushed() {
        let reg = TestRegistry::start();
        let registries = reg.registries();
        let bad = corrupted(image(Family::Oci, &[("a", &[7u8; 4096])]));
        let digest = bad.layers[0].digest.to_string();
        let e = write(
            &Content::Image(bad),
            &at(&reg, "app:1"),
            &registries,
            &quiet(),
            None,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains(&digest), "{e:#}");
        let store = reg.store.lock().unwrap();
        assert!(!store.blobs.contains_key(&("app".to_string(), digest)));
        assert!(store.manifests.is_empty(), "{:?}", store.log);
    }
}
