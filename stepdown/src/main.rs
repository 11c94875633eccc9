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
mod files;
mod init;
mod mounts;
mod report;
mod resolve;
#[cfg(harden_stepdown_bin)]
mod rt;
mod sys;
mod text;
mod trust;

use accounts::AccountPlan;
use accounts::{parse_id, IdError, Name, PathText, User};
use core::ffi::{c_char, CStr};
use files::{Static, MAX_ACCOUNT_FILE};
use report::{error, error_e, error_q, error_with, warn, Failed, Vals, NO};
use sys::{EACCES, ENOENT};
use text::Text;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const PASSWD: &CStr = c"/etc/passwd";
const GROUP: &CStr = c"/etc/group";
/// Most --chown paths, and most --match-owner paths, one entrypoint takes.
const MAX_PATHS: usize = 8;
/// Most --writable paths (harden's inference: VOLUMEs, /run, an app's own).
const MAX_WRITABLE: usize = 16;
/// Most supplementary groups of a target user.
const MAX_GROUPS: usize = 256;
/// Most environment variables passed on (the env is rebuilt on the stack).
const MAX_ENV: usize = 4096;
// The big buffers live in .bss, not on the stack: a frame over 4 KiB is
// probed page by page, and each page touched is a page fault at every
// container start. In .bss only the bytes used cost pages. Each is taken once.
static PASSWD_BUF: Static<[u8; MAX_ACCOUNT_FILE]> = Static::new([0; MAX_ACCOUNT_FILE]);
static GROUP_BUF: Static<[u8; MAX_ACCOUNT_FILE]> = Static::new([0; MAX_ACCOUNT_FILE]);
static PLAN: Static<AccountPlan> = Static::new(AccountPlan::new());
static ENVP: Static<[*const c_char; MAX_ENV + 4]> = Static::new([core::ptr::null(); MAX_ENV + 4]);
static ENV_VARS: Static<EnvVars> = Static::new(EnvVars::new());
static CANDIDATE: Static<PathText> = Static::new(PathText::new());

/// HOME=, USER= and LOGNAME= with their values.
type EnvVars = Text<4700>;
/// execvp's PATH when the environment has none (what runtimes set).
const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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

struct Env(Args);

impl Env {
    fn get(&self, name: &[u8]) -> Option<&'static [u8]> {
        self.0.iter().find_map(|p| {
            let value = after_prefix(*p, name)?;
            after_prefix(value, b"=").map(arg)
        })
    }
}

/// What follows `prefix` in the C string `p`, compared in place: measuring the
/// whole variable first (strlen) for every lookup cost more than the rest of
/// the step-down's own work.
fn after_prefix(p: *const c_char, prefix: &[u8]) -> Option<*const c_char> {
    for (i, b) in prefix.iter().enumerate() {
        // Safety: a mismatch at the NUL (prefix has none) stops before the end.
        if unsafe { *p.add(i) } as u8 != *b {
            return None;
        }
    }
    // Safety: the whole prefix matched, so p is at least that long.
    Some(unsafe { p.add(prefix.len()) })
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

/// A setuid/setgid bit or file capabilities would hand root to whoever runs
/// the binary; it must never be installed so. Told without a lookup of
/// /proc/self/exe (which cost more than the rest of the start): a setuid or
/// setgid bit that took effect shows in the IDs; file capabilities in the
/// kernel's AT_SECURE with a non-root caller holding capabilities that did
/// not come through the ambient set. AT_SECURE alone is not enough: an SELinux
/// domain transition without `noatsecure` (a runtime's policy may lack it)
/// sets it too, with nothing gained; and the capabilities of `podman run
/// --user N --cap-add ...` come through the ambient set, which the kernel
/// empties whenever it execs a program with file capabilities.
/// Returns the caller's UID and GID, read here once for the whole start (after
/// execve the saved IDs are the effective ones, which this makes the real ones).
fn refuse_secure_exec(secure: bool) -> report::Result<Caller> {
    // Two calls for the four IDs; an ID that cannot be read counts as raised.
    let ([uid, euid, _], [gid, egid, _]) = (
        sys::resuid().unwrap_or([0, u32::MAX, 0]),
        sys::resgid().unwrap_or([0, u32::MAX, 0]),
    );
    let ids_raised = uid != euid || gid != egid;
    let caps_raised = secure
        && uid != 0
        && caps_from_file(sys::capget(), |cap| {
            sys::prctl(sys::PR_CAP_AMBIENT, sys::PR_CAP_AMBIENT_IS_SET, cap) == Ok(1)
        });
    if ids_raised || caps_raised {
        return Err(error(
            b"refusing to run: started setuid, setgid or with file capabilities",
        ));
    }
    Ok(Caller { uid, gid })
}

#[derive(Clone, Copy)]
struct Caller {
    uid: u32,
    gid: u32,
}

/// Whether a non-root process holds capabilities (`caps`) that came from the
/// file, not through the ambient set (`ambient(cap)`: is cap in it). Without
/// file capabilities a non-root process's permitted set after execve is its
/// ambient set, so one capability tells.
fn caps_from_file(caps: sys::Result<sys::Caps>, ambient: impl Fn(usize) -> bool) -> bool {
    caps.map_or(true, |c| {
        c.permitted != 0 && !ambient(c.permitted.trailing_zeros() as usize)
    })
}

/// The options that take a value, in the order of `Options::values`.
const VALUED: [&[u8]; 10] = [
    b"--user",
    b"--uid",
    b"--gid",
    b"--home",
    b"--uid-env",
    b"--gid-env",
    b"--mounted-home",
    b"--match-owner",
    b"--chown",
    b"--writable",
];
const USER: usize = 0;
const UID: usize = 1;
const GID: usize = 2;
const HOME: usize = 3;
const UID_ENV: usize = 4;
const GID_ENV: usize = 5;
const MOUNTED_HOME: usize = 6;
const MATCH_OWNER: usize = 7;
const CHOWN: usize = 8;
const WRITABLE: usize = 9;

#[derive(Default)]
struct Options {
    /// USER[:GROUP] of the gosu form; None for the entrypoint form.
    spec: Option<&'static [u8]>,
    /// The last value of each option of VALUED before --match-owner (the
    /// repeatable --match-owner, --chown and --writable have lists of their
    /// own).
    values: [Option<&'static CStr>; MATCH_OWNER],
    match_owner: [&'static CStr; MAX_PATHS],
    match_owners: usize,
    uid: Option<u32>,
    gid: Option<u32>,
    chown: [&'static CStr; MAX_PATHS],
    chowns: usize,
    writable: [&'static CStr; MAX_WRITABLE],
    writables: usize,
    allow_new_privs: bool,
    init: bool,
}

impl Options {
    fn get(&self, option: usize) -> Option<&'static [u8]> {
        self.values[option].map(CStr::to_bytes)
    }
}

fn parse_options(args: Args) -> report::Result<(Options, Args)> {
    let mut opts = Options::default();
    let mut valued = false;
    let mut i = 0;
    while let Some(a) = args.get(i).map(|p| arg(*p)) {
        i += 1;
        if a == b"--" {
            return Ok((opts, &args[i..]));
        } else if a == b"--allow-new-privs" {
            opts.allow_new_privs = true;
        } else if a == b"--init" {
            opts.init = true;
        } else if !a.starts_with(b"-") {
            if valued {
                return Err(error_q(b"%q after options: missing \"--\"?", a));
            }
            opts.spec = Some(a);
            return Ok((opts, &args[i..]));
        } else {
            let Some(k) = VALUED.iter().position(|o| *o == a) else {
                return Err(error_q(b"unknown option %q; see --help", a));
            };
            let Some(value) = args.get(i).map(|p| arg_c(*p)) else {
                return Err(error_with(b"%s needs a value", Vals { s: a, ..NO }));
            };
            i += 1;
            valued = true;
            let v = Vals {
                s: a,
                q: value.to_bytes(),
                ..NO
            };
            let path = matches!(k, HOME | MOUNTED_HOME | MATCH_OWNER | CHOWN | WRITABLE);
            if k == USER && !accounts::valid_name(v.q) {
                return Err(error_with(b"%s %q is not a valid user name", v));
            } else if path && !accounts::valid_home(v.q) {
                return Err(error_with(b"%s %q is not an absolute path", v));
            } else if matches!(k, HOME | MOUNTED_HOME) && accounts::home_refused(v.q) {
                return Err(error_with(
                    b"%s %q: not a normalised path, or a system directory",
                    v,
                ));
            } else if matches!(k, CHOWN | WRITABLE) && !accounts::chown_allowed(v.q) {
                return Err(error_with(
                    b"%s %q: refusing to give / or a kernel filesystem to the user",
                    v,
                ));
            }
            match k {
                UID => opts.uid = Some(nonzero_id(a, v.q)?),
                GID => opts.gid = Some(nonzero_id(a, v.q)?),
                MATCH_OWNER if opts.match_owners == MAX_PATHS => {
                    return Err(error(b"more than 8 --match-owner paths"))
                }
                MATCH_OWNER => {
                    opts.match_owner[opts.match_owners] = value;
                    opts.match_owners += 1;
                }
                CHOWN if opts.chowns == MAX_PATHS => {
                    return Err(error(b"more than 8 --chown paths"))
                }
                CHOWN => {
                    opts.chown[opts.chowns] = value;
                    opts.chowns += 1;
                }
                WRITABLE if opts.writables == MAX_WRITABLE => {
                    return Err(error(b"more than 16 --writable paths"))
                }
                WRITABLE => {
                    opts.writable[opts.writables] = value;
                    opts.writables += 1;
                }
                _ => opts.values[k] = Some(value),
            }
        }
    }
    Err(error(b"missing \"--\" and COMMAND"))
}

/// `what` names the source in messages: an option, or "$" and a variable.
fn nonzero_id(what: &[u8], value: &[u8]) -> report::Result<u32> {
    let v = Vals {
        s: what,
        q: value,
        ..NO
    };
    match parse_id(value) {
        Ok(0) => Err(error_with(b"%s is 0: refusing to run as root", v)),
        Ok(id) => Ok(id),
        Err(IdError::NotDecimal) => Err(error_with(b"%s %q is not a decimal ID", v)),
        Err(IdError::TooLarge) => Err(error_with(b"%s %q is larger than 2147483647", v)),
    }
}

/// Target user of the entrypoint form: (uid, gid). Pure, given its inputs.
fn choose_target<'e>(
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

/// HOME, USER and LOGNAME for a caller started as a user: HOME is the
/// `--mounted-home` DIR when something is mounted there (a static-mode
/// image whose user mounts files into `/root`). Else only for a UID
/// /etc/passwd does not list (`docker run --user 1001:1001`), as after a
/// drop to that UID: the runtime gave it HOME=/, where the app finds none of
/// the files mounted into the image's home. Only when HOME is what runtimes
/// give such a UID (unset, `/` from docker, the working directory from
/// podman), and only a baked HOME that is an existing directory; nothing is
/// written.
fn started_user_vars<'a>(
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
fn mounted_home(opts: &Options) -> (Option<&'static [u8]>, Option<mounts::Found>) {
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
fn bad_line(file: &CStr, bad: accounts::BadLine, name: &[u8]) -> Failed {
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
fn owner_of(path: &CStr) -> report::Result<Option<(u32, u32)>> {
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

struct Target<'a> {
    uid: u32,
    gid: u32,
    /// Sorted, without duplicates.
    groups: [u32; MAX_GROUPS],
    ngroups: usize,
    name: Name,
    home: &'a [u8],
}

/// Docker's `--user` syntax: `user`, `uid`, `user:group`, `uid:gid`, `:gid`.
/// `group` reads /etc/group: called only for a group name, or for the
/// supplementary groups of a user found in /etc/passwd.
fn resolve_spec<'a, 'g>(
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
fn keep_runtime_groups(ids: &mut [u32], passwd: Option<&[u8]>, group: Option<&[u8]>) -> usize {
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
fn sort_unique(ids: &mut [u32]) -> usize {
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

fn has_cap(caps: &sys::Caps, cap: u32) -> bool {
    caps.effective & (1 << cap) != 0
}

/// Without CAP_SETUID/CAP_SETGID (e.g. `--cap-drop=ALL`, Kubernetes' restricted
/// profile) the drop cannot work: say so before touching anything.
fn require_setid_caps() -> report::Result<()> {
    let caps = sys::capget().map_err(|e| error_e(b"capget failed%e", e))?;
    for (cap, name) in [
        (sys::CAP_SETUID, &b"CAP_SETUID"[..]),
        (sys::CAP_SETGID, b"CAP_SETGID"),
    ] {
        if !has_cap(&caps, cap) {
            return Err(error_with(
                b"cannot drop privileges: %s is missing; the command was not run",
                Vals { s: name, ..NO },
            ));
        }
    }
    Ok(())
}

/// Before the drop: empties the bounding set (what a later execve of a
/// setuid-root or file-capability program could regain) and the
/// inheritable and ambient sets (what would pass through execve). Returns
/// whether the bounding set was emptied (it needs CAP_SETPCAP).
fn clear_inheritable_caps(no_new_privs: bool) -> report::Result<bool> {
    let caps = sys::capget().map_err(|e| error_e(b"capget failed%e", e))?;
    if has_cap(&caps, sys::CAP_SETPCAP) {
        // Root's execve made the permitted set the bounding set plus the
        // inheritable one (unless SECBIT_NOROOT; the caller runs this as
        // root only), so with the inheritable set empty the bounding set is
        // known without reading it, one system call per capability.
        let known = caps.inheritable == 0
            && sys::prctl(sys::PR_GET_SECUREBITS, 0, 0).is_ok_and(|b| b & sys::SECBIT_NOROOT == 0);
        for cap in 0..64 {
            // Otherwise each is read first: a read costs a quarter of a drop
            // (which commits new credentials), and a container's set holds few.
            let held = if known {
                Ok(caps.permitted >> cap & 1)
            } else {
                sys::prctl(sys::PR_CAPBSET_READ, cap, 0).map(|b| b as u64)
            };
            match held {
                Ok(0) => {}
                Ok(_) => sys::prctl(sys::PR_CAPBSET_DROP, cap, 0)
                    .map(drop)
                    .map_err(|e| error_e(b"cannot clear the bounding set%e", e))?,
                Err(_) => break, // EINVAL: past the kernel's last capability
            }
        }
    } else if !no_new_privs {
        // With no_new_privs no execve can gain privileges, so the bounding set
        // is moot; without it, it is the last line.
        return Err(error(b"cannot clear the bounding set: CAP_SETPCAP is missing (needed with --allow-new-privs)"));
    }
    // The ambient set is never more than permitted ∩ inheritable (the kernel
    // keeps it so), so with the inheritable set empty it is empty too: no
    // PR_CAP_AMBIENT_CLEAR_ALL, which would commit new credentials for nothing.
    let bounding = has_cap(&caps, sys::CAP_SETPCAP);
    if caps.inheritable == 0 {
        return Ok(bounding); // capset would commit new credentials for nothing too
    }
    // Lowering the inheritable set lowers the ambient set with it.
    sys::capset(sys::Caps {
        inheritable: 0,
        ..caps
    })
    .map_err(|e| error_e(b"cannot clear inheritable capabilities%e", e))?;
    Ok(bounding)
}

/// setgroups → setresgid → setresuid, then proves the result. Order matters:
/// after setuid the process can no longer change its groups. `groups` is
/// sorted and free of duplicates. `from_root`: root drops to a user, so the
/// bounding, inheritable and ambient sets are cleared first.
fn drop_privileges(
    from_root: bool,
    uid: u32,
    gid: u32,
    groups: &[u32],
    no_new_privs: bool,
) -> report::Result<()> {
    let bounding_cleared = from_root && clear_inheritable_caps(no_new_privs)?;
    sys::set_groups(groups).map_err(|e| error_e(b"setgroups failed%e", e))?;
    sys::set_all_gids(gid).map_err(|e| {
        error_with(
            b"setresgid(%n) failed%e",
            Vals {
                n: gid,
                e: Some(e),
                ..NO
            },
        )
    })?;
    sys::set_all_uids(uid).map_err(|e| {
        error_with(
            b"setresuid(%n) failed%e",
            Vals {
                n: uid,
                e: Some(e),
                ..NO
            },
        )
    })?;

    let stuck = sys::resuid() == Ok([uid; 3]) && sys::resgid() == Ok([gid; 3]);
    if !stuck {
        return Err(not_stuck(b""));
    }
    let mut buf = [0u32; MAX_GROUPS + 1];
    let len = sys::groups(&mut buf)
        .map_err(|e| error_e(b"getgroups failed%e", e))?
        .len();
    let len = sort_unique(&mut buf[..len]);
    if buf[..len] != *groups {
        return Err(not_stuck(b": groups"));
    }
    // GID 0 asked for (`1000:0`, OpenShift's convention; or a passwd entry's
    // primary group) is no privilege regained: only a GID that was given up counts.
    if uid != 0 && (sys::set_all_uids(0).is_ok() || gid != 0 && sys::set_all_gids(0).is_ok()) {
        return Err(not_stuck(b": root regained"));
    }
    if no_new_privs {
        set_no_new_privs()?;
    }
    if uid != 0 && sys::capget() != Ok(sys::Caps::default()) {
        return Err(not_stuck(b": capabilities"));
    }
    // The other two sets, read back: the bounding set where it was emptied
    // (without CAP_SETPCAP it stays, moot under no_new_privs), the ambient
    // set always.
    for cap in 0..64 {
        let bounding = match sys::prctl(sys::PR_CAPBSET_READ, cap, 0) {
            Ok(held) => held,
            Err(_) => break, // EINVAL: past the kernel's last capability
        };
        if bounding_cleared && bounding != 0 {
            return Err(not_stuck(b": bounding set"));
        }
        if sys::prctl(sys::PR_CAP_AMBIENT, sys::PR_CAP_AMBIENT_IS_SET, cap) != Ok(0) {
            return Err(not_stuck(b": ambient set"));
        }
    }
    Ok(())
}

/// "privilege drop did not stick" and what did not: one copy of the words.
#[inline(never)]
fn not_stuck(what: &[u8]) -> Failed {
    error_with(b"privilege drop did not stick%s", Vals { s: what, ..NO })
}

fn set_no_new_privs() -> report::Result<()> {
    sys::prctl(sys::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(|e| error_e(b"no_new_privs%e", e))?;
    if sys::prctl(sys::PR_GET_NO_NEW_PRIVS, 0, 0) != Ok(1) {
        return Err(not_stuck(b": no_new_privs"));
    }
    Ok(())
}

/// Execs COMMAND (or, with --init, supervises it as a child) with HOME, USER
/// and LOGNAME set from `vars` = [home, name]. The environment is rebuilt on
/// this stack frame, which lives until execve.
fn run_command(command: Args, env: &Env, vars: Option<[&[u8]; 2]>, init: bool) -> ! {
    // Safety: taken once; run_command does not return.
    let (envp, set) = unsafe { (ENVP.take(), ENV_VARS.take()) };
    // Written before it is read: a read first maps the zero page, and the
    // first write then faults a second time.
    set.clear();
    let mut n = 0;
    let ours: [&[u8]; 3] = [b"HOME=", b"USER=", b"LOGNAME="];
    for p in env.0 {
        if vars.is_some() && ours.iter().any(|v| after_prefix(*p, v).is_some()) {
            continue;
        }
        if n == MAX_ENV {
            fail(b"more than 4096 environment variables", NO);
        }
        envp[n] = *p;
        n += 1;
    }
    // "HOME=...\0USER=...\0LOGNAME=...\0", pointed to by the last three entries.
    if let Some([home, name]) = vars {
        for (var, value) in ours.into_iter().zip([home, name, name]) {
            envp[n] = set.as_bytes()[set.len()..].as_ptr().cast();
            n += 1;
            set.push(var);
            set.push(value);
            set.push(b"\0");
        }
        if !set.whole() {
            fail(b"HOME or USER is too long", NO);
        }
    }
    let path = env.get(b"PATH");
    let envp = envp.as_ptr();
    if init {
        init::supervise(|| exec(command, envp, path))
    }
    exec(command, envp, path)
}

/// execvp(3): a name without '/' is searched in PATH. Never returns: on
/// failure it exits 127 (not found) or 126 (not runnable), as a shell does.
fn exec(command: Args, envp: *const *const c_char, path: Option<&[u8]>) -> ! {
    let file = arg(command[0]);
    let argv = command.as_ptr();
    #[allow(clippy::manual_contains)] // see Text::c_str
    let err = if file.iter().any(|b| *b == b'/') {
        sys::execve(arg_c(command[0]), argv, envp)
    } else if file.is_empty() {
        ENOENT
    } else {
        let mut denied = false;
        let mut err = ENOENT;
        // Safety: taken once; exec does not return.
        let full = unsafe { CANDIDATE.take() };
        for dir in path.unwrap_or(DEFAULT_PATH).split(|b| *b == b':') {
            full.clear();
            full.push(if dir.is_empty() { b"." } else { dir });
            full.push(b"/");
            full.push(file);
            let Some(full) = full.c_str() else { continue };
            match sys::execve(full, argv, envp) {
                EACCES => denied = true,
                // As glibc: keep looking past these, stop at anything else.
                ENOENT | sys::ENOTDIR | sys::Errno(19 | 110 | 116) => {}
                e => {
                    err = e;
                    break;
                }
            }
        }
        if denied && err == ENOENT {
            EACCES
        } else {
            err
        }
    };
    error_with(
        b"cannot run %q%e",
        Vals {
            q: file,
            e: Some(err),
            ..NO
        },
    );
    sys::exit(if err == ENOENT { 127 } else { 126 })
}

#[cfg(test)]
mod tests {
    use super::*;

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
