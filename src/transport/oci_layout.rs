//! The `oci:` and `oci-archive:` transports: an OCI image layout as a
//! directory or as a tar file. Read through `Store`; written built aside
//! (a new directory) or adding blobs and a new index.json (an existing one).

use super::files::{persist, sync_dir, temp_beside, write_file};
use super::reference::Select;
use super::store::Store;
use super::tar_output::TarOutput;
use super::written::Written;
use crate::copies::{Copies, Region};
use crate::digest::{self, Digest};
use crate::exit::NotFound;
use crate::image::{self, Blob, Content, Image, MAX_MANIFEST};
use crate::layer::header;
use crate::manifest::{parse_json, read_content, Descriptor, REF_NAME};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tar::EntryType;
use tempfile::NamedTempFile;

/// The `oci-layout` file of a layout harden writes.
pub const LAYOUT_MARKER: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn blob(store: &Store, digest: &Digest, size: u64) -> Result<Blob> {
    let b = store.get(&format!("blobs/sha256/{}", digest.hex()))?;
    if b.len() != size {
        bail!(
            "blob {digest} is {} bytes, its descriptor says {size}",
            b.len()
        );
    }
    Ok(b)
}

/// The manifests listed in a layout's index.json (after checking oci-layout).
fn layout_manifests(store: &Store) -> Result<Vec<Descriptor>> {
    let layout = store
        .get("oci-layout")
        .with_context(|| store.not_a("an OCI image layout", "manifest.json", "docker-archive"))?;
    let _: Value = parse_json(&layout.read_capped(4096, "oci-layout")?, "oci-layout")?;
    let index: Value = parse_json(
        &store
            .get("index.json")?
            .read_capped(MAX_MANIFEST, "index.json")?,
        "index.json",
    )?;
    serde_json::from_value(index.get("manifests").cloned().unwrap_or(Value::Null))
        .context("index.json has no valid manifests list")
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(REF_NAME).and_then(Value::as_str)
}

/// The entry of a layout's index that `select` picks.
fn select_manifest<'a>(manifests: &'a [Descriptor], select: &Select) -> Result<&'a Descriptor> {
    Ok(match select {
        Select::Name(t) => manifests
            .iter()
            .find(|d| ref_name(d) == Some(t))
            .ok_or_else(|| NotFound(format!("the layout has no image tagged {t:?}")))?,
        Select::Index(i) => manifests.get(*i).ok_or_else(|| {
            NotFound(format!(
                "the layout has no image @{i} ({})",
                image::count(manifests.len())
            ))
        })?,
        Select::Only => match manifests {
            [one] => one,
            [] => bail!("the layout holds no image"),
            _ => bail!(
                "the layout holds {} images: name one with :TAG or :@INDEX",
                manifests.len()
            ),
        },
    })
}

/// The ref name of the image `select` picks in the layout at `dir`, if it has one.
pub fn layout_ref_name(dir: &Path, select: &Select) -> Result<Option<String>> {
    let manifests = layout_manifests(&Store::dir(dir)?)?;
    Ok(ref_name(select_manifest(&manifests, select)?).map(str::to_string))
}

pub fn read(store: &Store, select: &Select) -> Result<Content> {
    let manifests = layout_manifests(store)?;
    read_descriptor(store, select_manifest(&manifests, select)?)
}

/// The image or index a layout's index.json names by `digest`; None when
/// the store is no OCI layout or its index names no such manifest (an
/// engine's archive of the image `digest` is, from Docker's containerd
/// image store).
pub fn read_digest(store: &Store, digest: &Digest) -> Result<Option<Content>> {
    if store.get("oci-layout").is_err() || store.get("index.json").is_err() {
        return Ok(None);
    }
    let manifests = layout_manifests(store)?;
    match manifests.iter().find(|d| d.digest == digest.as_str()) {
        Some(chosen) => read_descriptor(store, chosen).map(Some),
        None => Ok(None),
    }
}

fn read_descriptor(store: &Store, chosen: &Descriptor) -> Result<Content> {
    let digest = Digest::parse(&chosen.digest).context("in index.json")?;
    let bytes =
        blob(store, &digest, chosen.size)?.read_verified(&digest, MAX_MANIFEST, "manifest")?;
    let load =
        |d: &Digest, size: u64| blob(store, d, size)?.read_verified(d, MAX_MANIFEST, "manifest");
    read_content(&bytes, digest, &load, &|d, size| blob(store, d, size))
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
                let blob = Store::dir(root)?.get("index.json")?;
                let bytes = blob.read_capped(MAX_MANIFEST, "index.json")?;
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
        match self {
            Layout::Tar { mut tar, .. } => {
                tar.append_bytes("oci-layout", LAYOUT_MARKER)?;
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
                for (name, bytes) in [("oci-layout", LAYOUT_MARKER), ("index.json", &index[..])] {
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

fn write(content: &Content, mut layout: Layout, tag: Option<&str>) -> Result<Written> {
    let result = (|| {
        let (media_type, (digest, size), image_id) = match content {
            Content::Image(image) => (
                image::OCI_MANIFEST,
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
            || json!({"schemaVersion": 2, "mediaType": image::OCI_INDEX, "manifests": []}),
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

/// Writes `content` into the layout directory `dir` (new or existing).
pub fn write_dir(content: &Content, dir: &Path, tag: Option<&str>, sync: bool) -> Result<Written> {
    write(content, Layout::open_dir(dir, sync)?, tag)
}

/// Writes `content` as an oci-archive at `path`.
pub fn write_archive(
    content: &Content,
    path: &Path,
    tag: Option<&str>,
    sync: bool,
) -> Result<Written> {
    write(content, Layout::new_archive(path, sync)?, tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Family;
    use crate::transport::testing;

    fn only_image(content: Content) -> Image {
        match content {
            Content::Image(i) => i,
            Content::Index(_) => panic!("an index"),
        }
    }

    #[test]
    fn what_it_writes_it_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let image = testing::image(Family::Oci, &[("a", b"one"), ("b", b"two")]);
        let content = Content::Image(image.clone());
        let layout = dir.path().join("layout");
        let w = write_dir(&content, &layout, Some("v1"), false).unwrap();
        assert_eq!(w.image_id, Some(image.config_digest().to_string()));
        // A second image joins the first; the tag picks each.
        let other = testing::image(Family::Oci, &[("c", b"three")]);
        write_dir(&Content::Image(other.clone()), &layout, Some("v2"), false).unwrap();
        let store = Store::dir(&layout).unwrap();
        let v1 = only_image(read(&store, &Select::Name("v1".into())).unwrap());
        let v2 = only_image(read(&store, &Select::Name("v2".into())).unwrap());
        assert_eq!((v1.config, v2.config), (image.config.clone(), other.config));
        assert_eq!(v1.manifest_digest.map(|d| d.to_string()), w.manifest_digest);

        let archive = dir.path().join("a.tar");
        write_archive(&content, &archive, Some("v1"), false).unwrap();
        let back = only_image(read(&Store::tar(&archive).unwrap(), &Select::Only).unwrap());
        assert_eq!(back.config, image.config);
        assert_eq!(back.layers.len(), 2);
    }

    #[test]
    fn a_blob_that_fails_its_digest_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let image = testing::corrupted(testing::image(Family::Oci, &[("a", b"one")]));
        let content = Content::Image(image);
        assert!(write_dir(&content, &dir.path().join("layout"), Some("v1"), false).is_err());
        assert!(write_archive(&content, &dir.path().join("a.tar"), None, false).is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
