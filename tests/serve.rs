//! `harden serve` in front of a real distribution registry on 127.0.0.1:
//! pulled through with skopeo (which checks every digest) and podman, run
//! stepped down, compared with `harden rewrite` of the same source; faults
//! from the proxy, 50 pulls at once, a client that leaves mid-blob.

mod common;
use common::docker::Docker;
use common::proxy::{Faults, Proxy};
use common::registry::{make_certs, Registry};
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `harden serve` process on a free port of 127.0.0.1; its log is a file.
struct Serve {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Serve {
    fn start(name: &str, args: &[&str]) -> Serve {
        let dir = scratch(&format!("serve-{name}"));
        let log = dir.join("log");
        let child = Command::new(harden_bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start harden serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let at = text
                .lines()
                .find_map(|l| l.split_once("listening on "))
                .map(|(_, rest)| {
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string()
                });
            if let Some(url) = at {
                break url
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .to_string();
            }
            assert!(
                Instant::now() < deadline,
                "harden serve did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Serve { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET (or HEAD) `path`: the status and the body.
    fn get(&self, method: &str, path: &str) -> (u16, String) {
        let (head, body) = request(&self.addr, &format!("{method} {path}"), "");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.get("GET", "/metrics");
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
        line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    /// The highest resident memory of the process so far, in KiB.
    fn peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request (`METHOD PATH` and extra header lines) on a new connection:
/// the response head and body.
fn request(addr: &str, line: &str, headers: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{line} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..end + 2]).into_owned();
    (head, all[end + 4..].to_vec())
}

/// `skopeo inspect --raw`'s manifest digest (an index stays an index).
fn raw_digest(reference: &str, flags: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut c = cmd(
        "skopeo",
        &[&["inspect", "--raw"], flags, &[reference]].concat(),
    );
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("sha256:{}", hex::encode(Sha256::digest(&out.stdout)))
}

/// What `harden rewrite` pushes for `src` (a registry reference), with `options`.
fn rewrite_digest(src: &str, options: &[&str]) -> String {
    let dest = format!("{src}-rewritten");
    let mut args = vec!["rewrite", "--json", "-q", "--tls-verify=false"];
    let (s, d) = (format!("docker://{src}"), format!("docker://{dest}"));
    args.extend([s.as_str(), d.as_str()]);
    args.extend(options);
    let out = harden(&args);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{e}");
    let v: Value = serde_json::from_str(&o).unwrap();
    v["manifest_digest"].as_str().unwrap().to_string()
}

/// skopeo copies through serve into an OCI layout (checking every digest).
fn skopeo_pull(serve: &Serve, repo_tag: &str, dir: &Path, extra: &[&str]) -> std::process::Output {
    let src = format!("docker://{}/{repo_tag}", serve.addr);
    let dest = format!("oci:{}:pulled", dir.display());
    let mut args = vec!["copy", "-q", "--retry-times", "3"];
    args.extend(extra);
    args.extend([src.as_str(), dest.as_str()]);
    cmd("skopeo", &args).output().unwrap()
}

const PLAIN: &[&str] = &["--tls-verify=false"];

#[test]
fn pulls_through_serve_equal_rewrite_and_run_stepped_down() {
    let reg = Registry::plain("serve-main");
    reg.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);
    reg.push(&multiarch().oci(), "fix/multi:1", &["--all"]);
    let upstream = format!("up=http://{}", reg.addr);
    // The fixture's index also lists windows/amd64.
    let args = ["--upstream", &upstream, "--skip-unsupported"];
    let serve = Serve::start("main", &args);
    let other = Serve::start("main-2", &args);

    // The same digests as `harden rewrite` pushes, from both replicas.
    let single = rewrite_digest(&format!("{}/fix/busybox:1", reg.addr), &[]);
    let multi = format!("{}/fix/multi:1", reg.addr);
    let index = rewrite_digest(&multi, &["--skip-unsupported"]);
    for s in [&serve, &other] {
        let at = |r: &str| format!("docker://{}/up/fix/{r}", s.addr);
        assert_eq!(raw_digest(&at("busybox:1"), PLAIN), single);
        assert_eq!(raw_digest(&at("multi:1"), PLAIN), index);
    }

    // skopeo verifies what it copies; an index with all its platforms.
    let dir = scratch("serve-main-pull");
    let out = skopeo_pull(&serve, "up/fix/busybox:1", &dir.join("one"), PLAIN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = [PLAIN, &["--all"]].concat();
    let out = skopeo_pull(&serve, "up/fix/multi:1", &dir.join("multi"), &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // podman pulls it and it steps down; the base layer came from upstream.
    let p = podman();
    let image = format!("{}/up/fix/busybox:1", serve.addr);
    sh(p.command()
        .args(["pull", "-q", "--tls-verify=false", &image]));
    let id = p.run_ok(&[], &image, &["id"]);
    assert!(id.contains("uid=1000(app)"), "{id}");
    let id = p.run_ok(&["-e", "HARDEN_UID=4321"], &image, &["id", "-u"]);
    assert_eq!(id.trim(), "4321");

    // The tag list is the upstream's, under serve's name.
    let (status, body) = serve.get("GET", "/v2/up/fix/busybox/tags/list");
    assert_eq!(status, 200, "{body}");
    let tags: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(tags["name"], "up/fix/busybox");
    assert!(
        tags["tags"].as_array().unwrap().contains(&"1".into()),
        "{tags}"
    );

    // Unknown images and upstreams are 404 with a distribution error code.
    let (status, body) = serve.get("GET", "/v2/up/fix/nothing/manifests/1");
    assert_eq!(status, 404);
    assert!(body.contains("MANIFEST_UNKNOWN"), "{body}");
    let (status, body) = serve.get("GET", "/v2/up/fix/busybox/manifests/no-such-tag");
    assert_eq!(status, 404, "{body}");
    let (status, body) = serve.get("HEAD", "/v2/elsewhere/fix/busybox/manifests/1");
    assert_eq!((status, body.as_str()), (404, ""));
    let (status, _) = serve.get("GET", "/v2/up/fix/busybox/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000");
    assert_eq!(status, 404);
    let (status, body) = serve.get("DELETE", "/v2/up/fix/busybox/manifests/1");
    assert_eq!(status, 405, "{body}");
    assert_eq!(serve.get("GET", "/healthz"), (200, "ok\n".to_string()));

    // Each image was hardened once; later pulls came from the cache.
    assert_eq!(serve.metric("harden_serve_hardened_total"), 2);
    assert!(serve.metric("harden_serve_cache_hits_total") >= 3);
    let log = serve.log();
    assert!(
        log.lines()
            .any(|l| l.contains("GET /v2/up/fix/busybox/manifests/1 200 ")),
        "{log}"
    );
}

#[test]
fn rules_from_a_config_file_choose_the_options() {
    let reg = Registry::plain("serve-rules");
    reg.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);
    reg.push(&fixtures().oci("busybox"), "svc/busybox:1", &[]);
    let dir = scratch("serve-rules-file");
    let rules = dir.join("rules.json");
    std::fs::write(
        &rules,
        r#"{"rules": [{"match": "up/svc/*", "options": {"user": "svc", "uid": 2345, "mode": "static"}}]}"#,
    )
    .unwrap();
    let upstream = format!("up=http://{}", reg.addr);
    let serve = Serve::start(
        "rules",
        &[
            "--upstream",
            &upstream,
            "--config",
            rules.to_str().unwrap(),
            "--init",
        ],
    );
    let at = |r: &str| format!("docker://{}/up/{r}", serve.addr);
    let svc = rewrite_digest(
        &format!("{}/svc/busybox:1", reg.addr),
        &["--user", "svc", "--uid", "2345", "--mode", "static"],
    );
    assert_eq!(raw_digest(&at("svc/busybox:1"), PLAIN), svc);
    // Repositories no rule matches get the command line's options.
    let fix = rewrite_digest(&format!("{}/fix/busybox:1", reg.addr), &["--init"]);
    assert_eq!(raw_digest(&at("fix/busybox:1"), PLAIN), fix);

    // A bad rule is named at start, with the exit code of a usage error.
    std::fs::write(
        &rules,
        r#"{"rules": [{"match": "*", "options": {"uid": "0"}}]}"#,
    )
    .unwrap();
    let out = harden(&["serve", "--config", rules.to_str().unwrap()]);
    let (_, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("rule 1 (*)") && e.contains("--uid 0 is root"),
        "{e}"
    );
    std::fs::write(
        &rules,
        r#"{"rules": [{"match": "*", "options": {"usr": "x"}}]}"#,
    )
    .unwrap();
    let out = harden(&["serve", "--config", rules.to_str().unwrap()]);
    let (_, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("--usr"), "{e}");
}

#[test]
fn secured_upstreams_and_serving_https() {
    let reg = Registry::secured("serve-secured");
    reg.push(&fixtures().oci("echo"), "fix/echo:1", &[]);
    let ca_dir = reg.ca.as_ref().unwrap().parent().unwrap().join("certs");
    let upstream = format!("sec=https://{}", reg.addr);
    let cert_dir = ca_dir.to_str().unwrap();

    // Without credentials, the upstream's 401 reaches the client.
    let anonymous = Serve::start(
        "anonymous",
        &["--upstream", &upstream, "--cert-dir", cert_dir],
    );
    let (status, body) = anonymous.get("GET", "/v2/sec/fix/echo/manifests/1");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("UNAUTHORIZED"), "{body}");

    // With them, and serving HTTPS itself with a certificate for 127.0.0.1.
    let tls = scratch("serve-tls");
    make_certs(&tls);
    let (crt, key) = (tls.join("server.crt"), tls.join("server.key"));
    let serve = Serve::start(
        "secured",
        &[
            "--upstream",
            &upstream,
            "--cert-dir",
            cert_dir,
            "--creds",
            "tester:s3cret",
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--htpasswd",
            reg.dir.join("htpasswd").to_str().unwrap(),
        ],
    );
    let trust = tls.join("certs");
    let flags = format!("--cert-dir={}", trust.display());
    // serve's own users (the same htpasswd file as the registry's here).
    let anonymous_pull = cmd(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &flags,
            &format!("docker://{}/sec/fix/echo:1", serve.addr),
        ],
    )
    .output()
    .unwrap();
    let refused = String::from_utf8_lossy(&anonymous_pull.stderr);
    assert!(!anonymous_pull.status.success());
    assert!(
        refused.contains("authentication required") || refused.contains("unauthorized"),
        "{refused}"
    );
    let wrong = [flags.as_str(), "--creds=tester:wrong"];
    assert!(!cmd(
        "skopeo",
        &[
            &["inspect", "--raw"],
            &wrong[..],
            &[&format!("docker://{}/sec/fix/echo:1", serve.addr)]
        ]
        .concat()
    )
    .output()
    .unwrap()
    .status
    .success());
    let flags_creds = [flags.as_str(), "--creds=tester:s3cret"];
    let through = format!("docker://{}/sec/fix/echo:1", serve.addr);
    let expected = {
        let out = harden(&[
            "rewrite",
            "--json",
            "-q",
            "--cert-dir",
            cert_dir,
            "--creds",
            "tester:s3cret",
            &format!("docker://{}/fix/echo:1", reg.addr),
            &format!("docker://{}/fix/echo:1-h", reg.addr),
        ]);
        let (o, e) = text(&out);
        assert!(out.status.success(), "{e}");
        serde_json::from_str::<Value>(&o).unwrap()["manifest_digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(raw_digest(&through, &flags_creds), expected);
    let src_flags = format!("--src-cert-dir={}", trust.display());
    let out = skopeo_pull(
        &serve,
        "sec/fix/echo:1",
        &scratch("serve-tls-pull"),
        &[&src_flags, "--src-creds=tester:s3cret"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut s = TcpStream::connect(&serve.addr).unwrap();
    write!(s, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
}

#[test]
fn upstream_faults_are_survived() {
    let reg = Registry::plain("serve-faults");
    reg.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);
    let faults = Faults {
        unavailable_every: Some(3),
        too_many_every: Some(7),
        ..Faults::default()
    };
    let proxy = Proxy::start(&reg.addr, faults);
    let serve = Serve::start(
        "faults",
        &["--upstream", &format!("up=http://{}", proxy.addr)],
    );
    let dir = scratch("serve-faults");
    for i in 0..3 {
        let out = skopeo_pull(&serve, "up/fix/busybox:1", &dir.join(i.to_string()), PLAIN);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            serve.log()
        );
    }
    assert!(proxy.stats.faults.load(std::sync::atomic::Ordering::SeqCst) > 0);

    // A response cut in the middle: the blob stream fails, the client's
    // retry gets it whole.
    let cuts = Proxy::start(
        &reg.addr,
        Faults {
            cut_response_every: Some(4),
            ..Faults::default()
        },
    );
    let serve = Serve::start("cuts", &["--upstream", &format!("up=http://{}", cuts.addr)]);
    let out = skopeo_pull(
        &serve,
        "up/fix/busybox:1",
        &dir.join("cut"),
        &["--tls-verify=false"],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        serve.log()
    );
}

#[test]
fn fifty_pulls_at_once_with_bounded_memory() {
    let reg = Registry::plain("serve-load");
    for tag in ["busybox", "echo", "scratch"] {
        reg.push(&fixtures().oci(tag), &format!("fix/{tag}:1"), &[]);
    }
    let serve = Serve::start("load", &["--upstream", &format!("up=http://{}", reg.addr)]);
    let dir = scratch("serve-load");
    let children: Vec<_> = (0..50)
        .map(|i| {
            let tag = ["busybox", "echo", "scratch"][i % 3];
            cmd(
                "skopeo",
                &[
                    "copy",
                    "-q",
                    "--src-tls-verify=false",
                    &format!("docker://{}/up/fix/{tag}:1", serve.addr),
                    &format!("oci:{}:{tag}", dir.join(i.to_string()).display()),
                ],
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Concurrent cold pulls of one tag share one hardening.
    assert_eq!(serve.metric("harden_serve_hardened_total"), 3);
    let peak = serve.peak_kib();
    eprintln!("serve's peak memory after 50 pulls: {peak} KiB");
    assert!(peak < 128 * 1024, "serve's peak memory: {peak} KiB");
}

#[test]
fn a_client_that_leaves_mid_blob_stops_the_upstream_stream() {
    let layout = scratch("serve-big").join("layout");
    write_big_layout(&layout, 64 << 20, "big");
    let reg = Registry::plain("serve-big");
    reg.push(&format!("oci:{}:big", layout.display()), "fix/big:1", &[]);
    let proxy = Proxy::start(&reg.addr, Faults::default());
    let serve = Serve::start("big", &["--upstream", &format!("up=http://{}", proxy.addr)]);
    let (status, manifest) = serve.get("GET", "/v2/up/fix/big/manifests/1");
    assert_eq!(status, 200, "{manifest}");
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    let layer = &manifest["layers"][0];
    let size = layer["size"].as_u64().unwrap();
    assert!(size > 60 << 20);
    // HEAD says the size; a resumed download (Range: bytes=N-) gets the
    // upstream's 206 and the bytes from N on, as the registry itself sends them.
    let path = format!("/v2/up/fix/big/blobs/{}", layer["digest"].as_str().unwrap());
    let head = request(&serve.addr, &format!("HEAD {path}"), "");
    assert!(head.0.starts_with("HTTP/1.1 200"), "{}", head.0);
    assert!(
        head.0
            .to_lowercase()
            .contains(&format!("content-length: {size}\r\n")),
        "{}",
        head.0
    );
    let range = format!("Range: bytes={}-\r\n", size - 100);
    let through = request(&serve.addr, &format!("GET {path}"), &range);
    let direct = request(
        &reg.addr,
        &format!(
            "GET /v2/fix/big/blobs/{}",
            layer["digest"].as_str().unwrap()
        ),
        &range,
    );
    assert!(through.0.starts_with("HTTP/1.1 206"), "{}", through.0);
    assert!(
        through.0.to_lowercase().contains(&format!(
            "content-range: bytes {}-{}/{size}",
            size - 100,
            size - 1
        )),
        "{}",
        through.0
    );
    assert_eq!(through.1.len(), 100);
    assert_eq!(through.1, direct.1);
    proxy.reset();

    let mut s = TcpStream::connect(&serve.addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = vec![0u8; 1 << 20];
    s.read_exact(&mut got).unwrap();
    drop(s);
    // serve sees the client go and drops the upstream response.
    let deadline = Instant::now() + Duration::from_secs(10);
    while serve.metric("harden_serve_responses_cut_total") == 0 {
        assert!(Instant::now() < deadline, "{}", serve.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let passed = proxy.bytes();
    assert!(
        passed < size / 2,
        "{passed} of {size} bytes came from upstream"
    );
    assert!(serve.log().contains("(client left)"), "{}", serve.log());
    assert_eq!(serve.get("GET", "/healthz").0, 200);
}

#[test]
fn the_docker_engine_pulls_through_serve_as_its_registry_mirror() {
    // An upstream named docker.io that is the local registry: the engine
    // asks its mirror for docker.io images only, as /v2/library/NAME/….
    let reg = Registry::plain("serve-mirror");
    reg.push(
        &fixtures().oci("busybox"),
        "library/hardened-fixture:1",
        &[],
    );
    let serve = Serve::start(
        "mirror",
        &[
            "--upstream",
            &format!("docker.io=http://{}", reg.addr),
            "--mirror-of",
            "docker.io",
        ],
    );
    // dockerd's classic store, and the containerd image store (Docker 29's
    // default), which pulls through containerd's resolver.
    let mirror = ["--registry-mirror".into(), format!("http://{}", serve.addr)];
    for docker in [
        Docker::start_with("dk-mirror", &mirror),
        Docker::start_containerd_store("dk-mirror-ctrd", &mirror),
    ] {
        let seen = serve.log().len();
        sh(docker.command().args(["pull", "-q", "hardened-fixture:1"]));
        let id = docker.run_ok(&[], "hardened-fixture:1", &["id"]);
        assert!(id.contains("uid=1000(app)"), "{id}");
        // containerd's resolver adds `?ns=docker.io`.
        let log = serve.log()[seen..].to_string();
        let asked = |l: &str| l.contains("HEAD /v2/library/hardened-fixture/manifests/1");
        assert!(
            log.lines().any(|l| asked(l) && l.contains(" 200 ")),
            "{log}"
        );
    }
    // The mirror and the prefixed name give one digest.
    let (_, by_prefix) = serve.get("GET", "/v2/docker.io/library/hardened-fixture/manifests/1");
    let (_, by_mirror) = serve.get("GET", "/v2/library/hardened-fixture/manifests/1");
    assert_eq!(by_prefix, by_mirror);
}

#[test]
fn containerd_pulls_through_serve_with_a_hosts_toml() {
    // kubelet's runtime: a hosts.toml for docker.io whose host is serve,
    // `override_path` because serve's API root is /v2/docker.io. There is no
    // network beyond loopback: the pull can only succeed through serve.
    which("containerd");
    which("ctr");
    let reg = Registry::plain("serve-containerd");
    // Cmd `/busybox id`: `ctr run IMAGE ID ARGS` would replace the whole
    // command line, step-down included (as `docker run --entrypoint`).
    reg.push(
        &fixtures().oci("scratch"),
        "library/hardened-fixture:1",
        &[],
    );
    let serve = Serve::start(
        "containerd",
        &["--upstream", &format!("docker.io=http://{}", reg.addr)],
    );
    let dir = scratch("serve-ctrd");
    let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n",
            d("root"),
            d("state"),
            d("c.sock")
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("hosts/docker.io")).unwrap();
    std::fs::write(
        dir.join("hosts/docker.io/hosts.toml"),
        format!(
            "server = \"https://registry-1.docker.io\"\n\
             [host.\"http://{}/v2/docker.io\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n",
            serve.addr
        ),
    )
    .unwrap();
    struct Daemon(Child);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _containerd = Daemon(
        Command::new("containerd")
            .args(["--config", &d("config.toml")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let ctr = |args: &[&str]| {
        let mut c = cmd("ctr", &["--address", &d("c.sock"), "-n", "harden"]);
        c.args(args);
        c
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ctr(&["version"]).output().unwrap().status.success() {
        assert!(Instant::now() < deadline, "containerd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let image = "docker.io/library/hardened-fixture:1";
    let hosts = d("hosts");
    sh(ctr(&[
        "images",
        "pull",
        "--snapshotter",
        "native",
        "--hosts-dir",
        &hosts,
        image,
    ]));
    let listed = sh(ctr(&["images", "ls"]));
    let (_, served) = serve.get("GET", "/v2/docker.io/library/hardened-fixture/manifests/1");
    let served = {
        use sha2::{Digest, Sha256};
        format!("sha256:{}", hex::encode(Sha256::digest(served.as_bytes())))
    };
    assert!(
        listed.contains(&served),
        "{listed}\nserve's digest {served}"
    );
    let id = sh(ctr(&[
        "run",
        "--snapshotter",
        "native",
        "--rm",
        image,
        // runc's state lives in /run, beyond this test's directory.
        &format!("harden-serve-{}", std::process::id()),
    ]));
    assert!(id.contains("uid=1000(app) gid=1000(app)"), "{id}");
}

#[test]
fn a_manifest_whose_base_layer_is_gone_upstream_is_not_served() {
    let reg = Registry::plain("serve-gone");
    reg.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);
    let raw = reg.inspect("fix/busybox:1", true).unwrap();
    let manifest: Value = serde_json::from_str(&raw).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // The registry's delete API (enabled in its config) takes the blob away.
    let (answer, _) = request(
        &reg.addr,
        &format!("DELETE /v2/fix/busybox/blobs/{layer}"),
        "",
    );
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    let serve = Serve::start("gone", &["--upstream", &format!("up=http://{}", reg.addr)]);
    let (status, body) = serve.get("GET", "/v2/up/fix/busybox/manifests/1");
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("BLOB_UNKNOWN") && body.contains(&layer),
        "{body}"
    );
    // Nothing was kept: asking again checks again.
    assert_eq!(serve.get("GET", "/v2/up/fix/busybox/manifests/1").0, 502);
    assert_eq!(serve.metric("harden_serve_cache_entries"), 0);
}

#[test]
fn a_client_that_leaves_during_a_cold_hardening_is_logged_and_let_go() {
    let reg = Registry::plain("serve-slow");
    reg.push(&fixtures().oci("busybox"), "fix/busybox:1", &[]);
    // 1 KiB/s: the manifest and config take seconds to come.
    let slow = Proxy::start(
        &reg.addr,
        Faults {
            throttle: Some(1024),
            ..Faults::default()
        },
    );
    let serve = Serve::start("slow", &["--upstream", &format!("up=http://{}", slow.addr)]);
    let mut s = TcpStream::connect(&serve.addr).unwrap();
    write!(
        s,
        "GET /v2/up/fix/busybox/manifests/1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !serve
        .log()
        .contains("GET /v2/up/fix/busybox/manifests/1 499")
    {
        assert!(Instant::now() < deadline, "{}", serve.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Only the metrics request itself is in flight.
    assert_eq!(serve.metric("harden_serve_in_flight_requests"), 1);
}
