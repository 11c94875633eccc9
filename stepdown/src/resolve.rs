//! Paths the step-down touches as root, resolved one component at a time from
//! `/` and never through a symbolic link. The image's author chose every name
//! in them, and a process of the user may rename things while the step-down
//! runs (a health check starts it beside the running command): each step is
//! taken from the descriptor of the directory before it, so the directory
//! that was checked is the one that is used.

use crate::sys::{
    self, Fd, Result, AT_FDCWD, AT_SYMLINK_NOFOLLOW, EEXIST, EINVAL, ELOOP, ENOENT, ENOSYS,
    ENOTDIR, EPERM, EXDEV, O_DIRECTORY, O_NOFOLLOW, O_PATH,
};
use crate::text::Text;
use core::ffi::CStr;

/// May the walk enter another mount (a volume, a bind mount)? Without it,
/// every directory on the way is on the root filesystem's mount (EXDEV).
pub const CROSS: u8 = 1;
/// Are missing directories made on the way (mode 0755, root's)?
pub const CREATE: u8 = 2;

/// One component of a path, NUL-terminated (NAME_MAX is 255).
pub type Component = Text<256>;

/// `/`, as an O_PATH descriptor.
pub fn root() -> Result<Fd> {
    sys::openat(AT_FDCWD, c"/", O_PATH | O_DIRECTORY, 0)
}

/// The components of an absolute path: "" and "." are skipped, ".." is
/// refused (the walk only ever goes down).
pub fn components(path: &[u8]) -> impl Iterator<Item = Result<&[u8]>> {
    let absolute = path.first() == Some(&b'/');
    let relative = (!absolute).then_some(Err(EINVAL));
    relative.into_iter().chain(
        path.split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(|c| if c == b".." { Err(EINVAL) } else { Ok(c) }),
    )
}

/// `c` as a NUL-terminated name.
pub fn component(c: &[u8]) -> Result<Component> {
    let mut name = Component::of(c);
    name.c_str().ok_or(sys::ENAMETOOLONG)?;
    Ok(name)
}

/// The directory that holds the last component of `path` (absolute), and
/// that component. `/` itself has none (EINVAL).
pub fn parent(path: &[u8], how: u8) -> Result<(Fd, Component)> {
    let mut dir = root()?;
    let mut last: Option<&[u8]> = None;
    for c in components(path) {
        let c = c?;
        if let Some(prev) = last {
            dir = step(&dir, name(&mut component(prev)?), how)?;
        }
        last = Some(c);
    }
    Ok((dir, component(last.ok_or(EINVAL)?)?))
}

/// The C string of a `Component` made by `component` (which checked it).
pub fn name(c: &mut Component) -> &CStr {
    c.c_str().unwrap_or(c"")
}

/// Opens directory `name` in `dir` as an O_PATH descriptor: ELOOP when it is
/// a symbolic link, EXDEV when it is another mount (unless `how` has CROSS).
pub fn step(dir: &Fd, name: &CStr, how: u8) -> Result<Fd> {
    let resolve = sys::RESOLVE_NO_SYMLINKS
        | if how & CROSS == 0 {
            sys::RESOLVE_NO_XDEV
        } else {
            0
        };
    let opened = match sys::openat2(dir.0, name, O_PATH | O_DIRECTORY, resolve) {
        // Before Linux 5.6, or under a seccomp filter that predates openat2:
        // the same rules by hand.
        Err(ENOSYS | EPERM) => step_by_hand(dir, name, how),
        r => r,
    };
    match opened {
        Err(ENOENT) if how & CREATE != 0 => {
            match sys::mkdirat(dir, name, 0o755) {
                Ok(()) | Err(EEXIST) => {}
                Err(e) => return Err(e),
            }
            step(dir, name, how & !CREATE)
        }
        r => r,
    }
}

fn step_by_hand(dir: &Fd, name: &CStr, how: u8) -> Result<Fd> {
    // O_PATH | O_NOFOLLOW opens a link itself, which O_DIRECTORY then refuses.
    let fd = match sys::openat(dir.0, name, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0) {
        Err(ENOTDIR) if sys::statx(dir.0, name, AT_SYMLINK_NOFOLLOW)?.is_symlink() => {
            return Err(ELOOP)
        }
        r => r?,
    };
    if how & CROSS == 0 && sys::fstat(&fd)?.mount != sys::fstat(dir)?.mount {
        return Err(EXDEV);
    }
    Ok(fd)
}

/// Opens directory `path` (absolute) by `step`s from `/`.
#[cfg(test)]
pub fn dir(path: &[u8], how: u8) -> Result<Fd> {
    let (parent, mut last) = parent(path, how)?;
    step(&parent, name(&mut last), how)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("resolve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn b(p: &std::path::Path) -> Vec<u8> {
        p.to_str().unwrap().as_bytes().to_vec()
    }

    #[test]
    fn components_only_go_down() {
        fn all(p: &[u8]) -> Result<Vec<&[u8]>> {
            components(p).collect()
        }
        assert_eq!(all(b"//a/./b/"), Ok(vec![&b"a"[..], b"b"]));
        assert_eq!(all(b"/"), Ok(vec![]));
        assert_eq!(all(b"/a/../b"), Err(EINVAL));
        assert_eq!(all(b"a/b"), Err(EINVAL));
        assert_eq!(all(b""), Err(EINVAL));
    }

    #[test]
    fn symlinks_are_never_followed_with_or_without_openat2() {
        let d = tmp("links");
        std::fs::create_dir_all(d.join("real/sub")).unwrap();
        symlink(d.join("real"), d.join("link")).unwrap();
        symlink("real", d.join("rel")).unwrap();
        std::fs::write(d.join("file"), "x").unwrap();
        assert!(dir(&b(&d.join("real/sub")), CROSS).is_ok());
        for p in ["link/sub", "link", "rel/sub", "rel"] {
            assert_eq!(dir(&b(&d.join(p)), CROSS).err(), Some(ELOOP), "{p}");
        }
        assert_eq!(dir(&b(&d.join("file")), CROSS).err(), Some(ENOTDIR));
        assert_eq!(parent(&b(&d.join("link/sub")), CROSS).err(), Some(ELOOP));
        // The walk by hand, as on a kernel without openat2.
        let dirfd = dir(&b(&d), CROSS).unwrap();
        for (p, want) in [
            ("link", Some(ELOOP)),
            ("real", None),
            ("file", Some(ENOTDIR)),
        ] {
            let mut c = component(p.as_bytes()).unwrap();
            let got = step_by_hand(&dirfd, name(&mut c), CROSS).err();
            assert_eq!(got, want, "{p}");
        }
    }

    #[test]
    fn missing_directories_are_made_on_request() {
        let d = tmp("create");
        let p = b(&d.join("a/b/c"));
        assert_eq!(dir(&p, CROSS).err(), Some(ENOENT));
        assert!(dir(&p, CROSS | CREATE).is_ok());
        assert!(d.join("a/b/c").is_dir());
        // Not through a link, even to make it.
        symlink(d.join("a"), d.join("l")).unwrap();
        assert_eq!(dir(&b(&d.join("l/new")), CROSS | CREATE).err(), Some(ELOOP));
        assert!(!d.join("a/new").exists());
    }

    #[test]
    fn another_mount_is_refused_unless_crossing_is_allowed() {
        // /proc is another mount than / on every machine these tests run on.
        assert_eq!(dir(b"/proc/self", 0).err(), Some(EXDEV));
        assert!(dir(b"/proc/1", CROSS).is_ok());
        let root = root().unwrap();
        assert_eq!(step_by_hand(&root, c"proc", 0).err(), Some(EXDEV));
        assert!(step_by_hand(&root, c"proc", CROSS).is_ok());
    }
}
