//! Reading images: docker-archive and OCI layouts (directory or tar), all
//! through `Store`, so nothing but small JSON documents is read here; and
//! registries, through `registry`.

use crate::decompress::Compression;
use crate::digest::Digest;
use crate::exit::NotFound;
use crate::image::{
    self, Blob, Content, Family, Image, Index, IndexEntry, Layer, OtherEntry, Skipped, MAX_CONFIG,
    MAX_MANIFEST,
};
use crate::platform::Platform;
use crate::registry::{self, Registries};
use crate::store::{Missing, Store};
use crate::transport::{same_image, ImageRef, Select};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::Path;

/// Reads what `r` names: an image, or an index of images.
pub fn read(r: &ImageRef, registries: &Registries) -> Result<Content> {
    // No `?` in here: every error gets the context below.
    let result = match r {
        ImageRef::Docker(reference) => registry::read(reference, registries),
        ImageRef::DockerArchive { path, select } => Store::tar(path)
            .and_then(|s| read_docker_archive(&s, select))
            .map(Content::Image),
        ImageRef::Oci { dir, select } => Store::dir(dir).and_then(|s| read_oci_layout(&s, select)),
        ImageRef::OciArchive { path, select } => {
            Store::tar(path).and_then(|s| read_oci_layout(&s, select))
        }
    };
    result.with_context(|| format!("reading {r}"))
}

fn parse_json<T: for<'a> Deserialize<'a>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .with_context(|| format!("{what} is not valid JSON of the expected shape"))
}

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

fn read_docker_archive(store: &Store, select: &Select) -> Result<Image> {
    let manifest = store
        .get("manifest.json")
        .with_context(|| not_a("a docker-archive", store, "oci-layout", "oci-archive"))?;
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
    let config_json: Value = parse_json(&config, &format!("config {}", entry.config))?;
    let diff_ids = image::diff_ids(&config_json)?;
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
                bail!(crate::decompress::unsupported(
                    &format!("layer {path}"),
                    kind
                ))
            }
        };
        // Uncompressed layers are their own diff_id (checked when copied); a
        // compressed one is hashed here: its file name may be the diff_id's.
        let digest = if compression == Compression::Plain {
            diff_id.clone()
        } else {
            crate::digest::copy_hashed(&mut blob.open()?, &mut std::io::sink())?.0
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

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: Map<String, Value>,
}

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

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

/// "not KIND", and when the store holds `other_marker`, the transport that
/// reads it (a docker-archive read as oci-archive, or the other way round).
/// The error's cause names the path and the missing file.
fn not_a(kind: &str, store: &Store, other_marker: &str, other: &str) -> String {
    match store.get(other_marker) {
        Ok(_) => format!("not {kind} (read it as {other}:)"),
        Err(_) => format!("not {kind}"),
    }
}

/// The manifests listed in a layout's index.json (after checking oci-layout).
fn layout_manifests(store: &Store) -> Result<Vec<Descriptor>> {
    let layout = store.get("oci-layout").with_context(|| {
        not_a(
            "an OCI image layout",
            store,
            "manifest.json",
            "docker-archive",
        )
    })?;
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

fn read_oci_layout(store: &Store, select: &Select) -> Result<Content> {
    let manifests = layout_manifests(store)?;
    let chosen = select_manifest(&manifests, select)?;
    let digest = Digest::parse(&chosen.digest).context("in index.json")?;
    let bytes =
        blob(store, &digest, chosen.size)?.read_verified(&digest, MAX_MANIFEST, "manifest")?;
    let load =
        |d: &Digest, size: u64| blob(store, d, size)?.read_verified(d, MAX_MANIFEST, "manifest");
    read_content(&bytes, digest, &load, &|d, size| blob(store, d, size))
}

/// An image or an index from its manifest bytes (verified by the caller).
/// `load` fetches a child manifest (verified); `blob` finds a blob.
pub fn read_content(
    bytes: &[u8],
    digest: Digest,
    load: &dyn Fn(&Digest, u64) -> Result<Vec<u8>>,
    blob: &dyn Fn(&Digest, u64) -> Result<Blob>,
) -> Result<Content> {
    let manifest: Value = parse_json(bytes, "manifest")?;
    let media_type = manifest
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("");
    // An OCI index may omit its mediaType; it is the one with `manifests`.
    if image::is_index(media_type) || (media_type.is_empty() && manifest.get("manifests").is_some())
    {
        read_index(&manifest, digest, load, blob).map(Content::Index)
    } else {
        read_manifest(bytes, digest, blob).map(Content::Image)
    }
}

/// Reads every image an index lists; attestations and anything that is not
/// an image manifest are left out, with the reason.
fn read_index(
    index: &Value,
    digest: Digest,
    load: &dyn Fn(&Digest, u64) -> Result<Vec<u8>>,
    blob: &dyn Fn(&Digest, u64) -> Result<Blob>,
) -> Result<Index> {
    let family = match index.get("mediaType").and_then(Value::as_str) {
        Some(image::DOCKER_MANIFEST_LIST) => Family::Docker,
        _ => Family::Oci,
    };
    let list = index
        .get("manifests")
        .and_then(Value::as_array)
        .context("the index has no manifests list")?;
    let (mut entries, mut skipped, mut others) = (Vec::new(), Vec::new(), Vec::new());
    let mut absent = Vec::new();
    for value in list {
        let d: Descriptor =
            serde_json::from_value(value.clone()).context("malformed descriptor in the index")?;
        let child = Digest::parse(&d.digest).context("in the index")?;
        let platform = value.get("platform").and_then(Platform::of);
        let kind = d
            .annotations
            .get("vnd.docker.reference.type")
            .and_then(Value::as_str);
        let skip = |reason: &str| Skipped {
            digest: child.to_string(),
            platform: platform
                .as_ref()
                .map_or("unknown".into(), Platform::to_string),
            reason: reason.to_string(),
        };
        if kind == Some("attestation-manifest")
            || platform.as_ref().is_some_and(|p| p.os == "unknown")
        {
            skipped.push(skip(
                "attestation manifest: it describes the source image, not the hardened one",
            ));
            continue;
        }
        if image::is_index(&d.media_type) {
            skipped.push(skip("a nested index"));
            continue;
        }
        let bytes = match held(load(&child, d.size))? {
            Ok(bytes) => bytes,
            Err(why) => {
                absent.push(skip(&why));
                continue;
            }
        };
        let manifest: Value = parse_json(&bytes, "manifest")?;
        if manifest.get("subject").is_some() {
            skipped.push(skip(
                "refers to (describes) another manifest, which hardening replaces",
            ));
            continue;
        }
        if !is_image_manifest(&d.media_type, &manifest) {
            // An artifact (an SBOM, a chart, ...): kept unchanged, with its blobs.
            others.push(OtherEntry {
                descriptor: value.as_object().cloned().unwrap_or_default(),
                blobs: referenced_blobs(&manifest, blob)?,
                manifest: bytes,
            });
            continue;
        }
        let image = match held(read_manifest(&bytes, child.clone(), blob))? {
            Ok(image) => image,
            Err(why) => {
                absent.push(skip(&why));
                continue;
            }
        };
        let platform =
            match platform.or_else(|| image.config_json().ok().as_ref().and_then(Platform::of)) {
                Some(p) => p,
                None => bail!(
                    "index entry {} names no platform, nor does its config",
                    d.digest
                ),
            };
        let mut extra = value.as_object().cloned().unwrap_or_default();
        for known in ["mediaType", "digest", "size"] {
            extra.remove(known);
        }
        entries.push(IndexEntry {
            platform,
            extra,
            image,
        });
    }
    if entries.is_empty() {
        skipped.extend(absent);
        bail!("{}", no_image(&digest, &skipped, &others));
    }
    Ok(Index {
        family,
        others,
        annotations: index
            .get("annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        entries,
        skipped,
        absent,
        digest: Some(digest),
    })
}

/// `result`, or (inside Ok) why a blob it needs is not in the source.
fn held<T>(result: Result<T>) -> Result<std::result::Result<T, String>> {
    match result {
        Err(e) if Missing::caused(&e) => Ok(Err(format!("not in the source: {e:#}"))),
        r => r.map(Ok),
    }
}

/// What an index without an image holds, for the error that says so.
fn no_image(digest: &Digest, skipped: &[Skipped], others: &[OtherEntry]) -> String {
    let mut held: Vec<String> = skipped
        .iter()
        .map(|s| format!("{} ({})", s.digest, s.reason))
        .collect();
    held.extend(others.iter().map(|o| {
        let digest = o.descriptor.get("digest").and_then(Value::as_str);
        let kind = o
            .descriptor
            .get("artifactType")
            .or_else(|| o.descriptor.get("mediaType"))
            .and_then(Value::as_str);
        format!(
            "{} (an artifact: {})",
            digest.unwrap_or("?"),
            kind.unwrap_or("no media type")
        )
    }));
    if held.is_empty() {
        return format!("the index {digest} is empty: it lists no manifest, so no image to harden");
    }
    format!(
        "the index {digest} holds no image to harden, only {} other {}: {}",
        held.len(),
        if held.len() == 1 { "entry" } else { "entries" },
        held.join("; ")
    )
}

/// An image manifest with an image config (an OCI manifest may carry an
/// artifact instead: an `artifactType`, or a config of another media type).
fn is_image_manifest(media_type: &str, manifest: &Value) -> bool {
    let config_type = manifest
        .pointer("/config/mediaType")
        .and_then(Value::as_str);
    match media_type {
        image::DOCKER_MANIFEST => true,
        image::OCI_MANIFEST | "" => {
            manifest.get("artifactType").is_none()
                && matches!(
                    config_type,
                    None | Some(image::OCI_CONFIG) | Some(image::DOCKER_CONFIG)
                )
        }
        _ => false,
    }
}

/// The blobs an artifact's manifest names (config, layers, blobs).
fn referenced_blobs(
    manifest: &Value,
    blob: &dyn Fn(&Digest, u64) -> Result<Blob>,
) -> Result<Vec<(Digest, Blob)>> {
    let single = manifest.get("config").into_iter();
    let lists = ["layers", "blobs"]
        .iter()
        .filter_map(|k| manifest.get(*k).and_then(Value::as_array))
        .flatten();
    single
        .chain(lists)
        .map(|v| {
            let d: Descriptor =
                serde_json::from_value(v.clone()).context("malformed descriptor")?;
            let digest = Digest::parse(&d.digest)?;
            Ok((digest.clone(), blob(&digest, d.size)?))
        })
        .collect()
}

/// Builds the image a manifest describes; `blob` finds a blob by digest and
/// size wherever the transport keeps it.
pub fn read_manifest(
    bytes: &[u8],
    digest: Digest,
    blob: &dyn Fn(&Digest, u64) -> Result<Blob>,
) -> Result<Image> {
    let manifest: Value = parse_json(bytes, "manifest")?;
    let media_type = manifest
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(image::OCI_MANIFEST);
    let family = match media_type {
        image::OCI_MANIFEST => Family::Oci,
        image::DOCKER_MANIFEST => Family::Docker,
        other => bail!("unsupported manifest media type {other:?}"),
    };
    let config_desc: Descriptor =
        serde_json::from_value(manifest.get("config").cloned().unwrap_or(Value::Null))
            .context("manifest has no valid config descriptor")?;
    let config_digest = Digest::parse(&config_desc.digest).context("config descriptor")?;
    let config = blob(&config_digest, config_desc.size)?.read_verified(
        &config_digest,
        MAX_CONFIG,
        "config",
    )?;
    let diff_ids = image::diff_ids(&parse_json(&config, "config")?)?;
    let layer_values = manifest
        .get("layers")
        .and_then(Value::as_array)
        .context("manifest has no layers list")?;
    if layer_values.len() != diff_ids.len() {
        bail!(
            "manifest lists {} layers but the config has {} diff_ids",
            layer_values.len(),
            diff_ids.len()
        );
    }
    let mut layers = Vec::new();
    for (value, diff_id) in layer_values.iter().zip(diff_ids) {
        let d: Descriptor =
            serde_json::from_value(value.clone()).context("malformed layer descriptor")?;
        let layer_digest = Digest::parse(&d.digest).context("layer descriptor")?;
        let mut extra = value.as_object().cloned().unwrap_or_default();
        for known in ["mediaType", "digest", "size"] {
            extra.remove(known);
        }
        let media_type = if d.media_type.is_empty() {
            image::OCI_LAYER
        } else {
            &d.media_type
        };
        layers.push(Layer {
            extra,
            ..Layer::new(
                media_type,
                layer_digest.clone(),
                diff_id,
                blob(&layer_digest, d.size)?,
            )
        });
    }
    Ok(Image {
        family,
        config,
        layers,
        manifest_annotations: manifest
            .get("annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        manifest_digest: Some(digest),
        name: None,
    })
}
