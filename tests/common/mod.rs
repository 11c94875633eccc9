//! Shared fixtures for the integration tests: real images built with umoci and
//! skopeo (independent OCI implementations), and podman + runc to run them.
//! Missing tools fail the tests loudly: `make test` installs them.

#![allow(dead_code)]

pub mod docker;
pub mod proxy;
pub mod registry;
pub mod token;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn harden_bin() -> &'static str {
    env!("CARGO_BIN_EXE_harden")
}

pub fn harden(args: &[&str]) -> Output {
    Command::new(harden_bin())
        .args(args)
        .output()
        .expect("run harden")
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(mut cmd: impl std::borrow::BorrowMut<Command>) -> String {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (run `make test`, which installs the tools)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh directory for one test, under the shared work dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = work().join("t").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn work() -> &'static Path {
    static WORK: OnceLock<PathBuf> = OnceLock::new();
    WORK.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("harden-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

pub struct Fixtures {
    /// OCI layout with tags: busybox (Cmd sh, Env, Labels, WorkingDir),
    /// echo (Entrypoint echo entry, Cmd default), scratch (one static binary, no /etc).
    pub layout: PathBuf,
    pub dir: PathBuf,
}

impl Fixtures {
    pub fn oci(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.layout.display())
    }

    /// docker-archive of a fixture (docker save format, written by skopeo).
    pub fn archive(&self, tag: &str) -> String {
        format!(
            "docker-archive:{}",
            self.dir.join(format!("{tag}.tar")).display()
        )
    }

    pub fn archive_path(&self, tag: &str) -> PathBuf {
        self.dir.join(format!("{tag}.tar"))
    }
}

pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = work().join("fixtures");
        std::fs::create_dir_all(&dir).unwrap();
        let busybox = which("busybox");
        // A busybox root filesystem: the static binary plus applet links.
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::create_dir_all(rootfs.join("srv")).unwrap();
        std::fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
        let applets = sh(cmd(busybox.to_str().unwrap(), &["--list"]));
        for a in applets.lines().filter(|a| *a != "busybox") {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        // A scratch image: one static binary, no /etc, no shell at /bin/sh.
        let scratchfs = dir.join("scratchfs");
        std::fs::create_dir_all(&scratchfs).unwrap();
        std::fs::copy(&busybox, scratchfs.join("busybox")).unwrap();

        let layout = dir.join("layout");
        umoci_image(
            &layout,
            "busybox",
            &rootfs,
            &[
                "--config.cmd",
                "sh",
                "--config.env",
                "PATH=/bin",
                "--config.env",
                "FOO=bar baz",
                "--config.workingdir",
                "/srv",
                "--config.label",
                "org.example.keep=yes",
                "--config.exposedports",
                "8080/tcp",
                "--config.stopsignal",
                "SIGINT",
            ],
        );
        umoci_image(
            &layout,
            "echo",
            &rootfs,
            &[
                "--config.entrypoint",
                "/bin/echo",
                "--config.entrypoint",
                "entry",
                "--config.cmd",
                "default",
                "--config.env",
                "PATH=/bin",
            ],
        );
        umoci_image(
            &layout,
            "scratch",
            &scratchfs,
            &["--config.cmd", "/busybox", "--config.cmd", "id"],
        );
        let l = layout.to_str().unwrap();
        for tag in ["busybox", "echo", "scratch"] {
            let dest = format!(
                "docker-archive:{}:example/{tag}:latest",
                dir.join(format!("{tag}.tar")).display()
            );
            skopeo_copy(&format!("oci:{l}:{tag}"), &dest);
        }
        Fixtures { layout, dir }
    })
}

/// A copy of the busybox fixture's root filesystem at `dir/rootfs`, for a
/// test to add files to before `umoci_image`.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    let fixture = fixtures().dir.join("rootfs");
    sh(cmd(
        "cp",
        &["-a", fixture.to_str().unwrap(), rootfs.to_str().unwrap()],
    ));
    rootfs
}

/// A debootstrap'd Debian bookworm minbase image in an OCI layout (`tag` debian),
/// and its root filesystem on the host for comparisons. Built once (about 30 s).
pub fn debian() -> &'static (String, PathBuf) {
    static D: OnceLock<(String, PathBuf)> = OnceLock::new();
    D.get_or_init(|| {
        let dir = work().join("debian");
        let rootfs = debootstrap(&dir, &[]);
        let image = umoci_image(
            &dir.join("layout"),
            "debian",
            &rootfs,
            &[
                "--config.cmd",
                "bash",
                "--config.env",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            ],
        );
        (image, rootfs)
    })
}

/// A Debian bookworm minbase root filesystem at `dir/rootfs`, with the
/// packages `include` (Debian's own packages, as the official images of
/// real software are built from).
pub fn debootstrap(dir: &Path, include: &[&str]) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(dir).unwrap();
    let mirror = std::env::var("HARDEN_TEST_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    which("debootstrap");
    let include = format!("--include={}", include.join(","));
    let mut args = vec![
        "--variant=minbase",
        "bookworm",
        rootfs.to_str().unwrap(),
        &mirror,
    ];
    if include.len() > "--include=".len() {
        args.insert(1, &include);
    }
    sh(cmd("debootstrap", &args));
    rootfs
}

/// Image `tag` in the OCI layout `layout` (made when missing), holding
/// `rootfs`, configured with umoci's `config` flags; returns `oci:LAYOUT:TAG`.
pub fn umoci_image(layout: &Path, tag: &str, rootfs: &Path, config: &[&str]) -> String {
    if !layout.join("oci-layout").exists() {
        sh(cmd(
            "umoci",
            &["init", "--layout", layout.to_str().unwrap()],
        ));
    }
    let image = format!("{}:{tag}", layout.display());
    sh(cmd("umoci", &["new", "--image", &image]));
    sh(cmd(
        "umoci",
        &["insert", "--image", &image, rootfs.to_str().unwrap(), "/"],
    ));
    let mut args = vec!["config", "--image", image.as_str()];
    args.extend_from_slice(config);
    sh(cmd("umoci", &args));
    format!("oci:{image}")
}

pub fn which(tool: &str) -> PathBuf {
    for dir in
        std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .chain(["/usr/sbin", "/sbin", "/bin"])
    {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("{tool} is not installed: run `make test`, which installs the test tools");
}

/// Options every test container gets (`run`, `create`): no network, and
/// rlimits under the hard limits of these machines.
pub const CONTAINER_OPTIONS: [&str; 6] = [
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// podman with the flags that work on these machines (../shared/RECIPES.md),
/// on a store private to this test run.
pub struct Podman {
    root: PathBuf,
}

pub fn podman() -> &'static Podman {
    static P: OnceLock<Podman> = OnceLock::new();
    P.get_or_init(|| {
        which("podman");
        which("runc");
        Podman {
            root: work().join("podman"),
        }
    })
}

impl Podman {
    pub fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.args([
            "--root",
            self.root.join("root").to_str().unwrap(),
            "--runroot",
            self.root.join("run").to_str().unwrap(),
            "--storage-driver",
            "vfs",
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]);
        c
    }

    /// Loads a docker-archive or oci-archive and returns the name (or ID) podman gave it.
    pub fn load(&self, archive: &Path) -> String {
        let out = sh(self
            .command()
            .args(["load", "-q", "-i", archive.to_str().unwrap()]));
        let loaded = out
            .lines()
            .find_map(|l| l.split_once(": ").map(|(_, v)| v))
            .and_then(|v| v.split(',').next())
            .unwrap_or_else(|| panic!("no image in podman load output {out:?}"));
        loaded.trim().to_string()
    }

    /// `podman run --rm` with the extra run options, then the image and its arguments.
    pub fn run(&self, options: &[&str], image: &str, args: &[&str]) -> Output {
        let mut c = self.command();
        c.args(["run", "--rm"]).args(CONTAINER_OPTIONS);
        c.args(options).arg(image).args(args);
        c.output().expect("run podman")
    }

    /// Like `run`, but the container must succeed; returns its stdout.
    pub fn run_ok(&self, options: &[&str], image: &str, args: &[&str]) -> String {
        let out = self.run(options, image, args);
        let (o, e) = text(&out);
        assert!(
            out.status.success(),
            "podman run {options:?} {image} {args:?} failed ({}):\n{o}\n{e}",
            out.status
        );
        o
    }
}

/// A named podman container that is removed (with `rm -f`) when dropped, so a
/// failing assertion does not leave it, and its mounts, behind.
pub struct Container(pub String);

impl Container {
    pub fn named(what: &str) -> Container {
        Container(format!("harden-{what}-{}", std::process::id()))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .command()
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

/// Copies fixture `tag` into a new OCI layout at `layout` as `new_tag`, with skopeo.
pub fn copy_fixture(tag: &str, layout: &Path, new_tag: &str) -> String {
    let dest = format!("oci:{}:{new_tag}", layout.display());
    skopeo_copy(&fixtures().oci(tag), &dest);
    dest
}

/// `skopeo copy` from one transport reference to another.
pub fn skopeo_copy(from: &str, to: &str) {
    sh(cmd("skopeo", &["copy", "-q", from, to]));
}

/// The docker-archive of fixture `tag` unpacked into `dir/unpacked`, with its
/// manifest.json, for a test to edit and pack again (`pack_archive`).
pub fn unpack_archive(tag: &str, dir: &Path) -> (PathBuf, serde_json::Value) {
    unpack_tar(&fixtures().archive_path(tag), dir)
}

/// The docker-archive at `archive` unpacked into `dir/unpacked`, with its
/// manifest.json.
pub fn unpack_tar(archive: &Path, dir: &Path) -> (PathBuf, serde_json::Value) {
    let unpacked = dir.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    sh(cmd(
        "tar",
        &[
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ],
    ));
    let manifest = std::fs::read(unpacked.join("manifest.json")).unwrap();
    (unpacked, serde_json::from_slice(&manifest).unwrap())
}

/// Packs `unpacked` into the archive `tar`; returns it as a docker-archive reference.
pub fn pack_archive(unpacked: &Path, tar: &Path) -> String {
    sh(cmd(
        "tar",
        &[
            "-cf",
            tar.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
            ".",
        ],
    ));
    format!("docker-archive:{}", tar.display())
}

/// Hardens `src` into a docker-archive at `dir/name.tar` and loads it into podman.
pub fn harden_and_load(src: &str, dir: &Path, name: &str, options: &[&str]) -> String {
    let out = dir.join(format!("{name}.tar"));
    let dest = format!("docker-archive:{}:localhost/{name}:latest", out.display());
    let mut args = vec!["rewrite", "-q", src, dest.as_str()];
    args.extend_from_slice(options);
    let result = harden(&args);
    let (o, e) = text(&result);
    assert!(result.status.success(), "harden {args:?} failed:\n{o}\n{e}");
    podman().load(&out)
}

/// A `Key: value` line of /proc/self/status output.
pub fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
}

/// An OCI layout whose tag `multi` is an index of busybox for linux/amd64 and
/// linux/arm64/v8 (busybox-static:arm64, downloaded and extracted, never
/// installed), linux/arm/v7, linux/riscv64, linux/386, linux/ppc64le and
/// linux/s390x images (scratch ones: their step-downs are what is run), a
/// windows/amd64 image (no step-down for it), a BuildKit-style
/// attestation manifest, an SBOM artifact and a referrer to the amd64 image
/// (a `subject`); the index carries an annotation. Tags `empty` and
/// `artifacts`: indexes without an image.
pub struct MultiArch {
    pub layout: PathBuf,
    /// The arm64 busybox binary, to run under qemu-aarch64-static.
    pub arm64_busybox: PathBuf,
}

impl MultiArch {
    pub fn oci(&self) -> String {
        format!("oci:{}:multi", self.layout.display())
    }
}

pub fn multiarch() -> &'static MultiArch {
    static M: OnceLock<MultiArch> = OnceLock::new();
    M.get_or_init(|| {
        use serde_json::{json, Value};
        let f = fixtures();
        let dir = work().join("multiarch");
        std::fs::create_dir_all(&dir).unwrap();
        let mut download = cmd("apt-get", &["download", "-q", "busybox-static:arm64"]);
        download.current_dir(&dir);
        sh(download);
        let deb = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .expect("the busybox-static:arm64 package");
        let extracted = dir.join("deb");
        sh(cmd("dpkg-deb", &["-x", deb.to_str().unwrap(), extracted.to_str().unwrap()]));
        let arm64_busybox = extracted.join("bin/busybox");
        // The arm64 root filesystem: the amd64 fixture's links, arm64's binary.
        let rootfs = dir.join("rootfs");
        sh(cmd("cp", &["-a", f.dir.join("rootfs").to_str().unwrap(), rootfs.to_str().unwrap()]));
        std::fs::copy(&arm64_busybox, rootfs.join("bin/busybox")).unwrap();

        let layout = dir.join("layout");
        let scratchfs = f.dir.join("scratchfs");
        for (tag, os, arch, fs) in [
            ("amd64", "linux", "amd64", &f.dir.join("rootfs")),
            ("arm64", "linux", "arm64", &rootfs),
            ("arm", "linux", "arm", &scratchfs),
            ("riscv64", "linux", "riscv64", &scratchfs),
            ("386", "linux", "386", &scratchfs),
            ("ppc64le", "linux", "ppc64le", &scratchfs),
            ("s390x", "linux", "s390x", &scratchfs),
            ("windows", "windows", "amd64", &scratchfs),
        ] {
            let config = ["--os", os, "--architecture", arch, "--config.cmd", "sh", "--config.env", "PATH=/bin"];
            umoci_image(&layout, tag, fs, &config);
        }
        let blobs = layout.join("blobs/sha256");
        let put = |bytes: &[u8]| -> (String, usize) {
            use sha2::Digest;
            let hex = hex::encode(sha2::Sha256::digest(bytes));
            std::fs::write(blobs.join(&hex), bytes).unwrap();
            (format!("sha256:{hex}"), bytes.len())
        };
        let index_path = layout.join("index.json");
        let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
        let by_tag = |tag: &str| -> Value {
            index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
                .unwrap()
                .clone()
        };
        let entry = |tag: &str, platform: Value| {
            let d = by_tag(tag);
            json!({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"], "platform": platform})
        };
        let amd64 = entry("amd64", json!({"os": "linux", "architecture": "amd64"}));
        // A BuildKit provenance attestation for the amd64 image.
        let (statement, statement_size) = put(br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#);
        let (config, config_size) = put(b"{}");
        let attestation = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": statement, "size": statement_size,
                        "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}],
        }))
        .unwrap();
        let (att_digest, att_size) = put(&attestation);
        // An SBOM stored as an OCI artifact (kept), and a signature-like
        // referrer whose subject is the amd64 image (dropped: it describes it).
        let (empty, empty_size) = put(b"{}");
        let (sbom, sbom_size) = put(br#"{"spdxVersion":"SPDX-2.3"}"#);
        let artifact = |subject: Option<&Value>| {
            let mut m = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/spdx+json",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": empty_size},
                "layers": [{"mediaType": "application/spdx+json", "digest": sbom, "size": sbom_size}],
            });
            if let Some(s) = subject {
                m["subject"] = s.clone();
            }
            serde_json::to_vec(&m).unwrap()
        };
        let (sbom_manifest, sbom_manifest_size) = put(&artifact(None));
        let (referrer, referrer_size) = put(&artifact(Some(&amd64)));
        let multi = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                amd64,
                entry("arm64", json!({"os": "linux", "architecture": "arm64", "variant": "v8"})),
                entry("arm", json!({"os": "linux", "architecture": "arm", "variant": "v7"})),
                entry("riscv64", json!({"os": "linux", "architecture": "riscv64"})),
                entry("386", json!({"os": "linux", "architecture": "386"})),
                entry("ppc64le", json!({"os": "linux", "architecture": "ppc64le"})),
                entry("s390x", json!({"os": "linux", "architecture": "s390x"})),
                entry("windows", json!({"os": "windows", "architecture": "amd64"})),
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": att_digest, "size": att_size,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                 "vnd.docker.reference.digest": amd64["digest"]}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sbom_manifest,
                 "size": sbom_manifest_size, "artifactType": "application/spdx+json"},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": referrer,
                 "size": referrer_size, "artifactType": "application/spdx+json"},
            ],
            "annotations": {"org.example.index": "kept"},
        }))
        .unwrap();
        let (multi_digest, multi_size) = put(&multi);
        let multi_manifests: Value = serde_json::from_slice::<Value>(&multi).unwrap()["manifests"].clone();
        index["manifests"].as_array_mut().unwrap().push(json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": multi_digest, "size": multi_size,
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
        // Indexes without an image: an empty one; one of an SBOM and an
        // attestation (as `oras push` and BuildKit write them).
        for (tag, manifests) in [
            ("empty", json!([])),
            ("artifacts", json!([multi_manifests[8], multi_manifests[9]])),
        ] {
            let (digest, size) = put(&serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests,
            }))
            .unwrap());
            index["manifests"].as_array_mut().unwrap().push(json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest, "size": size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }));
        }
        std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
        MultiArch { layout, arm64_busybox }
    })
}

/// Runs `command` (a shell line) on a 100-column pseudo-terminal made by
/// util-linux's `script`: its exit code and all it wrote, with `\r\n` lines.
pub fn pty(command: &str) -> (Option<i32>, String) {
    which("script");
    let line = format!("stty cols 100; {command}");
    let out = cmd("script", &["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), text)
}

/// An OCI layout holding one uncompressed layer with `size` bytes of
/// pseudo-random (incompressible) data, written directly (fast).
pub fn write_big_layout(layout: &Path, size: usize, tag: &str) {
    use sha2::{Digest, Sha256};
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> String {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    tar.append_data(&mut h, "data.bin", &data[..]).unwrap();
    let layer = tar.into_inner().unwrap();
    drop(data);
    let layer_digest = put(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/data.bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(&manifest), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
}
