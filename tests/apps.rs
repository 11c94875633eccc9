//! Real software from Debian's packages, in images shaped like the official
//! ones, hardened with default options: the service works as non-root.

mod common;
use common::*;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// redis-server from Debian in an image like the official one: root User,
/// VOLUME /data (owned by the `redis` account) as WorkingDir, `redis-server`
/// as Cmd. Returns the image and redis's UID in it.
fn redis() -> &'static (String, u32) {
    static R: OnceLock<(String, u32)> = OnceLock::new();
    R.get_or_init(|| {
        let dir = scratch("redis-image");
        let rootfs = debootstrap(&dir, &["redis-server"]);
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        let line = passwd.lines().find(|l| l.starts_with("redis:")).unwrap();
        let uid: u32 = line.split(':').nth(2).unwrap().parse().unwrap();
        let data = rootfs.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::chown(&data, Some(uid), Some(uid)).unwrap();
        let image = umoci_image(
            &dir.join("layout"),
            "redis",
            &rootfs,
            &[
                "--config.cmd",
                "redis-server",
                "--config.volume",
                "/data",
                "--config.workingdir",
                "/data",
                "--config.env",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            ],
        );
        (image, uid)
    })
}

/// A detached container of `image` (removed when dropped).
fn start(what: &str, options: &[&str], image: &str) -> Container {
    let c = Container::named(what);
    let mut run = podman().command();
    run.args(["run", "-d", "--name", &c.0])
        .args(CONTAINER_OPTIONS);
    sh(run.args(options).arg(image));
    c
}

fn exec(c: &Container, args: &[&str]) -> String {
    let out = podman()
        .command()
        .args(["exec", &c.0])
        .args(args)
        .output()
        .unwrap();
    let (o, e) = text(&out);
    format!("{o}{e}").trim().to_string()
}

/// Waits until redis answers PING (it starts in well under a second).
fn wait_for_redis(c: &Container) {
    let start = Instant::now();
    while exec(c, &["redis-cli", "ping"]) != "PONG" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "redis did not answer: {}",
            sh(podman().command().args(["logs", &c.0]))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The UID redis-server (PID 1) runs as, from its real/effective/saved/fs UIDs.
fn pid1_uids(c: &Container) -> String {
    let status = exec(c, &["cat", "/proc/1/status"]);
    status_field(&status, "Uid").to_string()
}

fn stop(c: &Container) -> Duration {
    let t = Instant::now();
    sh(podman().command().args(["stop", "-t", "10", &c.0]));
    t.elapsed()
}

/// Defaults: redis runs as the `redis` account that owns its VOLUME, saves
/// into it, stops at once on `podman stop` (saving what it holds) and finds
/// its data after a restart. A bind-mounted data directory owned by 1001 is
/// used as 1001. Static mode runs as redis as well. `--no-infer` shows what
/// the inference changes: the default user 1000 cannot save.
#[test]
fn redis_keeps_working_with_default_options() {
    let (src, uid) = redis();
    let dir = scratch("redis");
    let image = harden_and_load(src, &dir, "redis-h", &[]);
    let c = start("redis", &[], &image);
    wait_for_redis(&c);
    let want = format!("{uid}\t{uid}\t{uid}\t{uid}");
    assert_eq!(pid1_uids(&c), want, "redis runs as the redis account");
    assert_eq!(exec(&c, &["redis-cli", "set", "k", "saved"]), "OK");
    assert_eq!(exec(&c, &["redis-cli", "save"]), "OK");
    assert_eq!(
        exec(&c, &["stat", "-c", "%u", "/data/dump.rdb"]),
        uid.to_string()
    );
    // Written after the SAVE: only the save at shutdown keeps it.
    assert_eq!(exec(&c, &["redis-cli", "set", "late", "kept"]), "OK");
    let took = stop(&c);
    // The kill after the 10 s timeout would lose "late".
    assert!(took < Duration::from_secs(5), "podman stop took {took:?}");
    sh(podman().command().args(["start", &c.0]));
    wait_for_redis(&c);
    assert_eq!(exec(&c, &["redis-cli", "get", "k"]), "saved");
    assert_eq!(exec(&c, &["redis-cli", "get", "late"]), "kept");

    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(1001), Some(1001)).unwrap();
    let mount = format!("{}:/data", data.display());
    let c = start("redis-mount", &["-v", &mount], &image);
    wait_for_redis(&c);
    assert_eq!(pid1_uids(&c), "1001\t1001\t1001\t1001");
    assert_eq!(exec(&c, &["redis-cli", "save"]), "OK");
    let meta = std::fs::metadata(data.join("dump.rdb")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1001);
    drop(c);

    // Static mode takes the same account from the image, at rewrite time.
    let fixed = harden_and_load(src, &dir, "redis-static", &["--mode", "static"]);
    let c = start("redis-static", &[], &fixed);
    wait_for_redis(&c);
    assert_eq!(pid1_uids(&c), want, "static mode: redis too");
    assert_eq!(exec(&c, &["redis-cli", "set", "late", "kept"]), "OK");
    let took = stop(&c);
    assert!(took < Duration::from_secs(5), "podman stop took {took:?}");
    sh(podman().command().args(["start", &c.0]));
    wait_for_redis(&c);
    assert_eq!(exec(&c, &["redis-cli", "get", "late"]), "kept");
    drop(c);

    let plain = harden_and_load(src, &dir, "redis-plain", &["--no-infer"]);
    let c = start("redis-plain", &[], &plain);
    wait_for_redis(&c);
    assert_eq!(pid1_uids(&c), "1000\t1000\t1000\t1000");
    assert_ne!(
        exec(&c, &["redis-cli", "save"]),
        "OK",
        "1000 cannot write /data"
    );
}

/// What was inferred is said on stderr and in the JSON report, and the dry
/// run shows it in the new entrypoint.
#[test]
fn the_inference_is_said() {
    let (src, _) = redis();
    let dir = scratch("redis-said");
    let dest = format!("docker-archive:{}", dir.join("o.tar").display());
    let out = harden(&["rewrite", src, &dest, "--json"]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{e}");
    assert!(e.contains("inferred: runs as the owner of /data"), "{e}");
    let report: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(
        report["platforms"][0]["inferred"]["match_owner"],
        serde_json::json!(["/data"])
    );
    let plan = sh(cmd(harden_bin(), &["rewrite", "--dry-run", src, &dest]));
    assert!(plan.contains("--match-owner"), "{plan}");
    let out = harden(&["rewrite", src, &dest, "--json", "--no-infer"]);
    let (o, e) = text(&out);
    assert!(out.status.success() && !e.contains("inferred"), "{e}");
    let report: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(
        report["platforms"][0]["inferred"]["match_owner"],
        serde_json::json!([])
    );
}
