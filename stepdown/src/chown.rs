//! `--chown PATH`: give a data directory to the target user at start, as the
//! postgres and redis entrypoints do with `find DIR \! -user U -exec chown`:
//! only entries with another owner are changed (a recursive chown would copy
//! every file up in overlayfs), symlinks are never followed (the link itself
//! is changed), and directories on another mount are not entered.

use crate::files;
use crate::sys::{self, Errno, Fd, Stat, AT_FDCWD, AT_SYMLINK_NOFOLLOW, ENOENT};
use core::ffi::CStr;

/// Deepest directory level entered below PATH: each level holds a 4 KiB
/// getdents buffer and a descriptor on the stack.
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Default)]
pub struct Outcome {
    pub changed: u32,
    pub failed: u32,
    pub first_error: Option<Errno>,
    pub too_deep: bool,
    pub symlink: bool,
}

impl Outcome {
    fn fail(&mut self, e: Errno) {
        self.failed += 1;
        self.first_error.get_or_insert(e);
    }
}

struct Walk {
    uid: u32,
    gid: u32,
    root: Stat,
    out: Outcome,
}

/// Makes PATH (created when missing) and everything below it on the same
/// mount owned by uid:gid.
pub fn chown_tree(path: &CStr, uid: u32, gid: u32) -> Outcome {
    let mut out = Outcome::default();
    let root = match files::lstat(path) {
        Err(ENOENT) => match files::mkdir_all(path.to_bytes()).and_then(|()| files::lstat(path)) {
            Ok(st) => st,
            Err(e) => {
                out.fail(e);
                return out;
            }
        },
        Err(e) => {
            out.fail(e);
            return out;
        }
        Ok(st) => st,
    };
    if root.is_symlink() {
        out.symlink = true;
        return out;
    }
    let mut walk = Walk {
        uid,
        gid,
        root,
        out,
    };
    walk.fix(AT_FDCWD, path, (walk.root.uid, walk.root.gid));
    if walk.root.is_dir() {
        match sys::openat(AT_FDCWD, path, DIR_FLAGS, 0) {
            Ok(dir) => walk.dir(&dir, 0),
            Err(e) => walk.out.fail(e),
        }
    }
    walk.out
}

const DIR_FLAGS: usize = sys::O_RDONLY | sys::O_DIRECTORY | sys::O_NOFOLLOW;

impl Walk {
    fn fix(&mut self, dir: i32, name: &CStr, owner: (u32, u32)) {
        if owner == (self.uid, self.gid) {
            return;
        }
        match sys::fchownat(dir, name, self.uid, self.gid, AT_SYMLINK_NOFOLLOW) {
            Ok(()) => self.out.changed += 1,
            Err(e) => self.out.fail(e),
        }
    }

    fn same_mount(&self, st: &Stat) -> bool {
        st.mount == self.root.mount
    }

    fn dir(&mut self, dir: &Fd, depth: usize) {
        let mut buf = [0u8; 4096];
        loop {
            let n = match sys::getdents64(dir, &mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => return self.out.fail(e),
            };
            let mut at = 0;
            while at < n {
                // struct linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
                let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
                let record = &buf[at + 19..at + reclen];
                at += reclen;
                let Ok(name) = CStr::from_bytes_until_nul(record) else {
                    continue;
                };
                if name.to_bytes() == b"." || name.to_bytes() == b".." {
                    continue;
                }
                let st = match sys::statx(dir.0, name, AT_SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(e) => {
                        self.out.fail(e);
                        continue;
                    }
                };
                self.fix(dir.0, name, (st.uid, st.gid));
                if !st.is_dir() || !self.same_mount(&st) {
                    continue;
                }
                if depth + 1 >= MAX_DEPTH {
                    self.out.too_deep = true;
                    continue;
                }
                match sys::openat(dir.0, name, DIR_FLAGS, 0) {
                    Ok(sub) => self.dir(&sub, depth + 1),
                    Err(e) => self.out.fail(e),
                }
            }
        }
    }
}
