//! Writing images: docker-archive, OCI layout directory, oci-archive; and
//! registries, through `registry`.
//! Every output is built aside and renamed into place at the end, so a failure
//! leaves nothing half-written; every blob copied is checked against its digest.

use crate::digest::{self, Digest, HashingReader};
use crate::image::{Blob, BlobFile, Content, Image};
use crate::layer::header;
use crate::progress::Progress;
use crate::registry::{self, Registries};
use crate::source::REF_NAME;
use crate::transport::{ImageRef, Select};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use tar::EntryType;
use tempfile::NamedTempFile;

#[derive(Debug, Serialize)]
pub struct Written {
    pub destination: String,
    /// Digest of the manifest written (none in a docker-archive, which has no manifest).
    pub manifest_digest: Option<String>,
    /// The config digest, which docker and podman show as the image ID
    /// (none for an index).
    pub image_id: Option<String>,
    /// What a registry push moved (none for the file transports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<BlobSummary>,
}

/// Blobs of a registry push: already there, mounted from another repository,
/// or uploaded (and how many bytes).
#[derive(Debug, Default, Serialize)]
pub struct BlobSummary {
    pub skipped: usize,
    pub mounted: usize,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
}

/// Refuses, before anything is read, a destination that cannot be written
/// (`@INDEX`) or would overwrite the source.
pub fn check_destination(src: &ImageRef, dest: &ImageRef) -> Result<()> {
    dest.output_name()
        .with_context(|| format!("the destination {dest}"))?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let clash = match (src, dest) {
        // Into its own layout, an image goes beside the source; only taking
        // the source's own tag would drop the source from the index.
        (ImageRef::Oci { dir: a, select: x }, ImageRef::Oci { dir: b, select: y }) => {
            same(a, b)
                && match y {
                    Select::Name(t) => {
                        x == y
                            || crate::source::layout_ref_name(a, x)
                                .is_ok_and(|n| n.as_deref() == Some(t))
                    }
                    _ => false,
                }
        }
        (ImageRef::Docker(a), ImageRef::Docker(b)) => {
            a.registry() == b.registry() && a.repository() == b.repository() && a.tag() == b.tag()
        }
        (ImageRef::Oci { .. } | ImageRef::Docker(_), _)
        | (_, ImageRef::Oci { .. } | ImageRef::Docker(_)) => false,
        (
            ImageRef::DockerArchive { path: a, .. } | ImageRef::OciArchive { path: a, .. },
            ImageRef::DockerArchive { path: b, .. } | ImageRef::OciArchive { path: b, .. },
        ) => same(a, b),
    };
    if clash {
        bail!("the destination {dest} is the source: harden never modifies its input");
    }
    Ok(())
}

/// Writes an image or an index to `dest`; `early` holds the blobs already on
/// their way to a registry destination; `sync`: fsync file outputs.
pub fn write(
    content: &Content,
    dest: &ImageRef,
    registries: &Registries,
    progress: &Progress,
    early: Option<registry::EarlyUploads>,
    sync: bool,
) -> Result<Written> {
    write_to(content, dest, registries, progress, early, sync)
        .with_context(|| format!("writing {dest}"))
}

fn write_to(
    content: &Content,
    dest: &ImageRef,
    registries: &Registries,
    progress: &Progress,
    early: Option<registry::EarlyUploads>,
    sync: bool,
) -> Result<Written> {
    let oci = || match content {
        Content::Image(i) => Content::Image(i.clone().into_oci()),
        Content::Index(i) => Content::Index(i.clone().into_oci()),
    };
    let name = dest.output_name()?;
    match dest {
        ImageRef::Docker(r) => registry::write(content, r, registries, progress, early),
        ImageRef::DockerArchive { path, .. } => {
            let image = match content {
                Content::Image(image) => image,
                Content::Index(index) => match index.entries.as_slice() {
                    [one] => &one.image,
                    entries => {
                        let platforms: Vec<String> =
                            entries.iter().map(|e| e.platform.to_string()).collect();
                        bail!(
                            "a docker-archive holds one platform; choose one of {} with --platform",
                            platforms.join(", ")
                        )
                    }
                },
            };
            let name = name
                .map(str::to_string)
                .or_else(|| image.name.as_deref().and_then(hardened_name));
            write_docker_archive(image, path, name, sync)
        }
        ImageRef::Oci { dir, .. } => write_oci(&oci(), Layout::open_dir(dir, sync)?, name),
        ImageRef::OciArchive { path, .. } => {
            write_oci(&oci(), Layout::new_archive(path, sync)?, name)
        }
    }
}

/// `repo:tag` → `repo:tag-hardened`, the default name of a hardened image.
pub fn hardened_name(name: &str) -> Option<String> {
    let (repo, tag) = name
        .rsplit_once(':')
        .filter(|(r, t)| !r.is_empty() && !r.contains('@') && !t.contains('/'))?;
    Some(format!("{repo}:{}", crate::transport::hardened_tag(tag)))
}

/// A temp file next to `dest`, so that the final rename stays on one filesystem.
fn temp_beside(dest: &Path) -> Result<NamedTempFile> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dest.file_name().context("destination has no file name")?;
    // Outputs get the usual 0644, not the temp file's 0600.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.harden-", name.to_string_lossy()))
        .permissions(fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| crate::interrupt::temp_error(dir, "file", e))?;
    crate::interrupt::track(tmp.path());
    Ok(tmp)
}

/// Renames a finished temp file to `dest`. The error is the rename's own:
/// tempfile's wrapper would repeat its cause in the error chain.
fn persist(tmp: NamedTempFile, dest: &Path) -> Result<()> {
    tmp.persist(dest)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(())
}

/// Makes the names created or renamed in `dir` durable: a synced file's data
/// can be on disk while its name is not.
fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // The output is in place by now: a directory we may write but not read
    // (mode -wx), or a filesystem that cannot sync one, is no reason to fail.
    let Ok(handle) = File::open(dir) else {
        return Ok(());
    };
    match handle.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r.with_context(|| format!("cannot sync the directory {}", dir.display())),
    }
}

/// An output file being written. Normally a temp file beside the
/// destination, synced (unless `sync` is false) and renamed over it at the
/// end; when the destination is a symlink, its target is replaced and the
/// link kept. A destination that is a pipe or a device (`/dev/stdout`) is
/// written in place, in order: nothing can be renamed over it, and replacing
/// it would break it.
enum OutFile {
    Temp {
        tmp: NamedTempFile,
        dest: PathBuf,
        sync: bool,
    },
    Stream,
}

impl OutFile {
    fn create(dest: &Path, sync: bool) -> Result<(File, OutFile)> {
        if fs::metadata(dest).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(dest)
                .with_context(|| format!("cannot write {}", dest.display()))?;
            return Ok((file, OutFile::Stream));
        }
        let dest = match fs::symlink_metadata(dest) {
            Ok(m) if m.is_symlink() => fs::canonicalize(dest)
                .with_context(|| format!("{} is a symbolic link to nothing", dest.display()))?,
            _ => dest.to_path_buf(),
        };
        let tmp = temp_beside(&dest)?;
        Ok((tmp.reopen()?, OutFile::Temp { tmp, dest, sync }))
    }

    /// A directory for scratch files (layers decompressed on the way): on the
    /// output's filesystem, or $TMPDIR for a stream.
    fn scratch_dir(&self) -> PathBuf {
        match self {
            OutFile::Temp { tmp, .. } => tmp.path().parent().map(Path::to_path_buf),
            OutFile::Stream => None,
        }
        .unwrap_or_else(std::env::temp_dir)
    }

    /// Whether the file is synced at the end, so that starting its writeback
    /// early is worth it.
    fn syncs(&self) -> bool {
        matches!(self, OutFile::Temp { sync: true, .. })
    }

    /// Syncs and renames into place (a stream only needs what was written).
    fn finish(self, file: &File) -> Result<()> {
        match self {
            OutFile::Temp { tmp, dest, sync } => {
                if sync {
                    file.sync_all()?;
                }
                persist(tmp, &dest)?;
                match dest.parent() {
                    Some(dir) if sync => sync_dir(dir),
                    _ => Ok(()),
                }
            }
            OutFile::Stream => Ok(()),
        }
    }

    fn finish_tar(self, tar: tar::Builder<BufWriter<File>>) -> Result<()> {
        let file = tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
        self.finish(&file)
    }
}

/// Writes a small file (temp file beside it, synced if `sync`, renamed; or
/// into a pipe).
pub fn write_file(dest: &Path, bytes: &[u8], mode: u32, sync: bool) -> Result<()> {
    let (mut file, out) = OutFile::create(dest, sync)?;
    file.write_all(bytes)?;
    if let OutFile::Temp { .. } = out {
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    out.finish(&file)
}

/// Appends a blob as a tar member, checking digest and size. A file-backed
/// blob is copied by the kernel while its digest is computed on another
/// thread (from `ahead` when it was queued there, else on a thread of its
/// own): that check is pushed to `checks`, so that the next copy need not wait
/// for this hash. Other blobs are checked as they stream. `writeback`: the
/// output will be synced (see `kernel_copy`).
fn append_verified(
    tar: &mut tar::Builder<BufWriter<File>>,
    name: &str,
    blob: &Blob,
    expected: &Digest,
    ahead: &mut HashAhead,
    writeback: bool,
    checks: &mut Checks,
) -> Result<()> {
    let mut h = header(EntryType::Regular, 0o644, blob.len());
    if let Blob::File { path, offset, len } = blob {
        let hashed = ahead
            .take(expected)
            .unwrap_or_else(|| hash_in_background(path.clone(), *offset, *len));
        // The member by hand (header, kernel copy, padding): tar::Builder
        // keeps no state between members, only 512-byte alignment. Names
        // here are digests, well under the 100 bytes of a plain header.
        h.set_path(name)?;
        h.set_cksum();
        let out = tar.get_mut();
        out.write_all(h.as_bytes())?;
        out.flush()?;
        let file = out.get_mut();
        let region = (path.as_path(), *offset, *len);
        let check = copy_checked(region, expected, file, hashed, writeback)
            .with_context(|| format!("copying {name}"))?;
        file.write_all(&[0; 512][..((512 - len % 512) % 512) as usize])?;
        return checks.push(check);
    }
    let mut reader = HashingReader::new(blob.open()?);
    tar.append_data(&mut h, name, &mut reader)
        .with_context(|| format!("copying {name}"))?;
    digest::verify(
        &format!("blob {expected}"),
        expected,
        blob.len(),
        reader.finish(),
    )
}

type Hashed = mpsc::Receiver<io::Result<(Digest, u64)>>;

/// The digest of a file region, computed on a thread of its own from the
/// page cache while the kernel copies the same bytes.
fn hash_in_background(path: Arc<BlobFile>, offset: u64, len: u64) -> Hashed {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(digest::hash_file_range(path.as_path(), offset, len));
    });
    rx
}

/// Digests of the file-backed blobs an output will copy, computed in order
/// by one thread per core ahead of the copies: while the kernel copies one
/// layer, the next ones are being hashed, so both cores stay busy (hashing,
/// not copying, is the long part). Dropping it stops the threads after the
/// blob each is on.
struct HashAhead {
    pending: Vec<(Digest, Hashed)>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl HashAhead {
    fn start(blobs: Vec<(Digest, Arc<BlobFile>, u64, u64)>) -> HashAhead {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let (senders, pending): (Vec<_>, Vec<_>) = blobs
            .iter()
            .map(|(digest, ..)| {
                let (tx, rx) = mpsc::channel();
                (tx, (digest.clone(), rx))
            })
            .unzip();
        let jobs = Arc::new((blobs, senders, AtomicUsize::new(0)));
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..workers.min(jobs.0.len()) {
            let (jobs, stop) = (jobs.clone(), stop.clone());
            std::thread::spawn(move || {
                let (blobs, senders, next) = &*jobs;
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, path, offset, len)) = blobs.get(i) else {
                        break;
                    };
                    let _ = senders[i].send(digest::hash_file_range(path.as_path(), *offset, *len));
                }
            });
        }
        HashAhead { pending, stop }
    }

    fn none() -> HashAhead {
        HashAhead::start(Vec::new())
    }

    fn take(&mut self, digest: &Digest) -> Option<Hashed> {
        let i = self.pending.iter().position(|(d, _)| d == digest)?;
        Some(self.pending.swap_remove(i).1)
    }
}

impl Drop for HashAhead {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Copies `len` bytes of `path` from `offset` by the kernel (`kernel_copy`)
/// while `hashed`, the digest of the same bytes from another thread, comes
/// in; the returned check compares it with `expected` once it has.
fn copy_checked(
    (path, offset, len): (&Path, u64, u64),
    expected: &Digest,
    out: &mut File,
    hashed: Hashed,
    writeback: bool,
) -> Result<CopyCheck> {
    let copied = kernel_copy(path, offset, len, out, writeback)?;
    Ok(CopyCheck {
        expected: expected.clone(),
        len,
        copied,
        path: path.to_path_buf(),
        hashed,
    })
}

/// A blob the kernel copied, whose digest from another thread is still to
/// be compared with the one it is named by.
struct CopyCheck {
    expected: Digest,
    len: u64,
    copied: u64,
    path: PathBuf,
    hashed: Hashed,
}

impl CopyCheck {
    /// The digest both sides saw, and the size (a short copy shows as truncation).
    fn verify(self) -> Result<()> {
        let (digest, size) = self
            .hashed
            .recv()
            .map_err(|_| anyhow::anyhow!("the hashing thread failed"))?
            .with_context(|| format!("reading {}", self.path.display()))?;
        let got = (digest, size.min(self.copied));
        digest::verify(
            &format!("blob {}", self.expected),
            &self.expected,
            self.len,
            got,
        )
    }
}

/// The checks of an output's copies, made before it is renamed into place:
/// a mismatch still leaves nothing behind, and the copies do not wait for the
/// hashes. At most a few wait at once (each may hold a hashing thread).
#[derive(Default)]
struct Checks(std::collections::VecDeque<CopyCheck>);

impl Checks {
    const MAX_PENDING: usize = 8;

    fn push(&mut self, check: CopyCheck) -> Result<()> {
        self.0.push_back(check);
        if self.0.len() > Self::MAX_PENDING {
            self.0.pop_front().expect("not empty").verify()?;
        }
        Ok(())
    }

    fn verify_all(self) -> Result<()> {
        self.0.into_iter().try_for_each(CopyCheck::verify)
    }
}

/// Copies `len` bytes of `path` from `offset` to the end of `out` by the
/// kernel (copy_file_range: no trip through user space, a reflink where the
/// filesystem can): base layers never pass through harden's buffers.
/// Returns how many bytes were copied.
fn kernel_copy(path: &Path, offset: u64, len: u64, out: &mut File, writeback: bool) -> Result<u64> {
    // With `writeback` (the output is synced at the end), writeback of each
    // piece starts as soon as it is copied, so the disk writes while the next
    // piece is copied and the layers hashed: the fsync at the end finds little
    // left. Per layer instead of per piece it was 0.46-0.51 s against
    // 0.40-0.48 s (400 MiB archive, 16 MiB pieces). Without a sync to follow
    // it only costs: 0.51 s against 0.36 s.
    const PIECE: u64 = 16 << 20;
    let mut src = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    src.seek(io::SeekFrom::Start(offset))?;
    // A pipe has no position: nothing to write back then.
    let mut at = out.stream_position().ok().filter(|_| writeback);
    let mut copied = 0;
    while copied < len {
        let n = io::copy(&mut (&mut src).take(PIECE.min(len - copied)), out)?;
        if n == 0 {
            break; // the source is shorter: the caller sees the size
        }
        if let Some(start) = at {
            // Safety: a plain syscall on a descriptor we own; an error only
            // loses the head start.
            unsafe {
                libc::sync_file_range(
                    std::os::fd::AsRawFd::as_raw_fd(out),
                    start as i64,
                    n as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            at = Some(start + n);
        }
        copied += n;
    }
    Ok(copied)
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut h = header(EntryType::Regular, 0o644, bytes.len() as u64);
    tar.append_data(&mut h, name, bytes)?;
    Ok(())
}

/// The `docker save` format: uncompressed layers named by diff_id, the config
/// named by its digest, and manifest.json.
fn write_docker_archive(
    image: &Image,
    path: &Path,
    repo_tag: Option<String>,
    sync: bool,
) -> Result<Written> {
    let (file, out) = OutFile::create(path, sync)?;
    let writeback = out.syncs();
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let mut layer_names = Vec::new();
    let mut written = HashSet::new();
    let mut checks = Checks::default();
    let mut ahead = HashAhead::start(
        image
            .layers
            .iter()
            .filter(|layer| !layer.is_compressed())
            .filter_map(|layer| match &layer.blob {
                Blob::File { path, offset, len } => {
                    Some((layer.diff_id.clone(), path.clone(), *offset, *len))
                }
                _ => None,
            })
            .collect(),
    );
    for layer in &image.layers {
        let name = format!("{}.tar", layer.diff_id.hex());
        if written.insert(name.clone()) {
            if layer.is_compressed() {
                append_decompressed(&mut tar, &name, layer, &out.scratch_dir())?;
            } else {
                let (blob, digest) = (&layer.blob, &layer.diff_id);
                let (ahead, checks) = (&mut ahead, &mut checks);
                append_verified(&mut tar, &name, blob, digest, ahead, writeback, checks)?;
            }
        }
        layer_names.push(name);
    }
    let config_digest = image.config_digest();
    let config_name = format!("{}.json", config_digest.hex());
    append_bytes(&mut tar, &config_name, &image.config)?;
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": repo_tag.iter().collect::<Vec<_>>(),
        "Layers": layer_names,
    }]);
    append_bytes(&mut tar, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    checks.verify_all()?;
    out.finish_tar(tar)?;
    Ok(Written {
        destination: format!(
            "docker-archive:{}{}",
            path.display(),
            repo_tag.map(|t| format!(":{t}")).unwrap_or_default()
        ),
        manifest_digest: None,
        image_id: Some(config_digest.to_string()),
        blobs: None,
    })
}

/// docker-archive layers are uncompressed: decompress (gzip or zstd) into a
/// scratch file (the tar header needs the size first), checking the
/// compressed digest and the diff_id.
fn append_decompressed<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    layer: &crate::image::Layer,
    scratch_dir: &Path,
) -> Result<()> {
    let mut scratch = tempfile::tempfile_in(scratch_dir)?;
    let mut compressed = HashingReader::new(layer.blob.open()?);
    let mut tar_stream = crate::decompress::layer_tar(
        &mut compressed,
        layer.blob.len(),
        format!("layer {}", layer.digest),
    )?;
    let mut out = BufWriter::new(&mut scratch);
    let plain = digest::copy_hashed(&mut tar_stream, &mut out)
        .with_context(|| format!("decompressing layer {}", layer.digest))?;
    out.flush()?;
    drop((out, tar_stream));
    // Whatever follows the compressed stream still belongs to the blob's digest.
    io::copy(&mut compressed, &mut io::sink())?;
    digest::verify(
        &format!("layer {}", layer.digest),
        &layer.digest,
        layer.blob.len(),
        compressed.finish(),
    )?;
    if plain.0 != layer.diff_id {
        bail!(
            "layer {} decompresses to {}, but the config says {}",
            layer.digest,
            plain.0,
            layer.diff_id
        );
    }
    scratch.rewind()?;
    let mut h = header(EntryType::Regular, 0o644, plain.1);
    tar.append_data(&mut h, name, &mut scratch)?;
    Ok(())
}

/// A blob that is a whole file of another layout is hard-linked to `dest`: no
/// bytes move. False when that is not possible (a tar member, another
/// filesystem), and the caller copies instead.
fn hard_link_whole_file(blob: &Blob, dest: &Path) -> bool {
    let Blob::File {
        path,
        offset: 0,
        len,
    } = blob
    else {
        return false;
    };
    if fs::metadata(path.as_path()).map(|m| m.len()).ok() != Some(*len) {
        return false;
    }
    let link = dest.with_extension(format!("harden-link-{}", std::process::id()));
    let done = fs::hard_link(path.as_path(), &link).is_ok() && fs::rename(&link, dest).is_ok();
    if !done {
        let _ = fs::remove_file(&link);
    }
    done
}

/// An OCI image layout being written: a directory (new, built aside and
/// renamed; or existing, gaining blobs and a new index.json) or a tar file.
enum Layout {
    Dir {
        root: PathBuf,
        /// For a new directory: the temp dir being filled and the final path.
        fresh: Option<(tempfile::TempDir, PathBuf)>,
        /// Blobs this run added to an existing layout, removed on failure.
        added: Vec<PathBuf>,
        sync: bool,
    },
    Tar {
        tar: tar::Builder<BufWriter<File>>,
        out: OutFile,
        dest: PathBuf,
        written: HashSet<Digest>,
        checks: Checks,
    },
}

impl Layout {
    fn open_dir(dir: &Path, sync: bool) -> Result<Layout> {
        if dir.exists() {
            let empty = fs::read_dir(dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty && !dir.join("oci-layout").is_file() {
                bail!("{} exists and is not an OCI image layout", dir.display());
            }
            fs::create_dir_all(dir.join("blobs/sha256"))?;
            return Ok(Layout::Dir {
                root: dir.to_path_buf(),
                fresh: None,
                added: Vec::new(),
                sync,
            });
        }
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".harden-layout-")
            .tempdir_in(parent)
            .map_err(|e| crate::interrupt::temp_error(parent, "directory", e))?;
        crate::interrupt::track(tmp.path());
        fs::create_dir_all(tmp.path().join("blobs/sha256"))?;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))?;
        Ok(Layout::Dir {
            root: tmp.path().to_path_buf(),
            fresh: Some((tmp, dir.to_path_buf())),
            added: Vec::new(),
            sync,
        })
    }

    fn new_archive(path: &Path, sync: bool) -> Result<Layout> {
        let (file, out) = OutFile::create(path, sync)?;
        let mut tar = tar::Builder::new(BufWriter::new(file));
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = header(EntryType::Directory, 0o755, 0);
            tar.append_data(&mut h, dir, io::empty())?;
        }
        Ok(Layout::Tar {
            tar,
            out,
            dest: path.to_path_buf(),
            written: HashSet::new(),
            checks: Checks::default(),
        })
    }

    /// The index.json already there (an existing layout directory), if any.
    fn existing_index(&self) -> Result<Option<Value>> {
        match self {
            Layout::Dir {
                root, fresh: None, ..
            } if root.join("index.json").is_file() => {
                let blob = crate::store::Store::dir(root)?.get("index.json")?;
                let bytes = blob.read_capped(crate::image::MAX_MANIFEST, "index.json")?;
                Ok(Some(
                    serde_json::from_slice(&bytes)
                        .context("the destination's index.json is not JSON")?,
                ))
            }
            _ => Ok(None),
        }
    }

    fn put_blob(&mut self, digest: &Digest, blob: &Blob) -> Result<()> {
        match self {
            Layout::Tar {
                tar,
                written,
                out,
                checks,
                ..
            } => {
                if written.insert(digest.clone()) {
                    let name = format!("blobs/sha256/{}", digest.hex());
                    let (ahead, writeback) = (&mut HashAhead::none(), out.syncs());
                    append_verified(tar, &name, blob, digest, ahead, writeback, checks)?;
                }
                Ok(())
            }
            Layout::Dir {
                root, added, sync, ..
            } => {
                let dest = root.join("blobs/sha256").join(digest.hex());
                if fs::metadata(&dest)
                    .map(|m| m.len() == blob.len())
                    .unwrap_or(false)
                {
                    return Ok(()); // content-addressed: already there
                }
                if !hard_link_whole_file(blob, &dest) {
                    let mut tmp = temp_beside(&dest)?;
                    match blob {
                        Blob::File { path, offset, len } => {
                            let hashed = hash_in_background(path.clone(), *offset, *len);
                            let region = (path.as_path(), *offset, *len);
                            copy_checked(region, digest, tmp.as_file_mut(), hashed, *sync)?
                                .verify()?
                        }
                        _ => {
                            let mut out = BufWriter::new(tmp.as_file_mut());
                            let got = digest::copy_hashed(&mut blob.open()?, &mut out)?;
                            out.flush()?;
                            digest::verify(&format!("blob {digest}"), digest, blob.len(), got)?
                        }
                    }
                    if *sync {
                        tmp.as_file().sync_all()?;
                    }
                    persist(tmp, &dest)?;
                }
                added.push(dest);
                Ok(())
            }
        }
    }

    fn put_bytes(&mut self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        self.put_blob(&digest, &Blob::Bytes(std::sync::Arc::new(bytes.to_vec())))?;
        Ok(digest)
    }

    fn finish(self, index: &Value) -> Result<()> {
        let index = serde_json::to_vec(index)?;
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        match self {
            Layout::Tar {
                mut tar,
                out,
                checks,
                ..
            } => {
                append_bytes(&mut tar, "oci-layout", layout)?;
                append_bytes(&mut tar, "index.json", &index)?;
                checks.verify_all()?;
                out.finish_tar(tar)
            }
            Layout::Dir {
                root, fresh, sync, ..
            } => {
                if sync {
                    // The blobs' names, before the index that points to them.
                    sync_dir(&root.join("blobs/sha256"))?;
                    sync_dir(&root.join("blobs"))?;
                }
                for (name, bytes) in [("oci-layout", &layout[..]), ("index.json", &index[..])] {
                    write_file(&root.join(name), bytes, 0o644, sync)?;
                }
                if let Some((tmp, final_path)) = fresh {
                    let built = tmp.keep();
                    fs::set_permissions(&built, fs::Permissions::from_mode(0o755))?;
                    if let Err(e) = fs::rename(&built, &final_path) {
                        let _ = fs::remove_dir_all(&built);
                        return Err(e).with_context(|| {
                            format!("cannot rename the output to {}", final_path.display())
                        });
                    }
                    if let Some(parent) = final_path.parent().filter(|_| sync) {
                        sync_dir(parent)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// The destination in transport syntax.
    fn describe(&self, tag: Option<&str>) -> String {
        let (kind, path) = match self {
            Layout::Dir {
                fresh: Some((_, p)),
                ..
            }
            | Layout::Dir { root: p, .. } => ("oci", p),
            Layout::Tar { dest, .. } => ("oci-archive", dest),
        };
        format!(
            "{kind}:{}{}",
            path.display(),
            tag.map(|t| format!(":{t}")).unwrap_or_default()
        )
    }

    fn abandon(self) {
        // Fresh outputs vanish with their temp dir/file; an existing layout loses what we added.
        if let Layout::Dir {
            added, fresh: None, ..
        } = self
        {
            for p in added {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// Puts an image's blobs and manifest into `layout`; returns the manifest's digest and size.
fn put_image(layout: &mut Layout, image: &Image) -> Result<(Digest, usize)> {
    for layer in &image.layers {
        layout.put_blob(&layer.digest, &layer.blob)?;
    }
    layout.put_bytes(&image.config)?;
    let manifest = image.manifest();
    Ok((layout.put_bytes(&manifest)?, manifest.len()))
}

fn write_oci(content: &Content, mut layout: Layout, tag: Option<&str>) -> Result<Written> {
    let result = (|| {
        let (media_type, (digest, size), image_id) = match content {
            Content::Image(image) => (
                crate::image::OCI_MANIFEST,
                put_image(&mut layout, image)?,
                Some(image.config_digest().to_string()),
            ),
            Content::Index(index) => {
                for e in &index.entries {
                    put_image(&mut layout, &e.image)?;
                }
                for other in &index.others {
                    for (digest, blob) in &other.blobs {
                        layout.put_blob(digest, blob)?;
                    }
                    layout.put_bytes(&other.manifest)?;
                }
                let bytes = index.manifest();
                (
                    index.media_type(),
                    (layout.put_bytes(&bytes)?, bytes.len()),
                    None,
                )
            }
        };
        let mut entry = json!({"mediaType": media_type, "digest": digest.as_str(), "size": size});
        if let Some(t) = tag {
            entry["annotations"] = json!({ REF_NAME: t });
        }
        let mut index = layout.existing_index()?.unwrap_or_else(
            || json!({"schemaVersion": 2, "mediaType": crate::image::OCI_INDEX, "manifests": []}),
        );
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .context("the destination's index.json has no manifests list")?;
        // The tag moves to the new image, as `skopeo copy` does; an untagged
        // image is added beside the others (once).
        fn tag_of(m: &Value) -> Option<&str> {
            m["annotations"][REF_NAME].as_str()
        }
        manifests.retain(|m| match tag {
            Some(_) => tag_of(m) != tag,
            None => tag_of(m).is_some() || m["digest"] != digest.as_str(),
        });
        manifests.push(entry);
        Ok((index, digest, image_id))
    })();
    match result {
        Ok((index, manifest_digest, image_id)) => {
            let destination = layout.describe(tag);
            layout.finish(&index)?;
            Ok(Written {
                destination,
                manifest_digest: Some(manifest_digest.to_string()),
                image_id,
                blobs: None,
            })
        }
        Err(e) => {
            layout.abandon();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names() {
        assert_eq!(
            hardened_name("example/t:latest").as_deref(),
            Some("example/t:latest-hardened")
        );
        assert_eq!(
            hardened_name("localhost:5000/t:1").as_deref(),
            Some("localhost:5000/t:1-hardened")
        );
        assert_eq!(
            hardened_name("example/t:1-hardened").as_deref(),
            Some("example/t:1-hardened")
        );
        assert_eq!(hardened_name("notag"), None);
        assert_eq!(hardened_name("localhost:5000/notag"), None);
    }
}
