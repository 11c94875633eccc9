//! harden-stepdown: start as root, become an unprivileged user, exec the command.
//!
//! Two forms:
//!   harden-stepdown [--allow-new-privs] [--init] USER[:GROUP] COMMAND [ARG...]   (gosu/su-exec drop-in)
//!   harden-stepdown [OPTIONS] -- COMMAND [ARG...]                                (entrypoint of hardened images)
//!
//! It fails closed: when any part of the privilege drop fails, it exits 1 and
//! never runs COMMAND.
//!
//! No libc and no heap: raw system calls (sys.rs), a start routine of its own
//! (rt.rs), fixed buffers with bounds (text.rs, files.rs). It is copied into
//! every hardened image and runs at every container start, so it must be
//! small and start fast. build.rs builds it with `--cfg harden_stepdown_bin`;
//! cargo only compiles it as a library, for its unit tests.

#![cfg_attr(not(test), no_std)]
#![cfg_attr(harden_stepdown_bin, no_main)]

mod accounts;
mod chown;
mod exec;
mod files;
mod init;
mod mounts;
mod options;
mod privileges;
mod report;
mod resolve;
#[cfg(harden_stepdown_bin)]
mod rt;
mod sys;
mod target;
mod text;
mod trust;

use accounts::AccountPlan;
use core::ffi::{c_char, CStr};
use exec::{run_command, Env};
use files::{Static, MAX_ACCOUNT_FILE};
use options::{parse_options, Options, HOME, USER};
use privileges::{
    drop_privileges, refuse_secure_exec, require_setid_caps, set_no_new_privs, Caller,
};
use report::{error, error_q, error_with, warn, Failed, Vals, NO};
use target::{
    bad_line, choose_target, keep_runtime_groups, mounted_home, owner_of, resolve_spec,
    started_user_vars,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const PASSWD: &CStr = c"/etc/passwd";
const GROUP: &CStr = c"/etc/group";
/// Most supplementary groups of a target user.
const MAX_GROUPS: usize = 256;
// The big buffers live in .bss, not on the stack: a frame over 4 KiB is
// probed page by page, and each page touched is a page fault at every
// container start. In .bss only the bytes used cost pages. Each is taken once.
static PASSWD_BUF: Static<[u8; MAX_ACCOUNT_FILE]> = Static::new([0; MAX_ACCOUNT_FILE]);
static GROUP_BUF: Static<[u8; MAX_ACCOUNT_FILE]> = Static::new([0; MAX_ACCOUNT_FILE]);
static PLAN: Static<AccountPlan> = Static::new(AccountPlan::new());

/// Usage only (every byte is in every image); harden's README has the rest.
const HELP: &str = "\
harden-stepdown: drop root privileges, then exec COMMAND
  harden-stepdown [--allow-new-privs] [--init] USER[:GROUP] COMMAND [ARG...]
  harden-stepdown [--user NAME] [--uid N] [--gid N] [--home DIR] [--uid-env VAR]
    [--gid-env VAR] [--mounted-home DIR] [--match-owner PATH]... [--chown PATH]...
    [--writable PATH]... [--init] [--allow-new-privs] -- COMMAND [ARG...]
The -- form runs as $HARDEN_UID:$HARDEN_GID, else the non-root owner of the
first --match-owner PATH that has one, else of a mount at or below --mounted-home
DIR (HOME is then DIR), else --uid:--gid, adding the user to /etc/passwd and /etc/group.
Exit: COMMAND's; 1 the step-down failed (COMMAND did not run); 126, 127 as sh.
";

/// argv or envp without the terminating NULL (which is still there after it).
type Args = &'static [*const c_char];

fn arg_c(p: *const c_char) -> &'static CStr {
    // Safety: argv and envp strings are NUL-terminated and live for the whole process.
    unsafe { CStr::from_ptr(p) }
}

fn arg(p: *const c_char) -> &'static [u8] {
    arg_c(p).to_bytes()
}

/// Says why and exits 1: COMMAND is never run after this.
fn fail(template: &[u8], v: Vals) -> ! {
    error_with(template, v);
    sys::exit(1)
}

/// Called by rt.rs with the process's argv and envp, and the auxiliary
/// vector's AT_SECURE and AT_EXECFN.
pub fn start(argv: Args, envp: Args, secure: bool, execfn: Option<&CStr>) -> ! {
    let env = Env(envp);
    match run(argv.get(1..).unwrap_or(&[]), &env, secure, execfn) {
        Ok(()) => sys::exit(0),
        Err(Failed) => sys::exit(1),
    }
}

fn run(args: Args, env: &Env, secure: bool, execfn: Option<&CStr>) -> report::Result<()> {
    let caller = refuse_secure_exec(secure)?;
    match args.first().map(|a| arg(*a)) {
        None => Err(error(b"missing arguments; see --help")),
        Some(a) if a == b"--help" || a == b"-h" => {
            let _ = sys::write_all(1, HELP.as_bytes());
            Ok(())
        }
        Some(a) if a == b"--version" => {
            let _ = sys::write_all(1, b"harden-stepdown ");
            let _ = sys::write_all(1, VERSION.as_bytes());
            let _ = sys::write_all(1, b"\n");
            Ok(())
        }
        Some(_) => {
            let (opts, command) = parse_options(args)?;
            if caller.uid == 0 {
                trust::check(execfn)?;
            }
            match opts.spec {
                Some(spec) => gosu_form(spec, &opts, command, env, caller),
                None => entrypoint_form(&opts, command, env, caller),
            }
        }
    }
}

// /etc/passwd and /etc/group, each None when missing.
// Safety (both): run once per process (each form reads each file once).
fn read_passwd() -> report::Result<Option<&'static [u8]>> {
    files::read_bounded(PASSWD, unsafe { PASSWD_BUF.take() })
}

fn read_group() -> report::Result<Option<&'static [u8]>> {
    files::read_bounded(GROUP, unsafe { GROUP_BUF.take() })
}

fn entrypoint_form(opts: &Options, command: Args, env: &Env, caller: Caller) -> report::Result<()> {
    if command.is_empty() {
        return Err(error(b"no COMMAND after \"--\""));
    }
    if caller.uid != 0 {
        // Started as a user already (docker run --user): nothing to drop;
        // no_new_privs all the same, as after a drop.
        if !opts.allow_new_privs {
            set_no_new_privs()?;
        }
        // Safety: taken once (entrypoint_form runs once).
        let plan = unsafe { PLAN.take() };
        let vars = started_user_vars(plan, opts, env, caller.uid);
        run_command(command, env, vars, opts.init);
    }
    let (passwd, group) = (read_passwd()?, read_group()?);
    let wanted = opts.get(USER).unwrap_or(b"app");
    let named = match passwd.map(|p| accounts::user_named(p, wanted)) {
        Some(Err(bad)) => return Err(bad_line(PASSWD, bad, wanted)),
        Some(Ok(user)) => user,
        None => None,
    };
    let mut owner = None;
    for path in &opts.match_owner[..opts.match_owners] {
        owner = owner_of(path)?.filter(|(uid, _)| *uid != 0);
        if owner.is_some() {
            break;
        }
    }
    let (mounted_home, mounted) = mounted_home(opts);
    let (uid, gid) = choose_target(
        opts,
        |n| env.get(n),
        owner.or(mounted.and_then(|m| m.owner)),
        named.as_ref(),
    )?;
    require_setid_caps()?;

    // Safety: taken once (entrypoint_form runs once).
    let plan = unsafe { PLAN.take() };
    plan.fill(
        passwd,
        group,
        uid,
        gid,
        wanted,
        mounted_home.or(opts.get(HOME)),
    );
    if !plan.home.whole() {
        return Err(error(b"the user's HOME is longer than 4096 bytes"));
    }
    for (path, old, default, line) in [
        (PASSWD, passwd, accounts::DEFAULT_PASSWD, plan.passwd_line()),
        (GROUP, group, accounts::DEFAULT_GROUP, plan.group_line()),
    ] {
        if let Some(line) = line {
            let pieces = accounts::appended(old, default, line);
            match files::replace(path, &pieces) {
                Ok(()) => {}
                Err(sys::ELOOP) => files::symlink_left_alone(path),
                Err(e) if files::worth_a_warning(e) => warn(
                    b"cannot update %s%e",
                    Vals {
                        s: path.to_bytes(),
                        e: Some(e),
                        ..NO
                    },
                ),
                Err(_) => {}
            }
        }
    }
    match files::prepare_home(plan.home.as_bytes(), uid, gid) {
        // A HOME on a volume or bind mount is the user's business.
        Err(sys::EXDEV) => {}
        Err(sys::ELOOP) => warn(
            b"HOME %q: a symbolic link on the way; not followed",
            Vals {
                q: plan.home.as_bytes(),
                ..NO
            },
        ),
        Err(e) if files::worth_a_warning(e) => warn(
            b"cannot prepare HOME %q%e",
            Vals {
                q: plan.home.as_bytes(),
                e: Some(e),
                ..NO
            },
        ),
        _ => {}
    }
    if let Some(dir) = mounted_home {
        match files::make_searchable(dir) {
            Ok(()) | Err(sys::EXDEV) => {}
            Err(sys::ELOOP) => warn(
                b"--mounted-home %q: a symbolic link on the way; not followed",
                Vals { q: dir, ..NO },
            ),
            Err(e) if files::worth_a_warning(e) => warn(
                b"cannot let the user search %q%e",
                Vals {
                    q: dir,
                    e: Some(e),
                    ..NO
                },
            ),
            Err(_) => {}
        }
    }
    for path in &opts.chown[..opts.chowns] {
        chown_path(path, uid, gid, chown::Why::Asked);
    }
    for path in &opts.writable[..opts.writables] {
        chown_path(path, uid, gid, chown::Why::Inferred);
    }
    let mut groups = [0u32; MAX_GROUPS + 1];
    groups[0] = gid;
    let given = sys::groups(&mut groups[1..])
        .map_err(|_| error(b"the container has more than 256 supplementary groups"))?
        .len();
    let kept = keep_runtime_groups(&mut groups[..=given], passwd, group);
    let groups = &groups[..kept];
    // Root (checked above) to a user (choose_target never picks 0).
    drop_privileges(true, uid, gid, groups, !opts.allow_new_privs)?;
    let vars = [plan.home.as_bytes(), plan.name.as_bytes()];
    run_command(command, env, Some(vars), opts.init)
}

fn chown_path(path: &CStr, uid: u32, gid: u32, why: chown::Why) {
    let out = chown::chown_tree(path, uid, gid, why);
    let v = Vals {
        s: match why {
            chown::Why::Asked => b"--chown",
            chown::Why::Inferred => b"--writable",
        },
        q: path.to_bytes(),
        n: out.failed,
        e: out.first_error,
    };
    if out.symlink {
        warn(b"%s %q: a symbolic link on the way; not followed", v);
        return;
    }
    if out.linked > 0 {
        warn(
            b"%s %q: %n files with more than one hard link left alone",
            Vals { n: out.linked, ..v },
        );
    }
    if out.first_error.is_some() {
        warn(b"%s %q: %n entries not changed%e", v);
    } else if out.too_deep {
        warn(b"%s %q: directories deeper than 128 levels left alone", v);
    }
}

fn gosu_form(
    spec: &[u8],
    opts: &Options,
    command: Args,
    env: &Env,
    caller: Caller,
) -> report::Result<()> {
    if command.is_empty() {
        return Err(error_q(b"no COMMAND after %q", spec));
    }
    let passwd = read_passwd()?.unwrap_or(b"");
    // /etc/group only when the spec needs it: `uid:gid` does not (~15 µs).
    let group = || Ok(read_group()?.unwrap_or(b""));
    let target = resolve_spec(spec, passwd, group, caller.uid)?;
    let no_new_privs = !opts.allow_new_privs;
    if caller.uid != 0 && (caller.uid, caller.gid) == (target.uid, target.gid) {
        // Started as that user already (`docker run --user`, Kubernetes'
        // runAsUser): nothing to drop, and without CAP_SETGID the groups
        // could not be set (where gosu fails). The runtime's groups stay.
        if no_new_privs {
            set_no_new_privs()?;
        }
    } else {
        if target.uid != 0 {
            require_setid_caps()?;
        }
        let groups = &target.groups[..target.ngroups];
        drop_privileges(
            caller.uid == 0 && target.uid != 0,
            target.uid,
            target.gid,
            groups,
            no_new_privs,
        )?;
    }
    let vars = [target.home, target.name.as_bytes()];
    run_command(command, env, Some(vars), opts.init)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::User;
    use crate::options::MOUNTED_HOME;
    use crate::privileges::{caps_from_file, not_stuck};

    /// argv as the kernel gives it: pointers to NUL-terminated strings, NULL after the last.
    fn args(list: &[&'static CStr]) -> Args {
        let mut v: Vec<*const c_char> = list.iter().map(|s| s.as_ptr()).collect();
        v.push(core::ptr::null());
        let v: &'static [*const c_char] = Vec::leak(v);
        &v[..list.len()]
    }

    fn opts(list: &[&'static CStr]) -> Options {
        parse_options(args(list)).ok().unwrap().0
    }

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

    /// The message of a failure, without prefix and newline.
    fn err_text<T>(r: report::Result<T>) -> String {
        assert!(r.is_err(), "accepted");
        let line = report::last();
        line.trim_start_matches("harden-stepdown: ")
            .trim_end()
            .to_string()
    }

    #[test]
    fn failed_checks_say_what_did_not_stick() {
        for (what, text) in [
            (&b""[..], "privilege drop did not stick"),
            (b": groups", "privilege drop did not stick: groups"),
        ] {
            assert_eq!(err_text::<()>(Err(not_stuck(what))), text);
        }
    }

    #[test]
    fn parses_both_forms() {
        let (o, cmd) = parse_options(args(&[
            c"--uid",
            c"42",
            c"--user",
            c"aws",
            c"--chown",
            c"/data",
            c"--init",
            c"--mounted-home",
            c"/root",
            c"--",
            c"ls",
            c"-l",
        ]))
        .ok()
        .unwrap();
        assert_eq!(
            (o.uid, o.get(USER), o.spec, o.get(MOUNTED_HOME)),
            (Some(42), Some(&b"aws"[..]), None, Some(&b"/root"[..]))
        );
        assert_eq!(
            (o.chowns, o.chown[0].to_bytes(), o.init),
            (1, &b"/data"[..], true)
        );
        assert_eq!(
            cmd.iter().map(|p| arg(*p)).collect::<Vec<_>>(),
            [&b"ls"[..], b"-l"]
        );
        let (o, cmd) = parse_options(args(&[c"--allow-new-privs", c"1000:1000", c"id"]))
            .ok()
            .unwrap();
        assert_eq!(o.spec, Some(&b"1000:1000"[..]));
        assert!(o.allow_new_privs);
        assert_eq!(arg(cmd[0]), b"id");
    }

    #[test]
    fn file_capabilities_told_from_ambient_ones() {
        let caps = |permitted| {
            Ok(sys::Caps {
                permitted,
                ..Default::default()
            })
        };
        let setid = 1 << sys::CAP_SETUID | 1 << sys::CAP_SETGID;
        // podman --user 1000 --cap-add SETUID,SETGID: in the ambient set.
        assert!(!caps_from_file(caps(setid), |c| c == sys::CAP_SETGID as usize));
        // A copy with file capabilities: the kernel emptied the ambient set.
        assert!(caps_from_file(caps(setid), |_| false));
        assert!(!caps_from_file(caps(0), |_| false));
        assert!(caps_from_file(Err(sys::Errno(1)), |_| true));
    }

    #[test]
    fn rejects_bad_options() {
        for bad in [
            &[c"--uid", c"0", c"--", c"x"][..],
            &[c"--uid", c"abc", c"--", c"x"],
            &[c"--uid"],
            &[c"--bogus", c"--", c"x"],
            &[c"--uid", c"5", c"x"],
            &[c"--user", c"a:b", c"--", c"x"],
            &[c"--home", c"rel", c"--", c"x"],
            &[c"--chown", c"rel", c"--", c"x"],
            &[c"--mounted-home", c"/etc", c"--", c"x"],
            &[c"--mounted-home", c"/", c"--", c"x"],
            &[c"--mounted-home", c"/root/../etc", c"--", c"x"],
            &[c"--uid", c"5"],
        ] {
            assert!(parse_options(args(bad)).is_err(), "{bad:?} accepted");
        }
        let nine = [c"--chown", c"/d"].repeat(9);
        assert_eq!(
            err_text(parse_options(args(&nine))),
            "more than 8 --chown paths"
        );
        assert_eq!(
            err_text(parse_options(args(&[c"--uid"]))),
            "--uid needs a value"
        );
        assert_eq!(
            err_text(parse_options(args(&[c"--bogus"]))),
            "unknown option \"--bogus\"; see --help"
        );
    }

    fn env_of(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&[u8]) -> Option<&'static [u8]> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| n.as_bytes() == k)
                .map(|(_, v)| v.as_bytes())
        }
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
