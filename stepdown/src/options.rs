//! The entrypoint form's options: parsed once, each value checked as it
//! is read (a bad one stops the start before anything is changed).

use crate::accounts::{parse_id, IdError};
use crate::report::{error, error_q, error_with, Vals, NO};
use crate::{accounts, arg, arg_c, report, Args};
use core::ffi::CStr;

/// Most --chown paths, and most --match-owner paths, one entrypoint takes.
const MAX_PATHS: usize = 8;

/// Most --writable paths (harden's inference: VOLUMEs, /run, an app's own).
const MAX_WRITABLE: usize = 16;

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

pub(crate) const USER: usize = 0;

pub(crate) const UID: usize = 1;

pub(crate) const GID: usize = 2;

pub(crate) const HOME: usize = 3;

pub(crate) const UID_ENV: usize = 4;

pub(crate) const GID_ENV: usize = 5;

pub(crate) const MOUNTED_HOME: usize = 6;

const MATCH_OWNER: usize = 7;

const CHOWN: usize = 8;

const WRITABLE: usize = 9;

#[derive(Default)]
pub(crate) struct Options {
    /// USER[:GROUP] of the gosu form; None for the entrypoint form.
    pub(crate) spec: Option<&'static [u8]>,
    /// The last value of each option of VALUED before --match-owner (the
    /// repeatable --match-owner, --chown and --writable have lists of their
    /// own).
    pub(crate) values: [Option<&'static CStr>; MATCH_OWNER],
    pub(crate) match_owner: [&'static CStr; MAX_PATHS],
    pub(crate) match_owners: usize,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) chown: [&'static CStr; MAX_PATHS],
    pub(crate) chowns: usize,
    pub(crate) writable: [&'static CStr; MAX_WRITABLE],
    pub(crate) writables: usize,
    pub(crate) allow_new_privs: bool,
    pub(crate) init: bool,
}

impl Options {
    pub(crate) fn get(&self, option: usize) -> Option<&'static [u8]> {
        self.values[option].map(CStr::to_bytes)
    }
}

pub(crate) fn parse_options(args: Args) -> report::Result<(Options, Args)> {
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
pub(crate) fn nonzero_id(what: &[u8], value: &[u8]) -> report::Result<u32> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arg;
    use crate::testing::{args, err_text};

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
}
