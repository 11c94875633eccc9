//! Multi-platform indexes: every platform hardened with the step-down binary
//! of its own architecture, checked with skopeo, `file`, readelf, qemu-user
//! (aarch64, arm, riscv64, i386, ppc64le, s390x), podman and a real registry.

mod common;
use common::registry::Registry;
use common::*;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

fn harden_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", "-q"]);
    let out = harden(&all);
    let (o, e) = text(&out);
    assert!(out.status.success(), "harden {args:?}:\n{o}\n{e}");
    serde_json::from_str(&o).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The index tagged `tag` in an OCI layout.
fn tagged_index(layout: &Path, tag: &str) -> Value {
    let index = read_json(&layout.join("index.json"));
    let d = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))
        .clone();
    assert_eq!(d["mediaType"], "application/vnd.oci.image.index.v1+json");
    read_json(&blob(layout, d["digest"].as_str().unwrap()))
}

/// Writes the step-down binary held by `manifest`'s top layer to `out`.
/// Checks with readelf that every loadable segment of `bin` can be mapped on
/// a kernel whose pages are `page` bytes: aligned to it, its address and file
/// offset agreeing within a page, and no two segments in one page.
fn assert_loads_with_pages_of(bin: &Path, page: u64) {
    let headers = sh(cmd("readelf", &["-lW", bin.to_str().unwrap()]));
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let mut last_page = None;
    for line in headers
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD"))
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (offset, vaddr, memsz, align) = (hex(f[1]), hex(f[2]), hex(f[5]), hex(f[f.len() - 1]));
        assert!(
            align >= page && vaddr % page == offset % page,
            "{line}\n{headers}"
        );
        assert!(
            last_page < Some(vaddr / page),
            "segments share a page:\n{headers}"
        );
        last_page = Some((vaddr + memsz - 1) / page);
    }
    assert!(last_page.is_some(), "no LOAD segment:\n{headers}");
}

fn extract_stepdown(layout: &Path, manifest: &Value, out: &Path) {
    let top = manifest["layers"].as_array().unwrap().last().unwrap();
    let file = std::fs::File::open(blob(layout, top["digest"].as_str().unwrap())).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(".harden/harden-stepdown") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            std::fs::write(out, bytes).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o755)).unwrap();
            return;
        }
    }
    panic!("no step-down in the top layer of {manifest}");
}

#[test]
fn each_platform_gets_the_step_down_of_its_architecture() {
    let m = multiarch();
    let dir = scratch("multi-layout");
    let out_layout = dir.join("out");
    let dest = format!("oci:{}:h", out_layout.display());

    // windows has no step-down: a clear error naming it and --platform.
    let out = harden(&["rewrite", &m.oci(), &dest]);
    let (_, e) = text(&out);
    assert!(!out.status.success());
    assert!(
        e.contains("windows/amd64") && e.contains("--platform") && e.contains("--skip-unsupported"),
        "{e}"
    );
    assert!(!out_layout.exists(), "nothing written on failure");

    let report = harden_json(&["rewrite", &m.oci(), &dest, "--skip-unsupported"]);
    let dropped: Vec<(&str, &str)> = report["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["platform"].as_str().unwrap(),
                d["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(dropped.len(), 3, "{report}");
    assert!(dropped
        .iter()
        .any(|(p, r)| *p == "unknown/unknown" && r.contains("attestation")));
    assert!(dropped
        .iter()
        .any(|(p, r)| *p == "windows/amd64" && r.contains("--skip-unsupported")));
    assert!(
        dropped.iter().any(|(_, r)| r.contains("refers to")),
        "the referrer: {report}"
    );
    // The SBOM artifact is kept unchanged, with its blobs.
    let kept = report["kept"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{report}");
    assert_eq!(kept[0]["artifactType"], "application/spdx+json");

    // Same platforms, in order, the index annotation kept; attestation and windows gone.
    let index = tagged_index(&out_layout, "h");
    let (images, artifacts): (Vec<&Value>, Vec<&Value>) = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|d| d.get("platform").is_some());
    assert_eq!(artifacts.len(), 1);
    assert_eq!(artifacts[0]["digest"], kept[0]["digest"]);
    let sbom = read_json(&blob(&out_layout, artifacts[0]["digest"].as_str().unwrap()));
    for d in [&sbom["config"], &sbom["layers"][0]] {
        assert!(
            blob(&out_layout, d["digest"].as_str().unwrap()).is_file(),
            "{d}"
        );
    }
    let platforms: Vec<String> = images
        .iter()
        .map(|d| {
            let p = &d["platform"];
            format!(
                "{}/{}{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap(),
                p["variant"]
                    .as_str()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        platforms,
        [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/arm/v7",
            "linux/riscv64",
            "linux/386",
            "linux/ppc64le",
            "linux/s390x",
        ]
    );
    assert_eq!(index["annotations"]["org.example.index"], "kept");
    let reported: Vec<&str> = report["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(reported, platforms);

    // Each platform's new layer holds a binary of its own architecture.
    let kinds = [
        "x86-64",
        "ARM aarch64",
        "32-bit LSB executable, ARM",
        "RISC-V",
        "Intel 80386",
        "64-bit PowerPC",
        "IBM S/390",
    ];
    assert_eq!(images.len(), kinds.len());
    for (d, arch) in images.iter().zip(kinds) {
        let manifest = read_json(&blob(&out_layout, d["digest"].as_str().unwrap()));
        let bin = dir.join(format!(
            "stepdown-{}",
            d["platform"]["architecture"].as_str().unwrap()
        ));
        extract_stepdown(&out_layout, &manifest, &bin);
        let kind = sh(cmd("file", &[bin.to_str().unwrap()]));
        assert!(kind.contains(arch) && kind.contains("static"), "{kind}");
    }
    // arm64 kernels with 16 or 64 KiB pages (Asahi Linux, RHEL's kernel-64k)
    // can load the arm64 step-down: its segments are laid out for 64 KiB.
    assert_loads_with_pages_of(&dir.join("stepdown-arm64"), 0x10000);
    // skopeo reads the whole index back and checks every digest.
    sh(cmd(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            &dest,
            &format!("oci:{}:v", dir.join("verify").display()),
        ],
    ));

    // The arm64 step-down runs under qemu: its version, and a step-down to
    // 1000:1000 running a static arm64 program (qemu runs the exec'd binary).
    let arm64 = dir.join("stepdown-arm64");
    let qemu = which("qemu-aarch64-static");
    let version = sh(cmd(
        qemu.to_str().unwrap(),
        &[arm64.to_str().unwrap(), "--version"],
    ));
    assert!(version.starts_with("harden-stepdown "), "{version}");
    let id = sh(cmd(
        qemu.to_str().unwrap(),
        &[
            arm64.to_str().unwrap(),
            "1000:1000",
            qemu.to_str().unwrap(),
            m.arm64_busybox.to_str().unwrap(),
            "id",
        ],
    ));
    assert!(
        id.starts_with("uid=1000") && id.contains("gid=1000"),
        "{id}"
    );

    // The entrypoint form too, with a user the host has (so /etc is not
    // edited): --chown walks a directory with arm64's own open flags, and
    // --init forks, waits and passes the status on.
    let data = dir.join("arm64-data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/file"), "x").unwrap();
    let entry = |command: &[&str]| {
        let mut c = cmd(qemu.to_str().unwrap(), &[arm64.to_str().unwrap()]);
        c.args(["--uid", "65534", "--gid", "65534", "--init"]);
        c.args(["--chown", data.to_str().unwrap(), "--"]);
        c.args([qemu.to_str().unwrap(), m.arm64_busybox.to_str().unwrap()]);
        c.args(command).output().unwrap()
    };
    let out = entry(&["id", "-u"]);
    assert_eq!(text(&out).0, "65534\n", "{}", text(&out).1);
    assert_eq!(entry(&["sh", "-c", "exit 3"]).status.code(), Some(3));
    for path in [data.clone(), data.join("sub"), data.join("sub/file")] {
        let m = std::fs::metadata(&path).unwrap();
        let owner = (
            std::os::unix::fs::MetadataExt::uid(&m),
            std::os::unix::fs::MetadataExt::gid(&m),
        );
        assert_eq!(owner, (65534, 65534), "{}", path.display());
    }

    // The others under qemu-user. 32-bit arm and 386 must use the `*32` ID
    // calls (a 16-bit setresuid would cut 100000 to 34464 on a real kernel).
    let id_calls = [" setgroups(1,", " setresgid(100001,", " setresuid(100000,"];
    let id32_calls = id_calls.map(|c| c.replace('(', "32("));
    let id16_calls = [" setresuid(", " setresgid(", " setgroups(", " getuid("];
    for (arch, qemu) in [
        ("arm", "arm"),
        ("386", "i386"),
        ("riscv64", "riscv64"),
        ("ppc64le", "ppc64le"),
        ("s390x", "s390x"),
    ] {
        let (calls, not_calls): (Vec<&str>, &[&str]) = match arch {
            "arm" | "386" => (id32_calls.iter().map(String::as_str).collect(), &id16_calls),
            _ => (id_calls.to_vec(), &[]),
        };
        run_under_qemu(
            &dir.join(format!("stepdown-{arch}")),
            &format!("qemu-{qemu}-static"),
            &calls,
            not_calls,
            &dir.join(format!("{arch}-data")),
        );
    }
}

/// Checks a foreign step-down under qemu-user, whose commands are the host's
/// (qemu hands them to the kernel): its layout for its pages, its version,
/// a step-down to 100000:100001 (IDs past 16 bits) with every capability set
/// empty, and the entrypoint form's --chown and --init (the architecture's
/// own open flags, fork and wait). qemu passes IDs on whatever the call, so
/// its -strace must show the calls in `calls` and none in `not_calls`.
fn run_under_qemu(bin: &Path, qemu: &str, calls: &[&str], not_calls: &[&str], data: &Path) {
    // ppc64le kernels commonly use 64 KiB pages.
    let page = if qemu.contains("ppc64le") {
        0x10000
    } else {
        0x1000
    };
    assert_loads_with_pages_of(bin, page);
    let qemu = which(qemu);
    let run = |args: &[&str]| {
        let mut c = cmd(qemu.to_str().unwrap(), args);
        c.output().unwrap()
    };
    let bin = bin.to_str().unwrap();
    let version = text(&run(&[bin, "--version"])).0;
    assert!(version.starts_with("harden-stepdown "), "{version}");
    let strace = text(&run(&["-strace", bin, "100000:100001", "/bin/true"])).1;
    for call in calls {
        assert!(strace.contains(call), "{call} in\n{strace}");
    }
    for call in not_calls {
        assert!(!strace.contains(call), "{call} in\n{strace}");
    }
    let status = "id -u; id -g; id -G; grep -E '^(Cap|NoNewPrivs)' /proc/self/status";
    let out = run(&[bin, "100000:100001", "/bin/sh", "-c", status]);
    let (o, e) = text(&out);
    assert!(o.starts_with("100000\n100001\n100001\n"), "{o}{e}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(o.contains(&format!("{set}:\t0000000000000000")), "{o}");
    }
    assert!(o.contains("NoNewPrivs:\t1"), "{o}");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/file"), "x").unwrap();
    let data = data.to_str().unwrap();
    let entry = [
        bin, "--uid", "65534", "--gid", "65534", "--init", "--chown", data, "--",
    ];
    let out = run(&[&entry[..], &["/bin/sh", "-c", "id -u; exit 3"]].concat());
    assert_eq!(text(&out).0, "65534\n", "{}", text(&out).1);
    assert_eq!(out.status.code(), Some(3));
    let m = std::fs::metadata(format!("{data}/sub/file")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
}

#[test]
fn platform_selection_and_single_platform_outputs() {
    let m = multiarch();
    let dir = scratch("multi-select");
    // --platform keeps the named platform only, still as an index.
    let layout = dir.join("arm");
    let report = harden_json(&[
        "rewrite",
        &m.oci(),
        &format!("oci:{}:a", layout.display()),
        "--platform",
        "linux/arm64",
    ]);
    assert_eq!(report["platforms"].as_array().unwrap().len(), 1);
    let index = tagged_index(&layout, "a");
    // The arm64 image, and the SBOM artifact (not a platform: kept).
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "arm64");
    assert!(index["manifests"][1].get("platform").is_none());
    // A platform the index does not have is an error that lists what it has.
    let out = harden(&[
        "rewrite",
        &m.oci(),
        &format!("oci:{}:x", layout.display()),
        "--platform",
        "linux/mips64le",
    ]);
    let (_, e) = text(&out);
    assert!(
        !out.status.success() && e.contains("linux/mips64le") && e.contains("linux/amd64"),
        "{e}"
    );
    // A docker-archive holds one platform: without --platform, an error naming them.
    let tar = dir.join("one.tar");
    let archive = format!("docker-archive:{}:localhost/multi:amd64", tar.display());
    let out = harden(&["rewrite", &m.oci(), &archive, "--skip-unsupported"]);
    let (_, e) = text(&out);
    assert!(
        !out.status.success() && e.contains("--platform") && e.contains("linux/arm64"),
        "{e}"
    );
    harden_json(&["rewrite", &m.oci(), &archive, "--platform", "linux/amd64"]);
    let image = podman().load(&tar);
    assert_eq!(
        podman().run_ok(&[], &image, &["sh", "-c", "id -u; whoami"]),
        "1000\napp\n"
    );
}

#[test]
fn index_through_a_registry() {
    let m = multiarch();
    let reg = Registry::plain("multi");
    let mut c = std::process::Command::new("skopeo");
    c.args(["copy", "-q", "--all", "--dest-tls-verify=false", &m.oci()]);
    c.arg(format!("docker://{}/multi/busybox:1", reg.addr));
    sh(c);
    let src = format!("{}/multi/busybox:1", reg.addr);
    let report = harden_json(&[
        "pull-rewrite-push",
        &src,
        "--plain-http",
        "--skip-unsupported",
    ]);
    // One new layer and one config per architecture; base layers and the
    // SBOM's blobs are already there.
    assert_eq!(report["blobs"]["uploaded"], 14, "{report}");
    assert_eq!(report["blobs"]["skipped"], 5, "{report}");
    let sbom = report["kept"][0]["digest"].as_str().unwrap();
    let raw: Value =
        serde_json::from_str(&reg.inspect("multi/busybox:1-hardened", true).unwrap()).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 8);
    assert_eq!(raw["manifests"][7]["digest"], sbom);
    let digest = sh(cmd(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{}/multi/busybox:1-hardened", reg.addr),
        ],
    ));
    use sha2::Digest;
    assert_eq!(
        report["manifest_digest"].as_str().unwrap(),
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(digest.as_bytes()))
        )
    );
    // podman pulls the amd64 image out of the index and it steps down.
    let dest = format!("{}/multi/busybox:1-hardened", reg.addr);
    sh(podman()
        .command()
        .args(["pull", "-q", "--tls-verify=false", &dest]));
    assert_eq!(podman().run_ok(&[], &dest, &["id", "-u"]), "1000\n");
    // A Docker manifest list stays a manifest list, of v2s2 manifests. skopeo
    // makes the v2s2 manifests; the list (which skopeo will not make from an
    // index holding an artifact) is PUT with curl.
    let mut list = Vec::new();
    for arch in ["amd64", "arm64"] {
        let dest = format!("docker://{}/list/busybox:{arch}", reg.addr);
        let src = format!("oci:{}:{arch}", m.layout.display());
        sh(cmd(
            "skopeo",
            &[
                "copy",
                "-q",
                "--format",
                "v2s2",
                "--dest-tls-verify=false",
                &src,
                &dest,
            ],
        ));
        let raw = sh(cmd(
            "skopeo",
            &["inspect", "--raw", "--tls-verify=false", &dest],
        ));
        use sha2::Digest;
        list.push(serde_json::json!({
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": format!("sha256:{}", hex::encode(sha2::Sha256::digest(raw.as_bytes()))),
            "size": raw.len(),
            "platform": {"os": "linux", "architecture": arch},
        }));
    }
    let body = scratch("manifest-list").join("list.json");
    std::fs::write(
        &body,
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": list,
        })
        .to_string(),
    )
    .unwrap();
    sh(cmd(
        "curl",
        &[
            "-sSf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.docker.distribution.manifest.list.v2+json",
            "--data-binary",
            &format!("@{}", body.display()),
            &format!("http://{}/v2/list/busybox/manifests/1", reg.addr),
        ],
    ));
    harden_json(&[
        "pull-rewrite-push",
        &format!("{}/list/busybox:1", reg.addr),
        "--plain-http",
    ]);
    let raw: Value =
        serde_json::from_str(&reg.inspect("list/busybox:1-hardened", true).unwrap()).unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(
        raw["manifests"][1]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // check covers every platform.
    let out = harden(&["check", "--plain-http", &format!("docker://{dest}")]);
    let (o, e) = text(&out);
    assert!(
        out.status.success() && o.starts_with("PASS") && o.contains("all 7 platforms"),
        "{o}{e}"
    );
}

/// An index that holds no image (empty, or only an SBOM and an attestation):
/// inspect, check and rewrite each say what it holds and exit 1.
#[test]
fn an_index_without_an_image_is_named_as_such() {
    let m = multiarch();
    let dir = scratch("no-image-index");
    for (tag, needle) in [
        ("empty", "is empty: it lists no manifest"),
        (
            "artifacts",
            "holds no image to harden, only 2 other entries",
        ),
    ] {
        let src = format!("oci:{}:{tag}", m.layout.display());
        let dest = format!("oci:{}:h", dir.join("out").display());
        for args in [
            vec!["inspect", src.as_str()],
            vec!["check", src.as_str()],
            vec!["rewrite", src.as_str(), dest.as_str()],
        ] {
            let out = harden(&args);
            let (o, e) = text(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {o}{e}");
            assert!(e.contains(needle), "{args:?}: {e}");
            if tag == "artifacts" {
                assert!(
                    e.contains("an artifact: application/spdx+json") && e.contains("attestation"),
                    "{e}"
                );
            }
        }
        assert!(!dir.join("out").exists());
    }
}

/// An oci-archive whose index names more platforms than it holds blobs for
/// (as `docker save --platform` and oras write): the platform chosen with
/// --platform is hardened; without it, the error names what is missing.
#[test]
fn a_partial_archive_hardens_the_platforms_it_holds() {
    use sha2::Digest;
    let m = multiarch();
    let dir = scratch("partial");
    let layout = dir.join("layout");
    sh(cmd(
        "cp",
        &["-a", m.layout.to_str().unwrap(), layout.to_str().unwrap()],
    ));
    let full = tagged_index(&layout, "multi");
    let manifests = full["manifests"].as_array().unwrap();
    let (amd64, arm64, s390x) = (&manifests[0], &manifests[1], &manifests[6]);
    assert_eq!(s390x["platform"]["architecture"], "s390x");
    // arm64: its manifest is not there; s390x: its config is not.
    std::fs::remove_file(blob(&layout, arm64["digest"].as_str().unwrap())).unwrap();
    let s390x_manifest = read_json(&blob(&layout, s390x["digest"].as_str().unwrap()));
    std::fs::remove_file(blob(
        &layout,
        s390x_manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [amd64, arm64, s390x],
    }))
    .unwrap();
    let hex = hex::encode(sha2::Sha256::digest(&index));
    std::fs::write(layout.join("blobs/sha256").join(&hex), &index).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": format!("sha256:{hex}"), "size": index.len(),
    }]});
    std::fs::write(layout.join("index.json"), top.to_string()).unwrap();
    let archive = dir.join("partial.tar");
    sh(cmd(
        "tar",
        &[
            "-cf",
            archive.to_str().unwrap(),
            "-C",
            layout.to_str().unwrap(),
            ".",
        ],
    ));
    let src = format!("oci-archive:{}", archive.display());
    let out_tar = dir.join("out.tar");
    let dest = format!("oci-archive:{}", out_tar.display());

    let out = harden(&["rewrite", &src, &dest]);
    let (_, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains(
            "holds only some platforms of its index (linux/amd64), not linux/arm64/v8, linux/s390x"
        ) && e.contains("--platform"),
        "{e}"
    );
    let out = harden(&["rewrite", &src, &dest, "--platform", "linux/arm64"]);
    let (_, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("--platform linux/arm64: the index lists linux/arm64/v8, but not in the source"),
        "{e}"
    );
    assert!(!out_tar.exists());

    let report = harden_json(&["rewrite", &src, &dest, "--platform", "linux/amd64"]);
    assert_eq!(report["dropped"].as_array().unwrap().len(), 2, "{report}");
    // skopeo reads what was written; podman runs it.
    sh(cmd("skopeo", &["inspect", &dest]));
    let image = podman().load(&out_tar);
    assert_eq!(podman().run_ok(&[], &image, &["id", "-u"]), "1000\n");
}
