//! Output files written atomically: built in a temp file beside the
//! destination, synced, renamed into place at the end (or, for a pipe or a
//! device, written in order), so a failure leaves nothing half-written.

use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// A temp file next to `dest`, so that the final rename stays on one filesystem.
pub(super) fn temp_beside(dest: &Path) -> Result<NamedTempFile> {
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
pub(super) fn persist(tmp: NamedTempFile, dest: &Path) -> Result<()> {
    tmp.persist(dest)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(())
}

/// Makes the names created or renamed in `dir` durable: a synced file's data
/// can be on disk while its name is not.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
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
pub(super) enum OutFile {
    Temp {
        tmp: NamedTempFile,
        dest: PathBuf,
        sync: bool,
    },
    Stream,
}

impl OutFile {
    pub(super) fn create(dest: &Path, sync: bool) -> Result<(File, OutFile)> {
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
    pub(super) fn scratch_dir(&self) -> PathBuf {
        match self {
            OutFile::Temp { tmp, .. } => tmp.path().parent().map(Path::to_path_buf),
            OutFile::Stream => None,
        }
        .unwrap_or_else(std::env::temp_dir)
    }

    /// Whether the file is synced at the end, so that starting its writeback
    /// early is worth it.
    pub(super) fn syncs(&self) -> bool {
        matches!(self, OutFile::Temp { sync: true, .. })
    }

    /// Syncs and renames into place (a stream only needs what was written).
    pub(super) fn finish(self, file: &File) -> Result<()> {
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
