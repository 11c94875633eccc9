//! Pure parsing and editing of /etc/passwd and /etc/group, and of numeric IDs.
//! No I/O here, so everything is unit-tested.

/// Largest UID/GID accepted: the kernel takes 32 bits, but many tools treat IDs
/// as signed, and Kubernetes caps runAsUser at 2^31-1.
pub const MAX_ID: u32 = 2_147_483_647;

/// Parses a decimal ID: digits only, no sign, no spaces, at most `MAX_ID`.
pub fn parse_id(s: &str) -> Result<u32, String> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{:?} is not a decimal ID", shorten(s)));
    }
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_ID as u64 => Ok(n as u32),
        _ => Err(format!("{s} is larger than {MAX_ID}")),
    }
}

/// Keeps error messages readable when a value is huge or hostile.
pub fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Entries of a passwd file; malformed lines and comments are skipped, as libc does.
pub fn users(passwd: &str) -> impl Iterator<Item = User> + '_ {
    passwd.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || f[0].is_empty() || f[0].starts_with('#') {
            return None;
        }
        Some(User {
            name: f[0].to_string(),
            uid: parse_id(f[2]).ok()?,
            gid: parse_id(f[3]).ok()?,
            home: f[5].to_string(),
        })
    })
}

/// Entries of a group file; malformed lines are skipped.
pub fn groups(group: &str) -> impl Iterator<Item = Group> + '_ {
    group.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f[0].is_empty() || f[0].starts_with('#') {
            return None;
        }
        Some(Group {
            name: f[0].to_string(),
            gid: parse_id(f[2]).ok()?,
            members: f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect(),
        })
    })
}

/// A name for a new entry: `wanted` unless another entry already uses it, then
/// `wanted-ID`, so that no name ever appears twice.
pub fn free_name(wanted: &str, id: u32, taken: impl Fn(&str) -> bool) -> String {
    if taken(wanted) {
        format!("{wanted}-{id}")
    } else {
        wanted.to_string()
    }
}

/// `content` with `line` appended, keeping the file newline-terminated.
pub fn append_line(content: &str, line: &str) -> String {
    let mut out = String::with_capacity(content.len() + line.len() + 2);
    out.push_str(content);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out
}

/// Is `name` safe to write into a passwd/group line?
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Is `home` safe to write into a passwd line?
pub fn valid_home(home: &str) -> bool {
    home.starts_with('/') && home.len() <= 256 && !home.contains([':', '\n', '\0'])
}

/// What the account files need so that `uid`/`gid` exist: the name and HOME
/// to use and, where a line must be added, the new file contents. Missing
/// files (scratch images) start with a root entry.
#[derive(Debug, PartialEq)]
pub struct AccountPlan {
    pub name: String,
    pub home: String,
    /// New contents, when a line must be added.
    pub passwd: Option<String>,
    pub group: Option<String>,
}

pub fn plan_accounts(
    passwd: Option<&str>,
    group: Option<&str>,
    uid: u32,
    gid: u32,
    wanted: &str,
    home: Option<&str>,
) -> AccountPlan {
    let passwd_text = passwd.unwrap_or("root:x:0:0:root:/root:/sbin/nologin\n");
    let group_text = group.unwrap_or("root:x:0:\n");
    let (name, home, new_passwd) = match users(passwd_text).find(|u| u.uid == uid) {
        Some(u) => {
            let home = home.map(str::to_string).unwrap_or(u.home);
            (u.name, home, None)
        }
        None => {
            let name = free_name(wanted, uid, |n| users(passwd_text).any(|u| u.name == n));
            let home = home.map(str::to_string).unwrap_or(format!("/home/{name}"));
            let line = format!("{name}:x:{uid}:{gid}::{home}:/sbin/nologin");
            (name.clone(), home, Some(append_line(passwd_text, &line)))
        }
    };
    let new_group = if groups(group_text).any(|g| g.gid == gid) {
        None
    } else {
        let gname = free_name(&name, gid, |n| groups(group_text).any(|g| g.name == n));
        Some(append_line(group_text, &format!("{gname}:x:{gid}:")))
    };
    AccountPlan {
        name,
        home,
        passwd: new_passwd,
        group: new_group,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\napp:x:1000:1000::/home/app:/sbin/nologin";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\n";

    #[test]
    fn ids_are_strict_decimal() {
        assert_eq!(parse_id("1000"), Ok(1000));
        assert_eq!(parse_id("2147483647"), Ok(MAX_ID));
        assert_eq!(parse_id("0"), Ok(0));
        for bad in [
            "",
            "-1",
            "+5",
            " 1",
            "1 ",
            "0x10",
            "2147483648",
            "99999999999",
            "1000; rm -rf /",
            "1000\n",
        ] {
            assert!(parse_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parses_passwd_skipping_junk() {
        let all: Vec<User> = users(PASSWD).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(
            all[2],
            User {
                name: "app".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/app".into()
            }
        );
    }

    #[test]
    fn parses_group_members() {
        let wheel = groups(GROUP).find(|g| g.gid == 10).unwrap();
        assert_eq!(wheel.members, ["root", "app"]);
        assert!(groups(GROUP)
            .find(|g| g.name == "app")
            .unwrap()
            .members
            .is_empty());
    }

    #[test]
    fn new_names_never_collide() {
        let taken = |n: &str| users(PASSWD).any(|u| u.name == n);
        assert_eq!(free_name("svc", 1234, taken), "svc");
        assert_eq!(free_name("app", 1234, taken), "app-1234");
    }

    #[test]
    fn append_keeps_lines_whole() {
        assert_eq!(append_line("a\n", "b"), "a\nb\n");
        assert_eq!(append_line("a", "b"), "a\nb\n");
        assert_eq!(append_line("", "b"), "b\n");
    }

    #[test]
    fn names_and_homes_are_checked() {
        assert!(valid_name("aws"));
        assert!(valid_name("www-data"));
        for bad in ["", "-x", "a:b", "a\nb", "a b", &"x".repeat(33)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_home("/home/aws"));
        assert!(!valid_home("home"));
        assert!(!valid_home("/a:b"));
    }

    const PLAN_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const PLAN_GROUP: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:app\n";

    #[test]
    fn plan_adds_missing_user_and_group_once() {
        let p = plan_accounts(Some(PLAN_PASSWD), Some(PLAN_GROUP), 1000, 1000, "app", None);
        assert_eq!((p.name.as_str(), p.home.as_str()), ("app", "/home/app"));
        assert_eq!((p.passwd, p.group), (None, None));

        let p = plan_accounts(
            Some(PLAN_PASSWD),
            Some(PLAN_GROUP),
            4321,
            4321,
            "aws",
            Some("/home/aws"),
        );
        assert_eq!(
            p.passwd.as_deref(),
            Some("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\naws:x:4321:4321::/home/aws:/sbin/nologin\n")
        );
        assert_eq!(
            p.group.as_deref(),
            Some("root:x:0:\napp:x:1000:\nstaff:x:50:app\naws:x:4321:\n")
        );

        // The wanted name belongs to another UID: a distinct name, never a duplicate.
        let p = plan_accounts(Some(PLAN_PASSWD), Some(PLAN_GROUP), 1234, 1234, "app", None);
        assert_eq!(p.name, "app-1234");
        assert_eq!(p.home, "/home/app-1234");
        assert!(p.group.unwrap().ends_with("app-1234:x:1234:\n"));
    }

    #[test]
    fn plan_creates_files_for_scratch_images() {
        let p = plan_accounts(None, None, 1000, 1000, "app", None);
        assert_eq!(
            p.passwd.as_deref(),
            Some("root:x:0:0:root:/root:/sbin/nologin\napp:x:1000:1000::/home/app:/sbin/nologin\n")
        );
        assert_eq!(p.group.as_deref(), Some("root:x:0:\napp:x:1000:\n"));
    }
}
