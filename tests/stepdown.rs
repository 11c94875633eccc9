//! The step-down binary alone, run as root on the host in its gosu/su-exec
//! form (that form never edits /etc, so the host is left as it was).

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

fn stepdown() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = scratch("stepdown-bin");
        let path = dir.join("harden-stepdown");
        let out = harden(&["stepdown-binary", "-o", path.to_str().unwrap()]);
        assert!(out.status.success(), "{:?}", text(&out));
        assert_eq!(unsafe_uid(), 0, "these tests run as root, as CI does");
        path
    })
}

fn unsafe_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    // A PATH the target user can search (root's may include /root/...).
    Command::new(stepdown())
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{args:?}: {o}{e}");
    o
}

#[test]
fn numeric_user_and_group() {
    assert_eq!(ok(&["1000:1000", "id", "-u"]), "1000\n");
    assert_eq!(
        ok(&["1000:1000", "id", "-G"]),
        "1000\n",
        "supplementary groups cleared"
    );
    // A bare number without a passwd entry gets GID = UID, never GID 0 (gosu's flaw).
    assert_eq!(
        ok(&["4242", "sh", "-c", "id -u; id -g; id -G"]),
        "4242\n4242\n4242\n"
    );
    // GID 0 when asked for, as gosu and su-exec do (OpenShift's arbitrary UID
    // with group root): a group, not a privilege; UID 0 stays out of reach.
    assert_eq!(
        ok(&["1000:0", "sh", "-c", "id -u; id -g; id -G"]),
        "1000\n0\n0\n"
    );
    assert_eq!(ok(&["nobody:root", "id", "-g"]), "0\n");
    let status = ok(&["1000:1000", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&status, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&status, "Gid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    let status = ok(&["--allow-new-privs", "1000:1000", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
}

#[test]
fn names_from_passwd_and_group() {
    // Debian's nobody:nogroup exist on every machine this runs on.
    assert_eq!(
        ok(&["nobody", "sh", "-c", "id -un; echo $HOME $USER"]),
        "nobody\n/nonexistent nobody\n"
    );
    assert_eq!(ok(&["nobody:nogroup", "id", "-gn"]), "nogroup\n");
    assert_eq!(ok(&["nobody:1234", "id", "-g"]), "1234\n");
}

/// `USER:` with nothing after the colon is the user's own group, as gosu and
/// runc read it (gosu's test suite runs `gosu 0: CMD`).
#[test]
fn an_empty_group_is_the_users_own() {
    let ids = ["sh", "-c", "id -u; id -g; id -G"];
    assert_eq!(
        ok(&[&["nobody:"][..], &ids].concat()),
        "65534\n65534\n65534\n"
    );
    assert_eq!(
        ok(&[&["nobody:"][..], &ids].concat()),
        ok(&[&["nobody"][..], &ids].concat())
    );
    assert_eq!(ok(&["0:", "id", "-u"]), "0\n");
}

#[test]
fn unknown_names_are_errors_never_root() {
    for spec in ["no-such-user", "nobody:no-such-group", "99999999999"] {
        let out = run(&[spec, "echo", "RAN"]);
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{spec}: {o}{e}");
        assert!(!o.contains("RAN"), "{spec}");
        assert!(e.starts_with("harden-stepdown: "), "{spec}: {e}");
    }
}

#[test]
fn exit_codes_like_a_shell() {
    assert_eq!(run(&["1000", "/no/such/command"]).status.code(), Some(127));
    let dir = scratch("stepdown-noexec");
    let file = dir.join("not-executable");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        run(&["1000", file.to_str().unwrap()]).status.code(),
        Some(126)
    );
    assert_eq!(run(&["1000", "sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(run(&[]).status.code(), Some(1));
    assert_eq!(run(&["1000"]).status.code(), Some(1));
    // PATH is searched as execvp does: a name found nowhere is 127.
    assert_eq!(
        run(&["1000", "no-such-command-anywhere"]).status.code(),
        Some(127)
    );
}

/// `setpriv OPTIONS [STEPDOWN] ARGS...`: the step-down started with other credentials.
fn under_setpriv(options: &[&str], via_stepdown: bool, args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.args(options);
    if via_stepdown {
        c.arg(stepdown());
    }
    c.args(args).output().unwrap()
}

#[test]
fn fails_closed_without_setuid_capability() {
    // Bounding set without CAP_SETUID/SETGID: root cannot change its IDs.
    let no_setid = ["--bounding-set", "-setuid,-setgid", "--inh-caps", "-all"];
    let out = under_setpriv(&no_setid, true, &["1000", "echo", "RAN"]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(!o.contains("RAN"));
    assert!(e.contains("CAP_SETUID is missing"), "{e}");
    // A non-root caller cannot switch to another user either.
    let user = ["--reuid", "1000", "--regid", "1000", "--clear-groups"];
    let out = under_setpriv(&user, true, &["2000", "echo", "RAN"]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(!o.contains("RAN"));
}

/// `docker run --user app` of an image whose entrypoint is `stepdown app CMD`:
/// already that user, there is nothing to drop (gosu fails here, wanting
/// CAP_SETGID for setgroups); COMMAND runs with the runtime's groups and
/// no_new_privs, and HOME and USER of the target.
#[test]
fn started_as_the_target_user_runs_the_command() {
    let as_nobody = ["--reuid", "65534", "--regid", "65534", "--groups", "100"];
    let script = "id -u; id -g; id -G; echo $HOME $USER; grep NoNewPrivs /proc/self/status";
    for (spec, new_privs, want) in [
        (
            "nobody",
            "",
            "65534\n65534\n65534 100\n/nonexistent nobody\nNoNewPrivs:\t1\n",
        ),
        (
            "65534:65534",
            "",
            "65534\n65534\n65534 100\n/nonexistent nobody\nNoNewPrivs:\t1\n",
        ),
        (
            "nobody",
            "--allow-new-privs",
            "65534\n65534\n65534 100\n/nonexistent nobody\nNoNewPrivs:\t0\n",
        ),
    ] {
        let args: Vec<&str> = [new_privs, spec, "sh", "-c", script]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let out = under_setpriv(&as_nobody, true, &args);
        let (o, e) = text(&out);
        assert!(out.status.success(), "{spec}: {o}{e}");
        assert_eq!(o, want, "{spec} {new_privs}");
    }
    // Another group, or another user, still needs the capabilities.
    for spec in ["nobody:100", "65534:0", "1000"] {
        let out = under_setpriv(&as_nobody, true, &[spec, "echo", "RAN"]);
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{spec}: {o}{e}");
        assert!(e.contains("CAP_SETUID is missing"), "{spec}: {e}");
    }
}

/// A copy of the step-down in `dir`, named for and given the file capabilities `caps`.
fn copy_with_file_caps(dir: &std::path::Path, caps: &str) -> PathBuf {
    let bin = dir.join(caps);
    std::fs::copy(stepdown(), &bin).unwrap();
    let out = Command::new("setcap")
        .args([caps, bin.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    bin
}

#[test]
fn refuses_to_run_setuid_or_with_file_capabilities() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        status_field(&status, "NoNewPrivs"),
        "0",
        "under no_new_privs neither a setuid bit nor file capabilities take effect"
    );
    let dir = scratch("stepdown-secure");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let setuid = dir.join("setuid");
    std::fs::copy(stepdown(), &setuid).unwrap();
    std::fs::set_permissions(&setuid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut bins = vec![setuid];
    for caps in ["cap_setuid,cap_setgid+ep", "cap_chown+ep"] {
        bins.push(copy_with_file_caps(&dir, caps));
    }
    // Were the first two installed so, nobody could run a command as root
    // through them. Capabilities of the caller's own in the ambient set (as
    // `podman run --user N --cap-add` gives) do not excuse file capabilities:
    // the kernel empties the ambient set when it execs such a file.
    let nobody = ["--reuid", "65534", "--regid", "65534", "--clear-groups"];
    let ambient = [
        "--inh-caps",
        "+setuid,+setgid",
        "--ambient-caps",
        "+setuid,+setgid",
    ];
    let callers = [&nobody[..], &[&nobody[..], &ambient[..]].concat()];
    for (bin, caller) in bins
        .iter()
        .flat_map(|b| callers.iter().map(move |c| (b, c)))
    {
        let out = under_setpriv(caller, false, &[bin.to_str().unwrap(), "0:0", "id", "-u"]);
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{bin:?} {caller:?}: {o}{e}");
        assert_eq!(o, "", "{bin:?}");
        assert!(
            e.contains("refusing to run: started setuid, setgid or with file capabilities"),
            "{bin:?} {caller:?}: {e}"
        );
    }
    for bin in &bins {
        // Started by root, none raises anything: that run is not refused.
        let out = Command::new(bin)
            .args(["1000:1000", "id", "-u"])
            .output()
            .unwrap();
        assert_eq!(text(&out).0, "1000\n", "{bin:?}: {:?}", text(&out));
    }
}

#[test]
fn chown_of_root_or_a_kernel_filesystem_is_refused() {
    // Run as nobody: were the check missing, the walk could change nothing here.
    let nobody = ["--reuid", "65534", "--regid", "65534", "--clear-groups"];
    for path in ["/", "/./", "//proc", "/sys/fs/..", "/srv/../dev"] {
        let args = ["--chown", path, "--", "echo", "RAN"];
        let out = under_setpriv(&nobody, true, &args);
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{path}: {o}{e}");
        assert!(!o.contains("RAN"));
        assert!(
            e.contains("refusing to give / or a kernel filesystem to the user"),
            "{e}"
        );
    }
}

#[test]
fn inherited_capabilities_are_cleared() {
    // Inheritable and ambient capabilities would pass through execve to the
    // command; the step-down clears both (capset only when there is something
    // to clear, so this is the case that runs it).
    let inherit = [
        "--inh-caps",
        "+chown,+kill",
        "--ambient-caps",
        "+chown,+kill",
    ];
    let out = under_setpriv(&inherit, true, &["1000", "cat", "/proc/self/status"]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&o, field), "0000000000000000", "{field}: {o}");
    }
    // The same without the step-down: the sets are set, so the check can fail.
    let out = under_setpriv(&inherit, false, &["cat", "/proc/self/status"]);
    let (o, _) = text(&out);
    assert_eq!(status_field(&o, "CapInh"), "0000000000000021", "{o}");
    assert_eq!(status_field(&o, "CapAmb"), "0000000000000021", "{o}");
}

#[test]
fn bounding_set_emptied_however_it_was_started() {
    let bnd = |out: &Output| {
        let (o, e) = text(out);
        assert!(out.status.success(), "{o}{e}");
        status_field(&o, "CapBnd").to_string()
    };
    let status = ["1000", "cat", "/proc/self/status"];
    // A container's few capabilities: root's execve made the permitted set
    // equal to the bounding set, which the step-down drops without reading.
    let few = [
        "--bounding-set",
        "-all,+chown,+kill,+setuid,+setgid,+setpcap",
    ];
    assert_eq!(bnd(&under_setpriv(&few, true, &status)), "0000000000000000");
    // With SECBIT_NOROOT root gets only what the file grants: 3 capabilities
    // permitted, all 41 in the bounding set; each must be read and dropped.
    let bin = copy_with_file_caps(
        &scratch("stepdown-noroot"),
        "cap_setuid,cap_setgid,cap_setpcap+ep",
    );
    let noroot = ["--securebits", "+noroot"];
    let run = [&[bin.to_str().unwrap()][..], &status].concat();
    assert_eq!(
        bnd(&under_setpriv(&noroot, false, &run)),
        "0000000000000000"
    );
    let full = bnd(&under_setpriv(&noroot, false, &status[1..]));
    assert_ne!(
        full, "0000000000000000",
        "the bounding set is full to start with"
    );
}

#[test]
fn help_and_version() {
    assert!(ok(&["--help"]).contains("USER[:GROUP] COMMAND"));
    assert!(ok(&["--version"]).starts_with("harden-stepdown "));
}

/// The entrypoint form with a user the host already has (nobody:nogroup, so
/// /etc is not edited): `--chown` walks a directory and `--init` forks.
#[test]
fn entrypoint_form_chown_and_init_on_the_host() {
    use std::os::unix::fs::{symlink, MetadataExt};
    let dir = scratch("stepdown-entry");
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/file"), "x").unwrap();
    symlink("/etc/shadow", data.join("link")).unwrap();
    let out = ok(&[
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--chown",
        data.to_str().unwrap(),
        "--init",
        "--",
        "id",
        "-u",
    ]);
    assert_eq!(out, "65534\n");
    for path in [
        data.clone(),
        data.join("sub"),
        data.join("sub/file"),
        data.join("link"),
    ] {
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", path.display());
    }
    let shadow = std::fs::metadata("/etc/shadow").unwrap();
    assert_eq!(shadow.uid(), 0, "the link was not followed");
    // --init passes the status on.
    let status = run(&["--uid", "65534", "--init", "--", "sh", "-c", "exit 5"]).status;
    assert_eq!(status.code(), Some(5));
}
