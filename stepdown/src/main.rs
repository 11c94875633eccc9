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

/// Helpers of the modules' unit tests.
#[cfg(test)]
mod testing {
    use super::*;

    /// argv as the kernel gives it: pointers to NUL-terminated strings, NULL after the last.
    pub fn args(list: &[&'static CStr]) -> Args {
        let mut v: Vec<*const c_char> = list.iter().map(|s| s.as_ptr()).collect();
        v.push(core::ptr::null());
        let v: &'static [*const c_char] = Vec::leak(v);
        &v[..list.len()]
    }

    pub fn opts(list: &[&'static CStr]) -> Options {
        parse_options(args(list)).ok().unwrap().0
    }

    /// The message of a failure, without prefix and newline.
    pub fn err_text<T>(r: report::Result<T>) -> String {
        assert!(r.is_err(), "accepted");
        let line = report::last();
        line.trim_start_matches("harden-stepdown: ")
            .trim_end()
            .to_string()
    }

    pub fn env_of(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&[u8]) -> Option<&'static [u8]> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| n.as_bytes() == k)
                .map(|(_, v)| v.as_bytes())
        }
    }
}
