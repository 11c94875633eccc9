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

// The account files are read as the runtimes read them (runc, podman and
// docker all use github.com/moby/sys/user): each line trimmed as Go's
// strings.TrimSpace trims, fields split at ':', numbers as strconv.Atoi
// takes them (`+6` is 6). Where that parser would silently read a number it
// cannot parse as 0, the step-down says so instead (`user_named`), or
// assumes the worst (`is_root_group`).

/// How many bytes of white space (Go's unicode.IsSpace) `s` starts with
/// (`at_end`: ends with), for one character.
fn space_len(s: &[u8], at_end: bool) -> usize {
    let pick = |n: usize| match s.len().checked_sub(n) {
        None => &[][..],
        Some(rest) if at_end => &s[rest..],
        Some(_) => &s[..n],
    };
    if let [b'\t'..=b'\r' | b' '] = pick(1) {
        1
    } else if let [0xc2, 0x85 | 0xa0] = pick(2) {
        2
    } else if let [0xe1, 0x9a, 0x80]
    | [0xe2, 0x80, 0x80..=0x8a | 0xa8 | 0xa9 | 0xaf]
    | [0xe2, 0x81, 0x9f]
    | [0xe3, 0x80, 0x80] = pick(3)
    {
        3
    } else {
        0
    }
}

/// Go's bytes.TrimSpace.
pub fn trim(mut s: &[u8]) -> &[u8] {
    loop {
        let n = space_len(s, false);
        if n == 0 {
            break;
        }
        s = &s[n..];
    }
    loop {
        let n = space_len(s, true);
        if n == 0 {
            return s;
        }
        s = &s[..s.len() - n];
    }
}

/// The lines of an account file, trimmed, with their numbers (from 1);
/// blank lines are skipped.
fn lines(text: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    text.split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i as u32 + 1, trim(l)))
        .filter(|(_, l)| !l.is_empty())
}

/// The lines that are entries: not comments (libc and runc skip those in
/// /etc/group; in /etc/passwd runc reads them as entries, see `is_root_name`).
fn entries(text: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    lines(text).filter(|(_, l)| l[0] != b'#')
}

/// The first `K` colon-separated fields of a line (missing ones empty) and
/// how many the line has.
fn fields<const K: usize>(line: &[u8]) -> ([&[u8]; K], usize) {
    let mut out = [&line[..0]; K];
    let mut n = 0;
    for (f, part) in out.iter_mut().zip(line.split(|b| *b == b':')) {
        *f = part;
        n += 1;
    }
    (out, n)
}

/// A UID or GID field: strconv.Atoi's syntax, which takes a `+`, and at most
/// `MAX_ID`.
pub fn file_id(s: &[u8]) -> Result<u32, IdError> {
    parse_id(s.strip_prefix(b"+").unwrap_or(s))
}

/// strconv.Atoi as runc uses it: (negative, magnitude saturated at
/// u64::MAX); None where it fails, which runc reads as 0.
fn atoi(s: &[u8]) -> Option<(bool, u64)> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || !is_decimal(digits) {
        return None;
    }
    let n = digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add((d - b'0') as u64)
    });
    Some((negative, n))
}

/// A passwd line as an entry: at least name, password, UID and GID.
fn user(line: &[u8]) -> Option<User<'_>> {
    let ([name, _, uid, gid, _, home], n) = fields::<6>(line);
    (n >= 4 && !name.is_empty()).then_some(())?;
    Some(User {
        name,
        uid: file_id(uid).ok()?,
        gid: file_id(gid).ok()?,
        home,
    })
}

/// A group line as an entry: at least name, password and GID.
fn group_entry(line: &[u8]) -> Option<Group<'_>> {
    let ([name, _, gid, members], n) = fields::<4>(line);
    (n >= 3 && !name.is_empty()).then_some(())?;
    Some(Group {
        name,
        gid: file_id(gid).ok()?,
        members,
    })
}

/// Entries of a passwd file; lines that are not are skipped (`user_named`
/// tells when that matters).
pub fn users(passwd: &[u8]) -> impl Iterator<Item = User<'_>> {
    entries(passwd).filter_map(|(_, l)| user(l))
}

/// Entries of a group file; lines that are not are skipped.
pub fn groups(group: &[u8]) -> impl Iterator<Item = Group<'_>> {
    entries(group).filter_map(|(_, l)| group_entry(l))
}

/// The names of a passwd or group file, entries or not: a new entry must not
/// take any of them.
fn names(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    entries(text).map(|(_, l)| fields::<1>(l).0[0])
}

/// The number of a line that names what was looked up but cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLine(pub u32);

/// The first passwd entry named `name`. A line of that name whose IDs do not
/// parse is an error, not skipped: runc would run that user as UID 0.
pub fn user_named<'a>(passwd: &'a [u8], name: &[u8]) -> Result<Option<User<'a>>, BadLine> {
    match entries(passwd).find(|(_, l)| fields::<1>(l).0[0] == name) {
        None => Ok(None),
        Some((n, line)) => user(line).map(Some).ok_or(BadLine(n)),
    }
}

/// The first group entry named `name`; a line of that name that does not
/// parse is an error.
pub fn group_named<'a>(group: &'a [u8], name: &[u8]) -> Result<Option<Group<'a>>, BadLine> {
    match entries(group).find(|(_, l)| fields::<1>(l).0[0] == name) {
        None => Ok(None),
        Some((n, line)) => group_entry(line).map(Some).ok_or(BadLine(n)),
    }
}

/// The passwd entry of `uid`, if any.
pub fn user_by_uid(passwd: &[u8], uid: u32) -> Option<User<'_>> {
    users(passwd).find(|u| u.uid == uid)
}

/// The groups that list `name` as a member.
pub fn member_of<'a>(group: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = Group<'a>> {
    groups(group).filter(move |g| g.has_member(name))
}

/// May a runtime have given GID `gid` to a container because it starts as
/// root? It does for the groups /etc/group lists root's name in: the name of
/// the first line of /etc/passwd that runc reads as UID 0. Every name that
/// any line may give UID 0 counts here, so that no reading of the file
/// leaves one of root's groups to the user.
pub fn is_root_group(passwd: Option<&[u8]>, group: &[u8], gid: u32) -> bool {
    entries(group).any(|(_, line)| {
        let ([_, _, id, members], n) = fields::<4>(line);
        n >= 3
            && atoi(id) == Some((false, gid as u64))
            && members
                .split(|b| *b == b',')
                .any(|m| is_root_name(passwd, m))
    })
}

/// Is `name` one that a passwd line may give UID 0? runc reads every line
/// (comments too) and takes a UID it cannot parse, or a missing one, as 0.
fn is_root_name(passwd: Option<&[u8]>, name: &[u8]) -> bool {
    match passwd {
        // No /etc/passwd: a runtime that makes one names root `root`.
        None => name == b"root",
        Some(p) => {
            !name.is_empty()
                && lines(p).any(|(_, l)| {
                    let ([n, _, uid], _) = fields::<3>(l);
                    n == name && atoi(uid).is_none_or(|(_, v)| v == 0)
                })
        }
    }
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

/// Is `path` safe to write into a passwd line, as an option's value?
pub fn valid_home(path: &[u8]) -> bool {
    path.first() == Some(&b'/')
        && path.len() <= MAX_HOME
        && !path.iter().any(|b| matches!(b, b':' | b'\n' | b'\0'))
}

/// Is `path` absolute and normalised: no empty, `.` or `..` component, no
/// `/` at the end (`/` itself is not)?
pub fn normalised(path: &[u8]) -> bool {
    path.len() > 1
        && path[0] == b'/'
        && path[1..]
            .split(|b| *b == b'/')
            .all(|c| !matches!(c, b"" | b"." | b".."))
}

/// The directories below which the step-down makes HOME and gives it to the
/// user (never one of these itself): where images keep their users' homes
/// and data. Any other HOME is used as it is.
pub const HOME_ROOTS: [&[u8]; 7] = [
    b"/home",
    b"/var/lib",
    b"/var/cache",
    b"/srv",
    b"/opt",
    b"/data",
    b"/app",
];

/// May the step-down create HOME and give it to the user? Only a normalised
/// path strictly below one of `HOME_ROOTS` (the walk then refuses symbolic
/// links and other mounts on the way).
pub fn home_preparable(home: &[u8]) -> bool {
    normalised(home)
        && HOME_ROOTS
            .iter()
            .any(|r| home.len() > r.len() + 1 && home.starts_with(r) && home[r.len()] == b'/')
}

/// Is `home` refused as `--home`: not a normalised absolute path, or the
/// step-down's own directory, a kernel filesystem or a system directory
/// (`/etc`, `/usr`, `/lib*`, ...), or below one?
pub fn home_refused(home: &[u8]) -> bool {
    if !normalised(home) {
        return true;
    }
    let top = home[1..].split(|b| *b == b'/').next().unwrap_or(b"");
    matches!(
        top,
        b".harden"
            | b"etc"
            | b"dev"
            | b"proc"
            | b"sys"
            | b"run"
            | b"usr"
            | b"bin"
            | b"sbin"
            | b"boot"
    ) || top.starts_with(b"lib")
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
                self.name = free_name(wanted, uid, |n| names(passwd).any(|m| m == n));
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
            let gname = free_name(self.name.as_bytes(), gid, |n| names(group).any(|m| m == n));
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

    /// Line shapes runc's parser (moby/sys/user) accepts, read the same way.
    #[test]
    fn lines_are_read_as_runc_reads_them() {
        let passwd: &[u8] =
            b"root:x:0:0:root:/root:/bin/sh\r\n  app:x:+1000:1000::/home/app:/bin/sh \n\
            short:x:1001:1001\n\t\n";
        let app = user_named(passwd, b"app").unwrap().unwrap();
        assert_eq!(
            (app.uid, app.gid, app.home),
            (1000, 1000, &b"/home/app"[..])
        );
        assert_eq!(user_named(passwd, b"root").unwrap().unwrap().uid, 0);
        let short = user_named(passwd, b"short").unwrap().unwrap();
        assert_eq!((short.uid, short.home), (1001, &b""[..]));
        assert_eq!(user_by_uid(passwd, 1000).map(|u| u.name), Some(&b"app"[..]));
        // What runc would read as UID 0 is an error when it is the user asked for.
        let bad: &[u8] = b"root:x:0:0::/root:/bin/sh\napp:x:abc:1000::/home/app:/bin/sh\n\
            big:x:3000000000:1::/:/bin/sh\nneg:x:-5:1::/:/bin/sh\nnogid:x:7\n";
        for (name, line) in [("app", 2), ("big", 3), ("neg", 4), ("nogid", 5)] {
            assert_eq!(
                user_named(bad, name.as_bytes()),
                Err(BadLine(line)),
                "{name}"
            );
        }
        assert_eq!(user_named(bad, b"nobody"), Ok(None));
        // Go's TrimSpace: CR, tabs, and Unicode spaces such as NBSP and U+3000.
        assert_eq!(trim(b"\t x \r"), b"x");
        assert_eq!(trim("\u{a0}x\u{3000}\u{85}".as_bytes()), b"x");
        assert_eq!(trim("x\u{2009}y".as_bytes()), "x\u{2009}y".as_bytes());
        let group: &[u8] = "staff:x:+50:app\u{a0}\r\n#wheel:x:10:app\n".as_bytes();
        assert!(member_of(group, b"app").any(|g| g.gid == 50));
        assert_eq!(group_named(group, b"#wheel"), Ok(None), "a comment");
        assert_eq!(group_named(b"g:x:1e3:\n", b"g"), Err(BadLine(1)));
    }

    #[test]
    fn roots_groups_whatever_the_parser() {
        let root = |passwd: &[u8], group: &[u8], gid| is_root_group(Some(passwd), group, gid);
        let passwd: &[u8] = b"root:x:0:0::/root:/bin/sh\n";
        for group in [
            &b"wheel:x:10:root\r\n"[..],
            b"wheel:x:10:root \n",
            b"wheel:x:+10:root\n",
            b"wheel:x:010:app,root\n",
            b"  wheel:x:10:root:extra\n",
        ] {
            assert!(
                root(passwd, group, 10),
                "{:?}",
                String::from_utf8_lossy(group)
            );
        }
        assert!(!root(passwd, b"wheel:x:10:root,\n", 11));
        assert!(
            !root(passwd, b"wheel:x:10: root\n", 10),
            "runc splits members as they are"
        );
        assert!(
            !root(passwd, b"#wheel:x:10:root\n", 10),
            "runc skips comments in group"
        );
        // Another name with UID 0 before root's; one runc reads as 0 because
        // it cannot parse the UID; a comment line, which runc reads too.
        for passwd in [
            &b"toor:x:0:0::/:/bin/sh\nroot:x:0:0::/root:/bin/sh\n"[..],
            b"toor:x:zero:0::/:/bin/sh\n",
            b"toor\n",
            b"toor:x:-0:0::/:/bin/sh\n",
        ] {
            assert!(root(passwd, b"wheel:x:10:toor\n", 10), "{passwd:?}");
        }
        assert!(!root(b"toor:x:5:0::/:/bin/sh\n", b"wheel:x:10:toor\n", 10));
        assert!(is_root_group(None, b"wheel:x:10:root\n", 10));
    }

    #[test]
    fn where_home_may_be_made() {
        for ok in [
            "/home/app",
            "/var/lib/postgresql",
            "/srv/x/y",
            "/data/app",
            "/opt/tool",
        ] {
            assert!(home_preparable(ok.as_bytes()), "{ok}");
            assert!(!home_refused(ok.as_bytes()), "{ok}");
        }
        for no in [
            "/",
            "/.",
            "//",
            "/home",
            "/home/",
            "/home/..",
            "/home/../etc",
            "/home//app",
            "/home/./app",
            ".",
            "home/app",
            "/.harden",
            "/etc",
            "/etc/app",
            "/dev/x",
            "/proc/1",
            "/sys/x",
            "/run/x",
            "/usr/local/app",
            "/lib/x",
            "/root",
            "/tmp/x",
            "/var/www",
            "/homework/x",
        ] {
            assert!(!home_preparable(no.as_bytes()), "{no}");
        }
        for refused in [
            "/", "/.", "//", "/home/..", "/.harden", "/etc", "/dev", "/proc/x", "/sys", "/run/app",
            "/usr", "/bin", "/sbin", "/lib64", "/boot", "rel", "/x/",
        ] {
            assert!(home_refused(refused.as_bytes()), "{refused}");
        }
        for used_as_is in ["/root", "/tmp/app", "/var/www", "/config"] {
            assert!(!home_refused(used_as_is.as_bytes()), "{used_as_is}");
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
