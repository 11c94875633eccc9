//! The few files the step-down touches as root: /etc/passwd and /etc/group
//! (read into fixed buffers, replaced atomically) and HOME.

use crate::accounts::PathText;
use crate::report::{self, Vals, NO};
use crate::sys::{self, Errno, Fd, Stat, AT_FDCWD, AT_SYMLINK_NOFOLLOW, EEXIST, EINTR, ENOENT};
use crate::text::Text;
use core::cell::UnsafeCell;
use core::ffi::CStr;

/// Largest /etc/passwd or /etc/group read; past it the step-down refuses to
/// guess (it would have to rewrite a file it has not seen whole).
pub const MAX_ACCOUNT_FILE: usize = 1 << 20;

/// A buffer in .bss instead of a heap; each is handed out once.
pub struct Static<T>(UnsafeCell<T>);
// Safety: the step-down is single-threaded, and `take` is called once per buffer.
unsafe impl<T> Sync for Static<T> {}

impl<T> Static<T> {
    pub const fn new(v: T) -> Self {
        Static(UnsafeCell::new(v))
    }
    /// # Safety
    /// At most once per buffer.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn take(&'static self) -> &'static mut T {
        &mut *self.0.get()
    }
}

/// The whole file in `buf`; None when it does not exist.
pub fn read_bounded(path: &CStr, buf: &'static mut [u8]) -> report::Result<Option<&'static [u8]>> {
    let fail = |e| {
        report::error_with(
            b"cannot read %s%e",
            Vals {
                s: path.to_bytes(),
                e: Some(e),
                ..NO
            },
        )
    };
    let fd = match sys::openat(AT_FDCWD, path, sys::O_RDONLY, 0) {
        Ok(fd) => fd,
        Err(ENOENT) => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    let mut len = 0;
    loop {
        if len == buf.len() {
            return match sys::read(&fd, &mut [0u8; 1]) {
                Ok(0) => Ok(Some(&buf[..len])),
                _ => Err(report::error_with(
                    b"%s is larger than %n bytes",
                    Vals {
                        s: path.to_bytes(),
                        n: buf.len() as u32,
                        ..NO
                    },
                )),
            };
        }
        match sys::read(&fd, &mut buf[len..]) {
            Ok(0) => return Ok(Some(&buf[..len])),
            Ok(n) => len += n,
            Err(EINTR) => {}
            Err(e) => return Err(fail(e)),
        }
    }
}

/// Replaces `path` (in /etc) by `pieces` atomically: temp file, fsync,
/// rename. Keeps mode and owner and adds read bits (podman creates 0600 files).
/// A symlink is left alone (ELOOP).
pub fn replace(path: &CStr, pieces: &[&[u8]]) -> sys::Result<()> {
    let (mode, owner) = match sys::statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.is_symlink() => return Err(sys::ELOOP),
        Ok(st) => ((st.mode & 0o7777) as u32 | 0o444, Some((st.uid, st.gid))),
        Err(ENOENT) => {
            mkdir_all(b"/etc")?;
            (0o644, None)
        }
        Err(e) => return Err(e),
    };
    let name = path.to_bytes().rsplit(|b| *b == b'/').next().unwrap_or(b"");
    let mut tmp = Text::<80>::new(); // "/etc/.passwd.harden-PID"
    tmp.push(b"/etc/.");
    tmp.push(name);
    tmp.push(b".harden-");
    tmp.push_num(sys::pid());
    let tmp = tmp.c_str().ok_or(sys::ENAMETOOLONG)?;
    let fd = sys::openat(
        AT_FDCWD,
        tmp,
        sys::O_WRONLY | sys::O_CREAT | sys::O_EXCL | sys::O_NOFOLLOW,
        mode,
    )?;
    let result = write_new(&fd, pieces, mode, owner).and_then(|()| sys::rename(tmp, path));
    if result.is_err() {
        let _ = sys::unlink(tmp);
    }
    result
}

fn write_new(fd: &Fd, pieces: &[&[u8]], mode: u32, owner: Option<(u32, u32)>) -> sys::Result<()> {
    for piece in pieces {
        sys::write_all(fd.0, piece)?;
    }
    sys::fchmod(fd, mode)?;
    if let Some((uid, gid)) = owner {
        sys::fchown(fd, uid, gid)?;
    }
    sys::fsync(fd)
}

/// mkdir -p with mode 0755.
pub fn mkdir_all(path: &[u8]) -> sys::Result<()> {
    let mkdir = |p: &[u8]| {
        let mut t = PathText::new();
        t.push(p);
        match sys::mkdir(t.c_str().ok_or(sys::ENAMETOOLONG)?, 0o755) {
            Ok(()) | Err(EEXIST) => Ok(()),
            Err(e) => Err(e),
        }
    };
    for (i, b) in path.iter().enumerate().skip(1) {
        if *b == b'/' {
            mkdir(&path[..i])?;
        }
    }
    mkdir(path)
}

/// lstat(2).
pub fn lstat(path: &CStr) -> sys::Result<Stat> {
    sys::statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW)
}

/// Creates HOME when missing and gives it to the user (never recursively).
/// A root-owned HOME is taken over too: a bind mount below HOME makes the
/// runtime create HOME as root.
#[inline(never)] // its 4 KiB path stays off the frames of the other start paths
pub fn prepare_home(home: &[u8], uid: u32, gid: u32) -> sys::Result<()> {
    if home == b"/" || home.starts_with(b"/nonexistent") || home.starts_with(b"/proc") {
        return Ok(());
    }
    let mut path = PathText::new();
    path.push(home);
    let path = path.c_str().ok_or(sys::ENAMETOOLONG)?;
    match lstat(path) {
        Ok(st) if st.is_dir() && st.uid == 0 => {}
        Ok(_) => return Ok(()),
        Err(_) => mkdir_all(home)?,
    }
    sys::fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW)
}

/// Whether a failed write is worth a warning: a read-only root filesystem
/// is a supported setup.
pub fn worth_a_warning(e: Errno) -> bool {
    e != sys::EROFS
}
