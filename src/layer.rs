//! The one layer harden adds: the step-down binary at a fixed path, written
//! deterministically (sorted entries, mtime 0, uid/gid 0, finished tar and
//! gzip streams) so that the same binary always gives the same digest.

use crate::digest::Digest;
use anyhow::Result;
use flate2::{Compression, GzBuilder};
use std::io::Write;

/// Where the step-down binary lives in a hardened image. A directory of its own,
/// so the layer never touches a directory the image already has.
pub const STEPDOWN_DIR: &str = ".harden";
pub const STEPDOWN_PATH: &str = "/.harden/harden-stepdown";

pub struct StepdownLayer {
    /// The uncompressed tar; its digest is the diff_id.
    pub diff_id: Digest,
    /// The gzip-compressed tar and its digest.
    pub gzip: Vec<u8>,
    pub digest: Digest,
}

/// A deterministic tar header: ustar, owned by 0:0, mtime 0.
pub fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

pub fn stepdown_layer(binary: &[u8]) -> Result<StepdownLayer> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut dir, format!("{STEPDOWN_DIR}/"), std::io::empty())?;
    let mut file = header(tar::EntryType::Regular, 0o755, binary.len() as u64);
    tar.append_data(&mut file, &STEPDOWN_PATH[1..], binary)?;
    let tar = tar.into_inner()?; // writes the two end-of-archive blocks

    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    gz.write_all(&tar)?;
    let gzip = gz.finish()?;
    Ok(StepdownLayer {
        diff_id: Digest::of(&tar),
        digest: Digest::of(&gzip),
        gzip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn layer_is_deterministic_and_complete() {
        let a = stepdown_layer(b"binary").unwrap();
        let b = stepdown_layer(b"binary").unwrap();
        assert_eq!((&a.digest, &a.diff_id), (&b.digest, &b.diff_id));
        assert_ne!(stepdown_layer(b"other").unwrap().digest, a.digest);

        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&a.gzip[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::of(&tar), a.diff_id);
        assert_eq!(tar.len() % 512, 0);
        assert!(
            tar[tar.len() - 1024..].iter().all(|b| *b == 0),
            "end-of-archive blocks"
        );

        let mut archive = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                (
                    path,
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                (".harden/".to_string(), 0o755, 0, 0),
                (".harden/harden-stepdown".to_string(), 0o755, 0, 0)
            ]
        );
    }
}
