//! The step-down against a hostile base image, hostile run flags and hostile
//! bind mounts, under podman + runc and in a chroot on the host. Each test
//! asserts that the command never ran as UID 0 or with a capability, and
//! that nothing outside the intended paths changed owner, mode or content.
//! SECURITY.md ("A hostile base image") lists which test pins which rule.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{chown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

/// What the command prints first in every container here: its IDs and
/// capabilities, then the owner and mode of what must stay root's.
const PROBE: &str = "id -u; grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status; \
    stat -c '%u:%g %a %n' / /.harden /.harden/harden-stepdown /etc /etc/shadow";

/// The probe's lines for a command that ran as `uid` with nothing changed
/// (the busybox fixture's /etc/shadow is root's, mode 640).
fn probe_ok(uid: u32) -> String {
    format!(
        "{uid}\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
         CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\n\
         0:0 755 /\n0:0 755 /.harden\n0:0 755 /.harden/harden-stepdown\n\
         0:0 755 /etc\n0:0 640 /etc/shadow\n"
    )
}

/// The busybox fixture with root's /etc/passwd, /etc/group and /etc/shadow,
/// changed by `setup`, as an image in `dir`'s layout.
fn image(dir: &Path, tag: &str, config: &[&str], setup: impl FnOnce(&Path)) -> String {
    let own = dir.join(tag);
    std::fs::create_dir_all(&own).unwrap();
    let rootfs = busybox_rootfs(&own);
    let etc = rootfs.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(etc.join("group"), "root:x:0:root\n").unwrap();
    std::fs::write(etc.join("shadow"), "root:*:1::::::\n").unwrap();
    std::fs::set_permissions(etc.join("shadow"), PermissionsExt::from_mode(0o640)).unwrap();
    setup(&rootfs);
    let mut config = config.to_vec();
    config.extend(["--config.cmd", "sh"]);
    umoci_image(&dir.join("layout"), tag, &rootfs, &config)
}

/// `image`, hardened with `options` and loaded into podman.
fn hardened(dir: &Path, tag: &str, options: &[&str], setup: impl FnOnce(&Path)) -> String {
    let src = image(dir, tag, &[], setup);
    harden_and_load(&src, dir, tag, options)
}

fn passwd_with(rootfs: &Path, line: &str) {
    let passwd = rootfs.join("etc/passwd");
    let mut text = std::fs::read_to_string(&passwd).unwrap();
    text.push_str(line);
    text.push('\n');
    std::fs::write(passwd, text).unwrap();
}

fn sh_c(script: &str) -> Vec<String> {
    ["sh", "-c", script].map(String::from).to_vec()
}

fn run(image: &str, options: &[&str], script: &str) -> Output {
    let args = sh_c(script);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    podman().run(options, image, &args)
}

/// Runs `script` after PROBE; asserts success and the probe's lines; returns
/// (what the script printed after the probe, stderr).
fn run_probed(image: &str, options: &[&str], script: &str, uid: u32) -> (String, String) {
    let out = run(image, options, &format!("{PROBE}; {script}"));
    let (o, e) = text(&out);
    assert!(out.status.success(), "{options:?}: {o}{e}");
    let probe = probe_ok(uid);
    assert!(
        o.starts_with(&probe),
        "{options:?}:\n{o}\nexpected first:\n{probe}{e}"
    );
    (o[probe.len()..].to_string(), e)
}

/// Asserts that the step-down refused: exit 1, the command did not run,
/// stderr has `needle`.
fn refused(out: &Output, needle: &str) {
    let (o, e) = text(out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(!o.contains("RAN"), "the command ran: {o}");
    assert!(e.contains(needle), "{needle:?} not in: {e}");
}

/// Owner, mode and content of every path below `root` (itself included),
/// symbolic links not followed.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let m = std::fs::symlink_metadata(&path).unwrap();
        let content = if m.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            Vec::new()
        } else if m.file_type().is_symlink() {
            std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else {
            std::fs::read(&path).unwrap()
        };
        out.insert(path, (m.uid(), m.gid(), m.mode(), content));
    }
    out
}

/// A host directory owned by root with a root-only file, to mount.
fn host_dir(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("secret"), "root only\n").unwrap();
    std::fs::set_permissions(d.join("secret"), PermissionsExt::from_mode(0o600)).unwrap();
    d
}

fn mount(host: &Path, at: &str) -> String {
    format!("{}:{at}", host.display())
}

/// HOME values that name `/`, the step-down's directory or a system or
/// kernel directory, however spelled: nothing of these is given to the user,
/// and the user cannot replace the step-down for the next start as root.
#[test]
fn home_never_gives_away_root_system_or_step_down_directories() {
    let dir = scratch("attack-home");
    // Two spellings in the image's own /etc/passwd, the rest mounted over it.
    let image = hardened(&dir, "home", &[], |r| {
        passwd_with(r, "app:x:1000:1000::/.:/bin/sh")
    });
    let replace = "mv /.harden /h 2>/dev/null && echo MOVED; \
        cp /bin/busybox /.harden/harden-stepdown 2>/dev/null && echo REPLACED; echo done";
    let (o, _) = run_probed(&image, &[], replace, 1000);
    assert_eq!(o, "done\n");
    let passwd = dir.join("passwd");
    for home in [
        "/.",
        "//",
        "/home/..",
        "/.harden",
        "/.harden/",
        "/",
        "/etc",
        "/dev",
        "/proc/self",
        "/sys/kernel",
        "/run",
        "/usr",
        "/bin",
        "/lib",
        "home/app",
        ".",
        "",
    ] {
        std::fs::write(
            &passwd,
            format!("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::{home}:/bin/sh\n"),
        )
        .unwrap();
        let v = mount(&passwd, "/etc/passwd");
        let (o, _) = run_probed(
            &image,
            &["-v", &v, "--workdir", "/"],
            &format!("stat -c '%u %n' /dev /run /bin /sys/kernel; {replace}"),
            1000,
        );
        let expected = "0 /dev\n0 /run\n0 /bin\n0 /sys/kernel\ndone\n";
        assert_eq!(o, expected, "HOME {home:?}");
    }
    // The same through --home: refused by harden before anything is read.
    for home in ["/.", "/home/..", "/.harden", "/etc", "/", "home"] {
        let out = harden(&[
            "rewrite",
            "oci:/nonexistent:x",
            "docker-archive:/nonexistent/out.tar",
            "--home",
            home,
        ]);
        let (o, e) = text(&out);
        assert!(!out.status.success(), "--home {home}: {o}{e}");
        assert!(e.contains("--home"), "--home {home}: {e}");
        assert!(!e.contains("nonexistent"), "read before the check: {e}");
    }
    // And by the step-down itself, for an entrypoint written by hand.
    let out = podman().run(
        &["--entrypoint", "/.harden/harden-stepdown"],
        &image,
        &["--home", "/.", "--", "echo", "RAN"],
    );
    refused(&out, "--home \"/.\"");
}

/// A root filesystem at `dir/chroot` for the step-down to run in under
/// chroot on the host: busybox as /bin/echo and the step-down, root's and
/// mode 0755 like every directory up to it.
fn chroot_root(dir: &Path) -> PathBuf {
    let root = dir.join("chroot");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join(".harden")).unwrap();
    std::fs::copy(which("busybox"), root.join("bin/busybox")).unwrap();
    symlink("busybox", root.join("bin/echo")).unwrap();
    let bin = root.join(".harden/harden-stepdown");
    let out = harden(&["stepdown-binary", "-o", bin.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    root
}

/// The step-down in `root` (see `chroot_root`) with `args`, as root.
fn chrooted(root: &Path, args: &[&str]) -> Output {
    let chroot = which("chroot");
    let mut c = cmd(chroot.to_str().unwrap(), &[root.to_str().unwrap()]);
    c.arg("/.harden/harden-stepdown");
    c.args(args).env("PATH", "/bin");
    c.output().unwrap()
}

/// A root directory, step-down directory or step-down file that someone
/// other than root owns or may write: the step-down refuses before it acts
/// as root (an attacker could have put any program there). harden's own
/// layer closes `/` and /.harden, so a hostile base's 0777 `/` never gets
/// that far under a runtime; the chroot shows the step-down's own check.
#[test]
fn a_root_or_step_down_others_may_write_is_refused() {
    let dir = scratch("attack-root");
    let image = hardened(&dir, "openroot", &[], |r| {
        std::fs::set_permissions(r, PermissionsExt::from_mode(0o777)).unwrap();
        chown(r, Some(1000), Some(1000)).unwrap();
        std::fs::create_dir(r.join(".harden")).unwrap();
        std::fs::set_permissions(r.join(".harden"), PermissionsExt::from_mode(0o777)).unwrap();
    });
    run_probed(&image, &[], "true", 1000);

    let root = chroot_root(&dir);
    let prepare = |root_mode: u32, dir_mode: u32, file_owner: u32| {
        std::fs::set_permissions(&root, PermissionsExt::from_mode(root_mode)).unwrap();
        std::fs::set_permissions(root.join(".harden"), PermissionsExt::from_mode(dir_mode))
            .unwrap();
        chown(root.join(".harden/harden-stepdown"), Some(file_owner), None).unwrap();
    };
    let chrooted = |args: &[&str]| chrooted(&root, args);
    let entry = ["--uid", "1000", "--", "echo", "RAN"];
    let gosu = ["1000", "echo", "RAN"];
    prepare(0o755, 0o755, 0);
    let (o, e) = text(&chrooted(&entry));
    assert_eq!(o, "RAN\n", "{e}");
    for (root_mode, dir_mode, owner, needle) in [
        (0o777, 0o755, 0, "\"/\" is writable by others than root"),
        (0o1777, 0o755, 0, "\"/\" is writable by others than root"),
        (0o775, 0o755, 0, "\"/\" is writable by others than root"),
        (
            0o755,
            0o777,
            0,
            "\"/.harden\" is writable by others than root",
        ),
        (
            0o755,
            0o1777,
            0,
            "\"/.harden\" is writable by others than root",
        ),
        (
            0o755,
            0o755,
            1000,
            "\"/.harden/harden-stepdown\" is not owned by root",
        ),
    ] {
        prepare(root_mode, dir_mode, owner);
        refused(&chrooted(&entry), needle);
        refused(&chrooted(&gosu), needle);
    }
    prepare(0o755, 0o755, 0);
    let bin = root.join(".harden/harden-stepdown");
    std::fs::set_permissions(&bin, PermissionsExt::from_mode(0o775)).unwrap();
    refused(
        &chrooted(&entry),
        "\"/.harden/harden-stepdown\" is writable",
    );
}

/// A bind-mounted HOME, root's on the host, is used as it is: never chowned.
/// Nor is a HOME on the root filesystem reached through a symbolic link.
#[test]
fn a_mounted_or_linked_home_is_left_as_it_is() {
    let dir = scratch("attack-mounted-home");
    let image = hardened(&dir, "mhome", &[], |r| {
        passwd_with(r, "data:x:1001:1001::/data:/bin/sh");
    });
    let host = host_dir(&dir, "host-home");
    let before = snapshot(&host);
    for (at, user) in [("/home/app", "1000"), ("/data", "1001"), ("/home", "1000")] {
        let v = mount(&host, at);
        let opts = ["-v", v.as_str(), "-e", &format!("HARDEN_UID={user}")];
        let (o, e) = run_probed(
            &image,
            &opts,
            &format!("stat -c %u {at}"),
            user.parse().unwrap(),
        );
        assert_eq!(o, "0\n", "{at}: {e}");
        assert_eq!(snapshot(&host), before, "{at}");
    }
    // HOME /var/lib/lib, where /var/lib links to /etc: /etc/lib is not made.
    let image = hardened(&dir, "lhome", &["--user", "lib"], |r| {
        passwd_with(r, "lib:x:1002:1002::/var/lib/lib:/bin/sh");
        std::fs::create_dir_all(r.join("var")).unwrap();
        symlink("/etc", r.join("var/lib")).unwrap();
    });
    let (o, e) = run_probed(
        &image,
        &[],
        "test -e /etc/lib && echo MADE; echo done",
        1002,
    );
    assert_eq!(o, "done\n");
    assert!(
        e.contains("HOME \"/var/lib/lib\": a symbolic link on the way; not followed"),
        "{e}"
    );
}

/// /etc as a symbolic link into a bind mount: the host's account files there
/// are neither read nor written.
#[test]
fn account_files_through_a_symlink_are_never_written() {
    let dir = scratch("attack-etc-link");
    let image = hardened(&dir, "etclink", &[], |r| {
        let etc = r.join("etc");
        std::fs::create_dir_all(r.join("mnt/etc")).unwrap();
        std::fs::rename(&etc, r.join("realetc")).unwrap();
        symlink("/mnt/etc", &etc).unwrap();
    });
    let host = dir.join("host-etc");
    std::fs::create_dir_all(&host).unwrap();
    for (name, content) in [
        ("passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("group", "root:x:0:\n"),
    ] {
        std::fs::write(host.join(name), content).unwrap();
        std::fs::set_permissions(host.join(name), PermissionsExt::from_mode(0o600)).unwrap();
    }
    let before = ["passwd", "group"].map(|n| snapshot(&host.join(n)));
    let v = mount(&host, "/mnt/etc");
    let out = run(&image, &["-v", &v], "id -u; grep CapEff /proc/self/status");
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert_eq!(o, "1000\nCapEff:\t0000000000000000\n");
    assert!(
        e.contains("/etc/passwd: a symbolic link on the way; not followed"),
        "{e}"
    );
    assert_eq!(["passwd", "group"].map(|n| snapshot(&host.join(n))), before);

    // /etc/passwd itself a link to a mounted file; /etc/group a FIFO.
    let image = hardened(&dir, "passwdlink", &[], |r| {
        std::fs::create_dir_all(r.join("mnt")).unwrap();
        std::fs::rename(r.join("etc/passwd"), r.join("mnt/passwd")).unwrap();
        symlink("/mnt/passwd", r.join("etc/passwd")).unwrap();
    });
    let file = host.join("passwd");
    let v = mount(&file, "/mnt/passwd");
    let (_, e) = run_probed(&image, &["-v", &v], "true", 1000);
    assert!(e.contains("/etc/passwd: a symbolic link on the way"), "{e}");
    assert_eq!(snapshot(&file), before[0]);
    // A FIFO as /etc/group: podman itself blocks reading it, so on the host.
    let root = chroot_root(&dir);
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "nobody:x:65534:65534::/:\n").unwrap();
    sh(cmd("mkfifo", &[root.join("etc/group").to_str().unwrap()]));
    refused(
        &chrooted(&root, &["nobody", "echo", "RAN"]),
        "/etc/group is not a regular file",
    );
}

/// --chown PATH where a directory on the way is a symbolic link (to another
/// mount, to /sys): nothing there changes owner.
#[test]
fn chown_never_follows_a_symlink_on_the_way() {
    let dir = scratch("attack-chown-link");
    let options = ["--chown", "/var/lib/app/data", "--chown", "/srv/sys/kernel"];
    let image = hardened(&dir, "chownlink", &options, |r| {
        std::fs::create_dir_all(r.join("var/lib")).unwrap();
        symlink("/mnt", r.join("var/lib/app")).unwrap();
        symlink("/sys", r.join("srv/sys")).unwrap();
    });
    let host = host_dir(&dir, "host-data");
    std::fs::create_dir(host.join("data")).unwrap();
    std::fs::write(host.join("data/file"), "x").unwrap();
    chown(host.join("data/file"), Some(4321), Some(4321)).unwrap();
    let before = snapshot(&host);
    let v = mount(&host, "/mnt");
    let (o, e) = run_probed(&image, &["-v", &v], "stat -c %u /sys/kernel", 1000);
    assert_eq!(o, "0\n");
    for path in ["/var/lib/app/data", "/srv/sys/kernel"] {
        let warning = format!("--chown \"{path}\": a symbolic link on the way; not followed");
        assert!(e.contains(&warning), "{warning}: {e}");
    }
    assert_eq!(snapshot(&host), before);
}

/// A file with more than one hard link inside a --chown tree shares its
/// inode with another file (the image's /etc/shadow here): left alone. Mount
/// points below the tree keep their owner too.
#[test]
fn hard_links_and_mounts_inside_a_chown_tree_are_left_alone() {
    let dir = scratch("attack-hardlink");
    let image = hardened(&dir, "hardlink", &["--chown", "/data"], |r| {
        std::fs::create_dir_all(r.join("data/sub")).unwrap();
        std::fs::hard_link(r.join("etc/shadow"), r.join("data/sub/shadow")).unwrap();
        std::fs::write(r.join("data/sub/own"), "x").unwrap();
        std::fs::create_dir(r.join("data/mnt")).unwrap();
    });
    let host = host_dir(&dir, "host-mnt");
    let before = snapshot(&host);
    let v = mount(&host, "/data/mnt");
    let (o, e) = run_probed(
        &image,
        &["-v", &v],
        "stat -c '%u %h %n' /data/sub/shadow /data/sub/own /data/mnt",
        1000,
    );
    assert_eq!(
        o,
        "0 2 /data/sub/shadow\n1000 1 /data/sub/own\n0 2 /data/mnt\n"
    );
    assert!(
        e.contains("--chown \"/data\": 1 files with more than one hard link left alone"),
        "{e}"
    );
    assert_eq!(snapshot(&host), before);
}

/// /etc/group lines in every shape runc's parser accepts: CRLF, a space at
/// the end, `+N`; and a UID-0 name other than root's listed first in
/// /etc/passwd. What the runtime gave root for them never reaches the user;
/// the groups the run asked for stay.
#[test]
fn roots_groups_go_whatever_the_line_shape() {
    let dir = scratch("attack-groups");
    let group = "root:x:0:root\r\ndisk:x:6:root\r\nwheel:x:+10:root \nadm:x:4:toor\n\
                 kmem:x:9: root\nstaff:x:50:\n";
    for (tag, passwd) in [
        ("crlf", "root:x:0:0:root:/root:/bin/sh\r\n"),
        (
            "toor",
            "toor:x:0:0:toor:/root:/bin/sh\r\nroot:x:0:0:root:/root:/bin/sh\n",
        ),
    ] {
        let setup = |r: &Path| {
            std::fs::write(r.join("etc/passwd"), passwd).unwrap();
            std::fs::write(r.join("etc/group"), group).unwrap();
        };
        let src = image(&dir, tag, &[], setup);
        let original = {
            let out = dir.join(format!("{tag}-original.tar"));
            let name = format!("localhost/groups-{tag}-original:1");
            skopeo_copy(&src, &format!("docker-archive:{}:{name}", out.display()));
            podman().load(&out)
        };
        let add = ["--group-add", "50", "--group-add", "9"];
        let given = podman().run_ok(&add, &original, &["id", "-G"]);
        let roots = if tag == "crlf" {
            "0 6 9 10 50\n"
        } else {
            "0 4 9 50\n"
        };
        assert_eq!(given, roots, "{tag}: what podman gives root");
        let image = harden_and_load(&src, &dir, tag, &[]);
        let (o, _) = run_probed(&image, &add, "id -G", 1000);
        // 9 lists " root" (runc does not trim members): an added group that stays.
        assert_eq!(o, "1000 9 50\n", "{tag}");
    }
}

/// A --match-owner directory owned by an ID above 2147483647 is refused; one
/// reached through a symbolic link is not used.
#[test]
fn match_owner_is_range_checked_and_never_followed() {
    let dir = scratch("attack-owner");
    let image = hardened(&dir, "owner", &["--match-owner", "/home/app/.aws"], |r| {
        std::fs::create_dir_all(r.join("srv/owned")).unwrap();
        chown(r.join("srv/owned"), Some(4321), Some(4321)).unwrap();
    });
    let host = dir.join("aws");
    std::fs::create_dir_all(&host).unwrap();
    for id in [3_000_000_000u32, 2_147_483_648] {
        chown(&host, Some(id), Some(1000)).unwrap();
        let v = mount(&host, "/home/app/.aws");
        refused(
            &run(&image, &["-v", &v], "echo RAN"),
            "larger than 2147483647",
        );
    }
    // A link to a directory of 4321's: not followed, the default user runs.
    let image = hardened(&dir, "ownerlink", &["--match-owner", "/m"], |r| {
        std::fs::create_dir_all(r.join("srv/owned")).unwrap();
        chown(r.join("srv/owned"), Some(4321), Some(4321)).unwrap();
        symlink("/srv/owned", r.join("m")).unwrap();
    });
    let (_, e) = run_probed(&image, &[], "true", 1000);
    assert!(
        e.contains("--match-owner \"/m\": a symbolic link on the way"),
        "{e}"
    );
}

/// Bounds: a HOME over PATH_MAX is refused, not cut; a 200-level --chown
/// tree under a 128 KiB stack is walked to its bound without a crash.
#[test]
fn past_the_bounds_it_refuses_or_stops_cleanly() {
    let dir = scratch("attack-bounds");
    let image = hardened(&dir, "bounds", &["--chown", "/data"], |_| {});
    let passwd = dir.join("passwd");
    let home = format!("/home/{}", "d/".repeat(2100));
    std::fs::write(
        &passwd,
        format!("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::{home}:/bin/sh\n"),
    )
    .unwrap();
    let v = mount(&passwd, "/etc/passwd");
    refused(
        &run(&image, &["-v", &v], "echo RAN"),
        "HOME is longer than 4096 bytes",
    );

    let data = dir.join("deep");
    let mut p = data.clone();
    for _ in 0..200 {
        p.push("d");
    }
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("f"), "x").unwrap();
    sh(cmd("chown", &["-R", "4321:4321", data.to_str().unwrap()]));
    let v = mount(&data, "/data");
    let (o, e) = run_probed(
        &image,
        &["-v", &v, "--ulimit", "stack=131072:131072"],
        &format!("stat -c %u /data/{}d", "d/".repeat(126)),
        1000,
    );
    assert_eq!(o, "1000\n", "the 128th level is the user's");
    assert!(
        e.contains("directories deeper than 128 levels left alone"),
        "{e}"
    );
    let deepest = std::fs::metadata(p.join("f")).unwrap();
    assert_eq!(deepest.uid(), 4321, "past the bound nothing changes");
}

/// The directories harden infers an app writes (`--writable`: a VOLUME,
/// /run, the app's own under /var/lib, /var/log, /var/cache, /run) are the
/// image author's to name: a symbolic link there is not followed (to /etc
/// here), a file is left, a host directory mounted on a VOLUME is never
/// touched; what is the image's own becomes the user's, and so does a
/// fresh, empty volume of root's.
#[test]
fn inferred_writable_directories_never_reach_a_link_or_a_host_mount() {
    let dir = scratch("attack-writable");
    let config = [
        "--config.cmd",
        "myapp",
        "--config.volume",
        "/data",
        "--config.volume",
        "/srv/cache",
    ];
    let src = image(&dir, "writable", &config, |r| {
        for d in [
            "var/lib/myapp/sub",
            "var/log",
            "var/cache",
            "run",
            "data",
            "srv/cache",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("var/lib/myapp/sub/state"), "x").unwrap();
        std::fs::write(r.join("var/log/myapp"), "not a directory").unwrap();
        symlink("/etc", r.join("var/cache/myapp")).unwrap();
    });
    let image = harden_and_load(&src, &dir, "writable", &[]);
    let host = host_dir(&dir, "host-cache");
    let before = snapshot(&host);
    let v = mount(&host, "/srv/cache");
    let (o, e) = run_probed(
        &image,
        &["-v", &v],
        "stat -c '%u %n' /var/lib/myapp /var/lib/myapp/sub/state /var/log/myapp \
         /var/cache/myapp/ /run /data /srv/cache",
        1000,
    );
    assert_eq!(
        o,
        "1000 /var/lib/myapp\n1000 /var/lib/myapp/sub/state\n0 /var/log/myapp\n\
         0 /var/cache/myapp/\n1000 /run\n1000 /data\n0 /srv/cache\n",
        "{e}"
    );
    assert!(!e.contains("--writable"), "inferred paths are quiet: {e}");
    assert_eq!(snapshot(&host), before);
}

/// A mount at or below the HOME a root image ran with (`--mounted-home`,
/// inferred) makes that HOME the user's and lets the user search it, but
/// only the image's own directory: a `/root` that is a symbolic link (to
/// /etc here) is not followed, and a host directory mounted as `/root`
/// keeps its owner and mode.
#[test]
fn a_mount_below_the_original_home_never_changes_a_link_or_a_host_directory() {
    let dir = scratch("attack-home-mounts");
    let linked = hardened(&dir, "home-link", &[], |r| {
        symlink("/etc", r.join("root")).unwrap();
    });
    let creds = host_dir(&dir, "creds");
    chown(&creds, Some(1001), Some(1001)).unwrap();
    let v = mount(&creds, "/root/.aws");
    // runc resolves the link inside the container: the mount is at
    // /etc/.aws, not below /root, and nothing is inferred from it.
    let (o, e) = run_probed(&linked, &["-v", &v], "stat -c %a /etc; echo $HOME", 1000);
    assert_eq!(o, "755\n/home/app\n", "{e}");

    let plain = hardened(&dir, "home-host", &[], |r| {
        std::fs::create_dir(r.join("root")).unwrap();
        std::fs::set_permissions(r.join("root"), PermissionsExt::from_mode(0o700)).unwrap();
    });
    let host = host_dir(&dir, "host-root");
    std::fs::set_permissions(&host, PermissionsExt::from_mode(0o700)).unwrap();
    let before = snapshot(&host);
    let (o, e) = run_probed(&plain, &["-v", &mount(&host, "/root")], "echo $HOME", 1000);
    assert_eq!(o, "/root\n", "a mount at the HOME is one too: {e}");
    assert_eq!(
        snapshot(&host),
        before,
        "the host's directory is the user's business"
    );
    // The image's own /root becomes searchable (0711) only with a mount in it.
    let (o, _) = run_probed(&plain, &[], "stat -c %a /root; echo $HOME", 1000);
    assert_eq!(o, "700\n/home/app\n");
    let (o, e) = run_probed(&plain, &["-v", &v], "stat -c %a /root; echo $HOME", 1001);
    assert_eq!(o, "711\n/root\n", "{e}");
}
