//! Content digests: parsing (never trusted as a path before validation) and hashing.

use anyhow::{bail, Result};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        let Some((algo, hex)) = s.split_once(':') else {
            bail!(
                "invalid digest {:?}: expected sha256:<64 hex digits>",
                short(s)
            );
        };
        if algo != "sha256" {
            bail!(
                "unsupported digest algorithm {:?} in {:?}",
                short(algo),
                short(s)
            );
        }
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            bail!(
                "invalid digest {:?}: expected sha256:<64 hex digits>",
                short(s)
            );
        }
        Ok(Digest(s.to_string()))
    }

    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hash(Sha256::digest(bytes).as_slice())
    }

    fn from_hash(hash: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(hash)))
    }

    /// The hex part: safe as a file name once parsed.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Incremental SHA-256 and byte count, for readers, writers and streams.
#[derive(Default)]
pub struct Hasher {
    sha: Sha256,
    count: u64,
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.count += bytes.len() as u64;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn finish(self) -> (Digest, u64) {
        (
            Digest::from_hash(self.sha.finalize().as_slice()),
            self.count,
        )
    }
}

/// Passes bytes through to `inner` while hashing and counting them.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::default(),
        }
    }

    pub fn finish(self) -> (W, Digest, u64) {
        let (digest, count) = self.hasher.finish();
        (self.inner, digest, count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes and counts what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::default(),
        }
    }

    pub fn finish(self) -> (Digest, u64) {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Fails unless what was read has the expected digest and size.
pub fn verify(
    what: &str,
    expected: &Digest,
    expected_len: u64,
    actual: (Digest, u64),
) -> anyhow::Result<()> {
    if actual.1 != expected_len {
        bail!("{what} is truncated: {} of {expected_len} bytes", actual.1);
    }
    if &actual.0 != expected {
        bail!(
            "{what} does not match its digest: its content hashes to {}",
            actual.0
        );
    }
    Ok(())
}

/// Copies `reader` into `writer`, returning the digest and size of what passed.
pub fn copy_hashed(reader: &mut dyn Read, writer: &mut dyn Write) -> io::Result<(Digest, u64)> {
    let mut hw = HashingWriter::new(writer);
    io::copy(reader, &mut hw)?;
    let (_, digest, size) = hw.finish();
    Ok((digest, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_sha256_hex() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&ok).unwrap().hex(), "a".repeat(64));
        for bad in [
            "sha256:abc".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha512:{}", "a".repeat(64)),
            format!("sha256:../../{}", "a".repeat(58)),
            "a".repeat(64),
            format!("sha256:{}/", "a".repeat(64)),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_known_vector() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut out = Vec::new();
        let (d, n) = copy_hashed(&mut &b"abc"[..], &mut out).unwrap();
        assert_eq!(n, 3);
        assert_eq!(d, Digest::of(b"abc"));
        assert_eq!(out, b"abc");
    }
}
