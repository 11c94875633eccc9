//! Pure parsing and editing of /etc/passwd and /etc/group, and of numeric IDs.
//! No I/O and no heap (the step-down is no_std), so everything is unit-tested;
//! harden's static mode plans its accounts with the same code.

use crate::text::Text;

/// Largest UID/GID accepted: the kernel takes 32 bits, but many tools treat IDs
/// as signed, and Kubernetes caps runAsUser at 2^31-1.
pub const MAX_ID: u32 = 2_147_483_647;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    NotDecimal,
    TooLarge,
}

impl IdError {
    #[allow(dead_code)] // harden's messages; the step-down has its own templates
    pub fn text(self) -> &'static str {
        match self {
            IdError::NotDecimal => "is not a decimal ID",
            IdError::TooLarge => "is larger than 2147483647",
        }
    }
}

/// Parses a decimal ID: digits only, no sign, no spaces, at most `MAX_ID`.
pub fn parse_id(s: &[u8]) -> Result<u32, IdError> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(IdError::NotDecimal);
    }
    let mut n = 0u64;
    for &b in s {
        n = n * 10 + (b - b'0') as u64;
        if n > MAX_ID as u64 {
            return Err(IdError::TooLarge);
        }
    }
    Ok(n as u32)
}

pub fn is_decimal(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_digit)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User<'a> {
    pub name: &'a [u8],
    pub uid: u32,
    pub gid: u32,
    pub home: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group<'a> {
    pub name: &'a [u8],
    pub gid: u32,
    members: &'a [u8],
}

impl Group<'_> {
    pub fn has_member(&self, name: &[u8]) -> bool {
        !name.is_empty() && self.members.split(|b| *b == b',').any(|m| m == name)
    }
}

/// The first `K` colon-separated fields of an entry; None for comments,
/// empty names and short lines, which libc skips too.
fn fields<const K: usize>(line: &[u8]) -> Option<[&[u8]; K]> {
    let mut out = [&line[..0]; K];
    let mut it = line.split(|b| *b == b':');
    for f in out.iter_mut() {
        *f = it.next()?;
    }
    (!out[0].is_empty() && out[0][0] != b'#').then_some(out)
}

fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| *b == b'\n')
}

/// Entries of a passwd file; malformed lines and comments are skipped, as libc does.
pub fn users(passwd: &[u8]) -> impl Iterator<Item = User<'_>> {
    lines(passwd).filter_map(|line| {
        let [name, _, uid, gid, _, home, _] = fields::<7>(line)?;
        Some(User {
            name,
            uid: parse_id(uid).ok()?,
            gid: parse_id(gid).ok()?,
            home,
        })
    })
}

/// Entries of a group file; malformed lines are skipped.
pub fn groups(group: &[u8]) -> impl Iterator<Item = Group<'_>> {
    lines(group).filter_map(|line| {
        let [name, _, gid, members] = fields::<4>(line)?;
        Some(Group {
            name,
            gid: parse_id(gid).ok()?,
            members,
        })
    })
}

/// The passwd entry of `uid`, if any.
pub fn user_by_uid(passwd: &[u8], uid: u32) -> Option<User<'_>> {
    users(passwd).find(|u| u.uid == uid)
}

/// The groups that list `name` as a member.
pub fn member_of<'a>(group: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = Group<'a>> {
    groups(group).filter(move |g| g.has_member(name))
}

/// Longest user name accepted (useradd's limit).
pub const MAX_NAME: usize = 32;
/// Longest --home accepted.
pub const MAX_HOME: usize = 256;

/// Is `name` safe to write into a passwd/group line?
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name[0] != b'-'
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Is `home` safe to write into a passwd line?
pub fn valid_home(home: &[u8]) -> bool {
    home.first() == Some(&b'/')
        && home.len() <= MAX_HOME
        && !home.iter().any(|b| matches!(b, b':' | b'\n' | b'\0'))
}

/// May `--chown` give `path` to the user? Not `/` nor a kernel filesystem
/// (/proc, /sys, /dev) however spelled: `.` and empty components are skipped,
/// `..` is refused anywhere.
pub fn chown_allowed(path: &[u8]) -> bool {
    let mut top: &[u8] = b"";
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return false,
            _ if top.is_empty() => top = c,
            _ => {}
        }
    }
    !matches!(top, b"" | b"proc" | b"sys" | b"dev")
}

/// A user or group name: what a passwd file holds (LOGIN_NAME_MAX), or
/// MAX_NAME plus "-" and an ID.
pub type Name = Text<256>;
/// A path such as HOME (PATH_MAX).
pub type PathText = Text<4096>;
/// A passwd line harden writes: name, IDs, a home of at most PATH_MAX.
pub type Line = Text<4400>;

/// A name for a new entry: `wanted` unless another entry already uses it, then
/// `wanted-ID`, so that no name ever appears twice.
pub fn free_name(wanted: &[u8], id: u32, taken: impl Fn(&[u8]) -> bool) -> Name {
    let mut name = Name::of(wanted);
    if taken(wanted) {
        name.push(b"-");
        name.push_num(id);
    }
    name
}

/// What a file without entries starts with (scratch images have no /etc).
pub const DEFAULT_PASSWD: &[u8] = b"root:x:0:0:root:/root:/sbin/nologin\n";
pub const DEFAULT_GROUP: &[u8] = b"root:x:0:\n";

/// The new content of an account file as pieces: the old content (or the
/// default), a newline if it lacked one, the new line and its newline.
pub fn appended<'a>(old: Option<&'a [u8]>, default: &'a [u8], line: &'a [u8]) -> [&'a [u8]; 4] {
    let old = old.unwrap_or(default);
    let sep: &[u8] = if old.is_empty() || old.ends_with(b"\n") {
        b""
    } else {
        b"\n"
    };
    [old, sep, line, b"\n"]
}

/// What the account files need so that `uid`/`gid` exist: the name and HOME
/// to use and, where a line must be added, that line. 13 KiB: the step-down
/// fills one in place in .bss (`fill`), where only the bytes used cost pages.
pub struct AccountPlan {
    pub name: Name,
    pub home: PathText,
    /// Empty when the UID has an entry.
    passwd_line: Line,
    /// Empty when the GID has an entry.
    group_line: Line,
}

impl Default for AccountPlan {
    fn default() -> Self {
        Self::new()
    }
}

impl AccountPlan {
    pub const fn new() -> Self {
        AccountPlan {
            name: Name::new(),
            home: PathText::new(),
            passwd_line: Line::new(),
            group_line: Line::new(),
        }
    }

    /// The passwd line to append, when the UID has no entry.
    pub fn passwd_line(&self) -> Option<&[u8]> {
        Some(self.passwd_line.as_bytes()).filter(|l| !l.is_empty())
    }

    /// The group line to append, when the GID has no entry.
    pub fn group_line(&self) -> Option<&[u8]> {
        Some(self.group_line.as_bytes()).filter(|l| !l.is_empty())
    }

    /// Plans into a fresh (`new`) plan: in place, so that the step-down can
    /// keep it in .bss.
    pub fn fill(
        &mut self,
        passwd: Option<&[u8]>,
        group: Option<&[u8]>,
        uid: u32,
        gid: u32,
        wanted: &[u8],
        home: Option<&[u8]>,
    ) {
        let passwd = passwd.unwrap_or(DEFAULT_PASSWD);
        let group = group.unwrap_or(DEFAULT_GROUP);
        match user_by_uid(passwd, uid) {
            Some(u) => {
                self.name.push(u.name);
                self.home.push(home.unwrap_or(u.home));
            }
            None => {
                self.name = free_name(wanted, uid, |n| users(passwd).any(|u| u.name == n));
                match home {
                    Some(h) => self.home.push(h),
                    None => {
                        self.home.push(b"/home/");
                        self.home.push(self.name.as_bytes());
                    }
                }
                let line = &mut self.passwd_line;
                line.push(self.name.as_bytes());
                line.push(b":x:");
                line.push_num(uid);
                line.push(b":");
                line.push_num(gid);
                line.push(b"::");
                line.push(self.home.as_bytes());
                line.push(b":/sbin/nologin");
            }
        }
        if !groups(group).any(|g| g.gid == gid) {
            let gname = free_name(self.name.as_bytes(), gid, |n| {
                groups(group).any(|g| g.name == n)
            });
            let line = &mut self.group_line;
            line.push(gname.as_bytes());
            line.push(b":x:");
            line.push_num(gid);
            line.push(b":");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\napp:x:1000:1000::/home/app:/sbin/nologin";
    const GROUP: &[u8] = b"root:x:0:\nwheel:x:10:root,app\napp:x:1000:\n";

    #[test]
    fn ids_are_strict_decimal() {
        assert_eq!(parse_id(b"1000"), Ok(1000));
        assert_eq!(parse_id(b"2147483647"), Ok(MAX_ID));
        assert_eq!(parse_id(b"0"), Ok(0));
        assert_eq!(parse_id(b"2147483648"), Err(IdError::TooLarge));
        assert_eq!(parse_id(&[b'9'; 5000]), Err(IdError::TooLarge));
        for bad in [
            &b""[..],
            b"-1",
            b"+5",
            b" 1",
            b"1 ",
            b"0x10",
            b"1000; rm -rf /",
            b"1000\n",
        ] {
            assert_eq!(parse_id(bad), Err(IdError::NotDecimal), "{bad:?}");
        }
    }

    #[test]
    fn parses_passwd_skipping_junk() {
        let all: Vec<User> = users(PASSWD).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(
            all[2],
            User {
                name: b"app",
                uid: 1000,
                gid: 1000,
                home: b"/home/app"
            }
        );
    }

    #[test]
    fn parses_group_members() {
        let wheel = groups(GROUP).find(|g| g.gid == 10).unwrap();
        assert!(wheel.has_member(b"root") && wheel.has_member(b"app"));
        assert!(!wheel.has_member(b"ap"));
        let app = groups(GROUP).find(|g| g.name == b"app").unwrap();
        assert!(!app.has_member(b"app") && !app.has_member(b""));
    }

    #[test]
    fn new_names_never_collide() {
        let taken = |n: &[u8]| users(PASSWD).any(|u| u.name == n);
        assert_eq!(free_name(b"svc", 1234, taken).as_bytes(), b"svc");
        assert_eq!(free_name(b"app", 1234, taken).as_bytes(), b"app-1234");
    }

    #[test]
    fn append_keeps_lines_whole() {
        let cat = |old: Option<&[u8]>| appended(old, b"root\n", b"b").concat();
        assert_eq!(cat(Some(b"a\n")), b"a\nb\n");
        assert_eq!(cat(Some(b"a")), b"a\nb\n");
        assert_eq!(cat(Some(b"")), b"b\n");
        assert_eq!(cat(None), b"root\nb\n");
    }

    #[test]
    fn names_and_homes_are_checked() {
        assert!(valid_name(b"aws"));
        assert!(valid_name(b"www-data"));
        for bad in [&b""[..], b"-x", b"a:b", b"a\nb", b"a b", &[b'x'; 33]] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_home(b"/home/aws"));
        assert!(!valid_home(b"home"));
        assert!(!valid_home(b"/a:b"));
        for p in ["/data", "/var/lib/pg/", "/./srv", "/procdata", "/y../..z"] {
            assert!(chown_allowed(p.as_bytes()), "{p}");
        }
        for p in [
            "/",
            "//",
            "/./",
            "/proc",
            "/sys/fs",
            "//dev/",
            "/./proc",
            "/..",
            "/a/../proc",
        ] {
            assert!(!chown_allowed(p.as_bytes()), "{p}");
        }
    }

    const PLAN_PASSWD: &[u8] =
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const PLAN_GROUP: &[u8] = b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n";

    #[test]
    fn plan_adds_missing_user_and_group_once() {
        let mut p = AccountPlan::new();
        p.fill(
            Some(PLAN_PASSWD),
            Some(PLAN_GROUP),
            1000,
            1000,
            b"app",
            None,
        );
        assert_eq!(
            (p.name.as_bytes(), p.home.as_bytes()),
            (&b"app"[..], &b"/home/app"[..])
        );
        assert_eq!((p.passwd_line(), p.group_line()), (None, None));

        let mut p = AccountPlan::new();
        p.fill(
            Some(PLAN_PASSWD),
            Some(PLAN_GROUP),
            4321,
            4321,
            b"aws",
            Some(b"/home/aws"),
        );
        assert_eq!(
            p.passwd_line(),
            Some(&b"aws:x:4321:4321::/home/aws:/sbin/nologin"[..])
        );
        assert_eq!(p.group_line(), Some(&b"aws:x:4321:"[..]));

        // The wanted name belongs to another UID: a distinct name, never a duplicate.
        let mut p = AccountPlan::new();
        p.fill(
            Some(PLAN_PASSWD),
            Some(PLAN_GROUP),
            1234,
            1234,
            b"app",
            None,
        );
        assert_eq!(p.name.as_bytes(), b"app-1234");
        assert_eq!(p.home.as_bytes(), b"/home/app-1234");
        assert_eq!(p.group_line(), Some(&b"app-1234:x:1234:"[..]));
    }

    #[test]
    fn plan_creates_entries_for_scratch_images() {
        let mut p = AccountPlan::new();
        p.fill(None, None, 1000, 1000, b"app", None);
        assert_eq!(
            p.passwd_line(),
            Some(&b"app:x:1000:1000::/home/app:/sbin/nologin"[..])
        );
        assert_eq!(p.group_line(), Some(&b"app:x:1000:"[..]));
    }
}
