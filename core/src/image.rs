//! The image model shared by every source, the rewrite and every sink.
//! Blobs are references: nothing is read until a sink copies it.

use crate::config::ImageConfig;
use crate::decompress::{self, Compression};
use crate::digest::Digest;
use anyhow::{Context, Result};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";

/// Caps on JSON documents read from untrusted input.
pub const MAX_MANIFEST: u64 = 4 << 20;
pub const MAX_CONFIG: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Docker,
    Oci,
}

/// A file blobs are read from. A temp file harden made (an archive read from
/// a pipe, a layer gzipped for a registry) is removed when the last blob that
/// uses it goes.
#[derive(Debug)]
pub struct BlobFile {
    path: PathBuf,
    _temp: Option<tempfile::TempPath>,
}

impl BlobFile {
    pub fn new(path: &Path) -> Arc<BlobFile> {
        Arc::new(BlobFile {
            path: path.to_path_buf(),
            _temp: None,
        })
    }

    pub fn as_path(&self) -> &Path {
        &self.path
    }

    pub fn temp(temp: tempfile::TempPath) -> Arc<BlobFile> {
        Arc::new(BlobFile {
            path: temp.to_path_buf(),
            _temp: Some(temp),
        })
    }
}

/// Bytes a transport fetches only when a sink needs them (a blob in a
/// registry). The model knows how to read them and where they are from;
/// a sink of the same transport may look behind them (`as_any`), e.g. to
/// mount a blob from another repository of the same registry.
pub trait Fetched: std::fmt::Debug + Send + Sync {
    fn size(&self) -> u64;
    /// Where the bytes are, for messages (`from HOST/REPO`).
    fn origin(&self) -> String;
    /// A blocking reader of the whole blob; the caller verifies its digest.
    fn reader(self: Arc<Self>) -> Box<dyn Read + Send>;
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Where a blob's bytes are: a byte range of a file (a file in a layout, or a
/// member of a tar archive), bytes harden made, or bytes a transport fetches.
#[derive(Debug, Clone)]
pub enum Blob {
    File {
        path: Arc<BlobFile>,
        offset: u64,
        len: u64,
        /// Where in the input these bytes are, for messages (e.g. `member
        /// "x.tar" of app.tar`); none for a file harden made.
        origin: Option<Arc<str>>,
    },
    Bytes(Arc<Vec<u8>>),
    Fetched(Arc<dyn Fetched>),
}

impl Blob {
    #[allow(clippy::len_without_is_empty)] // a size, not a container
    pub fn len(&self) -> u64 {
        match self {
            Blob::File { len, .. } => *len,
            Blob::Bytes(b) => b.len() as u64,
            Blob::Fetched(f) => f.size(),
        }
    }

    /// Where the bytes are in the input (a file, an archive member, a
    /// registry repository); none for bytes harden made.
    pub fn origin(&self) -> Option<String> {
        match self {
            Blob::File { origin, .. } => origin.as_deref().map(str::to_string),
            Blob::Bytes(_) => None,
            Blob::Fetched(f) => Some(f.origin()),
        }
    }

    /// Checks what was read of this blob (`actual`) against `expected` and
    /// the blob's size; a mismatch of input bytes says the input is damaged
    /// and where.
    pub fn verify(&self, kind: &str, expected: &Digest, actual: (Digest, u64)) -> Result<()> {
        let origin = self.origin();
        let what = match &origin {
            Some(o) => format!("{kind} {expected} ({o})"),
            None => format!("{kind} {expected}"),
        };
        let checked = crate::digest::verify(&what, expected, self.len(), actual);
        match origin {
            Some(_) => checked.context("the input is damaged"),
            None => checked,
        }
    }

    pub fn open(&self) -> Result<Box<dyn Read + Send>> {
        Ok(match self {
            Blob::File {
                path, offset, len, ..
            } => {
                let mut f = File::open(path.as_path())
                    .with_context(|| format!("cannot open {}", path.as_path().display()))?;
                f.seek(SeekFrom::Start(*offset))?;
                Box::new(f.take(*len))
            }
            Blob::Bytes(b) => Box::new(io::Cursor::new(SharedBytes(b.clone()))),
            Blob::Fetched(f) => f.clone().reader(),
        })
    }

    /// The whole blob, for small JSON documents; refuses anything over `cap`.
    pub fn read_capped(&self, cap: u64, what: &str) -> Result<Vec<u8>> {
        if self.len() > cap {
            anyhow::bail!(
                "{what} is {} bytes, more than the {cap} allowed",
                self.len()
            );
        }
        let mut buf = Vec::with_capacity(self.len() as usize);
        self.open()?.read_to_end(&mut buf)?;
        if buf.len() as u64 != self.len() {
            anyhow::bail!("{what} is truncated");
        }
        Ok(buf)
    }

    /// Reads a JSON document and checks it against its digest.
    pub fn read_verified(&self, digest: &Digest, cap: u64, what: &str) -> Result<Vec<u8>> {
        let bytes = self.read_capped(cap, what)?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            anyhow::bail!(
                "{what} does not match its digest: expected {digest}, content hashes to {actual}"
            );
        }
        Ok(bytes)
    }

    /// How the blob is compressed, by its first bytes.
    pub fn compression(&self) -> Result<Compression> {
        let mut head = Vec::with_capacity(decompress::SNIFF_LEN);
        self.open()?
            .take(decompress::SNIFF_LEN as u64)
            .read_to_end(&mut head)?;
        Ok(decompress::sniff(&head))
    }
}

struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub media_type: String,
    pub digest: Digest,
    pub diff_id: Digest,
    pub blob: Blob,
    /// The descriptor's other fields (annotations, urls, ...) as the source
    /// had them, so that sinks keep what they do not understand.
    pub extra: Map<String, Value>,
}

impl Layer {
    pub fn new(media_type: &str, digest: Digest, diff_id: Digest, blob: Blob) -> Layer {
        Layer {
            media_type: media_type.to_string(),
            digest,
            diff_id,
            blob,
            extra: Map::new(),
        }
    }

    /// The manifest descriptor; the size is the blob's.
    pub fn descriptor(&self) -> Value {
        let mut d = self.extra.clone();
        d.insert("mediaType".into(), self.media_type.as_str().into());
        d.insert("digest".into(), self.digest.as_str().into());
        d.insert("size".into(), self.blob.len().into());
        Value::Object(d)
    }

    /// Whether the blob is compressed (gzip or zstd), by its media type.
    pub fn is_compressed(&self) -> bool {
        self.media_type.ends_with("gzip") || self.media_type.ends_with("zstd")
    }
}

/// One platform's image.
#[derive(Debug, Clone)]
pub struct Image {
    pub family: Family,
    /// The config exactly as read (its digest is the image ID).
    pub config: Vec<u8>,
    pub layers: Vec<Layer>,
    pub manifest_annotations: Map<String, Value>,
    /// Digest of the source manifest, when the source had one.
    pub manifest_digest: Option<Digest>,
    /// A docker-style `name:tag` the source knew the image by.
    pub name: Option<String>,
}

impl Image {
    pub fn config_digest(&self) -> Digest {
        Digest::of(&self.config)
    }

    /// The config, parsed (`config::ImageConfig`).
    pub fn image_config(&self) -> Result<ImageConfig> {
        ImageConfig::parse(&self.config)
    }

    pub fn config_media_type(&self) -> &'static str {
        match self.family {
            Family::Docker => DOCKER_CONFIG,
            Family::Oci => OCI_CONFIG,
        }
    }

    pub fn manifest_media_type(&self) -> &'static str {
        match self.family {
            Family::Docker => DOCKER_MANIFEST,
            Family::Oci => OCI_MANIFEST,
        }
    }

    /// The manifest for this image in its family: the exact bytes to store.
    pub fn manifest(&self) -> Vec<u8> {
        let layers = self.layers.iter().map(Layer::descriptor).collect();
        self.manifest_as(self.family, layers)
    }

    /// The manifest of this image in `family` with `layers` as its layer
    /// descriptors, for a destination that stores the layers in another
    /// form (an engine's archive: plain, named by diff_id).
    pub fn manifest_as(&self, family: Family, layers: Vec<Value>) -> Vec<u8> {
        let (manifest_type, config_type) = match family {
            Family::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG),
            Family::Oci => (OCI_MANIFEST, OCI_CONFIG),
        };
        let mut m = Map::new();
        m.insert("schemaVersion".into(), 2.into());
        m.insert("mediaType".into(), manifest_type.into());
        m.insert(
            "config".into(),
            descriptor(config_type, &self.config_digest(), self.config.len() as u64),
        );
        m.insert("layers".into(), Value::Array(layers));
        if family == Family::Oci && !self.manifest_annotations.is_empty() {
            m.insert(
                "annotations".into(),
                Value::Object(self.manifest_annotations.clone()),
            );
        }
        serde_json::to_vec(&Value::Object(m)).expect("JSON")
    }

    /// The same image with OCI media types, for destinations that hold only OCI.
    pub fn into_oci(mut self) -> Image {
        if self.family == Family::Oci {
            return self;
        }
        self.family = Family::Oci;
        for layer in &mut self.layers {
            let mt = if layer.media_type.ends_with("gzip") {
                OCI_LAYER_GZIP
            } else if layer.media_type.ends_with("zstd") {
                OCI_LAYER_ZSTD
            } else {
                OCI_LAYER
            };
            layer.media_type = mt.to_string();
        }
        self
    }
}

pub fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Value {
    serde_json::json!({"mediaType": media_type, "digest": digest.as_str(), "size": size})
}

/// The gzip layer media type of `family` (harden's own layer, and plain
/// layers it gzips for a registry).
pub fn gzip_layer_media_type(family: Family) -> &'static str {
    match family {
        Family::Docker => DOCKER_LAYER_GZIP,
        Family::Oci => OCI_LAYER_GZIP,
    }
}

pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Is `media_type` an index (OCI image index or Docker manifest list)?
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// What a reference names: one image, or an index of per-platform images.
#[derive(Debug, Clone)]
pub enum Content {
    Image(Image),
    Index(Index),
}

/// A multi-platform index (OCI image index or Docker manifest list).
#[derive(Debug, Clone)]
pub struct Index {
    pub family: Family,
    pub annotations: Map<String, Value>,
    pub entries: Vec<IndexEntry>,
    /// Entries that are not images (artifacts such as an SBOM), kept as they
    /// are, after the images.
    pub others: Vec<OtherEntry>,
    /// Entries left out, with the reason (attestations, other media types).
    pub skipped: Vec<Skipped>,
    /// Image entries whose manifest, config or layers the source does not
    /// hold: a partial archive, as `docker save --platform` and oras write
    /// (the index names every platform, the blobs are one platform's).
    pub absent: Vec<Skipped>,
    /// Digest of the source index.
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub platform: crate::platform::Platform,
    /// The descriptor's other fields (platform, annotations, ...), kept.
    pub extra: Map<String, Value>,
    pub image: Image,
}

/// An index entry harden does not rewrite: its descriptor, manifest bytes
/// and the blobs that manifest names, copied unchanged.
#[derive(Debug, Clone)]
pub struct OtherEntry {
    pub descriptor: Map<String, Value>,
    pub manifest: Vec<u8>,
    pub blobs: Vec<(Digest, Blob)>,
}

impl OtherEntry {
    pub fn media_type(&self) -> &str {
        self.descriptor
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or(OCI_MANIFEST)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub digest: String,
    pub platform: String,
    pub reason: String,
}

impl Index {
    pub fn media_type(&self) -> &'static str {
        match self.family {
            Family::Docker => DOCKER_MANIFEST_LIST,
            Family::Oci => OCI_INDEX,
        }
    }

    /// The index for these entries: the exact bytes to store.
    pub fn manifest(&self) -> Vec<u8> {
        let images = self.entries.iter().map(|e| {
            let bytes = e.image.manifest();
            let mut d = e.extra.clone();
            d.insert("mediaType".into(), e.image.manifest_media_type().into());
            d.insert("digest".into(), Digest::of(&bytes).as_str().into());
            d.insert("size".into(), bytes.len().into());
            Value::Object(d)
        });
        let others = self
            .others
            .iter()
            .map(|o| Value::Object(o.descriptor.clone()));
        let manifests: Vec<Value> = images.chain(others).collect();
        let mut m = Map::new();
        m.insert("schemaVersion".into(), 2.into());
        m.insert("mediaType".into(), self.media_type().into());
        m.insert("manifests".into(), manifests.into());
        if self.family == Family::Oci && !self.annotations.is_empty() {
            m.insert(
                "annotations".into(),
                Value::Object(self.annotations.clone()),
            );
        }
        serde_json::to_vec(&Value::Object(m)).expect("JSON")
    }

    /// The same index with OCI media types throughout.
    pub fn into_oci(mut self) -> Index {
        self.family = Family::Oci;
        for e in &mut self.entries {
            e.image = e.image.clone().into_oci();
        }
        self
    }
}

/// "1 image", "3 images".
pub fn count(n: usize) -> String {
    format!("{n} image{}", if n == 1 { "" } else { "s" })
}
