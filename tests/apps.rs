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

/// The official image's entrypoint, shortened: as root, give the data to
/// `postgres` and step down with gosu; as any other user, initialise an
/// empty data directory, then run the command.
const POSTGRES_ENTRYPOINT: &str = r#"#!/bin/sh
set -e
if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$PGDATA" /var/run/postgresql
    exec gosu postgres "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb --username=postgres --auth=trust >/dev/null
fi
exec "$@"
"#;

/// PostgreSQL 15 from Debian in an image like the official one: root
/// User, VOLUME /var/lib/postgresql/data (PGDATA) owned by `postgres`,
/// /var/run/postgresql 3777 owned by it, the entrypoint above, `postgres`
/// as Cmd, SIGINT to stop. Returns the image and postgres's UID.
fn postgres() -> &'static (String, u32) {
    static P: OnceLock<(String, u32)> = OnceLock::new();
    P.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("postgres-image");
        let rootfs = debootstrap(&dir, &["postgresql-15", "gosu"]);
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        let line = passwd.lines().find(|l| l.starts_with("postgres:")).unwrap();
        let uid: u32 = line.split(':').nth(2).unwrap().parse().unwrap();
        for (path, mode) in [
            ("var/lib/postgresql/data", 0o1777),
            ("run/postgresql", 0o3777),
        ] {
            let path = rootfs.join(path);
            std::fs::create_dir_all(&path).unwrap();
            std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let script = rootfs.join("usr/local/bin/docker-entrypoint.sh");
        std::fs::write(&script, POSTGRES_ENTRYPOINT).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let image = umoci_image(
            &dir.join("layout"),
            "postgres",
            &rootfs,
            &[
                "--config.entrypoint",
                "docker-entrypoint.sh",
                "--config.cmd",
                "postgres",
                "--config.volume",
                "/var/lib/postgresql/data",
                "--config.stopsignal",
                "SIGINT",
                "--config.env",
                "PATH=/usr/local/bin:/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--config.env",
                "PGDATA=/var/lib/postgresql/data",
            ],
        );
        (image, uid)
    })
}

/// nginx from Debian (nginx-light) in an image like the official one: root
/// User, `nginx -g 'daemon off;'` as Cmd, SIGQUIT to stop; curl to ask it.
/// Its package leaves /var/lib/nginx, /var/log/nginx and /run (its pid
/// file) root's.
fn nginx() -> &'static String {
    static N: OnceLock<String> = OnceLock::new();
    N.get_or_init(|| {
        let dir = scratch("nginx-image");
        let rootfs = debootstrap(&dir, &["nginx-light", "curl"]);
        umoci_image(
            &dir.join("layout"),
            "nginx",
            &rootfs,
            &[
                "--config.cmd",
                "nginx",
                "--config.cmd",
                "-g",
                "--config.cmd",
                "daemon off;",
                "--config.exposedports",
                "80/tcp",
                "--config.stopsignal",
                "SIGQUIT",
                "--config.env",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            ],
        )
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

fn psql(c: &Container, sql: &str) -> String {
    exec(c, &["psql", "-U", "postgres", "-tAc", sql])
}

/// Waits until PostgreSQL answers (initdb first, a few seconds).
fn wait_for_postgres(c: &Container) {
    let start = Instant::now();
    loop {
        let answer = psql(c, "select 1");
        if answer == "1" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "postgres did not answer: {answer}\n{}",
            sh(podman().command().args(["logs", &c.0]))
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Defaults, in both modes: the official-style entrypoint finds itself
/// not root (the step-down already runs it as postgres, the owner of the
/// volume), initialises the data directory, and PostgreSQL answers, stops
/// at once and keeps its data. In runtime mode a bind-mounted data
/// directory owned by 1001 is initialised and used as 1001.
#[test]
fn postgres_keeps_working_with_default_options() {
    let (src, uid) = postgres();
    let dir = scratch("postgres");
    let want = format!("{uid}\t{uid}\t{uid}\t{uid}");
    let mut images = Vec::new();
    for mode in ["runtime", "static"] {
        let image = harden_and_load(src, &dir, &format!("pg-{mode}"), &["--mode", mode]);
        images.push(image.clone());
        let c = start(&format!("pg-{mode}"), &[], &image);
        wait_for_postgres(&c);
        assert_eq!(pid1_uids(&c), want, "{mode}: postgres runs as postgres");
        assert_eq!(psql(&c, "create table t as select 42 as v"), "SELECT 1");
        let took = stop(&c);
        assert!(
            took < Duration::from_secs(5),
            "{mode}: podman stop took {took:?}"
        );
        sh(podman().command().args(["start", &c.0]));
        wait_for_postgres(&c);
        assert_eq!(psql(&c, "select v from t"), "42", "{mode}");
    }

    let data = dir.join("pgdata");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(1001), Some(1001)).unwrap();
    let mount = format!("{}:/var/lib/postgresql/data", data.display());
    let c = start("pg-mount", &["-v", &mount], &images[0]);
    wait_for_postgres(&c);
    assert_eq!(pid1_uids(&c), "1001\t1001\t1001\t1001");
    let meta = std::fs::metadata(data.join("PG_VERSION")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1001);
}

/// Waits until nginx answers on port 80 from inside the container.
fn wait_for_nginx(c: &Container) -> String {
    let start = Instant::now();
    loop {
        let answer = exec(c, &["curl", "-fsS", "http://127.0.0.1/"]);
        if answer.contains("Welcome to nginx") {
            return answer;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nginx did not answer: {answer}\n{}",
            sh(podman().command().args(["logs", &c.0]))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What Docker sets for every container with its own network namespace,
/// and podman does not: a user may bind port 80.
const UNPRIVILEGED_PORTS: &str = "--sysctl=net.ipv4.ip_unprivileged_port_start=0";

/// Defaults, in both modes: nginx finds the directories it writes
/// (/var/lib/nginx, /var/log/nginx, /run for its pid file) the user's,
/// answers on port 80 as that user and stops at once. `--no-infer` shows
/// what the inference changes: nginx cannot start.
#[test]
fn nginx_keeps_working_with_default_options() {
    let src = nginx();
    let dir = scratch("nginx");
    for mode in ["runtime", "static"] {
        let image = harden_and_load(src, &dir, &format!("nginx-{mode}"), &["--mode", mode]);
        let c = start(&format!("nginx-{mode}"), &[UNPRIVILEGED_PORTS], &image);
        wait_for_nginx(&c);
        assert_eq!(pid1_uids(&c), "1000\t1000\t1000\t1000", "{mode}");
        let log = exec(&c, &["stat", "-c", "%u", "/var/log/nginx/access.log"]);
        assert_eq!(log, "1000", "{mode}: nginx logs as the user");
        let took = stop(&c);
        assert!(
            took < Duration::from_secs(5),
            "{mode}: podman stop took {took:?}"
        );
    }
    let dest = format!("docker-archive:{}", dir.join("plan.tar").display());
    let plan = harden(&["rewrite", "--dry-run", src, &dest]);
    let (_, e) = text(&plan);
    assert!(e.contains("note: the image exposes 80/tcp"), "{e}");
    let image = harden_and_load(src, &dir, "nginx-no-infer", &["--no-infer"]);
    let out = podman().run(&[UNPRIVILEGED_PORTS], &image, &[]);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(e.contains("Permission denied"), "{e}");
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
    let writable = &report["platforms"][0]["inferred"]["writable"];
    assert_eq!(writable[0], "/data", "{writable}");
    assert!(writable
        .as_array()
        .unwrap()
        .contains(&"/var/lib/redis".into()));
    assert!(
        e.contains("inferred: at start, gives the user whichever are there of /data, /run,"),
        "{e}"
    );
    assert_eq!(report["platforms"][0]["inferred"]["mounted_home"], "/root");
    assert!(
        e.contains("mounted at or below /root (the image's HOME)"),
        "{e}"
    );
    let plan = sh(cmd(harden_bin(), &["rewrite", "--dry-run", src, &dest]));
    assert!(
        plan.contains("--match-owner") && plan.contains("--writable"),
        "{plan}"
    );
    assert!(plan.contains("--mounted-home"), "{plan}");
    let out = harden(&["rewrite", src, &dest, "--json", "--no-infer"]);
    let (o, e) = text(&out);
    assert!(out.status.success() && !e.contains("inferred"), "{e}");
    let report: serde_json::Value = serde_json::from_str(&o).unwrap();
    for what in ["match_owner", "writable"] {
        assert_eq!(
            report["platforms"][0]["inferred"][what],
            serde_json::json!([])
        );
    }
    assert!(report["platforms"][0]["inferred"]["mounted_home"].is_null());
}

/// A CLI like amazon/aws-cli: root User, HOME /root (mode 0700), the
/// program as Entrypoint. It reads `$HOME/.aws/credentials` and writes its
/// cache below `$HOME/.aws`, prints its UID, HOME and /root's mode.
fn aws_cli() -> &'static String {
    static A: OnceLock<String> = OnceLock::new();
    A.get_or_init(|| {
        let dir = scratch("aws-image");
        let rootfs = busybox_rootfs(&dir);
        let root = rootfs.join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let bin = rootfs.join("usr/local/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let script = "#!/bin/sh\nset -e\necho \"$(id -u) $HOME $(stat -c %a /root)\"\n\
                      cat \"$HOME/.aws/credentials\"\nmkdir -p \"$HOME/.aws/cli/cache\"\n\
                      echo token > \"$HOME/.aws/cli/cache/session.json\"\n";
        std::fs::write(bin.join("aws"), script).unwrap();
        std::fs::set_permissions(
            bin.join("aws"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        umoci_image(
            &dir.join("layout"),
            "aws",
            &rootfs,
            &[
                "--config.entrypoint",
                "/usr/local/bin/aws",
                "--config.workingdir",
                "/aws",
                "--config.env",
                "PATH=/usr/local/bin:/bin",
            ],
        )
    })
}

/// `-v ~/.aws:/root/.aws`, as the original image's users run it: with
/// default options the hardened CLI runs as the owner of the mount, with
/// HOME /root (made searchable), finds the credentials and writes its cache
/// as that user. Static mode (its user fixed at 1000) finds them as well.
#[test]
fn an_aws_like_cli_finds_the_files_mounted_below_roots_home() {
    let src = aws_cli();
    let dir = scratch("aws");
    let creds = |name: &str, uid: u32| {
        let d = dir.join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("credentials"), "[default]\n").unwrap();
        sh(cmd(
            "chown",
            &["-R", &format!("{uid}:{uid}"), d.to_str().unwrap()],
        ));
        sh(cmd("chmod", &["-R", "go-rwx", d.to_str().unwrap()]));
        d
    };
    let mine = creds("dot-aws", 1001);
    let v = format!("{}:/root/.aws", mine.display());
    let image = harden_and_load(src, &dir, "aws-h", &[]);
    let out = podman().run_ok(&["-v", &v], &image, &["s3", "ls"]);
    assert_eq!(out, "1001 /root 711\n[default]\n");
    let cache = std::fs::metadata(mine.join("cli/cache/session.json")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&cache), 1001);
    // Nothing mounted there: the user's own HOME, /root left as it was.
    let out = podman().run(&[], &image, &[]);
    let (o, _) = text(&out);
    assert!(o.starts_with("1000 /home/app 700\n"), "{o}");

    let fixed = harden_and_load(src, &dir, "aws-static", &["--mode", "static"]);
    let theirs = creds("dot-aws-1000", 1000);
    let v = format!("{}:/root/.aws", theirs.display());
    let out = podman().run_ok(&["-v", &v], &fixed, &[]);
    assert_eq!(out, "1000 /root 711\n[default]\n", "static mode");

    let plain = harden_and_load(src, &dir, "aws-no-infer", &["--no-infer"]);
    let out = podman().run(&["-v", &v], &plain, &[]);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(o.starts_with("1000 /home/app 700\n"), "{o}");
}

/// `python3 -m http.server` from Debian's python3 in a root image, as many
/// images run a small web app: no SIGTERM handler.
fn python() -> &'static String {
    static P: OnceLock<String> = OnceLock::new();
    P.get_or_init(|| {
        let dir = scratch("python-image");
        let rootfs = debootstrap(&dir, &["python3"]);
        umoci_image(
            &dir.join("layout"),
            "python",
            &rootfs,
            &[
                "--config.cmd",
                "python3",
                "--config.cmd",
                "-m",
                "--config.cmd",
                "http.server",
                "--config.exposedports",
                "8000/tcp",
                "--config.workingdir",
                "/srv",
                "--config.env",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            ],
        )
    })
}

fn wait_for_python(c: &Container) {
    let ask = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/').status)";
    let start = Instant::now();
    while exec(c, &["python3", "-c", ask]) != "200" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "http.server did not answer: {}",
            sh(podman().command().args(["logs", &c.0]))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `podman stop` with a 3 s grace period.
fn stop_within_3s(c: &Container) -> Duration {
    let t = Instant::now();
    sh(podman().command().args(["stop", "-t", "3", &c.0]));
    t.elapsed()
}

/// Defaults, in both modes: http.server serves as the user. As PID 1 it
/// ignores SIGTERM, so `podman stop` waits for the grace period, exactly as
/// for the original image: harden does not make stopping worse, and
/// `--init` (an unprivileged PID 1 that forwards the signal) makes it stop
/// at once. This is why `--init` is not a default (docs/inference.md).
#[test]
fn python_http_server_serves_and_stops_as_the_original_does() {
    let src = python();
    let dir = scratch("python");
    let original = dir.join("original.tar");
    skopeo_copy(
        src,
        &format!("docker-archive:{}:example/python:1", original.display()),
    );
    let original = podman().load(&original);
    let c = start("python-original", &[], &original);
    wait_for_python(&c);
    assert_eq!(pid1_uids(&c), "0\t0\t0\t0");
    let took = stop_within_3s(&c);
    assert!(
        took >= Duration::from_millis(2500),
        "the original stopped in {took:?}"
    );
    for mode in ["runtime", "static"] {
        let image = harden_and_load(src, &dir, &format!("python-{mode}"), &["--mode", mode]);
        let c = start(&format!("python-{mode}"), &[], &image);
        wait_for_python(&c);
        assert_eq!(pid1_uids(&c), "1000\t1000\t1000\t1000", "{mode}");
        let took = stop_within_3s(&c);
        assert!(
            took >= Duration::from_millis(2500),
            "{mode}: stopped in {took:?}"
        );
    }
    let image = harden_and_load(src, &dir, "python-init", &["--init"]);
    let c = start("python-init", &[], &image);
    wait_for_python(&c);
    let took = stop_within_3s(&c);
    assert!(
        took < Duration::from_secs(2),
        "--init: podman stop took {took:?}"
    );
}
