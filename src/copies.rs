//! Copies of file regions (the base layers of a file source) into output
//! files, each checked against its digest. Every region is read once, from a
//! mapping of the source, in chunks that are hashed and then written while
//! they are still in the CPU's cache, at an output offset laid out ahead (a
//! tar member's place is known from its header), by a pool of one thread per
//! core: both cores hash and copy at once, and nothing waits for the hash of
//! another layer. Against the kernel copying (copy_file_range) beside
//! threads that hashed the same bytes read from the page cache, this touches
//! every byte of the source once instead of twice (see BENCHMARKS.md).

use crate::digest::{Digest, Hasher};
use crate::image::{Blob, BlobFile};
use crate::mapping::Mapping;
use anyhow::{Context, Result};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// One region to copy: `len` bytes of `src` from `offset` to `out` at `out_at`.
pub struct Region {
    pub src: Arc<BlobFile>,
    pub offset: u64,
    pub len: u64,
    pub out: Arc<File>,
    pub out_at: u64,
}

impl Region {
    /// The region a file-backed blob's bytes are, to be copied to `out` at
    /// `out_at` (none for a blob that is not in a file).
    pub fn of(blob: &Blob, out: &Arc<File>, out_at: u64) -> Option<Region> {
        let Blob::File {
            path, offset, len, ..
        } = blob
        else {
            return None;
        };
        Some(Region {
            src: path.clone(),
            offset: *offset,
            len: *len,
            out: out.clone(),
            out_at,
        })
    }
}

/// What a copy found: the digest and size of the bytes it copied.
type Found = io::Result<(Digest, u64)>;
type Job = (Region, mpsc::Sender<Found>);

/// The copies an output has started, and the digests they must show. The
/// checks are made by `check_all`, before the output is renamed into place,
/// so a mismatch leaves nothing behind. Dropping it with copies unchecked
/// stops them after the chunk each is on.
pub struct Copies {
    queue: mpsc::Sender<Job>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    workers: usize,
    pool: Arc<Pool>,
    /// Writeback of each written piece starts at once (the output is synced
    /// at the end, and the fsync then finds little left to write).
    writeback: bool,
    pending: Vec<(Blob, Digest, mpsc::Receiver<Found>)>,
}

impl Copies {
    pub fn new(writeback: bool) -> Copies {
        let (queue, jobs) = mpsc::channel();
        Copies {
            queue,
            jobs: Arc::new(Mutex::new(jobs)),
            workers: 0,
            pool: Arc::new(Pool {
                // Past a few cores the disk is the limit.
                cores: std::thread::available_parallelism().map_or(2, |n| n.get().min(16)),
                copying: AtomicUsize::new(0),
                stop: AtomicBool::new(false),
            }),
            writeback,
            pending: Vec::new(),
        }
    }

    /// Starts copying `region` of `blob`, which must hash to `expected`.
    pub fn start(&mut self, blob: &Blob, region: Region, expected: &Digest) {
        if self.workers < self.pool.cores.min(self.pending.len() + 1) {
            self.workers += 1;
            let (jobs, pool, writeback) = (self.jobs.clone(), self.pool.clone(), self.writeback);
            std::thread::spawn(move || loop {
                let job = jobs.lock().map(|rx| rx.recv());
                let Ok(Ok((region, done))) = job else { break };
                let _ = done.send(copy(&region, &pool, writeback));
            });
        }
        let (done, copied) = mpsc::channel();
        self.queue
            .send((region, done))
            .expect("the workers hold the receiver");
        self.pending.push((blob.clone(), expected.clone(), copied));
    }

    /// Waits for every copy started and checks each against its digest and size.
    pub fn check_all(&mut self) -> Result<()> {
        for (blob, expected, copied) in std::mem::take(&mut self.pending) {
            let got = copied
                .recv()
                .map_err(|_| anyhow::anyhow!("the copying thread failed"))?
                .with_context(|| format!("copying blob {expected}"))?;
            blob.verify("blob", &expected, got)?;
        }
        Ok(())
    }
}

impl Drop for Copies {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.pool.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// What the threads of one output's copies share.
struct Pool {
    cores: usize,
    /// Regions being copied now.
    copying: AtomicUsize,
    /// Set when the output is abandoned.
    stop: AtomicBool,
}

/// Chunks of 256 KiB, a quarter of a core's L2 cache here: a chunk is
/// written while the cache still holds what was hashed (1 MiB chunks were
/// slower). Up to 8 are on their way to a helper thread.
const CHUNK: usize = 256 << 10;
const IN_FLIGHT: usize = 8;
/// Pages copied leave the resident set 4 MiB at a time (see
/// `Mapping::release`); the munmap at the end drops the rest.
const RELEASE: usize = 4 << 20;

/// Copies one region chunk by chunk: hash, then write at the same place in
/// the output, both from a mapping of the source (no copy into harden's
/// memory). While fewer regions are being copied than there are cores, the
/// writes go to a helper thread, so that a layer that is most of the image
/// keeps both cores busy; otherwise this thread writes each chunk itself,
/// from its own cache (two layers, 400 MiB: 0.25 s against 0.31 s when every
/// write went to a helper). Returns the digest and the size of what was
/// read (a source shorter than the region shows as a size that does not
/// match). Bytes are hashed and written from the same mapping a moment
/// apart, so a process that rewrites the source meanwhile could make them
/// differ: one that may write the source could as well have written it
/// before harden read it.
fn copy(r: &Region, pool: &Pool, writeback: bool) -> io::Result<(Digest, u64)> {
    // Writeback in 16 MiB pieces: per layer it blocked the copy ~0.1 s per
    // 200 MiB; without a sync to follow it only costs. (A piece's last
    // chunks may still be with the helper: the fsync at the end has them.)
    const PIECE: usize = 16 << 20;
    let src = File::open(r.src.as_path())?;
    let held = src.metadata()?.len().saturating_sub(r.offset).min(r.len);
    if held == 0 {
        return Ok(Hasher::default().finish());
    }
    let mapping = Mapping::new(&src, r.offset, held)?;
    let data = mapping.bytes();
    let write = |at: usize, n: usize| r.out.write_all_at(&data[at..at + n], r.out_at + at as u64);
    let (to_helper, chunks) = mpsc::sync_channel::<(usize, usize)>(IN_FLIGHT);
    pool.copying.fetch_add(1, Ordering::SeqCst);
    let result = std::thread::scope(|s| {
        let helper = s.spawn(|| chunks.into_iter().try_for_each(|(at, n)| write(at, n)));
        let mut hasher = Hasher::default();
        let (mut done, mut flushed, mut released) = (0, 0, 0);
        let hashed = (|| {
            while done < data.len() && !pool.stop.load(Ordering::Relaxed) {
                let n = (data.len() - done).min(CHUNK);
                hasher.update(&data[done..done + n]);
                if pool.copying.load(Ordering::Relaxed) < pool.cores {
                    // No helper to take it: it failed, and says why below.
                    if to_helper.send((done, n)).is_err() {
                        break;
                    }
                } else {
                    write(done, n)?;
                }
                done += n;
                // Chunks still queued for the helper, or being written.
                let behind = done.saturating_sub((IN_FLIGHT + 1) * CHUNK);
                if behind - released >= RELEASE {
                    mapping.release(released..behind);
                    released = behind;
                }
                if writeback && (done - flushed >= PIECE || done == data.len()) {
                    // Safety: a plain syscall on a descriptor we hold; an
                    // error only loses the head start.
                    unsafe {
                        libc::sync_file_range(
                            std::os::fd::AsRawFd::as_raw_fd(&*r.out),
                            (r.out_at + flushed as u64) as i64,
                            (done - flushed) as i64,
                            libc::SYNC_FILE_RANGE_WRITE,
                        )
                    };
                    flushed = done;
                }
            }
            Ok(())
        })();
        drop(to_helper);
        let written = helper.join().expect("the writing thread does not panic");
        if mapping.shrank() {
            // The writes of lost pages fail (EFAULT) or wrote zeros.
            return Err(io::Error::other(format!(
                "{} shrank while it was being copied",
                r.src.as_path().display()
            )));
        }
        hashed.and(written)?;
        Ok(hasher.finish())
    });
    pool.copying.fetch_sub(1, Ordering::SeqCst);
    result
}
