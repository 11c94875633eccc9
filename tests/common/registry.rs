//! A real CNCF distribution registry (Debian's `docker-registry`) on
//! 127.0.0.1, optionally with htpasswd auth and TLS from a CA of its own.

use super::{cmd, scratch, sh, which};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub dir: PathBuf,
    /// The CA that signed the server certificate (TLS registries).
    pub ca: Option<PathBuf>,
    pub creds: Option<(String, String)>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn plain(name: &str) -> Registry {
        Registry::start(name, false, None)
    }

    /// htpasswd auth (user `tester`, password `s3cret`) and TLS.
    pub fn secured(name: &str) -> Registry {
        Registry::start(name, true, None)
    }

    /// TLS with a self-signed certificate made as Docker's documentation
    /// shows (`openssl req -x509 ... -addext subjectAltName=IP:127.0.0.1`,
    /// which says CA:TRUE); `certs/ca.crt` is that certificate. No auth.
    pub fn self_signed(name: &str) -> Registry {
        let dir = scratch(&format!("registry-{name}"));
        let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
        self_signed_cert(&dir.join("domain.key"), &dir.join("domain.crt"));
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        std::fs::copy(dir.join("domain.crt"), dir.join("certs/ca.crt")).unwrap();
        let tls = format!(
            ", tls: {{certificate: {}, key: {}}}",
            d("domain.crt"),
            d("domain.key")
        );
        let ca = Some(dir.join("domain.crt"));
        Registry::launch(dir, &tls, "", ca, None)
    }

    /// Plain HTTP with bearer-token auth from `tokens` (as Docker Hub, GHCR, ...).
    pub fn with_tokens(name: &str, tokens: &super::token::TokenServer) -> Registry {
        Registry::start(name, false, Some(tokens))
    }

    fn start(name: &str, secured: bool, tokens: Option<&super::token::TokenServer>) -> Registry {
        let dir = scratch(&format!("registry-{name}"));
        let (mut tls, mut auth, mut ca, mut creds) = (String::new(), String::new(), None, None);
        if secured {
            let d = dir.to_str().unwrap();
            let htpasswd = sh(cmd("htpasswd", &["-Bbn", "tester", "s3cret"]));
            std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();
            make_certs(&dir);
            tls = format!(", tls: {{certificate: {d}/server.crt, key: {d}/server.key}}");
            auth = format!(
                "auth: {{htpasswd: {{realm: harden-test, path: {}}}}}\n",
                dir.join("htpasswd").display()
            );
            ca = Some(dir.join("ca.crt"));
            creds = Some(("tester".to_string(), "s3cret".to_string()));
        }
        if let Some(t) = tokens {
            auth = format!(
                "auth: {{token: {{realm: {}, service: {}, issuer: {}, rootcertbundle: {}}}}}\n",
                t.realm(),
                super::token::SERVICE,
                super::token::ISSUER,
                t.cert.display()
            );
            creds = Some(("tester".to_string(), "s3cret".to_string()));
        }
        Registry::launch(dir, &tls, &auth, ca, creds)
    }

    /// Starts the registry in `dir` with the `tls` part of its http section
    /// and the `auth` section.
    fn launch(
        dir: PathBuf,
        tls: &str,
        auth: &str,
        ca: Option<PathBuf>,
        creds: Option<(String, String)>,
    ) -> Registry {
        which("docker-registry");
        let addr = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\n\
             storage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n\
             http: {{addr: {addr}{tls}}}\n{auth}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.join("config.yml").to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start: {}",
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            addr,
            dir,
            ca,
            creds,
        }
    }

    /// skopeo's flags to reach this registry.
    pub fn skopeo_flags(&self, side: &str) -> Vec<String> {
        let mut f = Vec::new();
        match &self.ca {
            None => f.push(format!("--{side}tls-verify=false")),
            Some(ca) => f.push(format!(
                "--{side}cert-dir={}",
                ca.parent().unwrap().join("certs").display()
            )),
        }
        if let Some((u, p)) = &self.creds {
            f.push(format!("--{side}creds={u}:{p}"));
        }
        f
    }

    /// Copies `src` (any skopeo reference) to `repo:tag` here, with skopeo.
    pub fn push(&self, src: &str, repo_tag: &str, extra: &[&str]) -> String {
        let dest = format!("docker://{}/{repo_tag}", self.addr);
        let mut c = Command::new("skopeo");
        c.args(["copy", "-q"])
            .args(self.skopeo_flags("dest-"))
            .args(extra)
            .args([src, &dest]);
        sh(c);
        format!("{}/{repo_tag}", self.addr)
    }

    /// `skopeo inspect` (with `--raw` when `raw`) of `repo:tag` here.
    pub fn inspect(&self, repo_tag: &str, raw: bool) -> Result<String, String> {
        let mut c = Command::new("skopeo");
        c.arg("inspect").args(self.skopeo_flags(""));
        if raw {
            c.arg("--raw");
        }
        c.arg(format!("docker://{}/{repo_tag}", self.addr));
        let out = c.output().expect("run skopeo");
        let (o, e) = super::text(&out);
        if out.status.success() {
            Ok(o)
        } else {
            Err(e)
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for IP 127.0.0.1 as Docker's documentation
/// makes one (`openssl req -x509 -addext subjectAltName=...`: CA:TRUE).
pub fn self_signed_cert(key: &std::path::Path, crt: &std::path::Path) {
    sh(cmd(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-keyout",
            key.to_str().unwrap(),
            "-addext",
            "subjectAltName = IP:127.0.0.1",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-out",
            crt.to_str().unwrap(),
        ],
    ));
}

/// A CA, and a server certificate for IP 127.0.0.1 signed by it; `certs/`
/// holds the CA as `ca.crt` (the certs.d layout).
pub fn make_certs(dir: &std::path::Path) {
    let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut c = cmd(
        "openssl",
        &["req", "-x509", "-days", "2", "-subj", "/CN=harden test CA"],
    );
    c.args(ec)
        .args(["-keyout", &d("ca.key"), "-out", &d("ca.crt")]);
    sh(c);
    signed_by_ca(
        dir,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    );
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::copy(dir.join("ca.crt"), dir.join("certs/ca.crt")).unwrap();
}

/// A client certificate (`client.crt`, `client.key`) signed by the CA of
/// `make_certs` in `dir`, for servers that verify their clients.
pub fn client_cert(dir: &std::path::Path) {
    signed_by_ca(
        dir,
        "client",
        "/CN=harden test client",
        "extendedKeyUsage=clientAuth\n",
    );
}

/// `NAME.key` and `NAME.crt` for `subject` with the extensions `ext`,
/// signed by the CA of `make_certs` in `dir`.
fn signed_by_ca(dir: &std::path::Path, name: &str, subject: &str, ext: &str) {
    let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let (key, csr, crt, extfile) = (
        d(&format!("{name}.key")),
        d(&format!("{name}.csr")),
        d(&format!("{name}.crt")),
        d(&format!("{name}.ext")),
    );
    sh(cmd(
        "openssl",
        &[
            "req",
            "-subj",
            subject,
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    ));
    std::fs::write(&extfile, ext).unwrap();
    sh(cmd(
        "openssl",
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            &d("ca.crt"),
            "-CAkey",
            &d("ca.key"),
            "-CAcreateserial",
            "-extfile",
            &extfile,
            "-out",
            &crt,
        ],
    ));
}
