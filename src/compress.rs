//! Layers a registry receives compressed. A docker-archive (or an OCI layout
//! written uncompressed) holds plain tar layers; pushed as they are, every pull
//! of the image would move 2–3× the bytes. docker push, skopeo and crane gzip
//! them on the way, and so does harden: each uncompressed layer is verified
//! against its diff_id and gzipped (deterministically: same layer, same
//! digest, so a second push finds it already there) into a temp file, on
//! every core, which an upload can follow as it grows (`Growing`).
//! Compressed layers are never touched.

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::image::{self, Blob, BlobFile, Content, Image};
use crate::progress::Progress;
use anyhow::{Context, Result};
use bytes::Bytes;
use flate2::{Compression, FlushCompress};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

/// `content` with every uncompressed layer gzipped into a temp file, which
/// goes when the last blob that uses it does. `started` gets each gzip as it
/// starts, so that its upload can follow the bytes as they are written.
pub fn gzip_layers(
    mut content: Content,
    progress: &Progress,
    mut started: impl FnMut(&Arc<Growing>) -> Result<()>,
) -> Result<Content> {
    let mut todo: Vec<(Digest, Blob)> = Vec::new();
    for image in images(&mut content) {
        for l in image.layers.iter().filter(|l| !l.is_compressed()) {
            if !todo.iter().any(|(d, _)| d == &l.digest) {
                todo.push((l.digest.clone(), l.blob.clone()));
            }
        }
    }
    if todo.is_empty() {
        return Ok(content);
    }
    let total: u64 = todo.iter().map(|(_, b)| b.len()).sum();
    progress.say(&format!(
        "gzip-compressing {} uncompressed layer(s), {}, for the registry",
        todo.len(),
        indicatif::HumanBytes(total)
    ));
    let mut by_digest = HashMap::new();
    // One layer after the other: each uses every core.
    for (plain, blob) in &todo {
        let tmp = crate::interrupt::temp_file("harden-gzip-")?;
        let growing = Arc::new(Growing::new(plain, blob.len(), tmp.as_file().try_clone()?));
        started(&growing)?;
        let bar = progress.bar(
            &format!("layer {} gzip", &plain.hex()[..12]),
            Some(blob.len()),
        );
        let gzipped = gzip(plain, blob, Feed(&growing), &bar);
        bar.done();
        let (digest, len) = match gzipped {
            Ok(done) => done,
            Err(e) => {
                growing.end_with(Err(format!("{e:#}")));
                return Err(e);
            }
        };
        let file = Blob::File {
            path: BlobFile::temp(tmp.into_temp_path()),
            offset: 0,
            len,
            origin: None,
        };
        growing.end_with(Ok((digest.clone(), file.clone())));
        by_digest.insert(plain.clone(), (digest, file));
    }
    for image in images(&mut content) {
        let family = image.family;
        for l in image.layers.iter_mut().filter(|l| !l.is_compressed()) {
            let (digest, blob) = &by_digest[&l.digest];
            l.media_type = image::gzip_layer_media_type(family).to_string();
            l.digest = digest.clone();
            l.blob = blob.clone();
        }
    }
    Ok(content)
}

/// A layer's gzip while it is being made: the bytes already in its temp file
/// can be read (an upload streams them as they come), and when it ends, the
/// blob it became (or why it failed).
pub struct Growing {
    /// The plain layer's digest (its diff_id) and size.
    pub plain: Digest,
    pub plain_len: u64,
    /// The temp file; read with `pread`, so the writer's position is untouched.
    file: File,
    state: Mutex<GrowState>,
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct GrowState {
    written: u64,
    end: Option<std::result::Result<(Digest, Blob), String>>,
}

impl Growing {
    fn new(plain: &Digest, plain_len: u64, file: File) -> Growing {
        Growing {
            plain: plain.clone(),
            plain_len,
            file,
            state: Mutex::default(),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GrowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn end_with(&self, end: std::result::Result<(Digest, Blob), String>) {
        self.state().end = Some(end);
        self.changed.notify_waiters();
    }

    /// Up to `max` bytes from offset `at`, waiting until some are written;
    /// None once the gzip has ended at `at`; an error when it failed.
    pub async fn read_at(&self, at: u64, max: usize) -> io::Result<Option<Bytes>> {
        loop {
            // Registered before the state is looked at: no wake-up is lost.
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            let (written, end) = {
                let s = self.state();
                (s.written, s.end.as_ref().map(|e| e.as_ref().err().cloned()))
            };
            if at < written {
                let mut buf = vec![0; max.min((written - at) as usize)];
                // The page cache has them: a short read, not worth a thread.
                self.file.read_exact_at(&mut buf, at)?;
                return Ok(Some(buf.into()));
            }
            match end {
                Some(None) => return Ok(None),
                Some(Some(e)) => return Err(io::Error::other(e)),
                None => changed.await,
            }
        }
    }

    /// The digest and blob the gzip ended as, once it has.
    pub async fn end(&self) -> Result<(Digest, Blob)> {
        loop {
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            if let Some(end) = &self.state().end {
                return end.clone().map_err(anyhow::Error::msg);
            }
            changed.await;
        }
    }

    /// Whether the gzip has ended in an error.
    pub fn failed(&self) -> bool {
        matches!(self.state().end, Some(Err(_)))
    }

    /// The gzip's digest, when it has ended well.
    pub fn digest(&self) -> Option<Digest> {
        match &self.state().end {
            Some(Ok((d, _))) => Some(d.clone()),
            _ => None,
        }
    }
}

/// Writes into a `Growing`'s file and tells its readers.
struct Feed<'a>(&'a Growing);

impl Write for Feed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&self.0.file).write(buf)?;
        self.0.state().written += n as u64;
        self.0.changed.notify_waiters();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn images(content: &mut Content) -> Vec<&mut Image> {
    match content {
        Content::Image(i) => vec![i],
        Content::Index(x) => x.entries.iter_mut().map(|e| &mut e.image).collect(),
    }
}

/// Gzips one layer into `out`, checking the plain bytes against the diff_id
/// they are named by; returns the gzip's digest and size.
///
/// As pigz does: the layer is cut into 1 MiB blocks, each deflated on its own
/// (on all cores, while the next blocks are read and hashed) and ended
/// byte-aligned with a sync flush, so that their concatenation is one deflate
/// stream. A block whose sample does not compress is stored, not searched for
/// matches: random data costs a copy, not 35 MB/s. The output depends only on
/// the input: no name, mtime 0, fixed block size.
fn gzip(
    diff_id: &Digest,
    blob: &Blob,
    out: impl Write,
    bar: &crate::progress::Bar,
) -> Result<(Digest, u64)> {
    let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, out));
    let what = || format!("compressing layer {diff_id}");
    let mut plain = HashingReader::new(blob.open()?);
    let mut crc = flate2::Crc::new();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // mtime 0, no flags, XFL 0, OS unknown.
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
    let mut next = read_blocks(&mut plain, &mut crc, threads).with_context(what)?;
    while !next.is_empty() {
        let current = next;
        let (deflated, following) = std::thread::scope(|s| {
            let workers: Vec<_> = current
                .iter()
                .map(|b| s.spawn(move || deflate_block(b)))
                .collect();
            let following = read_blocks(&mut plain, &mut crc, threads);
            let deflated: Vec<_> = workers
                .into_iter()
                .map(|w| w.join().expect("a deflate thread panicked"))
                .collect();
            (deflated, following)
        });
        for (block, d) in current.iter().zip(deflated) {
            out.write_all(&d?)?;
            bar.inc(block.len() as u64);
        }
        next = following.with_context(what)?;
    }
    blob.verify("layer", diff_id, plain.finish())?;
    // The last block: empty, stored, final. Then CRC-32 and size mod 2^32.
    out.write_all(&[1, 0, 0, 0xff, 0xff])?;
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&crc.amount().to_le_bytes())?;
    let (mut file, digest, len) = out.finish();
    file.flush()?;
    Ok((digest, len))
}

const BLOCK: usize = 1 << 20;
/// How much of a block is tried at `JUDGE` to tell whether it compresses.
const SAMPLE: usize = 64 << 10;
/// The fastest level whose Huffman codes are fitted to the data. zlib-rs's
/// level 1 uses the fixed codes, which cannot shrink data whose gain is in its
/// letters rather than in repeats: base64 of random bytes came out at 99.9%
/// there (so it was stored), 75% at levels 2 and 6.
const JUDGE: u32 = 2;

/// Up to `n` full blocks (fewer at the end), added to the CRC.
fn read_blocks(
    r: &mut impl Read,
    crc: &mut flate2::Crc,
    n: usize,
) -> std::io::Result<Vec<Vec<u8>>> {
    let mut blocks = Vec::new();
    while blocks.len() < n {
        let mut block = Vec::with_capacity(BLOCK);
        r.by_ref().take(BLOCK as u64).read_to_end(&mut block)?;
        if block.is_empty() {
            break;
        }
        crc.update(&block);
        let full = block.len() == BLOCK;
        blocks.push(block);
        if !full {
            break;
        }
    }
    Ok(blocks)
}

/// One block as non-final raw deflate ending on a byte boundary.
fn deflate_block(block: &[u8]) -> std::io::Result<Vec<u8>> {
    let sample = &block[..block.len().min(SAMPLE)];
    if deflate(sample, Compression::new(JUDGE))?.len() * 100 >= sample.len() * 97 {
        return Ok(stored(block));
    }
    deflate(block, Compression::default())
}

/// `data` as raw deflate at `level`, closed by a sync flush (not final).
fn deflate(data: &[u8], level: Compression) -> std::io::Result<Vec<u8>> {
    let mut c = flate2::Compress::new(level, false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity());
        }
        let done = c.total_in() as usize;
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .map_err(std::io::Error::other)?;
        // Flushed once all input is in and the output did not fill up.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

/// `data` as stored deflate blocks (the stream is byte-aligned here, so each
/// header is one byte: not final, type 00), at most 65,535 bytes each.
fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 5);
    for chunk in data.chunks(65535) {
        let n = chunk.len() as u16;
        out.push(0);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Family, Layer};
    use std::io::Read;
    use std::sync::Arc;

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
        let Content::Image(first) = gzip_layers(content.clone(), &quiet, |_| Ok(())).unwrap()
        else {
            panic!()
        };
        let l = &first.layers[0];
        assert_eq!(l.media_type, image::DOCKER_LAYER_GZIP);
        assert_eq!(l.diff_id, Digest::of(&tar));
        let mut bytes = Vec::new();
        l.blob.open().unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(Digest::of(&bytes), l.digest);
        assert!(gunzip(&l.blob) == tar);
        assert_eq!(
            first.layers[1].digest, gz.digest,
            "compressed layers are left alone"
        );
        assert_eq!(first.layers[2].digest, l.digest);
        let (Blob::File { path: a, .. }, Blob::File { path: b, .. }) =
            (&l.blob, &first.layers[2].blob)
        else {
            panic!()
        };
        assert!(Arc::ptr_eq(a, b), "a layer listed twice is compressed once");
        // The temp file goes with the last blob that uses it.
        let file = a.as_path().to_path_buf();
        let gz_digest = l.digest.clone();
        assert!(file.exists());
        drop(first);
        assert!(!file.exists());
        let Content::Image(second) = gzip_layers(content, &quiet, |_| Ok(())).unwrap() else {
            panic!()
        };
        assert_eq!(second.layers[0].digest, gz_digest);
    }

    fn gunzip(blob: &Blob) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(blob.open().unwrap())
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    #[test]
    fn random_blocks_are_stored_text_blocks_deflated_and_all_read_back() {
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let mut random = vec![0u8; 2 * BLOCK + 12345];
        for b in random.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let text = b"usr/lib/x86_64-linux-gnu/libc.so.6 ".repeat(100_000);
        let mixed = [&random[..], &text[..]].concat();
        // Letters without repeats (base64 of random bytes): 6 bits a byte.
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let letters: Vec<u8> = random.iter().map(|b| B64[(*b & 63) as usize]).collect();
        let quiet = Progress::new(true);
        for (data, max_percent) in [
            (random, 101),
            (text, 2),
            (mixed, 60),
            (letters, 78),
            (Vec::new(), 100),
        ] {
            let out = gzip_layers(image(vec![plain(&data)]), &quiet, |_| Ok(())).unwrap();
            let Content::Image(out) = out else { panic!() };
            let blob = &out.layers[0].blob;
            assert!(gunzip(blob) == data, "{} bytes read back", data.len());
            assert!(blob.len() <= (data.len() as u64 * max_percent / 100).max(20) + 64);
        }
    }

    #[test]
    fn a_layer_that_does_not_match_its_diff_id_is_refused() {
        let mut bad = plain(b"layer bytes");
        bad.blob = Blob::Bytes(Arc::new(b"other bytes".to_vec()));
        let e = gzip_layers(image(vec![bad]), &Progress::new(true), |_| Ok(())).unwrap_err();
        assert!(
            format!("{e:#}").contains("does not match its digest"),
            "{e:#}"
        );
    }
}
