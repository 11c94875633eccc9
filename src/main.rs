//! harden: make an existing container image run as a non-root user.

mod digest;
mod image;
mod inspect;
mod layer;
mod platform;
mod progress;
mod registry;
mod rewrite;
mod rootfs;
mod sink;
mod source;
mod store;
mod transport;

/// The step-down's own ID and name checks, shared so that harden refuses at
/// rewrite time exactly what the step-down would refuse at run time.
#[path = "../stepdown/src/accounts.rs"]
#[allow(dead_code)]
mod accounts;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use image::{Content, Image, Index, IndexEntry};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use transport::ImageRef;

/// The step-down binaries harden puts into images, built by build.rs.
const STEPDOWN_AMD64: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/harden-stepdown-amd64"));
/// Empty when the build had no arm64 toolchain (see build.rs).
const STEPDOWN_ARM64: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/harden-stepdown-arm64"));
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Parser)]
#[command(
    name = "harden",
    version,
    about = "Make existing container images run as a non-root user, without a Dockerfile or a Docker daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log every registry request and retry to stderr (also RUST_LOG=debug)
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Harden SOURCE and write the result to DEST (any transport to any transport)
    #[command(after_help = "\
Transports (skopeo's syntax):
  docker://REF                             an image in a registry (docker.io/library/alpine:3.20)
  docker-archive:PATH[:NAME:TAG|:@INDEX]   docker save / podman save format
  oci:DIR[:TAG]                            OCI image layout directory
  oci-archive:PATH[:TAG]                   OCI image layout in a tar file

Examples:
  harden rewrite docker-archive:app.tar docker-archive:app-h.tar
  harden rewrite docker://registry.example.com/app:1.2 docker-archive:app-h.tar
  harden rewrite docker-archive:aws.tar docker-archive:aws-h.tar \\
      --user aws --uid-env AWS_UID --gid-env AWS_GID --match-owner /home/aws/.aws
  harden rewrite oci:layout:v1 oci:layout:v1-hardened")]
    Rewrite {
        /// Image to read (never modified)
        source: String,
        /// Where to write the hardened image
        dest: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Harden a registry image and push it: rewrite docker://SOURCE docker://DEST
    #[command(after_help = "\
DEST defaults to SOURCE's repository with the tag TAG-hardened. In one registry
only the new layer, the new config and the manifest are uploaded; base layers
are neither downloaded nor uploaded (they are mounted across repositories).

Examples:
  harden pull-rewrite-push registry.example.com/app:1.2
  harden pull-rewrite-push registry.example.com/app:1.2 registry.example.com/app:1.2-nonroot \\
      --user app --uid-env APP_UID --json")]
    PullRewritePush {
        /// Registry image to read, e.g. registry.example.com/app:1.2 or app@sha256:...
        #[arg(required_unless_present = "from")]
        source: Option<String>,
        /// Registry reference to push to (default: SOURCE's repository, tag TAG-hardened)
        dest: Option<String>,
        /// Harden many images: a file (- for stdin) with one `SOURCE [DEST]` per line
        #[arg(long, value_name = "FILE", conflicts_with_all = ["source", "dest"])]
        from: Option<PathBuf>,
        /// Images hardened at once with --from (connections and tokens are shared)
        #[arg(short, long, value_name = "N", default_value_t = 4)]
        jobs: usize,
        /// With --from, take only lines K, K+N, K+2N, ... (0-based), to spread one
        /// list over N workers (a Kubernetes indexed Job: --shard $(JOB_COMPLETION_INDEX)/N)
        #[arg(long, value_name = "K/N", requires = "from")]
        shard: Option<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Show what an image runs, as whom, and whether harden hardened it
    #[command(
        after_help = "Examples:\n  harden inspect docker-archive:app-h.tar\n  harden inspect docker://registry.example.com/app:1.2-hardened --json\n  harden inspect docker://registry.example.com/app:1.2 docker://registry.example.com/app:1.2-hardened"
    )]
    Inspect {
        image: String,
        /// A second image: show what differs from IMAGE (e.g. the hardened one)
        other: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Pipeline gate: exit 0 when the image would not run its command as root, 1 when it would
    #[command(after_help = "\
Prints one line: PASS or FAIL, the image, and the reason. Errors (unreadable image,
registry refusal) exit with the usual codes: 1, 3 (authentication), 4 (not found).

Examples:
  harden check docker://registry.example.com/app:1.2-hardened
  harden check --require static oci-archive:app.tar --json")]
    Check {
        image: String,
        /// any: hardened by harden or a non-root User; static: kubelet's runAsNonRoot rule
        /// (numeric, non-zero User)
        #[arg(long, value_enum, default_value_t = inspect::Require::Any)]
        require: inspect::Require,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "Example:\n  harden completions bash > /etc/bash_completion.d/harden")]
    Completions { shell: clap_complete::Shell },
    /// Write man pages (harden.1 and one per command) into DIR
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Write the embedded step-down binary (for your own Dockerfiles)
    #[command(after_help = "Example:\n  harden stepdown-binary --arch amd64 -o harden-stepdown")]
    StepdownBinary {
        #[arg(long, default_value = "amd64")]
        arch: String,
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// What rewrite and pull-rewrite-push share.
#[derive(Args)]
struct CommonArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    platforms: PlatformArgs,
    /// Print the result as one JSON object on stdout
    #[arg(long)]
    json: bool,
    /// Print nothing but errors
    #[arg(short, long)]
    quiet: bool,
    /// Show the config changes (before → after) and what would be written; write nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
#[command(next_help_heading = "Platform options (multi-platform indexes)")]
struct PlatformArgs {
    /// Harden only this platform (OS/ARCH[/VARIANT], repeatable); the others are left out
    #[arg(long, value_name = "OS/ARCH")]
    platform: Vec<String>,
    /// Leave out platforms harden has no step-down binary for, with a warning
    #[arg(long)]
    skip_unsupported: bool,
}

#[derive(Args)]
#[command(next_help_heading = "Registry options")]
struct RegistryArgs {
    /// Credentials for the registries (default: auth.json, then docker's config.json)
    #[arg(long, value_name = "USER:PASSWORD")]
    creds: Option<String>,
    /// Credentials for the source registry
    #[arg(long, value_name = "USER:PASSWORD")]
    src_creds: Option<String>,
    /// Credentials for the destination registry
    #[arg(long, value_name = "USER:PASSWORD")]
    dest_creds: Option<String>,
    /// Verify TLS certificates; false also allows plain HTTP (as skopeo)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// --tls-verify for the source registry only
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    src_tls_verify: Option<bool>,
    /// --tls-verify for the destination registry only
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    dest_tls_verify: Option<bool>,
    /// More CA certificates (*.crt) and a client certificate (*.cert + *.key), besides
    /// /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// Talk plain HTTP to the registries
    #[arg(long)]
    plain_http: bool,
}

impl RegistryArgs {
    fn access(
        &self,
        creds: &Option<String>,
        creds_flag: &str,
        tls_verify: Option<bool>,
    ) -> Result<registry::Access> {
        let credential = match creds.as_ref().or(self.creds.as_ref()) {
            Some(c) => Some(registry::Credential::parse(c, creds_flag)?),
            None => None,
        };
        Ok(registry::Access {
            tls_verify: tls_verify.or(self.tls_verify).unwrap_or(true),
            plain_http: self.plain_http,
            cert_dir: self.cert_dir.clone(),
            credential,
        })
    }

    /// The registries of a run whose destinations are `dests`.
    fn registries(&self, dests: &[&ImageRef]) -> Result<registry::Registries> {
        let source = self.access(&self.src_creds, "--src-creds", self.src_tls_verify)?;
        let dest = self.access(&self.dest_creds, "--dest-creds", self.dest_tls_verify)?;
        let dests: Vec<_> = dests
            .iter()
            .filter_map(|d| match d {
                ImageRef::Docker(r) => Some(r),
                _ => None,
            })
            .collect();
        registry::Registries::new(source, dest, &dests)
    }
}

#[derive(Args, Clone)]
struct SettingsArgs {
    /// Name of the user (default: app; the image's own non-root User when it has one)
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Default UID (default: the user's UID in the image, else 1000)
    #[arg(long, value_name = "N")]
    uid: Option<String>,
    /// Default GID (default: the UID)
    #[arg(long, value_name = "N")]
    gid: Option<String>,
    /// Home directory (default: /home/NAME)
    #[arg(long, value_name = "DIR")]
    home: Option<String>,
    /// Variable that sets the UID at run time (default: HARDEN_UID)
    #[arg(long, value_name = "NAME")]
    uid_env: Option<String>,
    /// Variable that sets the GID at run time (default: HARDEN_GID)
    #[arg(long, value_name = "NAME")]
    gid_env: Option<String>,
    /// Run as the owner of this path when it exists and is not root (e.g. a bind mount)
    #[arg(long, value_name = "PATH")]
    match_owner: Option<String>,
    /// Do not set no_new_privs (lets setuid programs such as sudo work)
    #[arg(long)]
    allow_new_privs: bool,
    /// runtime: start as root and step down at run time; static: the image runs as the
    /// numeric non-root user (Kubernetes runAsNonRoot, restricted profile)
    #[arg(long, value_enum, default_value_t = ModeArg::Runtime)]
    mode: ModeArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Runtime,
    Static,
}

impl SettingsArgs {
    /// Checks every value here, so that a bad one fails the rewrite rather than the container.
    fn validate(self) -> Result<rewrite::Settings> {
        let id = |flag: &str, v: Option<String>| -> Result<Option<u32>> {
            v.map(|v| match accounts::parse_id(&v) {
                Ok(0) => bail!("{flag} 0 is root: harden exists to not run as root"),
                Ok(n) => Ok(n),
                Err(e) => bail!("{flag}: {e}"),
            })
            .transpose()
        };
        let env_name = |flag: &str, v: Option<String>| -> Result<Option<String>> {
            if let Some(n) = &v {
                let ok = !n.is_empty()
                    && !n.starts_with(|c: char| c.is_ascii_digit())
                    && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !ok {
                    bail!("{flag} {n:?} is not a valid environment variable name");
                }
            }
            Ok(v)
        };
        if let Some(u) = &self.user {
            if !accounts::valid_name(u) {
                bail!("--user {u:?} is not a valid user name (letters, digits, . _ -; at most 32)");
            }
        }
        for (flag, path) in [("--home", &self.home), ("--match-owner", &self.match_owner)] {
            if let Some(p) = path {
                if !accounts::valid_home(p) {
                    bail!("{flag} {p:?} must be an absolute path without ':'");
                }
            }
        }
        Ok(rewrite::Settings {
            uid: id("--uid", self.uid)?,
            gid: id("--gid", self.gid)?,
            uid_env: env_name("--uid-env", self.uid_env)?,
            gid_env: env_name("--gid-env", self.gid_env)?,
            user: self.user,
            home: self.home,
            match_owner: self.match_owner,
            allow_new_privs: self.allow_new_privs,
            mode: match self.mode {
                ModeArg::Runtime => rewrite::Mode::Runtime,
                ModeArg::Static => rewrite::Mode::Static,
            },
        })
    }
}

/// Exit codes (also in the README): 0 done, 1 failed, 2 usage error (clap),
/// 3 the registry refused the credentials or denied access, 4 not found.
fn main() {
    let cli = Cli::parse();
    progress::set_verbose(cli.verbose);
    if let Err(e) = run(cli) {
        eprintln!("harden: error: {e:#}");
        let is = |f: &dyn Fn(&(dyn std::error::Error + 'static)) -> bool| e.chain().any(f);
        let code = if is(&|c| c.is::<registry::AuthError>()) {
            3
        } else if is(&|c| c.is::<registry::NotFound>()) {
            4
        } else {
            1
        };
        std::process::exit(code);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Rewrite {
            source,
            dest,
            common,
        } => rewrite(ImageRef::parse(&source)?, ImageRef::parse(&dest)?, common),
        Command::PullRewritePush {
            source,
            dest,
            from: None,
            common,
            ..
        } => {
            let pair = registry_pair(source.as_deref().unwrap_or_default(), dest.as_deref())?;
            rewrite(pair.0, pair.1, common)
        }
        Command::PullRewritePush {
            from: Some(file),
            jobs,
            shard,
            common,
            ..
        } => batch(&file, jobs, shard.as_deref(), common),
        Command::Inspect {
            image,
            other: Some(other),
            json,
            registry,
        } => {
            let registries = registry.registries(&[])?;
            let before = source::read(&ImageRef::parse(&image)?, &registries)?;
            let after = source::read(&ImageRef::parse(&other)?, &registries)?;
            let (before, after) = (platform_images(&before), platform_images(&after));
            let mut described = Vec::new();
            for (platform, b) in &before {
                // Pair by platform; two single images pair with each other.
                let Some((_, a)) = after.iter().find(|(p, _)| match (p, platform) {
                    (Some(p), Some(q)) => p.matches(q),
                    _ => after.len() == 1,
                }) else {
                    continue;
                };
                let name = platform
                    .as_ref()
                    .map_or("image".to_string(), |p| p.to_string());
                if json {
                    described.push(serde_json::json!({
                        "platform": name,
                        "before": inspect::describe(b)?,
                        "after": inspect::describe(a)?,
                    }));
                } else {
                    println!("== {name}: {image} → {other} ==");
                    print!("{}", inspect::diff(b, a)?);
                }
            }
            if json {
                println!("{}", Value::from(described));
            }
            Ok(())
        }
        Command::Inspect {
            image,
            other: None,
            json,
            registry,
        } => {
            let content = source::read(&ImageRef::parse(&image)?, &registry.registries(&[])?)?;
            let mut described = Vec::new();
            for (platform, image) in platform_images(&content) {
                let mut d = inspect::describe(image)?;
                d["platform"] = platform.map(|p| p.to_string()).into();
                described.push(d);
            }
            match (&content, json) {
                (Content::Image(_), true) => println!("{}", described[0]),
                (Content::Image(_), false) => print!("{}", inspect::human(&described[0])),
                (Content::Index(x), true) => println!(
                    "{}",
                    serde_json::json!({
                        "index_digest": x.digest.as_ref().map(|d| d.as_str()),
                        "platforms": described,
                        "skipped": x.skipped,
                    })
                ),
                (Content::Index(x), false) => {
                    for d in &described {
                        println!("== {} ==", d["platform"].as_str().unwrap_or("?"));
                        print!("{}", inspect::human(d));
                    }
                    for skipped in &x.skipped {
                        println!(
                            "== {} {}: {} ==",
                            skipped.platform, skipped.digest, skipped.reason
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Check {
            image,
            require,
            json,
            registry,
        } => {
            let src = ImageRef::parse(&image)?;
            let content = source::read(&src, &registry.registries(&[])?)?;
            let mut results = Vec::new();
            for (platform, image) in platform_images(&content) {
                let d = inspect::describe(image)?;
                let verdict = inspect::check(&d, require, |name| {
                    let passwd = rootfs::read_files(image, &["etc/passwd"])?.remove(0);
                    let passwd = passwd.map(|f| String::from_utf8_lossy(&f.content).into_owned());
                    let passwd = passwd.unwrap_or_default();
                    let uid = accounts::users(&passwd)
                        .find(|u| u.name == name)
                        .map(|u| u.uid);
                    Ok(uid)
                })?;
                results.push((platform, d, verdict));
            }
            let pass = results.iter().all(|(_, _, v)| v.pass);
            // One line: the first failing platform's reason, else the first reason.
            let (platform, _, shown) = results
                .iter()
                .find(|(_, _, v)| !v.pass)
                .unwrap_or(&results[0]);
            let reason = match (platform, results.len()) {
                (Some(p), n) if n > 1 && pass => {
                    format!("all {n} platforms; {p}: {}", shown.reason)
                }
                (Some(p), n) if n > 1 => format!("{p}: {}", shown.reason),
                _ => shown.reason.clone(),
            };
            if json {
                let platforms: Vec<Value> = results
                    .iter()
                    .map(|(p, d, v)| {
                        serde_json::json!({
                            "platform": p.as_ref().map(|p| p.to_string()),
                            "pass": v.pass,
                            "reason": v.reason,
                            "user": d["user"],
                            "hardened": d["hardened"],
                        })
                    })
                    .collect();
                let out = serde_json::json!({
                    "image": src.to_string(),
                    "pass": pass,
                    "require": format!("{require:?}").to_lowercase(),
                    "reason": reason,
                    "platforms": platforms,
                });
                println!("{out}");
            } else {
                let word = if pass { "PASS" } else { "FAIL" };
                println!("{word} {src}: {reason}");
            }
            if !pass {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "harden", &mut script);
            std::io::stdout().write_all(&script)?;
            Ok(())
        }
        Command::Man { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir)?;
            let cli = Cli::command();
            let mut pages = vec![("harden".to_string(), cli.clone())];
            for sub in cli.get_subcommands().filter(|c| !c.is_hide_set()) {
                let name = format!("harden-{}", sub.get_name());
                pages.push((name.clone(), sub.clone().name(name)));
            }
            for (name, command) in pages {
                let mut page = Vec::new();
                clap_mangen::Man::new(command).render(&mut page)?;
                write_file(&dir.join(format!("{name}.1")), &page, 0o644)?;
            }
            Ok(())
        }
        Command::StepdownBinary { arch, output } => {
            let arch = match arch.as_str() {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                a => a,
            };
            let bytes = stepdown_for(arch)?;
            write_file(&output, bytes, 0o755)
        }
    }
}

/// `pull-rewrite-push` arguments as registry references (DEST defaulted).
fn registry_pair(source: &str, dest: Option<&str>) -> Result<(ImageRef, ImageRef)> {
    let src = transport::parse_reference(source.trim_start_matches("docker://"))?;
    let dest = match dest {
        Some(d) => transport::parse_reference(d.trim_start_matches("docker://"))?,
        None => transport::default_destination(&src),
    };
    Ok((ImageRef::Docker(src), ImageRef::Docker(dest)))
}

/// What every image of a run shares: the validated options, the registry
/// clients (connections, tokens) and the progress output.
struct Run {
    settings: rewrite::Settings,
    wanted: Vec<platform::Platform>,
    skip_unsupported: bool,
    dry_run: bool,
    registries: registry::Registries,
    progress: progress::Progress,
}

impl Run {
    fn new(common: &CommonArgs, dests: &[&ImageRef]) -> Result<Run> {
        let wanted = common
            .platforms
            .platform
            .iter()
            .map(|p| platform::Platform::parse(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(Run {
            settings: common.settings.clone().validate()?,
            wanted,
            skip_unsupported: common.platforms.skip_unsupported,
            dry_run: common.dry_run,
            registries: common.registry.registries(dests)?,
            progress: progress::Progress::new(common.quiet),
        })
    }
}

fn rewrite(src: ImageRef, dst: ImageRef, common: CommonArgs) -> Result<()> {
    let run = Run::new(&common, &[&dst])?;
    if let Some(report) = harden_one(&run, &src, &dst)? {
        if common.json {
            println!("{report}");
        }
    }
    Ok(())
}

/// `pull-rewrite-push --from FILE`: `jobs` images at a time, one report
/// each (a JSON line with --json); fails when any image failed.
fn batch(
    file: &std::path::Path,
    jobs: usize,
    shard: Option<&str>,
    common: CommonArgs,
) -> Result<()> {
    let (k, n) = match shard {
        None => (0, 1),
        Some(s) => match s
            .split_once('/')
            .map(|(k, n)| (k.parse::<usize>(), n.parse::<usize>()))
        {
            Some((Ok(k), Ok(n))) if k < n => (k, n),
            _ => bail!("--shard {s:?} is not K/N with 0 <= K < N"),
        },
    };
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let pair = match words.as_slice() {
            [src] => registry_pair(src, None),
            [src, dest] => registry_pair(src, Some(dest)),
            _ => Err(anyhow::anyhow!("expected SOURCE [DEST]")),
        };
        pairs.push(pair.with_context(|| format!("{}:{}: {line:?}", file.display(), n + 1))?);
    }
    // Every line is checked above; this worker hardens its share.
    let pairs: Vec<_> = pairs.into_iter().skip(k).step_by(n).collect();
    let dests: Vec<&ImageRef> = pairs.iter().map(|(_, d)| d).collect();
    let run = Run::new(&common, &dests)?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, 32) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((src, dst)) = pairs.get(i) else { break };
                let result = harden_one(&run, src, dst);
                let _guard = out.lock();
                match result {
                    Ok(report) => {
                        if common.json {
                            println!("{}", report.unwrap_or(Value::Null));
                        }
                    }
                    Err(e) => {
                        failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        eprintln!("harden: error: {src}: {e:#}");
                        if common.json {
                            println!("{}", serde_json::json!({"source": src.to_string(), "destination": dst.to_string(), "error": format!("{e:#}")}));
                        }
                    }
                }
            });
        }
    });
    let failed = failed.into_inner();
    if failed > 0 {
        bail!("{failed} of {} images failed", pairs.len());
    }
    run.progress
        .say(&format!("hardened {} images", pairs.len()));
    Ok(())
}

/// Reads, hardens and writes one image or index; returns the `--json`
/// report (none for a dry run, which prints its own output).
fn harden_one(run: &Run, src: &ImageRef, dst: &ImageRef) -> Result<Option<Value>> {
    let Run {
        settings,
        wanted,
        registries,
        progress,
        ..
    } = run;
    sink::check_not_source(src, dst)?;
    let content = source::read(src, registries)?;
    let ctx = |image: &Image| -> Result<rewrite::RunContext> {
        Ok(rewrite::RunContext {
            version: VERSION.into(),
            created: source_date_epoch()?,
            base_name: image.name.clone(),
        })
    };
    let mut report = Vec::new();
    let mut dropped = Vec::new();
    // (platform, before, after) of every image hardened, for --dry-run.
    let mut pairs: Vec<(String, &Image, Image)> = Vec::new();
    let (source_digest, hardened) = match &content {
        Content::Image(image) => {
            let p = image_platform(image)?;
            if !wanted.is_empty() && !wanted.iter().any(|w| p.matches(w)) {
                bail!("the image is {p}, not what --platform asks for");
            }
            let h = harden_image(image, &p, settings, &ctx(image)?, &mut report)?;
            pairs.push((p.to_string(), image, h.clone()));
            (image.manifest_digest.clone(), Content::Image(h))
        }
        Content::Index(index) => {
            let all: Vec<_> = index.entries.iter().map(|e| e.platform.clone()).collect();
            let choices = platform::choose(&all, wanted, run.skip_unsupported)?;
            dropped = index.skipped.clone();
            let mut entries = Vec::new();
            for (entry, choice) in index.entries.iter().zip(choices) {
                match choice {
                    platform::Choice::Harden => {
                        let image = harden_image(
                            &entry.image,
                            &entry.platform,
                            settings,
                            &ctx(&entry.image)?,
                            &mut report,
                        )?;
                        pairs.push((entry.platform.to_string(), &entry.image, image.clone()));
                        entries.push(IndexEntry {
                            image,
                            ..entry.clone()
                        });
                    }
                    platform::Choice::Drop(reason) => dropped.push(image::Skipped {
                        digest: entry
                            .image
                            .manifest_digest
                            .as_ref()
                            .map(|d| d.to_string())
                            .unwrap_or_default(),
                        platform: entry.platform.to_string(),
                        reason,
                    }),
                }
            }
            let digest = index.digest.clone();
            (
                digest,
                Content::Index(Index {
                    entries,
                    skipped: Vec::new(),
                    ..index.clone()
                }),
            )
        }
    };
    for d in &dropped {
        progress.say(&format!(
            "warning: left out {} ({}): {}",
            d.platform, d.digest, d.reason
        ));
    }
    if run.dry_run {
        print_dry_run(&pairs, dst, registries)?;
        return Ok(None);
    }
    let written = sink::write(&hardened, dst, registries, progress)?;
    progress.say(&format!("wrote {}", written.destination));
    if written.manifest_digest.is_none() {
        // A docker-archive stores no manifest: no manifest digests to report.
        report
            .iter_mut()
            .for_each(|p| p["manifest_digest"] = Value::Null);
    }
    let mut out = serde_json::json!({
        "source": src.to_string(),
        "source_manifest_digest": source_digest.as_ref().map(|d| d.as_str()),
        "destination": written.destination,
        "manifest_digest": written.manifest_digest,
        "image_id": written.image_id,
        "platforms": report,
        "dropped": dropped,
        "blobs": written.blobs,
    });
    if let Content::Image(_) = hardened {
        out["added_layer"] = out["platforms"][0]["added_layer"].clone();
    }
    Ok(Some(out))
}

/// `--dry-run`: per platform the config changes, then what the destination
/// would receive (for a registry, found with HEAD requests; nothing is written).
fn print_dry_run(
    pairs: &[(String, &Image, Image)],
    dst: &ImageRef,
    registries: &registry::Registries,
) -> Result<()> {
    for (platform, before, after) in pairs {
        println!("== {platform} ==");
        print!("{}", inspect::diff(before, after)?);
    }
    let images: Vec<&Image> = pairs.iter().map(|(_, _, after)| after).collect();
    println!("== would write {dst} ==");
    match dst {
        ImageRef::Docker(r) => {
            let plan = registry::plan(&images, r, registries)?;
            let upload: u64 = plan.iter().filter(|p| p.2 == "upload").map(|p| p.1).sum();
            for (digest, size, what) in &plan {
                println!("blob {digest} {size:>12} bytes: {what}");
            }
            let manifests = if images.len() > 1 {
                images.len() + 1
            } else {
                1
            };
            println!("{upload} bytes to upload, then {manifests} manifest(s); the tag {r} last");
        }
        _ => {
            for image in &images {
                let new: Vec<_> = image
                    .layers
                    .iter()
                    .filter(|l| matches!(l.blob, image::Blob::Bytes(_)))
                    .collect();
                for l in new {
                    println!("new layer {} {:>12} bytes", l.digest, l.blob.len());
                }
                println!(
                    "config {} and {} base layers from the source",
                    image.config_digest(),
                    image.layers.len() - 1
                );
            }
        }
    }
    Ok(())
}

/// Each image of `content` with the platform its index names (none for a
/// single image).
fn platform_images(content: &Content) -> Vec<(Option<platform::Platform>, &Image)> {
    match content {
        Content::Image(i) => vec![(None, i)],
        Content::Index(x) => x
            .entries
            .iter()
            .map(|e| (Some(e.platform.clone()), &e.image))
            .collect(),
    }
}

/// The platform an image's config names.
fn image_platform(image: &Image) -> Result<platform::Platform> {
    platform::Platform::of(&image.config_json()?)
        .context("the image config names no os/architecture")
}

/// Hardens one platform's image with the step-down binary of its
/// architecture; adds what it did to `report` (for `--json`).
fn harden_image(
    image: &Image,
    platform: &platform::Platform,
    settings: &rewrite::Settings,
    ctx: &rewrite::RunContext,
    report: &mut Vec<Value>,
) -> Result<Image> {
    if !platform::supported(platform) {
        bail!("harden has no step-down binary for {platform} (it has linux/amd64 and linux/arm64)");
    }
    let (account, extra) = match settings.mode {
        rewrite::Mode::Runtime => (None, Vec::new()),
        rewrite::Mode::Static => {
            let (account, extra) = static_account(image, settings)?;
            (Some(account), extra)
        }
    };
    let layer = layer::stepdown_layer(stepdown_for(&platform.architecture)?, &extra)?;
    let hardened = rewrite::harden(image, settings, &layer, account.as_ref(), ctx)
        .with_context(|| format!("hardening {platform}"))?;
    report.push(serde_json::json!({
        "platform": platform.to_string(),
        "source_manifest_digest": image.manifest_digest.as_ref().map(|d| d.as_str()),
        "manifest_digest": digest::Digest::of(&hardened.manifest()).as_str(),
        "image_id": hardened.config_digest().as_str(),
        "added_layer": {"digest": layer.digest.as_str(), "size": layer.gzip.len(), "diff_id": layer.diff_id.as_str()},
    }));
    Ok(hardened)
}

/// The embedded step-down binary for an OCI architecture name.
fn stepdown_for(arch: &str) -> Result<&'static [u8]> {
    match arch {
        "amd64" => Ok(STEPDOWN_AMD64),
        "arm64" if !STEPDOWN_ARM64.is_empty() => Ok(STEPDOWN_ARM64),
        "arm64" => bail!("this harden was built without the arm64 step-down: `make build` installs Debian's arm64 toolchain and builds it"),
        other => bail!("no step-down binary for architecture {other:?} (available: amd64, arm64)"),
    }
}

/// Static mode: settles the user from the account files of the image as it
/// was before any harden run (the only step that reads layer content).
fn static_account(
    image: &image::Image,
    settings: &rewrite::Settings,
) -> Result<(rewrite::Account, Vec<layer::LayerEntry>)> {
    let base = rewrite::unharden(image)?;
    let files = rootfs::read_files(&base, &["etc/passwd", "etc/group"])?;
    let config = base.config_json()?;
    let user = config
        .pointer("/config/User")
        .and_then(|u| u.as_str())
        .unwrap_or("");
    rewrite::plan_static(settings, user, files[0].as_ref(), files[1].as_ref())
}

/// Writes `path` atomically (temp file beside it, renamed) with `mode`.
fn write_file(path: &std::path::Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// SOURCE_DATE_EPOCH as an RFC 3339 time, for the history entry.
fn source_date_epoch() -> Result<Option<String>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(None),
        Ok(v) => {
            let secs: i64 = v
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH {v:?} is not a number of seconds"))?;
            Ok(Some(rfc3339(secs)))
        }
    }
}

fn rfc3339(secs: i64) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_825_600), "2000-02-29T12:00:00Z");
    }
}
