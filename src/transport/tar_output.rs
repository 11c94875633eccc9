//! The tar layout of the archive formats (docker-archive, oci-archive).

use super::files::OutFile;
use crate::copies::{Copies, Region};
use crate::digest::{Digest, HashingReader};
use crate::image::Blob;
use crate::layer::header;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::Path;
use std::sync::Arc;
use tar::EntryType;

/// A tar output being written (docker-archive, oci-archive). A file-backed
/// blob's member is laid out at once — its header, then room for its bytes,
/// which `copies` fills on other threads — so the next member follows
/// without waiting. Into a pipe, which has no places, every member is
/// written in order and checked as it streams.
pub(super) struct TarOutput {
    pub(super) tar: tar::Builder<BufWriter<File>>,
    pub(super) out: OutFile,
    /// The output once more, for the copies to write at their places (none
    /// for a pipe).
    placed: Option<Arc<File>>,
    copies: Copies,
}

impl TarOutput {
    pub(super) fn create(dest: &Path, sync: bool) -> Result<TarOutput> {
        let (file, out) = OutFile::create(dest, sync)?;
        Self::over(file, out)
    }

    /// A tar written in order into `stream` (a pipe), as into `/dev/stdout`.
    pub(super) fn stream(stream: File) -> Result<TarOutput> {
        Self::over(stream, OutFile::Stream)
    }

    fn over(file: File, out: OutFile) -> Result<TarOutput> {
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
    pub(super) fn append_blob(&mut self, name: &str, blob: &Blob, expected: &Digest) -> Result<()> {
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

    pub(super) fn append_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut h = header(EntryType::Regular, 0o644, bytes.len() as u64);
        self.tar.append_data(&mut h, name, bytes)?;
        Ok(())
    }

    /// Checks every copy, then ends the tar and renames it into place.
    pub(super) fn finish(mut self) -> Result<()> {
        self.copies.check_all()?;
        let file = self
            .tar
            .into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?;
        self.out.finish(&file)
    }
}
