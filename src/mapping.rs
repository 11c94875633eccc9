//! Read-only mappings of file regions that survive the file shrinking.
//!
//! Reading a page of a mapping that the file no longer has (another process
//! truncated it) raises SIGBUS, which would kill harden and leave its temp
//! files behind. Here a SIGBUS inside one of these mappings replaces the rest
//! of the mapping with zero pages and marks it: the reader sees zeros, asks
//! `shrank`, and fails cleanly (its digest would not match either). A SIGBUS
//! anywhere else goes to the handler that was there before (Rust's own, or
//! the default), as if this one did not exist.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// A mapping being read, as the signal handler sees it.
struct Slot {
    busy: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    shrank: AtomicBool,
}

/// More than the copies that run at once (one per core, at most 16: see
/// copies.rs).
const SLOTS: usize = 32;

#[allow(clippy::declare_interior_mutable_const)] // only to fill the array
const FREE: Slot = Slot {
    busy: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    shrank: AtomicBool::new(false),
};
static MAPPED: [Slot; SLOTS] = [FREE; SLOTS];

/// The SIGBUS handler before ours, handed the faults that are not ours.
static PREVIOUS: OnceLock<Option<libc::sigaction>> = OnceLock::new();

const PAGE: usize = 4096;

pub struct Mapping {
    ptr: *mut libc::c_void,
    map_len: usize,
    /// From the page boundary to the region's first byte.
    skip: usize,
    len: usize,
    slot: &'static Slot,
}

// The mapping is read-only, and its slot's fields are atomics.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `file` from `offset` (which the file must hold
    /// when called; `len` > 0).
    pub fn new(file: &File, offset: u64, len: u64) -> io::Result<Mapping> {
        install();
        let start = offset - offset % PAGE as u64;
        let skip = (offset - start) as usize;
        let len = usize::try_from(len).map_err(|_| io::Error::other("region too large"))?;
        let map_len = skip + len;
        let slot = MAPPED
            .iter()
            .find(|s| {
                s.busy
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| io::Error::other("too many file regions mapped at once"))?;
        // Safety: a new read-only mapping of a file we hold open; nothing
        // else refers to the address range it returns.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                start as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            slot.busy.store(false, Ordering::Release);
            return Err(e);
        }
        slot.shrank.store(false, Ordering::Relaxed);
        slot.start.store(ptr as usize, Ordering::Relaxed);
        slot.end.store(ptr as usize + map_len, Ordering::Release);
        Ok(Mapping {
            ptr,
            map_len,
            skip,
            len,
            slot,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        // Safety: the mapping covers skip + len bytes and lives as long as
        // self; pages the file lost read as zeros (the handler below).
        unsafe { std::slice::from_raw_parts((self.ptr as *const u8).add(self.skip), self.len) }
    }

    /// Drops the pages wholly inside `range` (of `bytes()`) from harden's
    /// resident set: they stay in the page cache, and a later read maps them
    /// again. Without it a copy's RSS grows to the size of its layer.
    pub fn release(&self, range: std::ops::Range<usize>) {
        let from = (self.skip + range.start).next_multiple_of(PAGE);
        let to = (self.skip + range.end.min(self.len)) / PAGE * PAGE;
        if from < to {
            // Safety: pages of our own read-only shared file mapping; what
            // they read afterwards is the file's, as before.
            unsafe { libc::madvise(self.ptr.add(from), to - from, libc::MADV_DONTNEED) };
        }
    }

    /// Whether the file shrank under the mapping (some bytes read as zeros).
    pub fn shrank(&self) -> bool {
        self.slot.shrank.load(Ordering::Acquire)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        self.slot.end.store(0, Ordering::Relaxed);
        self.slot.start.store(0, Ordering::Relaxed);
        // Safety: our own mapping, no longer borrowed (bytes() borrows self).
        unsafe { libc::munmap(self.ptr, self.map_len) };
        self.slot.busy.store(false, Ordering::Release);
    }
}

fn install() {
    PREVIOUS.get_or_init(|| {
        // Safety: sigaction with a handler that only uses atomics, mmap and
        // sigaction, and with storage for the previous action.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            (libc::sigaction(libc::SIGBUS, &action, &mut previous) == 0).then_some(previous)
        }
    });
}

extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Safety: the kernel hands a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &MAPPED {
        let end = slot.end.load(Ordering::Acquire);
        if slot.busy.load(Ordering::Acquire)
            && (slot.start.load(Ordering::Relaxed)..end).contains(&addr)
        {
            let page = addr - addr % PAGE;
            // Safety: zero pages over the rest of our own mapping (the
            // faulting access is then retried and reads zeros). mmap is a
            // bare system call, safe in a signal handler.
            let zeros = unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    end - page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if zeros != libc::MAP_FAILED {
                slot.shrank.store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not ours (or no zero pages to be had): the previous handler takes the
    // fault when the access is retried.
    let previous = PREVIOUS.get().copied().flatten();
    // Safety: restores an action the kernel gave us, or the default.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGBUS, &previous.unwrap_or(dfl), std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_truncated_under_its_mapping_reads_as_zeros_and_says_so() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7u8; 5 * PAGE]).unwrap();
        let m = Mapping::new(&f, 100, (4 * PAGE) as u64).unwrap();
        assert_eq!(m.bytes()[2 * PAGE], 7);
        assert!(!m.shrank());
        f.set_len(PAGE as u64).unwrap();
        let bytes = m.bytes();
        assert_eq!(bytes[0], 7, "the page the file still has");
        assert_eq!(bytes[2 * PAGE], 0, "a page the file lost");
        assert!(bytes[PAGE..].iter().all(|&b| b == 0));
        assert!(m.shrank());
        drop(m);
        let again = Mapping::new(&f, 0, PAGE as u64).unwrap();
        assert!(
            !again.shrank(),
            "a slot's mark does not outlive its mapping"
        );
    }
}
