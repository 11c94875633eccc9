//! A private Docker Engine (Debian's docker.io: dockerd 20.10, its own
//! containerd, runc) on a unix socket in a short temp dir, started as
//! ../shared/RECIPES.md shows, and stopped when dropped; or trixie's dockerd
//! 26 with the containerd image store (Docker 29's default), which
//! `scripts/install-deps test` unpacks into NEWER_DOCKERD.

use super::{cmd, sh, text, which};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/install-deps test` unpacks trixie's docker.io and containerd.
pub const NEWER_DOCKERD: &str = "/var/cache/harden-tests/dockerd-trixie";

pub struct Docker {
    dir: PathBuf,
    dockerd: Child,
}

impl Docker {
    pub fn start() -> Docker {
        Docker::start_named("dockerd")
    }

    /// An engine in a directory of its own (`name`), so that the tests of
    /// one binary can each have one at the same time.
    pub fn start_named(name: &str) -> Docker {
        Docker::start_with(name, &[])
    }

    /// An engine that also takes `extra` arguments (another `-H`, TLS).
    pub fn start_with(name: &str, extra: &[String]) -> Docker {
        Docker::spawn(name, extra, false)
    }

    /// Trixie's dockerd with the containerd image store, where an image ID is
    /// its manifest's (or index's) digest, not its config's. The docker CLI is
    /// still bookworm's (API 1.41, which dockerd 26 serves).
    pub fn start_containerd_store(name: &str, extra: &[String]) -> Docker {
        Docker::spawn(name, extra, true)
    }

    fn spawn(name: &str, extra: &[String], containerd_store: bool) -> Docker {
        which("docker");
        let mut dockerd = Command::new("dockerd");
        let (config, storage) = if containerd_store {
            let bin = Path::new(NEWER_DOCKERD).join("root/usr");
            assert!(
                bin.join("sbin/dockerd").exists(),
                "no {}/sbin/dockerd: `scripts/install-deps test` (make test) unpacks it",
                bin.display()
            );
            // Its containerd (1.7; bookworm's 1.6 is too old) and docker-init.
            let path = format!(
                "{}:{}:{}",
                bin.join("sbin").display(),
                bin.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            );
            dockerd = Command::new(bin.join("sbin/dockerd"));
            dockerd.env("PATH", path);
            // containerd has no vfs snapshotter: native is its copying one.
            (
                r#"{"features": {"containerd-snapshotter": true}}"#,
                "native",
            )
        } else {
            which("dockerd");
            ("{}", "vfs")
        };
        // Its sockets' paths must stay short (sun_path is 108 bytes): dockerd's
        // own, and containerd's below exec/.
        let dir = super::scratch(name);
        assert!(
            dir.as_os_str().len() < 70,
            "{}: too long a path for dockerd's sockets (set a shorter TMPDIR)",
            dir.display()
        );
        std::fs::write(dir.join("daemon.json"), config).unwrap();
        let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let dockerd = dockerd
            .args([
                "--config-file",
                &d("daemon.json"),
                "--data-root",
                &d("data"),
            ])
            .args(["--exec-root", &d("exec"), "--pidfile", &d("d.pid")])
            .args(["-H", &format!("unix://{}", d("docker.sock"))])
            .args([
                "--storage-driver",
                storage,
                "--iptables=false",
                "--ip6tables=false",
            ])
            .arg("--bridge=none")
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start dockerd");
        let docker = Docker { dir, dockerd };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !docker
            .command()
            .arg("version")
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "dockerd did not start: {}",
                std::fs::read_to_string(docker.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        docker
    }

    /// DOCKER_HOST for this engine.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// `docker` talking to this engine.
    pub fn command(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", self.host());
        c
    }

    /// `docker build -t TAG` of a FROM-scratch busybox image (the static
    /// binary and its applets in /bin, PATH=/bin) with `rest` of the
    /// Dockerfile after that, in `dir/context`.
    pub fn build_busybox(&self, tag: &str, dir: &Path, rest: &str) {
        let context = dir.join("context");
        std::fs::create_dir_all(&context).unwrap();
        std::fs::copy(super::which("busybox"), context.join("busybox")).unwrap();
        let head = "FROM scratch\n\
                    COPY busybox /bin/busybox\n\
                    RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
                    ENV PATH=/bin\n";
        std::fs::write(context.join("Dockerfile"), format!("{head}{rest}")).unwrap();
        self.build(tag, &context);
    }

    /// `docker build -t TAG` of `context` (the classic builder, which
    /// dockerd 20.10 has without buildx: it writes the legacy container_config).
    pub fn build(&self, tag: &str, context: &Path) {
        sh(self.command().env("DOCKER_BUILDKIT", "0").args([
            "build",
            "-q",
            "-t",
            tag,
            context.to_str().unwrap(),
        ]));
    }

    /// `docker run -d` of `image` running `sleep 60`, as a container named
    /// for `what` that is removed when the guard is dropped.
    pub fn sleeping(&self, what: &str, image: &str) -> Container<'_> {
        let name = format!("harden-{what}-{}", std::process::id());
        sh(self
            .command()
            .args(["run", "-d", "--network", "none", "--name", &name, image])
            .args(["sleep", "60"]));
        Container { docker: self, name }
    }

    /// `docker run --rm --network none` with `options`, the image and `args`.
    pub fn run(&self, options: &[&str], image: &str, args: &[&str]) -> Output {
        let mut c = self.command();
        c.args(["run", "--rm", "--network", "none"]).args(options);
        c.arg(image).args(args);
        c.output().expect("run docker")
    }

    /// Like `run`, but the container must succeed; returns its stdout.
    pub fn run_ok(&self, options: &[&str], image: &str, args: &[&str]) -> String {
        let out = self.run(options, image, args);
        let (o, e) = text(&out);
        assert!(
            out.status.success(),
            "docker run {options:?} {image} {args:?} failed ({}):\n{o}\n{e}",
            out.status
        );
        o
    }
}

/// A running container of `Docker::sleeping`.
pub struct Container<'a> {
    docker: &'a Docker,
    name: String,
}

impl Container<'_> {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self
            .docker
            .command()
            .args(["rm", "-f", &self.name])
            .output();
    }
}

impl Drop for Docker {
    /// SIGTERM, as systemd stops it: dockerd stops its containers and its
    /// containerd, and unmounts what it mounted.
    fn drop(&mut self) {
        let _ = cmd("kill", &[&self.dockerd.id().to_string()]).output();
        let _ = self.dockerd.wait();
    }
}
