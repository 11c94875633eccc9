//! Named files of an image container — a directory, or the members of a tar
//! archive — as blob references. docker-archive and OCI-layout reading work on
//! either. Names are checked before use: no absolute paths, no `..`, and a tar
//! member that is a link must resolve to a regular member inside the archive.

use crate::decompress::{self, Compression};
use crate::exit::NotFound;
use crate::image::{Blob, BlobFile};
use crate::manifest::Missing;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

pub enum Store {
    Dir(PathBuf),
    Tar {
        /// The archive as named, for messages.
        origin: PathBuf,
        /// Where its bytes are read from: the archive, or a copy of a stream.
        path: Arc<BlobFile>,
        members: HashMap<String, Member>,
    },
}

#[derive(Debug, Clone)]
pub enum Member {
    File { offset: u64, len: u64 },
    Link(String),
    Other,
}

/// Normalizes an archive-relative name; refuses absolute paths and `..`.
pub fn clean_name(name: &str) -> Result<String> {
    let mut parts = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(
                p.to_str()
                    .with_context(|| format!("path {name:?} is not UTF-8"))?,
            ),
            Component::CurDir => {}
            Component::ParentDir => bail!("path {name:?} escapes the archive (contains \"..\")"),
            Component::RootDir | Component::Prefix(_) => bail!("path {name:?} is absolute"),
        }
    }
    if parts.is_empty() {
        bail!("empty path {name:?}");
    }
    Ok(parts.join("/"))
}

/// Resolves a link target against the directory `base` (both inside the
/// archive); refuses targets that are absolute or climb out of the archive.
fn resolve_link(base: &str, target: &str) -> Result<String> {
    if target.starts_with('/') {
        bail!("absolute link target {target:?}");
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    bail!("link target {target:?} climbs out of the archive");
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        bail!("empty link target");
    }
    Ok(parts.join("/"))
}

/// `reader`'s bytes in a temp file (removed with the returned BlobFile);
/// `doing` says what failed ("reading", "decompressing") with `origin`.
fn spool(mut reader: impl Read, origin: &Path, doing: &str) -> Result<(File, Arc<BlobFile>)> {
    let mut spool = crate::interrupt::temp_file("harden-input-")?;
    std::io::copy(&mut reader, spool.as_file_mut())
        .with_context(|| format!("{doing} {}", origin.display()))?;
    Ok((spool.reopen()?, BlobFile::temp(spool.into_temp_path())))
}

impl Store {
    /// "not KIND", and when the store holds `other_marker`, the transport that
    /// reads it (a docker-archive read as oci-archive, or the other way round).
    /// The error's cause names the path and the missing file.
    pub fn not_a(&self, kind: &str, other_marker: &str, other: &str) -> String {
        match self.get(other_marker) {
            Ok(_) => format!("not {kind} (read it as {other}:)"),
            Err(_) => format!("not {kind}"),
        }
    }

    pub fn dir(path: &Path) -> Result<Store> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NotFound(format!("{} does not exist", path.display())).into())
            }
            Ok(m) if m.is_dir() => {}
            _ => bail!("{} is not a directory", path.display()),
        }
        Ok(Store::Dir(path.to_path_buf()))
    }

    /// Indexes a tar file's members without reading their content.
    /// An archive that is not a regular file (`/dev/stdin`, a pipe) is first
    /// copied to a temp file: blobs are byte ranges, read when a sink needs them.
    /// So is a compressed one, decompressed on the way (`docker load` reads
    /// `docker save | gzip`; gzip and zstd, capped as layers are).
    pub fn tar(path: &Path) -> Result<Store> {
        let file = match File::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NotFound(format!("{} does not exist", path.display())).into())
            }
            r => r.with_context(|| format!("cannot open {}", path.display()))?,
        };
        let meta = file.metadata()?;
        if meta.is_file() && meta.len() == 0 {
            bail!("{} is empty", path.display());
        }
        if meta.is_dir() {
            bail!(
                "{} is a directory (an OCI layout directory is oci:DIR)",
                path.display()
            );
        }
        let (file, blob_file) = if meta.is_file() {
            (file, BlobFile::new(path))
        } else {
            spool(file, path, "reading")?
        };
        Self::index_tar(file, blob_file, path)
    }

    /// Indexes a tar its caller has copied into `spooled` (an engine's
    /// `docker save`), removed with the store's blobs; `origin` names it in
    /// messages.
    pub fn tar_spooled(spooled: tempfile::NamedTempFile, origin: &Path) -> Result<Store> {
        let file = spooled.reopen()?;
        Self::index_tar(file, BlobFile::temp(spooled.into_temp_path()), origin)
    }

    fn index_tar(mut file: File, mut blob_file: Arc<BlobFile>, path: &Path) -> Result<Store> {
        let len = file.metadata()?.len();
        let whole = Blob::File {
            path: blob_file.clone(),
            offset: 0,
            len,
            origin: None,
        };
        if whole.compression()? != Compression::Plain {
            let tar = decompress::layer_tar(&mut file, len, path.display().to_string())?;
            (file, blob_file) = spool(tar, path, "decompressing")?;
        }
        let file_len = file.metadata()?.len();
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive
            .entries_with_seek()
            .with_context(|| format!("{} is not a tar archive", path.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| {
                format!("{}: malformed or truncated tar archive", path.display())
            })?;
            let raw = entry.path().context("unreadable member name")?;
            let raw = raw
                .to_str()
                .context("member name is not UTF-8")?
                .to_string();
            let name = match clean_name(&raw) {
                Ok(n) => n,
                // Directory entries like "./" carry no content we need.
                Err(_) if entry.header().entry_type().is_dir() => continue,
                Err(e) => return Err(e.context(format!("{}: bad member", path.display()))),
            };
            let kind = entry.header().entry_type();
            let member = if kind.is_file() {
                let (offset, len) = (entry.raw_file_position(), entry.size());
                if offset + len > file_len {
                    bail!(
                        "{}: truncated tar archive (member {name:?} runs past the end)",
                        path.display()
                    );
                }
                Member::File { offset, len }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()?
                    .context("link without target")?
                    .to_str()
                    .context("link target is not UTF-8")?
                    .to_string();
                // Symlink targets are relative to the link's directory; hard links to the root.
                let base = match name.rsplit_once('/') {
                    Some((dir, _)) if kind.is_symlink() => dir,
                    _ => "",
                };
                Member::Link(resolve_link(base, &target).with_context(|| {
                    format!(
                        "{}: link {name:?} points outside the archive",
                        path.display()
                    )
                })?)
            } else if kind.is_dir() {
                continue;
            } else {
                Member::Other
            };
            if members.insert(name.clone(), member).is_some() {
                bail!("{}: duplicate member {name:?}", path.display());
            }
        }
        Ok(Store::Tar {
            origin: path.to_path_buf(),
            path: blob_file,
            members,
        })
    }

    /// Where the store is, for messages.
    pub fn location(&self) -> &Path {
        match self {
            Store::Dir(p) => p,
            Store::Tar { origin, .. } => origin,
        }
    }

    /// A reference to the named file, after checking the name. A file that
    /// is not there is a `Missing` error (a partial archive may lack blobs
    /// its index names).
    pub fn get(&self, name: &str) -> Result<Blob> {
        let clean = clean_name(name)?;
        match self {
            Store::Dir(root) => {
                let path = root.join(&clean);
                let meta = match std::fs::symlink_metadata(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(Missing(format!("{} has no {clean}", root.display())).into())
                    }
                    r => r.with_context(|| format!("reading {}", path.display()))?,
                };
                if !meta.is_file() {
                    bail!("{}: {clean} is not a regular file", root.display());
                }
                Ok(Blob::File {
                    path: BlobFile::new(&path),
                    offset: 0,
                    len: meta.len(),
                    origin: Some(path.display().to_string().into()),
                })
            }
            Store::Tar {
                origin,
                path,
                members,
            } => {
                let mut current = clean;
                // A link may point at another link, but only a few times.
                for _ in 0..4 {
                    match members.get(&current) {
                        Some(Member::File { offset, len }) => {
                            let origin = format!("member {current:?} of {}", origin.display());
                            return Ok(Blob::File {
                                path: path.clone(),
                                offset: *offset,
                                len: *len,
                                origin: Some(origin.into()),
                            });
                        }
                        Some(Member::Link(target)) => current = target.clone(),
                        Some(Member::Other) => {
                            bail!("{}: {current} is not a regular file", origin.display())
                        }
                        None => {
                            let what = format!("{} has no member {current:?}", origin.display());
                            return Err(Missing(what).into());
                        }
                    }
                }
                bail!("{}: too many links resolving {name:?}", origin.display())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_confined() {
        assert_eq!(clean_name("./blobs/sha256/ab").unwrap(), "blobs/sha256/ab");
        assert_eq!(clean_name("a//b/").unwrap(), "a/b");
        assert!(clean_name("../etc/passwd").is_err());
        assert!(clean_name("a/../../b").is_err());
        assert!(clean_name("/etc/passwd").is_err());
        assert!(clean_name("").is_err());
    }

    #[test]
    fn links_resolve_inside_only() {
        assert_eq!(resolve_link("a", "../b/layer.tar").unwrap(), "b/layer.tar");
        assert_eq!(resolve_link("", "b/./c").unwrap(), "b/c");
        assert!(resolve_link("a", "../../etc/shadow").is_err());
        assert!(resolve_link("a", "/etc/shadow").is_err());
    }
}
