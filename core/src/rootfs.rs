//! Reads a few paths of an image's root filesystem from its layers, top layer
//! first, honouring whiteouts (`.wh.NAME`) and opaque directories
//! (`.wh..wh..opq`), and stopping as soon as every file is settled. Layers
//! are streamed: nothing is unpacked to disk or held in memory.

use crate::image::Image;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::Read;

/// Bound on a file read out of a layer.
const MAX_FILE: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub content: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// `path` as a tar member names it, without `./` or `/` in front.
fn member_path(raw: &str) -> &str {
    raw.trim_start_matches("./").trim_start_matches('/')
}

/// Is `path` hidden by a whiteout or opaque marker seen in one layer?
fn hidden(path: &str, whiteouts: &[String], opaque: &[String]) -> bool {
    let mut prefix = String::new();
    for part in path.split('/') {
        let dir = prefix.trim_end_matches('/').to_string();
        if opaque.contains(&dir) {
            return true;
        }
        prefix.push_str(part);
        if whiteouts.contains(&prefix) {
            return true;
        }
        prefix.push('/');
    }
    false
}

/// What the top-most layer that has a path holds there.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    File(FileEntry),
    Dir {
        uid: u64,
        gid: u64,
        mode: u32,
    },
    /// A symbolic link, device, FIFO, ...: nothing harden reads or follows.
    Other,
}

/// One path at or below a tree's root, as the top-most layer has it.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEntry {
    /// Without a leading `/`.
    pub path: String,
    pub dir: bool,
    /// A regular file's content, when it has at most MAX_TREE_FILE bytes.
    pub content: Option<Vec<u8>>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// Most entries `scan` collects of one tree; a bigger tree is None.
pub const MAX_TREE: usize = 64;
/// Largest file of a tree whose content `scan` keeps.
pub const MAX_TREE_FILE: u64 = 64 << 10;

/// The current content of each of `paths` (e.g. "etc/passwd"); None where the
/// image does not have the file.
pub fn read_files(image: &Image, paths: &[&str]) -> Result<Vec<Option<FileEntry>>> {
    let found = find(image, paths)?;
    paths.iter().zip(found).map(|(p, f)| file(p, f)).collect()
}

/// The file `find` found at `path`; an error when it is something else.
pub fn file(path: &str, found: Option<Found>) -> Result<Option<FileEntry>> {
    match found {
        None => Ok(None),
        Some(Found::File(f)) => Ok(Some(f)),
        Some(_) => bail!("/{path} is not a regular file; harden cannot edit it"),
    }
}

/// What the image has at each of `paths` (without a leading `/`), as the
/// top-most layer that has it says; None where it has nothing.
pub fn find(image: &Image, paths: &[&str]) -> Result<Vec<Option<Found>>> {
    Ok(scan(image, paths, &[])?.0)
}

/// What `scan` found: one entry per path, one tree per root.
pub type Scanned = (Vec<Option<Found>>, Vec<Option<Vec<TreeEntry>>>);

/// `find` for `paths`, and every entry at and below each of `trees` (roots
/// without a leading `/`; empty when the image has none, None when it has
/// more than MAX_TREE), in one pass over the layers. Trees need every layer;
/// paths alone stop at the layer that settles the last of them.
pub fn scan(image: &Image, paths: &[&str], trees: &[&str]) -> Result<Scanned> {
    let mut settled: HashMap<&str, Option<Found>> = HashMap::new();
    let mut collected: Vec<Option<Vec<TreeEntry>>> = vec![Some(Vec::new()); trees.len()];
    // Whiteouts and opaque markers of the layers above the one being read.
    let (mut upper_whiteouts, mut upper_opaque) = (Vec::new(), Vec::new());
    for layer in image.layers.iter().rev() {
        if settled.len() == paths.len() && trees.is_empty() {
            break;
        }
        let reader = crate::decompress::layer_tar(
            layer.blob.open()?,
            layer.blob.len(),
            format!("layer {}", layer.digest),
        )?;
        let mut found: HashMap<&str, Found> = HashMap::new();
        let (mut whiteouts, mut opaque) = (Vec::new(), Vec::new());
        let mut archive = tar::Archive::new(reader);
        for entry in archive
            .entries()
            .with_context(|| format!("reading layer {}", layer.digest))?
        {
            let mut entry = match entry {
                Ok(e) => e,
                // umoci ends layers without the last padding and end-of-archive
                // blocks: the tar ends early in a complete gzip stream. A gzip
                // stream cut short (flate2 says "deflate") is an error.
                Err(e)
                    if (e.kind() == std::io::ErrorKind::UnexpectedEof
                        || e.to_string().contains("unexpected EOF"))
                        && !e.to_string().contains("deflate") =>
                {
                    break
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("layer {} is not a valid tar", layer.digest))
                }
            };
            let raw_path = entry.path()?.to_string_lossy().into_owned();
            let path = member_path(&raw_path).trim_end_matches('/');
            let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
            if base == ".wh..wh..opq" {
                opaque.push(dir.to_string());
                continue;
            }
            if let Some(name) = base.strip_prefix(".wh.") {
                whiteouts.push(if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                });
                continue;
            }
            let header = entry.header();
            let (mode, uid, gid) = (header.mode()?, header.uid()?, header.gid()?);
            let kind = header.entry_type();
            let mut content = None;
            for (root, tree) in trees.iter().zip(collected.iter_mut()) {
                let below = path
                    .strip_prefix(*root)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
                let Some(entries) = tree.as_mut().filter(|_| below) else {
                    continue;
                };
                if hidden(path, &upper_whiteouts, &upper_opaque)
                    || entries.iter().any(|e| e.path == path)
                {
                    continue;
                }
                if entries.len() == MAX_TREE {
                    *tree = None;
                    continue;
                }
                if kind.is_file() && entry.size() <= MAX_TREE_FILE && content.is_none() {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes)?;
                    content = Some(bytes);
                }
                entries.push(TreeEntry {
                    path: path.to_string(),
                    dir: kind.is_dir(),
                    content: content.clone().filter(|_| kind.is_file()),
                    mode,
                    uid,
                    gid,
                });
            }
            let Some(wanted) = paths
                .iter()
                .find(|p| **p == path && !settled.contains_key(*p))
            else {
                continue;
            };
            let what = if kind.is_file() {
                if entry.size() > MAX_FILE {
                    bail!(
                        "/{path} in layer {} is larger than {MAX_FILE} bytes",
                        layer.digest
                    );
                }
                // Already read when a tree holds it too.
                let content = match content {
                    Some(bytes) => bytes,
                    None => {
                        let mut bytes = Vec::new();
                        entry.read_to_end(&mut bytes)?;
                        bytes
                    }
                };
                Found::File(FileEntry {
                    content,
                    mode,
                    uid,
                    gid,
                })
            } else if kind.is_dir() {
                Found::Dir { uid, gid, mode }
            } else {
                Found::Other
            };
            found.insert(wanted, what);
        }
        for p in paths {
            if settled.contains_key(p) {
                continue;
            }
            if let Some(f) = found.remove(p) {
                settled.insert(p, Some(f));
            } else if hidden(p, &whiteouts, &opaque) {
                settled.insert(p, None);
            }
        }
        upper_whiteouts.extend(whiteouts);
        upper_opaque.extend(opaque);
    }
    let found = paths.iter().map(|p| settled.remove(p).flatten()).collect();
    Ok((found, collected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::image::{Blob, Family, Layer};
    use std::sync::Arc;

    fn layer(entries: &[(&str, Option<&[u8]>)]) -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let data = content.unwrap_or(b"");
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(if content.is_some() {
                tar::EntryType::Regular
            } else {
                tar::EntryType::Directory
            });
            h.set_mode(0o640);
            h.set_uid(7);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, data).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let d = Digest::of(&bytes);
        Layer::new(
            crate::image::OCI_LAYER,
            d.clone(),
            d,
            Blob::Bytes(Arc::new(bytes)),
        )
    }

    fn image(layers: Vec<Layer>) -> Image {
        Image {
            family: Family::Oci,
            config: b"{}".to_vec(),
            layers,
            manifest_annotations: Default::default(),
            manifest_digest: None,
            name: None,
        }
    }

    fn read(img: &Image) -> Vec<Option<Vec<u8>>> {
        read_files(img, &["etc/passwd", "etc/group"])
            .unwrap()
            .into_iter()
            .map(|f| f.map(|f| f.content))
            .collect()
    }

    #[test]
    fn upper_layers_win_and_keep_mode_and_owner() {
        let img = image(vec![
            layer(&[
                ("etc/", None),
                ("etc/passwd", Some(b"old")),
                ("etc/group", Some(b"g")),
            ]),
            layer(&[("./etc/passwd", Some(b"new"))]),
        ]);
        assert_eq!(read(&img), [Some(b"new".to_vec()), Some(b"g".to_vec())]);
        let f = read_files(&img, &["etc/passwd"])
            .unwrap()
            .remove(0)
            .unwrap();
        assert_eq!((f.mode, f.uid), (0o640, 7));
    }

    #[test]
    fn reads_multi_member_gzip_layers() {
        use std::io::Write;
        let Blob::Bytes(tar) = layer(&[("etc/passwd", Some(b"p")), ("etc/group", Some(b"g"))]).blob
        else {
            unreachable!()
        };
        // Two gzip members, as pigz writes them: the second holds the end of the tar.
        let mut gz = Vec::new();
        for part in [&tar[..512], &tar[512..]] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            gz.extend(e.finish().unwrap());
        }
        let mut l = layer(&[]);
        l.blob = Blob::Bytes(Arc::new(gz));
        assert_eq!(
            read(&image(vec![l])),
            [Some(b"p".to_vec()), Some(b"g".to_vec())]
        );
    }

    #[test]
    fn trees_take_the_top_most_entry_of_each_path_and_honour_whiteouts() {
        let img = image(vec![
            layer(&[
                ("run/", None),
                ("run/lock/", None),
                ("run/old", Some(b"")),
                ("var/lib/app/", None),
            ]),
            layer(&[
                ("run/.wh.old", Some(b"")),
                ("run/lock/", None),
                ("run/new", Some(b"")),
            ]),
        ]);
        let (found, trees) = scan(&img, &["etc/passwd"], &["run", "var/lib/app", "srv"]).unwrap();
        assert_eq!(found, [None]);
        let paths = |t: &Option<Vec<TreeEntry>>| -> Vec<(String, bool)> {
            t.as_ref()
                .unwrap()
                .iter()
                .map(|e| (e.path.clone(), e.dir))
                .collect()
        };
        let mut run = paths(&trees[0]);
        run.sort();
        let want = [("run", true), ("run/lock", true), ("run/new", false)];
        assert_eq!(run, want.map(|(p, d)| (p.to_string(), d)));
        assert_eq!(paths(&trees[1]), [("var/lib/app".to_string(), true)]);
        assert_eq!(paths(&trees[2]), []);
        let many: Vec<(String, Option<&[u8]>)> = (0..=MAX_TREE)
            .map(|i| (format!("srv/{i}"), Some(&b""[..])))
            .collect();
        let many: Vec<(&str, Option<&[u8]>)> = many.iter().map(|(p, c)| (p.as_str(), *c)).collect();
        let (_, trees) = scan(&image(vec![layer(&many)]), &[], &["srv"]).unwrap();
        assert_eq!(trees, [None]);
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_files() {
        let base = || layer(&[("etc/passwd", Some(b"p")), ("etc/group", Some(b"g"))]);
        assert_eq!(
            read(&image(vec![
                base(),
                layer(&[("etc/.wh.passwd", Some(b""))])
            ])),
            [None, Some(b"g".to_vec())]
        );
        assert_eq!(
            read(&image(vec![
                base(),
                layer(&[("etc/.wh..wh..opq", Some(b""))])
            ])),
            [None, None]
        );
        assert_eq!(
            read(&image(vec![base(), layer(&[(".wh.etc", Some(b""))])])),
            [None, None]
        );
        // An opaque dir hides what is below, not what its own layer adds.
        let img = image(vec![
            base(),
            layer(&[("etc/.wh..wh..opq", Some(b"")), ("etc/group", Some(b"G"))]),
        ]);
        assert_eq!(read(&img), [None, Some(b"G".to_vec())]);
        assert_eq!(
            read(&image(vec![layer(&[("bin/sh", Some(b"x"))])])),
            [None, None]
        );
    }
}
