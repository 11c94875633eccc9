//! harden-stepdown: start as root, become an unprivileged user, exec the command.
//!
//! Two forms:
//!   harden-stepdown [--allow-new-privs] USER[:GROUP] COMMAND [ARG...]   (gosu/su-exec drop-in)
//!   harden-stepdown [OPTIONS] -- COMMAND [ARG...]                       (entrypoint of hardened images)
//!
//! It fails closed: when any part of the privilege drop fails, it exits 1 and
//! never runs COMMAND.

mod accounts;
mod sys;

use accounts::{Group, User};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{exit, Command};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Bound on what is read from /etc/passwd and /etc/group.
const MAX_ACCOUNT_FILE: u64 = 4 << 20;
const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

const HELP: &str = "\
harden-stepdown: drop root privileges, then exec a command

Usage:
  harden-stepdown [--allow-new-privs] USER[:GROUP] COMMAND [ARG...]
  harden-stepdown [OPTIONS] -- COMMAND [ARG...]

The first form is a drop-in for gosu and su-exec: USER and GROUP are names
(looked up in /etc/passwd and /etc/group, never through NSS) or numbers. An
unknown name is an error. A number without a passwd entry gets GID = UID.

The second form is the entrypoint harden writes into images. Started as a
non-root user it just execs COMMAND. Started as root it picks the target user
(first match wins): $HARDEN_UID/$HARDEN_GID, the owner of --match-owner PATH,
then --uid/--gid; adds the user to /etc/passwd and /etc/group when missing,
creates HOME, drops privileges and execs COMMAND.

Options:
  --user NAME          name for the user (default: app)
  --uid N, --gid N     default target IDs (default: NAME's entry, else 1000; GID = UID)
  --home DIR           home directory (default: /home/NAME)
  --uid-env VAR        variable holding the UID (default: HARDEN_UID)
  --gid-env VAR        variable holding the GID (default: HARDEN_GID)
  --match-owner PATH   use the owner of PATH when it exists and is not root
  --allow-new-privs    do not set no_new_privs (lets setuid programs like sudo work)
  --version, --help

Exit status: COMMAND's own, 1 when the step-down failed (COMMAND was not run),
126 when COMMAND is not executable, 127 when it was not found.
";

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Err(msg) = run(args) {
        eprintln!("harden-stepdown: {msg}");
        exit(1);
    }
}

fn run(args: Vec<OsString>) -> Result<(), String> {
    refuse_setuid_self()?;
    match args.first().and_then(|a| a.to_str()) {
        None => Err("missing arguments; see --help".into()),
        Some("--help") | Some("-h") => {
            print!("{HELP}");
            Ok(())
        }
        Some("--version") => {
            println!("harden-stepdown {VERSION}");
            Ok(())
        }
        Some(_) => {
            let (opts, command) = parse_options(args)?;
            match &opts.spec {
                Some(spec) => gosu_form(spec, &opts, command),
                None => entrypoint_form(&opts, command),
            }
        }
    }
}

/// Setuid would hand root to whoever runs the binary; it must never be installed so.
fn refuse_setuid_self() -> Result<(), String> {
    let setid_bits = fs::metadata("/proc/self/exe")
        .map(|m| m.mode() & 0o6000 != 0)
        .unwrap_or(false);
    if setid_bits || sys::uid() != sys::euid() || sys::gid() != sys::egid() {
        return Err("refusing to run: this binary carries a setuid/setgid bit".into());
    }
    Ok(())
}

#[derive(Debug, Default, PartialEq)]
struct Options {
    /// USER[:GROUP] of the gosu form; None for the entrypoint form.
    spec: Option<String>,
    user: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    home: Option<String>,
    uid_env: Option<String>,
    gid_env: Option<String>,
    match_owner: Option<String>,
    allow_new_privs: bool,
}

fn parse_options(args: Vec<OsString>) -> Result<(Options, Vec<OsString>), String> {
    let mut opts = Options::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("option {:?} is not UTF-8", a))?;
        if arg == "--" {
            return Ok((opts, it.collect()));
        }
        if arg == "--allow-new-privs" {
            opts.allow_new_privs = true;
            continue;
        }
        if !arg.starts_with('-') {
            if opts
                != (Options {
                    allow_new_privs: opts.allow_new_privs,
                    ..Options::default()
                })
            {
                return Err(format!("USER[:GROUP] form takes no options but --allow-new-privs; got {arg:?} after options (missing \"--\"?)"));
            }
            opts.spec = Some(arg);
            return Ok((opts, it.collect()));
        }
        let mut value = || {
            it.next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--user" => {
                let v = value()?;
                if !accounts::valid_name(&v) {
                    return Err(format!(
                        "--user {:?} is not a valid user name",
                        accounts::shorten(&v)
                    ));
                }
                opts.user = Some(v)
            }
            "--uid" => opts.uid = Some(nonzero_id("--uid", &value()?)?),
            "--gid" => opts.gid = Some(nonzero_id("--gid", &value()?)?),
            "--home" => {
                let v = value()?;
                if !accounts::valid_home(&v) {
                    return Err(format!(
                        "--home {:?} is not an absolute path",
                        accounts::shorten(&v)
                    ));
                }
                opts.home = Some(v)
            }
            "--uid-env" => opts.uid_env = Some(value()?),
            "--gid-env" => opts.gid_env = Some(value()?),
            "--match-owner" => opts.match_owner = Some(value()?),
            _ => return Err(format!("unknown option {arg:?}; see --help")),
        }
    }
    Err("missing \"--\" and COMMAND".into())
}

fn nonzero_id(what: &str, value: &str) -> Result<u32, String> {
    match accounts::parse_id(value)? {
        0 => Err(format!("{what} is 0: refusing to run as root")),
        id => Ok(id),
    }
}

/// Target user of the entrypoint form: (uid, gid). Pure, given its inputs.
fn choose_target(
    opts: &Options,
    env: impl Fn(&str) -> Option<OsString>,
    owner: Option<(u32, u32)>,
    named: Option<&User>,
) -> Result<(u32, u32), String> {
    let from_env = |name: &str| -> Result<Option<u32>, String> {
        match env(name) {
            None => Ok(None),
            Some(v) => {
                let v = v
                    .into_string()
                    .map_err(|_| format!("${name} is not UTF-8"))?;
                nonzero_id(&format!("${name}"), &v)
                    .map(Some)
                    .map_err(|e| format!("${name}: {e}"))
            }
        }
    };
    let env_uid = from_env(opts.uid_env.as_deref().unwrap_or("HARDEN_UID"))?;
    let env_gid = from_env(opts.gid_env.as_deref().unwrap_or("HARDEN_GID"))?;
    let (uid, gid) = if let Some(uid) = env_uid {
        (uid, uid)
    } else if let Some((uid, gid)) = owner.filter(|(uid, _)| *uid != 0) {
        // A directory with group root says nothing about the group: never hand out GID 0.
        (uid, if gid == 0 { uid } else { gid })
    } else if let Some(uid) = opts.uid {
        (uid, opts.gid.unwrap_or(uid))
    } else if let Some(user) = named.filter(|u| u.uid != 0) {
        (
            user.uid,
            opts.gid
                .unwrap_or(if user.gid == 0 { user.uid } else { user.gid }),
        )
    } else {
        (1000, opts.gid.unwrap_or(1000))
    };
    Ok((uid, env_gid.unwrap_or(gid)))
}

fn entrypoint_form(opts: &Options, command: Vec<OsString>) -> Result<(), String> {
    if command.is_empty() {
        return Err("no COMMAND after \"--\"".into());
    }
    if sys::uid() != 0 {
        // Started as a user already (docker run --user): nothing to drop.
        return exec(command, &[]);
    }
    let passwd = read_account_file(PASSWD);
    let group = read_account_file(GROUP);
    let wanted = opts.user.as_deref().unwrap_or("app");
    let named = passwd
        .as_deref()
        .and_then(|p| accounts::users(p).find(|u| u.name == wanted));
    let owner = opts
        .match_owner
        .as_ref()
        .and_then(|p| fs::metadata(p).ok())
        .map(|m| (m.uid(), m.gid()));
    let (uid, gid) = choose_target(opts, |n| std::env::var_os(n), owner, named.as_ref())?;
    require_setid_caps()?;

    let plan = accounts::plan_accounts(
        passwd.as_deref(),
        group.as_deref(),
        uid,
        gid,
        wanted,
        opts.home.as_deref(),
    );
    if let Some(content) = &plan.passwd {
        write_account_file(PASSWD, content);
    }
    if let Some(content) = &plan.group {
        write_account_file(GROUP, content);
    }
    prepare_home(&plan.home, uid, gid);
    drop_privileges(uid, gid, &[gid], !opts.allow_new_privs)?;
    exec(
        command,
        &[
            ("HOME", &plan.home),
            ("USER", &plan.name),
            ("LOGNAME", &plan.name),
        ],
    )
}

fn gosu_form(spec: &str, opts: &Options, command: Vec<OsString>) -> Result<(), String> {
    if command.is_empty() {
        return Err(format!("no COMMAND after {spec:?}"));
    }
    let passwd = read_account_file(PASSWD).unwrap_or_default();
    let group = read_account_file(GROUP).unwrap_or_default();
    let target = resolve_spec(spec, &passwd, &group, sys::uid())?;
    if target.uid != 0 {
        require_setid_caps()?;
    }
    drop_privileges(
        target.uid,
        target.gid,
        &target.groups,
        !opts.allow_new_privs,
    )?;
    exec(
        command,
        &[
            ("HOME", &target.home),
            ("USER", &target.name),
            ("LOGNAME", &target.name),
        ],
    )
}

#[derive(Debug, PartialEq)]
struct Target {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    name: String,
    home: String,
}

/// Docker's `--user` syntax: `user`, `uid`, `user:group`, `uid:gid`, `:gid`.
fn resolve_spec(spec: &str, passwd: &str, group: &str, current_uid: u32) -> Result<Target, String> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() {
        current_uid.to_string()
    } else {
        user_part.to_string()
    };
    let entry = if user_part.bytes().all(|b| b.is_ascii_digit()) {
        let uid = accounts::parse_id(&user_part)?;
        accounts::users(passwd).find(|u| u.uid == uid).ok_or(uid)
    } else {
        Ok(accounts::users(passwd)
            .find(|u| u.name == user_part)
            .ok_or_else(|| {
                format!(
                    "unknown user {:?} (not in {PASSWD})",
                    accounts::shorten(&user_part)
                )
            })?)
    };
    let (uid, name, home, primary) = match &entry {
        Ok(u) => (u.uid, u.name.clone(), u.home.clone(), u.gid),
        // A bare number: GID = UID, never GID 0 as gosu does.
        Err(uid) => (*uid, uid.to_string(), "/".to_string(), *uid),
    };
    let home = if home.is_empty() { "/".into() } else { home };
    let (gid, groups) = match group_part {
        Some(g) if !g.is_empty() => {
            let gid = if g.bytes().all(|b| b.is_ascii_digit()) {
                accounts::parse_id(g)?
            } else {
                accounts::groups(group)
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| {
                        format!("unknown group {:?} (not in {GROUP})", accounts::shorten(g))
                    })?
            };
            (gid, vec![gid])
        }
        Some(_) => return Err(format!("empty group in {spec:?}")),
        None => {
            // Like initgroups(3): the primary group plus every group listing the user.
            let mut groups = vec![primary];
            if entry.is_ok() {
                groups.extend(
                    accounts::groups(group)
                        .filter(|g: &Group| g.members.contains(&name))
                        .map(|g| g.gid),
                );
            }
            groups.sort_unstable();
            groups.dedup();
            (primary, groups)
        }
    };
    Ok(Target {
        uid,
        gid,
        groups,
        name,
        home,
    })
}

/// None when the file is missing or unreadable; content past the bound is not read.
fn read_account_file(path: &str) -> Option<String> {
    use std::io::Read;
    let file = fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_ACCOUNT_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Replaces `path` atomically (temp file + rename), keeping its mode and owner.
/// Failure is not fatal: a read-only root filesystem is a supported setup.
fn write_account_file(path: &str, content: &str) {
    if let Err(e) = replace_file(Path::new(path), content.as_bytes()) {
        if e.raw_os_error() != Some(30) {
            // 30 = EROFS: silently fine. Anything else deserves a word.
            eprintln!("harden-stepdown: warning: cannot update {path}: {e}");
        }
    }
}

fn replace_file(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let (mode, owner) = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io::Error::other("it is a symbolic link; left alone"))
        }
        // Everyone must be able to read the account files: podman creates them 0600.
        Ok(m) => (
            m.permissions().mode() & 0o7777 | 0o444,
            Some((m.uid(), m.gid())),
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !dir.exists() {
                fs::DirBuilder::new().mode(0o755).create(dir)?;
            }
            (0o644, None)
        }
        Err(e) => return Err(e),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.harden-{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(content)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates HOME when missing and gives it to the user (never recursively).
/// A root-owned HOME is taken over too: a bind mount below HOME makes the
/// runtime create HOME as root.
fn prepare_home(home: &str, uid: u32, gid: u32) {
    if home == "/" || home.starts_with("/nonexistent") || home.starts_with("/proc") {
        return;
    }
    let result = match fs::symlink_metadata(home) {
        Ok(m) if m.is_dir() && m.uid() == 0 => {
            std::os::unix::fs::lchown(home, Some(uid), Some(gid))
        }
        Ok(_) => Ok(()),
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(home)
            .and_then(|_| std::os::unix::fs::lchown(home, Some(uid), Some(gid))),
    };
    if let Err(e) = result {
        if e.raw_os_error() != Some(30) {
            eprintln!("harden-stepdown: warning: cannot prepare HOME {home}: {e}");
        }
    }
}

/// Without CAP_SETUID/CAP_SETGID (e.g. `--cap-drop=ALL`, Kubernetes' restricted
/// profile) the drop cannot work: say so before touching anything.
fn require_setid_caps() -> Result<(), String> {
    for (cap, name) in [
        (sys::CAP_SETUID, "CAP_SETUID"),
        (sys::CAP_SETGID, "CAP_SETGID"),
    ] {
        match sys::has_effective_cap(cap) {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "cannot drop privileges: {name} is missing (container started as root with capabilities dropped); refusing to run the command as root"
                ))
            }
            Err(e) => return Err(format!("capget failed: {e}")),
        }
    }
    Ok(())
}

/// setgroups → setresgid → setresuid, then proves the result. Order matters:
/// after setuid the process can no longer change its groups.
fn drop_privileges(uid: u32, gid: u32, groups: &[u32], no_new_privs: bool) -> Result<(), String> {
    sys::set_groups(groups).map_err(|e| format!("setgroups({groups:?}) failed: {e}"))?;
    sys::set_all_gids(gid).map_err(|e| format!("setresgid({gid}) failed: {e}"))?;
    sys::set_all_uids(uid).map_err(|e| format!("setresuid({uid}) failed: {e}"))?;

    let uids = sys::resuid().map_err(|e| format!("getresuid failed: {e}"))?;
    let gids = sys::resgid().map_err(|e| format!("getresgid failed: {e}"))?;
    if uids != [uid; 3] || gids != [gid; 3] {
        return Err(format!(
            "privilege drop did not stick: uids {uids:?}, gids {gids:?}"
        ));
    }
    let mut now = sys::groups().map_err(|e| format!("getgroups failed: {e}"))?;
    let mut want = groups.to_vec();
    now.sort_unstable();
    want.sort_unstable();
    want.dedup();
    if now != want {
        return Err(format!(
            "supplementary groups are {now:?}, expected {want:?}"
        ));
    }
    if uid != 0 && (sys::set_all_uids(0).is_ok() || sys::set_all_gids(0).is_ok()) {
        return Err("root could be regained after the drop".into());
    }
    if no_new_privs {
        sys::set_no_new_privs().map_err(|e| format!("prctl(PR_SET_NO_NEW_PRIVS) failed: {e}"))?;
        if !sys::no_new_privs().unwrap_or(false) {
            return Err("no_new_privs is not set after prctl".into());
        }
    }
    Ok(())
}

/// Replaces this process with COMMAND (it keeps PID 1 and gets signals directly).
fn exec(command: Vec<OsString>, env: &[(&str, &str)]) -> Result<(), String> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let err = cmd.exec();
    // As a shell does: 127 for not found, 126 for found but not runnable.
    let code = if err.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    eprintln!(
        "harden-stepdown: cannot run {:?}: {err}",
        command[0].to_string_lossy()
    );
    exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn opts(list: &[&str]) -> Options {
        parse_options(args(list)).unwrap().0
    }

    #[test]
    fn parses_both_forms() {
        let (o, cmd) =
            parse_options(args(&["--uid", "42", "--user", "aws", "--", "ls", "-l"])).unwrap();
        assert_eq!(
            (o.uid, o.user.as_deref(), o.spec),
            (Some(42), Some("aws"), None)
        );
        assert_eq!(cmd, args(&["ls", "-l"]));
        let (o, cmd) = parse_options(args(&["--allow-new-privs", "1000:1000", "id"])).unwrap();
        assert_eq!(o.spec.as_deref(), Some("1000:1000"));
        assert!(o.allow_new_privs);
        assert_eq!(cmd, args(&["id"]));
    }

    #[test]
    fn rejects_bad_options() {
        for bad in [
            &["--uid", "0", "--", "x"][..],
            &["--uid", "abc", "--", "x"],
            &["--uid"],
            &["--bogus", "--", "x"],
            &["--uid", "5", "x"],
            &["--user", "a:b", "--", "x"],
            &["--home", "rel", "--", "x"],
            &["--uid", "5"],
        ] {
            assert!(parse_options(args(bad)).is_err(), "{bad:?} accepted");
        }
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
    }

    #[test]
    fn target_env_beats_owner_beats_default() {
        let o = opts(&["--uid", "2000", "--"]);
        assert_eq!(choose_target(&o, env_of(&[]), None, None), Ok((2000, 2000)));
        assert_eq!(
            choose_target(&o, env_of(&[]), Some((4321, 99)), None),
            Ok((4321, 99))
        );
        assert_eq!(
            choose_target(&o, env_of(&[]), Some((0, 0)), None),
            Ok((2000, 2000))
        );
        assert_eq!(
            choose_target(&o, env_of(&[]), Some((4321, 0)), None),
            Ok((4321, 4321))
        );
        assert_eq!(
            choose_target(
                &o,
                env_of(&[("HARDEN_UID", "1234")]),
                Some((4321, 99)),
                None
            ),
            Ok((1234, 1234))
        );
        assert_eq!(
            choose_target(
                &o,
                env_of(&[("HARDEN_UID", "1234"), ("HARDEN_GID", "55")]),
                None,
                None
            ),
            Ok((1234, 55))
        );
        assert_eq!(
            choose_target(&opts(&["--"]), env_of(&[]), None, None),
            Ok((1000, 1000))
        );
    }

    #[test]
    fn target_uses_named_image_user_when_no_uid_given() {
        let node = User {
            name: "node".into(),
            uid: 1001,
            gid: 1002,
            home: "/home/node".into(),
        };
        let o = opts(&["--user", "node", "--"]);
        assert_eq!(
            choose_target(&o, env_of(&[]), None, Some(&node)),
            Ok((1001, 1002))
        );
    }

    #[test]
    fn target_env_names_are_configurable_and_values_checked() {
        let o = opts(&["--uid-env", "AWS_UID", "--gid-env", "AWS_GID", "--"]);
        assert_eq!(
            choose_target(&o, env_of(&[("AWS_UID", "501")]), None, None),
            Ok((501, 501))
        );
        assert_eq!(
            choose_target(&o, env_of(&[("HARDEN_UID", "501")]), None, None),
            Ok((1000, 1000))
        );
        for bad in ["0", "", "1000; rm -rf /", "12\n", "4294967295", "-1"] {
            let env = move |k: &str| (k == "AWS_UID").then(|| OsString::from(bad));
            assert!(
                choose_target(&o, env, None, None).is_err(),
                "{bad:?} accepted"
            );
        }
        let env = |k: &str| (k == "AWS_GID").then(|| OsString::from("0"));
        assert!(choose_target(&o, env, None, None).is_err());
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:app\n";

    #[test]
    fn spec_resolution_like_gosu_but_never_gid_zero() {
        let t = resolve_spec("app", PASSWD, GROUP, 0).unwrap();
        assert_eq!(
            (t.uid, t.gid, t.groups.clone()),
            (1000, 1000, vec![50, 1000])
        );
        assert_eq!(t.home, "/home/app");
        let t = resolve_spec("4242", PASSWD, GROUP, 0).unwrap();
        assert_eq!((t.uid, t.gid, t.groups), (4242, 4242, vec![4242]));
        let t = resolve_spec("1000:50", PASSWD, GROUP, 0).unwrap();
        assert_eq!((t.uid, t.gid, t.groups), (1000, 50, vec![50]));
        let t = resolve_spec("app:staff", PASSWD, GROUP, 0).unwrap();
        assert_eq!((t.gid, t.groups), (50, vec![50]));
        let t = resolve_spec(":50", PASSWD, GROUP, 0).unwrap();
        assert_eq!((t.uid, t.gid, t.name.as_str()), (0, 50, "root"));
        assert!(resolve_spec("nobody-here", PASSWD, GROUP, 0).is_err());
        assert!(resolve_spec("app:nogroup", PASSWD, GROUP, 0).is_err());
        assert!(resolve_spec("app:", PASSWD, GROUP, 0).is_err());
        assert!(resolve_spec("99999999999", PASSWD, GROUP, 0).is_err());
    }
}
