//! The manifest codec: an image or an index from its manifest bytes, with
//! the transport's way to load a child manifest and to find a blob passed in,
//! so the registry and the OCI layout read manifests with the same code.

use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::image::{
    self, Blob, Content, Family, Image, Index, IndexEntry, Layer, OtherEntry, Skipped, MAX_CONFIG,
};
use crate::platform::Platform;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A descriptor as manifests and indexes list them (the fields harden reads).
#[derive(Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: Map<String, Value>,
}

/// A blob the source does not hold (a partial archive may lack blobs its
/// index names): an index entry that needs it is left out, with the reason.
#[derive(Debug)]
pub struct Missing(pub String);

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Missing {}

impl Missing {
    /// Is `e`, or one of its causes, a missing blob?
    pub fn caused(e: &anyhow::Error) -> bool {
        e.chain().any(|c| c.is::<Missing>())
    }
}

/// The manifest annotation an OCI layout's index names an image by.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// JSON of the shape `T`, or an error naming `what` was read.
pub fn parse_json<T: for<'a> Deserialize<'a>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .with_context(|| format!("{what} is not valid JSON of the expected shape"))
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
            match platform.or_else(|| image.image_config().ok().and_then(|c| c.platform())) {
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
    let diff_ids = parse_json::<ImageConfig>(&config, "config")?.diff_ids()?;
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
