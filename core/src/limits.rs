//! Bounds on the work untrusted input can make harden do.

use std::io::{self, Read};

/// Decompressed layers may be this many times their compressed size...
pub const MAX_RATIO: u64 = 200;
/// ...once past this size (small layers of zeros are legitimate).
pub const RATIO_FLOOR: u64 = 1 << 30;

/// How far a compressed blob of `compressed` bytes may decompress.
pub fn decompressed_limit(compressed: u64) -> u64 {
    RATIO_FLOOR.max(compressed.saturating_mul(MAX_RATIO))
}

/// Fails a read (decompression) that goes past `limit` bytes: a gzip or zstd bomb
/// costs bounded CPU, not hours.
pub struct Capped<R> {
    inner: R,
    limit: u64,
    read: u64,
    what: String,
}

impl<R: Read> Capped<R> {
    pub fn new(inner: R, limit: u64, what: impl Into<String>) -> Self {
        Capped {
            inner,
            limit,
            read: 0,
            what: what.into(),
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(format!(
                "{} decompresses to more than {} bytes ({MAX_RATIO} times its size, at least {} MiB): refused as a likely decompression bomb",
                self.what,
                self.limit,
                RATIO_FLOOR >> 20
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_scale_with_the_compressed_size_above_a_floor() {
        assert_eq!(decompressed_limit(1), RATIO_FLOOR);
        assert_eq!(decompressed_limit(10 << 30), (10 << 30) * MAX_RATIO);
        assert_eq!(decompressed_limit(u64::MAX), u64::MAX);
    }

    #[test]
    fn reads_past_the_limit_fail() {
        let mut ok = Vec::new();
        Capped::new(&[7u8; 100][..], 100, "x")
            .read_to_end(&mut ok)
            .unwrap();
        assert_eq!(ok.len(), 100);
        let e = Capped::new(&[7u8; 101][..], 100, "layer sha256:x")
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(
            e.to_string().contains("layer sha256:x")
                && e.to_string().contains("decompression bomb")
        );
    }
}
