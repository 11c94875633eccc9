//! Writing images: docker-archive, OCI layout directory, oci-archive; and
//! registries, through `registry`.
//! Every output is built aside and renamed into place at the end, so a failure
//! leaves nothing half-written; every blob copied is checked against its digest.

use crate::copies::{Copies, Region};
use crate::digest::{self, Digest, HashingReader};
use crate::image::{Blob, Content, Image};
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
use std::io::{self, BufWriter, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    let can = dest.capabilities();
    let converted;
    let content = match content {
        _ if can.docker_media_types => content,
        Content::Image(i) => {
            converted = Content::Image(i.clone().into_oci());
            &converted
        }
        Content::Index(i) => {
            converted = Content::Index(i.clone().into_oci());
            &converted
        }
    };
    // One image for a destination that holds one platform.
    let one = match content {
        Content::Image(image) => Some(image),
        Content::Index(index) => match index.entries.as_slice() {
            [one] if !can.many_platforms => Some(&one.image),
            entries if !can.many_platforms => {
                let platforms: Vec<String> =
                    entries.iter().map(|e| e.platform.to_string()).collect();
                bail!(
                    "{} holds one platform; choose one of {} with --platform",
                    dest.transport_name(),
                    platforms.join(", ")
                )
            }
            _ => None,
        },
    };
    let name = dest.output_name()?;
    match dest {
        ImageRef::Docker(r) => registry::write(content, r, registries, progress, early),
        ImageRef::DockerArchive { path, .. } => {
            let image = one.context("a docker-archive holds one image")?;
            let name = name
                .map(str::to_string)
                .or_else(|| image.name.as_deref().and_then(hardened_name));
            write_docker_archive(image, path, name, sync)
        }
        ImageRef::Oci { dir, .. } => write_oci(content, Layout::open_dir(dir, sync)?, name),
        ImageRef::OciArchive { path, .. } => {
            write_oci(content, Layout::new_archive(path, sync)?, name)
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
            if std::io::IsTerminal::is_terminal(&file) {
                return Err(crate::exit::Usage(format!(
                    "{} is a terminal: the archive is binary; redirect it to a file or a pipe",
                    dest.display()
                ))
                .into());
            }
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

/// A tar output being written (docker-archive, oci-archive). A file-backed
/// blob's member is laid out at once — its header, then room for its bytes,
/// which `copies` fills on other threads — so the next member follows
/// without waiting. Into a pipe, which has no places, every member is
/// written in order and checked as it streams.
struct TarOutput {
    tar: tar::Builder<BufWriter<File>>,
    out: OutFile,
    /// The output once more, for the copies to write at their places (none
    /// for a pipe).
    placed: Option<Arc<File>>,
    copies: Copies,
}

impl TarOutput {
    fn create(dest: &Path, sync: bool) -> Result<TarOutput> {
        let (file, out) = OutFile::create(dest, sync)?;
        let placed = match out {
            OutFile::Temp { .. } => Some(Arc::new(file.try_clone()?)),
            OutFile::Stream => None,
        };
        Ok(TarOutput {
            tar: tar::Builder::new(BufWriter::with_capacity(1 << 20, file)),
            copies: Copies::new(out.syncs()),
            out,
            placed,
        })
    }

    /// Appends a blob as a member named `name`, checking it against
    /// `expected` (and its size) before the output is finished.
    fn append_blob(&mut self, name: &str, blob: &Blob, expected: &Digest) -> Result<()> {
        let mut h = header(EntryType::Regular, 0o644, blob.len());
        let placed = self
            .placed
            .as_ref()
            .filter(|_| matches!(blob, Blob::File { .. }));
        if let Some(placed) = placed {
            // The member by hand: tar::Builder keeps no state between
            // members, only 512-byte alignment, which the room skipped keeps
            // (the padding is a hole, read as zeros). Names here are digests,
            // well under the 100 bytes of a plain header.
            h.set_path(name)?;
            h.set_cksum();
            let buffered = self.tar.get_mut();
            buffered.write_all(h.as_bytes())?;
            buffered.flush()?;
            let file = buffered.get_mut();
            let out_at = file.stream_position()?;
            file.seek(io::SeekFrom::Current(
                blob.len().next_multiple_of(512) as i64
            ))?;
            let region = Region::of(blob, placed, out_at).expect("a file-backed blob");
            self.copies.start(blob, region, expected);
            return Ok(());
        }
        let mut reader = HashingReader::new(blob.open()?);
        self.tar
            .append_data(&mut h, name, &mut reader)
            .with_context(|| format!("copying {name}"))?;
        blob.verify("blob", expected, reader.finish())
    }

    fn append_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut h = header(EntryType::Regular, 0o644, bytes.len() as u64);
        self.tar.append_data(&mut h, name, bytes)?;
        Ok(())
    }

    /// Checks every copy, then ends the tar and renames it into place.
    fn finish(mut self) -> Result<()> {
        self.copies.check_all()?;
        let file = self
            .tar
            .into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?;
        self.out.finish(&file)
    }
}

/// The `docker save` format: uncompressed layers named by diff_id, the config
/// named by its digest, and manifest.json.
fn write_docker_archive(
    image: &Image,
    path: &Path,
    repo_tag: Option<String>,
    sync: bool,
) -> Result<Written> {
    let mut out = TarOutput::create(path, sync)?;
    let mut layer_names = Vec::new();
    let mut written = HashSet::new();
    for layer in &image.layers {
        let name = format!("{}.tar", layer.diff_id.hex());
        if written.insert(name.clone()) {
            if layer.is_compressed() {
                append_decompressed(&mut out.tar, &name, layer, &out.out.scratch_dir())?;
            } else {
                out.append_blob(&name, &layer.blob, &layer.diff_id)?;
            }
        }
        layer_names.push(name);
    }
    let config_digest = image.config_digest();
    let config_name = format!("{}.json", config_digest.hex());
    out.append_bytes(&config_name, &image.config)?;
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": repo_tag.iter().collect::<Vec<_>>(),
        "Layers": layer_names,
    }]);
    out.append_bytes("manifest.json", &serde_json::to_vec(&manifest)?)?;
    out.finish()?;
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
    let plain = digest::copy_hashed(&mut tar_stream, &mut out).with_context(|| {
        let origin = layer
            .blob
            .origin()
            .map(|o| format!(" ({o})"))
            .unwrap_or_default();
        format!("decompressing layer {}{origin}", layer.digest)
    })?;
    out.flush()?;
    drop((out, tar_stream));
    // Whatever follows the compressed stream still belongs to the blob's digest.
    io::copy(&mut compressed, &mut io::sink())?;
    layer
        .blob
        .verify("layer", &layer.digest, compressed.finish())?;
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
        ..
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
        /// Blobs being copied into temp files, renamed into place once
        /// `copies` has checked them.
        copying: Vec<(NamedTempFile, PathBuf)>,
        copies: Copies,
        sync: bool,
    },
    Tar {
        tar: TarOutput,
        dest: PathBuf,
        written: HashSet<Digest>,
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
            return Ok(Layout::dir(dir.to_path_buf(), None, sync));
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
        Ok(Layout::dir(
            tmp.path().to_path_buf(),
            Some((tmp, dir.to_path_buf())),
            sync,
        ))
    }

    fn dir(root: PathBuf, fresh: Option<(tempfile::TempDir, PathBuf)>, sync: bool) -> Layout {
        Layout::Dir {
            root,
            fresh,
            added: Vec::new(),
            copying: Vec::new(),
            copies: Copies::new(sync),
            sync,
        }
    }

    fn new_archive(path: &Path, sync: bool) -> Result<Layout> {
        let mut tar = TarOutput::create(path, sync)?;
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = header(EntryType::Directory, 0o755, 0);
            tar.tar.append_data(&mut h, dir, io::empty())?;
        }
        Ok(Layout::Tar {
            tar,
            dest: path.to_path_buf(),
            written: HashSet::new(),
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
            Layout::Tar { tar, written, .. } => {
                if written.insert(digest.clone()) {
                    tar.append_blob(&format!("blobs/sha256/{}", digest.hex()), blob, digest)?;
                }
                Ok(())
            }
            Layout::Dir {
                root,
                added,
                copying,
                copies,
                sync,
                ..
            } => {
                let dest = root.join("blobs/sha256").join(digest.hex());
                let there = fs::metadata(&dest).is_ok_and(|m| m.len() == blob.len());
                if there || copying.iter().any(|(_, d)| *d == dest) {
                    return Ok(()); // content-addressed: already there
                }
                if hard_link_whole_file(blob, &dest) {
                    added.push(dest);
                    return Ok(());
                }
                let mut tmp = temp_beside(&dest)?;
                let out = Arc::new(tmp.as_file().try_clone()?);
                if let Some(region) = Region::of(blob, &out, 0) {
                    copies.start(blob, region, digest);
                    copying.push((tmp, dest));
                    return Ok(());
                }
                let mut out = BufWriter::new(tmp.as_file_mut());
                let got = digest::copy_hashed(&mut blob.open()?, &mut out)?;
                out.flush()?;
                drop(out);
                blob.verify("blob", digest, got)?;
                if *sync {
                    tmp.as_file().sync_all()?;
                }
                persist(tmp, &dest)?;
                added.push(dest);
                Ok(())
            }
        }
    }

    /// Waits for the blobs being copied, checks them and renames them into
    /// place (a tar output checks its copies when it is finished).
    fn settle(&mut self) -> Result<()> {
        if let Layout::Dir {
            added,
            copying,
            copies,
            sync,
            ..
        } = self
        {
            copies.check_all()?;
            for (tmp, dest) in copying.drain(..) {
                if *sync {
                    tmp.as_file().sync_all()?;
                }
                persist(tmp, &dest)?;
                added.push(dest);
            }
        }
        Ok(())
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
            Layout::Tar { mut tar, .. } => {
                tar.append_bytes("oci-layout", layout)?;
                tar.append_bytes("index.json", &index)?;
                tar.finish()
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
        layout.settle()?;
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
