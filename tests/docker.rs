//! The Docker Engine as a second runtime: images built with `docker build`
//! and `docker save`d are hardened and run with `docker run` (dockerd 20.10
//! from Debian's docker.io, private to this test; ../shared/RECIPES.md).

mod common;
use common::docker::Docker;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// `docker build` of a FROM-scratch busybox image with a health check that
/// passes only for UID 1000; `docker save`d to `dir/source.tar`.
fn build_source(docker: &Docker, dir: &Path) -> std::path::PathBuf {
    docker.build_busybox(
        "example/src:1",
        dir,
        "WORKDIR /srv\n\
         HEALTHCHECK --interval=1s CMD test \"$(id -u)\" = 1000\n\
         CMD [\"sh\"]\n",
    );
    let tar = dir.join("source.tar");
    sh(docker
        .command()
        .args(["save", "-o", tar.to_str().unwrap(), "example/src:1"]));
    tar
}

/// Hardens the saved source with `options` and `docker load`s it as `tag`.
fn harden_into(docker: &Docker, source: &Path, dir: &Path, tag: &str, options: &[&str]) -> String {
    let out = dir.join(format!("{}.tar", tag.replace([':', '/'], "-")));
    let src = format!("docker-archive:{}", source.display());
    let dest = format!("docker-archive:{}:{tag}", out.display());
    let mut args = vec!["rewrite", "-q", &src, &dest];
    args.extend_from_slice(options);
    let result = harden(&args);
    assert!(
        result.status.success(),
        "harden {args:?}: {:?}",
        text(&result)
    );
    sh(docker
        .command()
        .args(["load", "-q", "-i", out.to_str().unwrap()]));
    tag.to_string()
}

/// A container's health status once it is no longer "starting".
fn health(docker: &Docker, image: &str) -> String {
    let container = docker.sleeping("health", image);
    let name = container.name();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status =
            sh(docker
                .command()
                .args(["inspect", "--format", "{{.State.Health.Status}}", name]));
        if status.trim() != "starting" || Instant::now() > deadline {
            break status.trim().to_string();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    status
}

#[test]
fn hardened_images_run_under_the_docker_engine() {
    let docker = Docker::start();
    let dir = scratch("docker");
    let source = build_source(&docker, &dir);
    let image = harden_into(&docker, &source, &dir, "example/src:1-hardened", &[]);

    // Default user, no capability, and the run-time UID override.
    let probe = "id -u; grep CapEff /proc/self/status";
    let out = docker.run_ok(&[], &image, &["sh", "-c", probe]);
    assert_eq!(out, "1000\nCapEff:\t0000000000000000\n");
    let out = docker.run_ok(&["-e", "HARDEN_UID=4321"], &image, &["id", "-u"]);
    assert_eq!(out, "4321\n");
    // Started as a user already: passed through.
    let out = docker.run_ok(&["--user", "1001"], &image, &["id", "-u"]);
    assert_eq!(out, "1001\n");
    // A read-only root filesystem.
    let out = docker.run_ok(&["--read-only"], &image, &["id", "-u"]);
    assert_eq!(out, "1000\n");
    // Without the capabilities to drop: fails closed, the command never runs.
    let out = docker.run(&["--cap-drop", "ALL"], &image, &["echo", "RAN"]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(!o.contains("RAN"), "{o}");
    assert!(e.contains("CAP_SETUID"), "{e}");

    // The health check runs as the user (as root it fails).
    assert_eq!(health(&docker, &image), "healthy");
    assert_eq!(health(&docker, "example/src:1"), "unhealthy");

    // The seed's scenario: the UID of the host files mounted into the home.
    let seed = harden_into(
        &docker,
        &source,
        &dir,
        "example/aws:1-hardened",
        &[
            "--user",
            "aws",
            "--home",
            "/home/aws",
            "--uid-env",
            "AWS_UID",
            "--match-owner",
            "/home/aws/.aws",
        ],
    );
    let aws = dir.join("aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(aws.join("config"), "[default]\n").unwrap();
    std::fs::set_permissions(
        aws.join("config"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    sh(cmd("chown", &["-R", "1234:1234", aws.to_str().unwrap()]));
    let script = "id -u; echo $HOME $USER; cat $HOME/.aws/config";
    let mount = format!("type=bind,src={},dst=/home/aws/.aws", aws.display());
    let volume = format!("{}:/home/aws/.aws", aws.display());
    for how in [["--mount", mount.as_str()], ["-v", volume.as_str()]] {
        let out = docker.run_ok(&how, &seed, &["sh", "-c", script]);
        assert_eq!(out, "1234\n/home/aws aws\n[default]\n", "{how:?}");
    }
    let out = docker.run_ok(&["-e", "AWS_UID=2000", "-v", &volume], &seed, &["id", "-u"]);
    assert_eq!(out, "2000\n");
    // docker run --user with the mounted files' owner, no passwd entry.
    let out = docker.run_ok(
        &["--user", "1234:1234", "-v", &volume],
        &seed,
        &["sh", "-c", script],
    );
    assert_eq!(out, "1234\n/home/aws aws\n[default]\n");

    // --init: docker stop ends the command at once, not at the timeout.
    let init = harden_into(
        &docker,
        &source,
        &dir,
        "example/init:1-hardened",
        &["--init"],
    );
    let container = docker.sleeping("init", &init);
    let name = container.name();
    let start = Instant::now();
    sh(docker.command().args(["stop", "-t", "10", name]));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "docker stop took {took:?}");

    // docker save | harden | docker load.
    let pipe = format!(
        "docker save example/src:1 | {} rewrite -q docker-archive:/dev/stdin \
         docker-archive:/dev/stdout:example/piped:1 | docker load -q",
        harden_bin()
    );
    let mut shell = cmd("sh", &["-c", &pipe]);
    let loaded = sh(shell.env("DOCKER_HOST", docker.host()));
    assert!(loaded.contains("example/piped:1"), "{loaded}");
    let out = docker.run_ok(&[], "example/piped:1", &["id", "-u"]);
    assert_eq!(out, "1000\n");
}
