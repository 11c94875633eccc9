//! `--chown PATH`: give a data directory to the target user at start, as the
//! postgres and redis entrypoints do with `find DIR \! -user U -exec chown`:
//! only entries with another owner are changed (a recursive chown would copy
//! every file up in overlayfs). PATH is reached without a symbolic link on
//! the way (it may be a volume: a mount itself); below it, symbolic links are
//! never followed (the link itself is changed), mounts are neither changed
//! nor entered, and a file with more than one hard link is left alone (its
//! inode may be another file's too, /etc/shadow's say).

use crate::files::Static;
use crate::resolve::{self, CREATE, CROSS};
use crate::sys::{self, Errno, Fd, Stat, AT_SYMLINK_NOFOLLOW, ELOOP, ENOENT, O_NOFOLLOW, O_PATH};
use core::ffi::CStr;

/// Deepest directory level entered below PATH.
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Default)]
pub struct Outcome {
    pub changed: u32,
    pub failed: u32,
    pub first_error: Option<Errno>,
    pub too_deep: bool,
    pub symlink: bool,
    /// Files left alone for their hard links.
    pub linked: u32,
}

impl Outcome {
    fn fail(&mut self, e: Errno) {
        self.failed += 1;
        self.first_error.get_or_insert(e);
    }
}

/// One open directory of the walk and what is left of its last getdents.
struct Level {
    /// None once the directory is done.
    fd: Option<Fd>,
    buf: [u8; 4096],
    len: usize,
    at: usize,
}

/// The walk's levels, in .bss rather than on the stack: 128 levels of 4 KiB
/// would need more stack than a container may have (a 128 KiB limit), and
/// only the levels a tree uses cost pages.
static LEVELS: Static<[Level; MAX_DEPTH]> = Static::new(
    [const {
        Level {
            fd: None,
            buf: [0; 4096],
            len: 0,
            at: 0,
        }
    }; MAX_DEPTH],
);

struct Walk {
    uid: u32,
    gid: u32,
    mount: ([u32; 2], u64),
    out: Outcome,
}

/// What a path is given to the user for.
#[derive(Clone, Copy, PartialEq)]
pub enum Why {
    /// `--chown`: the user asked; PATH is made when missing and may be a
    /// mount (a volume).
    Asked,
    /// `--writable`: harden inferred it from the image. Only a directory
    /// that is there, reached without another mount on the way, changes;
    /// a mount only when it is an empty directory of root's (a volume the
    /// engine just made): a host directory mounted there is never touched.
    Inferred,
}

/// Makes PATH and everything below it on the same mount owned by uid:gid.
/// Called at most once per path, one at a time (the levels are shared).
pub fn chown_tree(path: &CStr, uid: u32, gid: u32, why: Why) -> Outcome {
    let mut walk = Walk {
        uid,
        gid,
        mount: ([0; 2], 0),
        out: Outcome::default(),
    };
    let opened = match why {
        Why::Asked => open_root(path),
        Why::Inferred => open_inferred(path),
    };
    match opened {
        Ok(None) => {}
        Ok(Some((fd, st))) => {
            walk.mount = st.mount;
            walk.fix(&fd, &st);
            if st.is_dir() {
                match sys::openat(fd.0, c".", DIR_FLAGS, 0) {
                    // Safety: the only user of LEVELS, and chown_tree calls never overlap.
                    Ok(dir) => walk.tree(dir, unsafe { LEVELS.take() }),
                    Err(e) => walk.out.fail(e),
                }
            }
        }
        Err(ELOOP) => walk.out.symlink = true,
        Err(e) => walk.out.fail(e),
    }
    walk.out
}

/// PATH as an O_PATH descriptor and what it is (ELOOP for a symbolic link).
fn open_root(path: &CStr) -> sys::Result<Option<(Fd, Stat)>> {
    let (dir, mut name) = resolve::parent(path.to_bytes(), CREATE | CROSS)?;
    let name = resolve::name(&mut name);
    if let Err(ENOENT) = sys::statx(dir.0, name, AT_SYMLINK_NOFOLLOW) {
        resolve::step(&dir, name, CREATE | CROSS)?;
    }
    let fd = sys::openat(dir.0, name, O_PATH | O_NOFOLLOW, 0)?;
    let st = sys::fstat(&fd)?;
    if st.is_symlink() {
        return Err(ELOOP);
    }
    Ok(Some((fd, st)))
}

/// An inferred PATH (see `Why::Inferred`); None when it is not one to change:
/// missing, not a directory, a symbolic link or another mount on the way, a
/// mount that holds something or is not root's.
fn open_inferred(path: &CStr) -> sys::Result<Option<(Fd, Stat)>> {
    let (dir, mut name) = match resolve::parent(path.to_bytes(), 0) {
        Ok(found) => found,
        Err(ENOENT | ELOOP | sys::EXDEV | sys::ENOTDIR) => return Ok(None),
        Err(e) => return Err(e),
    };
    let name = resolve::name(&mut name);
    let fd = match sys::openat(dir.0, name, O_PATH | O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let st = sys::fstat(&fd)?;
    if !st.is_dir() {
        return Ok(None);
    }
    if st.mount != sys::fstat(&dir)?.mount {
        let fresh = (st.uid, st.gid) == (0, 0) && empty(&fd)?;
        return Ok(fresh.then_some((fd, st)));
    }
    Ok(Some((fd, st)))
}

/// Does the directory `fd` (O_PATH) hold nothing but `.` and `..`?
fn empty(fd: &Fd) -> sys::Result<bool> {
    let dir = sys::openat(fd.0, c".", DIR_FLAGS, 0)?;
    let mut buf = [0u8; 512];
    loop {
        let n = sys::getdents64(&dir, &mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        let mut at = 0;
        while at < n {
            let (reclen, name) = dirent(&buf[at..n]);
            if !matches!(name.to_bytes(), b"." | b"..") {
                return Ok(false);
            }
            at += reclen;
        }
    }
}

/// The length and name of the struct linux_dirent64 (ino u64, off i64,
/// reclen u16, type u8, name) at the start of `records`, as getdents64 wrote
/// them; an empty name for a record that is not whole.
fn dirent(records: &[u8]) -> (usize, &CStr) {
    let reclen = match records.get(16..18) {
        Some(r) => usize::from(u16::from_ne_bytes([r[0], r[1]])).max(1),
        None => records.len().max(1),
    };
    let name = records
        .get(19..reclen)
        .and_then(|n| CStr::from_bytes_until_nul(n).ok())
        .unwrap_or(c"");
    (reclen, name)
}

const DIR_FLAGS: usize = sys::O_RDONLY | sys::O_DIRECTORY | O_NOFOLLOW;

impl Walk {
    /// Changes the owner of `fd` (an O_PATH descriptor, described by `st`)
    /// when it is another's: what was checked is the inode that changes.
    fn fix(&mut self, fd: &Fd, st: &Stat) {
        if (st.uid, st.gid) == (self.uid, self.gid) {
            return;
        }
        if !st.is_dir() && st.nlink > 1 {
            self.out.linked += 1;
            return;
        }
        match sys::fchown(fd, self.uid, self.gid) {
            Ok(()) => self.out.changed += 1,
            Err(e) => self.out.fail(e),
        }
    }

    /// `name` in `dir`: changed unless it is a mount; its descriptor when it
    /// is a directory to enter.
    fn entry(&mut self, dir: i32, name: &CStr) -> sys::Result<Option<Fd>> {
        let st = sys::statx(dir, name, AT_SYMLINK_NOFOLLOW)?;
        if st.mount != self.mount {
            return Ok(None);
        }
        let owned = (st.uid, st.gid) == (self.uid, self.gid);
        if !owned {
            let fd = sys::openat(dir, name, O_PATH | O_NOFOLLOW, 0)?;
            let st = sys::fstat(&fd)?;
            if st.mount != self.mount {
                return Ok(None);
            }
            self.fix(&fd, &st);
            if !st.is_dir() {
                return Ok(None);
            }
        } else if !st.is_dir() {
            return Ok(None);
        }
        sys::openat(dir, name, DIR_FLAGS, 0).map(Some)
    }

    /// Every entry below the open directory `top`, depth first, without
    /// recursion.
    fn tree(&mut self, top: Fd, levels: &mut [Level; MAX_DEPTH]) {
        let mut depth = 0;
        levels[0].open(top);
        loop {
            let level = &mut levels[depth];
            let Some(dir) = &level.fd else { return };
            if level.at == level.len {
                match sys::getdents64(dir, &mut level.buf) {
                    Ok(n) if n > 0 => (level.len, level.at) = (n, 0),
                    r => {
                        if let Err(e) = r {
                            self.out.fail(e);
                        }
                        level.fd = None;
                        if depth == 0 {
                            return;
                        }
                        depth -= 1;
                    }
                }
                continue;
            }
            let (reclen, name) = dirent(&level.buf[level.at..level.len]);
            level.at += reclen;
            if matches!(name.to_bytes(), b"" | b"." | b"..") {
                continue;
            }
            match self.entry(dir.0, name) {
                Ok(None) => {}
                Ok(Some(_)) if depth + 1 >= MAX_DEPTH => self.out.too_deep = true,
                Ok(Some(sub)) => {
                    depth += 1;
                    levels[depth].open(sub);
                }
                Err(e) => self.out.fail(e),
            }
        }
    }
}

impl Level {
    fn open(&mut self, dir: Fd) {
        (self.fd, self.len, self.at) = (Some(dir), 0, 0);
    }
}
