//! Running the command: the environment rebuilt with HOME, USER and
//! LOGNAME, execvp's PATH search, and --init's supervision.

use crate::accounts::PathText;
use crate::files::Static;
use crate::report::{error_with, Vals, NO};
use crate::sys::{EACCES, ENOENT};
use crate::text::Text;
use crate::{arg, arg_c, fail, init, sys, Args};
use core::ffi::c_char;

/// Most environment variables passed on (the env is rebuilt on the stack).
const MAX_ENV: usize = 4096;

static ENVP: Static<[*const c_char; MAX_ENV + 4]> = Static::new([core::ptr::null(); MAX_ENV + 4]);

static ENV_VARS: Static<EnvVars> = Static::new(EnvVars::new());

static CANDIDATE: Static<PathText> = Static::new(PathText::new());

/// HOME=, USER= and LOGNAME= with their values.
type EnvVars = Text<4700>;

/// execvp's PATH when the environment has none (what runtimes set).
const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(crate) struct Env(pub(crate) Args);

impl Env {
    pub(crate) fn get(&self, name: &[u8]) -> Option<&'static [u8]> {
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

/// Execs COMMAND (or, with --init, supervises it as a child) with HOME, USER
/// and LOGNAME set from `vars` = [home, name]. The environment is rebuilt on
/// this stack frame, which lives until execve.
pub(crate) fn run_command(command: Args, env: &Env, vars: Option<[&[u8]; 2]>, init: bool) -> ! {
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
pub(crate) fn exec(command: Args, envp: *const *const c_char, path: Option<&[u8]>) -> ! {
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
