//! Reading an image or an index from a registry.

use super::blob::RemoteBlob;
use super::pool::{runtime, Registries};
use crate::digest::Digest;
use crate::image::{Blob, Content};
use anyhow::{bail, Result};
use oci_spec::distribution::Reference;
use std::sync::Arc;

/// Reads what `r` names: manifests and configs now, layers by reference.
pub fn read(r: &Reference, registries: &Registries) -> Result<Content> {
    let repo = registries.repo(r)?;
    let reference = r.digest().or(r.tag()).unwrap_or("latest").to_string();
    let bytes = runtime().block_on(async {
        repo.registry.want(&repo.name, &["pull"]).await;
        repo.manifest(&reference).await
    })?;
    let digest = Digest::of(&bytes);
    if let Some(wanted) = r.digest() {
        if wanted != digest.as_str() {
            bail!(
                "the registry sent a manifest that hashes to {digest}, not the {wanted} asked for"
            );
        }
    }
    let load = |child: &Digest, _size: u64| -> Result<Vec<u8>> {
        let bytes = runtime().block_on(repo.manifest(child.as_str()))?;
        let got = Digest::of(&bytes);
        if &got != child {
            bail!("the registry sent a manifest that hashes to {got}, not the {child} the index names");
        }
        Ok(bytes)
    };
    let blob = |digest: &Digest, size: u64| -> Result<Blob> {
        Ok(Blob::Fetched(Arc::new(RemoteBlob {
            repo: repo.clone(),
            digest: digest.clone(),
            size,
        })))
    };
    let mut content = crate::manifest::read_content(&bytes, digest, &load, &blob)?;
    let name = r
        .tag()
        .map(|t| format!("{}/{}:{t}", r.registry(), r.repository()));
    match &mut content {
        Content::Image(image) => image.name = name,
        Content::Index(index) => index
            .entries
            .iter_mut()
            .for_each(|e| e.image.name = name.clone()),
    }
    Ok(content)
}
