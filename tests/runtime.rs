//! Hardened images under a real runtime (podman + runc): the step-down
//! contract checked from inside the container.

mod common;
use common::*;

/// The default target: uid/gid 1000, a passwd entry, a writable HOME, no
/// capabilities, no_new_privs, only the target group, and PID 1 not root.
#[test]
fn default_user_and_privileges() {
    let dir = scratch("default");
    let image = harden_and_load(&fixtures().archive("busybox"), &dir, "default", &[]);
    let out = podman().run_ok(
        &[],
        &image,
        &["sh", "-c", "id -u; id -g; whoami; echo $HOME $USER $LOGNAME; touch $HOME/w && echo home-writable; cat /proc/self/status; echo PID1; cat /proc/1/status"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..5],
        ["1000", "1000", "app", "/home/app app app", "home-writable"],
        "{out}"
    );
    let (own, pid1) = out.split_once("PID1").unwrap();
    assert_eq!(status_field(own, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(own, "Gid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(own, "Groups"), "1000");
    assert_eq!(status_field(own, "CapEff"), "0000000000000000");
    assert_eq!(status_field(own, "CapPrm"), "0000000000000000");
    assert_eq!(status_field(own, "CapInh"), "0000000000000000");
    assert_eq!(status_field(own, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(own, "NoNewPrivs"), "1");
    assert_eq!(
        status_field(pid1, "Uid"),
        "1000\t1000\t1000\t1000",
        "PID 1 is the command, not root"
    );
}

#[test]
fn env_overrides_uid_and_gid() {
    let dir = scratch("env");
    let image = harden_and_load(&fixtures().archive("busybox"), &dir, "env", &[]);
    let out = podman().run_ok(
        &["-e", "HARDEN_UID=4321", "-e", "HARDEN_GID=4322"],
        &image,
        &["sh", "-c", "id -u; id -g; whoami"],
    );
    assert_eq!(out, "4321\n4322\napp\n");
    let out = podman().run_ok(
        &["-e", "HARDEN_UID=1234"],
        &image,
        &["sh", "-c", "id -u; id -g"],
    );
    assert_eq!(out, "1234\n1234\n", "GID defaults to the UID");
    // Hostile or wrong values are refused: the command never runs, as root or otherwise.
    for (var, value) in [
        ("HARDEN_UID", "0"),
        ("HARDEN_UID", "1000; rm -rf /"),
        ("HARDEN_UID", "10\n00"),
        ("HARDEN_UID", ""),
        ("HARDEN_UID", "99999999999"),
        ("HARDEN_GID", "0"),
    ] {
        let long;
        let value = if value == "99999999999" {
            long = "9".repeat(5000);
            long.as_str()
        } else {
            value
        };
        let env = format!("{var}={value}");
        let out = podman().run(&["-e", &env], &image, &["echo", "COMMAND-RAN"]);
        let (o, e) = text(&out);
        assert!(!out.status.success(), "{env:?} accepted");
        assert!(!o.contains("COMMAND-RAN"), "{env:?}: {o}");
        assert!(
            e.contains(&format!("harden-stepdown: ${var}")),
            "{env:?}: {e}"
        );
        assert!(e.len() < 400, "the message stays short: {e}");
    }
}

#[test]
fn custom_env_names_and_match_owner_of_a_bind_mount() {
    let dir = scratch("match");
    let image = harden_and_load(
        &fixtures().archive("busybox"),
        &dir,
        "match",
        &[
            "--user",
            "aws",
            "--uid-env",
            "AWS_UID",
            "--gid-env",
            "AWS_GID",
            "--match-owner",
            "/home/aws/.aws",
        ],
    );
    let creds = dir.join("dot-aws");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("credentials"), "[default]\n").unwrap();
    std::os::unix::fs::chown(&creds, Some(4321), Some(4322)).unwrap();
    std::os::unix::fs::chown(creds.join("credentials"), Some(4321), Some(4322)).unwrap();
    std::fs::set_permissions(
        creds.join("credentials"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mount = format!("{}:/home/aws/.aws", creds.display());
    // No env at all: the owner of the mounted directory wins over the default.
    let out = podman().run_ok(&["-v", &mount], &image, &["sh", "-c", "id -u; id -g; whoami; echo $HOME; cat /home/aws/.aws/credentials; touch $HOME/w && echo home-writable"]);
    assert_eq!(
        out,
        "4321\n4322\naws\n/home/aws\n[default]\nhome-writable\n"
    );
    // The env variable named at rewrite time beats the owner.
    let out = podman().run_ok(&["-v", &mount, "-e", "AWS_UID=777"], &image, &["id", "-u"]);
    assert_eq!(out, "777\n");
    // HARDEN_UID is not the variable of this image.
    let out = podman().run_ok(&["-e", "HARDEN_UID=777"], &image, &["id", "-u"]);
    assert_eq!(out, "1000\n");
}

#[test]
fn started_as_a_user_passes_through() {
    let dir = scratch("passthrough");
    let image = harden_and_load(&fixtures().archive("busybox"), &dir, "passthrough", &[]);
    let out = podman().run_ok(
        &["--user", "1001"],
        &image,
        &["sh", "-c", "id -u; cat /proc/1/status"],
    );
    assert!(out.starts_with("1001\n"), "{out}");
    assert_eq!(status_field(&out, "Uid"), "1001\t1001\t1001\t1001");
    // no_new_privs as after a drop: a setuid program gains nothing.
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
}

/// `docker run --user 1001:1001 -v ~/.aws:/home/aws/.aws` of an image
/// hardened with `--user aws --home /home/aws`: UID 1001 has no passwd entry,
/// so the runtime gives HOME=/; the step-down sets the baked HOME (the mount
/// made it exist) and USER as after a drop, and the CLI finds its config.
/// A HOME the run sets itself, and a UID that passwd lists, are left alone.
#[test]
fn an_unlisted_user_gets_the_baked_home() {
    let dir = scratch("unlisted");
    let options = ["--user", "aws", "--home", "/home/aws"];
    let image = harden_and_load(&fixtures().archive("busybox"), &dir, "unlisted", &options);
    let aws = dir.join("aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(aws.join("config"), "[default]\n").unwrap();
    sh(cmd("chown", &["-R", "1001:1001", aws.to_str().unwrap()]));
    let v = format!("{}:/home/aws/.aws", aws.display());
    let script = "echo $HOME $USER $LOGNAME; cat $HOME/.aws/config";
    let out = podman().run_ok(
        &["--user", "1001:1001", "-v", &v],
        &image,
        &["sh", "-c", script],
    );
    assert_eq!(out, "/home/aws aws aws\n[default]\n");
    let out = podman().run_ok(
        &["--user", "1001:1001", "-v", &v, "-e", "HOME=/tmp"],
        &image,
        &["sh", "-c", "echo $HOME"],
    );
    assert_eq!(out, "/tmp\n");
    // No mount: the baked HOME does not exist; HOME stays what podman gives
    // (the working directory).
    let out = podman().run_ok(
        &["--user", "1001:1001"],
        &image,
        &["sh", "-c", "echo $HOME"],
    );
    assert_eq!(out, "/srv\n");
    // 1001 listed in a readable passwd: its own HOME it is.
    let passwd = dir.join("passwd");
    std::fs::write(
        &passwd,
        "root:x:0:0::/root:/bin/sh\nme:x:1001:1001::/srv:/bin/sh\n",
    )
    .unwrap();
    let p = format!("{}:/etc/passwd:ro", passwd.display());
    let out = podman().run_ok(
        &["--user", "1001:1001", "-v", &v, "-v", &p],
        &image,
        &["sh", "-c", "echo $HOME"],
    );
    assert_eq!(out, "/srv\n");
}

/// The groups a runtime was asked to add (Kubernetes' fsGroup and
/// supplementalGroups, `--group-add`) stay with the user, as for a container
/// started as the user: a volume given to fsGroup stays writable. The groups
/// the image's /etc/group lists root in (podman adds them because the
/// container starts as root) do not.
#[test]
fn added_groups_stay_and_roots_image_groups_go() {
    let dir = scratch("groups");
    let rootfs = busybox_rootfs(&dir);
    std::fs::create_dir(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:root\ndisk:x:6:root\nwheel:x:10:root\nstaff:x:50:\n",
    )
    .unwrap();
    let src = umoci_image(
        &dir.join("layout"),
        "groups",
        &rootfs,
        &["--config.cmd", "sh"],
    );
    let original = {
        let out = dir.join("original.tar");
        skopeo_copy(
            &src,
            &format!(
                "docker-archive:{}:localhost/groups-original:1",
                out.display()
            ),
        );
        podman().load(&out)
    };
    let image = harden_and_load(&src, &dir, "groups", &[]);
    let add = [
        "--group-add",
        "2000",
        "--group-add",
        "50",
        "--group-add",
        "10",
    ];
    // What podman gives the container's root: root's image groups and the added ones.
    assert_eq!(
        podman().run_ok(&add, &original, &["id", "-G"]),
        "0 6 10 50 2000\n"
    );
    // 10 was added too, but the image gives it to root: it goes, with 0 and 6.
    assert_eq!(
        podman().run_ok(&add, &image, &["id", "-G"]),
        "1000 50 2000\n"
    );
    assert_eq!(podman().run_ok(&[], &image, &["id", "-G"]), "1000\n");
}

#[test]
fn fails_closed_without_capabilities() {
    let dir = scratch("capdrop");
    let image = harden_and_load(&fixtures().archive("busybox"), &dir, "capdrop", &[]);
    for drop in ["ALL", "SETUID", "SETGID"] {
        let out = podman().run(&["--cap-drop", drop], &image, &["echo", "COMMAND-RAN"]);
        let (o, e) = text(&out);
        assert!(!out.status.success(), "--cap-drop {drop}: must fail");
        assert!(
            !o.contains("COMMAND-RAN"),
            "--cap-drop {drop}: the command ran: {o}"
        );
        assert!(
            e.contains("harden-stepdown: cannot drop privileges"),
            "--cap-drop {drop}: {e}"
        );
    }
}

/// A pod that drops every capability and adds back what the step-down
/// needs: SETUID and SETGID for the drop, CHOWN for HOME, SETPCAP to empty
/// the bounding set. That is enough for a start without warnings; without
/// CHOWN, HOME stays root's and a warning says so.
#[test]
fn the_capabilities_it_needs_are_enough() {
    let dir = scratch("mincaps");
    let image = harden_and_load(&fixtures().archive("busybox"), &dir, "mincaps", &[]);
    let script = "id -u; stat -c %u $HOME; grep CapBnd /proc/self/status";
    let caps = |add: &[&str]| {
        let mut options = vec!["--cap-drop", "ALL"];
        options.extend(add.iter().flat_map(|c| ["--cap-add", *c]));
        let out = podman().run(&options, &image, &["sh", "-c", script]);
        let (o, e) = text(&out);
        assert!(out.status.success(), "{add:?}: {o}{e}");
        (o, e)
    };
    let (o, e) = caps(&["SETUID", "SETGID", "CHOWN", "SETPCAP"]);
    assert_eq!(o, "1000\n1000\nCapBnd:\t0000000000000000\n");
    assert_eq!(e, "", "no warning");
    let (o, e) = caps(&["SETUID", "SETGID"]);
    assert!(o.starts_with("1000\n0\n"), "{o}");
    assert!(e.contains("warning: cannot prepare HOME"), "{e}");
}

#[test]
fn read_only_root_filesystem_still_runs() {
    let dir = scratch("readonly");
    let image = harden_and_load(&fixtures().archive("busybox"), &dir, "readonly", &[]);
    let out = podman().run(
        &["--read-only"],
        &image,
        &["sh", "-c", "id -u; grep NoNewPrivs /proc/self/status"],
    );
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert_eq!(o, "1000\nNoNewPrivs:\t1\n");
    assert!(
        !e.contains("warning"),
        "a read-only root needs no warning: {e}"
    );
}

#[test]
fn entrypoint_and_cmd_keep_their_meaning() {
    let dir = scratch("semantics");
    let image = harden_and_load(&fixtures().archive("echo"), &dir, "semantics", &[]);
    assert_eq!(podman().run_ok(&[], &image, &[]), "entry default\n");
    assert_eq!(podman().run_ok(&[], &image, &["x", "y z"]), "entry x y z\n");
    // The same image before hardening, for comparison.
    let original = podman().load(&fixtures().archive_path("echo"));
    assert_eq!(
        podman().run_ok(&[], &original, &["x", "y z"]),
        "entry x y z\n"
    );
}

#[test]
fn config_is_kept_and_visible_at_run_time() {
    let dir = scratch("kept");
    let image = harden_and_load(&fixtures().archive("busybox"), &dir, "kept", &[]);
    let out = podman().run_ok(&[], &image, &["sh", "-c", "pwd; echo \"$FOO\""]);
    assert_eq!(out, "/srv\nbar baz\n");
    let inspect =
        sh(podman()
            .command()
            .args(["image", "inspect", &image, "--format", "{{json .Config}}"]));
    let config: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(config["Labels"]["org.example.keep"], "yes");
    assert_eq!(config["StopSignal"], "SIGINT");
    assert!(config["ExposedPorts"].get("8080/tcp").is_some(), "{config}");
}

#[test]
fn scratch_image_without_etc_or_shell() {
    let dir = scratch("scratchimg");
    let image = harden_and_load(&fixtures().archive("scratch"), &dir, "scratchimg", &[]);
    let out = podman().run_ok(&[], &image, &[]);
    assert_eq!(out, "uid=1000(app) gid=1000(app) groups=1000(app)\n");
    let out = podman().run_ok(&[], &image, &["/busybox", "cat", "/etc/passwd"]);
    assert!(
        out.contains("app:x:1000:1000::/home/app:/sbin/nologin"),
        "{out}"
    );
    assert_eq!(
        out.matches(":1000:").count(),
        1,
        "one entry for the UID: {out}"
    );
    let out = podman().run_ok(&["-e", "HARDEN_UID=2222", "--read-only"], &image, &[]);
    assert!(out.starts_with("uid=2222 gid=2222"), "{out}");
}

#[test]
fn oci_archive_output_runs() {
    let dir = scratch("ociarchive");
    let out = dir.join("h.tar");
    let dest = format!("oci-archive:{}:v1", out.display());
    let r = harden(&["rewrite", "-q", &fixtures().oci("busybox"), &dest]);
    assert!(r.status.success(), "{:?}", text(&r));
    let image = podman().load(&out);
    assert_eq!(podman().run_ok(&[], &image, &["id", "-u"]), "1000\n");
}

#[test]
fn non_root_image_user_stays_the_default() {
    let dir = scratch("imageuser");
    let layout = dir.join("layout");
    copy_fixture("busybox", &layout, "u");
    sh(cmd(
        "umoci",
        &[
            "config",
            "--image",
            &format!("{}:u", layout.display()),
            "--config.user",
            "1500:1600",
        ],
    ));
    let image = harden_and_load(
        &format!("oci:{}:u", layout.display()),
        &dir,
        "imageuser",
        &[],
    );
    assert_eq!(
        podman().run_ok(&[], &image, &["sh", "-c", "id -u; id -g"]),
        "1500\n1600\n"
    );
}

/// A busybox image with `/bin/euid`, a static program that prints its
/// effective UID, installed setuid root.
fn setuid_fixture(dir: &std::path::Path) -> String {
    let src = dir.join("euid.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"%d\\n\",(int)geteuid());return 0;}\n",
    )
    .unwrap();
    let rootfs = busybox_rootfs(dir);
    let euid = rootfs.join("bin/euid");
    sh(cmd(
        "gcc",
        &[
            "-static",
            "-Os",
            "-o",
            euid.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    ));
    sh(cmd("chmod", &["4755", euid.to_str().unwrap()]));
    umoci_image(
        &dir.join("layout"),
        "suid",
        &rootfs,
        &["--config.cmd", "sh", "--config.env", "PATH=/bin"],
    )
}

#[test]
fn a_setuid_root_program_cannot_regain_root() {
    let dir = scratch("setuid");
    let src = setuid_fixture(&dir);
    let image = harden_and_load(&src, &dir, "suid", &[]);
    let out = podman().run_ok(
        &[],
        &image,
        &["sh", "-c", "id -u; ls -l /bin/euid; /bin/euid"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert!(
        lines[1].starts_with("-rwsr-xr-x"),
        "the fixture is setuid: {out}"
    );
    assert_eq!(
        lines[2], "1000",
        "no_new_privs keeps the setuid bit from raising the euid"
    );
    // The same image with --allow-new-privs: the setuid bit works, so the check above can fail.
    let image = harden_and_load(&src, &dir, "suid-allowed", &["--allow-new-privs"]);
    let out = podman().run_ok(&[], &image, &["sh", "-c", "id -u; /bin/euid"]);
    assert_eq!(out, "1000\n0\n");
}

#[test]
fn restarting_a_container_never_duplicates_the_account() {
    let dir = scratch("restart");
    let image = harden_and_load(&fixtures().archive("busybox"), &dir, "restart", &[]);
    let container = Container::named("restart");
    let name = container.0.as_str();
    let script =
        "grep -c '^app:' /etc/passwd; grep -c ':1000:' /etc/passwd; grep -c '^app:' /etc/group";
    sh(podman()
        .command()
        .args(["create", "--name", name])
        .args(CONTAINER_OPTIONS)
        .args([image.as_str(), "sh", "-c", script]));
    for round in 0..2 {
        let out = sh(podman().command().args(["start", "-a", name]));
        assert_eq!(out, "1\n1\n1\n", "start {round}: one entry each");
    }
}

#[test]
fn bounding_inheritable_and_ambient_sets_are_cleared() {
    let dir = scratch("capbnd");
    let busybox = fixtures().archive("busybox");
    let image = harden_and_load(&busybox, &dir, "capbnd", &[]);
    let status = ["cat", "/proc/self/status"];
    let out = podman().run_ok(&[], &image, &status);
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000000", "{out}");
    // Without CAP_SETPCAP the bounding set cannot be cleared; under no_new_privs
    // that is harmless (no execve can gain anything), so the command runs.
    let out = podman().run_ok(&["--cap-drop", "SETPCAP"], &image, &status);
    assert_ne!(status_field(&out, "CapBnd"), "0000000000000000");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    // With --allow-new-privs the bounding set is what keeps a setuid-root
    // program from capabilities: cleared, and without CAP_SETPCAP a refusal.
    let image = harden_and_load(&busybox, &dir, "capbnd-nnp", &["--allow-new-privs"]);
    let out = podman().run_ok(&[], &image, &status);
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000000");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
    let out = podman().run(&["--cap-drop", "SETPCAP"], &image, &["echo", "COMMAND-RAN"]);
    let (o, e) = text(&out);
    assert!(
        !out.status.success() && !o.contains("COMMAND-RAN"),
        "{o}{e}"
    );
    assert!(e.contains("CAP_SETPCAP is missing"), "{e}");
}

#[test]
fn init_forwards_signals_reaps_orphans_and_passes_the_status() {
    let dir = scratch("init");
    let busybox = fixtures().archive("busybox");
    let image = harden_and_load(&busybox, &dir, "init", &["--init"]);
    let code = |args: &[&str]| podman().run(&[], &image, args).status.code();
    assert_eq!(code(&["sh", "-c", "exit 7"]), Some(7));
    assert_eq!(code(&["sh", "-c", "kill -TERM $$"]), Some(143), "128+N");
    assert_eq!(code(&["/no/such/command"]), Some(127));

    // An orphan (the background sleep, whose parent exits at once) goes to
    // PID 1, which must reap it: no zombie is left when it has ended.
    let script = "(sleep 0.2 &); sleep 1.5; cat /proc/1/status; echo STATS; cat /proc/[0-9]*/stat";
    let out = podman().run_ok(&[], &image, &["sh", "-c", script]);
    let (pid1, stats) = out.split_once("STATS").unwrap();
    assert_eq!(status_field(pid1, "Name"), "harden-stepdown");
    assert_eq!(
        status_field(pid1, "Uid"),
        "1000\t1000\t1000\t1000",
        "PID 1 dropped root too"
    );
    assert_eq!(status_field(pid1, "CapEff"), "0000000000000000");
    assert_eq!(status_field(pid1, "CapBnd"), "0000000000000000");
    assert!(!stats.contains(") Z "), "a zombie was left: {stats}");
    // The command leads a process group of its own (a terminal's Ctrl-C reaches it once).
    let out = podman().run_ok(
        &[],
        &image,
        &["sh", "-c", "echo $$; cut -d' ' -f5 /proc/$$/stat"],
    );
    let ids: Vec<&str> = out.lines().collect();
    assert_eq!(ids[0], ids[1], "pid and process group: {out}");

    // In static mode the image starts as the user: the step-down only does the init part.
    let image_static = harden_and_load(
        &busybox,
        &dir,
        "init-static",
        &["--mode", "static", "--init"],
    );
    let out = podman().run_ok(
        &[],
        &image_static,
        &["sh", "-c", "id -u; cat /proc/1/status"],
    );
    assert!(out.starts_with("1000\n"), "{out}");
    assert_eq!(status_field(&out, "Name"), "harden-stepdown");
    assert_eq!(
        podman()
            .run(&[], &image_static, &["sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );

    // podman stop sends the image's StopSignal (SIGINT in this fixture) to
    // PID 1, which forwards it: sleep ends at once, not at the 10 s kill timeout.
    let stop = |image: &str, timeout: &str| {
        let container = Container::named(&format!("init-{timeout}"));
        let name = container.0.as_str();
        sh(podman()
            .command()
            .args(["run", "-d", "--name", name])
            .args(CONTAINER_OPTIONS)
            .args([image, "sleep", "60"]));
        let start = std::time::Instant::now();
        sh(podman().command().args(["stop", "-t", timeout, name]));
        let took = start.elapsed();
        let code =
            sh(podman()
                .command()
                .args(["inspect", "--format", "{{.State.ExitCode}}", name]));
        (took, code.trim().to_string())
    };
    let (took, code) = stop(&image, "10");
    assert!(
        took < std::time::Duration::from_secs(5),
        "podman stop took {took:?}"
    );
    assert_eq!(code, "130", "128 + SIGINT");
    // The same command without --init ignores the signal as PID 1 and is killed
    // at the timeout: what the check above tells apart.
    let plain = harden_and_load(&busybox, &dir, "noinit", &[]);
    let (took, code) = stop(&plain, "2");
    assert!(took >= std::time::Duration::from_secs(2), "{took:?}");
    assert_eq!(code, "137");
}

/// Every path below `root` (itself included) with its lstat ctime.
fn ctimes(root: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, (i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let m = std::fs::symlink_metadata(&path).unwrap();
        if m.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        out.insert(path, (m.ctime(), m.ctime_nsec()));
    }
    out
}

#[test]
fn chown_changes_only_entries_with_another_owner() {
    use std::os::unix::fs::{chown, lchown, symlink, MetadataExt};
    let dir = scratch("chown");
    let image = harden_and_load(
        &fixtures().archive("busybox"),
        &dir,
        "chown",
        &["--chown", "/data", "--chown", "/new/dir"],
    );
    // A volume of 10,000 files of the user (1000:1000), 10 of another owner.
    let data = dir.join("data");
    let mut wrong = Vec::new();
    for d in 0..100 {
        let sub = data.join(format!("d{d:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..100 {
            let file = sub.join(format!("f{f:02}"));
            std::fs::write(&file, "x").unwrap();
            let owner = if d % 10 == 0 && f == d { 4321 } else { 1000 };
            chown(&file, Some(owner), Some(owner)).unwrap();
            if owner == 4321 {
                wrong.push(file);
            }
        }
        chown(&sub, Some(1000), Some(1000)).unwrap();
    }
    chown(&data, Some(1000), Some(1000)).unwrap();
    assert_eq!(wrong.len(), 10);
    // A symlink to /etc/shadow (a root-owned file mounted there): the link is
    // the user's afterwards, the file stays root's.
    let shadow = dir.join("shadow");
    std::fs::write(&shadow, "root:*:1::::::\n").unwrap();
    let link = data.join("link");
    symlink("/etc/shadow", &link).unwrap();
    lchown(&link, Some(4321), Some(4321)).unwrap();
    // Another mount below /data is not entered.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("theirs"), "x").unwrap();
    chown(other.join("theirs"), Some(4321), Some(4321)).unwrap();
    chown(&other, Some(1000), Some(1000)).unwrap();
    std::fs::create_dir(data.join("mnt")).unwrap();
    chown(data.join("mnt"), Some(1000), Some(1000)).unwrap();

    let before = ctimes(&data);
    let mounts = [
        format!("{}:/data", data.display()),
        format!("{}:/data/mnt", other.display()),
        format!("{}:/etc/shadow", shadow.display()),
    ];
    let out = podman().run_ok(
        &["-v", &mounts[0], "-v", &mounts[1], "-v", &mounts[2]],
        &image,
        &["stat", "-c", "%u:%g %n", "/new/dir", "/etc/shadow"],
    );
    assert_eq!(
        out, "1000:1000 /new/dir\n0:0 /etc/shadow\n",
        "a missing PATH is created"
    );

    let owner = |p: &std::path::Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    for file in &wrong {
        assert_eq!(owner(file), (1000, 1000), "{}", file.display());
    }
    assert_eq!(owner(&link), (1000, 1000), "the link itself is changed");
    assert_eq!(owner(&shadow), (0, 0), "the link is not followed");
    assert_eq!(
        owner(&other.join("theirs")),
        (4321, 4321),
        "another mount is not entered"
    );
    let after = ctimes(&data);
    let changed: Vec<_> = before
        .iter()
        .filter(|(path, ctime)| after.get(*path) != Some(ctime))
        .map(|(path, _)| path.clone())
        .collect();
    let mut expected = wrong.clone();
    expected.push(link);
    expected.sort();
    assert_eq!(
        changed, expected,
        "only entries with another owner are touched"
    );
}

#[test]
fn past_its_bounds_the_step_down_refuses_clearly() {
    let dir = scratch("bounds");
    let image = harden_and_load(&fixtures().archive("busybox"), &dir, "bounds", &[]);
    let refused = |options: &[&str], needle: &str| {
        let out = podman().run(options, &image, &["echo", "COMMAND-RAN"]);
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{o}{e}");
        assert!(!o.contains("COMMAND-RAN"));
        assert!(e.contains(needle), "{e}");
    };
    // An /etc/passwd over 1 MiB is not cut and rewritten: it is refused.
    let passwd = dir.join("passwd");
    let mut text = String::from("root:x:0:0:root:/root:/bin/sh\n");
    while text.len() <= 1 << 20 {
        text.push_str(&format!(
            "u{0}:x:{0}:{0}::/home/u{0}:/sbin/nologin\n",
            10000 + text.len()
        ));
    }
    std::fs::write(&passwd, text).unwrap();
    let mount = format!("{}:/etc/passwd", passwd.display());
    refused(&["-v", &mount], "/etc/passwd is larger than 1048576 bytes");
    // More environment variables than the step-down passes on.
    let env_file = dir.join("env");
    let vars: String = (0..4100).map(|i| format!("V{i}=x\n")).collect();
    std::fs::write(&env_file, vars).unwrap();
    refused(
        &["--env-file", env_file.to_str().unwrap()],
        "more than 4096 environment variables",
    );
    // More supplementary groups than the step-down keeps.
    let groups: Vec<String> = (2000..2257).map(|g| g.to_string()).collect();
    let add: Vec<&str> = groups.iter().flat_map(|g| ["--group-add", g]).collect();
    refused(&add, "more than 256 supplementary groups");
}

/// docker load takes gzip and zstd layers in a docker-archive (docker save
/// writes plain tar; hand-made archives do not). harden tells them by their
/// first bytes: a zstd layer makes the image OCI (a Docker manifest has no zstd
/// layer type), and xz, which no registry media type names, is refused.
#[test]
fn compressed_layers_in_a_docker_archive_are_read() {
    let dir = scratch("archive-compressed");
    let (unpacked, manifest) = unpack_archive("busybox", &dir);
    let layer = unpacked.join(manifest[0]["Layers"][0].as_str().unwrap());
    let plain = std::fs::read(&layer).unwrap();
    let archive_with = |compressor: &str| -> String {
        let bytes = std::process::Command::new(compressor)
            .args(["-c", layer.to_str().unwrap()])
            .output()
            .unwrap()
            .stdout;
        std::fs::write(&layer, &bytes).unwrap();
        let archive = pack_archive(&unpacked, &dir.join(format!("{compressor}.tar")));
        std::fs::write(&layer, &plain).unwrap();
        archive
    };

    let zstd = archive_with("zstd");
    let image = harden_and_load(&zstd, &dir, "from-zstd", &[]);
    assert_eq!(podman().run_ok(&[], &image, &["id", "-u"]), "1000\n");
    let layout = format!("oci:{}:v1", dir.join("layout").display());
    let r = harden(&["rewrite", "-q", &zstd, &layout]);
    assert!(r.status.success(), "{:?}", text(&r));
    let m: serde_json::Value =
        serde_json::from_str(&sh(cmd("skopeo", &["inspect", "--raw", &layout]))).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // skopeo (umoci 0.4 has no zstd) carries the layout, zstd kept, into an
    // oci-archive; podman runs it.
    let back = dir.join("back.tar");
    skopeo_copy(&layout, &format!("oci-archive:{}:v1", back.display()));
    let image = podman().load(&back);
    assert_eq!(podman().run_ok(&[], &image, &["id", "-u"]), "1000\n");

    let xz = archive_with("xz");
    let r = harden(&[
        "rewrite",
        &xz,
        &format!("docker-archive:{}", dir.join("x.tar").display()),
    ]);
    let (_, err) = text(&r);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is xz-compressed: harden reads plain tar, gzip and zstd"),
        "{err}"
    );
    assert!(!dir.join("x.tar").exists());
}

/// `podman healthcheck run` (like docker's checks) execs the check as the
/// config's User, which is root in runtime mode: the check must go through the
/// step-down and run as the same user as the command.
#[test]
fn health_checks_run_as_the_user() {
    let dir = scratch("healthcheck");
    // The busybox fixture with a Healthcheck (umoci writes OCI configs, which
    // have none): the config is edited and written as config.json, since
    // its old name was the old content's digest.
    let (unpacked, mut manifest) = unpack_archive("busybox", &dir);
    let config_path = unpacked.join(manifest[0]["Config"].as_str().unwrap());
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["config"]["Healthcheck"] = serde_json::json!({
        "Test": ["CMD-SHELL", "test \"$(id -u)\" = 1000"],
        "Interval": 3_600_000_000_000u64
    });
    std::fs::remove_file(&config_path).unwrap();
    std::fs::write(unpacked.join("config.json"), config.to_string()).unwrap();
    manifest[0]["Config"] = "config.json".into();
    std::fs::write(unpacked.join("manifest.json"), manifest.to_string()).unwrap();
    let source = dir.join("source.tar");
    let source_ref = pack_archive(&unpacked, &source);

    // The exit code of one check in a running container (0 healthy, 1 not).
    let check = |image: &str| -> Option<i32> {
        let container = Container::named("health");
        let name = container.0.as_str();
        sh(podman()
            .command()
            .args(["run", "-d", "--name", name])
            .args(CONTAINER_OPTIONS)
            .args([image, "sleep", "60"]));
        let code = podman()
            .command()
            .args(["healthcheck", "run", name])
            .output()
            .unwrap()
            .status
            .code();
        code
    };
    let hardened = harden_and_load(&source_ref, &dir, "health", &["--chown", "/srv"]);
    assert_eq!(check(&hardened), Some(0), "the check ran as 1000");
    // The same image unhardened: the check runs as root and fails, which is
    // what the check above tells apart.
    let plain = podman().load(&source);
    assert_eq!(check(&plain), Some(1));

    // As Docker's classic builder writes it: the legacy container_config
    // holds the check too, and podman takes it from there first.
    config["container_config"] = serde_json::json!({
        "Cmd": ["/bin/sh", "-c", "#(nop) HEALTHCHECK"],
        "Healthcheck": config["config"]["Healthcheck"],
    });
    std::fs::write(unpacked.join("config.json"), config.to_string()).unwrap();
    let legacy = pack_archive(&unpacked, &dir.join("legacy.tar"));
    let hardened = harden_and_load(&legacy, &dir, "health-legacy", &["--chown", "/srv"]);
    assert_eq!(check(&hardened), Some(0), "the legacy check ran as 1000");
}

/// docker-archives as other tools write them, which `docker load`, podman and
/// skopeo read: Jib's (manifest.json fields in lower case, the config named
/// `config.json`, gzip layers named `<digest>.tar.gz`), and one whose config
/// file name is another digest than its content's. Each is hardened and runs.
#[test]
fn docker_archives_of_other_writers_are_read() {
    use sha2::Digest;
    let dir = scratch("jib");
    let (unpacked, manifest) = unpack_archive("busybox", &dir);
    let entry = &manifest[0];
    let config = entry["Config"].as_str().unwrap();
    std::fs::rename(unpacked.join(config), unpacked.join("config.json")).unwrap();
    let mut layers = Vec::new();
    for layer in entry["Layers"].as_array().unwrap() {
        let plain = unpacked.join(layer.as_str().unwrap());
        sh(cmd("gzip", &["-n", plain.to_str().unwrap()]));
        let gz = std::fs::read(plain.with_extension("tar.gz")).unwrap();
        let name = format!("{}.tar.gz", hex::encode(sha2::Sha256::digest(&gz)));
        std::fs::write(unpacked.join(&name), gz).unwrap();
        std::fs::remove_file(plain.with_extension("tar.gz")).unwrap();
        layers.push(name);
    }
    let jib = serde_json::json!([{
        "config": "config.json",
        "repoTags": ["localhost/jib:1"],
        "layers": layers,
    }]);
    std::fs::write(unpacked.join("manifest.json"), jib.to_string()).unwrap();
    let source = pack_archive(&unpacked, &dir.join("jib-source.tar"));
    // The writers' own readers take it (the test is of a readable archive).
    sh(cmd("skopeo", &["inspect", &source]));
    let image = harden_and_load(&source, &dir, "jib", &[]);
    assert_eq!(podman().run_ok(&[], &image, &["id", "-u"]), "1000\n");

    // Config named by a digest that is not its content's.
    let wrong = format!("{}.json", "0".repeat(64));
    std::fs::rename(unpacked.join("config.json"), unpacked.join(&wrong)).unwrap();
    let renamed = serde_json::json!([{"Config": wrong, "RepoTags": ["localhost/renamed:1"], "Layers": layers}]);
    std::fs::write(unpacked.join("manifest.json"), renamed.to_string()).unwrap();
    let source = pack_archive(&unpacked, &dir.join("renamed-source.tar"));
    sh(cmd("skopeo", &["inspect", &source]));
    let image = harden_and_load(&source, &dir, "renamed", &[]);
    assert_eq!(podman().run_ok(&[], &image, &["id", "-u"]), "1000\n");
}
