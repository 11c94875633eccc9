//! The few files the step-down touches as root: /etc/passwd and /etc/group
//! (read into fixed buffers, replaced atomically) and HOME, each reached
//! through `resolve`, never through a symbolic link.

use crate::accounts;
use crate::report::{self, Vals, NO};
use crate::resolve::{self, CREATE, CROSS};
use crate::sys::{
    self, Errno, Fd, AT_SYMLINK_NOFOLLOW, EINTR, EINVAL, ELOOP, ENOENT, O_NOFOLLOW, O_NONBLOCK,
    O_RDONLY,
};
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

/// The whole of `/etc/NAME` in `buf`; None when it does not exist, or is a
/// symbolic link (never followed: warned). Anything but a regular file is an
/// error (a FIFO would block the start, a device could be opened).
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
    let opened = resolve::parent(path.to_bytes(), CROSS).and_then(|(dir, mut name)| {
        let name = resolve::name(&mut name);
        let is_file = |st: sys::Stat| {
            if st.is_file() {
                Ok(())
            } else if st.is_symlink() {
                Err(ELOOP)
            } else {
                Err(sys::EINVAL)
            }
        };
        is_file(sys::statx(dir.0, name, AT_SYMLINK_NOFOLLOW)?)?;
        let fd = sys::openat(dir.0, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0)?;
        is_file(sys::fstat(&fd)?)?;
        Ok(fd)
    });
    let fd = match opened {
        Ok(fd) => fd,
        Err(ENOENT) => return Ok(None),
        Err(ELOOP) => {
            symlink_left_alone(path);
            return Ok(None);
        }
        Err(EINVAL) => {
            return Err(report::error_with(
                b"%s is not a regular file",
                Vals {
                    s: path.to_bytes(),
                    ..NO
                },
            ))
        }
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

/// "PATH: a symbolic link on the way; not followed".
#[inline(never)]
pub fn symlink_left_alone(path: &CStr) {
    report::warn(
        b"%s: a symbolic link on the way; not followed",
        Vals {
            s: path.to_bytes(),
            ..NO
        },
    )
}

/// Replaces `/etc/NAME` by `pieces` atomically: temp file, fsync, rename,
/// all in the descriptor of /etc (made when missing; on the root
/// filesystem's mount, EXDEV otherwise). Keeps mode and owner and adds read
/// bits (podman creates 0600 files). A symbolic link is left alone (ELOOP).
pub fn replace(path: &CStr, pieces: &[&[u8]]) -> sys::Result<()> {
    let (etc, mut name) = resolve::parent(path.to_bytes(), CREATE)?;
    let name = resolve::name(&mut name);
    let (mode, owner) = match sys::statx(etc.0, name, AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.is_symlink() => return Err(ELOOP),
        Ok(st) => ((st.mode & 0o7777) as u32 | 0o444, Some((st.uid, st.gid))),
        Err(ENOENT) => (0o644, None),
        Err(e) => return Err(e),
    };
    let mut tmp = Text::<80>::new(); // ".passwd.harden-PID"
    tmp.push(b".");
    tmp.push(name.to_bytes());
    tmp.push(b".harden-");
    tmp.push_num(sys::pid());
    let tmp = tmp.c_str().ok_or(sys::ENAMETOOLONG)?;
    let fd = sys::openat(
        etc.0,
        tmp,
        sys::O_WRONLY | sys::O_CREAT | sys::O_EXCL | O_NOFOLLOW,
        mode,
    )?;
    let result = write_new(&fd, pieces, mode, owner).and_then(|()| sys::renameat(&etc, tmp, name));
    if result.is_err() {
        let _ = sys::unlinkat(&etc, tmp);
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

/// Creates HOME when missing and gives it to the user (never recursively),
/// when `accounts::home_preparable` allows it and every directory on the
/// way, HOME included, is on the root filesystem's mount and no symbolic
/// link (a bind-mounted HOME is used as it is: EXDEV). A root-owned HOME is
/// taken over too: a bind mount below HOME makes the runtime create HOME as
/// root.
pub fn prepare_home(home: &[u8], uid: u32, gid: u32) -> sys::Result<()> {
    if !accounts::home_preparable(home) {
        return Ok(());
    }
    let (dir, mut name) = resolve::parent(home, CREATE)?;
    let name = resolve::name(&mut name);
    match sys::statx(dir.0, name, AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.is_dir() && st.uid == 0 => {}
        Ok(st) if st.is_symlink() => return Err(ELOOP),
        Ok(_) => return Ok(()),
        Err(ENOENT) => {}
        Err(e) => return Err(e),
    }
    let home = resolve::step(&dir, name, CREATE)?;
    // Checked again on the directory itself, which is what is changed.
    if sys::fstat(&home)?.uid != 0 {
        return Ok(());
    }
    sys::fchown(&home, uid, gid)
}

/// Lets every user search directory `dir` (adds the x bits for group and
/// others; never r or w) when it is root's, on the root filesystem's mount
/// and reached without a symbolic link: a mount below a root image's HOME
/// (`/root`, mode 0700) is unreachable for the user otherwise. A bind-mounted
/// `dir` is the user's business (EXDEV), a symbolic link is left (ELOOP).
pub fn make_searchable(dir: &[u8]) -> sys::Result<()> {
    let (parent, mut name) = resolve::parent(dir, 0)?;
    let name = resolve::name(&mut name);
    let fd = sys::openat(parent.0, name, O_RDONLY | sys::O_DIRECTORY | O_NOFOLLOW, 0)?;
    let st = sys::fstat(&fd)?;
    if st.mount != sys::fstat(&parent)?.mount {
        return Err(sys::EXDEV);
    }
    let mode = u32::from(st.mode & 0o7777);
    if st.uid != 0 || mode & 0o011 == 0o011 {
        return Ok(());
    }
    sys::fchmod(&fd, mode | 0o011)
}

/// Whether a failed write is worth a warning: a read-only root filesystem
/// is a supported setup.
pub fn worth_a_warning(e: Errno) -> bool {
    e != sys::EROFS
}
