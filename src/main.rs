//! harden's command line: clap definitions, option checks, dispatch.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use harden::{
    accounts, exit, image, inspect, platform, progress, registry, rewrite, rootfs, run, transport,
};
use image::Content;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use transport::ImageRef;

#[derive(Parser)]
#[command(
    name = "harden",
    version,
    about = "Make existing container images run as a non-root user, without a Dockerfile or a Docker daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

/// Options taken before the command (`harden -v rewrite …`) or after it by
/// the commands that talk to registries; not `global = true`, which would
/// list them for `completions` and `stepdown-binary` too.
#[derive(Args, Clone, Copy, Default)]
struct GlobalArgs {
    /// Log every registry request and retry to stderr (also RUST_LOG=debug)
    #[arg(short, long, help_heading = "Global options")]
    verbose: bool,
    /// Give up after this many seconds (exit 124, temp files removed, no tag pushed)
    #[arg(long, value_name = "SECONDS", help_heading = "Global options")]
    timeout: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// Harden SOURCE and write the result to DEST (any transport to any transport)
    #[command(after_help = "\
Transports (skopeo's syntax):
  docker://REF                             an image in a registry (docker.io/library/alpine:3.20)
  docker-archive:PATH[:NAME:TAG|:@INDEX]   docker save / podman save format
  oci:DIR[:TAG|:@INDEX]                    OCI image layout directory
  oci-archive:PATH[:TAG|:@INDEX]           OCI image layout in a tar file
  (@INDEX, from 0, selects a source image by its place in the file)

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
        /// Do not fsync file outputs before renaming them into place (as cp and skopeo):
        /// faster, but a machine crash soon after may leave a truncated file
        // Listed after the shared options: it is the rarely wanted one.
        #[arg(long, display_order = 100)]
        no_sync: bool,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        global: GlobalArgs,
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
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Show what an image runs, as whom, and whether harden hardened it
    #[command(
        after_help = "Examples:\n  harden inspect docker-archive:app-h.tar\n  harden inspect docker://registry.example.com/app:1.2-hardened --json\n  harden inspect docker://registry.example.com/app:1.2 docker://registry.example.com/app:1.2-hardened"
    )]
    Inspect {
        /// Image to describe (any transport)
        image: String,
        /// A second image: show what differs from IMAGE (e.g. the hardened one)
        other: Option<String>,
        /// Print the description as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: ReadRegistryArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Pipeline gate: exit 0 when the image would not run its command as root, 1 when it would
    #[command(after_help = "\
Prints one line: PASS or FAIL, the image, and the reason. Errors (unreadable image,
registry refusal) exit with the usual codes: 1, 3 (authentication), 4 (not found).

Examples:
  harden check docker://registry.example.com/app:1.2-hardened
  harden check --require static oci-archive:app.tar --json")]
    Check {
        /// Image to check (any transport)
        image: String,
        /// any: hardened by harden, or a non-root User (numeric, or a name /etc/passwd
        /// maps to a non-zero UID); static: kubelet's runAsNonRoot rule (numeric, non-zero User)
        #[arg(long, value_enum, default_value_t = RequireArg::Any)]
        require: RequireArg,
        /// Print the verdict as one JSON object on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: ReadRegistryArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Serve the hardened variant of upstream images: a read-only registry to pull from
    #[command(after_help = "\
Clients pull HOST:PORT/UPSTREAM/REPOSITORY:TAG, where UPSTREAM is the NAME of an
--upstream (default: docker.io only). Every manifest is hardened on request with
the same code and options as rewrite; base layers stream from the upstream.

Examples:
  harden serve --listen 0.0.0.0:5080 --skip-unsupported
  podman pull HOST:5080/docker.io/library/redis:7
  harden serve --upstream ghcr.io --upstream local=http://127.0.0.1:5000 --config rules.json")]
    Serve {
        /// Address to listen on (HOST:PORT; port 0 picks a free one, printed at start)
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5080")]
        listen: String,
        /// An upstream registry, named by the first path component: NAME (the registry
        /// at https://NAME) or NAME=URL (https:// or http://); repeatable
        #[arg(
            long = "upstream",
            value_name = "NAME[=URL]",
            default_value = "docker.io"
        )]
        upstreams: Vec<String>,
        /// Paths whose first component names no upstream are repositories of this one
        /// (`/v2/library/redis/…`, as Docker's registry-mirrors and a plain containerd mirror send)
        #[arg(long, value_name = "NAME")]
        mirror_of: Option<String>,
        /// Hardening options per repository: a JSON file of rules (docs/serve.md);
        /// the command line's options are for repositories no rule matches
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Memory for the hardened manifests, configs and layers, in MiB
        #[arg(long, value_name = "MIB", default_value_t = 256)]
        cache_mib: usize,
        /// Requests to upstream registries at once (manifest reads and blob streams)
        #[arg(long, value_name = "N", default_value_t = 64)]
        upstream_concurrency: usize,
        /// Serve HTTPS with this certificate chain (PEM)
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM)
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Only users of this file may pull (HTTP Basic; bcrypt entries, `htpasswd -B`)
        #[arg(long, value_name = "FILE")]
        htpasswd: Option<PathBuf>,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        platforms: PlatformArgs,
        #[command(flatten)]
        registry: ReadRegistryArgs,
        #[command(flatten)]
        global: GlobalArgs,
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
        /// amd64, arm64, arm, riscv64, 386, ppc64le or s390x (also as `uname -m` says them: x86_64, aarch64, armv7l, i686); default: this machine's
        #[arg(long, default_value = std::env::consts::ARCH, hide_default_value = true)]
        arch: String,
        /// File to write (mode 0755), or - for standard output
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// What rewrite and pull-rewrite-push share. The fields are in help order:
/// a `next_help_heading` holds for what follows it.
#[derive(Args)]
struct CommonArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// Print the result as one JSON object on stdout
    #[arg(long)]
    json: bool,
    /// Print nothing but errors
    #[arg(short, long)]
    quiet: bool,
    /// Show the config changes (before → after) and what would be written; write nothing
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    platforms: PlatformArgs,
}

#[derive(Args, Clone)]
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
    /// The auth.json to read instead of podman's (docker's config.json is still read after it)
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
    /// --authfile for the source registry only
    #[arg(long, value_name = "PATH")]
    src_authfile: Option<PathBuf>,
    /// --authfile for the destination registry only
    #[arg(long, value_name = "PATH")]
    dest_authfile: Option<PathBuf>,
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

/// The registry options of the commands that only read (inspect, check, serve):
/// no `--src-…`/`--dest-…` forms, as there is no destination.
#[derive(Args, Clone)]
#[command(next_help_heading = "Registry options")]
struct ReadRegistryArgs {
    /// Credentials for the registry (default: auth.json, then docker's config.json)
    #[arg(long, value_name = "USER:PASSWORD")]
    creds: Option<String>,
    /// The auth.json to read instead of podman's (docker's config.json is still read after it)
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
    /// Verify TLS certificates; false also allows plain HTTP (as skopeo)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// More CA certificates (*.crt) and a client certificate (*.cert + *.key), besides
    /// /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// Talk plain HTTP to the registry
    #[arg(long)]
    plain_http: bool,
}

impl ReadRegistryArgs {
    fn registries(self) -> Result<registry::Registries> {
        let all = RegistryArgs {
            creds: self.creds,
            src_creds: None,
            dest_creds: None,
            authfile: self.authfile,
            src_authfile: None,
            dest_authfile: None,
            tls_verify: self.tls_verify,
            src_tls_verify: None,
            dest_tls_verify: None,
            cert_dir: self.cert_dir,
            plain_http: self.plain_http,
        };
        all.registries(&[])
    }
}

impl RegistryArgs {
    /// One side's access: its own flags (`--src-…`/`--dest-…`) over the shared ones.
    fn access(
        &self,
        (creds, creds_flag): (&Option<String>, &str),
        auth_file: Option<registry::AuthFile>,
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
            auth_file,
        })
    }

    /// The registries of a run whose destinations are `dests`.
    fn registries(&self, dests: &[&ImageRef]) -> Result<registry::Registries> {
        // A typo would otherwise only show as an untrusted certificate.
        if let Some(dir) = self.cert_dir.as_ref().filter(|d| !d.is_dir()) {
            bail!("--cert-dir {}: not a directory", dir.display());
        }
        // Each file is read once, at start: a wrong path fails before any pull.
        let read = |path: &Option<PathBuf>, flag| {
            (path.as_ref())
                .map(|p| registry::AuthFile::read(p, flag))
                .transpose()
        };
        let shared = read(&self.authfile, "--authfile")?;
        let source = self.access(
            (&self.src_creds, "--src-creds"),
            read(&self.src_authfile, "--src-authfile")?.or(shared.clone()),
            self.src_tls_verify,
        )?;
        let dest = self.access(
            (&self.dest_creds, "--dest-creds"),
            read(&self.dest_authfile, "--dest-authfile")?.or(shared),
            self.dest_tls_verify,
        )?;
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
    // Hyphen values reach the ID check ("not a decimal number") instead of
    // clap's tip to write `-- -5`, which would make -5 a positional argument.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    uid: Option<String>,
    /// Default GID (default: the UID)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
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
    /// Run as the owner of this path when it exists and is not root (e.g. a bind mount);
    /// repeatable, up to 8: the first with a non-root owner wins
    #[arg(long, value_name = "PATH")]
    match_owner: Vec<String>,
    /// Take nothing from the image itself: without --user/--uid/--match-owner, a root
    /// image otherwise runs as the owner of its VOLUMEs or WorkingDir (when not root)
    #[arg(long)]
    no_infer: bool,
    /// At start, give PATH and what is below it to the user: only entries owned by
    /// others, no symlinks followed, one mount (repeatable, up to 8; e.g. a data volume)
    #[arg(long, value_name = "PATH")]
    chown: Vec<String>,
    /// Keep the step-down as PID 1 (unprivileged): forward signals, reap zombies, pass
    /// the exit status on (what tini or dumb-init do)
    #[arg(long)]
    init: bool,
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

/// `check --require` (inspect::Require, which knows nothing of clap).
// Plain comments: doc comments on the values would give `check --help` a
// layout of its own (clap's long help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RequireArg {
    // The command must not run as root: hardened by harden (either mode),
    // or a non-root User (numeric, or a name that /etc/passwd maps to a non-zero UID).
    Any,
    // kubelet's runAsNonRoot rule: the image's User is numeric and not 0.
    Static,
}

impl SettingsArgs {
    /// Checks every value here, so that a bad one fails the rewrite rather than the container.
    fn validate(self) -> Result<rewrite::Settings> {
        let id = |flag: &str, v: Option<String>| -> Result<Option<u32>> {
            v.map(|v| match accounts::parse_id(v.as_bytes()) {
                Ok(0) => bail!("{flag} 0 is root: harden exists to not run as root"),
                Ok(n) => Ok(n),
                Err(e) => bail!("{flag}: {v:?} {}", e.text()),
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
            if !accounts::valid_name(u.as_bytes()) {
                bail!("--user {u:?} is not a valid user name (letters, digits, . _ -; at most 32)");
            }
        }
        let homes = self.home.iter().map(|p| ("--home", p));
        let owners = self.match_owner.iter().map(|p| ("--match-owner", p));
        let chowns = self.chown.iter().map(|p| ("--chown", p));
        for (flag, p) in homes.chain(owners).chain(chowns) {
            if !accounts::valid_home(p.as_bytes()) {
                bail!("{flag} {p:?} must be an absolute path without ':'");
            }
        }
        if let Some(h) = self
            .home
            .as_ref()
            .filter(|h| accounts::home_refused(h.as_bytes()))
        {
            bail!(
                "--home {h:?}: not a normalised absolute path, or a system directory \
                 (/etc, /usr, /run, /dev, ...): the step-down would refuse it"
            );
        }
        if let Some(p) = self
            .chown
            .iter()
            .find(|p| !accounts::chown_allowed(p.as_bytes()))
        {
            bail!("--chown {p:?}: refusing to give / or a kernel filesystem to the user");
        }
        for (flag, paths) in [
            ("--chown", &self.chown),
            ("--match-owner", &self.match_owner),
        ] {
            if paths.len() > 8 {
                bail!("{flag}: at most 8 paths (the step-down's bound)");
            }
        }
        if matches!(self.mode, ModeArg::Static) && !self.chown.is_empty() {
            bail!("--chown needs --mode runtime: a static-mode image starts as the user, who cannot change owners");
        }
        Ok(rewrite::Settings {
            uid: id("--uid", self.uid)?,
            gid: id("--gid", self.gid)?,
            uid_env: env_name("--uid-env", self.uid_env)?,
            gid_env: env_name("--gid-env", self.gid_env)?,
            user: self.user,
            home: self.home,
            match_owner: self.match_owner,
            no_infer: self.no_infer,
            chown: self.chown,
            writable: Vec::new(),
            mounted_home: None,
            init: self.init,
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
impl Command {
    /// The global options given after the command, where it takes them.
    fn global(&self) -> GlobalArgs {
        match self {
            Command::Rewrite { global, .. }
            | Command::PullRewritePush { global, .. }
            | Command::Inspect { global, .. }
            | Command::Check { global, .. }
            | Command::Serve { global, .. } => *global,
            _ => GlobalArgs::default(),
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let after = cli.command.global();
    progress::set_verbose(cli.global.verbose || after.verbose);
    harden::interrupt::install();
    if let Some(seconds) = after.timeout.or(cli.global.timeout) {
        harden::interrupt::deadline(seconds);
    }
    if let Err(e) = run(cli) {
        eprintln!("harden: error: {e:#}");
        std::process::exit(harden::exit::code(&e));
    }
}

/// An image reference argument; a malformed one is a usage error.
fn image_ref(s: &str) -> Result<ImageRef> {
    ImageRef::parse(s).map_err(exit::usage)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Rewrite {
            source,
            dest,
            no_sync,
            common,
            ..
        } => rewrite(image_ref(&source)?, image_ref(&dest)?, common, !no_sync),
        Command::PullRewritePush {
            source,
            dest,
            from: None,
            common,
            ..
        } => {
            let pair = run::registry_pair(source.as_deref().unwrap_or_default(), dest.as_deref())
                .map_err(exit::usage)?;
            rewrite(pair.0, pair.1, common, true)
        }
        Command::PullRewritePush {
            from: Some(file),
            jobs,
            shard,
            common,
            ..
        } => {
            let text = if file == std::path::Path::new("-") {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let pairs = run::parse_list(&text, &file.display().to_string(), shard.as_deref())
                .map_err(exit::usage)?;
            let dests: Vec<&ImageRef> = pairs.iter().map(|(_, d)| d).collect();
            run::batch(&common.run(&dests)?, &pairs, jobs, common.json)
        }
        Command::Inspect {
            image,
            other: Some(other),
            json,
            registry,
            ..
        } => {
            let registries = registry.registries()?;
            let before = transport::read(&image_ref(&image)?, &registries)?;
            let after = transport::read(&image_ref(&other)?, &registries)?;
            let (before, after) = (run::platform_images(&before), run::platform_images(&after));
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
            ..
        } => {
            let content = transport::read(&image_ref(&image)?, &registry.registries()?)?;
            let mut described = Vec::new();
            for (platform, image) in run::platform_images(&content) {
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
                        "absent": x.absent,
                    })
                ),
                (Content::Index(x), false) => {
                    for d in &described {
                        println!("== {} ==", d["platform"].as_str().unwrap_or("?"));
                        print!("{}", inspect::human(d));
                    }
                    for skipped in x.skipped.iter().chain(&x.absent) {
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
            ..
        } => {
            let src = image_ref(&image)?;
            let content = transport::read(&src, &registry.registries()?)?;
            let mut results = Vec::new();
            for (platform, image) in run::platform_images(&content) {
                let d = inspect::describe(image)?;
                let require = match require {
                    RequireArg::Any => inspect::Require::Any,
                    RequireArg::Static => inspect::Require::Static,
                };
                let verdict = inspect::check(&d, require, |name| {
                    let passwd = rootfs::read_files(image, &["etc/passwd"])?.remove(0);
                    let passwd = passwd.map(|f| f.content).unwrap_or_default();
                    let uid = accounts::users(&passwd)
                        .find(|u| u.name == name.as_bytes())
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
        Command::Serve {
            listen,
            upstreams,
            mirror_of,
            config,
            cache_mib,
            upstream_concurrency,
            tls_cert,
            tls_key,
            htpasswd,
            settings,
            platforms,
            registry,
            ..
        } => {
            let upstreams = upstreams
                .iter()
                .map(|u| {
                    let u = harden::serve::upstream::parse(u).map_err(exit::usage)?;
                    let registries = ReadRegistryArgs {
                        plain_http: registry.plain_http || u.plain_http,
                        ..registry.clone()
                    }
                    .registries()?;
                    Ok((u, registries))
                })
                .collect::<Result<Vec<_>>>()?;
            if let Some(m) = mirror_of.as_ref() {
                if !upstreams.iter().any(|(u, _)| &u.name == m) {
                    return Err(exit::usage(anyhow::anyhow!(
                        "--mirror-of {m}: no --upstream is named so"
                    )));
                }
            }
            let rules = match config {
                Some(file) => serve_rules(&file).map_err(exit::usage)?,
                None => Vec::new(),
            };
            harden::serve::serve(harden::serve::Config {
                listen,
                upstreams,
                rules,
                default: hardening(&settings, &platforms).map_err(exit::usage)?,
                mirror_of,
                cache_bytes: cache_mib.saturating_mul(1 << 20),
                upstream_concurrency,
                tls: tls_cert.zip(tls_key),
                htpasswd,
            })
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
                transport::files::write_file(&dir.join(format!("{name}.1")), &page, 0o644, true)?;
            }
            Ok(())
        }
        Command::StepdownBinary { arch, output } => {
            let arch = match arch.as_str() {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                // `uname -m` on 32-bit arm, and Debian's names.
                "armv5l" | "armv6l" | "armv7l" | "armel" | "armhf" => "arm",
                "i386" | "i486" | "i586" | "i686" => "386",
                a => a,
            };
            let bytes = run::stepdown_for(arch)?;
            if output != Path::new("-") {
                return transport::files::write_file(&output, bytes, 0o755, true);
            }
            let mut stdout = std::io::stdout().lock();
            if stdout.is_terminal() {
                bail!("standard output is a terminal: redirect it, or name a file with -o");
            }
            stdout.write_all(bytes)?;
            Ok(stdout.flush()?)
        }
    }
}

impl CommonArgs {
    /// The shared state of a run whose destinations are `dests`.
    fn run(&self, dests: &[&ImageRef]) -> Result<run::Run> {
        Ok(run::Run {
            hardening: hardening(&self.settings, &self.platforms).map_err(exit::usage)?,
            dry_run: self.dry_run,
            sync: true,
            registries: self.registry.registries(dests)?,
            progress: progress::Progress::new(self.quiet),
        })
    }
}

/// The hardening options, each value checked.
fn hardening(settings: &SettingsArgs, platforms: &PlatformArgs) -> Result<run::Hardening> {
    let wanted = platforms
        .platform
        .iter()
        .map(|p| platform::Platform::parse(p))
        .collect::<Result<Vec<_>>>()?;
    Ok(run::Hardening {
        settings: settings.clone().validate()?,
        wanted,
        skip_unsupported: platforms.skip_unsupported,
    })
}

/// A rule's options, parsed as the command line's.
#[derive(Parser)]
#[command(name = "rule", no_binary_name = true)]
struct RuleArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    platforms: PlatformArgs,
}

/// `serve --config FILE`: `{"rules": [{"match": PATTERN, "options": {...}}]}`,
/// each option named as on the command line (`"match-owner": ["/data"]`,
/// `"init": true`), so that it means the same.
fn serve_rules(file: &Path) -> Result<Vec<harden::serve::Rule>> {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc: Value =
        serde_json::from_slice(&text).with_context(|| format!("{}: not JSON", file.display()))?;
    let Some(rules) = doc.get("rules").and_then(Value::as_array) else {
        bail!("{}: no \"rules\" list", file.display());
    };
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = || format!("{}: rule {}", file.display(), i + 1);
        let pattern = rule
            .get("match")
            .and_then(Value::as_str)
            .with_context(|| format!("{}: no \"match\" pattern", at()))?;
        let empty = serde_json::Map::new();
        let options = match rule.get("options") {
            None => &empty,
            Some(Value::Object(o)) => o,
            Some(_) => bail!("{} ({pattern}): \"options\" is not an object", at()),
        };
        let mut args: Vec<String> = Vec::new();
        for (key, value) in options {
            let flag = format!("--{key}");
            let values = match value {
                Value::Array(list) => list.clone(),
                v => vec![v.clone()],
            };
            for v in values {
                match v {
                    Value::Bool(true) => args.push(flag.clone()),
                    Value::Bool(false) => {}
                    Value::String(s) => args.extend([flag.clone(), s]),
                    Value::Number(n) => args.extend([flag.clone(), n.to_string()]),
                    _ => bail!(
                        "{} ({pattern}): {key}: not a string, number or boolean",
                        at()
                    ),
                }
            }
        }
        let parsed = RuleArgs::try_parse_from(&args).map_err(|e| {
            anyhow::anyhow!("{} ({pattern}): {}", at(), e.render().to_string().trim())
        })?;
        let hardening = hardening(&parsed.settings, &parsed.platforms)
            .with_context(|| format!("{} ({pattern})", at()))?;
        out.push(harden::serve::Rule {
            pattern: pattern.to_string(),
            hardening,
        });
    }
    Ok(out)
}

fn rewrite(src: ImageRef, dst: ImageRef, common: CommonArgs, sync: bool) -> Result<()> {
    if let ImageRef::DockerArchive { path, .. } | ImageRef::OciArchive { path, .. } = &dst {
        if common.json && is_stdout(path) {
            bail!("{dst} is standard output, where --json writes its report: use one or the other");
        }
    }
    let r = run::Run {
        sync,
        ..common.run(&[&dst])?
    };
    if let Some(report) = run::harden_one(&r, &r.progress, &src, &dst)? {
        if common.json {
            println!("{report}");
        }
    }
    Ok(())
}

/// Does `path` name this process's standard output (`/dev/stdout`, or the
/// file it is redirected to)?
fn is_stdout(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        std::fs::metadata("/proc/self/fd/1"),
    ) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}
