//! Before the step-down acts as root: `/`, its own file and every directory
//! on the way to it must be root's and writable by no one else. Otherwise a
//! user of an earlier start could have put another program there (moved
//! /.harden away and made a new one, say), which the next start, or the next
//! health check, would run as root with the container's capabilities.

use crate::files::Static;
use crate::report::{self, error_with, Vals, NO};
use crate::resolve::{self, CROSS};
use crate::sys::{self, Errno, Stat, AT_FDCWD, AT_SYMLINK_NOFOLLOW, ELOOP};
use core::ffi::CStr;

/// The step-down's path as /proc/self/exe gives it, when the kernel's
/// AT_EXECFN will not do (relative, or through a symbolic link).
static EXE: Static<[u8; 4096]> = Static::new([0; 4096]);

/// `execfn`: the path the process was exec'd by (the auxiliary vector's
/// AT_EXECFN).
pub fn check(execfn: Option<&CStr>) -> report::Result<()> {
    let root = resolve::root().map_err(|e| fail_at(b"/", e))?;
    let st = sys::fstat(&root).map_err(|e| fail_at(b"/", e))?;
    trusted(b"/", &st, false)?;
    match execfn.map(CStr::to_bytes) {
        Some(path) if path.first() == Some(&b'/') => match walk(path) {
            Err(Walked::Link) => walk(exe()?),
            r => r,
        },
        _ => walk(exe()?),
    }
    .map_err(|w| match w {
        Walked::Failed(f) => f,
        Walked::Link => report::error(
            b"refusing to run as root: a symbolic link on the way to the step-down's file",
        ),
    })
}

enum Walked {
    /// A symbolic link on the way: look again where it leads.
    Link,
    Failed(report::Failed),
}

impl From<report::Failed> for Walked {
    fn from(f: report::Failed) -> Self {
        Walked::Failed(f)
    }
}

/// Checks every directory of `path` and the file itself.
fn walk(path: &[u8]) -> Result<(), Walked> {
    let fail = |at: &[u8], e: Errno| match e {
        ELOOP => Walked::Link,
        e => Walked::Failed(fail_at(at, e)),
    };
    let n = resolve::components(path).count();
    let mut dir = resolve::root().map_err(|e| fail(b"/", e))?;
    for (i, c) in resolve::components(path).enumerate() {
        let c = c.map_err(|e| fail(path, e))?;
        let upto = &path[..c.as_ptr() as usize - path.as_ptr() as usize + c.len()];
        let mut name = resolve::component(c).map_err(|e| fail(upto, e))?;
        let name = resolve::name(&mut name);
        if i + 1 == n {
            let st = sys::statx(dir.0, name, AT_SYMLINK_NOFOLLOW).map_err(|e| fail(path, e))?;
            if st.is_symlink() {
                return Err(Walked::Link);
            }
            return Ok(trusted(path, &st, false)?);
        }
        dir = resolve::step(&dir, name, CROSS).map_err(|e| fail(upto, e))?;
        let st = sys::fstat(&dir).map_err(|e| fail(upto, e))?;
        // The file's own directory must be closed to others; a sticky one
        // further up (/tmp) lets no one replace what is root's in it.
        trusted(upto, &st, i + 2 < n)?;
    }
    Err(fail(path, sys::EINVAL))
}

/// Refuses `path` unless it is root's and no one else may write it (with
/// `sticky_ok`, a sticky directory may be).
fn trusted(path: &[u8], st: &Stat, sticky_ok: bool) -> report::Result<()> {
    let v = Vals { q: path, ..NO };
    if st.uid != 0 {
        return Err(error_with(
            b"refusing to run as root: %q is not owned by root",
            v,
        ));
    }
    if st.mode & 0o022 != 0 && !(sticky_ok && st.mode & 0o1000 != 0) {
        return Err(error_with(
            b"refusing to run as root: %q is writable by others than root",
            v,
        ));
    }
    Ok(())
}

fn fail_at(path: &[u8], e: Errno) -> report::Failed {
    error_with(
        b"refusing to run as root: cannot check %q%e",
        Vals {
            q: path,
            e: Some(e),
            ..NO
        },
    )
}

/// readlink /proc/self/exe.
fn exe() -> report::Result<&'static [u8]> {
    // Safety: taken once (check walks it at most once).
    let buf = unsafe { EXE.take() };
    match sys::readlinkat(AT_FDCWD, c"/proc/self/exe", &mut buf[..]) {
        Ok(n) if n < buf.len() && buf[0] == b'/' => Ok(&buf[..n]),
        Ok(_) => Err(fail_at(b"/proc/self/exe", sys::ENAMETOOLONG)),
        Err(e) => Err(fail_at(b"/proc/self/exe", e)),
    }
}
