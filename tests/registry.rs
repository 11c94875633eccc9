//! The docker:// transport against a real distribution registry on 127.0.0.1
//! (plain, and with htpasswd + TLS), checked with skopeo and podman, with a
//! counting and fault-injecting proxy in front where the test needs one.

mod common;
use base64::Engine as _;
use common::proxy::{Faults, Proxy};
use common::registry::Registry;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Runs harden with `args` (and `envs`); returns (exit code, stdout, stderr).
fn run(args: &[&str], envs: &[(&str, &Path)]) -> (i32, String, String) {
    let mut c = Command::new(harden_bin());
    c.args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().expect("run harden");
    let (o, e) = text(&out);
    (out.status.code().unwrap_or(-1), o, e)
}

fn run_json(args: &[&str], envs: &[(&str, &Path)]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, o, e) = run(&all, envs);
    assert_eq!(code, 0, "harden {args:?} failed:\n{o}\n{e}");
    serde_json::from_str(&o).unwrap_or_else(|err| panic!("not JSON ({err}): {o}"))
}

fn skopeo_digest(reg: &Registry, repo_tag: &str) -> String {
    let info: Value = serde_json::from_str(&reg.inspect(repo_tag, false).unwrap()).unwrap();
    info["Digest"].as_str().unwrap().to_string()
}

/// Copies the image into an OCI layout with skopeo, which checks every digest.
fn skopeo_verifies(reg: &Registry, repo_tag: &str, dir: &Path) {
    let mut c = Command::new("skopeo");
    c.args(["copy", "-q"]).args(reg.skopeo_flags("src-"));
    c.arg(format!("docker://{}/{repo_tag}", reg.addr));
    c.arg(format!("oci:{}:check", dir.join("verify").display()));
    sh(c);
}

#[test]
fn pull_rewrite_push_default_and_explicit_destination() {
    let reg = Registry::plain("prp");
    let src = reg.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);

    // Default destination: same repository, tag 1-hardened; the base layer stays.
    let out = run_json(&["pull-rewrite-push", &src, "--plain-http"], &[]);
    assert_eq!(
        out["destination"],
        format!("docker://{}/fix/busybox:1-hardened", reg.addr)
    );
    assert_eq!(
        out["manifest_digest"].as_str().unwrap(),
        skopeo_digest(&reg, "fix/busybox:1-hardened"),
        "--json reports the digest the registry has"
    );
    assert_eq!(
        out["source_manifest_digest"],
        skopeo_digest(&reg, "fix/busybox:1")
    );
    assert_eq!(out["platforms"][0]["platform"], "linux/amd64");
    assert_eq!(out["blobs"]["skipped"], 1, "{out}");
    assert_eq!(out["blobs"]["uploaded"], 2, "new layer and config: {out}");
    let raw: Value =
        serde_json::from_str(&reg.inspect("fix/busybox:1-hardened", true).unwrap()).unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    // Explicit destination in another repository: --dry-run says the base
    // layer would be mounted and writes nothing; then the real run mounts it.
    let dest = format!("{}/team/hardened:v1", reg.addr);
    let (code, o, e) = run(
        &[
            "pull-rewrite-push",
            &src,
            &dest,
            "--plain-http",
            "--dry-run",
        ],
        &[],
    );
    assert_eq!(code, 0, "{e}");
    assert!(
        o.contains("Entrypoint  - (none)")
            && o.contains(r#"+ ["/.harden/harden-stepdown","--mounted-home","/root","--match-owner","/srv","--"]"#),
        "{o}"
    );
    assert!(
        o.contains("mount from fix/busybox") && o.contains(": upload"),
        "{o}"
    );
    assert!(
        reg.inspect("team/hardened:v1", false).is_err(),
        "--dry-run pushed a tag"
    );
    let out = run_json(&["pull-rewrite-push", &src, &dest, "--plain-http"], &[]);
    assert_eq!(out["blobs"]["mounted"], 1, "{out}");
    assert_eq!(out["blobs"]["uploaded"], 2, "{out}");
    skopeo_verifies(&reg, "team/hardened:v1", &scratch("prp-verify"));
    // inspect A B: what harden changed.
    let (code, o, e) = run(
        &[
            "inspect",
            &format!("docker://{src}"),
            &format!("docker://{dest}"),
            "--plain-http",
        ],
        &[],
    );
    assert_eq!(code, 0, "{e}");
    assert!(
        o.contains("Layers      = 1 of 1 kept") && o.contains("+ dev.harden.mode=runtime"),
        "{o}"
    );

    // The pushed image runs under podman, pulled from the registry, and steps down.
    let p = podman();
    sh(p.command()
        .args(["pull", "-q", "--tls-verify=false", &dest]));
    let out = p.run_ok(&[], &dest, &["sh", "-c", "id -u; id -g; whoami; pwd"]);
    assert_eq!(out, "1000\n1000\napp\n/srv\n");
    let out = p.run_ok(&["-e", "HARDEN_UID=2345"], &dest, &["id", "-u"]);
    assert_eq!(out, "2345\n");
}

#[test]
fn docker_v2s2_stays_v2s2_and_by_digest_sources_work() {
    let reg = Registry::plain("v2s2");
    let src = reg.push(&fixtures().oci("echo"), "fix/echo:1", &["--format", "v2s2"]);
    let digest = skopeo_digest(&reg, "fix/echo:1");
    let by_digest = format!("{}/fix/echo@{digest}", reg.addr);
    let out = run_json(&["pull-rewrite-push", &by_digest, "--plain-http"], &[]);
    let hex = digest.trim_start_matches("sha256:");
    let tag = format!("fix/echo:sha256-{hex}-hardened");
    assert_eq!(out["destination"], format!("docker://{}/{tag}", reg.addr));
    let raw: Value = serde_json::from_str(&reg.inspect(&tag, true).unwrap()).unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        raw["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        out["manifest_digest"].as_str().unwrap(),
        skopeo_digest(&reg, &tag)
    );
    // A digest that does not match what the registry holds is refused.
    let wrong = format!("{}/fix/echo@sha256:{}", reg.addr, "0".repeat(64));
    let (code, _, e) = run(&["pull-rewrite-push", &wrong, "--plain-http"], &[]);
    assert_eq!(code, 4, "{e}");
    let _ = src;
}

#[test]
fn registry_and_files_mix_both_ways() {
    let reg = Registry::plain("mix");
    let dir = scratch("mix");
    // Tarball → registry.
    let push = |tag: &str| {
        let dest = format!("docker://{}/from/archive:{tag}", reg.addr);
        let archive = fixtures().archive("busybox");
        run_json(&["rewrite", &archive, &dest, "--plain-http"], &[])
    };
    // A dry run says the plain layers would be gzipped, and gzips nothing.
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let (code, o, e) = run(
        &[
            "rewrite",
            &fixtures().archive("busybox"),
            &format!("docker://{}/from/archive:1", reg.addr),
            "--plain-http",
            "--dry-run",
        ],
        &[("TMPDIR", &tmp)],
    );
    assert_eq!(code, 0, "{e}");
    assert!(o.contains(": gzip, then upload (as a new digest)"), "{o}");
    assert!(
        o.contains("bytes of plain layers to gzip and upload"),
        "{o}"
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    assert!(reg.inspect("from/archive:1", false).is_err());
    let out = push("1");
    assert_eq!(
        out["manifest_digest"].as_str().unwrap(),
        skopeo_digest(&reg, "from/archive:1")
    );
    skopeo_verifies(&reg, "from/archive:1", &dir);
    // The archive's plain tar layers arrive gzipped, with the diff_ids they had.
    let manifest: Value =
        serde_json::from_str(&reg.inspect("from/archive:1", true).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert!(layers.len() >= 2, "{manifest}");
    for l in layers {
        assert!(
            l["mediaType"].as_str().unwrap().ends_with(".tar.gzip"),
            "{manifest}"
        );
    }
    let source_ids = sh(cmd(
        "skopeo",
        &["inspect", "--config", &fixtures().archive("busybox")],
    ));
    let source_ids: Value = serde_json::from_str(&source_ids).unwrap();
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--config"]).args(reg.skopeo_flags(""));
    c.arg(format!("docker://{}/from/archive:1", reg.addr));
    let config: Value = serde_json::from_str(&sh(c)).unwrap();
    let ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(
        ids[..ids.len() - 1],
        source_ids["rootfs"]["diff_ids"].as_array().unwrap()[..]
    );
    // Deterministic: a second push finds every blob there already; and the
    // image runs (podman checks each layer against its diff_id).
    let again = push("2");
    assert_eq!(again["manifest_digest"], out["manifest_digest"]);
    assert_eq!(again["blobs"]["uploaded"], 0, "{again}");
    let pulled = dir.join("pulled.tar");
    let mut c = Command::new("skopeo");
    c.args(["copy", "-q"]).args(reg.skopeo_flags("src-"));
    c.arg(format!("docker://{}/from/archive:1", reg.addr));
    c.arg(format!(
        "docker-archive:{}:localhost/pulled:1",
        pulled.display()
    ));
    sh(c);
    let image = podman().load(&pulled);
    assert_eq!(podman().run_ok(&[], &image, &["id", "-u"]), "1000\n");
    // Registry → tarball, for an air-gapped hand-over; podman loads and runs it.
    reg.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);
    let tar = dir.join("out.tar");
    let src = format!("docker://{}/fix/busybox:1", reg.addr);
    let dest = format!("docker-archive:{}:localhost/mix:1", tar.display());
    let (code, o, e) = run(&["rewrite", &src, &dest, "--plain-http"], &[]);
    assert_eq!(code, 0, "{o}\n{e}");
    let image = podman().load(&tar);
    assert_eq!(podman().run_ok(&[], &image, &["id", "-u"]), "1000\n");
    // Registry → OCI layout, checked by umoci.
    let layout = dir.join("layout");
    let dest = format!("oci:{}:h", layout.display());
    let (code, o, e) = run(&["rewrite", &src, &dest, "--plain-http"], &[]);
    assert_eq!(code, 0, "{o}\n{e}");
    sh(cmd(
        "umoci",
        &["stat", "--image", &format!("{}:h", layout.display())],
    ));
}

#[test]
fn same_registry_moves_only_the_new_layer_whatever_the_image_size() {
    let reg = Registry::plain("big");
    let dir = scratch("big");
    let layout = dir.join("layout");
    write_big_layout(&layout, 320 << 20, "big");
    reg.push(&format!("oci:{}:big", layout.display()), "fix/big:1", &[]);
    reg.push(&fixtures().oci("scratch"), "fix/tiny:1", &[]);
    let proxy = Proxy::start(&reg.addr, Faults::default());
    let mut moved = Vec::new();
    for repo in ["fix/big", "fix/tiny"] {
        proxy.reset();
        let src = format!("{}/{repo}:1", proxy.addr);
        let out = run_json(&["pull-rewrite-push", &src, "--plain-http"], &[]);
        let layer = out["added_layer"]["size"].as_u64().unwrap();
        let bytes = proxy.bytes();
        assert!(
            bytes <= layer + (64 << 10),
            "{repo}: {bytes} bytes through the proxy for a {layer}-byte layer:\n{:#?}",
            proxy.log()
        );
        moved.push(bytes);
    }
    eprintln!(
        "bytes moved: 320 MiB image {}, tiny image {}",
        moved[0], moved[1]
    );
    skopeo_verifies(&reg, "fix/big:1-hardened", &dir);
}

/// The CA of `reg` in /etc/containers/certs.d/ADDR (where podman and harden
/// look), removed again on drop.
struct CertsD(std::path::PathBuf);

impl CertsD {
    fn install(reg: &Registry) -> CertsD {
        let dir = Path::new("/etc/containers/certs.d").join(&reg.addr);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(reg.ca.as_ref().unwrap(), dir.join("ca.crt")).unwrap();
        CertsD(dir)
    }
}

impl Drop for CertsD {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn authenticated_tls_registry_with_docker_config() {
    let secure = Registry::secured("secure");
    let plain = Registry::plain("plain-src");
    plain.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);
    secure.push(&fixtures().oci("busybox"), "app/busybox:1", &[]);
    let src = format!("{}/app/busybox:1", secure.addr);

    // Unknown CA: a TLS error that says what to do, never a silent fallback.
    let (code, _, e) = run(&["pull-rewrite-push", &src], &[]);
    assert_eq!(code, 1, "{e}");
    assert!(e.contains("TLS") && e.contains("certs.d"), "{e}");

    let _certs = CertsD::install(&secure);
    // Right CA, no credentials: an authentication failure naming the registry.
    let empty = scratch("no-creds");
    let (code, _, e) = run(
        &["pull-rewrite-push", &src],
        &[
            ("DOCKER_CONFIG", &empty),
            ("REGISTRY_AUTH_FILE", &empty.join("none.json")),
        ],
    );
    assert_eq!(code, 3, "{e}");
    assert!(
        e.contains("authentication") && e.contains(&secure.addr),
        "{e}"
    );

    // Credentials from a DOCKER_CONFIG directory.
    let config = scratch("docker-config");
    let auth = base64::engine::general_purpose::STANDARD.encode("tester:s3cret");
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, secure.addr),
    )
    .unwrap();
    let env = [
        ("DOCKER_CONFIG", config.as_path()),
        ("REGISTRY_AUTH_FILE", &empty.join("none.json")),
    ];
    let out = run_json(&["pull-rewrite-push", &src], &env);
    assert_eq!(
        out["manifest_digest"].as_str().unwrap(),
        skopeo_digest(&secure, "app/busybox:1-hardened")
    );

    // The same entry from --authfile (skopeo's and podman's flag), with no
    // other file to fall back on. A path that cannot be read is an error
    // naming the flag, not an anonymous pull that ends in a 401 (exit 3).
    let authfile = config.join("auth.json");
    std::fs::copy(config.join("config.json"), &authfile).unwrap();
    let authfile = authfile.to_str().unwrap();
    let no_files = [
        ("DOCKER_CONFIG", empty.as_path()),
        ("REGISTRY_AUTH_FILE", &empty.join("none.json")),
    ];
    let to = format!("{}/app/busybox:authfile", secure.addr);
    let out = run_json(
        &["pull-rewrite-push", &src, &to, "--authfile", authfile],
        &no_files,
    );
    assert_eq!(
        out["manifest_digest"].as_str().unwrap(),
        skopeo_digest(&secure, "app/busybox:authfile")
    );
    let missing = format!("{authfile}.missing");
    for flag in ["--authfile", "--src-authfile"] {
        let (code, _, e) = run(&["pull-rewrite-push", &src, flag, &missing], &no_files);
        assert_eq!(code, 1, "{e}");
        assert!(e.contains(&format!("{flag} {missing}")), "{e}");
    }

    // Wrong password: exit 3, and no tag was created.
    let dest = format!("{}/app/busybox:wrong", secure.addr);
    let (code, _, e) = run(
        &["pull-rewrite-push", &src, &dest, "--creds", "tester:nope"],
        &[],
    );
    assert_eq!(code, 3, "{e}");
    assert!(
        e.contains("authentication failed") && e.contains(&secure.addr),
        "{e}"
    );
    assert!(
        secure.inspect("app/busybox:wrong", false).is_err(),
        "no tag after a failed login"
    );
    // The same from an archive, whose plain layer is gzipped into TMPDIR and
    // pushed while the rest is prepared: exit 3 too, and the gzip is gone.
    let tmp = scratch("auth-tmp");
    let (code, _, e) = run(
        &[
            "rewrite",
            &fixtures().archive("busybox"),
            &format!("docker://{dest}"),
            "--creds",
            "tester:nope",
        ],
        &[("TMPDIR", tmp.as_path())],
    );
    assert_eq!(code, 3, "{e}");
    assert!(e.contains("authentication failed"), "{e}");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp files left"
    );
    assert!(secure.inspect("app/busybox:wrong", false).is_err());

    // Across registries: plain-HTTP source, TLS + auth destination, layers streamed.
    let cross = format!("docker://{}/copied/busybox:h", secure.addr);
    let from = format!("docker://{}/fix/busybox:1", plain.addr);
    let out = run_json(&["rewrite", &from, &cross, "--src-tls-verify=false"], &env);
    assert_eq!(
        out["blobs"]["uploaded"], 3,
        "base layer, new layer, config: {out}"
    );
    skopeo_verifies(&secure, "copied/busybox:h", &scratch("cross-verify"));
}

#[test]
fn faults_between_harden_and_the_registry_are_survived() {
    let reg = Registry::plain("faults");
    reg.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            unavailable_every: Some(4),
            too_many_every: Some(7),
            cut_response_every: Some(5),
            cut_request_every: Some(3),
            ..Faults::default()
        },
    );
    // Cross-repository with the base layer read through the proxy: write to a
    // tarball first (downloads), then push from it (uploads).
    let dir = scratch("faults");
    let tar = dir.join("pulled.tar");
    let src = format!("docker://{}/fix/busybox:1", proxy.addr);
    let (code, o, e) = run(
        &[
            "rewrite",
            &src,
            &format!("docker-archive:{}", tar.display()),
            "--plain-http",
            "-v",
        ],
        &[],
    );
    assert_eq!(code, 0, "{o}\n{e}\n{:#?}", proxy.log());
    // -v logs each request and each retry.
    assert!(
        e.contains("-> 503 Service Unavailable") && e.contains("retry 1 of 5"),
        "{e}"
    );
    let dest = format!("docker://{}/faulty/busybox:h", proxy.addr);
    let out = run_json(
        &[
            "rewrite",
            &fixtures().archive("busybox"),
            &dest,
            "--plain-http",
        ],
        &[],
    );
    assert!(
        proxy.stats.faults.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "faults were injected: {:#?}",
        proxy.log()
    );
    assert_eq!(
        out["manifest_digest"].as_str().unwrap(),
        skopeo_digest(&reg, "faulty/busybox:h")
    );
    skopeo_verifies(&reg, "faulty/busybox:h", &dir);
}

#[test]
fn missing_images_and_bad_references_fail_clearly() {
    let reg = Registry::plain("missing");
    let (code, _, e) = run(
        &[
            "pull-rewrite-push",
            &format!("{}/no/such:1", reg.addr),
            "--plain-http",
        ],
        &[],
    );
    assert_eq!(code, 4, "{e}");
    assert!(e.contains("not found") && e.contains("no/such"), "{e}");
    for bad in ["UPPER/case:1", "a/b:bad tag", "a@sha256:123"] {
        let (code, _, e) = run(&["pull-rewrite-push", bad], &[]);
        assert_eq!(code, 2, "{bad}: {e}");
        assert!(
            e.contains("not a valid image reference") || e.contains("digest"),
            "{bad}: {e}"
        );
    }
    // The destination must not be the source tag (harden never modifies its input).
    let src = reg.push(&fixtures().oci("scratch"), "fix/s:1", &[]);
    let (code, _, e) = run(&["pull-rewrite-push", &src, &src, "--plain-http"], &[]);
    assert_eq!(code, 1);
    assert!(e.contains("is the source"), "{e}");
}

#[test]
fn bearer_tokens_cover_the_source_for_a_cross_repository_mount() {
    let tokens = common::token::TokenServer::start("bearer");
    let reg = Registry::with_tokens("bearer", &tokens);
    reg.push(&fixtures().oci("busybox"), "team-a/busybox:1", &[]);
    let src = format!("{}/team-a/busybox:1", reg.addr);
    let dest = format!("{}/team-b/busybox:h", reg.addr);

    // Anonymous: the token grants nothing; an authentication error, exit 3.
    let empty = scratch("bearer-anon");
    let none = empty.join("none.json");
    let anon = [
        ("DOCKER_CONFIG", empty.as_path()),
        ("REGISTRY_AUTH_FILE", none.as_path()),
    ];
    let (code, _, e) = run(&["pull-rewrite-push", &src, &dest, "--plain-http"], &anon);
    assert_eq!(code, 3, "{e}");

    // A wrong password is refused by the token server: exit 3, no tag.
    let (code, _, e) = run(
        &[
            "pull-rewrite-push",
            &src,
            &dest,
            "--plain-http",
            "--creds",
            "tester:bad",
        ],
        &anon,
    );
    assert_eq!(code, 3, "{e}");
    assert!(
        e.contains("authentication failed") && e.contains(&reg.addr),
        "{e}"
    );
    assert!(reg.inspect("team-b/busybox:h", false).is_err());

    // With credentials from podman's auth.json: one token carries pull on the
    // source and pull,push on the destination, so the base layer is mounted.
    let auth_json = empty.join("auth.json");
    let auth = base64::engine::general_purpose::STANDARD.encode("tester:s3cret");
    std::fs::write(
        &auth_json,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr),
    )
    .unwrap();
    tokens.requests.lock().unwrap().clear();
    let podman_auth = [
        ("DOCKER_CONFIG", empty.as_path()),
        ("REGISTRY_AUTH_FILE", auth_json.as_path()),
    ];
    let out = run_json(
        &["pull-rewrite-push", &src, &dest, "--plain-http"],
        &podman_auth,
    );
    assert_eq!(out["blobs"]["mounted"], 1, "{out}");
    let asked = tokens.scopes_asked();
    assert!(
        asked.iter().any(
            |s| s.contains(&"repository:team-a/busybox:pull".to_string())
                && s.contains(&"repository:team-b/busybox:pull,push".to_string())
        ),
        "scopes asked: {asked:?}"
    );
    assert_eq!(
        out["manifest_digest"].as_str().unwrap(),
        skopeo_digest(&reg, "team-b/busybox:h")
    );
}

#[test]
fn batch_from_a_file_reports_each_image() {
    let reg = Registry::plain("batch");
    reg.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);
    reg.push(&fixtures().oci("echo"), "fix/echo:1", &[]);
    let list = scratch("batch").join("images.txt");
    let a = &reg.addr;
    std::fs::write(
        &list,
        format!(
            "# to harden\n{a}/fix/busybox:1\n\n{a}/fix/echo:1 {a}/out/echo:h\n{a}/fix/missing:1\n"
        ),
    )
    .unwrap();
    let (code, o, e) = run(
        &[
            "pull-rewrite-push",
            "--from",
            list.to_str().unwrap(),
            "-j",
            "2",
            "--plain-http",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 1, "one image is missing: {e}");
    assert!(e.contains("1 of 3 images failed"), "{e}");
    // The failure's line names the image once.
    let failure = e.lines().find(|l| l.contains("fix/missing")).unwrap();
    let reference = format!("docker://{a}/fix/missing:1");
    assert_eq!(failure.matches(&reference).count(), 1, "{e}");
    // Two at a time: each progress line says which image it is about.
    assert!(
        e.lines()
            .filter(|l| l.contains(": layer ") || l.contains(": config "))
            .all(|l| l.starts_with(&format!("harden: {a}/out/echo:h: "))
                || l.starts_with(&format!("harden: {a}/fix/busybox:1-hardened: "))),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "harden: {a}/out/echo:h: wrote docker://{a}/out/echo:h"
        )),
        "{e}"
    );
    let lines: Vec<Value> = o
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{o}");
    let failed: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["source"]
        .as_str()
        .unwrap()
        .ends_with("fix/missing:1"));
    for (tag, line) in [
        ("fix/busybox:1-hardened", "fix/busybox:1-hardened"),
        ("out/echo:h", "out/echo:h"),
    ] {
        let report = lines
            .iter()
            .find(|l| l["destination"].as_str().unwrap().ends_with(line))
            .unwrap();
        assert_eq!(
            report["manifest_digest"].as_str().unwrap(),
            skopeo_digest(&reg, tag)
        );
    }
    // --shard 1/2 takes every second line from the second: only the echo image.
    let (code, o, e) = run(
        &[
            "pull-rewrite-push",
            "--from",
            list.to_str().unwrap(),
            "--shard",
            "1/2",
            "--plain-http",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{e}");
    assert_eq!(o.lines().count(), 1, "{o}");
    assert!(o.contains("out/echo:h"), "{o}");
    // A malformed line is refused before anything is done, with its line number.
    std::fs::write(
        &list,
        format!("{a}/fix/busybox:1\nnot a valid line at all\n"),
    )
    .unwrap();
    let (code, _, e) = run(
        &[
            "pull-rewrite-push",
            "--from",
            list.to_str().unwrap(),
            "--plain-http",
        ],
        &[],
    );
    assert_eq!(code, 2, "a bad line is a usage error");
    assert!(e.contains("images.txt:2"), "{e}");
}

#[test]
fn an_interrupted_push_leaves_no_tag() {
    let reg = Registry::plain("interrupt");
    let dir = scratch("interrupt-push");
    let layout = dir.join("layout");
    write_big_layout(&layout, 8 << 20, "eight");
    // 2 MiB/s: the 8 MiB upload takes seconds, so the signal lands mid-push.
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            throttle: Some(2 << 20),
            ..Faults::default()
        },
    );
    let dest = format!("docker://{}/slow/eight:h", proxy.addr);
    let src = format!("oci:{}:eight", layout.display());
    // Its plain layer is gzipped into TMPDIR first: that file goes too.
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let child = std::process::Command::new(harden_bin())
        .args(["rewrite", "-q", &src, &dest, "--plain-http"])
        .env("TMPDIR", &tmp)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    sh(cmd("kill", &["-TERM", &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", text(&out).1);
    assert!(
        reg.inspect("slow/eight:h", false).is_err(),
        "an interrupted push left a tag"
    );
    assert!(text(&out).1.contains("interrupted"));
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp files left"
    );
}

#[test]
fn an_interrupted_write_leaves_nothing_behind() {
    // A download at 2 MiB/s keeps the write going for seconds: a local
    // source is copied by the kernel faster than a signal can be aimed.
    let reg = Registry::plain("interrupt-write");
    let dir = scratch("interrupt-write");
    let layout = dir.join("layout");
    write_big_layout(&layout, 8 << 20, "eight");
    reg.push(
        &format!("oci:{}:eight", layout.display()),
        "slow/eight:1",
        &[],
    );
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            throttle: Some(2 << 20),
            ..Faults::default()
        },
    );
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let src = format!("docker://{}/slow/eight:1", proxy.addr);
    let dest = format!("docker-archive:{}", out_dir.join("eight.tar").display());
    let child = std::process::Command::new(harden_bin())
        .args(["rewrite", "-q", &src, &dest, "--plain-http"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the temp file exists, then Ctrl-C.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&out_dir).unwrap().next().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no temp file appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sh(cmd("kill", &["-INT", &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out).1);
    assert_eq!(
        std::fs::read_dir(&out_dir).unwrap().count(),
        0,
        "an interrupted write left a file"
    );
}

#[test]
fn a_blob_corrupted_on_the_way_from_a_registry_is_caught() {
    let reg = Registry::plain("corrupt");
    reg.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);
    // Bodies over 64 KiB (the busybox layer) get one byte flipped.
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            corrupt_bodies_over: Some(64 << 10),
            ..Faults::default()
        },
    );
    let dir = scratch("corrupt-registry");
    let src = format!("docker://{}/fix/busybox:1", proxy.addr);
    for dest in [
        format!("docker-archive:{}", dir.join("out.tar").display()),
        format!("oci:{}:t", dir.join("layout").display()),
        format!("docker://{}/other/busybox:h", reg.addr),
    ] {
        let (code, _, e) = run(&["rewrite", &src, &dest, "--plain-http"], &[]);
        assert_eq!(code, 1, "{dest}: {e}");
        assert!(
            e.contains("does not match its digest") || e.contains("corrupt"),
            "{dest}: {e}"
        );
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "{dest}: output left"
        );
    }
    assert!(
        reg.inspect("other/busybox:h", false).is_err(),
        "no tag over a corrupt blob"
    );
}

/// On a terminal, each blob has one name from its bar to its last line, and
/// the line says what it is: the plain layer that is gzipped while it is
/// pushed is named by its plain digest, and its gzip's digest is said at the end.
#[test]
fn each_blob_has_one_name_that_says_what_it_is() {
    let reg = Registry::plain("names");
    let dir = scratch("names");
    let layout = dir.join("layout");
    write_big_layout(&layout, 64 << 20, "t");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(&manifest["sha256:".len()..]),
        )
        .unwrap(),
    )
    .unwrap();
    let plain = &manifest["layers"][0]["digest"].as_str().unwrap()["sha256:".len()..][..12];
    let (code, out) = pty(&format!(
        "{} rewrite oci:{}:t docker://{}/names:1 --plain-http",
        harden_bin(),
        layout.display(),
        reg.addr
    ));
    assert_eq!(code, Some(0), "{out:?}");
    // A line may follow the escape codes that clear the bars.
    let lines: Vec<&str> = (out.split("\r\n"))
        .filter_map(|l| l.find("harden: ").map(|i| &l[i..]))
        .collect();
    let blobs: Vec<&str> = lines
        .iter()
        .filter(|l| !l.contains("inferred:"))
        .filter(|l| l.contains("uploaded") || l.contains("already in") || l.contains("mounted"))
        .map(|l| &l["harden: ".len()..])
        .collect();
    assert_eq!(blobs.len(), 3, "config, new layer, plain layer: {lines:?}");
    for line in &blobs {
        assert!(
            line.starts_with("config ") || line.starts_with("layer "),
            "{line}"
        );
    }
    let streamed = format!("layer {plain}: uploaded as gzip ");
    assert!(
        blobs.iter().any(|l| l.starts_with(&streamed)),
        "{streamed} in {blobs:?}"
    );
    // The bars (drawn between the lines) carry the same name.
    assert!(out.contains(&format!("layer {plain} gzip")), "{out:?}");
    assert!(out.contains(&format!("layer {plain} push")), "{out:?}");
}

/// A plain layer's gzip is streamed into the registry while it is made, and
/// committed only once the layer has been checked against its digest: a layer
/// that does not match leaves no blob and no tag, though its upload was under
/// way when the mismatch showed (at the end of the layer).
#[test]
fn plain_layers_stream_while_gzipped_and_a_bad_one_is_never_committed() {
    let reg = Registry::plain("stream");
    let dir = scratch("stream");
    let layout = dir.join("layout");
    write_big_layout(&layout, 32 << 20, "t");
    let src = format!("oci:{}:t", layout.display());
    let push = |repo: &str| {
        let dest = format!("docker://{}/{repo}:1", reg.addr);
        run(&["rewrite", &src, &dest, "--plain-http", "-v"], &[])
    };
    let (code, o, e) = push("stream/good");
    assert_eq!(code, 0, "{o}\n{e}");
    assert!(e.contains("while compressed"), "{e}");
    skopeo_verifies(&reg, "stream/good:1", &dir);

    let blobs = layout.join("blobs/sha256");
    let layer = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&layer).unwrap();
    let n = bytes.len();
    bytes[n - 2000..n - 1024].fill(b'x'); // inside the file's data, before the tar's end blocks
    std::fs::write(&layer, bytes).unwrap();
    let (code, o, e) = push("stream/bad");
    assert_eq!(code, 1, "{o}\n{e}");
    assert!(e.contains("does not match its digest"), "{e}");
    assert!(e.contains("start upload to stream/bad -> 202"), "{e}");
    assert!(
        e.contains("cancel upload -> "),
        "the session is not cancelled:\n{e}"
    );
    assert!(reg.inspect("stream/bad:1", false).is_err());
    let repo = reg
        .dir
        .join("data/docker/registry/v2/repositories/stream/bad");
    let committed = sh(cmd(
        "find",
        &[
            repo.to_str().unwrap(),
            "-path",
            "*/_layers/*",
            "-name",
            "link",
        ],
    ));
    assert_eq!(committed, "", "blobs committed to stream/bad");
}

/// A registry whose certificate is self-signed as Docker's documentation
/// shows (CA:TRUE), trusted by putting it in a trust directory of the host
/// (certs.d, --cert-dir): accepted as docker, podman and skopeo accept it,
/// because it is exactly the server's certificate. Every other check stays:
/// another self-signed certificate for the same name, the right certificate
/// reached under a name it does not carry, and no trust at all are refused.
#[test]
fn a_self_signed_certificate_in_a_trust_directory_is_pinned() {
    let reg = Registry::self_signed("self-signed");
    reg.push(&fixtures().oci("busybox"), "app/busybox:1", &[]);
    let src = format!("{}/app/busybox:1", reg.addr);
    let certs = reg.dir.join("certs");
    let cert_dir = format!("--cert-dir={}", certs.display());

    let (code, _, e) = run(&["inspect", &format!("docker://{src}")], &[]);
    assert_eq!(code, 1, "no trust: {e}");
    assert!(e.contains("TLS"), "{e}");

    let out = run_json(&["pull-rewrite-push", &src, &cert_dir], &[]);
    assert_eq!(
        out["manifest_digest"].as_str().unwrap(),
        skopeo_digest(&reg, "app/busybox:1-hardened")
    );
    // The same from /etc/docker/certs.d/HOST:PORT/ca.crt.
    let docker_dir = Path::new("/etc/docker/certs.d").join(&reg.addr);
    std::fs::create_dir_all(&docker_dir).unwrap();
    let _installed = CertsD(docker_dir.clone());
    std::fs::copy(certs.join("ca.crt"), docker_dir.join("ca.crt")).unwrap();
    let (code, _, e) = run(&["inspect", &format!("docker://{src}")], &[]);
    assert_eq!(code, 0, "certs.d: {e}");

    // Another self-signed certificate for 127.0.0.1 in the trust directory.
    let other = scratch("self-signed-other");
    let key = other.join("k");
    let crt = other.join("ca.crt");
    common::registry::self_signed_cert(&key, &crt);
    std::fs::remove_file(other.join("k")).unwrap();
    std::fs::copy(&crt, docker_dir.join("ca.crt")).unwrap();
    let (code, _, e) = run(&["inspect", &format!("docker://{src}")], &[]);
    assert_eq!(code, 1, "another certificate: {e}");
    assert!(e.contains("TLS"), "{e}");

    // The right certificate under a name it does not carry (localhost).
    let port = reg.addr.rsplit(':').next().unwrap();
    let by_name = format!("docker://localhost:{port}/app/busybox:1");
    let (code, _, e) = run(&["inspect", &by_name, &cert_dir], &[]);
    assert_eq!(code, 1, "wrong name: {e}");
    assert!(e.contains("TLS"), "{e}");
}

/// A registry that is not there: each retry is said on stderr without -v
/// (what, why, the delay), and --timeout's message keeps the cause.
#[test]
fn retries_are_said_and_a_timeout_names_its_cause() {
    let addr = format!("127.0.0.1:{}", common::registry::free_port());
    let src = format!("docker://{addr}/app:1");
    let (code, _, e) = run(&["inspect", &src, "--plain-http", "--timeout", "2"], &[]);
    assert_eq!(code, 124, "{e}");
    assert!(
        e.contains(&format!(
            "harden: warning: GET http://{addr}/v2/: Connection refused"
        )) && e.contains("retry 1 of 5 in 0.5 s"),
        "{e}"
    );
    assert!(
        e.contains("timed out after 2 s (--timeout) (last: GET")
            && e.contains("Connection refused"),
        "{e}"
    );
}
