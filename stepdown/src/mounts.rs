//! Mounts at or below a directory (`--mounted-home`: the HOME a root image
//! ran with, where its users mount their files: `-v ~/.aws:/root/.aws`).
//! Candidates come from /proc/self/mountinfo; each is confirmed by the
//! kernel (its mount ID differs from its parent directory's), reached from
//! `/` without a symbolic link. So a file posing as mountinfo can name only
//! real mount points, and nothing here is written.

use crate::accounts;
use crate::resolve::{self, CROSS};
use crate::sys::{self, AT_SYMLINK_NOFOLLOW, EINTR, O_NOFOLLOW, O_NONBLOCK, O_RDONLY};
use crate::text::Text;

/// What `at_or_below` found.
#[derive(Debug, Default, PartialEq)]
pub struct Found {
    /// The owner of the first confirmed mount not owned by root.
    pub owner: Option<(u32, u32)>,
}

/// Longest mountinfo line looked at; a longer one (a mount point of
/// thousands of bytes) is skipped.
const LINE: usize = 4096;

/// The mounts at or below `dir` (normalised, absolute); None when there is
/// none, or mountinfo cannot be read (then nothing is inferred).
pub fn at_or_below(dir: &[u8]) -> Option<Found> {
    let fd = sys::openat(
        sys::AT_FDCWD,
        c"/proc/self/mountinfo",
        O_RDONLY | O_NOFOLLOW | O_NONBLOCK,
        0,
    )
    .ok()?;
    if !sys::fstat(&fd).ok()?.is_file() {
        return None;
    }
    let mut found: Option<Found> = None;
    let mut buf = [0u8; LINE];
    let (mut len, mut skipping) = (0, false);
    loop {
        let n = match sys::read(&fd, &mut buf[len..]) {
            Ok(n) => n,
            Err(EINTR) => continue,
            Err(_) => return None,
        };
        let end = len + n;
        let mut start = 0;
        while let Some(nl) = buf[start..end].iter().position(|b| *b == b'\n') {
            if !skipping {
                consider(&buf[start..start + nl], dir, &mut found);
            }
            skipping = false;
            start += nl + 1;
        }
        if n == 0 {
            if !skipping && start < end {
                consider(&buf[start..end], dir, &mut found);
            }
            return found;
        }
        buf.copy_within(start..end, 0);
        len = end - start;
        if len == LINE {
            // No newline in a whole buffer: drop the line's rest.
            (len, skipping) = (0, true);
        }
    }
}

/// Adds the mount of one mountinfo line to `found` when it is at or below
/// `dir` and the kernel confirms it.
fn consider(line: &[u8], dir: &[u8], found: &mut Option<Found>) {
    let mut point = Text::<LINE>::new();
    if !mount_point(line, &mut point) {
        return;
    }
    let point = point.as_bytes();
    let below = point
        .strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'/');
    if !below || !accounts::normalised(point) {
        return;
    }
    let Some((uid, gid)) = confirmed(point) else {
        return;
    };
    let found = found.get_or_insert_with(Found::default);
    if found.owner.is_none() && uid != 0 && uid <= accounts::MAX_ID && gid <= accounts::MAX_ID {
        found.owner = Some((uid, gid));
    }
}

/// The owner of `point` when it is a mount point: not a symbolic link,
/// reached without one, on a mount other than its parent directory's.
fn confirmed(point: &[u8]) -> Option<(u32, u32)> {
    let (parent, mut name) = resolve::parent(point, CROSS).ok()?;
    let st = sys::statx(parent.0, resolve::name(&mut name), AT_SYMLINK_NOFOLLOW).ok()?;
    let own = sys::fstat(&parent).ok()?;
    (!st.is_symlink() && st.mount != own.mount).then_some((st.uid, st.gid))
}

/// The mount point (fifth field) of a mountinfo line, with the kernel's
/// octal escapes (`\040` for a space) decoded; false for a line that has
/// none or a bad escape.
fn mount_point(line: &[u8], out: &mut Text<LINE>) -> bool {
    let Some(field) = line.split(|b| *b == b' ').nth(4) else {
        return false;
    };
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' {
            let digits = field.get(i + 1..i + 4).unwrap_or(b"");
            let mut value: u32 = 0;
            for d in digits {
                if !(b'0'..=b'7').contains(d) {
                    return false;
                }
                value = value * 8 + u32::from(d - b'0');
            }
            if digits.len() != 3 || value == 0 || value > 255 {
                return false;
            }
            out.push(&[value as u8]);
            i += 4;
        } else {
            out.push(&field[i..i + 1]);
            i += 1;
        }
    }
    out.c_str().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(line: &str) -> Option<Vec<u8>> {
        let mut out = Text::<LINE>::new();
        mount_point(line.as_bytes(), &mut out).then(|| out.as_bytes().to_vec())
    }

    #[test]
    fn the_fifth_field_is_the_mount_point_with_escapes_decoded() {
        let line = "612 590 0:52 / /root/.aws rw,relatime - tmpfs tmpfs rw";
        assert_eq!(point(line).unwrap(), b"/root/.aws");
        let spaced = r"36 35 98:0 /mnt1 /root/my\040dir\134x rw master:1 - ext3 /dev/root rw";
        assert_eq!(point(spaced).unwrap(), b"/root/my dir\\x");
        for bad in [
            "36 35 98:0 /mnt1",
            r"36 35 98:0 / /root/\04 rw - x y",
            r"36 35 98:0 / /root/\000 rw - x y",
            r"36 35 98:0 / /root/\400 rw - x y",
            r"36 35 98:0 / /root/\9aa rw - x y",
        ] {
            assert_eq!(point(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_confirmed_mounts_at_or_below_the_directory_count() {
        // The test process's own mounts: / is one (its parent is itself, so
        // it is never confirmed), a path that is no mount point is not.
        let mut found = None;
        consider(b"1 0 8:1 / / rw - ext4 /dev/sda1 rw", b"/", &mut found);
        assert_eq!(found, None);
        let tmp = std::env::temp_dir();
        let line = format!("1 0 8:1 / {} rw - ext4 /dev/sda1 rw", tmp.display());
        let mut found = None;
        consider(line.as_bytes(), b"/no-such-dir", &mut found);
        assert_eq!(found, None, "not below the directory");
        // /proc is a mount point wherever the tests run.
        let mut found = None;
        consider(b"22 1 0:5 / /proc rw - proc proc rw", b"/proc", &mut found);
        assert_eq!(found, Some(Found { owner: None }), "a mount of root's");
        let mut found = None;
        consider(
            b"22 1 0:5 / /procfs rw - proc proc rw",
            b"/proc",
            &mut found,
        );
        assert_eq!(
            found, None,
            "a sibling whose name starts the same is not below"
        );
    }
}
