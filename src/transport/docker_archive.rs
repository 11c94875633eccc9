//! The `docker-archive:` transport: the `docker save` format, one image
//! with uncompressed layers named by diff_id and a manifest.json. Read
//! through `Store`, so only small JSON documents are read here.

use super::oci_layout;
use super::reference::{hardened_tag, parse_reference, same_image, Select};
use super::store::Store;
use super::tar_output::TarOutput;
use super::written::Written;
use crate::config::ImageConfig;
use crate::decompress::{self, Compression};
use crate::digest::{self, Digest, HashingReader};
use crate::exit::NotFound;
use crate::image::{self, Family, Image, Layer, MAX_CONFIG, MAX_MANIFEST};
use crate::layer::header;
use crate::manifest::{parse_json, REF_NAME};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::Path;
use tar::EntryType;

/// One image of a docker-archive's manifest.json.
struct ArchiveManifestEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl ArchiveManifestEntry {
    /// The entries of manifest.json. Its readers are Go programs whose JSON
    /// decoding matches field names without regard to case (`docker load`,
    /// podman, skopeo), and Jib writes `config`, `repoTags`, `layers`: an
    /// exact match is preferred, any case accepted, as encoding/json does.
    fn parse(bytes: &[u8]) -> Result<Vec<Self>> {
        let entries: Vec<Map<String, Value>> = parse_json(bytes, "manifest.json")?;
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| Self::of(e).with_context(|| format!("manifest.json, image @{i}")))
            .collect()
    }

    fn of(entry: &Map<String, Value>) -> Result<Self> {
        let field = |name: &str| {
            entry.get(name).or_else(|| {
                entry
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
        };
        let strings = |name: &str| -> Result<Option<Vec<String>>> {
            match field(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => serde_json::from_value(v.clone())
                    .map(Some)
                    .with_context(|| format!("{name} is not a list of strings")),
            }
        };
        Ok(Self {
            config: field("Config")
                .and_then(Value::as_str)
                .context("no Config (a string) names the image's config")?
                .to_string(),
            repo_tags: strings("RepoTags")?,
            layers: strings("Layers")?.context("no Layers list")?,
        })
    }
}

pub fn read(store: &Store, select: &Select) -> Result<Image> {
    let manifest = store
        .get("manifest.json")
        .with_context(|| store.not_a("a docker-archive", "oci-layout", "oci-archive"))?;
    let entries =
        ArchiveManifestEntry::parse(&manifest.read_capped(MAX_MANIFEST, "manifest.json")?)?;
    let (entry, name) = match select {
        Select::Only => match entries.as_slice() {
            [one] => (one, None),
            [] => bail!("manifest.json lists no image"),
            _ => bail!(
                "the archive holds {} images: name one with :NAME:TAG or :@INDEX",
                entries.len()
            ),
        },
        Select::Index(i) => (
            entries.get(*i).ok_or_else(|| {
                NotFound(format!(
                    "the archive has no image @{i} ({})",
                    image::count(entries.len())
                ))
            })?,
            None,
        ),
        // The name as the archive spells it (docker's short form, or podman's and skopeo's full one).
        Select::Name(n) => entries
            .iter()
            .find_map(|e| {
                let tag = e.repo_tags.iter().flatten().find(|t| same_image(t, n))?;
                Some((e, Some(tag.clone())))
            })
            .ok_or_else(|| NotFound(format!("the archive has no image tagged {n}")))?,
    };
    let name = name.or_else(|| entry.repo_tags.iter().flatten().next().cloned());

    let config_blob = store.get(&entry.config)?;
    // Config is only a path (docker names it by its digest, Jib `config.json`):
    // the image ID is the digest of the content, and the layers are checked
    // against its diff_ids as they are copied.
    let config = config_blob.read_capped(MAX_CONFIG, &format!("config {}", entry.config))?;
    let config_doc: ImageConfig = parse_json(&config, &format!("config {}", entry.config))?;
    let diff_ids = config_doc.diff_ids()?;
    if diff_ids.len() != entry.layers.len() {
        bail!(
            "manifest.json lists {} layers but the config has {} diff_ids",
            entry.layers.len(),
            diff_ids.len()
        );
    }
    let mut layers = Vec::new();
    let mut zstd = false;
    for (path, diff_id) in entry.layers.iter().zip(diff_ids) {
        let blob = store.get(path)?;
        // docker save writes plain tar; docker load also takes compressed layers.
        let compression = blob.compression()?;
        let media_type = match compression {
            Compression::Plain => image::DOCKER_LAYER,
            Compression::Gzip => image::DOCKER_LAYER_GZIP,
            Compression::Zstd => {
                zstd = true;
                image::OCI_LAYER_ZSTD
            }
            Compression::Unsupported(kind) => {
                bail!(decompress::unsupported(&format!("layer {path}"), kind))
            }
        };
        // Uncompressed layers are their own diff_id (checked when copied); a
        // compressed one is hashed here: its file name may be the diff_id's.
        let digest = if compression == Compression::Plain {
            diff_id.clone()
        } else {
            digest::copy_hashed(&mut blob.open()?, &mut std::io::sink())?.0
        };
        layers.push(Layer::new(media_type, digest, diff_id, blob));
    }
    let image = Image {
        family: Family::Docker,
        config,
        layers,
        manifest_annotations: Map::new(),
        manifest_digest: None,
        name,
    };
    // A Docker manifest has no zstd layer type; an OCI one has.
    Ok(if zstd { image.into_oci() } else { image })
}

/// `repo:tag` → `repo:tag-hardened`, the default name of a hardened image.
pub fn hardened_name(name: &str) -> Option<String> {
    let (repo, tag) = name
        .rsplit_once(':')
        .filter(|(r, t)| !r.is_empty() && !r.contains('@') && !t.contains('/'))?;
    Some(format!("{repo}:{}", hardened_tag(tag)))
}

/// The `docker save` format: uncompressed layers named by diff_id, the config
/// named by its digest, and manifest.json.
pub fn write(image: &Image, path: &Path, repo_tag: Option<String>, sync: bool) -> Result<Written> {
    write_tar(
        image,
        TarOutput::create(path, sync)?,
        repo_tag.as_deref(),
        Layout::Legacy,
    )?;
    Ok(Written {
        destination: format!(
            "docker-archive:{}{}",
            path.display(),
            repo_tag.map(|t| format!(":{t}")).unwrap_or_default()
        ),
        manifest_digest: None,
        image_id: Some(image.config_digest().to_string()),
        blobs: None,
    })
}

/// How an archive names its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `DIFFID.tar` layers and `CONFIG.json`, as `docker save` wrote before
    /// Docker 25: what every reader takes.
    Legacy,
    /// An OCI image layout inside (`blobs/sha256/…`, `index.json`, plain
    /// layers) with the manifest.json older readers use, as Docker 25+
    /// saves: Docker's containerd image store keeps its manifest as it is,
    /// so the image ID it gives the image (the manifest's digest) is known.
    OciInside,
}

/// Writes the archive of `image`, tagged `repo_tag`, into `stream` in order
/// (what `docker load` reads from a pipe). For `Layout::OciInside`, the
/// digest of the manifest its index.json names.
pub fn write_stream(
    image: &Image,
    stream: File,
    repo_tag: &str,
    layout: Layout,
) -> Result<Option<Digest>> {
    write_tar(image, TarOutput::stream(stream)?, Some(repo_tag), layout)
}

/// The members in order: layers, config, (the OCI manifest, oci-layout and
/// index.json,) and manifest.json last, so that a reader of a cut-off
/// stream finds no image in it.
fn write_tar(
    image: &Image,
    mut out: TarOutput,
    repo_tag: Option<&str>,
    layout: Layout,
) -> Result<Option<Digest>> {
    let name_of = |digest: &Digest, legacy_ext: &str| match layout {
        Layout::Legacy => format!("{}.{legacy_ext}", digest.hex()),
        Layout::OciInside => format!("blobs/sha256/{}", digest.hex()),
    };
    let mut layer_names = Vec::new();
    let mut layer_descriptors = Vec::new();
    // Plain size by diff_id: a layer that comes twice is written once.
    let mut written: HashMap<&Digest, u64> = HashMap::new();
    for layer in &image.layers {
        let name = name_of(&layer.diff_id, "tar");
        let size = match written.get(&layer.diff_id) {
            Some(size) => *size,
            None => {
                let size = if layer.is_compressed() {
                    append_decompressed(&mut out.tar, &name, layer, &out.out.scratch_dir())?
                } else {
                    out.append_blob(&name, &layer.blob, &layer.diff_id)?;
                    layer.blob.len()
                };
                written.insert(&layer.diff_id, size);
                size
            }
        };
        layer_descriptors.push(image::descriptor(image::OCI_LAYER, &layer.diff_id, size));
        layer_names.push(name);
    }
    let config_digest = image.config_digest();
    let config_name = name_of(&config_digest, "json");
    out.append_bytes(&config_name, &image.config)?;
    let manifest_digest = match layout {
        Layout::Legacy => None,
        Layout::OciInside => {
            let bytes = image.manifest_as(Family::Oci, layer_descriptors);
            let digest = Digest::of(&bytes);
            out.append_bytes(&name_of(&digest, ""), &bytes)?;
            let mut entry = image::descriptor(image::OCI_MANIFEST, &digest, bytes.len() as u64);
            if let Some(name) = repo_tag {
                // As docker save names it: containerd's full name, and the tag.
                let full = parse_reference(name).map(|r| r.to_string());
                let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or(name);
                entry["annotations"] = json!({
                    "io.containerd.image.name": full.unwrap_or_else(|_| name.to_string()),
                    REF_NAME: tag,
                });
            }
            out.append_bytes("oci-layout", oci_layout::LAYOUT_MARKER)?;
            let index = json!({
                "schemaVersion": 2,
                "mediaType": image::OCI_INDEX,
                "manifests": [entry],
            });
            out.append_bytes("index.json", &serde_json::to_vec(&index)?)?;
            Some(digest)
        }
    };
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": repo_tag.iter().collect::<Vec<_>>(),
        "Layers": layer_names,
    }]);
    out.append_bytes("manifest.json", &serde_json::to_vec(&manifest)?)?;
    out.finish()?;
    Ok(manifest_digest)
}

/// docker-archive layers are uncompressed: decompress (gzip or zstd) into a
/// scratch file (the tar header needs the size first), checking the
/// compressed digest and the diff_id. The plain size.
fn append_decompressed<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    layer: &Layer,
    scratch_dir: &Path,
) -> Result<u64> {
    let mut scratch = tempfile::tempfile_in(scratch_dir)?;
    let mut compressed = HashingReader::new(layer.blob.open()?);
    let mut tar_stream = decompress::layer_tar(
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
    Ok(plain.1)
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

    use crate::image::{Content, Family};
    use crate::transport::{oci_layout, testing};

    #[test]
    fn what_it_writes_it_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let image = testing::image(Family::Docker, &[("a", b"one"), ("b", b"two")]);
        let w = write(&image, &path, Some("example/t:1".into()), false).unwrap();
        assert_eq!(
            w.destination,
            format!("docker-archive:{}:example/t:1", path.display())
        );
        assert_eq!(w.image_id, Some(image.config_digest().to_string()));
        let back = read(
            &Store::tar(&path).unwrap(),
            &Select::Name("example/t:1".into()),
        )
        .unwrap();
        assert_eq!(back.config, image.config);
        assert_eq!(back.name.as_deref(), Some("example/t:1"));
        let ids = |i: &Image| {
            i.layers
                .iter()
                .map(|l| l.diff_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&back), ids(&image));
        for (a, b) in back.layers.iter().zip(&image.layers) {
            assert_eq!(
                a.blob.read_capped(1 << 20, "a").unwrap(),
                b.blob.read_capped(1 << 20, "b").unwrap()
            );
        }
    }

    #[test]
    fn a_stream_is_the_same_archive() {
        let dir = tempfile::tempdir().unwrap();
        let image = testing::image(Family::Docker, &[("a", b"one")]);
        let path = dir.path().join("file.tar");
        write(&image, &path, Some("t:1".into()), false).unwrap();
        let streamed = dir.path().join("stream.tar");
        write_stream(
            &image,
            File::create(&streamed).unwrap(),
            "t:1",
            Layout::Legacy,
        )
        .unwrap();
        assert_eq!(
            std::fs::read(path).unwrap(),
            std::fs::read(streamed).unwrap()
        );
    }

    #[test]
    fn an_oci_layout_inside_reads_as_either_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        // A layer that comes twice is written once.
        let image = testing::image(Family::Docker, &[("a", b"one"), ("a", b"one")]);
        let manifest = write_stream(
            &image,
            File::create(&path).unwrap(),
            "example/t:1",
            Layout::OciInside,
        )
        .unwrap()
        .unwrap();
        let store = Store::tar(&path).unwrap();
        let Some(Content::Image(oci)) = oci_layout::read_digest(&store, &manifest).unwrap() else {
            panic!("index.json names no image {manifest}");
        };
        assert_eq!(oci.manifest_digest.as_ref(), Some(&manifest));
        let legacy = read(&store, &Select::Only).unwrap();
        assert_eq!(legacy.name.as_deref(), Some("example/t:1"));
        for back in [&oci, &legacy] {
            assert_eq!(back.config, image.config);
            assert_eq!(back.layers.len(), 2);
            for (a, b) in back.layers.iter().zip(&image.layers) {
                assert_eq!(a.diff_id, b.diff_id);
                assert_eq!(a.digest, b.diff_id, "plain, named by its diff_id");
            }
        }
        assert!(oci_layout::read_digest(&store, &image.config_digest())
            .unwrap()
            .is_none());
        let members: Vec<String> = tar::Archive::new(File::open(&path).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(members.len(), 6, "{members:?}");
        assert_eq!(members.last().map(String::as_str), Some("manifest.json"));
    }

    #[test]
    fn a_blob_that_fails_its_digest_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let image = testing::corrupted(testing::image(Family::Docker, &[("a", b"one")]));
        let e = write(&image, &path, None, false).unwrap_err();
        assert!(
            format!("{e:#}").contains(image.layers[0].diff_id.as_str()),
            "{e:#}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        // Into a stream, manifest.json (which names the image) never comes.
        let mut streamed = Vec::new();
        let (mut out, into) = std::io::pipe().unwrap();
        let reader = std::thread::spawn(move || {
            std::io::copy(&mut out, &mut streamed).unwrap();
            streamed
        });
        let file = File::from(std::os::fd::OwnedFd::from(into));
        assert!(write_stream(&image, file, "t:1", Layout::Legacy).is_err());
        let streamed = reader.join().unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(&streamed[..])
            .entries()
            .unwrap()
            .flatten()
        {
            names.push(e.path().unwrap().to_string_lossy().to_string());
        }
        assert!(!names.contains(&"manifest.json".to_string()), "{names:?}");
    }
}
