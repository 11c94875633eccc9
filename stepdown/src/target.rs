//! Whom to run as: the target of the entrypoint form (env, owners of
//! paths and mounts, options, the image's account) and of the gosu form
//! (USER[:GROUP]), and the groups that go with it. Pure where it can be.

use crate::accounts::{parse_id, Name, User};
use crate::exec::Env;
use crate::options::{nonzero_id, Options, GID_ENV, HOME, MOUNTED_HOME, UID_ENV, USER};
use crate::report::{error_q, error_with, warn, Failed, Vals, NO};
use crate::sys::EACCES;
use crate::text::Text;
use crate::{accounts, mounts, read_passwd, report, resolve, sys, text, GROUP, MAX_GROUPS, PASSWD};
use core::ffi::CStr;

/// Target user of the entrypoint form: (uid, gid). Pure, given its inputs.
pub(crate) fn choose_target<'e>(
    opts: &Options,
    env: impl Fn(&[u8]) -> Option<&'e [u8]>,
    owner: Option<(u32, u32)>,
    named: Option<&User>,
) -> report::Result<(u32, u32)> {
    let from_env = |name: &[u8]| -> report::Result<Option<u32>> {
        match env(name) {
            None => Ok(None),
            Some(v) => nonzero_id(Text::<80>::of(b"$").and(name).as_bytes(), v).map(Some),
        }
    };
    let env_uid = from_env(opts.get(UID_ENV).unwrap_or(b"HARDEN_UID"))?;
    let env_gid = from_env(opts.get(GID_ENV).unwrap_or(b"HARDEN_GID"))?;
    let (uid, gid) = if let Some(uid) = env_uid {
        (uid, uid)
    } else if let Some((uid, gid)) = owner.filter(|(uid, _)| *uid != 0) {
        // A directory with group root says nothing about the group: never hand out GID 0.
        (uid, if gid == 0 { uid } else { gid })
    } else if let Some(uid) = opts.uid {
        (uid, opts.gid.unwrap_or(uid))
    } else if let Some(user) = named.filter(|u| u.uid != 0) {
        let own = if user.gid == 0 { user.uid } else { user.gid };
        (user.uid, opts.gid.unwrap_or(own))
    } else {
        (1000, opts.gid.unwrap_or(1000))
    };
    Ok((uid, env_gid.unwrap_or(gid)))
}

/// HOME, USER and LOGNAME for a caller started as a user: HOME is the
/// `--mounted-home` DIR when something is mounted there (a static-mode
/// image whose user mounts files into `/root`). Else only for a UID
/// /etc/passwd does not list (`docker run --user 1001:1001`), as after a
/// drop to that UID: the runtime gave it HOME=/, where the app finds none of
/// the files mounted into the image's home. Only when HOME is what runtimes
/// give such a UID (unset, `/` from docker, the working directory from
/// podman), and only a baked HOME that is an existing directory; nothing is
/// written.
pub(crate) fn started_user_vars<'a>(
    plan: &'a mut accounts::AccountPlan,
    opts: &Options,
    env: &Env,
    uid: u32,
) -> Option<[&'a [u8]; 2]> {
    let mounted = mounted_home(opts).0;
    let runtime_given = mounted.is_some()
        || match env.get(b"HOME") {
            None | Some(b"/") => true,
            Some(home) => {
                let mut cwd = [0u8; 4096];
                let n = sys::readlinkat(sys::AT_FDCWD, c"/proc/self/cwd", &mut cwd).ok()?;
                cwd.get(..n) == Some(home)
            }
        };
    if !runtime_given {
        return None;
    }
    // podman lists the UID in a passwd of mode 0600, with HOME the working
    // directory: unreadable here, it is read as listing nothing.
    let flags = sys::O_RDONLY | sys::O_NONBLOCK | sys::O_NOFOLLOW;
    let passwd = match sys::openat(sys::AT_FDCWD, PASSWD, flags, 0) {
        Err(EACCES) => None,
        _ => read_passwd().ok()?,
    };
    if mounted.is_none() && passwd.is_some_and(|p| accounts::user_by_uid(p, uid).is_some()) {
        return None;
    }
    let wanted = opts.get(USER).unwrap_or(b"app");
    plan.fill(passwd, None, uid, uid, wanted, mounted.or(opts.get(HOME)));
    let is_dir = plan
        .home
        .c_str()
        .is_some_and(|home| sys::statx(sys::AT_FDCWD, home, 0).is_ok_and(|st| st.is_dir()));
    is_dir.then(|| [plan.home.as_bytes(), plan.name.as_bytes()])
}

/// `--mounted-home DIR` when something is mounted at or below DIR, with
/// what was found there: the user's HOME is then DIR (over `--home`), where
/// the files the user mounted are.
pub(crate) fn mounted_home(opts: &Options) -> (Option<&'static [u8]>, Option<mounts::Found>) {
    let Some(dir) = opts.get(MOUNTED_HOME) else {
        return (None, None);
    };
    match mounts::at_or_below(dir) {
        Some(found) => (Some(dir), Some(found)),
        None => (None, None),
    }
}

/// "/etc/passwd line N: the entry of NAME cannot be read".
#[inline(never)]
pub(crate) fn bad_line(file: &CStr, bad: accounts::BadLine, name: &[u8]) -> Failed {
    error_with(
        b"%s line %n: the entry of %q cannot be read (IDs must be decimal, at most 2147483647)",
        Vals {
            s: file.to_bytes(),
            n: bad.0,
            q: name,
            ..NO
        },
    )
}

/// The owner of --match-owner's PATH, reached without a symbolic link (one
/// is warned about and ignored); None when it does not exist.
pub(crate) fn owner_of(path: &CStr) -> report::Result<Option<(u32, u32)>> {
    let v = Vals {
        q: path.to_bytes(),
        ..NO
    };
    let st = resolve::parent(path.to_bytes(), resolve::CROSS).and_then(|(dir, mut name)| {
        sys::statx(dir.0, resolve::name(&mut name), sys::AT_SYMLINK_NOFOLLOW)
    });
    let st = match st {
        Ok(st) if !st.is_symlink() => st,
        Ok(_) | Err(sys::ELOOP) => {
            warn(
                b"--match-owner %q: a symbolic link on the way; not followed",
                v,
            );
            return Ok(None);
        }
        Err(_) => return Ok(None),
    };
    for n in [st.uid, st.gid] {
        if n > accounts::MAX_ID {
            return Err(error_with(
                b"--match-owner %q is owned by ID %n, larger than 2147483647",
                Vals { n, ..v },
            ));
        }
    }
    Ok(Some((st.uid, st.gid)))
}

pub(crate) struct Target<'a> {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Sorted, without duplicates.
    pub(crate) groups: [u32; MAX_GROUPS],
    pub(crate) ngroups: usize,
    pub(crate) name: Name,
    pub(crate) home: &'a [u8],
}

/// Docker's `--user` syntax: `user`, `uid`, `user:group`, `uid:gid`, `:gid`.
/// `group` reads /etc/group: called only for a group name, or for the
/// supplementary groups of a user found in /etc/passwd.
pub(crate) fn resolve_spec<'a, 'g>(
    spec: &[u8],
    passwd: &'a [u8],
    group: impl FnOnce() -> report::Result<&'g [u8]>,
    current_uid: u32,
) -> report::Result<Target<'a>> {
    let (user_part, group_part) = match spec.iter().position(|b| *b == b':') {
        Some(i) => (&spec[..i], Some(&spec[i + 1..])),
        None => (spec, None),
    };
    let mut digits = [0u8; 10];
    let user_part = match user_part {
        b"" => text::decimal(current_uid, &mut digits),
        u => u,
    };
    let entry = if accounts::is_decimal(user_part) {
        let uid =
            parse_id(user_part).map_err(|_| error_q(b"%q is larger than 2147483647", user_part))?;
        accounts::user_by_uid(passwd, uid).ok_or(uid)
    } else {
        Ok(accounts::user_named(passwd, user_part)
            .map_err(|bad| bad_line(PASSWD, bad, user_part))?
            .ok_or_else(|| error_q(b"unknown user %q (not in /etc/passwd)", user_part))?)
    };
    let mut t = Target {
        uid: 0,
        gid: 0,
        groups: [0; MAX_GROUPS],
        ngroups: 1,
        name: Name::default(),
        home: b"/",
    };
    match entry {
        Ok(u) => {
            (t.uid, t.gid) = (u.uid, u.gid);
            t.name.push(u.name);
            if !u.home.is_empty() {
                t.home = u.home;
            }
        }
        // A bare number: GID = UID, never GID 0 as gosu does.
        Err(uid) => {
            (t.uid, t.gid) = (uid, uid);
            t.name.push_num(uid);
        }
    }
    // `user:` is `user` (as gosu and runc read it): the user's own groups.
    match group_part.filter(|g| !g.is_empty()) {
        Some(g) if accounts::is_decimal(g) => {
            t.gid = parse_id(g).map_err(|_| error_q(b"group %q is larger than 2147483647", g))?;
        }
        Some(g) => {
            t.gid = accounts::group_named(group()?, g)
                .map_err(|bad| bad_line(GROUP, bad, g))?
                .map(|e| e.gid)
                .ok_or_else(|| error_q(b"unknown group %q (not in /etc/group)", g))?;
        }
        None if entry.is_ok() => {
            // Like initgroups(3): the primary group plus every group listing the user.
            for g in accounts::member_of(group()?, t.name.as_bytes()) {
                if t.ngroups == MAX_GROUPS {
                    return Err(error_q(
                        b"user %q is in more than 256 groups",
                        t.name.as_bytes(),
                    ));
                }
                t.groups[t.ngroups] = g.gid;
                t.ngroups += 1;
            }
        }
        None => {}
    }
    t.groups[0] = t.gid;
    t.ngroups = sort_unique(&mut t.groups[..t.ngroups]);
    Ok(t)
}

/// The groups the command runs with, in `ids` (the user's GID, then the
/// supplementary groups the container started with): the GID and the groups
/// the runtime was asked to give the container — Kubernetes' fsGroup and
/// supplementalGroups, `--group-add` — as a container started as the user has
/// them. Never GID 0, and none that the image's /etc/group lists root in: the
/// runtime adds those only because the container starts as root. Sorted,
/// without duplicates; returns how many.
pub(crate) fn keep_runtime_groups(
    ids: &mut [u32],
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> usize {
    let for_root = |id: u32| group.is_some_and(|g| accounts::is_root_group(passwd, g, id));
    let mut kept = 1;
    for i in 1..ids.len() {
        if ids[i] != 0 && !for_root(ids[i]) {
            ids[kept] = ids[i];
            kept += 1;
        }
    }
    sort_unique(&mut ids[..kept])
}

/// Sorts `ids` and moves duplicates past the returned length. Insertion sort:
/// a user has few groups, and core's sort would be most of the binary.
pub(crate) fn sort_unique(ids: &mut [u32]) -> usize {
    let mut kept = 0;
    for i in 0..ids.len() {
        let id = ids[i];
        let at = ids[..kept].iter().position(|x| *x >= id).unwrap_or(kept);
        if at < kept && ids[at] == id {
            continue;
        }
        ids.copy_within(at..kept, at + 1);
        ids[at] = id;
        kept += 1;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::User;
    use crate::report::{self, error};
    use crate::testing::{env_of, err_text, opts};

    #[test]
    fn keeps_the_groups_the_runtime_was_asked_for() {
        let kept = |ids: &[u32], passwd: Option<&'static [u8]>, group: Option<&'static [u8]>| {
            let mut ids = ids.to_vec();
            let n = keep_runtime_groups(&mut ids, passwd, group);
            ids[..n].to_vec()
        };
        // podman on an alpine-like image with --group-add 2000 --group-add 27:
        // root's own groups (and 0) go, the added ones stay; 27 is root's too.
        let group: &[u8] =
            b"root:x:0:root\nwheel:x:10:root,other\ndisk:x:6:root\nvideo:x:27:root\nstaff:x:50:\n";
        assert_eq!(
            kept(&[1000, 0, 6, 10, 27, 2000], None, Some(group)),
            [1000, 2000]
        );
        // Root under another name in /etc/passwd: that name's groups go.
        let passwd: &[u8] = b"toor:x:0:0::/root:/bin/sh\n";
        let group: &[u8] = b"wheel:x:10:toor\nstaff:x:50:root\n";
        assert_eq!(kept(&[1000, 10, 50], Some(passwd), Some(group)), [50, 1000]);
        // No /etc/group (scratch): everything the runtime gave but 0; sorted, once.
        assert_eq!(
            kept(&[1000, 3000, 0, 1000, 2000], None, None),
            [1000, 2000, 3000]
        );
        assert_eq!(kept(&[1000], None, None), [1000]);
    }

    #[test]
    fn target_env_beats_owner_beats_default() {
        let o = opts(&[c"--uid", c"2000", c"--"]);
        let t = |env, owner| choose_target(&o, env_of(env), owner, None).ok();
        assert_eq!(t(&[], None), Some((2000, 2000)));
        assert_eq!(t(&[], Some((4321, 99))), Some((4321, 99)));
        assert_eq!(t(&[], Some((0, 0))), Some((2000, 2000)));
        assert_eq!(t(&[], Some((4321, 0))), Some((4321, 4321)));
        assert_eq!(
            t(&[("HARDEN_UID", "1234")], Some((4321, 99))),
            Some((1234, 1234))
        );
        assert_eq!(
            t(&[("HARDEN_UID", "1234"), ("HARDEN_GID", "55")], None),
            Some((1234, 55))
        );
        assert_eq!(
            choose_target(&opts(&[c"--"]), env_of(&[]), None, None).ok(),
            Some((1000, 1000))
        );
    }

    #[test]
    fn target_uses_named_image_user_when_no_uid_given() {
        let node = User {
            name: b"node",
            uid: 1001,
            gid: 1002,
            home: b"/home/node",
        };
        let o = opts(&[c"--user", c"node", c"--"]);
        assert_eq!(
            choose_target(&o, env_of(&[]), None, Some(&node)).ok(),
            Some((1001, 1002))
        );
    }

    #[test]
    fn target_env_names_are_configurable_and_values_checked() {
        let o = opts(&[c"--uid-env", c"AWS_UID", c"--gid-env", c"AWS_GID", c"--"]);
        assert_eq!(
            choose_target(&o, env_of(&[("AWS_UID", "501")]), None, None).ok(),
            Some((501, 501))
        );
        assert_eq!(
            choose_target(&o, env_of(&[("HARDEN_UID", "501")]), None, None).ok(),
            Some((1000, 1000))
        );
        for bad in ["0", "", "1000; rm -rf /", "12\n", "4294967295", "-1"] {
            let env = move |k: &[u8]| (k == b"AWS_UID").then_some(bad.as_bytes());
            let e = err_text(choose_target(&o, env, None, None));
            assert!(e.starts_with("$AWS_UID "), "{bad:?}: {e}");
        }
        let env = |k: &[u8]| (k == b"AWS_GID").then_some(&b"0"[..]);
        assert_eq!(
            err_text(choose_target(&o, env, None, None)),
            "$AWS_GID is 0: refusing to run as root"
        );
    }

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &[u8] = b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n";

    fn resolve(spec: &str) -> report::Result<(u32, u32, Vec<u32>, String)> {
        resolve_spec(spec.as_bytes(), PASSWD, || Ok(GROUP), 0).map(|t| {
            let name = String::from_utf8_lossy(t.name.as_bytes()).into_owned();
            (t.uid, t.gid, t.groups[..t.ngroups].to_vec(), name)
        })
    }

    #[test]
    fn spec_resolution_like_gosu_but_never_gid_zero() {
        assert_eq!(
            resolve("app").ok(),
            Some((1000, 1000, vec![50, 1000], "app".into()))
        );
        let home = resolve_spec(b"app", PASSWD, || Ok(GROUP), 0)
            .ok()
            .unwrap()
            .home;
        assert_eq!(home, b"/home/app");
        // /etc/group is read only when the spec needs it: a numeric group,
        // or a UID without a passwd entry, never reads it.
        let unreadable = || Err(error(b"read /etc/group"));
        for (spec, uid, gid) in [("app:50", 1000, 50), ("4242", 4242, 4242), (":7", 0, 7)] {
            let t = resolve_spec(spec.as_bytes(), PASSWD, unreadable, 0)
                .ok()
                .unwrap();
            assert_eq!((t.uid, t.gid), (uid, gid), "{spec}");
        }
        for spec in ["app", "app:staff", "1000", "4242:staff"] {
            let t = resolve_spec(spec.as_bytes(), PASSWD, unreadable, 0);
            assert_eq!(err_text(t), "read /etc/group", "{spec}");
        }
        assert_eq!(
            resolve("4242").ok(),
            Some((4242, 4242, vec![4242], "4242".into()))
        );
        assert_eq!(
            resolve("1000:50").ok(),
            Some((1000, 50, vec![50], "app".into()))
        );
        assert_eq!(
            resolve("app:staff").ok(),
            Some((1000, 50, vec![50], "app".into()))
        );
        assert_eq!(resolve(":50").ok(), Some((0, 50, vec![50], "root".into())));
        assert_eq!(
            err_text(resolve("nobody-here")),
            "unknown user \"nobody-here\" (not in /etc/passwd)"
        );
        assert!(resolve("app:nogroup").is_err());
        // An empty group is the user's own, as gosu and runc read `app:`.
        assert_eq!(resolve("app:").ok(), resolve("app").ok());
        assert!(resolve("99999999999").is_err());
    }
}
