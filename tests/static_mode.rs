//! `--mode static`: images that never start as root (Kubernetes runAsNonRoot,
//! the restricted profile), on a real Debian minbase image and on a scratch image.

mod common;
use common::*;
use serde_json::Value;

fn harden_static(src: &str, name: &str) -> String {
    let dir = scratch(name);
    harden_and_load(src, &dir, name, &["--mode", "static"])
}

#[test]
fn debian_minbase_runs_as_its_new_user() {
    let (src, rootfs) = debian();
    let image = harden_static(src, "static-debian");
    let out = podman().run_ok(
        &[],
        &image,
        &["sh", "-c", "id -u; id -g; whoami; getent passwd www-data | cut -d: -f1,3; getent passwd root | cut -d: -f3; echo $HOME; touch $HOME/x && echo home-ok; grep Uid /proc/1/status; stat -c '%n %a %u %g' /usr /etc /home"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..7],
        [
            "1000",
            "1000",
            "app",
            "www-data:33",
            "0",
            "/home/app",
            "home-ok"
        ],
        "{out}"
    );
    assert_eq!(
        lines[7], "Uid:\t1000\t1000\t1000\t1000",
        "PID 1 is never root"
    );
    // Modes and owners of the directories the image already had are unchanged.
    for (line, dir) in lines[8..].iter().zip(["usr", "etc", "home"]) {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let m = std::fs::metadata(rootfs.join(dir)).unwrap();
        assert_eq!(
            *line,
            format!(
                "/{dir} {:o} {} {}",
                m.permissions().mode() & 0o7777,
                m.uid(),
                m.gid()
            )
        );
    }
    // The restricted profile: no capabilities at all, no_new_privs.
    let out = podman().run_ok(
        &["--cap-drop=ALL", "--security-opt", "no-new-privileges"],
        &image,
        &["sh", "-c", "id -u; whoami"],
    );
    assert_eq!(out, "1000\napp\n");
    // Started as root on purpose: steps down exactly as the default mode does.
    let out = podman().run_ok(
        &["--user", "0", "-e", "HARDEN_UID=1234"],
        &image,
        &["sh", "-c", "id -u; grep NoNewPrivs /proc/self/status"],
    );
    assert_eq!(out, "1234\nNoNewPrivs:\t1\n");
    let config: Value = serde_json::from_str(&sh(podman().command().args([
        "image",
        "inspect",
        &image,
        "--format",
        "{{json .Config}}",
    ])))
    .unwrap();
    assert_eq!(config["User"], "1000:1000");
    assert!(
        config["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "HOME=/home/app"),
        "{config}"
    );
}

#[test]
fn scratch_image_gets_passwd_with_root_and_the_user() {
    let f = fixtures();
    let image = harden_static(&f.archive("scratch"), "static-scratch");
    assert_eq!(
        podman().run_ok(&[], &image, &[]),
        "uid=1000(app) gid=1000(app) groups=1000(app)\n"
    );
    let out = podman().run_ok(
        &["--cap-drop=ALL", "--security-opt", "no-new-privileges"],
        &image,
        &["/busybox", "cat", "/etc/passwd", "/proc/1/status"],
    );
    assert!(
        out.starts_with(
            "root:x:0:0:root:/root:/sbin/nologin\napp:x:1000:1000::/home/app:/sbin/nologin\n"
        ),
        "{out}"
    );
    assert_eq!(status_field(&out, "Uid"), "1000\t1000\t1000\t1000");
    let dir = scratch("static-scratch-inspect");
    let out = dir.join("h.tar");
    let r = harden(&[
        "rewrite",
        "-q",
        "--mode",
        "static",
        "--uid",
        "2000",
        &f.archive("scratch"),
        &format!("docker-archive:{}", out.display()),
    ]);
    assert!(r.status.success(), "{:?}", text(&r));
    let inspect: Value = serde_json::from_slice(
        &harden(&[
            "inspect",
            "--json",
            &format!("docker-archive:{}", out.display()),
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(inspect["user"], "2000:2000");
    assert_eq!(inspect["kubelet_run_as_non_root"], true);
    assert_eq!(inspect["starts_as_root"], false);
    assert_eq!(inspect["hardened"]["mode"], "static");
    let before: Value =
        serde_json::from_slice(&harden(&["inspect", "--json", &f.archive("scratch")]).stdout)
            .unwrap();
    assert_eq!(before["kubelet_run_as_non_root"], false);
}

#[test]
fn zstd_layers_are_read_and_written_out_uncompressed() {
    // The Debian image with its layer recompressed as zstd by skopeo (as
    // `podman push --compression-format zstd` would have it).
    let (src, _) = debian();
    let dir = scratch("zstd-layout");
    let zstd = format!("oci:{}:debian", dir.display());
    sh(cmd(
        "skopeo",
        &["copy", "-q", "--dest-compress-format", "zstd", src, &zstd],
    ));
    let inspect: Value =
        serde_json::from_str(&sh(cmd("skopeo", &["inspect", "--raw", &zstd]))).unwrap();
    assert_eq!(
        inspect["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "the fixture has a zstd layer"
    );
    // Static mode reads /etc/passwd out of the zstd layer (Debian's entries
    // stay), and docker-archive output holds the layer decompressed.
    let image = harden_static(&zstd, "static-zstd");
    let out = podman().run_ok(
        &[],
        &image,
        &[
            "sh",
            "-c",
            "id -u; whoami; getent passwd www-data | cut -d: -f1,3",
        ],
    );
    assert_eq!(out, "1000\napp\nwww-data:33\n");
}
