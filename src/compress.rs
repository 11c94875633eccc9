//! Layers a registry receives compressed. A docker-archive (or an OCI layout
//! written uncompressed) holds plain tar layers; pushed as they are, every pull
//! of the image would move 2–3× the bytes. docker push, skopeo and crane gzip
//! them on the way, and so does harden: each uncompressed layer is verified
//! against its diff_id and gzipped (deterministically: same layer, same
//! digest, so a second push finds it already there) into a temp file, one
//! layer per core. Compressed layers are never touched.

use crate::digest::{self, Digest, HashingWriter};
use crate::image::{self, Blob, Content, Image};
use crate::progress::Progress;
use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tempfile::TempPath;

/// `content` with every uncompressed layer gzipped, and the temp files that
/// now hold them: they are removed when dropped, so keep them until written.
pub fn gzip_layers(mut content: Content, progress: &Progress) -> Result<(Content, Vec<TempPath>)> {
    let mut todo: Vec<(Digest, Blob)> = Vec::new();
    for image in images(&mut content) {
        for l in image.layers.iter().filter(|l| !l.is_compressed()) {
            if !todo.iter().any(|(d, _)| d == &l.digest) {
                todo.push((l.digest.clone(), l.blob.clone()));
            }
        }
    }
    if todo.is_empty() {
        return Ok((content, Vec::new()));
    }
    let total: u64 = todo.iter().map(|(_, b)| b.len()).sum();
    progress.say(&format!(
        "gzip-compressing {} uncompressed layer(s), {} MiB, for the registry",
        todo.len(),
        total >> 20
    ));
    let done = compress_all(&todo, progress)?;
    let mut temps = Vec::new();
    let mut by_digest = HashMap::new();
    for ((plain, _), (digest, path)) in todo.iter().zip(done) {
        let blob = Blob::File {
            path: Arc::new(path.to_path_buf()),
            offset: 0,
            len: std::fs::metadata(&path)?.len(),
        };
        by_digest.insert(plain.clone(), (digest, blob));
        temps.push(path);
    }
    for image in images(&mut content) {
        let family = image.family;
        for l in image.layers.iter_mut().filter(|l| !l.is_compressed()) {
            let (digest, blob) = &by_digest[&l.digest];
            l.media_type = image::layer_media_type(family, true).to_string();
            l.digest = digest.clone();
            l.blob = blob.clone();
        }
    }
    Ok((content, temps))
}

fn images(content: &mut Content) -> Vec<&mut Image> {
    match content {
        Content::Image(i) => vec![i],
        Content::Index(x) => x.entries.iter_mut().map(|e| &mut e.image).collect(),
    }
}

/// Compresses each blob on a thread per core; results in the order given.
/// The first failure stops the others at their next layer.
fn compress_all(todo: &[(Digest, Blob)], progress: &Progress) -> Result<Vec<(Digest, TempPath)>> {
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(todo.len());
    let worker = || -> Result<Vec<(usize, (Digest, TempPath))>> {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some((digest, blob)) = todo.get(i) else {
                return Ok(mine);
            };
            let bar = progress.bar(&format!("gzip {}", &digest.hex()[..12]), blob.len());
            let result = gzip(digest, blob, &bar);
            bar.done();
            match result {
                Ok(done) => mine.push((i, done)),
                Err(e) => {
                    next.store(todo.len(), Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
    };
    let per_thread = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a gzip thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    let mut done: Vec<_> = per_thread.into_iter().flatten().collect();
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, d)| d).collect())
}

/// Gzips one layer into a temp file, checking the plain bytes against the
/// diff_id they are named by; returns the gzip's digest and the file.
fn gzip(diff_id: &Digest, blob: &Blob, bar: &crate::progress::Bar) -> Result<(Digest, TempPath)> {
    let tmp = tempfile::Builder::new()
        .prefix("harden-gzip-")
        .tempfile()
        .context("cannot create a temporary file for a compressed layer")?;
    crate::interrupt::track(tmp.path());
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp.as_file()));
    // mtime 0 and no name: the same layer always compresses to the same bytes.
    let mut gz = GzBuilder::new().mtime(0).write(out, Compression::default());
    let plain = digest::copy_hashed(&mut blob.open()?, &mut Progressed(&mut gz, bar))
        .with_context(|| format!("compressing layer {diff_id}"))?;
    digest::verify(&format!("layer {diff_id}"), diff_id, blob.len(), plain)?;
    let (mut file, digest, _) = gz.finish()?.finish();
    file.flush()?;
    drop(file);
    Ok((digest, tmp.into_temp_path()))
}

/// A writer that moves a progress bar.
struct Progressed<'a, W>(&'a mut W, &'a crate::progress::Bar);

impl<W: Write> Write for Progressed<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Family, Layer};
    use std::io::Read;

    fn image(layers: Vec<Layer>) -> Content {
        Content::Image(Image {
            family: Family::Docker,
            config: b"{}".to_vec(),
            layers,
            manifest_annotations: Default::default(),
            manifest_digest: None,
            name: None,
        })
    }

    fn plain(bytes: &[u8]) -> Layer {
        let d = Digest::of(bytes);
        let blob = Blob::Bytes(Arc::new(bytes.to_vec()));
        Layer::new(image::DOCKER_LAYER, d.clone(), d, blob)
    }

    #[test]
    fn plain_layers_are_gzipped_the_same_way_every_time() {
        let tar = b"not really a tar, but bytes".repeat(1000);
        let gz = Layer::new(
            image::DOCKER_LAYER_GZIP,
            Digest::of(b"x"),
            Digest::of(b"y"),
            Blob::Bytes(Arc::new(b"x".to_vec())),
        );
        let quiet = Progress::new(true);
        let content = image(vec![plain(&tar), gz.clone(), plain(&tar)]);
        let (first, temps) = gzip_layers(content.clone(), &quiet).unwrap();
        assert_eq!(temps.len(), 1, "a layer listed twice is compressed once");
        let Content::Image(first) = first else {
            panic!()
        };
        let l = &first.layers[0];
        assert_eq!(l.media_type, image::DOCKER_LAYER_GZIP);
        assert_eq!(l.diff_id, Digest::of(&tar));
        let mut bytes = Vec::new();
        l.blob.open().unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(Digest::of(&bytes), l.digest);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == tar);
        assert_eq!(
            first.layers[1].digest, gz.digest,
            "compressed layers are left alone"
        );
        assert_eq!(first.layers[2].digest, l.digest);
        let (second, _t) = gzip_layers(content, &quiet).unwrap();
        let Content::Image(second) = second else {
            panic!()
        };
        assert_eq!(second.layers[0].digest, l.digest);
    }

    #[test]
    fn a_layer_that_does_not_match_its_diff_id_is_refused() {
        let mut bad = plain(b"layer bytes");
        bad.blob = Blob::Bytes(Arc::new(b"other bytes".to_vec()));
        let e = gzip_layers(image(vec![bad]), &Progress::new(true)).unwrap_err();
        assert!(
            format!("{e:#}").contains("does not match its digest"),
            "{e:#}"
        );
    }
}
