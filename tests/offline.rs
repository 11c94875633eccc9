//! `harden rewrite` between the offline formats, checked with skopeo and umoci
//! (independent implementations), and its refusals of bad input.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

fn rewrite_ok(src: &str, dest: &str, extra: &[&str]) -> Value {
    let mut args = vec!["rewrite", "--json", "-q", src, dest];
    args.extend_from_slice(extra);
    let out = harden(&args);
    let (o, e) = text(&out);
    assert!(out.status.success(), "harden {args:?}: {o}\n{e}");
    serde_json::from_str(&o).unwrap()
}

fn rewrite_err(src: &str, dest: &str, extra: &[&str]) -> String {
    let mut args = vec!["rewrite", src, dest];
    args.extend_from_slice(extra);
    let out = harden(&args);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "harden {args:?} must fail: {o}\n{e}");
    assert!(e.starts_with("harden: error: "), "{e}");
    e
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

/// Nothing but the listed names in `dir`: no output, no temp files.
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want, "leftovers in {}", dir.display());
}

#[test]
fn outputs_are_accepted_by_skopeo_and_umoci() {
    let dir = scratch("accepted");
    let f = fixtures();
    // docker-archive → docker-archive, verified by skopeo copying it (which checks every digest).
    let da = dir.join("h.tar");
    let r = rewrite_ok(
        &f.archive("busybox"),
        &format!("docker-archive:{}", da.display()),
        &[],
    );
    assert_eq!(
        r["destination"],
        format!(
            "docker-archive:{}:docker.io/example/busybox:latest-hardened",
            da.display()
        )
    );
    skopeo_copy(
        &format!("docker-archive:{}", da.display()),
        &format!("oci:{}/check:a", dir.display()),
    );
    // oci → oci, read back by umoci.
    let layout = dir.join("layout");
    let r = rewrite_ok(
        &f.oci("busybox"),
        &format!("oci:{}:h", layout.display()),
        &[],
    );
    let stat = sh(cmd(
        "umoci",
        &[
            "stat",
            "--json",
            "--image",
            &format!("{}:h", layout.display()),
        ],
    ));
    let stat: Value = serde_json::from_str(&stat).unwrap();
    let history = stat["history"].as_array().unwrap();
    assert!(
        history.last().unwrap()["created_by"]
            .as_str()
            .unwrap()
            .starts_with("harden "),
        "{stat}"
    );
    // The JSON digest is what skopeo sees.
    let inspect: Value = serde_json::from_str(&sh(cmd(
        "skopeo",
        &["inspect", &format!("oci:{}:h", layout.display())],
    )))
    .unwrap();
    assert_eq!(inspect["Digest"], r["manifest_digest"]);
    // oci → oci-archive, copied by skopeo.
    let oa = dir.join("h-oci.tar");
    rewrite_ok(
        &f.oci("busybox"),
        &format!("oci-archive:{}:v1", oa.display()),
        &[],
    );
    skopeo_copy(
        &format!("oci-archive:{}:v1", oa.display()),
        &format!("oci:{}/check:b", dir.display()),
    );
    // docker-archive → oci converts to OCI media types, as skopeo does.
    rewrite_ok(
        &f.archive("busybox"),
        &format!("oci:{}:from-docker", layout.display()),
        &[],
    );
    let raw = sh(cmd(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:from-docker", layout.display()),
        ],
    ));
    let manifest: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.name"],
        "docker.io/example/busybox:latest"
    );
}

#[test]
fn exactly_one_small_layer_with_only_the_step_down() {
    let dir = scratch("onelayer");
    let f = fixtures();
    let layout = dir.join("layout");
    rewrite_ok(
        &f.oci("busybox"),
        &format!("oci:{}:h", layout.display()),
        &[],
    );
    let before: Value =
        serde_json::from_str(&sh(cmd("skopeo", &["inspect", "--raw", &f.oci("busybox")]))).unwrap();
    let after: Value = serde_json::from_str(&sh(cmd(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:h", layout.display())],
    )))
    .unwrap();
    let (b, a) = (
        before["layers"].as_array().unwrap(),
        after["layers"].as_array().unwrap(),
    );
    assert_eq!(a.len(), b.len() + 1);
    assert_eq!(&a[..b.len()], &b[..], "base layers untouched");
    let new = &a[b.len()];
    assert_eq!(
        new["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        after["annotations"]["org.opencontainers.image.base.digest"],
        format!(
            "sha256:{}",
            sha256_file(
                &f.layout
                    .join("blobs/sha256")
                    .join(manifest_hex(&f.oci("busybox")))
            )
        )
    );
    // GNU tar, an independent reader, lists exactly `/` (closed to others:
    // the step-down refuses a writable one), the step-down and its directory.
    let blob = layout
        .join("blobs/sha256")
        .join(&new["digest"].as_str().unwrap()[7..]);
    let listing = sh(cmd(
        "tar",
        &["-tvzf", blob.to_str().unwrap(), "--numeric-owner"],
    ));
    let entries: Vec<(&str, &str, &str)> = listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .map(|e| (e[0], e[1], e[5]))
        .collect();
    assert_eq!(
        entries,
        [
            ("drwxr-xr-x", "0/0", "./"),
            ("drwxr-xr-x", "0/0", ".harden/"),
            ("-rwxr-xr-x", "0/0", ".harden/harden-stepdown")
        ],
        "{listing}"
    );
    let size: u64 = listing
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(size > 10_000 && size < 2_000_000, "step-down size {size}");
}

fn manifest_hex(oci_ref: &str) -> String {
    let raw = sh(cmd("skopeo", &["inspect", "--raw", oci_ref]));
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(raw.as_bytes()))
}

/// Every file output is fsynced before its rename, and its directory after
/// it; `--no-sync` skips both (and the early writeback that only serves the
/// sync) without changing a byte. strace counts the calls.
#[test]
fn outputs_are_synced_unless_no_sync() {
    let dir = scratch("sync");
    let src = fixtures().archive("busybox");
    let traced = |dest: &str, extra: &[&str]| -> String {
        let log = dir.join("strace.log");
        let mut args = vec![
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=fsync,fdatasync,sync_file_range",
        ];
        args.extend(["-o", log.to_str().unwrap(), harden_bin()]);
        args.extend(["rewrite", "-q", &src, dest]);
        args.extend(extra);
        sh(cmd("strace", &args));
        std::fs::read_to_string(&log).unwrap()
    };
    for kind in ["docker-archive", "oci-archive", "oci"] {
        let (synced, unsynced) = (dir.join(format!("{kind}-a")), dir.join(format!("{kind}-b")));
        let synced_calls = traced(&format!("{kind}:{}", synced.display()), &[]);
        let unsynced_calls = traced(&format!("{kind}:{}", unsynced.display()), &["--no-sync"]);
        assert!(synced_calls.contains("fsync("), "{kind}: {synced_calls}");
        // strace -y names the descriptor's file: the destination's directory.
        let parent = format!("<{}>) = 0", dir.canonicalize().unwrap().display());
        assert!(
            synced_calls
                .lines()
                .any(|l| l.contains(" fsync(") && l.ends_with(&parent)),
            "{kind}: no fsync of the directory in {synced_calls}"
        );
        if kind == "docker-archive" {
            assert!(synced_calls.contains("sync_file_range("), "{synced_calls}");
        }
        assert!(!unsynced_calls.contains("sync"), "{kind}: {unsynced_calls}");
        if kind == "oci" {
            let index = |d: &Path| std::fs::read(d.join("index.json")).unwrap();
            assert_eq!(index(&synced), index(&unsynced));
        } else {
            assert_eq!(sha256_file(&synced), sha256_file(&unsynced), "{kind}");
        }
    }
    // A directory its user may write but not read (a drop box, mode 0300):
    // the directory cannot be opened to sync it, and that is no failure.
    use std::os::unix::fs::PermissionsExt;
    let drop_box = dir.join("drop-box");
    std::fs::create_dir(&drop_box).unwrap();
    std::os::unix::fs::chown(&drop_box, Some(65534), None).unwrap();
    std::fs::set_permissions(&drop_box, std::fs::Permissions::from_mode(0o300)).unwrap();
    let dest = format!("docker-archive:{}/h.tar", drop_box.display());
    let nobody = ["--reuid", "65534", "--regid", "65534", "--clear-groups"];
    sh(cmd("setpriv", &nobody).args([harden_bin(), "rewrite", "-q", &src, &dest]));
    assert!(drop_box.join("h.tar").is_file());
}

/// harden's peak RSS rewriting a 128 MiB layer into each file format. Base
/// layers are copied through mappings, whose pages count in the RSS until
/// released: without the release the peak is the size of the layer. GNU
/// time reports it: a child spawned from here would start with this test's
/// own peak as its own (exec keeps the high-water mark of the vfork'd mm).
#[test]
fn memory_stays_bounded_whatever_the_layer_size() {
    const LAYER: usize = 128 << 20;
    let dir = scratch("memory");
    let layout = dir.join("big");
    write_big_layout(&layout, LAYER, "big");
    let src = format!("oci:{}:big", layout.display());
    let report = dir.join("rss");
    for kind in ["docker-archive", "oci-archive"] {
        let dest = format!("{kind}:{}", dir.join(kind).display());
        let time = ["-f", "%M", "-o", report.to_str().unwrap(), harden_bin()];
        sh(cmd("/usr/bin/time", &time).args(["rewrite", "-q", &src, &dest]));
        let kib: usize = std::fs::read_to_string(&report)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            kib << 10 < LAYER / 3,
            "{kind}: peak RSS {} MiB for a {} MiB layer",
            kib >> 10,
            LAYER >> 20
        );
    }
}

#[test]
fn same_input_gives_byte_identical_output() {
    let dir = scratch("repro");
    let f = fixtures();
    let opts = ["--uid", "1234", "--match-owner", "/data"];
    for (i, kind) in ["docker-archive", "oci-archive"].iter().enumerate() {
        let a = dir.join(format!("{i}a.tar"));
        let b = dir.join(format!("{i}b.tar"));
        rewrite_ok(
            &f.archive("busybox"),
            &format!("{kind}:{}", a.display()),
            &opts,
        );
        rewrite_ok(
            &f.archive("busybox"),
            &format!("{kind}:{}", b.display()),
            &opts,
        );
        assert_eq!(
            sha256_file(&a),
            sha256_file(&b),
            "{kind} differs between runs"
        );
    }
    let one = rewrite_ok(
        &f.oci("echo"),
        &format!("oci:{}/l1:x", dir.display()),
        &opts,
    );
    let two = rewrite_ok(
        &f.oci("echo"),
        &format!("oci:{}/l2:x", dir.display()),
        &opts,
    );
    assert_eq!(one["manifest_digest"], two["manifest_digest"]);
    let other = rewrite_ok(
        &f.oci("echo"),
        &format!("oci:{}/l3:x", dir.display()),
        &["--uid", "1235"],
    );
    assert_ne!(one["manifest_digest"], other["manifest_digest"]);
}

#[test]
fn hardening_a_hardened_image_replaces_the_layer() {
    let dir = scratch("twice");
    let f = fixtures();
    let once = dir.join("once.tar");
    let twice = dir.join("twice.tar");
    let direct = dir.join("direct.tar");
    rewrite_ok(
        &f.archive("echo"),
        &format!("docker-archive:{}", once.display()),
        &[],
    );
    rewrite_ok(
        &format!("docker-archive:{}", once.display()),
        &format!("docker-archive:{}", twice.display()),
        &["--uid", "42"],
    );
    rewrite_ok(
        &f.archive("echo"),
        &format!("docker-archive:{}", direct.display()),
        &["--uid", "42"],
    );
    let config = |p: &Path| -> Value {
        serde_json::from_str(&sh(cmd(
            "skopeo",
            &[
                "inspect",
                "--config",
                &format!("docker-archive:{}", p.display()),
            ],
        )))
        .unwrap()
    };
    let (t, d) = (config(&twice), config(&direct));
    assert_eq!(t["rootfs"], d["rootfs"]);
    assert_eq!(t["config"]["Entrypoint"], d["config"]["Entrypoint"]);
    assert_eq!(t["history"], d["history"]);
}

/// An archive of two images, named as `docker save` writes names (short) and
/// with a registry port: each is selected by any spelling docker takes for
/// it, as skopeo selects them, and an output may be named with a port too.
#[test]
fn archive_images_are_selected_by_name_as_docker_normalizes_it() {
    let dir = scratch("archive-names");
    let (busybox, mut manifest) = unpack_archive("busybox", &dir);
    std::fs::create_dir(dir.join("echo")).unwrap();
    let (echo, echo_manifest) = unpack_archive("echo", &dir.join("echo"));
    for entry in std::fs::read_dir(&echo).unwrap() {
        let entry = entry.unwrap();
        std::fs::rename(entry.path(), busybox.join(entry.file_name())).unwrap();
    }
    manifest[0]["RepoTags"] = serde_json::json!(["busybox:1.36"]);
    let mut second = echo_manifest[0].clone();
    second["RepoTags"] = serde_json::json!(["localhost:5000/team/echo:v1"]);
    manifest.as_array_mut().unwrap().push(second);
    std::fs::write(
        busybox.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let archive = pack_archive(&busybox, &dir.join("two.tar"));

    let entrypoint = |dest: &str| {
        let config = sh(cmd("skopeo", &["inspect", "--config", dest]));
        let config: Value = serde_json::from_str(&config).unwrap();
        config["config"]["Entrypoint"].to_string()
    };
    let out = dir.join("out.tar");
    for (name, is_echo) in [
        ("docker.io/library/busybox:1.36", false),
        ("busybox:1.36", false),
        ("localhost:5000/team/echo:v1", true),
    ] {
        let r = rewrite_ok(
            &format!("{archive}:{name}"),
            &format!("docker-archive:{}", out.display()),
            &[],
        );
        // Named as the archive spells the image.
        let written = if is_echo {
            "localhost:5000/team/echo:v1-hardened"
        } else {
            "busybox:1.36-hardened"
        };
        let dest = format!("docker-archive:{}:{written}", out.display());
        assert_eq!(r["destination"], dest, "{name}");
        assert_eq!(entrypoint(&dest).contains("/bin/echo"), is_echo, "{name}");
    }
    let named = format!("docker-archive:{}:localhost:5000/x/y:v2", out.display());
    rewrite_ok(&format!("{archive}:busybox:1.36"), &named, &[]);
    assert!(!entrypoint(&named).contains("/bin/echo"));

    let e = rewrite_err(&archive, &format!("docker-archive:{}", out.display()), &[]);
    assert!(e.contains("holds 2 images"), "{e}");
    let e = rewrite_err(
        &format!("{archive}:busybox:1.37"),
        &format!("docker-archive:{}", out.display()),
        &[],
    );
    assert!(e.contains("no image tagged busybox:1.37"), "{e}");
}

/// An OCI layout whose images carry no ref name (untagged) is read by
/// `:@INDEX`, as skopeo reads it; an output cannot be an index.
#[test]
fn untagged_layout_images_are_selected_by_index() {
    let dir = scratch("layout-index");
    let layout = dir.join("layout");
    sh(cmd(
        "cp",
        &[
            "-r",
            fixtures().layout.to_str().unwrap(),
            layout.to_str().unwrap(),
        ],
    ));
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let manifests = index["manifests"].as_array_mut().unwrap();
    let echo = manifests
        .iter()
        .position(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "echo")
        .unwrap();
    for m in manifests.iter_mut() {
        m.as_object_mut().unwrap().remove("annotations");
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let out = format!("oci:{}:h", dir.join("out").display());
    let e = rewrite_err(&format!("oci:{}", layout.display()), &out, &[]);
    assert!(
        e.contains("holds 3 images: name one with :TAG or :@INDEX"),
        "{e}"
    );
    rewrite_ok(&format!("oci:{}:@{echo}", layout.display()), &out, &[]);
    let config = sh(cmd("skopeo", &["inspect", "--config", &out]));
    assert!(config.contains("/bin/echo"), "{config}");
    let e = rewrite_err(&format!("oci:{}:@3", layout.display()), &out, &[]);
    assert!(e.contains("no image @3 (3 images)"), "{e}");
    // Untagged into its own layout: added beside the others (as skopeo
    // adds), once however often.
    let digests = |layout: &Path| -> Vec<String> {
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let m = index["manifests"].as_array().unwrap();
        m.iter().map(|m| m["digest"].to_string()).collect()
    };
    let before = digests(&layout);
    for _ in 0..2 {
        rewrite_ok(
            &format!("oci:{}:@{echo}", layout.display()),
            &format!("oci:{}", layout.display()),
            &[],
        );
        let after = digests(&layout);
        assert_eq!((&after[..3], after.len()), (&before[..], 4), "{after:?}");
    }
    let e = rewrite_err(
        &format!("oci:{}:@0", layout.display()),
        &format!("oci:{}:@0", dir.join("out").display()),
        &[],
    );
    assert!(
        e.contains("@INDEX selects a source image; name the output :TAG"),
        "{e}"
    );
}

/// A file read with the wrong transport gets the right one named.
#[test]
fn the_wrong_transport_for_a_file_is_named() {
    let dir = scratch("wrong-transport");
    let f = fixtures();
    let out = format!("docker-archive:{}", dir.join("o.tar").display());
    let oci_archive = dir.join("oa.tar");
    skopeo_copy(
        &f.oci("busybox"),
        &format!("oci-archive:{}", oci_archive.display()),
    );
    let docker_archive = f.archive_path("busybox");
    for (src, says) in [
        (
            format!("docker-archive:{}", oci_archive.display()),
            "not a docker-archive (read it as oci-archive:)",
        ),
        (
            format!("oci-archive:{}", docker_archive.display()),
            "not an OCI image layout (read it as docker-archive:)",
        ),
        (
            format!("oci-archive:{}", f.layout.display()),
            "is a directory (an OCI layout directory is oci:DIR)",
        ),
    ] {
        let e = rewrite_err(&src, &out, &[]);
        assert!(e.contains(says), "{src}: {e}");
    }
    assert_only(&dir, &["oa.tar"]);
}

/// `docker save app | gzip > app.tar.gz` is how images are shipped, and
/// docker load reads it: a gzip or zstd archive gives what the plain one
/// gives (decompressed to a temp file, which goes away); xz is refused by name.
#[test]
fn compressed_archives_are_read_as_the_plain_one() {
    let dir = scratch("compressed-archive");
    let f = fixtures();
    let plain = f.archive_path("busybox");
    let out = |name: &str| dir.join(format!("{name}.out.tar"));
    // `tool -c SRC > DIR/SRC.EXT`, returned.
    let pack = |tool: &str, src: &Path, ext: &str| {
        let name = src.file_name().unwrap().to_str().unwrap();
        let packed = dir.join(format!("{name}.{ext}"));
        let bytes = cmd(tool, &["-c", src.to_str().unwrap()]).output().unwrap();
        std::fs::write(&packed, bytes.stdout).unwrap();
        packed
    };
    rewrite_ok(
        &f.archive("busybox"),
        &format!("docker-archive:{}", out("plain").display()),
        &[],
    );
    let oci_plain = dir.join("oci.tar");
    skopeo_copy(
        &f.oci("busybox"),
        &format!("oci-archive:{}", oci_plain.display()),
    );
    let oci_result = |src: &Path, tag: &str| {
        let r = rewrite_ok(
            &format!("oci-archive:{}", src.display()),
            &format!("oci:{}:{tag}", dir.join("layout").display()),
            &[],
        );
        r["manifest_digest"].as_str().unwrap().to_string()
    };
    let oci_want = oci_result(&oci_plain, "plain");
    for (tool, ext) in [("gzip", "gz"), ("zstd", "zst")] {
        let packed = pack(tool, &plain, ext);
        let before = sha256_file(&packed);
        rewrite_ok(
            &format!("docker-archive:{}", packed.display()),
            &format!("docker-archive:{}", out(ext).display()),
            &[],
        );
        assert_eq!(sha256_file(&out(ext)), sha256_file(&out("plain")), "{tool}");
        assert_eq!(sha256_file(&packed), before, "the input is never modified");
        // oci-archive too: the same reading code.
        assert_eq!(
            oci_result(&pack(tool, &oci_plain, ext), ext),
            oci_want,
            "{tool}"
        );
    }
    let xz = pack("xz", &plain, "xz");
    let e = rewrite_err(
        &format!("docker-archive:{}", xz.display()),
        &format!("docker-archive:{}", out("xz").display()),
        &[],
    );
    assert!(
        e.contains("is xz-compressed: harden reads plain tar, gzip and zstd"),
        "{e}"
    );
}

#[test]
fn input_is_never_modified_and_the_source_is_never_the_destination() {
    let dir = scratch("untouched");
    let f = fixtures();
    let input = dir.join("in.tar");
    std::fs::copy(f.archive_path("busybox"), &input).unwrap();
    let before = sha256_file(&input);
    let src = format!("docker-archive:{}", input.display());
    rewrite_ok(
        &src,
        &format!("docker-archive:{}", dir.join("out.tar").display()),
        &[],
    );
    assert_eq!(sha256_file(&input), before);
    let e = rewrite_err(&src, &src, &[]);
    assert!(e.contains("is the source"), "{e}");
    assert_eq!(sha256_file(&input), before);
    // An existing layout gains a tag and keeps its other images.
    let layout = dir.join("layout");
    copy_fixture("echo", &layout, "orig");
    // However the source is selected: by its tag, as the only image, by index.
    for src in ["oci:{}:orig", "oci:{}", "oci:{}:@0"] {
        let e = rewrite_err(
            &src.replace("{}", layout.to_str().unwrap()),
            &format!("oci:{}:orig", layout.display()),
            &[],
        );
        assert!(e.contains("is the source"), "{src}: {e}");
    }
    rewrite_ok(
        &format!("oci:{}:orig", layout.display()),
        &format!("oci:{}:hardened", layout.display()),
        &[],
    );
    let tags = sh(cmd("umoci", &["ls", "--layout", layout.to_str().unwrap()]));
    assert_eq!(
        tags.lines().collect::<std::collections::BTreeSet<_>>(),
        ["hardened", "orig"].into()
    );
}

#[test]
fn truncated_archive_fails_cleanly() {
    let dir = scratch("truncated");
    let f = fixtures();
    let data = std::fs::read(f.archive_path("busybox")).unwrap();
    let input = dir.join("in.tar");
    std::fs::write(&input, &data[..data.len() / 2]).unwrap();
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    for dest in [
        "docker-archive:OUT/h.tar",
        "oci:OUT/layout:h",
        "oci-archive:OUT/h.tar",
    ] {
        let dest = dest.replace("OUT", out_dir.to_str().unwrap());
        let e = rewrite_err(&format!("docker-archive:{}", input.display()), &dest, &[]);
        assert!(e.contains("in.tar"), "the error names the file: {e}");
        assert!(e.contains("truncated") || e.contains("malformed"), "{e}");
        assert_only(&out_dir, &[]);
    }
}

#[test]
fn corrupted_layout_blob_is_caught_while_copying() {
    let dir = scratch("corrupt");
    let layout = dir.join("layout");
    copy_fixture("busybox", &layout, "c");
    let manifest: Value = serde_json::from_str(&sh(cmd(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:c", layout.display())],
    )))
    .unwrap();
    let layer = layout
        .join("blobs/sha256")
        .join(&manifest["layers"][0]["digest"].as_str().unwrap()[7..]);
    let mut data = std::fs::read(&layer).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff; // same size, different content
    std::fs::write(&layer, data).unwrap();
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let e = rewrite_err(
        &format!("oci:{}:c", layout.display()),
        &format!("oci-archive:{}/h.tar", out.display()),
        &[],
    );
    assert!(e.contains("does not match its digest"), "{e}");
    assert_only(&out, &[]);
}

#[test]
fn bad_options_are_refused_before_anything_is_read() {
    let dir = scratch("badopts");
    let dest = format!("docker-archive:{}/o.tar", dir.display());
    let src = fixtures().archive("busybox");
    for (opts, want) in [
        (&["--uid", "0"][..], "--uid 0 is root"),
        (&["--uid", "12ab"], "not a decimal ID"),
        (&["--gid", "2147483648"], "larger than"),
        (&["--user", "a:b"], "not a valid user name"),
        (
            &["--uid-env", "A-B"],
            "not a valid environment variable name",
        ),
        (&["--match-owner", "relative"], "must be an absolute path"),
        (
            &["--chown", "data"],
            "--chown \"data\" must be an absolute path",
        ),
        (&["--chown", "/"], "refusing to give /"),
        (&["--chown", "/proc/self"], "kernel filesystem"),
        (&["--chown", "/srv/../sys"], "kernel filesystem"),
        (
            &["--mode", "static", "--chown", "/data"],
            "--chown needs --mode runtime",
        ),
    ] {
        let e = rewrite_err(&src, &dest, opts);
        assert!(e.contains(want), "{opts:?}: {e}");
    }
    let nine: Vec<&str> = ["--chown", "/d"].repeat(9);
    let e = rewrite_err(&src, &dest, &nine);
    assert!(e.contains("at most 8 paths"), "{e}");
    for (s, want) in [
        ("nope:x/y", "unknown transport"),
        ("alpine:3.19", "a registry image is docker://alpine:3.19"),
        ("docker-archive:/does/not/exist.tar", "/does/not/exist.tar"),
    ] {
        let e = rewrite_err(s, &dest, &[]);
        assert!(e.contains(want), "{s}: {e}");
    }
    // A destination that cannot be written is refused before the source is
    // read (this one is a registry that is not there).
    let e = rewrite_err(
        "docker://127.0.0.1:1/app:1",
        &format!("oci:{}:@0", dir.join("out").display()),
        &[],
    );
    assert!(e.contains("the destination oci:"), "{e}");
    assert!(e.contains("@INDEX selects a source image"), "{e}");
    // pull-rewrite-push takes registry references only: `oci:dir` would be
    // Docker Hub's image "oci", tag "dir".
    for args in [
        &["oci:layout"][..],
        &["localhost:1/app:1", "oci-archive:x.tar"],
    ] {
        let out = harden(&[&["pull-rewrite-push"][..], args].concat());
        assert!(!out.status.success());
        let e = text(&out).1;
        assert!(e.contains("for files use harden rewrite"), "{args:?}: {e}");
    }
    // The default DEST of a -hardened tag would be the tag itself.
    let out = harden(&["pull-rewrite-push", "localhost:1/app:1-hardened"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("name DEST"), "{}", text(&out).1);
    assert_only(&dir, &[]);
}

#[test]
fn inspect_tells_root_from_hardened() {
    let dir = scratch("inspect");
    let f = fixtures();
    let inspect = |image: &str| -> Value {
        let out = harden(&["inspect", "--json", image]);
        assert!(out.status.success(), "{:?}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let before = inspect(&f.archive("echo"));
    assert_eq!(before["command_runs_as_root"], true);
    assert_eq!(before["hardened"], Value::Null);
    let h = dir.join("h.tar");
    rewrite_ok(
        &f.archive("echo"),
        &format!("docker-archive:{}", h.display()),
        &["--user", "svc"],
    );
    let after = inspect(&format!("docker-archive:{}", h.display()));
    assert_eq!(after["starts_as_root"], true);
    assert_eq!(after["command_runs_as_root"], false);
    // The fixture runs /bin/echo as root: echo's own directories and /run
    // are inferred writable.
    let mut options = vec!["--user", "svc"];
    for path in [
        "/run",
        "/run/echo",
        "/var/lib/echo",
        "/var/log/echo",
        "/var/cache/echo",
    ] {
        options.extend(["--writable", path]);
    }
    assert_eq!(
        after["hardened"]["stepdown_options"],
        serde_json::json!(options)
    );
    assert_eq!(
        after["hardened"]["original"]["Entrypoint"],
        serde_json::json!(["/bin/echo", "entry"])
    );
    assert_eq!(after["cmd"], serde_json::json!(["default"]));
    let human = text(&harden(&[
        "inspect",
        &format!("docker-archive:{}", h.display()),
    ]))
    .0;
    assert!(
        human.contains("the step-down runs the command as a non-root user"),
        "{human}"
    );
}

#[test]
fn stepdown_binary_is_written_and_runs() {
    let dir = scratch("stepdownbin");
    let path = dir.join("harden-stepdown");
    let out = harden(&[
        "stepdown-binary",
        "--arch",
        "amd64",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let version = sh(cmd(path.to_str().unwrap(), &["--version"]));
    assert_eq!(
        version.trim(),
        format!("harden-stepdown {}", env!("CARGO_PKG_VERSION"))
    );
    let file = sh(cmd("file", &[path.to_str().unwrap()]));
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "{file}"
    );
    // `uname -m` names work; an architecture without a step-down is named.
    let out = harden(&[
        "stepdown-binary",
        "--arch",
        "armv7l",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let file = sh(cmd("file", &[path.to_str().unwrap()]));
    assert!(file.contains("32-bit LSB executable, ARM"), "{file}");
    let out = harden(&[
        "stepdown-binary",
        "--arch",
        "mips64le",
        "-o",
        path.to_str().unwrap(),
    ]);
    let (_, e) = text(&out);
    assert!(
        !out.status.success() && e.contains("\"mips64le\"") && e.contains("s390x"),
        "{e}"
    );
    // `-o -` is standard output; the default architecture is this machine's.
    let out = cmd(harden_bin(), &["stepdown-binary", "-o", "-"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!dir.join("-").exists(), "a file named -");
    let amd64 = harden(&["stepdown-binary", "--arch", "amd64", "-o", "-"]).stdout;
    assert!(amd64.starts_with(b"\x7fELF"));
    assert_eq!(out.stdout, amd64, "these tests run on amd64");
    // A directory in the way: one clear message, no temp file left beside it.
    let out = harden(&["stepdown-binary", "-o", dir.to_str().unwrap()]);
    let (_, e) = text(&out);
    assert!(!out.status.success());
    assert_eq!(
        e.trim(),
        format!(
            "harden: error: cannot write {}: Is a directory (os error 21)",
            dir.display()
        )
    );
    let temps = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".stepdownbin")
        })
        .count();
    assert_eq!(temps, 0);
}

#[test]
fn check_gates_on_what_the_image_runs_as() {
    let dir = scratch("check");
    let runtime = format!("oci:{}:runtime", dir.join("l").display());
    let static_ = format!("oci:{}:static", dir.join("l").display());
    let named = copy_fixture("busybox", &dir.join("l"), "named");
    rewrite_ok(&fixtures().oci("busybox"), &runtime, &[]);
    rewrite_ok(&fixtures().oci("busybox"), &static_, &["--mode", "static"]);
    // A named User: resolved through the image's /etc/passwd (busybox has none).
    sh(cmd(
        "umoci",
        &[
            "config",
            "--image",
            named.trim_start_matches("oci:"),
            "--config.user",
            "app",
        ],
    ));
    let busybox = fixtures().oci("busybox");
    for (image, require, pass, reason) in [
        (busybox.as_str(), "any", false, "runs as root"),
        (runtime.as_str(), "any", true, "step-down"),
        (runtime.as_str(), "static", false, "runtime mode"),
        (static_.as_str(), "static", true, "numeric"),
        (static_.as_str(), "any", true, "numeric"),
        (
            named.as_str(),
            "any",
            false,
            "not in the image's /etc/passwd",
        ),
        (named.as_str(), "static", false, "not numeric"),
    ] {
        let out = harden(&["check", "--require", require, image]);
        let (o, e) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(if pass { 0 } else { 1 }),
            "{image} {require}: {o}{e}"
        );
        let word = if pass { "PASS" } else { "FAIL" };
        assert!(
            o.starts_with(word) && o.contains(reason) && o.lines().count() == 1,
            "{image} {require}: {o}"
        );
        let json: Value = serde_json::from_str(
            &text(&harden(&["check", "--json", "--require", require, image])).0,
        )
        .unwrap();
        assert_eq!(json["pass"], pass);
    }
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let out = harden(&["completions", "bash"]);
    assert!(out.status.success());
    let script = scratch("completions").join("harden.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    sh(cmd("bash", &["-n", script.to_str().unwrap()]));
    let (o, _) = text(&out);
    for word in [
        "pull-rewrite-push",
        "--match-owner",
        "--dest-creds",
        "check",
    ] {
        assert!(o.contains(word), "{word} missing from the bash completions");
    }
    let dir = scratch("man");
    sh(cmd(harden_bin(), &["man", dir.to_str().unwrap()]));
    let page = std::fs::read_to_string(dir.join("harden-pull-rewrite-push.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    assert!(page.contains("tls\\-verify") || page.contains("tls-verify"));
}

/// A 1 MiB tmpfs, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_no_partial_output() {
    let dir = scratch("full-disk").join("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    sh(cmd(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            dir.to_str().unwrap(),
        ],
    ));
    let _disk = SmallDisk(dir.clone());
    // The busybox image is 2 MB: none of these fit.
    for dest in [
        format!("docker-archive:{}", dir.join("out.tar").display()),
        format!("oci:{}:t", dir.join("layout").display()),
        format!("oci-archive:{}", dir.join("out-oci.tar").display()),
    ] {
        let e = rewrite_err(&fixtures().archive("busybox"), &dest, &[]);
        assert!(e.contains("No space left on device"), "{dest}: {e}");
        assert_only(&dir, &[]);
    }
    // A destination in a directory that does not exist: said so, for every transport.
    let missing = dir.join("no/such");
    for dest in [
        format!("docker-archive:{}", missing.join("out.tar").display()),
        format!("oci:{}:t", missing.join("layout").display()),
        format!("oci-archive:{}", missing.join("out-oci.tar").display()),
    ] {
        let e = rewrite_err(&fixtures().archive("busybox"), &dest, &[]);
        assert_eq!(
            e.trim_end(),
            format!(
                "harden: error: writing {dest}: the directory {} does not exist",
                missing.display()
            )
        );
    }
}

/// The hostile-input corpus (testdata/hostile, written by its make.py): each
/// file is refused with the error expected.tsv names, and nothing is written.
#[test]
fn hostile_corpus_is_refused_with_the_expected_errors() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hostile");
    let expected = std::fs::read_to_string(corpus.join("expected.tsv")).unwrap();
    let dir = scratch("corpus");
    let mut cases = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let fields: Vec<&str> = line.split('\t').collect();
        let [file, transport, option, want] = fields[..] else {
            panic!("bad line in expected.tsv: {line:?}")
        };
        let src = format!("{transport}:{}", corpus.join(file).display());
        let extra: Vec<&str> = if option == "-" { vec![] } else { vec![option] };
        // docker-archive to docker-archive goes through the kernel copy with
        // digests hashed ahead: a second sink, checked on the same input.
        let sinks = match transport {
            "docker-archive" => &["oci-archive", "docker-archive"][..],
            _ => &["oci-archive"],
        };
        for sink in sinks {
            let dest = format!("{sink}:{}", dir.join("out.tar").display());
            let e = rewrite_err(&src, &dest, &extra);
            assert!(
                e.contains(want),
                "{file} to {sink}: expected {want:?} in {e}"
            );
            assert_only(&dir, &[]);
        }
        cases += 1;
    }
    assert!(cases >= 18, "only {cases} cases");
    // A huge index.json (5 MiB, too big to keep in the corpus): refused by size, unread.
    let huge = dir.join("huge-index.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&huge).unwrap());
    for (name, data) in [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", vec![b' '; 5 << 20]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.finish().unwrap();
    drop(b);
    let dest = format!("oci-archive:{}", dir.join("out.tar").display());
    let e = rewrite_err(&format!("oci-archive:{}", huge.display()), &dest, &[]);
    assert!(
        e.contains("index.json is 5242880 bytes, more than the 4194304 allowed"),
        "{e}"
    );
}

/// `docker save app | harden rewrite docker-archive:/dev/stdin docker-archive:/dev/stdout | docker load`:
/// a pipe in is copied to a temp file first (removed after), a pipe out is
/// written in place; the bytes are those of a file-to-file run.
#[test]
fn pipes_in_and_out_and_symlinked_destinations() {
    use std::process::{Command, Stdio};
    let dir = scratch("pipes");
    let fixture = fixtures().archive_path("busybox");
    let file_out = dir.join("file.tar");
    rewrite_ok(
        &fixtures().archive("busybox"),
        &format!("docker-archive:{}", file_out.display()),
        &[],
    );
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = Command::new(harden_bin())
        .args([
            "rewrite",
            "-q",
            "docker-archive:/dev/stdin",
            "docker-archive:/dev/stdout",
        ])
        .env("TMPDIR", &tmp)
        .stdin(Stdio::from(std::fs::File::open(&fixture).unwrap()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        out.stdout == std::fs::read(&file_out).unwrap(),
        "piped output differs"
    );
    assert_only(&tmp, &[]);
    assert!(std::fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .is_symlink());
    // Reading from a pipe that is not a tar: the error names the pipe.
    let out = Command::new(harden_bin())
        .args([
            "rewrite",
            "docker-archive:/dev/stdin",
            "docker-archive:/dev/stdout",
        ])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("/dev/stdin"), "{}", text(&out).1);
    // --json and an archive on stdout cannot share it.
    let out = Command::new(harden_bin())
        .args([
            "rewrite",
            "--json",
            &fixtures().archive("busybox"),
            "oci-archive:/dev/stdout",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success() && out.stdout.is_empty());
    assert!(text(&out).1.contains("standard output"), "{}", text(&out).1);
    // A symlink destination: the file it points to is replaced, the link stays.
    std::fs::write(dir.join("real.tar"), "old").unwrap();
    std::os::unix::fs::symlink("real.tar", dir.join("link.tar")).unwrap();
    rewrite_ok(
        &fixtures().archive("busybox"),
        &format!("docker-archive:{}", dir.join("link.tar").display()),
        &[],
    );
    assert!(std::fs::symlink_metadata(dir.join("link.tar"))
        .unwrap()
        .is_symlink());
    assert!(std::fs::read(dir.join("real.tar")).unwrap() == std::fs::read(&file_out).unwrap());
}

/// One rule for exit codes, the README's table: 2 for a usage error or a bad
/// value of an option or argument, 4 for a source that does not exist in any
/// transport, 1 for other failures.
#[test]
fn exit_codes_follow_one_rule() {
    let f = fixtures();
    let dir = scratch("exit-codes");
    let dest = format!("docker-archive:{}", dir.join("o.tar").display());
    let src = f.archive("busybox");
    let empty = dir.join("empty.tar");
    std::fs::write(&empty, "").unwrap();
    let empty = format!("docker-archive:{}", empty.display());
    let list = dir.join("list.txt");
    std::fs::write(&list, "a b c\n").unwrap();
    let list = list.display().to_string();
    let (layout_tag, archive_tag, archive_at) = (
        format!("oci:{}:nosuch", f.layout.display()),
        format!("{src}:example/nosuch:1"),
        format!("{src}:@5"),
    );
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["rewrite", &src, &dest, "--uid", "abc"],
            2,
            "not a decimal ID",
        ),
        (&["rewrite", &src, &dest, "--uid", "0"], 2, "is root"),
        (&["rewrite", &src, &dest, "--gid", "0"], 2, "is root"),
        (
            &["rewrite", &src, &dest, "--uid", "-5"],
            2,
            "\"-5\" is not a decimal ID",
        ),
        (
            &["rewrite", &src, &dest, "--platform", "linux"],
            2,
            "OS/ARCH",
        ),
        (
            &["rewrite", &src, &dest, "--mode", "Static"],
            2,
            "invalid value",
        ),
        (
            &["rewrite", &src, &dest, "--no-such-option"],
            2,
            "unexpected argument",
        ),
        (&["rewrite", &src], 2, "required"),
        (
            &["rewrite", "docker://UPPER/x:1", &dest],
            2,
            "not a valid image reference",
        ),
        (&["rewrite", "nope:x/y", &dest], 2, "unknown transport"),
        (
            &["rewrite", "docker-archiv:x.tar", &dest],
            2,
            "did you mean docker-archive:?",
        ),
        (
            &["rewrite", "docker-archive:/does/not/exist.tar", &dest],
            4,
            "/does/not/exist.tar does not exist",
        ),
        (
            &["rewrite", "oci-archive:/does/not/exist.tar", &dest],
            4,
            "does not exist",
        ),
        (
            &["rewrite", "oci:/does/not/exist", &dest],
            4,
            "/does/not/exist does not exist",
        ),
        (&["inspect", "oci:/does/not/exist"], 4, "does not exist"),
        (
            &["check", "docker-archive:/does/not/exist.tar"],
            4,
            "does not exist",
        ),
        (
            &["rewrite", &layout_tag, &dest],
            4,
            "no image tagged \"nosuch\"",
        ),
        (
            &["rewrite", &archive_tag, &dest],
            4,
            "no image tagged example/nosuch:1",
        ),
        (&["rewrite", &archive_at, &dest], 4, "no image @5 (1 image)"),
        (&["rewrite", &empty, &dest], 1, "is empty"),
        (
            &["pull-rewrite-push", "--from", &list],
            2,
            "list.txt:1: \"a b c\": expected SOURCE [DEST]",
        ),
    ];
    for (args, code, needle) in cases {
        let out = harden(args);
        let (_, e) = text(&out);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    assert!(!dir.join("o.tar").exists());
}

/// On a terminal (a pseudo-terminal from util-linux's `script`): harden's
/// lines are ordinary lines, each ending in a newline, not padded to the
/// terminal's width; and no binary archive is written to the terminal.
#[test]
fn on_a_terminal_lines_are_plain_and_archives_are_refused() {
    let dir = scratch("pty");
    let src = fixtures().archive("busybox");
    let dest = format!("docker-archive:{}", dir.join("o.tar").display());
    let (code, out) = pty(&format!("{} rewrite {src} {dest}", harden_bin()));
    assert_eq!(code, Some(0), "{out:?}");
    assert!(
        out.contains("harden: wrote ") && out.ends_with("\r\n"),
        "{out:?}"
    );
    for line in out.split("\r\n") {
        assert!(!line.ends_with(' '), "padded: {line:?}");
    }
    let (code, out) = pty(&format!(
        "{} rewrite {src} docker-archive:/dev/stdout",
        harden_bin()
    ));
    assert_eq!(code, Some(2), "{out:?}");
    assert!(out.contains("/dev/stdout is a terminal"), "{out:?}");
    assert!(
        !out.contains("manifest.json"),
        "the archive reached the terminal"
    );
}

/// `--dry-run` to a docker-archive names the layer the archive gets: the
/// uncompressed tar, by its diff_id, with its size.
#[test]
fn a_dry_run_to_an_archive_names_the_layer_it_would_write() {
    let dir = scratch("dry-archive");
    let src = fixtures().archive("busybox");
    let out = dir.join("o.tar");
    let dest = format!("docker-archive:{}", out.display());
    let plan = sh(cmd(harden_bin(), &["rewrite", "--dry-run", &src, &dest]));
    assert!(!out.exists(), "a dry run writes nothing");
    let line = plan
        .lines()
        .find(|l| l.starts_with("new layer "))
        .unwrap_or_else(|| panic!("{plan}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let (hex, size) = (&words[2]["sha256:".len()..], words[3]);
    sh(cmd(harden_bin(), &["rewrite", "-q", &src, &dest]));
    let listing = sh(cmd("tar", &["-tvf", out.to_str().unwrap()]));
    assert!(
        listing
            .lines()
            .any(|l| l.contains(&format!("{hex}.tar")) && l.split_whitespace().nth(2) == Some(size)),
        "{line}\n{listing}"
    );
}

/// A damaged source layer is named as such: the error says the input is
/// damaged, names the archive and the member, and no output is left.
#[test]
fn a_damaged_source_layer_names_the_archive_and_member() {
    let dir = scratch("damaged");
    let (unpacked, manifest) = unpack_archive("busybox", &dir);
    let member = manifest[0]["Layers"][0].as_str().unwrap().to_string();
    let path = unpacked.join(&member);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let tar = dir.join("damaged.tar");
    let src = pack_archive(&unpacked, &tar);
    let before = std::fs::read(&tar).unwrap();
    for (transport, name) in [
        ("docker-archive", "o.tar"),
        ("oci-archive", "o-oci.tar"),
        ("oci", "o"),
    ] {
        let dest = format!("{transport}:{}", dir.join(name).display());
        let out = harden(&["rewrite", "-q", &src, &dest]);
        let (_, e) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{dest}: {e}");
        let named = format!(
            "(member \"{}\" of {})",
            member.trim_start_matches("./"),
            tar.display()
        );
        assert!(
            e.contains("the input is damaged") && e.contains(&named),
            "{dest}: {e}"
        );
        assert!(e.contains("does not match its digest"), "{dest}: {e}");
    }
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left.len(),
        2,
        "only the input and its unpacked tree: {left:?}"
    );
    assert_eq!(
        std::fs::read(&tar).unwrap(),
        before,
        "the input is never modified"
    );
}

/// Each command's help lists what it takes, in one layout: the read-only
/// commands have no destination options, the local ones no -v/--timeout,
/// and `rewrite` lists the rarely wanted --no-sync last.
#[test]
fn help_lists_what_each_command_takes() {
    let help = |command: &str| sh(cmd(harden_bin(), &[command, "--help"]));
    for command in ["inspect", "check"] {
        let text = help(command);
        assert!(
            text.contains("--creds") && text.contains("--timeout"),
            "{text}"
        );
        assert!(
            !text.contains("--dest-") && !text.contains("--src-"),
            "{text}"
        );
    }
    for command in ["completions", "stepdown-binary"] {
        let text = help(command);
        assert!(
            !text.contains("--verbose") && !text.contains("--timeout"),
            "{text}"
        );
    }
    // One layout: an option and its help on one line, as the other commands.
    let check = help("check");
    assert!(
        check.lines().any(|l| l.trim_start().starts_with("--json ")),
        "{check}"
    );
    let rewrite = help("rewrite");
    let at = |option: &str| {
        rewrite
            .find(option)
            .unwrap_or_else(|| panic!("{option}: {rewrite}"))
    };
    assert!(
        at("--no-sync") > at("--dry-run") && at("--no-sync") < at("Registry options"),
        "{rewrite}"
    );
    // The global options still work before the command and after it.
    for args in [
        &["-v", "check", "oci:/does/not/exist"][..],
        &["check", "oci:/does/not/exist", "--timeout", "9"],
    ] {
        assert_eq!(harden(args).status.code(), Some(4), "{args:?}");
    }
}
