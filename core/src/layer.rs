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

/// A further file or directory for the layer (static mode's account files and HOME).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerEntry {
    /// Relative to the root, no leading `/`.
    pub path: String,
    /// None for a directory.
    pub content: Option<Vec<u8>>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

pub fn stepdown_layer(binary: &[u8], extra: &[LayerEntry]) -> Result<StepdownLayer> {
    let mut entries = vec![
        // The root directory too: the step-down refuses to act as root under
        // a `/` that others may write (a hostile base may ship one 0777), and
        // runtimes apply this entry's owner and mode to the container's `/`.
        LayerEntry {
            path: ".".into(),
            content: None,
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
        LayerEntry {
            path: format!("{STEPDOWN_DIR}/"),
            content: None,
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
        LayerEntry {
            path: STEPDOWN_PATH[1..].to_string(),
            content: Some(binary.to_vec()),
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
    ];
    entries.extend(extra.iter().cloned());
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut tar = tar::Builder::new(Vec::new());
    for e in &entries {
        let (kind, data) = match &e.content {
            Some(data) => (tar::EntryType::Regular, &data[..]),
            None => (tar::EntryType::Directory, &[][..]),
        };
        let mut h = header(kind, e.mode, data.len() as u64);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        let path = match kind {
            tar::EntryType::Directory if !e.path.ends_with('/') => format!("{}/", e.path),
            _ => e.path.clone(),
        };
        tar.append_data(&mut h, path, data)?;
    }
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
        let a = stepdown_layer(b"binary", &[]).unwrap();
        let b = stepdown_layer(b"binary", &[]).unwrap();
        assert_eq!((&a.digest, &a.diff_id), (&b.digest, &b.diff_id));
        assert_ne!(stepdown_layer(b"other", &[]).unwrap().digest, a.digest);

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
                ("./".to_string(), 0o755, 0, 0),
                (".harden/".to_string(), 0o755, 0, 0),
                (".harden/harden-stepdown".to_string(), 0o755, 0, 0)
            ]
        );
    }

    #[test]
    fn extra_entries_are_sorted_in_with_their_owner() {
        let home = LayerEntry {
            path: "home/app".into(),
            content: None,
            mode: 0o750,
            uid: 1000,
            gid: 1000,
        };
        let passwd = LayerEntry {
            path: "etc/passwd".into(),
            content: Some(b"x".to_vec()),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let l = stepdown_layer(b"bin", &[home, passwd]).unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&l.gzip[..])
            .read_to_end(&mut tar)
            .unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<(String, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().uid().unwrap(),
                )
            })
            .collect();
        let names: Vec<(&str, u64)> = names.iter().map(|(n, u)| (n.as_str(), *u)).collect();
        assert_eq!(
            names,
            [
                ("./", 0),
                (".harden/", 0),
                (".harden/harden-stepdown", 0),
                ("etc/passwd", 0),
                ("home/app/", 1000)
            ]
        );
    }
}
