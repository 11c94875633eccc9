//! The `docker-daemon:` transport against real engines: a private dockerd
//! (Debian's docker.io) and podman's Docker-compatible service, each on a
//! unix socket in the test's temp dir (../shared/RECIPES.md).

mod common;
use common::docker::Docker;
use common::registry::{client_cert, free_port, make_certs, Registry};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// harden with `DOCKER_HOST=host`.
fn harden_at(host: &str, args: &[&str]) -> Output {
    Command::new(harden_bin())
        .env("DOCKER_HOST", host)
        .args(args)
        .output()
        .expect("run harden")
}

fn harden_ok(host: &str, args: &[&str]) -> String {
    let out = harden_at(host, args);
    let (o, e) = text(&out);
    assert!(out.status.success(), "harden {args:?}: {o}\n{e}");
    o
}

/// The JSON report of `harden rewrite -q --json ARGS`.
fn rewrite_report(host: &str, args: &[&str]) -> serde_json::Value {
    let args: Vec<&str> = ["rewrite", "-q", "--json"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    serde_json::from_str(&harden_ok(host, &args)).unwrap()
}

/// `docker build` of a FROM-scratch busybox image (root, HOME /root).
fn build(docker: &Docker, dir: &Path, tag: &str) {
    docker.build_busybox(tag, dir, "CMD [\"id\", \"-u\"]\n");
}

fn docker_id(docker: &Docker, name: &str) -> String {
    sh(docker
        .command()
        .args(["image", "inspect", "--format", "{{.Id}}", name]))
    .trim()
    .to_string()
}

#[test]
fn docker_images_are_hardened_in_the_engine_and_run_there() {
    let docker = Docker::start_named("dd-run");
    let host = docker.host();
    let dir = scratch("daemon-docker");
    build(&docker, &dir, "app:1");
    let source_id = docker_id(&docker, "app:1");

    // daemon → daemon, with the report's ID the engine's.
    let report = rewrite_report(
        &host,
        &["docker-daemon:app:1", "docker-daemon:app:1-hardened"],
    );
    let id = docker_id(&docker, "app:1-hardened");
    assert_eq!(report["image_id"], id.as_str(), "{report}");
    assert_eq!(report["destination"], "docker-daemon:app:1-hardened");
    assert_eq!(
        docker_id(&docker, "app:1"),
        source_id,
        "the source is untouched"
    );
    assert_eq!(docker.run_ok(&[], "app:1-hardened", &[]).trim(), "1000");
    assert_eq!(
        docker
            .run_ok(&["-e", "HARDEN_UID=4321"], "app:1-hardened", &[])
            .trim(),
        "4321"
    );

    // The seed's bind mount: a host directory owned by 1001 is used as 1001.
    harden_ok(
        &host,
        &[
            "rewrite",
            "-q",
            "docker-daemon:app:1",
            "docker-daemon:app:1-data",
            "--uid-env",
            "AWS_UID",
            "--match-owner",
            "/data",
        ],
    );
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(1001), Some(1001)).unwrap();
    let mount = format!("type=bind,src={},dst=/data", data.display());
    let out = docker.run_ok(
        &["--mount", &mount],
        "app:1-data",
        &["sh", "-c", "id -u; touch /data/f; stat -c %u /data/f"],
    );
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["1001", "1001"]);
    let out = docker.run_ok(&["-e", "AWS_UID=1500"], "app:1-data", &[]);
    assert_eq!(out.trim(), "1500");

    // daemon → archive → daemon gives the same image as daemon → daemon.
    let tar = dir.join("hardened.tar");
    let archive = format!("docker-archive:{}", tar.display());
    harden_ok(&host, &["rewrite", "-q", "docker-daemon:app:1", &archive]);
    harden_ok(&host, &["rewrite", "-q", &archive, "docker-daemon:again:1"]);
    assert_eq!(docker_id(&docker, "again:1"), id);

    // daemon → registry: docker pulls the same image back.
    let registry = Registry::plain("daemon");
    let pushed = format!("{}/app:1-hardened", registry.addr);
    harden_ok(
        &host,
        &[
            "rewrite",
            "-q",
            "--dest-tls-verify=false",
            "docker-daemon:app:1",
            &format!("docker://{pushed}"),
        ],
    );
    sh(docker.command().args(["pull", "-q", &pushed]));
    assert_eq!(docker_id(&docker, &pushed), id);

    // inspect and check read the engine too.
    let out = harden_ok(&host, &["check", "docker-daemon:app:1-hardened"]);
    assert!(out.contains("PASS"), "{out}");
    let out = harden_at(&host, &["check", "docker-daemon:app:1"]);
    assert!(!out.status.success(), "the unhardened source fails check");
}

/// Docker's containerd image store (Docker 29's default; trixie's dockerd 26
/// with the feature on): an image ID is its manifest's or index's digest,
/// `docker save` writes an OCI layout, and one name holds every platform
/// pulled for it.
#[test]
fn dockers_containerd_image_store_is_read_and_written() {
    let docker = Docker::start_containerd_store("dd-ctrd", &[]);
    let host = docker.host();
    let dir = scratch("daemon-containerd");
    let status = sh(docker
        .command()
        .args(["info", "--format", "{{json .DriverStatus}}"]));
    assert!(status.contains("io.containerd.snapshotter.v1"), "{status}");
    build(&docker, &dir, "app:1");
    let source_id = docker_id(&docker, "app:1");

    // daemon → daemon: the engine names the image by the manifest harden
    // wrote, and the report says so.
    let report = rewrite_report(
        &host,
        &["docker-daemon:app:1", "docker-daemon:app:1-hardened"],
    );
    let id = docker_id(&docker, "app:1-hardened");
    assert_eq!(report["manifest_digest"], id.as_str(), "{report}");
    assert_eq!(report["platforms"][0]["manifest_digest"], id.as_str());
    assert_eq!(report["source_manifest_digest"], source_id.as_str());
    assert_eq!(
        docker_id(&docker, "app:1"),
        source_id,
        "the source is untouched"
    );
    assert_eq!(docker.run_ok(&[], "app:1-hardened", &[]).trim(), "1000");
    let out = docker.run_ok(&["-e", "HARDEN_UID=4321"], "app:1-hardened", &[]);
    assert_eq!(out.trim(), "4321");
    let out = harden_ok(&host, &["check", "docker-daemon:app:1-hardened"]);
    assert!(out.contains("PASS"), "{out}");

    // daemon → archive → daemon: the same config, loaded and run.
    let tar = dir.join("hardened.tar");
    let archive = format!("docker-archive:{}", tar.display());
    harden_ok(&host, &["rewrite", "-q", "docker-daemon:app:1", &archive]);
    let again = rewrite_report(&host, &[&archive, "docker-daemon:again:1"]);
    assert_eq!(again["image_id"], report["image_id"]);
    assert_eq!(
        again["manifest_digest"],
        docker_id(&docker, "again:1").as_str()
    );
    assert_eq!(docker.run_ok(&[], "again:1", &[]).trim(), "1000");

    // Two platforms pulled under one name: --platform chooses between them.
    let registry = Registry::plain("daemon-ctrd");
    let multi = registry.push(&multiarch().oci(), "multi:1", &["--all"]);
    sh(docker.command().args(["pull", "-q", &multi]));
    sh(docker
        .command()
        .args(["pull", "-q", "--platform", "linux/arm64", &multi]));
    let source = format!("docker-daemon:{multi}");
    harden_ok(
        &host,
        &[
            "rewrite",
            "-q",
            "--platform",
            "linux/arm64",
            &source,
            "docker-daemon:multi:arm",
        ],
    );
    let arch = sh(docker.command().args([
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}}",
        "multi:arm",
    ]));
    assert_eq!(arch.trim(), "linux/arm64");
    // The engine's name holds only some platforms of its index: harden
    // says which and asks for a choice, or takes the ones chosen.
    let out = harden_at(
        &host,
        &["rewrite", "-q", &source, "docker-daemon:multi:all"],
    );
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("--platform") && err.contains("linux/arm64"),
        "{err}"
    );
    let layout = format!("oci:{}:both", dir.join("layout").display());
    let both = rewrite_report(
        &host,
        &[
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
            &source,
            &layout,
        ],
    );
    let platforms: Vec<&str> = both["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"], "{both}");
}

#[test]
fn a_load_that_fails_leaves_no_tag() {
    let docker = Docker::start_named("dd-broken");
    let host = docker.host();
    let dir = scratch("daemon-broken");
    build(&docker, &dir, "app:1");
    // A saved image whose layer no longer matches its diff_id: harden finds
    // out only once the layer has streamed to the engine.
    let tar = dir.join("saved.tar");
    sh(docker
        .command()
        .args(["save", "-o", tar.to_str().unwrap(), "app:1"]));
    let (unpacked, manifest) = unpack_tar(&tar, &dir);
    let layer = unpacked.join(manifest[0]["Layers"][0].as_str().unwrap());
    let mut bytes = std::fs::read(&layer).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    let broken = pack_archive(&unpacked, &dir.join("broken.tar"));
    let out = harden_at(&host, &["rewrite", "-q", &broken, "docker-daemon:broken:1"]);
    let (_, err) = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("sha256:"),
        "the error names the mismatch: {err}"
    );
    let inspect = docker
        .command()
        .args(["image", "inspect", "broken:1"])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "no tag after a failed load");
}

#[test]
fn engine_errors_name_the_engine_and_choose_the_exit_code() {
    let docker = Docker::start_named("dd-errors");
    let host = docker.host();
    let dir = scratch("daemon-errors");

    let out = harden_at(&host, &["inspect", "docker-daemon:absent:1"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains(&host) && err.contains("absent:1"), "{err}");

    // No engine at the socket's path: stopped, or never started.
    let gone = format!("unix://{}", dir.join("stopped.sock").display());
    let out = harden_at(&gone, &["inspect", "docker-daemon:app:1"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&gone) && err.contains("is it running"),
        "{err}"
    );
    // Writing to it says the same, not what the archive writer met after.
    let source = fixtures().archive("busybox");
    let out = harden_at(&gone, &["rewrite", "-q", &source, "docker-daemon:app:2"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is it running") && !err.contains("pipe"),
        "{err}"
    );

    // A socket the user may not open (mode 600, root's; harden as nobody).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.join("closed.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    let closed = format!("unix://{}", socket.display());
    let mut parent = dir.parent();
    while let Some(p) = parent {
        // Every directory above must let nobody reach the socket.
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o011)).unwrap();
        parent = p.parent().filter(|p| p != &Path::new("/"));
    }
    // A copy nobody may run, wherever the build is.
    let bin = dir.join("harden");
    std::fs::copy(harden_bin(), &bin).unwrap();
    let out = Command::new(which("setpriv"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["inspect", "docker-daemon:app:1"])
        .env("DOCKER_HOST", &closed)
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("permission denied") && err.contains(&closed),
        "{err}"
    );

    let out = harden_at("ssh://host", &["inspect", "docker-daemon:app:1"]);
    assert!(text(&out).1.contains("DOCKER_HOST=ssh://host"));

    let out = harden_at(
        &host,
        &["rewrite", "docker-daemon:a:1", "docker-daemon:a:1"],
    );
    assert!(text(&out).1.contains("is the source"));
}

/// podman's Docker-compatible API service on the test's podman store.
struct PodmanService {
    child: Child,
    host: String,
}

impl PodmanService {
    fn start(dir: &Path) -> PodmanService {
        let socket = dir.join("podman.sock");
        let host = format!("unix://{}", socket.display());
        let child = podman()
            .command()
            .args(["system", "service", "--time", "0", &host])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start podman system service");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "podman's service did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        PodmanService { child, host }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn podmans_service_is_an_engine_too() {
    let dir = scratch("daemon-podman");
    let service = PodmanService::start(&dir);
    let host = &service.host;
    let source = fixtures().archive("busybox");
    harden_ok(host, &["rewrite", "-q", &source, "docker-daemon:papp:1"]);
    let p = podman();
    assert_eq!(p.run_ok(&[], "papp:1", &["id", "-u"]).trim(), "1000");
    // Read back from podman's store and loaded again under a new name.
    harden_ok(
        host,
        &[
            "rewrite",
            "-q",
            "docker-daemon:papp:1",
            "docker-daemon:papp:2",
        ],
    );
    let out = p.run_ok(&["-e", "HARDEN_UID=1234"], "papp:2", &["id", "-u"]);
    assert_eq!(out.trim(), "1234");
    let out = harden_at(host, &["inspect", "docker-daemon:absent:1"]);
    assert_eq!(out.status.code(), Some(4), "{:?}", text(&out));
}

#[test]
fn an_engine_over_tcp_with_tls_as_the_docker_cli_reaches_it() {
    let certs = scratch("daemon-tls-certs");
    make_certs(&certs);
    client_cert(&certs);
    let c = |f: &str| certs.join(f).to_str().unwrap().to_string();
    let addr = format!("127.0.0.1:{}", free_port());
    let docker = Docker::start_with(
        "dd-tls",
        &[
            "--tlsverify".into(),
            format!("--tlscacert={}", c("ca.crt")),
            format!("--tlscert={}", c("server.crt")),
            format!("--tlskey={}", c("server.key")),
            "-H".into(),
            format!("tcp://{addr}"),
        ],
    );
    let dir = scratch("daemon-tls");
    build(&docker, &dir, "app:1");
    // DOCKER_CERT_PATH as the docker CLI reads it: ca.pem, cert.pem, key.pem.
    let client = dir.join("client");
    std::fs::create_dir(&client).unwrap();
    for (from, to) in [
        ("ca.crt", "ca.pem"),
        ("client.crt", "cert.pem"),
        ("client.key", "key.pem"),
    ] {
        std::fs::copy(certs.join(from), client.join(to)).unwrap();
    }
    let tcp = format!("tcp://{addr}");
    let run = |tls: Option<&Path>, args: &[&str]| {
        let mut c = Command::new(harden_bin());
        c.env("DOCKER_HOST", &tcp).args(args);
        if let Some(path) = tls {
            c.env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", path);
        }
        c.output().unwrap()
    };
    let out = run(
        Some(&client),
        &[
            "rewrite",
            "-q",
            "docker-daemon:app:1",
            "docker-daemon:app:1-hardened",
        ],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(docker.run_ok(&[], "app:1-hardened", &[]).trim(), "1000");
    // Without TLS, or without the client's certificate, the engine refuses.
    let out = run(None, &["inspect", "docker-daemon:app:1"]);
    assert!(
        !out.status.success(),
        "plain HTTP to a TLS engine: {:?}",
        text(&out)
    );
    let no_cert = dir.join("no-cert");
    std::fs::create_dir(&no_cert).unwrap();
    std::fs::copy(client.join("ca.pem"), no_cert.join("ca.pem")).unwrap();
    let out = run(Some(&no_cert), &["inspect", "docker-daemon:app:1"]);
    let (_, err) = text(&out);
    assert!(!out.status.success() && err.contains("cert.pem"), "{err}");
}
