//! Transports: where images are read from and written to. Each is one
//! module, a reader and a writer of the image model (`crate::image`); this
//! module is the one place that picks a transport by the reference's kind,
//! and the pipeline asks a destination's `Capabilities` instead.

pub mod docker_archive;
pub mod docker_daemon;
pub mod files;
pub mod oci_layout;
pub mod reference;
pub mod registry;
pub mod store;
mod tar_output;
pub mod written;

pub use reference::{
    archive_name, default_destination, hardened_tag, parse_reference, same_image, Capabilities,
    ImageRef, LayerForm, Select,
};
pub use written::{BlobSummary, Written};

use crate::image::Content;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use registry::Registries;
use std::path::Path;
use store::Store;

/// Reads what `r` names: an image, or an index of images.
pub fn read(r: &ImageRef, registries: &Registries) -> Result<Content> {
    // No `?` in here: every error gets the context below.
    let result = match r {
        ImageRef::Docker(reference) => registry::read(reference, registries),
        ImageRef::DockerArchive { path, select } => Store::tar(path)
            .and_then(|s| docker_archive::read(&s, select))
            .map(Content::Image),
        ImageRef::Oci { dir, select } => Store::dir(dir).and_then(|s| oci_layout::read(&s, select)),
        ImageRef::OciArchive { path, select } => {
            Store::tar(path).and_then(|s| oci_layout::read(&s, select))
        }
        ImageRef::DockerDaemon(name) => docker_daemon::read(name),
    };
    result.with_context(|| format!("reading {r}"))
}

/// A writer that starts while the layers are still being gzipped, where the
/// destination has one (a registry pushes each layer as it grows).
pub fn early_uploads(
    dest: &ImageRef,
    registries: &Registries,
    progress: &Progress,
) -> Result<Option<registry::EarlyUploads>> {
    match dest {
        ImageRef::Docker(r) => Ok(Some(registry::EarlyUploads::new(r, registries, progress)?)),
        _ => Ok(None),
    }
}

/// What a write of `images` would do with each blob, found without writing
/// (a registry's HEAD requests); none for a destination that is written
/// whole, where every blob is copied.
pub fn plan(
    images: &[&crate::image::Image],
    dest: &ImageRef,
    registries: &Registries,
) -> Result<Option<Vec<registry::PlannedBlob>>> {
    match dest {
        ImageRef::Docker(r) => Ok(Some(registry::plan(images, r, registries)?)),
        _ => Ok(None),
    }
}

/// Refuses, before anything is read, a destination that cannot be written
/// (`@INDEX`) or would overwrite the source.
pub fn check_destination(src: &ImageRef, dest: &ImageRef) -> Result<()> {
    dest.output_name()
        .with_context(|| format!("the destination {dest}"))?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let clash = match (src, dest) {
        // Into its own layout, an image goes beside the source; only taking
        // the source's own tag would drop the source from the index.
        (ImageRef::Oci { dir: a, select: x }, ImageRef::Oci { dir: b, select: y }) => {
            same(a, b)
                && match y {
                    Select::Name(t) => {
                        x == y
                            || oci_layout::layout_ref_name(a, x)
                                .is_ok_and(|n| n.as_deref() == Some(t))
                    }
                    _ => false,
                }
        }
        (ImageRef::Docker(a), ImageRef::Docker(b)) => {
            a.registry() == b.registry() && a.repository() == b.repository() && a.tag() == b.tag()
        }
        // Loading over the source's own name would move it off the source.
        (ImageRef::DockerDaemon(a), ImageRef::DockerDaemon(b)) => same_image(a, b),
        (ImageRef::Oci { .. } | ImageRef::Docker(_) | ImageRef::DockerDaemon(_), _)
        | (_, ImageRef::Oci { .. } | ImageRef::Docker(_) | ImageRef::DockerDaemon(_)) => false,
        (
            ImageRef::DockerArchive { path: a, .. } | ImageRef::OciArchive { path: a, .. },
            ImageRef::DockerArchive { path: b, .. } | ImageRef::OciArchive { path: b, .. },
        ) => same(a, b),
    };
    if clash {
        bail!("the destination {dest} is the source: harden never modifies its input");
    }
    Ok(())
}

/// Writes an image or an index to `dest`; `early` holds the blobs already on
/// their way to a registry destination; `sync`: fsync file outputs.
pub fn write(
    content: &Content,
    dest: &ImageRef,
    registries: &Registries,
    progress: &Progress,
    early: Option<registry::EarlyUploads>,
    sync: bool,
) -> Result<Written> {
    write_to(content, dest, registries, progress, early, sync)
        .with_context(|| format!("writing {dest}"))
}

fn write_to(
    content: &Content,
    dest: &ImageRef,
    registries: &Registries,
    progress: &Progress,
    early: Option<registry::EarlyUploads>,
    sync: bool,
) -> Result<Written> {
    let can = dest.capabilities();
    let converted;
    let content = match content {
        _ if can.docker_media_types => content,
        Content::Image(i) => {
            converted = Content::Image(i.clone().into_oci());
            &converted
        }
        Content::Index(i) => {
            converted = Content::Index(i.clone().into_oci());
            &converted
        }
    };
    // One image for a destination that holds one platform.
    let one = match content {
        Content::Image(image) => Some(image),
        Content::Index(index) => match index.entries.as_slice() {
            [one] if !can.many_platforms => Some(&one.image),
            entries if !can.many_platforms => {
                let platforms: Vec<String> =
                    entries.iter().map(|e| e.platform.to_string()).collect();
                bail!(
                    "{} holds one platform; choose one of {} with --platform",
                    dest.transport_name(),
                    platforms.join(", ")
                )
            }
            _ => None,
        },
    };
    let name = dest.output_name()?;
    match dest {
        ImageRef::Docker(r) => registry::write(content, r, registries, progress, early),
        ImageRef::DockerArchive { path, .. } => {
            let image = one.context("a docker-archive holds one image")?;
            let name = name.map(str::to_string).or_else(|| {
                image
                    .name
                    .as_deref()
                    .and_then(docker_archive::hardened_name)
            });
            docker_archive::write(image, path, name, sync)
        }
        ImageRef::DockerDaemon(name) => {
            docker_daemon::write(one.context("an engine loads one image")?, name)
        }
        ImageRef::Oci { dir, .. } => oci_layout::write_dir(content, dir, name, sync),
        ImageRef::OciArchive { path, .. } => oci_layout::write_archive(content, path, name, sync),
    }
}

/// Images for the transports' unit tests, made in memory.
#[cfg(test)]
pub(crate) mod testing {
    use crate::digest::Digest;
    use crate::image::{Blob, Family, Image, Layer, DOCKER_LAYER, OCI_LAYER};
    use std::sync::Arc;

    /// A plain layer tar holding one file `name` with `content`.
    pub fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = crate::layer::header(tar::EntryType::Regular, 0o644, content.len() as u64);
        tar.append_data(&mut h, name, content).unwrap();
        tar.into_inner().unwrap()
    }

    /// An image of `family` with one plain layer per `(name, content)`.
    pub fn image(family: Family, files: &[(&str, &[u8])]) -> Image {
        let media_type = match family {
            Family::Docker => DOCKER_LAYER,
            Family::Oci => OCI_LAYER,
        };
        let layers: Vec<Layer> = files
            .iter()
            .map(|(name, content)| {
                let tar = layer_tar(name, content);
                let d = Digest::of(&tar);
                Layer::new(media_type, d.clone(), d, Blob::Bytes(Arc::new(tar)))
            })
            .collect();
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/app"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        Image {
            family,
            config: serde_json::to_vec(&config).unwrap(),
            layers,
            manifest_annotations: Default::default(),
            manifest_digest: None,
            name: None,
        }
    }

    /// `image` with its first layer's bytes changed, its digests not.
    pub fn corrupted(mut image: Image) -> Image {
        let layer = &mut image.layers[0];
        let mut bytes = layer.blob.read_capped(1 << 20, "layer").unwrap();
        bytes[600] ^= 0xff;
        layer.blob = Blob::Bytes(Arc::new(bytes));
        image
    }
}
