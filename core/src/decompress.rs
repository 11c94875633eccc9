//! A layer blob as its tar stream: gzip (every member) and zstd (every frame,
//! skippable frames skipped) are recognised by their first bytes, as are xz
//! and bzip2 (refused); anything else is taken as plain tar. Decompression is
//! capped (limits.rs).

use crate::limits::{decompressed_limit, Capped};
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use std::io::{self, BufRead, BufReader, Read};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a layer blob is compressed, told by its first bytes (as `docker load`
/// tells it: a docker-archive names no media types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Plain,
    Gzip,
    Zstd,
    /// xz or bzip2, which docker load reads and no registry media type names.
    Unsupported(&'static str),
}

/// The refusal of a layer compressed with `kind` (xz, bzip2).
pub fn unsupported(what: &str, kind: &str) -> String {
    format!("{what} is {kind}-compressed: harden reads plain tar, gzip and zstd")
}

/// Bytes `sniff` looks at.
pub const SNIFF_LEN: usize = 6;

pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) || is_skippable_frame(head) {
        Compression::Zstd
    } else if head.starts_with(b"\xfd7zXZ\0") {
        Compression::Unsupported("xz")
    } else if head.starts_with(b"BZh") {
        Compression::Unsupported("bzip2")
    } else {
        Compression::Plain
    }
}

/// The uncompressed tar read from `raw` (a layer, or a whole archive), whose
/// compressed size is `compressed_len`; `what` names it in errors.
pub fn layer_tar<'a>(
    mut raw: impl Read + 'a,
    compressed_len: u64,
    what: String,
) -> io::Result<Box<dyn Read + 'a>> {
    let (mut head, mut n) = ([0u8; SNIFF_LEN], 0);
    while n < head.len() {
        match raw.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    let raw = BufReader::new(io::Cursor::new(head.to_vec()).chain(raw));
    let limit = decompressed_limit(compressed_len);
    Ok(match sniff(head) {
        // Multi-member gzip is valid gzip (pigz and some registries write it).
        Compression::Gzip => Box::new(Capped::new(
            flate2::bufread::MultiGzDecoder::new(raw),
            limit,
            what,
        )),
        Compression::Zstd => Box::new(Capped::new(ZstdFrames::new(raw), limit, what)),
        Compression::Unsupported(kind) => return Err(io::Error::other(unsupported(&what, kind))),
        Compression::Plain => Box::new(raw),
    })
}

/// A zstd skippable frame's magic: 0x184D2A50 to 0x184D2A5F, little-endian.
fn is_skippable_frame(head: &[u8]) -> bool {
    matches!(head, [b0, 0x2a, 0x4d, 0x18, ..] if b0 & 0xf0 == 0x50)
}

/// Decodes a zstd stream of one or more frames. ruzstd's StreamingDecoder
/// stops after the first frame; zstd:chunked layers are many frames, with
/// skippable frames (its table of contents) between them.
struct ZstdFrames<R> {
    source: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        // The default window limit (128 MiB) bounds the memory a hostile layer can ask for.
        ZstdFrames {
            source,
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.source.fill_buf()?.is_empty() {
                    return Ok(0); // the stream ends at a frame boundary
                }
                match self.decoder.reset(&mut self.source) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let want = u64::from(length);
                        let skipped =
                            io::copy(&mut (&mut self.source).take(want), &mut io::sink())?;
                        if skipped < want {
                            return Err(io::Error::other("zstd: truncated skippable frame"));
                        }
                    }
                    Err(e) => return Err(io::Error::other(format!("zstd: {e}"))),
                }
                continue;
            }
            // As ruzstd's StreamingDecoder::read, then on to the next frame.
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| io::Error::other(format!("zstd: {e}")))?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.in_frame = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd_with(&[], data)
    }

    fn zstd_with(options: &[&str], data: &[u8]) -> Vec<u8> {
        let out = std::process::Command::new("zstd")
            .args(["-q", "-c"])
            .args(options)
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(data)?;
                child.wait_with_output()
            })
            .expect("the zstd command (make deps installs it)");
        assert!(out.status.success());
        out.stdout
    }

    fn skippable(payload: &[u8]) -> Vec<u8> {
        let mut frame = 0x184d_2a5a_u32.to_le_bytes().to_vec();
        frame.extend((payload.len() as u32).to_le_bytes());
        frame.extend(payload);
        frame
    }

    fn decode(stream: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        layer_tar(stream, stream.len() as u64, "layer".into())?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_zstd_frame_is_decoded_and_skippable_frames_are_skipped() {
        let (a, b) = (b"first frame ".repeat(1000), b"second frame".repeat(3000));
        let stream = [skippable(b"toc"), zstd(&a), skippable(b"more"), zstd(&b)].concat();
        // (assert! rather than assert_eq!: a failure would print kilobytes)
        assert!(decode(&stream).unwrap() == [a.clone(), b].concat());
        assert!(decode(&zstd(&a)).unwrap() == a, "one frame");
        let whole = zstd(&a);
        let cut = &whole[..whole.len() / 2];
        assert!(decode(cut).is_err(), "a truncated frame is an error");
        // A frame that asks for a 1 GiB window (from stdin the size is not
        // known, so the window is declared): refused, not allocated.
        let err = decode(&zstd_with(&["--long=30"], &a)).unwrap_err();
        assert!(err.to_string().contains("window"), "{err}");
        assert!(
            decode(&zstd_with(&["--long=27"], &a)).unwrap() == a,
            "128 MiB is allowed"
        );
    }

    #[test]
    fn gzip_and_plain_are_told_apart_by_their_first_bytes() {
        use std::io::Write;
        let data = b"plain tar bytes".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        assert!(decode(&gz.finish().unwrap()).unwrap() == data);
        assert!(decode(&data).unwrap() == data);
        assert_eq!(decode(b"").unwrap(), b"");
    }
}
